//! `headroom observe`: live numbers of a running stack beside the plan's. Each reading
//! is one number a server reports (PostgreSQL connections, PgBouncer clients and
//! waiting clients, Redis clients and memory, nginx connections and request rate), the
//! budget the plan allows for it, the level at which it counts as past the plan (by
//! default 80% of the budget; any sustained `cl_waiting`; any rejected connection), and
//! what the plan expects at the request rate observed (Little's law).

pub mod sources;

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::plan::{Detail, Kind, Plan, ServicePlan};
use crate::rules::num;

/// Share of a budget past which a live number is reported (exit 1).
pub const THRESHOLD: f64 = 0.8;

/// Where to read each kind of server, as given (`URL` or `SERVICE=URL`).
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    pub postgres: Vec<String>,
    pub pgbouncer: Vec<String>,
    pub redis: Vec<String>,
    pub nginx_status: Vec<String>,
}

/// One live number beside the plan.
#[derive(Clone, Debug, Serialize)]
pub struct Reading {
    /// `postgres`, `pgbouncer`, `redis`, `nginx`.
    pub source: &'static str,
    /// The spec's service it was matched with.
    pub service: String,
    /// What is measured (`client connections`, `cl_waiting`, ...).
    pub what: String,
    pub live: f64,
    /// The plan's budget for it, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed: Option<f64>,
    /// The level past which it is reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// What the plan expects at the observed request rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<f64>,
    /// Where the budget and the expectation come from.
    pub plan: String,
    /// Past its threshold.
    pub past: bool,
}

/// A whole observation: readings, the request rate they were taken at, and notes
/// (settings that differ from the plan, breakdowns).
#[derive(Clone, Debug, Serialize)]
pub struct Observation {
    pub name: String,
    /// Seconds between the two samples.
    pub interval: f64,
    /// Requests per second seen between the samples (nginx, else PgBouncer transactions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_rps: Option<f64>,
    pub readings: Vec<Reading>,
    pub notes: Vec<String>,
}

impl Observation {
    pub fn past(&self) -> bool {
        self.readings.iter().any(|r| r.past)
    }

    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("serializes");
        text.push('\n');
        text
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let rate = match self.rate_rps {
            Some(r) => format!("{} requests/s observed", num(r)),
            None => "no request rate observed (give --nginx-status or --pgbouncer)".into(),
        };
        let _ = writeln!(out, "observe `{}`: 2 samples {}s apart, {rate}\n", self.name, num(self.interval));
        let mut rows = vec![vec![
            "source".to_string(),
            "service".into(),
            "what".into(),
            "live".into(),
            "allowed".into(),
            "used".into(),
            "plan expects".into(),
            "".into(),
        ]];
        for r in &self.readings {
            let used = match r.allowed {
                Some(a) if a > 0.0 => format!("{}%", num(r.live / a * 100.0)),
                _ => "-".into(),
            };
            let flag = match (r.past, r.threshold) {
                (true, Some(t)) => format!("PAST {}", num(t)),
                (true, None) => "PAST".into(),
                _ => "ok".into(),
            };
            rows.push(vec![
                r.source.to_string(),
                r.service.clone(),
                r.what.clone(),
                num(r.live),
                r.allowed.map_or("-".into(), num),
                used,
                r.expected.map_or("-".into(), num),
                flag,
            ]);
        }
        crate::report::capacity::table(&mut out, &rows);
        out.push('\n');
        for r in &self.readings {
            let _ = writeln!(out, "  {} {} {}: {}", r.source, r.service, r.what, r.plan);
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        let past = self.readings.iter().filter(|r| r.past).count();
        let _ = writeln!(
            out,
            "\n{}",
            if past == 0 { "within the plan".to_string() } else { format!("{} past the plan's thresholds", crate::rules::plural(past as u64, "number")) }
        );
        out
    }
}

/// A URL with its password replaced, for messages: the one in the user info and a
/// `password=` query parameter (libpq URLs accept both).
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let hidden = if userinfo.contains(':') { format!("{user}:***") } else { user.to_string() };
            format!("{hidden}@{host}")
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => param.to_string(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// The passwords in a URL (user info, `password=` parameter), as written and
/// percent-decoded, so error texts can be scrubbed of them.
fn passwords(url: &str) -> Vec<String> {
    let Some((_, rest)) = url.split_once("://") else { return Vec::new() };
    let (authority, query) = match rest.split_once('?') {
        Some((before, query)) => (before.split('/').next().unwrap_or(""), query),
        None => (rest.split('/').next().unwrap_or(""), ""),
    };
    let mut found: Vec<String> = authority.rsplit_once('@').and_then(|(userinfo, _)| userinfo.split_once(':')).map(|(_, p)| p.to_string()).into_iter().collect();
    found.extend(query.split('&').filter_map(|param| param.split_once('=')).filter(|(key, _)| key.eq_ignore_ascii_case("password")).map(|(_, p)| p.to_string()));
    let decoded: Vec<String> = found.iter().map(|p| percent_decode(p)).collect();
    found.extend(decoded);
    found.retain(|p| !p.is_empty());
    // Longest first, so a password that contains another is replaced whole.
    found.sort_by_key(|p| std::cmp::Reverse(p.len()));
    found.dedup();
    found
}

/// `%40` -> `@`; a malformed escape stays as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An error about an endpoint, with its passwords removed.
pub fn scrub(message: &str, url: &str) -> String {
    passwords(url).iter().fold(message.to_string(), |text, p| text.replace(p.as_str(), "***"))
}

/// The URL schemes each kind of endpoint takes. Anything else (a libpq
/// `host=... password=...` string, a bare host) is refused without being echoed: it
/// may hold a password the redaction would not recognise.
fn check_scheme(kind: Kind, url: &str) -> Result<(), String> {
    let (flag, schemes, example): (&str, &[&str], &str) = match kind {
        Kind::Postgres => ("--postgres", &["postgres", "postgresql"], "postgresql://user:password@host:5432/db"),
        Kind::Pgbouncer => ("--pgbouncer", &["postgres", "postgresql"], "postgresql://user:password@host:6432/pgbouncer"),
        Kind::Redis => ("--redis", &["redis", "rediss", "valkey", "valkeys", "redis+unix", "unix"], "redis://:password@host:6379"),
        _ => ("--nginx-status", &["http", "https"], "http://host/nginx-status"),
    };
    match url.split_once("://") {
        Some((scheme, _)) if schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) => Ok(()),
        Some((scheme, _)) if !scheme.contains(['@', ' ', '=', ':', '/']) => {
            Err(format!("{flag} takes a {} URL, not `{scheme}://...` (for example {example})", schemes.join(" / ")))
        }
        _ => Err(format!("{flag} takes a URL such as {example} (the value given is not one; it is not printed, as it may hold a password)")),
    }
}

/// Which service of `kind` an endpoint (`URL` or `SERVICE=URL`) belongs to.
fn match_service<'a>(plan: &'a Plan, kind: Kind, given: &'a str) -> Result<(&'a ServicePlan, &'a str), String> {
    let candidates: Vec<&ServicePlan> = plan.services.iter().filter(|s| s.kind == kind).collect();
    if let Some((name, url)) = given.split_once('=').filter(|(name, url)| url.contains("://") && !name.contains("://") && !name.contains('/')) {
        check_scheme(kind, url)?;
        return candidates
            .into_iter()
            .find(|s| s.name == name)
            .map(|s| (s, url))
            .ok_or_else(|| format!("the spec has no {} service `{name}`", kind.as_str()));
    }
    check_scheme(kind, given)?;
    match candidates.as_slice() {
        [one] => Ok((one, given)),
        [] => Err(format!("the spec has no {} service to compare {} with", kind.as_str(), redact(given))),
        _ => Err(format!(
            "the spec has several {} services ({}): name one, `SERVICE={}`",
            kind.as_str(),
            candidates.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
            redact(given)
        )),
    }
}

/// The reading's threshold test: past `THRESHOLD` of a budget.
fn budget(source: &'static str, service: &ServicePlan, what: &str, live: f64, allowed: f64, expected: Option<f64>, plan: String) -> Reading {
    let threshold = THRESHOLD * allowed;
    Reading { source, service: service.name.clone(), what: what.into(), live, allowed: Some(allowed), threshold: Some(threshold), expected, past: live > threshold, plan }
}

/// Reads every endpoint twice, `interval` apart, and compares with the plan. Errors
/// (an unreachable server, a service the spec lacks) are returned whole: exit 2.
pub fn observe(plan: &Plan, endpoints: &Endpoints, interval: Duration) -> Result<Observation, String> {
    let mut pg = Vec::new();
    for given in &endpoints.postgres {
        let (service, url) = match_service(plan, Kind::Postgres, given)?;
        pg.push((service, url));
    }
    let mut bouncers = Vec::new();
    for given in &endpoints.pgbouncer {
        bouncers.push(match_service(plan, Kind::Pgbouncer, given)?);
    }
    let mut redises = Vec::new();
    for given in &endpoints.redis {
        redises.push(match_service(plan, Kind::Redis, given)?);
    }
    let mut nginxes = Vec::new();
    for given in &endpoints.nginx_status {
        nginxes.push(match_service(plan, Kind::Nginx, given)?);
    }
    if pg.is_empty() && bouncers.is_empty() && redises.is_empty() && nginxes.is_empty() {
        return Err("nothing to observe: give --postgres, --pgbouncer, --redis or --nginx-status (or HEADROOM_POSTGRES_URL, HEADROOM_PGBOUNCER_URL, HEADROOM_REDIS_URL, HEADROOM_NGINX_STATUS_URL)".into());
    }

    // First samples of the counters, then the pause, then everything else.
    let nginx_first: Vec<sources::NginxStatus> = nginxes.iter().map(|(_, url)| sources::nginx_status(url)).collect::<Result<_, _>>()?;
    let mut bouncer_first = Vec::new();
    for (_, url) in &bouncers {
        bouncer_first.push(sources::pgbouncer(url)?);
    }
    std::thread::sleep(interval);
    let seconds = interval.as_secs_f64().max(1e-3);
    let nginx_second: Vec<sources::NginxStatus> = nginxes.iter().map(|(_, url)| sources::nginx_status(url)).collect::<Result<_, _>>()?;
    let mut bouncer_second = Vec::new();
    for (_, url) in &bouncers {
        bouncer_second.push(sources::pgbouncer(url)?);
    }

    let nginx_rate: Option<f64> = (!nginxes.is_empty())
        .then(|| nginx_first.iter().zip(&nginx_second).map(|(a, b)| b.requests.saturating_sub(a.requests) as f64 / seconds).sum());
    let bouncer_rate: Option<f64> = (!bouncers.is_empty())
        .then(|| bouncer_first.iter().zip(&bouncer_second).map(|(a, b)| b.transactions.saturating_sub(a.transactions) as f64 / seconds).sum());
    let rate = nginx_rate.or(bouncer_rate);

    let load = plan.load.as_ref();
    let at_rate = |seconds_each: Option<f64>| -> Option<f64> { Some(rate? * seconds_each?) };
    let db_time = load.map(|l| l.db_time.value);
    let service_time = load.map(|l| l.service_time.value);
    let mut readings = Vec::new();
    let mut notes = Vec::new();
    let rate_text = rate.map_or("no rate observed".to_string(), |r| format!("{} rps", num(r)));

    for (service, url) in &pg {
        let Detail::Postgres(p) = &service.detail else { continue };
        let live = sources::postgres(url)?;
        let usable = p.usable_connections as f64;
        readings.push(budget(
            "postgres",
            service,
            "client connections",
            live.client_connections as f64,
            usable,
            Some(p.demand as f64),
            format!(
                "pg_stat_activity client backends vs usable connections {} = max_connections {} - superuser_reserved_connections {} - reserved_connections {}; the plan expects up to {} (every pool full)",
                p.usable_connections, p.max_connections.value, p.superuser_reserved_connections.value, p.reserved_connections.value, p.demand
            ),
        ));
        let busy = at_rate(db_time);
        readings.push(Reading {
            source: "postgres",
            service: service.name.clone(),
            what: "active (running a query)".into(),
            live: live.active as f64,
            allowed: Some(usable),
            threshold: None,
            expected: busy.map(|b| (b * 100.0).round() / 100.0),
            past: false,
            plan: format!("the plan expects {rate_text} x db_time {}s busy connections (Little's law)", db_time.map_or("-".into(), num)),
        });
        let live_usable = live.max_connections.saturating_sub(live.superuser_reserved + live.reserved);
        if live_usable != p.usable_connections {
            notes.push(format!(
                "postgres `{}` runs with max_connections {} - {} reserved = {live_usable} usable, the plan counts {}",
                service.name,
                live.max_connections,
                live.superuser_reserved + live.reserved,
                p.usable_connections
            ));
        }
        if !live.by_application.is_empty() {
            let parts: Vec<String> = live.by_application.iter().map(|(app, state, n)| format!("{} {state}: {n}", if app.is_empty() { "(no application_name)" } else { app })).collect();
            notes.push(format!("postgres `{}` connections by application and state: {}", service.name, parts.join(", ")));
        }
    }

    for (((service, _), first), second) in bouncers.iter().zip(&bouncer_first).zip(&bouncer_second) {
        let Detail::Pgbouncer(b) = &service.detail else { continue };
        let replicas = service.replicas.value.max(1) as f64;
        let clients = (second.cl_active + second.cl_waiting) as f64;
        readings.push(budget(
            "pgbouncer",
            service,
            "client connections",
            clients,
            b.max_client_conn.value as f64,
            Some(b.client_demand as f64 / replicas),
            format!("cl_active + cl_waiting (SHOW POOLS) vs max_client_conn {}; the plan's clients open {} in all", b.max_client_conn.value, b.client_demand),
        ));
        let sustained = first.cl_waiting > 0 && second.cl_waiting > 0;
        readings.push(Reading {
            source: "pgbouncer",
            service: service.name.clone(),
            what: "cl_waiting (both samples)".into(),
            live: second.cl_waiting as f64,
            allowed: None,
            threshold: Some(0.0),
            expected: Some(0.0),
            past: sustained,
            plan: format!(
                "clients waiting for a server connection in both samples ({} then {}): the pools (or postgres behind them) are smaller than the concurrency; they fail after query_wait_timeout {}s",
                first.cl_waiting, second.cl_waiting, b.query_wait_timeout.value
            ),
        });
        let servers = second.sv_active + second.sv_idle + second.sv_used + second.sv_tested + second.sv_login;
        readings.push(Reading {
            source: "pgbouncer",
            service: service.name.clone(),
            what: "server connections".into(),
            live: servers as f64,
            allowed: Some(b.server_connections.value as f64 / replicas),
            threshold: None,
            expected: at_rate(db_time).map(|v| (v * 100.0).round() / 100.0),
            past: false,
            plan: format!("sv_active + sv_idle + sv_used + sv_tested + sv_login vs the plan's server connections {}; busy at {rate_text} x db_time", b.server_connections.value),
        });
        if b.query_wait_timeout.value > 0 {
            let timeout = b.query_wait_timeout.value as f64;
            readings.push(Reading {
                source: "pgbouncer",
                service: service.name.clone(),
                what: "maxwait (s)".into(),
                live: second.maxwait,
                allowed: Some(timeout),
                threshold: Some(timeout / 2.0),
                expected: Some(0.0),
                past: second.maxwait > timeout / 2.0,
                plan: format!("the oldest waiting client vs query_wait_timeout {timeout}s (reported past half of it)"),
            });
        }
        if second.max_client_conn != b.max_client_conn.value {
            notes.push(format!("pgbouncer `{}` runs with max_client_conn {}, the plan counts {}", service.name, second.max_client_conn, b.max_client_conn.value));
        }
        if second.default_pool_size != b.default_pool_size.value {
            notes.push(format!("pgbouncer `{}` runs with default_pool_size {}, the plan counts {}", service.name, second.default_pool_size, b.default_pool_size.value));
        }
    }

    for (service, url) in &redises {
        let Detail::Redis(r) = &service.detail else { continue };
        let live = sources::redis(url).map_err(|e| scrub(&e, url))?;
        let replicas = service.replicas.value.max(1) as f64;
        readings.push(budget(
            "redis",
            service,
            "connected clients",
            live.connected_clients as f64,
            r.effective_maxclients.value as f64,
            Some(r.demand as f64 / replicas),
            format!("connected_clients (INFO) vs maxclients {}; the plan's clients open {}", r.effective_maxclients.value, r.demand),
        ));
        readings.push(Reading {
            source: "redis",
            service: service.name.clone(),
            what: "rejected connections".into(),
            live: live.rejected_connections as f64,
            allowed: None,
            threshold: Some(0.0),
            expected: Some(0.0),
            past: live.rejected_connections > 0,
            plan: "rejected_connections since the server started: each one a client that got `max number of clients reached`".into(),
        });
        if let Some(maxmemory) = &r.maxmemory {
            readings.push(budget(
                "redis",
                service,
                "used memory (bytes)",
                live.used_memory as f64,
                maxmemory.value as f64,
                None,
                format!("used_memory vs maxmemory {} bytes", maxmemory.value),
            ));
        }
        if live.maxclients != r.effective_maxclients.value {
            notes.push(format!("redis `{}` runs with maxclients {}, the plan counts {}", service.name, live.maxclients, r.effective_maxclients.value));
        }
        if let Some(m) = &r.maxmemory
            && live.maxmemory != m.value
        {
            notes.push(format!("redis `{}` runs with maxmemory {} bytes, the plan counts {}", service.name, live.maxmemory, m.value));
        }
    }

    for ((service, _), status) in nginxes.iter().zip(&nginx_second) {
        let Detail::Nginx(n) = &service.detail else { continue };
        let clients = (n.worker_processes.value * n.worker_connections.value / 2) as f64;
        readings.push(budget(
            "nginx",
            service,
            "client connections",
            status.active as f64,
            clients,
            at_rate(service_time).map(|v| (v * 100.0).round() / 100.0),
            format!(
                "Active connections (stub_status) vs worker_processes {} x worker_connections {} / 2 per proxied request; the plan expects {rate_text} x service_time in flight",
                n.worker_processes.value, n.worker_connections.value
            ),
        ));
    }
    if let (Some(rate), Some(capacity), Some(load), false) = (nginx_rate, plan.capacity.as_ref(), load, nginxes.is_empty()) {
        let planned = capacity.planned_rps;
        let limit = capacity.bottleneck.as_ref().map_or(capacity.capacity_rps, |b| b.capacity_rps);
        readings.push(Reading {
            source: "nginx",
            service: nginxes[0].0.name.clone(),
            what: "requests/s".into(),
            live: (rate * 100.0).round() / 100.0,
            allowed: Some(limit),
            threshold: Some(planned),
            expected: Some(load.rps.value),
            past: rate > planned,
            plan: format!(
                "requests counted by stub_status vs the plan's bottleneck {} rps; reported past the planned {} rps (max_utilization {}); load.rps is {}",
                num(limit),
                num(planned),
                num(load.max_utilization.value),
                num(load.rps.value)
            ),
        });
    }
    Ok(Observation { name: plan.name.clone(), interval: seconds, rate_rps: rate.map(|r| (r * 100.0).round() / 100.0), readings, notes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        assert_eq!(redact("postgresql://app:s3cret@10.0.0.1:5432/app"), "postgresql://app:***@10.0.0.1:5432/app");
        assert_eq!(redact("redis://:s3cret@cache:6379/0"), "redis://:***@cache:6379/0");
        assert_eq!(redact("http://127.0.0.1/nginx-status"), "http://127.0.0.1/nginx-status");
        assert_eq!(scrub("login failed for s3cret", "postgresql://app:s3cret@h/db"), "login failed for ***");
        // libpq's query parameter, and a percent-encoded password as the server sees it.
        assert_eq!(redact("postgresql://h:5432/db?sslmode=disable&password=s3cret&user=app"), "postgresql://h:5432/db?sslmode=disable&password=***&user=app");
        assert_eq!(redact("postgresql://h?password=s3cret"), "postgresql://h?password=***");
        assert_eq!(scrub("bad p@ss and p%40ss", "postgresql://app:p%40ss@h/db"), "bad *** and ***");
        assert_eq!(scrub("x s3cret", "postgresql://h/db?password=s3cret"), "x ***");
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }

    #[test]
    fn endpoints_that_are_not_urls_are_refused_unprinted() {
        let analysis = crate::analysis::analyze_text("capacity.yaml", "version: 1\nname: t\nservices:\n  db: { kind: postgres }\n  cache: { kind: redis }\n").unwrap();
        let plan = &analysis.plan;
        for given in ["host=h password=s3cret", "password=s3cret", "db=host=h password=s3cret", "app:s3cret@h:5432"] {
            let error = match_service(plan, Kind::Postgres, given).unwrap_err();
            assert!(error.contains("--postgres takes a URL") && !error.contains("s3cret"), "{error}");
        }
        let error = match_service(plan, Kind::Redis, "mysql://u:s3cret@h").unwrap_err();
        assert!(error.contains("not `mysql://...`") && !error.contains("s3cret"), "{error}");
        assert!(match_service(plan, Kind::Redis, "rediss://:pw@h:6380").is_ok());
        assert!(match_service(plan, Kind::Postgres, "db=postgres://h/db").is_ok());
    }

    #[test]
    fn endpoints_match_the_specs_services() {
        let analysis = crate::analysis::analyze_text(
            "capacity.yaml",
            "version: 1\nname: t\nservices:\n  a: { kind: postgres }\n  b: { kind: postgres }\n  c: { kind: redis }\n",
        )
        .unwrap();
        let plan = &analysis.plan;
        assert!(match_service(plan, Kind::Postgres, "postgresql://x:pw@h/db").unwrap_err().contains("several postgres services (a, b)"));
        assert!(!match_service(plan, Kind::Postgres, "postgresql://x:pw@h/db").unwrap_err().contains("pw"));
        assert_eq!(match_service(plan, Kind::Postgres, "b=postgresql://h/db").unwrap().0.name, "b");
        assert_eq!(match_service(plan, Kind::Redis, "redis://h:6379").unwrap().0.name, "c");
        assert!(match_service(plan, Kind::Nginx, "http://h/status").is_err());
    }
}
