//! Rule `upstream-without-keepalive`.

use super::{Check, finding, num, plural};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Plan};

declare_rule! {
    /// nginx opens a new connection per request to an upstream faster than ephemeral ports recycle.
    ///
    /// ## What it checks
    /// For each `nginx` upstream without `keepalive`, the new connections per second
    /// nginx opens to ONE server of it, estimated as
    /// `load.rps x (locations routed to the upstream / all locations) / servers / nginx replicas`,
    /// must stay at or below `28232 / 60 = 470` per second.
    ///
    /// The estimate: the spec does not say how traffic splits across locations, so
    /// every location of the nginx is assumed to carry an equal share of `load.rps`;
    /// WebSocket locations are left out of the upstream's share (an upgraded connection
    /// is held for the session, and keepalive cannot reuse it) but still count as
    /// locations. Each server of the upstream is one replica of its target, and
    /// balancing spreads requests evenly over them. Each nginx replica has its own
    /// address and its own ports, so the rate is divided by nginx's replicas. Without
    /// `load` the rule does not run.
    ///
    /// ## Why it matters
    /// Without `keepalive` nginx speaks HTTP/1.0 to the upstream and closes the
    /// connection after every response, so every request costs a TCP handshake and a
    /// local port. The side that closes keeps the socket in TIME_WAIT for 60 seconds
    /// (`TCP_TIMEWAIT_LEN`), and a source port cannot be reused towards the same
    /// server address and port until then: with the default
    /// `net.ipv4.ip_local_port_range` of 32768-60999 (28232 ports) one nginx can open
    /// at most about 470 new connections per second to one server. Past that
    /// `connect()` fails and nginx logs `connect() to 10.0.0.5:8000 failed (99: Cannot
    /// assign requested address) while connecting to upstream`; clients get 502s, and
    /// well before that the handshakes add latency and CPU on both sides.
    ///
    /// ## Example
    /// ```yaml
    /// load: { rps: 1000, service_time: 100ms }
    /// web: { kind: gunicorn, workers: 4 }
    /// lb:
    ///   kind: nginx
    ///   upstreams: { backend: { to: web } }           # no keepalive
    ///   locations: [ { path: /, upstream: backend } ]  # 1000 new connections/s > 470
    /// ```
    ///
    /// ## Fix
    /// Set `keepalive` on the upstream: the number of idle connections each worker
    /// keeps to it, about the requests in flight per worker (at least 16). Keepalive to
    /// an upstream also needs `proxy_http_version 1.1;` and
    /// `proxy_set_header Connection "";` in every location that proxies to it;
    /// headroom's nginx.conf emits both wherever an upstream has keepalive (a
    /// hand-written config must too, or nginx still closes every connection). Widening
    /// `net.ipv4.ip_local_port_range` or adding replicas only moves the limit.
    ///
    /// ## Defaults
    /// keepalive unset (no connection cache; HTTP/1.0 to the upstream);
    /// net.ipv4.ip_local_port_range 32768 60999; TIME_WAIT 60s.
    ///
    /// ## References
    /// - https://nginx.org/en/docs/http/ngx_http_upstream_module.html#keepalive
    /// - https://nginx.org/en/docs/http/ngx_http_proxy_module.html#proxy_http_version
    /// - https://www.kernel.org/doc/Documentation/networking/ip-sysctl.txt (ip_local_port_range)
    /// - https://blog.nginx.org/blog/avoiding-top-10-nginx-configuration-mistakes (mistake 3: no keepalive to upstreams)
    pub struct UpstreamWithoutKeepalive { id: "upstream-without-keepalive", severity: Warning, core: false }
}

/// Linux default `net.ipv4.ip_local_port_range` 32768-60999.
const EPHEMERAL_PORTS: f64 = 28_232.0;
/// Seconds a closed connection's port stays in TIME_WAIT (TCP_TIMEWAIT_LEN).
const TIME_WAIT: f64 = 60.0;
/// The smallest keepalive the fix proposes.
const MIN_KEEPALIVE: u64 = 16;

impl Check for UpstreamWithoutKeepalive {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        let Some(load) = &plan.load else { return };
        let limit = EPHEMERAL_PORTS / TIME_WAIT;
        for service in &plan.services {
            let Detail::Nginx(nginx) = &service.detail else { continue };
            let all_locations = nginx.locations.len();
            if all_locations == 0 {
                continue;
            }
            let nginx_replicas = service.replicas.value.max(1);
            for upstream in &nginx.upstreams {
                if upstream.keepalive.as_ref().is_some_and(|k| k.value > 0) {
                    continue;
                }
                let routed: Vec<&str> = nginx
                    .locations
                    .iter()
                    .filter(|l| l.upstream == upstream.name && !l.websocket)
                    .map(|l| l.path.as_str())
                    .collect();
                if routed.is_empty() {
                    continue;
                }
                let servers = upstream.servers.len().max(1) as u64;
                let share = routed.len() as f64 / all_locations as f64;
                let upstream_rps = load.rps.value * share / nginx_replicas as f64;
                let rate = upstream_rps / servers as f64;
                if rate <= limit {
                    continue;
                }
                let share_text = if routed.len() == all_locations {
                    format!("{all_locations}/{all_locations} locations routed here ({})", routed.join(", "))
                } else {
                    format!("{}/{all_locations} locations routed here ({}; equal share per location assumed)", routed.len(), routed.join(", "))
                };
                let target = plan.service(&upstream.to);
                let servers_text = match target {
                    Some(t) => format!("{} (one per `{}` replica, {})", plural(servers, "server"), upstream.to, t.replicas.cite()),
                    None => plural(servers, "server"),
                };
                let replicas_text = if nginx_replicas > 1 { format!(" / {nginx_replicas} nginx replicas") } else { String::new() };
                let message = format!(
                    "nginx `{}` upstream `{}` ({}) has no keepalive, so every proxied request opens a new connection: load.rps {} ({}) x {share_text} / {servers_text}{replicas_text} = {} new connections/s to each server > {} per second, what ephemeral ports sustain ({} ports of the default net.ipv4.ip_local_port_range 32768-60999 / {}s in TIME_WAIT); past it connect() fails with `(99: Cannot assign requested address) while connecting to upstream` and clients get 502s",
                    service.name,
                    upstream.name,
                    upstream.path,
                    num(load.rps.value),
                    load.rps.cite(),
                    num(rate),
                    limit.floor(),
                    EPHEMERAL_PORTS,
                    TIME_WAIT,
                );
                // Idle connections per worker: about the requests in flight per worker.
                let workers = nginx.worker_processes.value.max(1);
                let in_flight = upstream_rps * load.service_time.value / workers as f64;
                let keepalive = (in_flight.ceil() as u64).max(MIN_KEEPALIVE);
                let fix = format!(
                    "set {}.keepalive: {keepalive} (idle connections per worker, about the requests in flight: {} rps x {}s service_time / {workers} worker_processes = {}, at least {MIN_KEEPALIVE}); the locations then need `proxy_http_version 1.1` and `proxy_set_header Connection \"\"`, which headroom's nginx.conf emits",
                    upstream.path,
                    num(upstream_rps),
                    num(load.service_time.value),
                    num(in_flight),
                );
                let mut d = finding::<Self>(upstream.path.clone(), message)
                    .number("new_connections_per_second", rate)
                    .number("limit_per_second", limit)
                    .number("servers", servers as f64)
                    .number("suggested_keepalive", keepalive as f64)
                    .fix(fix)
                    .related(load.rps.path(), format!("load.rps {}", num(load.rps.value)));
                if let Some(t) = target {
                    d = d.related(t.replicas.path(), format!("{} of `{}`", plural(servers, "server"), upstream.to));
                }
                out.push(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze_text;

    fn findings(rps: &str, upstream: &str, extra: &str) -> Vec<crate::diag::Diagnostic> {
        let yaml = format!(
            "version: 1\nname: t\nload: {{ rps: {rps}, service_time: 100ms }}\nservices:\n  web: {{ kind: gunicorn, worker_class: gthread, workers: 8, threads: 4, replicas: 2 }}\n  lb:\n    kind: nginx\n    worker_processes: 4\n    upstreams: {{ backend: {upstream}, ws: {{ to: web }} }}\n    locations:\n      - {{ path: /, upstream: backend }}\n      - {{ path: /ws/, upstream: ws, websocket: true }}\n{extra}"
        );
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "upstream-without-keepalive")
            .collect()
    }

    #[test]
    fn shows_the_share_and_the_ports() {
        // 4000 rps x 1/2 locations / 2 servers = 1000/s.
        let found = findings("4000", "{ to: web }", "");
        assert_eq!(found.len(), 1, "{found:#?}");
        let m = &found[0].message;
        assert!(m.contains("upstream `backend` (services.lb.upstreams.backend) has no keepalive"), "{m}");
        assert!(m.contains("load.rps 4000 (load.rps) x 1/2 locations routed here (/; equal share per location assumed) / 2 servers (one per `web` replica, services.web.replicas) = 1000 new connections/s to each server > 470 per second"), "{m}");
        assert!(m.contains("28232 ports") && m.contains("60s in TIME_WAIT") && m.contains("Cannot assign requested address"), "{m}");
        // 2000 rps to the upstream x 0.1s / 4 workers = 50 per worker.
        let fix = found[0].fix.as_deref().unwrap();
        assert!(fix.contains("services.lb.upstreams.backend.keepalive: 50") && fix.contains("proxy_http_version 1.1"), "{fix}");
    }

    #[test]
    fn keepalive_and_websocket_only_upstreams_pass() {
        assert!(findings("4000", "{ to: web, keepalive: 32 }", "").is_empty());
    }

    #[test]
    fn nginx_replicas_divide_the_rate() {
        assert!(findings("4000", "{ to: web }", "    replicas: 3\n").is_empty());
        assert_eq!(findings("4000", "{ to: web }", "    replicas: 2\n").len(), 1);
    }

    #[test]
    fn boundary() {
        // 28232 / 60 = 470.53/s per server: 1882 rps x 1/2 / 2 = 470.5 passes, 1884 -> 471 fails.
        assert!(findings("1882", "{ to: web }", "").is_empty());
        assert_eq!(findings("1884", "{ to: web }", "").len(), 1);
    }
}
