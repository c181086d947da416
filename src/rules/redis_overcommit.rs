//! Rule `redis-overcommit`.

use super::{Check, finding};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Plan};
use crate::spec::Persistence;

declare_rule! {
    /// A persisting redis runs on a host without memory overcommit, so its fork can fail.
    ///
    /// ## What it checks
    /// For each `redis` service with `persistence` `rdb` or `aof`, the
    /// `vm.overcommit_memory` of the host it runs on must be 1. The value is read from
    /// `machines.<machine>.sysctl` of the machine the service is placed on; when the
    /// service has no machine, or the machine does not list the key, the kernel default
    /// 0 is assumed and the message says so. The key is host-wide (not namespaced): a
    /// container cannot set it, so a value under `services.<redis>.sysctls` does not
    /// count (`sysctl-in-container` reports it).
    ///
    /// ## Why it matters
    /// Every BGSAVE and AOF rewrite forks redis. The child shares the parent's pages
    /// copy-on-write, but the kernel must accept the commitment of a second copy of the
    /// whole dataset. With the heuristic mode 0 (or the strict mode 2) that fork can be
    /// refused when memory is low although the child would touch little of it: redis
    /// logs `Can't save in background: fork: Cannot allocate memory`, no snapshot or
    /// rewrite happens, and with `stop-writes-on-bgsave-error yes` (the default) every
    /// write then fails with `-MISCONF Redis is configured to save RDB snapshots, but
    /// it's currently unable to persist to disk`. Redis warns at start-up:
    /// `WARNING Memory overcommit must be enabled! Without it, a background save or
    /// replication may fail under low memory condition.`
    ///
    /// ## Example
    /// ```yaml
    /// machines: { cache: { memory: 2GiB } }                          # no vm.overcommit_memory
    /// services:
    ///   redis: { kind: redis, machine: cache, persistence: aof, maxmemory: 512mb }
    /// ```
    ///
    /// ## Fix
    /// Set `vm.overcommit_memory = 1` on the host (`machines.<machine>.sysctl`;
    /// headroom's sysctl target writes it to `/etc/sysctl.d/` and its apply script runs
    /// `sysctl -w vm.overcommit_memory=1`), and keep `maxmemory` at most half the memory
    /// so the copy-on-write pages fit (`redis-maxmemory-headroom`).
    ///
    /// ## Defaults
    /// vm.overcommit_memory 0 (heuristic overcommit); persistence as headroom's
    /// default (`none`).
    ///
    /// ## References
    /// - https://redis.io/docs/latest/operate/oss_and_stack/management/admin/
    /// - https://redis.io/docs/latest/operate/oss_and_stack/management/persistence/
    /// - https://www.kernel.org/doc/Documentation/vm/overcommit-accounting
    /// - https://www.kernel.org/doc/Documentation/sysctl/vm.txt (overcommit_memory)
    pub struct RedisOvercommit { id: "redis-overcommit", severity: Warning, core: false }
}

const KEY: &str = "vm.overcommit_memory";

impl Check for RedisOvercommit {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            let Detail::Redis(redis) = &service.detail else { continue };
            let forks_for = match redis.persistence.value {
                Persistence::None => continue,
                Persistence::Rdb => "RDB snapshots (BGSAVE)",
                Persistence::Aof => "AOF rewrites (BGREWRITEAOF)",
            };
            let machine = service.machine.as_deref().and_then(|m| plan.machine(m));
            let written = machine.and_then(|m| m.sysctl.iter().find(|(k, _)| k == KEY).map(|(_, v)| (m, v.trim().to_string())));
            let (value, where_text, fix) = match (&service.machine, machine, written) {
                (_, Some(m), Some((_, text))) => {
                    let path = format!("{}.sysctl[\"{KEY}\"]", m.path);
                    if text == "1" {
                        continue;
                    }
                    (text.clone(), path.clone(), format!("set {path} to 1 (the sysctl target renders it; on the host: `sysctl -w {KEY}=1`)"))
                }
                (_, Some(m), None) => {
                    let path = format!("{}.sysctl[\"{KEY}\"]", m.path);
                    (
                        "0".into(),
                        format!("{path} not set; default: the kernel's 0, heuristic overcommit"),
                        format!("set {path}: 1 (the sysctl target renders it; on the host: `sysctl -w {KEY}=1`)"),
                    )
                }
                (Some(name), None, _) => (
                    "0".into(),
                    format!("machine `{name}` is not declared, so the host's value is unknown; assumed the kernel default 0"),
                    format!("declare machines.{name} with sysctl {{ {KEY}: 1 }} and apply it on the host (`sysctl -w {KEY}=1`)"),
                ),
                (None, None, _) => (
                    "0".into(),
                    format!("{}.machine not set, so the host is unknown; assumed the kernel default 0", service.path),
                    format!(
                        "place `{}` on a machine (services.{}.machine) with sysctl {{ {KEY}: 1 }}, or run `sysctl -w {KEY}=1` on its host and persist it in /etc/sysctl.d/",
                        service.name, service.name
                    ),
                ),
            };
            let container_note = if service.sysctls.iter().any(|(k, _)| k == KEY) {
                format!("; {}.sysctls[\"{KEY}\"] does not count: a container cannot set this host-wide key", service.path)
            } else {
                String::new()
            };
            let message = format!(
                "redis `{}` forks for {forks_for} ({}) but {KEY} on its host is {value} ({where_text}){container_note}: redis warns `WARNING Memory overcommit must be enabled!` at start, and under low memory the fork fails with `Can't save in background: fork: Cannot allocate memory`; nothing is persisted and, with stop-writes-on-bgsave-error yes, writes fail with `-MISCONF`",
                service.name,
                redis.persistence.cite(),
            );
            let path = match machine {
                Some(m) => format!("{}.sysctl[\"{KEY}\"]", m.path),
                None => redis.persistence.path().to_string(),
            };
            out.push(
                finding::<Self>(path, message)
                    .number("overcommit_memory", value.parse::<f64>().unwrap_or(0.0))
                    .fix(fix)
                    .related(redis.persistence.path(), format!("persistence forks for {forks_for}")),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze_text;

    fn findings(machine: &str, redis: &str) -> Vec<crate::diag::Diagnostic> {
        let yaml = format!("version: 1\nname: t\nmachines:\n  cache: {{ memory: 2GiB{machine} }}\nservices:\n  redis: {{ kind: redis, maxmemory: 512mb, {redis} }}\n");
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "redis-overcommit")
            .collect()
    }

    #[test]
    fn unset_on_the_machine() {
        let found = findings("", "machine: cache, persistence: aof");
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("forks for AOF rewrites (BGREWRITEAOF) (services.redis.persistence) but vm.overcommit_memory on its host is 0 (machines.cache.sysctl[\"vm.overcommit_memory\"] not set; default: the kernel's 0, heuristic overcommit)"), "{m}");
        assert!(m.contains("WARNING Memory overcommit must be enabled!") && m.contains("Cannot allocate memory"), "{m}");
        assert_eq!(found[0].path, "machines.cache.sysctl[\"vm.overcommit_memory\"]");
        assert!(found[0].fix.as_deref().unwrap().contains("machines.cache.sysctl[\"vm.overcommit_memory\"]: 1"));
    }

    #[test]
    fn unknown_host_assumes_the_default() {
        let found = findings("", "persistence: rdb");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("services.redis.machine not set, so the host is unknown; assumed the kernel default 0"), "{}", found[0].message);
    }

    #[test]
    fn strict_mode_is_reported_with_its_value() {
        let found = findings(", sysctl: { vm.overcommit_memory: 2 }", "machine: cache, persistence: rdb");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("is 2 (machines.cache.sysctl[\"vm.overcommit_memory\"])"), "{}", found[0].message);
    }

    #[test]
    fn boundary() {
        // 1 passes; no persistence never forks for saving.
        assert!(findings(", sysctl: { vm.overcommit_memory: 1 }", "machine: cache, persistence: aof").is_empty());
        assert!(findings("", "machine: cache, persistence: none").is_empty());
        assert!(findings("", "machine: cache").is_empty());
    }
}
