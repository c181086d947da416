//! The guides' own scale-ups as `headroom scale` runs (examples/*/README.md tells the
//! story of each): a snapshot of what `scale` prints, and for every proposal the
//! written spec passes `check` at the target (no error, no capacity or budget warning).

use std::path::Path;
use std::process::Command;

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots"));
    s.set_prepend_module_to_snapshot(false);
    s
}

/// Runs `scale` on a copy of the spec (with --write) and returns the exit code, what
/// it printed (stdout, then stderr) with the copy's path shown as the example's, and
/// the copy's text afterwards.
fn scale(spec: &str, target: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let copy = dir.path().join(Path::new(spec).file_name().expect("a file name"));
    std::fs::copy(spec, &copy).expect("copies");
    let out = Command::new(env!("CARGO_BIN_EXE_headroom")).arg("scale").arg(&copy).args(target).arg("--write").output().expect("runs");
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)).replace(&copy.display().to_string(), spec);
    (out.status.code().unwrap_or(-1), printed, std::fs::read_to_string(&copy).expect("reads"))
}

fn blocking_findings(text: &str) -> Vec<String> {
    let analysis = headroom::analysis::analyze_text("capacity.yaml", text).expect("the written spec loads");
    analysis.diagnostics.iter().filter(|d| headroom::scale::blocks(d)).map(|d| format!("{} at {}", d.rule, d.path)).collect()
}

/// (snapshot, spec, target, fits)
const RUNS: &[(&str, &str, &[&str], bool)] = &[
    // SF Permits: tier 1 as the guide writes it (4 workers x DB_POOL_MAX 50 straight to
    // a stock PostgreSQL) at its own tier target, today's spec too: no pool that covers
    // 100 green threads fits the database, but the load needs fewer of them, so the
    // green threads come down to a pool that does.
    ("seed-sfpermits-tier1-200-users", "examples/sfpermits-railway-tier1/capacity.yaml", &["--users", "200"], true),
    ("seed-sfpermits-today-200-users", "examples/sfpermits-railway/capacity.yaml", &["--users", "200"], true),
    // Tier 2 (PgBouncer, 5 workers) at today's load, the tier-2 and tier-3 targets.
    ("seed-sfpermits-tier2-200-users", "examples/sfpermits-railway/tier2.yaml", &["--users", "200"], true),
    ("seed-sfpermits-tier2-1000-users", "examples/sfpermits-railway/tier2.yaml", &["--users", "1000"], true),
    ("seed-sfpermits-tier2-5000-users", "examples/sfpermits-railway/tier2.yaml", &["--users", "5000"], false),
    // The Django stack before the guide's changes, at 500 and at 1,000 rps.
    ("seed-django-today-500-rps", "examples/django-compose/today.yaml", &["--rps", "500"], true),
    ("seed-django-today-1000-rps", "examples/django-compose/today.yaml", &["--rps", "1000"], true),
    // The guide's own answer at its target: what it still lacks.
    ("seed-django-guide-1000-rps", "examples/django-compose/capacity.yaml", &["--rps", "1000"], true),
];

#[test]
fn each_guide_scale_up_as_scale_proposes_it() {
    settings().bind(|| {
        for (name, spec, target, fits) in RUNS {
            let (code, printed, written) = scale(spec, target);
            insta::assert_snapshot!(*name, printed);
            if *fits {
                assert_eq!(code, 0, "{name}: {printed}");
                let problems = blocking_findings(&written);
                assert!(problems.is_empty(), "{name}: the written spec still fails at the target: {problems:?}\n{written}");
            } else {
                assert_eq!(code, 1, "{name}: {printed}");
                assert!(printed.contains("= wall:"), "{name}: {printed}");
                assert_eq!(written, std::fs::read_to_string(spec).expect("reads"), "{name}: a wall wrote to the spec");
            }
        }
    });
}

#[test]
fn the_guides_database_step_is_refused_and_the_pooled_one_sized() {
    // 4 workers x DB_POOL_MAX 50 = 200 connections at a PostgreSQL that accepts 97, and
    // 50 connections still short of 100 green threads: a pool that covers them would
    // ask for 400, past PGTune's 200 that scale gives a database with no memory given.
    // 200 users (80 rps x 0.5s / 0.75 = 54 requests in flight) need far fewer green
    // threads: they come down to a pool the database holds as it stands.
    let (code, printed, written) = scale("examples/sfpermits-railway-tier1/capacity.yaml", &["--users", "200"]);
    assert_eq!(code, 0, "{printed}");
    let value: serde_json::Value = serde_saphyr::from_str(&written).expect("parses");
    let number = |p: &str| value.pointer(p).and_then(serde_json::Value::as_u64);
    let (greenlets, pool) = (number("/services/web/worker_connections").expect("worker_connections"), number("/services/web/uses/pgvector-db/pool").expect("a pool"));
    assert!(greenlets <= pool && 4 * pool <= 97 && 4 * greenlets >= 54, "worker_connections {greenlets}, pool {pool}\n{written}");
    assert_eq!(number("/services/pgvector-db/max_connections"), None, "{written}");
    // Behind PgBouncer, 1,000 users need 134 server connections: max_connections and
    // the pool size rise together.
    let (_, _, written) = scale("examples/sfpermits-railway/tier2.yaml", &["--users", "1000"]);
    let value: serde_json::Value = serde_saphyr::from_str(&written).expect("parses");
    let pool = value.pointer("/services/pgbouncer/default_pool_size").and_then(serde_json::Value::as_u64).expect("a pool size");
    let max = value.pointer("/services/pgvector-db/max_connections").and_then(serde_json::Value::as_u64).expect("max_connections");
    assert!(pool >= 134 && max >= pool + 3 && max <= 200, "pool {pool}, max_connections {max}\n{written}");
}
