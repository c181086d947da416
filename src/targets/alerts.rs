//! Target `alerts`: Prometheus alerting rules (`deploy.alerts`) whose thresholds are the
//! plan's numbers, written for the metric names of the standard exporters
//! (postgres_exporter, pgbouncer_exporter, redis_exporter, nginx-prometheus-exporter).
//! Every alert carries a `plan` annotation: the number it guards and where it came from.

use serde::Serialize;

use super::escape::one_line;
use super::{Artifact, Context, RenderError, Target, render_template};
use crate::plan::{Detail, Plan, ServicePlan};
use crate::rules::num;

const TEMPLATE: &str = include_str!("../../templates/alerts/alerts.yml.j2");

/// Share of a budget at which the warnings fire when `deploy.alerts.threshold` is not set.
pub const DEFAULT_THRESHOLD: f64 = 0.8;
/// Prometheus `for` of the warnings when `deploy.alerts.for` is not set (seconds).
pub const DEFAULT_FOR_SECS: u64 = 300;
/// `for` of the alerts that mean requests are failing now (seconds).
const CRITICAL_FOR_SECS: u64 = 60;

pub struct Alerts;

impl Target for Alerts {
    fn name(&self) -> &'static str {
        "alerts"
    }
    fn render(&self, ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        let Some(settings) = ctx.spec.deploy.as_ref().and_then(|d| d.alerts.as_ref()) else { return Ok(Vec::new()) };
        let threshold = settings.threshold.unwrap_or(DEFAULT_THRESHOLD);
        let pending = settings.for_.map_or(DEFAULT_FOR_SECS * 1000, |d| d.as_millis());
        let rules = rules(ctx.plan, threshold, pending);
        let context = FileContext {
            header: ctx.header("#"),
            group: format!("headroom-{}", ctx.plan.name),
            threshold_percent: num(threshold * 100.0),
            rules,
        };
        let text = render_template("alerts", "alerts/alerts.yml.j2", TEMPLATE, &context)?;
        Ok(vec![Artifact { target: "alerts", path: path(ctx), text, patched: false }])
    }
}

/// Where the rules go: `deploy.files.alerts`, default `prometheus/alerts.yml`.
pub fn path(ctx: &Context<'_>) -> String {
    ctx.path_for("alerts", "prometheus/alerts.yml")
}

#[derive(Serialize)]
struct FileContext {
    header: String,
    group: String,
    threshold_percent: String,
    rules: Vec<Rule>,
}

/// One alerting rule, every string already one line.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Rule {
    pub alert: &'static str,
    pub service: String,
    pub severity: &'static str,
    pub expr: String,
    /// Prometheus duration (`5m`, `90s`), or empty to fire at once.
    pub pending: String,
    pub summary: String,
    pub description: String,
    /// The plan number the alert guards, with its arithmetic.
    pub plan: String,
}

/// A Prometheus duration for milliseconds (`5m`, `90s`, `1500ms`).
fn duration(millis: u64) -> String {
    match millis {
        0 => String::new(),
        m if m % 3_600_000 == 0 => format!("{}h", m / 3_600_000),
        m if m % 60_000 == 0 => format!("{}m", m / 60_000),
        m if m % 1000 == 0 => format!("{}s", m / 1000),
        m => format!("{m}ms"),
    }
}

/// A name from the spec inside an annotation: one line, and no `{{` that Prometheus'
/// templating would read (the loader's name rules already keep both out).
fn text(value: &str) -> String {
    one_line(value).replace("{{", "{ {").replace("}}", "} }")
}

/// Every alert the plan calls for, in service order.
pub fn rules(plan: &Plan, threshold: f64, pending_millis: u64) -> Vec<Rule> {
    let pending = duration(pending_millis);
    let critical = duration(CRITICAL_FOR_SECS * 1000);
    let pct = num(threshold * 100.0);
    let mut out = Vec::new();
    for service in &plan.services {
        let name = service.name.clone();
        let sname = text(&service.name);
        let mut push = |alert: &'static str, severity: &'static str, expr: String, pending: &str, summary: String, description: String, plan_note: String| {
            out.push(Rule {
                alert,
                service: name.clone(),
                severity,
                expr,
                pending: pending.to_string(),
                summary: one_line(&summary),
                description: one_line(&description),
                plan: one_line(&plan_note),
            });
        };
        match &service.detail {
            Detail::Postgres(pg) => {
                let usable = pg.usable_connections;
                let budget = format!(
                    "usable connections {usable} = max_connections {} ({}) - superuser_reserved_connections {} - reserved_connections {}; the plan's demand is {}",
                    pg.max_connections.value,
                    pg.max_connections.cite(),
                    pg.superuser_reserved_connections.value,
                    pg.reserved_connections.value,
                    pg.demand
                );
                let connections = "sum by (instance) (pg_stat_activity_count)";
                push(
                    "HeadroomPostgresConnectionsHigh",
                    "warning",
                    format!("{connections} > {}", num(threshold * usable as f64)),
                    &pending,
                    format!("postgres `{}` on {{{{ $labels.instance }}}}: {{{{ $value | printf \"%.0f\" }}}} connections, over {pct}% of the {usable} the plan allows", sname),
                    format!("Connections (pg_stat_activity) are past {pct}% of what postgres `{}` accepts from non-superusers; at {usable} new logins fail with `remaining connection slots are reserved`. Check which application holds them (pg_stat_activity by application_name) against the plan's pools.", sname),
                    budget.clone(),
                );
                push(
                    "HeadroomPostgresConnectionsExhausted",
                    "critical",
                    format!("{connections} >= {usable}"),
                    &critical,
                    format!("postgres `{}` on {{{{ $labels.instance }}}}: {{{{ $value | printf \"%.0f\" }}}} connections, every usable slot taken", sname),
                    format!("postgres `{}` has no connection slot left for non-superusers: direct clients get `FATAL: remaining connection slots are reserved` (HTTP 500s); behind PgBouncer clients queue and fail after query_wait_timeout.", sname),
                    budget,
                );
                push(
                    "HeadroomPostgresMaxConnectionsBelowPlan",
                    "warning",
                    format!("max by (instance) (pg_settings_max_connections) < {}", pg.max_connections.value),
                    &critical,
                    format!("postgres `{}` on {{{{ $labels.instance }}}} runs with max_connections {{{{ $value | printf \"%.0f\" }}}}, below the plan's {}", sname, pg.max_connections.value),
                    "The running server accepts fewer connections than the plan was checked against: every budget that counts on it is smaller than planned. Apply the rendered postgres settings and restart.".to_string(),
                    format!("max_connections {} ({})", pg.max_connections.value, pg.max_connections.cite()),
                );
            }
            Detail::Pgbouncer(pgb) => {
                let max_client_conn = pgb.max_client_conn.value;
                let clients = "sum by (instance) (pgbouncer_pools_client_active_connections + pgbouncer_pools_client_waiting_connections)";
                push(
                    "HeadroomPgbouncerClientsHigh",
                    "warning",
                    format!("{clients} > {}", num(threshold * max_client_conn as f64)),
                    &pending,
                    format!("pgbouncer `{}` on {{{{ $labels.instance }}}}: {{{{ $value | printf \"%.0f\" }}}} clients, over {pct}% of max_client_conn {max_client_conn}", sname),
                    format!("Client connections to pgbouncer `{}` approach max_client_conn; past it new clients get `FATAL: no more connections allowed (max_client_conn)`.", sname),
                    format!(
                        "max_client_conn {max_client_conn} ({}) per process; the plan's clients open {} in all over {} replica(s)",
                        pgb.max_client_conn.cite(),
                        pgb.client_demand,
                        service.replicas.value
                    ),
                );
                push(
                    "HeadroomPgbouncerClientsWaiting",
                    "warning",
                    "sum by (instance) (pgbouncer_pools_client_waiting_connections) > 0".to_string(),
                    &pending,
                    format!("pgbouncer `{}` on {{{{ $labels.instance }}}}: {{{{ $value | printf \"%.0f\" }}}} clients waiting for a server connection", sname),
                    format!("Clients of pgbouncer `{}` keep waiting (cl_waiting) for a server connection: the pools (or postgres behind them) are smaller than the concurrency; requests slow down, then fail after query_wait_timeout.", sname),
                    format!("server connections {} ({})", pgb.server_connections.value, server_formula(pgb)),
                );
                if pgb.query_wait_timeout.value > 0 {
                    let timeout = pgb.query_wait_timeout.value;
                    push(
                        "HeadroomPgbouncerWaitNearTimeout",
                        "critical",
                        format!("max by (instance) (pgbouncer_pools_client_maxwait_seconds) > {}", num(timeout as f64 / 2.0)),
                        &critical,
                        format!("pgbouncer `{}` on {{{{ $labels.instance }}}}: a client has waited {{{{ $value | printf \"%.0f\" }}}}s for a server connection", sname),
                        format!("The oldest waiting client of pgbouncer `{}` is past half of query_wait_timeout {timeout}s; at {timeout}s pgbouncer drops it with `query_wait_timeout`.", sname),
                        format!("query_wait_timeout {timeout}s ({})", pgb.query_wait_timeout.cite()),
                    );
                }
            }
            Detail::Redis(redis) => {
                let maxclients = redis.effective_maxclients.value;
                push(
                    "HeadroomRedisClientsHigh",
                    "warning",
                    format!("max by (instance) (redis_connected_clients) > {}", num(threshold * maxclients as f64)),
                    &pending,
                    format!("redis `{}` on {{{{ $labels.instance }}}}: {{{{ $value | printf \"%.0f\" }}}} clients, over {pct}% of maxclients {maxclients}", sname),
                    format!("Connected clients of redis `{}` approach maxclients; past it redis answers `-ERR max number of clients reached` and closes the connection.", sname),
                    format!("maxclients {maxclients} ({}); the plan's clients open {}", redis.effective_maxclients.cite(), redis.demand),
                );
                push(
                    "HeadroomRedisRejectedConnections",
                    "critical",
                    "increase(redis_rejected_connections_total[5m]) > 0".to_string(),
                    "",
                    format!("redis `{}` on {{{{ $labels.instance }}}} rejected connections", sname),
                    format!("redis `{}` refused connections in the last 5 minutes (`-ERR max number of clients reached`): clients past maxclients {maxclients} error out.", sname),
                    format!("maxclients {maxclients} ({})", redis.effective_maxclients.cite()),
                );
                if let Some(maxmemory) = &redis.maxmemory {
                    push(
                        "HeadroomRedisMemoryHigh",
                        "warning",
                        format!("max by (instance) (redis_memory_used_bytes) > {}", num((threshold * maxmemory.value as f64).floor())),
                        &pending,
                        format!("redis `{}` on {{{{ $labels.instance }}}}: {{{{ $value | humanize1024 }}}}B used, over {pct}% of maxmemory", sname),
                        format!("Memory of redis `{}` approaches maxmemory {} bytes; there it evicts ({}) or, with noeviction, refuses writes with `-OOM command not allowed`.", sname, maxmemory.value, redis.maxmemory_policy.value),
                        format!("maxmemory {} bytes ({})", maxmemory.value, maxmemory.cite()),
                    );
                }
            }
            Detail::Nginx(nginx) => {
                let capacity = crate::plan::mul(&[nginx.worker_processes.value, nginx.worker_connections.value]);
                let clients = capacity / 2;
                push(
                    "HeadroomNginxConnectionsHigh",
                    "warning",
                    format!("max by (instance) (nginx_connections_active) > {}", num(threshold * clients as f64)),
                    &pending,
                    format!("nginx `{}` on {{{{ $labels.instance }}}}: {{{{ $value | printf \"%.0f\" }}}} client connections, over {pct}% of the {clients} its workers can proxy", sname),
                    format!("Each proxied request holds a client and an upstream connection: nginx `{}` proxies at most {clients} clients at once; past it workers log `worker_connections are not enough`.", sname),
                    format!(
                        "worker_processes {} x worker_connections {} = {capacity} connections per instance, / 2 per proxied request = {clients}",
                        nginx.worker_processes.value, nginx.worker_connections.value
                    ),
                );
                app_rules(plan, service, &pending, &critical, &mut push);
            }
            _ => {}
        }
    }
    out
}

/// Alerts on the request rate the nginx in front of the app servers counts, against
/// the plan's throughput (utilization vs `load.max_utilization`, and 100%).
fn app_rules(plan: &Plan, nginx: &ServicePlan, pending: &str, critical: &str, push: &mut impl FnMut(&'static str, &'static str, String, &str, String, String, String)) {
    let (Some(load), Some(capacity)) = (&plan.load, &plan.capacity) else { return };
    if capacity.app_slots == 0 {
        return;
    }
    let rate = "sum(rate(nginx_http_requests_total[5m]))";
    let service_time = load.service_time.value;
    let slots = capacity.app_slots;
    let utilization = load.max_utilization.value;
    push(
        "HeadroomAppUtilizationAbovePlan",
        "warning",
        format!("{rate} * {} / {slots} > {}", num_precise(service_time), num_precise(utilization)),
        pending,
        format!("app servers behind nginx `{}`: {{{{ $value | humanizePercentage }}}} of their slots busy, over the planned {}%", text(&nginx.name), num(utilization * 100.0)),
        format!(
            "Requests per second x service_time / slots (Little's law) is past load.max_utilization: queueing delay and p95 climb steeply from here; the plan holds {} rps.",
            num(capacity.planned_rps)
        ),
        format!(
            "{slots} app slots / service_time {}s = {} rps at 100%, x max_utilization {} = {} rps planned ({})",
            num_precise(service_time),
            num(capacity.capacity_rps),
            num_precise(utilization),
            num(capacity.planned_rps),
            load.max_utilization.cite()
        ),
    );
    if let Some(bottleneck) = &capacity.bottleneck {
        push(
            "HeadroomThroughputAtBottleneck",
            "critical",
            format!("{rate} > {}", num(bottleneck.capacity_rps)),
            critical,
            format!("requests through nginx `{}`: {{{{ $value | printf \"%.0f\" }}}} rps, past the plan's bottleneck", text(&nginx.name)),
            format!(
                "The request rate is past what the plan's narrowest layer ({}) completes: requests queue without bound and time out (HTTP 504) or fail.",
                bottleneck.layer
            ),
            format!("bottleneck {} at {} rps ({})", bottleneck.layer, num(bottleneck.capacity_rps), bottleneck.why),
        );
    }
}

/// A number for an expression, with as many decimals as it needs (0.05, 0.75).
fn num_precise(value: f64) -> String {
    let text = format!("{value:.6}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn server_formula(pgb: &crate::plan::PgbouncerPlan) -> String {
    match &pgb.server_connections.origin {
        crate::plan::Origin::Derived { formula, .. } => formula.to_string(),
        _ => pgb.server_connections.cite(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze_text;

    const SPEC: &str = r#"
version: 1
name: arena
load: { rps: 100, service_time: 100ms, db_time: 50ms }
services:
  web:
    kind: gunicorn
    worker_class: gthread
    workers: 2
    threads: 4
    uses: { pgbouncer: { pool: 4, framework: psycopg2 } }
  lb:
    kind: nginx
    worker_processes: 2
    worker_connections: 1000
    upstreams: { backend: { to: web } }
    locations: [ { path: /, upstream: backend } ]
  pgbouncer: { kind: pgbouncer, max_client_conn: 100, default_pool_size: 10, query_wait_timeout: 20s, uses: { db: {} } }
  db: { kind: postgres, max_connections: 50 }
  cache: { kind: redis, maxclients: 1000, maxmemory: 1GiB }
deploy:
  alerts: { threshold: 0.9, for: 2m }
"#;

    fn render(spec: &str) -> Vec<Artifact> {
        let analysis = analyze_text("capacity.yaml", spec).expect("spec loads");
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        Alerts.render(&ctx).expect("renders")
    }

    #[test]
    fn thresholds_are_the_plans_numbers() {
        let artifacts = render(SPEC);
        assert_eq!(artifacts.len(), 1);
        let text = &artifacts[0].text;
        assert_eq!(artifacts[0].path, "prometheus/alerts.yml");
        // usable 50 - 3 = 47; 90% = 42.3.
        assert!(text.contains("expr: \"sum by (instance) (pg_stat_activity_count) > 42.3\"\n"), "{text}");
        assert!(text.contains("expr: \"sum by (instance) (pg_stat_activity_count) >= 47\"\n"), "{text}");
        assert!(text.contains("(pgbouncer_pools_client_active_connections + pgbouncer_pools_client_waiting_connections) > 90\"\n"), "{text}");
        assert!(text.contains("pgbouncer_pools_client_maxwait_seconds) > 10\"\n"), "{text}");
        assert!(text.contains("redis_connected_clients) > 900\"\n"), "{text}");
        assert!(text.contains("redis_memory_used_bytes) > 966367641\"\n"), "{text}");
        // 2 x 1000 / 2 = 1000 clients; 90% = 900.
        assert!(text.contains("nginx_connections_active) > 900\"\n"), "{text}");
        // 8 slots / 0.1 s = 80 rps at 100%.
        assert!(text.contains("sum(rate(nginx_http_requests_total[5m])) * 0.1 / 8 > 0.75\"\n"), "{text}");
        assert!(text.contains("for: 2m\n"), "{text}");
        assert!(!render(&SPEC.replace("  alerts: { threshold: 0.9, for: 2m }\n", "  compose: {}\n")).iter().any(|a| a.target == "alerts"));
    }

    #[test]
    fn annotations_cannot_become_templates_or_lines() {
        assert_eq!(text("a {{ $x }}\nb"), "a { { $x } }\\nb");
    }

    #[test]
    fn durations_in_prometheus_units() {
        assert_eq!(duration(300_000), "5m");
        assert_eq!(duration(90_000), "90s");
        assert_eq!(duration(3_600_000), "1h");
        assert_eq!(duration(1500), "1500ms");
        assert_eq!(duration(0), "");
    }
}
