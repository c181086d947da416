//! What each program accepts. A value that loads must render a file its program takes,
//! so every value a program refuses (at `nginx -t`, at start-up, or when it parses its
//! config) is a load error here, with the program's limit in the message: never a
//! finding, never a file that fails later. Names that would collide in a rendered file
//! (two locations with one path) are reported here too.
//!
//! The limits were found by running each program at both ends of its supported versions
//! (Debian 12: nginx 1.22, PostgreSQL 15, PgBouncer 1.18, Redis 7.0; Debian 13: nginx
//! 1.26, PostgreSQL 17, PgBouncer 1.24, Redis 8.0) on values at and past each boundary.

use crate::spec::{Count, Service, Spec, SysctlValue};

use super::Pointer;
use super::yaml::escape_segment;

/// One value a program would refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// JSON pointer of the value in the spec.
    pub pointer: String,
    pub message: String,
    pub hint: String,
}

/// A C `int` (listen backlogs, PgBouncer's settings, Redis' tcp-backlog).
pub const INT_MAX: u64 = i32::MAX as u64;
/// A signed 64-bit number (what nginx reads numbers into).
pub const NGINX_NUMBER_MAX: u64 = i64::MAX as u64;
/// Seconds nginx can hold as milliseconds in a signed 64-bit number.
pub const NGINX_SECONDS_MAX: u64 = NGINX_NUMBER_MAX / 1000;
/// Linux's highest `fs.nr_open`: no process may hold more open files.
pub const LINUX_NR_OPEN_MAX: u64 = 2_147_483_584;
/// Redis keeps 32 files for itself beyond maxclients.
pub const REDIS_MAXCLIENTS_MAX: u64 = LINUX_NR_OPEN_MAX - 32;
/// PostgreSQL's MAX_BACKENDS.
pub const POSTGRES_MAX_BACKENDS: u64 = 262_143;
/// max_connections + max_worker_processes must leave room, under MAX_BACKENDS, for
/// autovacuum_max_workers (3), max_wal_senders (10) and the autovacuum launcher.
pub const POSTGRES_CONNECTIONS_AND_WORKERS_MAX: u64 = POSTGRES_MAX_BACKENDS - 3 - 10 - 1;
/// Puma's worker_check_interval: worker_timeout must be longer.
pub const PUMA_WORKER_CHECK_INTERVAL: u64 = 5;
/// nginx spawns at most this many processes (NGX_MAX_PROCESSES).
pub const NGINX_MAX_PROCESSES: u64 = 1024;
/// The smallest shared memory zone nginx takes: 8 pages of 4 KiB.
pub const NGINX_ZONE_MIN: u64 = 32 * 1024;
/// The largest limit_req zone headroom renders: nginx maps the whole zone into shared
/// memory at start-up, and larger maps fail on common hosts.
pub const NGINX_ZONE_MAX: u64 = 4 << 30;
/// shared_buffers: 16 .. 1073741823 pages of 8 kB.
pub const POSTGRES_SHARED_BUFFERS: (u64, u64) = (16 * 8192, 1_073_741_823 * 8192);
/// work_mem: 64 kB .. 2147483647 kB.
pub const POSTGRES_WORK_MEM: (u64, u64) = (64 * 1024, INT_MAX * 1024);

#[derive(Default)]
struct Found(Vec<Refused>);

impl Found {
    fn push(&mut self, pointer: String, message: String, hint: impl Into<String>) {
        self.0.push(Refused { pointer, message, hint: hint.into() });
    }

    /// `value` must lie in `min..=max`. The pointer and the name are built only for a
    /// value out of range (building them for every value cost more than the checks).
    fn range(&mut self, pointer: impl FnOnce() -> String, what: impl std::fmt::Display, value: u64, (min, max): (u64, u64), why: &str) {
        if value < min || value > max {
            let max_text = if max == NGINX_NUMBER_MAX { "9223372036854775807".to_string() } else { max.to_string() };
            self.push(pointer(), format!("{what} must be {min}..{max_text}, found {value}"), why);
        }
    }
}

fn at(base: impl std::fmt::Display, key: &str) -> String {
    format!("{base}/{}", escape_segment(key))
}

/// Every value of `spec` some program would refuse.
pub fn refused(spec: &Spec) -> Vec<Refused> {
    let mut found = Found::default();
    for (name, machine) in &spec.machines {
        let base = Pointer("/machines", name);
        if let Some(n) = machine.nofile {
            found.range(|| at(base, "nofile"), "nofile", n, (1, LINUX_NR_OPEN_MAX), "Linux caps a process's open files at fs.nr_open, at most 2147483584");
        }
        for (key, value) in &machine.sysctl {
            let SysctlValue::Number(n) = value else { continue };
            let limit = match key.as_str() {
                "net.core.somaxconn" | "net.ipv4.tcp_max_syn_backlog" => (0, INT_MAX),
                "fs.file-max" => (0, i64::MAX as u64),
                "fs.nr_open" => (64, LINUX_NR_OPEN_MAX),
                _ => continue,
            };
            found.range(|| at(at(base, "sysctl"), key), format_args!("Linux {key}"), *n, limit, "the kernel refuses any other value");
        }
    }
    if let Some(deploy) = &spec.deploy {
        // Paths the targets write to, and the compose network name (DNS rules).
        let paths = [
            ("/deploy/compose/file", deploy.compose.as_ref().and_then(|c| c.file.as_deref())),
            ("/deploy/railway/file", deploy.railway.as_ref().and_then(|r| r.file.as_deref())),
            ("/deploy/sysctl/dir", deploy.sysctl.as_ref().and_then(|s| s.dir.as_deref()).map(|d| d.trim_end_matches('/'))),
        ];
        for (pointer, path) in paths {
            if let Some(path) = path
                && let Err(message) = crate::targets::check_relative(path)
            {
                found.push(pointer.into(), message, "use a relative path inside the repository, without `..`");
            }
        }
        if let Some(network) = deploy.compose.as_ref().and_then(|c| c.network.as_deref())
            && crate::targets::escape::ident(network).is_err()
        {
            found.push(
                "/deploy/compose/network".into(),
                format!("invalid compose network name `{}`", network.escape_debug()),
                "a compose network name is letters, digits, `-`, `_` and `.` (it becomes a DNS name)",
            );
        }
    }
    for (name, service) in &spec.services {
        let base = Pointer("/services", name);
        let common = service.common();
        if let Some(n) = common.nofile {
            found.range(|| at(base, "nofile"), "nofile", n, (1, LINUX_NR_OPEN_MAX), "Linux caps a process's open files at fs.nr_open, at most 2147483584");
        }
        match service {
            Service::Gunicorn(g) => {
                if let Some(b) = g.backlog {
                    found.range(|| at(base, "backlog"), "gunicorn backlog", b, (1, INT_MAX), "listen() takes a C int backlog");
                }
            }
            Service::Puma(p) => puma(&mut found, base, p),
            Service::Nginx(n) => nginx(&mut found, base, n),
            Service::Pgbouncer(p) => pgbouncer(&mut found, base, p),
            Service::Postgres(p) => postgres(&mut found, base, p),
            Service::Redis(r) => {
                if let Some(b) = r.tcp_backlog {
                    found.range(|| at(base, "tcp_backlog"), "redis tcp-backlog", b, (0, INT_MAX), "Redis refuses the config file (`*** FATAL CONFIG FILE ERROR ***`)");
                }
                if let Some(m) = r.maxclients {
                    found.range(
                        || at(base, "maxclients"),
                        "redis maxclients",
                        m,
                        (1, REDIS_MAXCLIENTS_MAX),
                        "Redis needs maxclients + 32 open files and Linux gives a process at most fs.nr_open (at most 2147483584); past that Redis spends minutes at start-up lowering its file limit 16 at a time (and refuses more than 4294967295 outright)",
                    );
                }
                if r.mode == Some(crate::spec::RedisMode::Sentinel) && spec.services.contains_key(&format!("{name}-sentinel")) {
                    found.push(
                        base.to_string(),
                        format!("redis `{name}` runs sentinels, whose file is redis/{name}-sentinel.conf, the file of the redis service `{name}-sentinel` too"),
                        "rename one of the two services",
                    );
                }
                if let Some(q) = r.quorum {
                    found.range(|| at(base, "quorum"), "redis sentinel quorum", q, (1, INT_MAX), "sentinel refuses `sentinel monitor` otherwise (`Quorum must be 1 or greater.`)");
                }
            }
            _ => {}
        }
    }
    found.0
}

fn puma(found: &mut Found, base: Pointer<'_>, p: &crate::spec::Puma) {
    if let Some(b) = p.backlog {
        found.range(|| at(base, "backlog"), "puma backlog", b, (1, INT_MAX), "listen() takes a C int backlog");
    }
    if let Some(t) = p.timeout {
        let secs = t.as_secs_ceil();
        if secs <= PUMA_WORKER_CHECK_INTERVAL {
            found.push(
                at(base, "timeout"),
                format!("puma worker_timeout must be greater than {PUMA_WORKER_CHECK_INTERVAL}s, the worker reporting interval; found {t}"),
                "puma refuses to start otherwise (`The minimum worker_timeout must be greater than the worker reporting interval`); use 6s or more (puma's default is 60s)",
            );
        }
    }
    let threads = p.threads.unwrap_or(crate::plan::defaults::PUMA_THREADS);
    if let Some(min) = p.min_threads
        && min > threads
    {
        found.push(
            at(base, "min_threads"),
            format!("puma min_threads {min} is more than threads {threads}"),
            format!("puma refuses it (`The minimum ({min}) number of threads must be less than or equal to the max ({threads})`): set min_threads <= {threads}"),
        );
    }
}

fn nginx(found: &mut Found, base: Pointer<'_>, n: &crate::spec::Nginx) {
    const NUMBER: &str = "nginx reads it as a signed 64-bit number";
    if let Some(Count::Number(w)) = n.worker_processes {
        found.range(|| at(base, "worker_processes"), "nginx worker_processes", w, (1, NGINX_MAX_PROCESSES), "nginx spawns at most 1024 processes (`no more than 1024 processes can be spawned`)");
    }
    if let Some(c) = n.worker_connections {
        found.range(
            || at(base, "worker_connections"),
            "nginx worker_connections",
            c,
            (2, LINUX_NR_OPEN_MAX / 2),
            "nginx needs more than its one listening socket (`1 worker_connections are not enough for 1 listening sockets`), and each connection an open file (at most fs.nr_open 2147483584, 2 per proxied request)",
        );
    }
    if let Some(r) = n.worker_rlimit_nofile {
        found.range(|| at(base, "worker_rlimit_nofile"), "nginx worker_rlimit_nofile", r, (1, LINUX_NR_OPEN_MAX), "Linux caps a process's open files at fs.nr_open, at most 2147483584");
    }
    if let Some(b) = n.backlog {
        found.range(|| at(base, "backlog"), "nginx listen backlog", b, (1, INT_MAX), "`listen ... backlog=` takes a C int; 0 is `invalid backlog`");
    }
    for (name, up) in &n.upstreams {
        let up_base = at(at(base, "upstreams"), name);
        let seconds = |found: &mut Found, key: &str, d: Option<crate::spec::Duration>| {
            if let Some(d) = d {
                found.range(|| at(&up_base, key), format_args!("nginx {key}"), d.as_secs_ceil(), (0, NGINX_SECONDS_MAX), "nginx holds it in milliseconds as a signed 64-bit number");
            }
        };
        seconds(found, "keepalive_timeout", up.keepalive_timeout);
        seconds(found, "fail_timeout", up.fail_timeout);
        for (key, value) in [("keepalive", up.keepalive), ("keepalive_requests", up.keepalive_requests), ("max_fails", up.max_fails), ("max_conns", up.max_conns)] {
            if let Some(v) = value {
                found.range(|| at(&up_base, key), format_args!("nginx {key}"), v, (0, NGINX_NUMBER_MAX), NUMBER);
            }
        }
        if let Some(w) = up.weight {
            found.range(|| at(&up_base, "weight"), "nginx server weight", w, (1, INT_MAX), "nginx refuses `weight=0` (`invalid parameter`), and weights are summed over every server of an upstream");
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, location) in n.locations.iter().enumerate() {
        let loc = format!("{base}/locations/{i}");
        if let Some(first) = seen.iter().position(|p| *p == location.path) {
            found.push(
                format!("{loc}/path"),
                format!("location `{}` is declared twice (also locations[{first}])", location.path.escape_debug()),
                "nginx refuses a server with two locations of one path (`duplicate location`): merge them",
            );
        }
        seen.push(&location.path);
        for (key, value) in [("read_timeout", location.read_timeout), ("send_timeout", location.send_timeout), ("connect_timeout", location.connect_timeout)] {
            if let Some(d) = value {
                found.range(|| format!("{loc}/{key}"), format_args!("nginx proxy_{key}"), d.as_secs_ceil(), (0, NGINX_SECONDS_MAX), "nginx holds it in milliseconds as a signed 64-bit number");
            }
        }
        if let Some(b) = location.burst {
            found.range(|| format!("{loc}/burst"), "nginx limit_req burst", b, (0, NGINX_SECONDS_MAX), "nginx multiplies it by 1000 in a signed 64-bit number");
        }
    }
    for (name, rl) in &n.rate_limits {
        let rl_base = at(at(base, "rate_limits"), name);
        let number = rl.rate.trim_end_matches("r/s").trim_end_matches("r/m");
        match number.parse::<u64>() {
            Ok(rate) => found.range(|| at(&rl_base, "rate"), "nginx limit_req_zone rate", rate, (1, NGINX_SECONDS_MAX), "nginx refuses `rate=0r/s` (`invalid rate`) and multiplies the rate by 1000 in a signed 64-bit number"),
            Err(_) => found.push(at(&rl_base, "rate"), format!("nginx limit_req_zone rate `{}` is too large", rl.rate), "write a rate such as `100r/s`"),
        }
        found.range(
            || at(&rl_base, "zone"),
            "nginx limit_req_zone size",
            rl.zone.bytes(),
            (NGINX_ZONE_MIN, NGINX_ZONE_MAX),
            "nginx refuses a zone under 8 pages (`zone is too small`), and maps the whole zone into shared memory at start-up: 32KiB..4GiB (about 16,000 client states per MiB)",
        );
    }
}

fn pgbouncer(found: &mut Found, base: Pointer<'_>, p: &crate::spec::Pgbouncer) {
    const INT: &str = "PgBouncer reads it as a C int";
    for (key, value) in [
        ("max_client_conn", p.max_client_conn),
        ("default_pool_size", p.default_pool_size),
        ("min_pool_size", p.min_pool_size),
        ("reserve_pool_size", p.reserve_pool_size),
        ("max_db_connections", p.max_db_connections),
        ("max_user_connections", p.max_user_connections),
        ("max_prepared_statements", p.max_prepared_statements),
        ("listen_backlog", p.listen_backlog),
    ] {
        if let Some(v) = value {
            let min = u64::from(key == "listen_backlog");
            found.range(|| at(base, key), format_args!("pgbouncer {key}"), v, (min, INT_MAX), INT);
        }
    }
    for (key, value) in [
        ("reserve_pool_timeout", p.reserve_pool_timeout),
        ("query_wait_timeout", p.query_wait_timeout),
        ("server_idle_timeout", p.server_idle_timeout),
        ("server_lifetime", p.server_lifetime),
    ] {
        if let Some(d) = value {
            found.range(|| at(base, key), format_args!("pgbouncer {key} (seconds)"), d.as_secs_ceil(), (0, INT_MAX), INT);
        }
    }
    match p.auth_type.as_deref() {
        Some("cert") => found.push(
            at(base, "auth_type"),
            "pgbouncer auth_type cert needs client TLS (client_tls_sslmode verify-full and its key, certificate and CA files), which the spec cannot set".into(),
            "PgBouncer refuses to start (`auth_type=cert requires client_tls_sslmode=SSLMODE_VERIFY_FULL`); use scram-sha-256 or md5",
        ),
        Some("hba") => found.push(
            at(base, "auth_type"),
            "pgbouncer auth_type hba needs an auth_hba_file, which the spec cannot set".into(),
            "PgBouncer refuses to start (`could not open hba config file`); use scram-sha-256 or md5",
        ),
        _ => {}
    }
    if let Some(file) = &p.auth_file {
        if let Err(e) = crate::targets::escape::ini_value(file) {
            found.push(at(base, "auth_file"), format!("invalid auth_file `{}`", file.escape_debug()), e.detail().unwrap_or("not an INI value").to_string());
        } else if !file.starts_with('/') || file.contains([':', ' ']) {
            found.push(
                at(base, "auth_file"),
                format!("invalid auth_file `{}`: it is mounted into the container, so it must be an absolute path without spaces or `:`", file.escape_debug()),
                "e.g. /etc/pgbouncer/userlist.txt",
            );
        }
    }
}

fn postgres(found: &mut Found, base: Pointer<'_>, p: &crate::spec::Postgres) {
    use crate::plan::defaults as d;
    const START: &str = "PostgreSQL refuses to start otherwise";
    let max_connections = p.max_connections.unwrap_or(d::POSTGRES_MAX_CONNECTIONS);
    let workers = p.max_worker_processes.unwrap_or(d::POSTGRES_MAX_WORKER_PROCESSES);
    if let Some(m) = p.max_connections {
        found.range(|| at(base, "max_connections"), "postgres max_connections", m, (1, POSTGRES_MAX_BACKENDS), START);
    }
    if let Some(w) = p.max_worker_processes {
        found.range(|| at(base, "max_worker_processes"), "postgres max_worker_processes", w, (0, POSTGRES_MAX_BACKENDS), START);
    }
    // PostgreSQL checks each of the two against the other's value at that moment, which
    // for max_connections (read first) is still the default 8 workers: both must fit.
    let counted_workers = workers.max(d::POSTGRES_MAX_WORKER_PROCESSES);
    if max_connections <= POSTGRES_MAX_BACKENDS && workers <= POSTGRES_MAX_BACKENDS && max_connections + counted_workers > POSTGRES_CONNECTIONS_AND_WORKERS_MAX {
        let pointer = if p.max_connections.is_some() { at(base, "max_connections") } else { at(base, "max_worker_processes") };
        found.push(
            pointer,
            format!("postgres max_connections {max_connections} + max_worker_processes {counted_workers} must be at most {POSTGRES_CONNECTIONS_AND_WORKERS_MAX}"),
            format!("PostgreSQL refuses it (`invalid value for parameter \"max_connections\"`): with autovacuum_max_workers 3, max_wal_senders 10 and the launcher, every process must fit MAX_BACKENDS {POSTGRES_MAX_BACKENDS}"),
        );
    }
    let superuser = p.superuser_reserved_connections.unwrap_or(d::POSTGRES_SUPERUSER_RESERVED);
    let reserved = p.reserved_connections.unwrap_or(d::POSTGRES_RESERVED);
    if superuser.saturating_add(reserved) >= max_connections {
        let pointer = if p.superuser_reserved_connections.is_some() { at(base, "superuser_reserved_connections") } else { at(base, "max_connections") };
        found.push(
            pointer,
            format!("postgres superuser_reserved_connections {superuser} + reserved_connections {reserved} must be less than max_connections {max_connections}"),
            "PostgreSQL refuses to start (`superuser_reserved_connections ... must be less than max_connections`)",
        );
    }
    if let Some(s) = p.shared_buffers {
        let bytes = s.bytes();
        found.range(|| at(base, "shared_buffers"), "postgres shared_buffers (bytes)", bytes, POSTGRES_SHARED_BUFFERS, "PostgreSQL takes 16 .. 1073741823 pages of 8kB (128kB .. about 8TB)");
        if !bytes.is_multiple_of(8192) {
            found.push(at(base, "shared_buffers"), format!("postgres shared_buffers {s} is not a whole number of 8kB pages"), "PostgreSQL keeps shared_buffers in 8kB pages and would round it: use a multiple of 8KiB (e.g. 128MiB)");
        }
    }
    if let Some(w) = p.work_mem {
        let bytes = w.bytes();
        found.range(|| at(base, "work_mem"), "postgres work_mem (bytes)", bytes, POSTGRES_WORK_MEM, "PostgreSQL takes 64kB .. 2147483647kB");
        if !bytes.is_multiple_of(1024) {
            found.push(at(base, "work_mem"), format!("postgres work_mem {w} is not a whole number of kB"), "PostgreSQL keeps work_mem in kB and would round it: use a multiple of 1KiB (e.g. 4MiB)");
        }
    }
}
