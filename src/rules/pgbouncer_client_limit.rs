//! Rule `pgbouncer-client-limit`.

use super::{Check, edge_arithmetic, finding};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Plan, mul};

declare_rule! {
    /// The clients of a PgBouncer together may open more connections than its max_client_conn.
    ///
    /// ## What it checks
    /// For each `pgbouncer` service, the client connections its clients may open,
    /// the sum over every service that `uses` it of `replicas x processes x pool`
    /// (SQLAlchemy-style `pool + max_overflow`; Django `persistent: true` is one per
    /// thread), must fit in `max_client_conn x replicas`. `max_client_conn` is a limit
    /// of one PgBouncer process: with several PgBouncer replicas the clients spread
    /// over them and each replica accepts `max_client_conn` of them.
    ///
    /// ## Why it matters
    /// Past the limit PgBouncer refuses the login with
    /// `FATAL: no more connections allowed (max_client_conn)`. The app sees it when a
    /// pool grows under load (or after a restart, when every process reconnects at
    /// once): the request that needed the new connection fails with HTTP 500, while
    /// the database behind PgBouncer may be idle. Client connections are cheap for
    /// PgBouncer (no server connection is held for an idle client), so the limit is
    /// there to protect its file descriptors, not the database.
    ///
    /// ## Example
    /// ```yaml
    /// web:       { kind: gunicorn, worker_class: gthread, workers: 8, threads: 4, replicas: 15,
    ///              uses: { pgbouncer: { pool: 4 } } }                   # 15 x 8 x 4 = 480
    /// pgbouncer: { kind: pgbouncer, max_client_conn: 400, uses: { db: {} } }
    /// ```
    ///
    /// ## Fix
    /// Raise `max_client_conn` to at least `ceil(client connections / replicas)`; each
    /// client connection costs PgBouncer a file descriptor, so keep its `nofile` above
    /// `max_client_conn` plus its server connections (see `pgbouncer-fd-limit`). Or
    /// lower the client pools (a pool larger than the process's concurrent slots is
    /// never filled by requests, but it may be filled by leaks and bursts).
    ///
    /// ## Defaults
    /// max_client_conn 100.
    ///
    /// ## References
    /// - https://www.pgbouncer.org/config.html#max_client_conn
    /// - https://www.pgbouncer.org/config.html#default_pool_size
    pub struct PgbouncerClientLimit { id: "pgbouncer-client-limit", severity: Error }
}

impl Check for PgbouncerClientLimit {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            let Detail::Pgbouncer(pgb) = &service.detail else { continue };
            let demand = pgb.client_demand;
            let replicas = service.replicas.value.max(1);
            let max_client_conn = pgb.max_client_conn.value;
            let limit = mul(&[max_client_conn, replicas]);
            if demand <= limit {
                continue;
            }
            let terms: Vec<String> = plan.edges_to(&service.name).map(|e| edge_arithmetic(plan, e)).collect();
            let sum_text = if terms.len() == 1 { terms[0].clone() } else { format!("{} = {demand}", terms.join(" + ")) };
            let limit_text = if replicas > 1 {
                format!(
                    "max_client_conn {max_client_conn} ({}) x {replicas} replicas ({}) = {limit} (max_client_conn applies per PgBouncer process; the clients spread over the {replicas} replicas)",
                    pgb.max_client_conn.cite(),
                    service.replicas.path(),
                )
            } else {
                format!("max_client_conn {max_client_conn} ({})", pgb.max_client_conn.cite())
            };
            let want = demand.div_ceil(replicas);
            let mut fix = format!("raise max_client_conn to >= {want} ({})", pgb.max_client_conn.path());
            if replicas > 1 {
                fix.push_str(&format!(" ({replicas} replicas x {want} = {} >= {demand})", mul(&[replicas, want])));
            }
            if max_client_conn > 0 {
                fix.push_str(&format!(
                    ", or run >= {} PgBouncer replicas (each opens its own server pools: check postgres' budget)",
                    demand.div_ceil(max_client_conn)
                ));
            }
            fix.push_str(&format!(", or lower the client pools by {} connections", demand - limit));
            let mut d = finding::<Self>(
                pgb.max_client_conn.path(),
                format!(
                    "pgbouncer `{}` may be asked for {demand} client connections but accepts {limit}: {sum_text} > {limit_text}; past {limit} PgBouncer refuses new client logins with `FATAL: no more connections allowed (max_client_conn)` and the request that needed the connection fails (HTTP 500), while postgres may sit idle",
                    service.name,
                ),
            )
            .number("client_connections", demand as f64)
            .number("max_client_conn", max_client_conn as f64)
            .number("replicas", replicas as f64)
            .number("limit", limit as f64)
            .fix(fix);
            for edge in plan.edges_to(&service.name) {
                d = d.related(edge.per_process.path(), format!("{} opens {}", edge.from, super::plural(edge.connections, "client connection")));
            }
            out.push(d);
        }
    }
}

#[cfg(test)]
mod tests {

    fn findings(yaml: &str) -> Vec<crate::diag::Diagnostic> {
        crate::rules::findings_of("pgbouncer-client-limit", yaml)
    }

    fn spec(max_client_conn: u64, pgbouncer_replicas: u64) -> String {
        format!(
            "version: 1
name: t
services:
  web:
    kind: gunicorn
    worker_class: gthread
    workers: 8
    threads: 4
    replicas: 15
    uses:
      pgbouncer: {{ pool: 4 }}
  pgbouncer:
    kind: pgbouncer
    replicas: {pgbouncer_replicas}
    max_client_conn: {max_client_conn}
    uses: {{ db: {{}} }}
  db:
    kind: postgres
    max_connections: 500
"
        )
    }

    #[test]
    fn message_shows_the_arithmetic_and_the_path() {
        let found = findings(&spec(400, 1));
        assert_eq!(found.len(), 1);
        let d = &found[0];
        assert_eq!(d.path, "services.pgbouncer.max_client_conn");
        assert!(d.message.contains("web 15 replicas x 8 workers x 4 pool = 480 > max_client_conn 400 (services.pgbouncer.max_client_conn)"), "{}", d.message);
        assert!(d.message.contains("FATAL: no more connections allowed (max_client_conn)"), "{}", d.message);
        assert!(d.fix.as_deref().unwrap().contains("raise max_client_conn to >= 480"), "{:?}", d.fix);
        assert_eq!(d.numbers["client_connections"], 480.0);
    }

    #[test]
    fn boundary_exactly_at_the_limit_passes() {
        assert!(findings(&spec(480, 1)).is_empty());
        assert_eq!(findings(&spec(479, 1)).len(), 1);
    }

    #[test]
    fn replicas_multiply_the_limit() {
        assert!(findings(&spec(240, 2)).is_empty());
        let found = findings(&spec(239, 2));
        assert_eq!(found.len(), 1);
        let d = &found[0];
        assert!(d.message.contains("max_client_conn 239 (services.pgbouncer.max_client_conn) x 2 replicas"), "{}", d.message);
        assert!(d.message.contains("applies per PgBouncer process"), "{}", d.message);
        assert!(d.fix.as_deref().unwrap().contains(">= 240"), "{:?}", d.fix);
    }

    #[test]
    fn default_max_client_conn_is_cited() {
        let yaml = spec(1, 1).replace("    max_client_conn: 1\n", "");
        let found = findings(&yaml);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("max_client_conn 100 (services.pgbouncer.max_client_conn not set; default: PgBouncer max_client_conn = 100)"), "{}", found[0].message);
    }
}
