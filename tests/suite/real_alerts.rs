//! The rendered Prometheus alerting rules, proven by promtool: `promtool check rules` on
//! the rules of every example (and of a fixture with every kind), and `promtool test
//! rules` unit tests in which each alert fires on synthetic series just past the plan's
//! threshold and stays silent just below it. The series and thresholds are computed
//! here from the plan, not copied from the rendered file, so a wrong number in the
//! rules fails the test. promtool comes from Debian's `prometheus` package
//! (`.ci/install-validators`); a missing promtool fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use headroom::analysis::{Analysis, analyze_file};
use headroom::plan::{Detail, Plan};
use headroom::spec::AlertsDeploy;
use headroom::targets::alerts::{self, Alerts, Rule};
use headroom::targets::{Context, Target};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn specs() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("capacity.yaml"))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out.push(root().join("tests/fixtures/alerts/capacity.yaml"));
    out
}

/// The rules file of a spec, with `deploy.alerts` switched on when the spec lacks it.
fn render(analysis: &Analysis) -> String {
    let mut spec = analysis.loaded.spec.clone();
    let deploy = spec.deploy.get_or_insert_with(Default::default);
    deploy.alerts.get_or_insert_with(AlertsDeploy::default);
    let ctx = Context { spec: &spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
    let artifacts = Alerts.render(&ctx).expect("alerts render");
    assert_eq!(artifacts.len(), 1);
    artifacts[0].text.clone()
}

fn promtool(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool is not installed: run .ci/install-validators (Debian package `prometheus`)");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Go's `%.4g` for the values these tests produce (what `humanize*` filters print).
fn g4(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let digits = value.abs().log10().floor() as i32 + 1;
    let decimals = (4 - digits).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text }
}

fn humanize1024(value: f64) -> String {
    let mut v = value;
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti"] {
        if v.abs() < 1024.0 {
            break;
        }
        v /= 1024.0;
        prefix = p;
    }
    format!("{}{prefix}", g4(v))
}

/// The annotation text Prometheus renders for a value and an instance.
fn expand(template: &str, value: f64, instance: &str) -> String {
    template
        .replace("{{ $labels.instance }}", instance)
        .replace("{{ $value | printf \"%.0f\" }}", &format!("{value:.0}"))
        .replace("{{ $value | humanizePercentage }}", &format!("{}%", g4(value * 100.0)))
        .replace("{{ $value | humanize1024 }}", &humanize1024(value))
}

/// One synthetic situation for an alert: series, and the value the expression then has.
struct Case {
    series: Vec<(String, String)>,
    value: f64,
}

const INSTANCE: &str = "127.0.0.1:9100";

fn gauge(metric: &str, labels: &str, value: f64) -> (String, String) {
    (format!("{metric}{{instance=\"{INSTANCE}\"{labels}}}"), format!("{value}x20"))
}

/// A counter growing at `per_second` for 20 minutes.
fn counter(metric: &str, per_second: f64) -> (String, String) {
    (format!("{metric}{{instance=\"{INSTANCE}\"}}"), format!("0+{}x20", per_second * 60.0))
}

/// (firing, quiet) situations for a rule, from the plan's numbers.
fn cases(plan: &Plan, rule: &Rule, threshold: f64) -> (Case, Case) {
    let service = plan.service(&rule.service).expect("the rule names a service of the plan");
    let above = |limit: f64| limit.floor() + 1.0;
    let below = |limit: f64| limit.floor();
    let split = |metric_a: &str, la: &str, metric_b: &str, lb: &str, total: f64| Case {
        series: vec![gauge(metric_a, la, total - 1.0), gauge(metric_b, lb, 1.0)],
        value: total,
    };
    let one = |metric: &str, value: f64| Case { series: vec![gauge(metric, "", value)], value };
    match (rule.alert, &service.detail) {
        ("HeadroomPostgresConnectionsHigh", Detail::Postgres(pg)) => {
            let limit = threshold * pg.usable_connections as f64;
            let pair = |v| split("pg_stat_activity_count", ",datname=\"app\",state=\"active\"", "pg_stat_activity_count", ",datname=\"app\",state=\"idle\"", v);
            (pair(above(limit)), pair(below(limit)))
        }
        ("HeadroomPostgresConnectionsExhausted", Detail::Postgres(pg)) => {
            let usable = pg.usable_connections as f64;
            let pair = |v| split("pg_stat_activity_count", ",datname=\"app\",state=\"active\"", "pg_stat_activity_count", ",datname=\"app\",state=\"idle\"", v);
            (pair(usable), pair(usable - 1.0))
        }
        ("HeadroomPostgresMaxConnectionsBelowPlan", Detail::Postgres(pg)) => {
            let planned = pg.max_connections.value as f64;
            (one("pg_settings_max_connections", planned - 1.0), one("pg_settings_max_connections", planned))
        }
        ("HeadroomPgbouncerClientsHigh", Detail::Pgbouncer(pgb)) => {
            let limit = threshold * pgb.max_client_conn.value as f64;
            let pair = |v| split("pgbouncer_pools_client_active_connections", ",database=\"app\",user=\"app\"", "pgbouncer_pools_client_waiting_connections", ",database=\"app\",user=\"app\"", v);
            (pair(above(limit)), pair(below(limit)))
        }
        ("HeadroomPgbouncerClientsWaiting", Detail::Pgbouncer(_)) => {
            (one("pgbouncer_pools_client_waiting_connections", 2.0), one("pgbouncer_pools_client_waiting_connections", 0.0))
        }
        ("HeadroomPgbouncerWaitNearTimeout", Detail::Pgbouncer(pgb)) => {
            let limit = pgb.query_wait_timeout.value as f64 / 2.0;
            (one("pgbouncer_pools_client_maxwait_seconds", above(limit)), one("pgbouncer_pools_client_maxwait_seconds", below(limit)))
        }
        ("HeadroomRedisClientsHigh", Detail::Redis(r)) => {
            let limit = threshold * r.effective_maxclients.value as f64;
            (one("redis_connected_clients", above(limit)), one("redis_connected_clients", below(limit)))
        }
        ("HeadroomRedisRejectedConnections", Detail::Redis(_)) => (
            // A counter that rises: some connection was refused within the window.
            Case { series: vec![counter("redis_rejected_connections_total", 0.05)], value: 15.0 },
            Case { series: vec![counter("redis_rejected_connections_total", 0.0)], value: 0.0 },
        ),
        ("HeadroomRedisMemoryHigh", Detail::Redis(r)) => {
            let limit = (threshold * r.maxmemory.as_ref().expect("rule needs maxmemory").value as f64).floor();
            (one("redis_memory_used_bytes", limit + 1.0), one("redis_memory_used_bytes", limit))
        }
        ("HeadroomNginxConnectionsHigh", Detail::Nginx(n)) => {
            let limit = threshold * (n.worker_processes.value * n.worker_connections.value / 2) as f64;
            (one("nginx_connections_active", above(limit)), one("nginx_connections_active", below(limit)))
        }
        ("HeadroomAppUtilizationAbovePlan", Detail::Nginx(_)) => {
            let capacity = plan.capacity.as_ref().expect("capacity");
            // Requests at 1.2x and 0.8x the planned rate; utilization = rate / 100% capacity.
            let fire = capacity.planned_rps * 1.2;
            let quiet = capacity.planned_rps * 0.8;
            (
                Case { series: vec![counter("nginx_http_requests_total", fire)], value: fire / capacity.capacity_rps },
                Case { series: vec![counter("nginx_http_requests_total", quiet)], value: quiet / capacity.capacity_rps },
            )
        }
        ("HeadroomThroughputAtBottleneck", Detail::Nginx(_)) => {
            let limit = plan.capacity.as_ref().and_then(|c| c.bottleneck.as_ref()).expect("bottleneck").capacity_rps;
            (
                Case { series: vec![counter("nginx_http_requests_total", limit * 1.1)], value: limit * 1.1 },
                Case { series: vec![counter("nginx_http_requests_total", limit * 0.9)], value: limit * 0.9 },
            )
        }
        (other, _) => panic!("no synthetic series for alert {other} of `{}`: add a case", rule.service),
    }
}

fn yaml_str(text: &str) -> String {
    serde_json::to_string(text).unwrap()
}

/// One promtool unit test: the series of a case and what the alert must (not) report.
fn test_block(rule: &Rule, case: &Case, fires: bool) -> String {
    let mut out = String::from("  - interval: 1m\n    input_series:\n");
    for (series, values) in &case.series {
        out.push_str(&format!("      - series: {}\n        values: {}\n", yaml_str(series), yaml_str(values)));
    }
    out.push_str(&format!("    alert_rule_test:\n      - eval_time: 15m\n        alertname: {}\n", rule.alert));
    if fires {
        out.push_str("        exp_alerts:\n          - exp_labels:\n");
        out.push_str(&format!("              severity: {}\n              service: {}\n", rule.severity, yaml_str(&rule.service)));
        if !rule.expr.starts_with("sum(") {
            out.push_str(&format!("              instance: {}\n", yaml_str(INSTANCE)));
        }
        let instance = if rule.expr.starts_with("sum(") { "<no value>" } else { INSTANCE };
        out.push_str("            exp_annotations:\n");
        for (key, template) in [("summary", &rule.summary), ("description", &rule.description), ("plan", &rule.plan)] {
            out.push_str(&format!("              {key}: {}\n", yaml_str(&expand(template, case.value, instance))));
        }
    } else {
        out.push_str("        exp_alerts: []\n");
    }
    out
}

#[test]
fn rendered_alert_rules_pass_promtool_check_and_fire_at_the_plans_thresholds() {
    let mut failures = Vec::new();
    let mut alerts_tested = 0;
    let mut kinds = std::collections::BTreeSet::new();
    for spec_path in specs() {
        let name = spec_path.parent().and_then(|p| p.file_name()).unwrap().to_string_lossy().to_string();
        let analysis = analyze_file(&spec_path).unwrap_or_else(|e| panic!("{} does not load: {e:?}", spec_path.display()));
        let text = render(&analysis);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alerts.yml"), &text).unwrap();
        let (ok, output) = promtool(&["check", "rules", "alerts.yml"], dir.path());
        if !ok {
            failures.push(format!("[{name}] promtool check rules failed:\n{output}\n{text}"));
            continue;
        }
        let threshold = alerts::DEFAULT_THRESHOLD;
        let rules = alerts::rules(&analysis.plan, threshold, alerts::DEFAULT_FOR_SECS * 1000);
        let mut tests = String::from("rule_files: [alerts.yml]\nevaluation_interval: 1m\ntests:\n");
        for rule in &rules {
            assert!(text.contains(&format!("- alert: {}\n        expr: {}\n", rule.alert, yaml_str(&rule.expr))), "[{name}] {} not rendered as computed", rule.alert);
            let (firing, quiet) = cases(&analysis.plan, rule, threshold);
            tests.push_str(&test_block(rule, &firing, true));
            tests.push_str(&test_block(rule, &quiet, false));
            kinds.insert(rule.alert);
            alerts_tested += 1;
        }
        if rules.is_empty() {
            continue;
        }
        std::fs::write(dir.path().join("tests.yml"), &tests).unwrap();
        let (ok, output) = promtool(&["test", "rules", "tests.yml"], dir.path());
        if !ok {
            failures.push(format!("[{name}] promtool test rules failed:\n{output}\n--- alerts.yml\n{text}\n--- tests.yml\n{tests}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The fixture covers every alert the target can write.
    for alert in [
        "HeadroomPostgresConnectionsHigh",
        "HeadroomPostgresConnectionsExhausted",
        "HeadroomPostgresMaxConnectionsBelowPlan",
        "HeadroomPgbouncerClientsHigh",
        "HeadroomPgbouncerClientsWaiting",
        "HeadroomPgbouncerWaitNearTimeout",
        "HeadroomRedisClientsHigh",
        "HeadroomRedisRejectedConnections",
        "HeadroomRedisMemoryHigh",
        "HeadroomNginxConnectionsHigh",
        "HeadroomAppUtilizationAbovePlan",
        "HeadroomThroughputAtBottleneck",
    ] {
        assert!(kinds.contains(alert), "no spec exercised {alert}");
    }
    assert!(alerts_tested > 20, "only {alerts_tested} alerts tested");
}

#[test]
fn a_wrong_threshold_fails_the_unit_test() {
    // The proof can fail: rules rendered at 90% do not fire where the 80% series do.
    let analysis = analyze_file(&root().join("tests/fixtures/alerts/capacity.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rules = alerts::rules(&analysis.plan, 0.9, alerts::DEFAULT_FOR_SECS * 1000);
    let mut spec = analysis.loaded.spec.clone();
    spec.deploy.get_or_insert_with(Default::default).alerts = Some(AlertsDeploy { threshold: Some(0.9), for_: None });
    let ctx = Context { spec: &spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
    std::fs::write(dir.path().join("alerts.yml"), &Alerts.render(&ctx).unwrap()[0].text).unwrap();
    let rule = rules.iter().find(|r| r.alert == "HeadroomPostgresConnectionsHigh").unwrap();
    let (firing, _) = cases(&analysis.plan, rule, alerts::DEFAULT_THRESHOLD);
    let tests = format!("rule_files: [alerts.yml]\nevaluation_interval: 1m\ntests:\n{}", test_block(rule, &firing, true));
    std::fs::write(dir.path().join("tests.yml"), tests).unwrap();
    let (ok, output) = promtool(&["test", "rules", "tests.yml"], dir.path());
    assert!(!ok, "promtool passed a test the rules should fail:\n{output}");
}
