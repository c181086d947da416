//! The command line as CI and a terminal use it: exit codes, --strict, every output
//! format's shape, plan --compare, explain and completions.

use std::process::{Command, Output};

fn headroom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_headroom")).args(args).output().expect("runs")
}

const CLEAN: &str = "tests/fixtures/rules/postgres-connections-exhausted/pass.yaml";
const ERROR: &str = "tests/fixtures/rules/postgres-connections-exhausted/fail.yaml";
const WARNING_ONLY: &str = "tests/fixtures/rules/nginx-rlimit-nofile/fail.yaml";

#[test]
fn exit_codes_follow_findings_and_strict() {
    assert_eq!(headroom(&["check", CLEAN]).status.code(), Some(0));
    assert_eq!(headroom(&["check", ERROR]).status.code(), Some(1));
    assert_eq!(headroom(&["check", WARNING_ONLY]).status.code(), Some(0), "warnings alone pass");
    assert_eq!(headroom(&["check", WARNING_ONLY, "--strict"]).status.code(), Some(1), "--strict fails on warnings");
    assert_eq!(headroom(&["check", "--format", "yaml", CLEAN]).status.code(), Some(2), "bad flag");
    let clean = String::from_utf8(headroom(&["check", CLEAN, "--color", "never"]).stdout).unwrap();
    assert!(clean.starts_with("ok: no findings in "), "{clean}");
}

#[test]
fn json_report_has_its_documented_fields() {
    let out = headroom(&["check", ERROR, "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["tool"], "headroom");
    assert_eq!(doc["summary"]["errors"], doc["findings"].as_array().unwrap().len());
    let f = doc["findings"].as_array().unwrap().iter().find(|f| f["rule"] == "postgres-connections-exhausted").expect("the postgres finding");
    for key in ["rule", "severity", "message", "path", "file", "line", "column", "end_line", "end_column", "numbers", "fix", "related"] {
        assert!(f.get(key).is_some(), "finding lacks {key}: {f:#}");
    }
    assert_eq!(f["rule"], "postgres-connections-exhausted");
    assert_eq!(f["numbers"]["demand"], 200.0);
    assert_eq!(f["numbers"]["usable"], 97.0);
    assert!(f["fix"].as_str().unwrap().contains(">= 203"));
}

#[test]
fn sarif_describes_every_rule_and_points_results_at_them() {
    let out = headroom(&["check", ERROR, "--format", "sarif"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["version"], "2.1.0");
    let run = &doc["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    for rule in headroom::rules::REGISTRY {
        assert!(rules.iter().any(|r| r["id"] == rule.id()), "no descriptor for {}", rule.id());
    }
    let result = run["results"].as_array().unwrap().iter().find(|r| r["ruleId"] == "postgres-connections-exhausted").expect("the postgres result");
    assert_eq!(result["ruleId"], "postgres-connections-exhausted");
    let index = result["ruleIndex"].as_u64().unwrap() as usize;
    assert_eq!(rules[index]["id"], "postgres-connections-exhausted");
    assert_eq!(result["level"], "error");
    assert!(result["locations"][0]["physicalLocation"]["region"]["startLine"].as_u64().unwrap() > 0);
}

#[test]
fn github_annotations_are_one_escaped_line_each() {
    let out = headroom(&["check", "examples/django-compose/capacity.yaml", "--format", "github"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 2);
    for line in lines {
        assert!(line.starts_with("::error file=") || line.starts_with("::warning file="), "{line}");
        assert!(line.contains("title=headroom "), "{line}");
    }
}

#[test]
fn plan_compare_shows_the_number_changes_and_the_rule_that_starts_failing() {
    let out = headroom(&["plan", "examples/sfpermits-railway-tier1/capacity.yaml", "--compare", "examples/sfpermits-railway/capacity.yaml", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let changed = doc["changed"].as_array().unwrap();
    let edge = changed.iter().find(|c| c["key"] == "edges.web -> pgvector-db.connections").expect("edge connections change");
    assert_eq!(edge["old"], 80.0);
    assert_eq!(edge["new"], 200.0);
    assert!(doc["now_failing"].as_array().unwrap().iter().any(|r| r["rule"] == "postgres-connections-exhausted"));
    let human = String::from_utf8(headroom(&["plan", "examples/sfpermits-railway-tier1/capacity.yaml", "--compare", "examples/sfpermits-railway/capacity.yaml"]).stdout).unwrap();
    assert!(human.contains("now failing:"), "{human}");
}

#[test]
fn plan_names_the_bottleneck() {
    let out = headroom(&["plan", "examples/rag-service/capacity.yaml", "--format", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["capacity"]["bottleneck"]["layer"], "database connections");
    assert_eq!(doc["services"]["api"]["slots"], 2000);
    assert_eq!(doc["edges"]["api -> db"]["connections"], 2400);
    let text = String::from_utf8(headroom(&["plan", "examples/rag-service/capacity.yaml"]).stdout).unwrap();
    assert!(text.contains("bottleneck: database connections"), "{text}");
}

#[test]
fn completions_and_schema_print() {
    let out = headroom(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("headroom"));
    let schema = headroom(&["schema"]);
    let doc: serde_json::Value = serde_json::from_slice(&schema.stdout).unwrap();
    assert_eq!(doc["$schema"], "http://json-schema.org/draft-07/schema#");
}
