//! Rule `rate-limit-zone-size`.

use super::{Check, finding, num};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Plan};

declare_rule! {
    /// An nginx limit_req zone is too small to track every client expected at once.
    ///
    /// ## What it checks
    /// For each `limit_req` zone of an nginx (`rate_limits`) that a location uses, the
    /// client states the zone holds, `zone size / 128 bytes` (about 8,000 per megabyte
    /// on 64-bit platforms), must be at least the distinct clients expected at once,
    /// taken as `load.concurrent_users`. headroom keys zones by `$binary_remote_addr`,
    /// one state per client address. Without `load.concurrent_users` the rule does not
    /// run: the request rate says nothing about how many different clients send it.
    /// Each nginx replica has its own zone and the estimate does not divide clients
    /// between them (a client reaches any replica over time).
    ///
    /// ## Why it matters
    /// nginx keeps one state per key in the zone's shared memory. When a new client
    /// arrives and the zone is full, nginx removes the least recently used state - that
    /// client's request count is forgotten, so under a flood of addresses the limit
    /// stops limiting - and when even that cannot make room (the oldest state is in use)
    /// it logs `could not allocate node in limit_req zone "general"` and rejects the
    /// request with `limit_req_status` (nginx's default 503 Service Temporarily
    /// Unavailable; 429 in headroom's nginx.conf) although that client sent nothing
    /// excessive. The shared-memory allocator also logs `ngx_slab_alloc() failed: no
    /// memory in limit_req zone "general"`.
    ///
    /// ## Example
    /// ```yaml
    /// load: { rps: 2000, concurrent_users: 20000, service_time: 100ms }
    /// lb:
    ///   kind: nginx
    ///   rate_limits: { general: { rate: 10r/s, zone: 1m } }   # ~8192 states < 20000
    ///   locations: [ { path: /, upstream: backend, rate_limit: general } ]
    /// ```
    ///
    /// ## Fix
    /// Raise the zone's size to at least `clients x 128 bytes`, rounded up to whole
    /// megabytes (`zone: 3m` for 20,000 clients). Shared memory is cheap next to the
    /// cost of dropping legitimate requests.
    ///
    /// ## Defaults
    /// 128 bytes per state on 64-bit platforms (64 on 32-bit); no default zone size.
    ///
    /// ## References
    /// - https://nginx.org/en/docs/http/ngx_http_limit_req_module.html#limit_req_zone
    /// - https://nginx.org/en/docs/http/ngx_http_limit_req_module.html#limit_req_status
    pub struct RateLimitZoneSize { id: "rate-limit-zone-size", severity: Warning, core: false }
}

/// Bytes one `$binary_remote_addr` state takes on a 64-bit platform.
const STATE_BYTES: u64 = 128;
const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// `10MiB`, `512KiB`.
fn size(bytes: u64) -> String {
    for (scale, suffix) in [(MIB, "MiB"), (KIB, "KiB")] {
        if bytes >= scale {
            return format!("{}{suffix}", num(bytes as f64 / scale as f64));
        }
    }
    format!("{bytes}B")
}

impl Check for RateLimitZoneSize {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        let Some(clients) = plan.load.as_ref().and_then(|l| l.concurrent_users.as_ref()) else { return };
        for service in &plan.services {
            let Detail::Nginx(nginx) = &service.detail else { continue };
            for zone in &nginx.rate_limits {
                let used_by: Vec<&str> = nginx
                    .locations
                    .iter()
                    .filter(|l| l.rate_limit.as_deref() == Some(zone.name.as_str()))
                    .map(|l| l.path.as_str())
                    .collect();
                if used_by.is_empty() {
                    continue;
                }
                let states = zone.zone / STATE_BYTES;
                if clients.value <= states {
                    continue;
                }
                let needed = clients.value.saturating_mul(STATE_BYTES);
                let needed_mib = needed.div_ceil(MIB).max(1);
                let zone_path = format!("{}.zone", zone.path);
                let message = format!(
                    "nginx `{}` limit_req zone `{}` (used by {}) holds about {states} client states: zone {} ({zone_path}) / {STATE_BYTES} bytes per state (64-bit, $binary_remote_addr) = {states} < {} distinct clients ({}); when it is full nginx evicts the least recently used state (that client's rate is forgotten, so the limit leaks) and, when even that frees nothing, logs `could not allocate node in limit_req zone \"{}\"` and rejects the request with limit_req_status (503 by default, 429 in headroom's nginx.conf)",
                    service.name,
                    zone.name,
                    used_by.join(", "),
                    size(zone.zone),
                    clients.value,
                    clients.cite(),
                    zone.name,
                );
                out.push(
                    finding::<Self>(zone_path.clone(), message)
                        .number("states", states as f64)
                        .number("clients", clients.value as f64)
                        .number("zone_bytes", zone.zone as f64)
                        .fix(format!(
                            "set {zone_path} to >= {needed_mib}m ({} clients x {STATE_BYTES} bytes = {})",
                            clients.value,
                            size(needed)
                        ))
                        .related(clients.path(), format!("{} clients expected", clients.value)),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze_text;

    fn findings(users: &str, zone: &str) -> Vec<crate::diag::Diagnostic> {
        let load = if users.is_empty() { "{ rps: 100, service_time: 100ms }".to_string() } else { format!("{{ rps: 100, service_time: 100ms, concurrent_users: {users} }}") };
        let yaml = format!(
            "version: 1\nname: t\nload: {load}\nservices:\n  web: {{ kind: gunicorn }}\n  lb:\n    kind: nginx\n    upstreams: {{ backend: {{ to: web, keepalive: 16 }} }}\n    rate_limits: {{ general: {{ rate: 10r/s, zone: {zone} }}, unused: {{ rate: 1r/s, zone: 64k }} }}\n    locations: [ {{ path: /, upstream: backend, rate_limit: general }} ]\n"
        );
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "rate-limit-zone-size")
            .collect()
    }

    #[test]
    fn zone_too_small_for_the_clients() {
        let found = findings("20000", "1m");
        assert_eq!(found.len(), 1, "{found:#?}");
        let m = &found[0].message;
        assert!(m.contains("zone 1MiB (services.lb.rate_limits.general.zone) / 128 bytes per state (64-bit, $binary_remote_addr) = 8192 < 20000 distinct clients (load.concurrent_users)"), "{m}");
        assert!(m.contains("could not allocate node in limit_req zone \"general\""), "{m}");
        let fix = found[0].fix.as_deref().unwrap();
        assert!(fix.contains(">= 3m") && fix.contains("20000 clients x 128 bytes = 2.44MiB"), "{fix}");
    }

    #[test]
    fn skipped_without_concurrent_users() {
        assert!(findings("", "64k").is_empty());
    }

    #[test]
    fn boundary() {
        // 1m = 8192 states exactly; the unused 64k zone is never reported.
        assert!(findings("8192", "1m").is_empty());
        assert_eq!(findings("8193", "1m").len(), 1);
    }
}
