//! Job runners: sidekiq, celery, rq, solid_queue command lines, the config files they
//! load (config/sidekiq.yml, config/queue.yml), Solid Queue inside puma, and their
//! defaults.

use serde_json::{Value, json};

use super::Cx;
use crate::import::shared::argv::{Arg, Word, parse_args};
use crate::import::shared::erb::strip_erb;
use crate::import::shared::ruby::Context;
use crate::import::shared::yaml::kv_span;
use crate::import::{FileId, ImportBuilder};
use crate::load::yaml::{self, SpanMap, escape_segment};
use crate::source::SourceFile;

pub(super) fn flags(cx: &mut Cx<'_>, kind: &str, words: &[Word]) {
    let value_flags: &[&str] = match kind {
        "celery" => &["-A", "--app", "-c", "--concurrency", "-P", "--pool", "-Q", "--queues", "-l", "--loglevel", "-n", "--hostname", "-b", "--broker", "--autoscale", "--max-tasks-per-child", "--prefetch-multiplier", "-O", "-E", "--workdir", "--pidfile", "--logfile"],
        "sidekiq" => &["-c", "--concurrency", "-C", "--config", "-q", "--queue", "-e", "--environment", "-g", "--tag", "-r", "--require", "-t", "--timeout"],
        _ => &[],
    };
    let args = parse_args(words, |f| value_flags.contains(&f));
    for arg in args {
        let Arg::Opt(opt) = arg else { continue };
        match (kind, opt.flag.as_str()) {
            ("celery" | "sidekiq", "-c" | "--concurrency") => cx.number("concurrency", &opt),
            ("celery", "--autoscale") => {
                let Some(text) = cx.value(&opt) else { continue };
                match text.split(',').next().and_then(|m| m.trim().parse::<u64>().ok()) {
                    Some(max) => {
                        cx.set("concurrency", json!(max), opt.bytes.clone());
                        cx.builder.assumed_at(cx.file, opt.bytes.clone(), format!("concurrency {max} for `{}`: the autoscale maximum", cx.service), "the pool grows to this many children under load");
                    }
                    None => cx.ignored(opt.bytes.clone(), "celery `--autoscale` without a maximum".into()),
                }
            }
            ("sidekiq", "-C" | "--config") => {
                // Read at the end of the run, with the environment of this service.
                let shown = opt.value.as_ref().map(|(v, _)| v.clone()).unwrap_or_default();
                let command = cx.builder.get(&cx.path("command")).and_then(Value::as_str).map(str::to_string);
                if command.is_none_or(|c| !c.contains(&shown)) {
                    cx.builder.set(&cx.path("command"), json!(format!("sidekiq -C {shown}")), cx.file, opt.bytes.clone());
                }
            }
            _ => {}
        }
    }
}

/// Sidekiq's concurrency when neither its command nor its config says (Sidekiq 7;
/// Sidekiq 6 used 10).
const SIDEKIQ_DEFAULT_CONCURRENCY: u64 = 5;
/// Solid Queue's worker threads and processes when queue.yml does not say.
const SOLID_QUEUE_DEFAULT_THREADS: u64 = 3;

/// Reads nothing yet: a job runner's config (config/sidekiq.yml, config/queue.yml)
/// depends on the environment of the process that loads it, so it is evaluated for
/// each job service at the end of the run (`finish`).
pub fn read_config(builder: &mut ImportBuilder, file: FileId) {
    builder.job_configs.push(file);
}

/// Applies what job runners read on their own, once every file is read:
/// - `plugin :solid_queue` in a puma.rb that runs: the Solid Queue supervisor and its
///   workers run inside each puma container, a `solid_queue` service beside it;
/// - config/queue.yml to every solid_queue service (worker threads and processes);
/// - config/sidekiq.yml (or the file `-C` names) to every sidekiq service;
/// - the defaults each runner uses when nothing sets its concurrency (celery: one
///   child per CPU).
pub fn finish(builder: &mut ImportBuilder) {
    solid_queue_in_puma(builder);
    let services: Vec<(String, String)> = builder
        .value
        .get("services")
        .and_then(Value::as_object)
        .map(|s| s.iter().filter_map(|(k, v)| v.get("kind").and_then(Value::as_str).map(|kind| (k.clone(), kind.to_string()))).collect())
        .unwrap_or_default();
    for (service, kind) in services {
        match kind.as_str() {
            "solid_queue" => apply_config(builder, &service, "queue"),
            "sidekiq" => apply_config(builder, &service, "sidekiq"),
            "celery" => celery_default(builder, &service),
            _ => {}
        }
    }
}

/// The service that runs Solid Queue inside puma (`<web>-jobs`), with the replicas and
/// placement of the puma service.
fn solid_queue_in_puma(builder: &mut ImportBuilder) {
    for (web, file, bytes) in std::mem::take(&mut builder.solid_queue_in_puma) {
        let name = format!("{web}-jobs");
        if builder.has_service(&name) {
            continue;
        }
        builder.ensure_kind(&name, "solid_queue", file, bytes.clone());
        for key in ["replicas", "machine", "uses"] {
            if let Some(v) = builder.get(&format!("services.{web}.{key}")).cloned() {
                builder.set(&format!("services.{name}.{key}"), v, file, bytes.clone());
            }
        }
        if let Some(env) = builder.environments.get(&web).cloned() {
            builder.environments.insert(name.clone(), env);
        }
        builder.assumed_at(
            file,
            bytes,
            format!("`plugin :solid_queue` runs the Solid Queue supervisor and its workers inside each `{web}` container: modelled as service `{name}` beside it, with its replicas and database pools"),
            "move jobs to their own role (`bin/jobs`) when the web servers are busy",
        );
    }
}

/// The config a job service loads: the file its `-C`/`--config` names, else the
/// conventional one (`config/queue.yml`, `config/sidekiq.yml`), else the only one.
fn config_for(builder: &ImportBuilder, service: &str, runner: &str) -> Option<FileId> {
    let command = builder.get(&format!("services.{service}.command")).and_then(Value::as_str).unwrap_or("").to_string();
    let named = command.split_whitespace().skip_while(|w| !matches!(*w, "-C" | "--config")).nth(1).map(|p| p.trim_start_matches("./").to_string());
    let candidates: Vec<FileId> = builder
        .job_configs
        .iter()
        .copied()
        .filter(|&f| builder.sources[f].path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(runner)))
        .collect();
    if let Some(named) = named {
        return candidates.iter().copied().find(|&f| builder.sources[f].path.ends_with(&named));
    }
    let conventional = format!("config/{runner}.yml");
    candidates.iter().copied().find(|&f| builder.sources[f].path.ends_with(&conventional)).or_else(|| (candidates.len() == 1).then(|| candidates[0]))
}

/// Reads a job runner's config for one service, evaluated in its environment.
fn apply_config(builder: &mut ImportBuilder, service: &str, runner: &str) {
    let Some(file) = config_for(builder, service, runner) else {
        if runner == "sidekiq" && builder.get(&format!("services.{service}.concurrency")).is_none() {
            builder.assumed(format!("`{service}` runs Sidekiq with its default concurrency {SIDEKIQ_DEFAULT_CONCURRENCY} (no -c, no config/sidekiq.yml read)"), "pass config/sidekiq.yml, or set services.<name>.concurrency in an overlay");
        }
        return;
    };
    let env = super::service_env(builder, service);
    let facts = super::facts_for(builder, service);
    let source = builder.sources[file].clone();
    let (text, _) = strip_erb(&source.text, &Context { env: &env, facts: &facts });
    let (root, spans) = match yaml::parse_foreign(&SourceFile::new(source.path.clone(), text)) {
        Ok(p) => p,
        Err(e) => {
            builder.unparsable(file, e.span, format!("{}: {}", source.path.display(), e.message), e.hint.unwrap_or_else(|| "fix the YAML syntax".into()));
            return;
        }
    };
    match runner {
        "queue" => apply_queue_yml(builder, service, file, &root, &spans, &facts.app_env),
        _ => apply_sidekiq_yml(builder, service, file, &root, &spans, &facts.app_env),
    }
}

/// A key of a sidekiq.yml, written `concurrency:` or `:concurrency:`.
fn sidekiq_key<'a>(map: &'a Value, key: &str) -> Option<(&'a Value, String)> {
    let obj = map.as_object()?;
    obj.get(key).map(|v| (v, key.to_string())).or_else(|| obj.get(&format!(":{key}")).map(|v| (v, format!(":{key}"))))
}

fn apply_sidekiq_yml(builder: &mut ImportBuilder, service: &str, file: FileId, root: &Value, spans: &SpanMap, app_env: &str) {
    let path = format!("services.{service}.concurrency");
    if builder.set_by_flag(&path).is_some() {
        return;
    }
    // An environment's section (`production:`) wins over the top level.
    let section = sidekiq_key(root, app_env).filter(|(v, _)| v.is_object());
    let found = section
        .as_ref()
        .and_then(|(v, k)| sidekiq_key(v, "concurrency").map(|(c, ck)| (c.clone(), format!("/{}/{}", escape_segment(k), escape_segment(&ck)))))
        .or_else(|| sidekiq_key(root, "concurrency").map(|(c, ck)| (c.clone(), format!("/{}", escape_segment(&ck)))));
    let Some((value, pointer)) = found else {
        if builder.get(&path).is_none() {
            builder.assumed_at(file, 0..0, format!("`{service}` runs Sidekiq with its default concurrency {SIDEKIQ_DEFAULT_CONCURRENCY}: this sidekiq.yml sets none"), "set :concurrency: in it");
        }
        return;
    };
    let bytes = kv_span(spans, &pointer);
    match value.as_u64().or_else(|| value.as_str().and_then(|s| s.trim().parse().ok())).filter(|n| *n >= 1) {
        Some(n) => builder.set(&path, json!(n), file, bytes),
        None => builder.ignored(file, bytes, "sidekiq.yml concurrency is not a whole number here"),
    }
}

fn apply_queue_yml(builder: &mut ImportBuilder, service: &str, file: FileId, root: &Value, spans: &SpanMap, app_env: &str) {
    let (section, pointer) = match root.get(app_env).filter(|v| v.is_object()) {
        Some(v) => (v, format!("/{}", escape_segment(app_env))),
        None => (root, String::new()),
    };
    let Some(Value::Array(workers)) = section.get("workers") else {
        builder.ignored(file, kv_span(spans, &pointer), format!("queue.yml `{app_env}` lists no workers: Solid Queue runs none"));
        return;
    };
    let mut threads = Vec::new();
    let mut processes = 0u64;
    let mut at = kv_span(spans, &format!("{pointer}/workers"));
    for (i, w) in workers.iter().enumerate() {
        let p = format!("{pointer}/workers/{i}");
        let t = w.get("threads").and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))).unwrap_or(SOLID_QUEUE_DEFAULT_THREADS);
        let n = w.get("processes").and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))).unwrap_or(1);
        if i == 0 {
            at = kv_span(spans, &format!("{p}/threads"));
        }
        threads.push(t);
        processes = processes.saturating_add(n);
    }
    let max_threads = threads.iter().copied().max().unwrap_or(SOLID_QUEUE_DEFAULT_THREADS);
    if threads.iter().any(|t| *t != max_threads) {
        builder.assumed_at(file, at.clone(), format!("queue.yml workers run {} threads: `{service}` is counted at the largest, {max_threads}, in each of its {processes} worker processes", threads.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")), "the pool must cover the largest");
    }
    for (key, value) in [("concurrency", max_threads), ("processes", processes.max(1))] {
        let path = format!("services.{service}.{key}");
        if builder.set_by_flag(&path).is_none() {
            builder.set(&path, json!(value), file, at.clone());
        }
    }
}

/// Celery's default concurrency: one prefork child per CPU.
fn celery_default(builder: &mut ImportBuilder, service: &str) {
    let path = format!("services.{service}.concurrency");
    if builder.get(&path).is_some() {
        return;
    }
    let facts = super::facts_for(builder, service);
    let bytes = builder.origins.get(&crate::load::path::to_pointer(&format!("services.{service}"))).map(|o| (o.file, o.bytes.clone()));
    let Some((file, bytes)) = bytes else { return };
    builder.set(&path, json!(facts.cpus), file, bytes.clone());
    let why = if facts.cpus_known { format!("{} CPUs of its machine", facts.cpus) } else { format!("{} CPUs assumed: the machine's CPU count is not in the files; pass --cpus", facts.cpus) };
    builder.assumed_at(file, bytes, format!("`{service}` runs celery without --concurrency: one child per CPU, {why}"), "set --concurrency (-c) on the worker's command");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> ImportBuilder {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        crate::import::read_paths(&[dir.path().to_path_buf()], "t")
    }

    fn notes(b: &ImportBuilder) -> Vec<String> {
        b.diagnostics.iter().map(|d| d.message.clone()).collect()
    }

    #[test]
    fn sidekiq_reads_its_config_for_the_environment_it_runs_in() {
        let compose = "services:\n  worker:\n    image: acme/app\n    command: bundle exec sidekiq -C config/sidekiq.yml\n    environment:\n      SIDEKIQ_THREADS: \"25\"\n";
        let sidekiq = ":concurrency: 5\n:queues:\n  - default\nproduction:\n  :concurrency: <%= ENV.fetch(\"SIDEKIQ_THREADS\", 10) %>\n";
        let b = project(&[("docker-compose.yml", compose), ("config/sidekiq.yml", sidekiq)]);
        assert_eq!(b.value["services"]["worker"]["concurrency"], 25, "{:#?}", notes(&b));
        let o = &b.origins["/services/worker/concurrency"];
        assert!(b.sources[o.file].path.ends_with("config/sidekiq.yml"));
        assert_eq!(b.sources[o.file].line_col(o.bytes.start).line, 5);
        // Without a config, the default is said.
        let b = project(&[("docker-compose.yml", "services:\n  worker:\n    image: acme/app\n    command: sidekiq\n")]);
        assert!(notes(&b).iter().any(|n| n.contains("default concurrency 5")), "{:#?}", notes(&b));
    }

    #[test]
    fn solid_queue_workers_from_queue_yml_and_inside_puma() {
        let deploy = "service: app\nimage: acme/app\nservers:\n  web:\n    - 10.0.0.1\n    - 10.0.0.2\n  job:\n    hosts:\n      - 10.0.0.3\n    cmd: bin/jobs\nenv:\n  clear:\n    SOLID_QUEUE_IN_PUMA: true\n    JOB_CONCURRENCY: 2\n";
        let queue = "default: &default\n  dispatchers:\n    - polling_interval: 1\n  workers:\n    - queues: \"*\"\n      threads: 5\n      processes: <%= ENV.fetch(\"JOB_CONCURRENCY\", 1) %>\nproduction:\n  <<: *default\n";
        let puma = "threads 3\nplugin :solid_queue if ENV[\"SOLID_QUEUE_IN_PUMA\"]\n";
        let b = project(&[("config/deploy.yml", deploy), ("config/queue.yml", queue), ("config/puma.rb", puma)]);
        let s = &b.value["services"];
        assert_eq!((s["job"]["kind"].clone(), s["job"]["concurrency"].clone(), s["job"]["processes"].clone()), (json!("solid_queue"), json!(5), json!(2)), "{:#?}", notes(&b));
        assert_eq!((s["web-jobs"]["kind"].clone(), s["web-jobs"]["replicas"].clone(), s["web-jobs"]["processes"].clone()), (json!("solid_queue"), json!(2), json!(2)));
        assert!(notes(&b).iter().any(|n| n.contains("`plugin :solid_queue` runs the Solid Queue supervisor")), "{:#?}", notes(&b));
    }

    #[test]
    fn celery_without_concurrency_runs_a_child_per_cpu() {
        let compose = "services:\n  worker:\n    image: acme/app\n    command: celery -A proj worker -l info\n    deploy:\n      resources:\n        limits:\n          cpus: '4'\n  beat:\n    image: acme/app\n    command: celery -A proj worker -c 2\n";
        let b = project(&[("docker-compose.yml", compose)]);
        assert_eq!(b.value["services"]["worker"]["concurrency"], 4);
        assert_eq!(b.value["services"]["beat"]["concurrency"], 2);
        assert!(notes(&b).iter().any(|n| n.contains("one child per CPU, 4 CPUs of its machine")), "{:#?}", notes(&b));
    }
}
