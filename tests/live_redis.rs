//! Redis as rendered, run for real on loopback: the servers and the one-shot commands
//! come out of the rendered docker-compose file as docker-compose itself reads it
//! (tests/validators/compose_resolved.py), and run here without containers. Each node
//! gets its own loopback address (127.0.0.x, the same port, as containers on one
//! network have) and a temp directory; container host names resolve through
//! libnss_wrapper (never /etc/hosts). Every process is stopped by its PID.
//!
//! - A Redis Cluster of 3 masters with a replica each forms from the rendered
//!   `cluster-init` command, which resolves the nodes' names to addresses at run time
//!   (`redis-cli --cluster create` refuses host names); a second run leaves it alone.
//!   The nodes require the password compose fills in from `CACHE_PASSWORD`; every
//!   redis-cli here (and the one-shot) gets it as compose gives it, `REDISCLI_AUTH`.
//! - A standalone redis with its password from the environment answers a client that
//!   has it and refuses one without, also from another address than loopback's.
//! - A sentinel authenticates to its master with the password (`auth-pass` from the
//!   environment); without it, it cannot.

use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use headroom::analysis::analyze_text;
use headroom::targets::{self, Context};

mod deploy_support;
use deploy_support::{compose_resolved, nss_wrapper, require_program, run, text};

/// Servers started by the test, stopped by PID when it ends (also on a panic).
#[derive(Default)]
struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A port free on every one of `hosts` (and, for a cluster, its bus port + 10000).
fn free_port(hosts: &[Ipv4Addr], bus: bool) -> u16 {
    for _ in 0..200 {
        let candidate = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
        if bus && candidate > 55535 {
            continue;
        }
        let ports: Vec<u16> = if bus { vec![candidate, candidate + 10000] } else { vec![candidate] };
        let held: Vec<TcpListener> = hosts.iter().flat_map(|h| ports.iter().map(move |p| (*h, *p))).filter_map(|a| TcpListener::bind(a).ok()).collect();
        if held.len() == hosts.len() * ports.len() {
            return candidate;
        }
    }
    panic!("no port free on {hosts:?}");
}

/// Renders a spec and returns docker-compose's own reading of the compose file.
fn rendered_compose(spec: &str, out: &Path, env: &[(String, String)]) -> serde_json::Value {
    let analysis = analyze_text("capacity.yaml", spec).unwrap_or_else(|f| panic!("spec does not load: {:#?}", f.diagnostics));
    let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
    let artifacts = targets::render_all(&ctx, &[]).unwrap_or_else(|e| panic!("render: {e:?}"));
    for a in &artifacts {
        let path = out.join(&a.path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, &a.text).unwrap();
    }
    let compose = artifacts.iter().find(|a| a.target == "compose").expect("a compose file");
    compose_resolved(&out.join(&compose.path), env)
}

/// A password with characters a shell, a URL or a config file would mangle.
const PASSWORD: &str = "s3cr$t pass'\"word#;";

fn password_env() -> Vec<(String, String)> {
    vec![("CACHE_PASSWORD".to_string(), PASSWORD.to_string())]
}

/// The environment compose gives one service (its `environment:` as resolved).
fn environment(service: &serde_json::Value) -> Vec<(String, String)> {
    service["environment"].as_object().map_or_else(Vec::new, |env| env.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
}

fn argv(service: &serde_json::Value) -> Vec<String> {
    service["command"].as_array().expect("a command list").iter().map(|w| w.as_str().unwrap().to_string()).collect()
}

/// Starts a rendered redis-server command on `host:port`, with its data in `dir`.
fn start_redis(command: &[String], host: Ipv4Addr, dir: &Path, servers: &mut Servers) {
    assert_eq!(command[0], "redis-server", "{command:?}");
    fs::create_dir_all(dir).unwrap();
    // Only where it listens and where it keeps its data change (Redis enters `dir` as
    // it reads it, so the container's /data is replaced, not overridden).
    let mut args: Vec<String> = command[1..].to_vec();
    for (option, value) in [("--bind", host.to_string()), ("--dir", dir.display().to_string())] {
        let at = args.iter().position(|a| a == option).unwrap_or_else(|| panic!("the rendered command has no {option}: {command:?}"));
        args[at + 1] = value;
    }
    let child = Command::new("redis-server")
        .args(&args)
        .args(["--logfile", &dir.join("redis.log").display().to_string(), "--daemonize", "no"])
        // A container has one address; on loopback, outgoing cluster-bus connections
        // would leave from 127.0.0.1 unless they are bound to the node's own.
        .args(["--bind-source-addr", &host.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts");
    servers.0.push(child);
}

/// redis-cli as a client with the password (REDISCLI_AUTH, as compose hands it over).
fn redis_cli(host: Ipv4Addr, port: u16, args: &[&str]) -> String {
    let out = run(Command::new("redis-cli").args(["-h", &host.to_string(), "-p", &port.to_string()]).args(args).env("REDISCLI_AUTH", PASSWORD));
    text(&out).replace('\r', "")
}

/// redis-cli as a client without a password.
fn redis_cli_anonymous(host: Ipv4Addr, port: u16, args: &[&str]) -> String {
    let out = run(Command::new("redis-cli").args(["-h", &host.to_string(), "-p", &port.to_string()]).args(args).env_remove("REDISCLI_AUTH"));
    text(&out).replace('\r', "")
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < timeout, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_three_master_cluster_forms_from_the_rendered_files() {
    require_program("redis-server");
    require_program("redis-cli");
    require_program("getent");
    let hosts: Vec<Ipv4Addr> = (11..=16).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
    let port = free_port(&hosts, true);
    let spec = format!(
        "version: 1\nname: live\nservices:\n  cache: {{ kind: redis, mode: cluster, masters: 3, replicas_per_master: 1, port: {port}, maxmemory: 64mb, maxmemory_policy: allkeys-lru }}\ndeploy:\n  compose: {{}}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let compose = rendered_compose(&spec, &dir.path().join("out"), &password_env());

    let mut servers = Servers::default();
    let mut names_file = String::new();
    for (i, host) in hosts.iter().enumerate() {
        let name = format!("cache-node-{}", i + 1);
        start_redis(&argv(&compose[name.as_str()]), *host, &dir.path().join(&name), &mut servers);
        names_file.push_str(&format!("{host} {name}\n"));
    }
    for host in &hosts {
        wait_for(&format!("redis on {host}:{port} answers"), Duration::from_secs(10), || redis_cli(*host, port, &["ping"]).trim() == "PONG");
    }
    let names = dir.path().join("hosts");
    fs::write(&names, names_file).unwrap();

    // The rendered one-shot, as compose would run it, with the nodes' names resolvable.
    let init = argv(&compose["cache-cluster-init"]);
    let create = || {
        run(Command::new(&init[0])
            .args(&init[1..])
            .env_remove("REDISCLI_AUTH")
            .envs(environment(&compose["cache-cluster-init"]))
            .env("LD_PRELOAD", nss_wrapper())
            .env("NSS_WRAPPER_HOSTS", &names)
            .stdin(Stdio::null()))
    };
    let first = create();
    assert!(first.status.success(), "the rendered cluster-init failed:\n{}", text(&first));
    let shown = text(&first);
    for host in &hosts {
        assert!(shown.contains(&format!("{host}:{port}")), "cluster-init did not use the resolved address of {host}:\n{shown}");
    }

    assert!(redis_cli_anonymous(hosts[0], port, &["ping"]).contains("NOAUTH"), "a node answers a client without the password");

    wait_for("cluster_state:ok", Duration::from_secs(30), || redis_cli(hosts[0], port, &["cluster", "info"]).contains("cluster_state:ok"));
    let info = redis_cli(hosts[0], port, &["cluster", "info"]);
    assert!(info.contains("cluster_size:3"), "3 masters hold the slots:\n{info}");
    assert!(info.contains("cluster_known_nodes:6"), "6 nodes:\n{info}");
    assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
    // Replicas are attached after the join; node 1 learns of them by gossip.
    let roles = |nodes: &str, role: &str| nodes.lines().filter(|l| l.split(' ').nth(2).is_some_and(|flags| flags.split(',').any(|f| f == role))).count();
    wait_for("3 masters and 3 replicas", Duration::from_secs(30), || {
        let nodes = redis_cli(hosts[0], port, &["cluster", "nodes"]);
        roles(&nodes, "master") == 3 && roles(&nodes, "slave") == 3
    });
    let nodes = redis_cli(hosts[0], port, &["cluster", "nodes"]);

    // Keys land on every master and read back through redirections.
    for key in ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"] {
        assert_eq!(redis_cli(hosts[0], port, &["-c", "set", key, key]).trim(), "OK");
        assert_eq!(redis_cli(hosts[3], port, &["-c", "get", key]).trim(), key);
    }

    // A restart of the one-shot leaves the formed cluster alone.
    let again = create();
    assert!(again.status.success() && text(&again).contains("already formed"), "second cluster-init:\n{}", text(&again));
    assert!(redis_cli(hosts[0], port, &["cluster", "info"]).contains("cluster_known_nodes:6"));
    eprintln!("cluster formed on {hosts:?} port {port}:\n{nodes}");
}

#[test]
fn the_password_from_the_environment_lets_clients_in_and_keeps_others_out() {
    require_program("redis-server");
    require_program("redis-cli");
    // The machine's own non-loopback address, when it has one: protected mode and the
    // password are about clients that do not come from loopback.
    let outside: Option<Ipv4Addr> = Command::new("hostname")
        .arg("-I")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|t| t.split_whitespace().find_map(|a| a.parse::<Ipv4Addr>().ok().filter(|ip| !ip.is_loopback())));
    let mut hosts = vec![Ipv4Addr::new(127, 0, 0, 21)];
    hosts.extend(outside);
    let port = free_port(&hosts, false);
    let spec = format!(
        "version: 1\nname: live\nservices:\n  web: {{ kind: gunicorn, uses: {{ cache: {{ pool: 4 }} }} }}\n  cache: {{ kind: redis, port: {port}, maxmemory: 16mb }}\ndeploy:\n  compose: {{}}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let compose = rendered_compose(&spec, &dir.path().join("out"), &password_env());
    // The client gets the password's variable by reference, with the same value.
    assert!(environment(&compose["web"]).contains(&("CACHE_PASSWORD".to_string(), PASSWORD.to_string())), "{}", compose["web"]);
    let command = argv(&compose["cache"]);
    assert!(command.windows(2).any(|w| w[0] == "--protected-mode" && w[1] == "yes"), "{command:?}");
    let mut servers = Servers::default();
    // Listen on every address (as in a container), then reach it through each.
    let mut args = command.clone();
    let at = args.iter().position(|a| a == "--bind").unwrap();
    for (i, host) in hosts.iter().enumerate().skip(1) {
        args.insert(at + 1 + i, host.to_string());
    }
    start_redis(&args, hosts[0], &dir.path().join("cache"), &mut servers);
    wait_for("redis answers with the password", Duration::from_secs(10), || redis_cli(hosts[0], port, &["ping"]).trim() == "PONG");
    for host in &hosts {
        assert_eq!(redis_cli(*host, port, &["ping"]).trim(), "PONG", "with the password through {host}");
        let refused = redis_cli_anonymous(*host, port, &["set", "k", "v"]);
        assert!(refused.contains("NOAUTH"), "without the password through {host}: {refused}");
        let wrong = run(Command::new("redis-cli").args(["-h", &host.to_string(), "-p", &port.to_string(), "ping"]).env("REDISCLI_AUTH", "guess"));
        assert!(!text(&wrong).contains("PONG"), "a wrong password through {host}: {}", text(&wrong));
    }
    assert_eq!(redis_cli(hosts[0], port, &["get", "k"]).trim(), "", "the refused write changed nothing");

    // The rendered health check passes only for a client that holds the password: a
    // NOAUTH or WRONGPASS reply is unhealthy, although `redis-cli ping` exits 0 on it.
    let test = &compose["cache"]["healthcheck"]["test"];
    assert_eq!(test[0], "CMD-SHELL", "{test}");
    let probe = test[1].as_str().unwrap().replacen("redis-cli", &format!("redis-cli -h {}", hosts[0]), 1);
    let health = |auth: Option<&str>| {
        let mut sh = Command::new("sh");
        sh.args(["-c", &probe]).env_remove("REDISCLI_AUTH");
        if let Some(auth) = auth {
            sh.env("REDISCLI_AUTH", auth);
        }
        sh.status().unwrap().success()
    };
    assert!(health(Some(PASSWORD)), "the health check fails with the password: {probe}");
    assert!(!health(Some("guess")), "the health check passes with a wrong password: {probe}");
    assert!(!health(None), "the health check passes without the password: {probe}");
}

/// Starts the rendered sentinel command (its `sh -c` line, with the container's paths
/// replaced by the test's and a free port) with `env`.
fn start_sentinel(command: &[String], conf: &Path, dir: &Path, host: Ipv4Addr, port: u16, env: &[(String, String)], hosts_file: &Path) -> Child {
    assert_eq!(&command[..2], ["sh", "-c"], "{command:?}");
    fs::create_dir_all(dir).unwrap();
    let line = command[2]
        .replace("/usr/local/etc/redis/sentinel.conf", &conf.display().to_string())
        .replace("/tmp/sentinel.conf", &dir.join("sentinel.conf").display().to_string());
    let line = format!("{line} --port {port} --bind {host} --dir {} --logfile {}", dir.display(), dir.join("sentinel.log").display());
    Command::new("sh")
        .args(["-c", &line])
        .env_remove("REDISCLI_AUTH")
        .envs(env.iter().cloned())
        .env("LD_PRELOAD", nss_wrapper())
        .env("NSS_WRAPPER_HOSTS", hosts_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the sentinel starts")
}

/// Sentinel mode: the rendered sentinel authenticates to a master that requires the
/// password (`--sentinel auth-pass` from the environment): the master lists the
/// sentinel's named connection. The same sentinel without the password never gets to
/// name it (NOAUTH), so the check can fail.
#[test]
fn the_sentinel_authenticates_to_its_master_with_the_password_from_the_environment() {
    require_program("redis-server");
    require_program("redis-cli");
    let (master_host, sentinel_host) = (Ipv4Addr::new(127, 0, 0, 31), Ipv4Addr::new(127, 0, 0, 32));
    let port = free_port(&[master_host], false);
    let sentinel_port = free_port(&[sentinel_host], false);
    let spec = format!("version: 1\nname: live\nservices:\n  cache: {{ kind: redis, mode: sentinel, sentinels: 3, port: {port}, maxmemory: 16mb }}\ndeploy:\n  compose: {{}}\n");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let compose = rendered_compose(&spec, &out, &password_env());
    let mut servers = Servers::default();
    start_redis(&argv(&compose["cache"]), master_host, &dir.path().join("master"), &mut servers);
    wait_for("the master answers", Duration::from_secs(10), || redis_cli(master_host, port, &["ping"]).trim() == "PONG");
    let hosts = dir.path().join("hosts");
    fs::write(&hosts, format!("{master_host} cache\n")).unwrap();
    let conf = out.join("redis/cache-sentinel.conf");
    let sentinel = argv(&compose["cache-sentinel-1"]);
    assert!(sentinel[2].contains("auth-pass cache \"$CACHE_PASSWORD\""), "{sentinel:?}");
    let named = || redis_cli(master_host, port, &["client", "list"]).lines().any(|l| l.contains("name=sentinel-"));

    // Without the password (the variable empty): refused, never named.
    let mut env = environment(&compose["cache-sentinel-1"]);
    let without: Vec<(String, String)> = env.iter().map(|(k, _)| (k.clone(), String::new())).collect();
    servers.0.push(start_sentinel(&sentinel, &conf, &dir.path().join("s0"), sentinel_host, sentinel_port, &without, &hosts));
    wait_for("the sentinel without the password is up", Duration::from_secs(10), || {
        redis_cli_anonymous(sentinel_host, sentinel_port, &["ping"]).trim() == "PONG"
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(!named(), "a sentinel without the password got in:\n{}", redis_cli(master_host, port, &["client", "list"]));
    let mut first = servers.0.pop().unwrap();
    let _ = first.kill();
    let _ = first.wait();

    // With it: the master soon lists the sentinel's connection by name.
    assert!(env.iter().any(|(_, v)| v == PASSWORD), "the sentinel gets the password from compose: {env:?}");
    env.retain(|(k, _)| k != "REDISCLI_AUTH");
    servers.0.push(start_sentinel(&sentinel, &conf, &dir.path().join("s1"), sentinel_host, sentinel_port, &env, &hosts));
    wait_for("the master lists the authenticated sentinel", Duration::from_secs(15), named);
    let master = redis_cli_anonymous(sentinel_host, sentinel_port, &["sentinel", "master", "cache"]);
    assert!(master.contains("master") && !master.contains("disconnected"), "{master}");
}
