//! `headroom lint` on Kubernetes manifests: a folder of them, and the same documents
//! on standard input (`helm template ... | headroom lint -`), find the budget problems
//! at the manifests' own lines; the manifests `render` writes find what `check` finds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn headroom(args: &[&str], stdin: Option<&str>) -> (i32, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_headroom"))
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), json)
}

/// (rule, file name, line) of every error and warning.
fn findings(report: &Value) -> Vec<(String, String, u64)> {
    let mut out: Vec<(String, String, u64)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| matches!(f["severity"].as_str(), Some("error" | "warning")))
        .map(|f| {
            let file = f["file"].as_str().map(|p| Path::new(p).file_name().unwrap().to_string_lossy().into_owned()).unwrap_or_default();
            (f["rule"].as_str().unwrap().to_string(), file, f["line"].as_u64().unwrap_or(0))
        })
        .collect();
    out.sort();
    out
}

const SHOP: &str = "tests/fixtures/import/kubernetes/shop";
const FILES: [&str; 4] = ["pgbouncer.yaml", "redis.yaml", "web.yaml", "worker.yaml"];

/// The 1-based line of the first line of `file` holding `needle`.
fn line_of(file: &str, needle: &str) -> u64 {
    let text = std::fs::read_to_string(repo().join(SHOP).join(file)).unwrap();
    text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle} not in {file}")) as u64 + 1
}

#[test]
fn a_folder_of_manifests_finds_the_autoscaler_and_rollout_budgets_at_their_lines() {
    let (code, report) = headroom(&["lint", &repo().join(SHOP).to_string_lossy(), "--format", "json"], None);
    assert_eq!(code, 1, "{report:#}");
    let found = findings(&report);
    // 30 pods (the HPA's max) x 4 Puma workers x 5 + 4 x 10 Sidekiq = 640 > 500.
    let client_limit = ("pgbouncer-client-limit".to_string(), "pgbouncer.yaml".to_string(), line_of("pgbouncer.yaml", "value: \"500\""));
    assert!(found.contains(&client_limit), "{found:?}");
    let message = report["findings"].as_array().unwrap().iter().find(|f| f["rule"] == "pgbouncer-client-limit").unwrap()["message"].as_str().unwrap().to_string();
    assert!(message.contains("shop-web 30 replicas (autoscale max, services.shop-web.autoscale.max) x 4 workers x 5 pool = 600"), "{message}");
    // Redis fits at max (248 <= 300) but not while 25% of 30 = 8 extra web pods and 1
    // worker pod start: 314, at the maxclients line inside the ConfigMap's redis.conf.
    let overlap = ("deploy-overlap-exhausts-postgres".to_string(), "redis.yaml".to_string(), line_of("redis.yaml", "maxclients 300"));
    assert!(found.contains(&overlap), "{found:?}");
    let overlap_message = report["findings"].as_array().unwrap().iter().find(|f| f["rule"] == "deploy-overlap-exhausts-postgres").unwrap()["message"].as_str().unwrap().to_string();
    assert!(overlap_message.contains("+ 8 surge pods (deploy.kubernetes.max_surge: 25% of 30 replicas, rounded up) x 4 workers x 2 pool = 64"), "{overlap_message}");
    // The files read are listed with their format.
    assert!(report["files"].to_string().contains("Kubernetes manifests"), "{}", report["files"]);
}

#[test]
fn standard_input_finds_the_same_problems_at_the_stream_s_lines() {
    let mut stream = String::new();
    let mut first_line = std::collections::BTreeMap::new();
    for file in FILES {
        first_line.insert(file, stream.lines().count() as u64);
        stream.push_str(&std::fs::read_to_string(repo().join(SHOP).join(file)).unwrap());
        stream.push_str("---\n");
    }
    let (code, report) = headroom(&["lint", "-", "--format", "json"], Some(&stream));
    assert_eq!(code, 1, "{report:#}");
    let (_, folder) = headroom(&["lint", &repo().join(SHOP).to_string_lossy(), "--format", "json"], None);
    let expected: Vec<(String, String, u64)> = findings(&folder).into_iter().map(|(rule, file, line)| (rule, "<stdin>".to_string(), first_line[file.as_str()] + line)).collect();
    let mut expected = expected;
    expected.sort();
    assert_eq!(findings(&report), expected);
}

#[test]
fn rendered_manifests_lint_to_what_check_finds() {
    let dir = tempfile::tempdir().unwrap();
    let spec = repo().join("examples/voiceassist-kubernetes/capacity.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_headroom")).args(["render", &spec.to_string_lossy(), "-o", &dir.path().to_string_lossy(), "--force"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, checked) = headroom(&["check", &spec.to_string_lossy(), "--format", "json"], None);
    let (code, linted) = headroom(&["lint", &dir.path().join("kubernetes").to_string_lossy(), "--rps", "570", "--service-time", "200ms", "--db-time", "40ms", "--format", "json"], None);
    assert_eq!(code, 1);
    let rules = |r: &Value| {
        let mut v: Vec<String> = findings(r).into_iter().map(|(rule, ..)| rule).collect();
        v.dedup();
        v
    };
    assert_eq!(rules(&linted), rules(&checked), "{linted:#}");
    assert!(findings(&linted).iter().all(|(_, file, line)| file.ends_with(".yaml") && *line > 0), "{:?}", findings(&linted));
}
