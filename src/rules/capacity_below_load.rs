//! Rule `capacity-below-load`.

use super::{Check, finding, num, process_noun_one};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Kind, Plan, ServicePlan, mul};
use crate::spec::WorkerClass;

declare_rule! {
    /// The app servers cannot complete load.rps at the planned utilization.
    ///
    /// ## What it checks
    /// By Little's law, app slots complete `slots / service_time` requests per second
    /// when every slot is busy. The slots are the sum over every app server (gunicorn,
    /// puma) of `replicas x processes x slots per process` (gunicorn sync 1, gthread
    /// `threads`, gevent `worker_connections`; puma max threads); job services are not
    /// in the request path. Planned capacity is that times `load.max_utilization`, and
    /// it must be at least `load.rps`. The finding reports the headroom ratio
    /// (planned capacity / rps) and the slots the load needs:
    /// `ceil(rps x service_time / max_utilization)`. Skipped when the spec has no `load`.
    ///
    /// ## Why it matters
    /// Past the planned utilization there is no room for bursts: queueing delay, and
    /// with it p95/p99, climbs steeply long before 100%. Past 100% the backlog grows
    /// without bound: requests wait in the listen backlog (gunicorn 2048, puma 1024)
    /// until the proxy times out (HTTP 504 from nginx after proxy_read_timeout) or the
    /// backlog overflows and new connections are refused (HTTP 502).
    ///
    /// ## Example
    /// ```yaml
    /// load: { rps: 500, service_time: 500ms }
    /// services:
    ///   web: { kind: gunicorn, worker_class: gthread, workers: 4, threads: 2, replicas: 10 }
    ///   # 80 slots / 0.5s = 160 rps, x 0.75 = 120 rps < 500
    /// ```
    ///
    /// ## Fix
    /// Add replicas (or processes / threads per replica, within the CPUs) until the
    /// slots reach `ceil(rps x service_time / max_utilization)`, or make requests
    /// shorter (move slow work such as streaming or external API calls to jobs).
    ///
    /// ## Defaults
    /// max_utilization 0.75. gunicorn workers 1, threads 1, worker_connections 1000;
    /// puma max threads 5, workers 0 (one process).
    ///
    /// ## References
    /// - https://en.wikipedia.org/wiki/Little%27s_law
    /// - https://docs.gunicorn.org/en/stable/design.html#how-many-workers
    /// - https://docs.gunicorn.org/en/stable/settings.html#backlog
    /// - https://puma.io/puma/file.deployment.html
    pub struct CapacityBelowLoad { id: "capacity-below-load", severity: Error }
}

impl Check for CapacityBelowLoad {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        let (Some(load), Some(capacity)) = (&plan.load, &plan.capacity) else { return };
        let rps = load.rps.value;
        if rps <= 0.0 || rps <= capacity.planned_rps * (1.0 + 1e-9) {
            return;
        }
        let service_time = load.service_time.value;
        let utilization = load.max_utilization.value;
        let needed_slots = ceil(rps * service_time / utilization);
        let apps: Vec<&ServicePlan> = plan.apps().collect();
        let Some(first) = apps.first() else {
            out.push(
                finding::<Self>(
                    load.rps.path(),
                    format!(
                        "load.rps {} ({}) has no app server to serve it: no gunicorn or puma service is declared, so 0 requests per second are completed; the load needs ceil({} rps x {}s / {}) = {needed_slots} slots",
                        num(rps),
                        load.rps.cite(),
                        num(rps),
                        num(service_time),
                        num(utilization)
                    ),
                )
                .number("rps", rps)
                .number("slots", 0.0)
                .number("slots_needed", needed_slots as f64)
                .fix(format!("declare the app servers with >= {needed_slots} slots in all")),
            );
            return;
        };

        let terms: Vec<String> = apps.iter().map(|s| slots_term(s)).collect();
        let slots = capacity.app_slots;
        let slots_text = if terms.len() == 1 { terms[0].clone() } else { format!("{} = {slots} slots", terms.join(" + ")) };
        let busy = capacity.utilization;
        let backlog = first.backlog.as_ref().map_or(String::new(), |b| format!(" ({} backlog {}, {})", first.kind.as_str(), b.value, b.path()));
        let state = if busy >= 1.0 {
            format!(
                "at {} rps the slots would be {}% busy: the queue grows without bound, requests wait in the listen backlog{backlog} until the proxy times out (HTTP 504) or the backlog overflows and connections are refused (HTTP 502)",
                num(rps),
                num((busy * 100.0).round())
            )
        } else {
            format!(
                "at {} rps the slots are {}% busy, above the planned {}%: no room for bursts, queueing delay and p99 latency climb steeply",
                num(rps),
                num((busy * 100.0).round()),
                num((utilization * 100.0).round())
            )
        };
        let message = format!(
            "the app servers complete {} rps at most and {} rps planned, below load.rps {} ({}), headroom {}x: {slots_text} / service_time {}s ({}) = {} rps x max_utilization {} ({}) = {} rps; {} rps needs ceil({} x {} / {}) = {needed_slots} slots; {state}",
            num(capacity.capacity_rps),
            num(capacity.planned_rps),
            num(rps),
            load.rps.cite(),
            num(capacity.headroom),
            num(service_time),
            load.service_time.cite(),
            num(capacity.capacity_rps),
            num(utilization),
            load.max_utilization.cite(),
            num(capacity.planned_rps),
            num(rps),
            num(rps),
            num(service_time),
            num(utilization),
        );

        // Replicas of the first app server that close the gap at its per-replica slots.
        let per_replica = mul(&[first.processes.value, first.slots_per_process.value]).max(1);
        let others = slots - first.slots;
        let needed_first = needed_slots.saturating_sub(others);
        let replicas_needed = needed_first.div_ceil(per_replica);
        let fix = format!(
            "raise {} to >= {replicas_needed} ({replicas_needed} x {per_replica} slots per replica = {}{} >= {needed_slots} slots), or add slots per replica, or shorten service_time to <= {}s",
            first.replicas.path(),
            mul(&[replicas_needed, per_replica]),
            if others > 0 { format!(" + {others} from the other app servers") } else { String::new() },
            num_ms(slots as f64 * utilization / rps),
        );
        let mut d = finding::<Self>(first.replicas.path(), message)
            .number("rps", rps)
            .number("capacity_rps", capacity.capacity_rps)
            .number("planned_rps", capacity.planned_rps)
            .number("headroom", capacity.headroom)
            .number("utilization", busy)
            .number("slots", slots as f64)
            .number("slots_needed", needed_slots as f64)
            .number("replicas_needed", replicas_needed as f64)
            .fix(fix)
            .related(load.rps.path(), format!("{} rps to serve", num(rps)))
            .related(load.service_time.path(), format!("each request holds a slot {}s", num(service_time)));
        for app in &apps {
            d = d.related(app.slots_per_process.path(), format!("`{}` has {} slots", app.name, app.slots));
        }
        out.push(d);
    }
}

/// `web 10 replicas x 4 workers x 2 threads = 80`.
fn slots_term(service: &ServicePlan) -> String {
    let slot = match &service.detail {
        Detail::Gunicorn(g) => match g.worker_class.value {
            WorkerClass::Sync => "slot (sync)",
            WorkerClass::Gthread => "thread",
            WorkerClass::Gevent | WorkerClass::Uvicorn => "worker_connections",
        },
        _ if service.kind == Kind::Puma => "thread",
        _ => "slot",
    };
    // Counted nouns read in the singular for one; the setting's name stays as it is.
    let slots = if slot.contains(['_', '(']) { format!("{} {slot}", service.slots_per_process.value) } else { super::plural(service.slots_per_process.value, slot) };
    format!(
        "{} {} x {} x {slots} = {}",
        service.name,
        super::replicas_term(service),
        super::plural(service.processes.value, process_noun_one(service.kind)),
        service.slots
    )
}

fn ceil(value: f64) -> u64 {
    (value - 1e-9).ceil().max(0.0) as u64
}

/// Seconds, rounded down to whole milliseconds (a bound that must hold).
fn num_ms(seconds: f64) -> String {
    num((seconds * 1000.0).floor() / 1000.0)
}

#[cfg(test)]
mod tests {

    fn findings(yaml: &str) -> Vec<crate::diag::Diagnostic> {
        crate::rules::findings_of("capacity-below-load", yaml)
    }

    fn spec(rps: u64, replicas: u64) -> String {
        format!(
            "version: 1
name: t
load: {{ rps: {rps}, service_time: 500ms }}
services:
  web:
    kind: gunicorn
    worker_class: gthread
    workers: 4
    threads: 2
    replicas: {replicas}
"
        )
    }

    #[test]
    fn message_shows_slots_headroom_and_replicas_needed() {
        let found = findings(&spec(500, 10));
        assert_eq!(found.len(), 1);
        let d = &found[0];
        assert_eq!(d.path, "services.web.replicas");
        assert!(d.message.contains("web 10 replicas x 4 workers x 2 threads = 80 / service_time 0.5s (load.service_time) = 160 rps x max_utilization 0.75"), "{}", d.message);
        assert!(d.message.contains("headroom 0.24x"), "{}", d.message);
        assert!(d.message.contains("ceil(500 x 0.5 / 0.75) = 334 slots"), "{}", d.message);
        assert!(d.message.contains("313% busy"), "{}", d.message);
        let fix = d.fix.as_deref().unwrap();
        assert!(fix.contains("raise services.web.replicas to >= 42 (42 x 8 slots per replica = 336 >= 334 slots)"), "{fix}");
        assert_eq!(d.numbers["slots_needed"], 334.0);
    }

    #[test]
    fn boundary_exactly_at_planned_capacity_passes() {
        // 80 slots / 0.5s x 0.75 = 120 rps.
        assert!(findings(&spec(120, 10)).is_empty());
        let found = findings(&spec(121, 10));
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("76% busy, above the planned 75%"), "{}", found[0].message);
        assert!(found[0].fix.as_deref().unwrap().contains(">= 11"), "{:?}", found[0].fix);
    }

    #[test]
    fn no_load_no_finding() {
        let yaml = "version: 1\nname: t\nservices:\n  web: { kind: gunicorn }\n";
        assert!(findings(yaml).is_empty());
    }
}
