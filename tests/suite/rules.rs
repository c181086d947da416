//! Every registered rule has a failing and a passing fixture, the failing one
//! triggers exactly that rule, the passing one does not, and the registry holds every
//! core rule ID of the catalog.

use std::path::{Path, PathBuf};

use headroom::analysis::analyze_file;
use headroom::rules::REGISTRY;

fn fixture(id: &str, which: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules").join(id).join(format!("{which}.yaml"))
}

fn rule_ids_found(path: &Path) -> Vec<String> {
    match analyze_file(path) {
        Ok(a) => a.diagnostics.iter().map(|d| d.rule.clone()).collect(),
        Err(f) => panic!("{} does not load: {:#?}", path.display(), f.diagnostics),
    }
}

#[test]
fn every_rule_has_a_failing_fixture_that_it_flags() {
    for rule in REGISTRY {
        let path = fixture(rule.id(), "fail");
        assert!(path.exists(), "missing fixture {}", path.display());
        let found = rule_ids_found(&path);
        assert!(found.iter().any(|r| r == rule.id()), "{} does not trigger {}; found {found:?}", path.display(), rule.id());
    }
}

#[test]
fn every_rule_has_a_passing_fixture_it_accepts() {
    for rule in REGISTRY {
        let path = fixture(rule.id(), "pass");
        assert!(path.exists(), "missing fixture {}", path.display());
        let found = rule_ids_found(&path);
        assert!(!found.iter().any(|r| r == rule.id()), "{} triggers {}", path.display(), rule.id());
    }
}

/// The core IDs of the rule catalog (RULES.md). IDs are normative: users filter on them.
const CORE_IDS: &[&str] = &[
    "postgres-connections-exhausted",
    "pgbouncer-client-limit",
    "pgbouncer-server-pool",
    "app-pool-below-concurrency",
    "redis-clients-exhausted",
    "capacity-below-load",
    "db-pool-below-load",
    "nginx-worker-connections",
    "nginx-rlimit-nofile",
    "upstream-max-conns-over-slots",
    "timeout-order",
    "backlog-over-somaxconn",
    "machine-memory-oversubscribed",
    "redis-maxmemory-headroom",
    "redis-sentinel-quorum",
    "redis-cluster-masters",
    "pgbouncer-prepared-statements",
];

#[test]
fn registry_holds_every_core_rule_once() {
    for id in CORE_IDS {
        assert_eq!(REGISTRY.iter().filter(|r| r.id() == *id).count(), 1, "{id} must be registered exactly once");
    }
    let mut ids: Vec<_> = REGISTRY.iter().map(|r| r.id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), REGISTRY.len(), "rule IDs are unique");
    for rule in REGISTRY {
        assert!(rule.id().chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{} is kebab-case", rule.id());
        for section in ["## What it checks", "## Why it matters", "## Example", "## Fix", "## References"] {
            assert!(rule.docs().contains(section), "{} docs lack {section}", rule.id());
        }
    }
}

#[test]
fn readme_lists_every_rule() {
    let readme = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for rule in REGISTRY {
        let row = format!("| `{}` | {} |", rule.id(), rule.severity().as_str());
        assert!(readme.contains(&row), "README's rule table lacks {row}");
    }
}

#[test]
fn explain_prints_every_rule_and_rejects_unknown_ids() {
    let bin = env!("CARGO_BIN_EXE_headroom");
    for rule in REGISTRY {
        let out = std::process::Command::new(bin).args(["explain", rule.id()]).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(rule.docs().lines().next().unwrap().trim()), "{}", rule.id());
    }
    let out = std::process::Command::new(bin).args(["explain", "postgres-conections-exhausted"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `postgres-connections-exhausted`?"));
}
