//! puma and `rails server`: command-line flags, and config/puma.rb (`workers`,
//! `threads`, `port`, `bind`, `preload_app!`, `worker_timeout`, with `ENV.fetch`
//! defaults followed through local variables). Unicorn too, as a puma service of
//! one thread per worker: its flags and config/unicorn.rb (`worker_processes`,
//! `listen`, `preload_app`).

use std::collections::HashMap;
use std::ops::Range;

use serde_json::{Value, json};

use super::Cx;
use crate::import::shared::argv::{Arg, Word, parse_args};
use crate::import::shared::ruby::{Context, Evaluated, RValue, Step, call, eval, split_args, walk};
use crate::import::{FileId, ImportBuilder};

pub(super) fn flags(cx: &mut Cx<'_>, words: &[Word], rails: bool) {
    let value_flags = ["-w", "--workers", "-t", "--threads", "-p", "--port", "-b", "--bind", "--binding", "-C", "--config", "-e", "--environment", "-S", "--state", "--pidfile", "--control-url", "--control-token", "--tag", "--dir", "--redirect-stdout", "--redirect-stderr", "-u", "--using", "-P", "--pid"];
    let args = parse_args(words, |f| value_flags.contains(&f));
    for arg in args {
        let opt = match arg {
            Arg::Positional((w, r)) => {
                if rails {
                    cx.ignored(r, format!("`rails server {}` argument", w.escape_debug()));
                } else {
                    cx.set("app", json!(w), r);
                }
                continue;
            }
            Arg::Opt(o) => o,
        };
        match opt.flag.as_str() {
            "-w" | "--workers" if !rails => cx.number("workers", &opt),
            "-t" | "--threads" if !rails => {
                let Some(text) = cx.value(&opt) else { continue };
                let (min, max) = match text.split_once(':') {
                    Some((a, b)) => (a.trim().parse::<u64>().ok(), b.trim().parse::<u64>().ok()),
                    None => (text.trim().parse().ok(), text.trim().parse().ok()),
                };
                match (min, max) {
                    (Some(min), Some(max)) => {
                        cx.set("threads", json!(max), opt.bytes.clone());
                        cx.set("min_threads", json!(min), opt.bytes.clone());
                    }
                    _ => cx.ignored(opt.bytes.clone(), format!("puma `{}`: `{}` is not MIN:MAX", opt.flag, text.escape_debug())),
                }
            }
            "-p" | "--port" => cx.number("port", &opt),
            "-b" | "--bind" if !rails => {
                if let Some(text) = cx.value(&opt) {
                    cx.port_of_bind(&opt, &text);
                }
            }
            "--preload" => cx.set("preload", json!(true), opt.bytes.clone()),
            "-C" | "--config" => {
                let shown = opt.value.as_ref().map(|(v, _)| v.clone()).unwrap_or_default();
                let note = format!("puma reads settings from `{}`; pass that file to headroom to read them too", shown.escape_debug());
                cx.builder.config_named(cx.file, opt.bytes.clone(), &shown, note);
            }
            flag => cx.ignored(opt.bytes.clone(), format!("{} `{flag}` does not change capacity", if rails { "rails server" } else { "puma" })),
        }
    }
}

struct Puma<'a> {
    builder: &'a mut ImportBuilder,
    file: FileId,
    service: String,
    /// The program whose config this is (`puma`, `unicorn`), as messages name it.
    program: &'static str,
    /// The config file, as messages name it (`puma.rb`, `the unicorn config`).
    config: &'static str,
}

/// Puma DSL calls that do not change capacity.
const OTHER_CALLS: [&str; 37] = [
    "environment", "pidfile", "state_path", "stdout_redirect", "worker_boot_timeout", "worker_shutdown_timeout", "persistent_timeout",
    "first_data_timeout", "fork_worker", "nakayoshi_fork", "wait_for_less_busy_worker", "max_fast_inline", "queue_requests", "tag",
    "silence_single_worker_warning", "activate_control_app", "require", "require_relative", "directory", "quiet", "log_requests",
    "lowlevel_error_handler", "prune_bundler", "extra_runtime_dependencies", "early_hints", "ssl_bind", "worker_culling_strategy",
    "worker_check_interval", "out_of_band", "supported_http_methods", "set_remote_address", "max_keep_alive", "enable_keep_alives",
    "http_content_length_limit", "shutdown_debug", "raise_exception_on_sigterm", "preload_app",
];

impl Puma<'_> {
    /// Sets a key unless a command-line flag set it (flags win over puma.rb).
    fn put(&mut self, key: &str, value: Value, bytes: &Range<usize>) -> bool {
        let path = format!("services.{}.{key}", self.service);
        if let Some(flag) = self.builder.set_by_flag(&path) {
            if self.builder.get(&path) != Some(&value) {
                self.builder.ignored(self.file, bytes.clone(), format!("{} `{key}` {value}: the command line's `{}` wins over it", self.config, flag.escape_debug()));
            }
            return false;
        }
        self.builder.set(&path, value, self.file, bytes.clone());
        true
    }

    fn eval(&mut self, expr: &str, bytes: &Range<usize>, what: &str, vars: &HashMap<String, Evaluated>, cx: &Context<'_>) -> Option<Evaluated> {
        match eval(expr, vars, cx) {
            Ok(e) => Some(e),
            Err(why) => {
                self.builder.ignored(self.file, bytes.clone(), format!("{} `{what}`: {why} cannot be evaluated here", self.program));
                None
            }
        }
    }

    /// Notes the facts a value rests on (the run's environment, an assumed CPU count).
    fn note_facts(&mut self, key: &str, value: &str, assumed: &[String], bytes: &Range<usize>) {
        // The same fact may come from the branch and from the value (`if production`
        // around `workers … if workers_count > 1`): each is said once.
        let mut unique: Vec<String> = Vec::new();
        for fact in assumed {
            if !unique.contains(fact) {
                unique.push(fact.clone());
            }
        }
        let assumed = unique;
        if !assumed.is_empty() {
            self.builder.assumed_at(self.file, bytes.clone(), format!("`{key}` {value} for `{}` rests on: {}", self.service, assumed.join("; ")), format!("pass --cpus / --env, or set the value in an overlay, if these differ where {} runs", self.program));
        }
    }

    /// Sets a key from an evaluated number: a literal or an `ENV.fetch` default
    /// (noted) is written; a value from the environment the files set is written only
    /// when nothing set the key from that environment already.
    fn set_number(&mut self, key: &str, e: &Evaluated, bytes: &Range<usize>, min: i64) {
        let path = format!("services.{}.{key}", self.service);
        let Some(n) = e.value.as_int().filter(|n| *n >= min) else {
            self.builder.ignored(self.file, bytes.clone(), format!("{} `{key}` is not a whole number ≥ {min} here", self.program));
            return;
        };
        if !e.from_env.is_empty() && self.builder.get(&path).is_some() {
            return;
        }
        if !self.put(key, json!(n), bytes) {
            return;
        }
        if !e.defaulted.is_empty() {
            let vars = e.defaulted.join(", ");
            self.builder.assumed_at(self.file,
                bytes.clone(),
                format!("`{key}` {n} for `{}`: the default in {}, because {vars} is not set in the files read", self.service, self.config),
                format!("if {vars} is set where {} runs, its value wins", self.program),
            );
        }
        self.note_facts(key, &n.to_string(), &e.assumed, bytes);
    }

    fn port_of(&mut self, uri: &str, bytes: &Range<usize>) {
        if uri.starts_with("unix://") || uri.starts_with("unix:") {
            self.builder.ignored(self.file, bytes.clone(), "puma binds a unix socket (a proxy in front connects to it); no TCP port");
            return;
        }
        let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
        let (host_port, query) = rest.split_once('?').unwrap_or((rest, ""));
        let port = host_port.rsplit_once(':').map(|(_, p)| p).and_then(|p| p.parse::<u16>().ok()).filter(|p| *p > 0);
        match port {
            Some(p) => {
                self.put("port", json!(p), bytes);
            }
            None => self.builder.ignored(self.file, bytes.clone(), format!("puma bind `{}` has no port", uri.escape_debug())),
        }
        for kv in query.split('&') {
            if let Some(b) = kv.strip_prefix("backlog=").and_then(|b| b.parse::<u64>().ok()).filter(|b| *b >= 1) {
                self.put("backlog", json!(b), bytes);
            }
        }
    }

    /// `workers N`, `workers :auto` / `"auto"` (one per CPU).
    fn workers(&mut self, e: Evaluated, bytes: &Range<usize>, cx: &Context<'_>) {
        let auto = matches!(&e.value, RValue::Sym(s) | RValue::Str(s) if s.trim() == "auto");
        if !auto {
            return self.set_number("workers", &e, bytes, 0);
        }
        let mut e = e;
        e.value = RValue::Int(cx.facts.cpus as i64);
        if !cx.facts.cpus_known {
            e.assumed.push(format!("{} CPUs for `workers auto` (the machine's CPU count is not in the files; pass --cpus)", cx.facts.cpus));
        }
        self.set_number("workers", &e, bytes, 0);
    }

    fn statement(&mut self, text: &str, bytes: &Range<usize>, assumed: &[String], undecided: Option<&(String, String, String)>, vars: &HashMap<String, Evaluated>, cx: &Context<'_>) {
        let (name, rest) = call(text.trim());
        let applies = match name {
            "workers" | "threads" | "port" | "bind" | "preload_app!" | "worker_timeout" | "rackup" | "plugin" => true,
            other if OTHER_CALLS.contains(&other) => {
                self.builder.ignored(self.file, bytes.clone(), format!("puma `{name}` does not change capacity"));
                false
            }
            _ => {
                self.builder.ignored(self.file, bytes.clone(), format!("puma.rb statement `{}` is not modelled", name.escape_debug()));
                false
            }
        };
        if !applies {
            return;
        }
        if let Some((kw, cond, why)) = undecided {
            self.builder.assumed_at(self.file, bytes.clone(), format!("puma `{name}` applies only {kw} `{cond}`, which cannot be decided here ({why}); read as if it does"), "check the condition where puma runs");
        }
        let args = split_args(rest);
        let with_facts = |mut e: Evaluated| {
            e.assumed.extend(assumed.iter().cloned());
            e
        };
        match name {
            "workers" => {
                if let Some(e) = args.first().and_then(|a| self.eval(a, bytes, name, vars, cx)) {
                    self.workers(with_facts(e), bytes, cx);
                }
            }
            "threads" => {
                // `threads min, max`; Puma 7 also takes `threads n` (min = max = n).
                let (min, max) = match args.as_slice() {
                    [n] => (*n, *n),
                    [min, max] => (*min, *max),
                    _ => {
                        self.builder.ignored(self.file, bytes.clone(), "puma `threads` takes `max` or `min, max`");
                        return;
                    }
                };
                let min = self.eval(min, bytes, "threads", vars, cx);
                let max = self.eval(max, bytes, "threads", vars, cx);
                if let Some(max) = max {
                    self.set_number("threads", &with_facts(max), bytes, 1);
                }
                if let Some(min) = min {
                    self.set_number("min_threads", &with_facts(min), bytes, 0);
                }
            }
            "port" => {
                if let Some(e) = args.first().and_then(|a| self.eval(a, bytes, name, vars, cx)) {
                    self.set_number("port", &e, bytes, 1);
                }
            }
            "worker_timeout" => {
                if let Some(e) = args.first().and_then(|a| self.eval(a, bytes, name, vars, cx)) {
                    match e.value.as_int().filter(|n| *n >= 0) {
                        Some(n) => {
                            self.put("timeout", json!(format!("{n}s")), bytes);
                        }
                        None => self.builder.ignored(self.file, bytes.clone(), "puma `worker_timeout` is not a number of seconds"),
                    }
                }
            }
            "bind" => {
                if let Some(e) = args.first().and_then(|a| self.eval(a, bytes, name, vars, cx)) {
                    match e.value {
                        RValue::Str(uri) => self.port_of(&uri, bytes),
                        _ => self.builder.ignored(self.file, bytes.clone(), "puma `bind` of a non-string"),
                    }
                }
            }
            "rackup" => {
                if let Some(RValue::Str(app)) = args.first().and_then(|a| self.eval(a, bytes, name, vars, cx)).map(|e| e.value) {
                    self.put("app", json!(app), bytes);
                }
            }
            "preload_app!" => {
                let on = match args.first() {
                    None => Some(true),
                    Some(a) => self.eval(a, bytes, name, vars, cx).and_then(|e| match e.value {
                        RValue::Bool(b) => Some(b),
                        _ => None,
                    }),
                };
                if let Some(on) = on {
                    self.put("preload", json!(on), bytes);
                }
            }
            "plugin" => {
                let plugin = args.first().map(|a| a.trim().trim_start_matches(':').trim_matches(['"', '\''])).unwrap_or("");
                if plugin == "solid_queue" {
                    self.builder.solid_queue_in_puma.push((self.service.clone(), self.file, bytes.clone()));
                } else {
                    self.builder.ignored(self.file, bytes.clone(), format!("puma plugin `{}` does not change capacity", plugin.escape_debug()));
                }
            }
            _ => {}
        }
    }
}

/// Reads a puma.rb (workers, threads, ENV.fetch defaults), evaluated as it runs: in
/// the environment the service's files set, conditionals decided, hooks skipped.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    read_ruby_config(builder, file, false);
}

/// Reads puma.rb or a unicorn config into the puma service that owns it.
fn read_ruby_config(builder: &mut ImportBuilder, file: FileId, unicorn: bool) {
    let Some(text) = builder.sources.get(file).map(|s| s.text.clone()) else { return };
    let what = if unicorn { "unicorn config" } else { "puma.rb" };
    let fallback = builder.default_service(&["puma"], "web");
    let service = builder.owner_of(file, &fallback);
    let head = 0..text.find('\n').unwrap_or(text.len()).min(text.len());
    if !builder.ensure_kind(&service, "puma", file, head.clone()) {
        let kind = builder.kind_of_service(&service).unwrap_or_default();
        builder.ignored(file, head, format!("{what} for `{service}`, which is a {kind} service; not read"));
        return;
    }
    let runs = if unicorn { "unicorn" } else { "puma" };
    if let Some(program) = builder.programs.get(&service).filter(|p| **p != runs) {
        builder.ignored(file, head, format!("{what} for `{service}`, whose command runs {program}, not {runs}; not applied"));
        return;
    }
    // puma.rb and a unicorn config beside each other, with no command saying which
    // server runs (Discourse ships both): two ways to run the app, never merged.
    if !builder.programs.contains_key(service.as_str()) {
        let other = if unicorn { "puma.rb" } else { "unicorn.rb" };
        let applied = ["workers", "threads"].iter().find_map(|key| {
            let origin = builder.origins.get(&format!("/services/{}/{key}", crate::load::yaml::escape_segment(&service)))?;
            (builder.formats.get(&origin.file).map(String::as_str) == Some(other)).then(|| builder.sources[origin.file].path.display().to_string())
        });
        if let Some(first) = applied {
            builder.ignored(file, head, format!("{what} for `{service}` beside {first}, and no command says whether puma or unicorn runs: two alternatives, not merged; {first} is the one read (lint this file without it to check the other)"));
            return;
        }
    }
    builder.mark(&format!("services.{service}"), file, head.clone());
    let env = super::service_env(builder, &service);
    let facts = super::facts_for(builder, &service);
    let cx = Context { env: &env, facts: &facts };
    let mut puma = Puma { builder, file, service: service.clone(), program: runs, config: if unicorn { "the unicorn config" } else { "puma.rb" } };
    let mut vars = HashMap::new();
    walk(&text, &cx, &mut vars, &mut |step, vars| match step {
        Step::Statement { text, bytes, assumed, .. } if unicorn => puma.unicorn_statement(&text, &bytes, &assumed, vars, &cx),
        Step::Statement { text, bytes, assumed, undecided } => puma.statement(&text, &bytes, &assumed, undecided.as_ref(), vars, &cx),
        Step::Skipped { bytes, what: stmt, why } => puma.builder.ignored(file, bytes, format!("{what} `{stmt}` not applied: {why}")),
        Step::Unclosed { bytes, what: stmt } => puma.builder.unparsable(file, bytes, format!("{what}: `{stmt}` has no matching `end`"), "close the block with `end`"),
    });
    if unicorn {
        one_thread(builder, &service, file, head);
    }
}

/// Applies `unicorn -c config/unicorn.rb -p 8080 -E production` (or `unicorn_rails`):
/// a unicorn worker serves one request at a time.
pub(super) fn unicorn_flags(cx: &mut Cx<'_>, words: &[Word], head: Range<usize>) {
    let args = parse_args(words, |f| matches!(f, "-c" | "--config-file" | "-p" | "--port" | "-l" | "--listen" | "-E" | "--env" | "-o" | "--host" | "-I" | "--include" | "-r" | "--require"));
    for arg in args {
        let opt = match arg {
            Arg::Positional((w, r)) => {
                cx.set("app", json!(w), r);
                continue;
            }
            Arg::Opt(o) => o,
        };
        match opt.flag.as_str() {
            "-p" | "--port" => cx.number("port", &opt),
            "-l" | "--listen" => {
                if let Some(text) = cx.value(&opt) {
                    cx.port_of_bind(&opt, &text);
                }
            }
            "-c" | "--config-file" => {
                let shown = opt.value.as_ref().map(|(v, _)| v.clone()).unwrap_or_default();
                let note = format!("unicorn reads settings from `{}`; pass that file to headroom to read them too", shown.escape_debug());
                cx.builder.config_named(cx.file, opt.bytes.clone(), &shown, note);
            }
            flag => cx.ignored(opt.bytes.clone(), format!("unicorn `{flag}` does not change capacity")),
        }
    }
    one_thread(cx.builder, cx.service, cx.file, head);
}

/// A unicorn worker is a process of one thread; unicorn forks at least one.
fn one_thread(builder: &mut ImportBuilder, service: &str, file: FileId, at: Range<usize>) {
    for (key, value) in [("threads", 1), ("min_threads", 1)] {
        let path = format!("services.{service}.{key}");
        if builder.get(&path).is_none() {
            builder.set(&path, json!(value), file, at.clone());
        }
    }
    let workers = format!("services.{service}.workers");
    if builder.get(&workers).is_none() {
        builder.set(&workers, json!(1), file, at.clone());
    }
    let note = format!("unicorn of `{service}` is modelled as puma workers of one thread each");
    if !builder.diagnostics.iter().any(|d| d.message.contains(&note)) {
        builder.assumed_at(file, at, note, "`import` writes it as puma; render's puma files would replace unicorn");
    }
}

impl Puma<'_> {
    fn unicorn_statement(&mut self, text: &str, bytes: &Range<usize>, assumed: &[String], vars: &HashMap<String, Evaluated>, cx: &Context<'_>) {
        let (name, rest) = call(text.trim());
        let args = split_args(rest);
        match name {
            "worker_processes" => {
                if let Some(mut e) = args.first().and_then(|a| self.eval(a, bytes, name, vars, cx)) {
                    e.assumed.extend(assumed.iter().cloned());
                    self.set_number("workers", &e, bytes, 1);
                }
            }
            "listen" => {
                let Some(e) = args.first().and_then(|a| self.eval(a, bytes, name, vars, cx)) else { return };
                match e.value {
                    RValue::Int(port) => self.set_number("port", &Evaluated { value: RValue::Int(port), ..e }, bytes, 1),
                    RValue::Str(addr) if addr.starts_with('/') || addr.starts_with("unix:") => self.builder.ignored(self.file, bytes.clone(), "unicorn listens on a unix socket (a proxy in front connects to it); no TCP port"),
                    RValue::Str(addr) => match addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()) {
                        Some(p) => {
                            self.put("port", json!(p), bytes);
                        }
                        None => self.builder.ignored(self.file, bytes.clone(), format!("unicorn listen `{}` has no port", addr.escape_debug())),
                    },
                    _ => self.builder.ignored(self.file, bytes.clone(), "unicorn `listen` of something else than a port or address"),
                }
                if let Some(backlog) = args.iter().find_map(|a| a.trim().strip_prefix("backlog:").or_else(|| a.trim().strip_prefix(":backlog =>")))
                    && let Some(e) = self.eval(backlog.trim(), bytes, "backlog", vars, cx)
                {
                    self.set_number("backlog", &e, bytes, 1);
                }
            }
            "preload_app" => {
                if let Some(RValue::Bool(on)) = args.first().and_then(|a| self.eval(a, bytes, name, vars, cx)).map(|e| e.value) {
                    self.put("preload", json!(on), bytes);
                }
            }
            "timeout" => self.builder.ignored(self.file, bytes.clone(), "unicorn `timeout` kills a worker whose request runs longer: a request timeout, not compared with the proxy's here (unicorn is modelled as one-thread puma workers)"),
            "before_fork" | "after_fork" | "after_worker_ready" | "before_exec" => {}
            _ => self.builder.ignored(self.file, bytes.clone(), format!("unicorn `{}` does not change capacity", name.escape_debug())),
        }
    }
}

/// Reads a unicorn config (config/unicorn.rb, unicorn.conf.rb) into the service that
/// runs unicorn, evaluated as it runs (as puma.rb is).
pub fn read_unicorn(builder: &mut ImportBuilder, file: FileId) {
    read_ruby_config(builder, file, true);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::shared::ruby::Facts;
    use crate::source::SourceFile;

    const SEED: &str = r#"# Optimized for production scaling
max_threads_count = ENV.fetch("RAILS_MAX_THREADS") { 5 }
min_threads_count = ENV.fetch("RAILS_MIN_THREADS") { max_threads_count }
threads min_threads_count, max_threads_count

# Workers based on CPU cores (2-4 per core)
worker_count = ENV.fetch("WEB_CONCURRENCY") { 4 }
workers worker_count

# Preload app for memory efficiency (Copy-on-Write)
preload_app!

# Set up socket location
bind "unix://#{Rails.root.join('tmp/sockets/puma.sock')}"

# Worker lifecycle hooks
on_worker_boot do
  ActiveRecord::Base.establish_connection if defined?(ActiveRecord)
end

before_fork do
  ActiveRecord::Base.connection_pool.disconnect! if defined?(ActiveRecord)
end

# Phased restarts for zero-downtime deployments
nakayoshi_fork: true if ENV.fetch("RAILS_ENV") { "development" } == "production"
"#;

    fn read_text(text: &str, env: Option<(&str, &str)>) -> ImportBuilder {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("config/puma.rb", text.to_string()));
        if let Some((k, v)) = env {
            b.set(&format!("services.web.env.clear.{k}"), json!(v), id, 0..0);
            b.set("services.web.workers", json!(v.parse::<u64>().unwrap()), id, 0..0);
        }
        read(&mut b, id);
        b
    }

    fn line(b: &ImportBuilder, pointer: &str) -> usize {
        let o = &b.origins[pointer];
        b.sources[o.file].line_col(o.bytes.start).line
    }

    #[test]
    fn evaluates_env_fetch_defaults_and_arithmetic() {
        let none = |_: &str| None;
        let facts = Facts::default();
        let none = Context { env: &none, facts: &facts };
        let vars = HashMap::new();
        let e = eval(r#"ENV.fetch("RAILS_MAX_THREADS") { 5 }.to_i * ENV.fetch("WEB_CONCURRENCY") { 4 }.to_i + 5"#, &vars, &none).unwrap();
        assert_eq!(e.value, RValue::Int(25));
        assert_eq!(e.defaulted, vec!["RAILS_MAX_THREADS", "WEB_CONCURRENCY"]);
        let env = |k: &str| (k == "WEB_CONCURRENCY").then(|| "3".to_string());
        let env = Context { env: &env, facts: &facts };
        let e = eval(r#"Integer(ENV.fetch("WEB_CONCURRENCY", 2))"#, &vars, &env).unwrap();
        assert_eq!((e.value, e.from_env), (RValue::Int(3), vec!["WEB_CONCURRENCY".to_string()]));
        assert_eq!(eval(r#"(ENV["X"] || 7).to_i"#, &vars, &none).unwrap().value, RValue::Int(7));
        // The CPU count is the machine's when known, else an assumption that says so.
        let e = eval("Etc.nprocessors * 2", &vars, &none).unwrap();
        assert_eq!(e.value, RValue::Int(4));
        assert!(e.assumed.iter().any(|a| a.starts_with("2 CPUs") && a.contains("--cpus")), "{:?}", e.assumed);
        let eight = Facts { cpus: 8, cpus_known: true, ..Facts::default() };
        let e = eval("Concurrent.processor_count", &vars, &Context { env: &|_: &str| None, facts: &eight }).unwrap();
        assert_eq!((e.value, e.assumed), (RValue::Int(8), Vec::<String>::new()));
        assert!(eval(r#"ENV.fetch("X")"#, &vars, &none).is_err());
        assert!(eval("\"unterminated", &vars, &none).is_err());
        assert!(eval("99999999999999999999", &vars, &none).is_err());
        assert!(eval("1 / 0", &vars, &none).is_err());
    }

    #[test]
    fn reads_the_seed_puma_rb() {
        let b = read_text(SEED, None);
        let web = &b.value["services"]["web"];
        assert_eq!(web["kind"], "puma");
        assert_eq!(web["threads"], 5);
        assert_eq!(web["min_threads"], 5);
        assert_eq!(web["workers"], 4);
        assert_eq!(web["preload"], true);
        assert_eq!(line(&b, "/services/web/threads"), 4);
        assert_eq!(line(&b, "/services/web/workers"), 8);
        assert_eq!(line(&b, "/services/web/preload"), 11);
        let notes: Vec<&str> = b.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert!(notes.iter().any(|n| n.starts_with("assumed: `workers` 4") && n.contains("WEB_CONCURRENCY")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("on_worker_boot")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("interpolation")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("nakayoshi_fork")), "{notes:?}");
    }

    #[test]
    fn the_environment_the_files_set_wins_over_defaults() {
        let b = read_text(SEED, Some(("WEB_CONCURRENCY", "6")));
        assert_eq!(b.value["services"]["web"]["workers"], 6);
        let notes: Vec<&str> = b.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert!(!notes.iter().any(|n| n.contains("`workers` 4")), "{notes:?}");
    }

    #[test]
    fn literal_settings_and_tcp_binds() {
        let b = read_text("workers 3\nthreads 2, 8\nport ENV.fetch(\"PORT\") { 3000 }\nworker_timeout 90\nbind 'tcp://0.0.0.0:9292?backlog=2048'\n", None);
        let web = &b.value["services"]["web"];
        assert_eq!((web["workers"].clone(), web["threads"].clone(), web["min_threads"].clone()), (json!(3), json!(8), json!(2)));
        assert_eq!(web["timeout"], "90s");
        assert_eq!(web["port"], 9292);
        assert_eq!(web["backlog"], 2048);
    }

    #[test]
    fn broken_ruby_is_noted_never_a_panic() {
        let b = read_text("on_worker_boot do\n  x\n", None);
        assert!(b.diagnostics.iter().any(|d| d.rule == crate::import::UNPARSABLE));
        for odd in ["workers \"", "threads", "threads 1, 2, 3", "workers (((", "x = = 3\nworkers x", "\u{0}\u{1}", "workers 1 +", "é = 3", "bind"] {
            let _ = read_text(odd, None);
        }
    }

    #[test]
    fn conditionals_and_trailing_modifiers_are_decided_for_production() {
        let text = r#"threads_count = ENV.fetch("RAILS_MAX_THREADS", 3)
threads threads_count
worker_timeout 3600 if ENV.fetch("RAILS_ENV", "development") == "development"
if Rails.env.production?
  workers ENV.fetch("WEB_CONCURRENCY") { Concurrent.processor_count }
  preload_app!
else
  workers 0
end
unless ENV["SKIP_PORT"]
  port 4000
end
plugin :solid_queue if ENV["SOLID_QUEUE_IN_PUMA"]
plugin :tmp_restart
"#;
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("config/puma.rb", text.to_string()));
        b.set("services.web.env.clear.SOLID_QUEUE_IN_PUMA", json!("true"), id, 0..0);
        read(&mut b, id);
        let web = &b.value["services"]["web"];
        // Puma 7's one-argument `threads n`: min = max = n.
        assert_eq!((web["threads"].clone(), web["min_threads"].clone()), (json!(3), json!(3)));
        // The development-only worker_timeout is not applied in production.
        assert!(web.get("timeout").is_none(), "{web:#}");
        assert_eq!(web["workers"], 2);
        assert_eq!(web["preload"], true);
        assert_eq!(web["port"], 4000);
        assert_eq!(line(&b, "/services/web/workers"), 5);
        let notes: Vec<&str> = b.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert!(notes.iter().any(|n| n.contains("`worker_timeout` not applied") && n.contains("false where it runs")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("`workers` 2") && n.contains("2 CPUs") && n.contains("RAILS_ENV = production")), "{notes:?}");
        assert_eq!(b.solid_queue_in_puma.len(), 1);
        // --env development takes the other branches.
        let mut b = ImportBuilder::new("t");
        b.facts.app_env = "development".into();
        let id = b.add_source(SourceFile::new("config/puma.rb", text.to_string()));
        read(&mut b, id);
        let web = &b.value["services"]["web"];
        assert_eq!((web["workers"].clone(), web["timeout"].clone()), (json!(0), json!("3600s")));
        assert!(b.solid_queue_in_puma.is_empty());
    }

    #[test]
    fn undecidable_conditions_are_said_and_auto_workers_count_cpus() {
        let text = "if File.exist?(\"/etc/big\")\n  workers 8\nend\nworkers :auto\nthreads 5, 5 if some_flag\n";
        let mut b = ImportBuilder::new("t");
        b.facts.cpus = 4;
        b.facts.cpus_known = true;
        let id = b.add_source(SourceFile::new("config/puma.rb", text.to_string()));
        read(&mut b, id);
        let web = &b.value["services"]["web"];
        assert_eq!(web["workers"], 4);
        assert_eq!(web["threads"], 5);
        let notes: Vec<&str> = b.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert!(notes.iter().any(|n| n.contains("`if File.exist?") && n.contains("cannot be decided")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("applies only if `some_flag`") && n.contains("read as if it does")), "{notes:?}");
    }

    #[test]
    fn unicorn_config_is_one_thread_per_worker() {
        let mut b = ImportBuilder::new("t");
        let text = "worker_processes Integer(ENV[\"WEB_CONCURRENCY\"] || 3)\ntimeout 15\npreload_app true\nlisten 8080, backlog: 64\nbefore_fork do |server, worker|\n  defined?(ActiveRecord::Base) and ActiveRecord::Base.connection.disconnect!\nend\n";
        let id = b.add_source(SourceFile::new("/x/config/unicorn.rb", text.to_string()));
        read_unicorn(&mut b, id);
        let web = &b.value["services"]["web"];
        assert_eq!((web["kind"].clone(), web["workers"].clone(), web["threads"].clone(), web["port"].clone(), web["backlog"].clone(), web["preload"].clone()), (json!("puma"), json!(3), json!(1), json!(8080), json!(64), json!(true)));
        let notes: Vec<String> = b.diagnostics.iter().map(|d| d.message.clone()).collect();
        assert!(notes.iter().any(|n| n.contains("WEB_CONCURRENCY")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("unicorn `timeout`")), "{notes:?}");
    }
}
