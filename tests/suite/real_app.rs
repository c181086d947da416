//! The app-server configs headroom renders, run through the real programs: every
//! example is loaded, resolved and rendered (as `render --force` would: rule findings
//! do not stop it), the files are written to a temp dir, and
//! - every gunicorn.conf.py goes through tests/validators/gunicorn.sh (strict load by
//!   gunicorn's own Config + `gunicorn --check-config`),
//! - every gunicorn command line (gunicorn::command, and railway.toml's startCommand)
//!   goes through tests/validators/gunicorn-cmd.sh (gunicorn's argparser +
//!   `--check-config`),
//! - every puma.rb goes through tests/validators/puma.sh (loads the DSL, then boots a
//!   real puma on loopback with a tiny rack app and serves one request).
//!
//! The values gunicorn and puma report back must be the plan's. A validator that is
//! missing or rejects a file fails the test with its output; nothing is skipped.
//! Install the programs with `.ci/install-validators`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use headroom::plan::{Detail, Kind};
use headroom::spec::WorkerClass;
use headroom::targets::{self, Context, escape::shell_word, gunicorn, puma};

/// The targets whose output this test runs through the real programs.
const CHECKED_TARGETS: &[&str] = &["gunicorn", "puma", "app-env", "railway"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One validator run: what it checks, the script and its arguments, and `key = value`
/// lines its report must contain.
struct Check {
    what: String,
    script: &'static str,
    args: Vec<String>,
    expect: Vec<String>,
}

fn shell_join(argv: &[String]) -> String {
    argv.iter().map(|w| shell_word(w).expect("shell quoting")).collect::<Vec<_>>().join(" ")
}

fn examples() -> Vec<PathBuf> {
    let mut specs: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("capacity.yaml"))
        .filter(|p| p.is_file())
        .collect();
    specs.sort();
    specs
}

/// What gunicorn_check.py prints for the plan's settings.
fn gunicorn_expect(service: &headroom::plan::ServicePlan) -> Vec<String> {
    let Detail::Gunicorn(g) = &service.detail else { unreachable!() };
    let mut lines = vec![
        format!("bind = ['0.0.0.0:{}']", service.port.value),
        format!("workers = {}", g.workers.value),
        format!("timeout = {}", g.timeout.value),
        format!("graceful_timeout = {}", g.graceful_timeout.value),
        format!("keepalive = {}", g.keepalive.value),
        format!("max_requests = {}", g.max_requests.value),
        format!("max_requests_jitter = {}", g.max_requests_jitter.value),
    ];
    if let Some(backlog) = &service.backlog {
        lines.push(format!("backlog = {}", backlog.value));
    }
    match g.worker_class.value {
        WorkerClass::Gthread => lines.push(format!("threads = {}", g.threads.value)),
        WorkerClass::Gevent | WorkerClass::Uvicorn => lines.push(format!("worker_connections = {}", g.worker_connections.value)),
        WorkerClass::Sync => {}
    }
    lines.push(format!("worker_class = {} ", gunicorn::worker_class_name(g.worker_class.value)));
    lines
}

fn run(check: &Check) -> Result<String, String> {
    let script = root().join("tests/validators").join(check.script);
    let mut cmd = Command::new(&script);
    cmd.args(&check.args).current_dir(root());
    // puma.rb reads these; the plan's defaults are what is under test.
    for var in ["WEB_CONCURRENCY", "RAILS_MAX_THREADS", "RAILS_MIN_THREADS", "PORT"] {
        cmd.env_remove(var);
    }
    let out = cmd.output().map_err(|e| format!("cannot run validator {}: {e} (run .ci/install-validators)", script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = format!("$ {} {}\n{stdout}{stderr}", check.script, shell_join(&check.args));
    if !out.status.success() {
        return Err(format!("{} rejected ({})\n{report}", check.what, out.status));
    }
    let missing: Vec<&String> = check.expect.iter().filter(|e| !stdout.lines().any(|l| l.starts_with(e.as_str()) || l == e.trim_end())).collect();
    if !missing.is_empty() {
        return Err(format!("{}: accepted, but the program did not read the plan's values {missing:?}\n{report}", check.what));
    }
    Ok(report)
}

#[test]
fn rendered_app_server_configs_pass_the_real_programs() {
    let specs = examples();
    assert!(!specs.is_empty(), "no examples/*/capacity.yaml");
    let out = tempfile::tempdir().expect("temp dir");
    let mut checks = Vec::new();
    let mut classes = BTreeSet::new();
    let mut pumas = 0;

    for spec_path in &specs {
        let example_dir = spec_path.parent().unwrap();
        let example = example_dir.file_name().unwrap().to_string_lossy().into_owned();
        let analysis = headroom::analysis::analyze_file(spec_path).unwrap_or_else(|f| panic!("{example}: spec does not load: {f:?}"));
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: Some(example_dir) };
        let artifacts = match targets::render_all(&ctx, &[]) {
            Ok(artifacts) => artifacts,
            Err(errors) => {
                // Another target's failure is that target's tests' business; the app
                // server targets checked here must still render.
                let ours = errors.iter().filter(|e| CHECKED_TARGETS.contains(&e.target)).map(|e| e.to_string()).collect::<Vec<_>>();
                assert!(ours.is_empty(), "{example}: render failed:\n{}", ours.join("\n"));
                for e in &errors {
                    eprintln!("note: {example}: {e} (not a target under test here)");
                }
                let only: Vec<String> = CHECKED_TARGETS.iter().map(|t| t.to_string()).collect();
                targets::render_all(&ctx, &only).unwrap_or_else(|errors| {
                    panic!("{example}: render failed:\n{}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))
                })
            }
        };
        let dir = out.path().join(&example);
        for artifact in &artifacts {
            let file = dir.join(&artifact.path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, &artifact.text).unwrap();
        }
        let written = |path: &str| -> String {
            assert!(artifacts.iter().any(|a| a.path == path), "{example}: no artifact at {path}");
            dir.join(path).to_string_lossy().into_owned()
        };

        for service in &analysis.plan.services {
            match (&service.kind, &service.detail) {
                (Kind::Gunicorn, Detail::Gunicorn(g)) => {
                    classes.insert(gunicorn::worker_class_name(g.worker_class.value));
                    let conf = written(&gunicorn::path(&ctx, service));
                    checks.push(Check {
                        what: format!("{example}: gunicorn.conf.py of `{}` ({:?})", service.name, g.worker_class.value),
                        script: "gunicorn.sh",
                        args: vec![conf, g.app.clone()],
                        expect: gunicorn_expect(service),
                    });
                    checks.push(Check {
                        what: format!("{example}: gunicorn command line of `{}`", service.name),
                        script: "gunicorn-cmd.sh",
                        args: vec![shell_join(&gunicorn::command(service))],
                        expect: gunicorn_expect(service),
                    });
                }
                (Kind::Puma, Detail::Puma(p)) => {
                    pumas += 1;
                    let rb = written(&puma::path(&ctx, service));
                    checks.push(Check {
                        what: format!("{example}: puma.rb of `{}`", service.name),
                        script: "puma.sh",
                        args: vec![rb],
                        expect: vec![
                            format!("workers = {}", p.workers.value),
                            format!("min_threads = {}", p.min_threads.value),
                            format!("max_threads = {}", p.threads.value),
                            format!("preload_app = {}", p.preload),
                            format!("worker_timeout = {}", p.timeout.value),
                            "booted: GET ".into(),
                        ],
                    });
                }
                _ => {}
            }
        }

        // Railway's start command (patched into the user's railway.toml, or fresh).
        for artifact in artifacts.iter().filter(|a| a.target == "railway") {
            let doc: toml_edit::DocumentMut = artifact.text.parse().unwrap_or_else(|e| panic!("{example}: {} is not TOML: {e}", artifact.path));
            let command = doc["deploy"]["startCommand"].as_str().unwrap_or_else(|| panic!("{example}: no deploy.startCommand")).to_string();
            // Where the builder may run it without a shell, the line is wrapped as
            // `/bin/sh -c 'exec LINE'` (real_deploy.rs runs both forms).
            let command = command
                .strip_prefix("/bin/sh -c 'exec ")
                .and_then(|c| c.strip_suffix('\''))
                .map_or(command.clone(), |c| c.replace("'\\''", "'"));
            // Railway runs the start command in a shell with PORT set, and routes to it:
            // gunicorn binds $PORT there.
            let on_railway = |s: &headroom::plan::ServicePlan| shell_join(&gunicorn::command(s)).replace(&format!("0.0.0.0:{}", s.port.value), "0.0.0.0:$PORT");
            let service = analysis
                .plan
                .apps()
                .find(|s| command == on_railway(s) || (s.kind == Kind::Puma && command == shell_join(&puma::command(&ctx, s))))
                .unwrap_or_else(|| panic!("{example}: startCommand `{command}` is no app server's command"));
            if service.kind == Kind::Gunicorn {
                checks.push(Check {
                    what: format!("{example}: {} startCommand (PORT={})", artifact.path, service.port.value),
                    script: "gunicorn-cmd.sh",
                    args: vec![command.replace("$PORT", &service.port.value.to_string())],
                    expect: gunicorn_expect(service),
                });
            }
        }
    }

    for class in ["gthread", "gevent", "uvicorn.workers.UvicornWorker"] {
        assert!(classes.contains(class), "no example renders a {class} gunicorn config (saw {classes:?})");
    }
    assert!(pumas > 0, "no example renders a puma.rb");

    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<String, String>)>> = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get()).min(6);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(check) = checks.get(i) else { break };
                    let result = run(check);
                    results.lock().unwrap().push((i, result));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    let mut failures = Vec::new();
    for (i, result) in results {
        match result {
            Ok(_) => eprintln!("ok: {}", checks[i].what),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{} of {} checks failed:\n\n{}", failures.len(), checks.len(), failures.join("\n\n"));
    eprintln!("{} validator runs passed", checks.len());
}
