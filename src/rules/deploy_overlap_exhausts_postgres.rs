//! Rule `deploy-overlap-exhausts-postgres`.

use super::{Check, edge_arithmetic, finding};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Edge, Plan, ServicePlan, mul};

declare_rule! {
    /// During a Kamal deploy the old and new containers of a role together open more connections than postgres (or PgBouncer) accepts.
    ///
    /// ## What it checks
    /// Only for specs with `deploy.kamal`. Kamal boots a role's new container next to
    /// the old one and stops the old one only after the new one is healthy (through
    /// kamal-proxy for the proxied role, the container health check for the others),
    /// on every host of the role at once unless `boot.limit` is set. For that window
    /// the role's connections count twice. For each Kamal role (every app server and
    /// job service) and each pool it opens:
    ///
    /// - straight to a postgres: `demand + role's replicas x processes x pool` must fit
    ///   in `max_connections - superuser_reserved_connections - reserved_connections`;
    /// - through PgBouncer: the second set of client connections counts against
    ///   `max_client_conn` (`client demand + role's connections <= max_client_conn`).
    ///   PgBouncer's server connections to postgres do not grow, so postgres itself is
    ///   shielded; the client limit is what breaks.
    ///
    /// Budgets already exceeded in steady state are left to
    /// `postgres-connections-exhausted` and `pgbouncer-client-limit`.
    ///
    /// ## Why it matters
    /// A plan that fits at rest can fail on every deploy: while both versions run,
    /// connection logins past the limit get `FATAL: sorry, too many clients already`
    /// (direct) or `FATAL: no more connections allowed (max_client_conn)` (PgBouncer).
    /// Requests that need a fresh connection answer HTTP 500 for the length of the
    /// deploy, and a health check that touches the database keeps the new container
    /// unhealthy, so `kamal deploy` fails and leaves the old version serving.
    ///
    /// ## Example
    /// ```yaml
    /// web: { kind: puma, workers: 4, threads: 5, replicas: 3, uses: { db: { pool: 5 } } }  # 60, 120 during a deploy
    /// db:  { kind: postgres }                                                                # 100 - 3 = 97
    /// deploy: { kamal: {} }
    /// ```
    ///
    /// ## Fix
    /// Leave room for two copies of the largest role: raise `max_connections` (or
    /// `max_client_conn`) to the number in the message, lower the role's pool, put
    /// PgBouncer in front of postgres, or deploy hosts in batches with Kamal's
    /// `boot: { limit: N }` so only part of the role overlaps at once.
    ///
    /// ## Defaults
    /// max_connections 100, superuser_reserved_connections 3, reserved_connections 0;
    /// PgBouncer max_client_conn 100. Kamal boots every host of a role in parallel
    /// (no `boot.limit`).
    ///
    /// ## References
    /// - https://kamal-deploy.org/docs/configuration/overview/
    /// - https://kamal-deploy.org/docs/configuration/booting/
    /// - https://kamal-deploy.org/docs/configuration/proxy/
    /// - https://www.postgresql.org/docs/current/runtime-config-connection.html
    /// - https://www.pgbouncer.org/config.html#max_client_conn
    pub struct DeployOverlapExhaustsPostgres { id: "deploy-overlap-exhausts-postgres", severity: Warning, core: false }
}

const OVERLAP: &str = "Kamal keeps the old containers running until the new ones are healthy, on every host of the role at once";

impl Check for DeployOverlapExhaustsPostgres {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        // The plan carries kamal-proxy's timeout exactly when `deploy.kamal` is set.
        if plan.kamal_proxy_timeout.is_none() {
            return;
        }
        for role in plan.services.iter().filter(|s| s.kind.is_app() || s.kind.is_job()) {
            for edge in plan.edges_from(&role.name) {
                let Some(target) = plan.service(&edge.to) else { continue };
                match &target.detail {
                    Detail::Postgres(_) => direct(plan, role, edge, target, out),
                    Detail::Pgbouncer(_) => pooled(plan, role, edge, target, out),
                    _ => {}
                }
            }
        }
    }
}

fn direct(plan: &Plan, role: &ServicePlan, edge: &Edge, target: &ServicePlan, out: &mut Vec<Diagnostic>) {
    let Detail::Postgres(pg) = &target.detail else { return };
    if pg.demand > pg.usable_connections {
        return;
    }
    let during = pg.demand.saturating_add(edge.connections);
    if during <= pg.usable_connections {
        return;
    }
    let reserved = pg.superuser_reserved_connections.value + pg.reserved_connections.value;
    let others = pg.demand.saturating_sub(edge.connections);
    // The most one copy of the role may hold so that two copies fit.
    let per_copy = pg.usable_connections.saturating_sub(others) / 2;
    let per_process = per_copy / mul(&[edge.replicas, edge.processes]).max(1);
    let mut fix = format!("raise max_connections to >= {} ({})", during.saturating_add(reserved), pg.max_connections.path());
    if per_process >= 1 {
        fix.push_str(&format!(
            ", or lower {} from {} to <= {per_process} so two copies of `{}` fit ({} x {per_process} x 2 + {others} others <= {})",
            edge.per_process.path(),
            edge.per_process.value,
            role.name,
            mul(&[edge.replicas, edge.processes]),
            pg.usable_connections
        ));
    }
    fix.push_str(", or deploy in batches (Kamal `boot: { limit: 1 }`)");
    let message = format!(
        "during a Kamal deploy of `{}` postgres `{}` may be asked for {during} connections but accepts {}: demand {} + the new containers' ({}) = {during} > max_connections {} ({}) - superuser_reserved_connections {} - reserved_connections {}; {OVERLAP}, so the role's connections count twice; logins past the limit get `FATAL: sorry, too many clients already`, giving HTTP 500s for the length of every deploy and failing a health check that touches the database (the deploy then fails and the old version keeps serving)",
        role.name,
        target.name,
        pg.usable_connections,
        pg.demand,
        edge_arithmetic(plan, edge),
        pg.max_connections.value,
        pg.max_connections.cite(),
        pg.superuser_reserved_connections.value,
        pg.reserved_connections.value,
    );
    out.push(
        finding::<DeployOverlapExhaustsPostgres>(pg.max_connections.path(), message)
            .number("demand", pg.demand as f64)
            .number("overlap_demand", during as f64)
            .number("usable", pg.usable_connections as f64)
            .fix(fix)
            .related(edge.per_process.path(), format!("{} opens {} (twice during a deploy)", role.name, edge.connections)),
    );
}

fn pooled(plan: &Plan, role: &ServicePlan, edge: &Edge, target: &ServicePlan, out: &mut Vec<Diagnostic>) {
    let Detail::Pgbouncer(pgb) = &target.detail else { return };
    let limit = pgb.max_client_conn.value;
    if pgb.client_demand > limit {
        return;
    }
    let during = pgb.client_demand.saturating_add(edge.connections);
    if during <= limit {
        return;
    }
    let message = format!(
        "during a Kamal deploy of `{}` pgbouncer `{}` may be asked for {during} client connections but accepts {limit}: client demand {} + the new containers' ({}) = {during} > max_client_conn {limit} ({}); {OVERLAP}, so the role's client connections count twice (PgBouncer's {} server connections to postgres{} do not grow); logins past the limit get `FATAL: no more connections allowed (max_client_conn)`, giving HTTP 500s for the length of every deploy and failing a health check that touches the database (the deploy then fails and the old version keeps serving)",
        role.name,
        target.name,
        pgb.client_demand,
        edge_arithmetic(plan, edge),
        pgb.max_client_conn.cite(),
        pgb.server_connections.value,
        pgb.target.as_deref().map(|t| format!(" `{t}`")).unwrap_or_default(),
    );
    out.push(
        finding::<DeployOverlapExhaustsPostgres>(pgb.max_client_conn.path(), message)
            .number("client_demand", pgb.client_demand as f64)
            .number("overlap_demand", during as f64)
            .number("max_client_conn", limit as f64)
            .fix(format!(
                "raise max_client_conn to >= {during} ({}; its nofile must cover it too), or deploy in batches (Kamal `boot: {{ limit: 1 }}`)",
                pgb.max_client_conn.path()
            ))
            .related(edge.per_process.path(), format!("{} opens {} (twice during a deploy)", role.name, edge.connections)),
    );
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze_text;

    fn findings(services: &str, deploy: &str) -> Vec<crate::diag::Diagnostic> {
        let yaml = format!("version: 1\nname: t\nservices:\n{services}{deploy}");
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "deploy-overlap-exhausts-postgres")
            .collect()
    }

    const KAMAL: &str = "deploy:\n  kamal: { service: t, image: t/t }\n";

    fn direct(pool: u64) -> String {
        format!("  web: {{ kind: puma, workers: 4, threads: 5, replicas: 3, uses: {{ db: {{ pool: {pool} }} }} }}\n  db: {{ kind: postgres }}\n")
    }

    #[test]
    fn direct_overlap_doubles_the_role() {
        let found = findings(&direct(5), KAMAL);
        assert_eq!(found.len(), 1, "{found:?}");
        let m = &found[0].message;
        assert!(m.contains("demand 60 + the new containers' (web 3 replicas x 4 workers x 5 pool = 60) = 120 > max_connections 100"), "{m}");
        assert!(m.contains("too many clients already"), "{m}");
        let fix = found[0].fix.as_deref().unwrap();
        assert!(fix.contains(">= 123") && fix.contains("<= 4"), "{fix}");
    }

    #[test]
    fn only_with_kamal() {
        assert!(findings(&direct(5), "").is_empty());
    }

    #[test]
    fn boundary() {
        // 97 usable: 2 x 48 = 96 fits, 2 x 49 = 98 does not.
        let web = |pool: u64| format!("  web: {{ kind: gunicorn, workers: 1, threads: {pool}, worker_class: gthread, uses: {{ db: {{ pool: {pool} }} }} }}\n  db: {{ kind: postgres }}\n");
        assert!(findings(&web(48), KAMAL).is_empty());
        assert_eq!(findings(&web(49), KAMAL).len(), 1);
    }

    #[test]
    fn steady_state_overflow_is_left_to_the_core_rule() {
        assert!(findings(&direct(10), KAMAL).is_empty());
    }

    #[test]
    fn through_pgbouncer_counts_client_connections() {
        let services = "  web: { kind: puma, workers: 4, threads: 5, replicas: 3, uses: { pgbouncer: { pool: 5 } } }\n  pgbouncer: { kind: pgbouncer, max_client_conn: 100, uses: { db: {} } }\n  db: { kind: postgres }\n";
        let found = findings(services, KAMAL);
        assert_eq!(found.len(), 1, "{found:?}");
        let m = &found[0].message;
        assert!(m.contains("client demand 60 + the new containers' (web 3 replicas x 4 workers x 5 pool = 60) = 120 > max_client_conn 100 (services.pgbouncer.max_client_conn)"), "{m}");
        assert!(m.contains("no more connections allowed"), "{m}");
        assert!(found[0].fix.as_deref().unwrap().contains(">= 120"));
    }
}
