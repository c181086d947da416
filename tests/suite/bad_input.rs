//! The bad-input corpus: every file exits 2 with a located message and a hint where
//! one helps, in every output format, and never panics.

use std::path::PathBuf;
use std::process::Command;

/// file, rule, line, a phrase the message must contain.
const CASES: &[(&str, &str, usize, &str)] = &[
    ("alias_bomb.yaml", "yaml-syntax", 7, "alias"),
    ("bad_duration.yaml", "spec-invalid", 6, "unknown duration unit `d`"),
    ("bad_service_name.yaml", "spec-invalid", 4, "invalid service name"),
    ("bad_size.yaml", "spec-invalid", 6, "`lots` is not a size"),
    ("binary.bin", "yaml-syntax", 2, "not UTF-8"),
    ("dangling_machine.yaml", "spec-invalid", 6, "machine group `webs`"),
    ("dangling_upstream.yaml", "spec-invalid", 8, "`wbe`"),
    ("dangling_uses.yaml", "spec-invalid", 7, "uses `postgress`"),
    ("deep_nesting.yaml", "yaml-syntax", 7, "Depth"),
    ("duplicate_key.yaml", "yaml-syntax", 5, "duplicate mapping key: web"),
    ("empty.yaml", "yaml-syntax", 1, "empty"),
    ("fewer_addresses_than_count.yaml", "spec-invalid", 5, "lists 2 addresses but count is 5"),
    ("fractional.yaml", "spec-invalid", 6, "whole number"),
    ("huge_duration.yaml", "spec-invalid", 6, "too large for a duration"),
    ("injected_path.yaml", "spec-invalid", 9, "invalid location path"),
    ("malformed.yaml", "yaml-syntax", 3, "bracket"),
    ("missing_required.yaml", "spec-invalid", 3, "missing required key `service_time`"),
    ("mixed_errors.yaml", "spec-invalid", 6, "unknown key `workerz`"),
    ("negative.yaml", "spec-invalid", 6, "below the minimum 1"),
    ("not_a_mapping.yaml", "spec-invalid", 1, "must be a mapping"),
    ("past_u64.yaml", "yaml-syntax", 6, "too large"),
    ("qdrant_product_without_compression.yaml", "spec-invalid", 7, "needs a compression ratio"),
    ("tabs.yaml", "yaml-syntax", 5, "tab"),
    ("unknown_key.yaml", "spec-invalid", 6, "unknown key `worker`"),
    ("unknown_kind.yaml", "spec-invalid", 5, "unknown kind `memcached`"),
    ("wrong_type.yaml", "spec-invalid", 6, "a number or `auto`"),
    ("wrong_version.yaml", "spec-invalid", 1, "maximum 1"),
    ("yes_boolean.yaml", "spec-invalid", 6, "`true` or `false`"),
];

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/bad_input")
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_headroom")).args(args).output().expect("the binary runs")
}

#[test]
fn the_corpus_is_covered() {
    let mut on_disk: Vec<String> = std::fs::read_dir(corpus()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    on_disk.sort();
    let mut listed: Vec<String> = CASES.iter().map(|c| c.0.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "every corpus file has an expectation");
}

#[test]
fn every_bad_file_exits_2_with_a_located_json_finding() {
    for (file, rule, line, phrase) in CASES {
        let path = corpus().join(file);
        let output = run(&["check", path.to_str().unwrap(), "--format", "json"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{file}: exit code; stderr: {stderr}");
        assert!(!stderr.contains("panicked"), "{file} panicked: {stderr}");
        let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{file}: stdout is not JSON ({e})"));
        let finding = &doc["findings"][0];
        assert_eq!(finding["rule"], *rule, "{file}: {finding:#}");
        assert_eq!(finding["severity"], "error", "{file}");
        assert_eq!(finding["line"], *line as u64, "{file}: {finding:#}");
        assert!(finding["column"].as_u64().unwrap_or(0) >= 1, "{file}: column");
        assert!(finding["file"].as_str().unwrap().ends_with(file), "{file}: file name");
        assert!(finding["message"].as_str().unwrap().contains(phrase), "{file}: {:?} lacks {phrase:?}", finding["message"]);
    }
}

#[test]
fn human_output_names_file_line_and_column_on_stderr() {
    for (file, _, line, _) in CASES {
        let path = corpus().join(file);
        let output = run(&["check", path.to_str().unwrap(), "--color", "never"]);
        assert_eq!(output.status.code(), Some(2), "{file}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("{file}:{line}:")), "{file}: no file:line in\n{stderr}");
        assert!(stderr.contains("error[") && !stderr.contains("panicked"), "{file}:\n{stderr}");
        assert!(output.stdout.is_empty(), "{file}: nothing on stdout for bad input");
    }
}

#[test]
fn sarif_and_github_formats_also_report_bad_input() {
    let path = corpus().join("unknown_key.yaml");
    let sarif = run(&["check", path.to_str().unwrap(), "--format", "sarif"]);
    assert_eq!(sarif.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&sarif.stdout).unwrap();
    assert_eq!(doc["runs"][0]["results"][0]["ruleId"], "spec-invalid");
    assert_eq!(doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"], 6);
    let github = run(&["check", path.to_str().unwrap(), "--format", "github"]);
    assert_eq!(github.status.code(), Some(2));
    let text = String::from_utf8_lossy(&github.stdout);
    assert!(text.starts_with("::error file="), "{text}");
    assert!(text.contains(",line=6,"), "{text}");
}

#[test]
fn a_missing_file_is_an_error_with_a_hint() {
    let output = run(&["check", "/nonexistent/capacity.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot read /nonexistent/capacity.yaml"), "{stderr}");
}

#[test]
fn render_writes_nothing_for_bad_input() {
    let out = std::env::temp_dir().join(format!("headroom-bad-render-{}", std::process::id()));
    let path = corpus().join("unknown_key.yaml");
    let output = run(&["render", path.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(!out.exists(), "render created {} for bad input", out.display());
}

#[test]
fn schema_errors_and_dangling_references_come_in_one_run() {
    let path = corpus().join("mixed_errors.yaml");
    let output = run(&["check", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(output.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let messages: Vec<&str> = doc["findings"].as_array().unwrap().iter().map(|f| f["message"].as_str().unwrap()).collect();
    assert!(messages.iter().any(|m| m.contains("unknown key `workerz`")), "{messages:?}");
    assert!(messages.iter().any(|m| m.contains("uses `dbx`")), "{messages:?}");
}
