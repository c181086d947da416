//! Target `puma`: `config/puma.rb` per puma service, reading WEB_CONCURRENCY,
//! RAILS_MAX_THREADS, RAILS_MIN_THREADS and PORT from the environment with the plan's
//! numbers as defaults (the Rails convention), and the command that runs it.

use serde::Serialize;

use super::gunicorn::comment;
use super::{Artifact, Context, RenderError, Target};
use crate::plan::{Detail, Kind, PumaPlan, ServicePlan};
use crate::spec::Framework;

const TEMPLATE: &str = include_str!("../../templates/puma/puma.rb.j2");

pub struct Puma;

impl Target for Puma {
    fn name(&self) -> &'static str {
        "puma"
    }
    fn render(&self, ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        let mut artifacts = Vec::new();
        for service in ctx.plan.services.iter().filter(|s| s.kind == Kind::Puma) {
            let Detail::Puma(p) = &service.detail else { continue };
            let path = path(ctx, service);
            let context = FileContext::new(ctx, service, p);
            let text = super::render_template("puma", "puma.rb.j2", TEMPLATE, &context)?;
            artifacts.push(Artifact { target: "puma", path, text, patched: false });
        }
        Ok(artifacts)
    }
}

/// Where the puma config goes (`deploy.files.puma`, default `config/puma.rb`). With
/// several puma services: `deploy.files["puma.<service>"]`, default
/// `<service>/config/puma.rb`.
pub fn path(ctx: &Context<'_>, service: &crate::plan::ServicePlan) -> String {
    let per_service = format!("puma.{}", service.name);
    let files = ctx.spec.deploy.as_ref().map(|d| &d.files);
    let written = |key: &str| files.and_then(|f| f.get(key)).cloned();
    let puma_services = ctx.plan.services.iter().filter(|s| s.kind == Kind::Puma).count();
    if puma_services <= 1 {
        written("puma").or_else(|| written(&per_service)).unwrap_or_else(|| "config/puma.rb".to_string())
    } else {
        written(&per_service).unwrap_or_else(|| format!("{}/config/puma.rb", service.name))
    }
}

/// The puma command line (argv), for compose and Kamal.
pub fn command(ctx: &Context<'_>, service: &crate::plan::ServicePlan) -> Vec<String> {
    ["bundle", "exec", "puma", "-C"].iter().map(|s| s.to_string()).chain([path(ctx, service)]).collect()
}

/// A database pool this service opens, for the ActiveRecord comment.
#[derive(Serialize)]
struct PoolNote {
    path: String,
    per_process: u64,
    cite: String,
    connections: u64,
}

#[derive(Serialize)]
struct FileContext {
    header: String,
    service: String,
    service_path: String,
    workers: u64,
    processes: u64,
    replicas: u64,
    slots: u64,
    threads: u64,
    threads_cite: String,
    /// RAILS_MIN_THREADS defaults to the max (Rails' template) unless written otherwise.
    min_threads: Option<u64>,
    preload: bool,
    port: u64,
    /// A bind with `?backlog=` when the spec sets one (Puma's own default is 1024).
    backlog: Option<u64>,
    worker_timeout: u64,
    timeout_cite: String,
    /// The rack file, when it is not Puma's default `config.ru`.
    rackup: Option<String>,
    pools: Vec<PoolNote>,
}

impl FileContext {
    fn new(ctx: &Context<'_>, service: &ServicePlan, p: &PumaPlan) -> Self {
        let pools = ctx
            .plan
            .edges_from(&service.name)
            .filter(|e| matches!(e.to_kind, Kind::Postgres | Kind::Pgbouncer))
            .filter(|e| e.framework == Framework::Rails)
            .map(|e| PoolNote {
                path: comment(&e.path),
                per_process: e.per_process.value,
                cite: comment(&e.per_process.cite()),
                connections: e.connections,
            })
            .collect();
        FileContext {
            header: ctx.header("#"),
            service: comment(&service.name),
            service_path: comment(&service.path),
            workers: p.workers.value,
            processes: service.processes.value,
            replicas: service.replicas.value,
            slots: service.slots,
            threads: p.threads.value,
            threads_cite: comment(&p.threads.cite()),
            min_threads: (p.min_threads.value != p.threads.value).then_some(p.min_threads.value),
            preload: p.preload,
            port: service.port.value,
            backlog: service.backlog.as_ref().filter(|b| b.is_written()).map(|b| b.value),
            worker_timeout: p.timeout.value,
            timeout_cite: comment(&p.timeout.cite()),
            rackup: (p.app != "config.ru").then(|| p.app.clone()),
            pools,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze_text;

    const SPEC: &str = r#"
version: 1
name: subcontractor
services:
  web:
    kind: puma
    replicas: 3
    workers: 4
    threads: 5
    preload: true
    port: 3000
    uses:
      db: { pool: 25, framework: rails }
  db:
    kind: postgres
"#;

    fn render(spec: &str) -> Vec<Artifact> {
        let analysis = analyze_text("capacity.yaml", spec).expect("spec loads");
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        Puma.render(&ctx).expect("renders")
    }

    #[test]
    fn reads_env_with_the_plan_as_defaults() {
        let artifacts = render(SPEC);
        assert_eq!(artifacts.len(), 1);
        let text = &artifacts[0].text;
        assert_eq!(artifacts[0].path, "config/puma.rb");
        assert!(text.starts_with("# Generated by headroom from capacity.yaml"));
        for line in [
            "max_threads_count = Integer(ENV.fetch(\"RAILS_MAX_THREADS\") { 5 })",
            "min_threads_count = Integer(ENV.fetch(\"RAILS_MIN_THREADS\") { max_threads_count })",
            "threads min_threads_count, max_threads_count",
            "workers Integer(ENV.fetch(\"WEB_CONCURRENCY\") { 4 })",
            "preload_app!",
            "port Integer(ENV.fetch(\"PORT\") { 3000 })",
            "worker_timeout 60",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
        }
        assert!(text.contains("services.web.uses.db = 25 per process"), "{text}");
        assert!(text.contains("pool: <%= ENV.fetch(\"DATABASE_POOL\") { ENV.fetch(\"RAILS_MAX_THREADS\") { 5 } } %>"), "{text}");
    }

    #[test]
    fn single_mode_min_threads_backlog_and_rackup() {
        let spec = SPEC
            .replace("    workers: 4\n", "")
            .replace("    preload: true\n", "    min_threads: 1\n    backlog: 2048\n    app: app.ru\n");
        let text = &render(&spec)[0].text;
        assert!(text.contains("workers Integer(ENV.fetch(\"WEB_CONCURRENCY\") { 0 })"), "{text}");
        assert!(!text.contains("preload_app!"), "{text}");
        assert!(text.contains("Integer(ENV.fetch(\"RAILS_MIN_THREADS\") { 1 })"), "{text}");
        assert!(text.contains("bind \"tcp://0.0.0.0:#{Integer(ENV.fetch(\"PORT\") { 3000 })}?backlog=2048\""), "{text}");
        assert!(text.contains("rackup 'app.ru'"), "{text}");
    }

    #[test]
    fn command_runs_the_rendered_file() {
        let spec = format!("{SPEC}deploy:\n  files:\n    puma: web/config/puma.rb\n");
        let analysis = analyze_text("capacity.yaml", &spec).unwrap();
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        assert_eq!(command(&ctx, &analysis.plan.services[0]), ["bundle", "exec", "puma", "-C", "web/config/puma.rb"]);
        assert_eq!(Puma.render(&ctx).unwrap()[0].path, "web/config/puma.rb");
    }

    #[test]
    fn rendering_is_deterministic() {
        assert_eq!(render(SPEC), render(SPEC));
    }
}
