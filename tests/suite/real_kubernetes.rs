//! The Kubernetes manifests, checked the way a cluster takes them: every example and
//! every spec under tests/fixtures/kubernetes/ is rendered with every target (as
//! `render --force` does), written to a temp dir, and then
//! - tests/validators/kubernetes.sh proves the folder: kustomization.yaml lists exactly
//!   the manifests there, and `kubernetes-validate --strict` accepts every one for each
//!   Kubernetes version headroom claims (examples: every version 1.25 to 1.37; fixtures:
//!   the oldest, their own and the newest);
//! - every ConfigMap's files, read back with PyYAML (tests/validators/k8s_configmaps.py),
//!   are byte for byte the files the nginx, pgbouncer and redis targets write to disk,
//!   and pass the same real programs (nginx -t, a real pgbouncer in front of a real
//!   PostgreSQL, redis-server);
//! - env values and args read back as written (Kubernetes' `$(VAR)` expansion undone).
//!
//! A missing validator or program fails the test: run `.ci/install-validators`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use headroom::analysis::analyze_file;
use headroom::plan::defaults::{KUBERNETES_NEWEST, KUBERNETES_OLDEST};
use headroom::plan::{Kind, Plan};
use headroom::targets::{self, Artifact, Context, nginx, pgbouncer, qdrant, redis};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn validator(name: &str) -> PathBuf {
    let path = repo().join("tests/validators").join(name);
    assert!(path.is_file(), "validator {} is missing", path.display());
    path
}

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("HEADROOM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/headroom/venv"));
    let python = venv.join("bin/python");
    assert!(python.is_file(), "no venv python at {}: run .ci/install-validators", python.display());
    python
}

/// Specs that render Kubernetes manifests: the examples that have `deploy.kubernetes`,
/// and the fixtures. `true` for examples (validated for every version).
fn specs() -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(repo().join("examples")).unwrap().flatten() {
        let spec = entry.path().join("capacity.yaml");
        if spec.is_file() && fs::read_to_string(&spec).unwrap().contains("\n  kubernetes:") {
            out.push((spec, true));
        }
    }
    for entry in fs::read_dir(repo().join("tests/fixtures/kubernetes")).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "yaml") {
            out.push((entry.path(), false));
        }
    }
    out.sort();
    assert!(out.iter().any(|(_, example)| *example), "no example renders Kubernetes manifests");
    assert!(out.iter().any(|(_, example)| !*example), "no Kubernetes fixture");
    out
}

struct Rendered {
    dir: tempfile::TempDir,
    artifacts: Vec<Artifact>,
    plan: Plan,
    spec: headroom::spec::Spec,
}

impl Rendered {
    fn manifests_dir(&self) -> PathBuf {
        let any = self.artifacts.iter().find(|a| a.target == "kubernetes").expect("kubernetes artifacts");
        self.dir.path().join(Path::new(&any.path).parent().unwrap())
    }
    fn ctx(&self) -> Context<'_> {
        Context { spec: &self.spec, plan: &self.plan, spec_file: "capacity.yaml".into(), existing_root: None }
    }
}

fn render(spec: &Path) -> Rendered {
    let analysis = analyze_file(spec).unwrap_or_else(|f| panic!("{}: the spec does not load: {:#?}", spec.display(), f.diagnostics));
    let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
    let artifacts = targets::render_all(&ctx, &[])
        .unwrap_or_else(|errors| panic!("{}: rendering failed: {}", spec.display(), errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")));
    let dir = tempfile::Builder::new().prefix("headroom-k8s-").tempdir().unwrap();
    for artifact in &artifacts {
        let path = dir.path().join(&artifact.path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &artifact.text).unwrap();
    }
    Rendered { dir, artifacts, plan: analysis.plan, spec: analysis.loaded.spec }
}

fn run(cmd: &mut Command) -> (bool, String) {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The PgBouncer on this host, (major, minor).
fn installed_pgbouncer() -> (u32, u32) {
    let (ok, out) = run(Command::new("pgbouncer").arg("--version"));
    assert!(ok, "pgbouncer is not installed: run .ci/install-validators");
    out.split_whitespace().find_map(headroom::plan::resolve::parse_version).expect("pgbouncer --version names a version")
}

fn version_text(v: (u32, u32)) -> String {
    format!("{}.{}", v.0, v.1)
}

#[test]
fn manifests_pass_kubernetes_validate_and_kustomization_resolves() {
    let mut failures = Vec::new();
    for (spec, example) in specs() {
        let rendered = render(&spec);
        let own = rendered.plan.kubernetes.as_ref().unwrap().version.value;
        let versions: Vec<String> = if example {
            (KUBERNETES_OLDEST.1..=KUBERNETES_NEWEST.1).map(|minor| version_text((1, minor))).collect()
        } else {
            let mut v = vec![version_text(KUBERNETES_OLDEST), version_text(own), version_text(KUBERNETES_NEWEST)];
            v.dedup();
            v
        };
        let dir = rendered.manifests_dir();
        let (ok, out) = run(Command::new("bash").arg(validator("kubernetes.sh")).arg(&dir).args(&versions));
        if !ok {
            failures.push(format!("{}:\n{out}", spec.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The file on disk a ConfigMap `<service>-config` must hold, by its key.
fn disk_file<'a>(rendered: &'a Rendered, configmap: &str, key: &str) -> Option<&'a Artifact> {
    let ctx = rendered.ctx();
    let service = rendered.plan.services.iter().find(|s| format!("{}-config", s.name) == configmap)?;
    let path = match (service.kind, key) {
        (Kind::Nginx, "nginx.conf") => nginx::path(&ctx, service),
        (Kind::Pgbouncer, "pgbouncer.ini") => pgbouncer::path(&ctx, service),
        (Kind::Redis, "redis.conf") => redis::path(&ctx, service),
        (Kind::Qdrant, "local.yaml") => qdrant::config_path(&ctx, service),
        _ => return None,
    };
    rendered.artifacts.iter().find(|a| a.path == path)
}

#[test]
fn configmaps_hold_the_rendered_files_and_the_real_programs_accept_them() {
    let python = venv_python();
    let mut checked = Vec::new();
    let mut failures = Vec::new();
    for (spec, _) in specs() {
        let rendered = render(&spec);
        let manifests: Vec<PathBuf> = rendered
            .artifacts
            .iter()
            .filter(|a| a.target == "kubernetes" && !a.path.ends_with("kustomization.yaml"))
            .map(|a| rendered.dir.path().join(&a.path))
            .collect();
        let out_dir = rendered.dir.path().join("configmaps");
        let (ok, listing) = run(Command::new(&python).arg(validator("k8s_configmaps.py")).arg(&out_dir).args(&manifests));
        assert!(ok, "{}: {listing}", spec.display());
        for entry in listing.lines() {
            let (configmap, key) = entry.split_once('/').unwrap();
            let extracted = out_dir.join(entry);
            let text = fs::read_to_string(&extracted).unwrap();
            let Some(on_disk) = disk_file(&rendered, configmap, key) else {
                failures.push(format!("{}: ConfigMap {entry} matches no rendered file", spec.display()));
                continue;
            };
            if text != on_disk.text {
                failures.push(format!("{}: ConfigMap {entry} differs from {}", spec.display(), on_disk.path));
                continue;
            }
            let script = match key {
                "nginx.conf" => "nginx.sh",
                "pgbouncer.ini" => "pgbouncer.sh",
                // No Qdrant server is installable here: tests/qdrant.rs proves that file's
                // keys against Qdrant's reference configuration; equal text is the proof.
                "local.yaml" => {
                    checked.push(key.to_string());
                    continue;
                }
                _ => "redis.sh",
            };
            let mut file = extracted.clone();
            if key == "pgbouncer.ini" && installed_pgbouncer() < (1, 21) && text.lines().any(|l| l.starts_with("max_prepared_statements")) {
                // The host's PgBouncer predates max_prepared_statements (1.21): it must
                // refuse that setting alone, and accept the file without it.
                let (ok, out) = run(Command::new("bash").arg(validator(script)).arg(&extracted));
                let errors: Vec<&str> = out.lines().filter(|l| l.contains(" ERROR ")).collect();
                if ok || errors.is_empty() || !errors.iter().all(|l| l.contains("max_prepared_statements")) {
                    failures.push(format!("{}: ConfigMap {entry}: the host's PgBouncer should refuse max_prepared_statements alone:\n{out}", spec.display()));
                }
                let without: String = text
                    .lines()
                    .map(|l| if l.starts_with("max_prepared_statements") { "; (max_prepared_statements: PgBouncer >= 1.21)".to_string() } else { l.to_string() })
                    .collect::<Vec<_>>()
                    .join("\n");
                file = out_dir.join(format!("{configmap}-installed-version.ini"));
                fs::write(&file, without + "\n").unwrap();
            }
            let (ok, out) = run(Command::new("bash").arg(validator(script)).arg(&file));
            if !ok {
                failures.push(format!("{}: {script} rejected ConfigMap {entry}:\n{out}", spec.display()));
            }
            checked.push(key.to_string());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for key in ["nginx.conf", "pgbouncer.ini", "redis.conf"] {
        assert!(checked.iter().any(|k| k == key), "no ConfigMap holding {key} was checked");
    }
}

#[test]
fn env_values_and_args_read_back_as_written() {
    let python = venv_python();
    let spec = repo().join("tests/fixtures/kubernetes/rails-jobs.yaml");
    let rendered = render(&spec);
    let web = rendered.manifests_dir().join("web.yaml");
    // PyYAML reads the Deployment; Kubernetes' expansion is applied: `$$` -> `$`.
    let script = r#"
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "Deployment"]
c = docs[0]["spec"]["template"]["spec"]["containers"][0]
def expand(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "$" and i + 1 < len(s) and s[i + 1] == "$":
            out.append("$"); i += 2
        else:
            out.append(s[i]); i += 1
    return "".join(out)
print(json.dumps({e["name"]: expand(e["value"]) for e in c["env"] if "value" in e}))
"#;
    let (ok, out) = run(Command::new(&python).arg("-c").arg(script).arg(&web));
    assert!(ok, "{out}");
    let env: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(env["GREETING"], "say \"hi\"\nand: bye # not a comment");
    assert_eq!(env["UNICODE"], "naïve\u{85}next\u{2028}line");
    assert_eq!(env["DOLLARS"], "$HOME ${X}");
    assert_eq!(env["DATABASE_POOL"], "5");
}
