//! Rule `redis-noeviction-cache`.

use super::{Check, finding, num};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Plan};
use crate::spec::RedisUsage;

declare_rule! {
    /// A redis used as a cache refuses writes instead of evicting when it is full.
    ///
    /// ## What it checks
    /// For each `redis` service whose `usage` is `cache`, `maxmemory_policy` must not be
    /// `noeviction` (Redis's default). headroom derives `usage` as `cache` only when a
    /// policy other than `noeviction` is set, so this fires when a spec says
    /// `usage: cache` and leaves the policy at its default or sets `noeviction`.
    ///
    /// ## Why it matters
    /// With `noeviction`, once used memory reaches `maxmemory` Redis evicts nothing and
    /// answers every command that may add memory (`SET`, `LPUSH`, `INCR` on a new key,
    /// ...) with `-OOM command not allowed when used memory > 'maxmemory'.` Reads still
    /// work, so a cache in this state looks healthy while every cache write fails: the
    /// application logs errors (or, with its cache client swallowing them, silently
    /// serves stale data and hits the database on every miss). Without `maxmemory` the
    /// policy never applies and redis grows until the kernel OOM-kills it (see
    /// `redis-maxmemory-headroom`).
    ///
    /// ## Example
    /// ```yaml
    /// cache: { kind: redis, usage: cache, maxmemory: 768mb }   # policy noeviction by default
    /// ```
    ///
    /// ## Fix
    /// Set `maxmemory_policy: allkeys-lru` (or `allkeys-lfu` when a few keys are hot)
    /// so Redis evicts old keys when it is full; `volatile-*` policies only evict keys
    /// with a TTL. Keep `maxmemory` set. If the data must not be evicted (job queues,
    /// sessions), say `usage: store` and size `maxmemory` for it instead.
    ///
    /// ## Defaults
    /// maxmemory-policy noeviction; maxmemory 0 (unlimited on 64-bit).
    ///
    /// ## References
    /// - https://redis.io/docs/latest/develop/reference/eviction/
    /// - https://redis.io/docs/latest/operate/oss_and_stack/management/config-file/
    pub struct RedisNoevictionCache { id: "redis-noeviction-cache", severity: Warning, core: false }
}

const MIB: u64 = 1024 * 1024;

impl Check for RedisNoevictionCache {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            let Detail::Redis(redis) = &service.detail else { continue };
            if redis.usage != RedisUsage::Cache || redis.maxmemory_policy.value != "noeviction" {
                continue;
            }
            let usage_path = format!("{}.usage", service.path);
            let policy = &redis.maxmemory_policy;
            let when_full = match redis.maxmemory.as_ref().filter(|m| m.value > 0) {
                Some(max) => format!(
                    "once used memory reaches maxmemory {}MiB ({}) redis evicts nothing and answers every write with `-OOM command not allowed when used memory > 'maxmemory'`: reads keep working, so the cache looks healthy while every cache write fails",
                    num(max.value as f64 / MIB as f64),
                    max.cite()
                ),
                None => format!(
                    "with no maxmemory ({}.maxmemory; Redis default 0 = unlimited) the policy never applies and redis grows until the kernel OOM-kills it; once maxmemory is set, every write past it gets `-OOM command not allowed when used memory > 'maxmemory'`",
                    service.path
                ),
            };
            let message = format!(
                "redis `{}` is used as a cache ({usage_path}: cache) but maxmemory_policy is noeviction ({}): {when_full}",
                service.name,
                policy.cite(),
            );
            let fix = if redis.maxmemory.as_ref().is_some_and(|m| m.value > 0) {
                format!("set {}: allkeys-lru (or allkeys-lfu)", policy.path())
            } else {
                format!("set {}: allkeys-lru and a maxmemory (see redis-maxmemory-headroom)", policy.path())
            };
            out.push(finding::<Self>(policy.path(), message).fix(fix).related(usage_path, "usage: cache"));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze_text;

    fn findings(redis: &str) -> Vec<crate::diag::Diagnostic> {
        let yaml = format!("version: 1\nname: t\nservices:\n  cache: {{ kind: redis, {redis} }}\n");
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "redis-noeviction-cache")
            .collect()
    }

    #[test]
    fn cache_with_the_default_policy() {
        let found = findings("usage: cache, maxmemory: 768mb");
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("(services.cache.usage: cache) but maxmemory_policy is noeviction (services.cache.maxmemory_policy not set; default: Redis maxmemory-policy = noeviction)"), "{m}");
        assert!(m.contains("maxmemory 768MiB (services.cache.maxmemory)") && m.contains("-OOM command not allowed"), "{m}");
        assert_eq!(found[0].fix.as_deref(), Some("set services.cache.maxmemory_policy: allkeys-lru (or allkeys-lfu)"));
    }

    #[test]
    fn explicit_noeviction_without_maxmemory() {
        let found = findings("usage: cache, maxmemory_policy: noeviction");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("(services.cache.maxmemory_policy)") && found[0].message.contains("no maxmemory"), "{}", found[0].message);
    }

    #[test]
    fn boundary() {
        // An evicting policy, a store, and the derived usage (store with noeviction) pass.
        assert!(findings("usage: cache, maxmemory: 1gb, maxmemory_policy: allkeys-lru").is_empty());
        assert!(findings("usage: store, maxmemory: 1gb").is_empty());
        assert!(findings("maxmemory: 1gb").is_empty());
        assert!(findings("maxmemory: 1gb, maxmemory_policy: volatile-lru").is_empty());
    }
}
