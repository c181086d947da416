//! The rule catalog: one file per rule, each a pure function of the `Plan`. A rule's
//! doc comment is its documentation (`headroom explain ID` prints it); the registry
//! below lists every rule, and tests keep it in step with RULES.md.

use crate::diag::{Diagnostic, Severity};
use crate::plan::Plan;

/// A check over the plan.
pub trait Rule: Sync {
    /// Stable kebab-case ID (users filter and suppress by it).
    fn id(&self) -> &'static str;
    /// Severity of every finding the rule reports.
    fn severity(&self) -> Severity;
    /// One line: what the rule checks.
    fn summary(&self) -> &'static str;
    /// The full documentation (the rule's doc comment, Markdown).
    fn docs(&self) -> &'static str;
    /// Whether the rule is required for the first release (RULES.md "core").
    fn core(&self) -> bool {
        true
    }
    /// Appends findings about the plan.
    fn check(&self, plan: &Plan, out: &mut Vec<Diagnostic>);
}

/// Declares a rule: its doc comment becomes both the Rust docs and `explain` text;
/// the first doc line is the summary.
macro_rules! declare_rule {
    (
        $(#[doc = $doc:literal])+
        $vis:vis struct $name:ident { id: $id:literal, severity: $severity:ident $(, core: $core:literal)? }
    ) => {
        $(#[doc = $doc])+
        $vis struct $name;

        impl $name {
            const DOCS: &'static str = concat!($($doc, "\n"),+);
        }

        impl $crate::rules::RuleMeta for $name {
            const ID: &'static str = $id;
            const SEVERITY: $crate::diag::Severity = $crate::diag::Severity::$severity;
            const CORE: bool = true $(&& $core)?;
            fn docs() -> &'static str {
                Self::DOCS
            }
        }
    };
}

/// Static facts of a rule, filled in by `declare_rule!`.
pub trait RuleMeta {
    const ID: &'static str;
    const SEVERITY: Severity;
    const CORE: bool;
    fn docs() -> &'static str;
}

/// Implemented by each rule: the check itself.
pub trait Check {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>);
}

impl<T: RuleMeta + Check + Sync> Rule for T {
    fn id(&self) -> &'static str {
        T::ID
    }
    fn severity(&self) -> Severity {
        T::SEVERITY
    }
    fn summary(&self) -> &'static str {
        T::docs().lines().next().unwrap_or_default().trim()
    }
    fn docs(&self) -> &'static str {
        T::docs()
    }
    fn core(&self) -> bool {
        T::CORE
    }
    fn check(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        self.run(plan, out)
    }
}

/// A finding of rule `R` at a spec path.
pub fn finding<R: RuleMeta>(path: impl Into<String>, message: impl Into<String>) -> Diagnostic {
    Diagnostic::new(R::ID, R::SEVERITY, path, message)
}

/// Formats a number the way messages show it: integers without decimals, others
/// with at most two.
pub fn num(value: f64) -> String {
    if value.is_infinite() {
        return "unlimited".into();
    }
    if (value - value.round()).abs() < 1e-9 {
        format!("{}", value.round() as i128)
    } else {
        let text = format!("{value:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The error PostgreSQL gives an ordinary role once only reserved slots are left.
pub(crate) fn postgres_login_refusal(pg: &crate::plan::PostgresPlan) -> &'static str {
    // PostgreSQL 16+ refuses ordinary roles at the reserved_connections slots first.
    if pg.version.value >= 16 && pg.reserved_connections.value > 0 {
        "remaining connection slots are reserved for roles with privileges of the \"pg_use_reserved_connections\" role"
    } else if pg.superuser_reserved_connections.value > 0 {
        if pg.version.value >= 16 {
            "remaining connection slots are reserved for roles with the SUPERUSER attribute"
        } else {
            "remaining connection slots are reserved for non-replication superuser connections"
        }
    } else {
        "sorry, too many clients already"
    }
}

/// A byte count in the largest binary unit it reaches: `8GiB`, `6.4GiB`, `512MiB`.
pub fn size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    for (scale, suffix) in [(KIB * KIB * KIB, "GiB"), (KIB * KIB, "MiB"), (KIB, "KiB")] {
        if bytes >= scale {
            return format!("{}{suffix}", num(bytes as f64 / scale as f64));
        }
    }
    format!("{bytes}B")
}

mod app_pool_below_concurrency;
mod backlog_over_somaxconn;
mod capacity_below_load;
mod db_pool_below_load;
mod machine_memory_oversubscribed;
mod nginx_rlimit_nofile;
mod nginx_worker_connections;
mod pgbouncer_client_limit;
mod pgbouncer_prepared_statements;
mod pgbouncer_server_pool;
mod postgres_connections_exhausted;
mod redis_clients_exhausted;
mod redis_cluster_masters;
mod redis_maxmemory_headroom;
mod redis_sentinel_quorum;
mod timeout_order;
mod upstream_max_conns_over_slots;
mod deploy_overlap_exhausts_postgres;
mod pgbouncer_fd_limit;
mod latency_target_at_risk;
mod nginx_workers_over_cpus;
mod machine_cpu_oversubscribed;
mod workers_over_cpus;
mod single_replica;
mod upstream_without_keepalive;
mod rate_limit_zone_size;
mod redis_noeviction_cache;
mod redis_overcommit;
mod postgres_memory;
mod health_check_missing;
mod sysctl_in_container;
mod redis_no_auth;
mod kamal_proxy_ssl_hosts;
mod qdrant_memory;
mod qdrant_replication;

/// Every rule, in catalog order.
pub static REGISTRY: &[&dyn Rule] = &[
    &postgres_connections_exhausted::PostgresConnectionsExhausted,
    &pgbouncer_client_limit::PgbouncerClientLimit,
    &pgbouncer_server_pool::PgbouncerServerPool,
    &app_pool_below_concurrency::AppPoolBelowConcurrency,
    &redis_clients_exhausted::RedisClientsExhausted,
    &capacity_below_load::CapacityBelowLoad,
    &db_pool_below_load::DbPoolBelowLoad,
    &nginx_worker_connections::NginxWorkerConnections,
    &nginx_rlimit_nofile::NginxRlimitNofile,
    &upstream_max_conns_over_slots::UpstreamMaxConnsOverSlots,
    &timeout_order::TimeoutOrder,
    &backlog_over_somaxconn::BacklogOverSomaxconn,
    &machine_memory_oversubscribed::MachineMemoryOversubscribed,
    &redis_maxmemory_headroom::RedisMaxmemoryHeadroom,
    &redis_sentinel_quorum::RedisSentinelQuorum,
    &redis_cluster_masters::RedisClusterMasters,
    &pgbouncer_prepared_statements::PgbouncerPreparedStatements,
    &deploy_overlap_exhausts_postgres::DeployOverlapExhaustsPostgres,
    &pgbouncer_fd_limit::PgbouncerFdLimit,
    &latency_target_at_risk::LatencyTargetAtRisk,
    &nginx_workers_over_cpus::NginxWorkersOverCpus,
    &machine_cpu_oversubscribed::MachineCpuOversubscribed,
    &workers_over_cpus::WorkersOverCpus,
    &single_replica::SingleReplica,
    &upstream_without_keepalive::UpstreamWithoutKeepalive,
    &rate_limit_zone_size::RateLimitZoneSize,
    &redis_noeviction_cache::RedisNoevictionCache,
    &redis_overcommit::RedisOvercommit,
    &postgres_memory::PostgresMemory,
    &health_check_missing::HealthCheckMissing,
    &sysctl_in_container::SysctlInContainer,
    &redis_no_auth::RedisNoAuth,
    &kamal_proxy_ssl_hosts::KamalProxySslHosts,
    &qdrant_memory::QdrantMemory,
    &qdrant_replication::QdrantReplication,
];

/// The rule with this ID.
pub fn by_id(id: &str) -> Option<&'static dyn Rule> {
    REGISTRY.iter().copied().find(|r| r.id() == id)
}

/// Runs every rule; findings come out sorted by severity (errors first), then path.
pub fn check(plan: &Plan) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for rule in REGISTRY {
        rule.check(plan, &mut out);
    }
    out.sort_by(|a, b| b.severity.cmp(&a.severity).then_with(|| a.rule.cmp(&b.rule)).then_with(|| a.path.cmp(&b.path)));
    out
}

/// `1 replica`, `15 replicas`.
/// A postgres outside this deployment whose `max_connections` nobody gave: its limit
/// is the provider's, unknown here, so budgets against it are not judged (the demand
/// is still printed by `postgres-connections-exhausted`).
pub fn postgres_limit_unknown(service: &crate::plan::ServicePlan) -> bool {
    matches!(&service.detail, crate::plan::Detail::Postgres(pg) if service.external && pg.max_connections.is_default())
}

pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 { format!("{n} {noun}") } else if noun.ends_with('s') { format!("{n} {noun}es") } else { format!("{n} {noun}s") }
}

/// A CPU count, `1 cpu` or `2.5 cpus`.
pub fn cpus_term(value: f64) -> String {
    if value == 1.0 { "1 cpu".to_string() } else { format!("{} cpus", num(value)) }
}

/// What one process is called for a kind ("workers" for app servers).
pub fn process_noun(kind: crate::plan::Kind) -> &'static str {
    use crate::plan::Kind;
    match kind {
        Kind::Gunicorn | Kind::Puma | Kind::Nginx => "workers",
        _ => "processes",
    }
}

/// One process of a kind: `worker` or `process`.
pub fn process_noun_one(kind: crate::plan::Kind) -> &'static str {
    process_noun(kind).strip_suffix("es").filter(|s| s.ends_with('s')).or_else(|| process_noun(kind).strip_suffix('s')).unwrap_or("process")
}

/// The arithmetic of one edge: `web 15 replicas x 8 workers x 4 pool = 480`.
pub fn edge_arithmetic(plan: &Plan, edge: &crate::plan::Edge) -> String {
    let kind = plan.service(&edge.from).map_or(crate::plan::Kind::Worker, |s| s.kind);
    let per = if edge.persistent {
        format!("{} (one per thread, Django persistent)", edge.per_process.value)
    } else if edge.max_overflow > 0 {
        format!("({} pool + {} overflow)", edge.pool.value, edge.max_overflow)
    } else if edge.pool.is_default() {
        format!("{} pool (default: one per slot)", edge.pool.value)
    } else if edge.database_pools.len() > 1 {
        // Rails keeps a pool per database of database.yml; those on one server add up.
        let each = edge.database_pools.iter().map(|(name, pool)| format!("{name} {}", pool.value)).collect::<Vec<_>>().join(" + ");
        format!("{} pool ({each})", edge.per_process.value)
    } else {
        format!("{} pool", edge.pool.value)
    };
    let replicas = plan.service(&edge.from).map_or_else(|| plural(edge.replicas, "replica"), replicas_term);
    format!("{} {} x {} x {} = {}", edge.from, replicas, plural(edge.processes, process_noun_one(kind)), per, edge.connections)
}

/// How many replicas a message counts: `15 replicas`, or for an autoscaled service
/// `20 replicas (autoscale max, services.web.autoscale.max)`, the pods every budget
/// must hold.
pub fn replicas_term(service: &crate::plan::ServicePlan) -> String {
    match &service.autoscale {
        Some(a) => format!("{} (autoscale max, {})", plural(a.max.value, "replica"), a.max.path()),
        None => plural(service.replicas.value, "replica"),
    }
}

/// The findings of one rule on a spec (for rule tests).
#[cfg(test)]
pub(crate) fn findings_of(rule: &str, yaml: &str) -> Vec<Diagnostic> {
    crate::analysis::analyze_text("t.yaml", yaml)
        .expect("spec loads")
        .diagnostics
        .into_iter()
        .filter(|d| d.rule == rule)
        .collect()
}

#[cfg(test)]
mod noun_tests {
    use super::*;
    use crate::plan::Kind;

    #[test]
    fn counts_read_as_english() {
        assert_eq!(plural(1, process_noun_one(Kind::Sidekiq)), "1 process");
        assert_eq!(plural(3, process_noun_one(Kind::Sidekiq)), "3 processes");
        assert_eq!(plural(1, process_noun_one(Kind::Gunicorn)), "1 worker");
        assert_eq!(plural(8, process_noun_one(Kind::Puma)), "8 workers");
        assert_eq!(plural(15, "replica"), "15 replicas");
    }
}
