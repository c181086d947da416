//! Rule `upstream-max-conns-over-slots`.

use super::{Check, finding, plural, process_noun_one};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Plan, mul, sum};

declare_rule! {
    /// nginx may send one app replica more requests at once than it can serve.
    ///
    /// ## What it checks
    /// For each `nginx` service and each app service its upstreams point at, the
    /// effective `max_conns` per upstream server, summed over every upstream block of
    /// that nginx pointing at the same service, must not exceed the concurrent slots of
    /// one replica of that service (`processes x slots_per_process`: gunicorn workers x
    /// threads, puma workers x threads). Each upstream server is one replica.
    /// `max_conns` is per worker process unless the upstream has a shared memory `zone`:
    /// the effective limit is `max_conns` with a zone and `max_conns x worker_processes`
    /// without one. headroom renders a `zone` for every upstream that sets `max_conns`,
    /// so spec upstreams count as written; hand-written configs without `zone` are
    /// multiplied by `worker_processes`. Each nginx replica enforces its own limit, so
    /// the sum is multiplied by nginx's replicas. Upstreams without `max_conns`
    /// (0 = unlimited, the default) are not counted.
    ///
    /// ## Why it matters
    /// `max_conns` is how nginx knows a replica is full. Set above the replica's slots,
    /// nginx keeps sending it requests it cannot start: they queue inside the app server,
    /// in its listen backlog (gunicorn 2048, puma 1024) or accepted by a worker whose
    /// threads are all busy (gunicorn `gthread` accepts up to `worker_connections`).
    /// nginx cannot see that queue, so `least_conn` and `max_conns` count queued
    /// requests as being served. One slow replica then builds a queue and its requests
    /// time out (504) while other replicas idle.
    ///
    /// ## Example
    /// ```yaml
    /// web: { kind: gunicorn, worker_class: gthread, workers: 8, threads: 4 }  # 32 slots
    /// lb:
    ///   kind: nginx
    ///   upstreams:
    ///     backend:   { to: web, max_conns: 300 }
    ///     streaming: { to: web, max_conns: 150 }
    ///     websocket: { to: web, max_conns: 200 }   # 650 > 32 per replica
    /// ```
    ///
    /// ## Fix
    /// Lower the `max_conns` of the upstreams pointing at the service so that they sum to
    /// at most its slots per replica, or raise the replica's workers/threads. With
    /// `max_conns` at the slots, nginx sends excess requests to other replicas and, when
    /// every server is full, answers 502 at once (open-source nginx has no `queue`):
    /// size slots for the peak rather than raising `max_conns`.
    ///
    /// ## Defaults
    /// max_conns 0 (unlimited); worker_processes 1.
    ///
    /// ## References
    /// - https://nginx.org/en/docs/http/ngx_http_upstream_module.html#max_conns
    /// - https://nginx.org/en/docs/http/ngx_http_upstream_module.html#zone
    /// - https://docs.gunicorn.org/en/stable/settings.html#backlog
    pub struct UpstreamMaxConnsOverSlots { id: "upstream-max-conns-over-slots", severity: Warning }
}

impl Check for UpstreamMaxConnsOverSlots {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            let Detail::Nginx(nginx) = &service.detail else { continue };
            let workers = nginx.worker_processes.value;
            let nginx_replicas = service.replicas.value;
            let mut targets: Vec<&str> = Vec::new();
            for upstream in &nginx.upstreams {
                if upstream.max_conns.value > 0 && !targets.contains(&upstream.to.as_str()) {
                    targets.push(&upstream.to);
                }
            }
            for target_name in targets {
                let Some(target) = plan.service(target_name) else { continue };
                let upstreams: Vec<_> = nginx.upstreams.iter().filter(|u| u.to == target_name && u.max_conns.value > 0).collect();
                // What one nginx instance lets through to one server of this upstream.
                let effective = |u: &crate::plan::UpstreamPlan| if u.zone { u.max_conns.value } else { mul(&[u.max_conns.value, workers]) };
                let per_instance = sum(upstreams.iter().map(|u| effective(u)));
                let total = mul(&[per_instance, nginx_replicas]);
                // Under Kubernetes the one server is the app's Service: every pod behind it
                // (at least `min_replicas`) serves its connections.
                let pods = if upstreams[0].servers.len() == 1 && upstreams[0].servers[0].0 == target.name && plan.kubernetes.is_some() {
                    target.min_replicas.value.max(1)
                } else {
                    1
                };
                let slots = mul(&[pods, target.processes.value, target.slots_per_process.value]);
                if total <= slots {
                    continue;
                }
                let terms: Vec<String> = upstreams
                    .iter()
                    .map(|u| {
                        if u.zone {
                            format!("{} max_conns {} ({})", u.name, u.max_conns.value, u.max_conns.cite())
                        } else {
                            format!(
                                "{} max_conns {} ({}) x {workers} worker_processes (no shared zone: the limit is per worker)",
                                u.name,
                                u.max_conns.value,
                                u.max_conns.cite()
                            )
                        }
                    })
                    .collect();
                let mut sum_text = terms.join(" + ");
                if nginx_replicas > 1 {
                    sum_text = format!("({sum_text}) x {nginx_replicas} nginx replicas, each enforcing its own limit");
                }
                let backlog = target.backlog.as_ref().map_or(String::new(), |b| format!(" of {}", b.value));
                let waiting = total - slots;
                let (server_text, pods_text) = if pods > 1 {
                    (format!("the `{target_name}` Service"), format!("{pods} pods ({}) x ", target.min_replicas.cite()))
                } else {
                    (format!("each `{target_name}` replica"), String::new())
                };
                let unit = if pods > 1 { "Service" } else { "replica" };
                let message = format!(
                    "nginx `{}` may hold {total} requests open to {server_text}, which serves {slots} at once: {sum_text} = {total} > {pods_text}{} ({}) x {} ({}) = {slots} per {unit}; the other {waiting} queue inside {} (in its listen backlog{backlog} or accepted by a busy worker), invisible to nginx's balancing, so a slow replica builds a queue (answered late, or with 504) while others idle",
                    service.name,
                    plural(target.processes.value, process_noun_one(target.kind)),
                    target.processes.cite(),
                    plural(target.slots_per_process.value, "slot"),
                    target.slots_per_process.cite(),
                    target.kind.as_str(),
                );
                // Proportional cut so the new limits sum to at most the slots.
                let budget = slots / nginx_replicas.max(1);
                let suggestions: Vec<String> = upstreams
                    .iter()
                    .map(|u| {
                        let share = (u128::from(effective(u)) * u128::from(budget) / u128::from(per_instance.max(1))) as u64;
                        let per = if u.zone { share } else { share / workers.max(1) };
                        format!("{} {}", u.name, per.max(1))
                    })
                    .collect();
                let limit_text = if nginx_replicas > 1 {
                    format!("<= {budget} per server in each of the {nginx_replicas} nginx replicas ({slots} per `{target_name}` replica)")
                } else {
                    format!("<= {slots} per `{target_name}` replica")
                };
                let mut d = finding::<Self>(upstreams[0].max_conns.path(), message)
                    .number("max_conns_total", total as f64)
                    .number("slots_per_replica", slots as f64)
                    .number("worker_processes", workers as f64)
                    .fix(format!(
                        "lower max_conns so they sum to {limit_text} (e.g. {}), or raise `{target_name}` to >= {total} slots per replica",
                        suggestions.join(", ")
                    ));
                for u in &upstreams {
                    d = d.related(u.max_conns.path(), format!("upstream `{}` allows {} per server", u.name, effective(u)));
                }
                d = d.related(target.slots_per_process.path(), format!("{slots} slots per `{target_name}` replica"));
                out.push(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze_text;

    fn findings(upstreams: &str, extra: &str) -> Vec<crate::diag::Diagnostic> {
        let yaml = format!(
            "version: 1\nname: t\nservices:\n  web: {{ kind: gunicorn, worker_class: gthread, workers: 8, threads: 4, replicas: 15 }}\n  lb:\n    kind: nginx\n    {extra}\n    upstreams: {upstreams}\n    locations: [ {{ path: /, upstream: backend }} ]\n"
        );
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "upstream-max-conns-over-slots")
            .collect()
    }

    #[test]
    fn sums_every_upstream_to_the_same_service() {
        let found = findings(
            "{ backend: { to: web, max_conns: 300 }, streaming: { to: web, max_conns: 150 }, websocket: { to: web, max_conns: 200 } }",
            "worker_processes: 16",
        );
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("backend max_conns 300 (services.lb.upstreams.backend.max_conns) + streaming max_conns 150"), "{m}");
        assert!(m.contains("= 650 > 8 workers (services.web.workers) x 4 slots (services.web.threads) = 32 per replica"), "{m}");
        assert!(m.contains("the other 618 queue inside gunicorn (in its listen backlog of 2048"), "{m}");
        let fix = found[0].fix.as_deref().unwrap();
        assert!(fix.contains("<= 32") && fix.contains("backend 14, streaming 7, websocket 9"), "{fix}");
    }

    #[test]
    fn unlimited_upstreams_are_not_counted() {
        let found = findings("{ backend: { to: web, max_conns: 30 }, websocket: { to: web } }", "worker_processes: 4");
        assert!(found.is_empty());
    }

    #[test]
    fn nginx_replicas_multiply() {
        let found = findings("{ backend: { to: web, max_conns: 20 } }", "replicas: 2");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("x 2 nginx replicas"), "{}", found[0].message);
        assert!(found[0].message.contains("= 40 > 8 workers"), "{}", found[0].message);
    }

    #[test]
    fn boundary() {
        assert!(findings("{ backend: { to: web, max_conns: 20 }, streaming: { to: web, max_conns: 12 } }", "worker_processes: 4").is_empty());
        assert_eq!(findings("{ backend: { to: web, max_conns: 20 }, streaming: { to: web, max_conns: 13 } }", "worker_processes: 4").len(), 1);
    }
}
