//! Comment-preserving edits of a spec's YAML text: a changed scalar is replaced at the
//! span the loader recorded for it, a missing key is inserted into its mapping in the
//! mapping's own style (a `{ flow, mapping }` gets `, key: value` before its brace; a
//! block mapping gets a new line at its children's indentation after its last child).
//! Everything else in the file - comments, blank lines, quoting, key order - stays,
//! except that a trailing comment stating a number or formula about a changed value is
//! marked with the old value (`# was 5; = RAILS_MAX_THREADS`).

use serde_json::Value;

use crate::load::yaml::SpanMap;

/// One change: the JSON pointer of a scalar and its new value.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub pointer: String,
    pub value: Value,
}

/// A key to add below a written mapping: the keys on the way down, and its value.
type NewKey = (Vec<String>, Value);

/// Why an edit could not be made in the text.
#[derive(Debug)]
pub struct EditError(pub String);

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

/// Applies the changes to `text`, whose spans are `spans`; returns the new text.
/// Changes are applied from the end of the file backwards so earlier spans stay valid.
pub fn apply(text: &str, spans: &SpanMap, changes: &[Change]) -> Result<String, EditError> {
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
            let current = text.get(range.clone()).ok_or_else(|| EditError(format!("no text at {}", change.pointer)))?;
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
    let node = spans.get(parent).ok_or_else(|| EditError(format!("no mapping at {parent:?} to add {} to", entries.join(", "))))?;
    let prefix = format!("{parent}/");
    let descendants_end = spans.iter().filter(|(p, _)| p.starts_with(&prefix)).map(|(_, n)| n.value.end).max();
    let value_text = text.get(node.value.start..).unwrap_or("");
    if value_text.starts_with('{') {
        // Flow mapping: before the closing brace, after the last entry. (The parser's
        // span of a flow mapping may stop short of its brace; the brace is the first
        // one after the last entry.)
        let from = descendants_end.unwrap_or(node.value.start + 1).max(node.value.start + 1);
        let close = from + text[from..].find('}').ok_or_else(|| EditError(format!("unclosed mapping at {parent}")))?;
        let inner = &text[node.value.start + 1..close];
        let joined = entries.join(", ");
        if inner.trim().is_empty() {
            return Ok((node.value.start + 1, close, format!(" {joined} ")));
        }
        let insert_at = node.value.start + 1 + inner.trim_end().len();
        return Ok((insert_at, insert_at, format!(", {joined}")));
    }
    // Block mapping: children's indentation, after the end of the last descendant.
    let mut child_key_starts: Vec<usize> = Vec::new();
    let mut last_end = node.value.start;
    for (pointer, spans) in spans.iter() {
        if !pointer.starts_with(&prefix) {
            continue;
        }
        last_end = last_end.max(spans.value.end);
        if !pointer[prefix.len()..].contains('/')
            && let Some(key) = &spans.key
        {
            child_key_starts.push(key.start);
        }
    }
    let Some(&first_child) = child_key_starts.iter().min() else {
        return Err(EditError(format!("cannot add {} to the empty mapping at {parent}", entries.join(", "))));
    };
    let line_start = text[..first_child].rfind('\n').map_or(0, |i| i + 1);
    let indent = &text[line_start..first_child];
    if !indent.chars().all(|c| c == ' ') {
        // A block mapping that starts on its parent's line (`- path: /`): one more key
        // in flow style would change its shape; refuse rather than guess.
        return Err(EditError(format!("cannot add {} to the mapping at {parent}: its first key shares a line", entries.join(", "))));
    }
    // The end of the line the last descendant ends on (its comment stays with it).
    let last = last_end.max(1) - 1;
    let line_end = text[last..].find('\n').map_or(text.len(), |i| last + i);
    let mut insertion = String::new();
    for entry in &entries {
        insertion.push('\n');
        insertion.push_str(indent);
        insertion.push_str(entry);
    }
    Ok((line_end, line_end, insertion))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::yaml;
    use crate::source::SourceFile;

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
}
