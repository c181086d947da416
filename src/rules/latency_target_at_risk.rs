//! Rule `latency-target-at-risk`.

use super::{Check, finding, num, plural, process_noun_one};
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// The queueing estimate of p95 latency at the planned load exceeds load.p95_target.
    ///
    /// ## What it checks
    /// The app servers are modelled as an M/M/c queue (Poisson arrivals, exponential
    /// service times): c = every app server's `replicas x processes x slots per
    /// process`, offered load a = `load.rps x load.service_time`. The probability that
    /// a request waits for a slot is Erlang C, `C(c, a)`, computed with the Erlang B
    /// recurrence `B(k) = a B(k-1) / (k + a B(k-1))` and
    /// `C = B / (1 - a/c x (1 - B))`, which stays exact for any number of slots. The
    /// p-quantile of the wait is `ln(C / (1 - p)) / (c / service_time - rps)` (0 when
    /// `C <= 1 - p`), and the estimate `p95 wait + service_time` must be at most
    /// `load.p95_target`. With `a >= c` the queue never drains and the estimate is
    /// unbounded. Skipped without `load.p95_target` or app servers.
    ///
    /// ## Why it matters
    /// Average utilization can look fine while the tail does not: queueing delay rises
    /// steeply as utilization nears 100%, and the requests that wait sit in the app
    /// server's listen backlog where neither nginx nor the app's own timing sees them.
    /// The p95 goal is missed at the planned load before anything errors, and the same
    /// queue turns into 504s from the proxy once waits reach its read timeout.
    ///
    /// ## Example
    /// ```yaml
    /// load: { rps: 95, service_time: 100ms, p95_target: 150ms }
    /// services:
    ///   web: { kind: gunicorn, workers: 10 }   # a = 9.5 on 10 slots: p95 ~ 660ms
    /// ```
    ///
    /// ## Fix
    /// Add slots (replicas, processes or threads) until the estimate meets the target;
    /// the message names the smallest slot count that does. When `service_time` alone
    /// exceeds the target no slot count helps: make requests shorter.
    ///
    /// ## Defaults
    /// p = 0.95. Exponential service times are an assumption: real service times with
    /// less variance queue somewhat less, heavy tails more.
    ///
    /// ## References
    /// - https://en.wikipedia.org/wiki/Erlang_(unit)#Erlang_C_formula
    /// - https://en.wikipedia.org/wiki/M/M/c_queue
    /// - https://docs.gunicorn.org/en/stable/design.html#how-many-workers
    pub struct LatencyTargetAtRisk { id: "latency-target-at-risk", severity: Warning, core: false }
}

const P: f64 = 0.95;

/// Erlang C: probability an arrival waits, with `servers` servers and offered load `a`
/// (in erlangs). 1 when `a >= servers`.
pub fn erlang_c(servers: u64, a: f64) -> f64 {
    if servers == 0 || a >= servers as f64 {
        return 1.0;
    }
    if a <= 0.0 {
        return 0.0;
    }
    let mut b = 1.0f64;
    for k in 1..=servers {
        b = a * b / (k as f64 + a * b);
        // Erlang B only falls with k: once negligible, so is C.
        if b < 1e-300 {
            return 0.0;
        }
    }
    let rho = a / servers as f64;
    b / (1.0 - rho * (1.0 - b))
}

/// The p-quantile of the M/M/c waiting time, in seconds.
pub fn wait_quantile(servers: u64, rps: f64, service_time: f64, p: f64) -> f64 {
    let a = rps * service_time;
    let c = erlang_c(servers, a);
    if c >= 1.0 && a >= servers as f64 {
        return f64::INFINITY;
    }
    if c <= 1.0 - p {
        return 0.0;
    }
    (c / (1.0 - p)).ln() / (servers as f64 / service_time - rps)
}

/// The smallest number of servers >= `from` whose p95 wait + service_time meets
/// `target`, walking the Erlang B recurrence once.
fn servers_needed(from: u64, rps: f64, service_time: f64, target: f64) -> Option<u64> {
    if service_time > target {
        return None;
    }
    let a = rps * service_time;
    let mut b = 1.0f64;
    let mut k: u64 = 0;
    let limit = from.saturating_add(10_000_000);
    while k < limit {
        k += 1;
        b = if b < 1e-300 { 0.0 } else { a * b / (k as f64 + a * b) };
        if k < from || (k as f64) <= a {
            continue;
        }
        let c = b / (1.0 - a / k as f64 * (1.0 - b));
        let wait = if c <= 1.0 - P { 0.0 } else { (c / (1.0 - P)).ln() / (k as f64 / service_time - rps) };
        if wait + service_time <= target * (1.0 + 1e-12) {
            return Some(k);
        }
    }
    None
}

fn ms(seconds: f64) -> String {
    format!("{}ms", num(seconds * 1000.0))
}

impl Check for LatencyTargetAtRisk {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        let (Some(load), Some(capacity)) = (&plan.load, &plan.capacity) else { return };
        let Some(target) = &load.p95_target else { return };
        let rps = load.rps.value;
        let service_time = load.service_time.value;
        let slots = capacity.app_slots;
        if rps <= 0.0 || service_time <= 0.0 || slots == 0 {
            return;
        }
        let a = rps * service_time;
        let wait = wait_quantile(slots, rps, service_time, P);
        let total = wait + service_time;
        if total <= target.value * (1.0 + 1e-12) {
            return;
        }
        let slot_terms: Vec<String> = plan
            .apps()
            .map(|s| {
                format!(
                    "{} {} x {} x {}",
                    s.name,
                    plural(s.replicas.value, "replica"),
                    plural(s.processes.value, process_noun_one(s.kind)),
                    plural(s.slots_per_process.value, "slot"),
                )
            })
            .collect();
        let offered = format!(
            "offered load a = rps {} ({}) x service_time {} ({}) = {} on c = {slots} app slots ({})",
            num(rps),
            load.rps.cite(),
            ms(service_time),
            load.service_time.cite(),
            num(a),
            slot_terms.join(" + "),
        );
        let estimate = if wait.is_infinite() {
            format!(
                "{offered}: utilization {}% >= 100%, so the queue grows without bound and p95 latency is unbounded > p95_target {} ({})",
                num(a * 100.0 / slots as f64),
                ms(target.value),
                target.cite(),
            )
        } else {
            let c = erlang_c(slots, a);
            format!(
                "{offered}, utilization {}%; Erlang C P(wait) = C({slots}, {}) = {}; p95 wait = ln({} / 0.05) / ({slots} / {}s - {} rps) = {}; + service_time {} = {} > p95_target {} ({})",
                num(a * 100.0 / slots as f64),
                num(a),
                format_args!("{c:.3}"),
                format_args!("{c:.3}"),
                num(service_time),
                num(rps),
                ms(wait),
                ms(service_time),
                ms(total),
                ms(target.value),
                target.cite(),
            )
        };
        let message = if wait.is_infinite() {
            format!(
                "p95 latency at the planned load is unbounded against a target of {}: {estimate}; requests pile up in the app servers' listen backlog until the proxy answers 504 after its read timeout or the backlog overflows and new connections are refused",
                ms(target.value),
            )
        } else {
            format!(
                "p95 latency at the planned load is estimated at {} against a target of {}: {estimate}; more than 1 request in 20 waits in the app servers' listen backlog before a slot frees, where neither nginx nor the app's own timing sees it, and the wait grows steeply as load nears capacity",
                ms(total),
                ms(target.value),
            )
        };
        let fix = match servers_needed(slots, rps, service_time, target.value) {
            Some(needed) => {
                let p95 = wait_quantile(needed, rps, service_time, P) + service_time;
                format!(
                    "raise the app slots from {slots} to >= {needed} (+{} via replicas, processes or threads), which gives an estimated p95 of {}",
                    needed - slots,
                    ms(p95)
                )
            }
            None => format!(
                "service_time {} alone exceeds p95_target {}: no slot count meets it; make requests shorter or relax load.p95_target",
                ms(service_time),
                ms(target.value)
            ),
        };
        let mut d = finding::<Self>(target.path(), message)
            .number("offered_load", a)
            .number("slots", slots as f64)
            .number("p95_target_seconds", target.value)
            .fix(fix);
        if wait.is_finite() {
            d = d.number("p95_estimate_seconds", total).number("p_wait", erlang_c(slots, a));
        }
        for app in plan.apps() {
            d = d.related(app.slots_per_process.path(), format!("{} contributes {} slots", app.name, app.slots));
        }
        out.push(d);
    }
}

#[cfg(test)]
mod tests {
    use super::{erlang_c, servers_needed, wait_quantile};
    use crate::analysis::analyze_text;

    fn findings(load: &str, web: &str) -> Vec<crate::diag::Diagnostic> {
        let yaml = format!("version: 1\nname: t\nload: {{ {load} }}\nservices:\n  web: {{ kind: gunicorn, {web} }}\n");
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "latency-target-at-risk")
            .collect()
    }

    #[test]
    fn erlang_c_known_values() {
        // Textbook values: C(2, 1) = 1/3; C(10, 8) ~ 0.409.
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        assert!((erlang_c(10, 8.0) - 0.4092).abs() < 1e-3);
        assert_eq!(erlang_c(1, 0.5), 0.5);
        assert_eq!(erlang_c(5, 5.0), 1.0);
    }

    #[test]
    fn erlang_c_is_stable_for_huge_server_counts() {
        // C(100000, 99000) = 8.219e-4 (the recurrence evaluated independently).
        let c = erlang_c(100_000, 99_000.0);
        assert!((c - 8.219e-4).abs() < 1e-6, "{c}");
        assert!(erlang_c(100_000, 90_000.0) < 1e-200);
        let c = erlang_c(100_000, 99_900.0);
        assert!(c.is_finite() && c > 0.0 && c < 1.0, "{c}");
    }

    #[test]
    fn near_saturation_misses_the_target() {
        let found = findings("rps: 95, service_time: 100ms, p95_target: 150ms", "workers: 10");
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("offered load a = rps 95 (load.rps) x service_time 100ms (load.service_time) = 9.5 on c = 10 app slots (web 1 replica x 10 workers x 1 slot)"), "{m}");
        assert!(m.contains("> p95_target 150ms (load.p95_target)"), "{m}");
        let expected = wait_quantile(10, 95.0, 0.1, 0.95) + 0.1;
        assert!((expected - 0.66).abs() < 0.02, "{expected}");
        assert!(found[0].fix.as_deref().unwrap().contains(">= 13"), "{:?}", found[0].fix);
    }

    #[test]
    fn overload_is_unbounded() {
        let found = findings("rps: 200, service_time: 100ms, p95_target: 1s", "workers: 10");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("is unbounded against a target of 1000ms") && found[0].message.contains("utilization 200%"), "{}", found[0].message);
    }

    #[test]
    fn skipped_without_target() {
        assert!(findings("rps: 95, service_time: 100ms", "workers: 10").is_empty());
    }

    #[test]
    fn boundary() {
        // With few arrivals waiting (C <= 5%) the p95 is the service time itself:
        // a target equal to it passes, a millisecond less cannot be met at any size.
        assert!(erlang_c(20, 5.0) <= 0.05);
        assert!(findings("rps: 50, service_time: 100ms, p95_target: 100ms", "workers: 20").is_empty());
        let found = findings("rps: 50, service_time: 100ms, p95_target: 99ms", "workers: 20");
        assert_eq!(found.len(), 1);
        assert!(found[0].fix.as_deref().unwrap().contains("no slot count"));
        // The slot count the fix names is exactly the first that meets the target.
        let needed = servers_needed(10, 95.0, 0.1, 0.15).unwrap();
        assert!(wait_quantile(needed, 95.0, 0.1, 0.95) + 0.1 <= 0.15);
        assert!(wait_quantile(needed - 1, 95.0, 0.1, 0.95) + 0.1 > 0.15);
    }
}
