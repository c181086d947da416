//! Reader for pgbouncer.ini (and the PGBOUNCER_* environment of common images).
//!
//! The syntax is PgBouncer's own (libusual `cfparser.c`): `[section]` headers,
//! `key = value` lines, comment lines starting with `;` or `#`, and `%include FILE`
//! (nested at most 10 deep). A `;` or `#` later in a line is NOT a comment: the value
//! runs to the end of the line, so `max_client_conn = 2000  # was 1000` makes
//! PgBouncer refuse to start. Such lines are reported as errors (with the value the
//! author meant still read, so the other checks run). Time values are seconds, with
//! fractions.

use std::ops::Range;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::import::shared::conf::*;
use crate::import::{FileId, ImportBuilder};
use crate::spec::Duration;

/// PgBouncer's own include depth limit (libusual MAX_INCLUDE).
const MAX_INCLUDE_DEPTH: usize = 10;

/// Settings PgBouncer knows (1.24), for telling typos from settings headroom skips.
const KNOWN: &[&str] = &[
    "admin_users", "application_name_add_host", "auth_dbname", "auth_file", "auth_hba_file", "auth_ident_file", "auth_ldap_options", "auth_query", "auth_type", "auth_user",
    "autodb_idle_timeout", "cancel_wait_timeout", "client_idle_timeout", "client_login_timeout", "client_tls13_ciphers", "client_tls_ca_file", "client_tls_cert_file", "client_tls_ciphers",
    "client_tls_dheparams", "client_tls_ecdhcurve", "client_tls_key_file", "client_tls_protocols", "client_tls_sslmode", "conffile", "default_pool_size", "disable_pqexec", "dns_max_ttl",
    "dns_nxdomain_ttl", "dns_zone_check_period", "idle_transaction_timeout", "ignore_startup_parameters", "job_name", "listen_addr", "listen_backlog", "listen_port", "log_connections",
    "log_disconnections", "log_pooler_errors", "log_stats", "logfile", "max_client_conn", "max_db_client_connections", "max_db_connections", "max_packet_size", "max_prepared_statements",
    "max_user_client_connections", "max_user_connections", "min_pool_size", "peer_id", "pidfile", "pkt_buf", "pool_mode", "query_timeout", "query_wait_notify", "query_wait_timeout",
    "reserve_pool_size", "reserve_pool_timeout", "resolv_conf", "sbuf_loopcnt", "scram_iterations", "server_check_delay", "server_check_query", "server_connect_timeout", "server_fast_close",
    "server_idle_timeout", "server_lifetime", "server_login_retry", "server_reset_query", "server_reset_query_always", "server_round_robin", "server_tls13_ciphers", "server_tls_ca_file",
    "server_tls_cert_file", "server_tls_ciphers", "server_tls_key_file", "server_tls_protocols", "server_tls_sslmode", "service_name", "so_reuseport", "stats_period", "stats_users",
    "suspend_timeout", "syslog", "syslog_facility", "syslog_ident", "tcp_defer_accept", "tcp_keepalive", "tcp_keepcnt", "tcp_keepidle", "tcp_keepintvl", "tcp_socket_buffer",
    "tcp_user_timeout", "track_extra_parameters", "transaction_timeout", "unix_socket_dir", "unix_socket_group", "unix_socket_mode", "user", "verbose",
];

/// A `[databases]` entry, handled once the whole file (and its includes) is read.
struct DbEntry {
    file: FileId,
    name: String,
    line: Range<usize>,
    value: String,
    value_start: usize,
}

struct State {
    svc: String,
    section: Option<String>,
    section_reported: bool,
    databases: Vec<DbEntry>,
    users_reported: bool,
    stack: Vec<PathBuf>,
    budget: Budget,
    saw_main: bool,
}

/// Reads a pgbouncer.ini into the pgbouncer service that owns the file.
pub fn read_pgbouncer(builder: &mut ImportBuilder, file: FileId) {
    let Some(svc) = claim_service(builder, file, "pgbouncer", "pgbouncer.ini") else { return };
    let path = builder.sources[file].path.clone();
    let mut state = State {
        svc,
        section: None,
        section_reported: false,
        databases: Vec::new(),
        users_reported: false,
        stack: vec![canonical(&path)],
        budget: Budget::default(),
        saw_main: false,
    };
    parse_file(builder, file, &mut state);
    if !state.saw_main {
        note(builder, file, 0..0, format!("{} has no [pgbouncer] section (PgBouncer needs one; fine if another file includes this one)", path.display()));
    }
    let entries = std::mem::take(&mut state.databases);
    for entry in entries {
        database(builder, &state.svc, entry);
    }
}

/// Position of an inline `#`/`;` (after whitespace), which PgBouncer does not treat as
/// a comment.
fn inline_comment(value: &str) -> Option<usize> {
    let b = value.as_bytes();
    (1..b.len()).find(|&i| matches!(b[i], b'#' | b';') && b[i - 1].is_ascii_whitespace())
}

fn parse_file(b: &mut ImportBuilder, file: FileId, st: &mut State) {
    let text = b.sources[file].text.clone();
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let line_start = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let body = line.trim_start();
        let start = line_start + (line.len() - body.len());
        let end = line_start + line.trim_end().len();
        if body.is_empty() {
            continue;
        }
        if let Some(rest) = body.strip_prefix("%include")
            && rest.starts_with([' ', '\t'])
        {
            include(b, file, st, rest.trim(), start..end);
            continue;
        }
        if body.starts_with(['#', ';']) {
            continue;
        }
        if let Some(rest) = body.strip_prefix('[') {
            match rest.find(']') {
                Some(i) => {
                    let written = rest[..i].trim();
                    let name = written.to_ascii_lowercase();
                    st.section_reported = false;
                    if name != written && matches!(name.as_str(), "pgbouncer" | "databases" | "users" | "peers") {
                        b.unparsable(file, start..end, format!("PgBouncer section names are case-sensitive: it rejects [{written}] and does not start"), format!("write [{name}]"));
                    }
                    match name.as_str() {
                        "pgbouncer" => st.saw_main = true,
                        "databases" | "users" | "peers" => {}
                        _ => b.unparsable(file, start..end, format!("unknown section [{}]: PgBouncer refuses to start", &rest[..i]), "sections are [databases], [pgbouncer], [users] and [peers]"),
                    }
                    st.section = Some(name);
                }
                None => b.unparsable(file, start..end, "PgBouncer syntax: section header without `]`", "write `[pgbouncer]`"),
            }
            continue;
        }
        // A [databases] name may be double-quoted ("my db" = ...).
        let (key, klen) = match body.strip_prefix('"').and_then(|r| r.find('"')) {
            Some(close) => (body[1..close + 1].to_string(), close + 2),
            None => {
                let klen = body.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '*'))).unwrap_or(body.len());
                (body[..klen].to_string(), klen)
            }
        };
        let after_key = body[klen..].trim_start_matches([' ', '\t']);
        let Some(after_eq) = after_key.strip_prefix('=').filter(|_| !key.is_empty()) else {
            b.unparsable(file, start..end, format!("PgBouncer syntax: expected `key = value`, found `{}`; PgBouncer stops loading here", body.escape_debug()), "write `key = value`, or start the line with `;` to comment it");
            continue;
        };
        let key = key.as_str();
        let value = after_eq.trim_start_matches([' ', '\t']).trim_end();
        let value_start = end - value.len();
        match st.section.as_deref() {
            None => b.unparsable(file, start..end, format!("`{key}` is outside any section: PgBouncer refuses to start"), "put settings under [pgbouncer]"),
            Some("pgbouncer") => setting(b, &st.svc, key, value, file, start..end),
            Some("databases") => st.databases.push(DbEntry { file, name: key.to_string(), line: start..end, value: value.to_string(), value_start }),
            Some("users") => {
                if !st.users_reported {
                    st.users_reported = true;
                    b.ignored(file, start..end, "[users] settings (per-user pool_mode, max_user_connections) are not modelled");
                }
            }
            Some("peers") => {
                if !st.section_reported {
                    st.section_reported = true;
                    b.ignored(file, start..end, "[peers] (PgBouncer peering) is not modelled");
                }
            }
            Some(_) => {}
        }
    }
}

fn include(b: &mut ImportBuilder, file: FileId, st: &mut State, target: &str, at: Range<usize>) {
    if st.stack.len() > MAX_INCLUDE_DEPTH {
        b.unparsable(file, at, format!("%include `{target}`: includes nested deeper than {MAX_INCLUDE_DEPTH} levels (PgBouncer stops loading)"), "flatten the includes");
        return;
    }
    let including = b.sources[file].path.clone();
    let root = st.stack.first().and_then(|p| p.parent()).map(PathBuf::from).unwrap_or_default();
    let (paths, _) = resolve_include(&including, &root, target);
    let Some(path) = paths.into_iter().next() else {
        b.ignored(file, at, format!("%include `{target}`: no such file next to {} (pass it too)", including.display()));
        return;
    };
    let key = canonical(&path);
    if let Some(pos) = st.stack.iter().position(|p| *p == key) {
        let name = |p: &PathBuf| p.file_name().map_or(p.display().to_string(), |n| n.to_string_lossy().into_owned());
        let chain: Vec<String> = st.stack[pos..].iter().chain(std::iter::once(&key)).map(name).collect();
        b.unparsable(file, at, format!("include loop: {}", chain.join(" -> ")), "remove the %include that leads back to a file already being read");
        return;
    }
    let Some(id) = open_include(b, &mut st.budget, file, at, &path) else { return };
    st.stack.push(key);
    parse_file(b, id, st);
    st.stack.pop();
}

/// A [pgbouncer] setting from the file: modelled keys through
/// `apply_pgbouncer_setting`, others checked for what makes PgBouncer refuse them.
fn setting(b: &mut ImportBuilder, svc: &str, key: &str, value: &str, file: FileId, bytes: Range<usize>) {
    let lower = key.to_ascii_lowercase();
    if lower != key && KNOWN.contains(&lower.as_str()) {
        b.unparsable(
            file,
            bytes.clone(),
            format!("PgBouncer setting names are case-sensitive: it does not know `{key}` and refuses to start"),
            format!("write `{lower}`"),
        );
    }
    if apply_pgbouncer_setting(b, svc, key, value, file, bytes.clone()) {
        return;
    }
    if !KNOWN.contains(&lower.as_str()) {
        b.ignored(file, bytes, format!("unknown PgBouncer setting `{key}` (PgBouncer refuses to start on settings it does not know; check the spelling)"));
        return;
    }
    if let Some(cut) = inline_comment(value) {
        let meant = value[..cut].trim_end();
        if parse_number(meant).is_ok() {
            b.unparsable(
                file,
                bytes,
                format!("PgBouncer reads `{value}` as the value of {key}: `#` and `;` start a comment only at the beginning of a line, so PgBouncer rejects it and does not start"),
                format!("write `{key} = {meant}` and move the comment to its own line"),
            );
        }
    }
}

#[derive(Clone, Copy)]
enum Type {
    Count,
    /// At least 1 (the spec's minimum).
    Positive,
    Port,
    Seconds,
    PoolMode,
    Auth,
    Text,
}

/// strtol(value, 0): decimal, 0x hex, leading-0 octal; the whole text.
fn parse_number(text: &str) -> Result<i64, ()> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let value = if let Some(hex) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).map_err(|_| ())?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).map_err(|_| ())?
    } else {
        digits.parse::<i64>().map_err(|_| ())?
    };
    Ok(if negative { -value } else { value })
}

/// Seconds with fractions (PgBouncer's time values), in milliseconds.
fn parse_seconds(text: &str) -> Result<u64, ()> {
    if text.is_empty() || !text.bytes().all(|c| c.is_ascii_digit() || c == b'.') || text.matches('.').count() > 1 || text == "." {
        return Err(());
    }
    let v: f64 = text.parse().map_err(|_| ())?;
    let ms = (v * 1000.0).round();
    if !(0.0..1e15).contains(&ms) {
        return Err(());
    }
    Ok(ms as u64)
}

/// What the value means, as JSON for the spec; Err(expected) when PgBouncer would
/// reject it; Ok(None) when valid but not modelled.
fn convert(ty: Type, value: &str) -> Result<Option<Value>, &'static str> {
    match ty {
        Type::Count => match parse_number(value) {
            Ok(n) if n >= 0 => Ok(Some(json!(n))),
            _ => Err("a whole number"),
        },
        Type::Positive => match parse_number(value) {
            Ok(n) if n >= 1 => Ok(Some(json!(n))),
            Ok(0) => Ok(None),
            _ => Err("a positive whole number"),
        },
        Type::Port => match parse_number(value) {
            Ok(n) if (1..=65535).contains(&n) => Ok(Some(json!(n))),
            _ => Err("a port number (1-65535)"),
        },
        Type::Seconds => parse_seconds(value).map(|ms| Some(json!(Duration::from_millis(ms).to_string()))).map_err(|_| "a number of seconds (fractions allowed, no unit)"),
        Type::PoolMode => match value.to_ascii_lowercase().as_str() {
            m @ ("session" | "transaction" | "statement") => Ok(Some(json!(m))),
            _ => Err("session, transaction or statement"),
        },
        Type::Auth => match value.to_ascii_lowercase().as_str() {
            m @ ("scram-sha-256" | "md5" | "plain" | "trust" | "cert" | "hba") => Ok(Some(json!(m))),
            "pam" | "any" | "ldap" => Ok(None),
            _ => Err("an auth type (scram-sha-256, md5, plain, trust, cert, hba, pam, any)"),
        },
        Type::Text => Ok(Some(json!(value))),
    }
}

/// Applies one PgBouncer setting (from the ini, or from a PGBOUNCER_* variable) to a
/// service. Returns false when headroom does not model the key.
pub fn apply_pgbouncer_setting(builder: &mut ImportBuilder, service: &str, key: &str, value: &str, file: FileId, bytes: std::ops::Range<usize>) -> bool {
    let lower = key.trim().to_ascii_lowercase();
    let name = lower.strip_prefix("pgbouncer_").unwrap_or(&lower);
    let (spec_key, ty) = match name {
        "pool_mode" => ("pool_mode", Type::PoolMode),
        "max_client_conn" => ("max_client_conn", Type::Count),
        "default_pool_size" => ("default_pool_size", Type::Count),
        "min_pool_size" => ("min_pool_size", Type::Count),
        "reserve_pool_size" | "reserve_pool" => ("reserve_pool_size", Type::Count),
        "max_db_connections" => ("max_db_connections", Type::Count),
        "max_user_connections" => ("max_user_connections", Type::Count),
        "max_prepared_statements" => ("max_prepared_statements", Type::Count),
        "listen_backlog" => ("listen_backlog", Type::Positive),
        "listen_port" | "port" => ("port", Type::Port),
        "reserve_pool_timeout" => ("reserve_pool_timeout", Type::Seconds),
        "query_wait_timeout" => ("query_wait_timeout", Type::Seconds),
        "server_idle_timeout" => ("server_idle_timeout", Type::Seconds),
        "server_lifetime" => ("server_lifetime", Type::Seconds),
        "auth_type" => ("auth_type", Type::Auth),
        "auth_file" => ("auth_file", Type::Text),
        _ => return false,
    };
    let value = value.trim();
    let path = p(&["services", service, spec_key]);
    let comment = inline_comment(value);
    let whole = match ty {
        Type::Text if comment.is_some() => Err("a value without a trailing comment"),
        _ => convert(ty, value),
    };
    match whole {
        Ok(Some(v)) => builder.set(&path, v, file, bytes),
        Ok(None) => builder.ignored(file, bytes, format!("{name} = {value}: not modelled")),
        Err(expected) => {
            let meant = comment.map(|cut| value[..cut].trim_end()).and_then(|m| convert(ty, m).ok().map(|v| (m, v)));
            match meant {
                Some((meant, v)) => {
                    builder.unparsable(
                        file,
                        bytes.clone(),
                        format!("PgBouncer reads `{value}` as the value of {name}: `#` and `;` start a comment only at the beginning of a line, so PgBouncer rejects it and does not start"),
                        format!("write `{name} = {meant}` and move the comment to its own line"),
                    );
                    if let Some(v) = v {
                        builder.set(&path, v, file, bytes);
                    }
                }
                None => builder.unparsable(file, bytes, format!("PgBouncer rejects `{name} = {value}`: expected {expected}"), format!("set {name} to {expected}")),
            }
        }
    }
    true
}

/// `key=value key='quoted value'` pairs of a [databases] connection string, with the
/// byte range of each value (relative to the string). Err(offset) on a syntax error.
fn connstring(text: &str) -> Result<Vec<(String, String, Range<usize>)>, usize> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            return Ok(out);
        }
        let key_start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        if i == key_start {
            return Err(i);
        }
        let key = text[key_start..i].to_ascii_lowercase();
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            return Err(i);
        }
        i += 1;
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let value_start = i;
        let mut value = String::new();
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            loop {
                if i >= b.len() {
                    return Err(value_start);
                }
                if b[i] == b'\'' {
                    if i + 1 < b.len() && b[i + 1] == b'\'' {
                        value.push('\'');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                let ch = text[i..].chars().next().unwrap_or('\u{fffd}');
                value.push(ch);
                i += ch.len_utf8();
            }
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            value = text[value_start..i].to_string();
        }
        out.push((key, value, value_start..i));
    }
}

fn database(b: &mut ImportBuilder, svc: &str, entry: DbEntry) {
    let DbEntry { file, name, line, value, value_start } = entry;
    let pairs = match connstring(&value) {
        Ok(pairs) => pairs,
        Err(at) => {
            let hint = match inline_comment(&value) {
                Some(_) => "move the comment to its own line: PgBouncer does not strip comments after values".to_string(),
                None => "write `name = host=HOST port=5432 dbname=DB`".to_string(),
            };
            let pos = value_start + at.min(value.len());
            b.unparsable(file, pos..line.end, format!("PgBouncer rejects the connection string of database `{name}` (syntax error at column {})", at + 1), hint);
            return;
        }
    };
    let get = |k: &str| pairs.iter().find(|(key, _, _)| key == k).map(|(_, v, r)| (v.clone(), value_start + r.start..value_start + r.end));
    let host = get("host").map(|(h, r)| (h.split(',').next().unwrap_or("").trim().to_string(), r));
    let host_name = host.as_ref().map(|(h, _)| h.as_str()).filter(|h| !h.is_empty() && !h.starts_with('/') && !h.starts_with('@'));
    let (pg, _) = service_for_host(b, host_name, &["postgres"], "postgres", false);
    if pg == svc {
        b.ignored(file, line, format!("database `{name}` points at `{pg}`, this pgbouncer itself"));
        return;
    }
    let at = host.as_ref().map_or(line.clone(), |(_, r)| r.clone());
    match ensure_service(b, &pg, "postgres", file, at.clone()) {
        Ensure::OtherKind(kind) => {
            b.ignored(file, line, format!("database `{name}` points at `{pg}`, a {kind} service: not modelled as the postgres this pgbouncer pools for"));
            return;
        }
        Ensure::Created => {
            let shown = host_name.unwrap_or("a local socket");
            b.assumed(
                format!("pgbouncer database `{name}` connects to `{shown}`: created postgres service `{pg}` (its max_connections etc. are not in these files)"),
                format!("pass the postgres config (postgresql.conf, compose service) or set services.{pg} in an overlay"),
            );
        }
        Ensure::Existed => {}
    }
    let dbname = get("dbname").or_else(|| (name != "*").then(|| (name.clone(), line.start..line.start + name.len())));
    if let Some((db, r)) = dbname {
        let dbs_path = p(&["services", &pg, "databases"]);
        let mut dbs: Vec<Value> = b.get(&dbs_path).and_then(Value::as_array).cloned().unwrap_or_default();
        if !dbs.iter().any(|d| d.as_str() == Some(db.as_str())) {
            dbs.push(json!(db));
            b.set(&dbs_path, Value::Array(dbs), file, r);
        }
    }
    if let Some((port, r)) = get("port")
        && let Ok(port) = port.parse::<u16>()
    {
        let port_path = p(&["services", &pg, "port"]);
        if b.get(&port_path).is_none() && port > 0 {
            b.set(&port_path, json!(port), file, r);
        }
    }
    let uses_path = p(&["services", svc, "uses", &pg]);
    if b.get(&uses_path).is_none() {
        b.set(&uses_path, json!({}), file, line.clone());
    }
    let default = b.get(&p(&["services", svc, "default_pool_size"])).and_then(Value::as_u64);
    if let Some((size, r)) = get("pool_size") {
        let shown_default = default.map_or("20 (PgBouncer's default)".to_string(), |d| d.to_string());
        if size.parse::<u64>().ok() != Some(default.unwrap_or(20)) {
            note(b, file, r, format!("database `{name}` sets pool_size={size}, but headroom sizes every pool by default_pool_size {shown_default}"));
        }
    }
    for (key, what) in [("max_db_connections", "a per-database max_db_connections"), ("pool_mode", "a per-database pool_mode"), ("reserve_pool", "a per-database reserve_pool")] {
        if let Some((v, r)) = get(key) {
            let global = b.get(&p(&["services", svc, key])).and_then(|g| g.as_str().map(str::to_string).or_else(|| g.as_u64().map(|n| n.to_string())));
            if global.as_deref() != Some(v.as_str()) {
                note(b, file, r, format!("database `{name}` sets {what} ({key}={v}); headroom models the [pgbouncer] value for every database"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    fn read_text(text: &str) -> ImportBuilder {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("ini-test-does-not-exist/pgbouncer.ini", text.to_string()));
        read_pgbouncer(&mut b, id);
        b
    }

    fn line(b: &ImportBuilder, path: &str) -> usize {
        b.origin_line(path)
    }

    fn errors(b: &ImportBuilder) -> Vec<String> {
        b.unparsable_lines()
    }

    const KAMAL: &str = "\
[databases]
subcontractor_production = host=192.168.1.31 port=5432 dbname=subcontractor_production

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
auth_type = md5
auth_file = /etc/pgbouncer/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 25
min_pool_size = 5
reserve_pool_size = 5
reserve_pool_timeout = 3
server_lifetime = 3600
server_idle_timeout = 600
server_connect_timeout = 15
server_login_retry = 3
query_timeout = 30
query_wait_timeout = 30
client_idle_timeout = 600
";

    #[test]
    fn reads_settings_with_lines() {
        let b = read_text(KAMAL);
        assert!(errors(&b).is_empty(), "{:?}", errors(&b));
        let s = b.get("services.pgbouncer").unwrap();
        assert_eq!(s["kind"], json!("pgbouncer"));
        assert_eq!(s["port"], json!(6432));
        assert_eq!(s["auth_type"], json!("md5"));
        assert_eq!(s["auth_file"], json!("/etc/pgbouncer/userlist.txt"));
        assert_eq!(s["pool_mode"], json!("transaction"));
        assert_eq!(s["max_client_conn"], json!(1000));
        assert_eq!(s["default_pool_size"], json!(25));
        assert_eq!(s["min_pool_size"], json!(5));
        assert_eq!(s["reserve_pool_size"], json!(5));
        assert_eq!(s["reserve_pool_timeout"], json!("3s"));
        assert_eq!(s["server_lifetime"], json!("1h"));
        assert_eq!(s["server_idle_timeout"], json!("10m"));
        assert_eq!(s["query_wait_timeout"], json!("30s"));
        assert_eq!(line(&b, "services.pgbouncer.max_client_conn"), 10);
        assert_eq!(line(&b, "services.pgbouncer.default_pool_size"), 11);
    }

    #[test]
    fn databases_create_the_postgres_service_and_the_use() {
        let b = read_text(KAMAL);
        assert_eq!(b.get("services.postgres.kind"), Some(&json!("postgres")));
        assert_eq!(b.get("services.postgres.databases"), Some(&json!(["subcontractor_production"])));
        assert_eq!(b.get("services.postgres.port"), Some(&json!(5432)));
        assert_eq!(b.get("services.pgbouncer.uses.postgres"), Some(&json!({})));
        assert_eq!(line(&b, "services.pgbouncer.uses.postgres"), 2);
        assert!(b.diagnostics.iter().any(|d| d.rule == crate::import::ASSUMED && d.message.contains("created postgres service `postgres`")));
    }

    #[test]
    fn an_ip_host_finds_the_only_postgres_service() {
        let mut b = ImportBuilder::new("t");
        b.set("services.db.kind", json!("postgres"), 0, 0..0);
        b.set("services.db.databases", json!(["other"]), 0, 0..0);
        let id = b.add_source(SourceFile::new("x/pgbouncer.ini", KAMAL.to_string()));
        read_pgbouncer(&mut b, id);
        assert_eq!(b.get("services.pgbouncer.uses.db"), Some(&json!({})));
        assert_eq!(b.get("services.db.databases"), Some(&json!(["other", "subcontractor_production"])));
        assert!(!b.has_service("postgres"));
    }

    #[test]
    fn a_host_name_names_the_service() {
        let b = read_text("[databases]\napp = host=db.internal dbname=app pool_size=40\n[pgbouncer]\ndefault_pool_size = 20\n");
        assert_eq!(b.get("services.pgbouncer.uses.db"), Some(&json!({})));
        assert_eq!(b.get("services.db.databases"), Some(&json!(["app"])));
        assert!(b.diagnostics.iter().any(|d| d.message.contains("pool_size=40") && d.span.as_ref().is_some_and(|s| s.line == 2)));
    }

    #[test]
    fn inline_comments_are_errors_but_the_meant_value_is_read() {
        let b = read_text("[pgbouncer]\npool_mode = transaction\n\nmax_client_conn = 2000          # Was: 1000\nquery_timeout = 60              # Increased from 30\nauth_file = /etc/x ; old\n");
        let e = errors(&b);
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("4 ") && e[0].contains("PgBouncer reads `2000          # Was: 1000`"), "{e:?}");
        assert!(e[1].starts_with("5 ") && e[1].contains("query_timeout"), "{e:?}");
        assert!(e[2].starts_with("6 "), "{e:?}");
        assert_eq!(b.get("services.pgbouncer.max_client_conn"), Some(&json!(2000)));
        assert_eq!(b.get("services.pgbouncer.auth_file"), Some(&json!("/etc/x")));
    }

    #[test]
    fn bad_values_and_syntax_are_errors_with_lines() {
        let b = read_text("[pgbouncer]\npool_mode = sometimes\nmax_client_conn = lots\nthis line has no equals\nlisten_port = 99999\nreserve_pool_timeout = 5s\n");
        let e = errors(&b);
        assert_eq!(e.len(), 5, "{e:?}");
        for (i, n) in [2, 3, 4, 5, 6].iter().enumerate() {
            assert!(e[i].starts_with(&format!("{n} ")), "{e:?}");
        }
        let b = read_text("max_client_conn = 10\n[weird]\n[pgbouncer\n");
        let e = errors(&b);
        assert_eq!(e.len(), 3, "{e:?}");
    }

    #[test]
    fn keys_are_read_case_insensitively_but_reported_and_numbers_as_strtol() {
        let b = read_text("[PgBouncer]\nMAX_CLIENT_CONN = 0x10\ndefault_pool_size = 010\n");
        let e = errors(&b);
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("1 ") && e[0].contains("[PgBouncer]"), "{e:?}");
        assert!(e[1].starts_with("2 ") && e[1].contains("case-sensitive"), "{e:?}");
        assert_eq!(b.get("services.pgbouncer.max_client_conn"), Some(&json!(16)));
        assert_eq!(b.get("services.pgbouncer.default_pool_size"), Some(&json!(8)));
    }

    #[test]
    fn unknown_settings_are_notes_and_known_unmodelled_are_silent() {
        let b = read_text("[pgbouncer]\nmax_clinet_conn = 10\nserver_connect_timeout = 15\n");
        assert!(errors(&b).is_empty());
        let notes: Vec<&String> = b.diagnostics.iter().map(|d| &d.message).collect();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("unknown PgBouncer setting `max_clinet_conn`"));
    }

    #[test]
    fn env_style_keys() {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("docker-compose.yml", "PGBOUNCER_MAX_CLIENT_CONN: 1000\n".into()));
        assert!(apply_pgbouncer_setting(&mut b, "pgb", "PGBOUNCER_MAX_CLIENT_CONN", "1000", id, 0..30));
        assert!(apply_pgbouncer_setting(&mut b, "pgb", "PGBOUNCER_SERVER_IDLE_TIMEOUT", "600", id, 0..30));
        assert!(apply_pgbouncer_setting(&mut b, "pgb", "PGBOUNCER_PORT", "6432", id, 0..30));
        assert!(apply_pgbouncer_setting(&mut b, "pgb", "POOL_MODE", "Transaction", id, 0..30));
        assert!(!apply_pgbouncer_setting(&mut b, "pgb", "PGBOUNCER_LOG_CONNECTIONS", "0", id, 0..30));
        assert_eq!(b.get("services.pgb.max_client_conn"), Some(&json!(1000)));
        assert_eq!(b.get("services.pgb.server_idle_timeout"), Some(&json!("10m")));
        assert_eq!(b.get("services.pgb.port"), Some(&json!(6432)));
        assert_eq!(b.get("services.pgb.pool_mode"), Some(&json!("transaction")));
    }

    #[test]
    fn connstrings() {
        let pairs = connstring("host=db port=5432 dbname='my db' password='it''s'").unwrap();
        assert_eq!(pairs[2].1, "my db");
        assert_eq!(pairs[3].1, "it's");
        assert!(connstring("host=db dbname='x").is_err());
        assert!(connstring("=x").is_err());
        let b = read_text("[databases]\napp = host=db dbname='broken\n[pgbouncer]\n");
        assert!(errors(&b).iter().any(|e| e.starts_with("2 ")), "{:?}", errors(&b));
    }

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("3"), Ok(3000));
        assert_eq!(parse_seconds("0.5"), Ok(500));
        assert!(parse_seconds("5s").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("1e99").is_err());
    }

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    fn read_path(path: &std::path::Path) -> ImportBuilder {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new(path, std::fs::read_to_string(path).unwrap()));
        read_pgbouncer(&mut b, id);
        b
    }

    #[test]
    fn includes_loops_and_depth() {
        let dir = temp();
        std::fs::write(dir.path().join("main.ini"), "[pgbouncer]\n%include limits.ini\npool_mode = session\n").unwrap();
        std::fs::write(dir.path().join("limits.ini"), "max_client_conn = 500\n%include main.ini\n").unwrap();
        let b = read_path(&dir.path().join("main.ini"));
        assert_eq!(b.get("services.pgbouncer.max_client_conn"), Some(&json!(500)));
        assert_eq!(line(&b, "services.pgbouncer.max_client_conn"), 1);
        let e = errors(&b);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("2 ") && e[0].contains("include loop: main.ini -> limits.ini -> main.ini"), "{e:?}");
        for i in 0..15 {
            std::fs::write(dir.path().join(format!("d{i}.ini")), format!("%include d{}.ini\n", i + 1)).unwrap();
        }
        std::fs::write(dir.path().join("d15.ini"), "[pgbouncer]\n").unwrap();
        let b = read_path(&dir.path().join("d0.ini"));
        assert!(errors(&b).iter().any(|e| e.contains("nested deeper than 10")), "{:?}", errors(&b));
    }

    fn add_fixture(b: &mut ImportBuilder, rel: &str) -> FileId {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import").join(rel);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{rel}: {e}"));
        b.add_source(SourceFile::new(path, text))
    }

    #[test]
    fn django_compose_fixture_inline_comments_stop_pgbouncer() {
        let mut b = ImportBuilder::new("arena");
        let id = add_fixture(&mut b, "django-compose/pgbouncer/pgbouncer.ini");
        read_pgbouncer(&mut b, id);
        let e = errors(&b);
        let lines: Vec<&str> = e.iter().map(|e| e.split(' ').next().unwrap()).collect();
        assert_eq!(lines, vec!["14", "15", "16", "17", "18", "24"], "{e:?}");
        assert!(e[0].contains("PgBouncer reads `2000          # Was: 1000` as the value of max_client_conn"), "{e:?}");
        let s = b.get("services.pgbouncer").unwrap();
        assert_eq!(s["max_client_conn"], json!(2000));
        assert_eq!(s["default_pool_size"], json!(50));
        assert_eq!(s["reserve_pool_size"], json!(10));
        assert_eq!(s["max_db_connections"], json!(100));
        assert_eq!(s["max_user_connections"], json!(100));
        assert_eq!(s["pool_mode"], json!("transaction"));
        assert_eq!(s["query_wait_timeout"], json!("2m"));
        assert_eq!(s["uses"], json!({"arena-postgres": {}}));
        assert_eq!(b.get("services.arena-postgres.databases"), Some(&json!(["arena"])));
        assert_eq!(line(&b, "services.pgbouncer.max_client_conn"), 14);
    }

    #[test]
    fn kamal_rails_fixture_finds_the_accessory_by_address() {
        let mut b = ImportBuilder::new("subcontractor");
        // what the Kamal reader makes of the `db` accessory on 192.168.1.31
        b.value["machines"] = json!({"db": {"count": 1, "addresses": ["192.168.1.31"]}, "redis": {"count": 1, "addresses": ["192.168.1.30"]}});
        b.value["services"] = json!({"db": {"kind": "postgres", "machine": "db", "databases": ["subcontractor_production"]}, "other": {"kind": "postgres", "machine": "redis"}});
        let id = add_fixture(&mut b, "kamal-rails/config/pgbouncer.ini");
        read_pgbouncer(&mut b, id);
        assert!(errors(&b).is_empty(), "{:?}", errors(&b));
        assert_eq!(b.get("services.pgbouncer.uses"), Some(&json!({"db": {}})));
        assert_eq!(b.get("services.db.databases"), Some(&json!(["subcontractor_production"])));
        assert_eq!(b.get("services.pgbouncer.max_client_conn"), Some(&json!(1000)));
        assert_eq!(b.get("services.pgbouncer.default_pool_size"), Some(&json!(25)));
        assert_eq!(b.get("services.pgbouncer.reserve_pool_timeout"), Some(&json!("3s")));
        assert_eq!(line(&b, "services.pgbouncer.default_pool_size"), 11);
        assert_eq!(line(&b, "services.pgbouncer.uses.db"), 2);
    }

    #[test]
    fn binary_is_an_error() {
        let b = read_text("[pgbouncer]\n\u{0}\u{0}\u{1}");
        assert_eq!(errors(&b).len(), 1);
        assert!(errors(&b)[0].contains("binary"));
    }
}
