//! Environment variables as a deployment sets them: one variable with where it was
//! written, `KEY=value` env files, and `$VAR` / `${VAR:-default}` references.

use std::ops::Range;
use std::path::Path;

use crate::import::{FileId, ImportBuilder};
use crate::source::SourceFile;

/// One environment variable as written.
#[derive(Clone, Debug)]
pub struct EnvVar {
    pub name: String,
    /// None for `- NAME` (passed through from the host).
    pub value: Option<String>,
    pub file: FileId,
    /// The whole entry.
    pub bytes: Range<usize>,
}

/// Largest env file read.
const MAX_ENV_FILE_BYTES: u64 = 1024 * 1024;

/// Reads an env file (`.env`, compose `env_file:`) as a source of the run: its
/// variables with their places, or None when it is missing, too large or binary.
/// A file read before is not added twice.
pub fn read_env_file(builder: &mut ImportBuilder, path: &Path) -> Option<Vec<EnvVar>> {
    let known = builder.sources.iter().position(|s| s.path == path);
    let id = match known {
        Some(id) => id,
        None => {
            let text = match std::fs::metadata(path) {
                Ok(m) if m.is_file() && m.len() <= MAX_ENV_FILE_BYTES => std::fs::read_to_string(path).ok()?,
                _ => return None,
            };
            if text.contains('\0') {
                return None;
            }
            let id = builder.add_source(SourceFile::new(path, text));
            builder.read_as(id, "env file");
            id
        }
    };
    Some(parse_env_file(&builder.sources[id].text, id))
}

/// `KEY=value` lines of an env file (`export`, quotes and comments allowed).
pub fn parse_env_file(text: &str, file: FileId) -> Vec<EnvVar> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let body = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let Some((k, v)) = body.split_once('=') else { continue };
        let v = v.trim();
        let v = if v.len() >= 2 && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\''))) {
            v[1..v.len() - 1].to_string()
        } else {
            v.split(" #").next().unwrap_or("").trim().to_string()
        };
        let lead = line.len() - line.trim_start().len();
        out.push(EnvVar { name: k.trim().to_string(), value: Some(v), file, bytes: start + lead..start + lead + trimmed.len() });
    }
    out
}

/// Values `$VAR` references resolve to (a compose project's `.env`, a container's
/// environment), each with where it was set; a later entry wins over an earlier one.
#[derive(Clone, Debug, Default)]
pub struct Variables {
    vars: Vec<EnvVar>,
}

impl Variables {
    pub fn new(vars: Vec<EnvVar>) -> Self {
        Self { vars }
    }

    /// The entry that sets `name` (the last one), when any does with a value.
    pub fn get(&self, name: &str) -> Option<&EnvVar> {
        self.vars.iter().rev().find(|v| v.name == name && v.value.is_some())
    }

    /// The value of `name`, when set.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| v.value.as_deref())
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// These variables with `more` set after them (so `more` wins).
    pub fn with(&self, more: Vec<EnvVar>) -> Variables {
        let mut vars = self.vars.clone();
        vars.extend(more);
        Variables { vars }
    }
}

/// A value with its `$VAR` references resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interpolated {
    /// The text with every reference resolved, when each one could be.
    pub text: Option<String>,
    /// Variables whose default (`${VAR:-x}`) was used because they are not set.
    pub defaulted: Vec<String>,
    /// Variables whose value came from the variables given.
    pub set: Vec<String>,
    /// Variables with no value and no default (the value is unknown).
    pub unknown: Vec<String>,
}

/// Resolves `$VAR` references the way Docker Compose does: `$$` is a literal `$`;
/// `${VAR:-x}` takes `x` when VAR is unset or empty, `${VAR-x}` only when unset (`x`
/// may hold references itself); `${VAR:+x}` / `${VAR+x}` give `x` when it is set;
/// `${VAR:?msg}` / `${VAR?msg}`, `${VAR}` and `$VAR` need VAR set. Where Compose would
/// substitute an empty string for an unset variable, the value is unknown here.
pub fn interpolate(value: &str, vars: &Variables) -> Interpolated {
    let mut result = Interpolated::default();
    let text = expand(value, vars, &mut result, 0);
    if result.unknown.is_empty() {
        result.text = Some(text);
    }
    result.defaulted.dedup();
    result.set.dedup();
    result.unknown.dedup();
    result
}

/// Whether a variable names the host a process connects to (a database, pooler or
/// redis), and if so whether its value is a URL (`DATABASE_URL`) rather than a bare
/// host (`DB_HOST`). `pooler`: the process is a PgBouncer, whose images also read
/// `DATABASES_HOST` / `POSTGRESQL_HOST`.
pub fn host_variable(name: &str, pooler: bool) -> Option<bool> {
    let url = matches!(
        name,
        "DATABASE_URL" | "DB_URL" | "POSTGRES_URL" | "REDIS_URL" | "CACHE_URL" | "CELERY_BROKER_URL" | "BROKER_URL" | "CELERY_RESULT_BACKEND" | "REDIS_CACHE_URL" | "RQ_REDIS_URL" | "SIDEKIQ_REDIS_URL" | "REDIS_TLS_URL" | "CACHE_REDIS_URL" | "SESSION_REDIS_URL" | "VALKEY_URL"
    ) || ["_DATABASE_URL", "_REDIS_URL", "_SQL_ALCHEMY_CONN", "_BROKER_URL"].iter().any(|suffix| name.strip_suffix(suffix).is_some_and(|prefix| !prefix.is_empty()));
    let host = matches!(name, "DB_HOST" | "DATABASE_HOST" | "POSTGRES_HOST" | "PGHOST" | "DB_HOSTNAME" | "REDIS_HOST" | "CACHE_HOST" | "VALKEY_HOST" | "REDIS_CACHE_HOST")
        || (pooler && matches!(name, "DATABASES_HOST" | "POSTGRESQL_HOST"));
    (url || host).then_some(url)
}

/// Nesting of `${A:-${B:-...}}` followed at most.
const MAX_NESTING: usize = 8;

fn expand(value: &str, vars: &Variables, result: &mut Interpolated, depth: usize) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
            continue;
        }
        if let Some(body) = after.strip_prefix('{') {
            let Some(end) = closing_brace(body) else {
                result.unknown.push(body.to_string());
                return out;
            };
            out.push_str(&braced(&body[..end], vars, result, depth));
            rest = &body[end + 1..];
            continue;
        }
        let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        if end == 0 {
            out.push('$');
        } else {
            let name = &after[..end];
            match vars.value(name) {
                Some(v) => {
                    out.push_str(v);
                    result.set.push(name.to_string());
                }
                None => result.unknown.push(name.to_string()),
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The index of the `}` that closes a `${`, with nested `${...}` skipped.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return Some(i),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

/// The value of `${inner}`.
fn braced(inner: &str, vars: &Variables, result: &mut Interpolated, depth: usize) -> String {
    let split = inner.find([':', '-', '=', '?', '+']);
    let (name, op, arg) = match split {
        Some(p) => {
            let (colon, rest) = match inner[p..].strip_prefix(':') {
                Some(r) => (true, r),
                None => (false, &inner[p..]),
            };
            let op = rest.chars().next().unwrap_or('-');
            (&inner[..p], Some((colon, op)), rest.get(op.len_utf8()..).unwrap_or(""))
        }
        None => (inner, None, ""),
    };
    let value = vars.value(name);
    let present = |colon: bool| value.is_some_and(|v| !(colon && v.is_empty()));
    let nested = |result: &mut Interpolated| if depth < MAX_NESTING { expand(arg, vars, result, depth + 1) } else { arg.to_string() };
    match op {
        None | Some((_, '?')) => match value.filter(|v| !matches!(op, Some((true, _))) || !v.is_empty()) {
            Some(v) => {
                result.set.push(name.to_string());
                v.to_string()
            }
            None => {
                result.unknown.push(name.to_string());
                String::new()
            }
        },
        Some((colon, '-' | '=')) => {
            if present(colon) {
                result.set.push(name.to_string());
                value.unwrap_or_default().to_string()
            } else {
                result.defaulted.push(name.to_string());
                nested(result)
            }
        }
        Some((colon, '+')) => {
            if present(colon) {
                result.set.push(name.to_string());
                nested(result)
            } else {
                String::new()
            }
        }
        Some(_) => {
            result.unknown.push(name.to_string());
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn connection_variables_name_a_host_or_a_url() {
        assert_eq!(super::host_variable("VALKEY_URL", false), Some(true));
        assert_eq!(super::host_variable("DB_HOST", false), Some(false));
        assert_eq!(super::host_variable("POSTGRESQL_HOST", false), None);
        assert_eq!(super::host_variable("POSTGRESQL_HOST", true), Some(false));
        assert_eq!(super::host_variable("SECRET_KEY_BASE", false), None);
        // An app's own prefix (Redash's REDASH_DATABASE_URL), a cache beside the queue.
        assert_eq!(super::host_variable("REDASH_DATABASE_URL", false), Some(true));
        assert_eq!(super::host_variable("APP_REDIS_URL", false), Some(true));
        assert_eq!(super::host_variable("REDIS_CACHE_HOST", false), Some(false));
        assert_eq!(super::host_variable("_DATABASE_URL", false), None);
        assert_eq!(super::host_variable("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", false), Some(true));
    }

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Variables {
        Variables::new(pairs.iter().map(|(k, v)| EnvVar { name: k.to_string(), value: Some(v.to_string()), file: 0, bytes: 0..0 }).collect())
    }

    fn text(value: &str, v: &Variables) -> Option<String> {
        interpolate(value, v).text
    }

    #[test]
    fn compose_substitution_rules() {
        let v = vars(&[("SET", "8"), ("EMPTY", ""), ("TAG", "1.2")]);
        assert_eq!(text("${SET:-4}", &v).as_deref(), Some("8"));
        assert_eq!(text("${UNSET:-4}", &v).as_deref(), Some("4"));
        // `:-` takes the default for an empty value, `-` only for an unset one.
        assert_eq!(text("${EMPTY:-4}", &v).as_deref(), Some("4"));
        assert_eq!(text("${EMPTY-4}", &v).as_deref(), Some(""));
        assert_eq!(text("${UNSET-4}", &v).as_deref(), Some("4"));
        assert_eq!(text("${SET:+on}|${UNSET:+on}", &v).as_deref(), Some("on|"));
        assert_eq!(text("app:${TAG}", &v).as_deref(), Some("app:1.2"));
        assert_eq!(text("$SET-x", &v).as_deref(), Some("8-x"));
        assert_eq!(text("$$SET", &v).as_deref(), Some("$SET"));
        // Defaults may hold references.
        assert_eq!(text("${UNSET:-${SET}}", &v).as_deref(), Some("8"));
        assert_eq!(text("${UNSET:-${ALSO_UNSET:-x}}", &v).as_deref(), Some("x"));
        let i = interpolate("${REGISTRY}/app:${TAG:-latest}", &v);
        assert_eq!((i.text, i.unknown, i.set), (None, vec!["REGISTRY".to_string()], vec!["TAG".to_string()]));
        let i = interpolate("${UNSET:?must be set}", &v);
        assert_eq!(i.unknown, vec!["UNSET".to_string()]);
        // Never a panic on odd input.
        for odd in ["${", "${}", "$", "${:-}", "${A:-${B", "}}${", "${A:", "€${A-é}"] {
            let _ = interpolate(odd, &v);
        }
    }

    #[test]
    fn later_entries_win() {
        let v = Variables::new(vec![
            EnvVar { name: "A".into(), value: Some("1".into()), file: 0, bytes: 0..0 },
            EnvVar { name: "A".into(), value: Some("2".into()), file: 0, bytes: 0..0 },
            EnvVar { name: "A".into(), value: None, file: 0, bytes: 0..0 },
        ]);
        assert_eq!(v.value("A"), Some("2"));
    }
}
