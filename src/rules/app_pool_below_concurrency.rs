//! Rule `app-pool-below-concurrency`.

use super::{Check, finding};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Edge, Kind, Plan, ServicePlan, mul};
use crate::spec::{Framework, WorkerClass};

declare_rule! {
    /// A process's database pool is smaller than the requests or jobs it runs at once.
    ///
    /// ## What it checks
    /// For every pool a service opens to a `postgres` or a `pgbouncer`, the connections
    /// one process may hold (`pool`, SQLAlchemy-style `pool + max_overflow`) must be at
    /// least the concurrent slots of that process that may touch the database:
    /// gunicorn gthread `threads`, gevent `worker_connections` (one greenlet per
    /// request), puma max `threads`, sidekiq `concurrency`, solid_queue `threads + 2`
    /// (its polling and heartbeat take a connection each), celery/rq `concurrency`.
    /// Pools that are not written (the default is one per slot) and Django persistent
    /// connections (one per thread) cannot fall short and are skipped, except
    /// SQLAlchemy's, whose QueuePool defaults to `pool_size` 5 + `max_overflow` 10.
    /// A Rails process keeps one pool per database of database.yml (`primary`,
    /// `cache`, `queue`, `cable`: `databases` of the edge); each is checked on its own.
    ///
    /// ## Why it matters
    /// The slots past the pool have to wait for a connection or fail, whatever the
    /// database could take. What the app shows depends on the library:
    /// Rails waits `checkout_timeout` (5s) and raises
    /// `ActiveRecord::ConnectionTimeoutError: could not obtain a connection from the pool
    /// within 5.000 seconds`; SQLAlchemy waits `pool_timeout` (30s) and raises
    /// `QueuePool limit of size N overflow M reached, connection timed out`;
    /// psycopg2's `ThreadedConnectionPool` raises `PoolError: connection pool exhausted`
    /// at once, without waiting; psycopg 3's pool (also Django 5.1's `pool` option)
    /// waits `timeout` (30s) and raises `PoolTimeout`. The requests fail with HTTP 500
    /// (jobs fail and are retried) at a load the database would have handled.
    ///
    /// ## Example
    /// ```yaml
    /// web: { kind: gunicorn, worker_class: gevent, workers: 4, worker_connections: 100,
    ///        uses: { db: { pool: 20, framework: psycopg2 } } }   # 100 greenlets, 20 connections
    /// ```
    ///
    /// ## Fix
    /// Raise the pool to the process's concurrent slots (and check that the database or
    /// PgBouncer can take `replicas x processes x pool`; with many greenlets, put
    /// PgBouncer in transaction mode in front of postgres), or lower the slots
    /// (`threads`, `worker_connections`, `concurrency`) to the pool.
    ///
    /// ## Defaults
    /// The pool defaults to one connection per slot (SQLAlchemy: pool_size 5 +
    /// max_overflow 10). gunicorn threads 1,
    /// worker_connections 1000; puma max threads 5; sidekiq concurrency 5; solid_queue
    /// threads 3. Rails checkout_timeout 5s; SQLAlchemy pool_timeout 30s; psycopg_pool
    /// timeout 30s.
    ///
    /// ## References
    /// - https://docs.gunicorn.org/en/stable/settings.html#worker-connections
    /// - https://docs.gunicorn.org/en/stable/settings.html#threads
    /// - https://api.rubyonrails.org/classes/ActiveRecord/ConnectionAdapters/ConnectionPool.html
    /// - https://github.com/rails/solid_queue#threads-processes-and-signals
    /// - https://docs.sqlalchemy.org/en/20/core/pooling.html#sqlalchemy.pool.QueuePool
    /// - https://www.psycopg.org/docs/pool.html
    /// - https://www.psycopg.org/psycopg3/docs/api/pool.html
    pub struct AppPoolBelowConcurrency { id: "app-pool-below-concurrency", severity: Error }
}

impl Check for AppPoolBelowConcurrency {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for edge in &plan.edges {
            // A pool nobody wrote is one per slot and cannot fall short, except
            // SQLAlchemy's, whose QueuePool defaults to 5 + 10 overflow.
            let sqlalchemy_default = edge.framework == Framework::Sqlalchemy && edge.pool.is_default();
            if !matches!(edge.to_kind, Kind::Postgres | Kind::Pgbouncer) || (edge.pool.is_default() && !sqlalchemy_default) || edge.persistent {
                continue;
            }
            // Rails keeps a pool per database of database.yml: each must cover the slots.
            let checks: Vec<(u64, String, Option<&str>)> = if edge.database_pools.len() > 1 {
                edge.database_pools.iter().map(|(name, pool)| (pool.value, pool.path().to_string(), Some(name.as_str()))).collect()
            } else {
                vec![(edge.per_process.value, edge.pool.path().to_string(), None)]
            };
            for (per_process, pool_path, database) in checks {
                self.check(plan, edge, per_process, &pool_path, database, out);
            }
        }
    }
}

impl AppPoolBelowConcurrency {
    /// One pool of a process against the slots that use it.
    fn check(&self, plan: &Plan, edge: &Edge, per_process: u64, pool_path: &str, database: Option<&str>, out: &mut Vec<Diagnostic>) {
        {
            let slots = edge.slots_needing.value;
            if per_process >= slots {
                return;
            }
            let Some(client) = plan.service(&edge.from) else { return };
            let singular = super::process_noun_one(client.kind);
            let cite = if edge.pool.is_default() { format!("{pool_path} not set; {}", edge.pool.cite()) } else { pool_path.to_string() };
            let pool_text = match database {
                Some(db) => format!("{per_process} for its `{db}` database ({cite}; Rails keeps one pool per database)"),
                None if edge.max_overflow > 0 => format!("{} + max_overflow {} = {per_process} ({cite})", edge.pool.value, edge.max_overflow),
                None => format!("{per_process} ({cite})"),
            };
            let failure = if client.kind.is_job() { "the job fails and is retried" } else { "the request fails (HTTP 500)" };
            let (slot, setting) = slot_noun(client);
            let message = format!(
                "`{}`: each {singular} runs {slots} {slot} at once ({setting}, {}) that may need a connection to `{}`, but its pool holds {pool_text}: {}; {failure} while the database may have room",
                edge.from,
                edge.slots_needing.cite(),
                edge.to,
                consequence(edge, per_process),
            );

            let raised = edge.connections.saturating_add(mul(&[edge.replicas, edge.processes, slots - per_process]));
            let mut fix = if let Some(db) = database {
                format!("raise the `{db}` pool to >= {slots} ({pool_path}), which makes {raised} connections to `{}` in all", edge.to)
            } else if edge.max_overflow > 0 {
                format!(
                    "raise pool + max_overflow to >= {slots} (e.g. pool {} at {}), which makes {} x {} x {slots} = {raised} connections to `{}`",
                    slots.saturating_sub(edge.max_overflow),
                    pool_path,
                    super::plural(edge.replicas, "replica"),
                    super::plural(edge.processes, singular),
                    edge.to,
                )
            } else {
                format!(
                    "raise pool to >= {slots} ({}), which makes {} x {} x {slots} = {raised} connections to `{}`",
                    pool_path,
                    super::plural(edge.replicas, "replica"),
                    super::plural(edge.processes, singular),
                    edge.to,
                )
            };
            let (note, fits) = budget_note(plan, edge, raised);
            fix.push_str(&note);
            // Extra connections beyond the slots themselves (solid_queue polling + heartbeat).
            let extra = slots.saturating_sub(client.slots_per_process.value);
            if per_process > extra {
                let uvicorn = matches!(&client.detail, Detail::Gunicorn(g) if g.worker_class.value == WorkerClass::Uvicorn);
                let lower = if uvicorn {
                    format!("cap the concurrent database work of each worker at {} (an asyncio.Semaphore, or uvicorn's limit_concurrency)", per_process - extra)
                } else {
                    format!("lower {} to {} ({})", slot_setting(client), per_process - extra, client.slots_per_process.path())
                };
                // When the bigger pool does not fit the target, matching the slots to the pool comes first.
                fix = if fits { format!("{fix}; or {lower}") } else { format!("{lower}; or {fix}") };
            }
            out.push(
                finding::<Self>(pool_path, message)
                    .number("pool", per_process as f64)
                    .number("slots", slots as f64)
                    .number("short", (slots - per_process) as f64)
                    .fix(fix)
                    .related(client.slots_per_process.path(), format!("{slots} concurrent slots per {singular}")),
            );
        }
    }
}

/// Whether the target still fits once this edge opens `raised` connections.
fn budget_note(plan: &Plan, edge: &Edge, raised: u64) -> (String, bool) {
    let Some(target) = plan.service(&edge.to) else { return (String::new(), true) };
    let grown = raised.saturating_sub(edge.connections);
    match &target.detail {
        Detail::Postgres(pg) => {
            let demand = pg.demand.saturating_add(grown);
            if target.external && pg.max_connections.is_default() {
                return (format!(" (postgres `{}` is external: check {demand} connections against its provider's limit)", edge.to), true);
            }
            if demand > pg.usable_connections {
                let note = format!(
                    " (postgres `{}` would be asked for {demand} but accepts {}: raise its max_connections to >= {}, or put PgBouncer in transaction mode in front of it)",
                    edge.to,
                    pg.usable_connections,
                    pg.max_connections.value.saturating_add(demand - pg.usable_connections),
                );
                (note, false)
            } else {
                (format!(" (postgres `{}` still fits: {demand} <= {})", edge.to, pg.usable_connections), true)
            }
        }
        Detail::Pgbouncer(pgb) => {
            let demand = pgb.client_demand.saturating_add(grown);
            let limit = mul(&[pgb.max_client_conn.value, target.replicas.value.max(1)]);
            if demand > limit {
                let note = format!(
                    " (pgbouncer `{}` would be asked for {demand} client connections: raise its max_client_conn to >= {})",
                    edge.to,
                    demand.div_ceil(target.replicas.value.max(1))
                );
                (note, false)
            } else {
                (format!(" (pgbouncer `{}` still fits: {demand} <= max_client_conn {limit})", edge.to), true)
            }
        }
        _ => (String::new(), true),
    }
}

/// What a slot of this client is, and the setting that sizes it.
fn slot_noun(client: &ServicePlan) -> (&'static str, &'static str) {
    match (&client.detail, client.kind) {
        (Detail::Gunicorn(g), _) => match g.worker_class.value {
            WorkerClass::Sync => ("request", "sync worker"),
            WorkerClass::Gthread => ("threads", "gthread threads"),
            WorkerClass::Gevent => ("greenlets", "gevent worker_connections"),
            // One class for two servers: gunicorn's UvicornWorker has no cap, standalone
            // uvicorn caps at --limit-concurrency (503 past it); the message holds for both.
            WorkerClass::Uvicorn => ("requests", "worker_connections: uvicorn's --limit-concurrency, past which it answers 503; under gunicorn's UvicornWorker an estimate, since that worker sets no cap"),
        },
        (_, Kind::Puma) => ("threads", "puma max threads"),
        (_, Kind::Sidekiq) => ("jobs", "sidekiq concurrency"),
        (_, Kind::SolidQueue) => ("connection users", "worker threads + polling + heartbeat"),
        (_, Kind::Celery) => ("tasks", "celery concurrency"),
        (_, Kind::Rq) => ("jobs", "rq"),
        _ => ("slots", "concurrency"),
    }
}

/// The setting that sets the slots, as the fix names it.
fn slot_setting(client: &ServicePlan) -> &'static str {
    match (&client.detail, client.kind) {
        (Detail::Gunicorn(g), _) => match g.worker_class.value {
            WorkerClass::Gthread => "threads",
            WorkerClass::Gevent | WorkerClass::Uvicorn => "worker_connections",
            WorkerClass::Sync => "workers",
        },
        (_, Kind::Puma) => "threads",
        (_, Kind::SolidQueue) => "threads",
        _ => "concurrency",
    }
}

/// What the app does when the pool of `n` connections (the one database's, where Rails
/// keeps one per database) is empty, by framework.
fn consequence(edge: &Edge, n: u64) -> String {
    match edge.framework {
        Framework::Rails => format!(
            "the thread that finds all {n} connections checked out waits checkout_timeout (5s by default) and raises `ActiveRecord::ConnectionTimeoutError: could not obtain a connection from the pool within 5.000 seconds`"
        ),
        Framework::Sqlalchemy => format!(
            "past {n} checked-out connections SQLAlchemy waits pool_timeout (30s by default) and raises `sqlalchemy.exc.TimeoutError: QueuePool limit of size {} overflow {} reached, connection timed out, timeout 30.00`",
            edge.pool.value, edge.max_overflow
        ),
        Framework::Psycopg2 => format!(
            "past {n} checked-out connections psycopg2 raises `psycopg2.pool.PoolError: connection pool exhausted` at once (its pool does not wait)"
        ),
        Framework::PsycopgPool | Framework::Django => format!(
            "past {n} checked-out connections the psycopg pool waits its timeout (30s by default) and raises `psycopg_pool.PoolTimeout: couldn't get a connection after 30.00 sec`"
        ),
        Framework::Generic => format!("past {n} checked-out connections the extra work waits for a free connection or fails, depending on the client library"),
    }
}

#[cfg(test)]
mod tests {

    fn findings(yaml: &str) -> Vec<crate::diag::Diagnostic> {
        crate::rules::findings_of("app-pool-below-concurrency", yaml)
    }

    fn gevent(pool: u64) -> String {
        format!(
            "version: 1
name: t
services:
  web:
    kind: gunicorn
    worker_class: gevent
    workers: 4
    worker_connections: 100
    uses:
      db: {{ pool: {pool}, framework: psycopg2 }}
  db:
    kind: postgres
    max_connections: 500
"
        )
    }

    #[test]
    fn sf_permits_gevent_pool_triggers() {
        let found = findings(&gevent(20));
        assert_eq!(found.len(), 1);
        let d = &found[0];
        assert_eq!(d.path, "services.web.uses.db.pool");
        assert!(d.message.contains("each worker runs 100 greenlets at once (gevent worker_connections, services.web.worker_connections)"), "{}", d.message);
        assert!(d.message.contains("pool holds 20 (services.web.uses.db.pool)"), "{}", d.message);
        assert!(d.message.contains("PoolError: connection pool exhausted"), "{}", d.message);
        let fix = d.fix.as_deref().unwrap();
        assert!(fix.contains("raise pool to >= 100"), "{fix}");
        assert!(fix.contains("1 replica x 4 workers x 100 = 400"), "{fix}");
        assert!(fix.contains("postgres `db` still fits: 400 <= 497"), "{fix}");
        assert!(fix.contains("lower worker_connections to 20"), "{fix}");
    }

    #[test]
    fn boundary_pool_equal_to_slots_passes() {
        assert!(findings(&gevent(100)).is_empty());
        assert_eq!(findings(&gevent(99)).len(), 1);
    }

    #[test]
    fn solid_queue_needs_threads_plus_two() {
        let yaml = |pool: u64| {
            format!(
                "version: 1
name: t
services:
  jobs:
    kind: solid_queue
    concurrency: 5
    uses:
      db: {{ pool: {pool}, framework: rails }}
  db:
    kind: postgres
"
            )
        };
        assert!(findings(&yaml(7)).is_empty());
        let found = findings(&yaml(6));
        assert_eq!(found.len(), 1);
        let d = &found[0];
        assert!(d.message.contains("runs 7 connection users at once (worker threads + polling + heartbeat, services.jobs.concurrency = threads 5 + 2 (polling + heartbeat))"), "{}", d.message);
        assert!(d.message.contains("ActiveRecord::ConnectionTimeoutError"), "{}", d.message);
        assert!(d.message.contains("the job fails and is retried"), "{}", d.message);
        assert!(d.fix.as_deref().unwrap().contains("lower threads to 4"), "{:?}", d.fix);
    }

    #[test]
    fn sqlalchemy_counts_overflow_and_defaults_and_redis_are_skipped() {
        let yaml = |pool: u64, overflow: u64| {
            format!(
                "version: 1
name: t
services:
  web:
    kind: gunicorn
    worker_class: gthread
    workers: 2
    threads: 8
    uses:
      db: {{ pool: {pool}, max_overflow: {overflow}, framework: sqlalchemy }}
      other: {{}}
      cache: {{ pool: 1 }}
  db:
    kind: postgres
  other:
    kind: postgres
  cache:
    kind: redis
"
            )
        };
        assert!(findings(&yaml(5, 3)).is_empty());
        let found = findings(&yaml(5, 2));
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("QueuePool limit of size 5 overflow 2 reached"), "{}", found[0].message);
        assert!(found[0].message.contains("pool holds 5 + max_overflow 2 = 7"), "{}", found[0].message);
    }

    #[test]
    fn django_persistent_is_skipped() {
        let yaml = "version: 1
name: t
services:
  web:
    kind: gunicorn
    worker_class: gthread
    workers: 8
    threads: 4
    uses:
      db: { pool: 1, framework: django, persistent: true }
  db:
    kind: postgres
";
        assert!(findings(yaml).is_empty());
    }
}
