//! Which reader a file needs, by name and content; and finding known files in a
//! directory.

use std::io::Read;
use std::path::{Path, PathBuf};

/// A foreign format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Compose,
    Kamal,
    Nginx,
    Pgbouncer,
    PostgresConf,
    RedisConf,
    SentinelConf,
    GunicornPy,
    PumaRb,
    RailsDatabase,
    Sysctl,
    Railway,
    /// `env/<service>.env`, the app environment `headroom render` writes.
    AppEnv,
    /// Kubernetes manifests (multi-document YAML with `apiVersion` and `kind`).
    Kubernetes,
    /// config/sidekiq.yml (or another sidekiq*.yml).
    SidekiqYml,
    /// Solid Queue's config/queue.yml.
    QueueYml,
    /// A Procfile (Heroku, Dokku, foreman): `name: command` process types.
    Procfile,
    /// A Kamal destination file (`deploy.production.yml` beside `deploy.yml`).
    KamalDestination,
    /// NGINX Unit's JSON configuration (`listeners` and `applications`).
    NginxUnit,
    /// An ini file with a `[uwsgi]` section.
    UwsgiIni,
    /// config/unicorn.rb, unicorn.conf.rb.
    UnicornRb,
    /// config/resque-pool.yml.
    ResquePool,
    Unknown,
}

impl Kind {
    /// The format's name in reports.
    pub fn label(&self) -> &'static str {
        match self {
            Kind::Compose => "docker-compose",
            Kind::Kamal => "Kamal deploy.yml",
            Kind::Nginx => "nginx",
            Kind::Pgbouncer => "pgbouncer.ini",
            Kind::PostgresConf => "postgresql.conf",
            Kind::RedisConf => "redis.conf",
            Kind::SentinelConf => "sentinel.conf",
            Kind::GunicornPy => "gunicorn.conf.py",
            Kind::PumaRb => "puma.rb",
            Kind::RailsDatabase => "Rails database.yml",
            Kind::Sysctl => "sysctl.conf",
            Kind::Railway => "railway.toml",
            Kind::AppEnv => "env file",
            Kind::Kubernetes => "Kubernetes manifests",
            Kind::SidekiqYml => "sidekiq.yml",
            Kind::QueueYml => "Solid Queue queue.yml",
            Kind::Procfile => "Procfile",
            Kind::KamalDestination => "Kamal destination",
            Kind::NginxUnit => "NGINX Unit config",
            Kind::UwsgiIni => "uWSGI ini",
            Kind::UnicornRb => "unicorn.rb",
            Kind::ResquePool => "resque-pool.yml",
            Kind::Unknown => "unknown",
        }
    }
}

/// Reading order: files that name services first.
pub fn order(kind: &Kind) -> u8 {
    match kind {
        Kind::Compose | Kind::Kamal | Kind::Kubernetes => 0,
        Kind::Railway | Kind::Procfile | Kind::KamalDestination | Kind::NginxUnit => 1,
        // After every file that names services and databases.
        Kind::AppEnv | Kind::SidekiqYml | Kind::QueueYml | Kind::ResquePool => 3,
        _ => 2,
    }
}

/// Bytes of a file read to sniff its content when only a path is given.
const SNIFF_BYTES: u64 = 64 * 1024;
/// Directories never searched: VCS data, dependencies, build output, virtualenvs.
const SKIP_DIRS: [&str; 12] =
    [".git", ".hg", ".svn", "node_modules", "target", "vendor", "venv", ".venv", "__pycache__", ".tox", ".mypy_cache", ".bundle"];
/// How deep `find_known_files` descends below the directory it is given.
pub const MAX_DEPTH: usize = 8;
/// Directory entries `find_known_files` looks at before it stops.
pub const MAX_ENTRIES: usize = 20_000;
/// Known files `find_known_files` returns at most.
pub const MAX_FILES: usize = 500;

/// The kind of a file, by name (and content when given). With no text, files whose
/// name does not decide (`*.yml`, `*.conf`, `*.ini`) are sniffed from disk (the first
/// 64 KiB).
pub fn kind_of(path: &Path, text: Option<&str>) -> Kind {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
    if let Some(kind) = by_name(path, &name) {
        return kind;
    }
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    if !matches!(ext, "yml" | "yaml" | "conf" | "ini" | "cfg" | "cnf" | "json") {
        return Kind::Unknown;
    }
    let sniffed;
    let text = match text {
        Some(t) => t,
        None => {
            sniffed = sniff(path);
            match &sniffed {
                Some(t) => t.as_str(),
                None => return Kind::Unknown,
            }
        }
    };
    by_content(path, ext, text)
}

/// Kinds a file name alone decides.
fn by_name(path: &Path, name: &str) -> Option<Kind> {
    let stem_ext = |prefix: &str, exts: &[&str]| name.starts_with(prefix) && exts.iter().any(|e| name.ends_with(e));
    if name == "railway.toml" {
        return Some(Kind::Railway);
    }
    // Only beside a Kamal config: a `deploy.staging.yml` GitHub workflow is not one.
    let kamal_beside = |dir: &Path| ["deploy.yml", "deploy.yaml"].iter().any(|n| dir.join(n).is_file() && kind_of(&dir.join(n), None) == Kind::Kamal);
    if super::kamal::destination_of("deploy", name).is_some() && path.parent().is_some_and(kamal_beside) {
        return Some(Kind::KamalDestination);
    }
    if name == "procfile" || name.starts_with("procfile.") {
        return Some(Kind::Procfile);
    }
    if name.ends_with(".env") && name.len() > 4 && parent_named(path, "env") {
        return Some(Kind::AppEnv);
    }
    if stem_ext("docker-compose", &[".yml", ".yaml"]) || stem_ext("compose", &[".yml", ".yaml"]) {
        return Some(Kind::Compose);
    }
    if name == "database.yml" || (is_database_variant(name) && parent_named(path, "config")) {
        return Some(Kind::RailsDatabase);
    }
    if name.starts_with("sidekiq") && (name.ends_with(".yml") || name.ends_with(".yaml")) {
        return Some(Kind::SidekiqYml);
    }
    if (name == "queue.yml" || name == "solid_queue.yml") && parent_named(path, "config") {
        return Some(Kind::QueueYml);
    }
    if name == "unicorn.rb" || name == "unicorn.conf.rb" || (name.ends_with(".rb") && parent_named(path, "unicorn")) {
        return Some(Kind::UnicornRb);
    }
    if name == "resque-pool.yml" || name == "resque_pool.yml" || name == "resque-pool.yaml" {
        return Some(Kind::ResquePool);
    }
    if name == "puma.rb" || (name.ends_with(".rb") && parent_named(path, "puma")) {
        return Some(Kind::PumaRb);
    }
    if name.starts_with("gunicorn") && name.ends_with(".py") {
        return Some(Kind::GunicornPy);
    }
    if name.starts_with("pgbouncer") && name.ends_with(".ini") {
        return Some(Kind::Pgbouncer);
    }
    if name.ends_with(".conf") {
        if name.contains("sentinel") {
            return Some(Kind::SentinelConf);
        }
        if name.starts_with("redis") {
            return Some(Kind::RedisConf);
        }
        if name.starts_with("postgresql") || name.starts_with("postgres.") {
            return Some(Kind::PostgresConf);
        }
        if name.starts_with("sysctl") {
            return Some(Kind::Sysctl);
        }
        if name.starts_with("nginx") {
            return Some(Kind::Nginx);
        }
    }
    None
}

fn parent_named(path: &Path, dir: &str) -> bool {
    path.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).is_some_and(|n| n.eq_ignore_ascii_case(dir))
}

fn under_dir(path: &Path, dir: &str) -> bool {
    path.parent().is_some_and(|p| p.components().any(|c| c.as_os_str().to_str().is_some_and(|n| n.eq_ignore_ascii_case(dir))))
}

fn sniff(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut buf = Vec::new();
    file.take(SNIFF_BYTES).read_to_end(&mut buf).ok()?;
    if buf.contains(&0) {
        return None;
    }
    Some(String::from_utf8_lossy(&buf).into_owned())
}

/// Meaningful lines: trimmed, without blank lines and `#`/`;` comments.
fn content_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
}

fn by_content(path: &Path, ext: &str, text: &str) -> Kind {
    if matches!(ext, "yml" | "yaml") {
        return yaml_kind(text);
    }
    if ext == "json" {
        return if super::nginx_unit::is_unit_config(text) { Kind::NginxUnit } else { Kind::Unknown };
    }
    let lines: Vec<&str> = content_lines(text).take(5_000).collect();
    let first_word = |l: &str| l.split(|c: char| c.is_whitespace() || c == '=').next().unwrap_or("").to_ascii_lowercase();
    if lines.iter().any(|l| l.eq_ignore_ascii_case("[pgbouncer]")) {
        return Kind::Pgbouncer;
    }
    if ext == "ini" && lines.iter().any(|l| l.eq_ignore_ascii_case("[uwsgi]")) {
        return Kind::UwsgiIni;
    }
    if ext != "conf" {
        return Kind::Unknown;
    }
    if lines.iter().any(|l| l.to_ascii_lowercase().starts_with("sentinel monitor ")) {
        return Kind::SentinelConf;
    }
    let nginx_block = |l: &str| {
        let lower = l.to_ascii_lowercase();
        let opens = |word: &str| lower.strip_prefix(word).is_some_and(|rest| rest.trim_start().starts_with('{'));
        (lower.starts_with("upstream ") && lower.contains('{')) || opens("server") || opens("http") || opens("events") || (lower.starts_with("location ") && lower.contains('{'))
    };
    if lines.iter().any(|l| nginx_block(l)) {
        return Kind::Nginx;
    }
    let settings = |l: &&str| {
        let w = first_word(l);
        (w == "max_connections" || w == "shared_buffers") && l.contains('=')
    };
    if lines.iter().any(settings) {
        return Kind::PostgresConf;
    }
    let redis = |l: &&str| {
        let mut words = l.split_whitespace();
        let key = words.next().unwrap_or("").to_ascii_lowercase();
        matches!(key.as_str(), "maxmemory" | "appendonly" | "maxmemory-policy") && words.next().is_some_and(|w| w != "=")
    };
    if lines.iter().any(redis) {
        return Kind::RedisConf;
    }
    let sysctl_key = |l: &&str| {
        let key = first_word(l);
        ["net.", "vm.", "fs.", "kernel."].iter().any(|p| key.starts_with(p)) && l.contains('=')
    };
    if !lines.is_empty() && (under_dir(path, "sysctl.d") || lines.iter().all(sysctl_key)) && lines.iter().any(sysctl_key) {
        return Kind::Sysctl;
    }
    if under_dir(path, "nginx") {
        return Kind::Nginx;
    }
    Kind::Unknown
}

/// The kind of a text read without a file name (standard input): a YAML format by
/// its content, else a config format as `.conf` content decides.
pub fn kind_of_text(text: &str) -> Kind {
    match yaml_kind(text) {
        Kind::Unknown => by_content(Path::new("-"), "conf", text),
        kind => kind,
    }
}

/// Top-level keys of a YAML text (lines starting in column 0 with `key:`).
fn top_keys(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.starts_with([' ', '\t', '#', '-']) && !l.starts_with("---"))
        .filter_map(|l| l.split_once(':').map(|(k, _)| k.trim().trim_matches(['"', '\''])))
        .collect()
}

/// Whether a YAML text is a headroom capacity spec: a service under `services:`
/// has a `kind:` (compose has no such key), or the file names headroom's schema.
fn is_headroom_spec(text: &str) -> bool {
    if text.lines().take(5).any(|l| l.starts_with('#') && l.contains("capacity.schema.json")) {
        return true;
    }
    let mut in_services = false;
    let mut service_indent = None;
    let mut property_indent = None;
    for line in text.lines() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let indent = line.len() - t.len();
        if indent == 0 {
            in_services = t.trim_end().starts_with("services:");
            service_indent = None;
            continue;
        }
        if !in_services {
            continue;
        }
        let service = *service_indent.get_or_insert(indent);
        if indent == service {
            property_indent = None;
            // A service written in flow style: `web: { kind: gunicorn, ... }`.
            if t.split_once(':').is_some_and(|(_, v)| v.trim_start().starts_with('{') && v.contains("kind:")) {
                return true;
            }
        } else if indent > service && *property_indent.get_or_insert(indent) == indent && t.starts_with("kind:") {
            // `kind:` as a key of the service itself (not deeper, like a label).
            return true;
        }
    }
    false
}

fn yaml_kind(text: &str) -> Kind {
    if super::kubernetes::is_manifest(text) {
        return Kind::Kubernetes;
    }
    let keys = top_keys(text);
    let has = |k: &str| keys.contains(&k);
    if has("service") && has("image") && has("servers") {
        return Kind::Kamal;
    }
    if has("services") && has("version") && is_headroom_spec(text) {
        // headroom's own spec (a repository that adopted it keeps capacity.yaml at
        // its root): `check` reads it; its `image:` and `build:` are not compose's.
        return Kind::Unknown;
    }
    if has("services") {
        // Compose: entries under `services:` carry image, build or command.
        let mut in_services = false;
        for line in text.lines() {
            if !line.starts_with([' ', '\t', '#']) && !line.trim().is_empty() {
                in_services = line.trim_end().starts_with("services:");
                continue;
            }
            if in_services {
                let t = line.trim_start();
                if ["image:", "build:", "command:"].iter().any(|k| t.starts_with(k)) && line.len() - t.len() >= 4 {
                    return Kind::Compose;
                }
            }
        }
    }
    Kind::Unknown
}

/// Directories of test fixtures and examples: their configs describe no deployment.
const TEST_DIRS: [&str; 13] = ["test", "tests", "spec", "__tests__", "testdata", "fixtures", "_integration-test", "integration-tests", "e2e", ".devcontainer", "ci", ".ci", "development"];

/// Why a file found by name is not read as part of a deployment: a variant for
/// development, tests or CI (`docker-compose.dev.yml`, `Procfile.dev`,
/// `compose.override.yaml`, which `docker compose` merges on a developer's machine).
pub fn development_variant(path: &Path) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let words: Vec<&str> = name.split(['.', '-', '_']).collect();
    // `docker-compose-non-dev.yml` is the one that is not for development.
    let negated = words.windows(2).any(|w| matches!(w[0], "non" | "no" | "not") && matches!(w[1], "dev" | "development" | "local" | "test"));
    let dev = !negated && words.iter().any(|w| matches!(*w, "dev" | "development" | "local" | "test" | "testing" | "ci" | "debug" | "devcontainer" | "e2e"));
    let override_file = words.contains(&"override");
    match detect_name_kind(&name) {
        Some(Kind::Compose) if override_file => Some("a compose override file (merged by `docker compose` on a developer's machine); pass it explicitly to read it"),
        Some(Kind::Compose) if dev => Some("a development, test or CI variant of the compose file; pass it explicitly to read it"),
        _ if name.starts_with("procfile") && dev => Some("a development Procfile; pass it explicitly to read it"),
        _ if is_database_variant(&name) && path.parent().is_some_and(|d| d.join("database.yml").is_file()) => Some("a variant of database.yml (the one used is chosen at run time); pass it explicitly to read it"),
        // `test-nginx.conf` beside the compose files: what a CI job mounts, not the deployment's.
        _ if words.iter().any(|w| matches!(*w, "test" | "testing" | "ci" | "e2e")) => Some("a test or CI variant of a config file; pass it explicitly to read it"),
        _ => None,
    }
}

/// `database.mysql.yml`, `database.sqlite.yml`: a database.yml for one setup, which a
/// database.yml beside it may include (`ERB.new(File.read(...))`).
fn is_database_variant(name: &str) -> bool {
    name.len() > "database..yml".len() && name.starts_with("database.") && name.ends_with(".yml")
}

fn detect_name_kind(name: &str) -> Option<Kind> {
    let yaml = name.ends_with(".yml") || name.ends_with(".yaml");
    (yaml && (name.starts_with("docker-compose") || name.starts_with("compose"))).then_some(Kind::Compose)
}

/// What a directory search found: the files to read, and those passed over with why.
#[derive(Debug, Default)]
pub struct Found {
    pub files: Vec<PathBuf>,
    pub skipped: Vec<(PathBuf, String)>,
}

/// Known config files under a directory (skipping VCS and dependency folders, test
/// fixtures and development variants, which are listed with why), bounded in depth,
/// entries visited and files returned; symbolic links are not followed.
pub fn find_known_files(dir: &Path) -> Found {
    let mut found = Found::default();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    let mut visited = 0usize;
    while let Some((current, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else { continue };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            visited += 1;
            if visited > MAX_ENTRIES || found.files.len() >= MAX_FILES {
                found.skipped.push((current.clone(), format!("search stopped after {MAX_ENTRIES} entries or {MAX_FILES} config files; pass the deployment's directory")));
                found.files.sort();
                return found;
            }
            let Ok(file_type) = entry.file_type() else { continue };
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if file_type.is_dir() {
                if SKIP_DIRS.contains(&name.as_str()) {
                    continue;
                }
                if TEST_DIRS.contains(&name.to_ascii_lowercase().as_str()) {
                    found.skipped.push((path, "test fixtures, CI setups or a development environment: not searched".into()));
                } else if depth < MAX_DEPTH {
                    stack.push((path, depth + 1));
                }
            } else if file_type.is_file() && kind_of(&path, None) != Kind::Unknown {
                match development_variant(&path) {
                    Some(why) => found.skipped.push((path, why.to_string())),
                    None => found.files.push(path),
                }
            }
        }
    }
    found.files.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(path: &str, text: &str) -> Kind {
        kind_of(Path::new(path), Some(text))
    }

    #[test]
    fn a_headroom_spec_is_not_a_compose_file() {
        let spec = "version: 1\nname: rag\nservices:\n  api:\n    kind: gunicorn\n    image: ghcr.io/acme/api:1\n    build: .\n  cache: { kind: redis }\n";
        assert_eq!(k("capacity.yaml", spec), Kind::Unknown);
        assert_eq!(k("deploy/capacity.yml", "# yaml-language-server: $schema=../schema/capacity.schema.json\nversion: 1\nservices:\n  web:\n    image: x\n"), Kind::Unknown);
        // A compose service with a label named `kind` is still compose.
        let compose = "version: \"3.8\"\nservices:\n  web:\n    image: app:1\n    labels:\n      kind: web\n";
        assert_eq!(k("stack.yml", compose), Kind::Compose);
    }

    #[test]
    fn names_decide_most_kinds() {
        assert_eq!(k("docker-compose.loadbalanced.yml", ""), Kind::Compose);
        assert_eq!(k("compose.yaml", ""), Kind::Compose);
        assert_eq!(k("config/database.yml", ""), Kind::RailsDatabase);
        assert_eq!(k("config/puma.rb", ""), Kind::PumaRb);
        assert_eq!(k("Procfile", ""), Kind::Procfile);
        assert_eq!(k("config/unicorn.rb", ""), Kind::UnicornRb);
        assert_eq!(k("config/resque-pool.yml", ""), Kind::ResquePool);
        assert_eq!(k("deploy/uwsgi.ini", "; app server\n[uwsgi]\nprocesses = 4\n"), Kind::UwsgiIni);
        assert_eq!(k("setup.ini", "[metadata]\nname = x\n"), Kind::Unknown);
        assert_eq!(k("unit/config.json", "{\"listeners\": {}, \"applications\": {}}"), Kind::NginxUnit);
        assert_eq!(k("package.json", "{\"name\": \"app\"}"), Kind::Unknown);
        assert_eq!(k("gunicorn.conf.py", ""), Kind::GunicornPy);
        assert_eq!(k("gunicorn_config.py", ""), Kind::GunicornPy);
        assert_eq!(k("pgbouncer/pgbouncer.ini", ""), Kind::Pgbouncer);
        assert_eq!(k("postgresql.conf", ""), Kind::PostgresConf);
        assert_eq!(k("redis.conf", ""), Kind::RedisConf);
        assert_eq!(k("redis-sentinel.conf", ""), Kind::SentinelConf);
        assert_eq!(k("sysctl.conf", ""), Kind::Sysctl);
        assert_eq!(k("web/railway.toml", ""), Kind::Railway);
        assert_eq!(k("env/web.env", ""), Kind::AppEnv);
        assert_eq!(k(".env", ""), Kind::Unknown);
        assert_eq!(k("src/db.py", ""), Kind::Unknown);
        assert_eq!(k("README.md", ""), Kind::Unknown);
    }

    #[test]
    fn content_decides_the_rest() {
        assert_eq!(k("config/deploy.yml", "service: app\nimage: x/app\nservers:\n  - 1.2.3.4\n"), Kind::Kamal);
        assert_eq!(k("stack.yml", "version: '3'\nservices:\n  web:\n    image: nginx\n"), Kind::Compose);
        assert_eq!(k(".github/workflows/ci.yml", "jobs:\n  test:\n    services:\n      pg:\n        image: postgres\n"), Kind::Unknown);
        assert_eq!(k("conf.d/default.conf", "upstream app {\n  server web-1:8000;\n}\n"), Kind::Nginx);
        assert_eq!(k("nginx/load-balancer.conf", "# only comments\n"), Kind::Nginx);
        assert_eq!(k("site.conf", "server {\n listen 80;\n}\n"), Kind::Nginx);
        assert_eq!(k("pool.ini", "[databases]\n[pgbouncer]\npool_mode = transaction\n"), Kind::Pgbouncer);
        assert_eq!(k("custom.conf", "max_connections = 200\n"), Kind::PostgresConf);
        assert_eq!(k("cache.conf", "maxmemory 2gb\nappendonly no\n"), Kind::RedisConf);
        assert_eq!(k("ha.conf", "port 26379\nsentinel monitor m redis 6379 2\n"), Kind::SentinelConf);
        assert_eq!(k("etc/sysctl.d/99-net.conf", "net.core.somaxconn = 4096\n"), Kind::Sysctl);
        assert_eq!(k("tuning.conf", "net.core.somaxconn = 4096\nvm.overcommit_memory = 1\n"), Kind::Sysctl);
        assert_eq!(k("other.conf", "foo bar\n"), Kind::Unknown);
    }

    #[test]
    fn binary_and_empty_text_are_unknown() {
        assert_eq!(k("blob.conf", "\u{0}\u{1}\u{2}garbage"), Kind::Unknown);
        assert_eq!(k("x.yml", ""), Kind::Unknown);
    }

    #[test]
    fn finds_known_files_and_skips_dependency_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("config")).unwrap();
        std::fs::create_dir_all(root.join("node_modules/x")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("config/puma.rb"), "workers 2\n").unwrap();
        std::fs::write(root.join("config/deploy.yml"), "service: a\nimage: b\nservers: [1.1.1.1]\n").unwrap();
        std::fs::write(root.join("config/locale.yml"), "en:\n  hello: hi\n").unwrap();
        std::fs::write(root.join("node_modules/x/redis.conf"), "maxmemory 1gb\n").unwrap();
        std::fs::write(root.join(".git/redis.conf"), "maxmemory 1gb\n").unwrap();
        std::fs::write(root.join("docker-compose.yml"), "services: {}\n").unwrap();
        std::fs::write(root.join("test-nginx.conf"), "server {\n  listen 8080;\n}\n").unwrap();
        assert_eq!(development_variant(Path::new("docker-compose-non-dev.yml")), None);
        assert!(development_variant(Path::new("docker-compose.dev.yml")).is_some());
        let search = find_known_files(root);
        let found: Vec<String> = search.files.iter().map(|p| p.strip_prefix(root).unwrap().display().to_string()).collect();
        assert_eq!(found, vec!["config/deploy.yml", "config/puma.rb", "docker-compose.yml"]);
        assert!(search.skipped.iter().any(|(p, why)| p.ends_with("test-nginx.conf") && why.contains("test or CI variant")), "{:?}", search.skipped);
    }
}
