//! One pass from the parser's events to the JSON value and its span map, for the plain
//! YAML specs are written in. The general path (`serde_saphyr` into a span-carrying
//! node tree, then a second walk) costs about three times as much on a large spec.
//!
//! This pass reads the same events from the same parser with the same options, so the
//! spans are the ones the general path records. It gives up (returns `None`) on
//! anything whose meaning it does not settle itself: anchors, aliases, tags, merge
//! keys, directives, a second document, duplicate keys, non-scalar keys, a plain
//! scalar that could be a number other than a plain decimal integer or fraction, a budget
//! approached, or any parse error. The general path then parses the text and reports
//! its errors, so every message and location stays the general path's own.

use std::borrow::Cow;
use std::ops::Range;

use serde_json::{Map, Number, Value};
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, Span, StrInput};

use super::{Limits, NodeSpans, SpanMap, escape_segment};
use crate::source::SourceFile;

/// How far short of the budget's event and node limits this pass gives up.
pub(super) const BUDGET_MARGIN: usize = 16;

/// The value and spans of `source`, or `None` when the general path must decide.
pub(super) fn parse(source: &SourceFile, limits: &Limits, parser_options: serde_saphyr::granit_parser::Options) -> Option<(Value, SpanMap)> {
    let mut reader = Reader {
        events: Parser::with_options(StrInput::new(&source.text), parser_options),
        source,
        spans: SpanMap::with_capacity(source.text.len() / 16),
        pointer: String::new(),
        events_seen: 0,
        nodes: 0,
        depth: 0,
        // Counted as the budget counts them (every event; every scalar, keys included,
        // and every container), stopping a little short of each limit: the general
        // path reports a breach, this pass never comes near one.
        max_events: limits.events.saturating_sub(BUDGET_MARGIN),
        max_nodes: limits.nodes.saturating_sub(BUDGET_MARGIN),
        max_depth: limits.depth.saturating_sub(2),
    };
    if !matches!(reader.next()?.0, Event::StreamStart) {
        return None;
    }
    let Event::DocumentStart(_, None) = reader.next()?.0 else { return None };
    let (first, span) = reader.next()?;
    let value = reader.node(first, span, None)?;
    if !matches!(reader.next()?.0, Event::DocumentEnd) || !matches!(reader.next()?.0, Event::StreamEnd) || reader.events.next().is_some() {
        return None;
    }
    Some((value, reader.spans))
}

struct Reader<'a> {
    events: Parser<'a, StrInput<'a>>,
    source: &'a SourceFile,
    spans: SpanMap,
    /// The JSON pointer of the node being read (segments pushed and truncated).
    pointer: String,
    events_seen: usize,
    nodes: usize,
    depth: usize,
    max_events: usize,
    max_nodes: usize,
    max_depth: usize,
}

impl<'a> Reader<'a> {
    /// The next event other than a comment; `None` on a parse error or a budget approached.
    fn next(&mut self) -> Option<(Event<'a>, Span)> {
        loop {
            let (event, span) = self.events.next()?.ok()?;
            self.events_seen += 1;
            if self.events_seen > self.max_events {
                return None;
            }
            if !matches!(event, Event::Comment(..)) {
                return Some((event, span));
            }
        }
    }

    fn range(&self, span: &Span) -> Option<Range<usize>> {
        let (start, end) = (span.start.byte_offset()?, span.end.byte_offset()?);
        (start < u32::MAX as usize).then(|| self.source.clamp(start..start + end.saturating_sub(start)))
    }

    /// Reads the node that starts with `event`, recording its spans (and its children's)
    /// under the current pointer.
    fn node(&mut self, event: Event<'a>, span: Span, key: Option<Range<usize>>) -> Option<Value> {
        let value_span = self.range(&span)?;
        self.nodes += 1;
        if self.nodes > self.max_nodes {
            return None;
        }
        let value = match event {
            Event::Scalar(text, style, 0, None) => scalar(text, style)?,
            Event::SequenceStart(_, 0, None) => {
                self.enter()?;
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    let len = self.pointer.len();
                    self.pointer.push('/');
                    self.pointer.push_str(itoa(items.len(), &mut [0; 20]));
                    let item = self.node(event, span, None);
                    self.pointer.truncate(len);
                    items.push(item?);
                }
                self.depth -= 1;
                Value::Array(items)
            }
            Event::MappingStart(_, 0, None) => {
                self.enter()?;
                let mut entries = Map::new();
                loop {
                    let (event, span) = self.next()?;
                    let key_text = match event {
                        Event::MappingEnd => break,
                        Event::Scalar(text, style, 0, None) => key_text(text, style)?,
                        _ => return None,
                    };
                    let key_span = self.range(&span)?;
                    self.nodes += 1;
                    let (event, span) = self.next()?;
                    let len = self.pointer.len();
                    self.pointer.push('/');
                    if key_text.contains(['~', '/']) {
                        self.pointer.push_str(&escape_segment(&key_text));
                    } else {
                        self.pointer.push_str(&key_text);
                    }
                    let child = self.node(event, span, Some(key_span));
                    self.pointer.truncate(len);
                    if entries.insert(key_text, child?).is_some() {
                        // A duplicate key: the general path words the error.
                        return None;
                    }
                }
                self.depth -= 1;
                Value::Object(entries)
            }
            _ => return None,
        };
        self.spans.insert(&self.pointer, NodeSpans { key, value: value_span });
        Some(value)
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= self.max_depth).then_some(())
    }
}

/// A scalar value: quoted and block scalars are strings; a plain one is null, a
/// boolean, a decimal integer or a string, as YAML 1.2 with strict booleans reads it.
pub(super) fn scalar(text: Cow<'_, str>, style: ScalarStyle) -> Option<Value> {
    if style != ScalarStyle::Plain {
        return Some(Value::String(text.into_owned()));
    }
    Some(match plain(&text)? {
        Plain::Null => Value::Null,
        Plain::Bool(b) => Value::Bool(b),
        Plain::Number(n) => Value::Number(n),
        Plain::Text => Value::String(text.into_owned()),
    })
}

/// A mapping key as the general path spells it: the text, or the number or boolean a
/// plain key reads as. A null key, a merge key or one that may be a float: `None`.
pub(super) fn key_text(text: Cow<'_, str>, style: ScalarStyle) -> Option<String> {
    if style != ScalarStyle::Plain {
        return Some(text.into_owned());
    }
    if text == "<<" {
        return None;
    }
    match plain(&text)? {
        Plain::Null => None,
        Plain::Bool(b) => Some(b.to_string()),
        Plain::Number(n) => Some(n.to_string()),
        Plain::Text => Some(text.into_owned()),
    }
}

enum Plain {
    Null,
    Bool(bool),
    Number(Number),
    Text,
}

/// What a plain scalar means, or `None` when it may be a number in another spelling
/// (hex, octal, underscores, a float, infinity) or an integer beyond 64 bits.
fn plain(text: &str) -> Option<Plain> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Plain::Null),
        "true" | "True" | "TRUE" => return Some(Plain::Bool(true)),
        "false" | "False" | "FALSE" => return Some(Plain::Bool(false)),
        _ => {}
    }
    if text.starts_with(|c: char| c.is_ascii_alphabetic()) {
        // A word: none of the number spellings below starts with a letter, but for
        // infinity and not-a-number.
        return (!spells_infinity_or_nan(text)).then_some(Plain::Text);
    }
    if decimal(text) {
        return text.parse::<u64>().ok().map(|n| Plain::Number(n.into()));
    }
    if let Some(digits) = text.strip_prefix('-')
        && decimal(digits)
    {
        return text.parse::<i64>().ok().map(|n| Plain::Number(n.into()));
    }
    if let Some((whole, fraction)) = text.strip_prefix('-').unwrap_or(text).split_once('.')
        && !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && decimal_digits(fraction)
    {
        // A plain decimal fraction (`0.75`), read as the general path reads it.
        return text.parse::<f64>().ok().and_then(Number::from_f64).map(Plain::Number);
    }
    if text.starts_with(|c: char| c.is_ascii_digit()) && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') && text.matches('.').count() >= 2 {
        // Dotted digits (an IPv4 address) are neither an integer nor a float.
        return Some(Plain::Text);
    }
    if spells_infinity_or_nan(text.trim_start_matches(['+', '-']).trim_start_matches('.')) {
        return None;
    }
    let numeric_start = text.trim_start_matches(['+', '-']).starts_with(|c: char| c.is_ascii_digit() || c == '.');
    let numeric_chars = text.bytes().all(|b| b.is_ascii_hexdigit() || matches!(b, b'x' | b'X' | b'o' | b'O' | b'.' | b'_' | b'+' | b'-' | b':'));
    if (numeric_start || text.starts_with(['+', '-', '.'])) && numeric_chars {
        return None;
    }
    Some(Plain::Text)
}

fn spells_infinity_or_nan(text: &str) -> bool {
    ["inf", "infinity", "nan"].iter().any(|word| text.eq_ignore_ascii_case(word))
}

/// Digits without a leading zero (a leading zero is an octal spelling elsewhere).
fn decimal(text: &str) -> bool {
    decimal_digits(text) && (text.len() == 1 || !text.starts_with('0'))
}

fn decimal_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// The decimal digits of `n`, without an allocation.
pub(super) fn itoa(mut n: usize, buffer: &mut [u8; 20]) -> &str {
    let mut i = buffer.len();
    loop {
        i -= 1;
        buffer[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buffer[i..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_read_as_the_general_path_reads_them() {
        assert!(matches!(plain("8"), Some(Plain::Number(n)) if n.as_u64() == Some(8)));
        assert!(matches!(plain("-3"), Some(Plain::Number(n)) if n.as_i64() == Some(-3)));
        assert!(matches!(plain("~"), Some(Plain::Null)));
        assert!(matches!(plain("0.75"), Some(Plain::Number(n)) if n.as_f64() == Some(0.75)));
        assert!(matches!(plain("-1.5"), Some(Plain::Number(n)) if n.as_f64() == Some(-1.5)));
        assert!(matches!(plain("TRUE"), Some(Plain::Bool(true))));
        for text in ["web", "db", "100ms", "2GiB", "yes", "no", "on", "/health", "app.example.com", "info", "financial", "10.0.0.31"] {
            assert!(matches!(plain(text), Some(Plain::Text)), "{text}");
        }
        for text in ["08", "0x1f", "0o17", "1_000", "1.", ".5", "1.5e3", "8000:8000", "1e3", ".inf", "-.Inf", "NaN", "-infinity", "+5", "99999999999999999999", "12:30", "inf", "Infinity", "nan", "INF"] {
            assert!(plain(text).is_none(), "{text}");
        }
    }

    #[test]
    fn indices_spell_in_decimal() {
        assert_eq!(itoa(0, &mut [0; 20]), "0");
        assert_eq!(itoa(1207, &mut [0; 20]), "1207");
        assert_eq!(itoa(usize::MAX, &mut [0; 20]), usize::MAX.to_string());
    }
}
