//! Target `app-env`: one dotenv file per app or job service that opens pools, holding
//! the environment its framework reads for concurrency and pool sizes (WEB_CONCURRENCY,
//! RAILS_MAX_THREADS, CONN_MAX_AGE, DB_POOL_*, REDIS_POOL_SIZE, ...). Every number is
//! the plan's; secrets are named in a comment, never written.

use serde::Serialize;

use super::gunicorn::comment;
use super::{Artifact, Context, RenderError, Target};
use crate::plan::{Detail, Edge, Kind, ServicePlan};
use crate::spec::Framework;

const TEMPLATE: &str = include_str!("../../templates/app_env/app.env.j2");

/// `CONN_MAX_AGE` for Django persistent connections: five minutes, what the seed
/// deployments settle on (long enough to reuse a connection across requests, short
/// enough to recycle after a PgBouncer or PostgreSQL restart).
pub const DJANGO_CONN_MAX_AGE: u64 = 300;

pub struct AppEnv;

impl Target for AppEnv {
    fn name(&self) -> &'static str {
        "app-env"
    }
    fn render(&self, ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        let mut artifacts = Vec::new();
        for service in ctx.plan.services.iter().filter(|s| wants_env(s)) {
            let groups = groups(ctx, service);
            let mut seen = std::collections::BTreeSet::new();
            for (key, _) in groups.iter().flat_map(|g| &g.pairs) {
                if !seen.insert(key.as_str()) {
                    return Err(RenderError {
                        target: "app-env",
                        message: format!("two settings of service `{}` would both be named {key}; rename one of its `uses` targets", service.name),
                    });
                }
            }
            let context = FileContext {
                header: ctx.header("#"),
                service: comment(&service.name),
                service_path: comment(&service.path),
                processes: service.processes.value,
                replicas: service.replicas.value,
                secrets: service.env_secret.iter().map(|s| comment(s)).collect(),
                groups,
            };
            let text = super::render_template("app-env", "app.env.j2", TEMPLATE, &context)?;
            artifacts.push(Artifact { target: "app-env", path: path(ctx, service), text, patched: false });
        }
        Ok(artifacts)
    }
}

/// App servers and job services that open at least one pool get an env file.
fn wants_env(service: &ServicePlan) -> bool {
    (service.kind.is_app() || service.kind.is_job()) && !service.uses.is_empty()
}

/// The environment an app or job service needs for its pools and concurrency
/// (WEB_CONCURRENCY, RAILS_MAX_THREADS, DB_POOL_*, ...), in a stable order.
pub fn env(ctx: &Context<'_>, service: &crate::plan::ServicePlan) -> Vec<(String, String)> {
    groups(ctx, service).into_iter().flat_map(|g| g.pairs).collect()
}

/// Where a service's env file goes (`deploy.files["env.<service>"]`, default
/// `env/<service>.env`).
pub fn path(ctx: &Context<'_>, service: &crate::plan::ServicePlan) -> String {
    ctx.path_for(&format!("env.{}", service.name), &format!("env/{}.env", service.name))
}

/// Settings with the comment that explains them.
#[derive(Serialize)]
struct Group {
    comment: Vec<String>,
    pairs: Vec<(String, String)>,
}

#[derive(Serialize)]
struct FileContext {
    header: String,
    service: String,
    service_path: String,
    processes: u64,
    replicas: u64,
    secrets: Vec<String>,
    groups: Vec<Group>,
}

/// An environment-variable-safe spelling of a service name: `pgvector-db` -> `PGVECTOR_DB`.
fn env_prefix(name: &str) -> String {
    let mut out: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn groups(ctx: &Context<'_>, service: &ServicePlan) -> Vec<Group> {
    let mut groups = Vec::new();
    let edges: Vec<&Edge> = service.uses.iter().filter_map(|&i| ctx.plan.edges.get(i)).collect();
    let is_db = |e: &Edge| matches!(e.to_kind, Kind::Postgres | Kind::Pgbouncer);
    let rails = edges.iter().any(|e| is_db(e) && e.framework == Framework::Rails);

    // Concurrency of the service itself.
    let mut concurrency = Group { comment: Vec::new(), pairs: Vec::new() };
    match &service.detail {
        Detail::Gunicorn(g) => {
            concurrency.comment.push(format!("gunicorn workers per replica ({}); gunicorn reads WEB_CONCURRENCY as its default", comment(&g.workers.cite())));
            concurrency.pairs.push(("WEB_CONCURRENCY".into(), g.workers.value.to_string()));
        }
        Detail::Puma(p) => {
            concurrency.comment.push(format!("puma workers per replica ({}) and threads per process ({})", comment(&p.workers.cite()), comment(&p.threads.cite())));
            concurrency.pairs.push(("WEB_CONCURRENCY".into(), p.workers.value.to_string()));
            concurrency.pairs.push(("RAILS_MAX_THREADS".into(), p.threads.value.to_string()));
            if p.min_threads.value != p.threads.value {
                concurrency.pairs.push(("RAILS_MIN_THREADS".into(), p.min_threads.value.to_string()));
            }
        }
        _ if rails => {
            concurrency.comment.push(format!("threads per process ({})", comment(&service.slots_per_process.cite())));
            concurrency.pairs.push(("RAILS_MAX_THREADS".into(), service.slots_per_process.value.to_string()));
        }
        _ => {}
    }
    if !concurrency.pairs.is_empty() {
        groups.push(concurrency);
    }

    let mut taken: Vec<String> = groups.iter().flat_map(|g| g.pairs.iter().map(|(k, _)| k.clone())).collect();
    let mut redis_seen = false;
    for edge in edges {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        let pool = edge.pool.value.to_string();
        let per_process = edge.per_process.value.to_string();
        let generic = format!("{}_POOL_SIZE", env_prefix(&edge.to));
        let mut owned_generic = None;
        match (edge.to_kind, edge.framework) {
            (Kind::Redis, _) => {
                if redis_seen {
                    owned_generic = Some((generic.clone(), per_process.clone()));
                } else {
                    pairs.push(("REDIS_POOL_SIZE", per_process.clone()));
                }
                redis_seen = true;
            }
            (Kind::Postgres | Kind::Pgbouncer, Framework::Django) => {
                if edge.persistent {
                    notes.push(format!("Django persistent connections (CONN_MAX_AGE {DJANGO_CONN_MAX_AGE}s): one per thread"));
                    pairs.push(("CONN_MAX_AGE", DJANGO_CONN_MAX_AGE.to_string()));
                    pairs.push(("CONN_HEALTH_CHECKS", "true".into()));
                } else {
                    notes.push("Django 5.1+ pool: DATABASES OPTIONS {\"pool\": {\"min_size\": DB_POOL_MIN_SIZE, \"max_size\": DB_POOL_MAX_SIZE}}; pooling needs CONN_MAX_AGE 0".into());
                    pairs.push(("CONN_MAX_AGE", "0".into()));
                    if let Some(min) = edge.min {
                        pairs.push(("DB_POOL_MIN_SIZE", min.to_string()));
                    }
                    pairs.push(("DB_POOL_MAX_SIZE", pool.clone()));
                }
            }
            (Kind::Postgres | Kind::Pgbouncer, Framework::Sqlalchemy) => {
                notes.push("SQLAlchemy create_engine(pool_size=DB_POOL_SIZE, max_overflow=DB_MAX_OVERFLOW)".into());
                pairs.push(("DB_POOL_SIZE", pool.clone()));
                pairs.push(("DB_MAX_OVERFLOW", edge.max_overflow.to_string()));
            }
            (Kind::Postgres | Kind::Pgbouncer, Framework::Psycopg2) => {
                notes.push("psycopg2 ThreadedConnectionPool(minconn=DB_POOL_MIN, maxconn=DB_POOL_MAX)".into());
                if let Some(min) = edge.min {
                    pairs.push(("DB_POOL_MIN", min.to_string()));
                }
                pairs.push(("DB_POOL_MAX", pool.clone()));
            }
            (Kind::Postgres | Kind::Pgbouncer, Framework::PsycopgPool) => {
                notes.push("psycopg_pool ConnectionPool(min_size=DB_POOL_MIN_SIZE, max_size=DB_POOL_MAX_SIZE)".into());
                if let Some(min) = edge.min {
                    pairs.push(("DB_POOL_MIN_SIZE", min.to_string()));
                }
                pairs.push(("DB_POOL_MAX_SIZE", pool.clone()));
            }
            (Kind::Postgres | Kind::Pgbouncer, Framework::Rails) => {
                notes.push(format!(
                    "ActiveRecord: database.yml `pool: <%= ENV.fetch(\"DATABASE_POOL\") {{ ENV.fetch(\"RAILS_MAX_THREADS\") {{ {} }} }} %>`",
                    service.slots_per_process.value
                ));
                pairs.push(("DATABASE_POOL", pool.clone()));
            }
            _ => owned_generic = Some((generic.clone(), per_process.clone())),
        }
        let framework = serde_json::to_value(edge.framework).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        let mut lines = vec![format!(
            "{} ({}{}): {} per process ({}); {} connections in all",
            comment(&edge.to),
            comment(&edge.path),
            if edge.to_kind == Kind::Redis { String::new() } else { format!(", {framework}") },
            edge.per_process.value,
            comment(&edge.per_process.cite()),
            edge.connections
        )];
        lines.extend(notes);
        let mut group = Group { comment: lines, pairs: Vec::new() };
        // A name another pool already uses gets the target's prefix.
        let named = pairs.into_iter().map(|(k, v)| (k.to_string(), v)).chain(owned_generic);
        for (key, value) in named {
            // A name another pool already uses gets the target's prefix, then a number
            // (a redis service named `redis` beside another redis wants REDIS_POOL_SIZE too).
            let key = if taken.contains(&key) && !key.starts_with(&format!("{}_", env_prefix(&edge.to))) {
                format!("{}_{key}", env_prefix(&edge.to))
            } else {
                key
            };
            let key = (1..).map(|n| if n == 1 { key.clone() } else { format!("{key}_{n}") }).find(|k| !taken.contains(k)).expect("a free name");
            taken.push(key.clone());
            group.pairs.push((key, value));
        }
        groups.push(group);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze_text;

    fn render(spec: &str) -> (Vec<Artifact>, Vec<Vec<(String, String)>>) {
        let analysis = analyze_text("capacity.yaml", spec).expect("spec loads");
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        let artifacts = AppEnv.render(&ctx).expect("renders");
        let envs = analysis.plan.services.iter().filter(|s| wants_env(s)).map(|s| env(&ctx, s)).collect();
        (artifacts, envs)
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn psycopg2_names_for_sf_permits() {
        let spec = r#"
version: 1
name: sfpermits
services:
  web:
    kind: gunicorn
    worker_class: gevent
    workers: 4
    worker_connections: 100
    app: web.app:app
    env: { secret: [DATABASE_URL] }
    uses:
      pgvector-db: { pool: 20, min: 2, framework: psycopg2 }
  pgvector-db:
    kind: postgres
"#;
        let (artifacts, envs) = render(spec);
        assert_eq!(envs[0], pairs(&[("WEB_CONCURRENCY", "4"), ("DB_POOL_MIN", "2"), ("DB_POOL_MAX", "20")]));
        let a = &artifacts[0];
        assert_eq!(a.path, "env/web.env");
        assert!(a.text.starts_with("# Generated by headroom from capacity.yaml"), "{}", a.text);
        assert!(a.text.contains("# secrets (set elsewhere): DATABASE_URL\n"), "{}", a.text);
        assert!(a.text.contains("\nDB_POOL_MAX=20\n"), "{}", a.text);
        for line in a.text.lines() {
            assert!(line.starts_with('#') || line.is_empty() || line.split_once('=').is_some_and(|(k, v)| !k.is_empty() && !v.is_empty()), "bad line {line:?}");
        }
    }

    #[test]
    fn django_rails_sqlalchemy_and_redis() {
        let spec = r#"
version: 1
name: mix
services:
  web:
    kind: gunicorn
    worker_class: gthread
    workers: 8
    threads: 4
    replicas: 2
    uses:
      pgbouncer: { framework: django, persistent: true }
      redis: { pool: 100 }
      cache: { pool: 10 }
  api:
    kind: gunicorn
    worker_class: uvicorn
    workers: 2
    uses:
      db: { pool: 20, max_overflow: 10, framework: sqlalchemy }
      search: { pool: 7, framework: psycopg_pool, min: 1 }
  rails:
    kind: puma
    workers: 4
    threads: 5
    uses: { pgbouncer: { pool: 25, framework: rails } }
  jobs:
    kind: sidekiq
    concurrency: 10
    uses: { pgbouncer: { pool: 12, framework: rails }, redis: {} }
  idle:
    kind: gunicorn
  pgbouncer: { kind: pgbouncer, uses: { db: {} } }
  db: { kind: postgres }
  search: { kind: postgres }
  redis: { kind: redis }
  cache: { kind: redis }
"#;
        let (artifacts, envs) = render(spec);
        assert_eq!(artifacts.iter().map(|a| a.path.as_str()).collect::<Vec<_>>(), ["env/web.env", "env/api.env", "env/rails.env", "env/jobs.env"]);
        assert_eq!(
            envs[0],
            pairs(&[("WEB_CONCURRENCY", "8"), ("CONN_MAX_AGE", "300"), ("CONN_HEALTH_CHECKS", "true"), ("REDIS_POOL_SIZE", "100"), ("CACHE_POOL_SIZE", "10")])
        );
        assert_eq!(
            envs[1],
            pairs(&[("WEB_CONCURRENCY", "2"), ("DB_POOL_SIZE", "20"), ("DB_MAX_OVERFLOW", "10"), ("DB_POOL_MIN_SIZE", "1"), ("DB_POOL_MAX_SIZE", "7")])
        );
        assert_eq!(envs[2], pairs(&[("WEB_CONCURRENCY", "4"), ("RAILS_MAX_THREADS", "5"), ("DATABASE_POOL", "25")]));
        // Sidekiq's redis pool defaults to concurrency + 5.
        assert_eq!(envs[3], pairs(&[("RAILS_MAX_THREADS", "10"), ("DATABASE_POOL", "12"), ("REDIS_POOL_SIZE", "15")]));
        assert!(artifacts[0].text.contains("# pgbouncer (services.web.uses.pgbouncer, django): 4 per process"), "{}", artifacts[0].text);
        // The redis passwords reach their clients by name only.
        assert!(artifacts[0].text.contains("REDIS_PASSWORD") && artifacts[0].text.contains("CACHE_PASSWORD"), "{}", artifacts[0].text);
        assert!(!artifacts[1].text.contains("secrets"), "no secrets line without secrets");
    }

    #[test]
    fn colliding_names_get_the_target_prefix_and_generic_pools() {
        let spec = r#"
version: 1
name: two
services:
  web:
    kind: gunicorn
    uses:
      main: { pool: 5, framework: sqlalchemy }
      reports: { pool: 3, framework: sqlalchemy }
      other-svc: { pool: 2 }
  main: { kind: postgres }
  reports: { kind: postgres }
  other-svc: { kind: postgres }
deploy:
  files: { env.web: config/web.env }
"#;
        let (artifacts, envs) = render(spec);
        assert_eq!(artifacts[0].path, "config/web.env");
        assert_eq!(
            envs[0],
            pairs(&[
                ("WEB_CONCURRENCY", "1"),
                ("DB_POOL_SIZE", "5"),
                ("DB_MAX_OVERFLOW", "0"),
                ("REPORTS_DB_POOL_SIZE", "3"),
                ("REPORTS_DB_MAX_OVERFLOW", "0"),
                ("OTHER_SVC_POOL_SIZE", "2"),
            ])
        );
    }

    #[test]
    fn rendering_is_deterministic() {
        let spec = "version: 1\nname: a\nservices:\n  web: { kind: puma, uses: { db: { framework: rails } } }\n  db: { kind: postgres }\n";
        assert_eq!(render(spec).0, render(spec).0);
    }
}
