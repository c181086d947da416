//! uWSGI: its command-line options and the `[uwsgi]` section of an ini file, as a
//! gunicorn-shaped service (what capacity depends on is the same: `processes` forked
//! workers of `threads` threads, or `gevent` async cores; `harakiri`, which kills a
//! worker whose request runs too long, is the request timeout; `listen` the backlog).
//! `env = KEY=VALUE` lines are the app's environment: pools and `CONN_MAX_AGE` are
//! read from them. `$(VAR)` is the environment's, `%k` the machine's CPUs.

use std::ops::Range;

use serde_json::{Value, json};

use super::Cx;
use crate::import::shared::argv::{Arg, Opt, Word, parse_args};
use crate::import::shared::conf::meaningful_lines;
use crate::import::shared::env::{EnvVar, Variables};
use crate::import::{FileId, ImportBuilder};

/// uWSGI's default listen queue (`listen`), smaller than gunicorn's 2048.
const DEFAULT_LISTEN: u64 = 100;

/// Options that do not change capacity (read without a note).
const QUIET: [&str; 44] = [
    "master", "vacuum", "chdir", "home", "virtualenv", "venv", "pythonpath", "uid", "gid", "chmod-socket", "chown-socket", "pidfile",
    "safe-pidfile", "logto", "logger", "log-format", "logdate", "daemonize", "daemonize2", "die-on-term", "need-app", "strict",
    "single-interpreter", "enable-threads", "lazy-apps", "callable", "static-map", "static-cache-paths", "buffer-size",
    "post-buffering", "touch-reload", "py-autoreload", "procname-prefix", "procname", "procname-master", "auto-procname",
    "no-orphans", "disable-logging", "memory-report", "stats", "plugin", "plugins", "hook-master-start", "thunder-lock",
];

/// Applies one uWSGI option (a flag without its dashes, or an ini key).
fn option(cx: &mut Cx<'_>, key: &str, opt: &Opt, facts_cpus: Option<u64>) -> Option<EnvVar> {
    let key = key.replace('_', "-");
    match key.as_str() {
        "processes" | "workers" | "p" => number(cx, "workers", opt, facts_cpus),
        "threads" => {
            number(cx, "threads", opt, facts_cpus);
            if cx.builder.get(&cx.path("threads")).and_then(Value::as_u64).is_some_and(|t| t > 1) && cx.builder.get(&cx.path("worker_class")).and_then(Value::as_str) != Some("gevent") {
                cx.set("worker_class", json!("gthread"), opt.bytes.clone());
            }
        }
        "gevent" | "async" => {
            number(cx, "worker_connections", opt, facts_cpus);
            cx.set("worker_class", json!("gevent"), opt.bytes.clone());
        }
        "harakiri" => cx.secs("timeout", opt),
        "listen" | "l" => number(cx, "backlog", opt, facts_cpus),
        "max-requests" | "R" => number(cx, "max_requests", opt, facts_cpus),
        "http" | "http-socket" | "socket" | "uwsgi-socket" | "s" => {
            if let Some(text) = cx.value(opt) {
                cx.port_of_bind(opt, &text);
            }
        }
        "module" | "wsgi-file" | "wsgi" | "w" | "mount" => {
            if let Some(text) = cx.value(opt) {
                cx.set("app", json!(text), opt.bytes.clone());
            }
        }
        "env" => {
            let (text, _) = opt.value.clone()?;
            let (name, value) = text.split_once('=')?;
            return Some(EnvVar { name: name.trim().to_string(), value: Some(value.trim().to_string()), file: cx.file, bytes: opt.bytes.clone() });
        }
        "attach-daemon" | "attach-daemon2" | "smart-attach-daemon" | "smart-attach-daemon2" | "attach-control-daemon" => {
            let shown = opt.value.as_ref().map(|(v, _)| v.clone()).unwrap_or_default();
            cx.ignored(opt.bytes.clone(), format!("uWSGI `{key}` runs `{}` beside the workers; its own database and Redis connections are not counted", shown.escape_debug()));
        }
        "cheaper" | "cheaper-algo" | "cheaper-initial" => cx.ignored(
            opt.bytes.clone(),
            format!("uWSGI `{key}`: fewer workers run while idle; the budget counts `processes`, the most it starts under load"),
        ),
        "ini" | "yaml" | "json" | "xml" => {
            let shown = opt.value.as_ref().map(|(v, _)| v.clone()).unwrap_or_default();
            if !mounted_here(cx, &shown) {
                cx.ignored(opt.bytes.clone(), format!("uWSGI reads `{}`; pass that file to headroom to read it too", shown.escape_debug()));
            }
        }
        k if QUIET.contains(&k) => {}
        k => cx.ignored(opt.bytes.clone(), format!("uWSGI `{k}` does not change capacity")),
    }
    None
}

/// Whether the deployment mounts a file of this name from the files read into this
/// service (then it is read as the service's config, and needs no note).
fn mounted_here(cx: &Cx<'_>, path: &str) -> bool {
    let name = std::path::Path::new(path).file_name();
    cx.builder.owners.iter().any(|(host, owner)| owner == cx.service && host.file_name() == name)
}

/// The multiple of the CPU count a value is: 1 for `%k`, N for the expressions
/// `%(%k * N)` / `%(N * %k)`.
fn cpu_multiple(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "%k" {
        return Some(1);
    }
    let inner = text.strip_prefix("%(")?.strip_suffix(')')?;
    let (a, b) = inner.split_once('*')?;
    match (a.trim(), b.trim()) {
        ("%k", n) | (n, "%k") => n.parse().ok().filter(|n| *n >= 1),
        _ => None,
    }
}

/// A whole number option; `%k` is the machine's CPU count.
fn number(cx: &mut Cx<'_>, key: &str, opt: &Opt, cpus: Option<u64>) {
    if let Some((text, _)) = &opt.value
        && let Some(times) = cpu_multiple(text)
    {
        let n = cpus.unwrap_or(crate::import::shared::facts::ASSUMED_CPUS) * times;
        cx.set(key, json!(n), opt.bytes.clone());
        if cpus.is_none() {
            cx.builder.assumed_at(cx.file, opt.bytes.clone(), format!("uWSGI `{}` = {}: {n}, with the machine's CPU count assumed to be {}", opt.flag, text.trim(), crate::import::shared::facts::ASSUMED_CPUS), "pass --cpus, or set the value in an overlay, with the machine's CPUs");
        }
        return;
    }
    cx.number(key, opt);
}

/// What a uWSGI command or ini leaves at uWSGI's defaults, written as such where the
/// spec's gunicorn defaults differ: no request timeout without `harakiri`, and a
/// listen queue of 100.
fn defaults(cx: &mut Cx<'_>, at: Range<usize>) {
    if cx.builder.get(&cx.path("timeout")).is_none() {
        cx.set("timeout", json!("0s"), at.clone());
    }
    if cx.builder.get(&cx.path("backlog")).is_none() {
        cx.set("backlog", json!(DEFAULT_LISTEN), at.clone());
    }
    if cx.builder.get(&cx.path("worker_class")).is_none() {
        cx.set("worker_class", json!("sync"), at);
    }
}

fn cpus_of(cx: &Cx<'_>) -> Option<u64> {
    let facts = super::facts_for(cx.builder, cx.service);
    facts.cpus_known.then_some(facts.cpus)
}

/// Applies `uwsgi --processes 4 --threads 2 --http :8000 ...`.
pub(super) fn flags(cx: &mut Cx<'_>, words: &[Word], head: Range<usize>) {
    let cpus = cpus_of(cx);
    let boolean = |f: &str| matches!(f.trim_start_matches('-'), "master" | "vacuum" | "enable-threads" | "lazy-apps" | "die-on-term" | "need-app" | "strict" | "single-interpreter" | "thunder-lock" | "no-orphans" | "M");
    let mut env = Vec::new();
    for arg in parse_args(words, |f| !boolean(f)) {
        match arg {
            Arg::Opt(opt) => {
                let key = opt.flag.trim_start_matches('-').to_string();
                env.extend(option(cx, &key, &opt, cpus));
            }
            Arg::Positional((w, r)) if w.ends_with(".ini") => {
                if !mounted_here(cx, &w) {
                    cx.ignored(r, format!("uWSGI reads `{}`; pass that file to headroom to read it too", w.escape_debug()));
                }
            }
            Arg::Positional((w, r)) => cx.ignored(r, format!("uWSGI argument `{}` does not change capacity", w.escape_debug())),
        }
    }
    apply_env(cx, &env);
    say_modelled(cx.builder, cx.service, cx.file, head.clone());
    defaults(cx, head);
}

/// Says (once per service) how uWSGI is modelled.
fn say_modelled(builder: &mut ImportBuilder, service: &str, file: FileId, at: Range<usize>) {
    let note = format!("uWSGI of `{service}` is modelled as a gunicorn service of the same processes, threads, harakiri and listen queue");
    if !builder.diagnostics.iter().any(|d| d.message.ends_with(&note)) {
        builder.assumed_at(file, at, note, "`import` writes it as gunicorn; render's gunicorn files would replace uWSGI");
    }
}

/// The app environment set by `env =` lines, applied as the process environment.
fn apply_env(cx: &mut Cx<'_>, env: &[EnvVar]) {
    if env.is_empty() {
        return;
    }
    let kind = cx.builder.kind_of_service(cx.service).unwrap_or_default();
    super::app_env::apply_environment(cx.builder, cx.service, &kind, env, &Variables::default());
    let (db, redis) = super::app_env::targets(cx.builder, cx.service);
    super::app_env::apply_pools(cx.builder, cx.service, db.as_ref().map(|d| d.0.as_str()), redis.as_ref().map(|r| r.0.as_str()), env);
    cx.builder.environments.entry(cx.service.to_string()).or_default().extend(env.iter().cloned());
}

/// Reads the `[uwsgi]` section of an ini file into the service that runs it.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let Some(text) = builder.sources.get(file).map(|s| s.text.clone()) else { return };
    let fallback = builder.default_service(&["gunicorn"], "web");
    let service = builder.owner_of(file, &fallback);
    if builder.runs_no_service(&service) {
        builder.ignored(file, 0..0, "uWSGI ini that no service of the deployment runs (none runs its program, mounts it or builds it in); not read: pass it with the files of the deployment that runs it");
        return;
    }
    let lines = section_lines(&text, "uwsgi");
    let head = lines.first().map_or(0..0, |l| l.2.clone());
    if let Some(program) = builder.programs.get(&service).filter(|p| **p != "uwsgi") {
        builder.ignored(file, head, format!("uWSGI ini for `{service}`, whose command runs {program}, not uwsgi; not applied"));
        return;
    }
    if !builder.ensure_kind(&service, "gunicorn", file, head.clone()) {
        let kind = builder.kind_of_service(&service).unwrap_or_default();
        builder.ignored(file, head, format!("uWSGI ini for `{service}`, which is a {kind} service; not read"));
        return;
    }
    builder.mark(&format!("services.{service}"), file, head.clone());
    // The command's `--ini` note asked for this file: it is read now.
    if let Some(name) = builder.sources[file].path.file_name().and_then(|n| n.to_str()).map(str::to_string) {
        builder.diagnostics.retain(|d| !(d.message.contains("uWSGI reads `") && d.message.contains(&format!("{name}`; pass that file"))));
    }
    say_modelled(builder, &service, file, head.clone());
    let env = super::service_env(builder, &service);
    let vars = Variables::default();
    let mut cx = Cx { builder, service: &service, file, vars: &vars };
    let cpus = cpus_of(&cx);
    let mut app_env = Vec::new();
    // `if-env = VAR` / `if-not-env = VAR` ... `endif =`: whether each open block applies.
    let mut blocks: Vec<bool> = Vec::new();
    for (key, value, bytes, value_bytes) in lines.into_iter().skip(1) {
        match key.as_str() {
            "if-env" | "if-not-env" => {
                let name = value.split('=').next().unwrap_or("").trim();
                let set = env(name).is_some_and(|v| !v.is_empty());
                let applies = set == (key == "if-env");
                if !set && applies {
                    cx.builder.assumed_at(cx.file, bytes, format!("uWSGI `{key} = {name}`: {name} is not set in the files read, so this block applies"), format!("if {name} is set where uWSGI runs, the other branch applies"));
                }
                blocks.push(applies && blocks.iter().all(|b| *b));
                continue;
            }
            "endif" => {
                blocks.pop();
                continue;
            }
            _ if blocks.last() == Some(&false) => continue,
            _ => {}
        }
        // `$(VAR)` reads the environment uWSGI starts in.
        let resolved = match substitute(&value, &env) {
            Ok(v) => v,
            Err(var) => {
                cx.ignored(bytes, format!("uWSGI `{key}` takes its value from $({var}) at run time; headroom cannot know it, so the default applies"));
                continue;
            }
        };
        if resolved.contains("%(") && cpu_multiple(&resolved).is_none() {
            cx.ignored(bytes, format!("uWSGI `{key}` = `{}` uses a placeholder headroom does not expand", value.escape_debug()));
            continue;
        }
        let opt = Opt { flag: key.clone(), value: Some((resolved, value_bytes)), bytes };
        app_env.extend(option(&mut cx, &key, &opt, cpus));
    }
    apply_env(&mut cx, &app_env);
    defaults(&mut cx, head);
}

/// `$(VAR)` references replaced by the environment's values; Err(VAR) for one unset.
fn substitute(value: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find("$(") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else {
            out.push_str(&rest[at..]);
            return Ok(out);
        };
        let name = &after[..end];
        out.push_str(&env(name).ok_or_else(|| name.to_string())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The `key = value` lines of one ini section: (key, value, line bytes, value bytes);
/// the first entry is the section header (key and value empty).
fn section_lines(text: &str, wanted: &str) -> Vec<(String, String, Range<usize>, Range<usize>)> {
    let mut out = Vec::new();
    let mut inside = false;
    for (trimmed, at) in meaningful_lines(text, &['#', ';']) {
        let bytes = at..at + trimmed.len();
        if let Some(section) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            inside = section.trim() == wanted;
            if inside {
                out.push((String::new(), String::new(), bytes.clone(), bytes));
            }
            continue;
        }
        if !inside {
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else { continue };
        // A trailing ` # comment` is not part of the value.
        let value_text = value.trim().split(" #").next().unwrap_or("").trim();
        let value_at = bytes.start + key.len() + 1 + (value.len() - value.trim_start().len());
        out.push((key.trim().to_string(), value_text.to_string(), bytes, value_at..value_at + value_text.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::interpret::apply_command;
    use crate::import::shared::argv::shell_words;
    use crate::source::SourceFile;

    fn notes(b: &ImportBuilder) -> Vec<String> {
        b.diagnostics.iter().map(|d| d.message.clone()).collect()
    }

    #[test]
    fn ini_processes_threads_harakiri_and_env() {
        let mut b = ImportBuilder::new("t");
        b.value["services"] = json!({"db": {"kind": "postgres"}});
        let text = "[uwsgi]\nmodule = shop.wsgi:application\nmaster = true\nprocesses = $(UWSGI_PROCESSES)\nthreads = 4\nharakiri = 60\nhttp-socket = :8000\nenv = CONN_MAX_AGE=60\nvacuum = true\n\n[dev]\nprocesses = 1\n";
        let id = b.add_source(SourceFile::new("/x/uwsgi.ini", text.to_string()));
        read(&mut b, id);
        let web = &b.value["services"]["web"];
        assert_eq!(web["kind"], "gunicorn");
        assert!(web.get("workers").is_none(), "{web:#}");
        assert_eq!(web["threads"], 4);
        assert_eq!(web["worker_class"], "gthread");
        assert_eq!(web["timeout"], "60s");
        assert_eq!(web["backlog"], 100);
        assert_eq!(web["port"], 8000);
        assert_eq!(web["app"], "shop.wsgi:application");
        assert_eq!(web["uses"]["db"]["framework"], "django");
        assert_eq!(web["uses"]["db"]["persistent"], true);
        let o = &b.origins["/services/web/threads"];
        assert_eq!(&text[o.bytes.clone()], "threads = 4");
        let n = notes(&b);
        assert!(n.iter().any(|m| m.contains("$(UWSGI_PROCESSES)")), "{n:?}");
        assert!(!n.iter().any(|m| m.contains("vacuum") || m.contains("master")), "{n:?}");
    }

    #[test]
    fn command_line_and_cpu_count() {
        let mut b = ImportBuilder::new("t");
        let cmd = "uwsgi --http :9090 --wsgi-file app.py --processes %k --master --harakiri=30";
        let id = b.add_source(SourceFile::new("cmd", cmd.to_string()));
        apply_command(&mut b, "web", &shell_words(cmd), id, &Variables::default());
        let web = &b.value["services"]["web"];
        assert_eq!((web["kind"].clone(), web["workers"].clone(), web["timeout"].clone(), web["port"].clone()), (json!("gunicorn"), json!(2), json!("30s"), json!(9090)));
        assert_eq!(web["worker_class"], "sync");
        assert!(notes(&b).iter().any(|m| m.contains("%k")), "{:?}", notes(&b));
        assert_eq!((cpu_multiple("%k"), cpu_multiple("%(%k * 2)"), cpu_multiple("%(3*%k)"), cpu_multiple("%(%k + 1)")), (Some(1), Some(2), Some(3), None));
        assert_eq!(notes(&b).iter().filter(|m| m.contains("modelled as a gunicorn service")).count(), 1, "{:?}", notes(&b));
        // Without harakiri a request is never cut short.
        let mut b = ImportBuilder::new("t");
        let cmd = "uwsgi --socket 0.0.0.0:3031 --module app:app --processes 3 --threads 2";
        let id = b.add_source(SourceFile::new("cmd", cmd.to_string()));
        apply_command(&mut b, "web", &shell_words(cmd), id, &Variables::default());
        assert_eq!(b.value["services"]["web"]["timeout"], "0s");
        assert_eq!(b.value["services"]["web"]["worker_class"], "gthread");
    }

    #[test]
    fn if_env_blocks_follow_the_environment() {
        let text = "[uwsgi]\nif-not-env = UWSGI_PROCESSES\nprocesses = 4\nendif =\nif-env = BIG\nthreads = 8\nendif =\nif-env = SMALL\nharakiri = 5\nendif =\nattach-daemon = ./manage.py sendalerts\n";
        let mut b = ImportBuilder::new("t");
        b.environments.insert("web".into(), vec![EnvVar { name: "SMALL".into(), value: Some("1".into()), file: 0, bytes: 0..0 }]);
        let id = b.add_source(SourceFile::new("/x/uwsgi.ini", text.to_string()));
        read(&mut b, id);
        let web = &b.value["services"]["web"];
        assert_eq!((web["workers"].clone(), web["timeout"].clone()), (json!(4), json!("5s")));
        assert!(web.get("threads").is_none_or(|t| *t == json!(1)), "{web:#}");
        let notes = notes(&b);
        assert!(notes.iter().any(|n| n.contains("UWSGI_PROCESSES is not set in the files read")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("runs `./manage.py sendalerts` beside the workers")), "{notes:?}");
        assert!(!notes.iter().any(|n| n.contains("endif")), "{notes:?}");
    }

    #[test]
    fn an_ini_beside_a_gunicorn_command_is_not_applied() {
        let mut b = ImportBuilder::new("t");
        let cmd = "gunicorn --workers 4 app.wsgi";
        let id = b.add_source(SourceFile::new("cmd", cmd.to_string()));
        apply_command(&mut b, "web", &shell_words(cmd), id, &Variables::default());
        let ini = b.add_source(SourceFile::new("/x/uwsgi.ini", "[uwsgi]\nprocesses = 16\n".to_string()));
        read(&mut b, ini);
        assert_eq!(b.value["services"]["web"]["workers"], 4);
        assert!(notes(&b).iter().any(|n| n.contains("whose command runs gunicorn")), "{:?}", notes(&b));
    }
}
