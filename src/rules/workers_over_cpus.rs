//! Rule `workers-over-cpus`.

use super::{Check, finding, num};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Plan};

declare_rule! {
    /// An app server runs more worker processes per replica than its CPUs can serve.
    ///
    /// ## What it checks
    /// Per replica, with the CPUs known (the service's `resources.cpus`, else its
    /// machine's `cpus`; a fraction counts as a whole core, as `auto` does):
    /// gunicorn `workers` must be at most `2 x cpus + 1` (the gunicorn docs' rule of
    /// thumb), puma `workers` at most `cpus` (one forked worker per core, the Puma
    /// deployment docs; threads add concurrency within a worker). Puma in single mode
    /// (`workers: 0`) and services with unknown CPUs are skipped.
    ///
    /// ## Why it matters
    /// Each worker is a full copy of the application. Workers beyond the cores do not
    /// add throughput for CPU-bound work: they take turns on the same cores, every
    /// request's CPU time stretches, and under a container CPU limit the kernel
    /// throttles the container for the rest of each period (`nr_throttled` in
    /// `cpu.stat`), which shows as p99 spikes and proxy 504s at peak. The extra copies
    /// also cost memory: enough of them and the container is OOM-killed (exit 137),
    /// taking every in-flight request with it. Capacity planned on those slots is not
    /// there.
    ///
    /// ## Example
    /// ```yaml
    /// web: { kind: gunicorn, workers: 8, resources: { cpus: 2 } }   # 8 > 2 x 2 + 1 = 5
    /// ```
    ///
    /// ## Fix
    /// Lower `workers` to the number in the message and add `threads` (gthread, puma)
    /// to keep the slots, or give each replica more CPUs, or run more replicas with
    /// fewer workers each.
    ///
    /// ## Defaults
    /// gunicorn workers 1; puma workers 0 (single mode).
    ///
    /// ## References
    /// - https://docs.gunicorn.org/en/stable/design.html#how-many-workers
    /// - https://docs.gunicorn.org/en/stable/settings.html#workers
    /// - https://github.com/puma/puma/blob/master/docs/deployment.md
    /// - https://docs.kernel.org/scheduler/sched-bwc.html
    pub struct WorkersOverCpus { id: "workers-over-cpus", severity: Warning, core: false }
}

impl Check for WorkersOverCpus {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            let Some(cpus) = &service.cpus else { continue };
            let cores = (cpus.value.ceil() as u64).max(1);
            let (workers, limit, threads, failure) = match &service.detail {
                Detail::Gunicorn(g) => (&g.workers, 2 * cores + 1, Some(&g.threads), "gunicorn's rule of thumb is (2 x cores) + 1"),
                Detail::Puma(p) if p.workers.value > 0 => (&p.workers, cores, Some(&p.threads), "Puma forks one worker per core and serves concurrency with threads"),
                _ => continue,
            };
            if workers.value <= limit {
                continue;
            }
            // Text only for a finding: the check above runs for every app.
            let formula = match &service.detail {
                Detail::Gunicorn(_) => format!("2 x {cores} + 1"),
                _ => format!("1 per cpu x {cores}"),
            };
            let cores_text = if cpus.value.fract() > 0.0 {
                format!("{} ({}), counted as {cores}", super::cpus_term(cpus.value), cpus.cite())
            } else {
                format!("{} ({})", super::plural(cores, "cpu"), cpus.cite())
            };
            let slots = workers.value.saturating_mul(service.slots_per_process.value);
            let threads_needed = slots.div_ceil(limit);
            let message = format!(
                "{} `{}` runs {} workers ({}) per replica on {cores_text}: {} > {formula} = {limit}; {failure}: the extra workers take turns on the same cores, stretching every request's CPU time, and under the CPU limit the kernel throttles the container (p99 spikes and proxy 504s at peak), while each one costs a full copy of the app in memory (OOM kill, exit 137)",
                service.kind.as_str(),
                service.name,
                workers.value,
                workers.cite(),
                workers.value,
            );
            let keep = match threads {
                Some(t) if threads_needed > t.value => format!(" and threads to {threads_needed} to keep >= {slots} slots per replica ({})", t.path()),
                _ => String::new(),
            };
            let needed_cpus = match service.detail {
                Detail::Gunicorn(_) => (workers.value - 1).div_ceil(2),
                _ => workers.value,
            };
            out.push(
                finding::<Self>(workers.path(), message)
                    .number("workers", workers.value as f64)
                    .number("cpus", cpus.value)
                    .number("max_workers", limit as f64)
                    .fix(format!("lower workers to {limit}{keep}, or raise {} to >= {needed_cpus}", cpus.path()))
                    .related(cpus.path(), format!("{} cpus", num(cpus.value))),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze_text;

    fn findings(web: &str) -> Vec<crate::diag::Diagnostic> {
        let yaml = format!("version: 1\nname: t\nservices:\n  web: {{ {web} }}\n");
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "workers-over-cpus")
            .collect()
    }

    #[test]
    fn gunicorn_over_two_n_plus_one() {
        let found = findings("kind: gunicorn, worker_class: gthread, workers: 8, threads: 2, resources: { cpus: 2 }");
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("runs 8 workers (services.web.workers) per replica on 2 cpus (services.web.resources.cpus): 8 > 2 x 2 + 1 = 5"), "{m}");
        let fix = found[0].fix.as_deref().unwrap();
        assert!(fix.contains("lower workers to 5 and threads to 4 to keep >= 16 slots") && fix.contains(">= 4"), "{fix}");
    }

    #[test]
    fn puma_over_cpus() {
        let found = findings("kind: puma, workers: 4, threads: 5, resources: { cpus: 2 }");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("4 > 1 per cpu x 2 = 2"), "{}", found[0].message);
        assert!(findings("kind: puma, threads: 5, resources: { cpus: 1 }").is_empty());
        assert!(findings("kind: puma, workers: 4").is_empty());
    }

    #[test]
    fn boundary() {
        assert!(findings("kind: gunicorn, workers: 5, resources: { cpus: 2 }").is_empty());
        assert_eq!(findings("kind: gunicorn, workers: 6, resources: { cpus: 2 }").len(), 1);
        assert!(findings("kind: puma, workers: 2, resources: { cpus: 2 }").is_empty());
        assert_eq!(findings("kind: puma, workers: 3, resources: { cpus: 2 }").len(), 1);
        // A fraction counts as a whole core, as gunicorn's auto does.
        assert!(findings("kind: gunicorn, workers: auto, resources: { cpus: 1.5 }").is_empty());
    }
}
