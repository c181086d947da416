//! Rule `nginx-workers-over-cpus`.

use super::{Check, finding, num};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Plan};

declare_rule! {
    /// nginx runs more worker processes than the CPUs it may use.
    ///
    /// ## What it checks
    /// For each `nginx` service whose CPUs are known (its `resources.cpus`, else the
    /// `cpus` of the machine it is placed on): `worker_processes` must not exceed them.
    /// One worker is always allowed, whatever the fraction of a CPU. Skipped when the
    /// CPUs are unknown.
    ///
    /// ## Why it matters
    /// Each nginx worker is a single-threaded event loop meant to own one core; the
    /// nginx docs recommend one per core (`auto`). Extra workers do not add
    /// throughput: they compete for the same CPUs, and under a container CPU limit the
    /// kernel throttles the whole group (`nr_throttled` in `cpu.stat`) for the rest of
    /// each 100ms period, so every request in flight stalls and tail latency jumps.
    /// Each worker also holds its own `worker_connections` and keepalive pools, which
    /// spreads upstream keepalive connections thinner.
    ///
    /// ## Example
    /// ```yaml
    /// lb: { kind: nginx, worker_processes: 16, resources: { cpus: 2 } }   # 16 > 2
    /// ```
    ///
    /// ## Fix
    /// Set `worker_processes` to the CPUs (or `auto`, which headroom renders as the
    /// CPU count it knows: nginx's own `auto` counts the host's CPUs and ignores a
    /// container's CPU quota), and raise `worker_connections` if the total must stay
    /// the same; or give nginx more CPUs.
    ///
    /// ## Defaults
    /// worker_processes 1; `auto` = the number of CPUs.
    ///
    /// ## References
    /// - https://nginx.org/en/docs/ngx_core_module.html#worker_processes
    /// - https://docs.kernel.org/scheduler/sched-bwc.html
    pub struct NginxWorkersOverCpus { id: "nginx-workers-over-cpus", severity: Warning, core: false }
}

impl Check for NginxWorkersOverCpus {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            let Detail::Nginx(nginx) = &service.detail else { continue };
            let Some(cpus) = &service.cpus else { continue };
            let workers = nginx.worker_processes.value;
            if workers <= 1 || workers as f64 <= cpus.value {
                continue;
            }
            let fit = (cpus.value.floor() as u64).max(1);
            let total = nginx.worker_connections.value.saturating_mul(workers);
            let per_worker = total.div_ceil(fit);
            let message = format!(
                "nginx `{}` runs {workers} worker processes ({}) on {} ({}): {workers} > {}; the extra workers add no throughput, they contend for the same cores and under a CPU limit the kernel throttles the container for the rest of each period, stalling every request in flight (p99 latency spikes at peak)",
                service.name,
                nginx.worker_processes.cite(),
                super::cpus_term(cpus.value),
                cpus.cite(),
                num(cpus.value),
            );
            out.push(
                finding::<Self>(nginx.worker_processes.path(), message)
                    .number("worker_processes", workers as f64)
                    .number("cpus", cpus.value)
                    .fix(format!(
                        "set worker_processes to {fit} and worker_connections to {per_worker} to keep {total} connections ({fit} x {per_worker}), or raise {} to >= {workers}",
                        cpus.path()
                    ))
                    .related(cpus.path(), super::cpus_term(cpus.value)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze_text;

    fn findings(nginx: &str, machines: &str) -> Vec<crate::diag::Diagnostic> {
        let yaml = format!("version: 1\nname: t\n{machines}services:\n  lb: {{ kind: nginx, {nginx} }}\n");
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "nginx-workers-over-cpus")
            .collect()
    }

    #[test]
    fn sixteen_workers_on_two_cpus() {
        let found = findings("worker_processes: 16, worker_connections: 1000, resources: { cpus: 2 }", "");
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("16 worker processes (services.lb.worker_processes) on 2 cpus (services.lb.resources.cpus): 16 > 2"), "{m}");
        let fix = found[0].fix.as_deref().unwrap();
        assert!(fix.contains("worker_processes to 2 and worker_connections to 8000"), "{fix}");
    }

    #[test]
    fn machine_cpus_and_unknown() {
        let found = findings("worker_processes: 8, machine: edge", "machines:\n  edge: { cpus: 4 }\n");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("machines.edge.cpus"), "{}", found[0].message);
        assert!(findings("worker_processes: 8", "").is_empty());
        assert!(findings("worker_processes: auto, machine: edge", "machines:\n  edge: { cpus: 4 }\n").is_empty());
    }

    #[test]
    fn boundary() {
        assert!(findings("worker_processes: 4, resources: { cpus: 4 }", "").is_empty());
        assert_eq!(findings("worker_processes: 5, resources: { cpus: 4 }", "").len(), 1);
        // One worker is always allowed.
        assert!(findings("worker_processes: 1, resources: { cpus: 0.5 }", "").is_empty());
    }
}
