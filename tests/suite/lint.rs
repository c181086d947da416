//! `headroom lint` on the fixtures rebuilt from the seed guides (tests/fixtures/import),
//! run as the real binary: the rule IDs a scaling engineer expects, located at
//! file:line in the foreign files, the exit codes, and `import` writing a spec that
//! `check` judges the same way. Then adversarial files: every one is reported at its
//! place, never a panic, and the other files of the run are still read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::fs_support::copy_dir;

fn headroom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_headroom")).args(args).env("NO_COLOR", "1").output().expect("headroom runs")
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import").join(name).display().to_string()
}

fn code(out: &Output) -> i32 {
    let code = out.status.code().unwrap_or_else(|| panic!("killed by a signal:\n{}", String::from_utf8_lossy(&out.stderr)));
    assert_ne!(code, 101, "panicked:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"), "panicked:\n{}", String::from_utf8_lossy(&out.stderr));
    code
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn findings(report: &Value) -> Vec<Value> {
    report["findings"].as_array().cloned().unwrap_or_default()
}

/// Rule IDs of errors and warnings (notes left out).
fn rules(report: &Value) -> BTreeSet<String> {
    findings(report).iter().filter(|f| f["severity"] != "info").map(|f| f["rule"].as_str().unwrap().to_string()).collect()
}

/// The findings of `rule`, each checked to point into the fixture's own files.
fn located(report: &Value, rule: &str, dir: &str) -> Vec<(String, u64)> {
    let out: Vec<(String, u64)> = findings(report)
        .iter()
        .filter(|f| f["rule"] == rule)
        .map(|f| {
            let file = f["file"].as_str().unwrap_or_else(|| panic!("{rule} has no file: {f:#}")).to_string();
            let line = f["line"].as_u64().unwrap_or(0);
            assert!(file.starts_with(dir), "{rule} points outside {dir}: {file}");
            assert!(line > 0, "{rule} has no line: {f:#}");
            (file, line)
        })
        .collect();
    assert!(!out.is_empty(), "no {rule} finding in {:#}", report["findings"]);
    out
}

fn lines_of(found: &[(String, u64)], file_suffix: &str) -> Vec<u64> {
    found.iter().filter(|(f, _)| f.ends_with(file_suffix)).map(|(_, l)| *l).collect()
}

#[test]
fn django_compose_finds_the_guides_problems_and_pgbouncers_inline_comments() {
    let dir = fixture("django-compose");
    let out = headroom(&["lint", &dir, "--format", "json"]);
    // PgBouncer refuses `max_client_conn = 2000   # Was: 1000` (it reads the comment
    // as part of the value): an error finding next to the rule findings, exit 1.
    assert_eq!(code(&out), 1);
    let report = json(&out);
    let found = rules(&report);
    for rule in ["import-unparsable", "redis-maxmemory-headroom", "upstream-max-conns-over-slots"] {
        assert!(found.contains(rule), "{rule} missing: {found:?}");
    }
    // `--timeout 600` on gthread workers is a heartbeat, not a request timeout.
    assert!(!found.contains("timeout-order"), "{found:?}");
    let bad = located(&report, "import-unparsable", &dir);
    assert_eq!(lines_of(&bad, "pgbouncer/pgbouncer.ini"), [14, 15, 16, 17, 18, 24], "the `# Was:` lines: {bad:?}");
    assert!(findings(&report).iter().filter(|f| f["rule"] == "import-unparsable").all(|f| f["message"].as_str().unwrap().contains('#')), "{:#}", report["findings"]);
    assert!(!lines_of(&located(&report, "upstream-max-conns-over-slots", &dir), "nginx/load-balancer.conf").is_empty());
    assert!(!lines_of(&located(&report, "redis-maxmemory-headroom", &dir), "docker-compose.loadbalanced.yml").is_empty());

    // Human output names file:line:col.
    let human = headroom(&["lint", &dir, "--color", "never"]);
    assert_eq!(code(&human), 1);
    let text = String::from_utf8_lossy(&human.stdout).to_string() + &String::from_utf8_lossy(&human.stderr);
    assert!(text.contains("pgbouncer/pgbouncer.ini:14:1"), "{text}");
    assert!(text.contains("warning[upstream-max-conns-over-slots]"), "{text}");
    assert!(text.contains("nginx/load-balancer.conf:"), "{text}");
}

#[test]
fn django_compose_with_the_comments_moved_imports_a_spec_check_agrees_with() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("django-compose");
    copy_dir(Path::new(&fixture("django-compose")), &dir);
    // Move every inline `# ...` comment of pgbouncer.ini onto its own line above.
    let ini = dir.join("pgbouncer/pgbouncer.ini");
    let text = std::fs::read_to_string(&ini).unwrap();
    let moved: String = text
        .lines()
        .map(|l| match l.split_once('#') {
            Some((setting, comment)) if !l.trim_start().starts_with(['#', ';']) => format!(";{comment}\n{}\n", setting.trim_end()),
            _ => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&ini, moved).unwrap();
    let d = dir.display().to_string();
    let lint = headroom(&["lint", &d, "--rps", "1000", "--service-time", "250ms", "--format", "json"]);
    // One error: the guide's compose file publishes the official image's Redis (no
    // password) with `ports: - 6379:6379`; everything else warns. Nothing unparsable.
    assert_eq!(code(&lint), 1, "{}", String::from_utf8_lossy(&lint.stdout));
    let lint_rules = rules(&json(&lint));
    assert!(!lint_rules.contains("import-unparsable"), "{lint_rules:?}");
    assert!(lint_rules.contains("upstream-max-conns-over-slots"), "{lint_rules:?}");
    assert!(lint_rules.contains("redis-no-auth"), "{lint_rules:?}");
    same_rules_after_import(&d, &["--rps", "1000", "--service-time", "250ms"], &lint_rules, 1, tmp.path());
}

#[test]
fn kamal_rails_runs_out_of_database_connections_and_notes_traefik() {
    let dir = fixture("kamal-rails");
    let flags = ["--rps", "1200", "--service-time", "100ms"];
    let mut args = vec!["lint", dir.as_str()];
    args.extend(flags);
    args.extend(["--format", "json"]);
    let out = headroom(&args);
    assert_eq!(code(&out), 1, "rule errors, every file parses");
    let report = json(&out);
    let found = rules(&report);
    for rule in ["postgres-connections-exhausted", "capacity-below-load", "pgbouncer-server-pool"] {
        assert!(found.contains(rule), "{rule} missing: {found:?}");
    }
    assert!(!found.contains("import-unparsable"), "{found:?}");
    assert!(!lines_of(&located(&report, "postgres-connections-exhausted", &dir), "config/deploy.yml").is_empty());
    assert!(!lines_of(&located(&report, "pgbouncer-server-pool", &dir), "config/pgbouncer.ini").is_empty());
    located(&report, "capacity-below-load", &dir);
    // Kamal 1's `traefik:` is a located note, never carried over.
    let all = findings(&report);
    let traefik: Vec<&Value> = all.iter().filter(|f| f["severity"] == "info" && f["message"].as_str().unwrap().contains("traefik")).collect();
    assert!(!traefik.is_empty(), "no traefik note");
    assert!(traefik.iter().all(|f| f["file"].as_str().unwrap().ends_with("config/deploy.yml") && f["line"].as_u64().unwrap() > 0), "{traefik:#?}");

    let tmp = tempfile::tempdir().unwrap();
    same_rules_after_import(&dir, &flags, &found, 1, tmp.path());
}

#[test]
fn voiceassist_finds_pools_redis_and_the_main_config_nginx_refuses() {
    let dir = fixture("voiceassist");
    let out = headroom(&["lint", &dir, "--format", "json"]);
    // nginx.conf is mounted as the main config with `upstream` outside `http {}`: an
    // error finding, the other files still linted.
    assert_eq!(code(&out), 1);
    let report = json(&out);
    let found = rules(&report);
    for rule in ["import-unparsable", "app-pool-below-concurrency", "redis-clients-exhausted", "redis-maxmemory-headroom", "nginx-rlimit-nofile"] {
        assert!(found.contains(rule), "{rule} missing: {found:?}");
    }
    // UvicornWorker's `--timeout 120` is a heartbeat, not a request timeout.
    assert!(!found.contains("timeout-order"), "{found:?}");
    assert_eq!(lines_of(&located(&report, "import-unparsable", &dir), "nginx.conf"), [2]);
    assert!(!lines_of(&located(&report, "redis-clients-exhausted", &dir), "docker-compose.yml").is_empty());
    assert!(!lines_of(&located(&report, "app-pool-below-concurrency", &dir), "docker-compose.yml").is_empty());
}

#[test]
fn sfpermits_is_clean_without_the_apps_pool_settings() {
    let dir = fixture("sfpermits");
    let out = headroom(&["lint", &dir, "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
    let report = json(&out);
    assert!(rules(&report).is_empty(), "{:#}", report["findings"]);
    // The start command's `$PORT` is a located note in railway.toml.
    assert!(findings(&report).iter().any(|f| f["rule"] == "import-ignored" && f["file"].as_str().unwrap().ends_with("web/railway.toml") && f["line"].as_u64().unwrap() > 0));
    let tmp = tempfile::tempdir().unwrap();
    same_rules_after_import(&dir, &[], &BTreeSet::new(), 0, tmp.path());
}

/// `import` (with the same load flags) writes a spec on which `check` reports the same
/// rule IDs `lint` did.
fn same_rules_after_import(dir: &str, flags: &[&str], lint_rules: &BTreeSet<String>, expected: i32, tmp: &Path) {
    let spec = tmp.join("imported.yaml").display().to_string();
    let mut args = vec!["import", dir, "-o", spec.as_str(), "--name", "imported"];
    args.extend(flags);
    let out = headroom(&args);
    assert_eq!(code(&out), 0, "import: {}", String::from_utf8_lossy(&out.stderr));
    let check = headroom(&["check", &spec, "--format", "json"]);
    assert_eq!(code(&check), expected, "{}", String::from_utf8_lossy(&check.stdout));
    let check_rules = rules(&json(&check));
    assert_eq!(&check_rules, lint_rules, "check of the imported spec vs lint of the files\n{}", std::fs::read_to_string(&spec).unwrap());
}


#[test]
fn nothing_readable_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("docker-compose.yml");
    std::fs::write(&path, b"services:\n  web:\n    image: nginx\n   command: [oops\n").unwrap();
    let out = headroom(&["lint", &path.display().to_string(), "--format", "json"]);
    assert_eq!(code(&out), 2, "nothing could be read: {}", String::from_utf8_lossy(&out.stdout));
    assert!(findings(&json(&out)).iter().any(|f| f["rule"] == "import-unparsable" && f["line"].as_u64() == Some(4)));
    let missing = headroom(&["lint", &tmp.path().join("nope.yml").display().to_string()]);
    assert_eq!(code(&missing), 2, "a missing file alone: nothing to read");
}

#[test]
fn adversarial_files_are_located_never_a_panic_and_the_rest_is_still_read() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let write = |rel: &str, bytes: &[u8]| {
        let path: PathBuf = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    write("nginx-unterminated.conf", b"events {}\nhttp {\n  server {\n    listen 80;\n");
    // Unknown directives: Redis and PgBouncer refuse to start on them. (nginx's are
    // not judged: modules add directives, and `nginx -t` knows which are loaded.)
    write("redis-unknown.conf", b"maxclients 500\nfrobnicate yes\n");
    write("pgbouncer.ini", b"[pgbouncer]\npool_mode = transaction\nfrobnicate = 1\n");
    write("nginx-loop.conf", b"events {}\nhttp {\n  include loop-b.inc;\n}\n");
    write("loop-b.inc", b"include nginx-loop.conf;\n");
    write("nginx-huge.conf", b"events {}\nhttp {\n  include huge.inc;\n}\n");
    let mut huge = Vec::with_capacity(9 << 20);
    while huge.len() < (9 << 20) {
        huge.extend_from_slice(b"# padding padding padding padding padding padding padding\n");
    }
    write("huge.inc", &huge);
    write("redis-binary.conf", b"maxmemory \x00\x01\x02\xff\xfe binary\n");
    write("docker-compose.yml", b"services:\n  web:\n    image: nginx\n   command: [oops\n");
    // A well-formed file next to them, with a problem of its own: one sentinel.
    write("sentinel.conf", b"port 26379\nsentinel monitor mymaster redis 6379 2\n");

    let dir = root.display().to_string();
    for format in ["json", "human"] {
        let out = headroom(&["lint", &dir, "--format", format, "--color", "never"]);
        // Unparsable files are error findings; exit 2 is kept for "nothing could be read".
        assert_eq!(code(&out), 1, "{format}: unparsable files among readable ones exit 1");
    }
    let report = json(&headroom(&["lint", &dir, "--format", "json"]));
    let all = findings(&report);
    let at = |file: &str| -> Vec<&Value> { all.iter().filter(|f| f["file"].as_str().is_some_and(|p| p.ends_with(file))).collect() };
    let error_at = |file: &str, line: Option<u64>| {
        let hits: Vec<&Value> = at(file).into_iter().filter(|f| f["rule"] == "import-unparsable").collect();
        assert!(!hits.is_empty(), "no located error in {file}: {all:#?}");
        for f in &hits {
            assert!(f["line"].as_u64().unwrap() >= 1, "{f:#}");
        }
        if let Some(l) = line {
            assert!(hits.iter().any(|f| f["line"].as_u64() == Some(l)), "{file}: no error at line {l}: {hits:#?}");
        }
    };
    error_at("nginx-unterminated.conf", None);
    error_at("redis-binary.conf", Some(1));
    error_at("docker-compose.yml", None);
    // The huge include is reported at its `include` line; the loop at the include
    // that closes it.
    error_at("nginx-huge.conf", Some(3));
    error_at("loop-b.inc", Some(1));
    assert!(at("loop-b.inc").iter().any(|f| f["message"].as_str().unwrap().contains("include loop")), "{all:#?}");
    // Unknown directives are located notes, never silently dropped.
    for (file, line) in [("redis-unknown.conf", 2), ("pgbouncer.ini", 3)] {
        assert!(at(file).iter().any(|f| f["line"].as_u64() == Some(line) && f["message"].as_str().unwrap().contains("frobnicate")), "{file}: unknown directive not reported: {all:#?}");
    }
    // The good sentinel.conf is still read, and its rule fires at its line.
    assert!(at("sentinel.conf").iter().any(|f| f["rule"] == "redis-sentinel-quorum" && f["line"].as_u64() == Some(2)), "sentinel.conf was not linted: {all:#?}");
}

#[test]
fn every_file_read_is_listed_with_its_format_and_skipped_ones_with_why() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app");
    copy_dir(Path::new(&fixture("kamal-rails")), &dir);
    std::fs::create_dir_all(dir.join("test/fixtures")).unwrap();
    std::fs::write(dir.join("test/fixtures/docker-compose.yml"), "services:\n  db:\n    image: postgres:16\n").unwrap();
    std::fs::write(dir.join("docker-compose.dev.yml"), "services:\n  db:\n    image: postgres:16\n").unwrap();
    let d = dir.display().to_string();
    let report = json(&headroom(&["lint", &d, "--format", "json"]));
    let files = report["files"].as_array().unwrap_or_else(|| panic!("no files: {report:#}"));
    let format_of = |suffix: &str| files.iter().find(|f| f["path"].as_str().unwrap().ends_with(suffix)).map(|f| (f["format"].clone(), f["skipped"].clone()));
    assert_eq!(format_of("config/deploy.yml"), Some((Value::from("Kamal deploy.yml"), Value::Null)));
    assert_eq!(format_of("config/puma.rb"), Some((Value::from("puma.rb"), Value::Null)));
    assert_eq!(format_of("config/database.yml"), Some((Value::from("Rails database.yml"), Value::Null)));
    assert_eq!(format_of("config/pgbouncer.ini"), Some((Value::from("pgbouncer.ini"), Value::Null)));
    let (_, why) = format_of("docker-compose.dev.yml").expect("the dev compose file is listed");
    assert!(why.as_str().unwrap().contains("development"), "{why}");
    let (_, why) = format_of("/test").expect("the test directory is listed");
    assert!(why.as_str().unwrap().contains("test"), "{why}");

    let sarif: Value = serde_json::from_slice(&headroom(&["lint", &d, "--format", "sarif"]).stdout).unwrap();
    let artifacts = sarif["runs"][0]["artifacts"].as_array().expect("SARIF run artifacts");
    assert!(artifacts.iter().any(|a| a["location"]["uri"].as_str().unwrap().ends_with("config/deploy.yml") && a["description"]["text"] == "read as Kamal deploy.yml" && a["roles"][0] == "analysisTarget"));
    assert!(artifacts.iter().any(|a| a["location"]["uri"].as_str().unwrap().ends_with("docker-compose.dev.yml") && a["description"]["text"].as_str().unwrap().starts_with("skipped: ")));

    let human = headroom(&["lint", &d, "--color", "never"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("read 4 files:") && text.contains("config/puma.rb (puma.rb)"), "{text}");
    assert!(text.contains("skipped 2 files:"), "{text}");
}

/// A redis.conf that turns protected mode off without a password is reported by
/// `redis-no-auth` at that line; a `requirepass` (or the default user's ACL password)
/// becomes a secret NAME in the imported spec, and the password itself never leaves
/// the file.
#[test]
fn redis_without_auth_is_reported_and_a_password_is_kept_as_a_secret_name() {
    let tmp = tempfile::tempdir().unwrap();
    let open = tmp.path().join("open");
    std::fs::create_dir_all(&open).unwrap();
    std::fs::write(open.join("redis.conf"), "bind 0.0.0.0\nport 6379\nprotected-mode no\nmaxmemory 1gb\nmaxmemory-policy allkeys-lru\n").unwrap();
    let dir = open.display().to_string();
    let out = headroom(&["lint", &dir, "--format", "json"]);
    assert_eq!(code(&out), 1);
    let report = json(&out);
    assert_eq!(lines_of(&located(&report, "redis-no-auth", &dir), "redis.conf"), [3]);

    for (name, conf) in [
        ("requirepass", "bind 0.0.0.0\nprotected-mode no\nrequirepass \"hunter2-s3cret\"\nmaxmemory 1gb\nmaxmemory-policy allkeys-lru\n"),
        ("acl", "bind 0.0.0.0\nprotected-mode no\nuser default on >hunter2-s3cret ~* +@all\nmaxmemory 1gb\nmaxmemory-policy allkeys-lru\n"),
    ] {
        let closed = tmp.path().join(name);
        std::fs::create_dir_all(&closed).unwrap();
        std::fs::write(closed.join("redis.conf"), conf).unwrap();
        let dir = closed.display().to_string();
        let report = json(&headroom(&["lint", &dir, "--format", "json"]));
        assert!(!rules(&report).contains("redis-no-auth"), "{name}: {:#}", report["findings"]);
        let spec = closed.join("capacity.yaml");
        let out = headroom(&["import", &dir, "-o", &spec.display().to_string()]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let text = std::fs::read_to_string(&spec).unwrap();
        assert!(text.contains("password: REDIS_PASSWORD"), "{name}: the password is kept as a secret name:\n{text}");
        assert!(!text.contains("hunter2"), "{name}: the password itself is not copied:\n{text}");
    }

    // A compose file publishing the official image's Redis (no password, protected
    // mode off) on every interface of the host: reported at its `ports:`; on loopback,
    // or with `--requirepass`, not.
    let service = "services:\n  web:\n    image: app\n    command: gunicorn app:app\n    environment:\n      REDIS_URL: redis://cache:6379/0\n  cache:\n    image: redis:7-alpine\n";
    for (name, cache, reported) in [
        ("published", "    ports:\n      - \"6379:6379\"\n", true),
        ("published-long", "    ports:\n      - { target: 6379, published: 6380, host_ip: 10.0.0.31 }\n", true),
        ("loopback", "    ports:\n      - \"127.0.0.1:6379:6379\"\n", false),
        ("requirepass", "    command: redis-server --requirepass ${CACHE_SECRET}\n    ports:\n      - \"6379:6379\"\n", false),
    ] {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("docker-compose.yml"), format!("{service}{cache}")).unwrap();
        let d = dir.display().to_string();
        let out = headroom(&["lint", &d, "--format", "json"]);
        let report = json(&out);
        assert_eq!(rules(&report).contains("redis-no-auth"), reported, "{name}: {:#}", report["findings"]);
        if reported {
            assert_eq!(code(&out), 1, "{name}");
            assert_eq!(lines_of(&located(&report, "redis-no-auth", &d), "docker-compose.yml"), [9], "{name}: at the ports: key");
        }
    }

    // `--requirepass ${NAME}` (compose fills it in) already names the secret.
    let compose = tmp.path().join("compose");
    std::fs::create_dir_all(&compose).unwrap();
    std::fs::write(
        compose.join("docker-compose.yml"),
        "services:\n  cache:\n    image: redis:7-alpine\n    command: redis-server --maxmemory 1gb --maxmemory-policy allkeys-lru --requirepass ${CACHE_SECRET}\n",
    )
    .unwrap();
    let spec = compose.join("capacity.yaml");
    let out = headroom(&["import", &compose.display().to_string(), "-o", &spec.display().to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&spec).unwrap();
    assert!(text.contains("password: CACHE_SECRET"), "{text}");
}

#[test]
fn the_images_env_reaches_the_processes_run_from_it_under_the_deployments_own() {
    // The image's ENV and CMD (final stage, inherited from the `base` stage it starts
    // from; a later build stage's ENV is not in it) are the lowest layer: compose
    // `environment:` wins over it.
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(app.join("config")).unwrap();
    std::fs::write(
        app.join("Dockerfile"),
        "ARG RUBY_VERSION=3.3\nFROM ruby:$RUBY_VERSION-slim AS base\nENV RAILS_ENV=\"production\" \\\n    WEB_CONCURRENCY=3\nENV RAILS_MAX_THREADS 4\nCMD [\"./bin/rails\", \"server\"]\nFROM base AS build\nENV WEB_CONCURRENCY=9\nFROM base\nEXPOSE 3000\n",
    )
    .unwrap();
    std::fs::write(
        app.join("config/puma.rb"),
        "threads_count = ENV.fetch(\"RAILS_MAX_THREADS\") { 3 }\nthreads threads_count, threads_count\nworkers ENV.fetch(\"WEB_CONCURRENCY\") { 1 } if ENV[\"RAILS_ENV\"] == \"production\"\nport ENV.fetch(\"PORT\") { 3000 }\n",
    )
    .unwrap();
    std::fs::write(
        app.join("docker-compose.yml"),
        "services:\n  web:\n    build: .\n  api:\n    build: .\n    environment:\n      WEB_CONCURRENCY: \"5\"\n  staged:\n    build:\n      context: .\n      target: build\n",
    )
    .unwrap();
    let dir = app.display().to_string();
    let lint = headroom(&["lint", &dir, "--color", "never"]);
    let text = String::from_utf8_lossy(&lint.stdout);
    assert!(!text.contains("no file sets it"), "RAILS_ENV is set by the image:\n{text}");
    let spec = tmp.path().join("capacity.yaml");
    let out = headroom(&["import", &dir, "-o", &spec.display().to_string()]);
    assert!(matches!(code(&out), 0 | 1), "{}", String::from_utf8_lossy(&out.stderr));
    let spec: Value = serde_saphyr::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    assert_eq!(spec["services"]["web"]["workers"], 3, "{spec:#}");
    assert_eq!(spec["services"]["web"]["threads"], 4, "{spec:#}");
    assert_eq!(spec["services"]["api"]["workers"], 5, "compose environment wins over the image's ENV: {spec:#}");
    assert_eq!(spec["services"]["api"]["threads"], 4, "{spec:#}");
    // `build.target`: that stage's ENV and command, with what it inherits.
    assert_eq!(spec["services"]["staged"]["workers"], 9, "the target stage's ENV: {spec:#}");
    assert_eq!(spec["services"]["staged"]["threads"], 4, "{spec:#}");
}

#[test]
fn an_entrypoint_scripts_own_variables_reach_the_server_it_starts() {
    // The shapes entrypoint scripts use: a top-level variable with an environment
    // default, `local` variables in the function the dispatcher calls, a `:=` default;
    // a variable set in another branch is not taken, and the container's environment
    // still wins over a default.
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("Dockerfile"), "FROM python:3.12-slim\nCOPY . /app\nENTRYPOINT [\"/app/docker-entrypoint.sh\"]\nCMD [\"web\"]\n").unwrap();
    std::fs::write(
        app.join("docker-entrypoint.sh"),
        "#!/bin/sh\nset -e\n: \"${GUNICORN_TIMEOUT:=90}\"\nPORT=\"${PORT:-8000}\"\n\nstart_web() {\n  local workers=\"${WEB_CONCURRENCY:-3}\"\n  local threads=${GUNICORN_THREADS:-4}\n  exec gunicorn config.wsgi:application --bind \"0.0.0.0:$PORT\" --workers \"$workers\" --threads \"$threads\" --timeout \"$GUNICORN_TIMEOUT\"\n}\n\ncase \"$1\" in\n  worker)\n    threads=1\n    ;;\n  web) start_web ;;\n  *) exec \"$@\" ;;\nesac\n",
    )
    .unwrap();
    std::fs::write(
        app.join("docker-compose.yml"),
        "services:\n  web:\n    build: .\n  api:\n    build: .\n    environment:\n      WEB_CONCURRENCY: \"6\"\n",
    )
    .unwrap();
    let dir = app.display().to_string();
    let lint = headroom(&["lint", &dir, "--color", "never"]);
    let text = String::from_utf8_lossy(&lint.stdout);
    assert!(!text.contains("at run time"), "every flag's variable is assigned in the script:\n{text}");
    assert!(text.contains("`--workers` uses the default `3` of $WEB_CONCURRENCY"), "{text}");
    let spec = tmp.path().join("capacity.yaml");
    let out = headroom(&["import", &dir, "-o", &spec.display().to_string()]);
    assert!(matches!(code(&out), 0 | 1), "{}", String::from_utf8_lossy(&out.stderr));
    let spec: Value = serde_saphyr::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
    let web = &spec["services"]["web"];
    assert_eq!((&web["workers"], &web["threads"], &web["port"], &web["timeout"]), (&3.into(), &4.into(), &8000.into(), &"90s".into()), "{spec:#}");
    assert_eq!(spec["services"]["api"]["workers"], 6, "compose environment wins over the script's default: {spec:#}");
}

#[test]
fn web_concurrency_auto_starts_a_puma_worker_per_cpu() {
    // Rails' generated puma.rb reads no workers itself and tells users to set
    // WEB_CONCURRENCY=auto; puma then forks one worker per available processor.
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(app.join("config")).unwrap();
    std::fs::write(app.join("config/puma.rb"), "threads_count = ENV.fetch(\"RAILS_MAX_THREADS\", 3)\nthreads threads_count, threads_count\nport ENV.fetch(\"PORT\", 3000)\nplugin :tmp_restart\n").unwrap();
    std::fs::write(
        app.join("config/deploy.yml"),
        "service: shop\nimage: acme/shop\nservers:\n  web:\n    hosts: [10.0.0.1, 10.0.0.2]\nproxy:\n  ssl: true\n  host: shop.example.com\nenv:\n  clear:\n    WEB_CONCURRENCY: auto\n",
    )
    .unwrap();
    let dir = app.display().to_string();
    let import = |extra: &[&str]| {
        let spec = tmp.path().join("capacity.yaml");
        let mut args = vec!["import", &dir, "-o"];
        let spec_arg = spec.display().to_string();
        args.push(&spec_arg);
        args.extend_from_slice(extra);
        let out = headroom(&args);
        assert!(matches!(code(&out), 0 | 1), "{}", String::from_utf8_lossy(&out.stderr));
        let spec: Value = serde_saphyr::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
        (spec["services"]["web"]["workers"].clone(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (workers, notes) = import(&["--cpus", "4"]);
    assert_eq!(workers, 4, "{notes}");
    assert!(!notes.contains("is not a value for"), "{notes}");
    let (workers, notes) = import(&[]);
    assert_eq!(workers, 2, "{notes}");
    assert!(notes.contains("WEB_CONCURRENCY=auto: 2 CPUs"), "an assumed CPU count is said: {notes}");
}

#[test]
fn import_of_a_directory_with_several_deployments_reads_one_of_them() {
    // The corpus app ships its open-source deployment at the root and a SaaS one in
    // saas/ (RAILS_MAX_THREADS 3 and 5): one spec must not mix the two.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus/kamal-engine-destinations").display().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let spec_of = |extra: &[&str]| {
        let spec = tmp.path().join("capacity.yaml");
        let spec_arg = spec.display().to_string();
        let mut args = vec!["import", dir.as_str(), "-o", spec_arg.as_str()];
        args.extend_from_slice(extra);
        let out = headroom(&args);
        let written: Value = serde_saphyr::from_str(&std::fs::read_to_string(&spec).unwrap_or_default()).unwrap_or(Value::Null);
        (code(&out), written, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (_, root, notes) = spec_of(&[]);
    assert!(notes.contains("holds 2 deployments (`.`, `saas`); importing `.`"), "{notes}");
    let web = &root["services"]["web"];
    assert_eq!((&web["threads"], &web["min_threads"]), (&3.into(), &3.into()), "only the root deployment's threads: {root:#}");
    let (_, saas, _) = spec_of(&["--deployment", "saas"]);
    assert_eq!(saas["services"]["web"]["threads"], 5, "{saas:#}");
    let (code, _, notes) = spec_of(&["--deployment", "nope"]);
    assert_eq!(code, 2);
    assert!(notes.contains("holds no deployment `nope`") && notes.contains("`.`, `saas`"), "{notes}");
    let lint = headroom(&["lint", &dir, "--deployment", "saas", "--color", "never"]);
    let text = String::from_utf8_lossy(&lint.stdout);
    assert!(!text.contains("deployment `.`") && text.contains("saas/config/deploy.yml"), "lint of the one deployment named:\n{text}");
}

#[test]
fn a_kamal_db_accessory_is_not_the_database_of_an_app_whose_database_yml_says_sqlite() {
    // With no DATABASE_URL in the role's env, which database the roles use is assumed
    // from the one postgres accessory until database.yml says: its production adapter
    // decides. A DATABASE_URL in the env (a secret) wins over database.yml, as in Rails.
    let tmp = tempfile::tempdir().unwrap();
    let deploy = |secrets: &str| format!("service: shop\nimage: acme/shop\nservers:\n  web:\n    - 10.0.0.1\nenv:\n  secret:\n    - RAILS_MASTER_KEY\n{secrets}accessories:\n  db:\n    image: postgres:16\n    host: 10.0.0.2\n");
    let sqlite = "production:\n  adapter: sqlite3\n  database: storage/production.sqlite3\n  pool: 5\n";
    for (name, deploy, database_yml, uses_db) in [
        ("sqlite", deploy(""), sqlite, false),
        ("sqlite-with-url", deploy("    - DATABASE_URL\n"), sqlite, true),
        ("postgres", deploy(""), "production:\n  adapter: postgresql\n  pool: 5\n", true),
    ] {
        let app = tmp.path().join(name);
        std::fs::create_dir_all(app.join("config")).unwrap();
        std::fs::write(app.join("config/deploy.yml"), deploy).unwrap();
        std::fs::write(app.join("config/database.yml"), database_yml).unwrap();
        std::fs::write(app.join("config/puma.rb"), "threads 3, 3\n").unwrap();
        let dir = app.display().to_string();
        let spec = app.join("capacity.yaml");
        let out = headroom(&["import", &dir, "-o", &spec.display().to_string()]);
        assert!(matches!(code(&out), 0 | 1), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let spec: Value = serde_saphyr::from_str(&std::fs::read_to_string(&spec).unwrap()).unwrap();
        assert_eq!(spec["services"]["web"]["uses"].get("db").is_some(), uses_db, "{name}: {spec:#}");
        let text = String::from_utf8_lossy(&headroom(&["lint", &dir, "--color", "never"]).stdout).to_string();
        assert_eq!(text.contains("`web` does not connect to `db`: database.yml's production database uses the sqlite3 adapter"), !uses_db, "{name}:\n{text}");
        assert_eq!(text.contains("`web` connects to the accessory `db`"), uses_db, "{name}:\n{text}");
    }
}

#[test]
fn a_compose_file_of_a_development_setup_says_so_in_one_note() {
    let tmp = tempfile::tempdir().unwrap();
    let services = |web: &str| format!("services:\n  web:\n{web}    command: bundle exec puma -t 5:5\n  worker:\n{web}    command: bundle exec sidekiq -c 5\n  db:\n    image: postgres:16\n");
    for (name, web, note) in [
        ("dockerfile", "    build:\n      context: .\n      dockerfile: Dockerfile.dev\n", Some("compose service `web` builds from Dockerfile.dev: a development setup")),
        ("env", "    image: acme/shop\n    environment:\n      RAILS_ENV: development\n", Some("compose service `web` sets RAILS_ENV=development: a development setup")),
        ("target", "    build:\n      context: .\n      target: development\n", Some("compose service `web` builds from the `development` stage of its Dockerfile: a development setup")),
        ("production", "    build: .\n    environment:\n      RAILS_ENV: production\n", None),
    ] {
        let app = tmp.path().join(name);
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(app.join("docker-compose.yml"), services(web)).unwrap();
        std::fs::write(app.join("Dockerfile.dev"), "FROM ruby:3.3\n").unwrap();
        std::fs::write(app.join("Dockerfile"), "FROM ruby:3.3\n").unwrap();
        let text = String::from_utf8_lossy(&headroom(&["lint", &app.display().to_string(), "--color", "never"]).stdout).to_string();
        assert_eq!(text.matches("a development setup").count(), usize::from(note.is_some()), "{name}:\n{text}");
        if let Some(note) = note {
            assert!(text.contains(note), "{name}:\n{text}");
        }
    }
}
