//! Rule `nginx-rlimit-nofile`.

use super::{Check, finding};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Plan};

declare_rule! {
    /// nginx workers may not be allowed to open the file descriptors their worker_connections need.
    ///
    /// ## What it checks
    /// For each `nginx` service, `worker_rlimit_nofile` must be set and at least
    /// `2 x worker_connections`. Every connection is a file descriptor, a proxied
    /// request holds two connections (client and upstream), and a worker also opens
    /// files (static files, temp files for buffered bodies, logs), so the descriptor limit
    /// of one worker must exceed its `worker_connections` with room to spare.
    ///
    /// ## Why it matters
    /// Without `worker_rlimit_nofile` a worker keeps the limit it inherited, which is
    /// whatever the container runtime or systemd unit gives (often a soft limit of 1024).
    /// `nginx -t` then warns `N worker_connections exceed open file resource limit: 1024`,
    /// and under load `accept()` and upstream connects fail with
    /// `(24: Too many open files)` in the error log: clients see resets and HTTP 500s
    /// long before `worker_connections` is reached. Setting the directive makes the
    /// limit part of nginx.conf instead of an accident of where nginx runs.
    ///
    /// ## Example
    /// ```yaml
    /// lb: { kind: nginx, worker_connections: 10000, worker_rlimit_nofile: 8192 }  # < 20000
    /// ```
    ///
    /// ## Fix
    /// Set `worker_rlimit_nofile` to at least `2 x worker_connections` (the master runs
    /// as root and raises the workers' limit itself; in a container the hard `nofile`
    /// ulimit must allow it too).
    ///
    /// ## Defaults
    /// worker_rlimit_nofile unset (workers inherit the limit nginx was started with),
    /// worker_connections 512.
    ///
    /// ## References
    /// - https://nginx.org/en/docs/ngx_core_module.html#worker_rlimit_nofile
    /// - https://nginx.org/en/docs/ngx_core_module.html#worker_connections
    pub struct NginxRlimitNofile { id: "nginx-rlimit-nofile", severity: Warning }
}

impl Check for NginxRlimitNofile {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            let Detail::Nginx(nginx) = &service.detail else { continue };
            let connections = nginx.worker_connections.value;
            let needed = connections.saturating_mul(2);
            let (path, message) = match &nginx.worker_rlimit_nofile {
                Some(limit) if limit.value >= needed => continue,
                Some(limit) => (
                    limit.path().to_string(),
                    format!(
                        "nginx `{}` worker_rlimit_nofile {} ({}) < 2 x worker_connections {} ({}) = {needed}: a worker proxying {connections} connections needs a descriptor for each client and each upstream connection; past {} descriptors accept() and upstream connects fail with `(24: Too many open files)` and clients get resets and HTTP 500s",
                        service.name,
                        limit.value,
                        limit.cite(),
                        connections,
                        nginx.worker_connections.cite(),
                        limit.value,
                    ),
                ),
                None => {
                    let inherited = match &service.nofile {
                        Some(n) => format!("the nofile limit nginx starts with ({} from {})", n.value, n.path()),
                        None => "whatever nofile limit nginx starts with (often a soft limit of 1024 under systemd and many container runtimes)".to_string(),
                    };
                    let shown = service.nofile.as_ref().map_or(1024, |n| n.value);
                    (
                        format!("{}.worker_rlimit_nofile", service.path),
                        format!(
                            "nginx `{}` sets no worker_rlimit_nofile ({}.worker_rlimit_nofile), so its workers keep {inherited}, while worker_connections {} ({}) needs up to 2 x {connections} = {needed} descriptors per worker (a client and an upstream socket per proxied request); when the inherited limit is lower, `nginx -t` warns `{connections} worker_connections exceed open file resource limit: {shown}` and under load connections fail with `(24: Too many open files)`",
                            service.name,
                            service.path,
                            connections,
                            nginx.worker_connections.cite(),
                        ),
                    )
                }
            };
            let mut d = finding::<Self>(path, message)
                .number("worker_connections", connections as f64)
                .number("needed", needed as f64)
                .fix(format!("set worker_rlimit_nofile to >= {needed} (2 x worker_connections {connections})"))
                .related(nginx.worker_connections.path(), format!("{connections} connections per worker"));
            if let Some(limit) = &nginx.worker_rlimit_nofile {
                d = d.number("worker_rlimit_nofile", limit.value as f64);
            }
            if let Some(n) = &service.nofile {
                d = d.related(n.path(), format!("nofile limit {}", n.value));
            }
            out.push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze_text;

    fn findings(nginx: &str) -> Vec<crate::diag::Diagnostic> {
        let yaml = format!(
            "version: 1\nname: t\nservices:\n  web: {{ kind: gunicorn }}\n  lb: {{ kind: nginx, {nginx}, upstreams: {{ app: {{ to: web }} }}, locations: [ {{ path: /, upstream: app }} ] }}\n"
        );
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "nginx-rlimit-nofile")
            .collect()
    }

    #[test]
    fn reports_a_low_limit() {
        let found = findings("worker_connections: 10000, worker_rlimit_nofile: 8192");
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("worker_rlimit_nofile 8192 (services.lb.worker_rlimit_nofile) < 2 x worker_connections 10000 (services.lb.worker_connections) = 20000"), "{m}");
        assert!(m.contains("Too many open files"), "{m}");
        assert!(found[0].fix.as_deref().unwrap().contains(">= 20000"));
    }

    #[test]
    fn reports_an_unset_limit() {
        let found = findings("worker_connections: 4096");
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("sets no worker_rlimit_nofile"), "{m}");
        assert!(m.contains("2 x 4096 = 8192"), "{m}");
        assert!(m.contains("4096 worker_connections exceed open file resource limit: 1024"), "{m}");
        assert_eq!(found[0].path, "services.lb.worker_rlimit_nofile");
    }

    #[test]
    fn unset_limit_with_default_connections() {
        let found = findings("backlog: 511");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("worker_connections 512 (services.lb.worker_connections not set; default: nginx worker_connections = 512)"), "{}", found[0].message);
    }

    #[test]
    fn boundary() {
        assert!(findings("worker_connections: 10000, worker_rlimit_nofile: 20000").is_empty());
        assert_eq!(findings("worker_connections: 10000, worker_rlimit_nofile: 19999").len(), 1);
    }
}
