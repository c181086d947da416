//! Reader for command lines: shell words, and gunicorn / puma / redis-server / postgres
//! / pgbouncer / job-runner arguments; railway.toml start commands. Also the small
//! helpers the other readers share (located assumptions, value spelling in spec units,
//! service names).

use std::ops::Range;

use serde_json::{Value, json};

use super::{ASSUMED, FileId, ImportBuilder, pgconf, redis_conf};
use crate::diag::{Diagnostic, Severity};
use crate::load;

/// One shell word and its byte range.
pub type Word = (String, Range<usize>);

/// Why a command line could not be split completely.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShellError {
    pub message: String,
    /// Byte range (relative to the text split) of the construct at fault.
    pub bytes: Range<usize>,
}

/// Splits a command line into words with their byte ranges in `text`.
pub fn shell_words(text: &str) -> Vec<(String, std::ops::Range<usize>)> {
    split(text).0
}

/// Splits a command line like a POSIX shell: single quotes are literal, double quotes
/// keep `\"`, `\\`, `\$` and `` \` `` escapes, a backslash outside quotes escapes the next
/// character (a backslash-newline joins lines), `#` at a word start begins a comment.
/// `$VAR` and `${VAR:-x}` stay as text. `;`, `&&`, `||`, `|` and `&` are words of their
/// own. An unterminated quote ends the last word at the end of the text and is
/// reported.
pub fn split(text: &str) -> (Vec<Word>, Option<ShellError>) {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut start: Option<usize> = None;
    let mut error = None;
    let mut chars = text.char_indices().peekable();
    let flush = |words: &mut Vec<Word>, current: &mut String, start: &mut Option<usize>, end: usize| {
        if let Some(s) = start.take() {
            words.push((std::mem::take(current), s..end));
        }
    };
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => flush(&mut words, &mut current, &mut start, i),
            '#' if start.is_none() => {
                // A comment runs to the end of the line.
                while let Some(&(_, n)) = chars.peek() {
                    if n == '\n' {
                        break;
                    }
                    chars.next();
                }
            }
            ';' | '&' | '|' => {
                flush(&mut words, &mut current, &mut start, i);
                let mut op = c.to_string();
                let mut end = i + c.len_utf8();
                if c != ';'
                    && let Some(&(j, n)) = chars.peek()
                    && n == c
                {
                    op.push(n);
                    end = j + n.len_utf8();
                    chars.next();
                }
                words.push((op, i..end));
            }
            '\\' => {
                start.get_or_insert(i);
                match chars.next() {
                    Some((_, '\n')) if current.is_empty() && start == Some(i) => start = None,
                    Some((_, '\n')) | None => {}
                    Some((_, n)) => current.push(n),
                }
            }
            '\'' => {
                start.get_or_insert(i);
                let mut closed = false;
                for (_, n) in chars.by_ref() {
                    if n == '\'' {
                        closed = true;
                        break;
                    }
                    current.push(n);
                }
                if !closed {
                    error.get_or_insert(ShellError { message: "unterminated single quote".into(), bytes: i..text.len() });
                }
            }
            '"' => {
                start.get_or_insert(i);
                let mut closed = false;
                while let Some((_, n)) = chars.next() {
                    match n {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.peek() {
                            Some(&(_, e)) if matches!(e, '"' | '\\' | '$' | '`') => {
                                current.push(e);
                                chars.next();
                            }
                            Some(&(_, '\n')) => {
                                chars.next();
                            }
                            _ => current.push('\\'),
                        },
                        n => current.push(n),
                    }
                }
                if !closed {
                    error.get_or_insert(ShellError { message: "unterminated double quote".into(), bytes: i..text.len() });
                }
            }
            c => {
                start.get_or_insert(i);
                current.push(c);
            }
        }
    }
    flush(&mut words, &mut current, &mut start, text.len());
    (words, error)
}

/// The byte offset in `text` where the characters of a scalar's value start, when the
/// value is written literally (plain, or quoted without escapes) inside `span`.
pub fn scalar_offset(text: &str, span: &Range<usize>, value: &str) -> Option<usize> {
    let raw = text.get(span.clone())?;
    if raw == value {
        return Some(span.start);
    }
    let quoted = raw.len() >= 2 && ((raw.starts_with('"') && raw.ends_with('"')) || (raw.starts_with('\'') && raw.ends_with('\'')));
    if quoted && &raw[1..raw.len() - 1] == value {
        return Some(span.start + 1);
    }
    // The span may cover more (a trailing comment, a block indicator): find the value.
    if !value.is_empty() && raw.matches(value).count() == 1 {
        return raw.find(value).map(|i| span.start + i);
    }
    None
}

/// Splits a command written as one scalar (`command: gunicorn ...`) whose text sits at
/// `span` in the file text. Word ranges point into the file; when the scalar is not
/// written literally (escapes, folding) every word points at the whole scalar.
pub fn words_in(file_text: &str, span: &Range<usize>, value: &str) -> (Vec<Word>, Option<ShellError>) {
    let (words, error) = split(value);
    match scalar_offset(file_text, span, value) {
        Some(offset) => {
            let shift = |r: Range<usize>| r.start + offset..r.end + offset;
            (
                words.into_iter().map(|(w, r)| (w, shift(r))).collect(),
                error.map(|e| ShellError { bytes: shift(e.bytes), ..e }),
            )
        }
        None => (
            words.into_iter().map(|(w, _)| (w, span.clone())).collect(),
            error.map(|e| ShellError { bytes: span.clone(), ..e }),
        ),
    }
}

/// A note that a value was assumed, located where the assumption applies.
pub fn assumed_at(builder: &mut ImportBuilder, file: FileId, bytes: Range<usize>, message: impl Into<String>, hint: impl Into<String>) {
    let span = builder.sources.get(file).map(|s| load::make_span(s, bytes));
    let mut d = Diagnostic::new(ASSUMED, Severity::Info, "", format!("assumed: {}", message.into())).at(span);
    d.fix = Some(hint.into());
    builder.diagnostics.push(d);
}

/// A spec service name (`[a-z0-9][a-z0-9-_]*`, at most 63) for a foreign name.
pub fn service_name(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' { c } else { '-' })
        .collect();
    while out.starts_with(['-', '_']) {
        out.remove(0);
    }
    out.truncate(63);
    if out.is_empty() { "service".into() } else { out }
}

/// The kind already set for a service.
pub fn kind_of_service(builder: &ImportBuilder, service: &str) -> Option<String> {
    builder.get(&format!("services.{service}.kind")).and_then(Value::as_str).map(str::to_string)
}

/// Sets the service's kind when it has none. True when the service is (now) of that
/// kind.
pub fn ensure_kind(builder: &mut ImportBuilder, service: &str, kind: &str, file: FileId, bytes: Range<usize>) -> bool {
    match kind_of_service(builder, service) {
        Some(existing) => existing == kind,
        None => {
            builder.set(&format!("services.{service}.kind"), json!(kind), file, bytes);
            true
        }
    }
}

/// The command-line flag (`--workers 8`) a value was read from, when it was: flags win
/// over config files, which win over environment defaults.
pub fn set_by_flag(builder: &ImportBuilder, path: &str) -> Option<String> {
    let origin = builder.origins.get(&load::path::to_pointer(path))?;
    let text = builder.sources.get(origin.file)?.text.get(origin.bytes.clone())?;
    text.starts_with('-').then(|| text.to_string())
}

/// The one service of a kind in the builder, else `fallback`.
pub fn default_service(builder: &ImportBuilder, kinds: &[&str], fallback: &str) -> String {
    let services = builder.value.get("services").and_then(Value::as_object);
    let matching: Vec<&String> = services
        .map(|s| s.iter().filter(|(_, v)| v.get("kind").and_then(Value::as_str).is_some_and(|k| kinds.contains(&k))).map(|(k, _)| k).collect())
        .unwrap_or_default();
    if matching.len() == 1 && !builder.has_service(fallback) {
        return matching[0].clone();
    }
    fallback.to_string()
}

/// A duration in spec units from seconds (`120` -> `120s`); None when not a number.
pub fn seconds(text: &str) -> Option<String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Some(format!("{n}s"));
    }
    let f: f64 = t.parse().ok()?;
    (f.is_finite() && f >= 0.0).then(|| {
        let ms = (f * 1000.0).round() as u64;
        if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
    })
}

/// A Go/compose style duration (`1m30s`, `500ms`, `10s`, `2h`; a bare number is seconds)
/// in spec units.
pub fn go_duration(text: &str) -> Option<String> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return seconds(t);
    }
    let mut total_ns: f64 = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_end == 0 {
            return None;
        }
        let number: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total_ns += number * factor;
        rest = &rest[unit_end..];
    }
    if !(0.0..=1e21).contains(&total_ns) {
        return None;
    }
    let ms = (total_ns / 1e6).round() as u64;
    Some(if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") })
}

/// A Docker-style size (`2048M`, `1g`, `1.5G`, `512m`, `1024k`, a bare number of bytes)
/// in spec units (`2048MiB`, `1GiB`, `1536MiB`).
pub fn docker_size(text: &str) -> Option<String> {
    let t = text.trim().to_ascii_lowercase();
    let num_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    if num_end == 0 {
        return None;
    }
    let number: f64 = t[..num_end].parse().ok()?;
    let unit = t[num_end..].trim();
    let scale: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    let bytes = number * scale as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 / 2.0 {
        return None;
    }
    let bytes = bytes.round() as u64;
    for (size, suffix) in [(1u64 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return Some(format!("{}{suffix}", bytes / size));
        }
    }
    Some(format!("{bytes}"))
}

/// A CPU count as a JSON number (`"2.0"` -> 2, `"0.5"` -> 0.5).
pub fn cpus(text: &str) -> Option<Value> {
    let f: f64 = text.trim().parse().ok()?;
    if !f.is_finite() || f < 0.0 {
        return None;
    }
    Some(if f.fract() == 0.0 && f < 1e15 { json!(f as u64) } else { json!(f) })
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

/// The program a command runs, by its words: one of `gunicorn`, `puma`, `redis`,
/// `sentinel`, `postgres`, `pgbouncer`, `nginx`, `sidekiq`, `celery`, `rq`,
/// `solid_queue`; and the index of its first argument. Wrappers (`exec`, `env
/// VAR=x`, `bundle exec`, `python -m`, `uv run`, `tini --`, entrypoint scripts,
/// `thrust`) are looked through.
pub fn classify(words: &[Word]) -> Option<(&'static str, usize)> {
    for segment in segments(words) {
        if let Some((kind, i)) = classify_segment(segment) {
            return Some((kind, i + segment_offset(words, segment)));
        }
    }
    None
}

fn segment_offset(words: &[Word], segment: &[Word]) -> usize {
    (segment.as_ptr() as usize - words.as_ptr() as usize) / std::mem::size_of::<Word>()
}

/// Command words split at `;`, `&&`, `||`, `|`, `&`.
fn segments(words: &[Word]) -> Vec<&[Word]> {
    words.split(|(w, _)| matches!(w.as_str(), ";" | "&&" | "||" | "|" | "&")).filter(|s| !s.is_empty()).collect()
}

fn base(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

fn classify_segment(words: &[Word]) -> Option<(&'static str, usize)> {
    let mut i = 0;
    while i < words.len() {
        let w = words[i].0.as_str();
        let b = base(w);
        let next = words.get(i + 1).map(|(n, _)| n.as_str());
        let is_assignment = w.split_once('=').is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !k.starts_with(|c: char| c.is_ascii_digit()));
        if is_assignment || matches!(b, "exec" | "env" | "nice" | "tini" | "dumb-init" | "--" | "ddtrace-run" | "opentelemetry-instrument" | "thrust" | "chpst") || b.ends_with("entrypoint.sh") || b == "entrypoint" {
            i += 1;
            continue;
        }
        match (b, next) {
            ("bundle", Some("exec")) | ("uv" | "poetry" | "pipenv" | "pdm" | "hatch", Some("run")) | ("newrelic-admin", Some("run-program")) | ("doppler", Some("run")) => {
                i += 2;
                continue;
            }
            (p, Some("-m")) if p.starts_with("python") => {
                let module = words.get(i + 2).map(|(m, _)| m.as_str());
                return match module {
                    Some("gunicorn") => Some(("gunicorn", i + 3)),
                    Some("celery") => celery(words, i + 3),
                    Some("rq") if words.get(i + 3).is_some_and(|(s, _)| s == "worker") => Some(("rq", i + 4)),
                    _ => None,
                };
            }
            _ => {}
        }
        return match b {
            "gunicorn" => Some(("gunicorn", i + 1)),
            "puma" => Some(("puma", i + 1)),
            "rails" if matches!(next, Some("server" | "s")) => Some(("puma", i + 2)),
            "rails" if matches!(next, Some("solid_queue:start")) => Some(("solid_queue", i + 2)),
            "jobs" if w.contains("bin/") => Some(("solid_queue", i + 1)),
            "redis-server" => {
                if words[i + 1..].iter().any(|(a, _)| a == "--sentinel") {
                    Some(("sentinel", i + 1))
                } else {
                    Some(("redis", i + 1))
                }
            }
            "redis-sentinel" => Some(("sentinel", i + 1)),
            "postgres" | "postmaster" => Some(("postgres", i + 1)),
            "pgbouncer" => Some(("pgbouncer", i + 1)),
            "nginx" => Some(("nginx", i + 1)),
            "sidekiq" | "sidekiqswarm" => Some(("sidekiq", i + 1)),
            "celery" => celery(words, i + 1),
            "rq" if next == Some("worker") => Some(("rq", i + 2)),
            "rqworker" => Some(("rq", i + 1)),
            _ => None,
        };
    }
    None
}

fn celery(words: &[Word], from: usize) -> Option<(&'static str, usize)> {
    words[from.min(words.len())..].iter().any(|(w, _)| w == "worker").then_some(("celery", from))
}

/// Applies a command line (words with byte ranges relative to the file) to a service:
/// gunicorn, puma, redis-server, postgres or pgbouncer by the program name. Returns the
/// kind it recognised.
pub fn apply_command(builder: &mut ImportBuilder, service: &str, words: &[(String, std::ops::Range<usize>)], file: FileId) -> Option<&'static str> {
    // `sh -c "..."`: the script is the command.
    if let Some(script) = shell_script(words) {
        let (text, range) = script;
        let file_text = builder.sources.get(file).map(|s| s.text.clone()).unwrap_or_default();
        let (inner, error) = words_in(&file_text, &range, &text);
        if let Some(e) = error {
            builder.ignored(file, e.bytes, format!("command script: {}; read up to it", e.message));
        }
        return apply_command(builder, service, &inner, file);
    }
    let (kind, start) = classify(words)?;
    let head = words[..start].last().map_or(0..0, |(_, r)| r.clone());
    let end = words[start..].iter().position(|(w, _)| matches!(w.as_str(), ";" | "&&" | "||" | "|" | "&")).map_or(words.len(), |p| start + p);
    let args = strip_redirects(&words[start..end]);
    let spec_kind = match kind {
        "sentinel" => None,
        k => Some(k),
    };
    if let Some(k) = spec_kind
        && !ensure_kind(builder, service, k, file, head.clone())
    {
        let existing = kind_of_service(builder, service).unwrap_or_default();
        builder.ignored(file, head, format!("a {k} command for service `{service}`, which is already a {existing}; its flags are not applied"));
        return Some(kind);
    }
    let mut cx = Cx { builder, service, file };
    match kind {
        "gunicorn" => gunicorn(&mut cx, &args),
        "puma" => puma(&mut cx, &args, words[..start].iter().any(|(w, _)| base(w) == "rails")),
        "redis" | "sentinel" => redis(&mut cx, &args),
        "postgres" => postgres(&mut cx, &args),
        "pgbouncer" => pgbouncer(&mut cx, &args),
        "sidekiq" | "celery" | "rq" | "solid_queue" => jobs(&mut cx, kind, &args),
        _ => {}
    }
    Some(kind)
}

/// The script of `sh -c SCRIPT` / `bash -c SCRIPT` / `/bin/sh -ec SCRIPT`.
fn shell_script(words: &[Word]) -> Option<(String, Range<usize>)> {
    let mut i = 0;
    while i < words.len() && (words[i].0 == "exec" || base(&words[i].0).ends_with("entrypoint.sh")) {
        i += 1;
    }
    let program = base(&words.get(i)?.0);
    if !matches!(program, "sh" | "bash" | "ash" | "dash" | "zsh") {
        return None;
    }
    for (j, (w, _)) in words.iter().enumerate().skip(i + 1) {
        if w.starts_with('-') && !w.starts_with("--") && w.contains('c') {
            return words.get(j + 1).map(|(t, r)| (t.clone(), r.clone()));
        }
        if !w.starts_with('-') {
            break;
        }
    }
    None
}

/// Drops shell redirections (`> file`, `2>&1`, `>>log`).
fn strip_redirects(words: &[Word]) -> Vec<Word> {
    let mut out = Vec::new();
    let mut skip_next = false;
    for (w, r) in words {
        if skip_next {
            skip_next = false;
            continue;
        }
        let t = w.trim_start_matches(|c: char| c.is_ascii_digit() || c == '&');
        if t.starts_with('>') || t.starts_with('<') {
            skip_next = matches!(t, ">" | ">>" | "<" | ">|");
            continue;
        }
        out.push((w.clone(), r.clone()));
    }
    out
}

struct Cx<'a> {
    builder: &'a mut ImportBuilder,
    service: &'a str,
    file: FileId,
}

/// One option and its value, as written.
struct Opt {
    /// `--workers`, `-w`.
    flag: String,
    value: Option<Word>,
    /// From the flag to the end of its value.
    bytes: Range<usize>,
}

enum Arg {
    Opt(Opt),
    Positional(Word),
}

/// Parses `--flag value`, `--flag=value`, `-f value`, `-fvalue`; `takes_value` says
/// which flags take a value.
fn parse_args(words: &[Word], takes_value: impl Fn(&str) -> bool) -> Vec<Arg> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut only_positional = false;
    while i < words.len() {
        let (w, r) = &words[i];
        i += 1;
        if only_positional || !w.starts_with('-') || w == "-" {
            out.push(Arg::Positional((w.clone(), r.clone())));
            continue;
        }
        if w == "--" {
            only_positional = true;
            continue;
        }
        if let Some((flag, value)) = w.split_once('=').filter(|_| w.starts_with("--")) {
            let offset = r.start + flag.len() + 1;
            let value_range = if r.len() == w.len() { offset..r.end } else { r.clone() };
            out.push(Arg::Opt(Opt { flag: flag.to_string(), value: Some((value.to_string(), value_range)), bytes: r.clone() }));
            continue;
        }
        if !w.starts_with("--") && w.len() > 2 && w.is_char_boundary(2) && takes_value(&w[..2]) {
            let value_range = if r.len() == w.len() { r.start + 2..r.end } else { r.clone() };
            out.push(Arg::Opt(Opt { flag: w[..2].to_string(), value: Some((w[2..].trim_start_matches('=').to_string(), value_range)), bytes: r.clone() }));
            continue;
        }
        if takes_value(w) && i < words.len() {
            let (v, vr) = &words[i];
            i += 1;
            // A flag and its value far apart (list items on their own lines): the value.
            let bytes = if vr.start > r.end + 2 { vr.clone() } else { r.start..vr.end.max(r.end) };
            out.push(Arg::Opt(Opt { flag: w.clone(), value: Some((v.clone(), vr.clone())), bytes }));
        } else {
            out.push(Arg::Opt(Opt { flag: w.clone(), value: None, bytes: r.clone() }));
        }
    }
    out
}

impl Cx<'_> {
    fn path(&self, key: &str) -> String {
        format!("services.{}.{key}", self.service)
    }

    fn set(&mut self, key: &str, value: Value, bytes: Range<usize>) {
        let path = self.path(key);
        self.builder.set(&path, value, self.file, bytes);
    }

    fn ignored(&mut self, bytes: Range<usize>, what: String) {
        self.builder.ignored(self.file, bytes, what);
    }

    /// The value text of an option with `$VAR` references resolved by their defaults;
    /// None (and a note) when it depends on the environment.
    fn value(&mut self, opt: &Opt) -> Option<String> {
        let Some((text, _)) = &opt.value else {
            self.ignored(opt.bytes.clone(), format!("`{}` without a value", opt.flag));
            return None;
        };
        let resolved = interpolate(text);
        if !resolved.unknown.is_empty() {
            let vars = resolved.unknown.iter().map(|v| format!("${v}")).collect::<Vec<_>>().join(", ");
            self.ignored(
                opt.bytes.clone(),
                format!("`{}` takes its value from {vars} at run time; headroom cannot know it, so the default applies", opt.flag),
            );
            return None;
        }
        if !resolved.defaulted.is_empty() {
            let vars = resolved.defaulted.iter().map(|v| format!("${v}")).collect::<Vec<_>>().join(", ");
            let shown = resolved.text.clone().unwrap_or_default();
            assumed_at(
                self.builder,
                self.file,
                opt.bytes.clone(),
                format!("`{}` uses the default `{shown}` of {vars}", opt.flag),
                format!("if {vars} is set where this runs, its value wins"),
            );
        }
        resolved.text
    }

    fn number(&mut self, key: &str, opt: &Opt) {
        let Some(text) = self.value(opt) else { return };
        match text.trim().parse::<u64>() {
            Ok(n) => self.set(key, json!(n), opt.bytes.clone()),
            Err(_) => self.ignored(opt.bytes.clone(), format!("`{}`: `{}` is not a whole number", opt.flag, text.escape_debug())),
        }
    }

    fn secs(&mut self, key: &str, opt: &Opt) {
        let Some(text) = self.value(opt) else { return };
        match seconds(&text) {
            Some(d) => self.set(key, json!(d), opt.bytes.clone()),
            None => self.ignored(opt.bytes.clone(), format!("`{}`: `{}` is not a number of seconds", opt.flag, text.escape_debug())),
        }
    }

    fn port_of_bind(&mut self, opt: &Opt, text: &str) {
        let t = text.trim();
        if t.starts_with("unix:") || t.starts_with("fd://") {
            self.ignored(opt.bytes.clone(), format!("`{}` binds a unix socket; no TCP port", opt.flag));
            return;
        }
        let without_scheme = t.split_once("://").map_or(t, |(_, rest)| rest);
        let host_port = without_scheme.split(['?', '/']).next().unwrap_or("");
        let port = host_port.rsplit_once(':').map_or(host_port, |(_, p)| p);
        match port.parse::<u16>() {
            Ok(p) if p > 0 => self.set("port", json!(p), opt.bytes.clone()),
            _ => self.ignored(opt.bytes.clone(), format!("`{}`: no port in `{}`", opt.flag, t.escape_debug())),
        }
    }
}

const GUNICORN_BOOL: [&str; 27] = [
    "--reload", "--preload", "--daemon", "-D", "--check-config", "--print-config", "--spew", "--capture-output",
    "--enable-stdio-inheritance", "-R", "--reuse-port", "--no-sendfile", "--strip-header-spaces", "--proxy-protocol",
    "--do-handshake-on-connect", "--disable-redirect-access-to-syslog", "--suppress-ragged-eofs", "--help", "-h",
    "--version", "-v", "--initgroups", "--log-syslog", "--no-control-socket", "--permit-obsolete-folding",
    "--permit-unconventional-http-method", "--permit-unconventional-http-version",
];

/// Gunicorn worker class names -> spec `worker_class`.
pub fn worker_class(name: &str) -> Option<&'static str> {
    let lower = name.trim().to_ascii_lowercase();
    if lower.contains("uvicorn") {
        Some("uvicorn")
    } else if lower == "gevent" || lower.contains("ggevent") || lower.contains("geventworker") {
        Some("gevent")
    } else if lower == "gthread" || lower.contains("threadworker") || lower.ends_with(".gthread") {
        Some("gthread")
    } else if lower == "sync" || lower.contains("syncworker") {
        Some("sync")
    } else {
        None
    }
}

fn gunicorn(cx: &mut Cx<'_>, words: &[Word]) {
    let args = parse_args(words, |f| f.starts_with("--") && !GUNICORN_BOOL.contains(&f) || matches!(f, "-c" | "-b" | "-w" | "-k" | "-t" | "-e" | "-p" | "-u" | "-g" | "-m" | "-n"));
    let mut threads_at = None;
    let mut class_set = false;
    let mut app_seen = false;
    for arg in args {
        let opt = match arg {
            Arg::Positional((w, r)) => {
                if app_seen {
                    cx.ignored(r, "a second positional argument to gunicorn".into());
                } else {
                    app_seen = true;
                    cx.set("app", json!(w), r);
                }
                continue;
            }
            Arg::Opt(o) => o,
        };
        match opt.flag.as_str() {
            "--workers" | "-w" => cx.number("workers", &opt),
            "--threads" => {
                threads_at = Some(opt.bytes.clone());
                cx.number("threads", &opt);
            }
            "--worker-connections" => cx.number("worker_connections", &opt),
            "--max-requests" => cx.number("max_requests", &opt),
            "--max-requests-jitter" => cx.number("max_requests_jitter", &opt),
            "--backlog" => cx.number("backlog", &opt),
            "--timeout" | "-t" => cx.secs("timeout", &opt),
            "--graceful-timeout" => cx.secs("graceful_timeout", &opt),
            "--keep-alive" => cx.secs("keepalive", &opt),
            "--worker-class" | "-k" => {
                if let Some(text) = cx.value(&opt) {
                    match worker_class(&text) {
                        Some(class) => {
                            class_set = true;
                            cx.set("worker_class", json!(class), opt.bytes.clone());
                        }
                        None => cx.ignored(opt.bytes.clone(), format!("gunicorn worker class `{}` is not modelled (sync, gthread, gevent, uvicorn)", text.escape_debug())),
                    }
                }
            }
            "--bind" | "-b" => {
                if cx.builder.get(&cx.path("port")).is_some() && words.iter().filter(|(w, _)| w == "-b" || w.starts_with("--bind")).count() > 1 {
                    cx.ignored(opt.bytes.clone(), "a further bind address; the first one's port is used".into());
                } else if let Some(text) = cx.value(&opt) {
                    cx.port_of_bind(&opt, &text);
                }
            }
            "--config" | "-c" => {
                let shown = opt.value.as_ref().map(|(v, _)| v.clone()).unwrap_or_default();
                cx.ignored(opt.bytes.clone(), format!("gunicorn reads settings from `{}`; pass that file to headroom to read them too (command-line flags win over it)", shown.escape_debug()));
            }
            flag => cx.ignored(opt.bytes.clone(), format!("gunicorn `{flag}` does not change capacity")),
        }
    }
    let threads = cx.builder.get(&cx.path("threads")).and_then(Value::as_u64);
    let has_class = class_set || cx.builder.get(&cx.path("worker_class")).is_some();
    if let (Some(at), Some(n)) = (threads_at, threads)
        && n > 1
        && !has_class
    {
        cx.set("worker_class", json!("gthread"), at.clone());
        assumed_at(
            cx.builder,
            cx.file,
            at,
            format!("worker_class gthread for `{}`: gunicorn runs the sync worker class as gthread when --threads is above 1", cx.service),
            "write --worker-class gthread to say so",
        );
    }
}

fn puma(cx: &mut Cx<'_>, words: &[Word], rails: bool) {
    let value_flags = ["-w", "--workers", "-t", "--threads", "-p", "--port", "-b", "--bind", "--binding", "-C", "--config", "-e", "--environment", "-S", "--state", "--pidfile", "--control-url", "--control-token", "--tag", "--dir", "--redirect-stdout", "--redirect-stderr", "-u", "--using", "-P", "--pid"];
    let args = parse_args(words, |f| value_flags.contains(&f));
    for arg in args {
        let opt = match arg {
            Arg::Positional((w, r)) => {
                if rails {
                    cx.ignored(r, format!("`rails server {}` argument", w.escape_debug()));
                } else {
                    cx.set("app", json!(w), r);
                }
                continue;
            }
            Arg::Opt(o) => o,
        };
        match opt.flag.as_str() {
            "-w" | "--workers" if !rails => cx.number("workers", &opt),
            "-t" | "--threads" if !rails => {
                let Some(text) = cx.value(&opt) else { continue };
                let (min, max) = match text.split_once(':') {
                    Some((a, b)) => (a.trim().parse::<u64>().ok(), b.trim().parse::<u64>().ok()),
                    None => (text.trim().parse().ok(), text.trim().parse().ok()),
                };
                match (min, max) {
                    (Some(min), Some(max)) => {
                        cx.set("threads", json!(max), opt.bytes.clone());
                        cx.set("min_threads", json!(min), opt.bytes.clone());
                    }
                    _ => cx.ignored(opt.bytes.clone(), format!("puma `{}`: `{}` is not MIN:MAX", opt.flag, text.escape_debug())),
                }
            }
            "-p" | "--port" => cx.number("port", &opt),
            "-b" | "--bind" if !rails => {
                if let Some(text) = cx.value(&opt) {
                    cx.port_of_bind(&opt, &text);
                }
            }
            "--preload" => cx.set("preload", json!(true), opt.bytes.clone()),
            "-C" | "--config" => {
                let shown = opt.value.as_ref().map(|(v, _)| v.clone()).unwrap_or_default();
                cx.ignored(opt.bytes.clone(), format!("puma reads settings from `{}`; pass that file to headroom to read them too", shown.escape_debug()));
            }
            flag => cx.ignored(opt.bytes.clone(), format!("{} `{flag}` does not change capacity", if rails { "rails server" } else { "puma" })),
        }
    }
}

fn redis(cx: &mut Cx<'_>, words: &[Word]) {
    let mut i = 0;
    if let Some((w, r)) = words.first()
        && !w.starts_with("--")
    {
        cx.ignored(r.clone(), format!("redis reads `{}`; pass that file to headroom to read it too (command-line directives win over it)", w.escape_debug()));
        i = 1;
    }
    while i < words.len() {
        let (w, r) = &words[i];
        i += 1;
        let Some(key) = w.strip_prefix("--") else {
            cx.ignored(r.clone(), format!("redis argument `{}` outside a --directive", w.escape_debug()));
            continue;
        };
        let mut args: Vec<String> = Vec::new();
        let mut end = r.end;
        while i < words.len() && !words[i].0.starts_with("--") {
            args.push(words[i].0.clone());
            end = words[i].1.end.max(end);
            i += 1;
        }
        let bytes = r.start..end;
        if key == "sentinel" {
            continue;
        }
        let mut resolved = Vec::new();
        let mut unknown = false;
        for a in &args {
            let x = interpolate(a);
            match x.text {
                Some(t) if x.unknown.is_empty() => resolved.push(t),
                _ => unknown = true,
            }
        }
        if unknown {
            cx.ignored(bytes, format!("redis `--{key}` takes its value from the environment at run time; headroom cannot know it"));
            continue;
        }
        let refs: Vec<&str> = resolved.iter().map(String::as_str).collect();
        if redis_conf::apply_directive(cx.builder, cx.service, key, &refs, cx.file, bytes.clone()) {
            continue;
        }
        match (key, refs.as_slice()) {
            ("port", [p]) if p.parse::<u16>().is_ok_and(|p| p > 0) => cx.set("port", json!(p.parse::<u16>().unwrap_or(6379)), bytes),
            _ => cx.ignored(bytes, format!("redis directive `{key}` is not modelled")),
        }
    }
}

fn postgres(cx: &mut Cx<'_>, words: &[Word]) {
    let args = parse_args(words, |f| matches!(f, "-c" | "-N" | "-B" | "-p" | "-D" | "-h" | "-k" | "-S" | "-r" | "-s" | "-o" | "-C" | "-d"));
    for arg in args {
        let opt = match arg {
            Arg::Positional((w, r)) => {
                cx.ignored(r, format!("postgres argument `{}`", w.escape_debug()));
                continue;
            }
            Arg::Opt(o) => o,
        };
        let (key, value) = match opt.flag.as_str() {
            "-c" => {
                let Some((kv, _)) = &opt.value else { continue };
                match kv.split_once('=') {
                    Some((k, v)) => (k.trim().replace('-', "_"), v.trim().to_string()),
                    None => {
                        cx.ignored(opt.bytes.clone(), format!("postgres `-c {}` without `=value`", kv.escape_debug()));
                        continue;
                    }
                }
            }
            "-N" => ("max_connections".to_string(), opt.value.as_ref().map(|v| v.0.clone()).unwrap_or_default()),
            "-B" => ("shared_buffers".to_string(), opt.value.as_ref().map(|v| v.0.clone()).unwrap_or_default()),
            "-p" => ("port".to_string(), opt.value.as_ref().map(|v| v.0.clone()).unwrap_or_default()),
            f if f.starts_with("--") && opt.value.is_some() => (f[2..].replace('-', "_"), opt.value.as_ref().map(|v| v.0.clone()).unwrap_or_default()),
            f => {
                cx.ignored(opt.bytes.clone(), format!("postgres `{f}` does not change capacity"));
                continue;
            }
        };
        let resolved = interpolate(&value);
        let Some(value) = resolved.text.filter(|_| resolved.unknown.is_empty()) else {
            cx.ignored(opt.bytes.clone(), format!("postgres `{key}` takes its value from the environment at run time; headroom cannot know it"));
            continue;
        };
        let value = value.trim_matches('\'').to_string();
        if pgconf::apply_setting(cx.builder, cx.service, &key, &value, cx.file, opt.bytes.clone()) {
            continue;
        }
        match key.as_str() {
            "port" if value.parse::<u16>().is_ok_and(|p| p > 0) => cx.set("port", json!(value.parse::<u16>().unwrap_or(5432)), opt.bytes.clone()),
            "max_connections" if value.parse::<u64>().is_ok_and(|n| n > 0) => cx.set("max_connections", json!(value.parse::<u64>().unwrap_or(100)), opt.bytes.clone()),
            _ => cx.ignored(opt.bytes.clone(), format!("postgres setting `{key}` is not modelled")),
        }
    }
}

fn pgbouncer(cx: &mut Cx<'_>, words: &[Word]) {
    let args = parse_args(words, |f| matches!(f, "-u" | "--user"));
    for arg in args {
        match arg {
            Arg::Positional((w, r)) => cx.ignored(r, format!("pgbouncer reads `{}`; pass that file to headroom to read it too", w.escape_debug())),
            Arg::Opt(o) => {
                if !matches!(o.flag.as_str(), "-d" | "--daemon" | "-q" | "--quiet" | "-v" | "--verbose" | "-R" | "--reboot") {
                    cx.ignored(o.bytes.clone(), format!("pgbouncer `{}` does not change capacity", o.flag));
                }
            }
        }
    }
}

fn jobs(cx: &mut Cx<'_>, kind: &str, words: &[Word]) {
    let value_flags: &[&str] = match kind {
        "celery" => &["-A", "--app", "-c", "--concurrency", "-P", "--pool", "-Q", "--queues", "-l", "--loglevel", "-n", "--hostname", "-b", "--broker", "--autoscale", "--max-tasks-per-child", "--prefetch-multiplier", "-O", "-E", "--workdir", "--pidfile", "--logfile"],
        "sidekiq" => &["-c", "--concurrency", "-C", "--config", "-q", "--queue", "-e", "--environment", "-g", "--tag", "-r", "--require", "-t", "--timeout"],
        _ => &[],
    };
    let args = parse_args(words, |f| value_flags.contains(&f));
    for arg in args {
        let Arg::Opt(opt) = arg else { continue };
        match (kind, opt.flag.as_str()) {
            ("celery" | "sidekiq", "-c" | "--concurrency") => cx.number("concurrency", &opt),
            ("celery", "--autoscale") => {
                let Some(text) = cx.value(&opt) else { continue };
                match text.split(',').next().and_then(|m| m.trim().parse::<u64>().ok()) {
                    Some(max) => {
                        cx.set("concurrency", json!(max), opt.bytes.clone());
                        assumed_at(cx.builder, cx.file, opt.bytes.clone(), format!("concurrency {max} for `{}`: the autoscale maximum", cx.service), "the pool grows to this many children under load");
                    }
                    None => cx.ignored(opt.bytes.clone(), "celery `--autoscale` without a maximum".into()),
                }
            }
            ("sidekiq", "-C" | "--config") => {
                let shown = opt.value.as_ref().map(|(v, _)| v.clone()).unwrap_or_default();
                cx.ignored(opt.bytes.clone(), format!("sidekiq reads `{}` (its concurrency may be there); headroom does not read it", shown.escape_debug()));
            }
            _ => {}
        }
    }
}

/// Reads a railway.toml start command.
pub fn read_railway(builder: &mut ImportBuilder, file: FileId) {
    let Some(text) = builder.sources.get(file).map(|s| s.text.clone()) else { return };
    let doc = match toml_edit::Document::parse(text.as_str()) {
        Ok(d) => d,
        Err(e) => {
            let bytes = e.span().unwrap_or(0..0);
            let message = e.message().trim().to_string();
            builder.unparsable(file, bytes, format!("railway.toml: {message}"), "fix the TOML syntax");
            return;
        }
    };
    let service = builder.owner_of(file, "web");
    let Some((deploy_key, deploy)) = doc.as_table().get_key_value("deploy") else {
        builder.ignored(file, 0..0, "railway.toml has no [deploy] table: the start command comes from the Procfile or Dockerfile, which headroom does not read");
        return;
    };
    let Some(deploy) = deploy.as_table_like() else {
        builder.unparsable(file, deploy.span().unwrap_or(0..0), "railway.toml: `deploy` is not a table", "write it as [deploy]");
        return;
    };
    let deploy_span = deploy_key.span().unwrap_or(0..0);
    let mut started = false;
    for (key, item) in deploy.iter() {
        let key_span = deploy.key(key).and_then(|k| k.span()).unwrap_or(deploy_span.clone());
        let value_span = item.span().or_else(|| item.as_value().and_then(|v| v.span())).unwrap_or(key_span.clone());
        let whole = key_span.start..value_span.end.max(key_span.end);
        match key {
            "startCommand" => {
                let Some(command) = item.as_str() else {
                    builder.unparsable(file, whole, "railway.toml: startCommand is not a string", "write startCommand = \"gunicorn ...\"");
                    continue;
                };
                let (words, error) = words_in(&text, &value_span, command);
                if let Some(e) = error {
                    builder.unparsable(file, e.bytes, format!("startCommand: {}", e.message), "close the quote");
                }
                builder.mark(&format!("services.{service}"), file, whole.clone());
                match apply_command(builder, &service, &words, file) {
                    Some(kind) => {
                        started = true;
                        if !matches!(kind, "gunicorn" | "puma") {
                            builder.ignored(file, whole, format!("railway start command runs {kind}"));
                        }
                    }
                    None => builder.ignored(file, whole, "startCommand runs a program headroom does not model (gunicorn, puma, redis-server, postgres, pgbouncer, celery, sidekiq)"),
                }
            }
            "healthcheckPath" => match item.as_str() {
                Some(path) => builder.set(&format!("services.{service}.health.path"), json!(path), file, whole),
                None => builder.ignored(file, whole, "healthcheckPath is not a string"),
            },
            "numReplicas" => match item.as_integer().filter(|n| *n >= 1) {
                Some(n) => builder.set(&format!("services.{service}.replicas"), json!(n), file, whole),
                None => builder.ignored(file, whole, "numReplicas is not a positive integer"),
            },
            "healthcheckTimeout" => builder.ignored(file, whole, "healthcheckTimeout is how long Railway waits for a new deployment to become healthy, not a probe timeout"),
            other => builder.ignored(file, whole, format!("railway [deploy] `{other}` does not change capacity")),
        }
    }
    if started && kind_of_service(builder, &service).is_some_and(|k| k == "gunicorn" || k == "puma") {
        builder.set("deploy.railway.service", json!(service), file, deploy_span);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    fn texts(words: &[Word]) -> Vec<&str> {
        words.iter().map(|(w, _)| w.as_str()).collect()
    }

    fn builder_with(text: &str) -> (ImportBuilder, FileId) {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("cmd.txt", text.to_string()));
        (b, id)
    }

    fn run(text: &str) -> ImportBuilder {
        let (mut b, id) = builder_with(text);
        let words = shell_words(text);
        apply_command(&mut b, "web", &words, id);
        b
    }

    fn line_of(b: &ImportBuilder, pointer: &str) -> usize {
        let o = &b.origins[pointer];
        b.sources[o.file].line_col(o.bytes.start).line
    }

    fn notes(b: &ImportBuilder) -> Vec<String> {
        b.diagnostics.iter().map(|d| d.message.clone()).collect()
    }

    #[test]
    fn splits_like_a_shell_and_keeps_ranges() {
        let text = r#"gunicorn -b "0.0.0.0:8000" --name='a b' x\ y "q\"q" ${PORT:-80} # comment"#;
        let (words, err) = split(text);
        assert!(err.is_none());
        assert_eq!(texts(&words), vec!["gunicorn", "-b", "0.0.0.0:8000", "--name=a b", "x y", "q\"q", "${PORT:-80}"]);
        assert_eq!(&text[words[2].1.clone()], "\"0.0.0.0:8000\"");
        assert_eq!(&text[words[6].1.clone()], "${PORT:-80}");
        let (words, _) = split("migrate && gunicorn app;echo |x");
        assert_eq!(texts(&words), vec!["migrate", "&&", "gunicorn", "app", ";", "echo", "|", "x"]);
    }

    #[test]
    fn unterminated_quote_is_reported_with_its_place() {
        let (words, err) = split("gunicorn --bind '0.0.0.0:80");
        let err = err.unwrap();
        assert_eq!(err.bytes.start, 16);
        assert!(err.message.contains("single quote"));
        assert_eq!(texts(&words), vec!["gunicorn", "--bind", "0.0.0.0:80"]);
        let (_, err) = split("x \"abc");
        assert!(err.unwrap().message.contains("double"));
        // never panics on odd input
        for odd in ["\\", "'", "\"", "\"\\", "&&&", "#", "é'ü", "\u{0}\u{1}"] {
            let _ = split(odd);
        }
    }

    #[test]
    fn gunicorn_flags_become_spec_keys() {
        let b = run("gunicorn --bind 0.0.0.0:8000 --workers 8 --worker-class gthread --threads 4 --max-requests 1000 --max-requests-jitter 100 --timeout 600 --keep-alive 5 --access-logfile - --error-logfile - arena_backend.wsgi");
        let web = &b.value["services"]["web"];
        assert_eq!(web["kind"], "gunicorn");
        assert_eq!(web["workers"], 8);
        assert_eq!(web["worker_class"], "gthread");
        assert_eq!(web["threads"], 4);
        assert_eq!(web["max_requests"], 1000);
        assert_eq!(web["max_requests_jitter"], 100);
        assert_eq!(web["timeout"], "600s");
        assert_eq!(web["keepalive"], "5s");
        assert_eq!(web["port"], 8000);
        assert_eq!(web["app"], "arena_backend.wsgi");
        let o = &b.origins["/services/web/workers"];
        assert_eq!(&b.sources[0].text[o.bytes.clone()], "--workers 8");
        assert!(notes(&b).iter().any(|n| n.contains("--access-logfile")));
    }

    #[test]
    fn gunicorn_equals_form_short_flags_and_uvicorn() {
        let b = run("python -m gunicorn app.main:app -k uvicorn.workers.UvicornWorker -w4 --timeout=120 -b :9000 --graceful-timeout 30 --backlog 4096 --worker-connections 500");
        let web = &b.value["services"]["web"];
        assert_eq!(web["worker_class"], "uvicorn");
        assert_eq!(web["workers"], 4);
        assert_eq!(web["timeout"], "120s");
        assert_eq!(web["port"], 9000);
        assert_eq!(web["graceful_timeout"], "30s");
        assert_eq!(web["backlog"], 4096);
        assert_eq!(web["worker_connections"], 500);
        assert_eq!(web["app"], "app.main:app");
        let o = &b.origins["/services/web/timeout"];
        assert_eq!(&b.sources[0].text[o.bytes.clone()], "--timeout=120");
    }

    #[test]
    fn threads_without_a_class_mean_gthread() {
        let b = run("gunicorn --threads 4 app:app");
        assert_eq!(b.value["services"]["web"]["worker_class"], "gthread");
        assert!(notes(&b).iter().any(|n| n.starts_with("assumed: worker_class gthread")));
    }

    #[test]
    fn environment_references_are_never_guessed_silently() {
        let b = run("gunicorn --workers $WEB_CONCURRENCY --bind 0.0.0.0:${PORT:-8000} app:app");
        let web = &b.value["services"]["web"];
        assert!(web.get("workers").is_none());
        assert_eq!(web["port"], 8000);
        let n = notes(&b);
        assert!(n.iter().any(|m| m.contains("$WEB_CONCURRENCY") && m.starts_with("ignored")), "{n:?}");
        assert!(n.iter().any(|m| m.starts_with("assumed") && m.contains("$PORT")), "{n:?}");
    }

    #[test]
    fn wrappers_and_shell_scripts_are_looked_through() {
        let b = run(r#"sh -c "python manage.py migrate && exec gunicorn --workers 3 app.wsgi""#);
        assert_eq!(b.value["services"]["web"]["workers"], 3);
        let o = &b.origins["/services/web/workers"];
        assert_eq!(&b.sources[0].text[o.bytes.clone()], "--workers 3");
        let b = run("bundle exec puma -w 3 -t 2:16 -p 3000 -C config/puma.rb --preload");
        let web = &b.value["services"]["web"];
        assert_eq!(web["kind"], "puma");
        assert_eq!((web["workers"].clone(), web["threads"].clone(), web["min_threads"].clone()), (json!(3), json!(16), json!(2)));
        assert_eq!(web["port"], 3000);
        assert_eq!(web["preload"], true);
        assert!(notes(&b).iter().any(|n| n.contains("config/puma.rb")));
        let b = run("./bin/thrust ./bin/rails server -p 3000");
        assert_eq!(b.value["services"]["web"]["kind"], "puma");
        assert_eq!(b.value["services"]["web"]["port"], 3000);
    }

    #[test]
    fn redis_server_flags_go_to_the_redis_reader() {
        let b = run("redis-server /etc/redis.conf --port 6380 --maxmemory 8gb --maxmemory-policy allkeys-lru");
        assert_eq!(b.value["services"]["web"]["kind"], "redis");
        assert!(notes(&b).iter().any(|n| n.contains("/etc/redis.conf")));
        // port is applied whether or not the redis reader models it
        assert_eq!(b.value["services"]["web"]["port"], 6380);
        let (_, kind) = (0, classify(&shell_words("redis-sentinel /etc/sentinel.conf")));
        assert_eq!(kind.map(|k| k.0), Some("sentinel"));
    }

    #[test]
    fn postgres_settings_go_to_the_postgres_reader() {
        let b = run("postgres -c max_connections=200 -c shared_buffers=2GB -N 300");
        assert_eq!(b.value["services"]["web"]["kind"], "postgres");
        // -N comes last and wins, whether or not the postgres reader models it
        assert_eq!(b.value["services"]["web"]["max_connections"], 300);
        assert_eq!(line_of(&b, "/services/web/max_connections"), 1);
    }

    #[test]
    fn job_runners_are_recognised() {
        let b = run("celery -A proj worker -c 8 -l info");
        assert_eq!(b.value["services"]["web"]["kind"], "celery");
        assert_eq!(b.value["services"]["web"]["concurrency"], 8);
        let b = run("bundle exec sidekiq -c 12");
        assert_eq!(b.value["services"]["web"]["concurrency"], 12);
        assert_eq!(classify(&shell_words("bin/jobs")).map(|k| k.0), Some("solid_queue"));
        assert_eq!(classify(&shell_words("python manage.py runserver")), None);
    }

    #[test]
    fn a_conflicting_kind_is_noted_not_applied() {
        let (mut b, id) = builder_with("gunicorn -w 4 app");
        b.set("services.web.kind", json!("puma"), id, 0..1);
        apply_command(&mut b, "web", &shell_words("gunicorn -w 4 app"), id);
        assert!(b.value["services"]["web"].get("workers").is_none());
        assert!(notes(&b).iter().any(|n| n.contains("already a puma")));
    }

    #[test]
    fn units_are_spelled_for_the_spec() {
        assert_eq!(go_duration("1m30s").as_deref(), Some("90s"));
        assert_eq!(go_duration("500ms").as_deref(), Some("500ms"));
        assert_eq!(go_duration("40s").as_deref(), Some("40s"));
        assert_eq!(go_duration("10").as_deref(), Some("10s"));
        assert_eq!(go_duration("x"), None);
        assert_eq!(docker_size("2048M").as_deref(), Some("2GiB"));
        assert_eq!(docker_size("1.5G").as_deref(), Some("1536MiB"));
        assert_eq!(docker_size("512m").as_deref(), Some("512MiB"));
        assert_eq!(docker_size("lots"), None);
        assert_eq!(cpus("2.0"), Some(json!(2)));
        assert_eq!(cpus("0.5"), Some(json!(0.5)));
        assert_eq!(service_name("Web_App.1"), "web_app-1");
        let i = interpolate("${A:-1}:$B");
        assert_eq!((i.text, i.defaulted, i.unknown), (None, vec!["A".to_string()], vec!["B".to_string()]));
        assert_eq!(interpolate("$$HOME").text.as_deref(), Some("$HOME"));
    }

    #[test]
    fn railway_start_command_and_health_path() {
        let text = "[build]\nbuilder = \"NIXPACKS\"\n\n[deploy]\nstartCommand = \"gunicorn --worker-class gevent --workers 4 --worker-connections 100 --timeout 120 --bind 0.0.0.0:$PORT web.app:app\"\nhealthcheckPath = \"/health\"\nhealthcheckTimeout = 300\n";
        let (mut b, id) = builder_with(text);
        read_railway(&mut b, id);
        let web = &b.value["services"]["web"];
        assert_eq!(web["kind"], "gunicorn");
        assert_eq!(web["worker_class"], "gevent");
        assert_eq!(web["workers"], 4);
        assert_eq!(web["worker_connections"], 100);
        assert_eq!(web["timeout"], "120s");
        assert_eq!(web["app"], "web.app:app");
        assert_eq!(web["health"]["path"], "/health");
        assert!(web.get("port").is_none());
        assert_eq!(line_of(&b, "/services/web/workers"), 5);
        assert_eq!(line_of(&b, "/services/web/health/path"), 6);
        let o = &b.origins["/services/web/workers"];
        assert_eq!(&text[o.bytes.clone()], "--workers 4");
        assert!(notes(&b).iter().any(|n| n.contains("$PORT")));
        assert_eq!(b.value["deploy"]["railway"]["service"], "web");
    }

    fn fixture(rel: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import").join(rel)
    }

    #[test]
    fn sfpermits_fixture_reads_railway_toml_only() {
        let b = super::super::read_paths(&[fixture("sfpermits")], "sfpermits");
        // src/db.py is not a format headroom reads: it is never opened.
        let files: Vec<String> = b.sources.iter().map(|s| s.path.display().to_string()).collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].ends_with("sfpermits/web/railway.toml"));
        let web = &b.value["services"]["web"];
        assert_eq!(web["kind"], "gunicorn");
        assert_eq!(web["worker_class"], "gevent");
        assert_eq!(web["workers"], 4);
        assert_eq!(web["worker_connections"], 100);
        assert_eq!(web["timeout"], "120s");
        assert_eq!(web["health"]["path"], "/health");
        for pointer in ["/services/web/workers", "/services/web/worker_class", "/services/web/worker_connections", "/services/web/timeout", "/services/web/app"] {
            assert_eq!(line_of(&b, pointer), 5, "{pointer}");
        }
        assert_eq!(line_of(&b, "/services/web/health/path"), 6);
        let port_note = b.diagnostics.iter().find(|d| d.message.contains("$PORT")).expect("a note about $PORT");
        assert_eq!(port_note.span.as_ref().map(|s| s.line), Some(5));
    }

    /// Generated garbage through every reader: notes and errors, never a panic.
    #[test]
    fn no_reader_panics_on_generated_input() {
        const PIECES: [&str; 48] = [
            "gunicorn", " ", "-w", "--workers", "=", "'", "\"", "\\", "$", "${", "}", ":-", "8", "\n", "#", "&&", ";", "é", "services:",
            "\n  web-1:", "\n    command: ", "\n- ", "<%=", "%>", "ENV.fetch(\"X\") { 5 }", "workers ", "threads ", "(", ")", "[", "]", "*", "+",
            " do\n", "end\n", "\t", "\u{0}", "&a ", "*a", "{", "redis-server --maxmemory", "postgres -c", "servers:", "hosts:", "image: redis",
            "[deploy]\nstartCommand = ", "pool: ", "production:",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let readers: [fn(&mut ImportBuilder, FileId); 7] = [
            super::super::compose::read,
            super::super::kamal::read,
            super::super::puma_rb::read,
            super::super::gunicorn_py::read,
            super::super::rails_db::read,
            read_railway,
            |b, f| {
                let text = b.sources[f].text.clone();
                let words = shell_words(&text);
                apply_command(b, "web", &words, f);
            },
        ];
        for _ in 0..1500 {
            let n = (next() % 40) as usize + 1;
            let text: String = (0..n).map(|_| PIECES[(next() % PIECES.len() as u64) as usize]).collect();
            let _ = split(&text);
            let reader = readers[(next() % readers.len() as u64) as usize];
            let mut b = ImportBuilder::new("t");
            let id = b.add_source(SourceFile::new("fuzz", text));
            reader(&mut b, id);
        }
    }

    #[test]
    fn railway_errors_are_located() {
        let (mut b, id) = builder_with("[deploy]\nstartCommand = \"gunicorn 'x\"\n");
        read_railway(&mut b, id);
        let d = b.diagnostics.iter().find(|d| d.rule == super::super::UNPARSABLE).expect("unterminated quote reported");
        assert_eq!(d.span.as_ref().unwrap().line, 2);
        let (mut b, id) = builder_with("[deploy\nstartCommand = 1\n");
        read_railway(&mut b, id);
        assert_eq!(b.diagnostics[0].rule, super::super::UNPARSABLE);
        assert_eq!(b.diagnostics[0].span.as_ref().unwrap().line, 1);
    }
}
