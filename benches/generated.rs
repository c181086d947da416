//! A generated spec of any size, shared by the benchmarks and the linear-growth test:
//! groups of five services (a gunicorn app, an nginx in front of it, a PgBouncer, the
//! postgres it pools for and a redis), each group's app placed on its own machine
//! group, so every lookup a rule makes (edges by source and target, poolers of a
//! postgres, upstreams of an app, placements of a machine) grows with the spec.

/// A spec of `n` services (rounded down to a multiple of five).
pub fn generated(n: usize) -> String {
    let mut text = String::from("version: 1\nname: generated\nload: { rps: 5000, service_time: 100ms, db_time: 20ms }\nmachines:\n");
    let groups = n / 5;
    for g in 0..groups {
        text.push_str(&format!("  m{g}: {{ count: 2, cpus: 8, memory: 16GiB }}\n"));
    }
    text.push_str("services:\n");
    for g in 0..groups {
        text.push_str(&format!(
            "  web{g}:\n    kind: gunicorn\n    worker_class: gthread\n    workers: 4\n    threads: 4\n    replicas: 3\n    machine: m{g}\n    resources: {{ cpus: 2, memory: 2GiB }}\n    uses:\n      pgb{g}: {{ pool: 4, framework: sqlalchemy }}\n      cache{g}: {{ pool: 10 }}\n  lb{g}:\n    kind: nginx\n    worker_processes: 2\n    worker_connections: 4096\n    worker_rlimit_nofile: 16384\n    upstreams: {{ app: {{ to: web{g}, keepalive: 32, max_conns: 4 }} }}\n    locations: [ {{ path: /, upstream: app }} ]\n  pgb{g}:\n    kind: pgbouncer\n    pool_mode: transaction\n    max_client_conn: 500\n    default_pool_size: 20\n    uses: {{ db{g}: {{}} }}\n  db{g}:\n    kind: postgres\n    max_connections: 100\n  cache{g}:\n    kind: redis\n    maxmemory: 1gb\n    resources: {{ memory: 4GiB }}\n"
        ));
    }
    text
}
