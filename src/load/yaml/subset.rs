//! A reader written for the subset of YAML specs are written in: block mappings and
//! sequences, flow mappings and sequences (over several lines too), plain and quoted
//! one-line scalars, comments and blank lines, a leading `---`. It reads a large spec
//! several times faster than the parser's event stream, and it records the values and
//! spans that stream gives (`direct`): the span of a block mapping is the position of
//! its first key, of a block sequence its first `-` (or, for a sequence at its key's
//! indentation, where the first item's content starts), of a flow collection its
//! opening bracket, of an empty value the `:` before it (or, for an empty sequence
//! item, the end of its line).
//!
//! It gives up (returns `None`) on everything else — anchors, aliases, tags, block
//! scalars, multi-line scalars, explicit keys, tabs, directives, a second document,
//! duplicate keys, indentation it does not expect, long runs of comments, a budget
//! approached — and `direct`, then the general path, decide; so every error message
//! and location stays theirs.

use std::borrow::Cow;
use std::ops::Range;

use serde_json::{Map, Value};
use serde_saphyr::granit_parser::ScalarStyle;

use super::direct::{BUDGET_MARGIN, itoa, key_text, scalar};
use super::{Limits, NodeSpans, SpanMap, escape_segment};
use crate::source::SourceFile;

/// Longest implicit key read here: the parser stops taking a key as one 1,024
/// characters after it starts.
const MAX_KEY_BYTES: usize = 900;

/// Most comments read in a row right after a `:` or `-`, or at the end of the document:
/// the parser buffers at most 32 there while it looks ahead for what follows.
const MAX_COMMENT_RUN: usize = 24;

/// The value and spans of `source`, or `None` when `direct` must decide.
pub(super) fn parse(source: &SourceFile, limits: &Limits) -> Option<(Value, SpanMap)> {
    let text = source.text.as_str();
    if !plain_text(text) {
        return None;
    }
    let mut reader = Reader {
        bytes: text.as_bytes(),
        text,
        pos: 0,
        line_start: 0,
        spans: SpanMap::with_capacity(text.len() / 16),
        pointer: String::new(),
        // StreamStart, DocumentStart, DocumentEnd, StreamEnd.
        events: 4,
        nodes: 0,
        depth: 0,
        comment_run: 0,
        after_indicator: false,
        max_events: limits.events.saturating_sub(BUDGET_MARGIN),
        max_nodes: limits.nodes.saturating_sub(BUDGET_MARGIN),
        max_depth: limits.depth.saturating_sub(2),
    };
    reader.skip_void()?;
    if reader.column() == 0 && reader.rest().starts_with("---") && matches!(reader.byte_at(reader.pos + 3), None | Some(b' ' | b'\n')) {
        reader.pos += 3;
        reader.end_of_line()?;
        reader.skip_void()?;
    }
    if reader.at_end() || reader.column() != 0 {
        return None;
    }
    let start = reader.pos;
    let value = if reader.dash_entry() {
        reader.block_sequence(0)?
    } else if reader.starts_key() {
        reader.block_mapping(0)?
    } else {
        return None;
    };
    reader.record(None, start..start);
    if !reader.at_end() || reader.comment_run > MAX_COMMENT_RUN || reader.events > reader.max_events || reader.nodes > reader.max_nodes {
        return None;
    }
    Some((value, reader.spans))
}

/// Text the reader can take byte by byte: no tab, carriage return or other control
/// character, no byte-order mark, and none of the characters YAML reads as line
/// breaks or refuses.
fn plain_text(text: &str) -> bool {
    if text.bytes().all(|b| b == b'\n' || (b' '..0x7f).contains(&b)) {
        return true;
    }
    text.chars().all(|c| {
        (c == '\n' || (' '..'\u{7f}').contains(&c) || c >= '\u{a0}')
            && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
    })
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// Where the line holding `pos` starts.
    line_start: usize,
    spans: SpanMap,
    /// The JSON pointer of the node being read (segments pushed and truncated).
    pointer: String,
    /// Events and nodes the parser would give, counted as `direct` counts them.
    events: usize,
    nodes: usize,
    depth: usize,
    /// Comments since the last token.
    comment_run: usize,
    /// Whether the last token was a `:` or `-` (comments after it are buffered).
    after_indicator: bool,
    max_events: usize,
    max_nodes: usize,
    max_depth: usize,
}

impl<'a> Reader<'a> {
    /// The text from `start` to `end`, borrowed from the source rather than the reader.
    fn slice(&self, start: usize, end: usize) -> &'a str {
        let text: &'a str = self.text;
        &text[start..end]
    }

    fn byte_at(&self, pos: usize) -> Option<u8> {
        self.bytes.get(pos).copied()
    }

    fn peek(&self) -> Option<u8> {
        self.byte_at(self.pos)
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn column(&self) -> usize {
        self.pos - self.line_start
    }

    /// Whether the byte at `pos` ends a token: a space, a line break or the end.
    fn blank_at(&self, pos: usize) -> bool {
        matches!(self.byte_at(pos), None | Some(b' ' | b'\n'))
    }

    /// A `-` that opens a block sequence item.
    fn dash_entry(&self) -> bool {
        self.peek() == Some(b'-') && self.blank_at(self.pos + 1)
    }

    fn token(&mut self) {
        self.events += 1;
        self.comment_run = 0;
        self.after_indicator = false;
    }

    /// A `:` or `-` read.
    fn indicator(&mut self) {
        self.comment_run = 0;
        self.after_indicator = true;
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        self.events += 2;
        self.nodes += 1;
        self.comment_run = 0;
        self.after_indicator = false;
        (self.depth <= self.max_depth).then_some(())
    }

    fn record(&mut self, key: Option<Range<usize>>, value: Range<usize>) {
        self.spans.insert(&self.pointer, NodeSpans { key, value });
    }

    fn push_index(&mut self, index: usize) {
        self.pointer.push('/');
        self.pointer.push_str(itoa(index, &mut [0; 20]));
    }

    fn push_key(&mut self, key: &str) {
        self.pointer.push('/');
        if key.contains(['~', '/']) {
            self.pointer.push_str(&escape_segment(key));
        } else {
            self.pointer.push_str(key);
        }
    }

    /// A comment from `#` to the end of its line (left before the line break).
    fn comment(&mut self) -> Option<()> {
        self.comment_run += 1;
        self.events += 1;
        if self.after_indicator && self.comment_run > MAX_COMMENT_RUN {
            return None;
        }
        self.pos += self.bytes[self.pos..].iter().position(|&b| b == b'\n').unwrap_or(self.bytes.len() - self.pos);
        Some(())
    }

    /// Skips blank lines and comments from the start of a line (or after what ended a
    /// line), stopping at the next content or the end.
    fn skip_void(&mut self) -> Option<()> {
        loop {
            match self.peek() {
                Some(b' ') => self.pos += 1,
                Some(b'\n') => {
                    self.pos += 1;
                    self.line_start = self.pos;
                }
                Some(b'#') => self.comment()?,
                _ => return Some(()),
            }
        }
    }

    /// The rest of a line after a node: spaces, maybe a comment (after a space), then
    /// the line break or the end. Stops at the line break.
    fn end_of_line(&mut self) -> Option<()> {
        self.token_free_spaces();
        match self.peek() {
            None | Some(b'\n') => Some(()),
            Some(b'#') if self.pos == self.line_start || self.bytes[self.pos - 1] == b' ' => self.comment(),
            _ => None,
        }
    }

    /// After a scalar or flow collection in block context: the end of its line, and the
    /// next content no deeper than `indent` (deeper would continue the scalar or fail).
    fn after_block_value(&mut self, indent: usize) -> Option<()> {
        self.end_of_line()?;
        self.skip_void()?;
        (self.at_end() || self.column() <= indent).then_some(())
    }

    /// Where the parser places what follows the `-` at `dash`: its content, or the end
    /// of its line when nothing (or only a comment) follows.
    fn item_start(&self, dash: usize) -> usize {
        let mut p = dash + 1;
        while self.byte_at(p) == Some(b' ') {
            p += 1;
        }
        if self.byte_at(p) == Some(b'#') {
            p += self.bytes[p..].iter().position(|&b| b == b'\n').unwrap_or(self.bytes.len() - p);
        }
        p
    }

    /// Whether the content at `pos` is an implicit key (`name:`, `"name":`).
    fn starts_key(&self) -> bool {
        let end = match self.peek() {
            Some(quote @ (b'"' | b'\'')) => match self.quoted_end(quote) {
                Some(end) => end,
                None => return false,
            },
            Some(first) if plain_start(first, self.byte_at(self.pos + 1)) => match self.plain_block_end() {
                (_, Some(colon)) => return colon > self.pos,
                _ => return false,
            },
            _ => return false,
        };
        let mut p = end;
        while self.byte_at(p) == Some(b' ') {
            p += 1;
        }
        self.byte_at(p) == Some(b':') && self.blank_at(p + 1)
    }

    /// The block mapping whose first key is at `pos`, at column `indent`.
    fn block_mapping(&mut self, indent: usize) -> Option<Value> {
        self.enter()?;
        let mut entries = Map::new();
        loop {
            if indent == 0 && (self.rest().starts_with("---") || self.rest().starts_with("...")) {
                return None;
            }
            let (key, key_span) = self.block_key()?;
            let len = self.pointer.len();
            self.push_key(&key);
            let value = self.block_value(indent, key_span);
            self.pointer.truncate(len);
            if entries.insert(key, value?).is_some() {
                return None;
            }
            if self.at_end() || self.column() < indent {
                break;
            }
            if self.column() > indent || self.dash_entry() {
                return None;
            }
        }
        self.depth -= 1;
        Some(Value::Object(entries))
    }

    /// An implicit key and its `:`; `pos` ends after the `:`.
    fn block_key(&mut self) -> Option<(String, Range<usize>)> {
        let start = self.pos;
        let (text, style, end) = match self.peek()? {
            b'"' | b'\'' => {
                let (text, style) = self.quoted()?;
                let end = self.pos;
                while self.peek() == Some(b' ') {
                    self.pos += 1;
                }
                (text, style, end)
            }
            _ => {
                let (end, colon) = self.plain_block_end();
                self.pos = colon?;
                (Cow::Borrowed(self.slice(start, end)), ScalarStyle::Plain, end)
            }
        };
        if self.peek() != Some(b':') || !self.blank_at(self.pos + 1) || self.pos - start > MAX_KEY_BYTES || end == start {
            return None;
        }
        if style == ScalarStyle::Plain && !plain_start(self.bytes[start], self.byte_at(start + 1)) {
            return None;
        }
        let key = key_text(text, style)?;
        self.pos += 1;
        self.token();
        self.indicator();
        self.nodes += 1;
        Some((key, start..end))
    }

    /// The value after `key:` in the block mapping at `indent`; `pos` ends at the next
    /// content after it (or the end).
    fn block_value(&mut self, indent: usize, key_span: Range<usize>) -> Option<Value> {
        let colon = self.pos - 1;
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
        match self.peek() {
            None | Some(b'\n' | b'#') => {
                self.end_of_line()?;
                self.skip_void()?;
                let column = self.column();
                let start = self.pos;
                let (value, span) = if self.at_end() || column < indent || (column == indent && !self.dash_entry()) {
                    self.token();
                    self.nodes += 1;
                    (Value::Null, colon..colon)
                } else if column == indent {
                    // A sequence at its key's indentation.
                    let span = self.item_start(start);
                    (self.block_sequence(column)?, span..span)
                } else if self.dash_entry() {
                    (self.block_sequence(column)?, start..start)
                } else {
                    (self.block_mapping(column)?, start..start)
                };
                self.record(Some(key_span), span);
                Some(value)
            }
            Some(_) => {
                let (value, span) = self.inline_value(indent)?;
                self.record(Some(key_span), span);
                Some(value)
            }
        }
    }

    /// A scalar or flow collection on the current line, in the block collection at
    /// `indent`; `pos` ends at the next content after it.
    fn inline_value(&mut self, indent: usize) -> Option<(Value, Range<usize>)> {
        let start = self.pos;
        let value = match self.peek()? {
            b'{' => self.flow_mapping(indent)?,
            b'[' => self.flow_sequence(indent)?,
            b'"' | b'\'' => {
                let (text, style) = self.quoted()?;
                self.token();
                self.nodes += 1;
                scalar(text, style)?
            }
            first => {
                if !plain_start(first, self.byte_at(start + 1)) {
                    return None;
                }
                let (end, colon) = self.plain_block_end();
                if colon.is_some() {
                    return None;
                }
                self.pos = end;
                self.token();
                self.nodes += 1;
                let span = start..end;
                let value = scalar(Cow::Borrowed(self.slice(start, end)), ScalarStyle::Plain)?;
                self.after_block_value(indent)?;
                return Some((value, span));
            }
        };
        let span = start..self.pos;
        self.after_block_value(indent)?;
        let span = match value {
            Value::Array(_) | Value::Object(_) => span.start..span.start + 1,
            _ => span,
        };
        Some((value, span))
    }

    /// The block sequence whose first `-` is at `pos`, at column `indent`.
    fn block_sequence(&mut self, indent: usize) -> Option<Value> {
        self.enter()?;
        let mut items = Vec::new();
        loop {
            let len = self.pointer.len();
            self.push_index(items.len());
            let item = self.sequence_item(indent);
            self.pointer.truncate(len);
            items.push(item?);
            if self.at_end() || self.column() < indent {
                break;
            }
            if self.column() > indent {
                return None;
            }
            if !self.dash_entry() {
                break;
            }
        }
        self.depth -= 1;
        Some(Value::Array(items))
    }

    /// The item after the `-` at `pos` in the block sequence at `indent`.
    fn sequence_item(&mut self, indent: usize) -> Option<Value> {
        let dash = self.pos;
        self.pos += 1;
        self.indicator();
        self.token_free_spaces();
        let start = self.pos;
        let (value, span) = match self.peek() {
            None | Some(b'\n' | b'#') => {
                let end_of_item = self.item_start(dash);
                self.end_of_line()?;
                self.skip_void()?;
                let column = self.column();
                let nested = self.pos;
                if self.at_end() || column <= indent {
                    self.token();
                    self.nodes += 1;
                    (Value::Null, end_of_item..end_of_item)
                } else if self.dash_entry() {
                    (self.block_sequence(column)?, nested..nested)
                } else {
                    (self.block_mapping(column)?, nested..nested)
                }
            }
            Some(b'-') if self.blank_at(self.pos + 1) => (self.block_sequence(self.column())?, start..start),
            Some(_) if self.starts_key() => (self.block_mapping(self.column())?, start..start),
            Some(_) => self.inline_value(indent)?,
        };
        self.record(None, span);
        Some(value)
    }

    fn token_free_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    /// Where a plain scalar in block context that starts at `pos` ends (trailing spaces
    /// left out), and the `:` after it when it is a key. It ends at a line break, at
    /// ` #`, or at a `:` followed by a space or line break.
    fn plain_block_end(&self) -> (usize, Option<usize>) {
        let bytes = self.bytes;
        let mut p = self.pos;
        let mut end = p;
        let colon = loop {
            match bytes.get(p) {
                None | Some(b'\n') => break None,
                Some(b' ') => {
                    if bytes.get(p + 1) == Some(&b'#') {
                        break None;
                    }
                }
                Some(b':') if matches!(bytes.get(p + 1), None | Some(b' ' | b'\n')) => break Some(p),
                Some(_) => end = p + 1,
            }
            p += 1;
        };
        (end, colon)
    }

    /// Where the quoted scalar opening at `pos` closes (after its closing quote), or
    /// `None` when it runs past its line.
    fn quoted_end(&self, quote: u8) -> Option<usize> {
        let bytes = self.bytes;
        let mut p = self.pos + 1;
        loop {
            match *bytes.get(p)? {
                b'\n' => return None,
                b'\\' if quote == b'"' => p += 2,
                b'\'' if quote == b'\'' && bytes.get(p + 1) == Some(&b'\'') => p += 2,
                b if b == quote => return Some(p + 1),
                _ => p += 1,
            }
        }
    }

    /// The quoted scalar at `pos`, unescaped; `pos` ends after its closing quote.
    fn quoted(&mut self) -> Option<(Cow<'a, str>, ScalarStyle)> {
        let quote = self.peek()?;
        let end = self.quoted_end(quote)?;
        let start = self.pos;
        self.pos = end;
        let inner = self.slice(start + 1, end - 1);
        if quote == b'\'' {
            let text = if inner.contains('\'') { Cow::Owned(inner.replace("''", "'")) } else { Cow::Borrowed(inner) };
            return Some((text, ScalarStyle::SingleQuoted));
        }
        if !inner.contains('\\') {
            return Some((Cow::Borrowed(inner), ScalarStyle::DoubleQuoted));
        }
        Some((Cow::Owned(unescape(inner)?), ScalarStyle::DoubleQuoted))
    }

    /// Spaces, line breaks and comments inside a flow collection; every line in it must
    /// be deeper than `indent`, the block collection holding it.
    fn flow_void(&mut self, indent: usize) -> Option<()> {
        loop {
            match self.peek() {
                Some(b' ') => self.pos += 1,
                Some(b'\n') => {
                    self.pos += 1;
                    self.line_start = self.pos;
                    self.token_free_spaces();
                    if !matches!(self.peek(), None | Some(b'\n')) && self.column() <= indent {
                        return None;
                    }
                }
                Some(b'#') if matches!(self.bytes[self.pos - 1], b' ' | b'\n') => self.comment()?,
                _ => return Some(()),
            }
        }
    }

    /// A scalar or collection inside a flow collection.
    fn flow_node(&mut self, indent: usize) -> Option<(Value, Range<usize>)> {
        let start = self.pos;
        match self.peek()? {
            b'{' => Some((self.flow_mapping(indent)?, start..start + 1)),
            b'[' => Some((self.flow_sequence(indent)?, start..start + 1)),
            b'"' | b'\'' => {
                let (text, style) = self.quoted()?;
                let value = scalar(text, style)?;
                self.token();
                self.nodes += 1;
                Some((value, start..self.pos))
            }
            _ => {
                let end = self.plain_flow()?;
                self.token();
                self.nodes += 1;
                let value = scalar(Cow::Borrowed(self.slice(start, end)), ScalarStyle::Plain)?;
                Some((value, start..end))
            }
        }
    }

    /// A plain scalar inside a flow collection, on one line: `pos` ends after it, and
    /// the end of its text (trailing spaces left out) is returned. It ends at a flow
    /// indicator, at ` #`, or at a `:` followed by a space or line break.
    fn plain_flow(&mut self) -> Option<usize> {
        let start = self.pos;
        if !plain_start(self.peek()?, self.byte_at(start + 1)) {
            return None;
        }
        let mut end = start;
        loop {
            match self.peek() {
                None | Some(b'\n' | b',' | b']' | b'}') => break,
                Some(b'[' | b'{') => return None,
                Some(b' ') => {
                    if self.byte_at(self.pos + 1) == Some(b'#') {
                        break;
                    }
                }
                Some(b':') => match self.byte_at(self.pos + 1) {
                    // `name: `: the end of a key.
                    None | Some(b' ' | b'\n') => break,
                    // `a:]`: left to the parser.
                    Some(b',' | b'[' | b']' | b'{' | b'}') => return None,
                    // `host:port`: part of the scalar.
                    Some(_) => end = self.pos + 1,
                },
                Some(_) => end = self.pos + 1,
            }
            self.pos += 1;
        }
        self.pos = end;
        Some(end)
    }

    /// Before an entry of a flow collection: whether it closes here instead.
    fn flow_closes(&mut self, indent: usize, close: u8) -> Option<bool> {
        self.flow_void(indent)?;
        Some(self.peek()? == close)
    }

    /// After an entry of a flow collection: a `,` (read; more may follow) or the
    /// closing bracket (`true`).
    fn flow_entry_ends(&mut self, indent: usize, close: u8) -> Option<bool> {
        self.flow_void(indent)?;
        match self.peek()? {
            b',' => {
                self.pos += 1;
                Some(false)
            }
            byte => (byte == close).then_some(true),
        }
    }

    /// Past the closing bracket of a flow collection.
    fn leave_flow(&mut self) {
        self.pos += 1;
        self.depth -= 1;
    }

    /// The flow mapping opening at `pos`.
    fn flow_mapping(&mut self, indent: usize) -> Option<Value> {
        self.enter()?;
        self.pos += 1;
        let mut entries = Map::new();
        loop {
            if self.flow_closes(indent, b'}')? {
                break;
            }
            let start = self.pos;
            let (text, style) = match self.peek()? {
                b'"' | b'\'' => self.quoted()?,
                b'{' | b'[' => return None,
                _ => {
                    let end = self.plain_flow()?;
                    (Cow::Borrowed(self.slice(start, end)), ScalarStyle::Plain)
                }
            };
            let key_span = start..self.pos;
            let key = key_text(text, style)?;
            self.token_free_spaces();
            if self.peek() != Some(b':') || !matches!(self.byte_at(self.pos + 1), Some(b' ')) || self.pos - start > MAX_KEY_BYTES {
                return None;
            }
            self.token();
            self.indicator();
            self.nodes += 1;
            let colon = self.pos;
            self.pos += 1;
            self.token_free_spaces();
            let len = self.pointer.len();
            self.push_key(&key);
            let value = match self.peek()? {
                b',' | b'}' => {
                    self.token();
                    self.nodes += 1;
                    Some((Value::Null, colon..colon))
                }
                b'\n' | b'#' => None,
                _ => self.flow_node(indent),
            };
            let value = value.map(|(value, span)| {
                self.record(Some(key_span), span);
                value
            });
            self.pointer.truncate(len);
            if entries.insert(key, value?).is_some() {
                return None;
            }
            if self.flow_entry_ends(indent, b'}')? {
                break;
            }
        }
        self.leave_flow();
        Some(Value::Object(entries))
    }

    /// The flow sequence opening at `pos`.
    fn flow_sequence(&mut self, indent: usize) -> Option<Value> {
        self.enter()?;
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            if self.flow_closes(indent, b']')? {
                break;
            }
            let len = self.pointer.len();
            self.push_index(items.len());
            let item = self.flow_node(indent).map(|(value, span)| {
                self.record(None, span);
                value
            });
            self.pointer.truncate(len);
            items.push(item?);
            if self.flow_entry_ends(indent, b']')? {
                break;
            }
        }
        self.leave_flow();
        Some(Value::Array(items))
    }
}

/// Whether a plain scalar may start with `first` (then `second`): not with an
/// indicator, but for `-`, `?` and `:` before a character that is not blank.
fn plain_start(first: u8, second: Option<u8>) -> bool {
    match first {
        b'-' => !matches!(second, None | Some(b' ' | b'\n' | b',' | b'[' | b']' | b'{' | b'}')),
        b'?' | b':' | b',' | b'[' | b']' | b'{' | b'}' | b'#' | b'&' | b'*' | b'!' | b'|' | b'>' | b'\'' | b'"' | b'%' | b'@' | b'`' | b' ' | b'\n' => false,
        _ => true,
    }
}

/// The text of a double-quoted scalar's inside, its escapes read; `None` for an escape
/// YAML does not define or one that names no character.
fn unescape(inner: &str) -> Option<String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escaped = match chars.next()? {
            '0' => '\0',
            'a' => '\u{7}',
            'b' => '\u{8}',
            't' => '\t',
            'n' => '\n',
            'v' => '\u{b}',
            'f' => '\u{c}',
            'r' => '\r',
            'e' => '\u{1b}',
            ' ' => ' ',
            '"' => '"',
            '/' => '/',
            '\\' => '\\',
            'N' => '\u{85}',
            '_' => '\u{a0}',
            'L' => '\u{2028}',
            'P' => '\u{2029}',
            'x' => hex(&mut chars, 2)?,
            'u' => hex(&mut chars, 4)?,
            'U' => hex(&mut chars, 8)?,
            _ => return None,
        };
        out.push(escaped);
    }
    Some(out)
}

fn hex(chars: &mut std::str::Chars<'_>, digits: usize) -> Option<char> {
    let mut code = 0u32;
    for _ in 0..digits {
        code = code * 16 + chars.next()?.to_digit(16)?;
    }
    char::from_u32(code)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    use super::super::{FOREIGN_LIMITS, SPEC_LIMITS, direct, parser_options};
    use super::*;

    /// Scalars as a spec might hold them, plain: numbers, booleans, nulls, words and
    /// strings that look like numbers.
    const SCALARS: &[&str] = &[
        "web", "100ms", "2GiB", "5000", "-3", "0.75", "-1.5", "0", "-0", "true", "True", "FALSE", "yes", "no", "on", "null", "Null", "~", "",
        "a b", "a#b", "a:b", "http://example.com:80/x", "/", "/health", "10.0.0.31", "é ü", "日本語", "x'y", "x\"y", "a,b", "x]", "-x", "a~b/c",
        "a  b", "transaction", "ghcr.io/org/app:2.4.1", "app.main:app", "x]y", "x}y", "a\\b", "18446744073709551615", "-9223372036854775808",
        "--- x",
        // Spellings only the general path reads (the fast readers give up on them).
        "08", "0x1f", "0o17", "1_000", "1e3", ".5", "1.", ".inf", "NaN", "+5", "99999999999999999999", "12:30", "8000:8000",
        // Scalars that must be quoted; written plain, they are not YAML or mean something else.
        "a #b", "a: b", "[x]", "{x}", "- x", "?x", "? x", ":x", "*x", "&x", "!x", "|", ">", "%x", "@x", "`x", "#", "<<", " lead", "trail ", "a\tb",
        "\u{85}", "\u{a0}x", "x\u{2028}", "---", "...", "x: ", "a,b]", "'q'", "\"d\"",
    ];

    /// Where the spellings only the general path reads start in `SCALARS`, and where
    /// the scalars that must be quoted start.
    const ODD_SPELLINGS: usize = 44;
    const MUST_QUOTE: usize = 57;

    /// Keys, a few of which repeat or need quoting.
    const KEYS: &[&str] = &[
        "a", "web", "kind", "a_rather_long_key_name_for_a_service_of_the_spec", "k1", "1", "-2", "true", "null", "~", "a/b", "~x", "日本", "a b",
        "x#y", "08", "1.5", "...x", "users", "web-1", "net.core.somaxconn", "LOG_LEVEL",
        // Keys that must be quoted.
        "a: b", "#x", "- x", "", "'q'", "<<", "---", "[k]",
    ];

    /// Where the keys that must be quoted start in `KEYS`.
    const KEY_MUST_QUOTE: usize = 22;

    #[derive(Clone, Debug)]
    enum Tree {
        Scalar(usize, u8),
        Map(Vec<(usize, u8, Tree)>, u32),
        Seq(Vec<(u8, Tree)>, u32),
    }

    /// Mostly scalars and keys every reader reads, now and then any.
    fn scalar_index() -> impl Strategy<Value = usize> {
        prop_oneof![12 => 0..ODD_SPELLINGS, 1 => 0..SCALARS.len()]
    }

    fn key_index() -> impl Strategy<Value = usize> {
        prop_oneof![12 => 0..KEY_MUST_QUOTE, 1 => 0..KEYS.len()]
    }

    /// The entries of a mapping, their keys made distinct unless `layout` asks for
    /// duplicates.
    fn entries(value: impl Strategy<Value = Tree>, sizes: Range<usize>) -> impl Strategy<Value = (Vec<(usize, u8, Tree)>, u32)> {
        (prop::collection::vec((key_index(), any::<u8>(), value), sizes), any::<u32>()).prop_map(|(mut entries, layout)| {
            if layout & 1 << 30 == 0 {
                let mut seen = std::collections::HashSet::new();
                entries.retain(|(key, _, _)| seen.insert(*key));
            }
            (entries, layout)
        })
    }

    fn tree() -> impl Strategy<Value = Tree> {
        let leaf = (scalar_index(), any::<u8>()).prop_map(|(i, style)| Tree::Scalar(i, style));
        leaf.prop_recursive(5, 80, 6, |inner| {
            prop_oneof![
                entries(inner.clone(), 0..6).prop_map(|(e, l)| Tree::Map(e, l)),
                (prop::collection::vec((any::<u8>(), inner), 0..6), any::<u32>()).prop_map(|(e, l)| Tree::Seq(e, l)),
            ]
        })
    }

    /// A document: a mapping at its root, the way it starts, and whether it uses the
    /// long values (keys near the parser's lookahead, runs of comments).
    fn document() -> impl Strategy<Value = (Vec<(usize, u8, Tree)>, u32, u8)> {
        (entries(tree(), 1..6), any::<u8>()).prop_map(|((entries, layout), extra)| (entries, layout, extra))
    }

    /// The scalar `text` written plain, single-quoted or double-quoted (with escapes);
    /// one that must be quoted is written plain once in eight times.
    fn write_scalar(out: &mut String, text: &str, must_quote: bool, style: u8) {
        let quoting = if must_quote && !style.is_multiple_of(8) { 2 + (style >> 3) % 2 } else { style % 4 };
        match quoting {
            0 | 1 => out.push_str(text),
            2 => {
                out.push('\'');
                out.push_str(&text.replace('\'', "''"));
                out.push('\'');
            }
            _ => {
                out.push('"');
                for c in text.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        '\t' if style & 8 != 0 => out.push_str("\\t"),
                        '/' if style & 8 != 0 => out.push_str("\\/"),
                        c if !c.is_ascii() && style & 16 != 0 => out.push_str(&format!("\\u{:04x}", c as u32)),
                        c if !c.is_ascii() && style & 32 != 0 => out.push_str(&format!("\\U{:08X}", c as u32)),
                        ' ' if style & 64 != 0 => out.push_str("\\x20"),
                        c => out.push(c),
                    }
                }
                out.push('"');
            }
        }
    }

    fn spaces(n: u32) -> String {
        " ".repeat(n as usize)
    }

    fn comment(out: &mut String, bits: u32, indent: usize) {
        if bits & 1 != 0 {
            out.push_str(&format!("{}# note: a #comment, with 'quotes' and: colons\n", " ".repeat(indent + (bits as usize >> 1) % 3)));
        }
        if bits & 2 != 0 {
            out.push('\n');
        }
    }

    /// Writes `tree` in flow style.
    fn flow(out: &mut String, tree: &Tree, indent: usize) {
        match tree {
            Tree::Scalar(i, style) => write_scalar(out, SCALARS[*i], *i >= MUST_QUOTE, *style),
            Tree::Map(entries, layout) => {
                out.push('{');
                out.push_str(&spaces(layout & 1));
                for (n, (key, style, value)) in entries.iter().enumerate() {
                    if n > 0 {
                        out.push_str(&spaces((layout >> 1) & 1));
                        out.push(',');
                        if (layout >> 2) & 3 == 0 {
                            out.push_str(if layout & 16 != 0 { " # c\n" } else { "\n" });
                            out.push_str(&" ".repeat(indent + 1 + (*layout as usize >> 5) % 3));
                        } else {
                            out.push(' ');
                        }
                    }
                    write_scalar(out, KEYS[*key], *key >= KEY_MUST_QUOTE, *style);
                    out.push_str(&spaces(u32::from(style & 128 != 0)));
                    out.push(':');
                    if style & 64 == 0 || !matches!(value, Tree::Scalar(..)) {
                        out.push(' ');
                        flow(out, value, indent);
                    } else {
                        out.push(' ');
                    }
                }
                if layout & 256 != 0 && !entries.is_empty() {
                    out.push(',');
                }
                out.push_str(&spaces((layout >> 9) & 1));
                out.push('}');
            }
            Tree::Seq(items, layout) => {
                out.push('[');
                out.push_str(&spaces(layout & 1));
                for (n, (_, item)) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                        if (layout >> 2) & 3 == 0 {
                            out.push_str(if layout & 16 != 0 { " # c\n" } else { "\n" });
                            out.push_str(&" ".repeat(indent + 1 + (*layout as usize >> 5) % 3));
                        } else {
                            out.push(' ');
                        }
                    }
                    flow(out, item, indent);
                }
                if layout & 256 != 0 && !items.is_empty() {
                    out.push(',');
                }
                out.push_str(&spaces((layout >> 9) & 1));
                out.push(']');
            }
        }
    }

    fn is_flow(tree: &Tree) -> bool {
        match tree {
            Tree::Scalar(..) => true,
            Tree::Map(entries, layout) => entries.is_empty() || layout % 5 == 0,
            Tree::Seq(items, layout) => items.is_empty() || layout % 5 == 0,
        }
    }

    /// The rest of a line after a value: trailing spaces, maybe a comment.
    fn line_end(out: &mut String, style: u8) {
        out.push_str(&spaces(u32::from(style & 4 != 0)));
        if style & 2 != 0 {
            out.push_str(" # trailing: 'c' #2");
        }
        out.push('\n');
    }

    /// Writes a block mapping whose keys sit at `indent`; the first key continues the
    /// current line when `inline` (an item of a block sequence).
    fn block_map(out: &mut String, entries: &[(usize, u8, Tree)], layout: u32, indent: usize, inline: bool) {
        for (n, (key, style, value)) in entries.iter().enumerate() {
            if n > 0 || !inline {
                comment(out, layout >> (n % 8), indent);
                out.push_str(&" ".repeat(indent));
            }
            write_scalar(out, KEYS[*key], *key >= KEY_MUST_QUOTE, *style);
            out.push_str(&spaces(u32::from(style & 128 != 0) * 2));
            out.push(':');
            nested(out, value, *style, indent, layout);
        }
    }

    /// The value after `key:` or `-` in the block collection at `indent`.
    fn nested(out: &mut String, value: &Tree, style: u8, indent: usize, layout: u32) {
        let width = 1 + (layout as usize >> 12) % 4;
        if is_flow(value) {
            if let Tree::Scalar(i, _) = value
                && SCALARS[*i].is_empty()
                && style & 64 != 0
            {
                line_end(out, style);
                return;
            }
            out.push_str(&" ".repeat(1 + usize::from(style & 32 != 0)));
            flow(out, value, indent);
            line_end(out, style);
            return;
        }
        if style & 2 != 0 {
            out.push_str(" # opens");
        }
        out.push('\n');
        if layout & 1 << 28 != 0 && style & 16 != 0 {
            out.push_str(&format!("{}# a long comment\n", " ".repeat(indent + 1)).repeat(20 + (layout as usize >> 29) * 3));
        }
        match value {
            Tree::Map(entries, inner) => block_map(out, entries, *inner, indent + width, false),
            Tree::Seq(items, inner) => {
                let indentless = inner & 1 << 20 != 0;
                block_seq(out, items, *inner, if indentless { indent } else { indent + width });
            }
            Tree::Scalar(..) => unreachable!(),
        }
    }

    fn block_seq(out: &mut String, items: &[(u8, Tree)], layout: u32, indent: usize) {
        for (n, (style, item)) in items.iter().enumerate() {
            comment(out, layout >> (n % 8), indent);
            out.push_str(&" ".repeat(indent));
            out.push('-');
            match item {
                Tree::Map(entries, inner) if !is_flow(item) && style & 1 != 0 => {
                    let gap = 1 + usize::from(style & 8 != 0) * 2;
                    out.push_str(&" ".repeat(gap));
                    block_map(out, entries, *inner, indent + 1 + gap, true);
                }
                Tree::Seq(items, inner) if !is_flow(item) && style & 1 != 0 => {
                    out.push(' ');
                    // `- - x`: the nested sequence's first dash continues the line.
                    let mut nested_out = String::new();
                    block_seq(&mut nested_out, items, *inner & !0xff, indent + 2);
                    out.push_str(nested_out.trim_start_matches(' '));
                }
                _ => nested(out, item, *style, indent, layout),
            }
        }
    }

    fn write_document(entries: &[(usize, u8, Tree)], layout: u32, extra: u8) -> String {
        let mut out = String::new();
        if layout & 1 << 24 != 0 {
            out.push_str("# A spec\n\n");
        }
        if extra % 16 == 1 {
            out.push_str(&"# a long comment\n".repeat(20 + usize::from(extra >> 4)));
        }
        if layout & 1 << 25 != 0 {
            out.push_str(if layout & 1 << 26 != 0 { "--- # the spec\n" } else { "---\n" });
        }
        if extra % 16 == 2 {
            let long = "k".repeat(880 + 10 * usize::from(extra >> 4));
            out.push_str(&format!("{long}: 1\n"));
        }
        block_map(&mut out, entries, layout, 0, false);
        if extra % 16 == 3 {
            out.push_str(&"# a trailing comment\n".repeat(20 + usize::from(extra >> 4)));
        }
        out
    }

    /// Near each budget limit (nodes, events, depth), the subset reader answers exactly
    /// where the direct pass does: one node, event or level more and both give up.
    #[test]
    fn the_subset_reader_stops_where_the_direct_pass_stops() {
        let agree = |text: String, answers: bool| {
            let source = SourceFile::new("limits.yaml", text);
            let direct = direct::parse(&source, &SPEC_LIMITS, parser_options(SPEC_LIMITS)).is_some();
            let subset = parse(&source, &SPEC_LIMITS).is_some();
            assert_eq!((direct, subset), (answers, answers), "{} bytes", source.text.len());
        };
        // Nodes: the root and two a key; the limit is 200,000 less a margin of 16.
        let keys = |n: usize| (0..n).map(|i| format!("k{i}: 1\n")).collect::<String>();
        agree(keys(99_991), true);
        agree(keys(99_992), false);
        // Events: four for the stream and document, two for the root, two a key, one a
        // comment; the limit is 500,000 less 16. Every twentieth line after the first
        // thousand keys is a key, the others comments.
        let commented = |lines: usize| {
            let mut text = keys(1_000);
            for i in 0..lines {
                text.push_str(&if i % 20 == 19 { format!("j{i}: 1\n") } else { "# a note\n".to_string() });
            }
            text
        };
        let events = |lines: usize| 6 + 2 * 1_000 + lines + lines / 20;
        let first_over = (470_000..).find(|&lines| events(lines) > 499_984).unwrap();
        agree(commented(first_over - 1), true);
        agree(commented(first_over), false);
        // Depth: the limit is 32 less 2 levels.
        let nested = |depth: usize| (0..depth).map(|d| format!("{}k:\n", " ".repeat(d))).collect::<String>() + &" ".repeat(depth) + "k: 1\n";
        agree(nested(29), true);
        agree(nested(30), false);
    }

    /// Wherever the subset reader answers on a generated text, it gives the direct
    /// pass's value and spans, recorded in the same order; and it answers on a fair
    /// share of them. The texts mix block and flow styles, quoting, comments, blank
    /// lines, indentation widths, sequences at their key's indentation, long keys and
    /// runs of comments near the parser's limits, and scalars that look like numbers,
    /// booleans, nulls or indicators.
    #[test]
    fn the_subset_reader_agrees_with_the_direct_pass_on_generated_yaml() {
        assert_eq!((SCALARS[ODD_SPELLINGS], SCALARS[MUST_QUOTE], KEYS[KEY_MUST_QUOTE]), ("08", "a #b", "a: b"));
        let answered = Cell::new(0usize);
        let cases = 3000;
        let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
        runner
            .run(&document(), |(entries, layout, extra)| {
                let text = write_document(&entries, layout, extra);
                let source = SourceFile::new("generated.yaml", text.clone());
                for limits in [SPEC_LIMITS, FOREIGN_LIMITS] {
                    let Some((value, spans)) = parse(&source, &limits) else { continue };
                    answered.set(answered.get() + 1);
                    let direct = direct::parse(&source, &limits, parser_options(limits));
                    prop_assert!(direct.is_some(), "the direct pass gives up on:\n{text}");
                    let (expected, expected_spans) = direct.unwrap();
                    prop_assert_eq!(&value, &expected, "{}", text);
                    prop_assert_eq!(serde_json::to_string(&value).unwrap(), serde_json::to_string(&expected).unwrap(), "{}", text);
                    let recorded = |spans: &SpanMap| spans.iter().map(|(p, n)| (p.to_string(), n.key.clone(), n.value.clone())).collect::<Vec<_>>();
                    prop_assert_eq!(recorded(&spans), recorded(&expected_spans), "{}", text);
                }
                Ok(())
            })
            .unwrap();
        // Most texts hold something only the other paths read (an odd number spelling,
        // an unquoted indicator, a long run of comments), by design.
        assert!(answered.get() > cases as usize / 4, "the subset reader answered {} of {} times", answered.get(), 2 * cases);
    }
}
