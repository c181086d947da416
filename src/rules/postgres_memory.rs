//! Rule `postgres-memory`.

use super::{Check, finding, num};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Plan, Sourced, mul};

declare_rule! {
    /// PostgreSQL's shared buffers plus per-connection work memory may exceed its memory.
    ///
    /// ## What it checks
    /// For each `postgres` service whose memory is known (its `resources.memory`, else
    /// the memory of the machine it is placed on):
    /// `shared_buffers + max_connections x work_mem x 2` must fit in that memory.
    /// `shared_buffers` and `work_mem` are as written, else PGTune's formulas
    /// (memory / 4 and `(memory - shared_buffers) / ((max_connections +
    /// max_worker_processes) x 3)`, which always fit). The factor 2 is the usual rule of
    /// thumb: one query may run several sorts and hashes at once, each allowed
    /// `work_mem`, and hash nodes may use `work_mem x hash_mem_multiplier` (2.0 since
    /// PostgreSQL 15). Without a known memory the rule does not run.
    ///
    /// ## Why it matters
    /// `work_mem` is not a per-server budget: every sort or hash of every connection may
    /// take that much. At full connections with heavy queries the server needs more
    /// than it has. In a container the kernel's OOM killer then kills a backend
    /// (`server process (PID 1234) was terminated by signal 9: Killed`), and the
    /// postmaster, to protect shared memory, ends every other session (`terminating any
    /// other active server processes`) and restarts in recovery mode: every connection
    /// of every client drops at once. With `vm.overcommit_memory = 2` the query fails
    /// with `ERROR: out of memory` instead.
    ///
    /// ## Example
    /// ```yaml
    /// db: { kind: postgres, max_connections: 200, shared_buffers: 2GiB, work_mem: 64MiB,
    ///       resources: { memory: 8GiB } }   # 2GiB + 200 x 64MiB x 2 = 27GiB > 8GiB
    /// ```
    ///
    /// ## Fix
    /// Lower `work_mem` to at most `(memory - shared_buffers) / (max_connections x 2)`
    /// (set it higher per session or per role for the few reports that need it), lower
    /// `max_connections` and put PgBouncer in front, or raise the memory.
    ///
    /// ## Defaults
    /// PostgreSQL's own defaults are shared_buffers 128MB and work_mem 4MB; headroom
    /// plans PGTune's values when memory is known (shared_buffers = memory / 4,
    /// work_mem as above); max_connections 100; hash_mem_multiplier 2.0.
    ///
    /// ## References
    /// - https://www.postgresql.org/docs/current/runtime-config-resource.html
    /// - https://www.postgresql.org/docs/current/kernel-resources.html#LINUX-MEMORY-OVERCOMMIT
    /// - https://pgtune.leopard.in.ua/
    pub struct PostgresMemory { id: "postgres-memory", severity: Warning, core: false }
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

impl Check for PostgresMemory {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            let Detail::Postgres(pg) = &service.detail else { continue };
            // Managed or outside this deployment: its memory settings are not ours.
            if service.external {
                continue;
            }
            let Some(tuning) = &pg.tuning else { continue };
            let limit: Option<Sourced<u64>> = service.memory.clone().or_else(|| {
                let machine = plan.machine(service.machine.as_deref()?)?;
                machine.memory.map(|m| Sourced::spec(m, format!("{}.memory", machine.path)))
            });
            let Some(limit) = limit else { continue };
            let shared_buffers = &tuning.shared_buffers;
            let work_mem = &tuning.work_mem;
            let connections = pg.max_connections.value;
            let per_connection = mul(&[connections, work_mem.value, 2]);
            let need = shared_buffers.value.saturating_add(per_connection);
            if need <= limit.value {
                continue;
            }
            let message = format!(
                "postgres `{}` may need {} but has {}: shared_buffers {} ({}) + max_connections {} ({}) x work_mem {} ({}) x 2 = {} > memory limit {} ({}); at full connections with sorts and hashes the OOM killer ends a backend (`terminated by signal 9: Killed`) and the postmaster restarts, dropping every connection",
                service.name,
                size(need),
                size(limit.value),
                size(shared_buffers.value),
                shared_buffers.cite(),
                connections,
                pg.max_connections.cite(),
                size(work_mem.value),
                work_mem.cite(),
                size(need),
                size(limit.value),
                limit.cite(),
            );
            let fix = if shared_buffers.value < limit.value {
                let room = limit.value - shared_buffers.value;
                let max_work_mem = room / mul(&[connections.max(1), 2]) / KIB * KIB;
                format!(
                    "lower work_mem ({}) to <= {}kB ((memory {} - shared_buffers {}) / (max_connections {connections} x 2)), or raise {} to >= {}MiB",
                    work_mem.path(),
                    max_work_mem / KIB,
                    size(limit.value),
                    size(shared_buffers.value),
                    limit.path(),
                    need.div_ceil(MIB),
                )
            } else {
                format!(
                    "lower shared_buffers ({}) to {}MiB (memory / 4) and work_mem to fit, or raise {} to >= {}MiB",
                    shared_buffers.path(),
                    limit.value / 4 / MIB,
                    limit.path(),
                    need.div_ceil(MIB),
                )
            };
            out.push(
                finding::<Self>(work_mem.path(), message)
                    .number("need", need as f64)
                    .number("memory_limit", limit.value as f64)
                    .number("shared_buffers", shared_buffers.value as f64)
                    .number("work_mem", work_mem.value as f64)
                    .number("max_connections", connections as f64)
                    .fix(fix)
                    .related(limit.path(), format!("memory limit {}", size(limit.value)))
                    .related(shared_buffers.path(), format!("shared_buffers {}", size(shared_buffers.value))),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze_text;

    fn findings(pg: &str) -> Vec<crate::diag::Diagnostic> {
        let yaml = format!("version: 1\nname: t\nmachines:\n  db: {{ memory: 16GiB }}\nservices:\n  db: {{ kind: postgres, {pg} }}\n");
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "postgres-memory")
            .collect()
    }

    #[test]
    fn work_mem_times_connections() {
        let found = findings("max_connections: 200, shared_buffers: 2GiB, work_mem: 64MiB, resources: { memory: 8GiB }");
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("shared_buffers 2GiB (services.db.shared_buffers) + max_connections 200 (services.db.max_connections) x work_mem 64MiB (services.db.work_mem) x 2 = 27GiB > memory limit 8GiB (services.db.resources.memory)"), "{m}");
        assert!(m.contains("signal 9"), "{m}");
        let fix = found[0].fix.as_deref().unwrap();
        assert!(fix.contains("<= 15728kB") && fix.contains(">= 27648MiB"), "{fix}");
    }

    #[test]
    fn machine_memory_and_derived_values() {
        // PGTune's derived work_mem always fits.
        assert!(findings("max_connections: 500, machine: db").is_empty());
        // Written work_mem with derived shared_buffers (16GiB / 4 = 4GiB) on the machine.
        let found = findings("max_connections: 100, work_mem: 64MiB, machine: db");
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("shared_buffers 4GiB (services.db.shared_buffers = memory / 4)") && m.contains("memory limit 16GiB (machines.db.memory)"), "{m}");
    }

    #[test]
    fn unknown_memory_is_skipped() {
        assert!(findings("work_mem: 1GiB").is_empty());
    }

    #[test]
    fn boundary() {
        // 2GiB + 96 x 32MiB x 2 = 8GiB exactly.
        assert!(findings("max_connections: 96, shared_buffers: 2GiB, work_mem: 32MiB, resources: { memory: 8GiB }").is_empty());
        assert_eq!(findings("max_connections: 96, shared_buffers: 2GiB, work_mem: 32769KiB, resources: { memory: 8GiB }").len(), 1);
    }
}
