//! Shared by the readers of nginx, pgbouncer.ini, postgresql.conf, redis.conf and
//! sysctl files: notes, service lookup by host, include resolution with globs and
//! budgets.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

pub use super::names::service_name;
use crate::import::{ASSUMED, FileId, ImportBuilder};
use crate::diag::{Diagnostic, Severity};
use crate::load::{self, path as spec_path};
use crate::source::SourceFile;

/// Files read through includes of one top-level file, at most.
pub const MAX_INCLUDED_FILES: usize = 256;
/// Bytes read through includes of one top-level file, at most.
pub const MAX_INCLUDED_BYTES: usize = 32 << 20;
/// Directory entries looked at per glob component.
const MAX_DIR_ENTRIES: usize = 10_000;

/// The lines of a config file that say something: each trimmed, with the byte offset
/// where its text starts; blank lines and lines starting with one of `comments` are
/// left out.
pub fn meaningful_lines<'t>(text: &'t str, comments: &[char]) -> Vec<(&'t str, usize)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim();
        if trimmed.is_empty() || trimmed.starts_with(comments) {
            continue;
        }
        out.push((trimmed, start + body.len() - body.trim_start().len()));
    }
    out
}

/// A dotted spec path from plain keys (quoting keys that need it).
pub fn p(parts: &[&str]) -> String {
    let segments: Vec<spec_path::Segment> = parts.iter().map(|k| spec_path::Segment::Key((*k).to_string())).collect();
    spec_path::render(&segments)
}

/// A located note about a value headroom derived or assumed.
pub fn note(b: &mut ImportBuilder, file: FileId, bytes: Range<usize>, message: impl Into<String>) {
    let span = b.sources.get(file).map(|s| load::make_span(s, bytes));
    b.diagnostics.push(Diagnostic::new(ASSUMED, Severity::Info, "", format!("assumed: {}", message.into())).at(span));
}

/// 1-based line of a byte offset.
pub fn line_of(b: &ImportBuilder, file: FileId, offset: usize) -> usize {
    b.sources.get(file).map_or(0, |s| s.line_col(offset).line)
}

/// Offset of the first byte that says "binary": a NUL, or control characters in
/// more than 1% of the first 64 KiB.
pub fn binary_offset(text: &str) -> Option<usize> {
    if let Some(i) = text.find('\0') {
        return Some(i);
    }
    let head = &text.as_bytes()[..text.len().min(64 * 1024)];
    let control = |c: &u8| *c < 0x20 && !matches!(*c, b'\t' | b'\n' | b'\r' | 0x0c);
    let count = head.iter().filter(|c| control(c)).count();
    if count >= 8 && count * 100 > head.len() {
        return head.iter().position(control);
    }
    None
}

/// Reports a binary file as unparsable; true when it was.
pub fn reject_binary(b: &mut ImportBuilder, file: FileId) -> bool {
    let Some(at) = b.sources.get(file).and_then(|s| binary_offset(&s.text)) else { return false };
    let shown = b.sources[file].path.display().to_string();
    let line = line_of(b, file, at);
    b.unparsable(file, at..at + 1, format!("{shown} looks like binary data (control bytes from line {line}), not a config file"), "pass text config files only");
    true
}

/// The path to compare files by.
pub fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Whether the same file (same path, same text) was read before, e.g. through an
/// include of another file: reading it again would count everything twice.
pub fn already_read(b: &ImportBuilder, file: FileId) -> bool {
    let Some(source) = b.sources.get(file) else { return false };
    let key = canonical(&source.path);
    b.sources[..file].iter().any(|s| s.text == source.text && canonical(&s.path) == key)
}

/// `web-3` -> `web`, `app_web_1` -> `app_web`: the service a numbered replica
/// belongs to.
pub fn strip_replica_suffix(name: &str) -> &str {
    let trimmed = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if trimmed.len() == name.len() {
        return name;
    }
    match trimmed.strip_suffix(['-', '_']) {
        Some(base) if !base.is_empty() => base,
        _ => name,
    }
}

/// An IP address or localhost.
pub fn is_ip(host: &str) -> bool {
    host.parse::<std::net::IpAddr>().is_ok() || host.eq_ignore_ascii_case("localhost")
}

/// The first DNS label of a host name (IPs unchanged).
pub fn host_label(host: &str) -> String {
    if is_ip(host) { host.to_string() } else { host.split('.').next().unwrap_or(host).to_string() }
}

/// The `kind` of a service, when set.
pub fn kind_of(b: &ImportBuilder, name: &str) -> Option<String> {
    b.get(&p(&["services", name, "kind"])).and_then(Value::as_str).map(str::to_string)
}

/// The service a host name points at (not necessarily existing yet), and whether it
/// exists. Host names become service names (without a `-N` replica suffix when
/// `strip_suffix`); an IP, localhost or socket finds the service placed on a machine
/// with that address, else the only service of those kinds, else `default`.
pub fn service_for_host(b: &ImportBuilder, host: Option<&str>, kinds: &[&str], default: &str, strip_suffix: bool) -> (String, bool) {
    if let Some(h) = host.filter(|h| !is_ip(h) && !h.starts_with('/') && !h.is_empty()) {
        let label = host_label(h);
        if let Some(alias) = b.host_aliases.get(&label) {
            return (alias.clone(), b.has_service(alias));
        }
        let name = service_name(if strip_suffix { strip_replica_suffix(&label) } else { &label });
        let exists = b.has_service(&name);
        return (name, exists);
    }
    let empty = serde_json::Map::new();
    let services = b.value.get("services").and_then(Value::as_object).unwrap_or(&empty);
    let of_kind: Vec<(&String, &Value)> = services.iter().filter(|(_, s)| s.get("kind").and_then(Value::as_str).is_some_and(|k| kinds.contains(&k))).collect();
    if let Some(h) = host.filter(|h| is_ip(h)) {
        let on_machine: Vec<&(&String, &Value)> = of_kind
            .iter()
            .filter(|(_, s)| {
                s.get("machine")
                    .and_then(Value::as_str)
                    .and_then(|m| b.get(&p(&["machines", m, "addresses"])))
                    .and_then(Value::as_array)
                    .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(h)))
            })
            .collect();
        if on_machine.len() == 1 {
            return (on_machine[0].0.clone(), true);
        }
    }
    if of_kind.len() == 1 {
        return (of_kind[0].0.clone(), true);
    }
    (default.to_string(), b.has_service(default))
}

/// The service an address points at: by host name first (as `service_for_host`); when
/// the host does not name a service (an IP, `localhost`, a name no file declares), the
/// one service of `kinds` that listens on `port` (its `port`, or its kind's default).
pub fn service_for_address(b: &ImportBuilder, host: Option<&str>, port: Option<u16>, kinds: &[&str], default: &str, strip_suffix: bool) -> (String, bool) {
    let (name, exists) = service_for_host(b, host, kinds, default, strip_suffix);
    let named = host.is_some_and(|h| !is_ip(h) && !h.starts_with('/') && !h.is_empty());
    let Some(port) = port.filter(|_| !(named && exists)) else { return (name, exists) };
    let empty = serde_json::Map::new();
    let services = b.value.get("services").and_then(Value::as_object).unwrap_or(&empty);
    let on_port: Vec<&String> = services
        .iter()
        .filter(|(_, s)| {
            let kind = s.get("kind").and_then(Value::as_str).unwrap_or("");
            let listens = s.get("port").and_then(Value::as_u64).or(match kind {
                "gunicorn" => Some(8000),
                "puma" => Some(3000),
                _ => None,
            });
            kinds.contains(&kind) && listens == Some(u64::from(port))
        })
        .map(|(n, _)| n)
        .collect();
    match on_port.as_slice() {
        [one] => ((*one).clone(), true),
        _ => (name, exists),
    }
}

/// Whether a host is outside the files read: a dotted name that is not an alias of a
/// service and either ends in a public top-level domain (`api.stripe.com` is not the
/// service `api`) or whose first label names no service (`web.default.svc` is `web`).
pub fn is_external_host(b: &ImportBuilder, host: &str) -> bool {
    if is_ip(host) || !host.contains('.') || b.host_aliases.contains_key(host) {
        return false;
    }
    let tld = host.trim_end_matches('.').rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    let label = host_label(host);
    PUBLIC_TLDS.contains(&tld.as_str()) || !(b.has_service(&service_name(&label)) || b.host_aliases.contains_key(&label))
}

/// Top-level domains of hosts on the internet that configs commonly proxy to.
const PUBLIC_TLDS: &[&str] = &[
    "com", "net", "org", "io", "dev", "app", "co", "ai", "cloud", "me", "us", "uk", "de", "fr", "eu", "nl", "se", "ch", "es", "it", "pl", "br", "in",
    "jp", "au", "ca", "info", "biz", "xyz", "tech", "sh", "so", "ly", "gg", "tv", "fm", "edu", "gov",
];

/// What `ensure_service` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Ensure {
    /// The service existed with that kind (or without a kind, which is now set).
    Existed,
    /// The service did not exist and was created.
    Created,
    /// The service exists with another kind; nothing was changed.
    OtherKind(String),
}

/// Makes sure service `name` exists with `kind` (origin: `file`, `bytes`).
/// The service a config file of `kind` is read into: its owner (a compose/Kamal
/// mount, headroom's path layout, else `kind`), or, when that name belongs to a
/// service of another kind, `kind` (or `kind-1`) with a note. None when the file
/// was read already or is not text.
pub fn claim_service(b: &mut ImportBuilder, file: FileId, kind: &str, file_name: &str) -> Option<String> {
    if file >= b.sources.len() || already_read(b, file) || reject_binary(b, file) {
        return None;
    }
    let owner = b.owner_of(file, kind);
    Some(match ensure_service(b, &owner, kind, file, 0..0) {
        Ensure::OtherKind(other) => {
            let name = if owner == kind { format!("{kind}-1") } else { kind.to_string() };
            note(b, file, 0..0, format!("`{owner}` is a {other} service; this {file_name} is read into service `{name}`"));
            ensure_service(b, &name, kind, file, 0..0);
            name
        }
        _ => owner,
    })
}

pub fn ensure_service(b: &mut ImportBuilder, name: &str, kind: &str, file: FileId, bytes: Range<usize>) -> Ensure {
    match kind_of(b, name) {
        Some(k) if k == kind => Ensure::Existed,
        Some(k) => Ensure::OtherKind(k),
        None => {
            let existed = b.has_service(name);
            b.mark(&p(&["services", name]), file, bytes.clone());
            b.set(&p(&["services", name, "kind"]), json!(kind), file, bytes);
            if existed { Ensure::Existed } else { Ensure::Created }
        }
    }
}

/// How much has been read through includes.
#[derive(Debug, Default)]
pub struct Budget {
    pub files: usize,
    pub bytes: usize,
    pub exhausted: bool,
}

/// Reads an included file into the builder (reporting size, budget and binary
/// problems at the include, `at` in `from`).
pub fn open_include(b: &mut ImportBuilder, budget: &mut Budget, from: FileId, at: Range<usize>, path: &Path) -> Option<FileId> {
    if budget.exhausted {
        return None;
    }
    if budget.files >= MAX_INCLUDED_FILES || budget.bytes >= MAX_INCLUDED_BYTES {
        budget.exhausted = true;
        b.unparsable(
            from,
            at,
            format!("include `{}`: more than {MAX_INCLUDED_FILES} files or {} MiB read through includes; the rest is not read", path.display(), MAX_INCLUDED_BYTES >> 20),
            "include fewer files",
        );
        return None;
    }
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if size > load::yaml::MAX_INPUT_BYTES as u64 {
        b.unparsable(from, at, format!("include `{}` is larger than {} bytes; not read", path.display(), load::yaml::MAX_INPUT_BYTES), "is this a config file?");
        return None;
    }
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            b.unparsable(from, at, format!("cannot read include `{}`: {e}", path.display()), "check the path and permissions");
            return None;
        }
    };
    budget.files += 1;
    budget.bytes += bytes.len();
    match String::from_utf8(bytes) {
        Ok(text) => {
            let id = b.add_source(SourceFile::new(path, text));
            if reject_binary(b, id) { None } else { Some(id) }
        }
        Err(_) => {
            let id = b.add_source(SourceFile::new(path, String::new()));
            let line = line_of(b, from, at.start);
            let shown = b.sources.get(from).map(|s| s.path.display().to_string()).unwrap_or_default();
            b.unparsable(id, 0..0, format!("{} is not a text file (included from {shown}:{line})", path.display()), "include text config files only");
            None
        }
    }
}

/// Whether a pattern has glob characters.
pub fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Shell-style match of one path component: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`.
pub fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    // A set `[...]` at p[pi]: (matches c, length of the set) or None when not a set.
    let set = |pi: usize, c: char| -> Option<(bool, usize)> {
        let mut i = pi + 1;
        let negate = matches!(p.get(i), Some('!' | '^'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < p.len() && (p[i] != ']' || first) {
            if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                matched |= p[i] <= c && c <= p[i + 2];
                i += 3;
            } else {
                matched |= p[i] == c;
                i += 1;
            }
            first = false;
        }
        if i >= p.len() {
            return None;
        }
        Some((matched != negate, i + 1 - pi))
    };
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => match set(pi, n[ni]) {
                Some((true, len)) => Some(len),
                Some((false, _)) => None,
                None => (n[ni] == '[').then_some(1),
            },
            Some(c) => (*c == n[ni]).then_some(1),
            None => None,
        };
        match step {
            Some(len) => {
                pi += len;
                ni += 1;
            }
            None => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    while p.get(pi) == Some(&'*') {
        pi += 1;
    }
    pi == p.len()
}

/// Files matching a path pattern (globs in any component; sorted; hidden files only
/// when the pattern component starts with `.`).
pub fn glob(pattern: &Path) -> Vec<PathBuf> {
    let text = pattern.to_string_lossy();
    if !has_wildcard(&text) {
        return if pattern.is_file() { vec![pattern.to_path_buf()] } else { Vec::new() };
    }
    let mut current: Vec<PathBuf> = vec![PathBuf::new()];
    let components: Vec<std::path::Component> = pattern.components().collect();
    for (i, component) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let part = component.as_os_str().to_string_lossy().into_owned();
        let mut next = Vec::new();
        for base in &current {
            if has_wildcard(&part) {
                let dir = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base.clone() };
                let Ok(entries) = std::fs::read_dir(&dir) else { continue };
                let mut names: Vec<String> = entries.take(MAX_DIR_ENTRIES).filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
                names.sort();
                for name in names {
                    if name.starts_with('.') && !part.starts_with('.') {
                        continue;
                    }
                    if wildcard(&part, &name) {
                        next.push(base.join(&name));
                    }
                }
            } else {
                next.push(base.join(component.as_os_str()));
            }
        }
        current = next.into_iter().filter(|p| if last { p.is_file() } else { p.is_dir() }).collect();
        if current.is_empty() {
            break;
        }
    }
    current
}

/// Resolves an include pattern: relative to the including file's directory, then to
/// `root` (the main file's). An absolute path is read as written when the including
/// file lives under the same top directories (a config read in place), else its
/// tail is looked for next to the files (a repository copy of `/etc/...`).
/// Returns the files and whether the pattern was a glob.
pub fn resolve_include(including: &Path, root: &Path, pattern: &str) -> (Vec<PathBuf>, bool) {
    let is_glob = has_wildcard(pattern);
    let including_dir = including.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut bases: Vec<PathBuf> = vec![including_dir.clone()];
    if !bases.contains(&root.to_path_buf()) {
        bases.push(root.to_path_buf());
    }
    let target = Path::new(pattern);
    if !target.is_absolute() {
        for base in &bases {
            let found = glob(&base.join(target));
            if !found.is_empty() {
                return (found, is_glob);
            }
        }
        return (Vec::new(), is_glob);
    }
    let parts: Vec<String> = target.components().skip(1).map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    let here = canonical(&including_dir);
    let top: PathBuf = std::iter::once("/".to_string()).chain(parts.iter().take(2.min(parts.len().saturating_sub(1))).cloned()).collect();
    if here.starts_with(&top) && top.components().count() > 1 {
        return (glob(target), is_glob);
    }
    if let Some(parent) = root.parent() {
        bases.push(parent.to_path_buf());
    }
    for k in 0..parts.len() {
        let tail = &parts[k..];
        if tail.len() < 2 && tail.last().is_some_and(|l| has_wildcard(l)) {
            break;
        }
        let relative: PathBuf = tail.iter().collect();
        for base in &bases {
            let found = glob(&base.join(&relative));
            if !found.is_empty() {
                return (found, is_glob);
            }
        }
    }
    (Vec::new(), is_glob)
}
