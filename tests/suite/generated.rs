//! The generative proof: whatever loads renders files its programs accept, on both
//! ends of each program's versions.
//!
//! proptest builds valid specs across kinds (gunicorn with every worker class, puma,
//! job kinds, nginx, PgBouncer, PostgreSQL, Redis standalone/sentinel/cluster), options,
//! names, ports, sizes, auth modes, pinned and unpinned versions, and hostile-but-valid
//! strings; every number is drawn with a bias to the boundaries of what its program
//! accepts (tests/limits.rs holds the other side of each boundary). Every case must
//! load and render; then each rendered file goes through its real program, batched (one
//! shell per program and end, servers started side by side):
//! - nginx.conf: `nginx -t` on the host (1.22) and in the Debian 13 root (1.26);
//! - the postgres include: `postgres -C` on PostgreSQL 15 and 17, and a real start on
//!   both for the first few;
//! - pgbouncer.ini: PgBouncer 1.18 and 1.24 started in the foreground, no ERROR/FATAL;
//! - redis.conf / sentinel.conf: Redis 7.0, Redis 8.0 and Valkey 8.1 load them;
//! - sysctl files: every key under /proc/sys with a value of its shape;
//! - gunicorn.conf.py, puma.rb, the compose file and Kamal's deploy.yml: gunicorn's
//!   strict load and --check-config, puma's DSL, docker-compose config, Kamal 2.12's
//!   own validation (`kamal-validate --resolve-secrets`), on every case (each costs a
//!   Python or Ruby start; HEADROOM_GENERATED_SAMPLED limits them to the first N).
//!
//! Redis authentication is drawn too (the default secret, a named one, `false`), and
//! `env.clear` values carry `$` (compose interpolation), ASCII control characters (not
//! with Kamal, whose load refuses them), C1 characters and Unicode line separators.
//!
//! 128 cases by default (HEADROOM_GENERATED_CASES): about 1000 files; 10 minutes on
//! this 2-core machine under the load of other builds (render 8 s, oldest end 32 s,
//! newest end 51 s, the Python/Ruby checks 487 s).
//! Each run draws its cases from one seed (printed; HEADROOM_GENERATED_SEED=<hex>
//! replays it) and keeps every case's proptest value tree. A spec that does not load or
//! render is shrunk at once; a file a program refuses is reported with its case's spec
//! (JSON, which is YAML), and then the first such case is shrunk by proptest with that
//! program's check in the property (only that program's files are checked again, so an
//! attempt costs one program start; at most 4 minutes). The smallest failing spec is
//! kept in tests/fixtures/generated/ (first line: its spec file name), and every kept
//! spec is rendered and checked before the generated ones on each run.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use headroom::analysis::analyze_text;
use headroom::plan::{Detail, Kind};
use headroom::targets::{self, Context};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde_json::{Map, Value, json};

/// Cases per run (HEADROOM_GENERATED_CASES overrides).
const CASES: u32 = 128;
/// Cases whose app-server, compose and Kamal files also go through Python/Ruby (each
/// costs about half a second): all of them unless HEADROOM_GENERATED_SAMPLED says fewer.
fn sampled() -> usize {
    std::env::var("HEADROOM_GENERATED_SAMPLED").ok().and_then(|v| v.parse().ok()).unwrap_or(usize::MAX)
}

/// Choices drawn from a list of numbers: 0 everywhere is the simplest spec, so proptest
/// shrinks a failure toward the fewest services and the plainest values.
struct Dice<'a> {
    rolls: &'a [u32],
    at: usize,
}

impl Dice<'_> {
    fn next(&mut self) -> u32 {
        let r = self.rolls.get(self.at % self.rolls.len()).copied().unwrap_or(0);
        self.at += 1;
        // Reuse the rolls with a twist once they run out.
        r.wrapping_add(((self.at / self.rolls.len().max(1)) as u32).wrapping_mul(2_654_435_761))
    }
    fn pick(&mut self, n: usize) -> usize {
        (self.next() as usize) % n.max(1)
    }
    fn chance(&mut self, percent: u32) -> bool {
        self.next() % 100 >= 100 - percent
    }
    fn from<'s, T: ?Sized>(&mut self, items: &[&'s T]) -> &'s T {
        items[self.pick(items.len())]
    }
    /// A number in lo..=hi, often one of the boundaries.
    fn num(&mut self, lo: u64, hi: u64) -> u64 {
        let span = hi - lo;
        match self.pick(8) {
            0 => lo,
            1 => hi,
            2 => lo + span.min(1),
            3 => hi - span.min(1),
            4 | 5 => lo + u64::from(self.next()) % (span.min(64) + 1),
            _ => lo + (u64::from(self.next()) << 32 | u64::from(self.next())) % span.saturating_add(1).max(1),
        }
    }
}

/// Names that are valid yet unusual: digits first, dashes and underscores, 63 chars.
const NAMES: &[&str] = &["web", "api", "0", "a-b", "x_y", "9lives", "svc-with-a-rather-long-name-made-of-many-words-up-to-sixty-thre", "db2", "q"];
/// Strings for free-text fields that reach files: quotes, unicode, shell and YAML syntax.
const HOSTILE_TEXT: &[&str] = &["plain", "with space", "quote\"s", "it's", "uni ✓ é 漢", "back\\slash", "semi;colon", "#hash", "a: b", "- dash", "{brace}", "[list]", "`tick`", "%percent", "*star", "&amp"];
/// Env values with `$`, which compose would interpolate unless doubled.
const DOLLAR_TEXT: &[&str] = &["$HOME", "a$b", "$$", "5$", "$1", "${", "$(id)", "x#y$"];
/// Env values with ASCII control characters (not for Kamal: it refuses or rewrites them).
const CONTROL_TEXT: &[&str] = &["tab\there", "two\nlines", "del\u{7f}x", "esc\u{1b}[31m", "cr\rlf", "${VAR}", "#{ruby}", "bell\u{7}"];
/// Env values with C1 characters and Unicode line separators (NEL, U+2028/2029).
const WIDE_TEXT: &[&str] = &["nel\u{85}x", "ls\u{2028}ps\u{2029}", "csi\u{9b}31m", "ü\u{a0}nbsp"];
/// Spec file names (the header of every file names it).
const FILE_NAMES: &[&str] = &["capacity.yaml", "x\nimport os; os.system('id')\n#.yaml", "a\r\nlisten 81;.yaml", "b\u{85}c\u{2028}d\u{2029}.yaml", "e\u{7f}\u{9b}\u{1b}[31m.yaml", "f;g=1 [pgbouncer] } {.yaml", "\"quoted\".yaml"];

fn unique(d: &mut Dice<'_>, taken: &mut BTreeSet<String>, kind: &str) -> String {
    let base = if d.chance(50) { kind.replace('_', "-") } else { d.from(NAMES).to_string() };
    let mut name = base.clone();
    let mut i = 2;
    while taken.contains(&name) || name.ends_with("-sentinel") {
        name = format!("{}{i}", base.chars().take(60).collect::<String>());
        i += 1;
    }
    taken.insert(name.clone());
    name
}

fn duration(d: &mut Dice<'_>, lo: u64, hi: u64) -> Value {
    let secs = d.num(lo, hi);
    match d.pick(3) {
        0 => json!(secs),
        1 => json!(format!("{secs}s")),
        _ if secs.is_multiple_of(60) && secs > 0 => json!(format!("{}m", secs / 60)),
        _ => json!(format!("{secs}s")),
    }
}

fn size(bytes: u64) -> Value {
    const K: u64 = 1024;
    if bytes.is_multiple_of(K * K * K) {
        json!(format!("{}GiB", bytes / (K * K * K)))
    } else if bytes.is_multiple_of(K * K) {
        json!(format!("{}MiB", bytes / (K * K)))
    } else if bytes.is_multiple_of(K) {
        json!(format!("{}KiB", bytes / K))
    } else {
        json!(bytes)
    }
}

/// A valid spec from the dice.
fn build(d: &mut Dice<'_>) -> Value {
    let mut taken = BTreeSet::new();
    let mut services = Map::new();
    let mut machines = Map::new();
    // Kamal deploys to hosts: every machine lists its addresses, IPs (accessories
    // publish their ports on one), and every role is placed.
    let kamal = d.chance(40);
    let machine_names: Vec<String> = (0..d.pick(3).max(usize::from(kamal))).map(|i| format!("m{i}")).collect();
    for m in &machine_names {
        let count = d.num(1, 3);
        let mut machine = json!({ "count": count, "cpus": d.num(1, 64), "memory": size(d.num(1, 64) << 30) });
        if kamal || d.chance(50) {
            let addresses: Vec<String> =
                (0..count).map(|i| if kamal || d.chance(50) { format!("10.0.{}.{}", d.pick(255), i + 1) } else { format!("{m}-host{i}.internal") }).collect();
            machine["addresses"] = json!(addresses);
        }
        if d.chance(40) {
            machine["sysctl"] = json!({ "net.core.somaxconn": d.num(128, 2_147_483_647), "fs.file-max": d.num(1024, 9_223_372_036_854_775_807) });
        }
        if d.chance(30) {
            machine["nofile"] = json!(d.num(1024, 2_147_483_584));
        }
        machines.insert(m.clone(), machine);
    }
    let place = |d: &mut Dice<'_>, s: &mut Value| {
        let role = ["gunicorn", "puma", "sidekiq", "celery", "solid_queue", "rq", "worker"].contains(&s["kind"].as_str().unwrap_or(""));
        if !machine_names.is_empty() && ((kamal && role) || d.chance(50)) {
            s["machine"] = json!(machine_names[d.pick(machine_names.len())]);
        }
    };

    // Data services first, so clients can use them.
    let mut postgres = Vec::new();
    for _ in 0..d.pick(3) {
        let name = unique(d, &mut taken, "postgres");
        let mut s = json!({ "kind": "postgres" });
        let version = if d.chance(50) { Some(d.num(13, 17)) } else { None };
        if let Some(v) = version {
            s["version"] = json!(v);
        }
        let workers = d.num(0, 64);
        let max = d.num(1, 262_129 - workers.max(8)).max(2);
        s["max_connections"] = json!(max);
        s["max_worker_processes"] = json!(workers);
        let superuser = d.num(0, (max - 1).min(10));
        s["superuser_reserved_connections"] = json!(superuser);
        if version.is_some_and(|v| v >= 16) && d.chance(50) {
            s["reserved_connections"] = json!(d.num(0, max - 1 - superuser));
        }
        if d.chance(70) {
            let memory = d.num(1, 1 << 20) << 20;
            s["resources"] = json!({ "memory": size(memory) });
        }
        if d.chance(30) {
            s["shared_buffers"] = size(d.num(16, 1 << 20) * 8192);
        }
        if d.chance(30) {
            s["work_mem"] = size(d.num(64, 1 << 22) * 1024);
        }
        s["workload"] = json!(d.from(&["web", "oltp", "dw", "mixed"]));
        s["storage"] = json!(d.from(&["ssd", "hdd", "nvme"]));
        if d.chance(50) {
            s["databases"] = json!((0..d.num(1, 3)).map(|i| format!("{}_{i}", d.from(&["app", "shop", "x-y", "Data"]))).collect::<Vec<_>>());
        }
        if d.chance(30) {
            s["port"] = json!(d.num(1, 65535));
        }
        place(d, &mut s);
        services.insert(name.clone(), s);
        postgres.push(name);
    }
    let mut poolers = Vec::new();
    for _ in 0..if postgres.is_empty() { 0 } else { d.pick(3) } {
        let name = unique(d, &mut taken, "pgbouncer");
        let target = postgres[d.pick(postgres.len())].clone();
        let mut s = json!({ "kind": "pgbouncer", "uses": { target: {} } });
        s["pool_mode"] = json!(d.from(&["session", "transaction", "statement"]));
        for key in ["max_client_conn", "default_pool_size", "min_pool_size", "reserve_pool_size", "max_db_connections", "max_user_connections"] {
            if d.chance(60) {
                s[key] = json!(d.num(0, 2_147_483_647));
            }
        }
        if d.chance(40) {
            s["listen_backlog"] = json!(d.num(1, 2_147_483_647));
        }
        for key in ["reserve_pool_timeout", "query_wait_timeout", "server_idle_timeout", "server_lifetime"] {
            if d.chance(40) {
                s[key] = duration(d, 0, 2_147_483_647);
            }
        }
        if d.chance(60) {
            let (minor, patch) = (d.num(17, 24), d.pick(3));
            s["version"] = json!(if patch == 0 { format!("1.{minor}") } else { format!("1.{minor}.{patch}") });
            if minor >= 21 && d.chance(60) {
                s["max_prepared_statements"] = json!(d.num(0, 2_147_483_647));
            }
        }
        s["auth_type"] = json!(d.from(&["scram-sha-256", "md5", "plain", "trust"]));
        if d.chance(30) {
            s["auth_file"] = json!(d.from(&["/etc/pgbouncer/users.txt", "/run/secrets/userlist", "/etc/pgbouncer/ü.txt", "/run/a-b_c.d/e"]));
        }
        if d.chance(50) {
            s["users"] = json!((0..d.num(1, 3)).map(|i| format!("{}{i}", d.from(&["app", "Report_er", "x-y"]))).collect::<Vec<_>>());
        }
        if d.chance(30) {
            s["port"] = json!(d.num(1, 65535));
        }
        place(d, &mut s);
        services.insert(name.clone(), s);
        poolers.push(name);
    }
    let mut redises = Vec::new();
    for _ in 0..d.pick(3) {
        let name = unique(d, &mut taken, "redis");
        let mut s = json!({ "kind": "redis" });
        match d.pick(3) {
            0 => {}
            1 => {
                let sentinels = d.num(1, 7);
                s["mode"] = json!("sentinel");
                s["sentinels"] = json!(sentinels);
                if d.chance(50) {
                    s["quorum"] = json!(d.num(1, sentinels));
                }
            }
            _ => {
                s["mode"] = json!("cluster");
                s["masters"] = json!(d.num(3, 6));
                s["replicas_per_master"] = json!(d.num(0, 2));
            }
        }
        if d.chance(60) {
            s["maxmemory"] = size(d.num(1, 1 << 20) << 20);
        }
        s["maxmemory_policy"] = json!(d.from(&["noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"]));
        if d.chance(50) {
            // Up to 4M: Redis lowers its file limit 16 at a time from maxclients + 32 to
            // what the host allows, so the boundary itself (2147483552, tests/limits.rs)
            // takes minutes to start here.
            s["maxclients"] = json!(d.num(1, 4 << 20));
        }
        if d.chance(50) {
            s["tcp_backlog"] = json!(d.num(1, 2_147_483_647));
        }
        s["persistence"] = json!(d.from(&["none", "rdb", "aof"]));
        // Authentication: the default secret, a named one, or none.
        match d.pick(3) {
            0 => {}
            1 => s["password"] = json!(d.from(&["REDIS_SECRET", "_x9", "CACHE_PASSWORD", "a"])),
            _ => s["password"] = json!(false),
        }
        place(d, &mut s);
        services.insert(name.clone(), s);
        redises.push(name);
    }
    let targets: Vec<String> = postgres.iter().chain(&poolers).chain(&redises).cloned().collect();
    let uses = |d: &mut Dice<'_>| -> Value {
        let mut u = Map::new();
        for t in &targets {
            if d.chance(50) {
                let mut pool = json!({});
                if d.chance(70) {
                    pool["pool"] = json!(d.num(1, 200));
                }
                if !redises.contains(t) {
                    pool["framework"] = json!(d.from(&["django", "rails", "sqlalchemy", "psycopg2", "psycopg_pool", "generic"]));
                    if d.chance(30) {
                        pool["max_overflow"] = json!(d.num(0, 50));
                    }
                    if d.chance(30) {
                        pool["persistent"] = json!(d.chance(50));
                    }
                }
                u.insert(t.clone(), pool);
            }
        }
        Value::Object(u)
    };

    let mut apps = Vec::new();
    for _ in 0..d.num(1, 3) {
        let puma = d.chance(35);
        let name = unique(d, &mut taken, if puma { "puma" } else { "gunicorn" });
        let mut s = if puma {
            let threads = d.num(1, 64);
            let mut s = json!({ "kind": "puma", "workers": d.num(0, 32), "threads": threads });
            if d.chance(50) {
                s["min_threads"] = json!(d.num(0, threads));
            }
            if d.chance(50) {
                s["timeout"] = duration(d, 6, 3600);
            }
            if d.chance(30) {
                s["preload"] = json!(d.chance(50));
            }
            if d.chance(30) {
                s["app"] = json!(d.from(&["config.ru", "app.ru", "rack/ü.ru"]));
            }
            s
        } else {
            let class = d.from(&["sync", "gthread", "gevent", "uvicorn"]);
            let mut s = json!({ "kind": "gunicorn", "worker_class": class });
            s["workers"] = if d.chance(20) { json!("auto") } else { json!(d.num(1, 64)) };
            if class == "gthread" || d.chance(20) {
                s["threads"] = json!(d.num(1, 64));
            }
            if d.chance(40) {
                s["worker_connections"] = json!(d.num(1, 10_000));
            }
            for key in ["timeout", "graceful_timeout", "keepalive"] {
                if d.chance(40) {
                    s[key] = duration(d, 0, 86_400);
                }
            }
            if d.chance(30) {
                s["max_requests"] = json!(d.num(0, 100_000));
                s["max_requests_jitter"] = json!(d.num(0, 1_000));
            }
            if d.chance(50) {
                s["app"] = json!(d.from(&["app:app", "arena_backend.wsgi", "web.app:create_app()", "pkg.mod:application", "ünï.wsgi"]));
            }
            s
        };
        if d.chance(40) {
            s["backlog"] = json!(d.num(1, 2_147_483_647));
        }
        s["replicas"] = json!(d.num(1, 6));
        if d.chance(40) {
            s["port"] = json!(d.num(1, 65535));
        }
        if d.chance(50) {
            s["health"] = json!({ "path": d.from(&["/health/", "/up", "/-/ready?full=1", "/ü%20x"]), "interval": duration(d, 1, 300) });
        }
        if d.chance(40) {
            s["resources"] = json!({ "cpus": d.num(1, 16), "memory": size(d.num(64, 8192) << 20) });
        }
        s["uses"] = uses(d);
        place(d, &mut s);
        services.insert(name.clone(), s);
        apps.push(name);
    }
    for _ in 0..d.pick(3) {
        let kind = d.from(&["sidekiq", "celery", "solid_queue", "rq", "worker"]);
        let name = unique(d, &mut taken, kind);
        let mut s = json!({ "kind": kind, "concurrency": d.num(1, 100), "processes": d.num(1, 8) });
        if d.chance(40) {
            s["command"] = json!(d.from(&["bin/jobs", "celery -A proj worker", "python -m rq.cli worker"]));
        }
        s["uses"] = uses(d);
        place(d, &mut s);
        services.insert(name, s);
    }
    for _ in 0..d.pick(3) {
        let name = unique(d, &mut taken, "nginx");
        let mut s = json!({ "kind": "nginx" });
        s["worker_processes"] = if d.chance(30) { json!("auto") } else { json!(d.num(1, 1024)) };
        s["worker_connections"] = json!(d.num(2, 100_000));
        if d.chance(50) {
            s["worker_rlimit_nofile"] = json!(d.num(1, 2_147_483_584));
        }
        if d.chance(40) {
            s["backlog"] = json!(d.num(1, 2_147_483_647));
        }
        if d.chance(40) {
            s["server_name"] = json!(d.from(&["app.example.com", "_", "a.example.com b.example.com", "*.example.org", "xn--bcher-kva.example"]));
        }
        let mut upstreams = Map::new();
        let upstream_names: Vec<String> = (0..d.num(1, 3)).map(|i| format!("{}{i}", d.from(&["app", "api", "ws", "r"]))).collect();
        for up in &upstream_names {
            let mut u = json!({ "to": apps[d.pick(apps.len())], "balance": d.from(&["round_robin", "least_conn", "ip_hash", "random"]) });
            if d.chance(50) {
                u["keepalive"] = json!(d.num(0, 1024));
                u["keepalive_timeout"] = duration(d, 0, 9_223_372_036_854_775);
                u["keepalive_requests"] = json!(d.num(0, 9_223_372_036_854_775_807));
            }
            for (key, hi) in [("max_fails", 9_223_372_036_854_775_807u64), ("max_conns", 9_223_372_036_854_775_807), ("weight", 2_147_483_647)] {
                if d.chance(40) {
                    u[key] = json!(d.num(u64::from(key == "weight"), hi));
                }
            }
            if d.chance(40) {
                u["fail_timeout"] = duration(d, 0, 9_223_372_036_854_775);
            }
            upstreams.insert(up.clone(), u);
        }
        // A rate-limit zone may share a name with an upstream: the files keep them apart.
        let mut rate_limits = Map::new();
        for i in 0..d.pick(3) {
            let zone_name = if d.chance(40) { upstream_names[0].clone() } else { format!("z{i}") };
            let sizes = [32u64 << 10, 10 << 20, 1 << 30, 4 << 30];
            let zone = if d.chance(50) { size(d.num(32, 4 << 20) * 1024) } else { size(sizes[d.pick(sizes.len())]) };
            rate_limits.insert(zone_name, json!({ "rate": format!("{}r/{}", d.num(1, 9_223_372_036_854_775), d.from(&["s", "m"])), "zone": zone }));
        }
        let zones: Vec<String> = rate_limits.keys().cloned().collect();
        let mut paths: Vec<String> = vec!["/".into(), "/api/".into(), "/ws/".into(), "/static/ü/".into(), "/a/b-c_d.e~f".into(), "/nginx-health".into()];
        let mut locations = Vec::new();
        for _ in 0..d.num(1, 4) {
            if paths.is_empty() {
                break;
            }
            let path = paths.remove(d.pick(paths.len()));
            let mut l = json!({ "path": path, "upstream": upstream_names[d.pick(upstream_names.len())] });
            for key in ["read_timeout", "send_timeout", "connect_timeout"] {
                if d.chance(30) {
                    l[key] = duration(d, 0, 9_223_372_036_854_775);
                }
            }
            if d.chance(30) {
                l["websocket"] = json!(true);
            }
            if !zones.is_empty() && d.chance(50) {
                l["rate_limit"] = json!(zones[d.pick(zones.len())]);
                if d.chance(50) {
                    l["burst"] = json!(d.num(0, 9_223_372_036_854_775));
                }
            }
            locations.push(l);
        }
        s["upstreams"] = Value::Object(upstreams);
        s["locations"] = json!(locations);
        if !rate_limits.is_empty() {
            s["rate_limits"] = Value::Object(rate_limits);
        }
        place(d, &mut s);
        services.insert(name, s);
    }

    let name = d.from(&["app", "x", "0", "a-b-c", "shop2"]);
    let mut spec = json!({ "version": 1, "name": name, "services": services });
    if !machines.is_empty() {
        spec["machines"] = Value::Object(machines);
    }
    if d.chance(50) {
        spec["load"] = json!({ "rps": d.num(0, 100_000), "service_time": format!("{}ms", d.num(1, 2_000)) });
    }
    let mut deploy = Map::new();
    if d.chance(50) {
        deploy.insert("compose".into(), json!({}));
    }
    if d.chance(50) {
        deploy.insert("sysctl".into(), json!({}));
    }
    if d.chance(20) {
        deploy.insert("files".into(), json!({ "nginx": "conf/front.conf" }));
    }
    if kamal {
        let registry = match d.pick(3) {
            0 => json!({ "server": "ghcr.io", "username": "KAMAL_REGISTRY_USERNAME", "password": "KAMAL_REGISTRY_PASSWORD" }),
            1 => json!({ "server": "localhost:5555" }),
            _ => json!({ "username": "DOCKER_USER", "password": "DOCKER_TOKEN" }),
        };
        let mut k = json!({ "image": d.from(&["ghcr.io/acme/app", "registry.example.com:5000/team/app", "app"]), "registry": registry });
        if d.chance(40) {
            k["service"] = json!(d.from(&["shop", "a_b", "x-1", "0"]));
        }
        match d.pick(4) {
            0 => {}
            1 => k["proxy"] = json!({ "host": "app.example.com", "ssl": false, "response_timeout": duration(d, 1, 600) }),
            2 => k["proxy"] = json!({ "host": "app.example.com", "ssl": true, "certificate_pem": "CERTIFICATE_PEM", "private_key_pem": "PRIVATE_KEY_PEM" }),
            _ => k["proxy"] = json!({ "host": "xn--bcher-kva.example" }),
        }
        if d.chance(30) {
            k["arch"] = json!(d.from(&["amd64", "arm64"]));
        }
        deploy.insert("kamal".into(), k);
    }
    if !deploy.is_empty() {
        spec["deploy"] = Value::Object(deploy);
    }
    // Free text that reaches files: env values, with `$` (compose interpolates it) and
    // control characters (escaped per format; Kamal would change what the container
    // receives, so load refuses those there and they are drawn without Kamal only).
    if d.chance(60)
        && let Some(first) = apps.first()
    {
        let mut clear = Map::new();
        clear.insert("GREETING".into(), json!(d.from(HOSTILE_TEXT)));
        if d.chance(70) {
            clear.insert("PRICE".into(), json!(d.from(DOLLAR_TEXT)));
        }
        if !kamal && d.chance(70) {
            clear.insert("BANNER".into(), json!(d.from(CONTROL_TEXT)));
        }
        if d.chance(50) {
            clear.insert("WIDE".into(), json!(d.from(WIDE_TEXT)));
        }
        spec["services"][first]["env"] = json!({ "clear": clear, "secret": ["DATABASE_URL"] });
    }
    spec
}

/// One rendered case on disk.
struct Case {
    spec: String,
    dir: PathBuf,
    /// (kind, path, only the newest end has the version it is pinned to)
    files: Vec<(&'static str, String, bool)>,
    hosts: BTreeSet<String>,
}

/// What the end's programs find where: the host's, or the Debian 13 root's.
#[derive(Clone, Copy, Debug, PartialEq)]
enum End {
    Oldest,
    Newest,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn trixie_tool() -> PathBuf {
    let candidates = [std::env::var("HEADROOM_TRIXIE_TOOL").ok().map(PathBuf::from), Some(repo().join("../shared/tools/trixie-root")), Some(repo().join("../../shared/tools/trixie-root"))];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .expect("shared/tools/trixie-root not found beside the repository: the newest end cannot be checked (set HEADROOM_TRIXIE_TOOL)")
}

fn kamal_validate() -> PathBuf {
    let shared = std::env::var_os("HEADROOM_SHARED").map(PathBuf::from);
    let candidates = [shared.map(|s| s.join("tools/kamal-validate")), Some(repo().join("../shared/tools/kamal-validate")), Some(repo().join("../../shared/tools/kamal-validate"))];
    candidates.into_iter().flatten().find(|p| p.is_file()).expect("tools/kamal-validate not found: set HEADROOM_SHARED to the directory holding it")
}

fn trixie_root() -> PathBuf {
    let out = Command::new(trixie_tool()).stdin(Stdio::null()).output().expect("trixie-root runs");
    assert!(out.status.success(), "trixie-root could not build its root: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Runs `script` (bash) with the end's programs; returns its output.
fn run_batch(end: End, root: &Path, script: &str, work: &Path) -> String {
    let file = work.join(format!("batch-{}.sh", rand_suffix()));
    std::fs::write(&file, script).unwrap();
    let mut cmd = match end {
        End::Oldest => {
            let mut c = Command::new("bash");
            c.arg(&file);
            c
        }
        End::Newest => {
            let mut c = Command::new(trixie_tool());
            c.arg("run").arg("bash").arg(Path::new("/").join(file.strip_prefix(root).unwrap()));
            c
        }
    };
    let out = cmd.stdin(Stdio::null()).output().expect("batch runs");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// Shell-quotes a path.
fn q(p: &str) -> String {
    format!("'{}'", p.replace('\'', "'\\''"))
}

/// The path a program of `end` sees.
fn seen(end: End, root: &Path, p: &Path) -> String {
    match end {
        End::Oldest => p.display().to_string(),
        End::Newest => Path::new("/").join(p.strip_prefix(root).unwrap()).display().to_string(),
    }
}

/// `failures` gets one line per file a program refused, with its output.
fn check_end(end: End, root: &Path, work: &Path, cases: &[Case], failures: &mut Vec<(Option<usize>, String)>) {
    let s = |p: &Path| q(&seen(end, root, p));
    // One hosts file per case: nss_wrapper's table holds a few thousand names at most.
    let hosts_files: Vec<PathBuf> = cases
        .iter()
        .enumerate()
        .map(|(ci, case)| {
            let file = work.join(format!("hosts-{end:?}-{ci}"));
            let mut hosts = String::from("127.0.0.1 localhost\n");
            for h in &case.hosts {
                writeln!(hosts, "127.0.0.1 {h}").unwrap();
            }
            std::fs::write(&file, hosts).unwrap();
            file
        })
        .collect();
    let pgbin = match end {
        End::Oldest => "/usr/lib/postgresql/15/bin",
        End::Newest => "/usr/lib/postgresql/17/bin",
    };
    let data = work.join(format!("pgdata-{end:?}"));
    let mut script = String::from("set -u\nNSS=$(ls /usr/lib/*/libnss_wrapper.so | head -n1)\n");
    writeln!(script, "chown postgres: {} && chmod 777 {}", s(work), s(work)).unwrap();
    if cases.iter().flat_map(|c| &c.files).any(|f| f.0 == "postgres") {
        writeln!(script, "runuser -u postgres -- {pgbin}/initdb -D {} -A trust -U postgres --no-sync >/dev/null 2>&1 || echo 'FAIL initdb'", s(&data)).unwrap();
    }
    let mut port = 20_000 + (std::process::id() % 20_000) as u64 + if end == End::Newest { 5_000 } else { 0 };
    let mut pgbouncers = String::new();
    let mut started = 0;
    for (ci, case) in cases.iter().enumerate() {
        let hosts_file = &hosts_files[ci];
        for (i, (kind, file, newest_only)) in case.files.iter().enumerate() {
            if *newest_only && end == End::Oldest {
                continue;
            }
            let path = case.dir.join(file);
            let tag = format!("{ci}:{file}");
            match *kind {
                "nginx" => {
                    let prefix = work.join(format!("ngx-{end:?}-{ci}-{i}"));
                    std::fs::create_dir_all(prefix.join("logs")).unwrap();
                    writeln!(
                        script,
                        "out=$(LD_PRELOAD=$NSS NSS_WRAPPER_HOSTS={} nginx -t -q -p {}/ -e {}/logs/error.log -c {} 2>&1) || echo \"FAIL {tag} $out\"",
                        s(hosts_file),
                        s(&prefix),
                        s(&prefix),
                        s(&path)
                    )
                    .unwrap();
                }
                "postgres" => {
                    let conf = case.dir.join(format!("{file}.postgresql.conf"));
                    std::fs::write(&conf, format!("include = '{}'\n", seen(end, root, &path))).unwrap();
                    writeln!(script, "out=$(runuser -u postgres -- {pgbin}/postgres -D {} -c config_file={} -C max_connections 2>&1) || echo \"FAIL {tag} $out\"", s(&data), s(&conf)).unwrap();
                    // A real start for the first few that fit this machine: what only
                    // start-up checks (reserved slots below max_connections). shared_buffers
                    // is overridden on the command line, as memory is the host's, not the plan's.
                    let modest = std::fs::read_to_string(&path)
                        .unwrap()
                        .lines()
                        .find_map(|l| l.strip_prefix("max_connections = ").and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok()))
                        .is_some_and(|m| m <= 2_000);
                    if started < 3 && modest {
                        started += 1;
                        port += 1;
                        writeln!(
                            script,
                            "sock=$(mktemp -d) && chmod 777 $sock && if runuser -u postgres -- {pgbin}/pg_ctl -D {d} -w -t 60 -l {log} -o \"-c config_file={cp} -c hba_file={dp}/pg_hba.conf -c ident_file={dp}/pg_ident.conf -c shared_buffers=16MB -c listen_addresses=127.0.0.1 -p {port} -k $sock\" start >/dev/null 2>&1; then runuser -u postgres -- {pgbin}/pg_ctl -D {d} -m fast -w stop >/dev/null 2>&1; else echo \"FAIL {tag} (start) $(tail -n 5 {log})\"; fi",
                            d = s(&data),
                            dp = seen(end, root, &data),
                            cp = seen(end, root, &conf),
                            log = s(&work.join(format!("pg-{end:?}-{ci}-{i}.log"))),
                        )
                        .unwrap();
                    }
                }
                "pgbouncer" => {
                    port += 1;
                    let run = work.join(format!("pgb-{end:?}-{ci}-{i}"));
                    std::fs::create_dir_all(&run).unwrap();
                    let rs = seen(end, root, &run);
                    std::fs::write(run.join("userlist.txt"), "\"postgres\" \"x\"\n").unwrap();
                    let text = std::fs::read_to_string(&path).unwrap();
                    let ini = format!(
                        "{text}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\nauth_file = {rs}/userlist.txt\nlogfile = {rs}/pgbouncer.log\npidfile = {rs}/pgbouncer.pid\n"
                    );
                    std::fs::write(run.join("pgbouncer.ini"), ini).unwrap();
                    writeln!(pgbouncers, "chmod -R a+rwX {q}; pgbouncer -u postgres {q}/pgbouncer.ini >{q}/stdout.log 2>&1 & pids+=($!); names+=({tag:?}); dirs+=({q})", q = q(&rs)).unwrap();
                }
                "redis" | "sentinel" => {
                    let copy = work.join(format!("redis-{end:?}-{ci}-{i}.conf"));
                    let text = std::fs::read_to_string(&path).unwrap();
                    let dir = work.join(format!("redis-{end:?}-{ci}-{i}.d"));
                    std::fs::create_dir_all(&dir).unwrap();
                    let text: String = text.lines().map(|l| if l.starts_with("dir ") { format!("dir {}\n", seen(end, root, &dir)) } else { format!("{l}\n") }).collect();
                    std::fs::write(&copy, text).unwrap();
                    let servers: &[&str] = if end == End::Newest { &["redis-server", "valkey-server"] } else { &["redis-server"] };
                    for server in servers {
                        let mode = if *kind == "sentinel" { "--sentinel" } else { "" };
                        writeln!(
                            script,
                            "cp {c} {c}.{server} && out=$(LD_PRELOAD=$NSS NSS_WRAPPER_HOSTS={h} timeout -s KILL 20 {server} {c}.{server} {mode} --port 0 --unixsocket '' --daemonize no --logfile '' 2>&1); case \"$out\" in *FATAL*|*'Bad directive'*) echo \"FAIL {tag} ({server}) $(echo \"$out\" | grep -A3 -E 'FATAL|Bad directive' | tr '\\n' ' ')\";; *'Configuration loaded'*) ;; *) echo \"FAIL {tag} ({server}) $(echo \"$out\" | tail -n 3 | tr '\\n' ' ')\";; esac",
                            c = s(&copy),
                            h = s(hosts_file),
                        )
                        .unwrap();
                    }
                }
                _ => {}
            }
        }
    }
    writeln!(
        script,
        "pids=(); names=(); dirs=()\n{pgbouncers}{sleep}for i in \"${{!pids[@]}}\"; do\n  if ! kill -0 \"${{pids[$i]}}\" 2>/dev/null; then echo \"FAIL ${{names[$i]}} (exited) $(cat \"${{dirs[$i]}}\"/*.log 2>/dev/null | tail -n 5)\"; continue; fi\n  kill -INT \"${{pids[$i]}}\"\ndone\nwait\nfor i in \"${{!pids[@]}}\"; do\n  bad=$(grep -hE ' (ERROR|FATAL) ' \"${{dirs[$i]}}\"/*.log 2>/dev/null | head -n 3)\n  [ -z \"$bad\" ] || echo \"FAIL ${{names[$i]}} $bad\"\ndone\necho BATCH-DONE",
        // PgBouncer reports some errors after start-up: give the started ones 2 s.
        sleep = if pgbouncers.is_empty() { "" } else { "sleep 2\n" }
    )
    .unwrap();
    let out = run_batch(end, root, &script, work);
    if !out.contains("BATCH-DONE") {
        failures.push((None, format!("[{end:?}] the batch did not finish:\n{out}")));
    }
    for line in out.lines().filter(|l| l.starts_with("FAIL ")) {
        let case = line[5..].split(':').next().and_then(|n| n.parse::<usize>().ok());
        let spec = case.and_then(|c| cases.get(c)).map(|c| c.spec.as_str()).unwrap_or("");
        failures.push((case, format!("[{end:?} end] {line}\n--- spec\n{spec}")));
    }
}

/// The checks that cost a Python or Ruby start, on a sample of the cases.
fn check_sampled(cases: &[Case], failures: &mut Vec<(Option<usize>, String)>) {
    let mut runs = Vec::new();
    for (ci, case) in cases.iter().enumerate().take(sampled()) {
        for (kind, file, _) in &case.files {
            let path = case.dir.join(file).display().to_string();
            let args: Vec<String> = match *kind {
                "gunicorn" => vec!["gunicorn.sh".into(), path],
                "puma" => vec!["puma_check".into(), path],
                "compose" => vec!["compose.sh".into(), path],
                "kamal" => vec!["kamal-validate".into(), path],
                "sysctl" => vec!["sysctl.sh".into(), path],
                _ => continue,
            };
            runs.push((ci, args));
        }
    }
    // sysctl files of every case (a short Python run each).
    for (ci, case) in cases.iter().enumerate().skip(sampled()) {
        for (kind, file, _) in &case.files {
            if *kind == "sysctl" {
                runs.push((ci, vec!["sysctl.sh".into(), case.dir.join(file).display().to_string()]));
            }
        }
    }
    let results = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some((ci, args)) = runs.get(i) else { break };
                    let validators = repo().join("tests/validators");
                    let out = if args[0] == "puma_check" {
                        Command::new("ruby").arg(validators.join("puma_check.rb")).arg(&args[1]).output()
                    } else if args[0] == "kamal-validate" {
                        Command::new(kamal_validate()).arg("--resolve-secrets").arg(&args[1]).output()
                    } else {
                        Command::new("bash").arg(validators.join(&args[0])).arg(&args[1]).output()
                    }
                    .expect("validator runs");
                    if !out.status.success() {
                        results.lock().unwrap().push((Some(*ci), format!(
                            "{} rejected {}\n{}{}\n--- spec\n{}",
                            args[0],
                            args[1],
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr),
                            cases[*ci].spec
                        )));
                    }
                }
            });
        }
    });
    failures.extend(results.into_inner().unwrap());
}

/// A file rendered for a pinned version only the newest end has: PostgreSQL 16+ with
/// reserved_connections, PgBouncer 1.21+ with max_prepared_statements. Every other file
/// must pass on both ends.
fn newest_only(ctx: &Context<'_>, a: &targets::Artifact) -> bool {
    ctx.plan.services.iter().any(|s| match &s.detail {
        Detail::Postgres(pg) => a.target == "postgres" && a.path == targets::postgres::path(ctx, s) && pg.version.is_written() && pg.version.value >= 16,
        Detail::Pgbouncer(p) => a.target == "pgbouncer" && a.path == targets::pgbouncer::path(ctx, s) && p.max_prepared_statements.is_some(),
        _ => false,
    })
}

/// A spec as YAML: JSON, with the characters YAML does not allow raw in a stream (DEL,
/// C1) and the Unicode line separators written as `\uXXXX` escapes, which YAML's
/// double-quoted strings read like JSON's.
fn yaml_text(spec: &Value) -> String {
    serde_json::to_string_pretty(spec)
        .unwrap()
        .chars()
        .map(|c| if ('\u{7f}'..='\u{9f}').contains(&c) || c == '\u{2028}' || c == '\u{2029}' { format!("\\u{:04x}", c as u32) } else { c.to_string() })
        .collect()
}

/// Loads and renders one generated spec into `dir`; the spec must load and render.
fn render_case(spec: &Value, file_name: &str, dir: &Path) -> Result<Case, String> {
    let text = yaml_text(spec);
    let analysis = analyze_text(file_name, &text).map_err(|f| format!("a generated spec does not load: {:#?}\n{text}", f.diagnostics.iter().map(|d| &d.message).collect::<Vec<_>>()))?;
    let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: file_name.into(), existing_root: None };
    let artifacts = targets::render_all(&ctx, &[]).map_err(|e| format!("a generated spec that loads does not render: {e:?}\n{text}"))?;
    let mut files = Vec::new();
    for a in &artifacts {
        let path = dir.join(&a.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &a.text).unwrap();
        let kind: &'static str = match a.target {
            "nginx" => "nginx",
            "postgres" => "postgres",
            "pgbouncer" if a.path.ends_with(".ini") => "pgbouncer",
            "redis" if a.path.ends_with("-sentinel.conf") => "sentinel",
            "redis" => "redis",
            "gunicorn" => "gunicorn",
            "puma" => "puma",
            "compose" => "compose",
            "kamal" => "kamal",
            "sysctl" if a.path.ends_with(".conf") => "sysctl",
            _ => continue,
        };
        files.push((kind, a.path.clone(), newest_only(&ctx, a)));
    }
    let mut hosts = BTreeSet::new();
    for service in &analysis.plan.services {
        if let Detail::Nginx(n) = &service.detail {
            hosts.extend(n.upstreams.iter().flat_map(|u| u.servers.iter().map(|(h, _)| h.clone())));
        }
        if service.kind == Kind::Redis {
            hosts.insert(service.name.clone());
            hosts.extend(analysis.plan.machines.iter().flat_map(|m| m.addresses.iter().cloned()));
        }
    }
    hosts.retain(|h| h.parse::<std::net::IpAddr>().is_err());
    Ok(Case { spec: text, dir: dir.to_path_buf(), files, hosts })
}

/// Where shrunk failures are kept: each file is a spec that once failed (its first
/// line names the spec file name as a JSON string), rendered and checked first on
/// every run.
const REGRESSIONS: &str = "tests/fixtures/generated";

/// The kept regressions: (file name of the spec, spec text, fixture path).
fn regressions() -> Vec<(String, String, PathBuf)> {
    let mut out: Vec<(String, String, PathBuf)> = std::fs::read_dir(repo().join(REGRESSIONS))
        .map(|dir| dir.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "yaml")).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let (first, spec) = text.split_once('\n').unwrap_or_else(|| panic!("{} has no spec", path.display()));
            let name = first.strip_prefix("# spec file name: ").and_then(|n| serde_json::from_str::<String>(n).ok());
            let name = name.unwrap_or_else(|| panic!("{}: the first line must be `# spec file name: \"...\"`", path.display()));
            (name, spec.to_string(), path)
        })
        .collect();
    out.sort_by(|a, b| a.2.cmp(&b.2));
    out
}

/// Keeps a shrunk failing spec as a regression fixture; returns its path.
fn keep_regression(file_name: &str, spec: &str) -> PathBuf {
    // FNV-1a of the text names the file: the same failure is kept once.
    let hash = (file_name.bytes().chain(spec.bytes())).fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let path = repo().join(REGRESSIONS).join(format!("{hash:016x}.yaml"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, format!("# spec file name: {}\n{spec}", serde_json::to_string(file_name).unwrap())).unwrap();
    path
}

/// A check of the real programs on a set of cases: one end's servers, or the
/// Python/Ruby validators.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Check {
    End(End),
    Sampled,
}

/// Runs one check over `cases`: (index of the failing case when known, report).
fn run_check(check: Check, root: &Path, work: &Path, cases: &[Case]) -> Vec<(Option<usize>, String)> {
    let mut failures = Vec::new();
    match check {
        Check::End(end) => check_end(end, root, work, cases, &mut failures),
        Check::Sampled => check_sampled(cases, &mut failures),
    }
    failures
}

/// The input proptest draws for one case: dice rolls and a spec file name.
type Input = (Vec<u32>, usize);

/// Shrinks a case a real program refused: proptest re-runs it from its value tree, the
/// property being that `check` accepts every file it renders (a spec that no longer
/// loads or renders fails too), and reports the smallest failing spec.
/// Only the files of the program that refused one (`kind`) are checked again, so each
/// attempt costs one program start.
fn shrink_program_failure<T: ValueTree<Value = Input>>(tree: T, check: Check, kind: &str, root: &Path, work: &Path) -> Option<(String, String, String)> {
    let config = Config { max_shrink_iters: 4000, max_shrink_time: 240_000, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new(config);
    let attempt = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run_one(tree, |(rolls, name)| {
        let spec = build(&mut Dice { rolls: &rolls, at: 0 });
        let dir = work.join(format!("shrink-{}", attempt.fetch_add(1, std::sync::atomic::Ordering::SeqCst)));
        std::fs::create_dir_all(&dir).unwrap();
        let mut case = render_case(&spec, FILE_NAMES[name], &dir.join("case")).map_err(TestCaseError::fail)?;
        case.files.retain(|f| f.0 == kind);
        let failures = run_check(check, root, &dir, std::slice::from_ref(&case));
        if failures.is_empty() { Ok(()) } else { Err(TestCaseError::fail(failures.into_iter().map(|f| f.1).collect::<Vec<_>>().join("\n\n"))) }
    });
    match result {
        Err(TestError::Fail(why, (rolls, name))) => Some((FILE_NAMES[name].to_string(), yaml_text(&build(&mut Dice { rolls: &rolls, at: 0 })), why.to_string())),
        _ => None,
    }
}

/// The reports of one case's failures, together.
fn failures_text(failures: &[(Check, Option<usize>, String)], case: usize) -> String {
    failures.iter().filter(|f| f.1 == Some(case)).map(|f| f.2.as_str()).collect::<Vec<_>>().join("\n")
}

/// Whether a report names a case's file (`FAIL 3:redis/cache.conf ...`, `compose.sh
/// rejected /tmp/.../docker-compose.yml`).
fn report_names(report: &str, path: &str) -> bool {
    report.lines().any(|l| l.split_whitespace().any(|w| w.ends_with(&format!(":{path}")) || w.ends_with(&format!("/{path}"))))
}

/// The seed of this run's cases: HEADROOM_GENERATED_SEED (64 hex digits) replays a
/// run; otherwise a fresh one, printed.
fn run_seed() -> [u8; 32] {
    if let Ok(hex) = std::env::var("HEADROOM_GENERATED_SEED") {
        let bytes: Vec<u8> = (0..hex.len()).step_by(2).filter_map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect();
        return bytes.try_into().expect("HEADROOM_GENERATED_SEED is 64 hex digits");
    }
    let mut seed = [0u8; 32];
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    for (i, b) in nanos.to_le_bytes().iter().chain(std::process::id().to_le_bytes().iter()).enumerate() {
        seed[i % 32] ^= *b;
    }
    seed
}

#[test]
fn every_generated_spec_that_loads_renders_files_its_programs_accept_on_both_ends() {
    let started = std::time::Instant::now();
    let root = trixie_root();
    let work = tempfile::Builder::new().prefix("headroom-generated-").tempdir_in(root.join("tmp")).expect("a temp dir inside the Debian 13 root");
    let cases_wanted: u32 = std::env::var("HEADROOM_GENERATED_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES);
    let seed = run_seed();
    let seed_hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    eprintln!("HEADROOM_GENERATED_SEED={seed_hex} replays this run");
    // The kept regressions first, then the generated cases. Each generated case keeps
    // its value tree, so a failure is shrunk by proptest.
    let mut cases = Vec::new();
    for (i, (name, spec, path)) in regressions().into_iter().enumerate() {
        let value: Value = serde_saphyr::from_str(&spec).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        cases.push(render_case(&value, &name, &work.path().join(format!("kept-{i}"))).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    }
    let kept = cases.len();
    let strategy = (prop::collection::vec(any::<u32>(), 64..400), 0..FILE_NAMES.len());
    let mut generator = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
    let mut trees = Vec::new();
    // Phase 1: every generated spec loads and renders (a failure is shrunk at once).
    for i in 0..cases_wanted {
        let tree = strategy.new_tree(&mut generator).expect("a case");
        let (rolls, name) = tree.current();
        let spec = build(&mut Dice { rolls: &rolls, at: 0 });
        match render_case(&spec, FILE_NAMES[name], &work.path().join(format!("case-{i}"))) {
            Ok(case) => {
                cases.push(case);
                trees.push(Some(tree));
            }
            Err(_) => {
                let result = TestRunner::new(Config { failure_persistence: None, ..Config::default() }).run_one(tree, |(rolls, name)| {
                    let dir = tempfile::tempdir().unwrap();
                    render_case(&build(&mut Dice { rolls: &rolls, at: 0 }), FILE_NAMES[name], dir.path()).map(|_| ()).map_err(TestCaseError::fail)
                });
                if let Err(TestError::Fail(why, (rolls, name))) = result {
                    let path = keep_regression(FILE_NAMES[name], &yaml_text(&build(&mut Dice { rolls: &rolls, at: 0 })));
                    panic!("a generated spec does not load or render; shrunk and kept as {}:\n{why}", path.display());
                }
                panic!("case {i} failed once and passed when run again");
            }
        }
    }
    let files: usize = cases.iter().map(|c| c.files.len()).sum();
    // Phase 2: the real programs, batched, on both ends.
    let mut failures = Vec::new();
    let rendered = started.elapsed();
    let mut timings = Vec::new();
    for check in [Check::End(End::Oldest), Check::End(End::Newest), Check::Sampled] {
        let at = started.elapsed();
        failures.extend(run_check(check, &root, work.path(), &cases).into_iter().map(|(case, text)| (check, case, text)));
        timings.push(format!("{check:?} {:.1?}", started.elapsed() - at));
    }
    eprintln!("timings: render {rendered:.1?}, {}", timings.join(", "));
    if !failures.is_empty() {
        let report: Vec<String> = failures.iter().map(|f| f.2.clone()).collect();
        // Shrink the first failure of a generated case, with that program in the property.
        let shrunk = failures.iter().find_map(|(check, case, _)| {
            let c = case.filter(|&c| c >= kept)?;
            // The program: the kind of the file the report names.
            let kind = cases[c].files.iter().find(|f| report_names(&failures_text(&failures, c), &f.1)).map(|f| f.0)?;
            let tree = trees[c - kept].take()?;
            let (name, spec, why) = shrink_program_failure(tree, *check, kind, &root, work.path())?;
            Some(format!("shrunk to this spec (kept as {}, checked first on every run):\n{spec}\n--- failure\n{why}", keep_regression(&name, &spec).display()))
        });
        let kept_dir = work.keep();
        panic!(
            "{} of {files} checks failed (files kept in {}; HEADROOM_GENERATED_SEED={seed_hex}):\n\n{}\n\n{}",
            report.len(),
            kept_dir.display(),
            report.join("\n\n"),
            shrunk.unwrap_or_else(|| "(no generated case to shrink)".into())
        );
    }
    let kinds: BTreeSet<&str> = cases.iter().flat_map(|c| c.files.iter().map(|f| f.0)).collect();
    let pinned = cases.iter().flat_map(|c| &c.files).filter(|f| f.2).count();
    assert!(pinned > 0, "no generated case pinned a version with a gated setting");
    for kind in ["nginx", "postgres", "pgbouncer", "redis", "sentinel", "gunicorn", "puma", "compose", "kamal", "sysctl"] {
        assert!(kinds.contains(kind), "no generated case rendered a {kind} file: the generator is too narrow");
    }
    let mut per_kind = std::collections::BTreeMap::new();
    for f in cases.iter().flat_map(|c| &c.files) {
        *per_kind.entry(f.0).or_insert(0) += 1;
    }
    eprintln!("{} generated specs ({kept} kept regressions), {files} rendered files checked on both ends in {:.0?}: {per_kind:?}", cases.len(), started.elapsed());
}
