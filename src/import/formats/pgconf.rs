//! Reader for postgresql.conf and `postgres -c key=value` arguments.
//!
//! Lines are `name = value` or `name value`, with `#` comments (outside quotes) and
//! single-quoted values (`''` or `\'` for a quote). Later lines win, as in PostgreSQL.
//! `include`, `include_if_exists` and `include_dir` are relative to the including
//! file's directory and nested at most 10 deep (CONF_FILE_MAX_DEPTH). Numbers read as
//! PostgreSQL reads them: memory units B, kB, MB, GB, TB (case-sensitive, 1024-based),
//! and a bare number is in the setting's base unit (8kB pages for shared_buffers, kB
//! for work_mem).

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::import::shared::conf::*;
use crate::import::{FileId, ImportBuilder};
use crate::spec::ByteSize;

/// PostgreSQL's CONF_FILE_MAX_DEPTH.
const MAX_INCLUDE_DEPTH: usize = 10;
/// Memory settings PostgreSQL keeps in 8kB pages (BLCKSZ).
const PAGE: u64 = 8192;

struct State {
    svc: String,
    stack: Vec<PathBuf>,
    budget: Budget,
}

/// Reads a postgresql.conf (or an include of it) into the postgres service that owns it.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let Some(svc) = claim_service(builder, file, "postgres", "postgresql.conf") else { return };
    let path = builder.sources[file].path.clone();
    let mut state = State { svc, stack: vec![canonical(&path)], budget: Budget::default() };
    parse_file(builder, file, &mut state);
}

/// One `name = value` line: (name, value, name range, whole range), or a syntax error
/// (message, range).
type Line = Result<Option<(String, String, Range<usize>)>, (String, Range<usize>)>;

fn parse_line(line: &str, base: usize) -> Line {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    if i >= b.len() || b[i] == b'#' {
        return Ok(None);
    }
    let name_start = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'.' | b'$') || b[i] >= 0x80) {
        i += 1;
    }
    let end_of_line = base + line.trim_end().len();
    if i == name_start || b[name_start].is_ascii_digit() {
        let ch = line[name_start..].chars().next().unwrap_or(' ');
        return Err((format!("syntax error near `{}`: expected a setting name", ch.escape_debug()), base + name_start..end_of_line));
    }
    let name = line[name_start..i].to_ascii_lowercase();
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    if i < b.len() && b[i] == b'=' {
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
    }
    if i >= b.len() || b[i] == b'#' {
        return Err((format!("syntax error: `{name}` has no value"), base + name_start..end_of_line));
    }
    let mut value = String::new();
    if b[i] == b'\'' {
        let open = i;
        i += 1;
        loop {
            if i >= b.len() {
                return Err(("unterminated quoted string".into(), base + open..end_of_line));
            }
            match b[i] {
                b'\'' if b.get(i + 1) == Some(&b'\'') => {
                    value.push('\'');
                    i += 2;
                }
                b'\'' => {
                    i += 1;
                    break;
                }
                b'\\' if i + 1 < b.len() => {
                    let ch = line[i + 1..].chars().next().unwrap_or('\\');
                    value.push(match ch {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        other => other,
                    });
                    i += 1 + ch.len_utf8();
                }
                _ => {
                    let ch = line[i..].chars().next().unwrap_or(' ');
                    value.push(ch);
                    i += ch.len_utf8();
                }
            }
        }
    } else {
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'#' && b[i] != b'\'' {
            i += 1;
        }
        value = line[start..i].to_string();
    }
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    if i < b.len() && b[i] != b'#' {
        let rest: String = line[i..].trim_end().chars().take(20).collect();
        return Err((format!("syntax error near `{}`: one value per line (quote values with spaces)", rest.escape_debug()), base + name_start..end_of_line));
    }
    Ok(Some((name, value, base + name_start..end_of_line)))
}

fn parse_file(b: &mut ImportBuilder, file: FileId, st: &mut State) {
    let text = b.sources[file].text.clone();
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let base = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        match parse_line(line, base) {
            Ok(None) => {}
            Err((message, at)) => {
                b.unparsable(file, at, format!("postgresql.conf {message}; PostgreSQL refuses to start"), "write `name = value`, quoting values that have spaces");
            }
            Ok(Some((name, value, at))) => match name.as_str() {
                "include" | "include_if_exists" | "include_dir" => include(b, file, st, &name, &value, at),
                _ => {
                    apply_setting(b, &st.svc.clone(), &name, &value, file, at);
                }
            },
        }
    }
}

fn include(b: &mut ImportBuilder, file: FileId, st: &mut State, directive: &str, target: &str, at: Range<usize>) {
    if st.stack.len() > MAX_INCLUDE_DEPTH {
        b.unparsable(file, at, format!("{directive} `{target}`: includes nested deeper than {MAX_INCLUDE_DEPTH} levels; PostgreSQL refuses to start"), "flatten the includes");
        return;
    }
    let including = b.sources[file].path.clone();
    let root = st.stack.first().and_then(|p| p.parent()).map(PathBuf::from).unwrap_or_default();
    let paths: Vec<PathBuf> = if directive == "include_dir" {
        let dir = resolve_dir(&including, &root, target);
        let mut files: Vec<PathBuf> = dir
            .as_ref()
            .and_then(|d| std::fs::read_dir(d).ok())
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "conf") && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
                    .take(MAX_INCLUDED_FILES + 1)
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        if dir.is_none() {
            b.ignored(file, at, format!("include_dir `{target}`: no such directory next to {} (pass its files too)", including.display()));
            return;
        }
        files
    } else {
        let (found, _) = resolve_include(&including, &root, target);
        if found.is_empty() {
            if directive == "include" {
                b.ignored(file, at, format!("include `{target}`: no such file next to {} (pass it too)", including.display()));
            }
            return;
        }
        found.into_iter().take(1).collect()
    };
    for path in paths {
        let key = canonical(&path);
        if let Some(pos) = st.stack.iter().position(|p| *p == key) {
            let name = |p: &PathBuf| p.file_name().map_or(p.display().to_string(), |n| n.to_string_lossy().into_owned());
            let chain: Vec<String> = st.stack[pos..].iter().chain(std::iter::once(&key)).map(name).collect();
            b.unparsable(file, at.clone(), format!("include loop: {}", chain.join(" -> ")), "remove the include that leads back to a file already being read");
            continue;
        }
        let Some(id) = open_include(b, &mut st.budget, file, at.clone(), &path) else { continue };
        st.stack.push(key);
        parse_file(b, id, st);
        st.stack.pop();
    }
}

fn resolve_dir(including: &Path, root: &Path, target: &str) -> Option<PathBuf> {
    let t = Path::new(target);
    if t.is_absolute() {
        if t.is_dir() && canonical(including.parent().unwrap_or(Path::new("."))).starts_with(t.parent().unwrap_or(t)) {
            return Some(t.to_path_buf());
        }
        let name = t.file_name()?;
        return [including.parent().unwrap_or(Path::new("")).join(name), root.join(name)].into_iter().find(|p| p.is_dir());
    }
    [including.parent().unwrap_or(Path::new("")).join(t), root.join(t)].into_iter().find(|p| p.is_dir())
}

/// A number as PostgreSQL's parse_int/parse_real read it: decimal, 0x hex, fractions
/// (rounded), then an optional unit after optional spaces. Returns (number, unit).
fn split_number(text: &str) -> Option<(f64, &str)> {
    let text = text.trim();
    let (number, rest) = if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        let end = hex.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(hex.len());
        (i64::from_str_radix(&hex[..end], 16).ok()? as f64, &hex[end..])
    } else {
        let end = text
            .char_indices()
            .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || ((c == '-' || c == '+') && i == 0) || ((c == 'e' || c == 'E') && i > 0 && text[i + 1..].starts_with(|d: char| d.is_ascii_digit() || d == '-' || d == '+'))))
            .map_or(text.len(), |(i, _)| i);
        let n: f64 = text[..end].parse().ok()?;
        (n, &text[end..])
    };
    if !number.is_finite() {
        return None;
    }
    Some((number, rest.trim()))
}

/// A memory setting in bytes: units B, kB, MB, GB, TB (case-sensitive, 1024-based);
/// a bare number counts `base` bytes (8192 for shared_buffers, 1024 for work_mem).
/// The result is rounded to whole base units, as PostgreSQL stores it.
pub fn memory_bytes(text: &str, base: u64) -> Result<u64, String> {
    let (number, unit) = split_number(text).ok_or_else(|| format!("`{text}` is not a number"))?;
    let unit_bytes: u64 = match unit {
        "" => base,
        "B" => 1,
        "kB" => 1024,
        "MB" => 1024 * 1024,
        "GB" => 1024 * 1024 * 1024,
        "TB" => 1024 * 1024 * 1024 * 1024,
        other => return Err(format!("invalid unit `{other}`: valid memory units are B, kB, MB, GB and TB (case-sensitive)")),
    };
    if number < 0.0 {
        return Err(format!("`{text}` is negative"));
    }
    let units = (number * unit_bytes as f64 / base as f64).round();
    if units > (u64::MAX / base) as f64 {
        return Err(format!("`{text}` is too large"));
    }
    Ok(units as u64 * base)
}

/// An integer setting (no unit): decimal, 0x hex, fractions rounded.
fn integer(text: &str) -> Result<u64, String> {
    match split_number(text) {
        Some((n, "")) if (0.0..9.0e15).contains(&n) => Ok(n.round() as u64),
        Some((_, unit)) if !unit.is_empty() => Err(format!("`{text}`: this setting takes no unit")),
        _ => Err(format!("`{text}` is not a whole number")),
    }
}

/// Applies one PostgreSQL setting to a service. Returns false when not modelled.
pub fn apply_setting(builder: &mut ImportBuilder, service: &str, key: &str, value: &str, file: FileId, bytes: std::ops::Range<usize>) -> bool {
    let name = key.trim().to_ascii_lowercase();
    let value = value.trim();
    let value = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')).unwrap_or(value);
    let result = match name.as_str() {
        "max_connections" | "superuser_reserved_connections" | "reserved_connections" | "max_worker_processes" => integer(value).and_then(|n| {
            if name == "max_connections" && n == 0 {
                Err("max_connections must be at least 1".to_string())
            } else {
                Ok(json!(n))
            }
        }),
        "port" => integer(value).and_then(|n| if (1..=65535).contains(&n) { Ok(json!(n)) } else { Err(format!("port {n} is out of range")) }),
        "shared_buffers" => memory_bytes(value, PAGE).map(|n| json!(ByteSize::from_bytes(n).to_string())),
        "work_mem" => memory_bytes(value, 1024).map(|n| json!(ByteSize::from_bytes(n).to_string())),
        _ => return false,
    };
    match result {
        Ok(v) => builder.set(&p(&["services", service, &name]), v, file, bytes),
        Err(why) => builder.unparsable(file, bytes, format!("PostgreSQL rejects {name} = {value}: {why}"), format!("fix the value of {name}")),
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    fn read_text(text: &str) -> ImportBuilder {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("pg-test-does-not-exist/postgresql.conf", text.to_string()));
        read(&mut b, id);
        b
    }

    fn line(b: &ImportBuilder, path: &str) -> usize {
        b.origin_line(path)
    }

    fn errors(b: &ImportBuilder) -> Vec<String> {
        b.unparsable_lines()
    }

    #[test]
    fn reads_modelled_settings_with_units_and_lines() {
        let b = read_text(
            "# PostgreSQL configuration\nlisten_addresses = '*'\nmax_connections = 100\nmax_connections = 200        # later wins\nshared_buffers = 2GB\nwork_mem = 10MB\nsuperuser_reserved_connections 5\nreserved_connections = 2\nmax_worker_processes = 16\nport = 5433\neffective_cache_size = 6GB\n",
        );
        assert!(errors(&b).is_empty(), "{:?}", errors(&b));
        let s = b.get("services.postgres").unwrap();
        assert_eq!(s["kind"], json!("postgres"));
        assert_eq!(s["max_connections"], json!(200));
        assert_eq!(line(&b, "services.postgres.max_connections"), 4);
        assert_eq!(s["shared_buffers"], json!("2GiB"));
        assert_eq!(s["work_mem"], json!("10MiB"));
        assert_eq!(s["superuser_reserved_connections"], json!(5));
        assert_eq!(s["reserved_connections"], json!(2));
        assert_eq!(s["max_worker_processes"], json!(16));
        assert_eq!(s["port"], json!(5433));
        assert!(s.get("effective_cache_size").is_none());
    }

    #[test]
    fn bare_numbers_are_in_the_base_unit() {
        // shared_buffers in 8kB pages, work_mem in kB
        assert_eq!(memory_bytes("16384", PAGE), Ok(128 * 1024 * 1024));
        assert_eq!(memory_bytes("4096", 1024), Ok(4 * 1024 * 1024));
        assert_eq!(memory_bytes("128MB", PAGE), Ok(128 * 1024 * 1024));
        assert_eq!(memory_bytes("1.5GB", PAGE), Ok(1536 * 1024 * 1024));
        assert_eq!(memory_bytes("64kB", 1024), Ok(65536));
        assert_eq!(memory_bytes("100 kB", 1024), Ok(102_400));
        assert_eq!(memory_bytes("0x10", PAGE), Ok(16 * 8192));
        assert!(memory_bytes("128mb", PAGE).unwrap_err().contains("case-sensitive"));
        assert!(memory_bytes("lots", PAGE).is_err());
        let b = read_text("shared_buffers = 16384\nwork_mem = 4096\n");
        assert_eq!(b.get("services.postgres.shared_buffers"), Some(&json!("128MiB")));
        assert_eq!(b.get("services.postgres.work_mem"), Some(&json!("4MiB")));
    }

    #[test]
    fn quoting_and_comments() {
        let b = read_text("shared_buffers = '256 MB' # quoted with a space\nwork_mem='8MB'\nlog_line_prefix = '%m [%p] ''x'' # not a comment'\n");
        assert!(errors(&b).is_empty(), "{:?}", errors(&b));
        assert_eq!(b.get("services.postgres.shared_buffers"), Some(&json!("256MiB")));
        assert_eq!(b.get("services.postgres.work_mem"), Some(&json!("8MiB")));
    }

    #[test]
    fn syntax_and_value_errors_have_lines() {
        let b = read_text("max_connections = 100\nshared_buffers = 128 MB\nwork_mem = 4mb\nmax_connections =\nlog_line_prefix = 'oops\n= 5\nmax_connections = 10MB\n");
        let e = errors(&b);
        assert_eq!(e.len(), 6, "{e:?}");
        for (i, n) in [2, 3, 4, 5, 6, 7].iter().enumerate() {
            assert!(e[i].starts_with(&format!("{n} ")), "{e:?}");
        }
        assert_eq!(b.get("services.postgres.max_connections"), Some(&json!(100)));
    }

    #[test]
    fn apply_setting_for_command_arguments() {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("docker-compose.yml", "command: postgres -c max_connections=200\n".into()));
        assert!(apply_setting(&mut b, "db", "max_connections", "200", id, 20..40));
        assert!(apply_setting(&mut b, "db", "shared_buffers", "2GB", id, 20..40));
        assert!(!apply_setting(&mut b, "db", "effective_cache_size", "6GB", id, 20..40));
        assert_eq!(b.get("services.db.max_connections"), Some(&json!(200)));
        assert_eq!(b.get("services.db.shared_buffers"), Some(&json!("2GiB")));
    }

    #[test]
    fn includes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        std::fs::write(dir.path().join("postgresql.conf"), "max_connections = 100\ninclude_dir 'conf.d'\ninclude_if_exists 'missing.conf'\ninclude 'loop.conf'\n").unwrap();
        std::fs::write(dir.path().join("conf.d/01-conn.conf"), "max_connections = 300\n").unwrap();
        std::fs::write(dir.path().join("conf.d/02-mem.conf"), "\nshared_buffers = 1GB\n").unwrap();
        std::fs::write(dir.path().join("conf.d/.hidden.conf"), "max_connections = 1\n").unwrap();
        std::fs::write(dir.path().join("loop.conf"), "include 'postgresql.conf'\n").unwrap();
        let path = dir.path().join("postgresql.conf");
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new(&path, std::fs::read_to_string(&path).unwrap()));
        read(&mut b, id);
        assert_eq!(b.get("services.postgres.max_connections"), Some(&json!(300)));
        assert_eq!(b.get("services.postgres.shared_buffers"), Some(&json!("1GiB")));
        assert_eq!(line(&b, "services.postgres.shared_buffers"), 2);
        let e = errors(&b);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("include loop: postgresql.conf -> loop.conf -> postgresql.conf"), "{e:?}");
    }

    #[test]
    fn binary_is_an_error() {
        let b = read_text("max_connections = 1\n\u{0}\u{7}\u{0}");
        assert_eq!(errors(&b).len(), 1);
    }
}
