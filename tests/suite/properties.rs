//! Invariants of the arithmetic, checked over generated specs: raising a limit never
//! adds a finding of its budget rule, lowering a pool never adds one, and no number,
//! however large, makes the arithmetic panic. Client pools and replicas go up to
//! u64::MAX; a program's own setting goes up to the largest value that program accepts
//! (a larger one is a load error, tested in tests/limits.rs).

use headroom::analysis::analyze_text;
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Params {
    replicas: u64,
    workers: u64,
    threads: u64,
    db_pool: u64,
    redis_pool: u64,
    max_client_conn: u64,
    default_pool_size: u64,
    reserve: u64,
    max_connections: u64,
    maxclients: u64,
    worker_connections: u64,
    nginx_workers: u64,
    rps: u64,
}

fn spec(p: &Params) -> String {
    format!(
        "version: 1
name: prop
load: {{ rps: {rps}, service_time: 100ms, db_time: 20ms }}
services:
  web:
    kind: gunicorn
    worker_class: gthread
    workers: {workers}
    threads: {threads}
    replicas: {replicas}
    uses:
      pgbouncer: {{ pool: {db_pool}, framework: sqlalchemy }}
      cache: {{ pool: {redis_pool} }}
  lb:
    kind: nginx
    worker_processes: {nginx_workers}
    worker_connections: {worker_connections}
    upstreams: {{ app: {{ to: web }} }}
    locations: [ {{ path: /, upstream: app }} ]
  pgbouncer:
    kind: pgbouncer
    pool_mode: transaction
    max_client_conn: {max_client_conn}
    default_pool_size: {default_pool_size}
    reserve_pool_size: {reserve}
    uses: {{ db: {{}} }}
  db:
    kind: postgres
    max_connections: {max_connections}
  cache:
    kind: redis
    maxclients: {maxclients}
",
        rps = p.rps,
        workers = p.workers,
        threads = p.threads,
        replicas = p.replicas,
        db_pool = p.db_pool,
        redis_pool = p.redis_pool,
        nginx_workers = p.nginx_workers,
        worker_connections = p.worker_connections,
        max_client_conn = p.max_client_conn,
        default_pool_size = p.default_pool_size,
        reserve = p.reserve,
        max_connections = p.max_connections,
        maxclients = p.maxclients,
    )
}

/// Numbers from small to absurd: overflow must saturate, never wrap or panic.
fn count() -> impl Strategy<Value = u64> {
    prop_oneof![1u64..64, 1u64..5_000, Just(u64::MAX / 2), Just(u64::MAX)]
}

/// A program's setting, from small up to the largest value the program accepts.
fn setting(max: u64) -> impl Strategy<Value = u64> {
    prop_oneof![1u64..64, 1u64..5_000, Just(max / 2), Just(max)]
}

use headroom::load::limits::{INT_MAX, LINUX_NR_OPEN_MAX, POSTGRES_CONNECTIONS_AND_WORKERS_MAX};

fn params() -> impl Strategy<Value = Params> {
    (
        (prop_oneof![1u64..64, Just(10_000u64)], 1u64..33, 1u64..17, count(), count(), setting(INT_MAX), setting(INT_MAX)),
        (0u64..20, setting(POSTGRES_CONNECTIONS_AND_WORKERS_MAX - 8), setting(headroom::load::limits::REDIS_MAXCLIENTS_MAX), setting(LINUX_NR_OPEN_MAX / 2), 1u64..33, 0u64..100_000),
    )
        .prop_map(|((replicas, workers, threads, db_pool, redis_pool, max_client_conn, default_pool_size), (reserve, max_connections, maxclients, worker_connections, nginx_workers, rps))| Params {
            replicas,
            workers,
            threads,
            db_pool,
            redis_pool,
            max_client_conn,
            default_pool_size,
            reserve,
            max_connections: max_connections.max(10),
            maxclients,
            worker_connections: worker_connections.max(2),
            nginx_workers,
            rps,
        })
}

fn findings(p: &Params, rule: &str) -> Vec<String> {
    let analysis = analyze_text("prop.yaml", &spec(p)).unwrap_or_else(|f| panic!("generated spec does not load: {:#?}\n{}", f.diagnostics, spec(p)));
    analysis.diagnostics.iter().filter(|d| d.rule == rule).map(|d| d.path.clone()).collect()
}

fn no_new(before: &[String], after: &[String]) -> bool {
    after.iter().all(|a| before.contains(a))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn raising_max_connections_adds_no_postgres_finding(p in params(), extra in 1u64..100_000) {
        let mut q = p.clone();
        q.max_connections = p.max_connections.saturating_add(extra).min(POSTGRES_CONNECTIONS_AND_WORKERS_MAX - 8);
        prop_assert!(no_new(&findings(&p, "postgres-connections-exhausted"), &findings(&q, "postgres-connections-exhausted")));
        prop_assert!(no_new(&findings(&p, "pgbouncer-server-pool"), &findings(&q, "pgbouncer-server-pool")));
    }

    #[test]
    fn raising_max_client_conn_adds_no_client_limit_finding(p in params(), extra in 1u64..100_000) {
        let mut q = p.clone();
        q.max_client_conn = p.max_client_conn.saturating_add(extra).min(INT_MAX);
        prop_assert!(no_new(&findings(&p, "pgbouncer-client-limit"), &findings(&q, "pgbouncer-client-limit")));
    }

    #[test]
    fn raising_maxclients_adds_no_redis_finding(p in params(), extra in 1u64..100_000) {
        let mut q = p.clone();
        q.maxclients = p.maxclients.saturating_add(extra).min(headroom::load::limits::REDIS_MAXCLIENTS_MAX);
        prop_assert!(no_new(&findings(&p, "redis-clients-exhausted"), &findings(&q, "redis-clients-exhausted")));
    }

    #[test]
    fn raising_worker_connections_adds_no_nginx_finding(p in params(), extra in 1u64..100_000) {
        let mut q = p.clone();
        q.worker_connections = p.worker_connections.saturating_add(extra).min(LINUX_NR_OPEN_MAX / 2);
        prop_assert!(no_new(&findings(&p, "nginx-worker-connections"), &findings(&q, "nginx-worker-connections")));
    }

    #[test]
    fn lowering_a_pool_adds_no_budget_finding(p in params(), cut in 1u64..1_000) {
        let mut q = p.clone();
        q.db_pool = p.db_pool.saturating_sub(cut).max(1);
        q.redis_pool = p.redis_pool.saturating_sub(cut).max(1);
        q.default_pool_size = p.default_pool_size.saturating_sub(cut).max(1);
        for rule in ["postgres-connections-exhausted", "pgbouncer-client-limit", "pgbouncer-server-pool", "redis-clients-exhausted"] {
            prop_assert!(no_new(&findings(&p, rule), &findings(&q, rule)), "{}", rule);
        }
    }

    #[test]
    fn huge_numbers_never_panic_and_every_report_renders(p in params()) {
        let analysis = analyze_text("prop.yaml", &spec(&p)).unwrap();
        let input = headroom::report::ReportInput { sources: vec![&analysis.loaded.source], subject: "prop.yaml".into(), diagnostics: &analysis.diagnostics, files: &[] };
        for format in [headroom::report::Format::Human, headroom::report::Format::Json, headroom::report::Format::Sarif, headroom::report::Format::Github] {
            let _ = headroom::report::render(format, &input, false);
        }
        let _ = headroom::report::capacity::CapacityReport::of(&analysis.plan).to_json();
    }
}

#[test]
fn connection_arithmetic_saturates_instead_of_wrapping() {
    assert_eq!(headroom::plan::mul(&[u64::MAX, 2]), u64::MAX);
    assert_eq!(headroom::plan::mul(&[3, 5, 7]), 105);
    assert_eq!(headroom::plan::sum([u64::MAX, 1]), u64::MAX);
}
