//! Python servers run on their own, without gunicorn: uvicorn, hypercorn, daphne and
//! granian, as gunicorn-shaped services (forked workers, each an event loop, or for
//! granian's WSGI interface a pool of blocking threads). None of them ends a request
//! that runs too long, so no request timeout is written.

use std::ops::Range;

use serde_json::{Value, json};

use super::Cx;
use crate::import::shared::argv::{Arg, Word, parse_args};

/// hypercorn's default listen backlog (`--backlog`).
const HYPERCORN_BACKLOG: u64 = 100;
/// granian's default listen backlog (`--backlog`).
const GRANIAN_BACKLOG: u64 = 1024;

/// Flags that take no value, by server.
fn boolean(server: &str, flag: &str) -> bool {
    if flag.starts_with("--no-") || matches!(flag, "--help" | "--version" | "--reload" | "-h") {
        return true;
    }
    match server {
        "uvicorn" => matches!(flag, "--proxy-headers" | "--access-log" | "--use-colors" | "--server-header" | "--date-header" | "--factory" | "--reset-contextvars"),
        "hypercorn" => matches!(flag, "--debug"),
        "daphne" => matches!(flag, "--proxy-headers" | "--no-server-name"),
        "granian" => matches!(flag, "--opt" | "--log" | "--access-log" | "--websockets" | "--respawn-failed-workers" | "--factory"),
        _ => false,
    }
}

/// Applies the flags of `server` (uvicorn, hypercorn, daphne or granian).
pub(super) fn flags(cx: &mut Cx<'_>, server: &str, words: &[Word], head: Range<usize>) {
    let mut interface = if server == "granian" { "rsgi" } else { "asgi" }.to_string();
    let mut blocking_threads = None;
    let mut app_seen = false;
    for arg in parse_args(words, |f| !boolean(server, f)) {
        let opt = match arg {
            Arg::Positional((w, r)) => {
                if !app_seen {
                    app_seen = true;
                    cx.set("app", json!(w), r);
                }
                continue;
            }
            Arg::Opt(o) => o,
        };
        match (server, opt.flag.as_str()) {
            (_, "--workers" | "-w") => cx.number("workers", &opt),
            ("uvicorn", "--limit-concurrency") => cx.number("worker_connections", &opt),
            ("uvicorn", "--limit-max-requests") | ("hypercorn", "--max-requests") => cx.number("max_requests", &opt),
            (_, "--backlog") => cx.number("backlog", &opt),
            ("uvicorn", "--timeout-keep-alive") | ("hypercorn", "--keep-alive") => cx.secs("keepalive", &opt),
            ("uvicorn", "--timeout-graceful-shutdown") | ("hypercorn", "--graceful-timeout") => cx.secs("graceful_timeout", &opt),
            ("uvicorn" | "daphne" | "granian", "--port" | "-p") => cx.number("port", &opt),
            ("hypercorn", "--bind" | "-b") => {
                if let Some(text) = cx.value(&opt) {
                    cx.port_of_bind(&opt, &text);
                }
            }
            ("granian", "--interface") => {
                if let Some(text) = cx.value(&opt) {
                    interface = text.to_ascii_lowercase();
                }
            }
            ("granian", "--blocking-threads") => {
                blocking_threads = Some(opt.bytes.clone());
                cx.number("threads", &opt);
            }
            ("hypercorn", "--config" | "-c") => {
                let shown = opt.value.as_ref().map(|(v, _)| v.clone()).unwrap_or_default();
                cx.ignored(opt.bytes.clone(), format!("hypercorn reads settings from `{}`, which headroom does not read", shown.escape_debug()));
            }
            (_, flag) => cx.ignored(opt.bytes.clone(), format!("{server} `{flag}` does not change capacity")),
        }
    }
    let class = if server == "granian" && interface == "wsgi" { if blocking_threads.is_some() { "gthread" } else { "sync" } } else { "uvicorn" };
    if cx.builder.get(&cx.path("worker_class")).is_none() {
        cx.set("worker_class", json!(class), head.clone());
    }
    if server == "granian" && interface == "wsgi" && blocking_threads.is_none() {
        cx.builder.assumed_at(cx.file, head.clone(), format!("granian's WSGI workers of `{}` serve one request at a time (no --blocking-threads)", cx.service), "write --blocking-threads to say how many requests a worker serves at once");
    }
    let backlog = match server {
        "hypercorn" => Some(HYPERCORN_BACKLOG),
        "granian" => Some(GRANIAN_BACKLOG),
        _ => None,
    };
    if let Some(b) = backlog
        && cx.builder.get(&cx.path("backlog")).is_none()
    {
        cx.set("backlog", json!(b), head.clone());
    }
    if cx.builder.get(&cx.path("workers")).and_then(Value::as_u64).is_none() && server == "daphne" {
        cx.set("workers", json!(1), head.clone());
    }
    cx.builder.assumed_at(cx.file, head, format!("{server} of `{}` is modelled as a gunicorn service of the same workers and concurrency", cx.service), format!("`import` writes it as gunicorn; render's gunicorn files would replace {server}"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::ImportBuilder;
    use crate::import::interpret::apply_command;
    use crate::import::shared::argv::shell_words;
    use crate::import::shared::env::Variables;
    use crate::source::SourceFile;

    fn run(cmd: &str) -> Value {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("cmd", cmd.to_string()));
        apply_command(&mut b, "web", &shell_words(cmd), id, &Variables::default());
        b.value["services"]["web"].clone()
    }

    #[test]
    fn standalone_servers() {
        let web = run("uvicorn app.main:app --host 0.0.0.0 --port 8000 --workers 4 --proxy-headers --limit-concurrency 200");
        assert_eq!((web["kind"].clone(), web["workers"].clone(), web["worker_class"].clone(), web["port"].clone(), web["worker_connections"].clone()), (json!("gunicorn"), json!(4), json!("uvicorn"), json!(8000), json!(200)));
        assert_eq!(web["app"], "app.main:app");
        let web = run("hypercorn --bind 0.0.0.0:5000 -w 3 app:app");
        assert_eq!((web["workers"].clone(), web["port"].clone(), web["backlog"].clone()), (json!(3), json!(5000), json!(100)));
        let web = run("daphne -b 0.0.0.0 -p 8001 shop.asgi:application");
        assert_eq!((web["workers"].clone(), web["port"].clone(), web["app"].clone()), (json!(1), json!(8001), json!("shop.asgi:application")));
        let web = run("granian --interface wsgi --workers 2 --blocking-threads 8 --port 8000 app:app");
        assert_eq!((web["workers"].clone(), web["threads"].clone(), web["worker_class"].clone()), (json!(2), json!(8), json!("gthread")));
        let web = run("python -m uvicorn main:app --workers 2");
        assert_eq!(web["workers"], 2);
    }

    #[test]
    fn web_concurrency_reaches_only_the_servers_that_read_it() {
        use crate::import::interpret::{Process, process};
        for (cmd, workers) in [("uvicorn main:app", Some(4)), ("hypercorn main:app", None), ("granian --interface asgi main:app", None)] {
            let text = format!("WEB_CONCURRENCY=4\n{cmd}\n");
            let mut b = ImportBuilder::new("t");
            let id = b.add_source(SourceFile::new("x", text.clone()));
            let env = crate::import::shared::env::parse_env_file("WEB_CONCURRENCY=4\n", id);
            let start = text.find('\n').unwrap() + 1;
            let words = shell_words(cmd).into_iter().map(|(w, r)| (w, r.start + start..r.end + start)).collect();
            process(&mut b, &Process { service: "web".into(), file: id, declared: 0..1, command: Some(words), command_file: None, kind: None, env, variables: Variables::default() });
            assert_eq!(b.value["services"]["web"]["workers"].as_u64(), workers, "{cmd}: {:#}", b.value);
        }
    }
}
