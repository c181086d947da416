//! Per-format escaping for template values. A value that reaches a config file either
//! becomes a literal of that format or is rejected: a name with a newline, `;`, a
//! brace, a quote or `#` must never become a new directive, key or command.

use minijinja::{Environment, Error, ErrorKind};

fn reject(format: &str, value: &str, why: &str) -> Error {
    Error::new(ErrorKind::InvalidOperation, format!("refusing to write `{}` into {format}: {why}", value.escape_debug()))
}

/// nginx: a bare token (host, path, name). Rejects whitespace, quotes, `;`, braces,
/// `#`, `\` and `$` (variables).
pub fn nginx_token(value: &str) -> Result<String, Error> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, ';' | '{' | '}' | '"' | '\'' | '#' | '\\' | '$')) {
        return Err(reject("nginx.conf", value, "a token may not contain spaces, quotes, `;`, `{`, `}`, `#`, `\\` or `$`"));
    }
    Ok(value.to_string())
}

/// INI (PgBouncer): a value on one line without comment or section syntax.
pub fn ini_value(value: &str) -> Result<String, Error> {
    if value.chars().any(|c| c.is_control() || matches!(c, ';' | '#' | '[' | ']' | '=' | '"' | '\'')) {
        return Err(reject("an INI file", value, "values may not contain newlines, `;`, `#`, `=`, brackets or quotes"));
    }
    Ok(value.to_string())
}

/// A double-quoted string valid in YAML, TOML, Python and JSON alike. Beyond JSON's
/// escapes of C0 controls, DEL, C1 controls and U+2028/2029 are written `\uXXXX` too:
/// YAML 1.1 (docker-compose) folds a raw NEL or line separator into a space, and TOML
/// refuses a raw DEL; every one of those formats reads `\uXXXX` back as the character.
pub fn quoted(value: &str) -> Result<String, Error> {
    let json = serde_json::to_string(value).expect("a string serializes");
    if !json.chars().any(breaks_a_line) {
        return Ok(json);
    }
    Ok(json.chars().map(|c| if breaks_a_line(c) { format!("\\u{:04x}", c as u32) } else { c.to_string() }).collect())
}

/// YAML: a double-quoted scalar that every YAML reader (libyaml/Psych, PyYAML, Go
/// yaml, serde-saphyr) reads back as exactly `value`. `quoted` writes DEL, C1
/// controls and U+2028/2029 raw; YAML readers refuse DEL and C1 in the stream
/// (`control characters are not allowed`) and fold a raw NEL (U+0085) into a line
/// break, so those are written as `\uXXXX` escapes here, as are the BOM and the
/// non-characters U+FFFE/FFFF.
pub fn yaml_quoted(value: &str) -> Result<String, Error> {
    let json = serde_json::to_string(value).expect("a string serializes");
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if matches!(c, '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}') {
            out.push_str(&format!("\\u{:04X}", c as u32));
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Compose interpolates `$VAR` and `${VAR}` in every value: a literal `$` is `$$`.
pub fn compose_literal(value: &str) -> String {
    value.replace('$', "$$")
}

/// Ruby: a single-quoted literal (no interpolation).
pub fn ruby_str(value: &str) -> Result<String, Error> {
    Ok(format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'")))
}

/// POSIX shell: one single-quoted word.
pub fn shell_word(value: &str) -> Result<String, Error> {
    if !value.is_empty() && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | ',' | '@' | '%' | '+')) {
        return Ok(value.to_string());
    }
    Ok(format!("'{}'", value.replace('\'', "'\\''")))
}

/// redis.conf: one argument; quoted when it holds spaces, newlines rejected.
pub fn redis_arg(value: &str) -> Result<String, Error> {
    if value.chars().any(|c| c.is_control()) {
        return Err(reject("redis.conf", value, "arguments may not contain control characters"));
    }
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | '#')) {
        return Ok(serde_json::to_string(value).expect("a string serializes"));
    }
    Ok(value.to_string())
}

/// postgresql.conf: a single-quoted string, `'` and `\` doubled; a line break is refused
/// (the file is read line by line).
pub fn pg_string(value: &str) -> Result<String, Error> {
    if value.chars().any(breaks_a_line) {
        return Err(reject("postgresql.conf", value, "values may not contain control characters or line breaks"));
    }
    Ok(format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''")))
}

/// A plain identifier (env var names, service names): letters, digits, `_`, `-`, `.`.
pub fn ident(value: &str) -> Result<String, Error> {
    if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        return Err(reject("a config file", value, "names are letters, digits, `_`, `-` and `.`"));
    }
    Ok(value.to_string())
}

/// Characters that end a line in some format headroom writes, or that a format refuses
/// anywhere: C0 controls (newline, carriage return, NUL, ...), DEL, C1 controls (NEL ends
/// a line in YAML 1.1, which docker-compose reads) and the Unicode line and paragraph
/// separators.
pub fn breaks_a_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Text for a comment on one line, in every format headroom writes (`#` and `;`
/// comments): each character that could end the comment or that a format refuses is
/// written as a visible escape (`\n`, `\r`, `\t`, `\u{85}`), so a name can never end
/// its comment and start a directive, and nothing is dropped or changed silently.
pub fn comment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if breaks_a_line(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// A file name as text: valid UTF-8 as it is, every byte that is not written `\xNN`
/// (never replaced by U+FFFD, so two different names never look alike).
pub fn file_name(name: &std::ffi::OsStr) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let mut out = String::new();
        for chunk in name.as_bytes().utf8_chunks() {
            out.push_str(chunk.valid());
            for b in chunk.invalid() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
        out
    }
    #[cfg(not(unix))]
    {
        name.to_string_lossy().into_owned()
    }
}

/// The same as [`comment`]: a note for a comment, kept to one line.
pub fn one_line(text: &str) -> String {
    comment(text)
}

/// A byte count in the largest of a format's 1024-based units that divides it
/// (`units` = the spellings of GiB, MiB and KiB in that format; an empty spelling is a
/// unit the format lacks); a bare number otherwise.
pub fn binary_size(bytes: u64, units: [&str; 3]) -> String {
    const K: u64 = 1024;
    if bytes == 0 {
        return "0".into();
    }
    for (unit, factor) in units.iter().zip([K * K * K, K * K, K]) {
        if !unit.is_empty() && bytes.is_multiple_of(factor) {
            return format!("{}{unit}", bytes / factor);
        }
    }
    bytes.to_string()
}

/// Registers every filter on the template environment.
pub fn register(env: &mut Environment<'static>) {
    env.add_filter("nginx", |v: String| nginx_token(&v));
    env.add_filter("ini", |v: String| ini_value(&v));
    env.add_filter("quoted", |v: String| quoted(&v));
    env.add_filter("yaml", |v: String| yaml_quoted(&v));
    env.add_filter("ruby", |v: String| ruby_str(&v));
    env.add_filter("shell", |v: String| shell_word(&v));
    env.add_filter("redis", |v: String| redis_arg(&v));
    env.add_filter("ident", |v: String| ident(&v));
    env.add_filter("pgstring", |v: String| pg_string(&v));
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &[&str] = &["a\nb", "a;b", "a{b", "a}b", "a\"b", "a#b", "a'b", "a\r\nlisten 81"];

    #[test]
    fn hostile_values_never_become_syntax() {
        for v in HOSTILE {
            assert!(nginx_token(v).is_err(), "nginx accepted {v:?}");
            assert!(ident(v).is_err(), "ident accepted {v:?}");
            let q = quoted(v).unwrap();
            assert!(!q.contains('\n') && q.starts_with('"') && q.ends_with('"'));
            assert!(!ruby_str(v).unwrap()[1..].trim_end_matches('\'').contains("\\'") || v.contains('\''));
            let word = shell_word(v).unwrap();
            assert!(word.starts_with('\''), "shell word {word}");
        }
        for v in ["a\nb", "a;b", "a#b", "a=b"] {
            assert!(ini_value(v).is_err(), "ini accepted {v:?}");
        }
        assert_eq!(yaml_quoted("a\u{7f}b\u{85}c\u{2028}d\ne").unwrap(), "\"a\\u007Fb\\u0085c\\u2028d\\ne\"");
        assert_eq!(yaml_quoted("café ✓").unwrap(), "\"café ✓\"");
        assert_eq!(compose_literal("5$ ${X}"), "5$$ $${X}");
        assert!(redis_arg("a\nb").is_err());
        assert_eq!(quoted("a\u{85}b\u{2028}c\u{7f}d\u{9b}").unwrap(), "\"a\\u0085b\\u2028c\\u007fd\\u009b\"");
        assert_eq!(comment("a\nb\u{85}c\u{2029}"), "a\\nb\\u{85}c\\u{2029}");
        assert_eq!(redis_arg("a b").unwrap(), "\"a b\"");
    }
}
