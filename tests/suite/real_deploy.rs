//! The orchestration files every example renders, checked by the real programs: each
//! example is analyzed and rendered with every target (whatever the rules say, as
//! `render --force` does), written to a temp dir, and then
//! - every compose file goes through tests/validators/compose.sh (docker-compose
//!   config + the compose-spec schema + resource values),
//! - every Kamal deploy.yml through Kamal 2.12's own configuration code
//!   (`$HEADROOM_SHARED/tools/kamal-validate`: keys, types and semantic checks),
//! - every sysctl file through tests/validators/sysctl.sh (keys exist, value shapes),
//! - sysctl/apply.sh through `bash -n`, a `--dry-run` as an unprivileged user that must
//!   change nothing, and (as root) two real runs against a stand-in `sysctl` and a
//!   staging directory: the second run must change nothing.
//!
//! A missing validator or program fails the test: run `.ci/install-validators`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use headroom::analysis::analyze_file;
use headroom::plan::Detail;
use headroom::targets::{self, Artifact, Context};

use crate::deploy_support::{compose_resolved, repo, require_program, run, text, validator};

/// Kamal's own validation, run offline: `$HEADROOM_SHARED/tools/kamal-validate`, by
/// default `<repo>/../shared/tools/kamal-validate`. Missing means the proof cannot run:
/// the test fails.
fn kamal_validate() -> PathBuf {
    let shared = std::env::var_os("HEADROOM_SHARED").map(PathBuf::from).unwrap_or_else(|| repo().join("../shared"));
    let tool = shared.join("tools/kamal-validate");
    assert!(tool.is_file(), "{} is missing: set HEADROOM_SHARED to the directory holding tools/kamal-validate", tool.display());
    tool
}

/// Runs Kamal's validation (and secret resolution, to dummies) on a deploy.yml.
fn kamal_accepts(file: &Path) -> Result<(), String> {
    let out = run(Command::new(kamal_validate()).arg("--resolve-secrets").arg(file));
    let shown = text(&out);
    match out.status.code() {
        Some(0) if shown.trim_end().ends_with("OK") => Ok(()),
        Some(1) => Err(shown),
        _ => panic!("kamal-validate could not run on {}:\n{shown}", file.display()),
    }
}

fn examples() -> Vec<PathBuf> {
    let mut specs: Vec<PathBuf> = fs::read_dir(repo().join("examples"))
        .expect("examples/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("capacity.yaml"))
        .filter(|p| p.is_file())
        .collect();
    specs.sort();
    assert!(!specs.is_empty(), "no examples/*/capacity.yaml");
    specs
}

struct Rendered {
    name: String,
    dir: tempfile::TempDir,
    artifacts: Vec<Artifact>,
    /// Upstream server host names of every nginx in the plan.
    upstream_hosts: Vec<String>,
}

impl Rendered {
    fn path(&self, artifact: &Artifact) -> PathBuf {
        self.dir.path().join(&artifact.path)
    }
    fn of(&self, target: &str) -> impl Iterator<Item = &Artifact> + '_ {
        let target = target.to_string();
        self.artifacts.iter().filter(move |a| a.target == target)
    }
}

fn render(spec: &Path) -> Rendered {
    let name = spec.parent().and_then(|p| p.file_name()).unwrap().to_string_lossy().into_owned();
    let analysis = analyze_file(spec).unwrap_or_else(|f| panic!("{name}: the spec does not load: {:#?}", f.diagnostics));
    let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
    let artifacts = targets::render_all(&ctx, &[]).unwrap_or_else(|errors| {
        panic!("{name}: rendering failed:\n{}", errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))
    });
    let dir = tempfile::Builder::new().prefix(&format!("headroom-{name}-")).tempdir().expect("temp dir");
    // World-readable, so the unprivileged dry run can read the files.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    for artifact in &artifacts {
        let path = dir.path().join(&artifact.path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut parent = path.parent().unwrap().to_path_buf();
        while parent != dir.path() {
            fs::set_permissions(&parent, fs::Permissions::from_mode(0o755)).unwrap();
            parent = parent.parent().unwrap().to_path_buf();
        }
        fs::write(&path, &artifact.text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    }
    let upstream_hosts = analysis
        .plan
        .services
        .iter()
        .filter_map(|s| match &s.detail {
            Detail::Nginx(n) => Some(n.upstreams.iter().flat_map(|u| u.servers.iter().map(|(h, _)| h.clone())).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    Rendered { name, dir, artifacts, upstream_hosts }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The build contexts a compose file names: a repository would hold them, and
/// docker-compose refuses a build path that does not exist.
fn create_build_contexts(file: &Path) {
    let dir = file.parent().unwrap();
    for line in fs::read_to_string(file).unwrap().lines() {
        if let Some(value) = line.trim_start().strip_prefix("build: ") {
            let context: String = serde_json::from_str(value).unwrap_or_else(|_| panic!("build context {value} is not a quoted string"));
            fs::create_dir_all(dir.join(context)).unwrap();
        }
    }
}

#[test]
fn every_example_renders_files_the_real_programs_accept() {
    let rendered: Vec<Rendered> = examples().iter().map(|s| render(s)).collect();
    let mut checked: BTreeMap<&str, usize> = BTreeMap::new();

    // Kamal 1 is never emitted, in any file.
    for r in &rendered {
        for a in &r.artifacts {
            assert!(!a.text.to_lowercase().contains("traefik"), "{}: {} mentions traefik", r.name, a.path);
        }
    }

    require_program("docker-compose");
    let compose_sh = validator("compose.sh");
    for r in &rendered {
        for a in r.of("compose") {
            let file = r.path(a);
            create_build_contexts(&file);
            let out = run(Command::new("bash").arg(&compose_sh).arg(&file));
            assert!(out.status.success(), "{}: compose.sh rejected {}:\n{}", r.name, a.path, text(&out));
            *checked.entry("compose").or_default() += 1;
        }
    }

    for r in &rendered {
        for a in r.of("kamal") {
            if let Err(refusal) = kamal_accepts(&r.path(a)) {
                panic!("{}: Kamal refuses {}:\n{refusal}\n{}", r.name, a.path, a.text);
            }
            *checked.entry("kamal").or_default() += 1;
        }
    }

    let sysctl_sh = validator("sysctl.sh");
    for r in &rendered {
        for a in r.of("sysctl").filter(|a| a.path.ends_with(".conf")) {
            let out = run(Command::new("bash").arg(&sysctl_sh).arg(r.path(a)));
            assert!(out.status.success(), "{}: sysctl.sh rejected {}:\n{}", r.name, a.path, text(&out));
            *checked.entry("sysctl").or_default() += 1;
        }
    }

    for r in &rendered {
        if let Some(apply) = r.of("sysctl").find(|a| a.path.ends_with("apply.sh")) {
            let confs: Vec<&Artifact> = r.of("sysctl").filter(|a| a.path.ends_with(".conf")).collect();
            assert!(!confs.is_empty(), "{}: apply.sh without a machine file", r.name);
            check_apply_script(r, apply, &confs);
            *checked.entry("apply.sh").or_default() += 1;
        }
    }

    eprintln!("files checked by the real programs: {checked:?}");
    // Every kind of file was really checked at least once.
    for kind in ["compose", "kamal", "sysctl", "apply.sh"] {
        assert!(checked.get(kind).copied().unwrap_or(0) > 0, "no example produced a {kind} file to check; checked {checked:?}");
    }
}

/// The compose services of the django-compose example are the servers nginx proxies to:
/// web-1..web-15, as docker-compose itself lists them.
#[test]
fn django_compose_services_match_nginx_upstream_servers() {
    require_program("docker-compose");
    let r = render(&repo().join("examples/django-compose/capacity.yaml"));
    let compose = r.of("compose").next().expect("django-compose renders a compose file");
    let file = r.path(compose);
    create_build_contexts(&file);
    let out = run(Command::new("docker-compose").arg("-f").arg(&file).arg("config").arg("--services").current_dir(file.parent().unwrap()));
    assert!(out.status.success(), "docker-compose config --services failed:\n{}", text(&out));
    let services: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();

    let expected: Vec<String> = (1..=15).map(|i| format!("web-{i}")).collect();
    for name in &expected {
        assert!(services.contains(name), "compose has no service {name}: {services:?}");
    }
    assert!(!services.iter().any(|s| s == "web"), "no unexpanded `web` service: {services:?}");
    let mut hosts = r.upstream_hosts.clone();
    hosts.sort();
    hosts.dedup();
    let mut sorted_expected = expected.clone();
    sorted_expected.sort();
    assert_eq!(hosts, sorted_expected, "the plan's upstream servers");
    // And the rendered nginx.conf names exactly these servers.
    let nginx = r.of("nginx").find(|a| a.path.ends_with(".conf")).expect("an nginx config");
    let mut servers: Vec<String> = nginx
        .text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("server "))
        .filter_map(|l| l.split(':').next())
        .map(|h| h.trim().to_string())
        .filter(|h| h.starts_with("web-"))
        .collect();
    servers.sort();
    servers.dedup();
    assert_eq!(servers, sorted_expected, "nginx upstream servers in {}", nginx.path);
    for host in &servers {
        assert!(services.contains(host), "nginx proxies to {host}, which compose does not define");
    }
}

/// A stand-in for sysctl(8): reads come from the real kernel unless the stand-in has
/// stored a value; writes are stored in `$FAKE_SYSCTL_DIR`, or refused when
/// `$FAKE_SYSCTL_DIR` is unset (the dry run must never write).
fn fake_sysctl(dir: &Path) -> PathBuf {
    let real = Command::new("sh").arg("-c").arg("command -v sysctl").output().expect("sh");
    let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
    assert!(!real.is_empty(), "sysctl is not installed: run .ci/install-validators");
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let script = format!(
        r#"#!/usr/bin/env bash
set -euo pipefail
REAL={real}
write=0 quiet=0 args=()
for a in "$@"; do
  case "$a" in
    -w) write=1 ;;
    -q) quiet=1 ;;
    -n) ;;
    *) args+=("$a") ;;
  esac
done
if [ "$write" -eq 1 ]; then
  if [ -z "${{FAKE_SYSCTL_DIR:-}}" ]; then echo "fake sysctl: refusing to write ${{args[*]}}" >&2; exit 97; fi
  for kv in "${{args[@]}}"; do printf '%s' "${{kv#*=}}" >"$FAKE_SYSCTL_DIR/${{kv%%=*}}"; done
  exit 0
fi
for key in "${{args[@]}}"; do
  if [ -n "${{FAKE_SYSCTL_DIR:-}}" ] && [ -f "$FAKE_SYSCTL_DIR/$key" ]; then cat "$FAKE_SYSCTL_DIR/$key"; echo; else "$REAL" -n "$key"; fi
done
"#
    );
    let path = bin.join("sysctl");
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn snapshot_etc_sysctl_d() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir("/etc/sysctl.d")
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| (e.file_name().to_string_lossy().into_owned(), fs::read(e.path()).unwrap_or_default())).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn kernel_values(keys: &[String]) -> Vec<String> {
    keys.iter()
        .map(|k| fs::read_to_string(format!("/proc/sys/{}", k.replace('.', "/"))).unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn keys_of(conf: &str) -> Vec<String> {
    conf.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| l.split('=').next().unwrap().trim().to_string())
        .collect()
}

fn check_apply_script(r: &Rendered, apply: &Artifact, confs: &[&Artifact]) {
    let script = r.path(apply);
    let out = run(Command::new("bash").arg("-n").arg(&script));
    assert!(out.status.success(), "{}: bash -n {}:\n{}", r.name, apply.path, text(&out));

    let scratch = tempfile::Builder::new().prefix("headroom-apply-").tempdir().unwrap();
    let bin = fake_sysctl(scratch.path());
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let root = is_root();

    for conf in confs {
        let file = r.path(conf);
        let keys = keys_of(&conf.text);
        let before_kernel = kernel_values(&keys);
        let before_etc = snapshot_etc_sysctl_d();

        // Dry run as an unprivileged user (when we are root, as `nobody`): shows every
        // key, changes nothing, and never calls `sysctl -w` (the stand-in refuses).
        let mut dry = if root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "bash"]);
            c
        } else {
            Command::new("bash")
        };
        dry.arg(&script).arg("--dry-run").arg(&file).env("PATH", &path).env_remove("FAKE_SYSCTL_DIR").env_remove("HEADROOM_SYSCTL_D");
        let out = run(&mut dry);
        let shown = text(&out);
        assert!(out.status.success(), "{}: {} --dry-run {} failed:\n{shown}", r.name, apply.path, conf.path);
        for key in &keys {
            assert!(shown.contains(key.as_str()), "{}: the dry run does not show {key}:\n{shown}", r.name);
        }
        assert!(shown.contains("dry run: nothing was changed") || shown.contains("nothing to change"), "{shown}");
        assert_eq!(kernel_values(&keys), before_kernel, "{}: the dry run changed the kernel", r.name);
        assert_eq!(snapshot_etc_sysctl_d(), before_etc, "{}: the dry run changed /etc/sysctl.d", r.name);

        // Without --dry-run, an unprivileged user is refused before anything happens.
        if root {
            let out = run(Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "bash"])
                .arg(&script)
                .arg(&file)
                .env("PATH", &path)
                .env_remove("FAKE_SYSCTL_DIR"));
            assert!(!out.status.success() && text(&out).contains("needs root"), "{}: a non-root run was not refused:\n{}", r.name, text(&out));

            // Two real runs against the stand-in kernel and a staging directory: the
            // first sets what differs and installs the file, the second changes nothing.
            let kernel = scratch.path().join(format!("kernel-{}", conf.path.replace('/', "_")));
            let staged = scratch.path().join(format!("sysctl.d-{}", conf.path.replace('/', "_")));
            fs::create_dir_all(&kernel).unwrap();
            fs::create_dir_all(&staged).unwrap();
            let real_run = || {
                run(Command::new("bash")
                    .arg(&script)
                    .arg(&file)
                    .env("PATH", &path)
                    .env("FAKE_SYSCTL_DIR", &kernel)
                    .env("HEADROOM_SYSCTL_D", &staged))
            };
            let first = real_run();
            assert!(first.status.success(), "{}: first run of {} on {}:\n{}", r.name, apply.path, conf.path, text(&first));
            let installed: Vec<PathBuf> = fs::read_dir(&staged).unwrap().map(|e| e.unwrap().path()).collect();
            assert_eq!(installed.len(), 1, "one file installed: {installed:?}");
            let second = real_run();
            let shown = text(&second);
            assert!(second.status.success(), "{shown}");
            assert!(shown.contains("nothing to change"), "{}: the second run of {} changed something:\n{shown}", r.name, conf.path);
            assert!(!shown.contains(" set\n") && !shown.contains("wrote "), "{shown}");
            // The installed file is itself a valid sysctl file.
            let out = run(Command::new("bash").arg(validator("sysctl.sh")).arg(&installed[0]));
            assert!(out.status.success(), "installed file rejected:\n{}", text(&out));
            assert_eq!(kernel_values(&keys), before_kernel, "{}: the staged run touched the real kernel", r.name);
            assert_eq!(snapshot_etc_sysctl_d(), before_etc, "{}: the staged run touched /etc/sysctl.d", r.name);
        } else {
            eprintln!("note: not root, so the refused non-root run and the staged real runs of apply.sh were not exercised");
        }
    }
}

/// What a deploy fixture says it expects, in its `x-expect:` key (ignored by load).
enum Expect {
    /// The spec loads and every rendered file passes its real program.
    Ok,
    /// Load refuses the spec with a message containing `message`, at `LINE:COL`.
    Load { message: String, at: String },
}

fn expectation(spec: &Path) -> Expect {
    let value: serde_json::Value = serde_saphyr::from_str(&fs::read_to_string(spec).unwrap()).expect("fixture is YAML");
    let expect = value.get("x-expect").unwrap_or_else(|| panic!("{} has no x-expect", spec.display()));
    if let Some(message) = expect.get("load").and_then(|m| m.as_str()) {
        let at = expect.get("at").and_then(|a| a.as_str()).unwrap_or_else(|| panic!("{}: x-expect.load needs `at: LINE:COL`", spec.display()));
        return Expect::Load { message: message.to_string(), at: at.to_string() };
    }
    assert!(expect.as_object().is_some_and(|o| o.values().all(|v| v == "ok")), "{}: x-expect is {{ <target>: ok }} or {{ load, at }}", spec.display());
    Expect::Ok
}

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let mut specs: Vec<PathBuf> = fs::read_dir(repo().join("tests/fixtures/deploy").join(dir))
        .unwrap_or_else(|e| panic!("tests/fixtures/deploy/{dir}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    specs.sort();
    assert!(!specs.is_empty(), "no fixtures in tests/fixtures/deploy/{dir}");
    specs
}

/// A spec that `load` must refuse: the refusal names the program's limit, points at
/// the line and column, carries a fix, and `headroom render` exits 2 writing nothing.
fn assert_refused_at_load(spec: &Path, message: &str, at: &str) {
    let name = spec.file_name().unwrap().to_string_lossy();
    let failure = match analyze_file(spec) {
        Ok(_) => panic!("{name}: loads, but load should refuse it with `{message}`"),
        Err(f) => f,
    };
    let found = failure.diagnostics.iter().find(|d| d.message.contains(message)).unwrap_or_else(|| {
        panic!("{name}: no load error says `{message}`:\n{:#?}", failure.diagnostics.iter().map(|d| &d.message).collect::<Vec<_>>())
    });
    let span = found.span.as_ref().unwrap_or_else(|| panic!("{name}: `{}` has no line:column", found.message));
    assert_eq!(format!("{}:{}", span.line, span.column), at, "{name}: `{}` points at the wrong place", found.message);
    assert!(found.fix.as_deref().is_some_and(|f| !f.is_empty()), "{name}: `{}` has no fix", found.message);
    let out_dir = tempfile::tempdir().unwrap();
    let out = run(Command::new(env!("CARGO_BIN_EXE_headroom")).arg("render").arg(spec).arg("-o").arg(out_dir.path()).arg("--force"));
    assert_eq!(out.status.code(), Some(2), "{name}: render should exit 2:\n{}", text(&out));
    assert!(text(&out).contains(&format!("{}:{at}", spec.display())), "{name}: render names no file:line:column:\n{}", text(&out));
    assert_eq!(fs::read_dir(out_dir.path()).unwrap().count(), 0, "{name}: render wrote files for a spec it refused");
}

/// Kamal deployments of many shapes (tests/fixtures/deploy/kamal/*.yaml): several
/// hosts and roles, custom certificates, a local registry, Docker Hub, IPv6 hosts,
/// an app server not named `web`, hostile env values. Each rendered deploy.yml passes
/// Kamal 2.12's own validation, or load refuses the spec with Kamal's limit, its
/// file:line:column and a fix.
#[test]
fn kamal_accepts_every_rendered_deploy_yml_or_load_refuses_the_spec() {
    let (mut accepted, mut refused) = (0, 0);
    for spec in fixtures("kamal") {
        let name = spec.file_name().unwrap().to_string_lossy().into_owned();
        match expectation(&spec) {
            Expect::Load { message, at } => {
                assert_refused_at_load(&spec, &message, &at);
                refused += 1;
            }
            Expect::Ok => {
                let r = render(&spec);
                let deploy = r.of("kamal").next().unwrap_or_else(|| panic!("{name}: no deploy.yml rendered"));
                if let Err(refusal) = kamal_accepts(&r.path(deploy)) {
                    panic!("{name}: Kamal refuses {}:\n{refusal}\n{}", deploy.path, deploy.text);
                }
                accepted += 1;
            }
        }
    }
    eprintln!("kamal fixtures: {accepted} accepted by Kamal, {refused} refused at load");
    assert!(accepted >= 4 && refused >= 4, "the fixtures cover both outcomes");
}

/// Compose deployments (tests/fixtures/deploy/compose/*.yaml): the file passes
/// docker-compose and the compose-spec schema, AND docker-compose's own reading of it
/// gives back what the spec says: every env value unchanged (`$`, `${...}`, NEL,
/// U+2028, DEL, tabs and newlines included), secrets by reference from the
/// environment, build contexts and config mounts at the spec's paths although the
/// compose file sits in a subfolder, job commands as written.
#[test]
fn compose_reads_back_every_value_and_path_of_the_spec() {
    require_program("docker-compose");
    let compose_sh = validator("compose.sh");
    for spec in fixtures("compose") {
        let name = spec.file_name().unwrap().to_string_lossy().into_owned();
        if let Expect::Load { message, at } = expectation(&spec) {
            assert_refused_at_load(&spec, &message, &at);
            continue;
        }
        let r = render(&spec);
        let compose = r.of("compose").next().unwrap_or_else(|| panic!("{name}: no compose file"));
        let file = r.path(compose);
        create_build_contexts(&file);
        let out = run(Command::new("bash").arg(&compose_sh).arg(&file));
        assert!(out.status.success(), "{name}: compose.sh rejected {}:\n{}", compose.path, text(&out));

        let analysis = analyze_file(&spec).unwrap();
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        let secrets: Vec<(String, String)> =
            analysis.plan.services.iter().flat_map(|s| s.env_secret.iter()).map(|n| (n.clone(), format!("value-of-{n} with $ and spaces"))).collect();
        let resolved = compose_resolved(&file, &secrets);
        let root = r.dir.path().canonicalize().unwrap();
        for service in &analysis.plan.services {
            let names = targets::compose::service_names(&ctx, service);
            assert!(!names.is_empty(), "{name}: {} has no compose service", service.name);
            for compose_name in &names {
                let got = &resolved[compose_name.as_str()];
                assert!(got.is_object(), "{name}: compose has no service {compose_name}");
                if compose_name.contains("-sentinel-") || compose_name.ends_with("-cluster-init") {
                    continue;
                }
                for (key, value) in &service.env_clear {
                    assert_eq!(got["environment"][key].as_str(), Some(value.as_str()), "{name}: {compose_name} env {key} changed on its way through compose");
                }
                for (secret, value) in &secrets {
                    if service.env_secret.contains(secret) {
                        assert_eq!(got["environment"][secret].as_str(), Some(value.as_str()), "{name}: {compose_name} secret {secret} is not taken from the environment");
                    }
                }
                let build = match &service.detail {
                    headroom::plan::Detail::Gunicorn(g) => g.build.clone(),
                    headroom::plan::Detail::Puma(p) => p.build.clone(),
                    headroom::plan::Detail::Job(j) => j.build.clone(),
                    _ => None,
                };
                if let Some(build) = build {
                    let expected = root.join(&build).canonicalize().unwrap_or_else(|_| panic!("{name}: {compose_name}: the build context {build} was not created where the spec puts it: compose reads it from another folder"));
                    assert_eq!(got["build"].as_str().map(PathBuf::from), Some(expected), "{name}: {compose_name} builds from the wrong folder");
                }
                if let headroom::plan::Detail::Job(j) = &service.detail
                    && let Some(command) = &j.command
                {
                    assert_eq!(got["command"].as_str(), Some(command.as_str()), "{name}: {compose_name} command changed");
                }
                for volume in got["volumes"].as_array().unwrap() {
                    let source = volume[0].as_str().unwrap();
                    if source.starts_with('/') {
                        let rel = Path::new(source).strip_prefix(&root).unwrap_or_else(|_| panic!("{name}: {compose_name} mounts {source}, outside the output"));
                        let rel = rel.to_string_lossy();
                        assert!(
                            r.artifacts.iter().any(|a| a.path == rel) || rel.ends_with("userlist.txt"),
                            "{name}: {compose_name} mounts {rel}, which render did not write"
                        );
                    }
                }
            }
        }
    }
}

/// Splits a command line as Docker's exec form receives Railway's start command: POSIX
/// shell words, no expansion (Python's shlex, as the validators use).
fn exec_form_words(line: &str) -> Vec<String> {
    let out = run(Command::new("/usr/bin/python3").args(["-c", "import json,shlex,sys; print(json.dumps(shlex.split(sys.argv[1])))", line]));
    assert!(out.status.success(), "shlex.split({line}): {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// railway.toml's start command binds the port Railway gives in `$PORT`, whichever way
/// Railway runs it: in a shell (Railpack, Nixpacks: the sfpermits example's file) and
/// in exec form, without a shell (a Dockerfile or image; and a fresh file, where the
/// builder is unknown). A stand-in `gunicorn` records the arguments it is started with;
/// they must hold the port, and the real gunicorn must accept them.
#[test]
fn railway_start_command_binds_port_in_a_shell_and_in_exec_form() {
    let spec = repo().join("examples/sfpermits-railway/capacity.yaml");
    let analysis = analyze_file(&spec).unwrap();
    let example_root = spec.parent().unwrap().to_path_buf();
    let dockerfile_root = tempfile::tempdir().unwrap();
    fs::create_dir_all(dockerfile_root.path().join("web")).unwrap();
    fs::write(dockerfile_root.path().join("web/railway.toml"), "[build]\nbuilder = \"DOCKERFILE\"\ndockerfilePath = \"web/Dockerfile\"\n").unwrap();

    let scratch = tempfile::tempdir().unwrap();
    let bin = scratch.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let record = scratch.path().join("argv");
    fs::write(bin.join("gunicorn"), "#!/bin/sh\nprintf '%s\\0' \"$@\" >\"$RECORD_ARGV\"\n").unwrap();
    fs::set_permissions(bin.join("gunicorn"), fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());

    let cases: [(&str, Option<&Path>, bool); 3] =
        [("nixpacks (shell)", Some(&example_root), false), ("dockerfile (exec form)", Some(dockerfile_root.path()), true), ("fresh file (exec form)", None, true)];
    for (what, root, exec_form) in cases {
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: root };
        let artifacts = targets::render_all(&ctx, &["railway".to_string()]).unwrap();
        let doc: toml_edit::DocumentMut = artifacts[0].text.parse().unwrap();
        let line = doc["deploy"]["startCommand"].as_str().unwrap().to_string();
        let _ = fs::remove_file(&record);
        let mut cmd = if exec_form {
            let words = exec_form_words(&line);
            let mut c = Command::new(&words[0]);
            c.args(&words[1..]);
            c
        } else {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(&line);
            c
        };
        let out = run(cmd.env_clear().env("PATH", &path).env("PORT", "4321").env("RECORD_ARGV", &record));
        assert!(out.status.success(), "{what}: `{line}` did not start gunicorn:\n{}", text(&out));
        let argv: Vec<String> = fs::read(&record)
            .unwrap_or_else(|_| panic!("{what}: `{line}` never started gunicorn"))
            .split(|b| *b == 0)
            .filter(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        assert!(argv.iter().any(|w| w == "0.0.0.0:4321"), "{what}: `{line}` started gunicorn without the port: {argv:?}");
        assert!(!argv.iter().any(|w| w.contains('$')), "{what}: `{line}` passed a `$` through: {argv:?}");
        let check = run(Command::new("bash").arg(validator("gunicorn-cmd.sh")).arg("gunicorn").args(&argv));
        assert!(check.status.success(), "{what}: gunicorn refuses {argv:?}:\n{}", text(&check));
    }
}

/// A Kamal redis accessory's `cmd` goes through two shells: the host's (Kamal runs
/// `docker run ... IMAGE CMD` over SSH) and the container's `sh -c`, which reads the
/// password from the secret Kamal put in the container's environment and hands over to
/// the image's entrypoint. Run through both for real (with an entrypoint that prints
/// what it gets), the server receives the rendered flags plus the password, verbatim,
/// however hostile it is; the host's environment, which lacks it, changes nothing.
#[test]
fn kamal_redis_accessory_gets_its_password_from_the_container_environment() {
    let r = render(&repo().join("examples/rails-kamal/capacity.yaml"));
    let analysis = analyze_file(&repo().join("examples/rails-kamal/capacity.yaml")).unwrap();
    let deploy = r.of("kamal").next().expect("a deploy.yml");
    let parsed: serde_json::Value = serde_saphyr::from_str(&deploy.text).expect("deploy.yml is YAML");
    let accessories = parsed["accessories"].as_object().expect("accessories");
    let (name, redis) = accessories.iter().find(|(_, a)| a["image"].as_str().is_some_and(|i| i.starts_with("redis"))).expect("a redis accessory");
    let service = analysis.plan.service(name).unwrap();
    let secret = targets::redis::password_secret(service).expect("the redis has a password secret");
    assert!(redis["env"]["secret"].as_array().unwrap().iter().any(|s| s == secret), "the accessory gets {secret} by name: {redis}");
    let cmd = redis["cmd"].as_str().expect("a cmd");
    assert!(!cmd.contains("protected-mode no"), "{cmd}");

    let bin = tempfile::tempdir().unwrap();
    let entrypoint = bin.path().join("docker-entrypoint.sh");
    fs::write(&entrypoint, "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done\n").unwrap();
    fs::set_permissions(&entrypoint, fs::Permissions::from_mode(0o755)).unwrap();
    let password = "p@ss w'o\"rd $HOME `id` \\ ;#";
    // The host's shell: KAMAL runs the line there; the container's shell is `sh -c` inside it.
    let out = run(Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.path().display()))
        .env(secret, password));
    assert!(out.status.success(), "{}", text(&out));
    let words = out.stdout.strip_suffix(b"\0").unwrap_or(&out.stdout);
    let argv: Vec<String> = words.split(|b| *b == 0).map(|w| String::from_utf8(w.to_vec()).unwrap()).collect();
    let mut expected = targets::redis::server_args(service);
    expected.extend(["--requirepass".to_string(), password.to_string(), "--masterauth".to_string(), password.to_string()]);
    assert_eq!(argv, expected, "the entrypoint gets the server's flags and the password verbatim");
    assert!(!deploy.text.contains(password));
}
