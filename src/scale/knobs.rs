//! The knobs `scale` may turn for each finding, in the order of what they cost.
//!
//! Cost order (cheapest first), the order the search tries them in:
//! 0. connection limits that only change a number in a config file: per-process pools,
//!    PgBouncer `max_client_conn` / `default_pool_size` / `max_db_connections` /
//!    `max_user_connections` / `nofile`, Redis `maxclients` and `nofile`, nginx
//!    `worker_connections` / `worker_rlimit_nofile`, `somaxconn`, rate-limit zones; and
//!    lowering what oversteps a bound (workers past the CPUs, nginx `max_conns` past a
//!    replica's slots, PgBouncer `max_db_connections` past PostgreSQL's room), or a
//!    per-process pool (its `max_overflow` first) past what its process's slots can
//!    use, when it overfills a budget;
//! 1. concurrency inside a process (threads, gevent worker_connections) up to a
//!    ceiling, and PostgreSQL `max_connections` while its memory holds them (with
//!    its memory unknown or its work_mem derived, up to PGTune's figure for its
//!    workload: see `unbounded_connections_cap`; lowered to what its clients need
//!    when its memory cannot hold what is written, and to what it holds when they
//!    need more);
//! 2. processes per replica (workers) within the replica's CPUs, nginx
//!    `worker_processes`;
//! 3. replicas (or the autoscaler's `max`);
//! 4. machines (a group's `count`): hardware, last. A group that lists its hosts'
//!    addresses needs the user to list more: `scale` turns such a proposal into a
//!    wall (see `hosts_to_list` in the parent module).
//!
//! Lowering follows the same order. A budget that cannot hold its clients' demand
//! (`BUDGETS`: a PostgreSQL's connections, a PgBouncer's clients or server pool, a
//! Redis's clients) is first raised where that is a setting of its own cost or less;
//! then what asks for it comes down, as far as the target load allows and no further
//! (`shed`): pools to one connection per concurrent slot (cost 0), then the app
//! servers' concurrency carrying their pools along (1), processes (2), replicas or the
//! autoscaler's `max` (3). At equal cost the raise comes first. A pool below its
//! process's slots (`app-pool-below-concurrency`) is raised to them, unless that
//! overfills a budget (or overfills it further) and lowering the slots to the pool
//! carries the load: then the slots come down, as `check`'s own fix says.
//!
//! README "Scaling a spec" and `scale --help` state the same order.
//!
//! Bigger machines (more memory or CPUs) are never applied: when nothing within the
//! machines fits, `scale` names the wall and the smallest such change instead.

use crate::diag::Diagnostic;
use crate::load::path::{self, Segment};
use crate::plan::{Detail, Kind, Origin, Plan, PostgresPlan, ServicePlan, Sourced};
use crate::spec::{WorkerClass, Workload};

/// Which way a knob moves away from what the user wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Direction {
    #[default]
    Up,
    Down,
}

/// How a knob's number is written in the spec.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unit {
    /// A plain integer.
    #[default]
    Count,
    /// A size in MiB, written `Nm` (nginx and Redis read `m` as MiB).
    Mebibytes,
}

/// One setting the search may change.
#[derive(Clone, Debug, Default)]
pub struct Knob {
    /// JSON pointer of the setting in the spec.
    pub pointer: String,
    /// Its value today (written or defaulted).
    pub current: u64,
    pub direction: Direction,
    /// The furthest the search may move it.
    pub limit: u64,
    /// Position in the cost order above.
    pub cost: u8,
    pub unit: Unit,
    /// Several settings moved as one, in proportion to what the user wrote (pointer,
    /// weight): the knob's value is their sum, each gets its share, at least 1.
    pub shares: Vec<(String, u64)>,
    /// Settings that move along with this one (pointer, value when the knob is at
    /// `current`, divisor): each rises by the knob's rise / divisor. PostgreSQL's
    /// max_connections carries its poolers' pool sizes, which alone cannot pass it.
    pub follows: Vec<(String, u64, u64)>,
    /// The knob lowers what asks for a budget (pools, concurrency, processes,
    /// replicas): it may not newly fail any rule, nor fail a rule about the load by
    /// more, so it never trades the budget for capacity (the search would go round,
    /// raising threads for the load and lowering them for the database).
    pub sheds: bool,
    /// Pools that come down with a process's concurrency (see `Clamp`).
    pub clamps: Vec<Clamp>,
}

/// A per-process pool that a lowered concurrency carries down with it: a pool larger
/// than the slots that can use it never fills from them, so the connections it may
/// open come down to the slots (its max_overflow first, then the pool itself).
#[derive(Clone, Debug)]
pub struct Clamp {
    /// Pointers of the pool and of its max_overflow.
    pub pool: String,
    pub overflow: String,
    /// Their values when the knob was made (the search state it moves from).
    pub pool_now: u64,
    pub overflow_now: u64,
    /// Connections a process needs beyond its slots (solid_queue's polling and
    /// heartbeat).
    pub extra: u64,
}

impl Clamp {
    /// (pool, max_overflow) with the process's slots at `slots`; None when the pool
    /// already fits them.
    pub fn at(&self, slots: u64) -> Option<(u64, u64)> {
        let cap = slots.saturating_add(self.extra).max(1);
        if self.pool_now.saturating_add(self.overflow_now) <= cap {
            return None;
        }
        let pool = self.pool_now.min(cap);
        Some((pool, cap - pool))
    }
}

/// Most threads per gunicorn gthread worker `scale` proposes: past a few threads a
/// Python process is bound by its GIL, and more threads only queue inside it.
pub const GTHREAD_MAX_THREADS: u64 = 8;
/// Most Puma threads per process (the Ruby VM lock likewise; Puma's default is 5).
pub const PUMA_MAX_THREADS: u64 = 5;
/// Most green threads per gevent/uvicorn worker (gunicorn's default worker_connections).
pub const GEVENT_MAX_CONNECTIONS: u64 = 1000;
/// Most replicas of one service (or autoscale max) the search goes to.
pub const MAX_REPLICAS: u64 = 1000;
/// Most machines in one group the search goes to: as many as replicas, so a replica
/// may have a machine of its own.
pub const MAX_MACHINES: u64 = 1000;
/// The largest connection-limit setting tried (PostgreSQL's max_connections maximum).
pub const MAX_CONNECTIONS: u64 = 262_143;
/// Largest fd limit tried.
pub const MAX_NOFILE: u64 = 1_048_576;

/// How far `scale` raises PostgreSQL's max_connections when its memory is unknown:
/// PGTune's max_connections for the workload (web 200, oltp 300, dw 40, mixed 100),
/// or what is written when that is more. Each connection may take work_mem x 2 in
/// sorts and hashes; without the memory, the postgres-memory rule cannot say how many
/// fit, and PGTune's figures are the largest commonly sized for that use. Past it,
/// `scale` names the wall: give the memory, or put PgBouncer in front.
pub fn unknown_memory_connections(workload: Workload) -> u64 {
    match workload {
        Workload::Web => 200,
        Workload::Oltp => 300,
        Workload::Dw => 40,
        Workload::Mixed => 100,
    }
}

/// PostgreSQL's default work_mem (4MB): the least per-sort memory `scale` leaves a
/// server whose work_mem is derived from its max_connections.
pub const POSTGRES_DEFAULT_WORK_MEM: u64 = 4 * 1024 * 1024;

/// How far `scale` raises max_connections when postgres-memory cannot bound it, or
/// None when it can (memory known and work_mem written). With the memory unknown the
/// rule does not run; with work_mem not written the plan derives it as `(memory -
/// shared_buffers) / ((max_connections + max_worker_processes) x 3)`, so the rule holds
/// at any count while each connection's sort memory shrinks (2,403 connections on
/// 4 GiB leave 434kB, a tenth of PostgreSQL's default): more connections would be paid
/// for by slower queries and thousands of backend processes, which is not a change an
/// operator asked for. Either way the cap is PGTune's figure for the workload
/// (`unknown_memory_connections`), with a derived work_mem also no further than keeps
/// it at PostgreSQL's default 4MB, and never below what is written. Past it the wall
/// names the way on: give the memory or write work_mem, or pool in front.
pub fn unbounded_connections_cap(plan: &Plan, postgres: &ServicePlan, pg: &PostgresPlan) -> Option<u64> {
    let pgtune = unknown_memory_connections(pg.workload);
    let cap = match &pg.tuning {
        None => pgtune,
        Some(t) if matches!(t.work_mem.origin, Origin::Spec { .. }) => return None,
        Some(t) => {
            let ram = postgres.memory.as_ref().map(|m| m.value).or_else(|| plan.machine(postgres.machine.as_deref()?)?.memory).unwrap_or(0);
            let at_default_work_mem = (ram.saturating_sub(t.shared_buffers.value) / (3 * POSTGRES_DEFAULT_WORK_MEM)).saturating_sub(pg.max_worker_processes.value);
            pgtune.min(at_default_work_mem)
        }
    };
    Some(cap.max(pg.max_connections.value))
}

/// The max_connections knob of a postgres: up to PostgreSQL's maximum while its memory
/// rule can bound it, else up to `unbounded_connections_cap`.
fn max_connections_knob(plan: &Plan, postgres: &ServicePlan, pg: &PostgresPlan) -> Knob {
    let limit = unbounded_connections_cap(plan, postgres, pg).unwrap_or(MAX_CONNECTIONS);
    knob(&pg.max_connections, Direction::Up, limit, 1)
}

fn pointer(path: &str) -> String {
    path::to_pointer(path)
}

fn knob(value: &Sourced<u64>, direction: Direction, limit: u64, cost: u8) -> Knob {
    Knob { pointer: pointer(value.path()), current: value.value, direction, limit, cost, ..Knob::default() }
}

/// The service a finding's path names (`services.NAME...`).
fn service_of<'a>(plan: &'a Plan, finding_path: &str) -> Option<&'a ServicePlan> {
    match path::parse(finding_path).as_slice() {
        [Segment::Key(first), Segment::Key(name), ..] if first == "services" => plan.service(name),
        _ => None,
    }
}

/// The machine group a finding's path names (`machines.NAME...`).
fn machine_of(finding_path: &str) -> Option<String> {
    match path::parse(finding_path).as_slice() {
        [Segment::Key(first), Segment::Key(name), ..] if first == "machines" => Some(name.clone()),
        _ => None,
    }
}

/// The replicas knob of a service: its autoscaler's `max` when it has one.
fn replicas_knob(service: &ServicePlan) -> Knob {
    knob(&service.replicas, Direction::Up, MAX_REPLICAS.max(service.replicas.value), 3)
}

/// Concurrency knobs of the app servers: threads, then workers, then replicas.
pub fn app_capacity(plan: &Plan) -> Vec<Knob> {
    let mut knobs = Vec::new();
    for app in plan.apps() {
        knobs.extend(app_knobs(app));
    }
    knobs.sort_by_key(|k| k.cost);
    knobs
}

fn app_knobs(app: &ServicePlan) -> Vec<Knob> {
    let mut knobs = Vec::new();
    let cpus = app.cpus.as_ref().map(|c| c.value.ceil().max(1.0) as u64);
    match &app.detail {
        Detail::Gunicorn(g) => {
            match g.worker_class.value {
                WorkerClass::Gthread => knobs.push(knob(&g.threads, Direction::Up, GTHREAD_MAX_THREADS.max(g.threads.value), 1)),
                WorkerClass::Gevent | WorkerClass::Uvicorn => {
                    knobs.push(knob(&g.worker_connections, Direction::Up, GEVENT_MAX_CONNECTIONS.max(g.worker_connections.value), 1))
                }
                WorkerClass::Sync => {}
            }
            // `auto` follows the CPUs by itself; only a number is the user's to raise.
            if !matches!(g.workers.origin, crate::plan::Origin::Derived { .. })
                && let Some(cpus) = cpus
            {
                knobs.push(knob(&g.workers, Direction::Up, 2 * cpus + 1, 2));
            }
        }
        Detail::Puma(p) => {
            knobs.push(knob(&p.threads, Direction::Up, PUMA_MAX_THREADS.max(p.threads.value), 1));
            if let Some(cpus) = cpus
                && cpus > 1
            {
                knobs.push(knob(&p.workers, Direction::Up, cpus, 2));
            }
        }
        _ => {}
    }
    knobs.push(replicas_knob(app));
    knobs
}

/// Knobs that raise what reaches a postgres: app pools, poolers' sizes, then
/// max_connections.
fn database_reach(plan: &Plan) -> Vec<Knob> {
    let mut knobs = Vec::new();
    for app in plan.apps() {
        for edge in plan.edges_from(&app.name) {
            if matches!(edge.to_kind, Kind::Postgres | Kind::Pgbouncer) && !edge.persistent {
                knobs.push(knob(&edge.pool, Direction::Up, MAX_CONNECTIONS, 0));
            }
        }
    }
    for pooler in plan.of_kind(Kind::Pgbouncer) {
        if let Detail::Pgbouncer(p) = &pooler.detail {
            knobs.push(knob(&p.default_pool_size, Direction::Up, MAX_CONNECTIONS, 0));
            if p.max_db_connections.value > 0 {
                knobs.push(knob(&p.max_db_connections, Direction::Up, MAX_CONNECTIONS, 0));
            }
            if p.max_user_connections.value > 0 {
                knobs.push(knob(&p.max_user_connections, Direction::Up, MAX_CONNECTIONS, 0));
            }
        }
    }
    for postgres in plan.of_kind(Kind::Postgres) {
        if let Detail::Postgres(pg) = &postgres.detail {
            let mut raise = max_connections_knob(plan, postgres, pg);
            // A pooler already at what the database accepts gets nothing from more
            // max_connections alone: its pool grows with it.
            for (_, pgb) in plan.poolers_of(&postgres.name) {
                let pools = pgb.pools.max(1);
                raise.follows.push((pointer(pgb.default_pool_size.path()), pgb.default_pool_size.value, pools));
                if pgb.max_db_connections.value > 0 {
                    raise.follows.push((pointer(pgb.max_db_connections.path()), pgb.max_db_connections.value, 1));
                }
                if pgb.max_user_connections.value > 0 {
                    raise.follows.push((pointer(pgb.max_user_connections.path()), pgb.max_user_connections.value, 1));
                }
            }
            knobs.push(raise);
        }
    }
    knobs
}

/// Knobs that make room at a postgres: its max_connections, else capping what its
/// poolers may open.
fn postgres_room(plan: &Plan, postgres: &ServicePlan) -> Vec<Knob> {
    let mut knobs = Vec::new();
    if let Detail::Postgres(pg) = &postgres.detail {
        knobs.push(max_connections_knob(plan, postgres, pg));
    }
    for (_, pgb) in plan.poolers_of(&postgres.name) {
        let per_db = match pgb.max_db_connections.value {
            0 => pgb.default_pool_size.value.saturating_add(pgb.reserve_pool_size.value).saturating_mul(pgb.users.len() as u64),
            cap => cap,
        };
        let mut cap = knob(&pgb.max_db_connections, Direction::Down, 1, 0);
        cap.current = per_db;
        knobs.push(cap);
    }
    knobs
}

/// Findings about a budget (connections a server accepts) that the clients' demand
/// may overfill: besides raising the budget, `scale` may lower what asks for it.
pub const BUDGETS: &[&str] = &["postgres-connections-exhausted", "deploy-overlap-exhausts-postgres", "pgbouncer-server-pool", "pgbouncer-client-limit", "redis-clients-exhausted"];

/// Knobs that lower what the clients of `target` ask of it, cheapest first: each
/// pool's max_overflow, then the pool, down to one connection per concurrent slot of
/// the process (cost 0: a number in a config file); then, of the app servers among
/// the clients, the concurrency inside a process (carrying its pools down with it,
/// cost 1), processes per replica (cost 2) and replicas or the autoscaler's `max`
/// (cost 3). Every one sheds: it stops where a rule about the load (capacity, latency,
/// the pools the load needs, the pool a process's slots need) would fail, so what is
/// left is what the target load needs. Job servers' concurrency is not lowered: no
/// rule says how much of it a queue needs.
fn shed(plan: &Plan, target: &str) -> Vec<Knob> {
    let mut knobs = Vec::new();
    let mut apps: Vec<&ServicePlan> = Vec::new();
    for edge in plan.edges_to(target) {
        if let Some(client) = plan.service(&edge.from)
            && client.kind.is_app()
            && !apps.iter().any(|a| a.name == client.name)
        {
            apps.push(client);
        }
        // Django's persistent connections are one per thread, a Rails process keeps a
        // pool per database: no single number to lower.
        if edge.persistent || edge.database_pools.len() > 1 {
            continue;
        }
        let slots = edge.slots_needing.value;
        if edge.max_overflow > 0 && edge.per_process.value > slots {
            let floor = slots.saturating_sub(edge.pool.value);
            knobs.push(Knob { pointer: pointer(&format!("{}.max_overflow", edge.path)), current: edge.max_overflow, direction: Direction::Down, limit: floor, cost: 0, sheds: true, ..Knob::default() });
        }
        // A pool nobody wrote is one per slot already (SQLAlchemy's 5 + 10 is left to
        // its max_overflow: writing pool_size would drop the default overflow too).
        if !edge.pool.is_default() && edge.per_process.value > slots {
            let floor = slots.saturating_sub(edge.max_overflow).max(1);
            let mut k = knob(&edge.pool, Direction::Down, floor, 0);
            k.sheds = true;
            knobs.push(k);
        }
    }
    for app in apps {
        // Only a database pool is carried down: `app-pool-below-concurrency` keeps it at
        // the slots when they go back up, which no rule does for other pools.
        let clamps: Vec<Clamp> = plan
            .edges_from(&app.name)
            .filter(|e| e.to == target && matches!(e.to_kind, Kind::Postgres | Kind::Pgbouncer) && !e.pool.is_default() && !e.persistent && e.database_pools.len() <= 1)
            .map(|e| Clamp {
                pool: pointer(e.pool.path()),
                overflow: pointer(&format!("{}.max_overflow", e.path)),
                pool_now: e.pool.value,
                overflow_now: e.max_overflow,
                extra: e.slots_needing.value.saturating_sub(app.slots_per_process.value),
            })
            .collect();
        let mut concurrency = match &app.detail {
            Detail::Gunicorn(g) => match g.worker_class.value {
                WorkerClass::Gthread => Some(knob(&g.threads, Direction::Down, 1, 1)),
                WorkerClass::Gevent | WorkerClass::Uvicorn => Some(knob(&g.worker_connections, Direction::Down, 1, 1)),
                WorkerClass::Sync => None,
            },
            Detail::Puma(p) => Some(knob(&p.threads, Direction::Down, puma_fewest_threads(p), 1)),
            _ => None,
        };
        if let Some(k) = concurrency.as_mut() {
            k.clamps = clamps;
        }
        let processes = match &app.detail {
            Detail::Gunicorn(g) if !matches!(g.workers.origin, Origin::Derived { .. }) => Some(knob(&g.workers, Direction::Down, 1, 2)),
            // 0 is Puma's single mode, not fewer workers.
            Detail::Puma(p) if p.workers.value > 1 => Some(knob(&p.workers, Direction::Down, 1, 2)),
            _ => None,
        };
        // An autoscaled service's `max` goes no lower than its `min`.
        let fewest = app.autoscale.as_ref().map_or(1, |a| a.min.value.max(1));
        let replicas = knob(&app.replicas, Direction::Down, fewest, 3);
        for mut k in concurrency.into_iter().chain(processes).chain([replicas]) {
            k.sheds = true;
            knobs.push(k);
        }
    }
    knobs
}

/// The fewest threads a Puma may be lowered to: a min_threads written is Puma's floor
/// (it refuses a max below it); one not written follows the threads down.
fn puma_fewest_threads(p: &crate::plan::PumaPlan) -> u64 {
    if p.min_threads.is_written() { p.min_threads.value.max(1) } else { 1 }
}

/// The alternatives to a pool below its process's slots: raise the pool (cost 0), or
/// lower the slots to it (cost 1) where the load leaves room. The search takes the
/// raise unless it overfills a budget the lowering does not (see `search`).
fn pool_or_slots(plan: &Plan, finding: &Diagnostic) -> Vec<Knob> {
    let Some(edge) = plan.edges.iter().find(|e| e.pool.path() == finding.path) else { return Vec::new() };
    let mut knobs = vec![knob(&edge.pool, Direction::Up, MAX_CONNECTIONS, 0)];
    // A Rails process with a pool per database: lowering the threads is one choice
    // for all of them, left to the raise.
    if edge.database_pools.len() > 1 {
        return knobs;
    }
    let Some(client) = plan.service(&edge.from).filter(|c| c.kind.is_app()) else { return knobs };
    let extra = edge.slots_needing.value.saturating_sub(client.slots_per_process.value);
    let fits = edge.per_process.value.saturating_sub(extra);
    if fits == 0 {
        return knobs;
    }
    let lower = match &client.detail {
        Detail::Gunicorn(g) => match g.worker_class.value {
            WorkerClass::Gthread => Some(knob(&g.threads, Direction::Down, fits, 1)),
            WorkerClass::Gevent | WorkerClass::Uvicorn => Some(knob(&g.worker_connections, Direction::Down, fits, 1)),
            WorkerClass::Sync => None,
        },
        Detail::Puma(p) if fits >= puma_fewest_threads(p) => Some(knob(&p.threads, Direction::Down, fits, 1)),
        _ => None,
    };
    knobs.extend(lower.map(|mut k| {
        k.sheds = true;
        k
    }));
    knobs
}

/// Whether the knobs of a rule add up (raise one to its limit, then the next), or are
/// alternatives (the first that alone clears the finding wins).
pub fn accumulates(rule: &str) -> bool {
    matches!(rule, "capacity-below-load" | "latency-target-at-risk" | "db-pool-below-load" | "nginx-worker-connections")
}

/// The knobs that may clear a finding, cheapest first.
pub fn for_finding(finding: &Diagnostic, plan: &Plan) -> Vec<Knob> {
    let service = service_of(plan, &finding.path);
    let mut knobs = match finding.rule.as_str() {
        "capacity-below-load" | "latency-target-at-risk" => app_capacity(plan),
        "db-pool-below-load" => {
            let mut k = database_reach(plan);
            k.extend(app_capacity(plan));
            k
        }
        "app-pool-below-concurrency" => pool_or_slots(plan, finding),
        "pgbouncer-client-limit" => match service.map(|s| (s, &s.detail)) {
            Some((s, Detail::Pgbouncer(p))) => {
                let mut k = vec![knob(&p.max_client_conn, Direction::Up, MAX_CONNECTIONS, 0)];
                k.extend(shed(plan, &s.name));
                k
            }
            _ => Vec::new(),
        },
        "postgres-connections-exhausted" | "deploy-overlap-exhausts-postgres" => {
            let mut k = match service.map(|s| (s, &s.detail)) {
                Some((s, Detail::Postgres(_))) => postgres_room(plan, s),
                // A rollout's overlap may exhaust a pooler's client limit or a redis too.
                Some((_, Detail::Pgbouncer(p))) => vec![knob(&p.max_client_conn, Direction::Up, MAX_CONNECTIONS, 0)],
                Some((_, Detail::Redis(r))) => vec![knob(&r.maxclients, Direction::Up, MAX_CONNECTIONS.max(r.maxclients.value), 0)],
                _ => Vec::new(),
            };
            if let Some(s) = service {
                k.extend(shed(plan, &s.name));
            }
            k
        }
        "pgbouncer-server-pool" => match service.map(|s| &s.detail) {
            Some(Detail::Pgbouncer(p)) => match p.target.as_deref().and_then(|t| plan.service(t)) {
                // Its direct clients take room from the pooler's server connections.
                Some(postgres) => {
                    let mut k = postgres_room(plan, postgres);
                    k.extend(shed(plan, &postgres.name));
                    k
                }
                None => Vec::new(),
            },
            _ => Vec::new(),
        },
        "redis-clients-exhausted" => match service {
            Some(s) => match &s.detail {
                Detail::Redis(r) => {
                    let mut maxclients = knob(&r.maxclients, Direction::Up, MAX_CONNECTIONS.max(r.maxclients.value), 0);
                    let mut k = Vec::new();
                    if let Some(nofile) = &s.nofile {
                        // Redis lowers maxclients to nofile - 32: a maxclients past what
                        // the fd limit allows takes the limit along.
                        let needed = r.maxclients.value.saturating_add(32);
                        maxclients.follows.push((pointer(nofile.path()), nofile.value.max(needed), 1));
                        k.push(knob(nofile, Direction::Up, MAX_NOFILE, 0));
                    }
                    k.insert(0, maxclients);
                    k.extend(shed(plan, &s.name));
                    k
                }
                _ => Vec::new(),
            },
            None => Vec::new(),
        },
        "nginx-worker-connections" => match service {
            Some(s) => match &s.detail {
                Detail::Nginx(n) => {
                    let mut k = vec![knob(&n.worker_connections, Direction::Up, 65_535.max(n.worker_connections.value), 0)];
                    if let Some(rlimit) = &n.worker_rlimit_nofile {
                        k.push(knob(rlimit, Direction::Up, MAX_NOFILE, 0));
                    }
                    if !n.worker_processes_auto
                        && let Some(cpus) = &s.cpus
                    {
                        k.push(knob(&n.worker_processes, Direction::Up, cpus.value.ceil().max(1.0) as u64, 2));
                    }
                    k.push(replicas_knob(s));
                    k
                }
                _ => Vec::new(),
            },
            None => Vec::new(),
        },
        "nginx-rlimit-nofile" => match service.map(|s| &s.detail) {
            Some(Detail::Nginx(n)) => vec![knob(&n.rlimit_nofile, Direction::Up, MAX_NOFILE, 0)],
            _ => Vec::new(),
        },
        "backlog-over-somaxconn" => match service {
            Some(s) => vec![knob(&s.somaxconn, Direction::Up, MAX_NOFILE, 0)],
            None => Vec::new(),
        },
        // The finding sits on the fd limit itself.
        "pgbouncer-fd-limit" => vec![Knob {
            pointer: pointer(&finding.path),
            current: finding.numbers.get("nofile").map_or(0, |&n| n as u64),
            direction: Direction::Up,
            limit: MAX_NOFILE,
            cost: 0,
            ..Knob::default()
        }],
        // Fewer connections, each with its work_mem, as long as every client still
        // gets one; past that the wall names the memory or a pooler.
        // When the clients ask for more than the memory holds, max_connections goes to
        // what it holds, and the clients' demand becomes postgres-connections-exhausted,
        // whose knobs lower what asks (or name the wall: the memory, or a pooler).
        "postgres-memory" => match service.map(|s| &s.detail) {
            Some(Detail::Postgres(pg)) => {
                let floor = pg.demand.saturating_add(pg.superuser_reserved_connections.value).saturating_add(pg.reserved_connections.value).max(1);
                vec![knob(&pg.max_connections, Direction::Down, floor, 1), knob(&pg.max_connections, Direction::Down, 1, 1)]
            }
            _ => Vec::new(),
        },
        "workers-over-cpus" => match service.map(|s| &s.detail) {
            Some(Detail::Gunicorn(g)) => vec![knob(&g.workers, Direction::Down, 1, 0)],
            Some(Detail::Puma(p)) => vec![knob(&p.workers, Direction::Down, 0, 0)],
            _ => Vec::new(),
        },
        "nginx-workers-over-cpus" => match service.map(|s| &s.detail) {
            Some(Detail::Nginx(n)) if !n.worker_processes_auto => vec![knob(&n.worker_processes, Direction::Down, 1, 0)],
            _ => Vec::new(),
        },
        // Every upstream of this nginx with a max_conns to the same service, lowered
        // together in proportion (or the service's slots raised).
        "upstream-max-conns-over-slots" => match service.map(|s| &s.detail) {
            Some(Detail::Nginx(n)) => {
                let target = n.upstreams.iter().find(|u| pointer(u.max_conns.path()) == pointer(&finding.path)).map(|u| u.to.clone());
                let members: Vec<_> = n.upstreams.iter().filter(|u| u.max_conns.value > 0 && Some(&u.to) == target.as_ref()).collect();
                let shares: Vec<(String, u64)> = members.iter().map(|u| (pointer(u.max_conns.path()), u.max_conns.value)).collect();
                let total: u64 = shares.iter().map(|(_, w)| w).sum();
                let mut k = Vec::new();
                if !members.is_empty() {
                    k.push(Knob {
                        pointer: shares[0].0.clone(),
                        current: total,
                        direction: Direction::Down,
                        limit: members.len() as u64,
                        cost: 0,
                        shares,
                        ..Knob::default()
                    });
                }
                k
            }
            _ => Vec::new(),
        },
        "machine-memory-oversubscribed" | "machine-cpu-oversubscribed" => match machine_of(&finding.path).and_then(|m| plan.machine(&m).cloned()) {
            Some(m) => vec![Knob {
                pointer: pointer(&format!("{}.count", m.path)),
                current: m.count,
                direction: Direction::Up,
                limit: MAX_MACHINES.max(m.count),
                cost: 4,
                ..Knob::default()
            }],
            None => Vec::new(),
        },
        "rate-limit-zone-size" => vec![Knob {
            pointer: pointer(&finding.path),
            current: finding.numbers.get("zone_bytes").map_or(1.0, |b| (b / 1_048_576.0).ceil()) as u64,
            direction: Direction::Up,
            limit: 4096,
            cost: 0,
            unit: Unit::Mebibytes,
            ..Knob::default()
        }],
        _ => Vec::new(),
    };
    knobs.retain(|k| match k.direction {
        Direction::Up => k.limit > k.current,
        Direction::Down => k.limit < k.current,
    });
    knobs.sort_by_key(|k| k.cost);
    knobs
}
