//! Environment variables as a deployment sets them: one variable with where it was
//! written, `KEY=value` env files, and `$VAR` / `${VAR:-default}` references.

use std::ops::Range;

use crate::import::FileId;

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

/// Environment references in a value: `${VAR:-x}` / `${VAR-x}` / `${VAR:=x}` take their
/// default; `$VAR` / `${VAR}` are unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interpolated {
    /// The text with defaults substituted, when every reference had one.
    pub text: Option<String>,
    /// Variables whose default was used.
    pub defaulted: Vec<String>,
    /// Variables with no default (the value is unknown).
    pub unknown: Vec<String>,
}

/// Resolves `$VAR` references in a value by their defaults only.
pub fn interpolate(value: &str) -> Interpolated {
    let mut out = String::new();
    let mut result = Interpolated::default();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            // `$$` is a literal dollar in compose files.
            out.push('$');
            rest = stripped;
            continue;
        }
        if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                result.unknown.push(body.to_string());
                rest = "";
                break;
            };
            let inner = &body[..end];
            let (name, default) = match inner.find([':', '-', '=', '?', '+']) {
                Some(p) => {
                    let op = inner[p..].trim_start_matches(':');
                    let default = op.strip_prefix('-').or_else(|| op.strip_prefix('='));
                    (&inner[..p], default)
                }
                None => (inner, None),
            };
            match default {
                Some(d) => {
                    out.push_str(d);
                    result.defaulted.push(name.to_string());
                }
                None => result.unknown.push(name.to_string()),
            }
            rest = &body[end + 1..];
        } else {
            let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            if end == 0 {
                out.push('$');
            } else {
                result.unknown.push(after[..end].to_string());
            }
            rest = &after[end..];
        }
    }
    out.push_str(rest);
    if result.unknown.is_empty() {
        result.text = Some(out);
    }
    result
}
