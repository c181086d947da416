//! Reader for redis.conf, sentinel.conf and redis-server flags.
//!
//! Lines are split as Redis splits them (`sdssplitargs`: words, "double quoted" with
//! `\n`, `\xHH` escapes, 'single quoted'); lines starting with `#` are comments, and a
//! `#` later in a line is just another argument (so `maxmemory 2gb # cache` makes
//! Redis refuse to start: wrong number of arguments). Directive names are
//! case-insensitive. Memory sizes read as Redis reads them: `1k` = 1000, `1kb` = 1024,
//! `1m` = 1000000, `1mb` = 1048576, `1g`, `1gb`; the spec gets the exact byte count (a
//! binary unit when it divides evenly). `include` is relative to the including file,
//! globs allowed.

use std::ops::Range;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::import::shared::conf::*;
use crate::import::{FileId, ImportBuilder};
use crate::load::path as spec_path;
use crate::spec::ByteSize;

const MAX_INCLUDE_DEPTH: usize = 16;
const POLICIES: &[&str] = &["noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"];

/// Splits a config line as Redis does (`sdssplitargs`): (argument, byte range in the
/// line). Err(offset) on unbalanced quotes.
pub fn split_args(line: &str) -> Result<Vec<(String, Range<usize>)>, usize> {
    let b = line.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            return Ok(out);
        }
        let start = i;
        let mut arg: Vec<u8> = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        let mut quote_at = 0;
        loop {
            if in_double {
                if i >= b.len() {
                    return Err(quote_at);
                }
                if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' && b[i + 2].is_ascii_hexdigit() && b[i + 3].is_ascii_hexdigit() {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap_or("0");
                    arg.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                    i += 4;
                    continue;
                }
                if b[i] == b'\\' && i + 1 < b.len() {
                    arg.push(match b[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                    i += 2;
                    continue;
                }
                if b[i] == b'"' {
                    if i + 1 < b.len() && !b[i + 1].is_ascii_whitespace() {
                        return Err(i);
                    }
                    i += 1;
                    break;
                }
                arg.push(b[i]);
                i += 1;
            } else if in_single {
                if i >= b.len() {
                    return Err(quote_at);
                }
                if b[i] == b'\\' && b.get(i + 1) == Some(&b'\'') {
                    arg.push(b'\'');
                    i += 2;
                    continue;
                }
                if b[i] == b'\'' {
                    if i + 1 < b.len() && !b[i + 1].is_ascii_whitespace() {
                        return Err(i);
                    }
                    i += 1;
                    break;
                }
                arg.push(b[i]);
                i += 1;
            } else {
                if i >= b.len() || b[i].is_ascii_whitespace() {
                    break;
                }
                match b[i] {
                    b'"' => {
                        in_double = true;
                        quote_at = i;
                    }
                    b'\'' => {
                        in_single = true;
                        quote_at = i;
                    }
                    c => arg.push(c),
                }
                i += 1;
            }
        }
        out.push((String::from_utf8_lossy(&arg).into_owned(), start..i));
    }
}

/// A memory size as Redis's `memtoll` reads it, in bytes.
pub fn memtoll(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if end == 0 {
        return Err(format!("`{text}` is not a size"));
    }
    let factor: u64 = match t[end..].to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        other => return Err(format!("unknown unit `{other}` in `{text}` (Redis reads b, k, kb, m, mb, g, gb)")),
    };
    t[..end].parse::<u64>().ok().and_then(|n| n.checked_mul(factor)).ok_or_else(|| format!("`{text}` is too large"))
}

/// A size for the spec: exact bytes, in a binary unit when it divides evenly.
pub fn spec_size(bytes: u64) -> String {
    ByteSize::from_bytes(bytes).to_string()
}

fn yes_no(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

fn remove_key(b: &mut ImportBuilder, service: &str, key: &str) {
    let path = p(&["services", service, key]);
    let pointer = spec_path::to_pointer(&path);
    if let Some(map) = b.value.pointer_mut(&spec_path::to_pointer(&p(&["services", service]))).and_then(Value::as_object_mut) {
        map.remove(key);
    }
    b.origins.remove(&pointer);
}

/// Applies one redis directive (`maxmemory 8gb`, from a file or `--maxmemory 8gb`).
/// Returns false when not modelled.
pub fn apply_directive(builder: &mut ImportBuilder, service: &str, key: &str, args: &[&str], file: FileId, bytes: std::ops::Range<usize>) -> bool {
    let name = key.trim().trim_start_matches('-').to_ascii_lowercase();
    let path = |k: &str| p(&["services", service, k]);
    let shown = format!("{name} {}", args.iter().map(|a| if a.is_empty() { "\"\"".to_string() } else { a.to_string() }).collect::<Vec<_>>().join(" "));
    let reject = |b: &mut ImportBuilder, why: &str, fix: &str| {
        b.unparsable(file, bytes.clone(), format!("Redis rejects `{}`: {why}; it refuses to start", shown.trim_end()), fix.to_string());
    };
    let one = |b: &mut ImportBuilder| -> Option<String> {
        if args.len() == 1 {
            return Some(args[0].to_string());
        }
        let why = if args.iter().skip(1).any(|a| a.starts_with('#')) { "a `#` after a value is not a comment (wrong number of arguments)" } else { "wrong number of arguments" };
        reject(b, why, "one value per directive; put comments on their own line");
        None
    };
    match name.as_str() {
        "maxmemory" => {
            if let Some(v) = one(builder) {
                match memtoll(&v) {
                    Ok(n) => builder.set(&path("maxmemory"), json!(spec_size(n)), file, bytes.clone()),
                    Err(why) => reject(builder, &why, "write a size such as 8gb (1024-based) or 8g (1000-based)"),
                }
            }
        }
        "maxmemory-policy" => {
            if let Some(v) = one(builder) {
                let v = v.to_ascii_lowercase();
                if POLICIES.contains(&v.as_str()) {
                    builder.set(&path("maxmemory_policy"), json!(v), file, bytes.clone());
                } else {
                    reject(builder, "unknown eviction policy", &format!("one of {}", POLICIES.join(", ")));
                }
            }
        }
        // Where a server on a host listens (what `redis-no-auth` weighs there).
        "bind" => {
            let valid = |a: &&str| {
                let bare = a.strip_prefix('-').unwrap_or(a);
                bare == "*" || bare == "::*" || bare.parse::<std::net::IpAddr>().is_ok()
            };
            if args.is_empty() || !args.iter().all(valid) {
                builder.ignored(file, bytes.clone(), format!("`{}` names something other than IP addresses: not read", shown.trim_end()));
            } else {
                builder.set(&path("bind"), json!(args), file, bytes.clone());
            }
        }
        "maxclients" | "tcp-backlog" => {
            if let Some(v) = one(builder) {
                match v.parse::<u64>() {
                    Ok(n) if n >= 1 => builder.set(&path(&name.replace('-', "_")), json!(n), file, bytes.clone()),
                    _ => reject(builder, "expected a positive number", "write a number"),
                }
            }
        }
        "port" => {
            if let Some(v) = one(builder) {
                match v.parse::<u64>() {
                    Ok(0) => builder.ignored(file, bytes.clone(), "port 0: Redis does not listen on TCP"),
                    Ok(n) if n <= 65535 => builder.set(&path("port"), json!(n), file, bytes.clone()),
                    _ => reject(builder, "expected a port number", "write a port between 1 and 65535"),
                }
            }
        }
        "appendonly" => {
            if let Some(v) = one(builder) {
                match yes_no(&v) {
                    Some(true) => builder.set(&path("persistence"), json!("aof"), file, bytes.clone()),
                    Some(false) => {
                        if builder.get(&path("persistence")) == Some(&json!("aof")) {
                            remove_key(builder, service, "persistence");
                        }
                    }
                    None => reject(builder, "expected yes or no", "write yes or no"),
                }
            }
        }
        "save" => {
            let none = args.iter().all(|a| a.is_empty());
            let valid = none || (args.len().is_multiple_of(2) && args.iter().all(|a| a.parse::<u64>().is_ok()));
            if !valid {
                reject(builder, "save takes pairs of <seconds> <changes>, or \"\"", "write `save 3600 1 300 100` or `save \"\"`");
            } else if builder.get(&path("persistence")) != Some(&json!("aof")) {
                builder.set(&path("persistence"), json!(if none { "none" } else { "rdb" }), file, bytes.clone());
            }
        }
        // Authentication: the spec keeps the name of the secret that must hold the
        // password, never the password (which stays where it is).
        "requirepass" => {
            if let Some(v) = one(builder) {
                if v.is_empty() {
                    if builder.get(&path("password")).is_some_and(Value::is_string) {
                        remove_key(builder, service, "password");
                    }
                } else {
                    keep_password_reference(builder, service, file, bytes.clone());
                }
            }
        }
        // The default user's ACL (`user default on >secret ~* +@all`): a password or
        // `off` closes anonymous access; `nopass` opens it. Other users leave the
        // default user as it is.
        "user" if args.first().is_some_and(|u| *u == "default") => {
            let rules = &args[1..];
            let opens = rules.contains(&"nopass") && !rules.contains(&"off");
            let closes = rules.contains(&"off") || rules.iter().any(|r| r.starts_with('>') || r.starts_with('#'));
            if closes && !opens {
                keep_password_reference(builder, service, file, bytes.clone());
            } else if opens && builder.get(&path("password")).is_some_and(Value::is_string) {
                remove_key(builder, service, "password");
            }
        }
        "protected-mode" => {
            if let Some(v) = one(builder) {
                match yes_no(&v) {
                    // Off without a password: only the network keeps clients out.
                    Some(false) if !builder.get(&path("password")).is_some_and(Value::is_string) => builder.set(&path("password"), json!(false), file, bytes.clone()),
                    Some(false) => {}
                    Some(true) => {
                        if builder.get(&path("password")) == Some(&json!(false)) {
                            remove_key(builder, service, "password");
                        }
                    }
                    None => reject(builder, "expected yes or no", "write yes or no"),
                }
            }
        }
        "cluster-enabled" => {
            if let Some(v) = one(builder) {
                match yes_no(&v) {
                    Some(true) => builder.set(&path("mode"), json!("cluster"), file, bytes.clone()),
                    Some(false) => {
                        if builder.get(&path("mode")) == Some(&json!("cluster")) {
                            remove_key(builder, service, "mode");
                        }
                    }
                    None => reject(builder, "expected yes or no", "write yes or no"),
                }
            }
        }
        _ => return false,
    }
    true
}

/// A password written in the file (requirepass, an ACL `>password`): the spec names the
/// secret that should hold it (`<SERVICE>_PASSWORD`); the value is not copied.
fn keep_password_reference(builder: &mut ImportBuilder, service: &str, file: FileId, bytes: Range<usize>) {
    let secret = crate::plan::resolve::default_redis_secret(service);
    set_password_secret(builder, service, &secret, file, bytes.clone());
    builder.assumed_at(
        file,
        bytes,
        format!("redis `{service}` requires a password; the spec names the secret {secret} for it, never the value"),
        format!("move the password out of this file into the secret {secret} (rendered files pass it as --requirepass by reference)"),
    );
}

/// Records that a redis service's password comes from the secret `secret`.
pub fn set_password_secret(builder: &mut ImportBuilder, service: &str, secret: &str, file: FileId, bytes: Range<usize>) {
    builder.set(&p(&["services", service, "password"]), json!(secret), file, bytes);
}

struct State {
    svc: String,
    stack: Vec<PathBuf>,
    budget: Budget,
}

/// Reads a redis.conf into the redis service that owns it.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let Some(svc) = claim_service(builder, file, "redis", "redis.conf") else { return };
    let path = builder.sources[file].path.clone();
    let mut state = State { svc, stack: vec![canonical(&path)], budget: Budget::default() };
    parse_file(builder, file, &mut state);
}

/// Arguments of a config line, each with its byte range in the file.
type Args = Vec<(String, Range<usize>)>;

/// Config lines: (arguments with ranges in the file, range of the line); an empty
/// argument list for a line with unbalanced quotes (reported when reached).
fn lines(b: &ImportBuilder, file: FileId) -> Vec<(Args, Range<usize>)> {
    let text = &b.sources[file].text;
    let mut out = Vec::new();
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let base = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let start = base + (line.len() - body.len());
        let end = base + line.trim_end().len();
        match split_args(body) {
            Ok(args) if !args.is_empty() => {
                let args = args.into_iter().map(|(a, r)| (a, start + r.start..start + r.end)).collect();
                out.push((args, start..end));
            }
            Ok(_) => {}
            Err(at) => out.push((Vec::new(), start + at..end)),
        }
    }
    out
}

fn unbalanced(b: &mut ImportBuilder, file: FileId, at: Range<usize>) {
    b.unparsable(file, at, "unbalanced quotes in a Redis config line; Redis refuses to start", "close the quote (a closing quote must be followed by a space)");
}

fn parse_file(b: &mut ImportBuilder, file: FileId, st: &mut State) {
    for (args, at) in lines(b, file) {
        if args.is_empty() {
            unbalanced(b, file, at);
            continue;
        }
        let name = args[0].0.to_ascii_lowercase();
        if name == "include" {
            match args.get(1) {
                Some((target, _)) if args.len() == 2 => include(b, file, st, target, at),
                _ => b.unparsable(file, at, "`include` takes one file", "write `include /path/to/other.conf`"),
            }
            continue;
        }
        let rest: Vec<&str> = args[1..].iter().map(|(a, _)| a.as_str()).collect();
        let svc = st.svc.clone();
        if !apply_directive(b, &svc, &name, &rest, file, at.clone()) && !KNOWN_DIRECTIVES.contains(&name.as_str()) {
            b.ignored(
                file,
                at,
                format!("`{}` is not a Redis 7 directive: Redis refuses to start on one it does not know (\"Bad directive or wrong number of arguments\"); check the spelling, or the module that adds it", args[0].0.escape_debug()),
            );
        }
    }
}

/// Directives of Redis 7's redis.conf (and their old `slave` spellings) that headroom
/// does not model; anything else is noted as unknown.
const KNOWN_DIRECTIVES: &[&str] = &[
    "include", "loadmodule", "bind", "bind-source-addr", "protected-mode", "enable-protected-configs", "enable-debug-command",
    "enable-module-command", "port", "tcp-backlog", "unixsocket", "unixsocketperm", "unixsocketgroup", "timeout", "tcp-keepalive",
    "socket-mark-id", "tls-port", "tls-cert-file", "tls-key-file", "tls-key-file-pass", "tls-client-cert-file",
    "tls-client-key-file", "tls-client-key-file-pass", "tls-dh-params-file", "tls-ca-cert-file", "tls-ca-cert-dir",
    "tls-auth-clients", "tls-replication", "tls-cluster", "tls-protocols", "tls-ciphers", "tls-ciphersuites",
    "tls-prefer-server-ciphers", "tls-session-caching", "tls-session-cache-size", "tls-session-cache-timeout", "daemonize",
    "supervised", "pidfile", "loglevel", "logfile", "syslog-enabled", "syslog-ident", "syslog-facility", "crash-log-enabled",
    "crash-memcheck-enabled", "databases", "always-show-logo", "set-proc-title", "proc-title-template", "locale-collate",
    "save", "stop-writes-on-bgsave-error", "rdbcompression", "rdbchecksum", "sanitize-dump-payload", "dbfilename",
    "rdb-del-sync-files", "dir", "replicaof", "slaveof", "masterauth", "masteruser", "replica-serve-stale-data",
    "slave-serve-stale-data", "replica-read-only", "slave-read-only", "repl-diskless-sync", "repl-diskless-sync-delay",
    "repl-diskless-sync-max-replicas", "repl-diskless-load", "repl-ping-replica-period", "repl-ping-slave-period",
    "repl-timeout", "repl-disable-tcp-nodelay", "repl-backlog-size", "repl-backlog-ttl", "replica-priority", "slave-priority",
    "propagation-error-behavior", "replica-ignore-disk-write-errors", "replica-announced", "min-replicas-to-write",
    "min-slaves-to-write", "min-replicas-max-lag", "min-slaves-max-lag", "replica-announce-ip", "slave-announce-ip",
    "replica-announce-port", "slave-announce-port", "tracking-table-max-keys", "acllog-max-len", "aclfile", "requirepass",
    "user", "rename-command", "maxclients", "maxmemory", "maxmemory-policy", "maxmemory-samples",
    "maxmemory-eviction-tenacity", "maxmemory-clients", "replica-ignore-maxmemory", "slave-ignore-maxmemory",
    "active-expire-effort", "lazyfree-lazy-eviction", "lazyfree-lazy-expire", "lazyfree-lazy-server-del",
    "replica-lazy-flush", "slave-lazy-flush", "lazyfree-lazy-user-del", "lazyfree-lazy-user-flush", "io-threads",
    "io-threads-do-reads", "oom-score-adj", "oom-score-adj-values", "disable-thp", "appendonly", "appendfilename",
    "appenddirname", "appendfsync", "no-appendfsync-on-rewrite", "auto-aof-rewrite-percentage", "auto-aof-rewrite-min-size",
    "aof-load-truncated", "aof-use-rdb-preamble", "aof-timestamp-enabled", "shutdown-timeout", "shutdown-on-sigint",
    "shutdown-on-sigterm", "lua-time-limit", "busy-reply-threshold", "cluster-enabled", "cluster-config-file",
    "cluster-node-timeout", "cluster-port", "cluster-replica-validity-factor", "cluster-slave-validity-factor",
    "cluster-migration-barrier", "cluster-allow-replica-migration", "cluster-require-full-coverage",
    "cluster-replica-no-failover", "cluster-slave-no-failover", "cluster-allow-reads-when-down",
    "cluster-allow-pubsubshard-when-down", "cluster-link-sendbuf-limit", "cluster-announce-hostname",
    "cluster-announce-human-nodename", "cluster-preferred-endpoint-type", "cluster-announce-ip", "cluster-announce-port",
    "cluster-announce-tls-port", "cluster-announce-bus-port", "slowlog-log-slower-than", "slowlog-max-len",
    "latency-monitor-threshold", "latency-tracking", "latency-tracking-info-percentiles", "notify-keyspace-events",
    "hash-max-listpack-entries", "hash-max-listpack-value", "hash-max-ziplist-entries", "hash-max-ziplist-value",
    "list-max-listpack-size", "list-max-ziplist-size", "list-max-ziplist-entries", "list-max-ziplist-value",
    "list-compress-depth", "set-max-intset-entries", "set-max-listpack-entries", "set-max-listpack-value",
    "zset-max-listpack-entries", "zset-max-listpack-value", "zset-max-ziplist-entries", "zset-max-ziplist-value",
    "hll-sparse-max-bytes", "stream-node-max-bytes", "stream-node-max-entries", "activerehashing",
    "client-output-buffer-limit", "client-query-buffer-limit", "proto-max-bulk-len", "hz", "dynamic-hz",
    "aof-rewrite-incremental-fsync", "rdb-save-incremental-fsync", "lfu-log-factor", "lfu-decay-time",
    "max-new-connections-per-cycle", "max-new-tls-connections-per-cycle", "activedefrag", "active-defrag-ignore-bytes",
    "active-defrag-threshold-lower", "active-defrag-threshold-upper", "active-defrag-cycle-min", "active-defrag-cycle-max",
    "active-defrag-max-scan-fields", "jemalloc-bg-thread", "server-cpulist", "bio-cpulist", "aof-rewrite-cpulist",
    "bgsave-cpulist", "ignore-warnings", "sentinel", "hide-user-data-from-log", "lua-replicate-commands",
];

fn include(b: &mut ImportBuilder, file: FileId, st: &mut State, target: &str, at: Range<usize>) {
    if st.stack.len() > MAX_INCLUDE_DEPTH {
        b.unparsable(file, at, format!("include `{target}`: includes nested deeper than {MAX_INCLUDE_DEPTH} levels; not followed"), "flatten the includes");
        return;
    }
    let including = b.sources[file].path.clone();
    let root = st.stack.first().and_then(|p| p.parent()).map(PathBuf::from).unwrap_or_default();
    let (paths, is_glob) = resolve_include(&including, &root, target);
    if paths.is_empty() {
        if !is_glob {
            b.ignored(file, at, format!("include `{target}`: no such file next to {} (pass it too)", including.display()));
        }
        return;
    }
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

/// A `sentinel monitor NAME HOST PORT QUORUM` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Monitor {
    pub name: String,
    pub host: String,
    pub port: Option<u16>,
    pub quorum: Option<u64>,
    /// The line, in the text given.
    pub bytes: Range<usize>,
}

/// The masters a sentinel.conf text monitors (for the compose reader, which knows how
/// many sentinel containers mount the file: pass that count to `set_sentinels`).
pub fn monitored(text: &str) -> Vec<Monitor> {
    let mut out = Vec::new();
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let base = offset;
        offset += raw.len();
        let line = raw.trim_end_matches(['\n', '\r']);
        let body = line.trim_start();
        if body.starts_with('#') {
            continue;
        }
        let Ok(args) = split_args(body) else { continue };
        if args.len() >= 5 && args[0].0.eq_ignore_ascii_case("sentinel") && args[1].0.eq_ignore_ascii_case("monitor") {
            let start = base + (line.len() - body.len());
            out.push(Monitor {
                name: args[2].0.clone(),
                host: args[3].0.clone(),
                port: args[4].0.parse().ok(),
                quorum: args.get(5).and_then(|q| q.0.parse().ok()),
                bytes: start..base + line.trim_end().len(),
            });
        }
    }
    out
}

/// The redis service a sentinel's master host names (without a `-N` replica suffix).
pub fn master_service(builder: &ImportBuilder, host: &str) -> String {
    service_for_host(builder, Some(host), &["redis"], "redis", true).0
}

fn ensure_redis(b: &mut ImportBuilder, service: &str, host: &str, file: FileId, bytes: Range<usize>) -> bool {
    match ensure_service(b, service, "redis", file, bytes.clone()) {
        Ensure::OtherKind(kind) => {
            b.ignored(file, bytes, format!("sentinel master `{host}` is `{service}`, a {kind} service: not modelled"));
            false
        }
        Ensure::Created => {
            b.assumed(
                format!("sentinels monitor `{host}`: created redis service `{service}` (its maxmemory, maxclients etc. are not in these files)"),
                format!("pass the redis config or compose file, or set services.{service} in an overlay"),
            );
            true
        }
        Ensure::Existed => true,
    }
}

/// Sets how many sentinels watch the master at `master_host` (the compose reader counts
/// the sentinel containers). Creates the redis service when missing.
pub fn set_sentinels(builder: &mut ImportBuilder, master_host: &str, count: u64, file: FileId, bytes: std::ops::Range<usize>) {
    let service = master_service(builder, master_host);
    if !ensure_redis(builder, &service, master_host, file, bytes.clone()) {
        return;
    }
    builder.set(&p(&["services", &service, "mode"]), json!("sentinel"), file, bytes.clone());
    builder.set(&p(&["services", &service, "sentinels"]), json!(count), file, bytes);
}

/// Reads a sentinel.conf (sentinel count, quorum).
pub fn read_sentinel(builder: &mut ImportBuilder, file: FileId) {
    if file >= builder.sources.len() || already_read(builder, file) || reject_binary(builder, file) {
        return;
    }
    for (args, at) in lines(builder, file) {
        if args.is_empty() {
            unbalanced(builder, file, at);
            continue;
        }
        if !(args[0].0.eq_ignore_ascii_case("sentinel") && args.get(1).is_some_and(|a| a.0.eq_ignore_ascii_case("monitor"))) {
            continue;
        }
        if args.len() != 6 {
            builder.unparsable(file, at, "`sentinel monitor` takes a master name, host, port and quorum; Sentinel refuses to start", "write `sentinel monitor mymaster redis-master 6379 2`");
            continue;
        }
        let host = args[3].0.clone();
        let (Ok(port), Ok(quorum)) = (args[4].0.parse::<u16>(), args[5].0.parse::<u64>()) else {
            builder.unparsable(file, at, "`sentinel monitor`: port and quorum must be numbers; Sentinel refuses to start", "write `sentinel monitor mymaster redis-master 6379 2`");
            continue;
        };
        let service = master_service(builder, &host);
        if !ensure_redis(builder, &service, &host, file, args[3].1.clone()) {
            continue;
        }
        builder.set(&p(&["services", &service, "mode"]), json!("sentinel"), file, at.clone());
        if quorum >= 1 {
            builder.set(&p(&["services", &service, "quorum"]), json!(quorum), file, args[5].1.clone());
        }
        let port_path = p(&["services", &service, "port"]);
        if builder.get(&port_path).is_none() && port > 0 {
            builder.set(&port_path, json!(port), file, args[4].1.clone());
        }
        count_sentinels(builder, &service, file, at);
    }
}

/// Sentinels watching `service`, from the sentinel configs read so far, unless the
/// compose reader set the number (from the containers that run sentinel).
fn count_sentinels(b: &mut ImportBuilder, service: &str, file: FileId, at: Range<usize>) {
    let path = p(&["services", service, "sentinels"]);
    let pointer = spec_path::to_pointer(&path);
    if let Some(origin) = b.origins.get(&pointer)
        && b.sources.get(origin.file).is_some_and(|s| monitored(&s.text).is_empty())
    {
        return;
    }
    let mut files: Vec<PathBuf> = Vec::new();
    for s in &b.sources {
        if monitored(&s.text).iter().any(|m| master_service(b, &m.host) == service) {
            let key = canonical(&s.path);
            if !files.contains(&key) {
                files.push(key);
            }
        }
    }
    let count = files.len().max(1) as u64;
    if b.get(&path) != Some(&json!(count)) {
        b.set(&path, json!(count), file, at.clone());
        if count == 1 {
            note(
                b,
                file,
                at,
                format!("sentinels of `{service}`: 1, from one sentinel config; when several sentinel containers share this file, the compose file tells how many"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    fn read_text(text: &str) -> ImportBuilder {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("redis-test-does-not-exist/redis.conf", text.to_string()));
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
    fn redis_units_differ_from_spec_units() {
        assert_eq!(memtoll("1gb"), Ok(1 << 30));
        assert_eq!(memtoll("1g"), Ok(1_000_000_000));
        assert_eq!(memtoll("1GB"), Ok(1 << 30));
        assert_eq!(memtoll("512mb"), Ok(512 << 20));
        assert_eq!(memtoll("512m"), Ok(512_000_000));
        assert_eq!(memtoll("1k"), Ok(1000));
        assert_eq!(memtoll("1kb"), Ok(1024));
        assert_eq!(memtoll("100"), Ok(100));
        assert!(memtoll("1tb").is_err());
        assert!(memtoll("-1").is_err());
        assert_eq!(spec_size(memtoll("8gb").unwrap()), "8GiB");
        assert_eq!(spec_size(memtoll("8g").unwrap()), "7812500KiB");
        assert_eq!(spec_size(memtoll("1000").unwrap()), "1000B");
        // the spec reads its strings back to the same bytes
        assert_eq!(ByteSize::parse(&spec_size(memtoll("8g").unwrap())).unwrap().bytes(), 8_000_000_000);
    }

    #[test]
    fn reads_directives_with_lines() {
        let b = read_text("# cache\nbind 0.0.0.0\nport 6380\nMAXMEMORY 3gb\nmaxmemory-policy allkeys-lru\nmaxclients 10000\ntcp-backlog 511\nappendonly yes\nsave \"\"\n");
        assert!(errors(&b).is_empty(), "{:?}", errors(&b));
        let s = b.get("services.redis").unwrap();
        assert_eq!(s["kind"], json!("redis"));
        assert_eq!(s["port"], json!(6380));
        assert_eq!(s["maxmemory"], json!("3GiB"));
        assert_eq!(line(&b, "services.redis.maxmemory"), 4);
        assert_eq!(s["maxmemory_policy"], json!("allkeys-lru"));
        assert_eq!(s["maxclients"], json!(10000));
        assert_eq!(s["tcp_backlog"], json!(511));
        assert_eq!(s["persistence"], json!("aof"));
    }

    #[test]
    fn persistence_from_save_lines() {
        let b = read_text("save 900 1\nsave 300 10\n");
        assert_eq!(b.get("services.redis.persistence"), Some(&json!("rdb")));
        let b = read_text("save ''\n");
        assert_eq!(b.get("services.redis.persistence"), Some(&json!("none")));
        let b = read_text("appendonly yes\nappendonly no\n");
        assert_eq!(b.get("services.redis.persistence"), None);
        let b = read_text("cluster-enabled yes\n");
        assert_eq!(b.get("services.redis.mode"), Some(&json!("cluster")));
    }

    #[test]
    fn flags_and_errors() {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("docker-compose.yml", "command: redis-server --maxmemory 8gb\n".into()));
        assert!(apply_directive(&mut b, "cache", "--maxmemory", &["8gb"], id, 9..38));
        assert!(apply_directive(&mut b, "cache", "--maxmemory-policy", &["allkeys-lru"], id, 9..38));
        assert!(apply_directive(&mut b, "cache", "--save", &[""], id, 9..38));
        assert!(!apply_directive(&mut b, "cache", "--tcp-keepalive", &["300"], id, 9..38));
        assert_eq!(b.get("services.cache.maxmemory"), Some(&json!("8GiB")));
        assert_eq!(b.get("services.cache.persistence"), Some(&json!("none")));
        let b = read_text("maxmemory 2gb # cache size\nmaxmemory-policy sometimes\nmaxclients many\nrequirepass \"unclosed\n");
        let e = errors(&b);
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].starts_with("1 ") && e[0].contains("not a comment"), "{e:?}");
        assert!(e[3].starts_with("4 ") && e[3].contains("unbalanced quotes"), "{e:?}");
    }

    #[test]
    fn split_like_redis() {
        let args: Vec<String> = split_args("set \"a b\\x41\" 'c\\'d' e").unwrap().into_iter().map(|a| a.0).collect();
        assert_eq!(args, vec!["set", "a bA", "c'd", "e"]);
        assert!(split_args("a \"b\"c").is_err());
        assert!(split_args("a 'b").is_err());
        assert_eq!(split_args("save \"\"").unwrap()[1].0, "");
    }

    #[test]
    fn sentinel_config_sets_mode_and_quorum() {
        let text = "port 26379\nsentinel monitor mymaster redis-master 6379 2\nsentinel down-after-milliseconds mymaster 5000\nsentinel parallel-syncs mymaster 1\nsentinel failover-timeout mymaster 10000\n";
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("x/redis-sentinel.conf", text.into()));
        read_sentinel(&mut b, id);
        assert!(errors(&b).is_empty());
        let s = b.get("services.redis-master").unwrap();
        assert_eq!(s["kind"], json!("redis"));
        assert_eq!(s["mode"], json!("sentinel"));
        assert_eq!(s["quorum"], json!(2));
        assert_eq!(s["port"], json!(6379));
        assert_eq!(s["sentinels"], json!(1));
        assert_eq!(line(&b, "services.redis-master.quorum"), 2);
        assert_eq!(monitored(text)[0].host, "redis-master");
    }

    #[test]
    fn compose_sentinel_count_wins_and_replica_suffix_is_dropped() {
        let mut b = ImportBuilder::new("t");
        let compose = b.add_source(SourceFile::new("docker-compose.yml", "services: {}\n".into()));
        set_sentinels(&mut b, "redis-master", 3, compose, 0..5);
        let id = b.add_source(SourceFile::new("x/sentinel.conf", "sentinel monitor m redis-master 6379 2\n".into()));
        read_sentinel(&mut b, id);
        assert_eq!(b.get("services.redis-master.sentinels"), Some(&json!(3)));
        // three sentinel files, one each, with a numbered master host
        let mut b = ImportBuilder::new("t");
        for i in 1..=3 {
            let id = b.add_source(SourceFile::new(format!("x/sentinel-{i}.conf"), "sentinel monitor m cache-1 6379 2\n".into()));
            read_sentinel(&mut b, id);
        }
        assert_eq!(b.get("services.cache.sentinels"), Some(&json!(3)));
        assert_eq!(b.get("services.cache.quorum"), Some(&json!(2)));
    }

    #[test]
    fn includes_and_loops() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("redis.conf"), "include common.conf\nmaxmemory 1gb\n").unwrap();
        std::fs::write(dir.path().join("common.conf"), "maxclients 500\ninclude redis.conf\n").unwrap();
        let path = dir.path().join("redis.conf");
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new(&path, std::fs::read_to_string(&path).unwrap()));
        read(&mut b, id);
        assert_eq!(b.get("services.redis.maxclients"), Some(&json!(500)));
        assert_eq!(b.get("services.redis.maxmemory"), Some(&json!("1GiB")));
        let e = errors(&b);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("2 ") && e[0].contains("include loop: redis.conf -> common.conf -> redis.conf"), "{e:?}");
    }

    #[test]
    fn voiceassist_fixture() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import/voiceassist/redis-sentinel.conf");
        let mut b = ImportBuilder::new("voiceassist");
        // what the compose reader makes of redis-sentinel-1..3
        let compose = b.add_source(SourceFile::new("docker-compose.yml", "redis-sentinel-1:\n".into()));
        b.set("services.redis-master.kind", json!("redis"), compose, 0..5);
        b.set("services.redis-master.mode", json!("sentinel"), compose, 0..5);
        b.set("services.redis-master.sentinels", json!(3), compose, 0..5);
        let id = b.add_source(SourceFile::new(&path, std::fs::read_to_string(&path).unwrap()));
        read_sentinel(&mut b, id);
        assert!(b.diagnostics.is_empty(), "{:?}", b.diagnostics);
        assert_eq!(b.get("services.redis-master"), Some(&json!({"kind": "redis", "mode": "sentinel", "sentinels": 3, "quorum": 2, "port": 6379})));
        assert_eq!(line(&b, "services.redis-master.quorum"), 2);
    }

    #[test]
    fn binary_is_an_error() {
        let b = read_text("\u{0}\u{0}maxmemory 1gb");
        assert_eq!(errors(&b).len(), 1);
    }
}
