//! `headroom lint` on a corpus of repositories laid out the way real projects are
//! (tests/fixtures/corpus/<name>/: a `rails new` 8.x app with Kamal and Solid Queue, a
//! Sidekiq app with compose and .env, Django with Celery on Redis, a compose file
//! sharing its settings through many anchors with `${VAR:-default}` images, a Heroku-
//! style Procfile Rails app, Django under uWSGI, a Flask app on uvicorn workers started
//! by an entrypoint script, a Django app whose image starts NGINX Unit, one image whose
//! entrypoint's shell functions pick the role, a Rails app with a nested Kamal config
//! and destinations, uWSGI behind a wait loop with `if-env` blocks, an entrypoint that
//! migrates then runs the image's CMD, Airflow's Celery layout, Celery run through a
//! management command beside a uwsgi.ini no service runs, a mounted bootstrap script
//! that runs a script copied into the image, a wait-for-the-database wrapper). Each case
//! runs the real binary and asserts its exit code (0 or 1, never 2: every repository
//! here is valid), that every file that holds capacity settings is named as read with
//! its format, the findings a scaling engineer expects, and none they would call
//! wrong. The whole report (files, findings, notes) is an insta snapshot per case, so a
//! change in what lint reads or says shows up in review.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::fs_support::copy_dir;

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus").join(name)
}

fn headroom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_headroom")).args(args).env("NO_COLOR", "1").output().expect("headroom runs")
}

/// What one lint run said, with paths relative to the fixture.
struct Linted {
    exit: i32,
    report: Value,
    dir: String,
}

impl Linted {
    fn findings(&self) -> Vec<&Value> {
        self.report["findings"].as_array().map(|a| a.iter().collect()).unwrap_or_default()
    }

    /// Rule IDs of the errors and warnings.
    fn problems(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.findings().iter().filter(|f| f["severity"] != "info").map(|f| f["rule"].as_str().unwrap_or_default().to_string()).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    fn relative(&self, path: &str) -> String {
        path.strip_prefix(&self.dir).map(|p| p.trim_start_matches('/').to_string()).unwrap_or_else(|| path.to_string())
    }

    /// The files the report lists as read, relative, with their formats.
    fn read(&self) -> Vec<(String, String)> {
        let files = self.report["files"].as_array().unwrap_or_else(|| panic!("no files in the report: {:#}", self.report));
        files.iter().filter(|f| f["skipped"].is_null()).map(|f| (self.relative(f["path"].as_str().unwrap()), f["format"].as_str().unwrap_or("").to_string())).collect()
    }

    /// The messages of the notes (info findings) of one rule.
    fn notes(&self, rule: &str) -> Vec<String> {
        self.findings().iter().filter(|f| f["rule"] == rule && f["severity"] == "info").map(|f| f["message"].as_str().unwrap_or_default().to_string()).collect()
    }

    /// Files read, then every finding with where it points, as text for the snapshot.
    fn summary(&self) -> String {
        let mut out = format!("exit {}\n\nfiles:\n", self.exit);
        for f in self.report["files"].as_array().into_iter().flatten() {
            let path = self.relative(f["path"].as_str().unwrap_or_default());
            match f["skipped"].as_str() {
                Some(why) => out.push_str(&format!("  {path}: skipped: {why}\n")),
                None => out.push_str(&format!("  {path}: {}\n", f["format"].as_str().unwrap_or("?"))),
            }
        }
        out.push_str("\nfindings:\n");
        for f in self.findings() {
            let at = match (f["file"].as_str(), f["line"].as_u64()) {
                (Some(file), Some(line)) => format!("{}:{line}", self.relative(file)),
                _ => f["path"].as_str().unwrap_or("-").to_string(),
            };
            out.push_str(&format!("- {}[{}] {at}\n  {}\n", f["severity"].as_str().unwrap_or("?"), f["rule"].as_str().unwrap_or("?"), f["message"].as_str().unwrap_or("")));
            if let Some(fix) = f["fix"].as_str() {
                out.push_str(&format!("  fix: {fix}\n"));
            }
        }
        out.replace(&self.dir, "<corpus>")
    }
}

/// Lints a corpus fixture; asserts no panic, exit 0 or 1, and that every finding with
/// a file points into the fixture.
fn lint(name: &str) -> Linted {
    lint_at(&corpus(name))
}

fn lint_at(path: &Path) -> Linted {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_string();
    let dir = path.display().to_string();
    let out = headroom(&["lint", &dir, "--format", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{name} panicked:\n{stderr}");
    let exit = out.status.code().unwrap_or_else(|| panic!("{name}: killed by a signal:\n{stderr}"));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{name}: not JSON ({e}):\n{}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    assert!(exit == 0 || exit == 1, "{name}: a valid repository exits 0 or 1, got {exit}:\n{stderr}\n{report:#}");
    let linted = Linted { exit, report, dir };
    for f in linted.findings() {
        if let Some(file) = f["file"].as_str() {
            assert!(file.starts_with(&linted.dir), "{name}: {} points outside the fixture: {file}", f["rule"]);
        }
    }
    linted
}

/// Asserts each of `files` is listed as read, with `format`.
fn assert_read(linted: &Linted, files: &[(&str, &str)]) {
    let read = linted.read();
    for (file, format) in files {
        assert!(read.iter().any(|(p, f)| p == file && f == format), "{file} not read as {format}; read: {read:#?}");
    }
}

fn snapshot(name: &str, linted: &Linted) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots/corpus"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, linted.summary()));
}

#[test]
fn rails_new_with_kamal_and_solid_queue_is_quiet() {
    let linted = lint("rails8-kamal");
    assert_read(
        &linted,
        &[
            ("config/deploy.yml", "Kamal deploy.yml"),
            ("config/puma.rb", "puma.rb"),
            ("config/database.yml", "Rails database.yml"),
            ("config/queue.yml", "Solid Queue queue.yml"),
            ("config/routes.rb", "Rails routes.rb"),
        ],
    );
    // The generated app is sound: 3 Puma threads against pools of 5, Solid Queue's 3
    // threads + 2 within its queue database's pool, kamal-proxy probing Rails' /up,
    // and no request timeout to order (puma has none).
    assert_eq!(linted.exit, 0, "{}", linted.summary());
    assert!(linted.problems().is_empty(), "{:?}\n{}", linted.problems(), linted.summary());
    snapshot("rails8-kamal", &linted);
}

#[test]
fn sidekiq_compose_app_lists_memcached_and_one_shot_services() {
    let linted = lint("sidekiq-compose");
    assert_read(
        &linted,
        &[
            ("docker-compose.yml", "docker-compose"),
            (".env", "env file"),
            ("config/puma.rb", "puma.rb"),
            ("config/database.yml", "Rails database.yml"),
            ("config/sidekiq.yml", "sidekiq.yml"),
        ],
    );
    // Sidekiq loads config/sidekiq.yml: 25 jobs at once against a pool of
    // RAILS_MAX_THREADS = 5 from .env.
    assert_eq!(linted.exit, 1, "{}", linted.summary());
    assert_eq!(linted.problems(), ["app-pool-below-concurrency", "redis-maxmemory-headroom"], "{}", linted.summary());
    let ignored = linted.notes("import-ignored").join("\n");
    // memcached, the migration and the profile-only console are listed, not counted.
    assert!(ignored.contains("compose service `cache`: runs memcached, which headroom does not model"), "{ignored}");
    assert!(ignored.contains("compose service `migrate`: runs `bundle exec rails db:migrate` once and exits"), "{ignored}");
    assert!(ignored.contains("compose service `console`: started only with `--profile tools`"), "{ignored}");
    let summary = linted.summary();
    for service in ["`cache`", "`migrate`", "`console`"] {
        assert!(
            !linted.findings().iter().any(|f| f["severity"] != "info" && f["message"].as_str().unwrap_or_default().contains(service)),
            "{service} is not a client: {summary}"
        );
    }
    snapshot("sidekiq-compose", &linted);
}

#[test]
fn celery_redis_compose_app_orders_the_sync_workers_timeout() {
    let linted = lint("celery-redis");
    assert_read(&linted, &[("docker-compose.yml", "docker-compose"), (".env", "env file"), ("nginx/default.conf", "nginx")]);
    // gunicorn's default sync workers are killed at --timeout 120, after nginx has
    // answered 504 at 60s.
    assert!(linted.problems().contains(&"timeout-order".to_string()), "{}", linted.summary());
    let ignored = linted.notes("import-ignored").join("\n");
    assert!(ignored.contains("compose service `flower`: runs Flower (a Celery monitor), which headroom does not model"), "{ignored}");
    // The TLS variant beside the mounted config is not merged into the running nginx
    // (its 300s proxy_read_timeout would hide the 504s).
    let files = linted.report["files"].as_array().unwrap();
    let tls = files.iter().find(|f| f["path"].as_str().unwrap().ends_with("nginx/default_tls.conf")).expect("listed");
    assert_eq!(tls["skipped"], "an alternative nginx config: `nginx` mounts default.conf and not this file", "{tls:#}");
    assert_eq!(linted.exit, 0, "warnings only: {}", linted.summary());
    snapshot("celery-redis", &linted);
}

#[test]
fn compose_with_many_anchors_and_defaulted_images_is_read() {
    let linted = lint("compose-anchors");
    assert_read(&linted, &[("docker-compose.yml", "docker-compose")]);
    let text = std::fs::read_to_string(corpus("compose-anchors").join("docker-compose.yml")).unwrap();
    assert!(text.matches('*').count() > 140, "the fixture shares its settings through many aliases");
    // Every service is read: the anchors expand, `${VAR:-default}` images resolve to
    // their defaults, and the one-shot `init` is listed, not counted.
    let assumed = linted.notes("import-assumed").join("\n");
    assert!(assumed.contains("image of `postgres` is `postgres:16-alpine`"), "{assumed}");
    assert!(assumed.contains("image of `worker-cleanup` is `ghcr.io/acme/tracker:24.11.0`"), "{assumed}");
    let ignored = linted.notes("import-ignored").join("\n");
    assert!(ignored.contains("compose service `init`: runs `python manage.py migrate --noinput` once and exits"), "{ignored}");
    assert!(ignored.contains("$METRICS_IMAGE"), "{ignored}");
    snapshot("compose-anchors", &linted);
}


#[test]
fn rails_health_route_comes_from_routes_rb() {
    // The generated route becomes the app's health check path, at the route's line.
    let dir = corpus("rails8-kamal").display().to_string();
    let out = headroom(&["import", &dir, "-o", "-"]);
    let spec = String::from_utf8_lossy(&out.stdout);
    assert!(spec.contains("path: /up"), "{spec}");

    // Without it, kamal-proxy's default probe gets a 404: said at config/routes.rb.
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("rails8-kamal");
    copy_dir(&corpus("rails8-kamal"), &app);
    std::fs::write(app.join("config/routes.rb"), "Rails.application.routes.draw do\n  root \"invoices#index\"\nend\n").unwrap();
    let linted = lint_at(&app);
    let notes = linted.notes("import-assumed").join("\n");
    assert!(notes.contains("config/routes.rb has no route to `rails/health#show`: kamal-proxy probes GET /up"), "{notes}");
    let note = linted.findings().into_iter().find(|f| f["message"].as_str().unwrap_or_default().contains("no route to `rails/health#show`")).unwrap();
    assert!(note["file"].as_str().unwrap().ends_with("config/routes.rb"), "{note:#}");

    // A route elsewhere than /up: kamal-proxy still probes /up.
    std::fs::write(app.join("config/routes.rb"), "Rails.application.routes.draw do\n  get \"healthz\" => \"rails/health#show\"\nend\n").unwrap();
    let notes = lint_at(&app).notes("import-assumed").join("\n");
    assert!(notes.contains("Rails' health check is served at `/healthz`, but kamal-proxy probes its default GET /up"), "{notes}");
}

#[test]
fn procfile_rails_app_runs_puma_and_a_sidekiq_past_its_pool() {
    let linted = lint("procfile-rails");
    assert_read(
        &linted,
        &[
            ("Procfile", "Procfile"),
            (".env", "env file"),
            ("config/puma.rb", "puma.rb"),
            ("config/database.yml", "Rails database.yml"),
            ("config/sidekiq.yml", "sidekiq.yml"),
        ],
    );
    // `rails server` is puma (2 workers x 5 threads from .env, pool 5: sound); Sidekiq
    // loads config/sidekiq.yml: 20 jobs at once against the pool of 5.
    assert_eq!(linted.exit, 1, "{}", linted.summary());
    assert_eq!(linted.problems(), ["app-pool-below-concurrency"], "{}", linted.summary());
    let pool = linted.findings().into_iter().find(|f| f["rule"] == "app-pool-below-concurrency").unwrap();
    assert!(pool["message"].as_str().unwrap().starts_with("`worker`: each process runs 20 jobs at once"), "{pool:#}");
    let ignored = linted.notes("import-ignored").join("\n");
    assert!(ignored.contains("Procfile `release`: runs once per release"), "{ignored}");
    // The development-only `worker_timeout 3600` does not apply in production.
    assert!(ignored.contains("puma.rb `worker_timeout` not applied"), "{ignored}");
    // Only the two steady processes are services (no phantom worker for `rails s`).
    let assumed = linted.notes("import-assumed").join("\n");
    assert!(assumed.contains("one process of each Procfile type"), "{assumed}");
    snapshot("procfile-rails", &linted);
}

#[test]
fn django_uwsgi_compose_app_overruns_its_postgres() {
    let linted = lint("django-uwsgi");
    assert_read(
        &linted,
        &[("docker-compose.yml", "docker-compose"), (".env", "env file"), ("deploy/uwsgi.ini", "uWSGI ini"), ("deploy/nginx.conf", "nginx")],
    );
    // uwsgi.ini: $(UWSGI_PROCESSES) = 6 from .env, one thread each, persistent
    // connections (DB_CONN_MAX_AGE=600): 3 replicas x 6 = 18 against 20 - 3 reserved.
    assert_eq!(linted.exit, 1, "{}", linted.summary());
    assert!(linted.problems().contains(&"postgres-connections-exhausted".to_string()), "{}", linted.summary());
    let budget = linted.findings().into_iter().find(|f| f["rule"] == "postgres-connections-exhausted").unwrap();
    assert!(budget["message"].as_str().unwrap().contains("web 3 replicas x 6 workers x 1 (one per thread, Django persistent) = 18"), "{budget:#}");
    // valkey-server's --maxmemory is read: no unbounded-redis warning.
    assert!(!linted.problems().contains(&"redis-maxmemory-headroom".to_string()), "{}", linted.summary());
    // harakiri 50s is below nginx's 60s: nothing to order. The [local] section is not read.
    assert!(!linted.problems().contains(&"timeout-order".to_string()), "{}", linted.summary());
    assert!(!linted.summary().contains("py-autoreload"), "{}", linted.summary());
    let ignored = linted.notes("import-ignored").join("\n");
    assert!(ignored.contains("compose service `migrate`: runs `python manage.py migrate --noinput` once and exits"), "{ignored}");
    assert!(!ignored.contains("pass that file to headroom"), "the mounted uwsgi.ini is read: {ignored}");
    snapshot("django-uwsgi", &linted);
}

#[test]
fn compose_service_whose_image_starts_nginx_unit_keeps_its_environment_and_connections() {
    let linted = lint("django-unit-compose");
    assert_read(
        &linted,
        &[("docker-compose.yml", "docker-compose"), ("env/inventory.env", "env file"), ("docker/unit.json", "NGINX Unit config")],
    );
    // The compose `inventory` service runs the image's Unit application of the same
    // name: one service, Unit's 6 processes x 2 threads with the compose env_file's
    // database, plus the django-rq worker: 13 connections against 15 - 3 reserved.
    assert_eq!(linted.exit, 1, "{}", linted.summary());
    let budget = linted.findings().into_iter().find(|f| f["rule"] == "postgres-connections-exhausted").unwrap_or_else(|| panic!("{}", linted.summary()));
    let message = budget["message"].as_str().unwrap();
    assert!(message.contains("inventory 1 replica x 6 workers x 2") && message.contains("inventory-worker 1 replica x 1 process"), "{message}");
    let summary = linted.summary();
    assert!(!summary.contains("is not a kind headroom models"), "{summary}");
    assert!(!summary.contains("runs a program headroom does not model"), "rqworker is an rq worker: {summary}");
    // Both Redis servers are connections of the app: the queue and the cache.
    let assumed = linted.notes("import-assumed").join("\n");
    assert!(assumed.contains("`inventory` connects to `queue` (REDIS_HOST)") && assumed.contains("`inventory` connects to `cache` (REDIS_CACHE_HOST)"), "{assumed}");
    // The listener reaches the app through its route: only the status listener is noted.
    let ignored = linted.notes("import-ignored").join("\n");
    assert!(!ignored.contains("0.0.0.0:8080") && ignored.contains("127.0.0.1:8081"), "{ignored}");
    snapshot("django-unit-compose", &linted);
}

#[test]
fn one_image_whose_entrypoint_functions_pick_the_role() {
    let linted = lint("flask-rq-dispatcher");
    assert_read(
        &linted,
        &[("docker-compose.yml", "docker-compose"), (".env", "env file"), ("Dockerfile", "Dockerfile"), ("bin/docker-entrypoint", "entrypoint script"), ("redis.conf", "redis.conf")],
    );
    // `command: server` runs the entrypoint's `server` function: gunicorn with
    // -w${LEDGER_WEB_WORKERS:-4} = 6 from .env; `worker` runs `manage.py rq worker`
    // (2 replicas); the app's own LEDGER_DATABASE_URL names postgres: 9 > 10 - 3.
    assert_eq!(linted.exit, 1, "{}", linted.summary());
    let budget = linted.findings().into_iter().find(|f| f["rule"] == "postgres-connections-exhausted").unwrap_or_else(|| panic!("{}", linted.summary()));
    let message = budget["message"].as_str().unwrap();
    assert!(message.contains("server 1 replica x 6 workers") && message.contains("worker 2 replicas x 1 process"), "{message}");
    let summary = linted.summary();
    // The healthcheck's $HEALTHCHECK_* come from .env; the redis.conf mounted where
    // valkey-server reads it is the file read (its maxmemory counts).
    assert!(!summary.contains("is not a duration") && !summary.contains("not a whole number"), "{summary}");
    assert!(!summary.contains("pass that file to headroom"), "{summary}");
    assert!(!linted.problems().contains(&"redis-maxmemory-headroom".to_string()), "{summary}");
    assert!(linted.notes("import-ignored").join("\n").contains("compose service `files`: runs SeaweedFS"), "{summary}");
    snapshot("flask-rq-dispatcher", &linted);
}

#[test]
fn uwsgi_after_a_wait_loop_with_if_env_blocks() {
    let linted = lint("django-uwsgi-ifenv");
    assert_read(&linted, &[("docker/docker-compose.yml", "docker-compose"), ("docker/.env", "env file"), ("docker/uwsgi.ini", "uWSGI ini")]);
    // `bash -c 'until ...; done; uwsgi ...'` runs uWSGI (not an unknown worker); the
    // ini's `if-not-env = UWSGI_PROCESSES` block is passed over since .env sets it to
    // 6, which uWSGI reads as `processes`: 6 against 8 - 3 reserved.
    assert_eq!(linted.exit, 1, "{}", linted.summary());
    let budget = linted.findings().into_iter().find(|f| f["rule"] == "postgres-connections-exhausted").unwrap_or_else(|| panic!("{}", linted.summary()));
    assert!(budget["message"].as_str().unwrap().contains("web 1 replica x 6 workers"), "{budget:#}");
    let summary = linted.summary();
    assert!(!summary.contains("runs a program headroom does not model") && !summary.contains("unknown key `command`"), "{summary}");
    assert!(!summary.contains("`endif`") && !summary.contains("`if-env`"), "{summary}");
    assert!(summary.contains("runs `./manage.py sendalerts` beside the workers"), "{summary}");
    snapshot("django-uwsgi-ifenv", &linted);
}

#[test]
fn an_entrypoint_that_runs_a_migration_then_the_cmd() {
    let linted = lint("wagtail-entrypoint-cmd");
    assert_read(
        &linted,
        &[("docker-compose.yml", "docker-compose"), ("Dockerfile", "Dockerfile"), ("docker-entrypoint.sh", "entrypoint script"), ("etc/uwsgi.ini", "uWSGI ini")],
    );
    // The entrypoint tests "$1" only to migrate first, then execs the CMD: uWSGI with
    // 4 workers x 4 threads = 16 against the project's own postgres image (15 - 3).
    assert_eq!(linted.exit, 1, "{}", linted.summary());
    let budget = linted.findings().into_iter().find(|f| f["rule"] == "postgres-connections-exhausted").unwrap_or_else(|| panic!("{}", linted.summary()));
    assert!(budget["message"].as_str().unwrap().contains("app 1 replica x 4 workers x 4"), "{budget:#}");
    let summary = linted.summary();
    assert!(!summary.contains("runs the command of its Dockerfile") && !summary.contains("not a kind headroom models"), "{summary}");
    // The CI compose file under ci/ is not a deployment.
    assert!(summary.contains("ci: skipped: test fixtures, CI setups"), "{summary}");
    snapshot("wagtail-entrypoint-cmd", &linted);
}

#[test]
fn airflow_components_and_setup_tasks_are_listed_not_counted() {
    let linted = lint("airflow-celery");
    assert_read(&linted, &[("docker-compose.yaml", "docker-compose")]);
    // Airflow's image runs its own components (`command: celery worker` is
    // `airflow celery worker`, sized by airflow.cfg): listed, not invented as workers
    // of one connection or as a celery pool of one child per CPU. A service others wait
    // to complete runs once.
    assert_eq!(linted.exit, 0, "{}", linted.summary());
    assert!(linted.problems().is_empty(), "{}", linted.summary());
    let ignored = linted.notes("import-ignored").join("\n");
    for service in ["api-server", "scheduler", "worker", "setup"] {
        assert!(ignored.contains(&format!("compose service `{service}`: runs Apache Airflow")), "{service}: {ignored}");
    }
    assert!(ignored.contains("compose service `preflight`: runs once and exits"), "{ignored}");
    assert!(!linted.summary().contains("without --concurrency"), "{}", linted.summary());
    snapshot("airflow-celery", &linted);
}

#[test]
fn celery_through_a_management_command_and_a_server_config_no_service_runs() {
    let linted = lint("django-mgmt-celery");
    assert_read(&linted, &[("deploy/docker-compose.yml", "docker-compose"), ("deploy/app.env", "env file"), ("docker/uwsgi.ini", "uWSGI ini")]);
    // `inventory-server celery worker --concurrency 18` is a celery pool of 18: with
    // beat, 19 connections against 20 - 3. The uwsgi.ini belongs to no service here
    // (the web image is not one headroom knows): noted, not turned into a `web` service.
    assert_eq!(linted.exit, 1, "{}", linted.summary());
    let budget = linted.findings().into_iter().find(|f| f["rule"] == "postgres-connections-exhausted").unwrap_or_else(|| panic!("{}", linted.summary()));
    assert!(budget["message"].as_str().unwrap().contains("celery_worker 1 replica x 1 process x 18"), "{budget:#}");
    let summary = linted.summary();
    assert!(summary.contains("uWSGI ini that no service of the deployment runs"), "{summary}");
    assert!(!summary.contains("uWSGI of `web` is modelled"), "{summary}");
    snapshot("django-mgmt-celery", &linted);
}

#[test]
fn a_mounted_bootstrap_script_picks_the_role_and_runs_a_script_copied_into_the_image() {
    let linted = lint("flask-mounted-bootstrap");
    assert_read(
        &linted,
        &[
            ("docker-compose-non-dev.yml", "docker-compose"),
            ("docker/.env", "env file"),
            ("docker/bootstrap.sh", "entrypoint script"),
            ("docker/entrypoints/run-server.sh", "script"),
            ("Dockerfile", "Dockerfile"),
        ],
    );
    // `docker-compose-non-dev.yml` is the deployment (not a development variant). The
    // app runs /app/docker/bootstrap.sh (./docker mounted there) with `app-gunicorn`,
    // whose branch runs /usr/bin/run-server.sh, copied from docker/entrypoints/ by the
    // Dockerfile: gunicorn 4 workers x 8 threads from docker/.env, plus the celery
    // worker's 4: 36 against 30 - 3.
    assert_eq!(linted.exit, 1, "{}", linted.summary());
    let budget = linted.findings().into_iter().find(|f| f["rule"] == "postgres-connections-exhausted").unwrap_or_else(|| panic!("{}", linted.summary()));
    let message = budget["message"].as_str().unwrap();
    assert!(message.contains("app 1 replica x 4 workers x 8") && message.contains("app-worker 1 replica x 1 process x 4"), "{message}");
    assert!(linted.notes("import-ignored").join("\n").contains("compose service `app-init`: runs once and exits"), "{}", linted.summary());
    snapshot("flask-mounted-bootstrap", &linted);
}

#[test]
fn a_wait_for_the_database_wrapper_hands_over_to_the_start_script() {
    let linted = lint("django-wait-wrapper");
    assert_read(
        &linted,
        &[
            ("docker-compose.yml", "docker-compose"),
            ("deploy/wait-for-postgres.sh", "entrypoint script"),
            ("deploy/start.sh", "script"),
            ("deploy/uwsgi.ini", "uWSGI ini"),
            ("deploy/nginx/default.conf", "nginx"),
        ],
    );
    // wait-for-postgres.sh ends in `exec $cmd` (cmd="$@"): the app runs start.sh, which
    // runs uWSGI with `processes = %(%k * 2)`: 4 on the 2 CPUs assumed, against 6 - 3.
    assert_eq!(linted.exit, 1, "{}", linted.summary());
    let budget = linted.findings().into_iter().find(|f| f["rule"] == "postgres-connections-exhausted").unwrap_or_else(|| panic!("{}", linted.summary()));
    assert!(budget["message"].as_str().unwrap().contains("app 1 replica x 4 workers"), "{budget:#}");
    let summary = linted.summary();
    assert!(!summary.contains("runs a program headroom does not model") && !summary.contains("placeholder"), "{summary}");
    // harakiri 120s sits under nginx's proxy_read_timeout 300: nothing to order.
    assert!(!linted.problems().contains(&"timeout-order".to_string()), "{summary}");
    snapshot("django-wait-wrapper", &linted);
}

#[test]
fn flask_on_uvicorn_workers_started_by_an_entrypoint_script() {
    let linted = lint("flask-uvicorn");
    assert_read(&linted, &[("docker-compose.yml", "docker-compose"), ("Dockerfile", "Dockerfile"), ("docker-entrypoint.sh", "entrypoint script")]);
    // The image's ENTRYPOINT script execs uvicorn with --workers "${WEB_CONCURRENCY:-2}",
    // which the container's environment sets to 4; each worker admits 40 requests
    // (--limit-concurrency) against SQLAlchemy's 10 + 20 connections, and 3 replicas
    // x 4 workers x 30 = 360 exceed PostgreSQL's default 100.
    assert_eq!(linted.exit, 1, "{}", linted.summary());
    assert_eq!(linted.problems(), ["app-pool-below-concurrency", "postgres-connections-exhausted"], "{}", linted.summary());
    let budget = linted.findings().into_iter().find(|f| f["rule"] == "postgres-connections-exhausted").unwrap();
    assert!(budget["message"].as_str().unwrap().contains("api 3 replicas x 4 workers x (10 pool + 20 overflow) = 360"), "{budget:#}");
    let assumed = linted.notes("import-assumed").join("\n");
    assert!(assumed.contains("uvicorn of `api` is modelled as a gunicorn service"), "{assumed}");
    snapshot("flask-uvicorn", &linted);
}

/// Runs `import` then `render --force` in a copy of a fixture; returns the copy.
fn import_and_render(name: &str, tmp: &Path) -> (PathBuf, String) {
    let app = tmp.join(name);
    copy_dir(&corpus(name), &app);
    let spec = app.join("capacity.yaml").display().to_string();
    let imported = headroom(&["import", &app.display().to_string(), "-o", &spec]);
    assert!(imported.status.code().is_some_and(|c| c == 0 || c == 1), "{}", String::from_utf8_lossy(&imported.stderr));
    let rendered = headroom(&["render", &spec, "--force", "--color", "never"]);
    let stderr = String::from_utf8_lossy(&rendered.stderr).to_string();
    assert_eq!(rendered.status.code(), Some(0), "{stderr}{}", String::from_utf8_lossy(&rendered.stdout));
    (app, stderr)
}

#[test]
fn import_then_render_leaves_the_repositorys_own_files_alone() {
    // The compose file holds bind mounts, env_file, memcached, a one-shot migration and
    // a profile-only console; puma.rb holds hooks and plugins: none is in the spec, so
    // the imported spec lists them in deploy.keep and render never replaces them.
    let tmp = tempfile::tempdir().unwrap();
    let (app, stderr) = import_and_render("sidekiq-compose", tmp.path());
    let spec = std::fs::read_to_string(app.join("capacity.yaml")).unwrap();
    let keep = "  keep:\n  - .env\n  - Dockerfile\n  - config/database.yml\n  - config/puma.rb\n  - config/sidekiq.yml\n  - docker-compose.yml\n";
    assert!(spec.contains(keep), "{spec}");
    for file in ["docker-compose.yml", "config/puma.rb", ".env"] {
        let original = std::fs::read(corpus("sidekiq-compose").join(file)).unwrap();
        assert_eq!(std::fs::read(app.join(file)).unwrap(), original, "{file} was rewritten");
    }
    assert!(stderr.contains("docker-compose.yml is in deploy.keep"), "{stderr}");
    // What the repository did not have is written.
    assert!(app.join("env/sidekiq.env").exists());

    // Kamal: deploy.yml keeps RAILS_MASTER_KEY, the storage volume, the aliases.
    let (app, _) = import_and_render("rails8-kamal", tmp.path());
    for file in ["config/deploy.yml", "config/puma.rb", "config/database.yml"] {
        let original = std::fs::read(corpus("rails8-kamal").join(file)).unwrap();
        assert_eq!(std::fs::read(app.join(file)).unwrap(), original, "{file} was rewritten");
    }

    // Rendered somewhere else, nothing of the repository can be overwritten: all written.
    let out = tmp.path().join("rendered");
    let spec = app.join("capacity.yaml").display().to_string();
    let rendered = headroom(&["render", &spec, "--force", "-o", &out.display().to_string()]);
    assert_eq!(rendered.status.code(), Some(0), "{}", String::from_utf8_lossy(&rendered.stderr));
    assert!(out.join("config/deploy.yml").exists());
}

#[test]
fn kamal_destinations_are_linted_one_by_one() {
    let linted = lint("kamal-destinations");
    // Each destination is deploy.<destination>.yml merged over deploy.yml, as
    // `kamal deploy -d` does, and every file read says which one it was read for.
    let files = linted.report["files"].as_array().unwrap();
    for (file, destination) in [("config/deploy.staging.yml", "destination staging"), ("config/deploy.production.yml", "destination production")] {
        assert!(
            files.iter().any(|f| linted.relative(f["path"].as_str().unwrap()) == file && f["format"] == "Kamal destination" && f["deployment"] == destination),
            "{file} not read for {destination}: {files:#?}"
        );
    }
    // Staging's RAILS_MAX_THREADS: 10 overrides the shared 5: ten puma threads against
    // database.yml's pool of 5, in staging only.
    assert_eq!(linted.exit, 1, "{}", linted.summary());
    let problems: Vec<&Value> = linted.findings().into_iter().filter(|f| f["severity"] != "info").collect();
    assert_eq!(problems.len(), 1, "{}", linted.summary());
    assert_eq!(problems[0]["rule"], "app-pool-below-concurrency");
    assert!(problems[0]["message"].as_str().unwrap().starts_with("destination `staging`: `web`: each worker runs 10 threads"), "{:#}", problems[0]);
    // The threads come from the destination file's line.
    let threads = linted.findings().into_iter().find(|f| f["rule"] == "app-pool-below-concurrency").unwrap();
    assert!(threads["file"].as_str().unwrap().ends_with("config/database.yml"), "{threads:#}");
    let slots = &threads["related"][0]["span"];
    assert!(slots["file"].as_str().unwrap().ends_with("config/deploy.staging.yml") && slots["line"] == 13, "{threads:#}");
    // One destination at a time: --destination production reads only that one.
    let dir = corpus("kamal-destinations").display().to_string();
    let out = headroom(&["lint", &dir, "--destination", "production", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    snapshot("kamal-destinations", &linted);
}

#[test]
fn variants_in_separate_folders_are_linted_as_separate_deployments() {
    // Two ways to run the same app, each with its own database: one folder's workers
    // never count against the other folder's PostgreSQL.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("variants");
    let compose = |workers: u32, replicas: u32, max_connections: u32| {
        format!(
            "services:\n  web:\n    image: acme/app\n    command: gunicorn app.wsgi --workers {workers} --bind 0.0.0.0:8000\n    deploy:\n      replicas: {replicas}\n    environment:\n      DATABASE_URL: postgres://app:app@db:5432/app\n      CONN_MAX_AGE: \"60\"\n  db:\n    image: postgres:16\n    command: postgres -c max_connections={max_connections}\n"
        )
    };
    for (folder, text) in [("deploy/small", compose(8, 1, 10)), ("deploy/large", compose(16, 4, 200))] {
        std::fs::create_dir_all(dir.join(folder)).unwrap();
        std::fs::write(dir.join(folder).join("docker-compose.yml"), text).unwrap();
    }
    let linted = lint_at(&dir);
    assert_eq!(linted.exit, 1, "{}", linted.summary());
    let exhausted: Vec<&str> = linted.findings().into_iter().filter(|f| f["rule"] == "postgres-connections-exhausted").map(|f| f["message"].as_str().unwrap()).collect();
    // 8 connections against 10 - 3 reserved in the small variant; 64 of 197 in the large.
    assert_eq!(exhausted.len(), 1, "{exhausted:#?}");
    assert!(exhausted[0].starts_with("deployment `deploy/small`: "), "{}", exhausted[0]);
    assert!(!linted.summary().contains("already described by another file"), "{}", linted.summary());
    let files = linted.report["files"].as_array().unwrap();
    for folder in ["deploy/small", "deploy/large"] {
        assert!(
            files.iter().any(|f| f["path"].as_str().unwrap().ends_with(&format!("{folder}/docker-compose.yml")) && f["deployment"] == folder),
            "{files:#?}"
        );
    }
}

#[test]
fn kamal_config_of_an_engine_with_destinations_deploys_the_enclosing_app() {
    // A Rails app whose open-source edition deploys from config/deploy.yml and whose
    // hosted edition deploys from saas/config/deploy.yml with destinations: each
    // destination of the nested config is its own deployment, and it runs the
    // enclosing app's puma.rb and queue.yml (the folder has none of its own).
    let linted = lint("kamal-engine-destinations");
    assert_eq!(linted.exit, 1, "{}", linted.summary());
    let files = linted.report["files"].as_array().unwrap();
    for destination in ["saas, destination staging", "saas, destination production", "saas, destination beta1"] {
        for file in ["saas/config/deploy.yml", "saas/config/database.yml", "config/puma.rb", "config/queue.yml"] {
            assert!(files.iter().any(|f| linted.relative(f["path"].as_str().unwrap()) == file && f["deployment"] == destination), "{file} not read for {destination}: {files:#?}");
        }
    }
    // Staging raises RAILS_MAX_THREADS to 8 against the hosted database.yml's fixed
    // pool of 5, for each database the web process holds a pool of; production and
    // the other deployments are within their pools.
    let problems: Vec<&Value> = linted.findings().into_iter().filter(|f| f["severity"] != "info").collect();
    assert_eq!(problems.len(), 2, "{}", linted.summary());
    for (problem, database) in problems.iter().zip(["primary", "queue"]) {
        let message = problem["message"].as_str().unwrap();
        assert_eq!(problem["rule"], "app-pool-below-concurrency");
        assert!(message.starts_with("deployment `saas`, destination `staging`: `web`: each worker runs 8 threads"), "{message}");
        assert!(message.contains(&format!("5 for its `{database}` database")) && message.contains("all 5 connections checked out"), "{message}");
    }
    // A database.yml that includes another file chosen at run time, an ERB-only
    // destination and an engine's routes are notes, never errors.
    let ignored = linted.notes("import-ignored");
    assert!(ignored.iter().any(|n| n.contains("database.yml is written at run time") && n.contains("`config/database.postgresql.yml`, `config/database.sqlite.yml`")), "{ignored:#?}");
    assert!(ignored.iter().any(|n| n.contains("Kamal destination `beta1` is written by ERB")), "{ignored:#?}");
    assert!(!linted.summary().contains("no route to `rails/health#show`"), "{}", linted.summary());
    let skipped: Vec<(String, &str)> = files.iter().filter_map(|f| Some((linted.relative(f["path"].as_str()?), f["skipped"].as_str()?))).collect();
    assert!(skipped.iter().any(|(p, why)| p == "saas/config/routes.rb" && why.contains("engine")), "{skipped:#?}");
    assert!(!skipped.iter().any(|(p, _)| p.contains("deploy.")), "destinations are read, not skipped: {skipped:#?}");
    snapshot("kamal-engine-destinations", &linted);
}

#[test]
fn procfile_app_on_unicorn_and_resque_pool_counts_every_process() {
    // A Procfile app whose web process is a script (thrust in front) that ends by
    // running unicorn, with Resque workers from resque-pool.yml (ERB counts from the
    // CPUs), a Delayed Job worker and a redis-server with its own config file.
    let linted = lint("procfile-unicorn-resque");
    assert_read(
        &linted,
        &[
            ("Procfile", "Procfile"),
            ("bin/start-app", "script"),
            ("config/unicorn.conf.rb", "unicorn.rb"),
            ("config/resque-pool.yml", "resque-pool.yml"),
            ("config/redis.conf", "redis.conf"),
            ("config/database.yml", "Rails database.yml"),
        ],
    );
    // Single-threaded processes against a pool of 2: no pool finding; the only
    // problem is Redis' AOF rewrite fork on a host with the kernel's default overcommit.
    assert_eq!(linted.problems(), ["redis-overcommit"], "{}", linted.summary());
    // Every process that opens connections is in the demand: 3 unicorn workers, the
    // 5 resque processes (3 for `critical,default` on 2 CPUs, `default` from the top
    // level, `mailers`) and the Delayed Job worker (`rails jobs:work`).
    let demand = linted.findings().into_iter().find(|f| f["rule"] == "postgres-connections-exhausted").map(|f| f["message"].as_str().unwrap().to_string()).unwrap_or_default();
    assert!(demand.contains("web 1 replica x 3 workers x 2 pool = 6 + worker 1 replica x 5 processes x 2 pool = 10 + mailer 1 replica x 1 process x 2 pool = 2"), "{demand}");
    // Unicorn's messages speak of unicorn and its config, not of puma flags or puma.rb;
    // the config named with -c is read, so it is not noted as unread.
    let summary = linted.summary();
    assert!(summary.contains("the default in the unicorn config, because UNICORN_WORKERS is not set"), "{summary}");
    assert!(!summary.contains("puma.rb") && !summary.contains("where puma runs") && !summary.contains("puma `"), "{summary}");
    assert!(!summary.contains("pass that file"), "{summary}");
    snapshot("procfile-unicorn-resque", &linted);
}

#[test]
fn compose_service_on_the_apps_image_without_a_command_runs_the_dockerfile_cmd() {
    // A self-hosting compose file: `web` names the published image and no command,
    // `worker` runs sidekiq from the same image. The image is the app's, built by the
    // Dockerfile beside it, whose CMD (`./bin/rails server`) `web` runs.
    let linted = lint("compose-app-image");
    assert_read(&linted, &[("compose.example.yml", "docker-compose"), ("Dockerfile", "Dockerfile"), ("config/puma.rb", "puma.rb"), ("config/sidekiq.yml", "sidekiq.yml"), ("config/database.yml", "Rails database.yml")]);
    let assumed = linted.notes("import-assumed");
    assert!(assumed.iter().any(|n| n.contains("`web` runs its CMD `./bin/rails server`")), "{assumed:#?}");
    assert!(!linted.summary().contains("is not a kind headroom models"), "{}", linted.summary());
    // Sidekiq's 10 threads against database.yml's pool of RAILS_MAX_THREADS (3); puma's
    // 3 threads fit it.
    assert_eq!(linted.exit, 1, "{}", linted.summary());
    let problems: Vec<&Value> = linted.findings().into_iter().filter(|f| f["severity"] != "info").collect();
    assert_eq!(problems.len(), 1, "{}", linted.summary());
    assert!(problems[0]["message"].as_str().unwrap().starts_with("`worker`: each process runs 10 jobs at once"), "{:#}", problems[0]);
    // A fact the value rests on is said once.
    assert!(!linted.summary().contains("production (no file sets it; pass --env to evaluate another); RAILS_ENV"), "{}", linted.summary());
    snapshot("compose-app-image", &linted);
}

#[test]
fn database_yml_sizing_the_pool_by_sidekiq_server_counts_each_process_its_own() {
    // `pool: <%= Sidekiq.server? ? SIDEKIQ_CONCURRENCY : RAILS_MAX_THREADS %>`: the
    // Sidekiq process holds 15 connections, the puma process 5 (its compose entrypoint
    // script hands over to `rails s`); together 20 against max_connections 20 less
    // the 3 reserved for superusers.
    let linted = lint("compose-sidekiq-server-pool");
    assert_eq!(linted.problems(), ["postgres-connections-exhausted"], "{}", linted.summary());
    let exhausted = linted.findings().into_iter().find(|f| f["rule"] == "postgres-connections-exhausted").unwrap();
    let message = exhausted["message"].as_str().unwrap();
    assert!(message.contains("rails 1 replica x 1 worker x 5 pool = 5 + sidekiq 1 replica x 1 process x 15 pool = 15"), "{message}");
    let summary = linted.summary();
    assert!(!summary.contains("Sidekiq.server?") && !summary.contains("runs a program headroom does not model"), "{summary}");
    snapshot("compose-sidekiq-server-pool", &linted);
}

#[test]
fn kamal_env_tags_reach_the_roles_whose_hosts_carry_them() {
    // `env.tags.large` raises RAILS_MAX_THREADS to 12 on the hosts tagged `large`: all
    // of web's hosts, so puma runs 12 threads against database.yml's pool of 10; one
    // of the two job hosts only, which one service cannot say, so that is noted.
    let linted = lint("kamal-env-tags");
    assert_eq!(linted.problems(), ["app-pool-below-concurrency"], "{}", linted.summary());
    let problem = linted.findings().into_iter().find(|f| f["rule"] == "app-pool-below-concurrency").unwrap();
    assert!(problem["message"].as_str().unwrap().starts_with("`web`: each worker runs 12 threads"), "{problem:#}");
    let slots = &problem["related"][0]["span"];
    assert!(slots["file"].as_str().unwrap().ends_with("config/deploy.yml") && slots["line"] == 34, "the threads come from the tag's line: {problem:#}");
    let ignored = linted.notes("import-ignored");
    assert!(ignored.iter().any(|n| n.contains("env tag `large` applies to 1 of the 2 hosts of role `job`")), "{ignored:#?}");
    snapshot("kamal-env-tags", &linted);
}

#[test]
fn puma_rb_and_a_unicorn_config_with_no_command_are_alternatives() {
    // A Rails app that ships both config/puma.rb and config/unicorn.conf.rb, with no
    // Procfile, compose or Kamal file saying which server runs: one is read, the
    // other noted, never merged into 8 unicorn workers of 5 puma threads each.
    let linted = lint("rails-puma-or-unicorn");
    assert_eq!(linted.exit, 0, "{}", linted.summary());
    let demand = linted.findings().into_iter().find(|f| f["rule"] == "postgres-connections-exhausted").map(|f| f["message"].as_str().unwrap().to_string()).unwrap_or_default();
    assert!(demand.contains("web 1 replica x 2 workers x 5 pool = 10"), "{demand}");
    let ignored = linted.notes("import-ignored");
    assert!(ignored.iter().any(|n| n.starts_with("ignored: unicorn config for `web` beside") && n.contains("two alternatives, not merged")), "{ignored:#?}");
    assert!(!linted.summary().contains("is a puma service (database.yml is read by a Rails app)"), "{}", linted.summary());
    // The unicorn config on its own: 8 one-thread workers.
    let dir = corpus("rails-puma-or-unicorn");
    let out = headroom(&["lint", &dir.join("config/unicorn.conf.rb").display().to_string(), &dir.join("config/database.yml").display().to_string(), "--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let demand = report["findings"].as_array().unwrap().iter().find(|f| f["rule"] == "postgres-connections-exhausted").map(|f| f["message"].as_str().unwrap().to_string()).unwrap_or_default();
    assert!(demand.contains("web 1 replica x 8 workers x 5 pool = 40"), "{demand}");
    snapshot("rails-puma-or-unicorn", &linted);
}
