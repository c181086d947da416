//! Rule `deploy-overlap-exhausts-postgres`.

use super::{Check, edge_arithmetic, finding};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Edge, Plan, ServicePlan, mul};

declare_rule! {
    /// During a deploy the old and new instances together open more connections than postgres, PgBouncer or Redis accepts.
    ///
    /// ## What it checks
    /// **Kubernetes** (`deploy.kubernetes`): a rolling update starts `maxSurge` new pods
    /// before it stops old ones: 25% of the Deployment's replicas, rounded up, unless
    /// `deploy.kubernetes.max_surge` says otherwise. An autoscaled Deployment may be
    /// at its HorizontalPodAutoscaler's `max` when the rollout starts, so the surge is
    /// taken of `max`. `kubectl apply` updates every Deployment at once, so the surge
    /// pods of every app and job service count together, each opening its pools:
    /// `demand at max + surge pods x processes x pool` must fit in
    ///
    /// - a postgres: `max_connections - superuser_reserved_connections - reserved_connections`
    ///   (direct clients; PgBouncer's server connections do not grow with its clients);
    /// - a PgBouncer: `max_client_conn` x its replicas;
    /// - a Redis: `maxclients` (what Redis accepts after its fd limit).
    ///
    /// **Kamal** (`deploy.kamal`): Kamal boots a role's new container next to the old
    /// one and stops the old one only after the new one is healthy, on every host of
    /// the role at once unless `boot.limit` is set. For that window the role's
    /// connections count twice, against postgres (direct) or PgBouncer's
    /// `max_client_conn`.
    ///
    /// Budgets already exceeded in steady state are left to
    /// `postgres-connections-exhausted`, `pgbouncer-client-limit` and
    /// `redis-clients-exhausted`.
    ///
    /// ## Why it matters
    /// A plan that fits at rest can fail on every deploy: while both versions run,
    /// logins past the limit get `FATAL: remaining connection slots are reserved for
    /// non-replication superuser connections` or `FATAL: sorry, too many clients
    /// already` (direct), `FATAL: no more connections allowed (max_client_conn)`
    /// (PgBouncer), `-ERR max number of clients reached` (Redis). Requests that need a
    /// fresh connection answer HTTP 500 for the length of the rollout, and a readiness
    /// probe that touches the database keeps the new pods unready, so the rollout
    /// stalls (Kubernetes) or fails (Kamal).
    ///
    /// ## Example
    /// ```yaml
    /// web: { kind: puma, workers: 2, threads: 5, autoscale: { min: 2, max: 8 },
    ///        resources: { cpus: 1 }, uses: { db: { pool: 5 } } }  # 8 x 10 = 80 at max
    /// db:  { kind: postgres }                                      # 100 - 3 = 97
    /// deploy: { kubernetes: { image: acme/shop:1 } }               # + 2 surge pods x 10 = 100 > 97
    /// ```
    ///
    /// ## Fix
    /// Leave room for the surge: raise `max_connections` (or `max_client_conn`,
    /// `maxclients`) to the number in the message; or roll without extra pods
    /// (`max_surge: 0` with `max_unavailable: 1`, or a smaller `max_surge`); or lower
    /// the pools or the autoscaler's `max`; or put PgBouncer in front of postgres.
    /// With Kamal, deploy hosts in batches with `boot: { limit: N }`.
    ///
    /// ## Defaults
    /// Kubernetes `maxSurge` 25% (rounded up) and `maxUnavailable` 25% (rounded down);
    /// max_connections 100, superuser_reserved_connections 3, reserved_connections 0;
    /// PgBouncer max_client_conn 100; Redis maxclients 10000. Kamal boots every host of
    /// a role in parallel (no `boot.limit`).
    ///
    /// ## References
    /// - https://kubernetes.io/docs/concepts/workloads/controllers/deployment/#rolling-update-deployment
    /// - https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/
    /// - https://kamal-deploy.org/docs/configuration/booting/
    /// - https://www.postgresql.org/docs/current/runtime-config-connection.html
    /// - https://www.pgbouncer.org/config.html#max_client_conn
    /// - https://redis.io/docs/latest/develop/reference/clients/#maximum-concurrent-connected-clients
    pub struct DeployOverlapExhaustsPostgres { id: "deploy-overlap-exhausts-postgres", severity: Warning, core: false }
}

const OVERLAP: &str = "Kamal keeps the old containers running until the new ones are healthy, on every host of the role at once";

impl Check for DeployOverlapExhaustsPostgres {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        if plan.kubernetes.is_some() {
            for target in &plan.services {
                rolling_update(plan, target, out);
            }
        }
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
    if pg.demand > pg.usable_connections || super::postgres_limit_unknown(target) {
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

/// A target's budget as the rolling update sees it.
struct Budget {
    what: String,
    steady: u64,
    limit: u64,
    /// `max_connections 100 (path) - superuser_reserved_connections 3 - ...`.
    limit_text: String,
    limit_path: String,
    failure: &'static str,
    /// Raising the limit to what `during` needs: the setting and its value.
    raise: String,
}

/// The budget of `target` when its clients ask for `during` connections.
fn budget(target: &ServicePlan, during: u64) -> Option<Budget> {
    match &target.detail {
        Detail::Postgres(pg) => {
            let reserved = pg.superuser_reserved_connections.value + pg.reserved_connections.value;
            Some(Budget {
                what: format!("postgres `{}`", target.name),
                steady: pg.demand,
                limit: pg.usable_connections,
                limit_text: format!(
                    "max_connections {} ({}) - superuser_reserved_connections {} - reserved_connections {}",
                    pg.max_connections.value,
                    pg.max_connections.cite(),
                    pg.superuser_reserved_connections.value,
                    pg.reserved_connections.value
                ),
                limit_path: pg.max_connections.path().to_string(),
                failure: "`FATAL: remaining connection slots are reserved for non-replication superuser connections` (or `sorry, too many clients already`)",
                raise: format!("max_connections to >= {} ({})", during.saturating_add(reserved), pg.max_connections.path()),
            })
        }
        Detail::Pgbouncer(pgb) => {
            let replicas = target.replicas.value.max(1);
            let limit_text = if replicas > 1 {
                format!("max_client_conn {} ({}) x {replicas} PgBouncer replicas", pgb.max_client_conn.value, pgb.max_client_conn.cite())
            } else {
                format!("max_client_conn {} ({})", pgb.max_client_conn.value, pgb.max_client_conn.cite())
            };
            Some(Budget {
                what: format!("pgbouncer `{}`", target.name),
                steady: pgb.client_demand,
                limit: mul(&[pgb.max_client_conn.value, replicas]),
                limit_text,
                limit_path: pgb.max_client_conn.path().to_string(),
                failure: "`FATAL: no more connections allowed (max_client_conn)`",
                raise: format!("max_client_conn to >= {} ({}; its nofile must cover it too)", during.div_ceil(replicas), pgb.max_client_conn.path()),
            })
        }
        Detail::Redis(r) => Some(Budget {
            what: format!("redis `{}`", target.name),
            steady: r.demand,
            limit: r.effective_maxclients.value,
            limit_text: format!("maxclients {} ({})", r.effective_maxclients.value, r.effective_maxclients.cite()),
            limit_path: r.maxclients.path().to_string(),
            failure: "`-ERR max number of clients reached`",
            raise: format!("maxclients to >= {during} ({}; nofile at least 32 above it)", r.maxclients.path()),
        }),
        _ => None,
    }
}

/// Kubernetes: every app and job Deployment that opens pools to `target` adds its
/// surge pods at once.
fn rolling_update(plan: &Plan, target: &ServicePlan, out: &mut Vec<Diagnostic>) {
    let edges: Vec<&Edge> = plan.edges_to(&target.name).collect();
    let mut roles = Vec::new();
    let mut extra = 0u64;
    let mut per_surge_pod = 0u64;
    for edge in &edges {
        let Some(role) = plan.service(&edge.from) else { continue };
        let Some(surge) = role.rollout_surge.as_ref().filter(|s| s.value > 0) else { continue };
        let pod = mul(&[edge.processes, edge.per_process.value]);
        let connections = mul(&[surge.value, pod]);
        extra = extra.saturating_add(connections);
        per_surge_pod = per_surge_pod.saturating_add(pod);
        roles.push((edge, role, surge, connections));
    }
    if roles.is_empty() {
        return;
    }
    let Some(steady) = budget(target, 0).map(|b| b.steady) else { return };
    let during = steady.saturating_add(extra);
    let Some(budget) = budget(target, during) else { return };
    if budget.steady > budget.limit || during <= budget.limit {
        return;
    }
    let terms: Vec<String> = roles
        .iter()
        .map(|(edge, role, surge, connections)| {
            let pool = format!("{} pool ({})", edge.per_process.value, edge.per_process.path());
            format!(
                "{} {} x {} x {pool} = {} + {} surge pods ({}: {}) x {} x {} pool = {connections}",
                role.name,
                super::replicas_term(role),
                super::plural(edge.processes, super::process_noun_one(role.kind)),
                edge.connections,
                surge.value,
                surge.path(),
                match &surge.origin {
                    crate::plan::Origin::Derived { formula, .. } => formula.as_ref(),
                    _ => "",
                },
                super::plural(edge.processes, super::process_noun_one(role.kind)),
                edge.per_process.value,
            )
        })
        .collect();
    let counted: u64 = roles.iter().map(|(edge, ..)| edge.connections).fold(0, u64::saturating_add);
    let others = budget.steady.saturating_sub(counted);
    let others_text = if others > 0 { format!(" + {others} from its other clients") } else { String::new() };
    let message = format!(
        "during a Kubernetes rolling update {} may be asked for {during} connections but accepts {}: {}{others_text} = {during} > {}; a rolling update starts the surge pods before it stops old ones (every Deployment at once with `kubectl apply`), and each new pod opens its pools as it starts; logins past the limit get {}, giving HTTP 500s and unready pods for the length of the rollout",
        budget.what,
        budget.limit,
        terms.join(" + "),
        budget.limit_text,
        budget.failure,
    );
    let room = budget.limit - budget.steady;
    let mut fix = format!("raise {}", budget.raise);
    let fitting_surge = room / per_surge_pod.max(1);
    let surge_path = plan.kubernetes.as_ref().map_or("deploy.kubernetes.max_surge".to_string(), |k| k.max_surge.path().to_string());
    if fitting_surge >= 1 {
        fix.push_str(&format!(", or set {surge_path}: {fitting_surge} (each surge pod of every role opens {per_surge_pod}; {room} are free at max)"));
    } else {
        fix.push_str(&format!(", or roll without extra pods: {surge_path}: 0 with max_unavailable: 1 ({room} connections are free at max, one surge pod needs {per_surge_pod})"));
    }
    if let [(edge, role, surge, _)] = roles.as_slice() {
        let pods = role.replicas.value.saturating_add(surge.value);
        let fits = (budget.limit.saturating_sub(others)) / mul(&[pods, edge.processes]).max(1);
        if fits >= 1 && fits < edge.per_process.value {
            fix.push_str(&format!(
                ", or lower {} from {} to <= {fits} ({pods} pods x {} x {fits} + {others} <= {})",
                edge.per_process.path(),
                edge.per_process.value,
                edge.processes,
                budget.limit
            ));
        }
    }
    let mut d = finding::<DeployOverlapExhaustsPostgres>(budget.limit_path.clone(), message)
        .number("demand", budget.steady as f64)
        .number("surge_demand", extra as f64)
        .number("overlap_demand", during as f64)
        .number("limit", budget.limit as f64)
        .fix(fix);
    for (edge, role, surge, connections) in &roles {
        d = d
            .related(role.replicas.path(), format!("{} runs up to {} pods", role.name, role.replicas.value))
            .related(surge.path(), format!("a rollout adds {} `{}` pods ({connections} connections)", surge.value, role.name))
            .related(edge.per_process.path(), format!("{} opens {} per process", role.name, edge.per_process.value));
    }
    out.push(d);
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze_text;

    fn findings(services: &str, deploy: &str) -> Vec<crate::diag::Diagnostic> {
        let services = if deploy.contains("kamal") { services.replace("{ kind:", "{ machine: m, kind:") } else { services.to_string() };
        let yaml = format!("version: 1\nname: t\nservices:\n{services}{deploy}");
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "deploy-overlap-exhausts-postgres")
            .collect()
    }

    // Kamal deploys every service to hosts (`findings` places them on `m`).
    const KAMAL: &str = "machines:\n  m: { addresses: [10.0.0.1] }\ndeploy:\n  kamal: { service: t, image: t/t, registry: { server: \"localhost:5555\" } }\n";

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

    const K8S: &str = "deploy:\n  kubernetes: { image: \"acme/shop:1\" }\n";

    fn autoscaled(max: u64, pool: u64, target: &str) -> String {
        format!("  web: {{ kind: puma, workers: 2, threads: 5, autoscale: {{ min: 2, max: {max} }}, resources: {{ cpus: 2 }}, uses: {{ {target}: {{ pool: {pool} }} }} }}\n")
    }

    #[test]
    fn kubernetes_surge_is_counted_on_top_of_the_autoscaler_max() {
        // 8 pods x 2 x 5 = 80 fit in 97; 25% of 8 = 2 surge pods x 10 = 20 more = 100 > 97.
        let found = findings(&format!("{}  db: {{ kind: postgres }}\n", autoscaled(8, 5, "db")), K8S);
        assert_eq!(found.len(), 1, "{found:?}");
        let m = &found[0].message;
        assert!(
            m.contains("web 8 replicas (autoscale max, services.web.autoscale.max) x 2 workers x 5 pool (services.web.uses.db.pool) = 80 + 2 surge pods (deploy.kubernetes.max_surge: 25% of 8 replicas, rounded up; Kubernetes' default) x 2 workers x 5 pool = 20 = 100 > max_connections 100"),
            "{m}"
        );
        assert!(m.contains("remaining connection slots are reserved"), "{m}");
        let fix = found[0].fix.as_deref().unwrap();
        assert!(fix.contains("raise max_connections to >= 103") && fix.contains("deploy.kubernetes.max_surge: 1") && fix.contains("to <= 4"), "{fix}");
        assert_eq!(found[0].numbers["overlap_demand"], 100.0);
    }

    #[test]
    fn kubernetes_surge_boundary_and_explicit_surge() {
        // max 7: 70 + ceil(1.75) = 2 pods x 10 = 90 <= 97.
        assert!(findings(&format!("{}  db: {{ kind: postgres }}\n", autoscaled(7, 5, "db")), K8S).is_empty());
        // max_surge 0 never adds pods.
        let no_surge = "deploy:\n  kubernetes: { image: \"acme/shop:1\", max_surge: 0, max_unavailable: 1 }\n";
        assert!(findings(&format!("{}  db: {{ kind: postgres }}\n", autoscaled(9, 5, "db")), no_surge).is_empty());
        // A count: max 9 = 90, + 1 pod = 100 > 97.
        let one = "deploy:\n  kubernetes: { image: \"acme/shop:1\", max_surge: 1 }\n";
        let found = findings(&format!("{}  db: {{ kind: postgres }}\n", autoscaled(9, 5, "db")), one);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("1 surge pods (deploy.kubernetes.max_surge: 1 pods)"), "{}", found[0].message);
    }

    #[test]
    fn kubernetes_surge_against_pgbouncer_and_redis() {
        let pgb = format!("{}  pgbouncer: {{ kind: pgbouncer, max_client_conn: 90, uses: {{ db: {{}} }} }}\n  db: {{ kind: postgres }}\n", autoscaled(8, 5, "pgbouncer"));
        let found = findings(&pgb, K8S);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "services.pgbouncer.max_client_conn");
        assert!(found[0].message.contains("= 100 > max_client_conn 90"), "{}", found[0].message);
        assert!(found[0].message.contains("no more connections allowed"));
        let redis = format!("{}  cache: {{ kind: redis, maxclients: 95 }}\n", autoscaled(8, 5, "cache"));
        let found = findings(&redis, K8S);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].path, "services.cache.maxclients");
        assert!(found[0].message.contains("max number of clients reached"));
        assert!(found[0].fix.as_deref().unwrap().contains("raise maxclients to >= 100"));
    }

    #[test]
    fn every_budget_counts_the_autoscaler_max() {
        // 21 pods x 2 x 5 = 210 > 97: the core rule, with the max and its path.
        let yaml = format!("version: 1\nname: t\nservices:\n{}  db: {{ kind: postgres }}\n", autoscaled(21, 5, "db"));
        let found = crate::rules::findings_of("postgres-connections-exhausted", &yaml);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("web 21 replicas (autoscale max, services.web.autoscale.max) x 2 workers x 5 pool = 210"), "{}", found[0].message);
    }
}
