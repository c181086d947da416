//! Rule `single-replica`.

use super::{Check, finding};
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// An app server behind a load balancer runs a single replica.
    ///
    /// ## What it checks
    /// An app server (gunicorn, puma) is behind a load balancer when an nginx upstream
    /// points at it (`upstreams.X.to`) or kamal-proxy fronts it (the primary Kamal role,
    /// the first app server, when `deploy.kamal` is set). Such a service should run at
    /// least 2 replicas; 1 (the default) is reported.
    ///
    /// ## Why it matters
    /// The load balancer has nowhere else to send traffic. A crash, an OOM kill, a
    /// restart after `max_requests`, a host reboot or a container stuck in a slow
    /// request makes the whole app unavailable: nginx answers `502 Bad Gateway` (`no
    /// live upstreams` once max_fails trips) and kamal-proxy `503`/`502` until the
    /// container is back. Capacity planning by replicas also assumes losing one still
    /// leaves the rest.
    ///
    /// ## Example
    /// ```yaml
    /// web: { kind: gunicorn, workers: 4 }                              # replicas: 1
    /// lb:  { kind: nginx, upstreams: { app: { to: web } } }
    /// ```
    ///
    /// ## Fix
    /// Run `replicas: 2` or more (for Kamal, a host per replica), each sized so the rest
    /// still carry the load when one is gone.
    ///
    /// ## Defaults
    /// replicas 1.
    ///
    /// ## References
    /// - https://nginx.org/en/docs/http/ngx_http_upstream_module.html#server
    /// - https://kamal-deploy.org/docs/configuration/proxy/
    /// - https://docs.docker.com/reference/compose-file/deploy/#replicas
    pub struct SingleReplica { id: "single-replica", severity: Info, core: false }
}

impl Check for SingleReplica {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        // kamal-proxy fronts the primary role (the first app server) when deploy.kamal is
        // set, which is exactly when the plan carries its timeout.
        let kamal_primary = plan.kamal_proxy_timeout.as_ref().and_then(|_| plan.apps().next()).map(|s| s.name.as_str());
        for service in plan.apps() {
            if service.replicas.value != 1 {
                continue;
            }
            let mut fronts: Vec<(String, String)> = Vec::new();
            for (lb, upstream) in plan.upstreams_to(&service.name) {
                fronts.push((format!("nginx `{}` upstream `{}` ({}.to)", lb.name, upstream.name, upstream.path), upstream.path.clone()));
            }
            if kamal_primary == Some(service.name.as_str()) {
                fronts.push(("kamal-proxy (primary Kamal role, deploy.kamal)".into(), "deploy.kamal".into()));
            }
            if fronts.is_empty() {
                continue;
            }
            let by_nginx = fronts.iter().any(|(text, _)| text.starts_with("nginx"));
            let answer = match (by_nginx, kamal_primary == Some(service.name.as_str())) {
                (true, true) => "nginx answers `502 Bad Gateway` (`no live upstreams`) and kamal-proxy 502/503",
                (true, false) => "nginx answers `502 Bad Gateway` (`no live upstreams` once max_fails trips)",
                _ => "kamal-proxy answers 502/503",
            };
            let message = format!(
                "{} `{}` runs {} replica ({}) behind {}: the load balancer has nowhere else to send traffic, so a crash, an OOM kill, a restart or a host reboot takes the whole app down and {answer} until it is back",
                service.kind.as_str(),
                service.name,
                service.replicas.value,
                service.replicas.cite(),
                fronts.iter().map(|(text, _)| text.as_str()).collect::<Vec<_>>().join(" and "),
            );
            let mut d = finding::<Self>(service.replicas.path(), message)
                .number("replicas", service.replicas.value as f64)
                .fix(format!(
                    "set {} to 2 (each replica sized to carry the load alone if the other is down: {} slots per replica now){}",
                    service.replicas.path(),
                    service.slots,
                    if kamal_primary == Some(service.name.as_str()) { ", with a Kamal host per replica" } else { "" }
                ));
            for (text, path) in &fronts {
                d = d.related(path.clone(), text.clone());
            }
            out.push(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze_text;

    fn findings(yaml: &str) -> Vec<crate::diag::Diagnostic> {
        let yaml = format!("version: 1\nname: t\n{yaml}");
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "single-replica")
            .collect()
    }

    #[test]
    fn behind_nginx() {
        let found = findings("services:\n  web: { kind: gunicorn, workers: 4 }\n  lb: { kind: nginx, upstreams: { app: { to: web } } }\n");
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("`web` runs 1 replica (services.web.replicas not set; default: 1 replica) behind nginx `lb` upstream `app` (services.lb.upstreams.app.to)"), "{m}");
        assert!(m.contains("502 Bad Gateway"), "{m}");
        assert!(found[0].fix.as_deref().unwrap().contains("services.web.replicas to 2"));
    }

    #[test]
    fn behind_kamal_proxy() {
        let found = findings("machines:\n  m: { addresses: [10.0.0.1] }\nservices:\n  web: { kind: puma, workers: 2, machine: m }\n  jobs: { kind: sidekiq, machine: m }\ndeploy:\n  kamal: { service: t, image: t/t, registry: { server: \"localhost:5555\" } }\n");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("kamal-proxy"), "{}", found[0].message);
    }

    #[test]
    fn not_behind_a_balancer() {
        assert!(findings("services:\n  web: { kind: gunicorn, workers: 4 }\n").is_empty());
    }

    #[test]
    fn boundary() {
        assert!(findings("services:\n  web: { kind: gunicorn, replicas: 2 }\n  lb: { kind: nginx, upstreams: { app: { to: web } } }\n").is_empty());
        assert_eq!(findings("services:\n  web: { kind: gunicorn, replicas: 1 }\n  lb: { kind: nginx, upstreams: { app: { to: web } } }\n").len(), 1);
    }
}
