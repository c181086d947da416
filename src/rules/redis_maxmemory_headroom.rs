//! Rule `redis-maxmemory-headroom`.

use super::{Check, finding, num};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Plan, RedisPlan, Sourced};
use crate::spec::{Persistence, RedisMode};

declare_rule! {
    /// Redis may use more memory than its container or machine has.
    ///
    /// ## What it checks
    /// For each `redis` service: `maxmemory` must be set, and at most 50% of its memory
    /// limit when redis forks (persistence `rdb` or `aof`, or replicas in sentinel or
    /// cluster mode), at most 80% otherwise. The limit is the service's
    /// `resources.memory`, else the memory of the machine it is placed on. A redis with
    /// no `maxmemory` is reported even when no limit is known.
    ///
    /// ## Why it matters
    /// `maxmemory` bounds the dataset only. The process also needs memory for
    /// fragmentation, client output buffers and the replication backlog, and every
    /// BGSAVE, AOF rewrite and full sync to a replica forks: the child shares pages
    /// copy-on-write, and under write load each page touched during the snapshot is
    /// copied, so usage can approach double the dataset. Past the limit the fork fails
    /// (`Can't save in background: fork: Cannot allocate memory`, and with
    /// `stop-writes-on-bgsave-error yes` redis then refuses writes with `-MISCONF`) or
    /// the kernel OOM-kills redis, dropping every connection and, without persistence,
    /// every key. Without `maxmemory` redis grows with its data until that happens.
    ///
    /// ## Example
    /// ```yaml
    /// cache: { kind: redis, maxmemory: 8gb, resources: { memory: 8192M } }   # 100% > 80%
    /// ```
    ///
    /// ## Fix
    /// Set `maxmemory` to at most 50% of the memory limit when redis persists or has
    /// replicas (80% when it does neither), or raise the memory limit. Pick a
    /// `maxmemory_policy` that matches the data (see `redis-noeviction-cache`).
    ///
    /// ## Defaults
    /// maxmemory 0 (unlimited on 64-bit systems); persistence as headroom's default
    /// (`none`); Redis itself snapshots with RDB (`save 3600 1 300 100 60 10000`) unless
    /// started with `save ""`.
    ///
    /// ## References
    /// - https://redis.io/docs/latest/operate/oss_and_stack/management/config-file/
    /// - https://redis.io/docs/latest/develop/reference/eviction/
    /// - https://redis.io/docs/latest/operate/oss_and_stack/management/persistence/
    /// - https://redis.io/docs/latest/operate/oss_and_stack/management/admin/
    pub struct RedisMaxmemoryHeadroom { id: "redis-maxmemory-headroom", severity: Warning }
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// `8GiB`, `6.4GiB`, `512MiB`.
fn size(bytes: u64) -> String {
    for (scale, suffix) in [(GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")] {
        if bytes >= scale {
            return format!("{}{suffix}", num(bytes as f64 / scale as f64));
        }
    }
    format!("{bytes}B")
}

/// Why redis forks, if it does.
fn fork_reason(redis: &RedisPlan) -> Option<String> {
    let persistence = match redis.persistence.value {
        Persistence::None => None,
        Persistence::Rdb => Some(format!("RDB snapshots ({})", redis.persistence.path())),
        Persistence::Aof => Some(format!("AOF rewrites ({})", redis.persistence.path())),
    };
    let replicas = match redis.mode {
        RedisMode::Standalone => None,
        _ if redis.replicas_per_master == 0 => None,
        RedisMode::Sentinel => Some(format!("full syncs to its {} (sentinel mode)", super::plural(redis.replicas_per_master, "replica"))),
        RedisMode::Cluster => Some(format!("full syncs to {} replicas per master (cluster mode)", redis.replicas_per_master)),
    };
    match (persistence, replicas) {
        (Some(p), Some(r)) => Some(format!("{p} and {r}")),
        (p, r) => p.or(r),
    }
}

impl Check for RedisMaxmemoryHeadroom {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            let Detail::Redis(redis) = &service.detail else { continue };
            // Borrowed when the service sets it: most specs pass, and the text below is
            // built only for a finding.
            let limit: Option<std::borrow::Cow<'_, Sourced<u64>>> = service.memory.as_ref().map(std::borrow::Cow::Borrowed).or_else(|| {
                let machine = plan.machine(service.machine.as_deref()?)?;
                machine.memory.map(|m| std::borrow::Cow::Owned(Sourced::spec(m, format!("{}.memory", machine.path))))
            });
            let fork = fork_reason(redis);
            let percent: u64 = if fork.is_some() { 50 } else { 80 };
            let why_percent = || match &fork {
                Some(reason) => format!("redis forks for {reason}, and copy-on-write can double its memory while the child runs"),
                None if redis.persistence.is_default() => format!(
                    "maxmemory counts the dataset only, and fragmentation, client output buffers and allocator overhead come on top (no persistence assumed: {} is not set; Redis's own default snapshots with RDB unless started with `--save \"\"`, which would halve this budget to 50%)",
                    redis.persistence.path()
                ),
                None => "maxmemory counts the dataset only, and fragmentation, client output buffers and allocator overhead come on top".to_string(),
            };
            let failure = if fork.is_some() {
                "past the limit a fork fails with `Can't save in background: fork: Cannot allocate memory` or the kernel OOM-kills redis, dropping every connection"
            } else {
                "past the limit the kernel OOM-kills redis, dropping every connection and every key"
            };
            let maxmemory = redis.maxmemory.as_ref().filter(|m| m.value > 0);
            let maxmemory_path = || format!("{}.maxmemory", service.path);
            match (maxmemory, &limit) {
                (Some(max), Some(limit)) => {
                    let allowed = (u128::from(limit.value) * u128::from(percent) / 100) as u64;
                    if max.value <= allowed {
                        continue;
                    }
                    let share = max.value as f64 * 100.0 / limit.value.max(1) as f64;
                    let needed_limit = (u128::from(max.value) * 100).div_ceil(u128::from(percent)) as u64;
                    let message = format!(
                        "redis `{}` maxmemory {} ({}) is {}% of its memory limit {} ({}) > {percent}% ({}): {}; {failure}",
                        service.name,
                        size(max.value),
                        max.cite(),
                        num(share),
                        size(limit.value),
                        limit.cite(),
                        size(allowed),
                        why_percent(),
                    );
                    out.push(
                        finding::<Self>(max.path(), message)
                            .number("maxmemory", max.value as f64)
                            .number("memory_limit", limit.value as f64)
                            .number("percent", share)
                            .number("allowed_percent", percent as f64)
                            .fix(format!(
                                "lower maxmemory to <= {}MiB ({percent}% of {}), or raise {} to >= {}MiB",
                                allowed / MIB,
                                size(limit.value),
                                limit.path(),
                                needed_limit.div_ceil(MIB),
                            ))
                            .related(limit.path(), format!("memory limit {}", size(limit.value))),
                    );
                }
                (Some(_), None) => {}
                (None, Some(limit)) => {
                    let allowed = (u128::from(limit.value) * u128::from(percent) / 100) as u64;
                    let message = format!(
                        "redis `{}` sets no maxmemory ({}; Redis default 0 = unlimited): it grows with its data until its memory limit {} ({}) and the kernel OOM-kills it, dropping every connection{}; keep maxmemory <= {percent}% of the limit ({}) because {}",
                        service.name,
                        maxmemory_path(),
                        size(limit.value),
                        limit.cite(),
                        if fork.is_some() { "; before that a fork fails with `Can't save in background: fork: Cannot allocate memory`" } else { " and every key" },
                        size(allowed),
                        why_percent(),
                    );
                    out.push(
                        finding::<Self>(maxmemory_path(), message)
                            .number("memory_limit", limit.value as f64)
                            .number("allowed_percent", percent as f64)
                            .fix(format!("set maxmemory to <= {}MiB ({percent}% of {})", allowed / MIB, size(limit.value)))
                            .related(limit.path(), format!("memory limit {}", size(limit.value))),
                    );
                }
                (None, None) => {
                    let message = format!(
                        "redis `{}` sets no maxmemory ({}; Redis default 0 = unlimited) and has no memory limit ({}.resources.memory; limit unknown): it grows with its data until the host runs out of memory and the OOM killer takes redis or a neighbour{}",
                        service.name,
                        maxmemory_path(),
                        service.path,
                        if fork.is_some() { "; forks for persistence or replicas can fail earlier with `Can't save in background: fork: Cannot allocate memory`" } else { "" },
                    );
                    out.push(
                        finding::<Self>(maxmemory_path(), message)
                            .number("allowed_percent", percent as f64)
                            .fix(format!("set resources.memory for `{}` and maxmemory to <= {percent}% of it", service.name)),
                    );
                }
            }
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
            .filter(|d| d.rule == "redis-maxmemory-headroom")
            .collect()
    }

    #[test]
    fn maxmemory_equal_to_the_container() {
        let found = findings("maxmemory: 8gb, resources: { memory: 8192M }");
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("maxmemory 8GiB (services.cache.maxmemory) is 100% of its memory limit 8GiB (services.cache.resources.memory) > 80% (6.4GiB)"), "{m}");
        assert!(m.contains("OOM-kills redis"), "{m}");
        assert!(m.contains("Redis's own default snapshots with RDB"), "{m}");
        let fix = found[0].fix.as_deref().unwrap();
        assert!(fix.contains("<= 6553MiB") && fix.contains(">= 10240MiB"), "{fix}");
    }

    #[test]
    fn persistence_halves_the_budget() {
        let found = findings("maxmemory: 3gb, persistence: aof, resources: { memory: 4G }");
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("is 75% of its memory limit 4GiB") && m.contains("> 50% (2GiB)"), "{m}");
        assert!(m.contains("AOF rewrites") && m.contains("Cannot allocate memory"), "{m}");
    }

    #[test]
    fn unset_maxmemory() {
        let found = findings("resources: { memory: 2G }");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("sets no maxmemory") && found[0].message.contains("2GiB"), "{}", found[0].message);
        let found = findings("persistence: none");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("limit unknown"), "{}", found[0].message);
    }

    #[test]
    fn boundary() {
        // 80% of 10GiB = 8GiB exactly; 8193MiB is over.
        assert!(findings("maxmemory: 8GiB, resources: { memory: 10GiB }").is_empty());
        assert_eq!(findings("maxmemory: 8193MiB, resources: { memory: 10GiB }").len(), 1);
        // 50% with RDB.
        assert!(findings("maxmemory: 5GiB, persistence: rdb, resources: { memory: 10GiB }").is_empty());
        assert_eq!(findings("maxmemory: 5121MiB, persistence: rdb, resources: { memory: 10GiB }").len(), 1);
    }
}
