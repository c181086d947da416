//! Procfile (Heroku, Dokku, foreman, honcho): one process type a line, `name: command`.
//! Each process type whose command runs a program headroom models is a service; the
//! environment is the `.env` beside the Procfile (what foreman and `heroku local`
//! load), which also resolves `$VAR` in the commands, since a shell runs them.

use std::path::Path;

use super::dockerfile;
use crate::import::interpret::{self, Process, unmodelled};
use crate::import::shared::argv;
use crate::import::shared::conf::meaningful_lines;
use crate::import::shared::env::{Variables, read_env_file};
use crate::import::shared::names::service_name;
use crate::import::{FileId, ImportBuilder};

/// Process types the platform runs once per release, not as steady processes.
const ONE_SHOT: [&str; 2] = ["release", "postdeploy"];

/// One `name: command` line: the name, the command and their byte ranges.
struct Line {
    name: String,
    name_bytes: std::ops::Range<usize>,
    command: String,
    command_bytes: std::ops::Range<usize>,
}

fn lines(text: &str) -> Vec<Line> {
    let mut out = Vec::new();
    for (trimmed, name_at) in meaningful_lines(text, &['#']) {
        let Some((name, command)) = trimmed.split_once(':') else { continue };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            continue;
        }
        let command_lead = command.len() - command.trim_start().len();
        let command_at = name_at + trimmed.find(':').unwrap_or(0) + 1 + command_lead;
        let command = command.trim().to_string();
        out.push(Line { name: name.to_string(), name_bytes: name_at..name_at + name.len(), command_bytes: command_at..command_at + command.len(), command });
    }
    out
}

/// Reads a Procfile: its process types as services.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let Some(source) = builder.sources.get(file) else { return };
    let text = source.text.clone();
    let dir = source.path.parent().map(Path::to_path_buf).unwrap_or_default();
    let entries = lines(&text);
    if entries.is_empty() {
        builder.ignored(file, 0..0, "Procfile names no process types (`name: command` lines)");
        return;
    }
    // A compose or Kamal deployment read before describes the same app another way:
    // merging both would count its processes twice.
    if builder.get("services").and_then(|s| s.as_object()).is_some_and(|s| !s.is_empty()) {
        builder.ignored(file, entries[0].name_bytes.start..entries.last().map_or(0, |l| l.command_bytes.end), "Procfile beside a deployment already read (compose, Kamal, Kubernetes): another way to run the same app, not merged; lint it on its own to check it");
        return;
    }
    // A Dockerfile beside the Procfile builds the image its processes run in: its
    // `ENV` is their lowest layer, under `.env`.
    let dockerfile = dir.join("Dockerfile");
    let mut env = if dockerfile.is_file() { dockerfile::image_env(builder, &dockerfile, None) } else { Vec::new() };
    env.extend(read_env_file(builder, &dir.join(".env")).unwrap_or_default());
    let variables = Variables::new(env.clone());
    let mut described: Option<std::ops::Range<usize>> = None;
    for line in &entries {
        let whole = line.name_bytes.start..line.command_bytes.end;
        if ONE_SHOT.contains(&line.name.as_str()) {
            builder.ignored(file, whole, format!("Procfile `{}`: runs once per release, not a steady process", line.name));
            continue;
        }
        let (words, error) = argv::split(&line.command);
        let words: Vec<argv::Word> = words.into_iter().map(|(w, r)| (w, r.start + line.command_bytes.start..r.end + line.command_bytes.start)).collect();
        if let Some(e) = error {
            builder.ignored(file, e.bytes.start + line.command_bytes.start..e.bytes.end + line.command_bytes.start, format!("Procfile `{}`: {}; read up to it", line.name, e.message));
        }
        if let Some(task) = unmodelled::one_shot(&words) {
            builder.ignored(file, whole, format!("Procfile `{}` runs `{task}` once and exits: a one-shot task, not a steady client of the databases", line.name));
            continue;
        }
        // A script of the repository (`thrust bin/start-app`): the server it starts.
        let script = if interpret::classify(&words).is_none() && argv::shell_script(&words).is_none() { dockerfile::script_run(builder, &dir, &words) } else { None };
        if interpret::classify(&words).is_none() && argv::shell_script(&words).is_none() && script.is_none() {
            let what = unmodelled::program(&words).map_or_else(|| format!("`{}`", line.command.escape_debug()), |p| format!("{p} (`{}`)", line.command.escape_debug()));
            builder.ignored(file, whole, format!("Procfile `{}` runs {what}, a program headroom does not model; not counted", line.name));
            continue;
        }
        let service = service_name(&line.name);
        let (command, command_file) = match script {
            Some(run) => (run.words, Some(run.file)),
            None => (words, None),
        };
        let process = Process { service: service.clone(), file, declared: line.name_bytes.clone(), command: Some(command), command_file, kind: None, env: env.clone(), variables: variables.clone() };
        match interpret::process(builder, &process) {
            Some(_) if builder.kind_of_service(&service).is_some() => {
                builder.mark(&format!("services.{service}"), file, line.name_bytes.clone());
                described.get_or_insert(line.name_bytes.clone());
            }
            _ => builder.ignored(file, whole, format!("Procfile `{}` runs a program headroom does not model; not counted", line.name)),
        }
    }
    if let Some(first) = described {
        builder.assumed_at(file, first, "one process of each Procfile type: the platform's formation (`heroku ps:scale`, `dokku ps:scale`) sets the counts, and no file here does", "set services.<name>.replicas in an overlay to the counts the platform runs");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    fn read_in(dir: &Path, text: &str) -> ImportBuilder {
        let path = dir.join("Procfile");
        std::fs::write(&path, text).unwrap();
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new(&path, text.to_string()));
        read(&mut b, id);
        b
    }

    fn notes(b: &ImportBuilder) -> Vec<String> {
        b.diagnostics.iter().map(|d| d.message.clone()).collect()
    }

    #[test]
    fn rails_server_is_puma_and_wrappers_are_not_workers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "RAILS_MAX_THREADS=8\nWEB_CONCURRENCY=2\n").unwrap();
        let text = "# processes\nrelease: bundle exec rails db:migrate\nweb: bundle exec rails s -p $PORT\nworker: bundle exec sidekiq -c ${SIDEKIQ_CONCURRENCY:-10}\ncron: sentry run cron\n";
        let b = read_in(dir.path(), text);
        let s = &b.value["services"];
        assert_eq!(s["web"]["kind"], "puma");
        assert_eq!(s["web"]["threads"], 8);
        assert_eq!(s["web"]["workers"], 2);
        assert_eq!(s["worker"]["kind"], "sidekiq");
        assert_eq!(s["worker"]["concurrency"], 10);
        assert_eq!(s.as_object().unwrap().len(), 2, "{s:#}");
        let o = &b.origins["/services/worker/concurrency"];
        assert_eq!(&b.sources[o.file].text[o.bytes.clone()], "-c ${SIDEKIQ_CONCURRENCY:-10}");
        let n = notes(&b);
        assert!(n.iter().any(|m| m.contains("`release`") && m.contains("once per release")), "{n:?}");
        assert!(n.iter().any(|m| m.contains("`cron` runs Sentry") && m.contains("not counted")), "{n:?}");
        assert!(n.iter().any(|m| m.contains("formation")), "{n:?}");
        let b = read_in(dir.path(), "web: npm start\nmigrate: bundle exec rails db:migrate\n");
        assert!(b.value.get("services").and_then(|s| s.as_object()).is_none_or(|s| s.is_empty()), "{:#}", b.value);
        let n = notes(&b);
        assert!(n.iter().any(|m| m.contains("Node.js")) && n.iter().any(|m| m.contains("one-shot")), "{n:?}");
    }

    #[test]
    fn gunicorn_reads_web_concurrency_from_dot_env() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "WEB_CONCURRENCY=5\n").unwrap();
        let b = read_in(dir.path(), "web: gunicorn myapp.wsgi --threads 4 --log-file -\n");
        let web = &b.value["services"]["web"];
        assert_eq!((web["kind"].clone(), web["workers"].clone(), web["threads"].clone()), (serde_json::json!("gunicorn"), serde_json::json!(5), serde_json::json!(4)));
        assert!(b.sources.iter().any(|s| s.path.ends_with(".env")));
    }

    #[test]
    fn a_script_of_the_repository_runs_the_server_it_starts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/start-app"), "#!/bin/bash -e\n\nrm -f tmp/pids/server.pid\n./bin/rails db:prepare\n./bin/rails server\n").unwrap();
        std::fs::write(dir.path().join("bin/jobs-later"), "#!/bin/sh\nbundle exec sidekiq &\necho started\n").unwrap();
        let b = read_in(dir.path(), "web: bundle exec thrust bin/start-app\nlater: bin/jobs-later\n");
        assert_eq!(b.value["services"]["web"]["kind"], "puma");
        assert!(b.sources.iter().any(|s| s.path.ends_with("bin/start-app")));
        // A server started in the background is not what the script waits on.
        assert!(b.value["services"].get("later").is_none(), "{:#}", b.value);
    }
}
