//! Rule `redis-clients-exhausted`.

use super::{Check, edge_arithmetic, finding};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Origin, Plan, mul, sum};
use crate::spec::{RedisMode, RedisUsage};

declare_rule! {
    /// The clients of a redis together may open more connections than its maxclients.
    ///
    /// ## What it checks
    /// For each `redis` service, the connections its clients may open, the sum over
    /// every service that `uses` it of `replicas x processes x pool`, must fit in the
    /// maxclients redis really applies: `maxclients`, lowered by redis itself to
    /// `nofile - 32` when its file descriptor limit is lower (it keeps 32 descriptors
    /// for its own use). Sidekiq needs `concurrency + 5` per process (its job threads
    /// plus its internal pool for heartbeats and scheduling). With sentinel or cluster
    /// mode the limit is per node: every client talks to the current master, and
    /// cluster clients keep a pool to every master, so sharding does not divide the
    /// demand a node sees (and the cluster bus connections of the other nodes count
    /// against each node's limit).
    ///
    /// ## Why it matters
    /// Past the limit redis accepts the TCP connection and answers
    /// `-ERR max number of clients reached`, then closes it. Cache reads turn into
    /// errors (or silent misses that push the load onto the database), sessions are
    /// lost, and Sidekiq/Celery workers cannot fetch jobs. It shows at peak or during a
    /// deploy, when old and new processes are connected at once.
    ///
    /// ## Example
    /// ```yaml
    /// web:   { kind: gunicorn, worker_class: gthread, workers: 8, threads: 4, replicas: 15,
    ///          uses: { cache: { pool: 100 } } }       # 15 x 8 x 100 = 12000
    /// cache: { kind: redis }                            # maxclients 10000
    /// ```
    ///
    /// ## Fix
    /// Raise `maxclients` (and the container's `nofile` to at least `maxclients + 32`),
    /// or lower the pools: a process never needs more redis connections than the
    /// requests or jobs it runs at once (redis-py and the Ruby pools open connections
    /// lazily, up to the pool size), so a pool of one per concurrent slot is enough.
    ///
    /// ## Defaults
    /// maxclients 10000; the effective limit is `min(maxclients, nofile - 32)`. The pool
    /// defaults to one per concurrent slot (Sidekiq: concurrency + 5).
    ///
    /// ## References
    /// - https://redis.io/docs/latest/develop/reference/clients/#maximum-concurrent-connected-clients
    /// - https://redis.io/docs/latest/operate/oss_and_stack/management/config-file/
    /// - https://github.com/sidekiq/sidekiq/wiki/Using-Redis
    /// - https://redis.io/docs/latest/operate/oss_and_stack/management/scaling/
    pub struct RedisClientsExhausted { id: "redis-clients-exhausted", severity: Error }
}

impl Check for RedisClientsExhausted {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            let Detail::Redis(redis) = &service.detail else { continue };
            let demand = redis.demand;
            let limit = redis.effective_maxclients.value;
            if demand <= limit {
                continue;
            }
            let edges: Vec<_> = plan.edges_to(&service.name).collect();
            let terms: Vec<String> = edges.iter().map(|e| edge_arithmetic(plan, e)).collect();
            let sum_text = if terms.len() == 1 { terms[0].clone() } else { format!("{} = {demand}", terms.join(" + ")) };
            let limit_name = if redis.effective_maxclients.value < redis.maxclients.value { "effective maxclients" } else { "maxclients" };
            let per_node = match redis.mode {
                RedisMode::Standalone => String::new(),
                RedisMode::Sentinel => "; maxclients applies per node, and in sentinel mode every client talks to the current master, which must hold all of them".to_string(),
                RedisMode::Cluster => "; maxclients applies per node, the cluster bus connections from the other nodes count against it too (the error then reads `-ERR max number of clients + cluster connections reached`), and cluster clients keep a pool to every master, so the shards do not divide this demand".to_string(),
            };
            let lowered = match &redis.effective_maxclients.origin {
                Origin::Derived { .. } => format!(
                    " (redis logs `maxclients has been reduced to {limit} to compensate for low ulimit` at startup)"
                ),
                _ => String::new(),
            };
            let message = format!(
                "redis `{}` may be asked for {demand} connections but accepts {limit}: {sum_text} > {limit_name} {limit} ({}){lowered}{per_node}; past {limit} redis answers new connections with `-ERR max number of clients reached` and closes them: {}",
                service.name,
                redis.effective_maxclients.cite(),
                match redis.usage {
                    RedisUsage::Cache => "cache reads and writes error out (or fall through to the database) at peak",
                    RedisUsage::Store => "session, queue and lock commands fail at peak and job workers cannot fetch jobs",
                },
            );

            let mut fix = match &redis.effective_maxclients.origin {
                Origin::Derived { .. } => format!(
                    "raise the nofile limit of `{}` to >= {} ({}) and maxclients to >= {demand}",
                    service.name,
                    demand.saturating_add(32),
                    service.nofile.as_ref().map_or_else(|| format!("{}.nofile", service.path), |n| n.path().to_string()),
                ),
                _ => format!(
                    "raise maxclients to >= {demand} ({}; its nofile must then be >= {})",
                    redis.maxclients.path(),
                    demand.saturating_add(32)
                ),
            };
            // Pools larger than the slots that can use them at once never fill from
            // requests: capping them at one per slot is the cheaper fix.
            let capped: Vec<(String, u64, u64)> = edges
                .iter()
                .filter(|e| e.per_process.value > e.slots_needing.value)
                .map(|e| (e.pool.path().to_string(), e.per_process.value, e.slots_needing.value))
                .collect();
            if !capped.is_empty() {
                let capped_demand = sum(edges.iter().map(|e| mul(&[e.replicas, e.processes, e.per_process.value.min(e.slots_needing.value)])));
                let changes: Vec<String> = capped.iter().map(|(path, from, to)| format!("{path} {from} -> {to}")).collect();
                fix.push_str(&format!(
                    "; or cap the pools at one connection per concurrent slot ({}), which makes {capped_demand} connections{}",
                    changes.join(", "),
                    if capped_demand <= limit { format!(" <= {limit}") } else { format!(", still > {limit}") },
                ));
            }

            let mut d = finding::<Self>(redis.maxclients.path(), message)
                .number("demand", demand as f64)
                .number("maxclients", redis.maxclients.value as f64)
                .number("effective_maxclients", limit as f64)
                .fix(fix);
            for edge in &edges {
                d = d.related(edge.per_process.path(), format!("{} opens {}", edge.from, edge.connections));
            }
            out.push(d);
        }
    }
}

#[cfg(test)]
mod tests {

    fn findings(yaml: &str) -> Vec<crate::diag::Diagnostic> {
        crate::rules::findings_of("redis-clients-exhausted", yaml)
    }

    fn spec(pool: u64, redis: &str) -> String {
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
      cache: {{ pool: {pool} }}
  cache:
    kind: redis
{redis}"
        )
    }

    #[test]
    fn message_shows_the_arithmetic_and_the_default() {
        let found = findings(&spec(100, ""));
        assert_eq!(found.len(), 1);
        let d = &found[0];
        assert_eq!(d.path, "services.cache.maxclients");
        assert!(d.message.contains("web 15 replicas x 8 workers x 100 pool = 12000 > maxclients 10000 (services.cache.maxclients not set; default: Redis maxclients = 10000)"), "{}", d.message);
        assert!(d.message.contains("-ERR max number of clients reached"), "{}", d.message);
        let fix = d.fix.as_deref().unwrap();
        assert!(fix.contains("raise maxclients to >= 12000"), "{fix}");
        assert!(fix.contains("services.web.uses.cache.pool 100 -> 4"), "{fix}");
        assert!(fix.contains("which makes 480 connections <= 10000"), "{fix}");
    }

    #[test]
    fn boundary_exactly_at_maxclients_passes() {
        // 15 x 8 x 50 = 6000.
        assert!(findings(&spec(50, "    maxclients: 6000\n")).is_empty());
        assert_eq!(findings(&spec(50, "    maxclients: 5999\n")).len(), 1);
    }

    #[test]
    fn nofile_lowers_maxclients() {
        // 15 x 8 x 4 = 480; nofile 512 leaves 480.
        assert!(findings(&spec(4, "    nofile: 512\n")).is_empty());
        let found = findings(&spec(4, "    nofile: 511\n"));
        assert_eq!(found.len(), 1);
        let d = &found[0];
        assert!(d.message.contains("effective maxclients 479"), "{}", d.message);
        assert!(d.message.contains("nofile 511 (services.cache.nofile) - 32"), "{}", d.message);
        assert!(d.message.contains("maxclients has been reduced to 479 to compensate for low ulimit"), "{}", d.message);
        assert!(d.fix.as_deref().unwrap().contains("raise the nofile limit of `cache` to >= 512"), "{:?}", d.fix);
    }

    #[test]
    fn cluster_says_per_node() {
        let found = findings(&spec(100, "    mode: cluster\n    masters: 3\n"));
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("maxclients applies per node"), "{}", found[0].message);
    }
}
