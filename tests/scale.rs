//! `headroom scale`: for generated specs and targets, and for every shipped example,
//! the proposal passes `check` at the target, no changed knob can move one unit back
//! toward what was written without a rule failing (local minimality), and a spec that
//! already fits yields no change.

use headroom::load::{self, Loaded};
use headroom::scale::{self, Outcome, Target};
use headroom::source::SourceFile;
use proptest::prelude::*;
use serde_json::Value;

fn load_text(text: &str) -> Loaded {
    load::load_source(SourceFile::new("capacity.yaml", text.to_string())).expect("the spec loads")
}

/// The blocking findings of a spec text as it stands.
fn blocking(text: &str) -> Vec<String> {
    let analysis = headroom::analysis::analyze_text("capacity.yaml", text).expect("the proposal loads");
    analysis.diagnostics.iter().filter(|d| scale::blocks(d)).map(|d| format!("{} at {}: {}", d.rule, d.path, d.message)).collect()
}

/// Caps whose default (the key not written, or 0) is "no cap": a proposal that sets one
/// lowers the effective value from unlimited, so one unit back is one up.
const UNLIMITED_BY_DEFAULT: [&str; 3] = ["/max_db_connections", "/max_user_connections", "/max_conns"];

/// One unit back toward the written value (for a key that was not written: toward its
/// default, which is down unless the default is no cap).
fn one_back(pointer: &str, old: Option<&Value>, new: &Value) -> Option<Value> {
    if let Some(text) = new.as_str() {
        let mib: u64 = text.strip_suffix('m')?.parse().ok()?;
        return Some(Value::String(format!("{}m", mib.checked_sub(1)?)));
    }
    let n = new.as_u64()?;
    match old.and_then(Value::as_u64) {
        Some(o) if o > n => Some(Value::from(n + 1)),
        None | Some(0) if UNLIMITED_BY_DEFAULT.iter().any(|cap| pointer.ends_with(cap)) => Some(Value::from(n + 1)),
        _ => n.checked_sub(1).map(Value::from),
    }
}

/// Checks a proposal: it fits, and it is locally minimal.
fn assert_fits_and_minimal(loaded: &Loaded, target: Target, context: &str) {
    let outcome = scale::search(loaded, target).expect("the search runs");
    let proposal = match outcome {
        Outcome::Fits(p) => p,
        // A wall names a finding that still blocks at the target.
        Outcome::Wall(wall) => {
            assert!(scale::blocks(&wall.finding) && !wall.message.is_empty(), "{context}: a wall without a blocking finding");
            return;
        }
    };
    let problems = blocking(&proposal.text);
    assert!(problems.is_empty(), "{context}: the proposal still fails:\n{}\n{}", problems.join("\n"), proposal.text);
    let reloaded = load_text(&proposal.text);
    assert!(scale::same_spec(&reloaded.value, &proposal), "{context}: the text does not hold the proposal");
    // What was checked above is the spec at the target load, not at today's.
    let target_value = scale::with_target(&loaded.value, target).expect("a load");
    let rps = |v: &Value| v.pointer("/load/rps").and_then(Value::as_f64);
    assert_eq!(rps(&reloaded.value), rps(&target_value), "{context}: the proposal is not at the target load");
    for (pointer, old, new) in &proposal.settings {
        if pointer.starts_with("/load/") {
            continue;
        }
        let Some(back) = one_back(pointer, old.as_ref(), new) else { continue };
        let mut value = reloaded.value.clone();
        *value.pointer_mut(pointer).expect("the changed setting is in the spec") = back.clone();
        let still_fits = scale::evaluate(&value).is_some_and(|(_, d)| !d.iter().any(scale::blocks));
        assert!(!still_fits, "{context}: {pointer} could go back from {new} to {back} and still fit:\n{}", proposal.text);
    }
}

/// A spec of an app (gthread), optionally behind nginx, through PgBouncer or straight
/// to postgres, with a redis.
#[derive(Debug, Clone)]
struct Shape {
    rps: u64,
    workers: u64,
    threads: u64,
    replicas: u64,
    cpus: u64,
    pool: u64,
    pooler: bool,
    max_connections: u64,
    maxclients: u64,
    nginx_connections: u64,
    /// nginx's worker_rlimit_nofile left out (its default, 2 x worker_connections,
    /// is what the rule asks for, so `scale` may write exactly that).
    rlimit_written: bool,
    /// PgBouncer instances, and whether max_db_connections / max_user_connections cap
    /// each one (a cap raised for one rule can overfill postgres for another).
    pooler_replicas: u64,
    pooler_caps: bool,
    /// The database's memory in GiB and its work_mem in MiB (None: unknown).
    db_memory: Option<(u64, u64)>,
}

fn spec_text(s: &Shape) -> String {
    let db_use = if s.pooler { "pgbouncer" } else { "db" };
    let mut text = format!(
        "# a generated deployment\nversion: 1\nname: gen\n\nload:\n  rps: {}   # peak\n  service_time: 100ms\n  db_time: 20ms\n\nservices:\n  web:\n    kind: gunicorn\n    worker_class: gthread\n    workers: {}\n    threads: {}\n    replicas: {}\n    resources: {{ cpus: {}, memory: 1GiB }}\n    health: {{ path: /health }}\n    uses:\n      {db_use}: {{ pool: {}, framework: sqlalchemy }}\n      cache: {{ pool: 4 }}\n",
        s.rps, s.workers, s.threads, s.replicas, s.cpus, s.pool
    );
    let rlimit = if s.rlimit_written { format!("    worker_rlimit_nofile: {}\n", s.nginx_connections * 2) } else { String::new() };
    text.push_str(&format!(
        "\n  lb:\n    kind: nginx\n    worker_processes: 1\n    worker_connections: {}   # per worker\n{rlimit}    upstreams: {{ app: {{ to: web, keepalive: 32 }} }}\n    locations: [ {{ path: /, upstream: app }} ]\n",
        s.nginx_connections,
    ));
    if s.pooler {
        text.push_str(&format!("\n  pgbouncer:\n    kind: pgbouncer\n    pool_mode: transaction\n    replicas: {}\n    max_client_conn: 200\n    default_pool_size: 20\n", s.pooler_replicas));
        if s.pooler_caps {
            text.push_str("    reserve_pool_size: 5\n    max_db_connections: 20   # per instance\n    max_user_connections: 20\n");
        }
        text.push_str("    uses: { db: {} }\n");
    }
    let memory = match s.db_memory {
        Some((gib, work_mem)) => format!("    work_mem: {work_mem}MiB\n    resources: {{ cpus: 2, memory: {gib}GiB }}\n"),
        None => String::new(),
    };
    text.push_str(&format!(
        "\n  db:\n    kind: postgres\n    max_connections: {}\n{memory}\n  cache:\n    kind: redis\n    maxclients: {}\n    maxmemory: 512mb\n    maxmemory_policy: allkeys-lru\n    resources: {{ memory: 2GiB }}\n",
        s.max_connections, s.maxclients
    ));
    text
}

fn shape() -> impl Strategy<Value = Shape> {
    let numbers = (10u64..1500, 1u64..6, 1u64..6, 1u64..5, 1u64..4, 1u64..12, any::<bool>(), 20u64..400, 50u64..2000, 64u64..2048);
    let shapes = (any::<bool>(), 1u64..4, any::<bool>(), proptest::option::of((1u64..17, 1u64..65)));
    (numbers, shapes).prop_map(
        |((rps, workers, threads, replicas, cpus, pool, pooler, max_connections, maxclients, nginx_connections), (rlimit_written, pooler_replicas, pooler_caps, db_memory))| Shape {
            rps,
            workers,
            threads,
            replicas,
            cpus,
            pool,
            pooler,
            max_connections,
            maxclients,
            nginx_connections,
            rlimit_written,
            pooler_replicas,
            pooler_caps,
            db_memory,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn proposals_fit_and_are_locally_minimal(s in shape(), factor in 1u64..8) {
        let text = spec_text(&s);
        let loaded = load_text(&text);
        assert_fits_and_minimal(&loaded, Target::Factor(factor as f64), &format!("{s:?} x{factor}"));
    }

    #[test]
    fn a_spec_that_fits_is_left_alone(s in shape(), factor in 1u64..4) {
        // A proposal fits its own target: scaling it again to that target changes
        // nothing (and so does a generated spec that fits as written).
        let loaded = load_text(&spec_text(&s));
        let fitting = if blocking(&loaded.source.text).is_empty() {
            loaded
        } else {
            match scale::search(&loaded, Target::Factor(factor as f64)).expect("the search runs") {
                Outcome::Fits(proposal) => load_text(&proposal.text),
                Outcome::Wall(_) => return Ok(()),
            }
        };
        let rps = fitting.value.pointer("/load/rps").and_then(Value::as_f64).expect("a load");
        let Outcome::Fits(proposal) = scale::search(&fitting, Target::Rps(rps)).expect("the search runs") else {
            panic!("a spec that fits hit a wall")
        };
        prop_assert!(proposal.settings.is_empty(), "changed {:?}", proposal.settings);
    }
}

#[test]
fn every_example_scales_or_names_its_wall() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut names: Vec<_> = std::fs::read_dir(&root).expect("examples").flatten().map(|e| e.path()).filter(|p| p.join("capacity.yaml").exists()).collect();
    names.sort();
    for dir in names {
        let text = std::fs::read_to_string(dir.join("capacity.yaml")).expect("reads");
        let loaded = load_text(&text);
        if loaded.spec.load.is_none() {
            continue;
        }
        for factor in [1.0, 2.0, 4.0, 20.0] {
            assert_fits_and_minimal(&loaded, Target::Factor(factor), &format!("{} x{factor}", dir.display()));
        }
    }
}

#[test]
fn the_diff_keeps_comments_and_inserts_in_the_files_style() {
    let text = "# deployment\nversion: 1\nname: t\nload:\n  rps: 100   # today\n  service_time: 100ms\nservices:\n  web:\n    kind: gunicorn\n    worker_class: gthread\n    workers: 2   # WEB_CONCURRENCY\n    threads: 2\n    resources: { cpus: 2 }\n    uses: { db: { pool: 2 } }   # DB_POOL\n  db:\n    kind: postgres   # managed\n";
    let loaded = load_text(text);
    let Outcome::Fits(proposal) = scale::search(&loaded, Target::Rps(400.0)).expect("runs") else { panic!("fits") };
    for comment in ["# deployment", "# today", "# WEB_CONCURRENCY", "# DB_POOL", "# managed"] {
        assert!(proposal.text.contains(comment), "lost `{comment}`:\n{}", proposal.text);
    }
    assert!(proposal.text.contains("  rps: 400   # today"), "{}", proposal.text);
    assert!(blocking(&proposal.text).is_empty());
}

#[test]
fn an_autoscaled_service_grows_its_autoscale_max() {
    let text = "version: 1\nname: t\nload:\n  rps: 50\n  service_time: 100ms\nservices:\n  web:\n    kind: gunicorn\n    worker_class: sync\n    workers: 3\n    resources: { cpus: 1 }\n    autoscale: { min: 2, max: 4 }   # HPA\n";
    let loaded = load_text(text);
    let Outcome::Fits(proposal) = scale::search(&loaded, Target::Rps(400.0)).expect("runs") else { panic!("fits") };
    // 400 rps x 0.1 s / 0.75 = 53.3 slots of 3 per replica: 18 replicas at most.
    let changed: Vec<&str> = proposal.settings.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(changed, ["/load/rps", "/services/web/autoscale/max"], "{}", proposal.text);
    assert!(proposal.text.contains("autoscale: { min: 2, max: 18 }   # HPA"), "{}", proposal.text);
    assert!(blocking(&proposal.text).is_empty());
}

#[test]
fn users_scale_the_rps_in_proportion() {
    let text = "version: 1\nname: t\nload:\n  rps: 80\n  concurrent_users: 200\n  service_time: 100ms\nservices:\n  web:\n    kind: gunicorn\n    worker_class: gthread\n    workers: 3\n    threads: 4\n    resources: { cpus: 1 }\n";
    let value = scale::with_target(&load_text(text).value, Target::Users(1000)).expect("a load");
    assert_eq!(value.pointer("/load/rps").and_then(Value::as_f64), Some(400.0));
    assert_eq!(value.pointer("/load/concurrent_users").and_then(Value::as_u64), Some(1000));
}

#[test]
fn a_setting_left_out_is_written_at_the_least_value_that_fits() {
    // worker_rlimit_nofile defaults to 2 x worker_connections, the rule's own minimum.
    let text = "version: 1\nname: t\nload:\n  rps: 100\n  concurrent_users: 1000\n  service_time: 100ms\nservices:\n  web:\n    kind: gunicorn\n    worker_class: gthread\n    workers: 3\n    threads: 8\n    replicas: 4\n    resources: { cpus: 1 }\n  lb:\n    kind: nginx\n    worker_processes: 1\n    worker_connections: 1024\n    upstreams: { app: { to: web, keepalive: 32 } }\n    locations: [ { path: /, upstream: app } ]\n";
    let loaded = load_text(text);
    assert_fits_and_minimal(&loaded, Target::Users(4000), "rlimit left out");
    let Outcome::Fits(proposal) = scale::search(&loaded, Target::Users(4000)).expect("runs") else { panic!("fits") };
    let get = |p: &str| proposal.settings.iter().find(|(q, _, _)| q == p).map(|(_, _, v)| v.clone());
    let connections = get("/services/lb/worker_connections").and_then(|v| v.as_u64()).expect("worker_connections raised");
    assert_eq!(get("/services/lb/worker_rlimit_nofile").and_then(|v| v.as_u64()), Some(2 * connections), "{}", proposal.text);
}

#[test]
fn a_database_over_its_memory_gets_fewer_connections_when_its_clients_need_fewer() {
    // 200 x 64MiB x 2 + 2GiB > 8GiB; PgBouncer opens at most 30, so 33 is enough.
    let text = "version: 1\nname: t\nload:\n  rps: 50\n  service_time: 100ms\n  db_time: 20ms\nservices:\n  web:\n    kind: gunicorn\n    worker_class: gthread\n    workers: 3\n    threads: 4\n    replicas: 2\n    resources: { cpus: 1 }\n    uses: { pgbouncer: { pool: 4 } }\n  pgbouncer:\n    kind: pgbouncer\n    pool_mode: transaction\n    default_pool_size: 25\n    reserve_pool_size: 5\n    uses: { db: {} }\n  db:\n    kind: postgres\n    max_connections: 200   # parameter group\n    shared_buffers: 2GiB\n    work_mem: 64MiB\n    resources: { cpus: 2, memory: 8GiB }\n";
    let loaded = load_text(text);
    assert_fits_and_minimal(&loaded, Target::Factor(1.0), "memory");
    let Outcome::Fits(proposal) = scale::search(&loaded, Target::Factor(1.0)).expect("runs") else { panic!("fits") };
    let changed: Vec<(&str, Option<u64>)> = proposal.settings.iter().map(|(p, _, v)| (p.as_str(), v.as_u64())).collect();
    // The largest max_connections the memory holds: (8 - 2) GiB / 128 MiB = 48.
    assert_eq!(changed, [("/services/db/max_connections", Some(48))], "{}", proposal.text);
}

/// The wall of a spec at a target, as `scale` reports it.
fn wall_of(text: &str, target: Target) -> scale::Wall {
    match scale::search(&load_text(text), target).expect("runs") {
        Outcome::Wall(wall) => *wall,
        Outcome::Fits(p) => panic!("expected a wall, got:\n{}", p.text),
    }
}

#[test]
fn a_pooled_database_out_of_memory_is_not_told_to_add_a_pooler() {
    let text = "version: 1\nname: t\nload:\n  rps: 2000\n  service_time: 100ms\n  db_time: 40ms\nservices:\n  web:\n    kind: gunicorn\n    worker_class: gthread\n    workers: 3\n    threads: 8\n    replicas: 40\n    resources: { cpus: 1 }\n    uses: { pgbouncer: { pool: 8 } }\n  pgbouncer:\n    kind: pgbouncer\n    pool_mode: transaction\n    max_client_conn: 5000\n    default_pool_size: 20\n    nofile: 10000\n    uses: { db: {} }\n  db:\n    kind: postgres\n    max_connections: 100\n    shared_buffers: 2GiB\n    work_mem: 16MiB\n    resources: { cpus: 4, memory: 8GiB }\n";
    let wall = wall_of(text, Target::Factor(4.0));
    let help = wall.hardware.expect("a hardware change");
    assert!(help.contains("give it 16 GiB of memory") && help.contains("lower work_mem to 7 MiB"), "{help}");
    assert!(!help.contains("PgBouncer"), "{help}");
    // In session mode the pooler holds a server connection per client: it is the one
    // to switch.
    let wall = wall_of(&text.replace("pool_mode: transaction", "pool_mode: session"), Target::Factor(4.0));
    let help = wall.hardware.expect("a hardware change");
    assert!(help.contains("run PgBouncer `pgbouncer` in transaction mode"), "{help}");
}

#[test]
fn an_external_database_wall_names_its_provider_setting() {
    let text = "version: 1\nname: t\nload:\n  rps: 100\n  service_time: 100ms\nservices:\n  web:\n    kind: gunicorn\n    worker_class: gthread\n    workers: 3\n    threads: 4\n    replicas: 2\n    resources: { cpus: 1 }\n    uses: { db: { framework: django, persistent: true } }\n  db:\n    kind: postgres\n    external: true\n    max_connections: 100\n";
    let wall = wall_of(text, Target::Factor(20.0));
    assert_eq!(wall.finding.rule, "postgres-connections-exhausted");
    let help = wall.hardware.expect("a change to name");
    assert!(help.contains("is external") && help.contains("services.db.max_connections") && help.contains("PgBouncer in transaction mode"), "{help}");
}

fn headroom(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_headroom")).args(args).output().expect("runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_exit_codes_are_the_ones_help_states() {
    let (_, help, _) = headroom(&["scale", "--help"]);
    for line in ["0  a change was found", "1  nothing within the machines fits", "2  bad input", "5. machines (a group's count)"] {
        assert!(help.contains(line), "help lacks `{line}`:\n{help}");
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let spec = dir.path().join("capacity.yaml");
    let text = "version: 1\nname: t\nload:\n  rps: 100\n  service_time: 100ms\nservices:\n  web:\n    kind: gunicorn\n    worker_class: gthread\n    workers: 3\n    threads: 4\n    replicas: 2\n    resources: { cpus: 1 }\n    uses: { db: { pool: 16 } }   # 4 x 4\n  db:\n    kind: postgres\n    max_connections: 100\n    work_mem: 16MiB\n    resources: { cpus: 2, memory: 8GiB }\n";
    std::fs::write(&spec, text).expect("writes");
    let spec = spec.to_string_lossy().into_owned();
    // Already fits: 0, nothing written.
    let (code, out, err) = headroom(&["scale", &spec, "--factor", "1", "--write"]);
    assert_eq!((code, out.contains("already fits")), (0, true), "{out}{err}");
    assert_eq!(std::fs::read_to_string(&spec).expect("reads"), text);
    // A wall: 1, named with the hardware that would carry it, nothing written.
    let (code, _, err) = headroom(&["scale", &spec, "--factor", "20", "--write"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("= wall: ") && err.contains("= help: PostgreSQL `db` on 8 GiB cannot hold"), "{err}");
    assert_eq!(std::fs::read_to_string(&spec).expect("reads"), text);
    // Bad input: 2.
    assert_eq!(headroom(&["scale", &spec, "--factor", "0"]).0, 2);
    assert_eq!(headroom(&["scale", &format!("{spec}.missing"), "--factor", "2"]).0, 2);
    // A change: 0, written as shown, the stale formula comment marked.
    let (code, out, err) = headroom(&["scale", &spec, "--factor", "2", "--write"]);
    assert_eq!(code, 0, "{out}{err}");
    let written = std::fs::read_to_string(&spec).expect("reads");
    assert!(blocking(&written).is_empty(), "{written}");
    if written.contains("pool: 16") {
        assert!(written.contains("# 4 x 4"), "{written}");
    } else {
        assert!(written.contains("# was pool 16; 4 x 4"), "{written}");
    }
}
