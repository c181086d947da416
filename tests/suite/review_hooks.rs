//! The pull-request integrations: `.pre-commit-hooks.yaml` is a manifest pre-commit
//! itself accepts and its entries are real headroom commands, and the README's GitHub
//! workflow is valid against the workflow schema and runs real headroom commands.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_tool(name: &str) -> PathBuf {
    let venv = std::env::var_os("HEADROOM_VENV").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/headroom/venv")
    });
    let tool = venv.join("bin").join(name);
    assert!(tool.exists(), "{} is not installed (run `bash .ci/install-validators`)", tool.display());
    tool
}

/// Runs `headroom` with the words of a command line; returns the exit code and stdout.
fn run_headroom(words: &[String]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_headroom")).args(words).current_dir(root()).output().expect("runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).expect("parses as YAML")
}

#[test]
fn pre_commit_accepts_the_hooks_and_each_entry_is_a_real_command() {
    let manifest = root().join(".pre-commit-hooks.yaml");
    let out = Command::new(venv_tool("pre-commit")).arg("validate-manifest").arg(&manifest).output().expect("pre-commit runs");
    assert!(out.status.success(), "pre-commit rejects the manifest:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let hooks = yaml(&std::fs::read_to_string(&manifest).expect("reads"));
    let hooks = hooks.as_array().expect("a list of hooks");
    let ids: Vec<&str> = hooks.iter().filter_map(|h| h["id"].as_str()).collect();
    assert_eq!(ids, ["headroom-check", "headroom-render-check"]);
    for hook in hooks {
        let entry = hook["entry"].as_str().expect("an entry");
        let mut words: Vec<String> = entry.split_whitespace().map(String::from).collect();
        assert_eq!(words.remove(0), "headroom", "{entry}");
        assert!(matches!(hook["language"].as_str(), Some("rust" | "system")), "{hook}");
        // pass_filenames is false: the spec comes from `args`, as a user would give it.
        assert_eq!(hook["pass_filenames"], Value::Bool(false), "{hook}");
        // An example whose checked-in files are what render writes, and one with findings.
        words.push("examples/django-compose/capacity.yaml".into());
        let (code, stdout, stderr) = run_headroom(&words);
        assert!(code == 0 || code == 1, "`{entry}` is not a command headroom runs (exit {code}):\n{stderr}");
        assert!(!stdout.is_empty() || !stderr.is_empty(), "{entry}");
    }
    // `language: rust` installs the repository's binary named like the entry's program.
    let cargo = std::fs::read_to_string(root().join("Cargo.toml")).expect("reads");
    assert!(cargo.contains("name = \"headroom\""), "the crate builds no `headroom` binary");
}

/// The README's workflow (the ```yaml block after `<!-- review-workflow -->`).
fn readme_workflow() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("reads");
    let after = readme.split("<!-- review-workflow -->").nth(1).expect("the README marks its review workflow");
    let body = after.split_once("```yaml\n").expect("a yaml block").1;
    body.split_once("\n```").expect("a closed block").0.to_string() + "\n"
}

#[test]
fn the_readme_workflow_is_valid_and_runs_real_commands() {
    let text = readme_workflow();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("capacity-review.yml");
    std::fs::write(&file, &text).expect("writes");
    let out = Command::new(venv_tool("check-jsonschema")).args(["--builtin-schema", "vendor.github-workflows"]).arg(&file).output().expect("check-jsonschema runs");
    assert!(out.status.success(), "the workflow is not a valid GitHub workflow:\n{}{}\n{text}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // The schema check itself fails on a broken workflow.
    let broken = dir.path().join("broken.yml");
    std::fs::write(&broken, text.replace("runs-on:", "runs_on:")).expect("writes");
    let out = Command::new(venv_tool("check-jsonschema")).args(["--builtin-schema", "vendor.github-workflows"]).arg(&broken).output().expect("runs");
    assert!(!out.status.success(), "a workflow without runs-on passed");

    let workflow = yaml(&text);
    let mut commands = Vec::new();
    for job in workflow["jobs"].as_object().expect("jobs").values() {
        for step in job["steps"].as_array().expect("steps") {
            let Some(run) = step["run"].as_str() else { continue };
            for line in run.lines().map(str::trim).filter(|l| l.starts_with("headroom ")) {
                commands.push(line.to_string());
            }
        }
    }
    assert!(commands.len() >= 3, "{commands:?}");
    let base = Path::new("examples/sfpermits-railway/capacity.yaml");
    for line in &commands {
        // The command itself: up to a redirection or `||`.
        let command = line.split(['>', '|']).next().expect("a command");
        let words: Vec<String> = command
            .split_whitespace()
            .skip(1)
            .map(|w| match w {
                "capacity.yaml" => "examples/sfpermits-railway-tier1/capacity.yaml".to_string(),
                "\"$RUNNER_TEMP/base.yaml\"" => base.display().to_string(),
                w => w.to_string(),
            })
            .collect();
        let (code, stdout, stderr) = run_headroom(&words);
        assert!(code == 0 || code == 1, "`{line}` is not a command headroom runs (exit {code}):\n{stderr}");
        assert!(!stdout.is_empty(), "`{line}` printed nothing");
        if line.contains("--format markdown") {
            assert!(stdout.starts_with("### "), "`{line}` did not print markdown:\n{stdout}");
        }
    }
}
