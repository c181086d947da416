//! Values a program refuses are load errors (exit 2, file:line:column, the program's
//! limit in the message), each tested at its boundary: the last value the program
//! accepts loads, the first it refuses does not. The same boundaries were found by
//! running the real programs (tests/validated.rs renders the accepted side through
//! them on both version ends). Version-gated settings are load errors without the
//! version they need.

use headroom::analysis::analyze_text;

/// A spec with one service whose body is `body` (plus the services it needs).
fn spec(kind: &str, body: &str) -> String {
    let extra = match kind {
        "nginx" => "  web: { kind: gunicorn }\n",
        "pgbouncer" => "  db: { kind: postgres }\n",
        _ => "",
    };
    let needs = match kind {
        "nginx" => "upstreams: { app: { to: web } }, locations: [ { path: /, upstream: app } ], ",
        "pgbouncer" => "uses: { db: {} }, ",
        _ => "",
    };
    format!("version: 1\nname: t\nservices:\n{extra}  svc: {{ kind: {kind}, {needs}{body} }}\n")
}

/// (kind, accepted body, refused body, words the refusal must contain)
const BOUNDARIES: &[(&str, &str, &str, &str)] = &[
    ("postgres", "max_connections: 262121", "max_connections: 262122", "must be at most 262129"),
    ("postgres", "max_connections: 200", "max_connections: 262144", "postgres max_connections must be 1..262143"),
    ("postgres", "max_connections: 10, superuser_reserved_connections: 9", "max_connections: 10, superuser_reserved_connections: 10", "must be less than max_connections 10"),
    ("postgres", "work_mem: 64KiB", "work_mem: 63KiB", "postgres work_mem (bytes) must be 65536..2199023254528"),
    ("postgres", "work_mem: 2147483647KiB", "work_mem: 2147483648KiB", "work_mem (bytes) must be"),
    ("postgres", "work_mem: 4MiB", "work_mem: 4097", "not a whole number of kB"),
    ("postgres", "shared_buffers: 128KiB", "shared_buffers: 120KiB", "shared_buffers (bytes) must be 131072.."),
    ("postgres", "shared_buffers: 136KiB", "shared_buffers: 132KiB", "not a whole number of 8kB pages"),
    ("postgres", "version: 13", "version: 12", "PostgreSQL 12 is not a supported version (13..17)"),
    ("postgres", "version: 17", "version: 18", "PostgreSQL 18 is not a supported version"),
    ("postgres", "version: 16, reserved_connections: 2", "version: 15, reserved_connections: 2", "reserved_connections needs PostgreSQL 16 or later; this one is 15"),
    ("postgres", "version: 17, reserved_connections: 0", "reserved_connections: 0", "reserved_connections needs PostgreSQL 16 or later, and `version` is not pinned"),
    ("pgbouncer", "version: \"1.21\", max_prepared_statements: 100", "version: \"1.18\", max_prepared_statements: 100", "max_prepared_statements needs PgBouncer 1.21 or later; this one is 1.18"),
    ("pgbouncer", "version: \"1.24\", max_prepared_statements: 0", "max_prepared_statements: 0", "max_prepared_statements needs PgBouncer 1.21 or later, and `version` is not pinned"),
    ("pgbouncer", "version: \"1.17\"", "version: \"1.16\"", "PgBouncer 1.16 is not a supported version (1.17..1.24)"),
    ("pgbouncer", "version: \"1.24.1\"", "version: \"1.25\"", "PgBouncer 1.25 is not a supported version"),
    ("pgbouncer", "max_client_conn: 2147483647", "max_client_conn: 2147483648", "pgbouncer max_client_conn must be 0..2147483647"),
    ("pgbouncer", "listen_backlog: 1", "listen_backlog: 2147483648", "pgbouncer listen_backlog must be 1..2147483647"),
    ("pgbouncer", "query_wait_timeout: 2147483647s", "query_wait_timeout: 2147483648s", "pgbouncer query_wait_timeout (seconds) must be 0..2147483647"),
    ("pgbouncer", "auth_type: md5", "auth_type: cert", "auth_type cert needs client TLS"),
    ("pgbouncer", "auth_type: trust", "auth_type: hba", "auth_type hba needs an auth_hba_file"),
    ("pgbouncer", "auth_file: /etc/pgbouncer/users.txt", "auth_file: \"/etc/x;y\"", "invalid auth_file"),
    ("pgbouncer", "auth_file: /etc/pgbouncer/users.txt", "auth_file: \"/etc/a b\"", "must be an absolute path without spaces"),
    ("redis", "tcp_backlog: 2147483647", "tcp_backlog: 2147483648", "redis tcp-backlog must be 0..2147483647"),
    ("redis", "maxclients: 2147483552", "maxclients: 2147483553", "redis maxclients must be 1..2147483552"),
    ("redis", "mode: sentinel, quorum: 1", "mode: sentinel, quorum: 0", "redis sentinel quorum must be 1.."),
    ("puma", "timeout: 6s", "timeout: 5s", "puma worker_timeout must be greater than 5s"),
    ("puma", "threads: 4, min_threads: 4", "threads: 4, min_threads: 5", "puma min_threads 5 is more than threads 4"),
    ("puma", "backlog: 2147483647", "backlog: 2147483648", "puma backlog must be 1..2147483647"),
    ("gunicorn", "backlog: 2147483647", "backlog: 2147483648", "gunicorn backlog must be 1..2147483647"),
    ("gunicorn", "nofile: 2147483584", "nofile: 2147483585", "nofile must be 1..2147483584"),
    ("nginx", "backlog: 2147483647", "backlog: 2147483648", "nginx listen backlog must be 1..2147483647"),
    ("nginx", "worker_connections: 2", "worker_connections: 1", "nginx worker_connections must be 2.."),
    ("nginx", "worker_processes: 1024", "worker_processes: 1025", "nginx worker_processes must be 1..1024"),
    ("nginx", "worker_rlimit_nofile: 2147483584", "worker_rlimit_nofile: 2147483585", "nginx worker_rlimit_nofile must be 1..2147483584"),
    ("nginx", "upstreams: { app: { to: web, weight: 1 } }", "upstreams: { app: { to: web, weight: 0 } }", "nginx server weight must be 1..2147483647"),
    ("nginx", "upstreams: { app: { to: web, fail_timeout: 9223372036854775s } }", "upstreams: { app: { to: web, fail_timeout: 9223372036854776s } }", "nginx fail_timeout must be 0..9223372036854775"),
    ("nginx", "rate_limits: { r: { rate: 1r/s, zone: 32KiB } }", "rate_limits: { r: { rate: 0r/s, zone: 32KiB } }", "nginx limit_req_zone rate must be 1.."),
    ("nginx", "rate_limits: { r: { rate: 1r/s, zone: 32KiB } }", "rate_limits: { r: { rate: 1r/s, zone: 8KiB } }", "nginx limit_req_zone size must be 32768..4294967296"),
    ("nginx", "rate_limits: { r: { rate: 1r/s, zone: 4GiB } }", "rate_limits: { r: { rate: 1r/s, zone: 0 } }", "nginx limit_req_zone size must be"),
    (
        "nginx",
        "locations: [ { path: /, upstream: app }, { path: /a/, upstream: app } ]",
        "locations: [ { path: /, upstream: app }, { path: /, upstream: app } ]",
        "location `/` is declared twice (also locations[0])",
    ),
    ("nginx", "locations: [ { path: /a, upstream: app } ]", "locations: [ { path: \"/a$x\", upstream: app } ]", "invalid location path"),
    ("nginx", "locations: [ { path: /a, upstream: app } ]", "locations: [ { path: \"/a\\u0001\", upstream: app } ]", "invalid location path"),
];

#[test]
fn each_limit_holds_at_its_boundary() {
    let mut failures = Vec::new();
    for (kind, accepted, refused, words) in BOUNDARIES {
        // The nginx bodies that set upstreams/locations replace the defaults.
        let body = |b: &str| -> String {
            let text = spec(kind, b);
            if b.starts_with("upstreams:") {
                text.replacen("upstreams: { app: { to: web } }, ", "", 1)
            } else if b.starts_with("locations:") {
                text.replacen("locations: [ { path: /, upstream: app } ], ", "", 1)
            } else {
                text
            }
        };
        if let Err(f) = analyze_text("capacity.yaml", &body(accepted)) {
            failures.push(format!("{kind} `{accepted}` should load: {:?}", f.diagnostics.iter().map(|d| &d.message).collect::<Vec<_>>()));
        }
        match analyze_text("capacity.yaml", &body(refused)) {
            Ok(_) => failures.push(format!("{kind} `{refused}` should not load")),
            Err(f) => {
                let d = &f.diagnostics[0];
                if !f.diagnostics.iter().any(|d| d.message.contains(words)) {
                    failures.push(format!("{kind} `{refused}`: no message with `{words}`: {:?}", f.diagnostics.iter().map(|d| &d.message).collect::<Vec<_>>()));
                }
                let span = d.span.as_ref().expect("located");
                let line = body(refused).lines().position(|l| l.starts_with("  svc:")).unwrap() + 1;
                if span.line != line || d.fix.is_none() {
                    failures.push(format!("{kind} `{refused}`: expected a hint and line {line}, got {:?} at {}:{}", d.fix, span.line, span.column));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_refused_value_exits_2_with_its_location_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capacity.yaml");
    std::fs::write(&path, spec("postgres", "max_connections: 300000")).unwrap();
    for args in [vec!["check"], vec!["render", "--force"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_headroom")).args(&args).arg(&path).current_dir(dir.path()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("postgres max_connections must be 1..262143, found 300000"), "{err}");
        assert!(err.contains("capacity.yaml:4:"), "{err}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "nothing written");
}

#[test]
fn two_files_on_one_path_do_not_load_and_several_services_of_a_kind_render_side_by_side() {
    let clash = "version: 1\nname: t\nservices:\n  web: { kind: gunicorn }\n  db: { kind: postgres }\ndeploy:\n  files: { gunicorn: conf/x.conf, postgres: conf/x.conf }\n";
    let f = analyze_text("capacity.yaml", clash).expect_err("two files on one path");
    assert!(f.diagnostics[0].message.contains("two files would be written to `conf/x.conf`"), "{:?}", f.diagnostics);
    assert_eq!(f.diagnostics[0].span.as_ref().unwrap().line, 7);

    let several = "version: 1\nname: t\nservices:\n  db: { kind: postgres }\n  reports: { kind: postgres }\n  \
                   pool-a: { kind: pgbouncer, uses: { db: {} } }\n  pool-b: { kind: pgbouncer, uses: { reports: {} } }\n  \
                   web: { kind: gunicorn }\n  admin: { kind: gunicorn }\n  rails: { kind: puma }\n  api: { kind: puma }\n  \
                   edge: { kind: nginx, upstreams: { app: { to: web } }, locations: [ { path: /, upstream: app } ] }\n  \
                   lb: { kind: nginx, upstreams: { app: { to: admin } }, locations: [ { path: /, upstream: app } ] }\n  \
                   cache: { kind: redis }\n  queue: { kind: redis }\n";
    let analysis = analyze_text("capacity.yaml", several).expect("several of each kind load");
    let ctx = headroom::targets::Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
    let artifacts = headroom::targets::render_all(&ctx, &[]).expect("and render");
    let paths: Vec<&str> = artifacts.iter().map(|a| a.path.as_str()).collect();
    for p in ["pgbouncer/pool-a.ini", "pgbouncer/pool-a.userlist.txt.example", "pgbouncer/pool-b.userlist.txt.example", "nginx/edge.conf", "nginx/lb.conf", "web/gunicorn.conf.py", "api/config/puma.rb"] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
}
