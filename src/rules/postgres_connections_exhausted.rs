//! Rule `postgres-connections-exhausted`.

use super::{Check, edge_arithmetic, finding};
use crate::diag::{Diagnostic, Severity};
use crate::plan::{Detail, Kind, Plan, ServicePlan};

declare_rule! {
    /// Every client of a postgres together may open more connections than it accepts.
    ///
    /// ## What it checks
    /// For each `postgres` service, the demand is every direct client's
    /// `replicas x processes x pool`, plus every PgBouncer's maximum server connections
    /// to it (`databases x users x (default_pool_size + reserve_pool_size)`, capped by
    /// `max_db_connections` / `max_user_connections`, times its replicas), plus
    /// `other_connections`. It must fit in
    /// `max_connections - superuser_reserved_connections - reserved_connections`.
    /// A postgres marked `external: true` (managed, or outside this deployment) whose
    /// `max_connections` is not given is not judged: its limit is the provider's, and a
    /// note prints the demand to compare with it.
    ///
    /// ## Why it matters
    /// Past that number PostgreSQL refuses the login: `FATAL: sorry, too many clients
    /// already` (SQLSTATE 53300) or `FATAL: remaining connection slots are reserved for
    /// non-replication superuser connections`. A direct client turns that into an HTTP
    /// 500 the moment load needs the extra connection. Behind PgBouncer the same
    /// overcommit shows as queueing (`cl_waiting` in `SHOW POOLS`, throughput capped at
    /// usable / db_time) and errors only after `query_wait_timeout`. Since PostgreSQL 12,
    /// WAL senders, autovacuum and background workers do not count against
    /// max_connections.
    ///
    /// ## Example
    /// ```yaml
    /// web: { kind: gunicorn, workers: 4, uses: { db: { pool: 40 } } }   # 160
    /// db:  { kind: postgres }                                          # 100 - 3 = 97
    /// ```
    ///
    /// ## Fix
    /// Raise `max_connections` to at least the demand plus the reserved slots (and give
    /// the server the memory for it), or lower the pools, or put PgBouncer in
    /// transaction mode in front of postgres and size its `default_pool_size` to what
    /// postgres accepts.
    ///
    /// ## Defaults
    /// max_connections 100, superuser_reserved_connections 3, reserved_connections 0
    /// (PostgreSQL 16+).
    ///
    /// ## References
    /// - https://www.postgresql.org/docs/current/runtime-config-connection.html
    /// - https://www.pgbouncer.org/config.html#default_pool_size
    pub struct PostgresConnectionsExhausted { id: "postgres-connections-exhausted", severity: Error }
}

impl Check for PostgresConnectionsExhausted {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in plan.of_kind(Kind::Postgres) {
            let Detail::Postgres(pg) = &service.detail else { continue };
            if super::postgres_limit_unknown(service) {
                demand_note(plan, service, pg.demand, out);
                continue;
            }
            if pg.demand <= pg.usable_connections {
                continue;
            }
            let mut terms = Vec::new();
            let mut through_pooler = false;
            let mut direct = false;
            for (pooler, pgb) in plan.poolers_of(&service.name) {
                through_pooler = true;
                terms.push(format!(
                    "pgbouncer `{}` {} ({})",
                    pooler.name,
                    pgb.server_connections.value,
                    match &pgb.server_connections.origin {
                        crate::plan::Origin::Derived { formula, .. } => formula.to_string(),
                        _ => String::new(),
                    }
                ));
            }
            for edge in plan.edges_to(&service.name) {
                direct = true;
                terms.push(edge_arithmetic(plan, edge));
            }
            if pg.other_connections.value > 0 {
                terms.push(format!("other_connections {}", pg.other_connections.value));
            }
            let refusal = super::postgres_login_refusal(pg);
            let mut consequences = Vec::new();
            if direct {
                consequences.push(format!("direct clients past the limit get `FATAL: {refusal}` (HTTP 500s as soon as load needs the extra connection)"));
            }
            if through_pooler || !direct {
                consequences.push(format!("PgBouncer's extra server logins fail (`{refusal}`); its clients queue (cl_waiting) and fail after query_wait_timeout"));
            }
            let consequence = consequences.join("; ");
            let reserved = pg.superuser_reserved_connections.value + pg.reserved_connections.value;
            let needed = pg.demand.saturating_add(reserved);
            let mut d = finding::<Self>(
                pg.max_connections.path(),
                format!(
                    "postgres `{}` may be asked for {} connections but accepts {}: {} > max_connections {} ({}) - superuser_reserved_connections {} - reserved_connections {}; {}",
                    service.name,
                    pg.demand,
                    pg.usable_connections,
                    terms.join(" + "),
                    pg.max_connections.value,
                    pg.max_connections.cite(),
                    pg.superuser_reserved_connections.value,
                    pg.reserved_connections.value,
                    consequence,
                ),
            )
            .number("demand", pg.demand as f64)
            .number("usable", pg.usable_connections as f64)
            .number("max_connections", pg.max_connections.value as f64)
            .fix(format!(
                "raise max_connections to >= {needed}, or lower the pools by {} connections",
                pg.demand - pg.usable_connections
            ));
            for (pooler, pgb) in plan.poolers_of(&service.name) {
                d = d.related(pgb.default_pool_size.path(), format!("pgbouncer `{}` opens up to {} server connections", pooler.name, pgb.server_connections.value));
            }
            for edge in plan.edges_to(&service.name) {
                d = d.related(edge.per_process.path(), format!("{} opens {}", edge.from, edge.connections));
            }
            out.push(d);
        }
    }
}
/// An external postgres with no known limit: the demand on it, for the user to compare
/// with the provider's limit (a note, not a finding).
fn demand_note(plan: &Plan, service: &ServicePlan, demand: u64, out: &mut Vec<Diagnostic>) {
    let terms: Vec<String> = plan.edges_to(&service.name).map(|e| edge_arithmetic(plan, e)).collect();
    if terms.is_empty() {
        return;
    }
    let Detail::Postgres(pg) = &service.detail else { return };
    let mut d = finding::<PostgresConnectionsExhausted>(
        pg.max_connections.path(),
        format!(
            "postgres `{}` is external and its max_connections is not known: the clients here may open {demand} connections ({}); compare that with the provider's limit minus its reserved connections",
            service.name,
            terms.join(" + "),
        ),
    )
    .number("demand", demand as f64)
    .fix(format!("pass --db-max-connections N (or set services.{}.max_connections in an overlay) to have the budget checked", service.name));
    d.severity = Severity::Info;
    out.push(d);
}

