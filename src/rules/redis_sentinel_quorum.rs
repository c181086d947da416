//! Rule `redis-sentinel-quorum`.

use super::{Check, finding};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Plan};
use crate::spec::RedisMode;

declare_rule! {
    /// Redis Sentinel cannot fail over reliably with this number of sentinels or quorum.
    ///
    /// ## What it checks
    /// For each `redis` in `mode: sentinel`: `sentinels` is given, at least 3, and odd;
    /// `quorum` is at least 1 and at most the majority of the sentinels
    /// (`sentinels / 2 + 1`).
    ///
    /// ## Why it matters
    /// A failover takes two steps. `quorum` sentinels must agree the master is down
    /// (`+odown`), then one sentinel must be elected leader by a majority of all
    /// sentinels, whatever the quorum. With 1 or 2 sentinels, losing one (often on the
    /// same host as the master) leaves no majority; with an even count, a network split
    /// in half leaves no majority on either side and no more failures are tolerated
    /// than with one sentinel fewer; with a quorum above the majority, the sentinels
    /// that could elect a leader never agree the master is down. In each case the
    /// sentinels log `-failover-abort-not-elected` or never reach `+odown`, the master
    /// stays down and every write fails until someone intervenes.
    ///
    /// ## Example
    /// ```yaml
    /// cache: { kind: redis, mode: sentinel, sentinels: 2, quorum: 2 }   # needs 3 sentinels
    /// ```
    ///
    /// ## Fix
    /// Run an odd number of sentinels, at least 3, on hosts that fail independently, and
    /// set `quorum` to the majority (`sentinels / 2 + 1`, 2 for 3 sentinels).
    ///
    /// ## References
    /// - https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/
    pub struct RedisSentinelQuorum { id: "redis-sentinel-quorum", severity: Error }
}

impl Check for RedisSentinelQuorum {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            let Detail::Redis(redis) = &service.detail else { continue };
            if redis.mode != RedisMode::Sentinel {
                continue;
            }
            let sentinels_path = format!("{}.sentinels", service.path);
            // The count the fix proposes: the next odd number >= 3.
            let count = redis.sentinels.as_ref().map_or(0, |s| s.value);
            let good_count = if count < 3 { 3 } else if count % 2 == 0 { count + 1 } else { count };
            let good_quorum = good_count / 2 + 1;
            let sentinel_problem = match &redis.sentinels {
                None => Some(format!(
                    "redis `{}` runs in sentinel mode but the spec does not say how many sentinels watch it ({sentinels_path} not set): failover needs a majority of at least 3 sentinels to elect a leader",
                    service.name
                )),
                Some(s) if s.value < 3 => Some(format!(
                    "redis `{}` has {} sentinel{} ({}) < 3: a failover needs a majority ({} of {}) to elect a leader, so losing one sentinel (often the one on the master's host) blocks every failover: the sentinels log `-failover-abort-not-elected` or nothing at all, the master stays down and writes fail",
                    service.name,
                    s.value,
                    if s.value == 1 { "" } else { "s" },
                    s.cite(),
                    s.value / 2 + 1,
                    s.value,
                )),
                Some(s) if s.value % 2 == 0 => Some(format!(
                    "redis `{}` has an even number of sentinels, {} ({}): the majority is {} of {}, so a split into {} + {} leaves no side able to elect a leader (`-failover-abort-not-elected`), and {} sentinels tolerate no more failures than {}",
                    service.name,
                    s.value,
                    s.cite(),
                    s.value / 2 + 1,
                    s.value,
                    s.value / 2,
                    s.value / 2,
                    s.value,
                    s.value - 1,
                )),
                Some(_) => None,
            };
            if let Some(message) = sentinel_problem {
                let mut d = finding::<Self>(sentinels_path.clone(), message)
                    .number("sentinels", count as f64)
                    .fix(format!("run {good_count} sentinels on separate hosts with quorum {good_quorum}"));
                if let Some(q) = &redis.quorum {
                    d = d.number("quorum", q.value as f64).related(q.path(), format!("quorum {}", q.value));
                }
                out.push(d);
            }
            let Some(s) = &redis.sentinels else { continue };
            let majority = s.value / 2 + 1;
            let quorum_problem = match &redis.quorum {
                Some(q) if q.value < 1 => Some((
                    q.path().to_string(),
                    format!(
                        "redis `{}` quorum {} ({}) < 1: sentinel refuses a quorum of 0 (`sentinel monitor` needs a positive quorum), so no sentinel monitors the master and nothing fails over",
                        service.name,
                        q.value,
                        q.cite()
                    ),
                )),
                Some(q) if q.value > majority => Some((
                    q.path().to_string(),
                    format!(
                        "redis `{}` quorum {} ({}) > majority {} of {} sentinels ({}): with {} sentinel{} down the rest can still elect a leader but never agree the master is down (+odown needs {}), so the master stays down and writes fail",
                        service.name,
                        q.value,
                        q.cite(),
                        majority,
                        s.value,
                        s.cite(),
                        s.value.saturating_sub(q.value) + 1,
                        if s.value.saturating_sub(q.value) + 1 == 1 { "" } else { "s" },
                        q.value,
                    ),
                )),
                _ => None,
            };
            if let Some((path, message)) = quorum_problem {
                out.push(
                    finding::<Self>(path, message)
                        .number("sentinels", s.value as f64)
                        .number("quorum", redis.quorum.as_ref().map_or(0, |q| q.value) as f64)
                        .number("majority", majority as f64)
                        .fix(format!("set quorum to {} (the majority of {} sentinels)", good_count / 2 + 1, good_count))
                        .related(s.path(), format!("{} sentinels", s.value)),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze_text;

    fn findings(redis: &str) -> Vec<crate::diag::Diagnostic> {
        let yaml = format!("version: 1\nname: t\nservices:\n  cache: {{ kind: redis, mode: sentinel, maxmemory: 1gb, resources: {{ memory: 4gb }}, {redis} }}\n");
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "redis-sentinel-quorum")
            .collect()
    }

    #[test]
    fn too_few_sentinels() {
        let found = findings("sentinels: 2, quorum: 2");
        assert_eq!(found.len(), 1, "{found:#?}");
        let m = &found[0].message;
        assert!(m.contains("has 2 sentinels (services.cache.sentinels) < 3"), "{m}");
        assert!(m.contains("a majority (2 of 2)"), "{m}");
        assert_eq!(found[0].fix.as_deref(), Some("run 3 sentinels on separate hosts with quorum 2"));
    }

    #[test]
    fn even_count_and_missing_count() {
        let found = findings("sentinels: 4, quorum: 3");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("even number of sentinels, 4"), "{}", found[0].message);
        assert!(found[0].fix.as_deref().unwrap().contains("run 5 sentinels"));
        let found = findings("quorum: 2");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("services.cache.sentinels not set"), "{}", found[0].message);
    }

    #[test]
    fn quorum_zero() {
        // Sentinel refuses a quorum of 0 (`Quorum must be 1 or greater.`): such a spec does
        // not load; a sentinel.conf read by lint still gets the finding.
        let yaml = "version: 1\nname: t\nservices:\n  cache: { kind: redis, mode: sentinel, sentinels: 3, quorum: 0 }\n";
        let failure = crate::analysis::analyze_text("capacity.yaml", yaml).expect_err("quorum 0 does not load");
        assert!(failure.diagnostics[0].message.contains("redis sentinel quorum must be 1.."), "{:?}", failure.diagnostics);
        let spec: crate::spec::Spec = serde_json::from_value(serde_json::json!({
            "version": 1, "name": "t", "services": { "cache": { "kind": "redis", "mode": "sentinel", "sentinels": 3, "quorum": 0 } }
        }))
        .unwrap();
        let found = crate::rules::check(&crate::plan::resolve(&spec));
        let found: Vec<_> = found.into_iter().filter(|d| d.rule == "redis-sentinel-quorum").collect();
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("quorum 0 (services.cache.quorum) < 1"), "{}", found[0].message);
    }

    #[test]
    fn boundary() {
        // Majority of 5 is 3: quorum 3 passes, 4 does not.
        assert!(findings("sentinels: 5, quorum: 3").is_empty());
        let found = findings("sentinels: 5, quorum: 4");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("quorum 4 (services.cache.quorum) > majority 3 of 5 sentinels"), "{}", found[0].message);
        assert!(findings("sentinels: 3, quorum: 2").is_empty());
    }
}
