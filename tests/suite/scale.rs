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

/// The number a plan resolved for a spec path (written, defaulted or derived): the
/// plan's JSON carries each such number with the path it lives at.
fn resolved(plan: &Value, path: &str) -> Option<u64> {
    match plan {
        Value::Object(map) => {
            if map.get("path").and_then(Value::as_str) == Some(path)
                && let Some(n) = map.get("value").and_then(Value::as_u64)
            {
                return Some(n);
            }
            map.values().find_map(|v| resolved(v, path))
        }
        Value::Array(items) => items.iter().find_map(|v| resolved(v, path)),
        _ => None,
    }
}

/// One unit back toward the written value (for a key that was not written: toward the
/// value the plan gave it, or, when the plan does not carry it, its default, which is
/// down unless the default is no cap).
fn one_back(pointer: &str, old: Option<&Value>, new: &Value, original_plan: &Value) -> Option<Value> {
    if let Some(text) = new.as_str() {
        let mib: u64 = text.strip_suffix('m')?.parse().ok()?;
        return Some(Value::String(format!("{}m", mib.checked_sub(1)?)));
    }
    let n = new.as_u64()?;
    let unlimited = UNLIMITED_BY_DEFAULT.iter().any(|cap| pointer.ends_with(cap));
    let old = old.and_then(Value::as_u64).or_else(|| if unlimited { None } else { resolved(original_plan, &headroom::load::path::from_pointer(pointer, &Value::Null)) });
    match old {
        Some(o) if o > n => Some(Value::from(n + 1)),
        None | Some(0) if unlimited => Some(Value::from(n + 1)),
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
    assert_runs_as_proposed(&reloaded, &proposal, context);
    let original_plan = scale::evaluate(&target_value).map_or(Value::Null, |(plan, _)| serde_json::to_value(&plan).expect("the plan serializes"));
    for (pointer, old, new) in &proposal.settings {
        if pointer.starts_with("/load/") {
            continue;
        }
        let Some(back) = one_back(pointer, old.as_ref(), new, &original_plan) else { continue };
        let mut value = reloaded.value.clone();
        *value.pointer_mut(pointer).expect("the changed setting is in the spec") = back.clone();
        let still_fits = scale::evaluate(&value).is_some_and(|(_, d)| !d.iter().any(scale::blocks));
        assert!(!still_fits, "{context}: {pointer} could go back from {new} to {back} and still fit:\n{}", proposal.text);
    }
}

/// The proposal for a spec text at a target, checked to fit and be locally minimal.
fn fitting_proposal(text: &str, target: Target, context: &str) -> scale::Proposal {
    let loaded = load_text(text);
    assert_fits_and_minimal(&loaded, target, context);
    match scale::search(&loaded, target).expect("the search runs") {
        Outcome::Fits(proposal) => proposal,
        Outcome::Wall(wall) => panic!("{context}: a wall: {}", wall.message),
    }
}

/// The number a proposal sets at a pointer (None when it leaves it alone).
fn proposed(proposal: &scale::Proposal, pointer: &str) -> Option<u64> {
    proposal.settings.iter().find(|(p, _, _)| p == pointer).and_then(|(_, _, v)| v.as_u64())
}

/// What `check` passes is what would run: no machine group that lists its hosts gets a
/// count past them (nor, under Kamal, a role replicas past them), and no PostgreSQL
/// whose work_mem is derived is given connections that push it below the 4MB default.
fn assert_runs_as_proposed(reloaded: &Loaded, proposal: &scale::Proposal, context: &str) {
    let analysis = headroom::analysis::analyze_text("capacity.yaml", &proposal.text).expect("the proposal loads");
    let kamal = reloaded.value.pointer("/deploy/kamal").is_some();
    for (pointer, _, new) in &proposal.settings {
        let new = new.as_u64().unwrap_or(0);
        for machine in &analysis.plan.machines {
            let listed = machine.addresses.len() as u64;
            if listed == 0 {
                continue;
            }
            assert_ne!(pointer.as_str(), format!("/machines/{}/count", machine.name), "{context}: a count past the listed hosts:\n{}", proposal.text);
            let role = analysis.plan.services.iter().find(|s| s.machine.as_deref() == Some(&machine.name) && format!("/{}", s.replicas.path().replace('.', "/")) == *pointer);
            assert!(!(kamal && role.is_some() && new > listed), "{context}: {pointer} {new} past {listed} Kamal hosts:\n{}", proposal.text);
        }
        if pointer.ends_with("/max_connections") {
            for service in &analysis.plan.services {
                if let headroom::plan::Detail::Postgres(pg) = &service.detail
                    && let Some(tuning) = &pg.tuning
                    && !matches!(tuning.work_mem.origin, headroom::plan::Origin::Spec { .. })
                {
                    assert!(tuning.work_mem.value >= 4 << 20 && pg.max_connections.value <= 300, "{context}: {} connections leave work_mem {}:\n{}", pg.max_connections.value, tuning.work_mem.value, proposal.text);
                }
            }
        }
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
    /// The database's memory in GiB and its work_mem in MiB (None: unknown; work_mem
    /// None: not written, derived from max_connections).
    db_memory: Option<(u64, Option<u64>)>,
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
        Some((gib, Some(work_mem))) => format!("    work_mem: {work_mem}MiB\n    resources: {{ cpus: 2, memory: {gib}GiB }}\n"),
        Some((gib, None)) => format!("    resources: {{ cpus: 2, memory: {gib}GiB }}\n"),
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
    let shapes = (any::<bool>(), 1u64..4, any::<bool>(), proptest::option::of((1u64..17, proptest::option::of(1u64..65))));
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

/// An async app straight to a PostgreSQL with no memory given (so `scale` raises its
/// max_connections to PGTune's 200 at most), whose processes run more green threads
/// than the database could give each a connection: raising the pool to the threads
/// overfills it, so the only fixes lower something.
#[derive(Debug, Clone)]
struct Overprovisioned {
    rps: u64,
    workers: u64,
    replicas: u64,
    greenlets: u64,
    pool: u64,
    overflow: Option<u64>,
}

fn overprovisioned_text(o: &Overprovisioned) -> String {
    let (framework, overflow) = match o.overflow {
        Some(n) => ("sqlalchemy", format!(", max_overflow: {n}")),
        None => ("psycopg2", String::new()),
    };
    format!(
        "version: 1\nname: gen\nload:\n  rps: {}\n  service_time: 100ms\n  db_time: 20ms\nservices:\n  web:\n    kind: gunicorn\n    worker_class: gevent\n    workers: {}   # WEB_CONCURRENCY\n    worker_connections: {}\n    replicas: {}\n    resources: {{ cpus: 4, memory: 2GiB }}\n    health: {{ path: /health }}\n    uses:\n      db: {{ pool: {}{overflow}, framework: {framework} }}   # DB_POOL\n  db:\n    kind: postgres\n",
        o.rps, o.workers, o.greenlets, o.replicas, o.pool
    )
}

fn overprovisioned() -> impl Strategy<Value = Overprovisioned> {
    // At most 675 rps x 0.1s / 0.75 = 90 requests in flight, over at most 24 processes:
    // a green thread per process more than that share, with its connection, stays
    // under the 197 connections a stock PostgreSQL raised to 200 accepts.
    (10u64..675, 1u64..7, 1u64..5, 20u64..600, 1u64..40, proptest::option::of(0u64..40)).prop_map(|(rps, workers, replicas, greenlets, pool, overflow)| {
        let processes = workers * replicas;
        // Enough green threads that a pool covering them asks for more than 200.
        let greenlets = greenlets.max(200 / processes + 1);
        Overprovisioned { rps, workers, replicas, greenlets, pool, overflow }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn where_only_lowering_fits_scale_lowers(o in overprovisioned()) {
        let text = overprovisioned_text(&o);
        let loaded = load_text(&text);
        let target = Target::Factor(1.0);
        let outcome = scale::search(&loaded, target).expect("the search runs");
        let Outcome::Fits(proposal) = outcome else {
            let Outcome::Wall(wall) = outcome else { unreachable!() };
            panic!("{o:?}: a wall where lowering fits: {}\n{text}", wall.message)
        };
        assert_fits_and_minimal(&loaded, target, &format!("{o:?}"));
        let lowered = proposal.settings.iter().any(|(_, old, new)| matches!((old.as_ref().and_then(Value::as_u64), new.as_u64()), (Some(old), Some(new)) if new < old));
        prop_assert!(lowered, "nothing lowered: {:?}", proposal.settings);
        // The proposal fits its own load: scaling it again changes nothing.
        let again = load_text(&proposal.text);
        let Outcome::Fits(second) = scale::search(&again, target).expect("the search runs") else { panic!("the proposal hit a wall") };
        prop_assert!(second.settings.is_empty(), "changed {:?}", second.settings);
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
    let proposal = fitting_proposal(text, Target::Users(4000), "rlimit left out");
    let connections = proposed(&proposal, "/services/lb/worker_connections").expect("worker_connections raised");
    assert_eq!(proposed(&proposal, "/services/lb/worker_rlimit_nofile"), Some(2 * connections), "{}", proposal.text);
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
    for line in ["0  a change was found", "1  nothing within the machines fits", "2  bad input", "5. machines (a group's count) for a group that lists no addresses"] {
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

/// A Rails app on three listed hosts behind PgBouncer, deployed with Kamal (the shape of
/// a Kamal multi-server setup).
const KAMAL_HOSTS: &str = "version: 1\nname: t\nload:\n  rps: 200\n  service_time: 100ms\n  db_time: 20ms\nmachines:\n  web: { count: 3, cpus: 4, memory: 8GiB, addresses: [10.0.0.10, 10.0.0.11, 10.0.0.12] }\n  db:  { count: 1, cpus: 4, memory: 8GiB, addresses: [10.0.0.31] }\nservices:\n  web:\n    kind: puma\n    machine: web\n    replicas: 3\n    workers: 2               # WEB_CONCURRENCY\n    threads: 5               # RAILS_MAX_THREADS\n    resources: { cpus: 2, memory: 4GiB }\n    health: { path: /up }\n    uses:\n      pgbouncer: { pool: 5, framework: rails, prepared_statements: false }\n  pgbouncer:\n    kind: pgbouncer\n    machine: db\n    pool_mode: transaction\n    max_client_conn: 500\n    default_pool_size: 25\n    resources: { cpus: 1, memory: 1GiB }\n    uses: { db: {} }\n  db:\n    kind: postgres\n    machine: db\n    work_mem: 8MiB\n    resources: { cpus: 2, memory: 6GiB }\ndeploy:\n  kamal:\n    service: t\n    image: registry/t\n    registry: { server: ghcr.io, username: KAMAL_REGISTRY_USERNAME, password: KAMAL_REGISTRY_PASSWORD }\n";

#[test]
fn a_group_that_lists_its_hosts_is_not_grown_by_count_alone() {
    assert!(blocking(KAMAL_HOSTS).is_empty(), "{:?}", blocking(KAMAL_HOSTS));
    let kamal_at = KAMAL_HOSTS.find("deploy:").expect("a deploy section");
    // Without addresses (and without Kamal, which needs them) the count is the model's
    // to raise: that count is how many hosts the load takes.
    let unlisted = KAMAL_HOSTS[..kamal_at].replace(", addresses: [10.0.0.10, 10.0.0.11, 10.0.0.12]", "");
    let Outcome::Fits(proposal) = scale::search(&load_text(&unlisted), Target::Factor(4.0)).expect("runs") else { panic!("fits without addresses") };
    let count = proposal.settings.iter().find(|(p, _, _)| p == "/machines/web/count").and_then(|(_, _, v)| v.as_u64()).expect("the count is raised");
    assert_eq!(count, 6, "{}", proposal.text);
    // With the addresses listed the host installs run on those three: the proposal
    // stops at a wall that says how many hosts to list, or the bigger hosts instead.
    let compose = format!("{}deploy:\n  compose: {{ file: compose.yaml }}\n", &KAMAL_HOSTS[..kamal_at]);
    let wall = wall_of(&compose, Target::Factor(4.0));
    assert!(wall.finding.rule.starts_with("machine-") && wall.finding.path.starts_with("machines.web."), "{}", wall.message);
    assert!(wall.message.contains("once services.web.replicas 3 -> 11"), "{}", wall.message);
    let help = wall.hardware.expect("hosts to add");
    assert!(help.contains("add 3 hosts' addresses to machines.web.addresses and set count: 6, or give the 3 hosts >= 16 GiB of memory each"), "{help}");
    // Within the listed hosts' room (two replicas each) the proposal raises replicas and
    // never the count.
    let Outcome::Fits(proposal) = scale::search(&load_text(&compose), Target::Factor(1.2)).expect("runs") else { panic!("fits") };
    let changed: Vec<&str> = proposal.settings.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(changed, ["/load/rps", "/services/web/replicas"], "{}", proposal.text);
    // Kamal runs one container of a role per host: a fourth replica takes a fourth host,
    // although two fit on each by CPU and memory.
    let wall = wall_of(KAMAL_HOSTS, Target::Factor(1.2));
    assert_eq!(wall.finding.rule, "capacity-below-load", "{}", wall.message);
    let help = wall.hardware.expect("hosts to add");
    assert!(help.contains("Kamal runs one container of a role per host: `web` at 4 replicas takes 4 hosts, so add 1 host's address to machines.web.addresses and set count: 4"), "{help}");
    // The command exits 1 and writes nothing.
    let dir = tempfile::tempdir().expect("a temp dir");
    let spec = dir.path().join("capacity.yaml");
    std::fs::write(&spec, KAMAL_HOSTS).expect("writes");
    let (code, _, err) = headroom(&["scale", &spec.to_string_lossy(), "--factor", "4", "--write"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("`web` at 11 replicas takes 11 hosts, so add 8 hosts' addresses to machines.web.addresses"), "{err}");
    assert_eq!(std::fs::read_to_string(&spec).expect("reads"), KAMAL_HOSTS);
}

/// An async API straight to a PostgreSQL whose memory is given and whose work_mem is
/// not (the shape of a FastAPI service on a managed-style database).
const DERIVED_WORK_MEM: &str = "version: 1\nname: t\nload:\n  rps: 100\n  service_time: 500ms\n  db_time: 100ms\nservices:\n  api:\n    kind: gunicorn\n    worker_class: uvicorn\n    workers: 2\n    worker_connections: 20\n    replicas: 4\n    resources: { cpus: 2, memory: 2GiB }\n    health: { path: /ready }\n    uses:\n      db: { pool: 10, max_overflow: 10, framework: sqlalchemy }\n  db:\n    kind: postgres\n    databases: [app]\n    resources: { cpus: 2, memory: 4GiB }\n";

#[test]
fn a_derived_work_mem_does_not_let_connections_grow_into_the_thousands() {
    // 4 x 2 x 20 = 160 connections > 97: raised to what the clients need, which keeps
    // the derived work_mem above PostgreSQL's 4MB default.
    let loaded = load_text(DERIVED_WORK_MEM);
    assert_fits_and_minimal(&loaded, Target::Factor(1.0), "derived work_mem");
    let Outcome::Fits(proposal) = scale::search(&loaded, Target::Factor(1.0)).expect("runs") else { panic!("fits") };
    let changed: Vec<(&str, Option<u64>)> = proposal.settings.iter().map(|(p, _, v)| (p.as_str(), v.as_u64())).collect();
    assert_eq!(changed, [("/services/db/max_connections", Some(163))], "{}", proposal.text);
    // 20 replicas ask for 800, and at 1,200 rps the load needs every one of their 800
    // slots (1200 x 0.5s / 0.75): the memory rule holds any count while work_mem is
    // derived (it shrinks instead), so scale stops at PGTune's 200 and names the ways on.
    let many = DERIVED_WORK_MEM.replace("replicas: 4", "replicas: 20").replace("rps: 100", "rps: 1200");
    let wall = wall_of(&many, Target::Factor(1.0));
    assert_eq!(wall.finding.rule, "postgres-connections-exhausted", "{}", wall.message);
    assert!(wall.message.contains("still asks for 800 connections") && wall.message.contains("keeps 800 requests in flight"), "{}", wall.message);
    let help = wall.hardware.expect("the way on");
    assert!(help.contains("at most 200") && help.contains("write services.db.work_mem") && help.contains("PgBouncer in transaction mode"), "{help}");
    // At the spec's own 100 rps the 20 replicas need 67 slots: their pools and
    // concurrency come down instead (lowering asks for no more connections).
    let Outcome::Fits(proposal) = scale::search(&load_text(&DERIVED_WORK_MEM.replace("replicas: 4", "replicas: 20")), Target::Factor(1.0)).expect("runs") else { panic!("fits lowered") };
    assert!(proposal.settings.iter().any(|(p, old, new)| p == "/services/api/worker_connections" && new.as_u64() < old.as_ref().and_then(Value::as_u64)), "{}", proposal.text);
    // On less memory the 4MB floor binds first: (2GiB - 512MiB) / 12MiB - 8 = 120.
    let small = many.replace("memory: 4GiB", "memory: 2GiB");
    assert!(wall_of(&small, Target::Factor(1.0)).hardware.expect("the way on").contains("at most 120"));
    // With work_mem written the memory rule bounds the count itself:
    // (4GiB - 1GiB) / (1MiB x 2) = 1536 >= 803.
    let written = many.replace("    databases: [app]\n", "    databases: [app]\n    work_mem: 1MiB\n");
    let Outcome::Fits(proposal) = scale::search(&load_text(&written), Target::Factor(1.0)).expect("runs") else { panic!("fits with work_mem written") };
    assert!(proposal.settings.iter().any(|(p, _, v)| p == "/services/db/max_connections" && v.as_u64() == Some(803)), "{:?}", proposal.settings);
}

#[test]
fn connections_are_not_raised_on_a_database_already_past_its_memory() {
    // 25 x 3 x 4 = 300 clients, every one needed at 2,200 rps (x 0.1s / 0.75 = 294
    // slots), max_connections 200 and 2GiB + 200 x 64MiB x 2 > 8GiB: more connections
    // would only deepen the memory finding. The wall cites the spec as written and names
    // what 303 connections would take.
    let text = "version: 1\nname: t\nload:\n  rps: 2200\n  service_time: 100ms\n  db_time: 20ms\nservices:\n  web:\n    kind: gunicorn\n    worker_class: gthread\n    workers: 3\n    threads: 4\n    replicas: 25\n    resources: { cpus: 1 }\n    uses: { db: { pool: 4 } }\n  db:\n    kind: postgres\n    max_connections: 200\n    shared_buffers: 2GiB\n    work_mem: 64MiB\n    resources: { cpus: 2, memory: 8GiB }\n";
    let wall = wall_of(text, Target::Factor(1.0));
    assert_eq!(wall.finding.rule, "postgres-connections-exhausted", "{}", wall.message);
    assert!(wall.message.contains("max_connections 200 (services.db.max_connections)") && !wall.message.contains(" once "), "{}", wall.message);
    let help = wall.hardware.expect("what memory would hold it");
    assert!(help.contains("cannot hold 303 connections with work_mem 64 MiB"), "{help}");
    // At 100 rps the load needs 14 slots: the clients come down to what the memory
    // holds, 48 connections of 64MiB x 2 next to 2GiB of shared_buffers.
    let light = text.replace("rps: 2200", "rps: 100");
    assert_fits_and_minimal(&load_text(&light), Target::Factor(1.0), "past its memory, light load");
    let Outcome::Fits(proposal) = scale::search(&load_text(&light), Target::Factor(1.0)).expect("runs") else { panic!("fits lowered") };
    assert!(proposal.settings.iter().any(|(p, _, v)| p == "/services/db/max_connections" && v.as_u64() == Some(48)), "{}", proposal.text);
}

#[test]
fn the_wall_names_the_database_the_finding_is_about() {
    // Two databases whose memory rule cannot bound their connections; only `db` is
    // asked for more than scale gives it (25 x 3 x 4 = 300 > 200, all needed at 2,200 rps).
    let text = "version: 1\nname: t\nload:\n  rps: 2200\n  service_time: 100ms\nservices:\n  web:\n    kind: gunicorn\n    worker_class: gthread\n    workers: 3\n    threads: 4\n    replicas: 25\n    resources: { cpus: 1 }\n    uses: { db: { pool: 4 } }\n  admin:\n    kind: gunicorn\n    worker_class: sync\n    workers: 1\n    resources: { cpus: 1 }\n    uses: { analytics: { pool: 1 } }\n  analytics:\n    kind: postgres\n    resources: { cpus: 2, memory: 4GiB }\n  db:\n    kind: postgres\n";
    let wall = wall_of(text, Target::Factor(1.0));
    let help = wall.hardware.expect("the way on");
    assert!(help.starts_with("PostgreSQL `db` has no memory given"), "{help}");
}

#[test]
fn puma_threads_come_down_with_their_pool_when_min_threads_is_not_written() {
    // 30 replicas x 2 workers x 5 threads, a Rails pool of 5 each: 300 connections to a
    // PostgreSQL of unknown memory (200 at most), for 100 rps x 0.1s / 0.75 = 14
    // requests in flight. min_threads is not written, so it follows the threads down.
    let text = "version: 1\nname: t\nload:\n  rps: 100\n  service_time: 100ms\n  db_time: 20ms\nservices:\n  web:\n    kind: puma\n    workers: 2\n    threads: 5               # RAILS_MAX_THREADS\n    replicas: 30\n    resources: { cpus: 2, memory: 4GiB }\n    health: { path: /up }\n    uses:\n      db: { pool: 5, framework: rails }\n  db:\n    kind: postgres\n";
    let proposal = fitting_proposal(text, Target::Factor(1.0), "puma");
    let (threads, pool) = (proposed(&proposal, "/services/web/threads").expect("threads lowered"), proposed(&proposal, "/services/web/uses/db/pool").expect("the pool follows"));
    assert!(threads < 5 && pool >= threads && 30 * 2 * pool <= 197, "{}", proposal.text);
    // A min_threads written is Puma's floor: at 5 nothing about the threads can move,
    // and the replicas come down instead.
    let proposal = fitting_proposal(&text.replace("    threads: 5", "    min_threads: 5\n    threads: 5"), Target::Factor(1.0), "puma min_threads");
    assert_eq!(proposed(&proposal, "/services/web/threads"), None, "{}", proposal.text);
}

#[test]
fn threads_come_down_before_replicas_and_nginx_max_conns_follows_them() {
    // 10 replicas x 3 workers x 8 threads with a pool each: 240 connections to a
    // PostgreSQL of unknown memory, for 14 requests in flight. nginx caps each replica
    // at its 24 slots: fewer threads leave max_conns past them, which is lowered in turn
    // (cost 0) rather than the threads being passed over for the replicas (cost 3).
    let text = "version: 1\nname: t\nload:\n  rps: 100\n  service_time: 100ms\n  db_time: 20ms\nservices:\n  lb:\n    kind: nginx\n    worker_processes: 1\n    worker_connections: 4096\n    worker_rlimit_nofile: 8192\n    upstreams: { app: { to: web, keepalive: 32, max_conns: 24 } }\n    locations: [ { path: /, upstream: app } ]\n  web:\n    kind: gunicorn\n    worker_class: gthread\n    workers: 3\n    threads: 8\n    replicas: 10\n    resources: { cpus: 2, memory: 2GiB }\n    health: { path: /health }\n    uses:\n      db: { pool: 8 }\n  db:\n    kind: postgres\n";
    let proposal = fitting_proposal(text, Target::Factor(1.0), "nginx max_conns");
    let threads = proposed(&proposal, "/services/web/threads").expect("threads lowered");
    assert!(threads < 8 && proposed(&proposal, "/services/web/replicas").is_none(), "{}", proposal.text);
    assert_eq!(proposed(&proposal, "/services/lb/upstreams/app/max_conns"), Some(3 * threads), "{}", proposal.text);
}

#[test]
fn redis_maxclients_takes_its_fd_limit_along() {
    // 10 x 3 x 50 = 1500 clients; nofile 132 holds 100. Neither maxclients nor nofile
    // alone lets more in: raised together they do, before any pool comes down.
    let text = "version: 1\nname: t\nload:\n  rps: 100\n  service_time: 100ms\nservices:\n  web:\n    kind: gunicorn\n    worker_class: gthread\n    workers: 3\n    threads: 4\n    replicas: 10\n    resources: { cpus: 2, memory: 2GiB }\n    health: { path: /health }\n    uses:\n      cache: { pool: 50 }\n  cache:\n    kind: redis\n    maxclients: 100\n    nofile: 132\n    maxmemory: 256mb\n    maxmemory_policy: allkeys-lru\n    resources: { memory: 1GiB }\n";
    let proposal = fitting_proposal(text, Target::Factor(1.0), "redis nofile");
    assert_eq!((proposed(&proposal, "/services/cache/maxclients"), proposed(&proposal, "/services/cache/nofile")), (Some(1500), Some(1532)), "{}", proposal.text);
}
