//! Pool and concurrency settings an app reads from its environment (the variables
//! `headroom render` writes to `env/<service>.env` and to compose/Kamal `env:`):
//! `WEB_CONCURRENCY`, `RAILS_MAX_THREADS`, `DATABASE_POOL` (Rails), `CONN_MAX_AGE`
//! (Django), `DB_POOL_SIZE` + `DB_MAX_OVERFLOW` (SQLAlchemy), `DB_POOL_MIN` /
//! `DB_POOL_MAX` (psycopg2), `DB_POOL_MIN_SIZE` / `DB_POOL_MAX_SIZE` (psycopg_pool, or
//! Django 5.1's pool with `CONN_MAX_AGE=0`), `REDIS_POOL_SIZE` and
//! `<TARGET>_POOL_SIZE`, applied as the `uses` pools of a service. Also the reader of
//! headroom's own `env/<service>.env` files.

use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::{Value, json};

use super::pgbouncer::PLAIN_VARIABLES;
use crate::import::formats::pgbouncer_ini;
use crate::import::shared::env::{EnvVar, Variables, interpolate, parse_env_file};
use crate::import::shared::names::service_name;
use crate::import::shared::units;
use crate::import::{FileId, ImportBuilder};

/// What a pool variable sets on the edge to its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Db,
    Redis,
    /// `<PREFIX>_POOL_SIZE` of the service whose env prefix is this.
    Named,
}

/// The edge key and target a variable sets: (target, key).
fn pool_var(name: &str) -> Option<(Target, &'static str)> {
    Some(match name {
        "DB_POOL_SIZE" | "DATABASE_POOL_SIZE" | "DB_POOL_MAX" | "DB_MAX_CONNECTIONS" | "DATABASE_POOL_MAX" | "DB_POOL_MAX_SIZE" | "DATABASE_POOL" => (Target::Db, "pool"),
        "DB_MAX_OVERFLOW" | "DATABASE_MAX_OVERFLOW" => (Target::Db, "max_overflow"),
        "DB_POOL_MIN" | "DATABASE_POOL_MIN" | "DB_POOL_MIN_SIZE" => (Target::Db, "min"),
        "REDIS_POOL_SIZE" | "REDIS_MAX_CONNECTIONS" => (Target::Redis, "pool"),
        "CONN_MAX_AGE" | "DB_CONN_MAX_AGE" | "DATABASE_CONN_MAX_AGE" => (Target::Db, "conn_max_age"),
        n if n.ends_with("_POOL_SIZE") => (Target::Named, "pool"),
        _ => return None,
    })
}

/// Whether `render` writes this variable from the plan (concurrency and pools).
pub fn is_managed(name: &str) -> bool {
    matches!(name, "WEB_CONCURRENCY" | "RAILS_MAX_THREADS" | "RAILS_MIN_THREADS" | "CONN_HEALTH_CHECKS") || pool_var(name).is_some()
}

/// `pgvector-db` -> `PGVECTOR_DB` (how the app-env target prefixes a second pool).
fn env_prefix(name: &str) -> String {
    let mut out: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn services_of_kind(builder: &ImportBuilder, kinds: &[&str]) -> Vec<String> {
    builder
        .value
        .get("services")
        .and_then(Value::as_object)
        .map(|s| s.iter().filter(|(_, v)| v.get("kind").and_then(Value::as_str).is_some_and(|k| kinds.contains(&k))).map(|(k, _)| k.clone()).collect())
        .unwrap_or_default()
}

/// A service a pool connects to, and whether it was inferred (not named by a file).
pub type PoolTarget = Option<(String, bool)>;

/// A pool value read: (value, variable, file, bytes).
type Found = BTreeMap<(String, &'static str), (u64, String, FileId, Range<usize>)>;

/// A framework inferred from variable names: (framework, why, file, bytes, persistent).
type Inferred<'a> = Option<(&'a str, String, FileId, Range<usize>, Option<bool>)>;

/// The database (pgbouncer or postgres) and redis a service connects to: its `uses`
/// edges when the files made them, else the only pgbouncer (or, with none, the only
/// postgres) and the only redis described. The flag says whether it was inferred.
pub fn targets(builder: &ImportBuilder, service: &str) -> (PoolTarget, PoolTarget) {
    let uses: Vec<String> = builder.get(&format!("services.{service}.uses")).and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default();
    let kind = |s: &str| builder.kind_of_service(s);
    let db_edge = uses.iter().find(|u| matches!(kind(u).as_deref(), Some("pgbouncer"))).or_else(|| uses.iter().find(|u| matches!(kind(u).as_deref(), Some("postgres"))));
    let redis_edge = uses.iter().find(|u| kind(u).as_deref() == Some("redis"));
    let db = db_edge.map(|d| (d.clone(), false)).or_else(|| {
        let pgbouncers = services_of_kind(builder, &["pgbouncer"]);
        let postgres = services_of_kind(builder, &["postgres"]);
        match (pgbouncers.as_slice(), postgres.as_slice()) {
            ([one], _) => Some((one.clone(), true)),
            ([], [one]) => Some((one.clone(), true)),
            _ => None,
        }
    });
    let redis = redis_edge.map(|r| (r.clone(), false)).or_else(|| match services_of_kind(builder, &["redis"]).as_slice() {
        [one] => Some((one.clone(), true)),
        _ => None,
    });
    (db, redis)
}

/// Applies the pool variables of `vars` to `service`'s edges to `db` / `redis` (later
/// variables win over earlier ones; values the builder holds already are kept).
/// Frameworks are inferred from the variable names where no file said.
pub fn apply_pools(builder: &mut ImportBuilder, service: &str, db: Option<&str>, redis: Option<&str>, vars: &[EnvVar]) {
    // (target, key) -> (value, var name, file, bytes)
    let mut found: Found = BTreeMap::new();
    let mut conn_max_age: Option<(String, Option<u64>, FileId, Range<usize>)> = None;
    for var in vars {
        let Some(raw) = &var.value else { continue };
        let Some((target, key)) = pool_var(&var.name) else { continue };
        let target = match target {
            Target::Db => db.map(str::to_string),
            Target::Redis => redis.map(str::to_string),
            Target::Named => {
                let prefix = var.name.trim_end_matches("_POOL_SIZE");
                let names: Vec<String> = builder.value.get("services").and_then(Value::as_object).map(|s| s.keys().cloned().collect()).unwrap_or_default();
                match names.into_iter().find(|n| env_prefix(n) == prefix && n != service) {
                    Some(n) => Some(n),
                    None => continue,
                }
            }
        };
        let resolved = interpolate(raw, &Variables::default());
        let Some(text) = resolved.text.map(|t| t.trim().to_string()) else {
            builder.ignored(var.file, var.bytes.clone(), format!("{}: not a whole number known here", var.name));
            continue;
        };
        let Some(target) = target else {
            builder.ignored(var.file, var.bytes.clone(), format!("{} = {text}: the service `{service}` connects to is not described by the files read", var.name));
            continue;
        };
        if key == "conn_max_age" {
            // Django: 0 closes after each request, None (or a positive age) persists.
            let age = if text.eq_ignore_ascii_case("none") { Some(u64::MAX) } else { text.parse::<u64>().ok() };
            match age {
                Some(a) => conn_max_age = Some((target, Some(a), var.file, var.bytes.clone())),
                None => builder.ignored(var.file, var.bytes.clone(), format!("CONN_MAX_AGE = `{}` is not a number of seconds", text.escape_debug())),
            }
            continue;
        }
        match text.parse::<u64>() {
            Ok(n) => {
                found.insert((target, key), (n, var.name.clone(), var.file, var.bytes.clone()));
            }
            Err(_) => builder.ignored(var.file, var.bytes.clone(), format!("{}: not a whole number known here", var.name)),
        }
    }
    let names: BTreeMap<(String, &'static str), String> = found.iter().map(|(k, v)| (k.clone(), v.1.clone())).collect();
    for ((target, key), (value, _, file, bytes)) in &found {
        let path = format!("services.{service}.uses.{target}.{key}");
        if builder.get(&path).is_none() {
            builder.set(&path, json!(value), *file, bytes.clone());
        }
    }
    // Frameworks, where no file said which library owns the pool.
    let Some(db) = db else { return };
    let framework_path = format!("services.{service}.uses.{db}.framework");
    let var_of = |key: &'static str| names.get(&(db.to_string(), key)).cloned();
    let (pool_var_name, min_var) = (var_of("pool"), var_of("min"));
    let overflow = var_of("max_overflow");
    let origin = |key: &'static str| found.get(&(db.to_string(), key)).map(|v| (v.2, v.3.clone()));
    let inferred: Inferred<'_> = if let Some((_, age, file, bytes)) = &conn_max_age {
        let persistent = age.is_some_and(|a| a > 0);
        Some(("django", format!("CONN_MAX_AGE = {}", if *age == Some(u64::MAX) { "None".to_string() } else { age.unwrap_or(0).to_string() }), *file, bytes.clone(), Some(persistent)))
    } else if let Some(name) = &overflow {
        origin("max_overflow").map(|(f, b)| ("sqlalchemy", format!("{name} (pool_size + max_overflow)"), f, b, None))
    } else if let Some(name) = pool_var_name.as_ref().filter(|n| n.as_str() == "DATABASE_POOL") {
        origin("pool").map(|(f, b)| ("rails", format!("{name} (what database.yml's `pool:` reads)"), f, b, None))
    } else if let Some(name) = pool_var_name.as_ref().filter(|n| n.ends_with("_MAX_SIZE")).or(min_var.as_ref().filter(|n| n.ends_with("_MIN_SIZE"))) {
        origin("pool").or_else(|| origin("min")).map(|(f, b)| ("psycopg_pool", format!("{name} (ConnectionPool min_size/max_size)"), f, b, None))
    } else if let Some(name) = pool_var_name.as_ref().filter(|n| n.as_str() == "DB_POOL_MAX").or(min_var.as_ref().filter(|n| n.as_str() == "DB_POOL_MIN")) {
        origin("pool").or_else(|| origin("min")).map(|(f, b)| ("psycopg2", format!("{name} (ThreadedConnectionPool minconn/maxconn)"), f, b, None))
    } else {
        None
    };
    let Some((framework, why, file, bytes, persistent)) = inferred else { return };
    if builder.get(&framework_path).is_none() {
        builder.set(&framework_path, json!(framework), file, bytes.clone());
        builder.assumed_at(file,
            bytes.clone(),
            format!("`{service}` pools with {framework}, from {why}"),
            "set uses.<db>.framework in an overlay if another library reads these variables",
        );
    }
    if let Some(p) = persistent {
        let path = format!("services.{service}.uses.{db}.persistent");
        if builder.get(&path).is_none() && builder.get(&framework_path).and_then(Value::as_str) == Some("django") {
            builder.set(&path, json!(p), file, bytes);
        }
    }
}

/// Reads an `env/<service>.env` file (headroom's app-env layout): concurrency
/// (`WEB_CONCURRENCY`, `RAILS_MAX_THREADS`, ...) and pools of the service it names.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let Some(source) = builder.sources.get(file) else { return };
    let text = source.text.clone();
    let stem = source.path.file_stem().and_then(|s| s.to_str()).unwrap_or("").to_string();
    let service = builder.owner_of(file, &service_name(&stem));
    let vars = parse_env_file(&text, file);
    if !builder.has_service(&service) {
        let bytes = vars.first().map_or(0..0, |v| v.bytes.clone());
        builder.ignored(file, bytes, format!("environment file of `{service}`, a service the other files do not describe; pass its compose, Kamal or app-server config too"));
        return;
    }
    let kind = builder.kind_of_service(&service).unwrap_or_default();
    for var in &vars {
        if let Some(value) = &var.value {
            apply_app_env(builder, &service, &kind, &var.name, value, var.file, var.bytes.clone());
        }
    }
    let (db, redis) = targets(builder, &service);
    let wants = |t: Target| vars.iter().any(|v| pool_var(&v.name).is_some_and(|(x, _)| x == t));
    for (target, t, what) in [(&db, Target::Db, "database"), (&redis, Target::Redis, "redis")] {
        if let Some((name, true)) = target
            && wants(t)
        {
            let bytes = vars.iter().find(|v| pool_var(&v.name).is_some_and(|(x, _)| x == t)).map_or(0..0, |v| v.bytes.clone());
            if builder.get(&format!("services.{service}.uses.{name}")).is_none() {
                builder.set(&format!("services.{service}.uses.{name}"), json!({}), file, bytes.clone());
            }
            builder.assumed_at(file, bytes, format!("`{service}` connects to `{name}`, the only {what} the files describe"), format!("set services.{service}.uses in an overlay if it connects elsewhere"));
        }
    }
    apply_pools(builder, &service, db.as_ref().map(|d| d.0.as_str()), redis.as_ref().map(|r| r.0.as_str()), &vars);
}

/// The spec key an app-server environment variable sets for a kind.
pub fn app_env_key(kind: &str, name: &str) -> Option<(&'static str, &'static str)> {
    // (key, how the program reads it)
    Some(match (kind, name) {
        ("gunicorn", "WEB_CONCURRENCY") => ("workers", "gunicorn's default worker count"),
        ("gunicorn", "GUNICORN_WORKERS") => ("workers", "a variable the app's gunicorn config reads"),
        ("gunicorn", "GUNICORN_THREADS") => ("threads", "a variable the app's gunicorn config reads"),
        ("gunicorn", "GUNICORN_WORKER_CONNECTIONS") => ("worker_connections", "a variable the app's gunicorn config reads"),
        ("gunicorn", "GUNICORN_TIMEOUT") => ("timeout", "a variable the app's gunicorn config reads"),
        ("gunicorn", "GUNICORN_WORKER_CLASS") => ("worker_class", "a variable the app's gunicorn config reads"),
        ("gunicorn", "GUNICORN_KEEPALIVE") => ("keepalive", "a variable the app's gunicorn config reads"),
        ("gunicorn", "GUNICORN_MAX_REQUESTS") => ("max_requests", "a variable the app's gunicorn config reads"),
        ("gunicorn", "UWSGI_PROCESSES" | "UWSGI_WORKERS") => ("workers", "uWSGI's `processes` option from the environment"),
        ("gunicorn", "UWSGI_THREADS") => ("threads", "uWSGI's `threads` option from the environment"),
        ("gunicorn", "UWSGI_HARAKIRI") => ("timeout", "uWSGI's `harakiri` option from the environment"),
        ("puma", "WEB_CONCURRENCY") => ("workers", "puma's default worker count"),
        ("puma", "RAILS_MAX_THREADS" | "PUMA_MAX_THREADS" | "MAX_THREADS") => ("threads", "the thread count Rails' puma.rb reads"),
        ("puma", "RAILS_MIN_THREADS" | "PUMA_MIN_THREADS" | "MIN_THREADS") => ("min_threads", "the minimum thread count Rails' puma.rb reads"),
        ("sidekiq", "SIDEKIQ_CONCURRENCY") => ("concurrency", "sidekiq's concurrency"),
        ("sidekiq", "RAILS_MAX_THREADS") => ("concurrency", "sidekiq's default concurrency (Sidekiq 7 reads RAILS_MAX_THREADS)"),
        ("solid_queue" | "worker", "RAILS_MAX_THREADS") => ("concurrency", "the threads per process a Rails job or cable process runs"),
        ("celery", "CELERY_CONCURRENCY" | "CELERYD_CONCURRENCY" | "CELERY_WORKER_CONCURRENCY") => ("concurrency", "a variable the celery settings read"),
        ("solid_queue", "JOB_CONCURRENCY") => ("processes", "the processes Rails' config/queue.yml reads"),
        _ => return None,
    })
}

/// Whether a server program reads an app-server variable the kind it is modelled as
/// reads (gunicorn and uvicorn read WEB_CONCURRENCY; uWSGI, hypercorn, daphne and
/// granian do not; unicorn reads neither WEB_CONCURRENCY nor thread counts).
fn reads_variable(program: &str, name: &str) -> bool {
    match program {
        "uwsgi" => name.starts_with("UWSGI_") || !matches!(name, "WEB_CONCURRENCY") && !name.starts_with("GUNICORN_"),
        "hypercorn" | "daphne" | "granian" => !matches!(name, "WEB_CONCURRENCY") && !name.starts_with("GUNICORN_") && !name.starts_with("UWSGI_"),
        "uvicorn" => !name.starts_with("GUNICORN_") && !name.starts_with("UWSGI_"),
        "unicorn" => !matches!(name, "WEB_CONCURRENCY" | "RAILS_MAX_THREADS" | "PUMA_MAX_THREADS" | "MAX_THREADS" | "RAILS_MIN_THREADS" | "PUMA_MIN_THREADS" | "MIN_THREADS"),
        "gunicorn" => !name.starts_with("UWSGI_"),
        _ => true,
    }
}

/// Applies an app-server variable (`WEB_CONCURRENCY=4`) to a service when the command
/// or config did not set that key. True when the variable means something here.
pub fn apply_app_env(builder: &mut ImportBuilder, service: &str, kind: &str, name: &str, value: &str, file: FileId, bytes: Range<usize>) -> bool {
    let Some((key, how)) = app_env_key(kind, name) else { return false };
    // A server of the kind's shape that does not read the variable itself (hypercorn
    // has no WEB_CONCURRENCY; a unicorn worker has one thread whatever
    // RAILS_MAX_THREADS says).
    if let Some(program) = builder.programs.get(service).copied().filter(|p| !reads_variable(p, name)) {
        builder.ignored(file, bytes, format!("{name}: {program} does not read it; `{key}` of `{service}` is not taken from it"));
        return true;
    }
    let path = format!("services.{service}.{key}");
    if builder.get(&path).is_some() {
        return true;
    }
    let v = value.trim();
    // Puma reads WEB_CONCURRENCY=auto as one worker per available processor (what
    // Rails' generated puma.rb tells its users to set), as `workers :auto` in puma.rb.
    if kind == "puma" && key == "workers" && v == "auto" {
        let facts = &builder.facts;
        let (cpus, known) = (facts.cpus, facts.cpus_known);
        builder.set(&path, Value::from(cpus), file, bytes.clone());
        if !known {
            builder.assumed_at(file, bytes, format!("{name}=auto: {cpus} CPUs, one puma worker each (the machine's CPU count is not in the files)"), "pass --cpus N, the CPUs each of its containers sees");
        }
        return true;
    }
    let parsed = match key {
        "timeout" | "keepalive" => units::seconds(v).map(Value::from),
        "worker_class" => crate::import::interpret::gunicorn::worker_class(v).map(Value::from),
        _ => v.parse::<u64>().ok().filter(|n| *n >= 1).map(Value::from),
    };
    match parsed {
        Some(p) => {
            builder.set(&path, p.clone(), file, bytes.clone());
            if how.starts_with("a variable") {
                builder.assumed_at(file, bytes, format!("{name} sets `{key}` of `{service}` ({how})"), "check the gunicorn config that reads it; pass that file to headroom to read it too");
            }
        }
        None => builder.ignored(file, bytes, format!("{name} = `{}` is not a value for `{key}`", v.escape_debug())),
    }
    true
}

/// Applies the settings a process's environment carries for its kind: app-server
/// and job-runner variables (`WEB_CONCURRENCY`, `RAILS_MAX_THREADS`, ...), the
/// pgbouncer images' `PGBOUNCER_*` and plain variables, and the postgres image's
/// `POSTGRES_DB`. Where a variable is set twice, the later value wins; `$VAR`
/// references take their defaults, and one with none leaves the setting unknown.
pub fn apply_environment(builder: &mut ImportBuilder, service: &str, kind: &str, env: &[EnvVar], vars: &Variables) {
    let last: Vec<&EnvVar> = env.iter().enumerate().filter(|(i, v)| !env[i + 1..].iter().any(|later| later.name == v.name && later.value.is_some())).map(|(_, v)| v).collect();
    for var in last {
        let Some(raw) = &var.value else { continue };
        let key = var.name.as_str();
        let pgbouncer_key = match kind {
            "pgbouncer" => key.strip_prefix("PGBOUNCER_").map(str::to_ascii_lowercase).or_else(|| PLAIN_VARIABLES.contains(&key).then(|| key.to_ascii_lowercase())),
            _ => None,
        };
        let resolved = interpolate(raw, vars);
        let relevant = pgbouncer_key.is_some() || app_env_key(kind, key).is_some();
        let Some(value) = resolved.text.clone() else {
            if relevant {
                let vars = resolved.unknown.iter().map(|v| format!("${{{v}}}")).collect::<Vec<_>>().join(", ");
                builder.ignored(var.file, var.bytes.clone(), format!("{key} takes its value from {vars} at run time; headroom cannot know it"));
            }
            continue;
        };
        if relevant && !resolved.defaulted.is_empty() {
            builder.assumed_at(var.file, var.bytes.clone(), format!("{key} = `{value}`, the default of ${{{}}}", resolved.defaulted.join(", ")), "if that variable is set where the process runs, its value wins");
        }
        if let Some(setting) = pgbouncer_key {
            if !pgbouncer_ini::apply_pgbouncer_setting(builder, service, &setting, &value, var.file, var.bytes.clone()) && key.starts_with("PGBOUNCER_") {
                builder.ignored(var.file, var.bytes.clone(), format!("{key}: pgbouncer setting `{setting}` is not modelled"));
            }
            continue;
        }
        apply_app_env(builder, service, kind, key, &value, var.file, var.bytes.clone());
        if kind == "postgres" && key == "POSTGRES_DB" && builder.get(&format!("services.{service}.databases")).is_none() {
            builder.set(&format!("services.{service}.databases"), json!([value]), var.file, var.bytes.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    fn builder_with(spec: Value) -> ImportBuilder {
        let mut b = ImportBuilder::new("t");
        b.value["services"] = spec;
        b
    }

    fn read_env(b: &mut ImportBuilder, path: &str, text: &str) {
        let id = b.add_source(SourceFile::new(path, text.to_string()));
        read(b, id);
    }

    #[test]
    fn django_persistent_and_redis_pool() {
        let mut b = builder_with(json!({"web": {"kind": "gunicorn", "uses": {"pgbouncer": {}}}, "pgbouncer": {"kind": "pgbouncer"}, "redis": {"kind": "redis"}}));
        read_env(&mut b, "/x/env/web.env", "WEB_CONCURRENCY=8\nCONN_MAX_AGE=300\nCONN_HEALTH_CHECKS=true\nREDIS_POOL_SIZE=100\n");
        let web = &b.value["services"]["web"];
        assert_eq!(web["workers"], 8);
        assert_eq!(web["uses"]["pgbouncer"], json!({"framework": "django", "persistent": true}));
        assert_eq!(web["uses"]["redis"], json!({"pool": 100}));
    }

    #[test]
    fn psycopg2_sqlalchemy_rails_and_psycopg_pool() {
        for (text, expected) in [
            ("DB_POOL_MIN=2\nDB_POOL_MAX=20\n", json!({"framework": "psycopg2", "pool": 20, "min": 2})),
            ("DB_POOL_SIZE=20\nDB_MAX_OVERFLOW=10\n", json!({"framework": "sqlalchemy", "pool": 20, "max_overflow": 10})),
            ("RAILS_MAX_THREADS=5\nDATABASE_POOL=25\n", json!({"framework": "rails", "pool": 25})),
            ("DB_POOL_MIN_SIZE=1\nDB_POOL_MAX_SIZE=8\n", json!({"framework": "psycopg_pool", "pool": 8, "min": 1})),
            ("CONN_MAX_AGE=0\nDB_POOL_MAX_SIZE=8\n", json!({"framework": "django", "pool": 8, "persistent": false})),
        ] {
            let mut b = builder_with(json!({"web": {"kind": "gunicorn"}, "db": {"kind": "postgres"}}));
            read_env(&mut b, "/x/env/web.env", text);
            assert_eq!(b.value["services"]["web"]["uses"]["db"], expected, "{text}");
        }
    }

    #[test]
    fn unknown_service_is_a_note() {
        let mut b = builder_with(json!({}));
        read_env(&mut b, "/x/env/web.env", "WEB_CONCURRENCY=8\n");
        assert!(b.diagnostics.iter().any(|d| d.rule == crate::import::IGNORED), "{:?}", b.diagnostics);
        assert!(!b.has_service("web"));
    }
}
