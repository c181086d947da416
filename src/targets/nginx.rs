//! Target `nginx`: one self-contained nginx.conf per nginx service (main context,
//! events, http with rate-limit zones, upstream blocks and one server), every number
//! read from the service's `NginxPlan`.

use serde::Serialize;

use super::escape::comment;
use super::{Artifact, Context, RenderError, Target, render_template};
use crate::plan::{Detail, Kind, NginxPlan, ServicePlan};
use crate::spec::Balance;

const TEMPLATE: &str = include_str!("../../templates/nginx/nginx.conf.j2");

/// The exact-match location every rendered server answers itself (no upstream), for
/// container and load-balancer health checks of nginx alone.
pub const HEALTH_PATH: &str = "/nginx-health";

/// The exact-match location that answers nginx's stub_status (active connections and
/// request counters) to the host itself, for `headroom observe` and
/// nginx-prometheus-exporter.
pub const STATUS_PATH: &str = "/nginx-status";

pub struct Nginx;

impl Target for Nginx {
    fn name(&self) -> &'static str {
        "nginx"
    }
    fn render(&self, ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        let mut artifacts = Vec::new();
        for service in ctx.plan.services.iter().filter(|s| s.kind == Kind::Nginx) {
            let Detail::Nginx(nginx) = &service.detail else { continue };
            let context = context(ctx, service, nginx);
            let text = render_template("nginx", "nginx/nginx.conf.j2", TEMPLATE, &context)?;
            artifacts.push(Artifact { target: "nginx", path: path(ctx, service), text, patched: false });
        }
        Ok(artifacts)
    }
}

/// Where an nginx service's config goes: `deploy.files.nginx` (default
/// `nginx/nginx.conf`); with several nginx services, `deploy.files["nginx.<service>"]`
/// (default `nginx/<service>.conf`).
pub fn path(ctx: &Context<'_>, service: &ServicePlan) -> String {
    let several = ctx.plan.services.iter().filter(|s| s.kind == Kind::Nginx).count() > 1;
    if several {
        ctx.path_for(&format!("nginx.{}", service.name), &format!("nginx/{}.conf", service.name))
    } else {
        ctx.path_for("nginx", "nginx/nginx.conf")
    }
}

#[derive(Serialize)]
struct NginxContext {
    header: String,
    service: String,
    worker_processes: String,
    worker_processes_note: String,
    worker_connections: u64,
    rlimit_nofile: u64,
    /// Set when the value was not written: the formula it was derived from.
    rlimit_nofile_derived: Option<String>,
    port: u64,
    backlog: u64,
    server_names: Vec<String>,
    health_path: &'static str,
    status_path: &'static str,
    rate_limits: Vec<RateLimitContext>,
    /// Some location passes WebSocket upgrades (emit the `$connection_upgrade` map).
    websocket: bool,
    upstreams: Vec<UpstreamContext>,
    locations: Vec<LocationContext>,
}

#[derive(Serialize)]
struct RateLimitContext {
    name: String,
    zone: String,
    rate: String,
}

#[derive(Serialize)]
struct UpstreamContext {
    name: String,
    method: Option<&'static str>,
    zone: bool,
    keepalive: Option<u64>,
    keepalive_timeout: Option<u64>,
    keepalive_requests: Option<u64>,
    servers: Vec<ServerContext>,
}

#[derive(Serialize)]
struct ServerContext {
    host: String,
    port: u64,
    max_fails: u64,
    fail_timeout: u64,
    max_conns: u64,
    weight: u64,
}

#[derive(Serialize)]
struct LocationContext {
    path: String,
    upstream: String,
    keepalive: bool,
    websocket: bool,
    connect_timeout: u64,
    send_timeout: u64,
    read_timeout: u64,
    rate_limit: Option<String>,
    burst: Option<u64>,
}


/// A size in the units every supported nginx reads (`k`, `m`: 1024-based). nginx 1.22
/// refuses `g` in a zone size (`invalid zone size "zone=r:1g"`), so a GiB is `1024m`.
pub fn size(bytes: u64) -> String {
    super::escape::binary_size(bytes, ["", "m", "k"])
}

fn method(balance: Balance) -> Option<&'static str> {
    match balance {
        Balance::RoundRobin => None,
        Balance::LeastConn => Some("least_conn"),
        Balance::IpHash => Some("ip_hash"),
        Balance::Random => Some("random two least_conn"),
    }
}

fn context(ctx: &Context<'_>, service: &ServicePlan, nginx: &NginxPlan) -> NginxContext {
    let keepalive = |k: &Option<crate::plan::Sourced<u64>>| k.as_ref().map(|k| k.value).filter(|&k| k > 0);
    let upstreams: Vec<UpstreamContext> = nginx
        .upstreams
        .iter()
        .map(|u| UpstreamContext {
            name: u.name.clone(),
            method: method(u.balance),
            zone: u.zone,
            keepalive: keepalive(&u.keepalive),
            keepalive_timeout: u.keepalive_timeout,
            keepalive_requests: u.keepalive_requests,
            servers: u
                .servers
                .iter()
                .map(|(host, port)| ServerContext {
                    host: host.clone(),
                    port: *port,
                    max_fails: u.max_fails.value,
                    fail_timeout: u.fail_timeout.value,
                    max_conns: u.max_conns.value,
                    weight: u.weight,
                })
                .collect(),
        })
        .collect();
    let locations: Vec<LocationContext> = nginx
        .locations
        .iter()
        .map(|l| LocationContext {
            path: l.path.clone(),
            upstream: l.upstream.clone(),
            keepalive: nginx.upstreams.iter().any(|u| u.name == l.upstream && keepalive(&u.keepalive).is_some()),
            websocket: l.websocket,
            connect_timeout: l.connect_timeout.value,
            send_timeout: l.send_timeout.value,
            read_timeout: l.read_timeout.value,
            rate_limit: l.rate_limit.clone(),
            burst: l.burst,
        })
        .collect();
    let worker_processes_note = if nginx.worker_processes_auto {
        format!("auto: one per CPU (the plan counts {})", nginx.worker_processes.value)
    } else {
        nginx.worker_processes.cite()
    };
    NginxContext {
        header: ctx.header("#").trim_end().to_string(),
        service: service.name.clone(),
        worker_processes: if nginx.worker_processes_auto { "auto".into() } else { nginx.worker_processes.value.to_string() },
        worker_processes_note: comment(&worker_processes_note),
        worker_connections: nginx.worker_connections.value,
        rlimit_nofile: nginx.rlimit_nofile.value,
        rlimit_nofile_derived: (!nginx.rlimit_nofile.is_written()).then(|| comment(&nginx.rlimit_nofile.cite())),
        port: service.port.value,
        backlog: service.backlog.as_ref().map_or(crate::plan::defaults::NGINX_BACKLOG, |b| b.value),
        server_names: match nginx.server_name.split_whitespace().map(str::to_string).collect::<Vec<_>>() {
            names if names.is_empty() => vec!["_".into()],
            names => names,
        },
        health_path: HEALTH_PATH,
        status_path: STATUS_PATH,
        rate_limits: nginx
            .rate_limits
            .iter()
            .map(|r| RateLimitContext { name: r.name.clone(), zone: size(r.zone), rate: r.rate.clone() })
            .collect(),
        websocket: locations.iter().any(|l| l.websocket),
        upstreams,
        locations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze_text;
    use crate::targets::Context;

    fn render(yaml: &str) -> Vec<Artifact> {
        let analysis = analyze_text("capacity.yaml", yaml).expect("spec loads");
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        Nginx.render(&ctx).expect("renders")
    }

    const SPEC: &str = r#"version: 1
name: t
services:
  web: { kind: gunicorn, workers: 2, threads: 4, worker_class: gthread, replicas: 3, port: 8000 }
  lb:
    kind: nginx
    worker_processes: auto
    worker_connections: 4096
    upstreams:
      app:    { to: web, keepalive: 32, keepalive_timeout: 60s, keepalive_requests: 500, max_conns: 8, max_fails: 3, fail_timeout: 30s }
      sticky: { to: web, balance: ip_hash }
      rnd:    { to: web, balance: random, keepalive: 8 }
    locations:
      - { path: /, upstream: app, rate_limit: general, burst: 20 }
      - { path: /ws/, upstream: sticky, websocket: true, read_timeout: 3600s }
      - { path: /r/, upstream: rnd, connect_timeout: 5s }
    rate_limits:
      general: { rate: 100r/s, zone: 10m }
"#;

    #[test]
    fn renders_every_block_from_the_plan() {
        let artifacts = render(SPEC);
        assert_eq!(artifacts.len(), 1);
        let a = &artifacts[0];
        assert_eq!(a.path, "nginx/nginx.conf");
        let t = &a.text;
        assert!(t.starts_with("# Generated by headroom from capacity.yaml"), "{t}");
        assert!(t.contains("worker_processes auto;"));
        assert!(t.contains("worker_rlimit_nofile 8192;"), "derived 2 x 4096:\n{t}");
        assert!(t.contains("# derived: services.lb.worker_rlimit_nofile = 2 x worker_connections 4096"), "{t}");
        assert!(t.contains("worker_connections 4096;"));
        assert!(t.contains("limit_req_zone $binary_remote_addr zone=general:10m rate=100r/s;"));
        assert!(t.contains("map $http_upgrade $connection_upgrade {"));
        // upstream app: zone (max_conns), keepalive trio, one server per replica
        assert!(t.contains("upstream app {\n        # Shared state so max_conns holds across all workers (named apart from the\n        # limit_req zones: nginx refuses one name for two uses).\n        zone upstream.app 64k;\n        keepalive 32;\n        keepalive_timeout 60s;\n        keepalive_requests 500;\n"), "{t}");
        for i in 1..=3 {
            assert!(t.contains(&format!("server web-{i}:8000 max_fails=3 fail_timeout=30s max_conns=8 weight=1;")), "{t}");
            assert!(t.contains(&format!("server web-{i}:8000 max_fails=1 fail_timeout=10s weight=1;")), "{t}");
        }
        assert!(t.contains("upstream sticky {\n        ip_hash;\n        server"), "{t}");
        assert!(!t.contains("zone sticky"));
        assert!(t.contains("upstream rnd {\n        random two least_conn;\n        keepalive 8;"), "{t}");
        assert!(t.contains("listen 80 backlog=511;"));
        assert!(t.contains("location = /nginx-health {"));
        // location / : keepalive headers, rate limit, default timeouts
        let root = section(t, "location / {");
        assert!(root.contains("proxy_pass http://app;"));
        assert!(root.contains("proxy_http_version 1.1;"));
        assert!(root.contains("proxy_set_header Connection \"\";"));
        assert!(root.contains("limit_req zone=general burst=20 nodelay;"));
        assert!(root.contains("proxy_read_timeout 60s;"));
        // websocket: upgrade headers, never Connection ""
        let ws = section(t, "location /ws/ {");
        assert!(ws.contains("proxy_set_header Upgrade $http_upgrade;"));
        assert!(ws.contains("proxy_set_header Connection $connection_upgrade;"));
        assert!(!ws.contains("Connection \"\""));
        assert!(ws.contains("proxy_read_timeout 3600s;"));
        let r = section(t, "location /r/ {");
        assert!(r.contains("proxy_connect_timeout 5s;"));
        assert!(!r.contains("limit_req"));
    }

    fn section<'a>(text: &'a str, start: &str) -> &'a str {
        let at = text.find(start).unwrap_or_else(|| panic!("no `{start}` in\n{text}"));
        let rest = &text[at..];
        &rest[..rest.find("\n        }").unwrap()]
    }

    #[test]
    fn written_rlimit_is_kept_and_numbers_of_workers_are_literal() {
        let yaml = SPEC.replace("worker_processes: auto", "worker_processes: 6\n    worker_rlimit_nofile: 65535");
        let t = &render(&yaml)[0].text;
        assert!(t.contains("worker_processes 6;"));
        assert!(t.contains("worker_rlimit_nofile 65535;"));
        assert!(!t.contains("# derived: services.lb.worker_rlimit_nofile"));
    }

    #[test]
    fn no_keepalive_means_no_connection_header_override() {
        let yaml = "version: 1\nname: t\nservices:\n  web: { kind: gunicorn }\n  lb: { kind: nginx, upstreams: { app: { to: web } }, locations: [ { path: /, upstream: app } ] }\n";
        let t = &render(yaml)[0].text;
        assert!(t.contains("server web:8000 max_fails=1 fail_timeout=10s weight=1;"), "{t}");
        assert!(!t.contains("proxy_http_version"));
        assert!(!t.contains("Connection"));
        assert!(!t.contains("limit_req_zone"));
        assert!(!t.contains("$connection_upgrade"));
        assert!(t.contains("worker_processes 1;"));
        assert!(t.contains("worker_connections 512;"));
    }

    #[test]
    fn output_is_deterministic_and_paths_follow_deploy_files() {
        let a = render(SPEC);
        let b = render(SPEC);
        assert_eq!(a, b);
        let yaml = format!("{SPEC}deploy:\n  files: {{ nginx: nginx/load-balancer.conf }}\n");
        assert_eq!(render(&yaml)[0].path, "nginx/load-balancer.conf");
        let two = SPEC.replace("  lb:\n", "  edge: { kind: nginx, upstreams: { app: { to: web } }, locations: [ { path: /, upstream: app } ] }\n  lb:\n");
        let paths: Vec<String> = render(&two).into_iter().map(|a| a.path).collect();
        assert_eq!(paths, ["nginx/edge.conf", "nginx/lb.conf"]);
    }

    #[test]
    fn hostile_values_in_the_plan_are_refused() {
        // The loader already rejects these; the template must refuse them on its own.
        let analysis = analyze_text("capacity.yaml", SPEC).expect("spec loads");
        for hostile in ["a.example.com;\ninclude /etc/passwd", "x}"] {
            let mut plan = analysis.plan.clone();
            for s in &mut plan.services {
                if let Detail::Nginx(n) = &mut s.detail {
                    n.server_name = hostile.into();
                }
            }
            let ctx = Context { spec: &analysis.loaded.spec, plan: &plan, spec_file: "capacity.yaml".into(), existing_root: None };
            let err = Nginx.render(&ctx).unwrap_err();
            assert!(err.message.contains("refusing"), "{err}");
        }
    }

    #[test]
    fn sizes_use_nginx_units() {
        assert_eq!(size(10 * 1024 * 1024), "10m");
        assert_eq!(size(64 * 1024), "64k");
        assert_eq!(size(1 << 30), "1024m");
        assert_eq!(size(1000), "1000");
    }
}
