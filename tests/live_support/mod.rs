//! Shared by the live tests: a rendered stack started on 127.0.0.1 from the files
//! `headroom render` writes (ports, paths and the admin user rewritten, nothing else),
//! every process owned by a guard that stops it by PID when dropped (also when a test
//! panics), and a closed-loop HTTP load generator. A missing program fails the test:
//! `.ci/install-validators` installs them.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A spec of `tests/fixtures/live/`.
pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/live").join(format!("{name}.yaml"))
}

/// One live test at a time in this process: their throughput is measured.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().unwrap().port()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0").unwrap_or(false)
}

/// uid and gid of the `postgres` OS user (PostgreSQL and PgBouncer refuse to run as root).
fn postgres_ids() -> Option<(u32, u32)> {
    if !is_root() {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, "postgres"]).output().expect("id");
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("the postgres OS user exists (install postgresql)")
    };
    Some((id("-u"), id("-g")))
}

fn as_postgres(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = postgres_ids() {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn chown_postgres(path: &Path) {
    if let Some((uid, gid)) = postgres_ids() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    }
}

/// The newest PostgreSQL's bin directory.
pub fn pgbin() -> PathBuf {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed: run .ci/install-validators")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort();
    PathBuf::from(format!("/usr/lib/postgresql/{}/bin", versions.last().expect("a PostgreSQL version")))
}

pub fn venv() -> PathBuf {
    std::env::var_os("HEADROOM_VENV").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/headroom/venv"))
}

/// A started process, stopped by PID when dropped: `signal` first, SIGKILL after 10 s.
pub struct Proc {
    pub name: String,
    child: Child,
    signal: &'static str,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command, log: PathBuf, signal: &'static str) -> Proc {
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}; run .ci/install-validators"));
        Proc { name: name.into(), child, signal, log }
    }
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// Fails with the log when the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, self.log_text());
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill").args([self.signal, &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `ready` every 100 ms until it holds, or fails with the process log.
pub fn wait_until(what: &str, proc: &mut Proc, seconds: u64, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        proc.assert_running();
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} not ready after {seconds}s:\n{}", proc.log_text());
}

pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&format!("127.0.0.1:{port}").parse().unwrap(), Duration::from_millis(200)).is_ok()
}

/// `headroom render --force -o DIR SPEC` (what a user runs), returning DIR.
pub fn render(spec: &Path, dir: &Path) -> PathBuf {
    let out = Command::new(env!("CARGO_BIN_EXE_headroom")).args(["render", "--force", "-o"]).arg(dir).arg(spec).output().unwrap();
    assert!(out.status.success(), "render failed: {}", String::from_utf8_lossy(&out.stderr));
    dir.to_path_buf()
}

/// `headroom ARGS... SPEC` and its JSON output.
pub fn headroom_json(args: &[&str], spec: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_headroom")).args(args).arg(spec).args(["--format", "json"]).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("headroom {args:?}: {e}\n{}", String::from_utf8_lossy(&out.stderr)))
}

/// A world-readable temp dir (the postgres user reads the rendered files in it).
pub fn temp_dir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix(&format!("headroom-live-{name}.")).tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    dir
}

/// A throwaway PostgreSQL cluster: initdb once, restarted with each rendered include.
pub struct Postgres {
    pub data: PathBuf,
    pub sockets: PathBuf,
    pub port: u16,
    pub proc: Option<Proc>,
    dir: PathBuf,
}

impl Postgres {
    pub fn init(dir: &Path) -> Postgres {
        let data = dir.join("data");
        let sockets = dir.join("sockets");
        for d in [&data, &sockets] {
            std::fs::create_dir_all(d).unwrap();
            chown_postgres(d);
        }
        std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let out = as_postgres(Command::new(pgbin().join("initdb")).args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D"]).arg(&data))
            .output()
            .expect("initdb");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        Postgres { data, sockets, port: 0, proc: None, dir: dir.to_path_buf() }
    }

    /// (Re)starts the server with the rendered include file on a new port.
    pub fn start(&mut self, include: &Path) {
        self.stop();
        let conf = self.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        if let Some(at) = text.find("\n# headroom live include\n") {
            text.truncate(at);
        }
        text.push_str(&format!("\n# headroom live include\ninclude = '{}'\n", include.display()));
        std::fs::write(&conf, text).unwrap();
        self.port = free_port();
        let mut cmd = Command::new(pgbin().join("postgres"));
        cmd.arg("-D").arg(&self.data).args(["-c", "listen_addresses=127.0.0.1", "-p", &self.port.to_string(), "-k"]).arg(&self.sockets);
        let mut proc = Proc::spawn("postgres", as_postgres(&mut cmd), self.dir.join(format!("postgres-{}.log", self.port)), "-INT");
        let port = self.port;
        wait_until("postgres", &mut proc, 60, || {
            Command::new(pgbin().join("pg_isready")).args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()]).status().is_ok_and(|s| s.success())
        });
        self.proc = Some(proc);
    }

    pub fn stop(&mut self) {
        self.proc.take();
    }

    /// psql as the superuser; rows as `|`-separated text.
    pub fn psql(&self, sql: &str) -> String {
        psql(self.port, "postgres", "postgres", None, sql)
    }

    /// The application's role and database, both `app`.
    pub fn create_app(&self, password: &str) {
        self.psql(&format!("CREATE ROLE app LOGIN PASSWORD '{password}'"));
        self.psql("CREATE DATABASE app OWNER app");
    }

    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        format!("postgresql://{user}:{password}@127.0.0.1:{}/{db}", self.port)
    }
}

pub fn psql(port: u16, user: &str, db: &str, password: Option<&str>, sql: &str) -> String {
    let mut cmd = Command::new(pgbin().join("psql"));
    cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", user, "-d", db, "-c", sql]);
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    let out = cmd.output().expect("psql");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// PgBouncer from the rendered ini: the database's host/port, listen address/port,
/// auth_file and log/pid/socket paths rewritten, and `admin_users` so the test may read
/// `SHOW POOLS`. Every limit is the rendered one.
pub fn start_pgbouncer(ini: &Path, dir: &Path, pg_port: u16, users: &[(&str, &str)]) -> (Proc, u16) {
    let port = free_port();
    let userlist = dir.join("userlist.txt");
    std::fs::write(&userlist, users.iter().map(|(u, p)| format!("\"{u}\" \"{p}\"\n")).collect::<String>()).unwrap();
    let mut out = String::new();
    let mut section = String::new();
    for line in std::fs::read_to_string(ini).unwrap().lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed.to_string();
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let key = trimmed.split('=').next().unwrap_or("").trim();
        let rewritten = match (section.as_str(), key) {
            ("[databases]", k) if !k.is_empty() && !k.starts_with(';') => {
                let mut words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
                for w in &mut words {
                    if w.starts_with("host=") {
                        *w = "host=127.0.0.1".into();
                    } else if w.starts_with("port=") {
                        *w = format!("port={pg_port}");
                    }
                }
                words.join(" ")
            }
            ("[pgbouncer]", "listen_addr") => "listen_addr = 127.0.0.1".into(),
            ("[pgbouncer]", "listen_port") => format!("listen_port = {port}"),
            ("[pgbouncer]", "auth_file") => format!("auth_file = {}", userlist.display()),
            _ => line.to_string(),
        };
        out.push_str(&rewritten);
        out.push('\n');
    }
    out.push_str(&format!(
        "; test paths\nunix_socket_dir = {dir}\nlogfile = {dir}/pgbouncer.log\npidfile = {dir}/pgbouncer.pid\nadmin_users = postgres\n",
        dir = dir.display()
    ));
    let path = dir.join("pgbouncer.ini");
    std::fs::write(&path, out).unwrap();
    for f in [&path, &userlist] {
        chown_postgres(f);
    }
    chown_postgres(dir);
    let mut cmd = Command::new("pgbouncer");
    cmd.arg(&path);
    let mut proc = Proc::spawn("pgbouncer", as_postgres(&mut cmd), dir.join("pgbouncer.stdout"), "-TERM");
    wait_until("pgbouncer", &mut proc, 20, || port_open(port));
    (proc, port)
}

/// `SHOW POOLS` rows of the admin console as (database, user, column -> value).
pub fn show_pools(port: u16, password: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut cmd = Command::new(pgbin().join("psql"));
    cmd.args(["-X", "-A", "-F", "|", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-d", "pgbouncer", "-c", "SHOW POOLS"]).env("PGPASSWORD", password);
    let out = cmd.output().expect("psql");
    assert!(out.status.success(), "SHOW POOLS: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split('|').collect();
    lines
        .filter(|l| l.contains('|'))
        .map(|l| header.iter().map(|h| h.to_string()).zip(l.split('|').map(str::to_string)).collect())
        .collect()
}

/// gunicorn from the rendered gunicorn.conf.py and env file, bound to a free loopback
/// port (`--bind` on the command line overrides the file's, nothing else does).
pub fn start_gunicorn(rendered: &Path, dir: &Path, database_url: &str, db_sleep: f64) -> (Proc, u16) {
    let port = free_port();
    let mut cmd = Command::new(venv().join("bin/gunicorn"));
    cmd.arg("-c").arg(rendered.join("gunicorn.conf.py")).args(["--bind", &format!("127.0.0.1:{port}"), "--chdir"]).arg(root().join("tests/live"));
    for line in std::fs::read_to_string(rendered.join("env/web.env")).unwrap().lines() {
        if let Some((k, v)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
            cmd.env(k, v);
        }
    }
    cmd.env("DATABASE_URL", database_url).env("DB_SLEEP", db_sleep.to_string()).env("APP_NAME", "web");
    let mut proc = Proc::spawn("gunicorn", &mut cmd, dir.join("gunicorn.log"), "-INT");
    wait_until("gunicorn", &mut proc, 30, || get(port, "/ping").is_some_and(|(s, _)| s == 200));
    (proc, port)
}

/// nginx from the rendered nginx.conf: `listen` moved to a free loopback port and the
/// upstream servers to gunicorn's port; every other directive as rendered.
pub fn start_nginx(rendered: &Path, dir: &Path, upstream_port: u16) -> (Proc, u16) {
    let port = free_port();
    let prefix = dir.join("nginx");
    std::fs::create_dir_all(&prefix).unwrap();
    let text = std::fs::read_to_string(rendered.join("nginx/nginx.conf")).unwrap();
    let listen = regex::Regex::new(r"(?m)^(\s*)listen \d+").unwrap();
    let server = regex::Regex::new(r"(?m)^(\s*)server [A-Za-z0-9_.-]+:\d+").unwrap();
    let text = listen.replace_all(&text, format!("${{1}}listen 127.0.0.1:{port}"));
    let text = server.replace_all(&text, format!("${{1}}server 127.0.0.1:{upstream_port}"));
    let conf = prefix.join("nginx.conf");
    std::fs::write(&conf, text.as_ref()).unwrap();
    let mut cmd = Command::new("nginx");
    cmd.arg("-p").arg(&prefix).arg("-c").arg(&conf).args(["-e", "stderr", "-g", "daemon off;"]);
    let mut proc = Proc::spawn("nginx", &mut cmd, dir.join("nginx.log"), "-TERM");
    wait_until("nginx", &mut proc, 20, || port_open(port));
    (proc, port)
}

/// One HTTP/1.0 GET on 127.0.0.1: (status, body), or None when the connection fails.
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    Some((status, body))
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct LoadResult {
    /// Successful responses in the measured window, each counted by the share of its
    /// duration that falls inside the window (so the window's edges cut no request in
    /// or out whole).
    pub ok: f64,
    /// Failed responses (non-200) in the window, and a sample of their bodies.
    pub failed: u64,
    pub failures: Vec<String>,
    pub window: f64,
}

impl LoadResult {
    pub fn ok_rps(&self) -> f64 {
        self.ok / self.window
    }
}

/// A closed loop of `clients` concurrent clients against `path` for `warmup + window`
/// seconds; only what happens inside the window counts. A client that gets an error
/// waits `backoff` before its next request, so failing requests (which return at
/// once) cannot flood a 2-core machine and disturb the measurement.
pub fn drive(port: u16, path: &str, clients: usize, warmup: f64, window: f64, backoff: Duration) -> LoadResult {
    let start = Instant::now();
    let from = Duration::from_secs_f64(warmup);
    let until = Duration::from_secs_f64(warmup + window);
    let result = Arc::new(Mutex::new(LoadResult { window, ..Default::default() }));
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let result = Arc::clone(&result);
            let path = path.to_string();
            std::thread::spawn(move || {
                while start.elapsed() < until {
                    let sent = start.elapsed();
                    let response = get(port, &path);
                    let done = start.elapsed();
                    let counted = done >= from && done < until;
                    let mut r = result.lock().unwrap();
                    match response {
                        Some((200, _)) => {
                            let inside = done.min(until).saturating_sub(sent.max(from));
                            r.ok += inside.as_secs_f64() / (done - sent).as_secs_f64().max(1e-9);
                        }
                        other => {
                            r.failed += u64::from(counted);
                            if r.failures.len() < 50 {
                                r.failures.push(match other {
                                    Some((status, body)) => format!("{status} {}", body.trim()),
                                    None => "connection failed".into(),
                                });
                            }
                            drop(r);
                            std::thread::sleep(backoff);
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    Arc::try_unwrap(result).unwrap().into_inner().unwrap()
}

/// redis-server from the rendered redis.conf: its `dir` moved to the temp dir (redis
/// enters it while reading the file), port, bind address and log by command-line
/// arguments (which override the file's).
pub fn start_redis(conf: &Path, dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let text: String = std::fs::read_to_string(conf)
        .unwrap()
        .lines()
        .map(|l| if l.starts_with("dir ") { format!("dir {}\n", dir.display()) } else { format!("{l}\n") })
        .collect();
    let copy = dir.join("redis.conf");
    std::fs::write(&copy, text).unwrap();
    let mut cmd = Command::new("redis-server");
    cmd.arg(&copy).args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--daemonize", "no", "--logfile", "", "--save", ""]).arg("--dir").arg(dir);
    let mut proc = Proc::spawn("redis-server", &mut cmd, dir.join("redis.log"), "-TERM");
    wait_until("redis", &mut proc, 20, || port_open(port));
    (proc, port)
}

/// `headroom observe SPEC ARGS... --format json`: (exit code, JSON, stderr).
pub fn observe(spec: &Path, args: &[String]) -> (i32, serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_headroom")).arg("observe").arg(spec).args(args).args(["--format", "json"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json, stderr)
}

/// The reading `what` of `source` in an observation.
pub fn reading<'a>(observation: &'a serde_json::Value, source: &str, what: &str) -> &'a serde_json::Value {
    observation["readings"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["source"] == source && r["what"] == what))
        .unwrap_or_else(|| panic!("no {source} `{what}` reading in {observation}"))
}
