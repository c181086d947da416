//! `headroom observe` against real servers on 127.0.0.1, started from the files `render`
//! writes (see `live_support`): PgBouncer's admin console (clients, waiting clients,
//! server connections, maxwait, settings), nginx stub_status, and the ways out of a
//! watch; each live number is compared with what the server itself reports, each
//! threshold is crossed for real (exit 1), and no password given on the command line or
//! in the environment is printed, in text, JSON, help or error messages.
//!
//! Every process is stopped by PID when its guard drops, also when an assertion fails.

mod live_support;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use live_support::*;

const PASSWORD: &str = "live-secret";
/// The admin console password: distinctive, so any output holding it is caught.
const ADMIN_PASSWORD: &str = "console-pw-4417";

fn sum(pools: &[std::collections::BTreeMap<String, String>], column: &str) -> u64 {
    pools.iter().filter(|p| p["database"] == "app").map(|p| p[column].parse::<u64>().unwrap()).sum()
}

fn live(observation: &serde_json::Value, source: &str, what: &str) -> f64 {
    reading(observation, source, what)["live"].as_f64().unwrap()
}

fn past(observation: &serde_json::Value, source: &str, what: &str) -> bool {
    reading(observation, source, what)["past"] == true
}

/// `headroom observe SPEC ARGS...` in human form: (exit code, stdout + stderr).
fn observe_text(spec: &std::path::Path, args: &[String], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_headroom")).arg("observe").arg(spec).args(args).envs(env.iter().copied()).output().unwrap();
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn observe_reads_pgbouncers_console_and_fails_on_waiting_clients_and_a_full_client_budget() {
    let _serial = serial();
    let dir = temp_dir("observe-pgbouncer");
    let mut pg = Postgres::init(dir.path());
    let spec = fixture("pgbouncer-over");
    let rendered = render(&spec, &dir.path().join("r"));
    pg.start(&rendered.join("postgres/db.conf"));
    pg.create_app(PASSWORD);
    let (mut bouncer, port) = start_pgbouncer(&rendered.join("pgbouncer/pgbouncer.ini"), dir.path(), pg.port, &[("app", PASSWORD), ("postgres", ADMIN_PASSWORD)]);
    let console = vec!["--pgbouncer".to_string(), format!("postgresql://postgres:{ADMIN_PASSWORD}@127.0.0.1:{port}/pgbouncer")];
    let app_url = format!("postgresql://app:{PASSWORD}@127.0.0.1:{port}/app");

    // Idle: the rendered settings are the plan's, nothing is used.
    let (code, idle, stderr) = observe(&spec, &console);
    assert_eq!(code, 0, "an idle PgBouncer is not within the plan: {idle}\n{stderr}");
    assert_eq!(live(&idle, "pgbouncer", "client connections"), 0.0);
    assert_eq!(reading(&idle, "pgbouncer", "client connections")["allowed"], 100.0, "max_client_conn");
    assert_eq!(reading(&idle, "pgbouncer", "maxwait (s)")["allowed"], 2.0, "query_wait_timeout");
    assert!(idle["notes"].as_array().unwrap().iter().all(|n| !n.as_str().unwrap().contains("runs with")), "the rendered settings differ from the plan: {idle}");

    // Seven clients hold the seven server connections postgres accepts.
    let holders: Vec<_> = (0..7).map(|_| std::thread::spawn(move || psql(port, "app", "app", Some(PASSWORD), "SELECT pg_sleep(15)"))).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while sum(&show_pools(port, ADMIN_PASSWORD), "sv_active") < 7 {
        assert!(Instant::now() < deadline, "the seven holders got no server connections: {:?}", show_pools(port, ADMIN_PASSWORD));
        std::thread::sleep(Duration::from_millis(50));
    }
    // A steady state: observe reads what SHOW POOLS shows before and after it.
    let before = show_pools(port, ADMIN_PASSWORD);
    let (code, held, stderr) = observe(&spec, &[console.clone(), vec!["--interval".into(), "0.3".into()]].concat());
    let after = show_pools(port, ADMIN_PASSWORD);
    assert_eq!(code, 0, "7 busy clients of max_client_conn 100 and nobody waiting is within the plan: {held}\n{stderr}");
    for column in ["cl_active", "sv_active"] {
        assert_eq!(sum(&before, column), 7, "{column} before: {before:?}");
        assert_eq!(sum(&after, column), 7, "{column} after: {after:?}");
    }
    assert_eq!(live(&held, "pgbouncer", "client connections"), 7.0, "observe and SHOW POOLS disagree (cl_active + cl_waiting): {held}");
    assert_eq!(live(&held, "pgbouncer", "server connections"), 7.0, "observe and SHOW POOLS disagree (sv_*): {held}");
    assert_eq!(live(&held, "pgbouncer", "cl_waiting (both samples)"), 0.0);

    // One client more than server connections, again and again (each waits until
    // query_wait_timeout, 2 s, drops it): cl_waiting in both samples, and the oldest
    // wait past half the timeout, each exits 1.
    let waiters = std::thread::spawn(move || {
        (0..10)
            .map(|_| {
                let child = Command::new(pgbin().join("psql"))
                    .args(["-X", "-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "app", "-d", "app", "-c", "SELECT 1"])
                    .env("PGPASSWORD", PASSWORD)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("psql");
                std::thread::sleep(Duration::from_millis(400));
                child
            })
            .collect::<Vec<_>>()
    });
    std::thread::sleep(Duration::from_millis(600));
    let (code, waiting, stderr) = observe(&spec, &console);
    let pools = show_pools(port, ADMIN_PASSWORD);
    let waiters: Vec<_> = waiters.join().unwrap().into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    eprintln!("observe with waiting clients: {}", serde_json::to_string(&waiting["readings"]).unwrap());
    assert_eq!(code, 1, "clients waited in both samples: {waiting}\n{stderr}");
    assert!(past(&waiting, "pgbouncer", "cl_waiting (both samples)"), "{waiting}");
    assert!(live(&waiting, "pgbouncer", "cl_waiting (both samples)") >= 1.0);
    assert!(sum(&pools, "cl_waiting") >= 1, "SHOW POOLS right after shows nobody waiting: {pools:?}");
    let maxwait = live(&waiting, "pgbouncer", "maxwait (s)");
    assert!(maxwait > 1.0 && maxwait < 4.0, "the oldest of clients started 0.4 s apart and dropped after 2 s waited {maxwait} s");
    assert!(past(&waiting, "pgbouncer", "maxwait (s)"), "{waiting}");
    let clients = live(&waiting, "pgbouncer", "client connections");
    assert_eq!(clients, 7.0 + live(&waiting, "pgbouncer", "cl_waiting (both samples)"), "clients are the 7 holders and the waiters: {waiting}");
    assert!(!past(&waiting, "pgbouncer", "client connections"));
    // PgBouncer may be trying an eighth server login, which postgres refuses.
    let servers = live(&waiting, "pgbouncer", "server connections");
    assert!((7.0..=8.0).contains(&servers), "{servers} server connections: {waiting}");
    // Every waiter was dropped by PgBouncer's query_wait_timeout (libpq reports the
    // FATAL message or the closed connection; PgBouncer's log says which).
    for out in &waiters {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && (stderr.contains("query_wait_timeout") || stderr.contains("server closed the connection unexpectedly")),
            "a waiter ended otherwise: {stderr}"
        );
    }
    let log = std::fs::read_to_string(dir.path().join("pgbouncer.log")).unwrap_or_default() + &bouncer.log_text();
    let timeouts = log.lines().filter(|l| l.contains("query_wait_timeout")).count();
    assert!(timeouts >= waiters.len(), "pgbouncer logged {timeouts} query_wait_timeout for {} waiters:\n{log}", waiters.len());
    for h in holders {
        h.join().unwrap();
    }

    // Past 80% of max_client_conn 100: 81 idle clients logged in.
    let clients: Vec<postgres::Client> = (0..81).map(|i| postgres::Client::connect(&app_url, postgres::NoTls).unwrap_or_else(|e| panic!("client {i}: {e}"))).collect();
    let (code, full, stderr) = observe(&spec, &console);
    let pools = show_pools(port, ADMIN_PASSWORD);
    drop(clients);
    bouncer.assert_running();
    assert_eq!(code, 1, "81 clients of max_client_conn 100 is past 80%: {full}\n{stderr}");
    assert_eq!(live(&full, "pgbouncer", "client connections"), 81.0, "{full}");
    assert_eq!(sum(&pools, "cl_active") + sum(&pools, "cl_waiting"), 81, "{pools:?}");
    assert!(past(&full, "pgbouncer", "client connections"));
    assert_eq!(reading(&full, "pgbouncer", "client connections")["threshold"], 80.0);

    // The same reading in text: the admin password is nowhere.
    let (code, text) = observe_text(&spec, &console, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("pgbouncer") && text.contains("cl_waiting") && text.contains("within the plan"), "{text}");
    for output in [text, idle.to_string(), held.to_string(), waiting.to_string(), full.to_string()] {
        assert!(!output.contains(ADMIN_PASSWORD) && !output.contains(PASSWORD), "a password was printed:\n{output}");
    }

    // A wrong password: exit 2, the error names the console without the password.
    let wrong = "wrong-pw-8812";
    let (code, text) = observe_text(&spec, &["--pgbouncer".into(), format!("postgresql://postgres:{wrong}@127.0.0.1:{port}/pgbouncer")], &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains(&format!("postgresql://postgres:***@127.0.0.1:{port}/pgbouncer")) && !text.contains(wrong), "{text}");
}

/// One GET of nginx's stub_status: its `Active connections`.
fn stub_status_active(port: u16) -> u64 {
    let (status, body) = get(port, "/nginx-status").expect("nginx answers");
    assert_eq!(status, 200, "{body}");
    body.lines().next().and_then(|l| l.strip_prefix("Active connections:")).unwrap().trim().parse().unwrap()
}

#[test]
fn observe_reads_nginx_and_fails_past_its_connection_budget_and_watch_stops_with_its_reader() {
    let _serial = serial();
    let dir = temp_dir("observe-nginx");
    let spec = fixture("direct-fits");
    let rendered = render(&spec, &dir.path().join("r"));
    // Only stub_status is read: the upstream need not run.
    let (mut nginx, port) = start_nginx(&rendered, dir.path(), free_port());
    let status = vec!["--nginx-status".to_string(), format!("http://127.0.0.1:{port}/nginx-status")];

    // Idle: the only connection is the status request itself, as nginx reports it.
    assert_eq!(stub_status_active(port), 1);
    let (code, idle, stderr) = observe(&spec, &status);
    assert_eq!(code, 0, "{idle}\n{stderr}");
    assert_eq!(live(&idle, "nginx", "client connections"), 1.0, "{idle}");
    // worker_processes 1 x worker_connections 512 / 2 per proxied request.
    assert_eq!(reading(&idle, "nginx", "client connections")["allowed"], 256.0);

    // 210 open client connections: past 80% of 256.
    let held: Vec<TcpStream> = (0..210).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while stub_status_active(port) < 211 {
        assert!(Instant::now() < deadline, "nginx counts {} active connections of 211", stub_status_active(port));
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, full, stderr) = observe(&spec, &status);
    let reported = stub_status_active(port);
    drop(held);
    nginx.assert_running();
    assert_eq!(code, 1, "211 connections of 256 is past 80%: {full}\n{stderr}");
    assert_eq!(live(&full, "nginx", "client connections"), reported as f64, "observe and stub_status disagree: {full}");
    assert!(past(&full, "nginx", "client connections"));

    // --watch: one observation after another until the reader goes away.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_headroom"))
        .arg("observe")
        .arg(&spec)
        .args(&status)
        .args(["--interval", "0.2", "--watch", "0.3", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = Killer(watch.id());
    let mut reader = BufReader::new(watch.stdout.take().unwrap());
    let mut observations = Vec::new();
    let mut text = String::new();
    while observations.len() < 3 {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "observe --watch stopped after {} observations", observations.len());
        text.push_str(&line);
        if line == "}\n" {
            observations.push(serde_json::from_str::<serde_json::Value>(&std::mem::take(&mut text)).unwrap());
        }
    }
    // Each is a whole observation: its two samples 0.2 s apart, only the status
    // request itself connected.
    for observation in &observations {
        assert_eq!(live(observation, "nginx", "client connections"), 1.0, "{observation}");
        assert!(observation["interval"].as_f64().unwrap() >= 0.2, "{observation}");
    }
    drop(reader);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = watch.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "observe --watch kept running after its stdout was closed");
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(guard);
    assert!(!status.success(), "observe --watch ended with {status} after its reader left");
}

/// Kills a process by PID when dropped (a watch that does not stop by itself).
struct Killer(u32);

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", &self.0.to_string()]).status();
    }
}

#[test]
fn observe_never_prints_a_password() {
    let _serial = serial();
    let dir = temp_dir("observe-secrets");
    let spec = fixture("direct-fits");
    let rendered = render(&spec, &dir.path().join("r"));
    let (_redis, redis_port) = start_redis(&rendered.join("redis/cache.conf"), dir.path());
    let secret = "s3cret-9d2f";
    let closed = free_port();

    // Help shows which variables are read, not their values.
    let out = Command::new(env!("CARGO_BIN_EXE_headroom"))
        .args(["observe", "--help"])
        .env("HEADROOM_POSTGRES_URL", format!("postgresql://app:{secret}@127.0.0.1:{closed}/app"))
        .env("HEADROOM_REDIS_URL", format!("redis://:{secret}@127.0.0.1:{redis_port}"))
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && help.contains("HEADROOM_POSTGRES_URL") && !help.contains(secret), "{help}");

    // Every failure names its endpoint with the password hidden, from flags and from
    // the environment, in text and JSON.
    type Failure = (Vec<String>, Vec<(&'static str, String)>, String);
    let failures: Vec<Failure> = vec![
        // Nothing listens.
        (vec!["--postgres".into(), format!("postgresql://app:{secret}@127.0.0.1:{closed}/app")], vec![], format!("postgresql://app:***@127.0.0.1:{closed}/app")),
        (vec![], vec![("HEADROOM_POSTGRES_URL", format!("postgresql://127.0.0.1:{closed}/app?user=app&password={secret}"))], "password=***".into()),
        (vec!["--nginx-status".into(), format!("http://admin:{secret}@127.0.0.1:{closed}/nginx-status")], vec![], format!("http://admin:***@127.0.0.1:{closed}/nginx-status")),
        (vec![], vec![("HEADROOM_REDIS_URL", format!("redis://default:{secret}@127.0.0.1:{closed}/0"))], format!("redis://default:***@127.0.0.1:{closed}/0")),
        // A libpq keyword string is not echoed at all.
        (vec![], vec![("HEADROOM_POSTGRES_URL", format!("host=127.0.0.1 port={closed} password={secret}"))], "--postgres takes a URL".into()),
    ];
    for (args, env, shown) in &failures {
        for format in ["human", "json"] {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_headroom"));
            cmd.arg("observe").arg(&spec).args(args).args(["--format", format, "--interval", "0.1"]);
            for (k, v) in env {
                cmd.env(k, v);
            }
            let out = cmd.output().unwrap();
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {text}");
            assert!(!text.contains(secret), "a password was printed for {args:?} {env:?}:\n{text}");
            assert!(text.contains(shown.as_str()), "the error does not name the endpoint as {shown}:\n{text}");
        }
    }

    // With a password set (the rendered redis.conf has none: `default` accepts any), the
    // right one reads INFO and is printed nowhere; a wrong one is refused (exit 2) and is
    // not printed either.
    let cli = |args: &[&str]| Command::new("redis-cli").args(["-p", &redis_port.to_string()]).args(args).output().unwrap();
    assert!(cli(&["CONFIG", "SET", "requirepass", secret]).status.success());
    let with_password = vec!["--redis".to_string(), format!("redis://:{secret}@127.0.0.1:{redis_port}/0")];
    let (code, ok, stderr) = observe(&spec, &with_password);
    assert_eq!(code, 0, "{ok}\n{stderr}");
    assert_eq!(reading(&ok, "redis", "connected clients")["allowed"], 20.0, "{ok}");
    let (code, text) = observe_text(&spec, &with_password, &[]);
    assert_eq!(code, 0, "{text}");
    for output in [ok.to_string(), stderr, text] {
        assert!(!output.contains(secret), "a password was printed:\n{output}");
    }
    let wrong = "not-the-pw-5531";
    let (code, text) = observe_text(&spec, &["--redis".into(), format!("redis://:{wrong}@127.0.0.1:{redis_port}")], &[]);
    assert_eq!(code, 2, "{text}");
    assert!(!text.contains(wrong) && text.contains(&format!("redis://:***@127.0.0.1:{redis_port}")), "{text}");
    let (code, text) = observe_text(&spec, &["--redis".into(), format!("redis://127.0.0.1:{redis_port}")], &[]);
    assert_eq!(code, 2, "a Redis that requires a password was read without one: {text}");
    let _ = cli(&["-a", secret, "--no-auth-warning", "CONFIG", "SET", "requirepass", ""]);
}

#[test]
fn observe_fails_past_redis_memory_budget() {
    let _serial = serial();
    let dir = temp_dir("observe-redis-memory");
    let spec = fixture("direct-fits");
    let rendered = render(&spec, &dir.path().join("r"));
    let (_redis, port) = start_redis(&rendered.join("redis/cache.conf"), dir.path());
    let redis = vec!["--redis".to_string(), format!("redis://127.0.0.1:{port}")];
    let cli = |args: &[&str]| -> String {
        let out = Command::new("redis-cli").args(["-p", &port.to_string()]).args(args).output().unwrap();
        assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let used_memory = || -> f64 { cli(&["INFO", "memory"]).lines().find_map(|l| l.strip_prefix("used_memory:")).unwrap().trim().parse().unwrap() };

    let (code, empty, stderr) = observe(&spec, &redis);
    assert_eq!(code, 0, "{empty}\n{stderr}");
    assert_eq!(reading(&empty, "redis", "used memory (bytes)")["allowed"], 67108864.0, "maxmemory 64MiB");

    // 56 values of 1 MiB: past 80% of maxmemory (allkeys-lru keeps it under 64 MiB).
    cli(&["EVAL", "for i = 1, 56 do redis.call('SET', 'fill:' .. i, string.rep('x', 1048576)) end return 1", "0"]);
    let before = used_memory();
    let (code, full, stderr) = observe(&spec, &redis);
    let after = used_memory();
    assert_eq!(code, 1, "{before} bytes of 64 MiB is past 80%: {full}\n{stderr}");
    assert!(past(&full, "redis", "used memory (bytes)"), "{full}");
    let live_bytes = live(&full, "redis", "used memory (bytes)");
    assert!(live_bytes >= before.min(after) * 0.99 && live_bytes <= before.max(after) * 1.01, "observe read {live_bytes} bytes, INFO {before} then {after}");
    assert!(live_bytes > 0.8 * 67108864.0);
}

#[test]
fn observe_fails_when_nginx_serves_more_than_the_planned_rate() {
    let _serial = serial();
    let dir = temp_dir("observe-nginx-rate");
    let spec = fixture("direct-fits");
    let rendered = render(&spec, &dir.path().join("r"));
    let (_nginx, port) = start_nginx(&rendered, dir.path(), free_port());
    let status = vec!["--nginx-status".to_string(), format!("http://127.0.0.1:{port}/nginx-status"), "--interval".into(), "1".into()];

    // Two clients asking for the status page every 10 ms: about 200 requests per second,
    // far more than the plan's rate (the page needs no upstream).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    assert!(get(port, "/nginx-status").is_some_and(|(s, _)| s == 200));
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        })
        .collect();
    let started = Instant::now();
    let (code, busy, stderr) = observe(&spec, &status);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let generated = sent.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    let rate = reading(&busy, "nginx", "requests/s");
    eprintln!("observe saw {} rps past the planned {} ({generated:.0} rps sent)", rate["live"], rate["threshold"]);
    assert_eq!(code, 1, "{busy}\n{stderr}");
    assert!(rate["past"] == true && rate["live"].as_f64().unwrap() > rate["threshold"].as_f64().unwrap(), "{busy}");
    assert_eq!(rate["threshold"], headroom_json(&["plan"], &spec)["capacity"]["planned_rps"], "the threshold is the plan's rate");
    // The count between the samples is the clients' requests (and the samples' own).
    assert!(rate["live"].as_f64().unwrap() <= generated * 1.5 + 5.0, "observe saw {} rps, {generated:.0} rps were sent", rate["live"]);
}
