//! Rule `db-pool-below-load`.

use super::{Check, edge_arithmetic, finding, num};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Edge, Kind, Origin, Plan, PgbouncerPlan, PostgresPlan, ServicePlan, mul, sum};

declare_rule! {
    /// Fewer database connections can be busy at once than load.rps needs.
    ///
    /// ## What it checks
    /// By Little's law the request path keeps `load.rps x load.db_time` database
    /// connections busy on average; planned at `load.max_utilization`, it needs
    /// `rps x db_time / max_utilization`. The connections that can reach postgres at
    /// once on behalf of the app servers (gunicorn, puma) are, per postgres: the app
    /// servers' direct pools (`replicas x processes x pool`), plus for each PgBouncer in
    /// front of it the smaller of the apps' client connections and its server
    /// connections, all capped at postgres' `max_connections - superuser_reserved -
    /// reserved`. Skipped without `load` or when no app server uses a database.
    ///
    /// ## Why it matters
    /// Requests queue for a connection: in the pool's checkout (Rails, SQLAlchemy,
    /// psycopg_pool) or in PgBouncer (`cl_waiting` in `SHOW POOLS`). p99 latency climbs
    /// well before anything errors; errors come only once the waits pass the timeouts
    /// (Rails checkout_timeout 5s, SQLAlchemy pool_timeout 30s, PgBouncer
    /// query_wait_timeout 120s). PgBouncer's `reserve_pool_size` connections open only
    /// after a client has waited `reserve_pool_timeout` (5s), so a plan that needs them
    /// at steady load already waits.
    ///
    /// ## Example
    /// ```yaml
    /// load: { rps: 1000, service_time: 100ms, db_time: 50ms }   # needs 1000 x 0.05 / 0.75 = 67
    /// services:
    ///   pgbouncer: { kind: pgbouncer, default_pool_size: 50, reserve_pool_size: 10, uses: { db: {} } }  # 60
    /// ```
    ///
    /// ## Fix
    /// Raise the layer that caps the connections: PgBouncer's `default_pool_size` (and
    /// `max_db_connections`), postgres' `max_connections`, or the app pools; or make
    /// the database work per request shorter (`db_time`: indexes, fewer round trips,
    /// caching).
    ///
    /// ## Defaults
    /// db_time defaults to service_time; max_utilization 0.75. PgBouncer
    /// default_pool_size 20, reserve_pool_size 0, reserve_pool_timeout 5s; PostgreSQL
    /// max_connections 100, superuser_reserved_connections 3.
    ///
    /// ## References
    /// - https://en.wikipedia.org/wiki/Little%27s_law
    /// - https://www.pgbouncer.org/config.html#default_pool_size
    /// - https://www.pgbouncer.org/config.html#reserve_pool_timeout
    /// - https://www.pgbouncer.org/usage.html#show-pools
    /// - https://www.postgresql.org/docs/current/runtime-config-connection.html
    pub struct DbPoolBelowLoad { id: "db-pool-below-load", severity: Warning }
}

/// What caps the connections that reach a postgres.
enum Cap<'a> {
    Postgres { service: &'a ServicePlan, pg: &'a PostgresPlan, raw: u64 },
    Pooler { service: &'a ServicePlan, pgb: &'a PgbouncerPlan, postgres: &'a PostgresPlan, from_apps: u64 },
    Apps,
}

impl Check for DbPoolBelowLoad {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        let (Some(load), Some(capacity)) = (&plan.load, &plan.capacity) else { return };
        let is_app = |e: &Edge| plan.service(&e.from).is_some_and(|s| s.kind.is_app());
        let app_edges: Vec<&Edge> = plan
            .edges
            .iter()
            .filter(|e| is_app(e))
            .filter(|e| match e.to_kind {
                Kind::Postgres => true,
                Kind::Pgbouncer => plan.service(&e.to).is_some_and(|s| matches!(&s.detail, Detail::Pgbouncer(p) if p.target.is_some())),
                _ => false,
            })
            .collect();
        if app_edges.is_empty() {
            return;
        }
        let rps = load.rps.value;
        let db_time = load.db_time.value;
        let utilization = load.max_utilization.value;
        let needed = rps * db_time / utilization;
        let reachable = capacity.db_connections;
        if reachable as f64 >= needed - 1e-9 {
            return;
        }
        let needed_whole = (needed - 1e-9).ceil() as u64;
        let shortfall = needed_whole - reachable;

        // The breakdown per postgres, and what caps it.
        let mut parts = Vec::new();
        let mut postgres_cap = None;
        let mut pooler_cap = None;
        for postgres in plan.of_kind(Kind::Postgres) {
            let Detail::Postgres(pg) = &postgres.detail else { continue };
            let direct: Vec<&Edge> = plan.edges_into(&postgres.name).filter(|e| is_app(e)).collect();
            let mut terms: Vec<String> = direct.iter().map(|e| edge_arithmetic(plan, e)).collect();
            let mut raw = sum(direct.iter().map(|e| e.connections));
            for (pooler, pgb) in plan.poolers_of(&postgres.name) {
                let clients: Vec<&Edge> = plan.edges_into(&pooler.name).filter(|e| is_app(e)).collect();
                if clients.is_empty() {
                    continue;
                }
                let from_apps = sum(clients.iter().map(|e| e.connections));
                let server = pgb.server_connections.value;
                if from_apps <= server {
                    let client_terms: Vec<String> = clients.iter().map(|e| edge_arithmetic(plan, e)).collect();
                    terms.push(format!("via pgbouncer `{}` {} (within its {server} server connections)", pooler.name, client_terms.join(" + ")));
                } else {
                    let formula = match &pgb.server_connections.origin {
                        Origin::Derived { formula, .. } => formula.to_string(),
                        _ => pgb.server_connections.cite(),
                    };
                    let reserve = if pgb.reserve_pool_size.value > 0 {
                        format!(
                            "; its reserve_pool_size {} per pool opens only after a client waited reserve_pool_timeout {}s",
                            pgb.reserve_pool_size.value, pgb.reserve_pool_timeout.value
                        )
                    } else {
                        String::new()
                    };
                    terms.push(format!(
                        "via pgbouncer `{}` {server} server connections ({formula}{reserve}) for the apps' {from_apps} client connections",
                        pooler.name,
                    ));
                    if pooler_cap.is_none() {
                        pooler_cap = Some(Cap::Pooler { service: pooler, pgb, postgres: pg, from_apps });
                    }
                }
                raw = raw.saturating_add(from_apps.min(server));
            }
            if terms.is_empty() {
                continue;
            }
            let mut text = format!("postgres `{}`: {}", postgres.name, terms.join(" + "));
            if raw > pg.usable_connections && !super::postgres_limit_unknown(postgres) {
                if terms.len() > 1 {
                    text.push_str(&format!(" = {raw}"));
                }
                text.push_str(&format!(
                    ", capped at the {} it accepts (max_connections {} ({}) - superuser_reserved_connections {} - reserved_connections {})",
                    pg.usable_connections,
                    pg.max_connections.value,
                    pg.max_connections.cite(),
                    pg.superuser_reserved_connections.value,
                    pg.reserved_connections.value,
                ));
                if postgres_cap.is_none() {
                    postgres_cap = Some(Cap::Postgres { service: postgres, pg, raw });
                }
            }
            parts.push(text);
        }
        let cap = postgres_cap.or(pooler_cap).unwrap_or(Cap::Apps);

        let message = format!(
            "load.rps {} ({}) x db_time {}s ({}) = {} connections busy on average, {needed_whole} at max_utilization {} ({}), but only {reachable} can reach postgres at once for the app servers: {}; they complete {} rps of database work at most, {} rps planned; past that requests queue for a connection (pool checkout, PgBouncer cl_waiting) and p99 latency climbs before anything errors",
            num(rps),
            load.rps.cite(),
            num(db_time),
            load.db_time.cite(),
            num(rps * db_time),
            num(utilization),
            load.max_utilization.cite(),
            parts.join("; "),
            num(capacity.db_capacity_rps),
            num(capacity.db_capacity_rps * utilization),
        );

        let (path, fix) = match &cap {
            Cap::Postgres { service, pg, raw } => {
                let mut fix = format!(
                    "raise max_connections of `{}` to >= {} ({})",
                    service.name,
                    pg.max_connections.value.saturating_add(shortfall),
                    pg.max_connections.path()
                );
                let want = pg.usable_connections.saturating_add(shortfall);
                if *raw < want {
                    fix.push_str(&format!(" and let the pools in front of it open >= {want} (they open {raw})"));
                }
                (pg.max_connections.path().to_string(), fix)
            }
            Cap::Pooler { service, pgb, postgres, from_apps } => {
                let server = pgb.server_connections.value;
                let target = server.saturating_add(shortfall);
                let replicas = service.replicas.value.max(1);
                let databases = (pgb.databases.len() as u64).max(1);
                let users = (pgb.users.len() as u64).max(1);
                let per_db = target.div_ceil(mul(&[replicas, databases]));
                let pool = per_db.div_ceil(users).saturating_sub(pgb.reserve_pool_size.value).max(1);
                let mut fix = format!(
                    "let pgbouncer `{}` open >= {target} server connections: raise default_pool_size to >= {pool} ({})",
                    service.name,
                    pgb.default_pool_size.path()
                );
                if pgb.reserve_pool_size.value > 0 {
                    fix.push_str(&format!(
                        " (>= {} to serve it without the reserve pool, which opens only after reserve_pool_timeout)",
                        per_db.div_ceil(users)
                    ));
                }
                if pgb.max_db_connections.value > 0 && pgb.max_db_connections.value < per_db {
                    fix.push_str(&format!(" and max_db_connections to >= {per_db} ({})", pgb.max_db_connections.path()));
                }
                let per_user = mul(&[per_db, databases]).div_ceil(users);
                if pgb.max_user_connections.value > 0 && pgb.max_user_connections.value < per_user {
                    fix.push_str(&format!(" and max_user_connections to >= {per_user} ({})", pgb.max_user_connections.path()));
                }
                if target > *from_apps {
                    fix.push_str(&format!(", and the app pools to >= {target} client connections (they open {from_apps})"));
                }
                let grown = postgres.demand.saturating_add(target - server);
                if grown > postgres.usable_connections {
                    fix.push_str(&format!(
                        "; postgres then needs max_connections >= {} ({})",
                        postgres.max_connections.value.saturating_add(grown - postgres.usable_connections),
                        postgres.max_connections.path()
                    ));
                }
                (pgb.default_pool_size.path().to_string(), fix)
            }
            Cap::Apps => {
                let edge = app_edges[0];
                let per = mul(&[edge.replicas, edge.processes]).max(1);
                let pool = edge.connections.saturating_add(shortfall).div_ceil(per);
                let fix = if pool <= edge.slots_needing.value {
                    format!("raise {} to >= {pool} per process ({} x {pool} = {} connections)", edge.pool.path(), per, mul(&[per, pool]))
                } else {
                    format!(
                        "the app servers have too few slots to use {needed_whole} connections: add app replicas (see capacity-below-load), or shorten db_time to <= {}s",
                        num((reachable as f64 * utilization / rps * 1000.0).floor() / 1000.0)
                    )
                };
                (edge.pool.path().to_string(), fix)
            }
        };

        let mut d = finding::<Self>(path, message)
            .number("needed", needed)
            .number("reachable", reachable as f64)
            .number("rps", rps)
            .number("db_time", db_time)
            .number("db_capacity_rps", capacity.db_capacity_rps)
            .fix(fix)
            .related(load.rps.path(), format!("{} rps", num(rps)))
            .related(load.db_time.path(), format!("each request holds a connection {}s", num(db_time)));
        for edge in &app_edges {
            d = d.related(edge.per_process.path(), format!("{} opens {} to `{}`", edge.from, edge.connections, edge.to));
        }
        out.push(d);
    }
}

#[cfg(test)]
mod tests {

    fn findings(yaml: &str) -> Vec<crate::diag::Diagnostic> {
        crate::rules::findings_of("db-pool-below-load", yaml)
    }

    fn pooled(rps: u64, db_time: &str, pool_size: u64) -> String {
        format!(
            "version: 1
name: arena
load: {{ rps: {rps}, service_time: 100ms, db_time: {db_time} }}
services:
  web:
    kind: gunicorn
    worker_class: gthread
    workers: 8
    threads: 4
    replicas: 15
    uses:
      pgbouncer: {{ pool: 4, framework: django, persistent: true }}
  pgbouncer:
    kind: pgbouncer
    pool_mode: transaction
    max_client_conn: 2000
    default_pool_size: {pool_size}
    reserve_pool_size: 10
    max_db_connections: 100
    uses: {{ db: {{}} }}
  db:
    kind: postgres
    max_connections: 200
"
        )
    }

    #[test]
    fn pgbouncer_server_pool_caps_the_connections() {
        let found = findings(&pooled(1000, "50ms", 50));
        assert_eq!(found.len(), 1);
        let d = &found[0];
        assert_eq!(d.path, "services.pgbouncer.default_pool_size");
        assert!(d.message.contains("load.rps 1000 (load.rps) x db_time 0.05s (load.db_time) = 50 connections busy on average, 67 at max_utilization 0.75"), "{}", d.message);
        assert!(d.message.contains("only 60 can reach postgres"), "{}", d.message);
        assert!(d.message.contains("via pgbouncer `pgbouncer` 60 server connections"), "{}", d.message);
        assert!(d.message.contains("for the apps' 480 client connections"), "{}", d.message);
        assert!(d.message.contains("reserve_pool_timeout 5s"), "{}", d.message);
        assert!(d.message.contains("p99 latency climbs"), "{}", d.message);
        let fix = d.fix.as_deref().unwrap();
        assert!(fix.contains("open >= 67 server connections: raise default_pool_size to >= 57"), "{fix}");
    }

    #[test]
    fn boundary_exactly_enough_connections_passes() {
        // 900 rps x 0.05s / 0.75 = 60 = what pgbouncer opens.
        assert!(findings(&pooled(900, "50ms", 50)).is_empty());
        assert_eq!(findings(&pooled(901, "50ms", 50)).len(), 1);
    }

    #[test]
    fn postgres_cap_is_reported_at_max_connections() {
        let yaml = "version: 1
name: t
load: { rps: 1000, service_time: 100ms, db_time: 100ms }
services:
  web:
    kind: puma
    workers: 4
    threads: 5
    replicas: 10
    uses:
      db: { pool: 5, framework: rails }
  db:
    kind: postgres
";
        let found = findings(yaml);
        assert_eq!(found.len(), 1);
        let d = &found[0];
        assert_eq!(d.path, "services.db.max_connections");
        assert!(d.message.contains("web 10 replicas x 4 workers x 5 pool = 200, capped at the 97 it accepts"), "{}", d.message);
        assert!(d.fix.as_deref().unwrap().contains("raise max_connections of `db` to >= 137"), "{:?}", d.fix);
    }

    #[test]
    fn no_load_or_no_db_no_finding() {
        let yaml = "version: 1\nname: t\nservices:\n  web: { kind: gunicorn, uses: { db: { pool: 1 } } }\n  db: { kind: postgres }\n";
        assert!(findings(yaml).is_empty());
        let yaml = "version: 1\nname: t\nload: { rps: 1000, service_time: 1s }\nservices:\n  web: { kind: gunicorn }\n";
        assert!(findings(yaml).is_empty());
    }
}
