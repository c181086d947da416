//! `headroom scale` run as a user runs it, on specs and targets nobody tuned it for,
//! held to its contract: exit 0 with a diff whose written result passes `check` at the
//! target, keeps every comment and is left alone by a second run (idempotence); exit 0
//! "already fits" only when `check` at the target is clean; exit 1 a wall that names a
//! rule at a setting and writes nothing; exit 2 only for bad input, with a hint. The
//! same spec written in other YAML styles (flow mappings, 4-space indentation, CRLF,
//! `---`, no final newline) gets the same change; a value shared through an anchor is
//! refused rather than edited for every service that shares it.
//!
//! The wide sweep (every spec-shaped fixture at many targets) runs with the release
//! binary outside the suite; these are the deterministic, quick cases of it.

use std::path::{Path, PathBuf};
use std::process::Command;

use headroom::load;
use headroom::scale::{self, Outcome, Target};
use headroom::source::SourceFile;
use serde_json::Value;

use crate::fs_support::copy_dir;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn headroom(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_headroom")).args(args).env("NO_COLOR", "1").output().expect("runs");
    Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr: String::from_utf8_lossy(&out.stderr).into() }
}

/// A copy of the spec's directory (a spec may name files beside it), and the copy's path.
fn copy_of(spec: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let spec = Path::new(spec);
    copy_dir(spec.parent().expect("a directory"), dir.path());
    let copy = dir.path().join(spec.file_name().expect("a file name"));
    (dir, copy)
}

/// A spec text written into a fresh directory.
fn written(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("writes");
    (dir, path)
}

/// The findings `scale` clears (errors, capacity and budget warnings) of a spec text.
fn blocking(path: &Path, text: &str) -> Vec<String> {
    match headroom::analysis::analyze_text(path, text) {
        Ok(analysis) => analysis.diagnostics.iter().filter(|d| scale::blocks(d)).map(|d| format!("{} at {}", d.rule, d.path)).collect(),
        Err(_) => vec!["the spec does not load".into()],
    }
}

/// The spec text with the target load written in by the library (what `check` at the
/// target means for a spec that already fits).
fn at_target(path: &Path, text: &str, target: Target) -> Value {
    let loaded = load::load_source(SourceFile::new(path, text.to_string())).expect("the spec loads");
    scale::with_target(&loaded.value, target).expect("a load")
}

fn comment_lines(text: &str) -> Vec<&str> {
    text.lines().map(str::trim).filter(|l| l.starts_with('#')).collect()
}

fn target_of(args: &[&str]) -> Target {
    let n: f64 = args[1].parse().expect("a number");
    match args[0] {
        "--rps" => Target::Rps(n),
        "--factor" => Target::Factor(n),
        _ => Target::Users(n as u64),
    }
}

/// What happened, for the tests that look closer.
#[derive(Debug, PartialEq)]
enum Kept {
    Changed(String),
    AlreadyFits,
    Wall,
}

/// Runs `scale` on a copy of `spec` at `target` and holds it to the contract.
fn holds_the_contract(spec: &str, target: &[&str]) -> Kept {
    let (_dir, copy) = copy_of(spec);
    let path = copy.to_str().expect("utf-8");
    let original = std::fs::read_to_string(&copy).expect("reads");
    let context = format!("scale {spec} {}", target.join(" "));
    let run = headroom(&[&["scale", path], target].concat());
    assert!(!run.stderr.contains("panicked"), "{context}: panicked\n{}", run.stderr);
    match run.code {
        0 if run.stdout.contains("already fits the new load: no change") => {
            let value = at_target(&copy, &original, target_of(target));
            let findings = scale::evaluate(&value).map(|(_, d)| d.iter().filter(|d| scale::blocks(d)).map(|d| format!("{} at {}", d.rule, d.path)).collect::<Vec<_>>());
            assert_eq!(findings, Some(vec![]), "{context}: already fits, but check at the target does not pass");
            Kept::AlreadyFits
        }
        0 => {
            assert!(run.stdout.starts_with("--- a/"), "{context}: exit 0 without a diff:\n{}", run.stdout);
            let write = headroom(&[&["scale", path], target, &["--write"]].concat());
            assert_eq!(write.code, 0, "{context} --write: {}", write.stderr);
            let new = std::fs::read_to_string(&copy).expect("reads");
            assert_ne!(new, original, "{context}: --write wrote nothing");
            assert_eq!(blocking(&copy, &new), Vec::<String>::new(), "{context}: the written spec does not pass check at the target:\n{new}");
            let target_rps = at_target(&copy, &original, target_of(target)).pointer("/load/rps").cloned();
            let loaded = load::load_source(SourceFile::new(&copy, new.clone())).expect("the written spec loads");
            assert_eq!(loaded.value.pointer("/load/rps").and_then(Value::as_f64), target_rps.as_ref().and_then(Value::as_f64), "{context}: written at another load");
            let kept = comment_lines(&new);
            for line in comment_lines(&original) {
                assert!(kept.contains(&line), "{context}: the comment `{line}` is gone");
            }
            // Idempotence: the written spec at the same load needs nothing more.
            let rps = loaded.value.pointer("/load/rps").and_then(Value::as_f64).expect("load.rps");
            let again = match scale::search(&loaded, Target::Rps(rps)).expect("the search runs") {
                Outcome::Fits(p) => p.settings.iter().filter(|(p, _, _)| !p.starts_with("/load/")).map(|(p, _, n)| format!("{p} -> {n}")).collect::<Vec<_>>(),
                Outcome::Wall(w) => vec![format!("wall: {}", w.message)],
            };
            assert_eq!(again, Vec::<String>::new(), "{context}: a second run on the written spec changes it again");
            Kept::Changed(new)
        }
        1 => {
            assert!(run.stderr.contains("= wall: "), "{context}: exit 1 without a wall:\n{}", run.stderr);
            let wall = run.stderr.split("= wall: ").nth(1).unwrap_or("");
            let (rule, rest) = wall.split_once(" at ").unwrap_or(("", ""));
            assert!(headroom::rules::by_id(rule).is_some(), "{context}: the wall names no rule: {wall}");
            assert!(rest.split([' ', ':']).next().is_some_and(|setting| setting.contains('.')), "{context}: the wall names no setting: {wall}");
            let write = headroom(&[&["scale", path], target, &["--write"]].concat());
            assert_eq!(write.code, 1, "{context} --write");
            assert_eq!(std::fs::read_to_string(&copy).expect("reads"), original, "{context}: a wall wrote the spec");
            Kept::Wall
        }
        code => panic!("{context}: exit {code} on a spec check loads:\n{}{}", run.stdout, run.stderr),
    }
}

const EXAMPLES: [&str; 8] = [
    "examples/django-compose/capacity.yaml",
    "examples/rag-service/capacity.yaml",
    "examples/rails-kamal/capacity.yaml",
    "examples/sfpermits-railway/capacity.yaml",
    "examples/sfpermits-railway-tier1/capacity.yaml",
    "examples/voiceassist/capacity.yaml",
    "examples/voiceassist-kubernetes/capacity.yaml",
    "examples/voiceassist-kubernetes-fixed/capacity.yaml",
];

#[test]
fn every_example_at_a_third_of_its_load() {
    for spec in EXAMPLES {
        holds_the_contract(spec, &["--factor", "0.33"]);
    }
}

#[test]
fn every_example_at_three_times_its_load() {
    for spec in EXAMPLES {
        holds_the_contract(spec, &["--factor", "3"]);
    }
}

#[test]
fn examples_at_one_request_a_second_and_at_a_user_count() {
    for spec in ["examples/django-compose/capacity.yaml", "examples/voiceassist/capacity.yaml", "examples/rails-kamal/capacity.yaml"] {
        holds_the_contract(spec, &["--rps", "1"]);
        holds_the_contract(spec, &["--users", "20000"]);
    }
}

/// Rule fixtures carry no load; given one, they are specs in shapes the examples do not
/// have (PgBouncer limits, upstream max_conns, several machine groups, Kamal roles).
#[test]
fn rule_fixtures_given_a_load() {
    let load = "\nload:\n  rps: 50\n  concurrent_users: 200\n  service_time: 100ms\n  db_time: 20ms\n  p95_target: 500ms\n";
    let mut changed = 0;
    for rule in [
        "pgbouncer-server-pool/fail",
        "pgbouncer-client-limit/pass",
        "pgbouncer-fd-limit/fail",
        "redis-clients-exhausted/fail",
        "upstream-max-conns-over-slots/fail",
        "workers-over-cpus/fail",
        "machine-cpu-oversubscribed/fail",
        "deploy-overlap-exhausts-postgres/fail",
        "nginx-rlimit-nofile/fail",
    ] {
        let text = std::fs::read_to_string(format!("tests/fixtures/rules/{rule}.yaml")).expect("reads") + load;
        let (dir, path) = written("capacity.yaml", &text);
        for target in [["--factor", "3"], ["--rps", "10"]] {
            let spec = path.to_str().expect("utf-8");
            if let Kept::Changed(_) = holds_the_contract(spec, &target) {
                changed += 1;
            }
            std::fs::write(&path, &text).expect("restores");
        }
        drop(dir);
    }
    assert!(changed >= 8, "the fixtures exercise proposals, not only walls: {changed} changed");
}

/// One spec; its variants below say the same in other YAML styles.
const STYLED: &str = "\
# comment at the top
version: 1
name: styles

load:
  rps: 100   # today's peak = 100
  service_time: 100ms

machines:
  app:
    count: 1
    cpus: 8
    memory: 16GiB

services:
  web:
    kind: gunicorn
    machine: app
    # per replica
    workers: 4   # WEB_CONCURRENCY
    replicas: 1
    resources: { cpus: 2, memory: 2GiB }
    uses:
      db: { pool: 5 }
  db:
    kind: postgres
    machine: app
    resources: { cpus: 2, memory: 4GiB }
";

fn restyled() -> Vec<(&'static str, String)> {
    let db_block = "  db:\n    kind: postgres\n    machine: app\n    resources: { cpus: 2, memory: 4GiB }\n";
    let indent4: String = STYLED.lines().map(|l| format!("{}{}\n", " ".repeat(2 * (l.len() - l.trim_start().len())), l.trim_start())).collect();
    vec![
        ("block", STYLED.to_string()),
        ("flow machine", STYLED.replace("  app:\n    count: 1\n    cpus: 8\n    memory: 16GiB\n", "  app: { count: 1, cpus: 8, memory: 16GiB }\n")),
        ("flow db", STYLED.replace(db_block, "  db: { kind: postgres, machine: app, resources: { cpus: 2, memory: 4GiB } }\n")),
        ("flow db one entry a line", STYLED.replace(db_block, "  db: {\n    kind: postgres,\n    machine: app,\n    resources: { cpus: 2, memory: 4GiB },  # {braces} in a comment\n  }\n")),
        ("4-space indentation", indent4),
        ("CRLF", STYLED.replace('\n', "\r\n")),
        ("document markers", format!("--- # the spec\n{STYLED}...\n")),
        ("no final newline", STYLED.trim_end().to_string()),
        ("comments after the last key", format!("{STYLED}    # set by the provider\n# end\n")),
        ("quoted keys", STYLED.replace("    replicas: 1", "    \"replicas\": 1").replace("    count: 1", "    'count': 1")),
    ]
}

#[test]
fn every_yaml_style_gets_the_same_minimal_change() {
    let mut reference: Option<(Value, usize)> = None;
    for (style, text) in restyled() {
        let (_dir, path) = written("capacity.yaml", &text);
        let spec = path.to_str().expect("utf-8");
        let Kept::Changed(new) = holds_the_contract(spec, &["--rps", "200"]) else { panic!("{style}: no change proposed") };
        let value = load::load_source(SourceFile::new(&path, new.clone())).expect("loads").value;
        // The lines that changed: as many as in the block style.
        let changed = similar::TextDiff::from_lines(&text, &new).iter_all_changes().filter(|c| c.tag() != similar::ChangeTag::Equal).count();
        if text.contains("\r\n") {
            assert_eq!(new.matches('\n').count(), new.matches("\r\n").count(), "{style}: a line without CR:\n{new:?}");
        }
        match &reference {
            None => reference = Some((value, changed)),
            Some((expected, lines)) => {
                assert_eq!(&value, expected, "{style}: another change than the block style's:\n{new}");
                // A one-line flow mapping that takes a key is one line rewritten (a
                // removed and an added line) where the block style adds one; a last
                // line without a newline is rewritten with the line after it.
                let extra = match style {
                    "flow db" => 1,
                    "no final newline" => 2,
                    _ => 0,
                };
                assert!(changed <= lines + extra, "{style}: {changed} lines changed, {lines} in the block style:\n{new}");
            }
        }
    }
}

const SHARED: &str = "\
version: 1
name: anchors
load:
  rps: 100
  service_time: 100ms
machines:
  app: { count: 8, cpus: 8, memory: 16GiB }
services:
  web: &app
    kind: gunicorn
    machine: app
    workers: 5
    replicas: 1
    resources: { cpus: 2, memory: 2GiB }
  api:
    <<: *app
    port: 8001
  db:
    kind: postgres
    machine: app
    work_mem: 4MB
    max_connections: 300
    resources: { cpus: 2, memory: 8GiB }
";

#[test]
fn a_setting_shared_through_an_anchor_is_refused_and_nothing_is_written() {
    let (_dir, path) = written("capacity.yaml", SHARED);
    let spec = path.to_str().expect("utf-8");
    for args in [vec!["scale", spec, "--rps", "200"], vec!["scale", spec, "--rps", "200", "--write"]] {
        let run = headroom(&args);
        assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(&format!("--> {spec}:13:15")), "points at the shared value: {}", run.stderr);
        assert!(run.stderr.contains("would also change services.api.replicas 1 -> 5") && run.stderr.contains("anchor"), "{}", run.stderr);
        assert!(run.stderr.contains("make the change by hand: load.rps 100 -> 200, services.web.replicas 1 -> 5"), "{}", run.stderr);
        assert_eq!(std::fs::read_to_string(&path).expect("reads"), SHARED, "nothing written");
    }
    // Written out where it is merged, the anchor's value is the web service's alone.
    let overridden = SHARED.replace("    port: 8001\n", "    port: 8001\n    replicas: 1\n");
    let (_dir, path) = written("capacity.yaml", &overridden);
    let Kept::Changed(new) = holds_the_contract(path.to_str().expect("utf-8"), &["--rps", "200"]) else { panic!("no change") };
    assert!(new.contains("    <<: *app\n    port: 8001\n    replicas: 1\n"), "{new}");
}

#[test]
fn bad_targets_exit_2_with_a_hint_and_write_nothing() {
    let (_dir, copy) = copy_of("examples/django-compose/capacity.yaml");
    let spec = copy.to_str().expect("utf-8");
    let original = std::fs::read_to_string(&copy).expect("reads");
    for (args, says) in [
        (vec!["--rps", "0"], "--rps 0 is not a load to plan for: the target must be a positive number"),
        (vec!["--rps", "-5"], "--rps -5 is not a load to plan for"),
        (vec!["--rps", "nan"], "--rps NaN is not a load to plan for"),
        (vec!["--rps", "inf"], "--rps inf is not a load to plan for"),
        (vec!["--factor", "0"], "--factor 0 is not a load to plan for"),
        (vec!["--factor", "-2"], "--factor -2 is not a load to plan for"),
        (vec!["--users", "0"], "--users 0 is not a load to plan for"),
        (vec!["--rps", "1e30"], "past the 1000000000 rps one spec plans for"),
        (vec!["--factor", "1e30"], "past the 1000000000 rps one spec plans for"),
        (vec!["--rps", "0.0001"], "it makes load.rps 0, which is no load"),
        (vec!["--factor", "1e-9"], "it makes load.rps 0 (today 1000), which is no load"),
        (vec!["--rps", "10", "--factor", "2"], "cannot be used with"),
        (vec![], "the following required arguments were not provided"),
        (vec!["--rps", "abc"], "invalid value 'abc' for '--rps <RPS>'"),
        (vec!["--users", "-3"], "invalid value '-3' for '--users <USERS>'"),
    ] {
        let run = headroom(&[&["scale", spec], args.as_slice(), &["--write"]].concat());
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
        if run.stderr.contains("not a load to plan for") {
            assert!(run.stderr.contains("= help: give the new load as --rps N"), "{args:?}: {}", run.stderr);
        }
        assert_eq!(std::fs::read_to_string(&copy).expect("reads"), original, "{args:?} wrote the spec");
    }
}

#[test]
fn specs_scale_cannot_take_say_why() {
    // No load to grow from: bad input, with what to add.
    let run = headroom(&["scale", "tests/fixtures/rules/redis-no-auth/fail.yaml", "--rps", "10"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("error: the spec has no `load:`") && run.stderr.contains("= help: scale needs today's load"), "{}", run.stderr);
    // A spec that does not load: the loader's own message, with its location.
    let run = headroom(&["scale", "tests/bad_input/dangling_upstream.yaml", "--rps", "10"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("dangling_upstream.yaml:8:18"), "{}", run.stderr);
    let run = headroom(&["scale", "no/such/capacity.yaml", "--rps", "10"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("cannot read no/such/capacity.yaml") && run.stderr.contains("help:"), "{}", run.stderr);
    // An error no setting of scale clears (sentinels that cannot elect): a wall, in
    // every format, and nothing written.
    let sentinel = STYLED.replace("  db:\n", "  cache:\n    kind: redis\n    mode: sentinel\n    sentinels: 2\n    quorum: 2\n    replicas_per_master: 1\n    maxmemory: 1gb\n    maxmemory_policy: allkeys-lru\n    resources: { cpus: 1, memory: 4GiB }\n  db:\n");
    let (_dir, path) = written("capacity.yaml", &sentinel);
    let spec = path.to_str().expect("utf-8");
    assert_eq!(holds_the_contract(spec, &["--rps", "200"]), Kept::Wall);
    let run = headroom(&["scale", spec, "--rps", "200"]);
    assert!(run.stderr.contains("= wall: redis-sentinel-quorum at services.cache."), "{}", run.stderr);
    let json = headroom(&["scale", spec, "--rps", "200", "--format", "json"]);
    assert_eq!(json.code, 1);
    let doc: Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!((doc["fits"].as_bool(), doc["wall"]["rule"].as_str()), (Some(false), Some("redis-sentinel-quorum")));
    let markdown = headroom(&["scale", spec, "--rps", "200", "--format", "markdown"]);
    assert_eq!(markdown.code, 1);
    assert!(markdown.stdout.starts_with("### headroom scale:") && markdown.stdout.contains("**Wall:** redis-sentinel-quorum"), "{}", markdown.stdout);
    assert_eq!(std::fs::read_to_string(&path).expect("reads"), sentinel);
}

#[test]
fn every_format_reports_every_outcome() {
    let (_dir, path) = written("capacity.yaml", STYLED);
    let spec = path.to_str().expect("utf-8");
    // A change, then the same load once written: already fits.
    let json = headroom(&["scale", spec, "--rps", "200", "--format", "json"]);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let doc: Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!((doc["fits"].as_bool(), doc["written"].as_bool()), (Some(true), Some(false)));
    assert!(doc["diff"].as_str().is_some_and(|d| d.contains("+    replicas: ")) && !doc["changes"].as_array().expect("changes").is_empty(), "{doc:#}");
    let markdown = headroom(&["scale", spec, "--rps", "200", "--format", "markdown", "--write"]);
    assert_eq!(markdown.code, 0, "{}", markdown.stderr);
    assert!(markdown.stdout.contains("(written)") && markdown.stdout.contains("```diff"), "{}", markdown.stdout);
    let json = headroom(&["scale", spec, "--rps", "200", "--format", "json"]);
    let doc: Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!((doc["fits"].as_bool(), doc["changes"].as_array().map(Vec::len), doc["diff"].as_str()), (Some(true), Some(0), Some("")));
    let markdown = headroom(&["scale", spec, "--rps", "200", "--format", "markdown"]);
    assert!(markdown.stdout.contains("Already fits the new load: no change."), "{}", markdown.stdout);
    let human = headroom(&["scale", spec, "--rps", "200"]);
    assert_eq!((human.code, human.stdout.trim_end()), (0, format!("{spec} already fits the new load: no change").as_str()));
}
