//! Rule `redis-cluster-masters`.

use super::{Check, finding};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Plan};
use crate::spec::RedisMode;

declare_rule! {
    /// A Redis Cluster needs at least 3 masters.
    ///
    /// ## What it checks
    /// For each `redis` in `mode: cluster`, `masters` is given and at least 3.
    ///
    /// ## Why it matters
    /// `redis-cli --cluster create` refuses fewer: `*** ERROR: Invalid configuration for
    /// cluster creation. Redis Cluster requires at least 3 master nodes.` Even a cluster
    /// assembled by hand cannot fail over: a replica is promoted only when a majority of
    /// the masters agree its master has failed, and with 2 masters losing one leaves no
    /// majority, so its hash slots stay uncovered and the cluster answers
    /// `-CLUSTERDOWN The cluster is down` for every key.
    ///
    /// ## Example
    /// ```yaml
    /// cache: { kind: redis, mode: cluster, masters: 2, replicas_per_master: 1 }   # 4 nodes
    /// ```
    ///
    /// ## Fix
    /// Run at least 3 masters, each with at least one replica
    /// (`masters: 3, replicas_per_master: 1`: 6 nodes), on hosts that fail independently.
    ///
    /// ## Defaults
    /// replicas_per_master 1.
    ///
    /// ## References
    /// - https://redis.io/docs/latest/operate/oss_and_stack/management/scaling/
    /// - https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/
    pub struct RedisClusterMasters { id: "redis-cluster-masters", severity: Error }
}

impl Check for RedisClusterMasters {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            let Detail::Redis(redis) = &service.detail else { continue };
            if redis.mode != RedisMode::Cluster {
                continue;
            }
            let replicas = redis.replicas_per_master;
            let nodes = 3u64.saturating_mul(replicas.saturating_add(1));
            let fix = format!("set masters: 3 (with replicas_per_master {replicas}: {nodes} nodes)");
            let (path, message, masters) = match &redis.masters {
                Some(m) if m.value >= 3 => continue,
                Some(m) => (
                    m.path().to_string(),
                    format!(
                        "redis `{}` is a cluster of {} master{} ({}) < 3: `redis-cli --cluster create` stops with `Redis Cluster requires at least 3 master nodes`, and a cluster built by hand cannot fail over (promoting a replica needs a majority of masters), so losing one master leaves its slots uncovered and every command gets `-CLUSTERDOWN The cluster is down`",
                        service.name,
                        m.value,
                        if m.value == 1 { "" } else { "s" },
                        m.cite(),
                    ),
                    m.value,
                ),
                None => (
                    format!("{}.masters", service.path),
                    format!(
                        "redis `{}` runs in cluster mode but the spec does not say how many masters ({}.masters not set): Redis Cluster requires at least 3 masters to be created and to fail over",
                        service.name, service.path
                    ),
                    0,
                ),
            };
            out.push(
                finding::<Self>(path, message)
                    .number("masters", masters as f64)
                    .number("replicas_per_master", replicas as f64)
                    .fix(fix),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze_text;

    fn findings(redis: &str) -> Vec<crate::diag::Diagnostic> {
        let yaml = format!("version: 1\nname: t\nservices:\n  cache: {{ kind: redis, mode: cluster, {redis} }}\n");
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "redis-cluster-masters")
            .collect()
    }

    #[test]
    fn two_masters() {
        let found = findings("masters: 2, replicas_per_master: 1");
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("cluster of 2 masters (services.cache.masters) < 3"), "{m}");
        assert!(m.contains("requires at least 3 master nodes"), "{m}");
        assert_eq!(found[0].fix.as_deref(), Some("set masters: 3 (with replicas_per_master 1: 6 nodes)"));
    }

    #[test]
    fn missing_masters() {
        let found = findings("replicas_per_master: 1");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("services.cache.masters not set"), "{}", found[0].message);
    }

    #[test]
    fn boundary() {
        assert!(findings("masters: 3").is_empty());
        assert_eq!(findings("masters: 2").len(), 1);
    }
}
