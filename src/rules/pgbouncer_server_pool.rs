//! Rule `pgbouncer-server-pool`.

use super::{Check, edge_arithmetic, finding};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Origin, Plan, sum};

declare_rule! {
    /// A PgBouncer may open more server connections than its postgres leaves for it.
    ///
    /// ## What it checks
    /// For each `pgbouncer` service that `uses` a `postgres`, its maximum server
    /// connections: every (database, user) pair is a pool that may open
    /// `default_pool_size + reserve_pool_size` connections; `max_db_connections` caps
    /// the pools of one database and `max_user_connections` those of one user (0 =
    /// unlimited); every PgBouncer replica has its own pools. That number must fit in
    /// what the postgres leaves: `max_connections - superuser_reserved_connections -
    /// reserved_connections`, minus its direct clients' `replicas x processes x pool`,
    /// minus `other_connections`, minus the other poolers' server connections.
    /// `postgres-connections-exhausted` reports the same overcommit at the postgres;
    /// this rule points at the PgBouncer settings that cause it.
    ///
    /// ## Why it matters
    /// PgBouncer opens server connections on demand, so the plan works at low load and
    /// fails at peak: when a pool grows past what postgres accepts, the login fails
    /// (`server login failed: FATAL: remaining connection slots are reserved for roles
    /// with the SUPERUSER attribute`, or `sorry, too many clients already` without
    /// reserved slots, in PgBouncer's log), the clients of that pool queue
    /// (`cl_waiting` in `SHOW POOLS`) and fail after `query_wait_timeout`. Direct
    /// clients of the same postgres get the `FATAL` error themselves, as HTTP 500s.
    ///
    /// ## Example
    /// ```yaml
    /// pgbouncer: { kind: pgbouncer, replicas: 2, default_pool_size: 50, reserve_pool_size: 10,
    ///              uses: { db: {} } }                # 2 x (50 + 10) = 120
    /// db:        { kind: postgres }                   # 100 - 3 = 97
    /// ```
    ///
    /// ## Fix
    /// Set `max_db_connections` to what postgres leaves divided by the PgBouncer
    /// replicas and databases (a hard cap per database, whatever the users), or lower
    /// `default_pool_size` so `databases x users x (default_pool_size +
    /// reserve_pool_size) x replicas` fits, or raise postgres' `max_connections`.
    ///
    /// ## Defaults
    /// default_pool_size 20, reserve_pool_size 0, max_db_connections 0 (unlimited),
    /// max_user_connections 0 (unlimited); PostgreSQL max_connections 100,
    /// superuser_reserved_connections 3, reserved_connections 0.
    ///
    /// ## References
    /// - https://www.pgbouncer.org/config.html#default_pool_size
    /// - https://www.pgbouncer.org/config.html#reserve_pool_size
    /// - https://www.pgbouncer.org/config.html#max_db_connections
    /// - https://www.pgbouncer.org/config.html#max_user_connections
    /// - https://www.postgresql.org/docs/current/runtime-config-connection.html
    pub struct PgbouncerServerPool { id: "pgbouncer-server-pool", severity: Error }
}

impl Check for PgbouncerServerPool {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for pooler in &plan.services {
            let Detail::Pgbouncer(pgb) = &pooler.detail else { continue };
            let Some(target) = pgb.target.as_deref() else { continue };
            let Some(postgres) = plan.service(target) else { continue };
            let Detail::Postgres(pg) = &postgres.detail else { continue };
            if super::postgres_limit_unknown(postgres) {
                continue;
            }

            let direct: Vec<_> = plan.edges_to(target).collect();
            let direct_total = sum(direct.iter().map(|e| e.connections));
            let others: Vec<(&str, u64)> = plan
                .poolers_of(target)
                .filter(|(s, _)| s.name != pooler.name)
                .map(|(s, other)| (s.name.as_str(), other.server_connections.value))
                .collect();
            let others_total = sum(others.iter().map(|(_, c)| *c));
            let leaves = pg
                .usable_connections
                .saturating_sub(direct_total)
                .saturating_sub(pg.other_connections.value)
                .saturating_sub(others_total);
            let server = pgb.server_connections.value;
            if server <= leaves {
                continue;
            }

            let formula = match &pgb.server_connections.origin {
                Origin::Derived { formula, .. } => formula.to_string(),
                _ => String::new(),
            };
            let mut budget = format!(
                "max_connections {} ({}) - superuser_reserved_connections {} - reserved_connections {}",
                pg.max_connections.value,
                pg.max_connections.cite(),
                pg.superuser_reserved_connections.value,
                pg.reserved_connections.value,
            );
            if !direct.is_empty() {
                let terms: Vec<String> = direct.iter().map(|e| edge_arithmetic(plan, e)).collect();
                budget.push_str(&format!(" - direct clients {direct_total} ({})", terms.join(" + ")));
            }
            if pg.other_connections.value > 0 {
                budget.push_str(&format!(" - other_connections {} ({})", pg.other_connections.value, pg.other_connections.path()));
            }
            for (name, connections) in &others {
                budget.push_str(&format!(" - pgbouncer `{name}` {connections}"));
            }
            let direct_consequence = if direct.is_empty() {
                String::new()
            } else {
                ", and the direct clients of `".to_string() + target + "` get the same FATAL error (HTTP 500s)"
            };
            let refusal = super::postgres_login_refusal(pg);
            let message = format!(
                "pgbouncer `{}` may open {server} server connections to postgres `{target}`, which leaves it {leaves}: {formula} = {server} > {budget} = {leaves}; when the pools grow at peak, PgBouncer's server logins past {leaves} fail (`server login failed: FATAL: {refusal}` in its log), its clients queue (cl_waiting) and fail after query_wait_timeout {}s ({}){direct_consequence}",
                pooler.name,
                pgb.query_wait_timeout.value,
                pgb.query_wait_timeout.cite(),
            );

            let replicas = pooler.replicas.value.max(1);
            let databases = (pgb.databases.len() as u64).max(1);
            let users = (pgb.users.len() as u64).max(1);
            let needed_max_connections = pg.max_connections.value.saturating_add(server - leaves);
            let per_db = leaves / replicas / databases;
            let fix = if per_db == 0 {
                format!(
                    "postgres `{target}` has no connections left for pgbouncer `{}`: raise max_connections to >= {needed_max_connections} ({}), or lower its direct clients' pools",
                    pooler.name,
                    pg.max_connections.path()
                )
            } else {
                let mut fix = format!(
                    "set max_db_connections to {per_db} ({}): {replicas} replicas x {databases} databases x {per_db} = {} <= {leaves}",
                    pgb.max_db_connections.path(),
                    replicas * databases * per_db,
                );
                let per_pair = per_db / users;
                if per_pair > pgb.reserve_pool_size.value {
                    fix.push_str(&format!(
                        ", or lower default_pool_size to {} ({}; {} + reserve_pool_size {} per (database, user) pair)",
                        per_pair - pgb.reserve_pool_size.value,
                        pgb.default_pool_size.path(),
                        per_pair - pgb.reserve_pool_size.value,
                        pgb.reserve_pool_size.value,
                    ));
                }
                fix.push_str(&format!(", or raise max_connections to >= {needed_max_connections} ({})", pg.max_connections.path()));
                fix
            };

            let mut d = finding::<Self>(pgb.default_pool_size.path(), message)
                .number("server_connections", server as f64)
                .number("leaves", leaves as f64)
                .number("usable", pg.usable_connections as f64)
                .number("direct_clients", direct_total as f64)
                .number("max_connections", pg.max_connections.value as f64)
                .fix(fix)
                .related(pgb.reserve_pool_size.path(), format!("reserve_pool_size {} per pool", pgb.reserve_pool_size.value))
                .related(pg.max_connections.path(), format!("postgres `{target}` accepts {}", pg.usable_connections));
            if pgb.max_db_connections.value > 0 {
                d = d.related(pgb.max_db_connections.path(), format!("max_db_connections {} per database", pgb.max_db_connections.value));
            }
            for edge in &direct {
                d = d.related(edge.per_process.path(), format!("{} opens {} directly", edge.from, edge.connections));
            }
            out.push(d);
        }
    }
}

#[cfg(test)]
mod tests {

    fn findings(yaml: &str) -> Vec<crate::diag::Diagnostic> {
        crate::rules::findings_of("pgbouncer-server-pool", yaml)
    }

    fn spec(pgbouncer_replicas: u64, max_connections: u64, jobs_pool: u64) -> String {
        format!(
            "version: 1
name: arena
services:
  web:
    kind: gunicorn
    worker_class: gthread
    workers: 8
    threads: 4
    replicas: 15
    uses:
      pgbouncer: {{ pool: 4 }}
  jobs:
    kind: celery
    concurrency: 4
    uses:
      db: {{ pool: {jobs_pool} }}
  pgbouncer:
    kind: pgbouncer
    replicas: {pgbouncer_replicas}
    max_client_conn: 2000
    default_pool_size: 50
    reserve_pool_size: 10
    max_db_connections: 100
    uses: {{ db: {{}} }}
  db:
    kind: postgres
    max_connections: {max_connections}
"
        )
    }

    #[test]
    fn message_shows_the_formula_and_the_budget() {
        let found = findings(&spec(2, 100, 4));
        assert_eq!(found.len(), 1);
        let d = &found[0];
        assert_eq!(d.path, "services.pgbouncer.default_pool_size");
        assert!(d.message.contains("may open 120 server connections to postgres `db`, which leaves it 93"), "{}", d.message);
        assert!(d.message.contains("(default_pool_size 50 + reserve_pool_size 10)"), "{}", d.message);
        assert!(d.message.contains("x 2 replicas = 120 > max_connections 100 (services.db.max_connections) - superuser_reserved_connections 3 - reserved_connections 0 - direct clients 4"), "{}", d.message);
        assert!(d.message.contains("server login failed: FATAL: remaining connection slots are reserved for roles with the SUPERUSER attribute"), "{}", d.message);
        let fix = d.fix.as_deref().unwrap();
        assert!(fix.contains("set max_db_connections to 46"), "{fix}");
        assert!(fix.contains("lower default_pool_size to 36"), "{fix}");
        assert!(fix.contains("raise max_connections to >= 127"), "{fix}");
    }

    #[test]
    fn boundary_exactly_at_what_postgres_leaves_passes() {
        // 2 x 60 = 120 server connections; 127 - 3 - 4 = 120 left.
        assert!(findings(&spec(2, 127, 4)).is_empty());
        // One more direct connection: 119 left.
        assert_eq!(findings(&spec(2, 127, 5)).len(), 1);
    }

    #[test]
    fn fits_with_one_replica() {
        assert!(findings(&spec(1, 100, 4)).is_empty());
    }
}
