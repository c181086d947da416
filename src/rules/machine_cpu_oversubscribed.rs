//! Rule `machine-cpu-oversubscribed`.

use super::{Check, finding, num};
use crate::diag::Diagnostic;
use crate::plan::{MachinePlan, Plan};

declare_rule! {
    /// The CPU limits of the containers placed on a machine add up to more than its CPUs.
    ///
    /// ## What it checks
    /// For each machine group with `cpus`, a service with `machine: G` spreads its
    /// replicas evenly over the `count` machines, so the busiest machine runs
    /// `ceil(replicas / count)` of them. The CPU limits (`resources.cpus`) of everything
    /// on that busiest machine, summed, must fit in the machine's CPUs. Services
    /// without a CPU limit are not counted (the message names them).
    ///
    /// ## Why it matters
    /// A CPU limit is a ceiling, not a reservation: Docker accepts limits that add up to
    /// more than the host has. The capacity plan counts on each replica getting its
    /// CPUs at peak, which is exactly when they all want them. Oversubscribed, the
    /// replicas share fewer cores than planned: every request's CPU time stretches,
    /// service_time and with it p95 grow, throughput falls short of the plan, and the
    /// proxy answers 504 once requests pass its read timeout. Health checks that time
    /// out under the contention restart healthy containers.
    ///
    /// ## Example
    /// ```yaml
    /// machines: { app: { count: 1, cpus: 8 } }
    /// services:
    ///   web: { kind: gunicorn, replicas: 4, machine: app, resources: { cpus: 2 } }   # 8
    ///   lb:  { kind: nginx, machine: app, resources: { cpus: 2 } }                    # + 2 = 10 > 8
    /// ```
    ///
    /// ## Fix
    /// Give the machines more CPUs, add machines to the group (`count`), move a service
    /// to another group, or lower the limits so they add up to the machine's CPUs
    /// (leave some for the OS and the container runtime).
    ///
    /// ## References
    /// - https://docs.docker.com/engine/containers/resource_constraints/#cpu
    /// - https://docs.docker.com/reference/compose-file/deploy/#resources
    /// - https://docs.kernel.org/scheduler/sched-bwc.html
    pub struct MachineCpuOversubscribed { id: "machine-cpu-oversubscribed", severity: Warning, core: false }
}

impl Check for MachineCpuOversubscribed {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for machine in &plan.machines {
            let Some(cpus) = machine.cpus else { continue };
            let demand = machine.cpu_demand;
            if demand <= cpus + 1e-9 {
                continue;
            }
            let mut terms = Vec::new();
            let mut unlimited = Vec::new();
            for placement in &machine.placements {
                let Some(per_replica) = placement.cpus_per_replica else {
                    unlimited.push(format!("`{}`", placement.service));
                    continue;
                };
                let replicas = plan.service(&placement.service).map_or(placement.replicas_per_host, |s| s.replicas.value);
                if placement.replicas_per_host == 1 && machine.count == 1 {
                    terms.push(format!("{} {}", placement.service, num(per_replica)));
                } else if machine.count > 1 {
                    terms.push(format!(
                        "{} ceil({replicas} replicas / {} machines) = {} x {} = {}",
                        placement.service,
                        machine.count,
                        placement.replicas_per_host,
                        num(per_replica),
                        num(placement.replicas_per_host as f64 * per_replica)
                    ));
                } else {
                    terms.push(format!(
                        "{} {} x {} = {}",
                        placement.service,
                        placement.replicas_per_host,
                        num(per_replica),
                        num(placement.replicas_per_host as f64 * per_replica)
                    ));
                }
            }
            let unlimited_text = if unlimited.is_empty() {
                String::new()
            } else {
                format!(" ({} set no CPU limit and are not counted)", unlimited.join(", "))
            };
            let host = if machine.count > 1 { "the busiest machine" } else { "the machine" };
            let message = format!(
                "machine group `{}` is oversubscribed: the CPU limits on {host} add up to {} but it has {}: {} = {} > cpus {} ({}.cpus){unlimited_text}; limits are ceilings, not reservations, so at peak the replicas share fewer cores than the plan counts on: requests take longer, throughput falls short of the plan and the proxy answers 504 once requests pass its read timeout",
                machine.name,
                super::cpus_term(demand),
                num(cpus),
                terms.join(" + "),
                num(demand),
                num(cpus),
                machine.path,
            );
            let mut fix = format!("give the machines >= {} cpus ({}.cpus)", num(demand.ceil()), machine.path);
            if let Some(count) = count_that_fits(plan, machine, cpus) {
                fix.push_str(&format!(", or raise count to {count} ({}.count)", machine.path));
            }
            fix.push_str(&format!(", or lower the limits by {}", super::cpus_term(demand - cpus)));
            let mut d = finding::<Self>(format!("{}.cpus", machine.path), message)
                .number("cpu_demand", demand)
                .number("cpus", cpus)
                .number("count", machine.count as f64)
                .fix(fix);
            for placement in &machine.placements {
                if let Some(per_replica) = placement.cpus_per_replica {
                    d = d.related(
                        format!("services.{}.resources.cpus", placement.service),
                        format!("{} x {} on {host}", placement.replicas_per_host, super::cpus_term(per_replica)),
                    );
                }
            }
            out.push(d);
        }
    }
}

/// The smallest machine count (up to the largest replica count) at which the busiest
/// machine's limits fit.
fn count_that_fits(plan: &Plan, machine: &MachinePlan, cpus: f64) -> Option<u64> {
    let replicas: Vec<(u64, f64)> = machine
        .placements
        .iter()
        .filter_map(|p| {
            let replicas = plan.service(&p.service).map_or(p.replicas_per_host, |s| s.replicas.value);
            p.cpus_per_replica.map(|c| (replicas, c))
        })
        .collect();
    let most = replicas.iter().map(|(r, _)| *r).max()?;
    (machine.count + 1..=most).find(|&count| replicas.iter().map(|&(r, c)| r.div_ceil(count) as f64 * c).sum::<f64>() <= cpus + 1e-9)
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze_text;

    fn findings(machine: &str, services: &str) -> Vec<crate::diag::Diagnostic> {
        let yaml = format!("version: 1\nname: t\nmachines:\n  app: {{ {machine} }}\nservices:\n{services}");
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "machine-cpu-oversubscribed")
            .collect()
    }

    const SERVICES: &str = "  web: { kind: gunicorn, replicas: 4, machine: app, resources: { cpus: 2 } }\n  lb: { kind: nginx, machine: app, resources: { cpus: 2 } }\n  cache: { kind: redis, machine: app, maxmemory: 1gb }\n";

    #[test]
    fn limits_over_the_host() {
        let found = findings("count: 1, cpus: 8", SERVICES);
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("web 4 x 2 = 8 + lb 2 = 10 > cpus 8 (machines.app.cpus)"), "{m}");
        assert!(m.contains("`cache` set no CPU limit"), "{m}");
        let fix = found[0].fix.as_deref().unwrap();
        assert!(fix.contains(">= 10 cpus") && fix.contains("raise count to 2"), "{fix}");
    }

    #[test]
    fn spread_over_machines() {
        assert!(findings("count: 2, cpus: 8", SERVICES).is_empty());
    }

    #[test]
    fn boundary() {
        assert!(findings("count: 1, cpus: 10", SERVICES).is_empty());
        assert_eq!(findings("count: 1, cpus: 9.5", SERVICES).len(), 1);
        assert!(findings("count: 1", SERVICES).is_empty());
    }
}
