//! The resolved model: every default applied and every derived number computed once,
//! each carrying its origin. Rules and targets read the plan; they never recompute.

pub mod defaults;
pub mod qdrant;
pub mod resolve;
pub mod sourced;

use std::collections::HashMap;

use foldhash::fast::FixedState;

use serde::Serialize;

pub use resolve::resolve;
pub use sourced::{Origin, Sourced};

use crate::spec::{Balance, Compression, Distance, Framework, Persistence, PoolMode, QuantizationType, RedisMode, RedisUsage, Storage, WorkerClass, Workload};

/// What a service is, as a closed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Gunicorn,
    Puma,
    Sidekiq,
    Celery,
    SolidQueue,
    Rq,
    Worker,
    Nginx,
    Pgbouncer,
    Postgres,
    Redis,
    Qdrant,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Gunicorn => "gunicorn",
            Kind::Puma => "puma",
            Kind::Sidekiq => "sidekiq",
            Kind::Celery => "celery",
            Kind::SolidQueue => "solid_queue",
            Kind::Rq => "rq",
            Kind::Worker => "worker",
            Kind::Nginx => "nginx",
            Kind::Pgbouncer => "pgbouncer",
            Kind::Postgres => "postgres",
            Kind::Redis => "redis",
            Kind::Qdrant => "qdrant",
        }
    }
    /// App servers serve `load.rps`.
    pub fn is_app(self) -> bool {
        matches!(self, Kind::Gunicorn | Kind::Puma)
    }
    /// Job processors hold connections but are not in the request path.
    pub fn is_job(self) -> bool {
        matches!(self, Kind::Sidekiq | Kind::Celery | Kind::SolidQueue | Kind::Rq | Kind::Worker)
    }
}

/// The load the deployment must hold.
#[derive(Clone, Debug, Serialize)]
pub struct LoadPlan {
    pub rps: Sourced<f64>,
    pub concurrent_users: Option<Sourced<u64>>,
    /// Seconds.
    pub service_time: Sourced<f64>,
    /// Seconds.
    pub db_time: Sourced<f64>,
    pub max_utilization: Sourced<f64>,
    /// Seconds.
    pub p95_target: Option<Sourced<f64>>,
}

/// A machine group and what is placed on it.
#[derive(Clone, Debug, Serialize)]
pub struct MachinePlan {
    pub name: String,
    pub path: String,
    pub count: u64,
    pub cpus: Option<f64>,
    pub memory: Option<u64>,
    pub addresses: Vec<String>,
    pub sysctl: Vec<(String, String)>,
    pub nofile: Option<u64>,
    /// Services placed here and how many replicas land on the busiest host.
    pub placements: Vec<Placement>,
    /// Memory limits on the busiest host, summed (bytes).
    pub memory_demand: u64,
    /// CPU limits on the busiest host, summed.
    pub cpu_demand: f64,
}

/// Replicas of one service on the busiest host of a group.
#[derive(Clone, Debug, Serialize)]
pub struct Placement {
    pub service: String,
    /// ceil(replicas / count).
    pub replicas_per_host: u64,
    pub memory_per_replica: Option<u64>,
    pub cpus_per_replica: Option<f64>,
}

/// Health check, defaults applied.
#[derive(Clone, Debug, Serialize)]
pub struct HealthPlan {
    pub path: Option<String>,
    /// Seconds.
    pub interval: u64,
    pub timeout: u64,
    pub retries: u32,
    pub start_period: u64,
}

/// A resolved service.
#[derive(Clone, Debug, Serialize)]
pub struct ServicePlan {
    pub name: String,
    pub kind: Kind,
    /// Spec path of the service (`services.web`).
    pub path: String,
    /// The replicas every budget counts: `autoscale.max` when the service autoscales,
    /// else `replicas`.
    pub replicas: Sourced<u64>,
    /// The fewest replicas that run: `autoscale.min`, else the same as `replicas`.
    pub min_replicas: Sourced<u64>,
    /// HorizontalPodAutoscaler bounds, when the service autoscales.
    pub autoscale: Option<AutoscalePlan>,
    /// Pods a Kubernetes rolling update adds on top of `replicas` (app and job services
    /// under `deploy.kubernetes`).
    pub rollout_surge: Option<Sourced<u64>>,
    /// Runs outside this deployment (`external: true`): never rendered.
    pub external: bool,
    /// Processes per replica.
    pub processes: Sourced<u64>,
    /// Concurrent slots per process.
    pub slots_per_process: Sourced<u64>,
    /// replicas x processes x slots_per_process.
    pub slots: u64,
    pub machine: Option<String>,
    /// CPUs one replica may use (its limit, else its machine's).
    pub cpus: Option<Sourced<f64>>,
    /// Memory limit per replica (bytes).
    pub memory: Option<Sourced<u64>>,
    pub reserve_cpus: Option<f64>,
    pub reserve_memory: Option<u64>,
    pub image: Option<String>,
    pub port: Sourced<u64>,
    /// Listen backlog, for listeners.
    pub backlog: Option<Sourced<u64>>,
    /// net.core.somaxconn where the listener runs.
    pub somaxconn: Sourced<u64>,
    pub nofile: Option<Sourced<u64>>,
    pub health: Option<HealthPlan>,
    pub env_clear: Vec<(String, String)>,
    pub env_secret: Vec<String>,
    /// Container sysctls as written.
    pub sysctls: Vec<(String, String)>,
    /// Host ports published beyond the container network (`publish`, validated at load).
    pub publish: Vec<crate::spec::Published>,
    /// Indexes into `Plan::edges` of the pools this service opens.
    pub uses: Vec<usize>,
    pub detail: Detail,
}

/// HorizontalPodAutoscaler bounds of a service.
#[derive(Clone, Debug, Serialize)]
pub struct AutoscalePlan {
    pub min: Sourced<u64>,
    pub max: Sourced<u64>,
    /// Percent of the CPU request.
    pub target_cpu: Sourced<u64>,
}

/// A rolling update's `maxSurge` / `maxUnavailable`: a count or a percentage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rollout {
    Count(u64),
    Percent(u64),
}

impl Rollout {
    /// As a manifest writes it: `3` or `"25%"`.
    pub fn text(self) -> String {
        match self {
            Rollout::Count(n) => n.to_string(),
            Rollout::Percent(p) => format!("{p}%"),
        }
    }
    /// Pods for `replicas`: a percentage rounded up (maxSurge) or down (maxUnavailable),
    /// as the Deployment controller computes it.
    pub fn pods(self, replicas: u64, round_up: bool) -> u64 {
        match self {
            Rollout::Count(n) => n,
            Rollout::Percent(p) if round_up => mul(&[replicas, p]).div_ceil(100),
            Rollout::Percent(p) => mul(&[replicas, p]) / 100,
        }
    }
}

/// What `deploy.kubernetes` decides for every manifest.
#[derive(Clone, Debug, Serialize)]
pub struct KubernetesPlan {
    pub namespace: Sourced<String>,
    /// (major, minor).
    pub version: Sourced<(u32, u32)>,
    pub max_surge: Sourced<Rollout>,
    pub max_unavailable: Sourced<Rollout>,
}

/// What is specific to a kind.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Detail {
    Gunicorn(GunicornPlan),
    Puma(PumaPlan),
    Job(JobPlan),
    Nginx(NginxPlan),
    // Boxed: the two largest plans, so a `Detail` (one per service) is not the size
    // of its largest variant for every kind.
    Pgbouncer(Box<PgbouncerPlan>),
    Postgres(PostgresPlan),
    Redis(Box<RedisPlan>),
    Qdrant(QdrantPlan),
}

#[derive(Clone, Debug, Serialize)]
pub struct GunicornPlan {
    pub worker_class: Sourced<WorkerClass>,
    pub workers: Sourced<u64>,
    pub threads: Sourced<u64>,
    pub worker_connections: Sourced<u64>,
    /// Seconds.
    pub timeout: Sourced<u64>,
    pub graceful_timeout: Sourced<u64>,
    pub keepalive: Sourced<u64>,
    pub max_requests: Sourced<u64>,
    pub max_requests_jitter: Sourced<u64>,
    pub app: String,
    pub build: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PumaPlan {
    /// As written (0 = single mode).
    pub workers: Sourced<u64>,
    pub threads: Sourced<u64>,
    pub min_threads: Sourced<u64>,
    pub preload: bool,
    /// Seconds.
    pub timeout: Sourced<u64>,
    pub app: String,
    pub build: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct JobPlan {
    pub concurrency: Sourced<u64>,
    pub command: Option<String>,
    pub build: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct NginxPlan {
    pub worker_processes: Sourced<u64>,
    /// `auto` was written.
    pub worker_processes_auto: bool,
    pub worker_connections: Sourced<u64>,
    pub worker_rlimit_nofile: Option<Sourced<u64>>,
    /// The worker_rlimit_nofile a rendered nginx.conf sets: as written, else
    /// 2 x worker_connections (a proxied request holds a client and an upstream fd).
    pub rlimit_nofile: Sourced<u64>,
    pub server_name: String,
    pub upstreams: Vec<UpstreamPlan>,
    pub locations: Vec<LocationPlan>,
    pub rate_limits: Vec<RateLimitPlan>,
    /// Client connections expected at the edge at peak.
    pub expected_clients: Option<Sourced<f64>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct UpstreamPlan {
    pub name: String,
    pub path: String,
    pub to: String,
    pub balance: Balance,
    pub keepalive: Option<Sourced<u64>>,
    pub keepalive_timeout: Option<u64>,
    pub keepalive_requests: Option<u64>,
    pub max_fails: Sourced<u64>,
    /// Seconds.
    pub fail_timeout: Sourced<u64>,
    /// Per server; 0 = unlimited.
    pub max_conns: Sourced<u64>,
    pub weight: u64,
    /// The upstream gets a shared memory zone (so max_conns holds across workers).
    pub zone: bool,
    /// One (host, port) per replica of the target.
    pub servers: Vec<(String, u64)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LocationPlan {
    pub path: String,
    pub spec_path: String,
    pub upstream: String,
    /// Seconds.
    pub read_timeout: Sourced<u64>,
    pub send_timeout: Sourced<u64>,
    pub connect_timeout: Sourced<u64>,
    pub websocket: bool,
    pub rate_limit: Option<String>,
    pub burst: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RateLimitPlan {
    pub name: String,
    pub path: String,
    pub rate: String,
    /// Zone size in bytes.
    pub zone: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct PgbouncerPlan {
    pub version: Sourced<(u32, u32)>,
    pub pool_mode: Sourced<PoolMode>,
    pub max_client_conn: Sourced<u64>,
    pub default_pool_size: Sourced<u64>,
    pub min_pool_size: Sourced<u64>,
    pub reserve_pool_size: Sourced<u64>,
    /// Seconds.
    pub reserve_pool_timeout: Sourced<u64>,
    /// 0 = unlimited.
    pub max_db_connections: Sourced<u64>,
    pub max_user_connections: Sourced<u64>,
    /// None when the version has no such setting (< 1.21).
    pub max_prepared_statements: Option<Sourced<u64>>,
    pub query_wait_timeout: Sourced<u64>,
    pub server_idle_timeout: Sourced<u64>,
    pub server_lifetime: Sourced<u64>,
    pub auth_type: String,
    pub auth_file: String,
    pub users: Vec<String>,
    /// The postgres it pools for.
    pub target: Option<String>,
    pub databases: Vec<String>,
    /// databases x users.
    pub pools: u64,
    /// Most server connections it may open to the target, all replicas together.
    pub server_connections: Sourced<u64>,
    /// Client connections its clients may open, summed.
    pub client_demand: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct PostgresPlan {
    pub version: Sourced<u64>,
    pub max_connections: Sourced<u64>,
    pub superuser_reserved_connections: Sourced<u64>,
    pub reserved_connections: Sourced<u64>,
    /// max_connections - superuser_reserved - reserved.
    pub usable_connections: u64,
    pub other_connections: Sourced<u64>,
    pub databases: Vec<String>,
    pub workload: Workload,
    pub storage: Storage,
    pub read_replicas: u64,
    pub max_worker_processes: Sourced<u64>,
    /// Connections every client may open, summed (direct pools, poolers' servers, others).
    pub demand: u64,
    /// Memory settings (bytes), from PGTune's formulas when memory is known.
    pub tuning: Option<PostgresTuning>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PostgresTuning {
    pub shared_buffers: Sourced<u64>,
    pub effective_cache_size: u64,
    pub maintenance_work_mem: u64,
    pub work_mem: Sourced<u64>,
    pub wal_buffers: u64,
    pub random_page_cost: f64,
    pub effective_io_concurrency: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct RedisPlan {
    pub mode: RedisMode,
    pub maxmemory: Option<Sourced<u64>>,
    pub maxmemory_policy: Sourced<String>,
    pub maxclients: Sourced<u64>,
    /// What redis really accepts: min(maxclients, nofile - 32).
    pub effective_maxclients: Sourced<u64>,
    pub tcp_backlog: Sourced<u64>,
    pub persistence: Sourced<Persistence>,
    pub usage: RedisUsage,
    pub sentinels: Option<Sourced<u64>>,
    pub quorum: Option<Sourced<u64>>,
    /// Sentinel mode: the quorum a rendered sentinel.conf sets: as written, else the
    /// majority of the sentinels (of 3 when `sentinels` is not set).
    pub sentinel_quorum: Option<Sourced<u64>>,
    pub masters: Option<Sourced<u64>>,
    pub replicas_per_master: u64,
    /// Connections every client may open, summed.
    pub demand: u64,
    /// Name of the secret holding the default user's password (None: no
    /// authentication, or an external redis that names none).
    pub password: Option<Sourced<String>>,
    /// `bind` as the spec writes it (for a host install; `None`: the default, see
    /// `targets::redis::bind`).
    pub bind: Option<Vec<String>>,
    /// Why the server is reachable from other hosts (a Kamal accessory's published
    /// port, clients on other machines, a host bind), when it is.
    pub reachable_from: Vec<String>,
}

/// A Qdrant deployment: its nodes, ports and collections, and the memory each node
/// needs for the vectors it holds.
#[derive(Clone, Debug, Serialize)]
pub struct QdrantPlan {
    /// Cluster nodes (the service's replicas); more than one runs distributed mode.
    pub nodes: u64,
    pub grpc_port: Sourced<u64>,
    pub p2p_port: Sourced<u64>,
    pub max_request_size_mb: Sourced<u64>,
    pub max_workers: Sourced<u64>,
    pub collections: Vec<CollectionPlan>,
    /// In-RAM bytes of every collection on the busiest node.
    pub memory_per_node: u64,
    /// What one node may use: its container limit, else its machine's memory.
    pub memory_limit: Option<Sourced<u64>>,
    /// Fewest nodes (at `memory_limit`) that hold every collection; None when the
    /// limit is unknown or no node count fits (a single shard replica is too large).
    pub nodes_needed: Option<u64>,
    /// Connections every client may open, summed.
    pub demand: u64,
}

/// One collection's spread over the nodes and its memory.
#[derive(Clone, Debug, Serialize)]
pub struct CollectionPlan {
    pub name: String,
    /// Spec path (`services.vectors.collections.voice_embeddings`).
    pub path: String,
    pub vectors: u64,
    pub dimensions: u64,
    pub distance: Distance,
    /// As written, else the node count (Qdrant's default at creation).
    pub shard_number: Sourced<u64>,
    pub replication_factor: Sourced<u64>,
    pub write_consistency_factor: Sourced<u64>,
    pub on_disk: Sourced<bool>,
    pub quantization: Option<QuantizationPlan>,
    /// Replicas Qdrant places per shard: min(replication_factor, nodes), at most one per node.
    pub placed_replicas: u64,
    /// Shard replicas on the busiest node: ceil(shard_number x placed_replicas / nodes).
    pub shards_per_node: u64,
    /// Points the busiest node holds: vectors x shards_per_node / shard_number.
    pub points_per_node: u64,
    /// RAM one stored point takes, in bytes, and the formula.
    pub bytes_per_point: f64,
    pub bytes_per_point_formula: String,
    /// In-RAM bytes of this collection on the busiest node.
    pub memory_per_node: u64,
    /// Fewest nodes that hold this collection at the node memory limit (None: unknown
    /// limit, or one shard replica alone exceeds it).
    pub nodes_needed: Option<u64>,
    /// RAM of one shard replica (the floor no node count goes below).
    pub shard_replica_bytes: u64,
}

/// A collection's quantization and what it keeps in RAM.
#[derive(Clone, Debug, Serialize)]
pub struct QuantizationPlan {
    pub kind: QuantizationType,
    pub compression: Option<Compression>,
    /// As written (`always_ram`); None follows the original vectors.
    pub always_ram: Option<bool>,
    /// Bytes per dimension of the quantized copy.
    pub bytes_per_dimension: f64,
    /// The quantized copy is in RAM: always_ram, or following originals kept in RAM.
    pub in_ram: bool,
}

/// One client's pools to one target: `replicas x processes x per-process pool`.
#[derive(Clone, Debug, Serialize)]
pub struct Edge {
    pub from: String,
    pub from_kind: Kind,
    pub to: String,
    pub to_kind: Kind,
    /// Spec path of the `uses` entry.
    pub path: String,
    pub framework: Framework,
    /// Pool as written or defaulted (per process).
    pub pool: Sourced<u64>,
    pub max_overflow: u64,
    /// Pools one process keeps per database config on this server (`databases`),
    /// each with where it was written; empty for a single pool.
    pub database_pools: Vec<(String, Sourced<u64>)>,
    pub min: Option<u64>,
    pub persistent: bool,
    /// Connections one process may hold: pool + max_overflow, or slots when persistent.
    pub per_process: Sourced<u64>,
    pub replicas: u64,
    pub processes: u64,
    /// replicas x processes x per_process.
    pub connections: u64,
    /// Concurrent slots per process that may need a connection at once.
    pub slots_needing: Sourced<u64>,
    pub prepared_statements: bool,
    pub database: String,
    pub user: String,
}

/// Throughput of the request path at the planned load.
#[derive(Clone, Debug, Serialize)]
pub struct Capacity {
    /// App slots across every app server.
    pub app_slots: u64,
    /// Requests per second the slots can complete: slots / service_time.
    pub capacity_rps: f64,
    /// capacity_rps x max_utilization.
    pub planned_rps: f64,
    /// rps x service_time / slots.
    pub utilization: f64,
    /// planned_rps / rps.
    pub headroom: f64,
    /// Database connections that can be busy at once on behalf of app servers.
    pub db_connections: u64,
    /// db_connections / db_time.
    pub db_capacity_rps: f64,
    /// The layer with the lowest capacity.
    pub bottleneck: Option<Bottleneck>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Bottleneck {
    pub layer: String,
    pub capacity_rps: f64,
    pub why: String,
}

/// The resolved deployment.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub name: String,
    pub load: Option<LoadPlan>,
    pub machines: Vec<MachinePlan>,
    pub services: Vec<ServicePlan>,
    pub edges: Vec<Edge>,
    pub capacity: Option<Capacity>,
    /// Deployment targets that run services in containers (compose, kamal).
    pub containerized: bool,
    /// `deploy.railway`: each service runs in a container of Railway's.
    pub railway: bool,
    /// Kamal fronts the app with kamal-proxy.
    pub kamal_proxy_timeout: Option<Sourced<u64>>,
    /// `deploy.kubernetes`: rollout policy and target version.
    pub kubernetes: Option<KubernetesPlan>,
    /// TLS in kamal-proxy and the hosts of the role it fronts (Kamal deployments with
    /// an app server).
    pub kamal_tls: Option<KamalTlsPlan>,
    /// Lookups by name, built once by `resolve` (see `PlanIndex`).
    #[serde(skip)]
    pub index: PlanIndex,
}

/// TLS in kamal-proxy, on the role it fronts (the first app server).
#[derive(Clone, Debug, Serialize)]
pub struct KamalTlsPlan {
    /// `deploy.kamal.proxy.ssl`, or implied by a custom certificate.
    pub ssl: bool,
    /// Both `certificate_pem` and `private_key_pem` secrets are given.
    pub custom_certificate: bool,
    /// The proxied role (a service name) and its spec path.
    pub role: String,
    pub role_path: String,
    /// Hosts Kamal deploys that role to: its machine group's addresses (else its count).
    pub hosts: u64,
    /// Where the host count comes from (`machines.web.addresses`).
    pub hosts_path: String,
}

/// Every lookup a rule or target makes, built once per plan so that each rule costs
/// time in proportion to the plan's size: services and machines by name, edges by
/// source and by target, poolers by the postgres they pool for, services by kind,
/// and nginx upstreams by the service they route to. The `Plan` methods below are
/// the one way to find these; scanning `services` or `edges` inside a loop over
/// services makes a rule quadratic in the number of services.
///
/// Names are hashed once, into `services`; what hangs off a service is kept by its
/// position (edges, poolers and upstreams only ever name services of the plan).
/// The names are the spec's own, so a fast fixed hasher does (no untrusted keys
/// arrive here that a randomised SipHash would have to defend against).
#[derive(Clone, Debug, Default)]
pub struct PlanIndex {
    services: HashMap<String, usize, FixedState>,
    machines: HashMap<String, usize, FixedState>,
    /// Per service position: what it opens, what opens it, the poolers in front of
    /// it, and the (nginx service, upstream) positions routing to it.
    edges_from: Vec<Vec<usize>>,
    edges_to: Vec<Vec<usize>>,
    poolers_of: Vec<Vec<usize>>,
    upstreams_to: Vec<Vec<(usize, usize)>>,
    /// Per `Kind as usize`.
    by_kind: Vec<Vec<usize>>,
}

impl PlanIndex {
    /// Indexes the plan's services, machines and edges as they are now.
    pub fn build(services: &[ServicePlan], machines: &[MachinePlan], edges: &[Edge]) -> Self {
        let mut index = PlanIndex {
            services: HashMap::with_capacity_and_hasher(services.len(), FixedState::default()),
            machines: HashMap::with_capacity_and_hasher(machines.len(), FixedState::default()),
            edges_from: vec![Vec::new(); services.len()],
            edges_to: vec![Vec::new(); services.len()],
            poolers_of: vec![Vec::new(); services.len()],
            upstreams_to: vec![Vec::new(); services.len()],
            by_kind: vec![Vec::new(); Kind::Qdrant as usize + 1],
        };
        for (i, service) in services.iter().enumerate() {
            index.services.entry(service.name.clone()).or_insert(i);
            index.by_kind[service.kind as usize].push(i);
        }
        for (i, service) in services.iter().enumerate() {
            match &service.detail {
                Detail::Pgbouncer(p) => {
                    if let Some(target) = p.target.as_deref().and_then(|t| index.services.get(t)) {
                        index.poolers_of[*target].push(i);
                    }
                }
                Detail::Nginx(n) => {
                    for (u, upstream) in n.upstreams.iter().enumerate() {
                        if let Some(&target) = index.services.get(&upstream.to) {
                            index.upstreams_to[target].push((i, u));
                        }
                    }
                }
                _ => {}
            }
        }
        for (i, machine) in machines.iter().enumerate() {
            index.machines.entry(machine.name.clone()).or_insert(i);
        }
        for (i, edge) in edges.iter().enumerate() {
            if let Some(&from) = index.services.get(&edge.from) {
                index.edges_from[from].push(i);
            }
            if let Some(&to) = index.services.get(&edge.to) {
                index.edges_to[to].push(i);
            }
        }
        index
    }

    /// What `by` holds for the service `name` (nothing for a name that is not one).
    fn of<'a, T>(&self, by: &'a [Vec<T>], name: &str) -> &'a [T] {
        self.services.get(name).map_or(&[][..], |&i| by[i].as_slice())
    }
}

impl Plan {
    /// Rebuilds the index; call after changing names, edges or poolers' targets.
    pub fn reindex(&mut self) {
        self.index = PlanIndex::build(&self.services, &self.machines, &self.edges);
    }
    pub fn service(&self, name: &str) -> Option<&ServicePlan> {
        self.index.services.get(name).map(|&i| &self.services[i])
    }
    pub fn machine(&self, name: &str) -> Option<&MachinePlan> {
        self.index.machines.get(name).map(|&i| &self.machines[i])
    }
    /// The addresses a server's own config file listens on besides loopback, when the
    /// file is for a host install (no compose, Kamal, Kubernetes or Railway target runs
    /// it in a container): the private addresses of the machine group it is placed on,
    /// empty when the spec lists none. `None` when the file is read inside a container,
    /// whose only interfaces are its own network's. Only IP addresses: a host name may
    /// resolve to a public address, and PgBouncer refuses to start on one that does
    /// not resolve (`FATAL getaddrinfo`).
    pub fn host_listen(&self, service: &ServicePlan) -> Option<Vec<String>> {
        if self.containerized || self.railway {
            return None;
        }
        let addresses = service.machine.as_deref().and_then(|m| self.machine(m)).map_or(&[][..], |m| m.addresses.as_slice());
        Some(addresses.iter().filter(|a| a.parse::<std::net::IpAddr>().is_ok()).cloned().collect())
    }
    /// Every edge whose target is `name`, a pooler's server connections included.
    pub fn edges_into<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Edge> + 'a {
        self.index.of(&self.index.edges_to, name).iter().map(|&i| &self.edges[i])
    }
    /// Edges whose target is `name`, except a pooler's own server connections (those
    /// are `PgbouncerPlan::server_connections`).
    pub fn edges_to<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Edge> + 'a {
        self.edges_into(name).filter(|e| e.from_kind != Kind::Pgbouncer)
    }
    /// Edges a service opens.
    pub fn edges_from<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a Edge> + 'a {
        self.index.of(&self.index.edges_from, name).iter().map(|&i| &self.edges[i])
    }
    /// Connections the surge pods of a Kubernetes rolling update add to what `target`'s
    /// clients open (pooler server connections excepted, as in `edges_to`): each app and
    /// job client's `rollout_surge x processes x per-process pool`.
    pub fn rollout_extra(&self, target: &str) -> u64 {
        sum(self.edges_to(target).map(|e| {
            let surge = self.service(&e.from).and_then(|s| s.rollout_surge.as_ref()).map_or(0, |s| s.value);
            mul(&[surge, e.processes, e.per_process.value])
        }))
    }
    /// The PgBouncers that pool for the postgres `name`, with their details.
    pub fn poolers_of<'a>(&'a self, name: &str) -> impl Iterator<Item = (&'a ServicePlan, &'a PgbouncerPlan)> + 'a {
        self.index.of(&self.index.poolers_of, name).iter().filter_map(|&i| {
            let service = &self.services[i];
            match &service.detail {
                Detail::Pgbouncer(p) => Some((service, &**p)),
                _ => None,
            }
        })
    }
    /// Services of one kind, in spec order.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &ServicePlan> {
        self.index.by_kind.get(kind as usize).map_or(&[][..], Vec::as_slice).iter().map(|&i| &self.services[i])
    }
    /// nginx upstreams that route to the service `name`: (the nginx, the upstream).
    pub fn upstreams_to<'a>(&'a self, name: &str) -> impl Iterator<Item = (&'a ServicePlan, &'a UpstreamPlan)> + 'a {
        self.index.of(&self.index.upstreams_to, name).iter().filter_map(|&(i, u)| {
            let service = &self.services[i];
            match &service.detail {
                Detail::Nginx(n) => n.upstreams.get(u).map(|upstream| (service, upstream)),
                _ => None,
            }
        })
    }
    /// App servers (gunicorn, puma) in spec order.
    pub fn apps(&self) -> impl Iterator<Item = &ServicePlan> {
        self.services.iter().filter(|s| s.kind.is_app())
    }
}

/// Overflow-checked multiplication for connection arithmetic: saturates at u64::MAX,
/// which every budget comparison then reports as exceeded.
pub fn mul(values: &[u64]) -> u64 {
    values.iter().try_fold(1u64, |acc, &v| acc.checked_mul(v)).unwrap_or(u64::MAX)
}

/// Overflow-checked sum (saturating).
pub fn sum(values: impl IntoIterator<Item = u64>) -> u64 {
    values.into_iter().fold(0u64, u64::saturating_add)
}
