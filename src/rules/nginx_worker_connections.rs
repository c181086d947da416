//! Rule `nginx-worker-connections`.

use super::{Check, finding, num};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Plan, mul};

declare_rule! {
    /// nginx cannot hold the connections the planned load opens through it.
    ///
    /// ## What it checks
    /// For each `nginx` service with a `load`, the connections it can hold,
    /// `replicas x worker_processes x worker_connections`, must be at least
    /// `2 x` the client connections expected at the edge at peak: `load.concurrent_users`
    /// when given, else Little's law at the edge (`load.rps x load.service_time`).
    /// `worker_connections` counts every connection a worker has open, not only
    /// clients: a proxied request holds the client's connection and one to the
    /// upstream, so each one costs two. The rule is skipped when the spec has no `load`.
    ///
    /// ## Why it matters
    /// A worker out of connections logs `N worker_connections are not enough` in the
    /// error log. When it happens on accept, the new client connection is closed at once
    /// (clients see resets); when it happens while connecting to the upstream, the
    /// request fails with HTTP 500. Either way nginx drops traffic while the app servers
    /// behind it may sit idle. Little's law only counts requests in flight; idle
    /// keep-alive and websocket connections hold worker connections too, so give
    /// `load.concurrent_users` when clients keep connections open.
    ///
    /// ## Example
    /// ```yaml
    /// load: { rps: 1000, concurrent_users: 5000, service_time: 100ms }
    /// services:
    ///   lb: { kind: nginx, worker_processes: 2, worker_connections: 1024 }  # 2048 < 2 x 5000
    /// ```
    ///
    /// ## Fix
    /// Raise `worker_connections` to at least
    /// `ceil(2 x clients / (worker_processes x replicas))`, and `worker_rlimit_nofile` to
    /// at least twice that (see `nginx-rlimit-nofile`). Adding worker processes (up to
    /// the CPUs) or nginx replicas also works.
    ///
    /// ## Defaults
    /// worker_processes 1 (`auto` = one per CPU), worker_connections 512 (the stock
    /// nginx.conf of the packages and the Docker image says 1024).
    ///
    /// ## References
    /// - https://nginx.org/en/docs/ngx_core_module.html#worker_connections
    /// - https://nginx.org/en/docs/ngx_core_module.html#worker_processes
    /// - https://nginx.org/en/docs/events.html
    pub struct NginxWorkerConnections { id: "nginx-worker-connections", severity: Error }
}

impl Check for NginxWorkerConnections {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            let Detail::Nginx(nginx) = &service.detail else { continue };
            let Some(clients) = &nginx.expected_clients else { continue };
            let replicas = service.replicas.value;
            let workers = nginx.worker_processes.value;
            let per_worker = nginx.worker_connections.value;
            let capacity = mul(&[replicas, workers, per_worker]);
            let needed = 2.0 * clients.value;
            if capacity as f64 >= needed {
                continue;
            }
            let needed_whole = needed.ceil() as u64;
            let workers_total = mul(&[replicas, workers]).max(1);
            let want = needed_whole.div_ceil(workers_total);
            let replicas_text = if replicas > 1 { format!("{replicas} replicas x ") } else { String::new() };
            let d = finding::<Self>(
                nginx.worker_connections.path(),
                format!(
                    "nginx `{}` can hold {capacity} connections but the planned load needs {}: {replicas_text}worker_processes {} ({}) x worker_connections {} ({}) = {capacity} < 2 x {} expected clients ({}) = {}, because every proxied request holds a client connection and an upstream connection; past {capacity} nginx logs `{per_worker} worker_connections are not enough`, closes new client connections and answers HTTP 500 when it cannot open the upstream connection",
                    service.name,
                    num(needed),
                    workers,
                    nginx.worker_processes.cite(),
                    per_worker,
                    nginx.worker_connections.cite(),
                    num(clients.value),
                    clients.cite(),
                    num(needed),
                ),
            )
            .number("capacity", capacity as f64)
            .number("needed", needed)
            .number("expected_clients", clients.value)
            .number("worker_processes", workers as f64)
            .number("worker_connections", per_worker as f64)
            .fix(format!(
                "raise worker_connections to >= {want} (ceil(2 x {} / {workers_total} workers)) and worker_rlimit_nofile to >= {}",
                num(clients.value),
                want.saturating_mul(2)
            ))
            .related(nginx.worker_processes.path(), format!("{workers} worker processes"))
            .related(clients.path(), format!("{} client connections expected at peak", num(clients.value)));
            out.push(d);
        }
    }
}

#[cfg(test)]
mod tests {

    fn findings(yaml: &str) -> Vec<crate::diag::Diagnostic> {
        crate::rules::findings_of("nginx-worker-connections", yaml)
    }

    fn spec(users: u64, processes: u64, connections: u64) -> String {
        format!(
            "version: 1\nname: t\nload: {{ rps: 100, concurrent_users: {users}, service_time: 100ms }}\nservices:\n  web: {{ kind: gunicorn, workers: 4 }}\n  lb:\n    kind: nginx\n    worker_processes: {processes}\n    worker_connections: {connections}\n    upstreams: {{ app: {{ to: web }} }}\n    locations: [ {{ path: /, upstream: app }} ]\n"
        )
    }

    #[test]
    fn reports_the_arithmetic() {
        let found = findings(&spec(5000, 2, 1024));
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("worker_processes 2 (services.lb.worker_processes)"), "{m}");
        assert!(m.contains("worker_connections 1024 (services.lb.worker_connections)"), "{m}");
        assert!(m.contains("= 2048 < 2 x 5000 expected clients (load.concurrent_users) = 10000"), "{m}");
        assert!(m.contains("1024 worker_connections are not enough"), "{m}");
        assert!(found[0].fix.as_deref().unwrap().contains(">= 5000"), "{:?}", found[0].fix);
    }

    #[test]
    fn boundary() {
        // 2 x 1000 = 2000 exactly fits; one more client does not.
        assert!(findings(&spec(1000, 2, 1000)).is_empty());
        assert_eq!(findings(&spec(1001, 2, 1000)).len(), 1);
    }

    #[test]
    fn littles_law_when_no_concurrent_users() {
        let yaml = "version: 1\nname: t\nload: { rps: 1000, service_time: 2s }\nservices:\n  web: { kind: gunicorn, workers: 4 }\n  lb: { kind: nginx, worker_processes: 2, worker_connections: 1024, upstreams: { app: { to: web } }, locations: [ { path: /, upstream: app } ] }\n";
        let found = findings(yaml);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("2 x 2000 expected clients (load = Little's law"), "{}", found[0].message);
    }

    #[test]
    fn skipped_without_load() {
        let yaml = "version: 1\nname: t\nservices:\n  web: { kind: gunicorn }\n  lb: { kind: nginx, worker_connections: 2, upstreams: { app: { to: web } }, locations: [ { path: /, upstream: app } ] }\n";
        assert!(findings(yaml).is_empty());
    }
}
