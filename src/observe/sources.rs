//! Reading live numbers from the servers with their own client libraries: PostgreSQL
//! (`postgres`: pg_stat_activity and the connection settings), PgBouncer's admin
//! console (`postgres`, simple query protocol: SHOW POOLS / STATS / CONFIG), Redis or
//! Valkey (`redis`: INFO), nginx stub_status (`ureq`). Errors name the endpoint with
//! its password removed.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{redact, scrub};

const TIMEOUT: Duration = Duration::from_secs(5);

/// What PostgreSQL reports.
#[derive(Clone, Debug, Default)]
pub struct PostgresLive {
    /// Client backends, this session excluded.
    pub client_connections: u64,
    /// Of which running a query.
    pub active: u64,
    pub max_connections: u64,
    pub superuser_reserved: u64,
    pub reserved: u64,
    /// (application_name, state, count).
    pub by_application: Vec<(String, String, u64)>,
}

/// What PgBouncer's admin console reports, summed over its pools (the admin
/// pseudo-database excluded).
#[derive(Clone, Debug, Default)]
pub struct PgbouncerLive {
    pub cl_active: u64,
    pub cl_waiting: u64,
    pub sv_active: u64,
    pub sv_idle: u64,
    pub sv_used: u64,
    pub sv_tested: u64,
    pub sv_login: u64,
    /// Seconds the oldest waiting client has waited.
    pub maxwait: f64,
    /// Transactions pooled since start (SHOW STATS total_xact_count).
    pub transactions: u64,
    pub max_client_conn: u64,
    pub default_pool_size: u64,
}

/// What Redis (or Valkey) reports in INFO.
#[derive(Clone, Debug, Default)]
pub struct RedisLive {
    pub connected_clients: u64,
    pub maxclients: u64,
    pub rejected_connections: u64,
    pub used_memory: u64,
    pub maxmemory: u64,
}

/// nginx stub_status.
#[derive(Clone, Debug, Default)]
pub struct NginxStatus {
    pub active: u64,
    pub requests: u64,
}

type Rows = Vec<BTreeMap<String, String>>;

/// An error with its causes (`error connecting to server: Connection refused`).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn connect(url: &str) -> Result<postgres::Client, String> {
    let mut config: postgres::Config = url.parse().map_err(|e| scrub(&format!("{}: not a PostgreSQL URL: {e}", redact(url)), url))?;
    config.connect_timeout(TIMEOUT);
    if config.get_application_name().is_none() {
        config.application_name("headroom-observe");
    }
    config.connect(postgres::NoTls).map_err(|e| scrub(&format!("cannot connect to {}: {}", redact(url), chain(&e)), url))
}

/// Runs one statement with the simple query protocol (all PgBouncer's console speaks)
/// and returns its rows as column -> text.
fn rows(client: &mut postgres::Client, sql: &str, url: &str) -> Result<Rows, String> {
    let messages = client.simple_query(sql).map_err(|e| scrub(&format!("{} on {}: {}", sql, redact(url), chain(&e)), url))?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(row) => Some(
                row.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_string(), row.get(i).unwrap_or("").to_string()))
                    .collect(),
            ),
            _ => None,
        })
        .collect())
}

fn number(row: &BTreeMap<String, String>, column: &str) -> u64 {
    row.get(column).and_then(|v| v.trim().parse::<f64>().ok()).map_or(0, |v| v.max(0.0) as u64)
}

pub fn postgres(url: &str) -> Result<PostgresLive, String> {
    let mut client = connect(url)?;
    let activity = rows(
        &mut client,
        "SELECT coalesce(application_name, '') AS application, coalesce(state, '') AS state, count(*) AS n \
         FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1, 2 ORDER BY 1, 2",
        url,
    )?;
    let settings = rows(
        &mut client,
        "SELECT current_setting('max_connections') AS max_connections, \
         current_setting('superuser_reserved_connections') AS superuser_reserved, \
         coalesce(current_setting('reserved_connections', true), '0') AS reserved",
        url,
    )?;
    let s = settings.first().cloned().unwrap_or_default();
    let mut live = PostgresLive {
        max_connections: number(&s, "max_connections"),
        superuser_reserved: number(&s, "superuser_reserved"),
        reserved: number(&s, "reserved"),
        ..Default::default()
    };
    for row in &activity {
        let n = number(row, "n");
        live.client_connections += n;
        if row.get("state").map(String::as_str) == Some("active") {
            live.active += n;
        }
        live.by_application.push((row["application"].clone(), row["state"].clone(), n));
    }
    Ok(live)
}

pub fn pgbouncer(url: &str) -> Result<PgbouncerLive, String> {
    let mut client = connect(url)?;
    let mut live = PgbouncerLive::default();
    for row in rows(&mut client, "SHOW POOLS", url)?.iter().filter(|r| r.get("database").map(String::as_str) != Some("pgbouncer")) {
        live.cl_active += number(row, "cl_active");
        live.cl_waiting += number(row, "cl_waiting");
        live.sv_active += number(row, "sv_active");
        live.sv_idle += number(row, "sv_idle");
        live.sv_used += number(row, "sv_used");
        live.sv_tested += number(row, "sv_tested");
        live.sv_login += number(row, "sv_login");
        let wait = number(row, "maxwait") as f64 + number(row, "maxwait_us") as f64 / 1e6;
        live.maxwait = live.maxwait.max(wait);
    }
    for row in rows(&mut client, "SHOW STATS", url)?.iter().filter(|r| r.get("database").map(String::as_str) != Some("pgbouncer")) {
        live.transactions += number(row, "total_xact_count");
    }
    for row in rows(&mut client, "SHOW CONFIG", url)? {
        match row.get("key").map(String::as_str) {
            Some("max_client_conn") => live.max_client_conn = number(&row, "value"),
            Some("default_pool_size") => live.default_pool_size = number(&row, "value"),
            _ => {}
        }
    }
    Ok(live)
}

pub fn redis(url: &str) -> Result<RedisLive, String> {
    let client = redis::Client::open(url).map_err(|e| format!("{}: not a Redis URL: {e}", redact(url)))?;
    let mut connection = client.get_connection_with_timeout(TIMEOUT).map_err(|e| format!("cannot connect to {}: {e}", redact(url)))?;
    let info: String = redis::cmd("INFO").query(&mut connection).map_err(|e| format!("INFO on {}: {e}", redact(url)))?;
    let fields: BTreeMap<String, String> = info
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut live = RedisLive {
        connected_clients: number(&fields, "connected_clients"),
        maxclients: number(&fields, "maxclients"),
        rejected_connections: number(&fields, "rejected_connections"),
        used_memory: number(&fields, "used_memory"),
        maxmemory: number(&fields, "maxmemory"),
    };
    if !fields.contains_key("maxclients") {
        // INFO lists maxclients since Redis 7; older servers answer CONFIG GET.
        let pair: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxclients").query(&mut connection).map_err(|e| format!("CONFIG GET maxclients on {}: {e}", redact(url)))?;
        live.maxclients = pair.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    }
    Ok(live)
}

pub fn nginx_status(url: &str) -> Result<NginxStatus, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(TIMEOUT)).build().into();
    let mut response = agent.get(url).call().map_err(|e| scrub(&format!("cannot read {}: {e}", redact(url)), url))?;
    let text = response.body_mut().read_to_string().map_err(|e| scrub(&format!("cannot read {}: {e}", redact(url)), url))?;
    parse_stub_status(&text).ok_or_else(|| format!("{} is not an nginx stub_status page: {:?}", redact(url), text.chars().take(200).collect::<String>()))
}

/// `Active connections: N` / `server accepts handled requests` / `A H R` / ...
pub fn parse_stub_status(text: &str) -> Option<NginxStatus> {
    let mut lines = text.lines();
    let active = lines.next()?.strip_prefix("Active connections:")?.trim().parse().ok()?;
    let _ = lines.next()?;
    let counters: Vec<u64> = lines.next()?.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    Some(NginxStatus { active, requests: *counters.get(2)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stub_status() {
        let page = "Active connections: 291 \nserver accepts handled requests\n 16630948 16630948 31070465 \nReading: 6 Writing: 179 Waiting: 106 \n";
        let s = parse_stub_status(page).unwrap();
        assert_eq!((s.active, s.requests), (291, 31070465));
        assert!(parse_stub_status("<html>not found</html>").is_none());
    }
}
