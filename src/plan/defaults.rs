//! The documented defaults of every program headroom models, each with the place it
//! is documented. When the spec leaves a value out, the plan uses these and says so.

/// gunicorn: `workers` (docs: settings, "workers", default 1).
pub const GUNICORN_WORKERS: u64 = 1;
/// gunicorn: `threads` (default 1).
pub const GUNICORN_THREADS: u64 = 1;
/// gunicorn: `worker_connections` (default 1000).
pub const GUNICORN_WORKER_CONNECTIONS: u64 = 1000;
/// gunicorn: `timeout` seconds (default 30).
pub const GUNICORN_TIMEOUT: u64 = 30;
/// gunicorn: `graceful_timeout` seconds (default 30).
pub const GUNICORN_GRACEFUL_TIMEOUT: u64 = 30;
/// gunicorn: `keepalive` seconds (default 2).
pub const GUNICORN_KEEPALIVE: u64 = 2;
/// gunicorn: `backlog` (default 2048).
pub const GUNICORN_BACKLOG: u64 = 2048;
/// gunicorn: `bind` port (default 127.0.0.1:8000).
pub const GUNICORN_PORT: u64 = 8000;

/// Puma 6: max threads (default 5; the Rails template reads RAILS_MAX_THREADS, default 3 since Rails 7.1).
pub const PUMA_THREADS: u64 = 5;
/// Puma: workers (default 0 = single mode).
pub const PUMA_WORKERS: u64 = 0;
/// Puma: worker_timeout seconds (default 60).
pub const PUMA_WORKER_TIMEOUT: u64 = 60;
/// Puma: backlog (default 1024).
pub const PUMA_BACKLOG: u64 = 1024;
/// Puma: port (default 9292; Rails sets 3000).
pub const PUMA_PORT: u64 = 3000;

/// Sidekiq 7: concurrency (default 5).
pub const SIDEKIQ_CONCURRENCY: u64 = 5;
/// Solid Queue: worker threads (default 3).
pub const SOLID_QUEUE_THREADS: u64 = 3;
/// Solid Queue: extra connections per process for polling and the heartbeat.
pub const SOLID_QUEUE_EXTRA_CONNECTIONS: u64 = 2;
/// SQLAlchemy `create_engine` pool_size when none is given (QueuePool).
pub const SQLALCHEMY_POOL_SIZE: u64 = 5;
/// SQLAlchemy `create_engine` max_overflow when none is given (QueuePool).
pub const SQLALCHEMY_MAX_OVERFLOW: u64 = 10;

/// nginx: worker_processes (default 1).
pub const NGINX_WORKER_PROCESSES: u64 = 1;
/// nginx: worker_connections (default 512; the stock nginx.conf says 1024).
pub const NGINX_WORKER_CONNECTIONS: u64 = 512;
/// nginx: listen backlog (default 511 on Linux).
pub const NGINX_BACKLOG: u64 = 511;
/// nginx: proxy_read_timeout / proxy_send_timeout / proxy_connect_timeout seconds (default 60).
pub const NGINX_PROXY_TIMEOUT: u64 = 60;
/// nginx: upstream server max_fails (default 1).
pub const NGINX_MAX_FAILS: u64 = 1;
/// nginx: upstream server fail_timeout seconds (default 10).
pub const NGINX_FAIL_TIMEOUT: u64 = 10;

/// PgBouncer: max_client_conn (default 100).
pub const PGBOUNCER_MAX_CLIENT_CONN: u64 = 100;
/// PgBouncer: default_pool_size (default 20).
pub const PGBOUNCER_DEFAULT_POOL_SIZE: u64 = 20;
/// PgBouncer: reserve_pool_timeout seconds (default 5).
pub const PGBOUNCER_RESERVE_POOL_TIMEOUT: u64 = 5;
/// PgBouncer: query_wait_timeout seconds (default 120).
pub const PGBOUNCER_QUERY_WAIT_TIMEOUT: u64 = 120;
/// PgBouncer: server_idle_timeout seconds (default 600).
pub const PGBOUNCER_SERVER_IDLE_TIMEOUT: u64 = 600;
/// PgBouncer: server_lifetime seconds (default 3600).
pub const PGBOUNCER_SERVER_LIFETIME: u64 = 3600;
/// PgBouncer: listen_backlog (default 128).
pub const PGBOUNCER_LISTEN_BACKLOG: u64 = 128;
/// PgBouncer: listen_port (default 6432).
pub const PGBOUNCER_PORT: u64 = 6432;
/// PgBouncer >= 1.24: max_prepared_statements (default 200; 0 in 1.21-1.23).
pub const PGBOUNCER_MAX_PREPARED_STATEMENTS_1_24: u64 = 200;
/// The PgBouncer version assumed when none is pinned: the oldest supported one, since
/// an unpinned file must work on every supported version.
pub const PGBOUNCER_VERSION: (u32, u32) = (1, 17);

/// PostgreSQL: max_connections (default 100).
pub const POSTGRES_MAX_CONNECTIONS: u64 = 100;
/// PostgreSQL: superuser_reserved_connections (default 3).
pub const POSTGRES_SUPERUSER_RESERVED: u64 = 3;
/// PostgreSQL 16+: reserved_connections (default 0).
pub const POSTGRES_RESERVED: u64 = 0;
/// PostgreSQL: max_worker_processes (default 8).
pub const POSTGRES_MAX_WORKER_PROCESSES: u64 = 8;
/// PostgreSQL: port (default 5432).
pub const POSTGRES_PORT: u64 = 5432;
/// The PostgreSQL major version of the container image when none is pinned. The
/// settings file of an unpinned postgres holds only what every supported version
/// (13-17) accepts, whatever the image.
pub const POSTGRES_VERSION: u64 = 16;

/// Redis: maxclients (default 10000).
pub const REDIS_MAXCLIENTS: u64 = 10_000;
/// Redis: tcp-backlog (default 511).
pub const REDIS_TCP_BACKLOG: u64 = 511;
/// Redis: fds it keeps for itself; maxclients is lowered to nofile - 32.
pub const REDIS_RESERVED_FDS: u64 = 32;
/// Redis: port (default 6379).
pub const REDIS_PORT: u64 = 6379;
/// Redis: maxmemory-policy (default noeviction).
pub const REDIS_POLICY: &str = "noeviction";

/// Qdrant (config/config.yaml of 1.19): service.http_port 6333, service.grpc_port 6334,
/// cluster.p2p.port 6335, service.max_request_size_mb 32, service.max_workers 0 (one
/// per CPU), storage.collection.replication_factor 1 and write_consistency_factor 1.
pub const QDRANT_HTTP_PORT: u64 = 6333;
pub const QDRANT_GRPC_PORT: u64 = 6334;
pub const QDRANT_P2P_PORT: u64 = 6335;
pub const QDRANT_MAX_REQUEST_SIZE_MB: u64 = 32;
pub const QDRANT_MAX_WORKERS: u64 = 0;
pub const QDRANT_REPLICATION_FACTOR: u64 = 1;
pub const QDRANT_WRITE_CONSISTENCY_FACTOR: u64 = 1;
/// Qdrant capacity planning: float32 = 4 bytes per dimension, and x 1.5 for the
/// indexes, point versions and the temporary segments of the optimizer.
pub const QDRANT_FLOAT32_BYTES: f64 = 4.0;
pub const QDRANT_OVERHEAD: f64 = 1.5;
/// Qdrant capacity planning: an HNSW graph of m = 16 (hnsw_index.m) takes
/// m x 2 x 4 bytes x 1.2 per point, and stays in RAM when the vectors move to disk.
pub const QDRANT_HNSW_BYTES_PER_POINT: f64 = 16.0 * 2.0 * 4.0 * 1.2;

/// Linux >= 5.4: net.core.somaxconn (default 4096; 128 before 5.4). Per network
/// namespace: a container gets this default, not the host's value.
pub const SOMAXCONN: u64 = 4096;

/// Planned busy fraction of slots when `load.max_utilization` is not given.
pub const MAX_UTILIZATION: f64 = 0.75;

/// kamal-proxy: response_timeout seconds (default 30).
pub const KAMAL_PROXY_RESPONSE_TIMEOUT: u64 = 30;

/// Health check defaults (compose / Docker: interval 30s, timeout 30s, retries 3;
/// headroom uses a 10s timeout so a hung app is noticed sooner).
pub const HEALTH_INTERVAL: u64 = 30;
pub const HEALTH_TIMEOUT: u64 = 10;
pub const HEALTH_RETRIES: u32 = 3;

/// Kubernetes HorizontalPodAutoscaler: target CPU utilization `kubectl autoscale`
/// sets when none is given (80%).
pub const HPA_TARGET_CPU: u64 = 80;
/// Kubernetes Deployment: `maxSurge` and `maxUnavailable` default to 25%.
pub const ROLLOUT_SURGE_PERCENT: u64 = 25;
pub const ROLLOUT_UNAVAILABLE_PERCENT: u64 = 25;
/// Kubernetes minor versions the manifests are validated against (the schemas
/// kubernetes-validate bundles), and the one assumed when none is given: the oldest
/// release still maintained upstream.
pub const KUBERNETES_OLDEST: (u32, u32) = (1, 25);
pub const KUBERNETES_NEWEST: (u32, u32) = (1, 37);
pub const KUBERNETES_VERSION: (u32, u32) = (1, 35);
