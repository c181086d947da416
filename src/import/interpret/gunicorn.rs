//! gunicorn: its command-line flags, and gunicorn.conf.py (top-level assignments,
//! evaluated with the environment the files set).

use std::collections::HashMap;
use std::ops::Range;

use serde_json::{Value, json};

use super::Cx;
use crate::import::shared::argv::{Arg, Word, parse_args};
use crate::import::shared::facts::Facts;
use crate::import::shared::python::{Assigned, Line, Py, Unknown, eval, logical_lines, split_assignment, truthy};
use crate::import::shared::units;
use crate::import::{FileId, ImportBuilder};

const GUNICORN_BOOL: [&str; 27] = [
    "--reload", "--preload", "--daemon", "-D", "--check-config", "--print-config", "--spew", "--capture-output",
    "--enable-stdio-inheritance", "-R", "--reuse-port", "--no-sendfile", "--strip-header-spaces", "--proxy-protocol",
    "--do-handshake-on-connect", "--disable-redirect-access-to-syslog", "--suppress-ragged-eofs", "--help", "-h",
    "--version", "-v", "--initgroups", "--log-syslog", "--no-control-socket", "--permit-obsolete-folding",
    "--permit-unconventional-http-method", "--permit-unconventional-http-version",
];

/// Gunicorn worker class names -> spec `worker_class`.
pub fn worker_class(name: &str) -> Option<&'static str> {
    let lower = name.trim().to_ascii_lowercase();
    if lower.contains("uvicorn") {
        Some("uvicorn")
    } else if lower == "gevent" || lower.contains("ggevent") || lower.contains("geventworker") {
        Some("gevent")
    } else if lower == "gthread" || lower.contains("threadworker") || lower.ends_with(".gthread") {
        Some("gthread")
    } else if lower == "sync" || lower.contains("syncworker") {
        Some("sync")
    } else {
        None
    }
}

pub(super) fn flags(cx: &mut Cx<'_>, words: &[Word]) {
    let args = parse_args(words, |f| f.starts_with("--") && !GUNICORN_BOOL.contains(&f) || matches!(f, "-c" | "-b" | "-w" | "-k" | "-t" | "-e" | "-p" | "-u" | "-g" | "-m" | "-n"));
    let mut threads_at = None;
    let mut class_set = false;
    let mut app_seen = false;
    for arg in args {
        let opt = match arg {
            Arg::Positional((w, r)) => {
                if app_seen {
                    cx.ignored(r, "a second positional argument to gunicorn".into());
                } else {
                    app_seen = true;
                    cx.set("app", json!(w), r);
                }
                continue;
            }
            Arg::Opt(o) => o,
        };
        match opt.flag.as_str() {
            "--workers" | "-w" => cx.number("workers", &opt),
            "--threads" => {
                threads_at = Some(opt.bytes.clone());
                cx.number("threads", &opt);
            }
            "--worker-connections" => cx.number("worker_connections", &opt),
            "--max-requests" => cx.number("max_requests", &opt),
            "--max-requests-jitter" => cx.number("max_requests_jitter", &opt),
            "--backlog" => cx.number("backlog", &opt),
            "--timeout" | "-t" => cx.secs("timeout", &opt),
            "--graceful-timeout" => cx.secs("graceful_timeout", &opt),
            "--keep-alive" => cx.secs("keepalive", &opt),
            "--worker-class" | "-k" => {
                if let Some(text) = cx.value(&opt) {
                    match worker_class(&text) {
                        Some(class) => {
                            class_set = true;
                            cx.set("worker_class", json!(class), opt.bytes.clone());
                        }
                        None => cx.ignored(opt.bytes.clone(), format!("gunicorn worker class `{}` is not modelled (sync, gthread, gevent, uvicorn)", text.escape_debug())),
                    }
                }
            }
            "--bind" | "-b" => {
                if cx.builder.get(&cx.path("port")).is_some() && words.iter().filter(|(w, _)| w == "-b" || w.starts_with("--bind")).count() > 1 {
                    cx.ignored(opt.bytes.clone(), "a further bind address; the first one's port is used".into());
                } else if let Some(text) = cx.value(&opt) {
                    cx.port_of_bind(&opt, &text);
                }
            }
            "--config" | "-c" => {
                let shown = opt.value.as_ref().map(|(v, _)| v.clone()).unwrap_or_default();
                let note = format!("gunicorn reads settings from `{}`; pass that file to headroom to read them too (command-line flags win over it)", shown.escape_debug());
                cx.builder.config_named(cx.file, opt.bytes.clone(), &shown, note);
            }
            flag => cx.ignored(opt.bytes.clone(), format!("gunicorn `{flag}` does not change capacity")),
        }
    }
    let threads = cx.builder.get(&cx.path("threads")).and_then(Value::as_u64);
    let has_class = class_set || cx.builder.get(&cx.path("worker_class")).is_some();
    if let (Some(at), Some(n)) = (threads_at, threads)
        && n > 1
        && !has_class
    {
        cx.set("worker_class", json!("gthread"), at.clone());
        cx.builder.assumed_at(cx.file,
            at,
            format!("worker_class gthread for `{}`: gunicorn runs the sync worker class as gthread when --threads is above 1", cx.service),
            "write --worker-class gthread to say so",
        );
    }
}

/// Gunicorn settings that do not change capacity (noted when assigned).
const OTHER_SETTINGS: [&str; 40] = [
    "accesslog", "errorlog", "loglevel", "access_log_format", "capture_output", "logger_class", "logconfig", "logconfig_dict",
    "syslog", "statsd_host", "proc_name", "default_proc_name", "pythonpath", "chdir", "daemon", "raw_env", "pidfile",
    "worker_tmp_dir", "user", "group", "umask", "tmp_upload_dir", "secure_scheme_headers", "forwarded_allow_ips",
    "proxy_allow_ips", "proxy_protocol", "reload", "reload_engine", "reload_extra_files", "spew", "check_config",
    "print_config", "preload_app", "sendfile", "reuse_port", "limit_request_line", "limit_request_fields",
    "limit_request_field_size", "keyfile", "certfile",
];

/// Reads a gunicorn.conf.py into the gunicorn service that owns it.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let Some(text) = builder.sources.get(file).map(|s| s.text.clone()) else { return };
    let fallback = builder.default_service(&["gunicorn"], "web");
    let service = builder.owner_of(file, &fallback);
    if builder.runs_no_service(&service) {
        builder.ignored(file, 0..0, "gunicorn config that no service of the deployment runs (none runs its program, mounts it or builds it in); not read: pass it with the files of the deployment that runs it");
        return;
    }
    let head = 0..text.find('\n').unwrap_or(text.len());
    if !builder.ensure_kind(&service, "gunicorn", file, head.clone()) {
        let kind = builder.kind_of_service(&service).unwrap_or_default();
        builder.ignored(file, head, format!("gunicorn config for `{service}`, which is a {kind} service; not read"));
        return;
    }
    if let Some(program) = builder.programs.get(&service).filter(|p| **p != "gunicorn") {
        builder.ignored(file, head, format!("gunicorn config for `{service}`, whose command runs {program}, not gunicorn; not applied"));
        return;
    }
    builder.mark(&format!("services.{service}"), file, head);
    let env = super::service_env(builder, &service);
    let facts = super::facts_for(builder, &service);
    let mut vars: HashMap<String, Assigned> = HashMap::new();
    // The block being passed over (a hook, a loop) or walked (an `if` whose branch
    // runs): its first line and bytes, and whether its body runs.
    let mut block: Option<(String, Range<usize>, BlockBody)> = None;
    let lines = logical_lines(&text);
    for line in &lines {
        let t = line.text.as_str();
        let first = t.split(|c: char| c.is_whitespace() || c == '(' || c == ':').next().unwrap_or("");
        if line.indented {
            match &mut block {
                Some((_, bytes, BlockBody::Runs)) => {
                    bytes.end = line.bytes.end;
                    statement(builder, &service, file, line, &mut vars, &env, &facts);
                }
                Some((_, bytes, _)) => bytes.end = line.bytes.end,
                None => {}
            }
            continue;
        }
        // `elif` / `else` continue the `if` before them.
        let continues = matches!(first, "elif" | "else") && t.ends_with(':');
        if let Some((head, bytes, body)) = block.take() {
            let taken = matches!(body, BlockBody::Runs | BlockBody::AfterTaken);
            if continues && !matches!(body, BlockBody::Skipped(_)) {
                if let Some(why) = body.not_applied() {
                    builder.ignored(file, bytes.clone(), format!("gunicorn.conf.py `{}` not applied: {why}", shown(&head)));
                }
                let cond = t.trim_end_matches(':').strip_prefix(first).unwrap_or("").trim();
                let body = if taken {
                    BlockBody::AfterTaken
                } else if first == "else" {
                    BlockBody::Runs
                } else {
                    decide(cond, &vars, &env, &facts)
                };
                block = Some((t.trim_end_matches(':').to_string(), line.bytes.clone(), body));
                continue;
            }
            if let Some(why) = body.not_applied() {
                builder.ignored(file, bytes, format!("gunicorn.conf.py `{}` not applied: {why}", shown(&head)));
            }
        }
        if matches!(first, "import" | "from") || t.starts_with('"') || t.starts_with('\'') || t.starts_with('@') {
            continue;
        }
        if t.ends_with(':') && first == "if" {
            let cond = t.trim_end_matches(':')["if".len()..].trim();
            block = Some((t.trim_end_matches(':').to_string(), line.bytes.clone(), decide(cond, &vars, &env, &facts)));
            continue;
        }
        if t.ends_with(':') && matches!(first, "def" | "elif" | "else" | "for" | "while" | "with" | "try" | "except" | "finally" | "class" | "async") {
            block = Some((t.trim_end_matches(':').to_string(), line.bytes.clone(), BlockBody::Skipped("hooks and other blocks are not evaluated".into())));
            continue;
        }
        statement(builder, &service, file, line, &mut vars, &env, &facts);
    }
    if let Some((head, bytes, body)) = block
        && let Some(why) = body.not_applied()
    {
        builder.ignored(file, bytes, format!("gunicorn.conf.py `{}` not applied: {why}", shown(&head)));
    }
}

/// A line of code as shown in a note (control characters as spaces).
fn shown(text: &str) -> String {
    text.replace(|c: char| c.is_control(), " ")
}

/// The body of a top-level block of gunicorn.conf.py.
enum BlockBody {
    /// An `if` branch that runs.
    Runs,
    /// An `if` branch that does not run (or cannot be decided), and why.
    NotTaken(String),
    /// A later branch of an `if` whose earlier branch runs.
    AfterTaken,
    /// Not configuration that runs at load (a hook, a loop), and why.
    Skipped(String),
}

impl BlockBody {
    /// Why the body is not applied; None when it runs.
    fn not_applied(&self) -> Option<String> {
        match self {
            BlockBody::Runs => None,
            BlockBody::AfterTaken => Some("an earlier branch of its `if` runs".into()),
            BlockBody::NotTaken(why) | BlockBody::Skipped(why) => Some(why.clone()),
        }
    }
}

/// Whether an `if` branch of gunicorn.conf.py runs.
fn decide(cond: &str, vars: &HashMap<String, Assigned>, env: &dyn Fn(&str) -> Option<String>, facts: &Facts) -> BlockBody {
    match eval(cond, vars, env, facts).map(|a| a.value) {
        Ok(Ok(v)) if truthy(&v) => BlockBody::Runs,
        Ok(Ok(_)) => BlockBody::NotTaken(format!("`if {cond}` is false where it runs")),
        Ok(Err(u)) | Err(u) => BlockBody::NotTaken(format!("the condition `{cond}` cannot be decided here ({})", unknown_text(&u))),
    }
}

fn unknown_text(u: &Unknown) -> String {
    match u {
        Unknown::Cpu => "the CPU count".into(),
        Unknown::Env(var) => format!("${var} is not set in the files read"),
        Unknown::Other(why) => why.clone(),
    }
}

/// One assignment of gunicorn.conf.py (top level, or in an `if` branch that runs).
fn statement(builder: &mut ImportBuilder, service: &str, file: FileId, line: &Line, vars: &mut HashMap<String, Assigned>, env: &dyn Fn(&str) -> Option<String>, facts: &Facts) {
    let Some((lhs, rhs)) = split_assignment(&line.text) else {
        builder.ignored(file, line.bytes.clone(), "gunicorn.conf.py statement is not an assignment; not evaluated");
        return;
    };
    let value = match eval(rhs, vars, env, facts) {
        Ok(a) => a,
        Err(u) => Assigned { value: Err(u), defaulted: Vec::new(), assumed: Vec::new() },
    };
    vars.insert(lhs.to_string(), value.clone());
    apply(builder, service, file, lhs, &value, &line.bytes);
}

fn apply(builder: &mut ImportBuilder, service: &str, file: FileId, name: &str, a: &Assigned, bytes: &Range<usize>) {
    let key = match name {
        "workers" | "threads" | "worker_connections" | "max_requests" | "max_requests_jitter" | "backlog" | "timeout" | "graceful_timeout" | "keepalive" | "worker_class" => name,
        "bind" => "port",
        "wsgi_app" => "app",
        other if OTHER_SETTINGS.contains(&other) => {
            builder.ignored(file, bytes.clone(), format!("gunicorn `{other}` does not change capacity"));
            return;
        }
        _ => return,
    };
    let value = match &a.value {
        Ok(v) => v.clone(),
        Err(Unknown::Cpu) => {
            let hint = if name == "workers" { " (`workers: auto` in an overlay means 2 x cpus + 1)" } else { "" };
            builder.ignored(file, bytes.clone(), format!("gunicorn `{name}` depends on the CPU count of the machine; left unset{hint}"));
            return;
        }
        Err(Unknown::Env(var)) => {
            builder.ignored(file, bytes.clone(), format!("gunicorn `{name}` reads ${var}, which has no default here; left unset"));
            return;
        }
        Err(Unknown::Other(why)) => {
            builder.ignored(file, bytes.clone(), format!("gunicorn `{name}`: {why} cannot be evaluated here"));
            return;
        }
    };
    let spec_value = match (key, &value) {
        ("worker_class", Py::Str(s)) => match worker_class(s) {
            Some(c) => json!(c),
            None => {
                builder.ignored(file, bytes.clone(), format!("gunicorn worker class `{}` is not modelled (sync, gthread, gevent, uvicorn)", s.escape_debug()));
                return;
            }
        },
        ("app", Py::Str(s)) => json!(s),
        ("port", v) => {
            let first = match v {
                Py::List(items) => items.first().cloned().unwrap_or(Py::None),
                other => other.clone(),
            };
            let Py::Str(addr) = first else {
                builder.ignored(file, bytes.clone(), "gunicorn `bind` is not an address");
                return;
            };
            if addr.starts_with("unix:") {
                builder.ignored(file, bytes.clone(), "gunicorn binds a unix socket; no TCP port");
                return;
            }
            match addr.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).filter(|p| *p > 0) {
                Some(p) => json!(p),
                None => {
                    builder.ignored(file, bytes.clone(), format!("gunicorn bind `{}` has no port", addr.escape_debug()));
                    return;
                }
            }
        }
        ("timeout" | "graceful_timeout" | "keepalive", v) => {
            let secs = match v {
                Py::Int(i) if *i >= 0 => Some(format!("{i}s")),
                Py::Float(f) => units::seconds(&f.to_string()),
                Py::Str(s) => units::seconds(s),
                _ => None,
            };
            match secs {
                Some(s) => json!(s),
                None => {
                    builder.ignored(file, bytes.clone(), format!("gunicorn `{name}` is not a number of seconds"));
                    return;
                }
            }
        }
        (_, v) => {
            let n = match v {
                Py::Int(i) => Some(*i),
                Py::Str(s) => s.trim().parse().ok(),
                Py::Float(f) if f.fract() == 0.0 => Some(*f as i64),
                _ => None,
            };
            match n.filter(|n| *n >= 1) {
                Some(n) => json!(n),
                None => {
                    builder.ignored(file, bytes.clone(), format!("gunicorn `{name}` is not a positive whole number"));
                    return;
                }
            }
        }
    };
    let path = format!("services.{service}.{key}");
    if let Some(flag) = builder.set_by_flag(&path) {
        if builder.get(&path) != Some(&spec_value) {
            builder.ignored(file, bytes.clone(), format!("gunicorn.conf.py `{name}` {spec_value}: the command line's `{}` wins over it", flag.escape_debug()));
        }
        return;
    }
    builder.set(&path, spec_value.clone(), file, bytes.clone());
    if !a.defaulted.is_empty() {
        let vars = a.defaulted.join(", ");
        builder.assumed_at(file,
            bytes.clone(),
            format!("gunicorn `{name}` {spec_value}: the default in gunicorn.conf.py, because {vars} is not set in the files read"),
            format!("if {vars} is set where gunicorn runs, its value wins"),
        );
    }
    if !a.assumed.is_empty() {
        builder.assumed_at(file, bytes.clone(), format!("gunicorn `{name}` {spec_value} rests on: {}", a.assumed.join("; ")), "pass --cpus, or set the value in an overlay, if the machine differs");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    const CONF: &str = r#""""Gunicorn config."""
import multiprocessing
import os

bind = "0.0.0.0:" + os.environ.get("PORT", "8000")
workers = multiprocessing.cpu_count() * 2 + 1
threads = int(os.getenv("GUNICORN_THREADS", 4))
worker_class = "gthread"
timeout = 2 * 60
keepalive = 5
max_requests = 1_000
max_requests_jitter = (
    100
)
accesslog = "-"
graceful_timeout = int(os.environ["GRACEFUL"])

def on_starting(server):
    server.log.info("starting")
    workers = 99

if os.environ.get("DEBUG"):
    reload = True
"#;

    fn read_text(text: &str) -> ImportBuilder {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("gunicorn.conf.py", text.to_string()));
        read(&mut b, id);
        b
    }

    fn line(b: &ImportBuilder, pointer: &str) -> usize {
        let o = &b.origins[pointer];
        b.sources[o.file].line_col(o.bytes.start).line
    }

    #[test]
    fn reads_top_level_assignments() {
        let b = read_text(CONF);
        let web = &b.value["services"]["web"];
        assert_eq!(web["kind"], "gunicorn");
        assert_eq!(web["port"], 8000);
        // cpu_count() is the machine's when the files say it, else an assumption that
        // says which value was used.
        assert_eq!(web["workers"], 5);
        assert_eq!(web["threads"], 4);
        assert_eq!(web["worker_class"], "gthread");
        assert_eq!(web["timeout"], "120s");
        assert_eq!(web["keepalive"], "5s");
        assert_eq!(web["max_requests"], 1000);
        assert_eq!(web["max_requests_jitter"], 100);
        assert!(web.get("graceful_timeout").is_none());
        assert_eq!(line(&b, "/services/web/threads"), 7);
        assert_eq!(line(&b, "/services/web/max_requests_jitter"), 12);
        let notes: Vec<&str> = b.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert!(notes.iter().any(|n| n.starts_with("assumed: gunicorn `workers` 5 rests on: 2 CPUs") && n.contains("--cpus")), "{notes:?}");
        assert!(notes.iter().any(|n| n.starts_with("assumed: gunicorn `threads` 4") && n.contains("GUNICORN_THREADS")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("$GRACEFUL")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("def on_starting(server)")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("accesslog")), "{notes:?}");
    }

    #[test]
    fn command_line_flags_win() {
        let mut b = ImportBuilder::new("t");
        let cmd = "gunicorn --workers 8 --threads 2 app";
        let c = b.add_source(SourceFile::new("docker-compose.yml", cmd.to_string()));
        super::super::apply_command(&mut b, "web", &crate::import::shared::argv::shell_words(cmd), c, &Default::default());
        let id = b.add_source(SourceFile::new("gunicorn.conf.py", "workers = 3\nthreads = 2\ntimeout = 30\n".to_string()));
        read(&mut b, id);
        let web = &b.value["services"]["web"];
        assert_eq!(web["workers"], 8);
        assert_eq!(web["timeout"], "30s");
        assert!(b.diagnostics.iter().any(|d| d.message.contains("the command line's `--workers 8` wins")));
    }

    #[test]
    fn odd_python_is_noted_never_a_panic() {
        for odd in ["workers = ", "workers = (", "workers = 'x", "x = \"\"\"\nunterminated", "workers = 1 // 0", "bind = ['unix:/tmp/s']", "workers = 99999999999999999999", "\u{0}", "é = 1", "workers = max(2, 3)\nthreads = os.getenv('X')"] {
            let _ = read_text(odd);
        }
        let b = read_text("workers = max(2, 3)\nbind = ['0.0.0.0:9000', '[::]:9000']\n");
        assert_eq!(b.value["services"]["web"]["workers"], 3);
        assert_eq!(b.value["services"]["web"]["port"], 9000);
    }

    #[test]
    fn conditionals_are_decided_and_cpus_come_from_the_machine() {
        let text = "import os, multiprocessing\nworkers = multiprocessing.cpu_count() * 2 + 1\nif os.environ.get(\"APP_ENV\", \"production\") == \"production\":\n    threads = 8\n    timeout = 30\nelse:\n    threads = 1\n    timeout = 600\nif 'DEBUG' in os.environ:\n    workers = 1\nworker_connections = 500 if workers > 4 else 10\n";
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("gunicorn.conf.py", text.to_string()));
        b.set("services.web.kind", serde_json::json!("gunicorn"), id, 0..0);
        b.set("services.web.resources.cpus", serde_json::json!(4), id, 0..0);
        read(&mut b, id);
        let web = &b.value["services"]["web"];
        assert_eq!(web["workers"], 9);
        assert_eq!((web["threads"].clone(), web["timeout"].clone()), (serde_json::json!(8), serde_json::json!("30s")));
        assert_eq!(web["worker_connections"], 500);
        assert_eq!(line(&b, "/services/web/threads"), 4);
        let notes: Vec<&str> = b.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert!(!notes.iter().any(|n| n.contains("CPUs")), "the CPUs are known: {notes:?}");
        assert!(notes.iter().any(|n| n.contains("`else` not applied")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("`if 'DEBUG' in os.environ` not applied")), "{notes:?}");
    }
}

