//! Rule `health-check-missing`.

use std::fmt::Write as _;

use super::{Check, finding, plural};
use crate::diag::Diagnostic;
use crate::plan::{Kind, Plan};

declare_rule! {
    /// An app behind a load balancer or kamal-proxy has no health check.
    ///
    /// ## What it checks
    /// Every app server (gunicorn, puma) that receives traffic from a load balancer -
    /// an nginx upstream whose `to` is the app, or kamal-proxy, which fronts the first
    /// app server (Kamal's primary role) when `deploy.kamal` is set - must have a
    /// `health` check with an HTTP `path`.
    ///
    /// kamal-proxy always checks health: without `proxy.healthcheck` it probes `GET /up`.
    /// A puma app behind kamal-proxy therefore counts as checked: Rails 7.1 and later
    /// generate that route (`get "up" => "rails/health#show"` in config/routes.rb).
    /// `headroom lint` reads config/routes.rb beside a Kamal config when it is there:
    /// the route's path becomes the app's `health.path`, and a routes.rb without it is
    /// noted. Other apps behind kamal-proxy (gunicorn) serve `/up` only if they define
    /// it, so they are reported unless `health.path` names the endpoint they serve.
    ///
    /// ## Why it matters
    /// Without a health check the orchestrator calls a container ready as soon as its
    /// process starts, before the app has loaded, and keeps a hung one in rotation.
    /// compose can only make nginx wait for `service_started` (not
    /// `service_healthy`), so requests during a start or restart get 502s; open-source
    /// nginx has no active checks and takes a broken replica out only after `max_fails`
    /// (default 1) real requests failed within `fail_timeout` (default 10s), each one
    /// an error a user sees, and puts it back after `fail_timeout` to fail again.
    /// kamal-proxy probes `GET /up` on every new container before switching traffic to
    /// it; an app that does not answer 200 there fails every deploy with `target failed
    /// to become healthy`, and one that answers `/up` without checking itself is
    /// switched to while still broken.
    ///
    /// ## Example
    /// ```yaml
    /// web: { kind: gunicorn, workers: 4, replicas: 3 }   # no health
    /// lb:  { kind: nginx, upstreams: { backend: { to: web } }, locations: [ { path: /, upstream: backend } ] }
    /// ```
    ///
    /// ## Fix
    /// Add `health: { path: /health, interval: 10s, timeout: 5s, retries: 3 }` (Rails:
    /// `/up`, which Rails 7.1+ generates) to the app, served by an endpoint that answers
    /// 200 once the app can serve requests, without calling slow dependencies. headroom
    /// renders it as the compose healthcheck with `depends_on: service_healthy`, Kamal's
    /// `proxy.healthcheck` and Railway's `healthcheckPath`.
    ///
    /// ## Defaults
    /// Health checks: interval 30s, timeout 10s, retries 3 when a `health` block is
    /// given; kamal-proxy checks `/up` every 1s for up to 30s (deploy_timeout);
    /// nginx max_fails 1, fail_timeout 10s.
    ///
    /// ## References
    /// - https://docs.docker.com/reference/compose-file/services/#healthcheck
    /// - https://kamal-deploy.org/docs/configuration/proxy/#healthcheck
    /// - https://nginx.org/en/docs/http/ngx_http_upstream_module.html#max_fails
    /// - https://guides.rubyonrails.org/configuring.html (the `/up` health check route)
    /// - https://api.rubyonrails.org/classes/Rails/HealthController.html
    pub struct HealthCheckMissing { id: "health-check-missing", severity: Warning, core: false }
}

impl Check for HealthCheckMissing {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        let kamal_primary = plan.kamal_proxy_timeout.as_ref().and_then(|_| plan.apps().next()).map(|s| s.name.clone());
        for app in plan.apps() {
            if app.health.as_ref().is_some_and(|h| h.path.is_some()) {
                continue;
            }
            // The message is written in place: one string per finding, the fronts joined
            // with " and ", the consequences with "; ".
            // (Sized for the common case up front: a growing string copies itself.)
            let mut fronts = String::with_capacity(128);
            let mut consequences = String::with_capacity(512);
            for (service, upstream) in plan.upstreams_to(&app.name) {
                if !fronts.is_empty() {
                    fronts.push_str(" and ");
                }
                let _ = write!(fronts, "nginx `{}` upstream `{}` ({})", service.name, upstream.name, upstream.path);
                if consequences.is_empty() {
                    consequences.push_str("nginx routes to each of its ");
                    consequences.push_str(&plural(app.replicas.value, "replica"));
                    consequences.push_str(" as soon as the container runs, before the app has loaded, and keeps a hung one in rotation: open-source nginx has no active checks and marks a server down only after max_fails ");
                    let _ = write!(consequences, "{} (", upstream.max_fails.value);
                    consequences.push_str(&upstream.max_fails.cite());
                    let _ = write!(consequences, ") failed requests within fail_timeout {}s, each a 502/504 to a user", upstream.fail_timeout.value);
                }
            }
            // kamal-proxy's default probe GET /up is a health check a Rails app answers.
            if kamal_primary.as_deref() == Some(app.name.as_str()) && app.kind != Kind::Puma {
                if !fronts.is_empty() {
                    fronts.push_str(" and ");
                }
                fronts.push_str("kamal-proxy (deploy.kamal, primary role)");
                if !consequences.is_empty() {
                    consequences.push_str("; ");
                }
                let _ = write!(
                    consequences,
                    "kamal-proxy probes its default path GET /up before switching traffic to a new container, which a {} app serves only if it defines it: if it does not answer 200 there the deploy fails with `target failed to become healthy`",
                    app.kind.as_str()
                );
            }
            if fronts.is_empty() {
                continue;
            }
            let (path, missing) = match &app.health {
                None => ([app.path.as_str(), ".health"].concat(), " not set"),
                Some(_) => ([app.path.as_str(), ".health.path"].concat(), " has no path"),
            };
            let endpoint = if app.kind == Kind::Puma { "/up" } else { "/health" };
            let message = [
                "app `",
                app.name.as_str(),
                "` receives traffic from ",
                &fronts,
                " but has no HTTP health check (",
                &app.path,
                ".health",
                missing,
                "): ",
                &consequences,
            ]
            .concat();
            let fix = match &app.health {
                None => format!(
                    "add `health: {{ path: {endpoint}, interval: 10s, timeout: 5s, retries: 3 }}` to {} (an endpoint that answers 200 once the app can serve, without calling slow dependencies)",
                    app.path
                ),
                Some(_) => format!("set {}.health.path: {endpoint} (an endpoint that answers 200 once the app can serve)", app.path),
            };
            out.push(finding::<Self>(path, message).number("replicas", app.replicas.value as f64).fix(fix));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze_text;

    fn findings(web: &str, extra: &str) -> Vec<crate::diag::Diagnostic> {
        findings_of("gunicorn", web, extra)
    }

    fn findings_of(kind: &str, web: &str, extra: &str) -> Vec<crate::diag::Diagnostic> {
        let placed = if extra.contains("kamal") { ", machine: m" } else { "" };
        let yaml = format!("version: 1\nname: t\nservices:\n  web: {{ kind: {kind}, replicas: 3{web}{placed} }}\n  worker: {{ kind: {kind}{placed} }}\n{extra}");
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "health-check-missing")
            .collect()
    }

    const NGINX: &str = "  lb: { kind: nginx, upstreams: { backend: { to: web, keepalive: 16 } }, locations: [ { path: /, upstream: backend } ] }\n";
    // Kamal deploys every service to hosts (`findings` places them on `m`).
    const KAMAL: &str = "machines: { m: { addresses: [10.0.0.1] } }\ndeploy: { kamal: { image: acme/web, registry: { server: \"localhost:5555\" } } }\n";

    #[test]
    fn behind_nginx() {
        let found = findings("", NGINX);
        assert_eq!(found.len(), 1, "{found:#?}");
        let m = &found[0].message;
        assert!(m.contains("app `web` receives traffic from nginx `lb` upstream `backend` (services.lb.upstreams.backend) but has no HTTP health check (services.web.health not set)"), "{m}");
        assert!(m.contains("each of its 3 replicas") && m.contains("max_fails 1 (services.lb.upstreams.backend.max_fails not set; default: nginx max_fails = 1)"), "{m}");
        assert_eq!(found[0].path, "services.web.health");
        assert!(found[0].fix.as_deref().unwrap().contains("path: /health, interval: 10s"));
    }

    #[test]
    fn behind_kamal_proxy_only_the_primary_role() {
        let found = findings(", health: { interval: 5s }", KAMAL);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].message.contains("kamal-proxy (deploy.kamal, primary role)") && found[0].message.contains("services.web.health has no path"), "{}", found[0].message);
        assert!(found[0].message.contains("target failed to become healthy") && found[0].message.contains("which a gunicorn app serves only if it defines it"), "{}", found[0].message);
        assert_eq!(found[0].path, "services.web.health.path");
    }

    #[test]
    fn rails_behind_kamal_proxy_is_checked_by_its_default_probe() {
        // kamal-proxy probes GET /up, which Rails 7.1+ serves: a default app is quiet.
        assert!(findings_of("puma", "", KAMAL).is_empty());
        // Behind nginx nothing probes it: still reported.
        let found = findings_of("puma", "", NGINX);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].fix.as_deref().unwrap().contains("path: /up"), "{:?}", found[0].fix);
    }

    #[test]
    fn boundary() {
        // A path is enough; an app nobody balances to is not reported.
        assert!(findings(", health: { path: /health }", NGINX).is_empty());
        assert!(findings(", health: { path: /up }", KAMAL).is_empty());
        assert!(findings("", "").is_empty());
    }
}
