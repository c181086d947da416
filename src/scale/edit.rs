//! Comment-preserving edits of a spec's YAML text: a changed scalar is replaced at the
//! span the loader recorded for it, a missing key is inserted into its mapping in the
//! mapping's own style (a `{ flow, mapping }` gets `, key: value` before its brace; a
//! block mapping gets a new line at its children's indentation after its last child).
//! Everything else in the file - comments, blank lines, quoting, key order - stays,
//! except that a trailing comment stating a number or formula about a changed value is
//! marked with the old value (`# was 5; = RAILS_MAX_THREADS`). New lines take the
//! file's line ending (CRLF stays CRLF).
//!
//! The edited text is read back before it is returned: it must hold exactly the
//! changes and nothing else. A value written once and shared through a YAML anchor
//! (`&defaults` ... `<<: *defaults`) would change every service that shares it, so
//! such an edit is refused with the paths it would also change rather than written.

use serde_json::Value;

use crate::load::yaml::SpanMap;
use crate::source::SourceFile;

/// One change: the JSON pointer of a scalar and its new value.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub pointer: String,
    pub value: Value,
}

/// A key to add below a written mapping: the keys on the way down, and its value.
type NewKey = (Vec<String>, Value);

/// Why an edit could not be made in the text: what went wrong, and the byte offset in
/// the original text it is about, when there is one.
#[derive(Debug)]
pub struct EditError(pub String, pub Option<usize>);

impl EditError {
    fn new(message: String) -> Self {
        EditError(message, None)
    }
}

/// How a scalar is written: integers plainly, other numbers with the fewest digits,
/// strings plainly when YAML reads them back as the same string, else double-quoted.
pub fn scalar_text(value: &Value) -> String {
    match value {
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(u), _) => u.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            _ => n.to_string(),
        },
        Value::String(s) if plain_is_safe(s) => s.clone(),
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn plain_is_safe(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c.is_ascii_digit())
        && !matches!(s, "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n" | "~")
        && s.parse::<f64>().is_err()
}

/// A key as written in YAML: plain when safe, else double-quoted.
fn key_text(key: &str) -> String {
    if plain_is_safe(key) { key.to_string() } else { serde_json::to_string(key).unwrap_or_default() }
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// Applies the changes to `text`, whose spans are `spans`; returns the new text, once
/// it reads back as the original with exactly these changes.
pub fn apply(text: &str, spans: &SpanMap, changes: &[Change]) -> Result<String, EditError> {
    let edited = splice(text, spans, changes)?;
    verify(text, &edited, spans, changes)?;
    Ok(edited)
}

/// The edits, made from the end of the file backwards so earlier spans stay valid.
fn splice(text: &str, spans: &SpanMap, changes: &[Change]) -> Result<String, EditError> {
    // (start, end, replacement), applied back to front.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    // Insertions grouped by the mapping they go into, so two new keys of one mapping
    // land together in one edit.
    let mut inserts: Vec<(String, Vec<NewKey>)> = Vec::new();
    // Trailing comments beside changed values: the comment's `#` and (key, old text).
    let mut commented: Vec<(usize, Vec<(String, String)>)> = Vec::new();
    for change in changes {
        if let Some(node) = spans.get(&change.pointer) {
            let range = node.value.clone();
            let current = text.get(range.clone()).ok_or_else(|| EditError::new(format!("no text at {}", change.pointer)))?;
            // Inside a collection that is an alias (`uses: *shared`) the value is the
            // anchor's text: the change can only be made there, by the change of the
            // service that writes the anchor (the read-back then finds both), never by
            // writing over the alias.
            let parent = change.pointer.rsplit_once('/').map_or("", |(p, _)| p);
            if current.starts_with('*') && spans.get(parent).is_some_and(|p| p.value == range) {
                continue;
            }
            edits.push((range.start, range.end, replacement_keeping_quotes(current, &change.value)));
            if let Some(hash) = trailing_comment(text, range.end) {
                let key = change.pointer.rsplit('/').next().map(unescape).unwrap_or_default();
                match commented.iter_mut().find(|(h, _)| *h == hash) {
                    Some((_, olds)) => olds.push((key, current.to_string())),
                    None => commented.push((hash, vec![(key, current.to_string())])),
                }
            }
            continue;
        }
        // The deepest written ancestor, and the keys still to create under it.
        let segments: Vec<&str> = change.pointer.split('/').skip(1).collect();
        let mut depth = segments.len();
        while depth > 0 {
            let parent = pointer_of(&segments[..depth - 1]);
            if spans.get(&parent).is_some() || parent.is_empty() {
                break;
            }
            depth -= 1;
        }
        let parent = pointer_of(&segments[..depth.saturating_sub(1)]);
        let rest: Vec<String> = segments[depth.saturating_sub(1)..].iter().map(|s| unescape(s)).collect();
        match inserts.iter_mut().find(|(p, _)| *p == parent) {
            Some((_, list)) => list.push((rest, change.value.clone())),
            None => inserts.push((parent, vec![(rest, change.value.clone())])),
        }
    }
    for (parent, keys) in inserts {
        edits.push(insertion(text, spans, &parent, &keys)?);
    }
    for (hash, olds) in commented {
        if let Some(mark) = stale_comment_mark(text, hash, &olds) {
            edits.push((hash + 1, hash + 1, mark));
        }
    }
    edits.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
    let mut out = text.to_string();
    for (start, end, replacement) in edits {
        out.replace_range(start..end, &replacement);
    }
    Ok(out)
}

/// The `#` of the comment that ends the line a value ends on (quotes skipped: a `#`
/// inside a quoted string is text).
fn trailing_comment(text: &str, value_end: usize) -> Option<usize> {
    let line_end = text[value_end..].find('\n').map_or(text.len(), |i| value_end + i);
    let mut quote: Option<char> = None;
    let mut previous = text[..value_end].chars().next_back().unwrap_or(' ');
    for (i, c) in text[value_end..line_end].char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && previous.is_whitespace() => return Some(value_end + i),
            None => {}
        }
        previous = c;
    }
    None
}

/// The mark for a trailing comment that states a number or a formula about a value
/// that changed (`pool: 5  # = RAILS_MAX_THREADS` once the pool is 8 no longer holds):
/// ` was 5;` put at its start, so the comment keeps its words and says what they were
/// about. A comment that only names the setting (`# WEB_CONCURRENCY`) still holds and
/// is left alone, and so is one already marked.
fn stale_comment_mark(text: &str, hash: usize, olds: &[(String, String)]) -> Option<String> {
    let line_end = text[hash..].find('\n').map_or(text.len(), |i| hash + i);
    let comment = text[hash + 1..line_end].trim();
    let states = comment.chars().any(|c| c.is_ascii_digit() || matches!(c, '=' | '*' | '+' | '<' | '>')) || comment.contains(" x ");
    if !states || comment.starts_with("was ") {
        return None;
    }
    let line_start = text[..hash].rfind('\n').map_or(0, |i| i + 1);
    let one_value_line = olds.len() == 1 && !text[line_start..hash].contains(['{', '[']);
    let was = if one_value_line {
        olds[0].1.clone()
    } else {
        olds.iter().map(|(key, old)| format!("{key} {old}")).collect::<Vec<_>>().join(", ")
    };
    let space = if text[hash + 1..line_end].starts_with(' ') { "" } else { " " };
    Some(format!(" was {was};{space}"))
}

fn pointer_of(segments: &[&str]) -> String {
    segments.iter().map(|s| format!("/{s}")).collect()
}

/// The new scalar, in the quotes the old one was written with.
fn replacement_keeping_quotes(current: &str, value: &Value) -> String {
    let plain = scalar_text(value);
    match (current.chars().next(), value) {
        (Some('"'), Value::String(s)) => serde_json::to_string(s).unwrap_or(plain),
        (Some('\''), Value::String(s)) => format!("'{}'", s.replace('\'', "''")),
        _ => plain,
    }
}

/// A nested value for keys below the written ancestor: `{ a: { b: 1 } }` in flow style.
fn flow_value(rest: &[String], value: &Value) -> String {
    match rest {
        [] | [_] => scalar_text(value),
        [_, tail @ ..] => format!("{{ {}: {} }}", key_text(&tail[0]), flow_value(tail, value)),
    }
}

/// The edit that inserts `keys` (each a path below `parent` and a value) into the
/// mapping at `parent`.
fn insertion(text: &str, spans: &SpanMap, parent: &str, keys: &[NewKey]) -> Result<(usize, usize, String), EditError> {
    let entries: Vec<String> = keys.iter().map(|(rest, value)| format!("{}: {}", key_text(&rest[0]), flow_value(rest, value))).collect();
    let joined = entries.join(", ");
    let node = spans.get(parent).ok_or_else(|| EditError::new(format!("no mapping at {parent:?} to add {joined} to")))?;
    let start = node.value.start;
    let prefix = format!("{parent}/");
    // The mapping's own entries: a key merged in from an anchor (`<<: *defaults`) is
    // recorded where the anchor is written, before this mapping.
    let prefix = prefix.as_str();
    let own = || spans.iter().filter(move |(p, n)| p.starts_with(prefix) && n.key.as_ref().map_or(n.value.start, |k| k.start) >= start);
    if text[start..].starts_with('{') {
        // Flow mapping: after its last entry, before its closing brace.
        let close = flow_close(text, start).ok_or_else(|| EditError(format!("the mapping at {parent} has no closing brace"), Some(start)))?;
        let inner = &text[start + 1..close];
        if inner.trim().is_empty() {
            return Ok((start + 1, close, format!(" {joined} ")));
        }
        let content_end = flow_content_end(text, start + 1, close);
        if text[..content_end].ends_with(',') {
            // A trailing comma, as a flow mapping written one entry per line has: a new
            // line in the same style, after the last entry's line and its comment.
            let line_start = text[..content_end].rfind('\n').map_or(0, |i| i + 1);
            let indent: String = text[line_start..].chars().take_while(|c| *c == ' ').collect();
            if inner.contains('\n') {
                let line_end = content_end + text[content_end..close].find('\n').unwrap_or(close - content_end);
                let (at, newline) = if text[..line_end].ends_with('\r') { (line_end - 1, "\r\n") } else { (line_end, "\n") };
                let lines: String = entries.iter().map(|e| format!("{newline}{indent}{e},")).collect();
                return Ok((at, at, lines));
            }
            return Ok((content_end, content_end, format!(" {joined},")));
        }
        return Ok((content_end, content_end, format!(", {joined}")));
    }
    // Block mapping: a new line at its children's indentation, after the end of its
    // last entry (a flow value's closing bracket, a trailing comment).
    let first_child = own().filter(|(p, _)| !p[prefix.len()..].contains('/')).filter_map(|(_, n)| n.key.as_ref().map(|k| k.start)).min();
    let Some(first_child) = first_child else {
        return Err(EditError(format!("cannot add {joined} to the mapping at {parent}: it has no entry of its own to line the new one up with"), Some(start)));
    };
    let last_end = own().map(|(_, n)| value_end(text, &n.value)).max().unwrap_or(start);
    let line_start = text[..first_child].rfind('\n').map_or(0, |i| i + 1);
    let lead = &text[line_start..first_child];
    let list_item_lead = lead.chars().all(|c| c == ' ' || c == '-') && !lead.contains("--") && (lead.is_empty() || lead.ends_with(' '));
    if !list_item_lead {
        return Err(EditError(format!("cannot add {joined} to the mapping at {parent}: its first key shares a line with something else"), Some(first_child)));
    }
    // A mapping that is a list item (`- path: /`) lines its keys up after the dash.
    let indent = " ".repeat(lead.chars().count());
    // The end of the line the last entry ends on (its comment stays with it).
    let last = last_end.max(1) - 1;
    let line_end = text[last..].find('\n').map_or(text.len(), |i| last + i);
    let (at, newline) = if text[..line_end].ends_with('\r') { (line_end - 1, "\r\n") } else { (line_end, "\n") };
    let insertion: String = entries.iter().map(|entry| format!("{newline}{indent}{entry}")).collect();
    Ok((at, at, insertion))
}

/// The end of the last entry of a flow collection whose text runs from `from` to its
/// closing bracket at `close`: trailing blanks and comments are not part of it.
fn flow_content_end(text: &str, from: usize, close: usize) -> usize {
    let mut end = from;
    let mut line_start = from;
    for line in text[from..close].split_inclusive('\n') {
        let code = match trailing_comment(line, 0) {
            Some(hash) => &line[..hash],
            None => line,
        };
        if !code.trim().is_empty() {
            end = line_start + code.trim_end().len();
        }
        line_start += line.len();
    }
    end
}

/// Where a value's text ends: past the closing bracket of a flow collection (whose
/// recorded span may stop at its last entry), else where the span ends.
fn value_end(text: &str, value: &std::ops::Range<usize>) -> usize {
    match text.as_bytes().get(value.start) {
        Some(b'{' | b'[') => flow_close(text, value.start).map_or(value.end, |close| close + 1).max(value.end),
        _ => value.end,
    }
}

/// The offset of the bracket that closes the flow collection opened at `open`; quoted
/// strings and comments are skipped.
fn flow_close(text: &str, open: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = open;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' => {
                i += 1;
                while i < bytes.len() && !(bytes[i] == b'\'' && bytes.get(i + 1) != Some(&b'\'')) {
                    i += if bytes[i] == b'\'' { 2 } else { 1 };
                }
            }
            b'#' if i > 0 && bytes[i - 1].is_ascii_whitespace() => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Reads the edited text back: it must hold the original with exactly the changes. A
/// difference anywhere else (a value shared through an anchor, a key that landed in
/// the wrong mapping) refuses the edit, naming what would have changed.
fn verify(original: &str, edited: &str, spans: &SpanMap, changes: &[Change]) -> Result<(), EditError> {
    let read = |text: &str| crate::load::yaml::parse(&SourceFile::new("capacity.yaml", text.to_string())).map(|(value, _)| value);
    let Ok(mut expected) = read(original) else { return Ok(()) };
    for change in changes {
        set_pointer(&mut expected, &change.pointer, change.value.clone());
    }
    let at = |pointer: &str| spans.closest(pointer).map(|(_, n)| n.value.start);
    let first_at = changes.first().and_then(|c| at(&c.pointer));
    let got = read(edited).map_err(|e| EditError(format!("the edited text would not read as YAML ({})", e.message), first_at))?;
    let mut differing = Vec::new();
    differences(&expected, &got, String::new(), &mut differing);
    if differing.is_empty() {
        return Ok(());
    }
    let path = |p: &str| crate::load::path::from_pointer(p, &expected);
    let show = |v: &Option<Value>| v.as_ref().map_or("(not set)".to_string(), scalar_text);
    let stray: Vec<String> = differing
        .iter()
        .filter(|(p, _, _)| !changes.iter().any(|c| c.pointer == *p))
        .map(|(p, want, got)| format!("{} {} -> {}", path(p), show(want), show(got)))
        .collect();
    // The change behind the first difference: the one written at the same place (an
    // alias reads the anchor's text), else the one of the same setting, else the one
    // whose own value came out wrong.
    let (first, _, _) = &differing[0];
    let span = |p: &str| spans.get(p).map(|n| n.value.clone());
    let setting = |p: &str| p.rsplit('/').next().map(str::to_string);
    let change = changes
        .iter()
        .find(|c| span(first).is_some() && span(&c.pointer) == span(first))
        .or_else(|| changes.iter().find(|c| !c.pointer.starts_with("/load/") && setting(&c.pointer) == setting(first)))
        .or_else(|| changes.iter().find(|c| first.starts_with(&c.pointer) || c.pointer.starts_with(first.as_str())))
        .or(changes.first());
    let subject = change.map_or(String::new(), |c| format!("{} = {}", path(&c.pointer), scalar_text(&c.value)));
    let shared = original.contains('&') && original.contains('*');
    let message = if stray.is_empty() {
        let (p, want, got) = &differing[0];
        format!("writing {subject} into the text would read back as {} {} instead of {}", path(p), show(got), show(want))
    } else if shared {
        format!("writing {subject} into the text would also change {}: the value is written once and shared through a YAML anchor (`&name` ... `*name` or `<<: *name`)", stray.join(", "))
    } else {
        format!("writing {subject} into the text would also change {}", stray.join(", "))
    };
    Err(EditError(message, change.and_then(|c| at(&c.pointer)).or_else(|| at(first))))
}

/// Sets the value at a pointer, creating the mappings on the way (an index into a list
/// that has it steps into the list).
fn set_pointer(value: &mut Value, pointer: &str, new: Value) {
    let mut node = value;
    for segment in pointer.split('/').skip(1) {
        let index = segment.parse::<usize>().ok().filter(|i| node.as_array().is_some_and(|a| *i < a.len()));
        node = match (index, node) {
            (Some(i), Value::Array(items)) => &mut items[i],
            (_, node) => {
                if !node.is_object() {
                    *node = Value::Object(Default::default());
                }
                node.as_object_mut().expect("an object").entry(unescape(segment)).or_insert(Value::Null)
            }
        };
    }
    *node = new;
}

/// Every place two values differ: (pointer, expected, found).
fn differences(expected: &Value, found: &Value, pointer: String, out: &mut Vec<(String, Option<Value>, Option<Value>)>) {
    match (expected, found) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let child = format!("{pointer}/{}", crate::load::yaml::escape_segment(k));
                match b.get(k) {
                    Some(w) => differences(v, w, child, out),
                    None => out.push((child, Some(v.clone()), None)),
                }
            }
            for (k, w) in b {
                if !a.contains_key(k) {
                    out.push((format!("{pointer}/{}", crate::load::yaml::escape_segment(k)), None, Some(w.clone())));
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (v, w)) in a.iter().zip(b).enumerate() {
                differences(v, w, format!("{pointer}/{i}"), out);
            }
        }
        (a, b) if a == b || (a.is_number() && b.is_number() && a.as_f64() == b.as_f64()) => {}
        (a, b) => out.push((pointer, Some(a.clone()), Some(b.clone()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml;

    fn edit(text: &str, changes: &[(&str, Value)]) -> String {
        let (_, spans) = yaml::parse(&SourceFile::new("t.yaml", text.to_string())).expect("parses");
        let changes: Vec<Change> = changes.iter().map(|(p, v)| Change { pointer: p.to_string(), value: v.clone() }).collect();
        apply(text, &spans, &changes).expect("applies")
    }

    #[test]
    fn replaces_a_scalar_and_keeps_its_comment() {
        let text = "services:\n  web:\n    workers: 4   # WEB_CONCURRENCY\n    threads: 2\n";
        assert_eq!(
            edit(text, &[("/services/web/workers", Value::from(8))]),
            "services:\n  web:\n    workers: 8   # WEB_CONCURRENCY\n    threads: 2\n"
        );
    }

    #[test]
    fn inserts_into_a_block_mapping_at_its_indentation() {
        let text = "services:\n  db:\n    kind: postgres\n    databases: [a]   # the app's\n\n  cache:\n    kind: redis\n";
        assert_eq!(
            edit(text, &[("/services/db/max_connections", Value::from(200))]),
            "services:\n  db:\n    kind: postgres\n    databases: [a]   # the app's\n    max_connections: 200\n\n  cache:\n    kind: redis\n"
        );
    }

    #[test]
    fn inserts_into_a_flow_mapping_before_its_brace() {
        let text = "services:\n  web:\n    uses: { db: { pool: 20, min: 2 } }   # DB_POOL_MAX\n";
        assert_eq!(
            edit(text, &[("/services/web/uses/db/max_overflow", Value::from(5))]),
            "services:\n  web:\n    uses: { db: { pool: 20, min: 2, max_overflow: 5 } }   # DB_POOL_MAX\n"
        );
        let empty = "services:\n  pgb:\n    uses: { db: {} }\n";
        assert_eq!(edit(empty, &[("/services/pgb/uses/db/pool", Value::from(5))]), "services:\n  pgb:\n    uses: { db: { pool: 5 } }\n");
    }

    #[test]
    fn creates_missing_parents_as_flow_mappings() {
        let text = "machines:\n  lb:\n    count: 1\n";
        assert_eq!(
            edit(text, &[("/machines/lb/sysctl/net.core.somaxconn", Value::from(8192))]),
            "machines:\n  lb:\n    count: 1\n    sysctl: { net.core.somaxconn: 8192 }\n"
        );
    }

    #[test]
    fn a_comment_stating_the_old_value_is_marked_and_a_name_is_kept() {
        let text = "services:\n  web:\n    workers: 4   # WEB_CONCURRENCY\n    uses:\n      db: { pool: 5 }  # = RAILS_MAX_THREADS\n      cache: { pool: 5, min: 1 }  # pool_size = RAILS_MAX_THREADS\n    threads: 5 #'x' = 2 x cpus + 1\n    replicas: 2  # was 3; 3 x 2 = 6\n";
        let changed = edit(
            text,
            &[
                ("/services/web/workers", Value::from(5)),
                ("/services/web/uses/db/pool", Value::from(8)),
                ("/services/web/uses/cache/pool", Value::from(8)),
                ("/services/web/uses/cache/min", Value::from(2)),
                ("/services/web/threads", Value::from(6)),
                ("/services/web/replicas", Value::from(4)),
            ],
        );
        assert_eq!(
            changed,
            "services:\n  web:\n    workers: 5   # WEB_CONCURRENCY\n    uses:\n      db: { pool: 8 }  # was pool 5; = RAILS_MAX_THREADS\n      cache: { pool: 8, min: 2 }  # was pool 5, min 1; pool_size = RAILS_MAX_THREADS\n    threads: 6 # was 5; 'x' = 2 x cpus + 1\n    replicas: 4  # was 3; 3 x 2 = 6\n"
        );
    }

    #[test]
    fn a_hash_inside_quotes_is_not_a_comment() {
        let text = "a:\n  b: 1  # 1 = one\n  c: \"x #1\"\n";
        assert_eq!(edit(text, &[("/a/c", Value::from("y #2"))]), "a:\n  b: 1  # 1 = one\n  c: \"y #2\"\n");
        assert_eq!(edit(text, &[("/a/b", Value::from(2))]), "a:\n  b: 2  # was 1; 1 = one\n  c: \"x #1\"\n");
    }

    #[test]
    fn a_file_without_a_final_newline_still_gets_its_key() {
        let text = "load:\n  rps: 80";
        assert_eq!(edit(text, &[("/load/concurrent_users", Value::from(400))]), "load:\n  rps: 80\n  concurrent_users: 400");
    }

    fn refusal(text: &str, changes: &[(&str, Value)]) -> String {
        let (_, spans) = yaml::parse(&SourceFile::new("t.yaml", text.to_string())).expect("parses");
        let changes: Vec<Change> = changes.iter().map(|(p, v)| Change { pointer: p.to_string(), value: v.clone() }).collect();
        apply(text, &spans, &changes).expect_err("the edit is refused").0
    }

    #[test]
    fn a_crlf_file_gets_crlf_lines() {
        let text = "load:\r\n  rps: 80\r\nservices:\r\n  db:\r\n    kind: postgres\r\n";
        assert_eq!(
            edit(text, &[("/load/rps", Value::from(160)), ("/services/db/max_connections", Value::from(200))]),
            "load:\r\n  rps: 160\r\nservices:\r\n  db:\r\n    kind: postgres\r\n    max_connections: 200\r\n"
        );
    }

    #[test]
    fn a_key_goes_into_its_own_flow_mapping_not_a_nested_one() {
        let text = "services:\n  db: { kind: postgres, resources: { cpus: 2, memory: 4GiB } }\n";
        assert_eq!(
            edit(text, &[("/services/db/max_connections", Value::from(200))]),
            "services:\n  db: { kind: postgres, resources: { cpus: 2, memory: 4GiB }, max_connections: 200 }\n"
        );
        // One entry per line with a trailing comma: a new line in the same style.
        let multi = "services:\n  db: {\n    kind: postgres,\n    resources: { cpus: 2 },  # {not a brace}\n  }\n";
        assert_eq!(
            edit(multi, &[("/services/db/max_connections", Value::from(200))]),
            "services:\n  db: {\n    kind: postgres,\n    resources: { cpus: 2 },  # {not a brace}\n    max_connections: 200,\n  }\n"
        );
    }

    #[test]
    fn a_key_goes_after_a_flow_value_that_spans_lines() {
        let text = "services:\n  db:\n    kind: postgres\n    resources: {\n      cpus: 2,\n    }\n  web:\n    kind: puma\n";
        assert_eq!(
            edit(text, &[("/services/db/max_connections", Value::from(200))]),
            "services:\n  db:\n    kind: postgres\n    resources: {\n      cpus: 2,\n    }\n    max_connections: 200\n  web:\n    kind: puma\n"
        );
    }

    #[test]
    fn a_list_item_mapping_lines_its_new_key_up_after_the_dash() {
        let text = "locations:\n  - path: /\n    upstream: app\n  - path: /api\n";
        assert_eq!(edit(text, &[("/locations/1/burst", Value::from(20))]), "locations:\n  - path: /\n    upstream: app\n  - path: /api\n    burst: 20\n");
    }

    #[test]
    fn a_value_shared_through_an_anchor_is_not_edited() {
        let merged = "services:\n  web: &app\n    kind: gunicorn\n    replicas: 1\n  api:\n    <<: *app\n    port: 8001\n";
        let why = refusal(merged, &[("/services/web/replicas", Value::from(5))]);
        assert!(why.contains("would also change services.api.replicas 1 -> 5") && why.contains("anchor"), "{why}");
        let scalar = "a:\n  x: &n 1\n  y: *n\n";
        let why = refusal(scalar, &[("/a/x", Value::from(2))]);
        assert!(why.contains("would also change a.y 1 -> 2"), "{why}");
        // Overridden where it is merged, the anchor's value is the web service's alone.
        let overridden = "services:\n  web: &app\n    kind: gunicorn\n    replicas: 1\n  api:\n    <<: *app\n    replicas: 1\n";
        assert_eq!(
            edit(overridden, &[("/services/web/replicas", Value::from(5))]),
            "services:\n  web: &app\n    kind: gunicorn\n    replicas: 5\n  api:\n    <<: *app\n    replicas: 1\n"
        );
    }

    #[test]
    fn a_shared_collection_changed_alike_everywhere_is_edited_once_at_its_anchor() {
        let text = "services:\n  web:\n    uses: &uses\n      db: { pool: 1 }\n  api:\n    uses: *uses\n";
        assert_eq!(
            edit(text, &[("/services/web/uses/db/pool", Value::from(4)), ("/services/api/uses/db/pool", Value::from(4))]),
            "services:\n  web:\n    uses: &uses\n      db: { pool: 4 }\n  api:\n    uses: *uses\n"
        );
        let why = refusal(text, &[("/services/api/uses/db/pool", Value::from(4))]);
        assert!(why.contains("services.api.uses.db.pool"), "{why}");
    }
}
