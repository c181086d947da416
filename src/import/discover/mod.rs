//! Discovering what to read: the files under the paths given, each by its kind, and
//! the deployments they describe (compose projects, Kamal configs, Railway services,
//! headroom's own env files) with the processes each runs. A process is handed to
//! `interpret` with its command line and environment; config files no process
//! claims are read on their own.

pub mod compose;
pub mod deployments;
pub mod detect;
pub mod dockerfile;
pub mod kamal;
pub mod kubernetes;
pub mod nginx_unit;
pub mod procfile;
pub mod rails_routes;
pub mod railway;

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::formats::{nginx, pgbouncer_ini, pgconf, redis_conf, sysctl_conf};
use super::interpret::{app_env, gunicorn, jobs, puma, rails_db, resque, uwsgi};
use super::shared::facts::Facts;
use super::{FileId, ImportBuilder, UNPARSABLE};
use crate::diag::{Diagnostic, Severity};
use crate::load::{self, path as spec_path};
use crate::source::SourceFile;

/// Reads one file into the builder.
pub type Reader = fn(&mut ImportBuilder, FileId);

/// The reader of a kind of file. A new format plugs in here: a `Kind` in `detect`
/// (decided by file name or content, with its reading order), then its reader here:
/// either a deployment reader, which builds an `interpret::Process` per container,
/// role or process type and calls `interpret::process` on it, or a config-file
/// reader, which writes the settings of the service that owns the file
/// (`ImportBuilder::owner_of`).
pub fn reader(kind: detect::Kind) -> Option<Reader> {
    use detect::Kind;
    Some(match kind {
        Kind::Compose => compose::read,
        Kind::Kamal => kamal::read,
        Kind::Kubernetes => kubernetes::read,
        Kind::Railway => railway::read,
        Kind::Procfile => procfile::read,
        Kind::NginxUnit => nginx_unit::read,
        Kind::KamalDestination => kamal::read_destination,
        Kind::UwsgiIni => uwsgi::read,
        Kind::UnicornRb => puma::read_unicorn,
        Kind::ResquePool => resque::read,
        Kind::AppEnv => app_env::read,
        Kind::Nginx => nginx::read,
        Kind::Pgbouncer => pgbouncer_ini::read_pgbouncer,
        Kind::PostgresConf => pgconf::read,
        Kind::RedisConf => redis_conf::read,
        Kind::SentinelConf => redis_conf::read_sentinel,
        Kind::GunicornPy => gunicorn::read,
        Kind::PumaRb => puma::read,
        Kind::RailsDatabase => rails_db::read,
        Kind::Sysctl => sysctl_conf::read,
        Kind::SidekiqYml | Kind::QueueYml => jobs::read_config,
        Kind::Unknown => return None,
    })
}

/// Reads every path (files, or directories searched for known files) into a builder,
/// with the run's default facts (production, CPUs unknown).
pub fn read_paths(paths: &[PathBuf], name: &str) -> ImportBuilder {
    read_paths_with(paths, name, Facts::default())
}

/// Reads every path into a builder, evaluating config code with `facts`.
pub fn read_paths_with(paths: &[PathBuf], name: &str, facts: Facts) -> ImportBuilder {
    let mut builder = ImportBuilder::new(name);
    builder.facts = facts;
    let mut files = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            read_stdin(&mut builder);
        } else if path.is_dir() {
            let found = detect::find_known_files(path);
            files.extend(found.files);
            for (path, why) in found.skipped {
                builder.skip(path, why);
            }
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    files.dedup();
    // Compose and Kamal first: they name the services the other files configure.
    files.sort_by_key(|f| detect::order(&detect::kind_of(f, None)));
    find_in_image_apps(&mut builder, &files);
    for file in files {
        // Manifests name services, as compose and Kamal files do: they are read
        // before any config file that a service of theirs owns.
        if detect::order(&detect::kind_of(&file, None)) > 0 {
            kubernetes::finish(&mut builder);
        }
        read_file(&mut builder, &file);
    }
    kubernetes::finish(&mut builder);
    jobs::finish(&mut builder);
    builder.settle_named_configs();
    builder.settle_assumptions();
    place_on_compose_host(&mut builder);
    builder
}

/// The applications the in-image configs among `files` start (an NGINX Unit
/// config.json copied into the image), so the compose reader knows which of its
/// services runs one before the config itself is read.
fn find_in_image_apps(builder: &mut ImportBuilder, files: &[PathBuf]) {
    for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "json")) {
        let Ok(text) = std::fs::read_to_string(file) else { continue };
        if text.len() > load::yaml::MAX_INPUT_BYTES || detect::kind_of(file, Some(&text)) != detect::Kind::NginxUnit {
            continue;
        }
        for (app, kind) in nginx_unit::applications(&text) {
            builder.in_image_apps.entry(app).or_insert((kind, file.clone()));
        }
    }
}

/// A compose file runs on one Docker host: when the files describe exactly one machine
/// group (a sysctl file) and no service says where it runs, every compose service is
/// placed there, so the rules (and `render`) see that host's kernel settings.
fn place_on_compose_host(builder: &mut ImportBuilder) {
    if builder.get("deploy.compose").is_none() || builder.get("deploy.kamal").is_some() {
        return;
    }
    let Some(machines) = builder.value.get("machines").and_then(Value::as_object) else { return };
    let keys: Vec<String> = machines.keys().cloned().collect();
    let [machine] = keys.as_slice() else { return };
    let machine = machine.clone();
    let Some(services) = builder.value.get("services").and_then(Value::as_object) else { return };
    if services.is_empty() || services.values().any(|s| s.get("machine").is_some()) {
        return;
    }
    let names: Vec<String> = services.keys().cloned().collect();
    let origin = builder.origins.get(&spec_path::to_pointer(&format!("machines.{machine}"))).cloned();
    for name in &names {
        if let Some(service) = builder.value.pointer_mut(&format!("/services/{}", load::yaml::escape_segment(name))).and_then(Value::as_object_mut) {
            service.insert("machine".into(), Value::from(machine.clone()));
        }
        if let Some(o) = &origin {
            builder.origins.entry(spec_path::to_pointer(&format!("services.{name}.machine"))).or_insert(o.clone());
        }
    }
    builder.assumed(
        format!("every compose service runs on machine group `{machine}`, the only one the files describe (a compose file runs on one Docker host)"),
        "set `machine:` per service in an overlay if they run elsewhere",
    );
}

/// What standard input holds (`headroom lint -`: `helm template` or `kustomize build`
/// output, or any one config file), read by its content as `<stdin>`.
fn read_stdin(builder: &mut ImportBuilder) {
    use std::io::Read;
    let mut bytes = Vec::new();
    let limit = load::yaml::MAX_INPUT_BYTES as u64 + 1;
    if let Err(e) = std::io::stdin().take(limit).read_to_end(&mut bytes) {
        builder.diagnostics.push(Diagnostic::new(UNPARSABLE, Severity::Error, "", format!("cannot read standard input: {e}")));
        return;
    }
    let path = Path::new("<stdin>");
    let text = match String::from_utf8(bytes) {
        Ok(t) if !t.contains('\0') && t.len() <= load::yaml::MAX_INPUT_BYTES => t,
        _ => {
            let id = builder.add_source(SourceFile::new(path, String::new()));
            builder.unparsable(id, 0..0, "standard input is not a text file of at most 8 MiB", "pipe manifests or a config file");
            return;
        }
    };
    let kind = detect::kind_of_text(&text);
    let id = builder.add_source(SourceFile::new(path, text));
    match reader(kind) {
        Some(read) => read(builder, id),
        None => builder.ignored(id, 0..0, "standard input: not a format headroom reads"),
    }
}

/// Reads one file by its detected kind.
pub fn read_file(builder: &mut ImportBuilder, path: &Path) {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            let mut d = Diagnostic::new(UNPARSABLE, Severity::Error, "", format!("cannot read {}: {e}", path.display()));
            d.fix = Some("check the path".into());
            builder.diagnostics.push(d);
            builder.skip(path, format!("cannot be read: {e}"));
            return;
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) if !t.contains('\0') => t,
        _ => {
            let source = SourceFile::new(path, String::new());
            let id = builder.add_source(source);
            builder.unparsable(id, 0..0, format!("{} is not a text file", path.display()), "pass config files only");
            builder.skip(path, "not a text file");
            return;
        }
    };
    if text.len() > load::yaml::MAX_INPUT_BYTES {
        let id = builder.add_source(SourceFile::new(path, String::new()));
        builder.unparsable(id, 0..0, format!("{} is larger than {} bytes", path.display(), load::yaml::MAX_INPUT_BYTES), "is this a config file?");
        builder.skip(path, format!("larger than {} bytes", load::yaml::MAX_INPUT_BYTES));
        return;
    }
    let kind = detect::kind_of(path, Some(&text));
    let id = builder.add_source(SourceFile::new(path, text));
    builder.read_as(id, kind.label());
    match reader(kind) {
        Some(read) => read(builder, id),
        None => {
            let shown = path.display().to_string();
            builder.ignored(id, 0..0, format!("{shown}: not a format headroom reads (Kubernetes manifests, nginx, pgbouncer.ini, postgresql.conf, redis.conf, docker-compose, Kamal deploy.yml, gunicorn.conf.py, puma.rb, database.yml, sysctl, railway.toml)"));
        }
    }
}

#[cfg(test)]
mod named_config_tests {
    use super::read_paths;

    fn notes(dir: &std::path::Path) -> Vec<String> {
        read_paths(&[dir.to_path_buf()], "t").diagnostics.iter().map(|d| d.message.clone()).collect()
    }

    #[test]
    fn a_config_named_on_the_command_line_is_noted_only_when_it_was_not_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Procfile"), "web: bundle exec puma -C config/puma.rb
").unwrap();
        let unread = |n: &Vec<String>| n.iter().any(|m| m.contains("puma reads settings from `config/puma.rb`"));
        assert!(unread(&notes(dir.path())), "{:?}", notes(dir.path()));
        std::fs::create_dir(dir.path().join("config")).unwrap();
        std::fs::write(dir.path().join("config/puma.rb"), "threads 5, 5\nworkers 2\n").unwrap();
        let n = notes(dir.path());
        assert!(!unread(&n), "{n:?}");
    }

    #[test]
    fn a_pool_set_by_database_yml_is_not_noted_as_unknown() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("docker-compose.yml"), "services:\n  db:\n    image: postgres:16\n  redis:\n    image: redis:7\n  sidekiq:\n    image: acme/app\n    command: bundle exec sidekiq -c 10\n    depends_on: [db, redis]\n").unwrap();
        let unknown = |n: &Vec<String>, to: &str| n.iter().any(|m| m.contains(&format!("`sidekiq` connects to `{to}`")) && m.contains("pool size is not in these files"));
        let n = notes(dir.path());
        assert!(unknown(&n, "db") && unknown(&n, "redis"), "{n:?}");
        std::fs::create_dir(dir.path().join("config")).unwrap();
        std::fs::write(dir.path().join("config/database.yml"), "production:\n  adapter: postgresql\n  host: db\n  pool: 10\n").unwrap();
        let n = notes(dir.path());
        assert!(!unknown(&n, "db") && unknown(&n, "redis"), "{n:?}");
    }
}
