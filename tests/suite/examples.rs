//! Snapshots of `check --format json` and `plan --format json` for every example, a
//! few human renderings, and the exact findings each seed scenario must produce.

use crate::fs_support::examples;
use std::path::Path;

use headroom::analysis::analyze_file;
use headroom::report::capacity::CapacityReport;
use headroom::report::{self, Format, ReportInput};

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots"));
    s.set_prepend_module_to_snapshot(false);
    s
}

#[test]
fn check_and_plan_json_for_every_example() {
    for name in examples() {
        let path = format!("examples/{name}/capacity.yaml");
        let analysis = analyze_file(Path::new(&path)).unwrap_or_else(|f| panic!("{path}: {:#?}", f.diagnostics));
        let input = ReportInput { sources: vec![&analysis.loaded.source], subject: path.clone(), diagnostics: &analysis.diagnostics, files: &[] };
        settings().bind(|| {
            insta::assert_snapshot!(format!("check-{name}"), report::render(Format::Json, &input, false));
            insta::assert_snapshot!(format!("plan-{name}"), CapacityReport::of(&analysis.plan).to_json());
        });
    }
}

#[test]
fn human_renderings() {
    for name in ["django-compose", "sfpermits-railway", "rails-kamal", "voiceassist"] {
        let path = format!("examples/{name}/capacity.yaml");
        let analysis = analyze_file(Path::new(&path)).unwrap();
        let input = ReportInput { sources: vec![&analysis.loaded.source], subject: path.clone(), diagnostics: &analysis.diagnostics, files: &[] };
        settings().bind(|| {
            insta::assert_snapshot!(format!("check-human-{name}"), report::render(Format::Human, &input, false));
            insta::assert_snapshot!(format!("plan-human-{name}"), CapacityReport::of(&analysis.plan).to_text(&analysis.diagnostics));
        });
    }
}

fn rules_of(name: &str) -> Vec<String> {
    let analysis = analyze_file(Path::new(&format!("examples/{name}/capacity.yaml"))).unwrap();
    let mut rules: Vec<String> = analysis.diagnostics.iter().map(|d| d.rule.clone()).collect();
    rules.sort();
    rules.dedup();
    rules
}

/// What a scaling engineer reading each guide would flag; the examples keep the
/// guides' numbers so the tool must find these.
#[test]
fn each_seed_scenario_reports_what_its_guide_gets_wrong() {
    let expect = |name: &str, must: &[&str], must_not: &[&str]| {
        let found = rules_of(name);
        for rule in must {
            assert!(found.iter().any(|r| r == rule), "{name}: expected {rule}, found {found:?}");
        }
        for rule in must_not {
            assert!(!found.iter().any(|r| r == rule), "{name}: unexpected {rule}, found {found:?}");
        }
    };
    // 20 connections for 100 green threads per worker: the guide's own bottleneck.
    expect("sfpermits-railway", &["app-pool-below-concurrency"], &["postgres-connections-exhausted"]);
    // Tier 1: DB_POOL_MAX 50 x 4 workers = 200 > 97 usable.
    expect("sfpermits-railway-tier1", &["postgres-connections-exhausted", "app-pool-below-concurrency"], &[]);
    // 60 Puma threads cannot carry 1,200 rps at 100ms; prepared statements through 1.22 in transaction mode.
    expect("rails-kamal", &["capacity-below-load", "pgbouncer-prepared-statements"], &["pgbouncer-client-limit"]);
    // 12,000 redis clients > 10,000; max_conns far above slots; maxmemory equal to the
    // container limit. PgBouncer opens 1 x 1 x (50 + 10) = 60 server connections, so its
    // max_db_connections 100 never binds and postgres fits. gunicorn's `--timeout 600`
    // on gthread workers is a heartbeat, not a request timeout: no timeout-order.
    expect(
        "django-compose",
        &["redis-clients-exhausted", "upstream-max-conns-over-slots", "redis-maxmemory-headroom"],
        &["pgbouncer-client-limit", "capacity-below-load", "postgres-connections-exhausted", "timeout-order"],
    );
    // 75% maxmemory on a replicated redis; sentinel topology itself is sound.
    // The runbook's Qdrant cluster (3 nodes, 3 shards x 2 replicas, 2.86GiB per 8G node) is sound.
    expect("voiceassist", &["redis-maxmemory-headroom"], &["redis-sentinel-quorum", "postgres-connections-exhausted", "qdrant-memory", "qdrant-replication"]);
    // 10 x 4 x (20 + 40) = 2,400 connections against 97.
    expect("rag-service", &["postgres-connections-exhausted"], &[]);
    // The runbook's autoscaler on Kubernetes: 10 pods x 9 workers x 30 = 2,700 clients
    // against max_client_conn 1000. Fixed: 900 at max + 270 in a rollout <= 1200.
    expect("voiceassist-kubernetes", &["pgbouncer-client-limit"], &[]);
    expect(
        "voiceassist-kubernetes-fixed",
        &[],
        &["pgbouncer-client-limit", "deploy-overlap-exhausts-postgres", "redis-clients-exhausted", "postgres-connections-exhausted", "app-pool-below-concurrency"],
    );
}
