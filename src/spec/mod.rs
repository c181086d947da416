//! The capacity spec (`capacity.yaml`, SPEC.md version 1) as the user wrote it:
//! serde + schemars types that mirror the YAML exactly, with no logic. Every doc
//! comment here becomes a description in `schema/capacity.schema.json`.

pub mod units;

use std::collections::BTreeMap;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use units::{ByteSize, Duration};

/// One deployment: the load it must hold, the machines, the services and how they
/// connect, and which orchestrators to render for.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Spec format version. Always `1`.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// Name of the deployment, `[a-z0-9-]+`; used in service names and file headers.
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9-]*$"), length(max = 63))]
    pub name: String,
    /// What the system must hold at peak.
    #[serde(default)]
    pub load: Option<Load>,
    /// Host groups that services are placed on (optional).
    #[serde(default)]
    pub machines: IndexMap<String, Machine>,
    /// The services, keyed by name (`[a-z0-9-_]+`). The key is how other services refer
    /// to a service (`uses`, `upstreams.*.to`).
    pub services: IndexMap<String, Service>,
    /// Which orchestrators and files to render for (any subset).
    #[serde(default)]
    pub deploy: Option<Deploy>,
}

/// What the system must hold at peak.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Sustained requests per second at peak.
    #[schemars(range(min = 0.0))]
    pub rps: f64,
    /// Open client connections at the edge (optional; otherwise Little's law at the
    /// edge: rps x service_time).
    #[serde(default)]
    pub concurrent_users: Option<u64>,
    /// Mean time a request occupies one app slot.
    pub service_time: Duration,
    /// Mean time a request holds a database connection (default: service_time).
    #[serde(default)]
    pub db_time: Option<Duration>,
    /// Plan slots to be busy at most this fraction of the time (default 0.75).
    #[serde(default)]
    #[schemars(range(min = 0.01, max = 1.0))]
    pub max_utilization: Option<f64>,
    /// Optional 95th-percentile latency goal.
    #[serde(default)]
    pub p95_target: Option<Duration>,
}

/// A group of identical hosts.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// How many hosts are in the group (default 1).
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub count: u32,
    /// CPUs per host.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub cpus: Option<f64>,
    /// Memory per host.
    #[serde(default)]
    pub memory: Option<ByteSize>,
    /// Host addresses or names (used for Kamal hosts and placement); at most `count`.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Kernel settings the hosts have today (`net.core.somaxconn: 4096`); rules read
    /// them, `render` proposes changes.
    #[serde(default)]
    pub sysctl: BTreeMap<String, SysctlValue>,
    /// The open-files limit (`ulimit -n`) of processes on these hosts today.
    #[serde(default)]
    pub nofile: Option<u64>,
}

/// A sysctl value: a number, or a string such as `"1024 65535"`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum SysctlValue {
    /// A numeric value.
    Number(u64),
    /// A textual value (several numbers separated by spaces).
    Text(String),
}

/// A service; `kind` selects which keys it takes.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Service {
    /// Gunicorn WSGI/ASGI app server.
    Gunicorn(Gunicorn),
    /// Puma Rack app server.
    Puma(Puma),
    /// Sidekiq job processor.
    Sidekiq(JobService),
    /// Celery worker.
    Celery(JobService),
    /// Solid Queue worker (Rails).
    SolidQueue(JobService),
    /// RQ worker.
    Rq(JobService),
    /// Any other background process that holds connections.
    Worker(JobService),
    /// nginx reverse proxy / load balancer.
    Nginx(Nginx),
    /// PgBouncer connection pooler.
    Pgbouncer(Pgbouncer),
    /// PostgreSQL server.
    Postgres(Postgres),
    /// Redis server (standalone, sentinel or cluster).
    Redis(Redis),
    /// Qdrant vector database (one node, or a distributed cluster of `replicas` nodes).
    Qdrant(Qdrant),
}

/// One `publish` entry: the host address it listens on (`None`: every interface) and
/// the host port.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Published {
    pub address: Option<std::net::IpAddr>,
    pub host_port: u16,
}

impl Published {
    /// Reads `6379`, `10.0.0.31:6379` or `[fd00::31]:6379` (compose's `ports:` host side).
    pub fn parse(entry: &str) -> Result<Published, String> {
        let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("`{}` is not a port (1..65535)", p.escape_debug()));
        let (address, host_port) = match entry.rsplit_once(':') {
            None => (None, port(entry)?),
            Some((address, p)) => {
                let bare = address.strip_prefix('[').and_then(|a| a.strip_suffix(']')).unwrap_or(address);
                let ip = bare.parse::<std::net::IpAddr>().map_err(|_| format!("`{}` is not an IP address", address.escape_debug()))?;
                if ip.is_ipv6() && !address.starts_with('[') {
                    return Err(format!("write an IPv6 address in brackets: `[{ip}]:{p}`"));
                }
                (Some(ip).filter(|ip| !ip.is_unspecified()), port(p)?)
            }
        };
        Ok(Published { address, host_port })
    }
    /// Reachable from other hosts: every interface, or an address other than loopback.
    pub fn beyond_loopback(&self) -> bool {
        self.address.is_none_or(|ip| !ip.is_loopback())
    }
}

/// Whether a redis.conf `bind` argument (`-` optional prefix, `*` every interface)
/// takes connections from other hosts: anything but a loopback address.
pub fn bind_beyond_loopback(address: &str) -> bool {
    let bare = address.strip_prefix('-').unwrap_or(address);
    bare.parse::<std::net::IpAddr>().map_or(true, |ip| !ip.is_loopback())
}

impl Service {
    /// The `kind` as written in the spec.
    pub fn kind(&self) -> &'static str {
        match self {
            Service::Gunicorn(_) => "gunicorn",
            Service::Puma(_) => "puma",
            Service::Sidekiq(_) => "sidekiq",
            Service::Celery(_) => "celery",
            Service::SolidQueue(_) => "solid_queue",
            Service::Rq(_) => "rq",
            Service::Worker(_) => "worker",
            Service::Nginx(_) => "nginx",
            Service::Pgbouncer(_) => "pgbouncer",
            Service::Postgres(_) => "postgres",
            Service::Redis(_) => "redis",
            Service::Qdrant(_) => "qdrant",
        }
    }

    /// Every kind a spec may name.
    pub const KINDS: [&'static str; 12] = [
        "gunicorn",
        "puma",
        "sidekiq",
        "celery",
        "solid_queue",
        "rq",
        "worker",
        "nginx",
        "pgbouncer",
        "postgres",
        "redis",
        "qdrant",
    ];

    /// The autoscaler bounds of an app or job service.
    pub fn autoscale(&self) -> Option<&Autoscale> {
        match self {
            Service::Gunicorn(s) => s.autoscale.as_ref(),
            Service::Puma(s) => s.autoscale.as_ref(),
            Service::Sidekiq(s) | Service::Celery(s) | Service::SolidQueue(s) | Service::Rq(s) | Service::Worker(s) => s.autoscale.as_ref(),
            _ => None,
        }
    }

    /// `external: true`: the service runs outside this deployment and is never rendered.
    pub fn external(&self) -> bool {
        match self {
            Service::Pgbouncer(s) => s.external,
            Service::Postgres(s) => s.external,
            Service::Redis(s) => s.external,
            _ => None,
        }
        .unwrap_or(false)
    }

    /// Keys every kind shares.
    pub fn common(&self) -> &Common {
        match self {
            Service::Gunicorn(s) => &s.common,
            Service::Puma(s) => &s.common,
            Service::Sidekiq(s)
            | Service::Celery(s)
            | Service::SolidQueue(s)
            | Service::Rq(s)
            | Service::Worker(s) => &s.common,
            Service::Nginx(s) => &s.common,
            Service::Pgbouncer(s) => &s.common,
            Service::Postgres(s) => &s.common,
            Service::Redis(s) => &s.common,
            Service::Qdrant(s) => &s.common,
        }
    }
}

/// Keys every service takes.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct Common {
    /// Containers / instances of this service (default 1; at most 10000, since each
    /// replica becomes a named server in upstreams and compose files).
    #[serde(default)]
    #[schemars(range(min = 1, max = 10000))]
    pub replicas: Option<u64>,
    /// Machine group this service runs on (a key of `machines`).
    #[serde(default)]
    pub machine: Option<String>,
    /// Per-replica container limits.
    #[serde(default)]
    pub resources: Option<Resources>,
    /// Container image (compose and Kamal accessories).
    #[serde(default)]
    pub image: Option<String>,
    /// Port the service listens on (each kind has its program's default).
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// Health check used by the orchestrator and the load balancer.
    #[serde(default)]
    pub health: Option<Health>,
    /// Outbound connection pools, PER PROCESS, keyed by the name of the service they
    /// connect to.
    #[serde(default)]
    pub uses: IndexMap<String, Use>,
    /// Environment: plain values and the names of secrets (never their values).
    #[serde(default)]
    pub env: Option<Env>,
    /// The open-files limit (`ulimit -n`) of this service's processes.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub nofile: Option<u64>,
    /// Namespaced kernel settings of this service's containers (compose `sysctls:`,
    /// e.g. `net.core.somaxconn: 4096`). A container does not see the host's values.
    #[serde(default)]
    pub sysctls: BTreeMap<String, SysctlValue>,
    /// Host ports this service's port is published on beyond its container network,
    /// as compose `ports:` does: `"10.0.0.31:6379"` listens on that address of the
    /// host only, `"6379"` (or `"0.0.0.0:6379"`) on every interface of the host, which
    /// anyone who reaches the host can connect to (`redis-no-auth` reports a redis
    /// published so without a password). compose renders each as
    /// `ADDRESS:HOST_PORT:PORT`. Default: none (nginx publishes its own port).
    #[serde(default)]
    pub publish: Vec<String>,
}

/// Per-replica container limits.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU limit per replica.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub cpus: Option<f64>,
    /// Memory limit per replica.
    #[serde(default)]
    pub memory: Option<ByteSize>,
    /// CPU reservation per replica (compose `deploy.resources.reservations`).
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub reserve_cpus: Option<f64>,
    /// Memory reservation per replica.
    #[serde(default)]
    pub reserve_memory: Option<ByteSize>,
}

/// A health check.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// HTTP path that answers 200 when the service is up (app servers).
    #[serde(default)]
    pub path: Option<String>,
    /// Time between checks (default 30s).
    #[serde(default)]
    pub interval: Option<Duration>,
    /// Time one check may take (default 10s).
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// Failures before the service is unhealthy (default 3).
    #[serde(default)]
    pub retries: Option<u32>,
    /// Grace period after start (default 0s).
    #[serde(default)]
    pub start_period: Option<Duration>,
}

/// Environment of a service.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Env {
    /// Plain, non-secret values.
    #[serde(default)]
    pub clear: IndexMap<String, String>,
    /// Names of secret environment variables; their values never enter the spec.
    #[serde(default)]
    pub secret: Vec<String>,
}

/// The framework that owns a connection pool (decides how the pool size is read).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Framework {
    /// Django: `CONN_MAX_AGE` keeps one connection per thread; `persistent: true`
    /// means one per thread whatever `pool` says.
    Django,
    /// ActiveRecord `pool:` in database.yml.
    Rails,
    /// SQLAlchemy `pool_size` + `max_overflow`.
    Sqlalchemy,
    /// psycopg2 `ThreadedConnectionPool(minconn, maxconn)`.
    Psycopg2,
    /// psycopg 3 `ConnectionPool(min_size, max_size)`.
    PsycopgPool,
    /// Any other client library; `pool` is its maximum.
    Generic,
}

/// An outbound connection pool, per process.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Use {
    /// Maximum connections one process keeps to the target (SQLAlchemy `pool_size`,
    /// Rails `pool`, psycopg2 `maxconn`, redis-py `max_connections`). Default: one per
    /// concurrent slot.
    #[serde(default)]
    pub pool: Option<u64>,
    /// SQLAlchemy-style overflow connections above `pool`.
    #[serde(default)]
    pub max_overflow: Option<u64>,
    /// Connections opened at start and kept (psycopg2 `minconn`, pgbouncer clients
    /// that idle).
    #[serde(default)]
    pub min: Option<u64>,
    /// Which library owns the pool (default generic).
    #[serde(default)]
    pub framework: Option<Framework>,
    /// Django persistent connections (`CONN_MAX_AGE` > 0): one connection per thread.
    #[serde(default)]
    pub persistent: Option<bool>,
    /// Client uses protocol-level prepared statements (default: true for rails and
    /// psycopg_pool, false otherwise).
    #[serde(default)]
    pub prepared_statements: Option<bool>,
    /// Database name on the target (default: the target's first database).
    #[serde(default)]
    pub database: Option<String>,
    /// Database user (default: the pooler's first user, or the deployment name).
    #[serde(default)]
    pub user: Option<String>,
    /// Pools one process keeps to databases on this server, by database config
    /// (Rails keeps one per entry of database.yml: `primary`, `cache`, `queue`,
    /// `cable`). Each must cover the slots that use it; together they are what the
    /// process opens to the server. When set, `pool` is the first one's.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub databases: IndexMap<String, u64>,
}

/// Gunicorn worker class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerClass {
    /// One request at a time per worker (gunicorn's default).
    Sync,
    /// A thread pool of `threads` per worker.
    Gthread,
    /// Greenlets: `worker_connections` per worker.
    Gevent,
    /// `uvicorn.workers.UvicornWorker` (ASGI); concurrency bounded by `worker_connections`.
    Uvicorn,
}

/// A process count, or `auto`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Count {
    /// An explicit number.
    Number(#[schemars(range(min = 1))] u64),
    /// `auto`: derived from the CPUs (gunicorn: 2 x cpus + 1; nginx: cpus).
    Auto(AutoKeyword),
}

/// The literal `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AutoKeyword {
    /// Derive from the CPUs available.
    Auto,
}

/// A gunicorn app server.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct Gunicorn {
    #[serde(flatten)]
    pub common: Common,
    /// Worker class (default sync).
    #[serde(default)]
    pub worker_class: Option<WorkerClass>,
    /// Worker processes per replica, or `auto` = 2 x cpus + 1 (default 1).
    #[serde(default)]
    pub workers: Option<Count>,
    /// Threads per worker for gthread (default 1).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub threads: Option<u64>,
    /// Simultaneous clients per worker for gevent/uvicorn (default 1000).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub worker_connections: Option<u64>,
    /// Worker silent for longer than this is killed (default 30s).
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// Time to finish requests on restart (default 30s).
    #[serde(default)]
    pub graceful_timeout: Option<Duration>,
    /// Keep-alive wait on client connections (default 2s).
    #[serde(default)]
    pub keepalive: Option<Duration>,
    /// Restart a worker after this many requests (default 0 = never).
    #[serde(default)]
    pub max_requests: Option<u64>,
    /// Random extra requests before restart, to stagger restarts (default 0).
    #[serde(default)]
    pub max_requests_jitter: Option<u64>,
    /// Listen backlog (default 2048).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub backlog: Option<u64>,
    /// The WSGI/ASGI application (`arena_backend.wsgi`, `web.app:app`).
    #[serde(default)]
    pub app: Option<String>,
    /// Where the service is built from (compose `build:`), when there is no image.
    #[serde(default)]
    pub build: Option<String>,
    /// Kubernetes HorizontalPodAutoscaler bounds. With it, every connection budget
    /// counts the pods at `max` (what the autoscaler may start), and `replicas` is
    /// ignored for budgets.
    #[serde(default)]
    pub autoscale: Option<Autoscale>,
}

/// A puma app server.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct Puma {
    #[serde(flatten)]
    pub common: Common,
    /// Forked worker processes per replica (default 0 = single mode, one process).
    #[serde(default)]
    pub workers: Option<u64>,
    /// Maximum threads per process (`RAILS_MAX_THREADS`; default 5).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub threads: Option<u64>,
    /// Minimum threads per process (default: same as threads).
    #[serde(default)]
    pub min_threads: Option<u64>,
    /// Load the app before forking workers (default true when workers > 0).
    #[serde(default)]
    pub preload: Option<bool>,
    /// Worker silent for longer than this is restarted (default 60s).
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// Listen backlog (default 1024).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub backlog: Option<u64>,
    /// The rack file (default config.ru).
    #[serde(default)]
    pub app: Option<String>,
    /// Where the service is built from (compose `build:`), when there is no image.
    #[serde(default)]
    pub build: Option<String>,
    /// Kubernetes HorizontalPodAutoscaler bounds. With it, every connection budget
    /// counts the pods at `max` (what the autoscaler may start), and `replicas` is
    /// ignored for budgets.
    #[serde(default)]
    pub autoscale: Option<Autoscale>,
}

/// A background job service (sidekiq, celery, solid_queue, rq, worker).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct JobService {
    #[serde(flatten)]
    pub common: Common,
    /// Threads (or prefork children) per process. Defaults: sidekiq 5, solid_queue 3,
    /// celery 1 per CPU (1 when unknown), rq 1, worker 1.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub concurrency: Option<u64>,
    /// Processes per replica (default 1).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub processes: Option<u64>,
    /// Command the container runs (`bin/jobs`, `celery -A proj worker`).
    #[serde(default)]
    pub command: Option<String>,
    /// Where the service is built from (compose `build:`), when there is no image.
    #[serde(default)]
    pub build: Option<String>,
    /// Kubernetes HorizontalPodAutoscaler bounds. With it, every connection budget
    /// counts the pods at `max` (what the autoscaler may start), and `replicas` is
    /// ignored for budgets.
    #[serde(default)]
    pub autoscale: Option<Autoscale>,
}

/// Kubernetes HorizontalPodAutoscaler bounds (autoscaling/v2).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Autoscale {
    /// Fewest pods (`minReplicas`).
    #[schemars(range(min = 1, max = 10000))]
    pub min: u64,
    /// Most pods (`maxReplicas`): what every connection budget counts.
    #[schemars(range(min = 1, max = 10000))]
    pub max: u64,
    /// Average CPU utilization the autoscaler keeps, in percent of the pods' CPU
    /// request (default 80, what `kubectl autoscale` sets).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    pub target_cpu: Option<u64>,
}

/// nginx load-balancing method for an upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Weighted round robin (nginx's default).
    RoundRobin,
    /// The server with the fewest active connections.
    LeastConn,
    /// Sticky by client address.
    IpHash,
    /// Random with two choices.
    Random,
}

/// An nginx upstream block.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    /// The app service whose replicas are the servers of this upstream.
    pub to: String,
    /// Load-balancing method (default round_robin).
    #[serde(default)]
    pub balance: Option<Balance>,
    /// Idle keep-alive connections each worker keeps to the upstream (default none).
    #[serde(default)]
    pub keepalive: Option<u64>,
    /// How long an idle keep-alive connection stays open (default 60s).
    #[serde(default)]
    pub keepalive_timeout: Option<Duration>,
    /// Requests served over one keep-alive connection (default 1000).
    #[serde(default)]
    pub keepalive_requests: Option<u64>,
    /// Failed attempts before a server is marked down (default 1).
    #[serde(default)]
    pub max_fails: Option<u64>,
    /// Window for max_fails and time a failed server stays down (default 10s).
    #[serde(default)]
    pub fail_timeout: Option<Duration>,
    /// Maximum simultaneous connections to one server (default 0 = unlimited).
    #[serde(default)]
    pub max_conns: Option<u64>,
    /// Server weight (default 1).
    #[serde(default)]
    pub weight: Option<u64>,
}

/// An nginx location.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// URI prefix (`/`, `/api/stream/`).
    pub path: String,
    /// Upstream (a key of `upstreams`) that serves it.
    pub upstream: String,
    /// proxy_read_timeout (default 60s).
    #[serde(default)]
    pub read_timeout: Option<Duration>,
    /// proxy_send_timeout (default 60s).
    #[serde(default)]
    pub send_timeout: Option<Duration>,
    /// proxy_connect_timeout (default 60s).
    #[serde(default)]
    pub connect_timeout: Option<Duration>,
    /// Pass WebSocket upgrades (default false).
    #[serde(default)]
    pub websocket: Option<bool>,
    /// Rate-limit zone (a key of `rate_limits`) applied here.
    #[serde(default)]
    pub rate_limit: Option<String>,
    /// Burst allowed above the zone's rate (default 0).
    #[serde(default)]
    pub burst: Option<u64>,
}

/// An nginx limit_req zone.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Rate per client address, `1000r/s` or `60r/m`.
    #[schemars(regex(pattern = r"^[0-9]+r/[sm]$"))]
    pub rate: String,
    /// Shared-memory zone size (about 8,000 client states per MB on 64-bit).
    pub zone: ByteSize,
}

/// An nginx reverse proxy.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct Nginx {
    #[serde(flatten)]
    pub common: Common,
    /// Worker processes, or `auto` = CPUs (nginx's default is 1).
    #[serde(default)]
    pub worker_processes: Option<Count>,
    /// Connections per worker, client AND upstream (default 512).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub worker_connections: Option<u64>,
    /// Open-file limit per worker (default: inherited from the process).
    #[serde(default)]
    pub worker_rlimit_nofile: Option<u64>,
    /// Listen backlog (default 511).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub backlog: Option<u64>,
    /// server_name (default `_`).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Upstream blocks, keyed by name.
    #[serde(default)]
    pub upstreams: IndexMap<String, Upstream>,
    /// Locations in the server block.
    #[serde(default)]
    pub locations: Vec<Location>,
    /// limit_req zones, keyed by name.
    #[serde(default)]
    pub rate_limits: IndexMap<String, RateLimit>,
}

/// PgBouncer pooling mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PoolMode {
    /// Server connection held for the whole client session (PgBouncer's default).
    Session,
    /// Server connection held for one transaction.
    Transaction,
    /// Server connection held for one statement.
    Statement,
}

/// A PgBouncer pooler.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct Pgbouncer {
    #[serde(flatten)]
    pub common: Common,
    /// Managed, or run outside this deployment: never rendered (clients still connect
    /// to it and every budget still counts them).
    #[serde(default)]
    pub external: Option<bool>,
    /// Pooling mode (default session).
    #[serde(default)]
    pub pool_mode: Option<PoolMode>,
    /// Client connections accepted (default 100).
    #[serde(default)]
    pub max_client_conn: Option<u64>,
    /// Server connections per (database, user) pool (default 20).
    #[serde(default)]
    pub default_pool_size: Option<u64>,
    /// Server connections kept open per pool (default 0).
    #[serde(default)]
    pub min_pool_size: Option<u64>,
    /// Extra server connections per pool when clients wait (default 0).
    #[serde(default)]
    pub reserve_pool_size: Option<u64>,
    /// Wait before the reserve pool is used (default 5s).
    #[serde(default)]
    pub reserve_pool_timeout: Option<Duration>,
    /// Cap on server connections per database (default 0 = unlimited).
    #[serde(default)]
    pub max_db_connections: Option<u64>,
    /// Cap on server connections per user (default 0 = unlimited).
    #[serde(default)]
    pub max_user_connections: Option<u64>,
    /// Prepared statements tracked per server connection in transaction mode
    /// (PgBouncer >= 1.21; default 0 before 1.24, 200 since; 0 disables).
    #[serde(default)]
    pub max_prepared_statements: Option<u64>,
    /// Time a client may wait for a server connection before it is dropped (default 120s).
    #[serde(default)]
    pub query_wait_timeout: Option<Duration>,
    /// Close server connections idle longer than this (default 600s).
    #[serde(default)]
    pub server_idle_timeout: Option<Duration>,
    /// Close server connections older than this (default 3600s).
    #[serde(default)]
    pub server_lifetime: Option<Duration>,
    /// Listen backlog (default 128).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub listen_backlog: Option<u64>,
    /// Authentication method (default scram-sha-256).
    #[serde(default)]
    #[schemars(regex(pattern = r"^(scram-sha-256|md5|plain|trust|cert|hba)$"))]
    pub auth_type: Option<String>,
    /// Path of the auth file inside the container (default /etc/pgbouncer/userlist.txt).
    #[serde(default)]
    pub auth_file: Option<String>,
    /// PgBouncer version, `"1.24"` (defaults differ across versions; default 1.24).
    #[serde(default)]
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+(\.[0-9]+)?$"))]
    pub version: Option<String>,
    /// Client users; pools = databases x users.
    #[serde(default)]
    pub users: Vec<String>,
}

/// Memory tuning profile for PostgreSQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Web application (PGTune "web").
    Web,
    /// Online transaction processing.
    Oltp,
    /// Data warehouse.
    Dw,
    /// Mixed.
    Mixed,
}

/// Storage class of the database disks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Storage {
    /// Solid-state disks.
    Ssd,
    /// Spinning disks.
    Hdd,
    /// NVMe disks.
    Nvme,
}

/// A PostgreSQL server.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct Postgres {
    #[serde(flatten)]
    pub common: Common,
    /// Managed, or run outside this deployment: never rendered (clients still connect
    /// to it and every budget still counts them).
    #[serde(default)]
    pub external: Option<bool>,
    /// Major version (default 16).
    #[serde(default)]
    #[schemars(range(min = 9, max = 99))]
    pub version: Option<u32>,
    /// max_connections (default 100).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_connections: Option<u64>,
    /// superuser_reserved_connections (default 3).
    #[serde(default)]
    pub superuser_reserved_connections: Option<u64>,
    /// reserved_connections, PG16+ (default 0).
    #[serde(default)]
    pub reserved_connections: Option<u64>,
    /// Connections opened by things not in this spec (migrations, admin, monitoring).
    #[serde(default)]
    pub other_connections: Option<u64>,
    /// Databases served (default: the deployment name).
    #[serde(default)]
    pub databases: Vec<String>,
    /// Memory tuning profile (default web).
    #[serde(default)]
    pub workload: Option<Workload>,
    /// Disk class (default ssd).
    #[serde(default)]
    pub storage: Option<Storage>,
    /// Streaming read replicas of this server (each gets the same max_connections).
    #[serde(default)]
    pub read_replicas: Option<u64>,
    /// max_worker_processes (default 8).
    #[serde(default)]
    pub max_worker_processes: Option<u64>,
    /// shared_buffers override (default RAM/4).
    #[serde(default)]
    pub shared_buffers: Option<ByteSize>,
    /// work_mem override (default from PGTune's formula).
    #[serde(default)]
    pub work_mem: Option<ByteSize>,
}

/// Redis deployment mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RedisMode {
    /// One server (plus optional replicas).
    Standalone,
    /// A master with replicas watched by sentinels.
    Sentinel,
    /// Redis Cluster.
    Cluster,
}

/// Redis persistence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Persistence {
    /// No persistence.
    None,
    /// RDB snapshots.
    Rdb,
    /// Append-only file.
    Aof,
}

/// What a redis holds (decides which eviction policy is safe).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RedisUsage {
    /// A cache: keys may be evicted.
    Cache,
    /// Job queues, sessions or data that must not be evicted.
    Store,
}

/// A Redis server.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct Redis {
    #[serde(flatten)]
    pub common: Common,
    /// Managed, or run outside this deployment: never rendered (clients still connect
    /// to it and every budget still counts them).
    #[serde(default)]
    pub external: Option<bool>,
    /// Deployment mode (default standalone).
    #[serde(default)]
    pub mode: Option<RedisMode>,
    /// maxmemory (default 0 = unlimited).
    #[serde(default)]
    pub maxmemory: Option<ByteSize>,
    /// maxmemory-policy (default noeviction).
    #[serde(default)]
    #[schemars(regex(
        pattern = r"^(noeviction|allkeys-lru|allkeys-lfu|allkeys-random|volatile-lru|volatile-lfu|volatile-random|volatile-ttl)$"
    ))]
    pub maxmemory_policy: Option<String>,
    /// maxclients (default 10000).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub maxclients: Option<u64>,
    /// tcp-backlog (default 511).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub tcp_backlog: Option<u64>,
    /// Persistence (default none).
    #[serde(default)]
    pub persistence: Option<Persistence>,
    /// What the data is (default cache when an eviction policy is set, store otherwise).
    #[serde(default)]
    pub usage: Option<RedisUsage>,
    /// Sentinel mode: number of sentinels.
    #[serde(default)]
    pub sentinels: Option<u64>,
    /// Sentinel mode: sentinels that must agree a master is down.
    #[serde(default)]
    pub quorum: Option<u64>,
    /// Cluster mode: number of masters.
    #[serde(default)]
    pub masters: Option<u64>,
    /// Cluster mode: replicas per master (default 1).
    #[serde(default)]
    pub replicas_per_master: Option<u64>,
    /// Addresses redis.conf binds when the server runs on a host rather than in a
    /// container, as redis.conf writes them (`-` before an address makes it optional).
    /// Default: loopback and the addresses of its machine group (`127.0.0.1 -::1
    /// -10.0.0.31`); in a container, every interface of the container. An address
    /// other than loopback without a password is reported by `redis-no-auth`.
    #[serde(default)]
    pub bind: Option<Vec<String>>,
    /// Name of the secret (environment variable) holding the password of Redis'
    /// default user; never the password itself. The server gets `--requirepass` from
    /// that variable at start (replicas and sentinels authenticate with it too) and
    /// every client service gets the variable by name. Default `<SERVICE>_PASSWORD`
    /// (`cache` -> `CACHE_PASSWORD`); `false` runs without authentication, which
    /// needs `protected-mode no` and is only safe on a container network nothing
    /// else reaches (rule `redis-no-auth`). An external redis has no default.
    #[serde(default)]
    pub password: Option<RedisPassword>,
}

/// The secret holding a redis password, or `false` for none.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RedisPassword {
    /// Name of the secret (environment variable) holding the password.
    Secret(String),
    /// `false`: no authentication (`true` is refused: name the secret instead).
    Enabled(bool),
}

/// Distance function a collection compares vectors with (Qdrant `distance`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Distance {
    /// Cosine similarity.
    Cosine,
    /// Euclidean distance.
    Euclid,
    /// Dot product.
    Dot,
    /// Manhattan distance.
    Manhattan,
}

/// Quantization method (Qdrant `quantization_config`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuantizationType {
    /// int8 per dimension: 4x smaller than float32.
    Scalar,
    /// Product quantization: `compression` x4 to x64.
    Product,
    /// One bit per dimension: 32x smaller than float32.
    Binary,
}

/// Product-quantization compression ratio.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// 4 times smaller than float32.
    X4,
    /// 8 times smaller.
    X8,
    /// 16 times smaller.
    X16,
    /// 32 times smaller.
    X32,
    /// 64 times smaller.
    X64,
}

impl Compression {
    /// The ratio as a number (x16 -> 16).
    pub fn ratio(self) -> u64 {
        match self {
            Compression::X4 => 4,
            Compression::X8 => 8,
            Compression::X16 => 16,
            Compression::X32 => 32,
            Compression::X64 => 64,
        }
    }
}

/// Quantization of a collection's vectors: a compressed copy Qdrant searches first.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quantization {
    /// Method: scalar, product or binary.
    #[serde(rename = "type")]
    pub kind: QuantizationType,
    /// Product quantization only, and required there: x4, x8, x16, x32 or x64.
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Keep the quantized copy in RAM even when the original vectors are on disk
    /// (default: the quantized copy follows the original vectors).
    #[serde(default)]
    pub always_ram: Option<bool>,
}

/// A Qdrant collection: how many vectors it holds and how they are spread over the nodes.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Collection {
    /// Points (vectors) the collection is planned to hold.
    #[schemars(range(min = 1))]
    pub vectors: u64,
    /// Dimensions of each vector (Qdrant accepts 1 to 65536).
    #[schemars(range(min = 1, max = 65536))]
    pub dimensions: u64,
    /// Distance function.
    pub distance: Distance,
    /// Shards the collection is split into (default: the number of nodes when it is created).
    #[serde(default)]
    #[schemars(range(min = 1, max = 65536))]
    pub shard_number: Option<u64>,
    /// Copies of each shard, each on a different node (default 1).
    #[serde(default)]
    #[schemars(range(min = 1, max = 65536))]
    pub replication_factor: Option<u64>,
    /// Replicas that must acknowledge a write (default 1).
    #[serde(default)]
    #[schemars(range(min = 1, max = 65536))]
    pub write_consistency_factor: Option<u64>,
    /// Serve the original vectors from disk (memory-mapped) instead of RAM (default false).
    #[serde(default)]
    pub on_disk: Option<bool>,
    /// Quantization (default none).
    #[serde(default)]
    pub quantization: Option<Quantization>,
}

/// A Qdrant vector database; `replicas` is the number of cluster nodes (more than one
/// runs Qdrant in distributed mode).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
pub struct Qdrant {
    #[serde(flatten)]
    pub common: Common,
    /// gRPC port (default 6334; `port` is the HTTP port, default 6333).
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    pub grpc_port: Option<u16>,
    /// Port the cluster nodes talk to each other on (default 6335).
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    pub p2p_port: Option<u16>,
    /// Largest request body accepted, in megabytes (default 32).
    #[serde(default)]
    #[schemars(range(min = 1, max = 65535))]
    pub max_request_size_mb: Option<u64>,
    /// Worker threads serving the API (default 0 = one per CPU).
    #[serde(default)]
    #[schemars(range(max = 65535))]
    pub max_workers: Option<u64>,
    /// Collections, keyed by name (`[A-Za-z0-9_-]+`).
    #[serde(default)]
    pub collections: IndexMap<String, Collection>,
}

fn one() -> u32 {
    1
}

/// Which orchestrators to render for.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// Render a docker-compose file.
    #[serde(default)]
    pub compose: Option<ComposeDeploy>,
    /// Render a Kamal 2 config/deploy.yml.
    #[serde(default)]
    pub kamal: Option<KamalDeploy>,
    /// Render sysctl.d files and an apply script per machine group.
    #[serde(default)]
    pub sysctl: Option<SysctlDeploy>,
    /// Render railway.toml (start command, health check).
    #[serde(default)]
    pub railway: Option<RailwayDeploy>,
    /// Render Prometheus alerting rules whose thresholds come from the plan (for the
    /// metrics of postgres_exporter, pgbouncer_exporter, redis_exporter and
    /// nginx-prometheus-exporter).
    #[serde(default)]
    pub alerts: Option<AlertsDeploy>,
    /// Render load tests (a Locust file and a k6 script) that ramp to the planned load.
    #[serde(default)]
    pub loadtest: Option<LoadtestDeploy>,
    /// Render Kubernetes manifests and a kustomization.yaml.
    #[serde(default)]
    pub kubernetes: Option<KubernetesDeploy>,
    /// Where each artifact lives in the user's repo, relative to the spec
    /// (`nginx: nginx/load-balancer.conf`).
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Files of the repo, relative to the spec, that headroom read but does not own
    /// (`headroom import` lists the ones it did not write): they hold what the spec
    /// does not model (volumes, bind mounts, env_file, entrypoints, secret names, puma
    /// plugins and hooks), so `render` into the spec's directory never writes them, even
    /// with --force; `headroom diff` still shows what render would change there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep: Vec<String>,
}

/// docker-compose rendering.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComposeDeploy {
    /// Output file (default docker-compose.yml).
    #[serde(default)]
    pub file: Option<String>,
    /// `expand` writes one service per replica (web-1..web-N, what nginx upstreams by
    /// name need); `replicas` uses deploy.replicas (default expand when an nginx
    /// upstream points at the service).
    #[serde(default)]
    #[schemars(regex(pattern = r"^(expand|replicas)$"))]
    pub replicas: Option<String>,
    /// Network name (default: the deployment name).
    #[serde(default)]
    pub network: Option<String>,
}

/// Kamal 2 rendering.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KamalDeploy {
    /// Kamal service name (default: the deployment name).
    #[serde(default)]
    pub service: Option<String>,
    /// Image name.
    pub image: String,
    /// Registry; username and password are secret NAMES.
    #[serde(default)]
    pub registry: Option<KamalRegistry>,
    /// kamal-proxy settings.
    #[serde(default)]
    pub proxy: Option<KamalProxy>,
    /// Builder architecture (default amd64).
    #[serde(default)]
    #[schemars(regex(pattern = r"^(amd64|arm64)$"))]
    pub arch: Option<String>,
}

/// Kamal registry; credentials are secret names.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KamalRegistry {
    /// Registry host (default Docker Hub). `localhost:PORT` is a local registry: Kamal
    /// runs it on each host and pushes through an SSH tunnel, with no credentials.
    #[serde(default)]
    pub server: Option<String>,
    /// Secret name holding the username (required unless the registry is local).
    #[serde(default)]
    pub username: Option<String>,
    /// Secret name holding the password (required unless the registry is local).
    #[serde(default)]
    pub password: Option<String>,
}

/// kamal-proxy settings.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KamalProxy {
    /// Public host name.
    #[serde(default)]
    pub host: Option<String>,
    /// Terminate TLS in kamal-proxy (default false; true when a custom certificate is
    /// given). Without a custom certificate the certificate comes from Let's Encrypt,
    /// which Kamal allows on a single host only.
    #[serde(default)]
    pub ssl: Option<bool>,
    /// Secret name holding a custom TLS certificate (PEM) for kamal-proxy, e.g. a
    /// Cloudflare origin certificate; needed to terminate TLS on several hosts. Give
    /// `private_key_pem` with it.
    #[serde(default)]
    pub certificate_pem: Option<String>,
    /// Secret name holding the private key (PEM) of `certificate_pem`.
    #[serde(default)]
    pub private_key_pem: Option<String>,
    /// Time kamal-proxy waits for a response (default 30s).
    #[serde(default)]
    pub response_timeout: Option<Duration>,
}

/// sysctl rendering.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SysctlDeploy {
    /// Directory for the generated files (default sysctl).
    #[serde(default)]
    pub dir: Option<String>,
}

/// Prometheus alerting rules.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsDeploy {
    /// Fraction of a budget at which a warning fires (default 0.8: 80% of
    /// max_connections' usable slots, of max_client_conn, of maxclients, ...).
    #[serde(default)]
    #[schemars(range(min = 0.01, max = 1.0))]
    pub threshold: Option<f64>,
    /// How long a condition must hold before its alert fires (Prometheus `for`,
    /// default 5m).
    #[serde(default, rename = "for")]
    pub for_: Option<Duration>,
}

/// Load-test scripts that ramp to `load.concurrent_users` and `load.rps`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadtestDeploy {
    /// Which script to render: `locust` (locustfile.py), `k6` (k6.js); both when not set.
    #[serde(default)]
    #[schemars(regex(pattern = r"^(locust|k6)$"))]
    pub tool: Option<String>,
    /// Base URL under test (`https://app.example.com`).
    #[schemars(regex(pattern = r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$"))]
    pub host: String,
    /// Request path each virtual user requests (default `/`).
    #[serde(default)]
    #[schemars(regex(pattern = r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$"))]
    pub path: Option<String>,
    /// How long the test holds the target load, after the ramp (default 5m).
    #[serde(default)]
    pub duration: Option<Duration>,
    /// Ramp-up time to the target users (default 1m).
    #[serde(default)]
    pub ramp: Option<Duration>,
    /// Share of requests allowed to fail before the test fails (default 0.01).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub error_budget: Option<f64>,
}

/// Railway rendering.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RailwayDeploy {
    /// The app service Railway runs (default: the first gunicorn/puma service).
    #[serde(default)]
    pub service: Option<String>,
    /// railway.toml path (default railway.toml).
    #[serde(default)]
    pub file: Option<String>,
}

/// Kubernetes rendering: a folder of manifests and a kustomization.yaml.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesDeploy {
    /// Namespace of every object (a DNS-1123 label; default: the deployment name).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Image of app and job services that name none themselves (`ghcr.io/acme/arena:1.4.2`).
    #[serde(default)]
    pub image: Option<String>,
    /// Kubernetes minor version the manifests target, `"1.31"` (1.25 to 1.37; default
    /// 1.35). It decides which pod sysctls are safe without kubelet flags.
    #[serde(default)]
    #[schemars(regex(pattern = r"^1\.[0-9]{1,2}$"))]
    pub version: Option<String>,
    /// Pods a rolling update starts above the desired count: a number or a percentage
    /// of the replicas, rounded up (default `25%`, Kubernetes' own). The budget rules
    /// count them.
    #[serde(default)]
    pub max_surge: Option<IntOrPercent>,
    /// Pods a rolling update may take down below the desired count: a number or a
    /// percentage, rounded down (default `25%`).
    #[serde(default)]
    pub max_unavailable: Option<IntOrPercent>,
    /// An Ingress in front of the edge service (nginx, else the first app server).
    #[serde(default)]
    pub ingress: Option<KubernetesIngress>,
    /// Output folder of the manifests (default `kubernetes`).
    #[serde(default)]
    pub dir: Option<String>,
    /// Name of the Secret whose keys are the services' `env.secret` names (default
    /// `<name>-secrets`). Only its name is rendered, never a value.
    #[serde(default)]
    pub secret: Option<String>,
    /// StorageClass of the PostgreSQL and Redis volume claims (default: the cluster's).
    #[serde(default)]
    pub storage_class: Option<String>,
    /// Size of each PostgreSQL and Redis volume claim (default 10GiB).
    #[serde(default)]
    pub volume_size: Option<ByteSize>,
}

/// A count, or a percentage such as `25%`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum IntOrPercent {
    /// A number of pods.
    Count(u64),
    /// A percentage of the replicas, `25%`.
    Percent(#[schemars(regex(pattern = r"^[0-9]{1,3}%$"))] String),
}

/// The Ingress rendered for `deploy.kubernetes`.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KubernetesIngress {
    /// Public host name (`app.example.com`).
    pub host: String,
    /// IngressClass (`nginx`, `traefik`; default: the cluster's default class).
    #[serde(default)]
    pub class: Option<String>,
    /// Name of the TLS Secret holding the certificate (default: no TLS).
    #[serde(default)]
    pub tls_secret: Option<String>,
}
