//! Rule `timeout-order`.

use super::{Check, finding};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Plan, ServicePlan, Sourced};
use crate::spec::WorkerClass;

declare_rule! {
    /// The proxy gives up on a request before the app server's request timeout does.
    ///
    /// ## What it checks
    /// For every nginx location, the request timeout of the service its upstream points
    /// at must be shorter than the location's `proxy_read_timeout` (`read_timeout`).
    /// With Kamal, every app's request timeout must also be shorter than kamal-proxy's
    /// `response_timeout`. Websocket locations are skipped: there `proxy_read_timeout`
    /// is the idle timeout of an upgraded connection, not a wait for a response.
    ///
    /// Only a setting that ends a request that runs too long is a request timeout:
    ///
    /// | server, worker class | setting | request timeout? |
    /// |---|---|---|
    /// | gunicorn `sync`, 1 thread | `timeout` | yes: the worker cannot notify the arbiter while it serves its one request, so a request running past `timeout` gets the worker killed (`WORKER TIMEOUT`) |
    /// | gunicorn `gthread` (and `sync` with `threads` > 1, which gunicorn runs as `gthread`) | `timeout` | no: the worker's main loop keeps notifying the arbiter while threads serve requests; only a blocked process is killed |
    /// | gunicorn `gevent`, `eventlet`, `uvicorn` workers | `timeout` | no: a heartbeat from the event loop, not tied to any request's length |
    /// | gunicorn, any class | `timeout 0` | no timeout at all |
    /// | puma, cluster mode (`workers` >= 1) | `worker_timeout` | no: how long the master waits for a worker's check-in before restarting it, a hung-process timer |
    /// | puma, single mode (`workers 0`) | - | puma has no such timer and no request timeout |
    ///
    /// An app server without a request timeout (every puma, gunicorn workers other than
    /// one-thread `sync`) is not reported: no server setting changes what happens when
    /// the proxy gives up, so the guard is an app-level deadline below the proxy's
    /// timeout (Rack::Timeout's `RACK_TIMEOUT_SERVICE_TIMEOUT`, PostgreSQL's
    /// `statement_timeout`, timeouts on outgoing calls).
    ///
    /// ## Why it matters
    /// When the proxy's timeout fires first, it answers `504 Gateway Time-out` (nginx
    /// logs `upstream timed out (110: Connection timed out) while reading response header
    /// from upstream`) while the worker keeps running the request to the end, holding its
    /// slot and its database connection for a response nobody will read. Clients retry,
    /// and the retries pile onto workers that are still busy with the abandoned requests.
    /// The reverse order is the intended one: the app server kills the stuck worker,
    /// nginx sees the connection close and answers 502 (`upstream prematurely closed
    /// connection while reading response header from upstream`), and the slot is free
    /// again.
    ///
    /// ## Example
    /// ```yaml
    /// web: { kind: gunicorn, worker_class: sync, timeout: 600s }
    /// lb:
    ///   kind: nginx
    ///   upstreams: { backend: { to: web } }
    ///   locations: [ { path: /, upstream: backend } ]   # proxy_read_timeout 60s < 600s
    /// ```
    ///
    /// ## Fix
    /// Make the proxy wait longer than the app: `read_timeout` (or Kamal's
    /// `proxy.response_timeout`) of at least the app timeout + 5s on the locations that
    /// serve slow requests, or lower the app timeout below the proxy's. Give long
    /// streaming endpoints their own location and upstream instead of raising the
    /// timeout for everything.
    ///
    /// ## Defaults
    /// nginx proxy_read_timeout 60s; kamal-proxy response_timeout 30s; gunicorn
    /// worker_class sync, threads 1, timeout 30s; puma worker_timeout 60s (not a request
    /// timeout).
    ///
    /// ## References
    /// - https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_read_timeout
    /// - https://docs.gunicorn.org/en/stable/settings.html#timeout ("for the non sync
    ///   workers it just means that the worker process is still communicating")
    /// - https://docs.gunicorn.org/en/stable/settings.html#threads (sync with threads > 1
    ///   runs gthread)
    /// - https://puma.io/puma/Puma/DSL.html#worker_timeout-instance_method ("not a request
    ///   timeout")
    /// - https://kamal-deploy.org/docs/configuration/proxy/#response-timeout
    pub struct TimeoutOrder { id: "timeout-order", severity: Warning }
}

/// An app server's request timeout and what the setting is called: only gunicorn's
/// `timeout` for a one-thread `sync` worker ends a request (see the table above).
fn request_timeout(service: &ServicePlan) -> Option<(&Sourced<u64>, &'static str)> {
    match &service.detail {
        Detail::Gunicorn(g) if g.worker_class.value == WorkerClass::Sync && g.threads.value <= 1 && g.timeout.value > 0 => {
            Some((&g.timeout, "timeout"))
        }
        _ => None,
    }
}

fn describe(app: &ServicePlan, timeout: &Sourced<u64>, setting: &str) -> String {
    format!("{} `{}` {setting} {}s ({})", app.kind.as_str(), app.name, timeout.value, timeout.cite())
}

/// What the client and the app server go through when the proxy gives up first.
fn consequence(proxy_name: &str, answer: &str, app: &ServicePlan, app_timeout: u64, proxy_timeout: u64) -> String {
    let kind = app.kind.as_str();
    if app_timeout == proxy_timeout {
        format!(
            "both give up at {proxy_timeout}s and which fires first is a race; when {proxy_name} wins, the client gets {answer} while the {kind} worker is still running the request, holding its slot and database connection for a response nobody reads"
        )
    } else {
        format!(
            "a request still running at {proxy_timeout}s gets {answer} while the {kind} worker keeps running it for up to {app_timeout}s, holding its slot and database connection for a response nobody reads"
        )
    }
}

fn fix(app: &ServicePlan, timeout: &Sourced<u64>, setting: &str, proxy_setting: &str, proxy: u64) -> String {
    let lower = if proxy > 5 { format!("{}s", proxy - 5) } else { format!("{}s", proxy.saturating_sub(1).max(1)) };
    format!(
        "raise {proxy_setting} to >= {}s ({} {setting} {}s + 5s), or lower {} below {proxy}s (e.g. {lower})",
        timeout.value.saturating_add(5),
        app.name,
        timeout.value,
        timeout.path(),
    )
}

impl Check for TimeoutOrder {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            let Detail::Nginx(nginx) = &service.detail else { continue };
            for location in &nginx.locations {
                if location.websocket {
                    continue;
                }
                let Some(upstream) = nginx.upstreams.iter().find(|u| u.name == location.upstream) else { continue };
                let Some(app) = plan.service(&upstream.to) else { continue };
                let Some((timeout, setting)) = request_timeout(app) else { continue };
                let read = &location.read_timeout;
                if timeout.value < read.value {
                    continue;
                }
                let message = format!(
                    "{} >= nginx `{}` proxy_read_timeout {}s for location `{}` ({}) via upstream `{}`: {}",
                    describe(app, timeout, setting),
                    service.name,
                    read.value,
                    location.path,
                    read.cite(),
                    upstream.name,
                    consequence("nginx", "`504 Gateway Time-out` from nginx (`upstream timed out ... while reading response header from upstream`)", app, timeout.value, read.value),
                );
                out.push(
                    finding::<Self>(read.path(), message)
                        .number("app_timeout", timeout.value as f64)
                        .number("proxy_timeout", read.value as f64)
                        .fix(fix(app, timeout, setting, &format!("read_timeout of `{}`", location.path), read.value))
                        .related(timeout.path(), format!("{} {setting} {}s", app.name, timeout.value)),
                );
            }
        }
        let Some(proxy) = &plan.kamal_proxy_timeout else { return };
        for app in plan.apps() {
            let Some((timeout, setting)) = request_timeout(app) else { continue };
            if timeout.value < proxy.value {
                continue;
            }
            let message = format!(
                "{} >= kamal-proxy response_timeout {}s ({}): {}",
                describe(app, timeout, setting),
                proxy.value,
                proxy.cite(),
                consequence("kamal-proxy", "`504 Gateway Timeout` from kamal-proxy", app, timeout.value, proxy.value),
            );
            out.push(
                finding::<Self>(proxy.path(), message)
                    .number("app_timeout", timeout.value as f64)
                    .number("proxy_timeout", proxy.value as f64)
                    .fix(fix(app, timeout, setting, "deploy.kamal.proxy.response_timeout", proxy.value))
                    .related(timeout.path(), format!("{} {setting} {}s", app.name, timeout.value)),
            );
        }
    }
}

#[cfg(test)]
mod tests {

    fn findings(yaml: &str) -> Vec<crate::diag::Diagnostic> {
        crate::rules::findings_of("timeout-order", yaml)
    }

    fn nginx(app_timeout: &str, read_timeout: &str) -> String {
        format!(
            "version: 1\nname: t\nservices:\n  web: {{ kind: gunicorn, timeout: {app_timeout} }}\n  lb:\n    kind: nginx\n    upstreams: {{ backend: {{ to: web }}, ws: {{ to: web }} }}\n    locations:\n      - {{ path: /, upstream: backend{read_timeout} }}\n      - {{ path: /ws/, upstream: ws, websocket: true }}\n"
        )
    }

    #[test]
    fn default_read_timeout_below_app_timeout() {
        let found = findings(&nginx("600s", ""));
        assert_eq!(found.len(), 1, "{found:#?}");
        let m = &found[0].message;
        assert!(m.contains("gunicorn `web` timeout 600s (services.web.timeout) >= nginx `lb` proxy_read_timeout 60s for location `/`"), "{m}");
        assert!(m.contains("default: nginx proxy_read_timeout = 60s"), "{m}");
        assert!(m.contains("504 Gateway Time-out"), "{m}");
        let fix = found[0].fix.as_deref().unwrap();
        assert!(fix.contains(">= 605s") && fix.contains("(e.g. 55s)"), "{fix}");
    }

    #[test]
    fn boundary() {
        // Equal is a race: reported. One second of margin is enough to pass.
        let equal = findings(&nginx("600s", ", read_timeout: 600s"));
        assert_eq!(equal.len(), 1);
        assert!(equal[0].message.contains("both give up at 600s and which fires first is a race"), "{}", equal[0].message);
        assert!(findings(&nginx("599s", ", read_timeout: 600s")).is_empty());
    }

    #[test]
    fn kamal_proxy_default() {
        let kamal = |web: &str| {
            format!("version: 1\nname: t\nmachines:\n  m: {{ addresses: [10.0.0.1] }}\nservices:\n  web: {{ {web}, machine: m }}\ndeploy:\n  kamal: {{ image: acme/app, registry: {{ server: \"localhost:5555\" }} }}\n")
        };
        let found = findings(&kamal("kind: gunicorn, timeout: 30s"));
        assert_eq!(found.len(), 1, "{found:#?}");
        let m = &found[0].message;
        assert!(m.contains("gunicorn `web` timeout 30s"), "{m}");
        assert!(m.contains(">= kamal-proxy response_timeout 30s (deploy.kamal.proxy.response_timeout not set; default: kamal-proxy response_timeout = 30s)"), "{m}");
        // puma's worker_timeout (60s by default, cluster mode only) is a hung-worker
        // timer, not a request timeout: a default Rails app behind kamal-proxy is quiet.
        assert!(findings(&kamal("kind: puma, workers: 2")).is_empty());
        assert!(findings(&kamal("kind: puma, workers: 0, timeout: 120s")).is_empty());
    }

    #[test]
    fn only_request_timeouts_are_compared() {
        // gthread, sync with several threads (run as gthread), gevent and uvicorn
        // workers heartbeat while a request runs; timeout 0 disables the timer.
        for web in [
            "worker_class: gthread, threads: 4, timeout: 600s",
            "worker_class: sync, threads: 2, timeout: 600s",
            "worker_class: gevent, timeout: 600s",
            "worker_class: uvicorn, timeout: 600s",
            "worker_class: sync, timeout: 0s",
        ] {
            let yaml = format!("version: 1\nname: t\nservices:\n  web: {{ kind: gunicorn, {web} }}\n  lb: {{ kind: nginx, upstreams: {{ b: {{ to: web }} }}, locations: [ {{ path: /, upstream: b }} ] }}\n");
            assert!(findings(&yaml).is_empty(), "{web}: {:#?}", findings(&yaml));
        }
        let sync = "version: 1\nname: t\nservices:\n  web: { kind: gunicorn, worker_class: sync, threads: 1, timeout: 600s }\n  lb: { kind: nginx, upstreams: { b: { to: web } }, locations: [ { path: /, upstream: b } ] }\n";
        assert_eq!(findings(sync).len(), 1);
    }
}
