//! Rule `machine-memory-oversubscribed`.

use super::{Check, finding};
use crate::diag::Diagnostic;
use crate::plan::{MachinePlan, Plan, mul, sum};

declare_rule! {
    /// The memory limits of the containers placed on a machine add up to more than its memory.
    ///
    /// ## What it checks
    /// For each machine group with a `memory`, a service with `machine: G` spreads its
    /// replicas evenly over the `count` machines, so the busiest machine runs
    /// `ceil(replicas / count)` of them. The memory limits (`resources.memory`) of
    /// everything on that busiest machine, summed, must fit in the machine's memory.
    /// Services without a memory limit are not counted (they are named in the message:
    /// they may use any of the memory).
    ///
    /// ## Why it matters
    /// A container limit is a promise the host cannot keep when the limits add up to
    /// more than its RAM: when the containers grow toward their limits together (a
    /// traffic peak, a cache warming, a deploy that briefly runs old and new
    /// containers), the kernel's OOM killer ends processes on the host rather than in
    /// the container that grew (`Out of memory: Killed process` in `dmesg`, exit code
    /// 137 and `OOMKilled: true` in `docker inspect`), or the host swaps and every
    /// latency climbs. Databases and redis, the largest resident processes, are the
    /// usual victims.
    ///
    /// ## Example
    /// ```yaml
    /// machines: { app: { count: 1, memory: 32GiB } }
    /// services:
    ///   web:   { kind: gunicorn, replicas: 15, machine: app, resources: { memory: 2GiB } }  # 30GiB
    ///   cache: { kind: redis, machine: app, resources: { memory: 8GiB } }                   # + 8GiB
    /// ```
    ///
    /// ## Fix
    /// Give the machines more memory, add machines to the group (`count`), move services
    /// to another group, or lower the limits to what the services need. Leave room for
    /// the OS and the container runtime too.
    ///
    /// ## References
    /// - https://docs.docker.com/engine/containers/resource_constraints/#memory
    /// - https://docs.docker.com/reference/compose-file/deploy/#resources
    /// - https://kamal-deploy.org/docs/configuration/servers/
    /// - https://www.kernel.org/doc/html/latest/admin-guide/cgroup-v2.html#memory
    pub struct MachineMemoryOversubscribed { id: "machine-memory-oversubscribed", severity: Error }
}

impl Check for MachineMemoryOversubscribed {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for machine in &plan.machines {
            let Some(memory) = machine.memory else { continue };
            let demand = machine.memory_demand;
            if demand <= memory {
                continue;
            }
            let mut terms = Vec::new();
            let mut unlimited = Vec::new();
            for placement in &machine.placements {
                let Some(per_replica) = placement.memory_per_replica else {
                    unlimited.push(format!("`{}`", placement.service));
                    continue;
                };
                let replicas = plan.service(&placement.service).map_or(placement.replicas_per_host, |s| s.replicas.value);
                let count_text = if machine.count > 1 {
                    format!("ceil({replicas} replicas / {} machines) = {}", machine.count, placement.replicas_per_host)
                } else {
                    format!("{}", placement.replicas_per_host)
                };
                if placement.replicas_per_host == 1 && machine.count == 1 {
                    terms.push(format!("{} {}", placement.service, size(per_replica)));
                } else {
                    terms.push(format!(
                        "{} {count_text} x {} = {}",
                        placement.service,
                        size(per_replica),
                        size(mul(&[placement.replicas_per_host, per_replica]))
                    ));
                }
            }
            let unlimited_text = if unlimited.is_empty() {
                String::new()
            } else {
                format!(" ({} set no memory limit and are not counted)", unlimited.join(", "))
            };
            let host = if machine.count > 1 { "the busiest machine" } else { "the machine" };
            let message = format!(
                "machine group `{}` is oversubscribed: the memory limits on {host} add up to {} but it has {}: {} = {} > memory {} ({}.memory){unlimited_text}; when the containers grow toward their limits together the kernel's OOM killer ends processes on the host (`Out of memory: Killed process` in dmesg, exit code 137, OOMKilled in docker inspect), or the host swaps",
                machine.name,
                size(demand),
                size(memory),
                terms.join(" + "),
                size(demand),
                size(memory),
                machine.path,
            );

            let mut fix = format!("give the machines >= {} of memory ({}.memory)", size(demand), machine.path);
            if let Some(count) = count_that_fits(plan, machine, memory) {
                fix.push_str(&format!(", or raise count to {count} ({}.count)", machine.path));
            }
            fix.push_str(&format!(", or lower the limits by {}", size(demand - memory)));
            let mut d = finding::<Self>(format!("{}.memory", machine.path), message)
                .number("memory_demand", demand as f64)
                .number("memory", memory as f64)
                .number("count", machine.count as f64)
                .fix(fix);
            for placement in &machine.placements {
                if let Some(per_replica) = placement.memory_per_replica {
                    d = d.related(
                        format!("services.{}.resources.memory", placement.service),
                        format!("{} x {} on {host}", placement.replicas_per_host, size(per_replica)),
                    );
                }
            }
            out.push(d);
        }
    }
}

/// The smallest machine count (up to the largest replica count) at which the busiest
/// machine's limits fit.
fn count_that_fits(plan: &Plan, machine: &MachinePlan, memory: u64) -> Option<u64> {
    let replicas: Vec<(u64, u64)> = machine
        .placements
        .iter()
        .filter_map(|p| {
            let replicas = plan.service(&p.service).map_or(p.replicas_per_host, |s| s.replicas.value);
            p.memory_per_replica.map(|m| (replicas, m))
        })
        .collect();
    let most = replicas.iter().map(|(r, _)| *r).max()?;
    (machine.count + 1..=most).find(|&count| sum(replicas.iter().map(|&(r, m)| mul(&[r.div_ceil(count), m]))) <= memory)
}

/// Bytes the way machines are sized: `39.5GiB`, `512MiB`.
fn size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let value = bytes as f64;
    let (scaled, unit) = if value >= KIB * KIB * KIB {
        (value / (KIB * KIB * KIB), "GiB")
    } else if value >= KIB * KIB {
        (value / (KIB * KIB), "MiB")
    } else if value >= KIB {
        (value / KIB, "KiB")
    } else {
        (value, "B")
    };
    format!("{}{unit}", super::num((scaled * 100.0).round() / 100.0))
}

#[cfg(test)]
mod tests {

    fn findings(yaml: &str) -> Vec<crate::diag::Diagnostic> {
        crate::rules::findings_of("machine-memory-oversubscribed", yaml)
    }

    fn spec(count: u64, memory: &str) -> String {
        format!(
            "version: 1
name: t
machines:
  app: {{ count: {count}, memory: {memory} }}
services:
  web:
    kind: gunicorn
    replicas: 15
    machine: app
    resources: {{ memory: 2GiB }}
  cache:
    kind: redis
    machine: app
    resources: {{ memory: 8GiB }}
  pgbouncer:
    kind: pgbouncer
    machine: app
    resources: {{ memory: 512MiB }}
    uses: {{ db: {{}} }}
  db:
    kind: postgres
    machine: app
"
        )
    }

    #[test]
    fn message_shows_each_service_term() {
        let found = findings(&spec(1, "32GiB"));
        assert_eq!(found.len(), 1);
        let d = &found[0];
        assert_eq!(d.path, "machines.app.memory");
        assert!(d.message.contains("web 15 x 2GiB = 30GiB + cache 8GiB + pgbouncer 512MiB = 38.5GiB > memory 32GiB (machines.app.memory)"), "{}", d.message);
        assert!(d.message.contains("`db` set no memory limit"), "{}", d.message);
        assert!(d.message.contains("OOM killer"), "{}", d.message);
        let fix = d.fix.as_deref().unwrap();
        assert!(fix.contains("give the machines >= 38.5GiB"), "{fix}");
        assert!(fix.contains("raise count to 2"), "{fix}");
    }

    #[test]
    fn busiest_machine_gets_the_ceiling() {
        // 3 machines: web ceil(15/3) = 5 x 2GiB = 10GiB + 8GiB + 512MiB = 18.5GiB.
        let found = findings(&spec(3, "16GiB"));
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("web ceil(15 replicas / 3 machines) = 5 x 2GiB = 10GiB"), "{}", found[0].message);
    }

    #[test]
    fn boundary_exactly_the_machine_memory_passes() {
        // 30GiB + 8GiB + 512MiB = 39424MiB.
        assert!(findings(&spec(1, "39424MiB")).is_empty());
        assert_eq!(findings(&spec(1, "39423MiB")).len(), 1);
    }
}
