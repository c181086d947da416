//! The rendered files of every example, fed to the real programs that read them.
//!
//! For each `examples/*/capacity.yaml`: analyze it, render every target (regardless
//! of rule errors, as `render --force` does), write the artifacts to a temp dir and run
//! the matching validator of `tests/validators/` on every nginx.conf, postgres
//! include, pgbouncer.ini, redis.conf and sentinel.conf. Values the servers report
//! back are compared with the plan (`SHOW max_connections`, `CONFIG GET maxmemory`,
//! the sentinel's quorum). A missing program or validator fails the test: install
//! them with `.ci/install-validators`.
//!
//! Both version ends: every example is checked on the host's programs (Debian 12:
//! nginx 1.22, PostgreSQL 15, PgBouncer 1.18, Redis 7.0) and on those of the Debian 13
//! root that `../shared/tools/trixie-root` builds (nginx 1.26, PostgreSQL 17, PgBouncer
//! 1.24, Redis 8.0 and Valkey 8.1), through the validators' HEADROOM_END=newest.
//!
//! Version-gated settings: the test machine has PostgreSQL 15 and PgBouncer 1.18
//! (Debian bookworm), and both reject a parameter they do not know. A file rendered
//! for a newer server is first run as rendered and must be rejected for exactly the
//! gated setting (`reserved_connections`, PG16+; `max_prepared_statements`, PgBouncer
//! 1.21+) and nothing else; then the same plan with the installed version is rendered,
//! must differ only by that setting, and must be accepted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use headroom::analysis::analyze_file;
use headroom::plan::{Detail, Kind, Plan, ServicePlan};
use headroom::spec::Persistence;
use headroom::targets::{self, Artifact, Context, Target};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .expect("examples/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("capacity.yaml"))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
    /// `key = value` lines a validator prints.
    fn values(&self) -> BTreeMap<String, String> {
        self.stdout
            .lines()
            .filter_map(|l| l.split_once(" = "))
            .map(|(k, v)| (k.trim().to_string(), v.split("  #").next().unwrap_or(v).to_string()))
            .collect()
    }
}

/// Which programs check the files: the host's (oldest) or the Debian 13 root's (newest).
#[derive(Clone, Copy, Debug, PartialEq)]
enum End {
    Oldest,
    Newest,
}

impl End {
    fn name(self) -> &'static str {
        match self {
            End::Oldest => "oldest",
            End::Newest => "newest",
        }
    }
}

fn trixie_tool() -> PathBuf {
    let shared = std::env::var_os("HEADROOM_SHARED").map(|s| PathBuf::from(s).join("tools/trixie-root"));
    let candidates = [std::env::var_os("HEADROOM_TRIXIE_TOOL").map(PathBuf::from), shared, Some(root().join("../shared/tools/trixie-root")), Some(root().join("../../shared/tools/trixie-root"))];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .expect("shared/tools/trixie-root not found: the newest end cannot be checked (set HEADROOM_SHARED or HEADROOM_TRIXIE_TOOL)")
}

/// The Debian 13 root (built on first use).
fn trixie_root() -> PathBuf {
    let out = Command::new(trixie_tool()).stdin(Stdio::null()).output().expect("trixie-root runs");
    assert!(out.status.success(), "trixie-root could not build its root: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn validator(end: End, script: &str, args: &[&Path]) -> Run {
    validator_with(end, script, args, &[])
}

fn validator_with(end: End, script: &str, args: &[&Path], env: &[(&str, &str)]) -> Run {
    let path = root().join("tests/validators").join(script);
    assert!(path.is_file(), "validator {} is missing", path.display());
    let out = Command::new("bash")
        .arg(&path)
        .args(args)
        .env("HEADROOM_END", end.name())
        .env("HEADROOM_TRIXIE_TOOL", trixie_tool())
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    Run { ok: out.status.success(), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr: String::from_utf8_lossy(&out.stderr).into() }
}

/// The major version of the newest installed PostgreSQL (what lib.sh runs) under `prefix`
/// (`/` for the host, the Debian 13 root for the newest end).
fn installed_postgres(prefix: &Path) -> u64 {
    std::fs::read_dir(prefix.join("usr/lib/postgresql"))
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("bin/postgres").is_file())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .max()
        .expect("PostgreSQL is not installed under /usr/lib/postgresql: run .ci/install-validators")
}

/// (major, minor) of the pgbouncer an end runs.
fn installed_pgbouncer(end: End) -> (u32, u32) {
    let out = match end {
        End::Oldest => Command::new("pgbouncer").arg("--version").output(),
        End::Newest => Command::new(trixie_tool()).args(["run", "pgbouncer", "--version"]).stdin(Stdio::null()).output(),
    }
    .expect("pgbouncer is not installed: run .ci/install-validators");
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.lines().next().and_then(|l| l.split_whitespace().nth(1)).unwrap_or_default().to_string();
    headroom::plan::resolve::parse_version(&version).unwrap_or_else(|| panic!("cannot read the pgbouncer version from {text:?}"))
}

/// Lines that are settings (not comments, not blank).
fn setting_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with(['#', ';'])).collect()
}

/// `copy` (rendered for the installed version) must be `original` without the
/// setting `gated`, and nothing else.
fn differs_only_by(original: &str, copy: &str, gated: &str) -> Result<(), String> {
    let orig = setting_lines(original);
    let copy_lines = setting_lines(copy);
    let key = |l: &str| l.split(|c: char| c.is_whitespace() || c == '=').find(|t| !t.is_empty()).unwrap_or_default().to_string();
    let expected: Vec<&str> = orig.iter().copied().filter(|l| key(l) != gated).collect();
    if expected != copy_lines || expected.len() == orig.len() {
        return Err(format!("the copy for the installed version should be the file without `{gated}`:\n{original}\n--- copy\n{copy}"));
    }
    Ok(())
}

struct Example<'a> {
    end: End,
    name: String,
    dir: PathBuf,
    plan: &'a Plan,
    ctx: Context<'a>,
    artifacts: Vec<Artifact>,
    failures: Vec<String>,
    checked: usize,
}

impl<'a> Example<'a> {
    fn fail(&mut self, what: String) {
        self.failures.push(format!("[{} on the {} end] {what}", self.name, self.end.name()));
    }
    fn file(&self, path: &str) -> PathBuf {
        self.dir.join(path)
    }
    fn artifact(&self, path: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.path == path)
    }
    fn services(&self, kind: Kind) -> Vec<&'a ServicePlan> {
        self.plan.services.iter().filter(|s| s.kind == kind).collect()
    }
}

fn write_artifacts(dir: &Path, artifacts: &[Artifact]) {
    for a in artifacts {
        let path = dir.join(&a.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &a.text).unwrap();
    }
}

/// Renders one target for a plan with a changed version (written beside the rest).
fn rerender(ex: &Example<'_>, plan: &Plan, target: &dyn Target, path: &str, out: &Path) -> Artifact {
    let ctx = Context { spec: ex.ctx.spec, plan, spec_file: ex.ctx.spec_file.clone(), existing_root: None };
    let artifact = target
        .render(&ctx)
        .unwrap_or_else(|e| panic!("[{}] cannot re-render {path}: {e}", ex.name))
        .into_iter()
        .find(|a| a.path == path)
        .unwrap_or_else(|| panic!("[{}] re-render has no {path}", ex.name));
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(out, &artifact.text).unwrap();
    artifact
}

fn check_nginx(ex: &mut Example<'_>) {
    for service in ex.services(Kind::Nginx) {
        let Detail::Nginx(n) = &service.detail else { continue };
        let path = targets::nginx::path(&ex.ctx, service);
        let Some(a) = ex.artifact(&path) else {
            ex.fail(format!("no nginx.conf rendered for `{}` at {path}", service.name));
            continue;
        };
        let text = a.text.clone();
        for expect in [format!("worker_connections {};", n.worker_connections.value), format!("worker_rlimit_nofile {};", n.rlimit_nofile.value)] {
            if !text.contains(&expect) {
                ex.fail(format!("{path} lacks `{expect}`"));
            }
        }
        for u in &n.upstreams {
            let servers = text.lines().filter(|l| l.trim_start().starts_with("server ") && u.servers.iter().any(|(h, p)| l.contains(&format!(" {h}:{p} ")))).count();
            if servers < u.servers.len() {
                ex.fail(format!("{path}: upstream {} has {servers} server lines, the plan {}", u.name, u.servers.len()));
            }
        }
        let run = validator(ex.end, "nginx.sh", &[&ex.file(&path)]);
        ex.checked += 1;
        if !run.ok {
            ex.fail(format!("nginx rejected {path}\n{}\n{text}", run.describe()));
        }
    }
}

fn check_postgres(ex: &mut Example<'_>, installed: u64) {
    for service in ex.services(Kind::Postgres) {
        let Detail::Postgres(pg) = &service.detail else { continue };
        let path = targets::postgres::path(&ex.ctx, service);
        let Some(a) = ex.artifact(&path) else {
            ex.fail(format!("no postgres include rendered for `{}` at {path}", service.name));
            continue;
        };
        let original = a.text.clone();
        let mut file = ex.file(&path);
        let mut settings = targets::postgres::settings(pg);
        if pg.version.value > installed {
            // As rendered: rejected for reserved_connections alone.
            let run = validator(ex.end, "postgres.sh", &[&file]);
            ex.checked += 1;
            let unknown: Vec<&str> = run.stderr.lines().filter(|l| l.contains("unrecognized configuration parameter")).collect();
            let only_gated = !unknown.is_empty() && unknown.iter().all(|l| l.contains("\"reserved_connections\""));
            if run.ok || !only_gated {
                ex.fail(format!(
                    "PostgreSQL {installed} should reject {path} (PostgreSQL {}) for reserved_connections alone\n{}",
                    pg.version.value,
                    run.describe()
                ));
            }
            // The same plan for the installed version.
            let mut plan = ex.plan.clone();
            let Some(Detail::Postgres(p)) = plan.services.iter_mut().find(|s| s.name == service.name).map(|s| &mut s.detail) else { unreachable!() };
            p.version.value = installed;
            settings = targets::postgres::settings(p);
            file = ex.dir.join("installed-version").join(&path);
            let copy = rerender(ex, &plan, &targets::postgres::Postgres, &path, &file);
            if let Err(e) = differs_only_by(&original, &copy.text, "reserved_connections") {
                ex.fail(format!("{path}: {e}"));
            }
        }
        let run = validator(ex.end, "postgres.sh", &[&file]);
        ex.checked += 1;
        if !run.ok {
            ex.fail(format!("postgres rejected {}\n{}\n{original}", file.display(), run.describe()));
            continue;
        }
        let shown = run.values();
        if shown.get("max_connections").map(String::as_str) != Some(pg.max_connections.value.to_string().as_str()) {
            ex.fail(format!("{path}: SHOW max_connections = {:?}, the plan says {}", shown.get("max_connections"), pg.max_connections.value));
        }
        for s in &settings {
            if shown.get(s.key) != Some(&s.value) {
                ex.fail(format!("{path}: SHOW {} = {:?}, rendered {}", s.key, shown.get(s.key), s.value));
            }
        }
    }
}

fn check_pgbouncer(ex: &mut Example<'_>, installed: (u32, u32)) {
    for service in ex.services(Kind::Pgbouncer) {
        let Detail::Pgbouncer(pgb) = &service.detail else { continue };
        let path = targets::pgbouncer::path(&ex.ctx, service);
        let Some(a) = ex.artifact(&path) else {
            ex.fail(format!("no pgbouncer.ini rendered for `{}` at {path}", service.name));
            continue;
        };
        let original = a.text.clone();
        let userlist = targets::pgbouncer::userlist_path(&path);
        match ex.artifact(&userlist) {
            Some(u) => {
                let entries = setting_lines(&u.text);
                let names_users = pgb.users.iter().all(|user| entries.iter().any(|l| l.starts_with(&format!("\"{user}\" "))));
                if entries.len() != pgb.users.len() || !names_users || entries.iter().any(|l| !l.contains('<')) {
                    ex.fail(format!("{userlist} should hold one placeholder line per user\n{}", u.text));
                }
            }
            None => ex.fail(format!("no {userlist} beside {path}")),
        }
        let mut file = ex.file(&path);
        if pgb.max_prepared_statements.is_some() && installed < (1, 21) {
            let run = validator(ex.end, "pgbouncer.sh", &[&file]);
            ex.checked += 1;
            let errors: Vec<&str> = run.stderr.lines().filter(|l| l.contains(" ERROR ")).collect();
            let only_gated = run.stderr.contains("unknown parameter: pgbouncer/max_prepared_statements")
                && errors.iter().all(|l| l.contains("max_prepared_statements"));
            if run.ok || !only_gated {
                ex.fail(format!(
                    "PgBouncer {}.{} should reject {path} (PgBouncer {}.{}) for max_prepared_statements alone\n{}",
                    installed.0,
                    installed.1,
                    pgb.version.value.0,
                    pgb.version.value.1,
                    run.describe()
                ));
            }
            let mut plan = ex.plan.clone();
            let Some(Detail::Pgbouncer(p)) = plan.services.iter_mut().find(|s| s.name == service.name).map(|s| &mut s.detail) else { unreachable!() };
            p.version.value = installed;
            p.max_prepared_statements = None;
            file = ex.dir.join("installed-version").join(&path);
            let copy = rerender(ex, &plan, &targets::pgbouncer::Pgbouncer, &path, &file);
            if let Err(e) = differs_only_by(&original, &copy.text, "max_prepared_statements") {
                ex.fail(format!("{path}: {e}"));
            }
        }
        let run = validator(ex.end, "pgbouncer.sh", &[&file]);
        ex.checked += 1;
        if !run.ok || !run.stdout.contains("select 1 via pgbouncer") {
            ex.fail(format!("pgbouncer rejected {}\n{}\n{original}", file.display(), run.describe()));
        }
    }
}

fn check_redis(ex: &mut Example<'_>) {
    for service in ex.services(Kind::Redis) {
        let Detail::Redis(r) = &service.detail else { continue };
        let path = targets::redis::path(&ex.ctx, service);
        if ex.artifact(&path).is_none() {
            ex.fail(format!("no redis.conf rendered for `{}` at {path}", service.name));
            continue;
        }
        // The newest end has Valkey 8.1 beside Redis 8.0: both read the same file.
        if ex.end == End::Newest {
            let run = validator_with(ex.end, "redis.sh", &[&ex.file(&path)], &[("HEADROOM_REDIS", "valkey-server")]);
            ex.checked += 1;
            if !run.ok {
                let text = ex.artifact(&path).unwrap().text.clone();
                ex.fail(format!("valkey-server rejected {path}\n{}\n{text}", run.describe()));
            }
        }
        let run = validator(ex.end, "redis.sh", &[&ex.file(&path)]);
        ex.checked += 1;
        if !run.ok {
            let text = ex.artifact(&path).unwrap().text.clone();
            ex.fail(format!("redis-server rejected {path}\n{}\n{text}", run.describe()));
            continue;
        }
        let got = run.values();
        let (appendonly, save) = match r.persistence.value {
            Persistence::None => ("no", String::new()),
            Persistence::Rdb => ("no", targets::redis::RDB_SAVE_POINTS.to_string()),
            Persistence::Aof => ("yes", String::new()),
        };
        let expected = [
            ("maxmemory", r.maxmemory.as_ref().map_or(0, |m| m.value).to_string()),
            ("maxmemory-policy", r.maxmemory_policy.value.clone()),
            ("maxclients", r.maxclients.value.to_string()),
            ("tcp-backlog", r.tcp_backlog.value.to_string()),
            ("appendonly", appendonly.to_string()),
            ("save", save),
        ];
        for (key, want) in expected {
            if got.get(key).map(|v| v.trim()) != Some(want.as_str()) {
                ex.fail(format!("{path}: CONFIG GET {key} = {:?}, the plan says {want:?}", got.get(key)));
            }
        }
        // The same settings as command-line arguments (compose/Kamal `command:`).
        match redis_with_args(ex.end, &targets::redis::server_args(service), &format!("{}-args-{}", ex.name, service.name)) {
            Ok(maxmemory) if maxmemory == r.maxmemory.as_ref().map_or(0, |m| m.value).to_string() => {}
            Ok(other) => ex.fail(format!("redis-server {:?}: CONFIG GET maxmemory = {other}", targets::redis::server_args(service))),
            Err(e) => ex.fail(format!("redis-server {:?}: {e}", targets::redis::server_args(service))),
        }
        ex.checked += 1;

        if let Some(q) = &r.sentinel_quorum {
            let path = targets::redis::sentinel_path(&ex.ctx, service);
            if ex.artifact(&path).is_none() {
                ex.fail(format!("no sentinel.conf rendered for `{}` at {path}", service.name));
                continue;
            }
            let run = validator(ex.end, "redis-sentinel.sh", &[&ex.file(&path)]);
            ex.checked += 1;
            let want = format!("quorum={}", q.value);
            if !run.ok || !run.stdout.lines().any(|l| l.starts_with(&format!("master {} = ", service.name)) && l.ends_with(&want)) {
                ex.fail(format!("redis-sentinel rejected {path} or reports another quorum than {}\n{}", q.value, run.describe()));
            }
        }
    }
}

/// Starts the end's redis-server with `args` (its `--dir` pointed at a temp dir,
/// listening on a unix socket only) and returns what `CONFIG GET maxmemory` says. On
/// the newest end the temp dir is inside the Debian 13 root, named by its path there.
fn redis_with_args(end: End, args: &[String], label: &str) -> Result<String, String> {
    let base = match end {
        End::Oldest => std::env::temp_dir(),
        End::Newest => trixie_root().join("tmp"),
    };
    let dir = tempfile::Builder::new().prefix(&format!("headroom-{label}-")).tempdir_in(&base).map_err(|e| e.to_string())?;
    let tmp = dir.path();
    let seen = |p: &Path| match end {
        End::Oldest => p.display().to_string(),
        End::Newest => Path::new("/").join(p.strip_prefix(base.parent().unwrap()).unwrap()).display().to_string(),
    };
    let mut args: Vec<String> = args[1..].to_vec();
    if let Some(at) = args.iter().position(|a| a == "--dir") {
        args[at + 1] = seen(tmp);
    }
    let sock = tmp.join("redis.sock");
    let mut command = match end {
        End::Oldest => Command::new("redis-server"),
        End::Newest => {
            let mut c = Command::new(trixie_tool());
            c.args(["run", "redis-server"]);
            c
        }
    };
    let mut child = command
        .args(&args)
        .args(["--port", "0", "--unixsocket", &seen(&sock)])
        .args(["--daemonize", "no", "--logfile", ""])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start redis-server: {e}"))?;
    let cli = |cmd: &[&str]| Command::new("redis-cli").arg("-s").arg(&sock).args(cmd).output();
    let started = Instant::now();
    let mut result = Err("redis-server did not come up".to_string());
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if sock.exists() && cli(&["PING"]).is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG") {
            result = cli(&["CONFIG", "GET", "maxmemory"])
                .map_err(|e| e.to_string())
                .map(|o| String::from_utf8_lossy(&o.stdout).lines().nth(1).unwrap_or_default().trim().to_string());
            let _ = cli(&["SHUTDOWN", "NOSAVE"]);
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if child.try_wait().ok().flatten().is_none() {
        std::thread::sleep(Duration::from_millis(300));
        if child.try_wait().ok().flatten().is_none() {
            // In the root the server is a descendant of trixie-root's process: stop those first.
            kill_descendants(child.id());
            let _ = child.kill();
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    result.map_err(|e| format!("{e}\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Stops every process started under `pid` (by PID, deepest first).
fn kill_descendants(pid: u32) {
    let out = Command::new("pgrep").args(["-P", &pid.to_string()]).output();
    for child in out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default().split_whitespace().filter_map(|p| p.parse::<u32>().ok()) {
        kill_descendants(child);
        let _ = Command::new("kill").arg(child.to_string()).status();
    }
}

fn check_example(end: End, spec_path: &Path, postgres: u64, pgbouncer: (u32, u32)) -> (usize, Vec<String>) {
    let name = spec_path.parent().unwrap().file_name().unwrap().to_string_lossy().into_owned();
    let analysis = match analyze_file(spec_path) {
        Ok(a) => a,
        Err(f) => return (0, vec![format!("[{name}] does not load: {:#?}", f.diagnostics)]),
    };
    let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
    // A render error is a failure; the targets that did render are still checked.
    let mut render_errors = Vec::new();
    let artifacts = match targets::render_all(&ctx, &[]) {
        Ok(a) => a,
        Err(errors) => {
            render_errors = errors.iter().map(|e| format!("[{name}] render error: {e}")).collect();
            targets::TARGETS.iter().filter_map(|t| t.render(&ctx).ok()).flatten().collect()
        }
    };
    let tmp = tempfile::Builder::new().prefix(&format!("headroom-real-{name}-{}-", end.name())).tempdir().unwrap();
    write_artifacts(tmp.path(), &artifacts);
    let mut ex = Example { end, name, dir: tmp.path().to_path_buf(), plan: &analysis.plan, ctx, artifacts, failures: render_errors, checked: 0 };
    check_nginx(&mut ex);
    check_postgres(&mut ex, postgres);
    check_pgbouncer(&mut ex, pgbouncer);
    check_redis(&mut ex);
    if !ex.failures.is_empty() {
        // Keep the files for a look.
        let kept = tmp.keep();
        ex.failures.push(format!("[{}] files kept in {}", ex.name, kept.display()));
    }
    (ex.checked, ex.failures)
}

#[test]
fn every_example_is_accepted_by_the_real_programs() {
    let specs = examples();
    assert!(specs.len() >= 6, "expected the shipped examples, found {specs:?}");
    for program in ["nginx", "pgbouncer", "redis-server", "redis-cli"] {
        let found = Command::new("sh").arg("-c").arg(format!("command -v {program}")).output().is_ok_and(|o| o.status.success());
        assert!(found, "{program} is not installed: run .ci/install-validators");
    }
    let ends = [
        (End::Oldest, installed_postgres(Path::new("/")), installed_pgbouncer(End::Oldest)),
        (End::Newest, installed_postgres(&trixie_root()), installed_pgbouncer(End::Newest)),
    ];
    assert!(ends[1].1 > ends[0].1 && ends[1].2 > ends[0].2, "the two ends run different versions: {ends:?}");
    let results: Vec<(usize, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = ends.iter().flat_map(|&(end, postgres, pgbouncer)| specs.iter().map(move |p| (end, p, postgres, pgbouncer))).map(|(end, p, postgres, pgbouncer)| s.spawn(move || check_example(end, p, postgres, pgbouncer))).collect();
        handles.into_iter().map(|h| h.join().expect("example thread")).collect()
    });
    let checked: usize = results.iter().map(|r| r.0).sum();
    let failures: Vec<String> = results.into_iter().flat_map(|r| r.1).collect();
    assert!(failures.is_empty(), "{} failure(s):\n\n{}", failures.len(), failures.join("\n\n"));
    // Per end: nginx 2, postgres 6 (+5 rejected as rendered on the oldest), pgbouncer 3
    // (+3), redis 4 x 2 (+4 valkey on the newest), sentinel 1.
    assert!(checked >= 40, "only {checked} real-program runs");
    eprintln!("{checked} real-program runs over {} examples on both ends", specs.len());
}

/// A host install (no container target): each data server listens on loopback and the
/// private addresses of its machine group, never on every interface. The machine
/// group lists a loopback alias this host has (127.0.0.2) and an address it does not
/// have (10.255.0.31, skipped): the real servers start with the file's own listen
/// setting, answer through 127.0.0.2 and refuse 127.0.0.3, which a server bound to
/// 0.0.0.0 would answer on. The same spec rendered for compose (files read in a
/// container, bound to every interface) must fail that refusal: the check can fail.
#[test]
fn a_host_install_listens_on_its_machine_address_only_on_both_ends() {
    const SPEC: &str = "version: 1\nname: hosted\nmachines:\n  web: { count: 1, addresses: [127.0.0.5] }\n  db: { count: 2, addresses: [127.0.0.2, 10.255.0.31] }\nservices:\n  web: { kind: gunicorn, workers: 2, machine: web, uses: { pool: { pool: 5 }, cache: { pool: 5 } } }\n  pool: { kind: pgbouncer, machine: db, uses: { main: {} } }\n  main: { kind: postgres, machine: db }\n  cache: { kind: redis, machine: db }\n";
    let render = |yaml: &str, dir: &Path| -> Vec<Artifact> {
        let analysis = headroom::analysis::analyze_text("capacity.yaml", yaml).expect("spec loads");
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        let artifacts = targets::render_all(&ctx, &[]).expect("renders");
        write_artifacts(dir, &artifacts);
        artifacts
    };
    let tmp = tempfile::Builder::new().prefix("headroom-host-listen-").tempdir().unwrap();
    let artifacts = render(SPEC, tmp.path());
    let text = |path: &str| artifacts.iter().find(|a| a.path == path).unwrap_or_else(|| panic!("{path} rendered")).text.clone();
    assert!(setting_lines(&text("redis/cache.conf")).contains(&"bind 127.0.0.1 -::1 -127.0.0.2 -10.255.0.31"), "{}", text("redis/cache.conf"));
    assert!(text("postgres/main.conf").contains("\nlisten_addresses = 'localhost,127.0.0.2,10.255.0.31'"), "{}", text("postgres/main.conf"));
    assert!(setting_lines(&text("pgbouncer/pgbouncer.ini")).contains(&"listen_addr = 127.0.0.1,127.0.0.2,10.255.0.31"));
    for a in artifacts.iter().filter(|a| ["redis/", "postgres/", "pgbouncer/"].iter().any(|d| a.path.starts_with(d))) {
        assert!(!a.text.contains("0.0.0.0"), "{} listens on every interface:\n{}", a.path, a.text);
    }
    let listen = [("HEADROOM_LISTEN_ON", "127.0.0.2"), ("HEADROOM_NOT_ON", "127.0.0.3")];
    let mut failures = Vec::new();
    for end in [End::Oldest, End::Newest] {
        for (script, file, expect) in [
            ("redis.sh", "redis/cache.conf", "bind = 127.0.0.1 -::1 -127.0.0.2 -10.255.0.31"),
            ("postgres.sh", "postgres/main.conf", "listen_addresses = localhost,127.0.0.2,10.255.0.31"),
            ("pgbouncer.sh", "pgbouncer/pgbouncer.ini", "select 1 via pgbouncer"),
        ] {
            let run = validator_with(end, script, &[&tmp.path().join(file)], &listen);
            if !run.ok || !run.stdout.contains(expect) || !run.stdout.contains("refused on 127.0.0.3:") {
                failures.push(format!("[{} end] {script} {file}: expected `{expect}` and a refusal on 127.0.0.3\n{}", end.name(), run.describe()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // In a container the server binds every interface: on a host that answers 127.0.0.3.
    let contained = tempfile::Builder::new().prefix("headroom-container-listen-").tempdir().unwrap();
    render(&format!("{SPEC}deploy:\n  compose: {{}}\n"), contained.path());
    let run = validator_with(End::Oldest, "redis.sh", &[&contained.path().join("redis/cache.conf")], &listen);
    assert!(!run.ok && run.stderr.contains("127.0.0.3") && run.stderr.contains("accepted a connection"), "a file bound to 0.0.0.0 must fail the refusal check:\n{}", run.describe());
}
