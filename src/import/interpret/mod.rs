//! Interpreting a process: which program its command runs (gunicorn, puma, a job
//! runner, redis-server, postgres, pgbouncer, ...), the flags it passes, the
//! environment variables that program reads, and the config files it loads, written
//! into the spec as the values of one service.

pub mod app_env;
pub mod asgi;
pub mod gunicorn;
pub mod images;
pub mod jobs;
pub mod pgbouncer;
pub mod postgres;
pub mod puma;
pub mod rails_db;
pub mod redis;
pub mod resque;
pub mod uwsgi;
pub mod unmodelled;

use std::ops::Range;

use serde_json::{Value, json};

use crate::import::shared::argv::{Opt, Word, base, segment_offset, segments, shell_script, strip_redirects, words_in};
use crate::import::shared::env::{EnvVar, Variables, interpolate};
use crate::import::shared::ruby::Facts;
use crate::import::shared::{shell, units};
use crate::import::{FileId, ImportBuilder};

/// One process a deployment runs, as its files describe it: the unit `interpret`
/// works on. Deployment readers (compose, Kamal, Railway; Kubernetes manifests and
/// Procfiles the same way) build one per container, role or process type and hand
/// it to `interpret::process`; what only the deployment format knows (replicas,
/// resources, health checks, mounts, hosts) they write themselves.
#[derive(Clone, Debug)]
pub struct Process {
    /// The spec service it belongs to.
    pub service: String,
    /// The file that declares it, and the bytes of the declaration (a compose service
    /// key, a Kamal role): where notes about the process as a whole point.
    pub file: FileId,
    pub declared: Range<usize>,
    /// Its command line (entrypoint and command), each word with its byte range in
    /// `file`; None when the files do not say (the image's default command runs).
    pub command: Option<Vec<Word>>,
    /// The file the command's words point into when it is not `file` (the CMD of
    /// the image's Dockerfile, an entrypoint script).
    pub command_file: Option<FileId>,
    /// The kind to take when the command does not name a program headroom models
    /// (from the image name, or the deployment format's default).
    pub kind: Option<&'static str>,
    /// The environment the process sees, in the order it is set: where a variable
    /// is set twice, the later entry wins.
    pub env: Vec<EnvVar>,
    /// What `$VAR` in its command and environment values resolves to: a compose
    /// project's `.env`, or (for commands a shell runs) the environment itself.
    pub variables: Variables,
}

impl Process {
    /// The environment with `$VAR` references in its values resolved by the process's
    /// variables; a value that cannot be resolved keeps its text.
    pub fn resolved_env(&self) -> Vec<EnvVar> {
        self.env
            .iter()
            .map(|v| {
                let value = v.value.as_ref().map(|raw| interpolate(raw, &self.variables).text.unwrap_or_else(|| raw.clone()));
                EnvVar { value, ..v.clone() }
            })
            .collect()
    }
}

/// Interprets one process into its service: the program its command runs and that
/// program's flags, the kind (from the command, else the one the deployment gave),
/// then the settings its environment carries for that kind. Returns the program the
/// command runs, when headroom models it.
pub fn process(builder: &mut ImportBuilder, process: &Process) -> Option<&'static str> {
    let command_file = process.command_file.unwrap_or(process.file);
    gunicorn_cmd_args(builder, process);
    // A command from the image (its Dockerfile's CMD, an entrypoint script) is run by
    // a shell inside the container: `$VAR` there is the container's environment.
    let in_container;
    let variables = if process.command_file.is_some() {
        in_container = process.variables.with(process.resolved_env());
        &in_container
    } else {
        &process.variables
    };
    // An entrypoint script's command may use the script's own variables
    // (`WORKERS=${WEB_CONCURRENCY:-3}` ... `exec gunicorn -w "$WORKERS"`).
    let command = match (&process.command, process.command_file) {
        (Some(words), Some(id)) if is_shell_script(&builder.sources[id]) => Some(shell::resolve_words(&builder.sources[id].text, words)),
        (command, _) => command.clone(),
    };
    let program = command.as_ref().and_then(|words| apply_command(builder, &process.service, words, command_file, variables));
    let kind = program.filter(|k| *k != "sentinel").or(process.kind);
    if let Some(kind) = kind {
        builder.ensure_kind(&process.service, kind, process.file, process.declared.clone());
    }
    let kind = builder.kind_of_service(&process.service).unwrap_or_default();
    app_env::apply_environment(builder, &process.service, &kind, &process.env, &process.variables);
    builder.environments.entry(process.service.clone()).or_default().extend(process.resolved_env());
    program
}

/// Whether a file is a shell script (a shebang, or named `.sh`), not a Dockerfile.
fn is_shell_script(source: &crate::source::SourceFile) -> bool {
    source.text.starts_with("#!") || source.path.extension().is_some_and(|e| e == "sh" || e == "bash")
}

/// `GUNICORN_CMD_ARGS` in the environment of a gunicorn process: flags gunicorn
/// reads as if written before the command line's own (which win over them), and
/// which win over gunicorn.conf.py.
fn gunicorn_cmd_args(builder: &mut ImportBuilder, process: &Process) {
    let by_command = process.command.as_deref().and_then(classify_program).map(|(p, _)| p);
    if by_command.or(process.kind) != Some("gunicorn") {
        return;
    }
    let env = process.resolved_env();
    let Some(var) = env.iter().rev().find(|v| v.name == "GUNICORN_CMD_ARGS") else { return };
    let Some(value) = var.value.clone() else { return };
    let file_text = builder.sources.get(var.file).map(|s| s.text.clone()).unwrap_or_default();
    let (words, error) = words_in(&file_text, &var.bytes, &value);
    if let Some(e) = error {
        builder.ignored(var.file, e.bytes, format!("GUNICORN_CMD_ARGS: {}; read up to it", e.message));
    }
    if !builder.ensure_kind(&process.service, "gunicorn", process.file, process.declared.clone()) {
        return;
    }
    let mut cx = Cx { builder, service: &process.service, file: var.file, vars: &process.variables };
    gunicorn::flags(&mut cx, &words);
}

/// The environment a service's processes see, as the files set it (compose
/// `environment:` and `env_file:`, Kamal `env.clear`, ...): what `ENV.fetch` in
/// puma.rb and database.yml and `os.environ` in gunicorn.conf.py read.
pub fn service_env(builder: &ImportBuilder, service: &str) -> impl Fn(&str) -> Option<String> + 'static {
    let clear = builder.get(&format!("services.{service}.env.clear")).and_then(Value::as_object).cloned().unwrap_or_default();
    let vars = Variables::new(builder.environments.get(service).cloned().unwrap_or_default());
    move |name: &str| {
        vars.value(name)
            .filter(|v| !v.contains('$'))
            .map(str::to_string)
            .or_else(|| clear.get(name).and_then(|v| v.as_str().map(str::to_string).or_else(|| Some(v.to_string()))))
    }
}

/// The facts a service's config code is evaluated with: the run's, with the CPUs the
/// files give the service (`resources.cpus`, or its machine group's `cpus`) when the
/// command line did not.
pub fn facts_for(builder: &ImportBuilder, service: &str) -> Facts {
    let mut facts = builder.facts.clone();
    facts.program = builder.programs.get(service).copied();
    if facts.cpus_known {
        return facts;
    }
    let own = builder.get(&format!("services.{service}.resources.cpus")).and_then(Value::as_f64);
    let machine = || {
        let group = builder.get(&format!("services.{service}.machine"))?.as_str()?.to_string();
        builder.get(&format!("machines.{group}.cpus"))?.as_f64()
    };
    if let Some(cpus) = own.or_else(machine).filter(|c| *c > 0.0) {
        facts.cpus = cpus.ceil() as u64;
        facts.cpus_known = true;
    }
    facts
}

/// The kind of service a command runs, by its words: one of `gunicorn`, `puma`,
/// `redis`, `sentinel`, `postgres`, `pgbouncer`, `nginx`, `sidekiq`, `celery`, `rq`,
/// `solid_queue`, `worker`; and the index of its first argument. Wrappers (`exec`,
/// `env VAR=x`, `bundle exec`, `python -m`, `uv run`, `tini --`, entrypoint
/// scripts, `thrust`) are looked through. Servers of the same shape as a kind are
/// that kind (uWSGI and uvicorn are gunicorn-shaped, unicorn puma-shaped).
pub fn classify(words: &[Word]) -> Option<(&'static str, usize)> {
    if let Some((program, i)) = classify_program(words) {
        return Some((kind_of_program(program), i));
    }
    // `bash -c 'while ! nc -z db 5432; do sleep 1; done; uwsgi app.ini'`: the script's
    // program (its arguments are read by `apply_command`, which splits the script).
    let (script, _) = shell_script(words)?;
    classify_program(&crate::import::shared::argv::shell_words(&script)).map(|(program, _)| (kind_of_program(program), words.len()))
}

/// The spec kind a program is modelled as.
fn kind_of_program(program: &'static str) -> &'static str {
    match program {
        "uwsgi" | "uvicorn" | "hypercorn" | "daphne" | "granian" => "gunicorn",
        "unicorn" => "puma",
        "resque" | "delayed_job" => "worker",
        other => other,
    }
}

/// The program a command runs (`uwsgi`, `uvicorn`, ... as well as the kinds), and the
/// index of its first argument.
fn classify_program(words: &[Word]) -> Option<(&'static str, usize)> {
    for segment in segments(words) {
        if let Some((kind, i)) = classify_segment(segment) {
            return Some((kind, i + segment_offset(words, segment)));
        }
    }
    None
}

fn classify_segment(words: &[Word]) -> Option<(&'static str, usize)> {
    let mut i = 0;
    while i < words.len() {
        let w = words[i].0.as_str();
        let b = base(w);
        let next = words.get(i + 1).map(|(n, _)| n.as_str());
        let is_assignment = w.split_once('=').is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !k.starts_with(|c: char| c.is_ascii_digit()));
        if is_assignment || matches!(b, "exec" | "env" | "nice" | "tini" | "dumb-init" | "--" | "ddtrace-run" | "opentelemetry-instrument" | "thrust" | "chpst") || b.ends_with("entrypoint.sh") || b == "entrypoint" || is_buildpack_wrapper(b) || hands_over(words, i) {
            i += 1;
            continue;
        }
        // `watchmedo auto-restart --patterns=*.py -- ./manage.py rq worker`: the command after `--`.
        if b == "watchmedo"
            && let Some(dashes) = words[i..].iter().position(|(x, _)| x == "--")
        {
            i += dashes + 1;
            continue;
        }
        match (b, next) {
            ("bundle", Some("exec")) | ("uv" | "poetry" | "pipenv" | "pdm" | "hatch", Some("run")) | ("newrelic-admin", Some("run-program")) | ("doppler", Some("run")) => {
                i += 2;
                continue;
            }
            // `python manage.py ...`: the management command decides.
            (p, Some(script)) if p.starts_with("python") && script.ends_with("manage.py") => {
                i += 1;
                continue;
            }
            // django-rq's `manage.py rqworker default`, Flask-RQ's `manage.py rq worker`.
            ("manage.py", Some("rqworker")) => return Some(("rq", i + 2)),
            ("manage.py", Some("rq")) if words.get(i + 2).is_some_and(|(c, _)| c == "worker") => return Some(("rq", i + 3)),
            // Celery run through a Django management command (`nautobot-server celery worker`,
            // an app's own `<app>-server` wrapper of manage.py).
            (p, Some("celery")) if p == "manage.py" || p == "django-admin" || p.ends_with("-server") => return celery(words, i + 2),
            (p, Some("-m")) if p.starts_with("python") => {
                let module = words.get(i + 2).map(|(m, _)| m.as_str());
                return match module {
                    Some("gunicorn") => Some(("gunicorn", i + 3)),
                    Some("uvicorn") => Some(("uvicorn", i + 3)),
                    Some("hypercorn") => Some(("hypercorn", i + 3)),
                    Some("daphne") => Some(("daphne", i + 3)),
                    Some("granian") => Some(("granian", i + 3)),
                    Some("celery") => celery(words, i + 3),
                    Some("rq") if words.get(i + 3).is_some_and(|(s, _)| s == "worker") => Some(("rq", i + 4)),
                    _ => None,
                };
            }
            _ => {}
        }
        return match b {
            "gunicorn" => Some(("gunicorn", i + 1)),
            "uwsgi" => Some(("uwsgi", i + 1)),
            "uvicorn" => Some(("uvicorn", i + 1)),
            "hypercorn" => Some(("hypercorn", i + 1)),
            "daphne" => Some(("daphne", i + 1)),
            "granian" => Some(("granian", i + 1)),
            "unicorn" | "unicorn_rails" => Some(("unicorn", i + 1)),
            "resque-pool" => Some(("resque", i + 1)),
            "rake" | "rails" if matches!(next, Some("resque:work" | "resque:workers")) => Some(("resque", i + 2)),
            // Delayed Job's worker: one process, one job at a time.
            "rake" | "rails" if next == Some("jobs:work") => Some(("delayed_job", i + 2)),
            "delayed_job" if w.contains("bin/") || next == Some("start") || next == Some("run") => Some(("delayed_job", i + 1)),
            "puma" => Some(("puma", i + 1)),
            "rails" if matches!(next, Some("server" | "s")) => Some(("puma", i + 2)),
            "rails" if matches!(next, Some("solid_queue:start")) => Some(("solid_queue", i + 2)),
            "jobs" if w.contains("bin/") => Some(("solid_queue", i + 1)),
            "redis-server" | "valkey-server" | "keydb-server" => {
                if words[i + 1..].iter().any(|(a, _)| a == "--sentinel") {
                    Some(("sentinel", i + 1))
                } else {
                    Some(("redis", i + 1))
                }
            }
            "redis-sentinel" | "valkey-sentinel" => Some(("sentinel", i + 1)),
            "postgres" | "postmaster" => Some(("postgres", i + 1)),
            "pgbouncer" => Some(("pgbouncer", i + 1)),
            "nginx" => Some(("nginx", i + 1)),
            "sidekiq" | "sidekiqswarm" => Some(("sidekiq", i + 1)),
            "celery" => celery(words, i + 1),
            "rq" if next == Some("worker") => Some(("rq", i + 2)),
            "rqworker" => Some(("rq", i + 1)),
            _ => None,
        };
    }
    None
}

/// A shell script given the command to run after it (a compose `entrypoint:
/// docker/entrypoints/rails.sh` before `command: bundle exec rails s`): such a script
/// prepares the container and hands over to its arguments.
fn hands_over(words: &[Word], i: usize) -> bool {
    base(&words[i].0).ends_with(".sh") && i + 1 < words.len() && !words[i + 1].0.starts_with('-')
}

/// Heroku buildpack scripts that start a sidecar (nginx, PgBouncer) and then run the
/// app command given after them: `bin/start-nginx bundle exec puma ...`.
fn is_buildpack_wrapper(program: &str) -> bool {
    matches!(program, "start-nginx" | "start-nginx-solo" | "start-nginx-debug" | "start-pgbouncer" | "start-pgbouncer-stunnel")
}

fn celery(words: &[Word], from: usize) -> Option<(&'static str, usize)> {
    words[from.min(words.len())..].iter().any(|(w, _)| w == "worker").then_some(("celery", from))
}

/// Applies a command line (words with byte ranges relative to the file) to a service:
/// gunicorn, puma, redis-server, postgres or pgbouncer by the program name. Returns the
/// kind it recognised.
pub fn apply_command(builder: &mut ImportBuilder, service: &str, words: &[Word], file: FileId, vars: &Variables) -> Option<&'static str> {
    // `sh -c "..."`: the script is the command.
    if let Some(script) = shell_script(words) {
        let (text, range) = script;
        let file_text = builder.sources.get(file).map(|s| s.text.clone()).unwrap_or_default();
        let (inner, error) = words_in(&file_text, &range, &text);
        if let Some(e) = error {
            builder.ignored(file, e.bytes, format!("command script: {}; read up to it", e.message));
        }
        return apply_command(builder, service, &inner, file, vars);
    }
    let (program, start) = classify_program(words)?;
    let kind = kind_of_program(program);
    builder.programs.insert(service.to_string(), program);
    let head = words[..start].last().map_or(0..0, |(_, r)| r.clone());
    let end = words[start..].iter().position(|(w, _)| matches!(w.as_str(), ";" | "&&" | "||" | "|" | "&")).map_or(words.len(), |p| start + p);
    let args = strip_redirects(&words[start..end]);
    let spec_kind = match kind {
        "sentinel" => None,
        k => Some(k),
    };
    if let Some(k) = spec_kind
        && !builder.ensure_kind(service, k, file, head.clone())
    {
        let existing = builder.kind_of_service(service).unwrap_or_default();
        builder.ignored(file, head, format!("a {k} command for service `{service}`, which is already a {existing}; its flags are not applied"));
        return Some(kind);
    }
    let mut cx = Cx { builder, service, file, vars };
    match program {
        "gunicorn" => gunicorn::flags(&mut cx, &args),
        "uwsgi" => uwsgi::flags(&mut cx, &args, head),
        "uvicorn" | "hypercorn" | "daphne" | "granian" => asgi::flags(&mut cx, program, &args, head),
        "unicorn" => puma::unicorn_flags(&mut cx, &args, head),
        // A resque or Delayed Job worker process serves one job at a time.
        "resque" | "delayed_job" => resque::flags(&mut cx, &args, head),
        "puma" => puma::flags(&mut cx, &args, words[..start].iter().any(|(w, _)| base(w) == "rails")),
        "redis" | "sentinel" => redis::flags(&mut cx, &args),
        "postgres" => postgres::flags(&mut cx, &args),
        "pgbouncer" => pgbouncer::flags(&mut cx, &args),
        "sidekiq" | "celery" | "rq" | "solid_queue" => jobs::flags(&mut cx, kind, &args),
        _ => {}
    }
    Some(kind)
}

struct Cx<'a> {
    builder: &'a mut ImportBuilder,
    service: &'a str,
    file: FileId,
    /// What `$VAR` in the command resolves to.
    vars: &'a Variables,
}

impl Cx<'_> {
    fn path(&self, key: &str) -> String {
        format!("services.{}.{key}", self.service)
    }

    fn set(&mut self, key: &str, value: Value, bytes: Range<usize>) {
        let path = self.path(key);
        self.builder.set(&path, value, self.file, bytes);
    }

    fn ignored(&mut self, bytes: Range<usize>, what: String) {
        self.builder.ignored(self.file, bytes, what);
    }

    /// The value text of an option with `$VAR` references resolved by their defaults;
    /// None (and a note) when it depends on the environment.
    fn value(&mut self, opt: &Opt) -> Option<String> {
        let Some((text, _)) = &opt.value else {
            self.ignored(opt.bytes.clone(), format!("`{}` without a value", opt.flag));
            return None;
        };
        let resolved = interpolate(text, self.vars);
        if !resolved.unknown.is_empty() {
            let vars = resolved.unknown.iter().map(|v| format!("${v}")).collect::<Vec<_>>().join(", ");
            self.ignored(
                opt.bytes.clone(),
                format!("`{}` takes its value from {vars} at run time; headroom cannot know it, so the default applies", opt.flag),
            );
            return None;
        }
        if !resolved.defaulted.is_empty() {
            let vars = resolved.defaulted.iter().map(|v| format!("${v}")).collect::<Vec<_>>().join(", ");
            let shown = resolved.text.clone().unwrap_or_default();
            self.builder.assumed_at(self.file,
                opt.bytes.clone(),
                format!("`{}` uses the default `{shown}` of {vars}", opt.flag),
                format!("if {vars} is set where this runs, its value wins"),
            );
        }
        resolved.text
    }

    fn number(&mut self, key: &str, opt: &Opt) {
        let Some(text) = self.value(opt) else { return };
        match text.trim().parse::<u64>() {
            Ok(n) => self.set(key, json!(n), opt.bytes.clone()),
            Err(_) => self.ignored(opt.bytes.clone(), format!("`{}`: `{}` is not a whole number", opt.flag, text.escape_debug())),
        }
    }

    fn secs(&mut self, key: &str, opt: &Opt) {
        let Some(text) = self.value(opt) else { return };
        match units::seconds(&text) {
            Some(d) => self.set(key, json!(d), opt.bytes.clone()),
            None => self.ignored(opt.bytes.clone(), format!("`{}`: `{}` is not a number of seconds", opt.flag, text.escape_debug())),
        }
    }

    fn port_of_bind(&mut self, opt: &Opt, text: &str) {
        let t = text.trim();
        if t.starts_with("unix:") || t.starts_with("fd://") {
            self.ignored(opt.bytes.clone(), format!("`{}` binds a unix socket; no TCP port", opt.flag));
            return;
        }
        let without_scheme = t.split_once("://").map_or(t, |(_, rest)| rest);
        let host_port = without_scheme.split(['?', '/']).next().unwrap_or("");
        let port = host_port.rsplit_once(':').map_or(host_port, |(_, p)| p);
        match port.parse::<u16>() {
            Ok(p) if p > 0 => self.set("port", json!(p), opt.bytes.clone()),
            _ => self.ignored(opt.bytes.clone(), format!("`{}`: no port in `{}`", opt.flag, t.escape_debug())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::shared::argv::{shell_words, split};
    use crate::import::shared::env::interpolate;
    use crate::import::shared::names::service_name;
    use crate::import::shared::units::{cpus, docker_size, go_duration};
    use crate::source::SourceFile;

    fn texts(words: &[Word]) -> Vec<&str> {
        words.iter().map(|(w, _)| w.as_str()).collect()
    }

    fn builder_with(text: &str) -> (ImportBuilder, FileId) {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("cmd.txt", text.to_string()));
        (b, id)
    }

    fn run(text: &str) -> ImportBuilder {
        let (mut b, id) = builder_with(text);
        let words = shell_words(text);
        apply_command(&mut b, "web", &words, id, &Variables::default());
        b
    }

    fn line_of(b: &ImportBuilder, pointer: &str) -> usize {
        let o = &b.origins[pointer];
        b.sources[o.file].line_col(o.bytes.start).line
    }

    fn notes(b: &ImportBuilder) -> Vec<String> {
        b.diagnostics.iter().map(|d| d.message.clone()).collect()
    }

    #[test]
    fn splits_like_a_shell_and_keeps_ranges() {
        let text = r#"gunicorn -b "0.0.0.0:8000" --name='a b' x\ y "q\"q" ${PORT:-80} # comment"#;
        let (words, err) = split(text);
        assert!(err.is_none());
        assert_eq!(texts(&words), vec!["gunicorn", "-b", "0.0.0.0:8000", "--name=a b", "x y", "q\"q", "${PORT:-80}"]);
        assert_eq!(&text[words[2].1.clone()], "\"0.0.0.0:8000\"");
        assert_eq!(&text[words[6].1.clone()], "${PORT:-80}");
        let (words, _) = split("migrate && gunicorn app;echo |x");
        assert_eq!(texts(&words), vec!["migrate", "&&", "gunicorn", "app", ";", "echo", "|", "x"]);
    }

    #[test]
    fn unterminated_quote_is_reported_with_its_place() {
        let (words, err) = split("gunicorn --bind '0.0.0.0:80");
        let err = err.unwrap();
        assert_eq!(err.bytes.start, 16);
        assert!(err.message.contains("single quote"));
        assert_eq!(texts(&words), vec!["gunicorn", "--bind", "0.0.0.0:80"]);
        let (_, err) = split("x \"abc");
        assert!(err.unwrap().message.contains("double"));
        // never panics on odd input
        for odd in ["\\", "'", "\"", "\"\\", "&&&", "#", "é'ü", "\u{0}\u{1}"] {
            let _ = split(odd);
        }
    }

    #[test]
    fn gunicorn_flags_become_spec_keys() {
        let b = run("gunicorn --bind 0.0.0.0:8000 --workers 8 --worker-class gthread --threads 4 --max-requests 1000 --max-requests-jitter 100 --timeout 600 --keep-alive 5 --access-logfile - --error-logfile - arena_backend.wsgi");
        let web = &b.value["services"]["web"];
        assert_eq!(web["kind"], "gunicorn");
        assert_eq!(web["workers"], 8);
        assert_eq!(web["worker_class"], "gthread");
        assert_eq!(web["threads"], 4);
        assert_eq!(web["max_requests"], 1000);
        assert_eq!(web["max_requests_jitter"], 100);
        assert_eq!(web["timeout"], "600s");
        assert_eq!(web["keepalive"], "5s");
        assert_eq!(web["port"], 8000);
        assert_eq!(web["app"], "arena_backend.wsgi");
        let o = &b.origins["/services/web/workers"];
        assert_eq!(&b.sources[0].text[o.bytes.clone()], "--workers 8");
        assert!(notes(&b).iter().any(|n| n.contains("--access-logfile")));
    }

    #[test]
    fn gunicorn_equals_form_short_flags_and_uvicorn() {
        let b = run("python -m gunicorn app.main:app -k uvicorn.workers.UvicornWorker -w4 --timeout=120 -b :9000 --graceful-timeout 30 --backlog 4096 --worker-connections 500");
        let web = &b.value["services"]["web"];
        assert_eq!(web["worker_class"], "uvicorn");
        assert_eq!(web["workers"], 4);
        assert_eq!(web["timeout"], "120s");
        assert_eq!(web["port"], 9000);
        assert_eq!(web["graceful_timeout"], "30s");
        assert_eq!(web["backlog"], 4096);
        assert_eq!(web["worker_connections"], 500);
        assert_eq!(web["app"], "app.main:app");
        let o = &b.origins["/services/web/timeout"];
        assert_eq!(&b.sources[0].text[o.bytes.clone()], "--timeout=120");
    }

    #[test]
    fn threads_without_a_class_mean_gthread() {
        let b = run("gunicorn --threads 4 app:app");
        assert_eq!(b.value["services"]["web"]["worker_class"], "gthread");
        assert!(notes(&b).iter().any(|n| n.starts_with("assumed: worker_class gthread")));
    }

    #[test]
    fn environment_references_are_never_guessed_silently() {
        let b = run("gunicorn --workers $WEB_CONCURRENCY --bind 0.0.0.0:${PORT:-8000} app:app");
        let web = &b.value["services"]["web"];
        assert!(web.get("workers").is_none());
        assert_eq!(web["port"], 8000);
        let n = notes(&b);
        assert!(n.iter().any(|m| m.contains("$WEB_CONCURRENCY") && m.starts_with("ignored")), "{n:?}");
        assert!(n.iter().any(|m| m.starts_with("assumed") && m.contains("$PORT")), "{n:?}");
    }

    #[test]
    fn wrappers_and_shell_scripts_are_looked_through() {
        let b = run(r#"sh -c "python manage.py migrate && exec gunicorn --workers 3 app.wsgi""#);
        assert_eq!(b.value["services"]["web"]["workers"], 3);
        let o = &b.origins["/services/web/workers"];
        assert_eq!(&b.sources[0].text[o.bytes.clone()], "--workers 3");
        let mut b = run("bundle exec puma -w 3 -t 2:16 -p 3000 -C config/puma.rb --preload");
        let web = &b.value["services"]["web"];
        assert_eq!(web["kind"], "puma");
        assert_eq!((web["workers"].clone(), web["threads"].clone(), web["min_threads"].clone()), (json!(3), json!(16), json!(2)));
        assert_eq!(web["port"], 3000);
        assert_eq!(web["preload"], true);
        // config/puma.rb is not among the files read: noted once the run is settled.
        b.settle_named_configs();
        assert!(notes(&b).iter().any(|n| n.contains("config/puma.rb")));
        let b = run("./bin/thrust ./bin/rails server -p 3000");
        assert_eq!(b.value["services"]["web"]["kind"], "puma");
        assert_eq!(b.value["services"]["web"]["port"], 3000);
    }

    #[test]
    fn delayed_job_workers_run_one_job_at_a_time() {
        let b = run("bundle exec rails jobs:work");
        assert_eq!((b.value["services"]["web"]["kind"].clone(), b.value["services"]["web"]["concurrency"].clone()), (serde_json::json!("worker"), serde_json::json!(1)));
        assert_eq!(classify(&shell_words("bin/delayed_job run")).map(|k| k.0), Some("worker"));
        assert_eq!(classify(&shell_words("bundle exec rake jobs:clear")), None);
    }

    #[test]
    fn an_entrypoint_script_before_a_command_hands_over_to_it() {
        let kind = |c: &str| classify(&shell_words(c)).map(|k| k.0);
        assert_eq!(kind("docker/entrypoints/rails.sh bundle exec rails s -p 3000 -b 0.0.0.0"), Some("puma"));
        assert_eq!(kind("./run.sh bundle exec sidekiq -C config/sidekiq.yml"), Some("sidekiq"));
        assert_eq!(kind("./start.sh"), None);
        assert_eq!(kind("./deploy.sh --fast"), None);
    }

    #[test]
    fn redis_server_flags_go_to_the_redis_reader() {
        let mut b = run("redis-server /etc/redis.conf --port 6380 --maxmemory 8gb --maxmemory-policy allkeys-lru");
        assert_eq!(b.value["services"]["web"]["kind"], "redis");
        // /etc/redis.conf is not among the files read: noted once the run is settled.
        b.settle_named_configs();
        assert!(notes(&b).iter().any(|n| n.contains("/etc/redis.conf")));
        // port is applied whether or not the redis reader models it
        assert_eq!(b.value["services"]["web"]["port"], 6380);
        let (_, kind) = (0, classify(&shell_words("redis-sentinel /etc/sentinel.conf")));
        assert_eq!(kind.map(|k| k.0), Some("sentinel"));
        let b = run("valkey-server --maxmemory 256mb --maxmemory-policy allkeys-lru");
        assert_eq!(b.value["services"]["web"]["kind"], "redis");
        assert_eq!(b.value["services"]["web"]["maxmemory"], "256MiB", "{:#}", b.value);
        assert_eq!(classify(&shell_words("valkey-sentinel /etc/sentinel.conf")).map(|k| k.0), Some("sentinel"));
    }

    #[test]
    fn postgres_settings_go_to_the_postgres_reader() {
        let b = run("postgres -c max_connections=200 -c shared_buffers=2GB -N 300");
        assert_eq!(b.value["services"]["web"]["kind"], "postgres");
        // -N comes last and wins, whether or not the postgres reader models it
        assert_eq!(b.value["services"]["web"]["max_connections"], 300);
        assert_eq!(line_of(&b, "/services/web/max_connections"), 1);
    }

    #[test]
    fn job_runners_are_recognised() {
        let b = run("celery -A proj worker -c 8 -l info");
        assert_eq!(b.value["services"]["web"]["kind"], "celery");
        assert_eq!(b.value["services"]["web"]["concurrency"], 8);
        let b = run("bundle exec sidekiq -c 12");
        assert_eq!(b.value["services"]["web"]["concurrency"], 12);
        assert_eq!(classify(&shell_words("bin/jobs")).map(|k| k.0), Some("solid_queue"));
        assert_eq!(classify(&shell_words("python manage.py runserver")), None);
        assert_eq!(classify(&shell_words("bash -c 'while !</dev/tcp/db/5432; do sleep 1; done; uwsgi /srv/app/uwsgi.ini'")).map(|k| k.0), Some("gunicorn"));
        assert_eq!(classify(&shell_words("watchmedo auto-restart --pattern '*.py' -- nautobot-server celery worker -l INFO")).map(|k| k.0), Some("celery"));
        assert_eq!(classify(&shell_words("nautobot-server celery beat")), None);
        for rq in ["/venv/bin/python /app/manage.py rqworker default low", "./manage.py rq worker", "watchmedo auto-restart --recursive -- ./manage.py rq worker $QUEUES"] {
            assert_eq!(classify(&shell_words(rq)).map(|k| k.0), Some("rq"), "{rq}");
        }
        assert_eq!(classify(&shell_words("bin/start-nginx bundle exec puma -C config/puma.rb")).map(|k| k.0), Some("puma"));
        assert_eq!(classify(&shell_words("bin/start-pgbouncer gunicorn app:app")).map(|k| k.0), Some("gunicorn"));
    }

    #[test]
    fn a_conflicting_kind_is_noted_not_applied() {
        let (mut b, id) = builder_with("gunicorn -w 4 app");
        b.set("services.web.kind", json!("puma"), id, 0..1);
        apply_command(&mut b, "web", &shell_words("gunicorn -w 4 app"), id, &Variables::default());
        assert!(b.value["services"]["web"].get("workers").is_none());
        assert!(notes(&b).iter().any(|n| n.contains("already a puma")));
    }

    #[test]
    fn units_are_spelled_for_the_spec() {
        assert_eq!(go_duration("1m30s").as_deref(), Some("90s"));
        assert_eq!(go_duration("500ms").as_deref(), Some("500ms"));
        assert_eq!(go_duration("40s").as_deref(), Some("40s"));
        assert_eq!(go_duration("10").as_deref(), Some("10s"));
        assert_eq!(go_duration("x"), None);
        assert_eq!(docker_size("2048M").as_deref(), Some("2GiB"));
        assert_eq!(docker_size("1.5G").as_deref(), Some("1536MiB"));
        assert_eq!(docker_size("512m").as_deref(), Some("512MiB"));
        assert_eq!(docker_size("lots"), None);
        assert_eq!(cpus("2.0"), Some(json!(2)));
        assert_eq!(cpus("0.5"), Some(json!(0.5)));
        assert_eq!(service_name("Web_App.1"), "web_app-1");
        let i = interpolate("${A:-1}:$B", &Variables::default());
        assert_eq!((i.text, i.defaulted, i.unknown), (None, vec!["A".to_string()], vec!["B".to_string()]));
        assert_eq!(interpolate("$$HOME", &Variables::default()).text.as_deref(), Some("$HOME"));
    }


    #[test]
    fn gunicorn_cmd_args_sit_under_the_command_line() {
        let text = "GUNICORN_CMD_ARGS=--workers 8 --threads 4 --timeout 60\ngunicorn --workers 3 app.wsgi\n";
        let (mut b, id) = builder_with(text);
        let env = crate::import::shared::env::parse_env_file(&text[..text.find('\n').unwrap() + 1], id);
        let words: Vec<Word> = shell_words(&text[text.find('\n').unwrap() + 1..]).into_iter().map(|(w, r)| (w, r.start + text.find('\n').unwrap() + 1..r.end + text.find('\n').unwrap() + 1)).collect();
        let p = Process { service: "web".into(), file: id, declared: 0..3, command: Some(words), command_file: None, kind: None, env, variables: Variables::default() };
        process(&mut b, &p);
        let web = &b.value["services"]["web"];
        assert_eq!((web["workers"].clone(), web["threads"].clone(), web["timeout"].clone()), (json!(3), json!(4), json!("60s")), "{web:#}");
        let o = &b.origins["/services/web/threads"];
        assert_eq!(&text[o.bytes.clone()], "--threads 4");
        assert!(b.set_by_flag("services.web.threads").is_some(), "GUNICORN_CMD_ARGS win over gunicorn.conf.py");
    }
}
