//! Target `gunicorn`: one `gunicorn.conf.py` per gunicorn service, and the equivalent
//! command line for the orchestrators (compose, Kamal, Railway). Every number comes
//! from the service's `GunicornPlan`; the file and the command carry the same settings.

use serde::Serialize;

use super::{Artifact, Context, RenderError, Target};
use crate::plan::{Detail, GunicornPlan, Kind, ServicePlan, Sourced};
use crate::spec::WorkerClass;

const TEMPLATE: &str = include_str!("../../templates/gunicorn/gunicorn.conf.py.j2");

pub struct Gunicorn;

impl Target for Gunicorn {
    fn name(&self) -> &'static str {
        "gunicorn"
    }
    fn render(&self, ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        let mut artifacts = Vec::new();
        for service in ctx.plan.services.iter().filter(|s| s.kind == Kind::Gunicorn) {
            let Detail::Gunicorn(g) = &service.detail else { continue };
            let path = path(ctx, service);
            let context = FileContext::new(ctx, service, g, &path);
            let text = super::render_template("gunicorn", "gunicorn.conf.py.j2", TEMPLATE, &context)?;
            artifacts.push(Artifact { target: "gunicorn", path, text, patched: false });
        }
        Ok(artifacts)
    }
}

/// Where a gunicorn service's config file goes: `deploy.files.gunicorn` (one gunicorn
/// service) or `deploy.files["gunicorn.<service>"]`, default `gunicorn.conf.py` /
/// `<service>/gunicorn.conf.py`.
pub fn path(ctx: &Context<'_>, service: &crate::plan::ServicePlan) -> String {
    let per_service = format!("gunicorn.{}", service.name);
    let files = ctx.spec.deploy.as_ref().map(|d| &d.files);
    let written = |key: &str| files.and_then(|f| f.get(key)).cloned();
    let gunicorn_services = ctx.plan.services.iter().filter(|s| s.kind == Kind::Gunicorn).count();
    if gunicorn_services <= 1 {
        written("gunicorn").or_else(|| written(&per_service)).unwrap_or_else(|| "gunicorn.conf.py".to_string())
    } else {
        written(&per_service).unwrap_or_else(|| format!("{}/gunicorn.conf.py", service.name))
    }
}

/// The gunicorn command line (argv) with the same settings as the config file, for
/// compose, Kamal and Railway.
pub fn command(service: &crate::plan::ServicePlan) -> Vec<String> {
    let Detail::Gunicorn(g) = &service.detail else {
        return vec!["gunicorn".into()];
    };
    let mut argv: Vec<String> = vec!["gunicorn".into()];
    for setting in settings(service, g) {
        argv.push(setting.flag.to_string());
        argv.push(setting.cli_value);
    }
    argv.push(g.app.clone());
    argv
}

/// The dotted class gunicorn loads for a worker class (its short names where gunicorn
/// has one).
pub fn worker_class_name(class: WorkerClass) -> &'static str {
    match class {
        WorkerClass::Sync => "sync",
        WorkerClass::Gthread => "gthread",
        WorkerClass::Gevent => "gevent",
        WorkerClass::Uvicorn => "uvicorn.workers.UvicornWorker",
    }
}

/// One gunicorn setting: its name in the config file, its command-line flag (as
/// gunicorn's CLI documents it), its value in both syntaxes, and where it came from.
#[derive(Serialize)]
struct Setting {
    name: &'static str,
    flag: &'static str,
    /// A Python literal.
    py_value: String,
    #[serde(skip)]
    cli_value: String,
    /// Unit and origin, for the comment beside it.
    note: String,
}

fn number(name: &'static str, flag: &'static str, value: &Sourced<u64>, unit: &str) -> Setting {
    let unit = if unit.is_empty() { String::new() } else { format!("{unit}; ") };
    Setting {
        name,
        flag,
        py_value: value.value.to_string(),
        cli_value: value.value.to_string(),
        note: comment(&format!("{unit}{}", value.cite())),
    }
}

/// The settings, in the order both the file and the command list them. `threads` only
/// for gthread (gunicorn turns a sync worker with threads > 1 into gthread, which would
/// change the plan's slots), `worker_connections` only for the classes that read it.
fn settings(service: &ServicePlan, g: &GunicornPlan) -> Vec<Setting> {
    let bind = format!("0.0.0.0:{}", service.port.value);
    let class = worker_class_name(g.worker_class.value);
    let mut out = vec![
        Setting {
            name: "bind",
            flag: "--bind",
            py_value: format!("[{}]", quoted(&bind)),
            cli_value: bind,
            note: comment(&service.port.cite()),
        },
        number("workers", "--workers", &g.workers, ""),
        Setting {
            name: "worker_class",
            flag: "--worker-class",
            py_value: quoted(class),
            cli_value: class.to_string(),
            note: comment(&g.worker_class.cite()),
        },
    ];
    match g.worker_class.value {
        WorkerClass::Gthread => out.push(number("threads", "--threads", &g.threads, "threads per worker")),
        WorkerClass::Gevent => out.push(number("worker_connections", "--worker-connections", &g.worker_connections, "concurrent clients per worker")),
        // UvicornWorker does not pass worker_connections on to uvicorn (no
        // limit_concurrency): the setting records the plan's assumption, say so.
        WorkerClass::Uvicorn => out.push(number(
            "worker_connections",
            "--worker-connections",
            &g.worker_connections,
            "concurrent requests per worker the plan assumes (UvicornWorker does not enforce it)",
        )),
        WorkerClass::Sync => {}
    }
    out.extend([
        number("timeout", "--timeout", &g.timeout, "seconds"),
        number("graceful_timeout", "--graceful-timeout", &g.graceful_timeout, "seconds"),
        number("keepalive", "--keep-alive", &g.keepalive, "seconds"),
        number("max_requests", "--max-requests", &g.max_requests, ""),
        number("max_requests_jitter", "--max-requests-jitter", &g.max_requests_jitter, ""),
    ]);
    if let Some(backlog) = &service.backlog {
        out.push(number("backlog", "--backlog", backlog, "pending connections"));
    }
    out
}

/// A Python string literal (JSON's double-quoted strings are valid Python).
fn quoted(value: &str) -> String {
    super::escape::quoted(value).expect("quoting a string cannot fail")
}

/// Text for a `#` comment: one line, whatever the spec's names hold.
pub(crate) use super::escape::comment;

#[derive(Serialize)]
struct FileContext {
    header: String,
    service: String,
    service_path: String,
    path: String,
    app: String,
    workers: u64,
    per_worker: String,
    replicas: u64,
    slots: u64,
    settings: Vec<Setting>,
    command: String,
}

impl FileContext {
    fn new(ctx: &Context<'_>, service: &ServicePlan, g: &GunicornPlan, path: &str) -> Self {
        let per_worker = match g.worker_class.value {
            WorkerClass::Sync => "1 request at a time (sync)".to_string(),
            WorkerClass::Gthread => format!("{} threads", g.threads.value),
            WorkerClass::Gevent => format!("{} greenlets (gevent worker_connections)", g.worker_connections.value),
            WorkerClass::Uvicorn => format!("{} concurrent requests (uvicorn, worker_connections)", g.worker_connections.value),
        };
        let command = command(service)
            .iter()
            .map(|w| super::escape::shell_word(w).expect("shell quoting cannot fail"))
            .collect::<Vec<_>>()
            .join(" ");
        FileContext {
            header: ctx.header("#"),
            service: comment(&service.name),
            service_path: comment(&service.path),
            path: comment(path),
            app: g.app.clone(),
            workers: service.processes.value,
            per_worker,
            replicas: service.replicas.value,
            slots: service.slots,
            settings: settings(service, g),
            command: comment(&command),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze_text;

    const SPEC: &str = r#"
version: 1
name: arena
services:
  web:
    kind: gunicorn
    worker_class: gthread
    workers: 8
    threads: 4
    replicas: 15
    port: 8000
    timeout: 600s
    keepalive: 5s
    max_requests: 1000
    max_requests_jitter: 100
    app: arena_backend.wsgi
"#;

    fn render(spec: &str) -> (Vec<Artifact>, Vec<Vec<String>>) {
        let analysis = analyze_text("capacity.yaml", spec).expect("spec loads");
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        let artifacts = Gunicorn.render(&ctx).expect("renders");
        let commands = analysis.plan.services.iter().filter(|s| s.kind == Kind::Gunicorn).map(command).collect();
        (artifacts, commands)
    }

    #[test]
    fn gthread_file_and_command_carry_the_plan() {
        let (artifacts, commands) = render(SPEC);
        assert_eq!(artifacts.len(), 1);
        let a = &artifacts[0];
        assert_eq!(a.path, "gunicorn.conf.py");
        assert!(a.text.starts_with("# Generated by headroom from capacity.yaml"), "{}", a.text);
        for line in [
            "wsgi_app = \"arena_backend.wsgi\"",
            "bind = [\"0.0.0.0:8000\"]",
            "workers = 8",
            "worker_class = \"gthread\"",
            "threads = 4",
            "timeout = 600",
            "graceful_timeout = 30",
            "keepalive = 5",
            "max_requests = 1000",
            "max_requests_jitter = 100",
            "backlog = 2048",
        ] {
            assert!(a.text.lines().any(|l| l.starts_with(line)), "missing `{line}` in\n{}", a.text);
        }
        assert!(!a.text.contains("worker_connections ="));
        assert_eq!(
            commands[0].join(" "),
            "gunicorn --bind 0.0.0.0:8000 --workers 8 --worker-class gthread --threads 4 --timeout 600 \
             --graceful-timeout 30 --keep-alive 5 --max-requests 1000 --max-requests-jitter 100 --backlog 2048 arena_backend.wsgi"
        );
    }

    #[test]
    fn gevent_and_uvicorn_use_worker_connections() {
        let spec = SPEC.replace("worker_class: gthread", "worker_class: gevent\n    worker_connections: 100");
        let (artifacts, commands) = render(&spec);
        assert!(artifacts[0].text.contains("worker_class = \"gevent\""));
        assert!(artifacts[0].text.contains("worker_connections = 100"));
        assert!(!artifacts[0].text.contains("threads ="));
        assert!(commands[0].windows(2).any(|w| w == ["--worker-connections", "100"]));
        let spec = SPEC.replace("worker_class: gthread", "worker_class: uvicorn");
        let (artifacts, commands) = render(&spec);
        assert!(artifacts[0].text.contains("worker_class = \"uvicorn.workers.UvicornWorker\""));
        assert!(artifacts[0].text.contains("worker_connections = 1000"));
        assert!(commands[0].windows(2).any(|w| w == ["--worker-class", "uvicorn.workers.UvicornWorker"]));
    }

    #[test]
    fn several_services_get_their_own_paths() {
        let spec = format!(
            "{SPEC}  admin:\n    kind: gunicorn\n    app: admin.wsgi\ndeploy:\n  files:\n    gunicorn.admin: deploy/admin.conf.py\n"
        );
        let (artifacts, _) = render(&spec);
        let paths: Vec<&str> = artifacts.iter().map(|a| a.path.as_str()).collect();
        assert_eq!(paths, ["web/gunicorn.conf.py", "deploy/admin.conf.py"]);
        // sync: neither threads nor worker_connections.
        assert!(!artifacts[1].text.contains("threads =") && !artifacts[1].text.contains("worker_connections ="));
        assert!(artifacts[1].text.contains("worker_class = \"sync\""));
    }

    #[test]
    fn one_service_uses_the_gunicorn_file_key() {
        let spec = format!("{SPEC}deploy:\n  files:\n    gunicorn: backend/gunicorn.conf.py\n");
        let (artifacts, _) = render(&spec);
        assert_eq!(artifacts[0].path, "backend/gunicorn.conf.py");
    }

    #[test]
    fn hostile_app_names_stay_string_literals() {
        // The loader rejects such names; the target must hold even if one slips through.
        let mut analysis = analyze_text("capacity.yaml", SPEC).expect("spec loads");
        if let Detail::Gunicorn(g) = &mut analysis.plan.services[0].detail {
            g.app = "x\"\nimport os".into();
        }
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        let text = &Gunicorn.render(&ctx).unwrap()[0].text;
        assert!(text.contains(r#"wsgi_app = "x\"\nimport os""#), "{text}");
        assert!(!text.lines().any(|l| l.starts_with("import os")), "{text}");
        assert_eq!(command(&analysis.plan.services[0]).last().unwrap(), "x\"\nimport os");
    }

    #[test]
    fn rendering_is_deterministic() {
        assert_eq!(render(SPEC).0, render(SPEC).0);
    }
}
