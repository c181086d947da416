//! `headroom scale`: for generated specs and targets, and for every shipped example,
//! the proposal passes `check` at the target, no changed knob can move one unit back
//! toward what was written without a rule failing (local minimality), and a spec that
//! already fits yields no change.

use headroom::load::{self, Loaded};
use headroom::scale::{self, Outcome, Target};
use headroom::source::SourceFile;
use proptest::prelude::*;
use serde_json::Value;

fn load_text(text: &str) -> Loaded {
    load::load_source(SourceFile::new("capacity.yaml", text.to_string())).expect("the spec loads")
}

/// The blocking findings of a spec text as it stands.
fn blocking(text: &str) -> Vec<String> {
    let analysis = headroom::analysis::analyze_text("capacity.yaml", text).expect("the proposal loads");
    analysis.diagnostics.iter().filter(|d| scale::blocks(d)).map(|d| format!("{} at {}: {}", d.rule, d.path, d.message)).collect()
}

/// One unit back toward the written value (or down, for a key that was not written).
fn one_back(old: Option<&Value>, new: &Value) -> Option<Value> {
    if let Some(text) = new.as_str() {
        let mib: u64 = text.strip_suffix('m')?.parse().ok()?;
        return Some(Value::String(format!("{}m", mib.checked_sub(1)?)));
    }
    let n = new.as_u64()?;
    match old.and_then(Value::as_u64) {
        Some(o) if o > n => Some(Value::from(n + 1)),
        _ => n.checked_sub(1).map(Value::from),
    }
}

/// Checks a proposal: it fits, and it is locally minimal.
fn assert_fits_and_minimal(loaded: &Loaded, target: Target, context: &str) {
    let outcome = scale::search(loaded, target).expect("the search runs");
    let proposal = match outcome {
        Outcome::Fits(p) => p,
        // A wall names a finding that still blocks at the target.
        Outcome::Wall(wall) => {
            assert!(scale::blocks(&wall.finding) && !wall.message.is_empty(), "{context}: a wall without a blocking finding");
            return;
        }
    };
    let problems = blocking(&proposal.text);
    assert!(problems.is_empty(), "{context}: the proposal still fails:\n{}\n{}", problems.join("\n"), proposal.text);
    let reloaded = load_text(&proposal.text);
    assert!(scale::same_spec(&reloaded.value, &proposal), "{context}: the text does not hold the proposal");
    // What was checked above is the spec at the target load, not at today's.
    let target_value = scale::with_target(&loaded.value, target).expect("a load");
    let rps = |v: &Value| v.pointer("/load/rps").and_then(Value::as_f64);
    assert_eq!(rps(&reloaded.value), rps(&target_value), "{context}: the proposal is not at the target load");
    for (pointer, old, new) in &proposal.settings {
        if pointer.starts_with("/load/") {
            continue;
        }
        let Some(back) = one_back(old.as_ref(), new) else { continue };
        let mut value = reloaded.value.clone();
        *value.pointer_mut(pointer).expect("the changed setting is in the spec") = back.clone();
        let still_fits = scale::evaluate(&value).is_some_and(|(_, d)| !d.iter().any(scale::blocks));
        assert!(!still_fits, "{context}: {pointer} could go back from {new} to {back} and still fit:\n{}", proposal.text);
    }
}

/// A spec of an app (gthread), optionally behind nginx, through PgBouncer or straight
/// to postgres, with a redis.
#[derive(Debug, Clone)]
struct Shape {
    rps: u64,
    workers: u64,
    threads: u64,
    replicas: u64,
    cpus: u64,
    pool: u64,
    pooler: bool,
    max_connections: u64,
    maxclients: u64,
    nginx_connections: u64,
}

fn spec_text(s: &Shape) -> String {
    let db_use = if s.pooler { "pgbouncer" } else { "db" };
    let mut text = format!(
        "# a generated deployment\nversion: 1\nname: gen\n\nload:\n  rps: {}   # peak\n  service_time: 100ms\n  db_time: 20ms\n\nservices:\n  web:\n    kind: gunicorn\n    worker_class: gthread\n    workers: {}\n    threads: {}\n    replicas: {}\n    resources: {{ cpus: {}, memory: 1GiB }}\n    health: {{ path: /health }}\n    uses:\n      {db_use}: {{ pool: {}, framework: sqlalchemy }}\n      cache: {{ pool: 4 }}\n",
        s.rps, s.workers, s.threads, s.replicas, s.cpus, s.pool
    );
    text.push_str(&format!(
        "\n  lb:\n    kind: nginx\n    worker_processes: 1\n    worker_connections: {}   # per worker\n    worker_rlimit_nofile: {}\n    upstreams: {{ app: {{ to: web, keepalive: 32 }} }}\n    locations: [ {{ path: /, upstream: app }} ]\n",
        s.nginx_connections,
        s.nginx_connections * 2
    ));
    if s.pooler {
        text.push_str("\n  pgbouncer:\n    kind: pgbouncer\n    pool_mode: transaction\n    max_client_conn: 200\n    default_pool_size: 20\n    uses: { db: {} }\n");
    }
    text.push_str(&format!(
        "\n  db:\n    kind: postgres\n    max_connections: {}\n\n  cache:\n    kind: redis\n    maxclients: {}\n    maxmemory: 512mb\n    maxmemory_policy: allkeys-lru\n    resources: {{ memory: 2GiB }}\n",
        s.max_connections, s.maxclients
    ));
    text
}

fn shape() -> impl Strategy<Value = Shape> {
    (10u64..1500, 1u64..6, 1u64..6, 1u64..5, 1u64..4, 1u64..12, any::<bool>(), 20u64..400, 50u64..2000, 64u64..2048).prop_map(
        |(rps, workers, threads, replicas, cpus, pool, pooler, max_connections, maxclients, nginx_connections)| Shape {
            rps,
            workers,
            threads,
            replicas,
            cpus,
            pool,
            pooler,
            max_connections,
            maxclients,
            nginx_connections,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn proposals_fit_and_are_locally_minimal(s in shape(), factor in 1u64..8) {
        let text = spec_text(&s);
        let loaded = load_text(&text);
        assert_fits_and_minimal(&loaded, Target::Factor(factor as f64), &format!("{s:?} x{factor}"));
    }

    #[test]
    fn a_spec_that_fits_is_left_alone(s in shape()) {
        let text = spec_text(&s);
        let loaded = load_text(&text);
        prop_assume!(blocking(&text).is_empty());
        let Outcome::Fits(proposal) = scale::search(&loaded, Target::Rps(s.rps as f64)).expect("the search runs") else {
            panic!("a spec that fits hit a wall")
        };
        prop_assert!(proposal.settings.is_empty(), "changed {:?}", proposal.settings);
    }
}

#[test]
fn every_example_scales_or_names_its_wall() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut names: Vec<_> = std::fs::read_dir(&root).expect("examples").flatten().map(|e| e.path()).filter(|p| p.join("capacity.yaml").exists()).collect();
    names.sort();
    for dir in names {
        let text = std::fs::read_to_string(dir.join("capacity.yaml")).expect("reads");
        let loaded = load_text(&text);
        if loaded.spec.load.is_none() {
            continue;
        }
        for factor in [1.0, 2.0, 4.0] {
            assert_fits_and_minimal(&loaded, Target::Factor(factor), &format!("{} x{factor}", dir.display()));
        }
    }
}

#[test]
fn the_diff_keeps_comments_and_inserts_in_the_files_style() {
    let text = "# deployment\nversion: 1\nname: t\nload:\n  rps: 100   # today\n  service_time: 100ms\nservices:\n  web:\n    kind: gunicorn\n    worker_class: gthread\n    workers: 2   # WEB_CONCURRENCY\n    threads: 2\n    resources: { cpus: 2 }\n    uses: { db: { pool: 2 } }   # DB_POOL\n  db:\n    kind: postgres   # managed\n";
    let loaded = load_text(text);
    let Outcome::Fits(proposal) = scale::search(&loaded, Target::Rps(400.0)).expect("runs") else { panic!("fits") };
    for comment in ["# deployment", "# today", "# WEB_CONCURRENCY", "# DB_POOL", "# managed"] {
        assert!(proposal.text.contains(comment), "lost `{comment}`:\n{}", proposal.text);
    }
    assert!(proposal.text.contains("  rps: 400   # today"), "{}", proposal.text);
    assert!(blocking(&proposal.text).is_empty());
}

#[test]
fn an_autoscaled_service_grows_its_autoscale_max() {
    let text = "version: 1\nname: t\nload:\n  rps: 50\n  service_time: 100ms\nservices:\n  web:\n    kind: gunicorn\n    worker_class: sync\n    workers: 3\n    resources: { cpus: 1 }\n    autoscale: { min: 2, max: 4 }   # HPA\n";
    let loaded = load_text(text);
    let Outcome::Fits(proposal) = scale::search(&loaded, Target::Rps(400.0)).expect("runs") else { panic!("fits") };
    // 400 rps x 0.1 s / 0.75 = 53.3 slots of 3 per replica: 18 replicas at most.
    let changed: Vec<&str> = proposal.settings.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(changed, ["/load/rps", "/services/web/autoscale/max"], "{}", proposal.text);
    assert!(proposal.text.contains("autoscale: { min: 2, max: 18 }   # HPA"), "{}", proposal.text);
    assert!(blocking(&proposal.text).is_empty());
}

#[test]
fn users_scale_the_rps_in_proportion() {
    let text = "version: 1\nname: t\nload:\n  rps: 80\n  concurrent_users: 200\n  service_time: 100ms\nservices:\n  web:\n    kind: gunicorn\n    worker_class: gthread\n    workers: 3\n    threads: 4\n    resources: { cpus: 1 }\n";
    let value = scale::with_target(&load_text(text).value, Target::Users(1000)).expect("a load");
    assert_eq!(value.pointer("/load/rps").and_then(Value::as_f64), Some(400.0));
    assert_eq!(value.pointer("/load/concurrent_users").and_then(Value::as_u64), Some(1000));
}
