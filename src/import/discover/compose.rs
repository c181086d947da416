//! Reader for docker-compose files: services (kind from image and command), expanded
//! replicas (`web-1..web-N`) folded back into one service, deploy resources, health
//! checks, limits, environment, the `uses` edges between services, and which service
//! owns each mounted config file.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::{detect, dockerfile};
use crate::import::interpret::{self, Process, images, unmodelled};
use crate::import::shared::argv::{self, Word};
use crate::import::shared::env::{self, EnvVar, Variables, interpolate, read_env_file};
use crate::import::shared::names::{numbered, service_name};
use crate::import::shared::units;
use crate::import::shared::urls::{url_host, url_path};
use crate::import::shared::yaml::{key_span, kv_span, scalar, value_span};
use crate::import::{FileId, ImportBuilder};
use crate::load::yaml::{self, SpanMap, escape_segment};
use crate::source::SourceFile;

/// Words of a command given as a string or a list.
fn command_words(builder: &mut ImportBuilder, file: FileId, spans: &SpanMap, pointer: &str, value: &Value) -> Option<Vec<Word>> {
    match value {
        Value::String(s) => {
            let text = builder.sources[file].text.clone();
            let span = value_span(spans, pointer);
            let (words, error) = argv::words_in(&text, &span, s);
            if let Some(e) = error {
                builder.unparsable(file, e.bytes, format!("command: {}", e.message), "close the quote; the command is read up to it");
            }
            Some(words)
        }
        Value::Array(items) => Some(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| scalar(v).map(|s| (s, value_span(spans, &format!("{pointer}/{i}")))))
                .collect(),
        ),
        _ => None,
    }
}

fn command_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => Some(items.iter().filter_map(scalar).collect::<Vec<_>>().join(" ")),
        _ => None,
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Role {
    /// A service of this spec kind.
    Service(&'static str),
    /// A redis sentinel watching a master.
    Sentinel,
    /// A redis replica of the named compose service.
    RedisReplica(String),
    /// A postgres streaming replica of the named compose service.
    PgReplica(String),
    /// Not modelled.
    Skip(String),
}

struct Entry {
    name: String,
    def: Value,
    pointer: String,
    key: Range<usize>,
    role: Role,
    words: Option<Vec<Word>>,
    /// The file `words` point into when they come from the image's Dockerfile.
    words_file: Option<FileId>,
    /// The Dockerfile its image is built from, when this file says: its `ENV` is the
    /// lowest layer of the service's environment.
    dockerfile: Option<PathBuf>,
}

/// Services of one spec service: one compose entry, or expanded replicas.
struct Group {
    spec_name: String,
    members: Vec<usize>,
}

/// Reads a compose file: services, replicas, resources, commands, environment.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let source: SourceFile = builder.sources[file].clone();
    let (root, spans) = match yaml::parse_foreign(&source) {
        Ok(parsed) => parsed,
        Err(e) => {
            builder.unparsable(file, e.span, format!("compose file: {}", e.message), e.hint.unwrap_or_else(|| "fix the YAML syntax".into()));
            return;
        }
    };
    let Some(services) = root.get("services").and_then(Value::as_object) else {
        builder.unparsable(file, 0..0, "compose file has no `services:` mapping", "a compose file lists its containers under `services:`");
        return;
    };
    if let Some(map) = root.as_object() {
        for key in map.keys() {
            if !matches!(key.as_str(), "services" | "volumes" | "networks" | "configs" | "secrets" | "version" | "name" | "include") && !key.starts_with("x-") {
                builder.ignored(file, key_span(&spans, &format!("/{}", escape_segment(key))), format!("compose top-level `{key}`"));
            }
        }
        if map.contains_key("include") {
            builder.ignored(file, key_span(&spans, "/include"), "compose `include:` files are not followed; pass them to headroom too");
        }
    }
    let dir = source.path.parent().map(Path::to_path_buf).unwrap_or_default();
    // Compose substitutes `${VAR}` from the `.env` of the project directory (and the
    // shell, which is not the deployment's: its variables are unknown here).
    let vars = Variables::new(read_env_file(builder, &dir.join(".env")).unwrap_or_default());
    let mut entries: Vec<Entry> = services
        .iter()
        .map(|(name, def)| {
            let pointer = format!("/services/{}", escape_segment(name));
            Entry { name: name.clone(), def: def.clone(), key: key_span(&spans, &pointer), pointer, role: Role::Skip(String::new()), words: None, words_file: None, dockerfile: None }
        })
        .collect();
    for entry in entries.iter_mut() {
        resolve_image(builder, file, &spans, entry, &vars);
        if !entry.def.is_object() {
            builder.unparsable(file, entry.key.clone(), format!("compose service `{}` is not a mapping", entry.name), "write the service's keys under its name");
            entry.role = Role::Skip("not a mapping".into());
            continue;
        }
        entry.dockerfile = build_context(&dir, &entry.def).map(|(_, d)| d);
        let mut words = full_command(builder, file, &spans, entry);
        let target = entry.def.pointer("/build/target").and_then(Value::as_str).map(str::to_string);
        // A service built here with no command runs its Dockerfile's CMD (of the stage
        // `build.target` names).
        if words.is_none()
            && let Some((context, dockerfile)) = build_context(&dir, &entry.def)
            && let Some(default) = dockerfile::default_command(builder, &context, &dockerfile, target.as_deref())
        {
            entry.words_file = Some(default.file);
            words = Some(default.words);
        }
        // `command: worker` handed to an entrypoint script that dispatches on it.
        if let Some((arg, _)) = words.as_ref().filter(|w| entry.words_file.is_none() && interpret::classify(w).is_none()).and_then(|w| w.first()).cloned()
            && let Some((context, dockerfile)) = build_context(&dir, &entry.def)
            && let Some(branch) = dockerfile::dispatched_command(builder, &context, &dockerfile, target.as_deref(), &arg)
        {
            entry.words_file = Some(branch.file);
            words = Some(branch.words);
        }
        // `command: ["/app/docker/bootstrap.sh", "app"]` running a script mounted from here.
        if let Some((script, _)) = words.as_ref().filter(|w| interpret::classify(w).is_none()).and_then(|w| w.first()).cloned()
            && let Some(host) = mounted_file(&dir, &entry.def, &script)
        {
            let arg = words.as_ref().and_then(|w| w.get(1)).map(|(a, _)| a.clone());
            let build = build_context(&dir, &entry.def);
            if let Some(run) = dockerfile::mounted_script_run(builder, &host, arg.as_deref(), build.as_ref().map(|(c, d)| (c.as_path(), d.as_path()))) {
                entry.words_file = Some(run.file);
                words = Some(run.words);
            }
        }
        // `command: ["./deploy/wait-for-db.sh", "db", "bash", "/app/deploy/start.sh"]`.
        if let Some(w) = words.clone().filter(|w| interpret::classify(w).is_none())
            && let Some((context, _)) = build_context(&dir, &entry.def)
            && let Some(run) = dockerfile::wrapped_command(builder, &context, file, &w)
        {
            entry.words_file = (run.file != file).then_some(run.file);
            words = Some(run.words);
        }
        entry.role = classify(entry, words.as_deref(), services);
        let unknown = match &entry.role {
            Role::Service("worker") => true,
            Role::Skip(_) => entry.def.is_object() && not_a_steady_client(&entry.name, &entry.def, None, entry.def.get("image").and_then(Value::as_str), words.as_deref(), services).is_none(),
            _ => false,
        };
        if unknown
            && let Some((app, kind, config)) = in_image_app(entry, words.as_deref(), &builder.in_image_apps)
        {
            let shown = config.display().to_string();
            builder.assumed_at(
                file,
                entry.key.clone(),
                format!("compose service `{}` runs NGINX Unit's application `{app}` ({shown}), the config its image starts: read as a {kind} service with this entry's environment, replicas and connections", entry.name),
                "if the image starts something else, describe the service in an --overlay",
            );
            builder.in_image_owners.insert(app, service_name(&entry.name));
            entry.role = Role::Service(kind);
        }
        entry.words = words;
    }
    app_image_defaults(builder, file, &dir, &mut entries, services);
    // `image: app` beside a service that builds `app`: the same image.
    let built: Vec<(String, PathBuf)> = entries.iter().filter_map(|e| Some((e.def.get("image")?.as_str()?.to_string(), e.dockerfile.clone()?))).collect();
    for entry in entries.iter_mut().filter(|e| e.dockerfile.is_none()) {
        let image = entry.def.get("image").and_then(Value::as_str);
        entry.dockerfile = built.iter().find(|(i, _)| Some(i.as_str()) == image).map(|(_, d)| d.clone());
    }
    let groups = group(builder, file, &entries);
    // Every name a container is reached by -> its spec service.
    let mut hosts: HashMap<String, String> = HashMap::new();
    for g in &groups {
        for &m in &g.members {
            let def = &entries[m].def;
            hosts.insert(entries[m].name.clone(), g.spec_name.clone());
            for key in ["container_name", "hostname"] {
                if let Some(h) = def.get(key).and_then(Value::as_str) {
                    hosts.entry(h.to_string()).or_insert(g.spec_name.clone());
                }
            }
            if let Some(networks) = def.get("networks").and_then(Value::as_object) {
                for net in networks.values() {
                    for alias in net.get("aliases").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
                        hosts.entry(alias.to_string()).or_insert(g.spec_name.clone());
                    }
                }
            }
        }
    }
    for (host, service) in &hosts {
        builder.host_aliases.entry(host.clone()).or_insert_with(|| service.clone());
    }
    let mut cx = Compose { builder, file, spans: &spans, dir: &dir, entries: &entries, hosts, files_by_kind: BTreeMap::new(), envs: HashMap::new(), vars: &vars };
    for g in &groups {
        cx.service(g);
    }
    cx.topology();
    cx.development_note();
    cx.deploy_files();
    if let Some(name) = source.path.file_name().and_then(|n| n.to_str()) {
        cx.builder.set("deploy.compose.file", json!(name), file, 0..0);
    }
    if groups.iter().any(|g| g.members.len() > 1) {
        cx.builder.set("deploy.compose.replicas", json!("expand"), file, 0..0);
    }
}

/// Substitutes `${VAR}` in a service's `image:` (`${REGISTRY:-docker.io}/app:${TAG}`)
/// from the project's variables. An image that still depends on an unset variable is
/// dropped from the entry (its kind then comes from its command) with a note.
fn resolve_image(builder: &mut ImportBuilder, file: FileId, spans: &SpanMap, entry: &mut Entry, vars: &Variables) {
    let Some(image) = entry.def.get("image").and_then(Value::as_str).filter(|i| i.contains('$')).map(str::to_string) else { return };
    let resolved = interpolate(&image, vars);
    let bytes = kv_span(spans, &format!("{}/image", entry.pointer));
    match resolved.text {
        Some(text) => {
            if !resolved.defaulted.is_empty() {
                let names = resolved.defaulted.iter().map(|v| format!("${v}")).collect::<Vec<_>>().join(", ");
                builder.assumed_at(file, bytes, format!("image of `{}` is `{text}`: the default of {names}, which .env does not set", entry.name), "if the variable is set where compose runs, its value wins");
            }
            entry.def["image"] = Value::from(text);
        }
        None => {
            let names = resolved.unknown.iter().map(|v| format!("${v}")).collect::<Vec<_>>().join(", ");
            builder.ignored(file, bytes, format!("image `{}` of `{}` depends on {names}, which no .env here sets: the image is not known", image.escape_debug(), entry.name));
            if let Some(map) = entry.def.as_object_mut() {
                map.remove("image");
            }
        }
    }
}

/// The build context and Dockerfile of a service with `build:`.
fn build_context(dir: &Path, def: &Value) -> Option<(PathBuf, PathBuf)> {
    let (context, dockerfile) = match def.get("build")? {
        Value::String(s) => (s.clone(), "Dockerfile".to_string()),
        Value::Object(b) => (
            b.get("context").and_then(Value::as_str).unwrap_or(".").to_string(),
            b.get("dockerfile").and_then(Value::as_str).unwrap_or("Dockerfile").to_string(),
        ),
        _ => return None,
    };
    if context.contains("://") || context.contains('$') || dockerfile.contains('$') {
        return None;
    }
    let context = dir.join(context);
    let dockerfile = context.join(dockerfile);
    Some((context, dockerfile))
}

/// The file here that a service sees at `container_path` through one of its bind
/// mounts (`./docker:/app/docker` puts docker/bootstrap.sh at /app/docker/bootstrap.sh).
fn mounted_file(dir: &Path, def: &Value, container_path: &str) -> Option<PathBuf> {
    if !container_path.starts_with('/') {
        return None;
    }
    for item in def.get("volumes").and_then(Value::as_array).into_iter().flatten() {
        let (source, target) = match item {
            Value::String(s) => {
                let mut parts = s.split(':');
                (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string())
            }
            Value::Object(m) if m.get("type").and_then(Value::as_str) == Some("bind") => {
                (m.get("source").and_then(Value::as_str).unwrap_or("").to_string(), m.get("target").and_then(Value::as_str).unwrap_or("").to_string())
            }
            _ => continue,
        };
        if !source.starts_with('.') || source.contains('$') || target.is_empty() {
            continue;
        }
        let host = if container_path == target {
            dir.join(&source)
        } else if let Some(rest) = container_path.strip_prefix(&format!("{}/", target.trim_end_matches('/'))) {
            dir.join(&source).join(rest)
        } else {
            continue;
        };
        if host.is_file() {
            return Some(host);
        }
    }
    None
}

/// Entrypoint and command words together.
fn full_command(builder: &mut ImportBuilder, file: FileId, spans: &SpanMap, entry: &Entry) -> Option<Vec<Word>> {
    let mut words = Vec::new();
    let mut any = false;
    for key in ["entrypoint", "command"] {
        if let Some(v) = entry.def.get(key) {
            let pointer = format!("{}/{key}", entry.pointer);
            if let Some(w) = command_words(builder, file, spans, &pointer, v) {
                any = true;
                words.extend(w);
            }
        }
    }
    any.then_some(words)
}

fn env_map(def: &Value) -> BTreeMap<String, String> {
    match def.get("environment") {
        Some(Value::Object(map)) => map.iter().filter_map(|(k, v)| scalar(v).map(|s| (k.clone(), s))).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|s| s.split_once('=').map(|(k, v)| (k.trim().to_string(), v.to_string())))
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn depends_on(def: &Value) -> Vec<String> {
    match def.get("depends_on") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        Some(Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// A service with no command and no build whose image another service of the file
/// runs an app program from (`web` beside `worker: bundle exec sidekiq`, both on
/// `ghcr.io/acme/app`) runs the app's image: the project's Dockerfile builds it, and
/// its CMD is what the service runs (noted as an assumption).
fn app_image_defaults(builder: &mut ImportBuilder, file: FileId, dir: &Path, entries: &mut [Entry], services: &Map<String, Value>) {
    let app_images: Vec<(String, String)> = entries
        .iter()
        .filter(|e| e.words.as_deref().and_then(interpret::classify).is_some())
        .filter_map(|e| Some((e.def.get("image")?.as_str()?.to_string(), e.name.clone())))
        .collect();
    let dockerfile = dir.join("Dockerfile");
    for entry in entries.iter_mut() {
        if entry.words.is_some() || !matches!(entry.role, Role::Skip(_)) || entry.def.get("build").is_some() || !dockerfile.is_file() {
            continue;
        }
        let Some(image) = entry.def.get("image").and_then(Value::as_str).map(str::to_string) else { continue };
        let Some((_, sibling)) = app_images.iter().find(|(i, _)| *i == image) else { continue };
        let Some(default) = dockerfile::default_command(builder, dir, &dockerfile, None) else { continue };
        if interpret::classify(&default.words).is_none() {
            continue;
        }
        let shown = default.words.iter().map(|(w, _)| w.as_str()).collect::<Vec<_>>().join(" ");
        entry.role = classify(entry, Some(&default.words), services);
        if !matches!(entry.role, Role::Service(_)) {
            continue;
        }
        builder.assumed_at(
            file,
            entry.key.clone(),
            format!("compose service `{}` runs `{image}` without a command; `{sibling}` runs an app program from the same image, so it is this app's image, built by ./Dockerfile, and `{}` runs its CMD `{shown}`", entry.name, entry.name),
            "set `command:` on the service to say what it runs",
        );
        entry.words_file = Some(default.file);
        entry.words = Some(default.words);
        entry.dockerfile = Some(dockerfile.clone());
    }
}

fn classify(entry: &Entry, words: Option<&[Word]>, services: &Map<String, Value>) -> Role {
    let def = &entry.def;
    let by_command = words.and_then(interpret::classify).map(|(k, _)| k);
    let image = def.get("image").and_then(Value::as_str);
    let by_image = image.and_then(images::image_kind);
    let kind = by_command.or(by_image);
    if let Some(why) = not_a_steady_client(&entry.name, def, kind, image, words, services) {
        return Role::Skip(why);
    }
    let env = env_map(def);
    let depends = depends_on(def);
    let service_kind = |name: &str| {
        services.get(name).and_then(|d| d.get("image")).and_then(Value::as_str).and_then(images::image_kind)
    };
    match kind {
        Some("sentinel") => Role::Sentinel,
        Some("redis") => {
            if let Some(words) = words {
                for (i, (w, _)) in words.iter().enumerate() {
                    if (w == "--slaveof" || w == "--replicaof")
                        && let Some((host, _)) = words.get(i + 1)
                    {
                        return Role::RedisReplica(host.clone());
                    }
                    if w == "--sentinel" {
                        return Role::Sentinel;
                    }
                }
                // `sh -c "cp ... && exec redis-server /tmp/sentinel.conf --sentinel"`
                // (how headroom runs a sentinel on a writable copy of its config).
                if words.iter().any(|(w, _)| w.contains(' ') && w.split_whitespace().any(|x| x == "--sentinel" || x == "redis-sentinel")) {
                    return Role::Sentinel;
                }
            }
            if env.get("REDIS_REPLICATION_MODE").is_some_and(|m| m == "slave" || m == "replica")
                && let Some(master) = env.get("REDIS_MASTER_HOST")
            {
                return Role::RedisReplica(master.clone());
            }
            Role::Service("redis")
        }
        Some("postgres") => {
            let standby = words.is_some_and(|w| w.iter().any(|(x, _)| x.replace(' ', "") == "hot_standby=on"))
                || env.get("POSTGRESQL_REPLICATION_MODE").is_some_and(|m| m == "slave");
            if standby {
                let master = env
                    .get("POSTGRESQL_MASTER_HOST")
                    .cloned()
                    .or_else(|| depends.iter().find(|d| service_kind(d) == Some("postgres")).cloned());
                if let Some(m) = master {
                    return Role::PgReplica(m);
                }
            }
            Role::Service("postgres")
        }
        Some(k) => Role::Service(k),
        None if words.is_some_and(|w| !w.is_empty()) => Role::Service("worker"),
        None => Role::Skip(match (image, def.get("build")) {
            (Some(i), _) => format!("image `{i}` is not a kind headroom models (gunicorn, puma, job runners, nginx, pgbouncer, postgres, redis)"),
            (None, Some(_)) => "it runs the command of its Dockerfile, which headroom does not read; give it a `command:` or describe it in an --overlay".to_string(),
            (None, None) => "no image or command".to_string(),
        }),
    }
}

/// The in-image application (an NGINX Unit app) a service runs when neither its image
/// nor its command is a kind headroom models: the app of the service's own name, or
/// the only app when the service runs Unit itself (`unitd`, an `nginx/unit` image).
fn in_image_app(entry: &Entry, words: Option<&[Word]>, apps: &BTreeMap<String, (&'static str, PathBuf)>) -> Option<(String, &'static str, PathBuf)> {
    if let Some((kind, config)) = apps.get(&entry.name) {
        return Some((entry.name.clone(), kind, config.clone()));
    }
    let runs_unit = words.and_then(|w| w.first()).is_some_and(|(w, _)| w.rsplit('/').next() == Some("unitd"))
        || entry.def.get("image").and_then(Value::as_str).is_some_and(|i| {
            let repo = images::image_repo(i);
            repo == "unit" || repo.ends_with("/unit")
        });
    match apps.iter().collect::<Vec<_>>().as_slice() {
        [(app, (kind, config))] if runs_unit => Some(((*app).clone(), kind, config.clone())),
        _ => None,
    }
}

/// Why a service is listed but not modelled: it only runs with a profile the other
/// services do not need, runs a third-party program headroom has no kind for, or
/// runs a task once and exits. None for the services that make up the deployment.
fn not_a_steady_client(name: &str, def: &Value, kind: Option<&str>, image: Option<&str>, words: Option<&[Word]>, services: &Map<String, Value>) -> Option<String> {
    let profiles: Vec<&str> = def.get("profiles").and_then(Value::as_array).map(|p| p.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    if !profiles.is_empty() && services.values().any(|d| d.get("profiles").is_none()) {
        return Some(format!("started only with `--profile {}`, not part of the default deployment", profiles.join("`/`--profile ")));
    }
    if let Some(what) = words.and_then(unmodelled::program).or_else(|| image.and_then(unmodelled::application_image)) {
        return Some(format!("runs {what}, which headroom does not model (listed, not counted as a client of the databases)"));
    }
    // Others wait for it to finish (`condition: service_completed_successfully`).
    if services.values().any(|d| d.pointer(&format!("/depends_on/{}/condition", escape_segment(name))).and_then(Value::as_str) == Some("service_completed_successfully")) {
        return Some("runs once and exits: other services wait for it to complete (`service_completed_successfully`), so it is not a steady client of the databases".to_string());
    }
    if kind.is_some() {
        return None;
    }
    if let Some(what) = image.and_then(unmodelled::image) {
        return Some(format!("runs {what}, which headroom does not model (listed, not counted as a client of the databases)"));
    }
    words.and_then(unmodelled::one_shot).map(|task| format!("runs `{task}` once and exits: a one-shot task, not a steady client of the databases"))
}

/// What must match for numbered services to be one service with replicas (the
/// environment is compared by `same_env`).
fn capacity_shape(entry: &Entry) -> Value {
    let mut def = entry.def.clone();
    let Some(map) = def.as_object_mut() else { return def };
    for key in ["container_name", "hostname", "ports", "labels", "volumes", "depends_on", "networks", "restart", "logging", "environment"] {
        map.remove(key);
    }
    def
}

/// Whether a value names its own replica (`web-3`, `3`): such variables
/// (CONTAINER_NAME, REPLICA_ID) may differ between replicas.
fn names_own_replica(entry: &Entry, value: &str) -> bool {
    let own = entry.name.to_ascii_lowercase();
    let number = numbered(&own).map(|(_, n)| n.to_string()).unwrap_or_default();
    value.to_ascii_lowercase().contains(&own) || (!number.is_empty() && value == number)
}

/// Whether two numbered entries have the same environment, apart from variables
/// whose values name their own replica on both sides.
fn same_env(a: &Entry, b: &Entry) -> bool {
    let (ea, eb) = (env_map(&a.def), env_map(&b.def));
    if a.def.get("environment").is_some() != b.def.get("environment").is_some() {
        return false;
    }
    let keys: std::collections::BTreeSet<&String> = ea.keys().chain(eb.keys()).collect();
    keys.into_iter().all(|k| match (ea.get(k), eb.get(k)) {
        (Some(x), Some(y)) => x == y || (names_own_replica(a, x) && names_own_replica(b, y)),
        _ => false,
    })
}

fn group(builder: &mut ImportBuilder, file: FileId, entries: &[Entry]) -> Vec<Group> {
    let mut by_base: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let Role::Service(_) = e.role
            && let Some((base, _)) = numbered(&e.name)
        {
            by_base.entry(base.to_string()).or_default().push(i);
        }
    }
    let mut grouped: HashMap<usize, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for (base, mut members) in by_base {
        if members.len() < 2 || entries.iter().any(|e| e.name == base) {
            continue;
        }
        members.sort_by_key(|&m| numbered(&entries[m].name).map(|(_, n)| n).unwrap_or(0));
        let first = members[0];
        let shape = capacity_shape(&entries[first]);
        let differing: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&m| capacity_shape(&entries[m]) != shape || entries[m].role != entries[first].role || !same_env(&entries[first], &entries[m]))
            .collect();
        if !differing.is_empty() {
            for m in differing {
                let mut keys = diff_keys(&capacity_shape(&entries[first]), &capacity_shape(&entries[m]));
                if !same_env(&entries[first], &entries[m]) {
                    keys.push("environment".into());
                }
                builder.ignored(
                    file,
                    entries[m].key.clone(),
                    format!("`{}` differs from `{}` in {}; they are read as separate services, not replicas", entries[m].name, entries[first].name, keys.join(", ")),
                );
            }
            continue;
        }
        let spec_name = service_name(&base);
        let names: Vec<&str> = members.iter().map(|&m| entries[m].name.as_str()).collect();
        builder.assumed_at(file,
            entries[first].key.clone(),
            format!(
                "{} … {}: {} services with the same settings, read as one service `{spec_name}` with replicas: {}",
                names[0],
                names[names.len() - 1],
                names.len(),
                names.len()
            ),
            "nginx upstream servers named like these are the replicas of that service",
        );
        let index = groups.len();
        for &m in &members {
            grouped.insert(m, index);
        }
        groups.push(Group { spec_name, members });
    }
    let mut out: Vec<Group> = Vec::new();
    let mut placed: HashMap<usize, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let Some(&g) = grouped.get(&i) {
            if let std::collections::hash_map::Entry::Vacant(v) = placed.entry(g) {
                v.insert(out.len());
                out.push(Group { spec_name: groups[g].spec_name.clone(), members: groups[g].members.clone() });
            }
            continue;
        }
        out.push(Group { spec_name: service_name(&e.name), members: vec![i] });
    }
    out
}

fn diff_keys(a: &Value, b: &Value) -> Vec<String> {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else { return vec!["shape".into()] };
    let mut keys: Vec<String> = a.keys().chain(b.keys()).filter(|k| a.get(*k) != b.get(*k)).cloned().collect();
    keys.sort();
    keys.dedup();
    keys
}

struct Compose<'a> {
    builder: &'a mut ImportBuilder,
    file: FileId,
    spans: &'a SpanMap,
    dir: &'a Path,
    entries: &'a [Entry],
    /// Host names (service, container_name, hostname, aliases) -> spec service.
    hosts: HashMap<String, String>,
    /// deploy.files candidates: kind -> (service, path relative to the compose file).
    files_by_kind: BTreeMap<&'static str, Vec<(String, String)>>,
    /// The environment of each compose entry read (values resolved), by entry name.
    envs: HashMap<String, Vec<EnvVar>>,
    /// The project's variables (`.env`), for `${VAR}` in the file.
    vars: &'a Variables,
}

impl Compose<'_> {
    fn set(&mut self, service: &str, key: &str, value: Value, bytes: Range<usize>) {
        self.builder.set(&format!("services.{service}.{key}"), value, self.file, bytes);
    }

    fn has(&self, service: &str, key: &str) -> bool {
        self.builder.get(&format!("services.{service}.{key}")).is_some()
    }

    fn span(&self, pointer: &str) -> Range<usize> {
        kv_span(self.spans, pointer)
    }

    fn service(&mut self, group: &Group) {
        let entry = &self.entries[group.members[0]];
        let name = group.spec_name.clone();
        let kind = match &entry.role {
            Role::Service(k) => *k,
            Role::Skip(why) => {
                if !why.is_empty() && why != "not a mapping" {
                    self.builder.ignored(self.file, entry.key.clone(), format!("compose service `{}`: {why}; skipped", entry.name));
                    self.builder.unmodelled.insert(entry.name.clone(), why.clone());
                }
                return;
            }
            _ => return,
        };
        if name != entry.name && group.members.len() == 1 {
            self.builder.assumed_at(self.file, entry.key.clone(), format!("compose service `{}` is named `{name}` in the spec", entry.name), "spec service names are [a-z0-9-_]");
        }
        self.builder.mark(&format!("services.{name}"), self.file, entry.key.clone());
        if self.builder.kind_of_service(&name).is_some() {
            self.builder.ignored(self.file, entry.key.clone(), format!("service `{name}` is already described by another file; this compose entry adds to it"));
        }
        // The command's flags win over the environment.
        let env = self.env(entry);
        let process = Process { service: name.clone(), file: self.file, declared: entry.key.clone(), command: entry.words.clone(), kind: Some(kind), env, variables: self.vars.clone(), command_file: entry.words_file };
        interpret::process(self.builder, &process);
        let job = matches!(kind, "sidekiq" | "celery" | "rq" | "solid_queue" | "worker");
        if kind == "worker" {
            self.builder.ignored(
                self.file,
                entry.key.clone(),
                format!("compose service `{}` runs a program headroom does not model; read as a `worker` (its pools count, it serves no requests)", entry.name),
            );
        }
        if job && let Some(text) = entry.def.get("command").or(entry.def.get("entrypoint")).and_then(command_text) {
            let key = if entry.def.get("command").is_some() { "command" } else { "entrypoint" };
            let bytes = self.span(&format!("{}/{key}", entry.pointer));
            self.set(&name, "command", json!(text), bytes);
        }
        self.image_and_build(&name, kind, entry);
        self.replicas(&name, group);
        self.resources(&name, entry);
        self.health(&name, entry);
        self.limits(&name, entry);
        self.port(&name, entry);
        self.publish(&name, kind, entry, &process.env);
        self.mounts(&name, kind, entry);
        self.notes(entry);
        self.envs.insert(entry.name.clone(), process.resolved_env());
    }

    fn image_and_build(&mut self, name: &str, kind: &str, entry: &Entry) {
        if let Some(image) = entry.def.get("image").and_then(Value::as_str) {
            let bytes = self.span(&format!("{}/image", entry.pointer));
            self.set(name, "image", json!(image), bytes.clone());
            images::version_from_image(self.builder, name, kind, image, self.file, bytes);
        }
        let build = match entry.def.get("build") {
            Some(Value::String(s)) => Some((s.clone(), format!("{}/build", entry.pointer))),
            Some(Value::Object(b)) => b.get("context").and_then(Value::as_str).map(|c| (c.to_string(), format!("{}/build/context", entry.pointer))),
            _ => None,
        };
        if let Some((context, pointer)) = build
            && entry.def.get("image").is_none()
        {
            let bytes = self.span(&pointer);
            if matches!(kind, "gunicorn" | "puma" | "sidekiq" | "celery" | "rq" | "solid_queue" | "worker") {
                self.set(name, "build", json!(context), bytes);
            }
        }
    }

    fn replicas(&mut self, name: &str, group: &Group) {
        let entry = &self.entries[group.members[0]];
        let mut per_entry: Option<(u64, Range<usize>)> = None;
        for (key, pointer) in [("deploy.replicas", format!("{}/deploy/replicas", entry.pointer)), ("scale", format!("{}/scale", entry.pointer))] {
            if let Some(v) = entry.def.pointer(&pointer[entry.pointer.len()..]) {
                match scalar(v).and_then(|s| s.parse::<u64>().ok()) {
                    Some(n) => per_entry = Some((n, self.span(&pointer))),
                    None => self.builder.ignored(self.file, self.span(&pointer), format!("`{key}` is not a whole number")),
                }
            }
        }
        let members = group.members.len() as u64;
        match (per_entry, members) {
            (Some((n, bytes)), 1) => self.set(name, "replicas", json!(n.max(1)), bytes),
            (Some((n, bytes)), m) => {
                self.set(name, "replicas", json!((n * m).max(1)), bytes.clone());
                self.builder.assumed_at(self.file, bytes, format!("replicas {} for `{name}`: {m} services x deploy.replicas {n}", n * m), "check how many containers run");
            }
            (None, m) if m > 1 => self.set(name, "replicas", json!(m), entry.key.clone()),
            _ => {}
        }
    }

    fn resources(&mut self, name: &str, entry: &Entry) {
        let p = &entry.pointer;
        let limits = [
            ("resources.cpus", "cpus", format!("{p}/deploy/resources/limits/cpus")),
            ("resources.memory", "memory", format!("{p}/deploy/resources/limits/memory")),
            ("resources.reserve_cpus", "cpus", format!("{p}/deploy/resources/reservations/cpus")),
            ("resources.reserve_memory", "memory", format!("{p}/deploy/resources/reservations/memory")),
            ("resources.cpus", "cpus", format!("{p}/cpus")),
            ("resources.memory", "memory", format!("{p}/mem_limit")),
            ("resources.reserve_memory", "memory", format!("{p}/mem_reservation")),
        ];
        for (key, unit, pointer) in limits {
            let Some(raw) = entry.def.pointer(&pointer[p.len()..]) else { continue };
            if self.has(name, key) {
                continue;
            }
            let bytes = self.span(&pointer);
            let Some(text) = scalar(raw) else { continue };
            let resolved = interpolate(&text, self.vars);
            let Some(text) = resolved.text else {
                self.builder.ignored(self.file, bytes, format!("`{key}` comes from the environment at run time; unknown"));
                continue;
            };
            let value = if unit == "cpus" { units::cpus(&text) } else { units::docker_size(&text).map(Value::from) };
            match value {
                Some(v) => self.set(name, key, v, bytes),
                None => self.builder.ignored(self.file, bytes, format!("`{}` is not a {unit} value", text.escape_debug())),
            }
        }
    }

    fn health(&mut self, name: &str, entry: &Entry) {
        let p = format!("{}/healthcheck", entry.pointer);
        let Some(h) = entry.def.get("healthcheck") else { return };
        if h.get("disable").and_then(Value::as_bool) == Some(true) {
            return;
        }
        if let Some(test) = h.get("test") {
            let words: Vec<String> = match test {
                Value::String(s) => argv::shell_words(s).into_iter().map(|(w, _)| w).collect(),
                Value::Array(items) => items.iter().filter_map(scalar).flat_map(|s| argv::shell_words(&s).into_iter().map(|(w, _)| w).collect::<Vec<_>>()).collect(),
                _ => Vec::new(),
            };
            if let Some(path) = words.iter().find_map(|w| url_path(w)) {
                self.set(name, "health.path", json!(path), self.span(&format!("{p}/test")));
            }
        }
        // Compose substitutes `$HEALTHCHECK_INTERVAL` from .env in these too.
        let substituted = |v: String| if v.contains('$') { interpolate(&v, self.vars).text.unwrap_or(v) } else { v };
        for key in ["interval", "timeout", "start_period"] {
            let pointer = format!("{p}/{key}");
            if let Some(v) = h.get(key).and_then(scalar).map(substituted) {
                match units::go_duration(&v) {
                    Some(d) => self.set(name, &format!("health.{key}"), json!(d), self.span(&pointer)),
                    None => self.builder.ignored(self.file, self.span(&pointer), format!("healthcheck {key} `{}` is not a duration", v.escape_debug())),
                }
            }
        }
        if let Some(r) = h.get("retries").and_then(scalar).map(substituted) {
            match r.parse::<u32>() {
                Ok(n) => self.set(name, "health.retries", json!(n), self.span(&format!("{p}/retries"))),
                Err(_) => self.builder.ignored(self.file, self.span(&format!("{p}/retries")), "healthcheck retries is not a whole number"),
            }
        }
    }

    fn limits(&mut self, name: &str, entry: &Entry) {
        let p = &entry.pointer;
        if let Some(nofile) = entry.def.pointer("/ulimits/nofile") {
            let pointer = format!("{p}/ulimits/nofile");
            let soft = match nofile {
                Value::Object(m) => m.get("soft").or(m.get("hard")).and_then(scalar),
                v => scalar(v),
            };
            match soft.and_then(|s| s.parse::<u64>().ok()).filter(|n| *n >= 1) {
                Some(n) => self.set(name, "nofile", json!(n), self.span(&pointer)),
                None => self.builder.ignored(self.file, self.span(&pointer), "ulimits.nofile is not a number"),
            }
        }
        let sysctls: Vec<(String, String, String)> = match entry.def.get("sysctls") {
            Some(Value::Object(m)) => m.iter().filter_map(|(k, v)| scalar(v).map(|s| (k.clone(), s, format!("{p}/sysctls/{}", escape_segment(k))))).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.as_str().and_then(|s| s.split_once('=')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string(), format!("{p}/sysctls/{i}"))))
                .collect(),
            _ => Vec::new(),
        };
        for (key, value, pointer) in sysctls {
            let bytes = self.span(&pointer);
            let namespaced = key.starts_with("net.") || key.starts_with("kernel.shm") || key.starts_with("kernel.msg") || key == "kernel.sem" || key.starts_with("fs.mqueue.");
            if !namespaced {
                self.builder.ignored(self.file, bytes, format!("sysctl `{key}` is not namespaced: a container cannot set it (it is the host's)"));
                continue;
            }
            let v = value.parse::<u64>().map(Value::from).unwrap_or(Value::from(value));
            self.builder.set(&format!("services.{name}.sysctls[{}]", serde_json::to_string(&key).unwrap_or_default()), v, self.file, bytes);
        }
    }

    fn port(&mut self, name: &str, entry: &Entry) {
        if self.has(name, "port") {
            return;
        }
        let mut ports: Vec<(u16, String)> = Vec::new();
        for key in ["expose", "ports"] {
            let Some(Value::Array(items)) = entry.def.get(key) else { continue };
            for (i, item) in items.iter().enumerate() {
                let pointer = format!("{}/{key}/{i}", entry.pointer);
                let container = match item {
                    Value::Object(m) => m.get("target").and_then(scalar),
                    v => scalar(v).map(|s| {
                        let s = s.split('/').next().unwrap_or("").to_string();
                        s.rsplit(':').next().unwrap_or("").to_string()
                    }),
                };
                if let Some(p) = container.and_then(|c| c.parse::<u16>().ok()).filter(|p| *p > 0)
                    && !ports.iter().any(|(q, _)| *q == p)
                {
                    ports.push((p, pointer));
                }
            }
        }
        if let [(p, pointer)] = ports.as_slice() {
            let bytes = self.span(pointer);
            self.set(name, "port", json!(p), bytes);
        }
    }

    /// A database, pooler or cache port published on the host (`ports:`) becomes
    /// `publish` (`[HOST_IP:]HOST_PORT`), so `redis-no-auth` sees a cache open on the
    /// host's interfaces. The official redis image runs without a password and with
    /// protected mode off: a published redis whose command sets no `--requirepass`,
    /// names no config file and gets no REDIS_PASSWORD (the Bitnami images' variable)
    /// has `password: false`.
    fn publish(&mut self, name: &str, kind: &str, entry: &Entry, env: &[EnvVar]) {
        if !matches!(kind, "redis" | "postgres" | "pgbouncer") || self.has(name, "publish") {
            return;
        }
        let Some(Value::Array(items)) = entry.def.get("ports") else { return };
        let mut published = Vec::new();
        for item in items {
            let (ip, host, container) = match item {
                Value::Object(m) => (m.get("host_ip").and_then(scalar), m.get("published").and_then(scalar), m.get("target").and_then(scalar)),
                v => match scalar(v).map(|s| s.split('/').next().unwrap_or_default().to_string()) {
                    Some(s) => match s.rsplit_once(':') {
                        None => (None, None, Some(s)),
                        Some((rest, container)) => match rest.rsplit_once(':') {
                            Some((ip, host)) => (Some(ip.to_string()), Some(host.to_string()), Some(container.to_string())),
                            None => (None, Some(rest.to_string()), Some(container.to_string())),
                        },
                    },
                    None => continue,
                },
            };
            // No host port: a random one, on the same interfaces.
            let Some(port) = host.filter(|h| !h.is_empty()).or(container) else { continue };
            let entry = match ip.filter(|ip| !ip.is_empty()) {
                Some(ip) if ip.contains(':') && !ip.starts_with('[') => format!("[{ip}]:{port}"),
                Some(ip) => format!("{ip}:{port}"),
                None => port,
            };
            if crate::spec::Published::parse(&entry).is_ok() && !published.contains(&entry) {
                published.push(entry);
            }
        }
        if published.is_empty() {
            return;
        }
        let bytes = self.span(&format!("{}/ports", entry.pointer));
        let open = published.iter().any(|p| crate::spec::Published::parse(p).is_ok_and(|p| p.beyond_loopback()));
        let words: Vec<&str> = entry.words.iter().flatten().map(|w| w.0.as_str()).collect();
        let authenticated = words.iter().any(|w| w.trim_start_matches('-') == "requirepass" || w.ends_with(".conf"))
            || env.iter().any(|v| v.name == "REDIS_PASSWORD")
            || self.has(name, "password");
        self.set(name, "publish", json!(published), bytes.clone());
        if kind == "redis" && open && !authenticated {
            self.set(name, "password", json!(false), bytes);
        }
    }

    /// Bind mounts of config files: their owner is this service.
    fn mounts(&mut self, name: &str, kind: &'static str, entry: &Entry) {
        let Some(Value::Array(items)) = entry.def.get("volumes") else { return };
        for item in items {
            let (source, target) = match item {
                Value::String(s) => {
                    let parts: Vec<&str> = s.split(':').collect();
                    if parts.len() < 2 {
                        continue;
                    }
                    (parts[0].to_string(), parts[1].to_string())
                }
                Value::Object(m) if m.get("type").and_then(Value::as_str) == Some("bind") => match m.get("source").and_then(Value::as_str) {
                    Some(s) => (s.to_string(), m.get("target").and_then(Value::as_str).unwrap_or("").to_string()),
                    None => continue,
                },
                _ => continue,
            };
            self.own(&source, &target, name, kind);
        }
    }

    /// Records `source` (relative to the compose file) as belonging to `owner`, and
    /// where in the container each of its files is seen (`target`).
    fn own(&mut self, source: &str, target: &str, owner: &str, kind: &'static str) {
        if !(source.starts_with('.') || source.starts_with('/')) || source.contains('$') {
            return;
        }
        let host = self.dir.join(source);
        let Ok(canonical) = std::fs::canonicalize(&host) else { return };
        let mut files = Vec::new();
        if canonical.is_file() {
            files.push(canonical.clone());
        } else if canonical.is_dir() {
            collect_files(&canonical, 0, &mut files);
        }
        for f in files {
            if target.starts_with('/') {
                let seen_at = match f.strip_prefix(&canonical) {
                    Ok(rel) if !rel.as_os_str().is_empty() => Path::new(target).join(rel),
                    _ => PathBuf::from(target),
                };
                self.builder.mounted_at.insert(seen_at.display().to_string(), f.clone());
            }
            let file_kind = detect::kind_of(&f, None);
            if file_kind_matches(kind, file_kind)
                && let Some(rel) = relative_to(&f, self.dir)
            {
                self.files_by_kind.entry(kind).or_default().push((owner.to_string(), rel));
            }
            self.builder.owners.entry(f).or_insert_with(|| owner.to_string());
        }
    }

    fn notes(&mut self, entry: &Entry) {
        for key in ["extends", "network_mode", "shm_size", "cpu_shares", "cpuset", "cpu_quota", "pids_limit", "mem_swappiness", "memswap_limit"] {
            if entry.def.get(key).is_some() {
                let what = match key {
                    "extends" => format!("`extends` in `{}` is not followed: keys it inherits are unknown", entry.name),
                    "network_mode" => format!("`network_mode` of `{}`", entry.name),
                    k => format!("`{k}` of `{}`", entry.name),
                };
                self.builder.ignored(self.file, key_span(self.spans, &format!("{}/{key}", entry.pointer)), what);
            }
        }
    }

    /// The environment: the image's `ENV` first, then env_file entries, then
    /// `environment:` (which wins).
    fn env(&mut self, entry: &Entry) -> Vec<EnvVar> {
        let target = entry.def.pointer("/build/target").and_then(Value::as_str);
        let mut vars = entry.dockerfile.as_deref().map(|d| dockerfile::image_env(self.builder, d, target)).unwrap_or_default();
        let env_files: Vec<(String, String)> = match entry.def.get("env_file") {
            Some(Value::String(s)) => vec![(s.clone(), format!("{}/env_file", entry.pointer))],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    let path = match v {
                        Value::String(s) => Some(s.clone()),
                        Value::Object(m) => m.get("path").and_then(Value::as_str).map(str::to_string),
                        _ => None,
                    };
                    path.map(|p| (p, format!("{}/env_file/{i}", entry.pointer)))
                })
                .collect(),
            _ => Vec::new(),
        };
        for (path, pointer) in env_files {
            vars.extend(self.env_file(&path, &pointer));
        }
        let p = format!("{}/environment", entry.pointer);
        match entry.def.get("environment") {
            Some(Value::Object(map)) => {
                for (k, v) in map {
                    let pointer = format!("{p}/{}", escape_segment(k));
                    vars.push(EnvVar { name: k.clone(), value: scalar(v), file: self.file, bytes: self.span(&pointer) });
                }
            }
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let Some(s) = scalar(item) else { continue };
                    let bytes = value_span(self.spans, &format!("{p}/{i}"));
                    let (k, v) = match s.split_once('=') {
                        Some((k, v)) => (k.trim().to_string(), Some(v.to_string())),
                        None => (s.trim().to_string(), None),
                    };
                    vars.push(EnvVar { name: k, value: v, file: self.file, bytes });
                }
            }
            _ => {}
        }
        vars
    }

    fn env_file(&mut self, path: &str, pointer: &str) -> Vec<EnvVar> {
        let bytes = value_span(self.spans, pointer);
        match read_env_file(self.builder, &self.dir.join(path)) {
            Some(vars) => vars,
            None => {
                self.builder.ignored(self.file, bytes, format!("env_file `{}` was not found here; the values it sets are unknown", path.escape_debug()));
                Vec::new()
            }
        }
    }

    /// A compose file whose app services build from a development Dockerfile
    /// (`Dockerfile.dev`) or run in the development environment (`RAILS_ENV:
    /// development`) is a development setup: one note says so; the findings stay.
    fn development_note(&mut self) {
        for entry in self.entries {
            let Role::Service(kind) = entry.role else { continue };
            if matches!(kind, "postgres" | "pgbouncer" | "redis" | "nginx") {
                continue;
            }
            let is_dev = |n: &str| n.to_ascii_lowercase().split(['.', '-', '_']).any(|part| matches!(part, "dev" | "development"));
            let dockerfile = entry.dockerfile.as_ref().and_then(|d| d.file_name()).and_then(|n| n.to_str()).filter(|n| is_dev(n)).map(str::to_string);
            let target = entry.def.pointer("/build/target").and_then(Value::as_str).filter(|t| is_dev(t)).map(|t| format!("the `{t}` stage of its Dockerfile"));
            let env = self.envs.get(&entry.name).and_then(|env| {
                env.iter().rev().find(|v| matches!(v.name.as_str(), "RAILS_ENV" | "RACK_ENV" | "APP_ENV" | "FLASK_ENV") && v.value.as_deref().is_some_and(|x| matches!(x, "development" | "dev")))
            });
            let why = match (dockerfile.or(target), env) {
                (Some(name), _) => format!("builds from {name}"),
                (None, Some(var)) => format!("sets {}={}", var.name, var.value.as_deref().unwrap_or_default()),
                (None, None) => continue,
            };
            self.builder.assumed_at(
                self.file,
                entry.key.clone(),
                format!("compose service `{}` {why}: a development setup, linted as it is written here; production may run with other settings", entry.name),
                "lint the files production is deployed from to check production",
            );
            return;
        }
    }

    /// uses edges, pools from the environment, sentinels and replicas.
    fn topology(&mut self) {
        let entries = self.entries;
        let mut sentinels: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut redis_replicas: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut pg_replicas: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut seen: Vec<String> = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            match &entry.role {
                Role::Sentinel => {
                    let master = depends_on(&entry.def)
                        .iter()
                        .filter_map(|d| self.hosts.get(d).cloned())
                        .find(|s| self.kind(s).as_deref() == Some("redis"))
                        .or_else(|| self.only_service("redis"));
                    match master {
                        Some(m) => sentinels.entry(m).or_default().push(i),
                        None => self.builder.ignored(self.file, entry.key.clone(), format!("sentinel `{}`: the redis it watches is not known", entry.name)),
                    }
                }
                Role::RedisReplica(host) => match self.hosts.get(host).cloned().filter(|s| self.kind(s).as_deref() == Some("redis")) {
                    Some(m) => redis_replicas.entry(m).or_default().push(i),
                    None => self.builder.ignored(self.file, entry.key.clone(), format!("redis replica `{}` of `{host}`, which is not a redis service here", entry.name)),
                },
                Role::PgReplica(host) => match self.hosts.get(host).cloned().filter(|s| self.kind(s).as_deref() == Some("postgres")) {
                    Some(m) => pg_replicas.entry(m).or_default().push(i),
                    None => self.builder.ignored(self.file, entry.key.clone(), format!("postgres replica `{}` of `{host}`, which is not a postgres service here", entry.name)),
                },
                Role::Service(_) => {
                    let name = self.hosts.get(&entry.name).cloned().unwrap_or_default();
                    if !seen.contains(&name) {
                        seen.push(name.clone());
                        self.edges(&name, entry);
                    }
                }
                Role::Skip(_) => {}
            }
        }
        for (master, members) in sentinels {
            let first = &entries[members[0]];
            let n = members.len() as u64;
            self.set(&master, "mode", json!("sentinel"), first.key.clone());
            self.set(&master, "sentinels", json!(n), first.key.clone());
            let names: Vec<&str> = members.iter().map(|&m| entries[m].name.as_str()).collect();
            self.builder.assumed_at(self.file, first.key.clone(), format!("{} sentinel services ({}) watch `{master}`: mode sentinel, sentinels: {n}", n, names.join(", ")), "the quorum is in their sentinel.conf; pass it to headroom too");
            for &m in &members {
                self.mounts(&master, "redis", &entries[m]);
            }
        }
        for (master, members) in redis_replicas {
            let first = &entries[members[0]];
            let n = members.len() as u64 + 1;
            self.set(&master, "replicas", json!(n), first.key.clone());
            // In sentinel mode `render` runs the master and `replicas_per_master`
            // replicas (`<master>-replica-N`); say how many, so it writes them back.
            if self.builder.get(&format!("services.{master}.mode")).and_then(Value::as_str) == Some("sentinel") {
                self.set(&master, "replicas_per_master", json!(n - 1), first.key.clone());
            }
            let names: Vec<&str> = members.iter().map(|&m| entries[m].name.as_str()).collect();
            self.builder.assumed_at(self.file, first.key.clone(), format!("redis replicas {} of `{master}`: replicas {n} (the master and {} replica(s))", names.join(", "), n - 1), "clients connect to the master; each replica holds the same data and memory");
            for &m in &members {
                self.mounts(&master, "redis", &entries[m]);
            }
        }
        for (master, members) in pg_replicas {
            let first = &entries[members[0]];
            let n = members.len() as u64;
            self.set(&master, "read_replicas", json!(n), first.key.clone());
            let names: Vec<&str> = members.iter().map(|&m| entries[m].name.as_str()).collect();
            self.builder.assumed_at(self.file, first.key.clone(), format!("postgres streaming replica(s) {} of `{master}`: read_replicas {n}", names.join(", ")), "each replica gets the same max_connections");
        }
    }

    fn kind(&self, service: &str) -> Option<String> {
        self.builder.kind_of_service(service)
    }

    fn only_service(&self, kind: &str) -> Option<String> {
        let services = self.builder.value.get("services").and_then(Value::as_object)?;
        let matching: Vec<&String> = services.iter().filter(|(_, v)| v.get("kind").and_then(Value::as_str) == Some(kind)).map(|(k, _)| k).collect();
        (matching.len() == 1).then(|| matching[0].clone())
    }

    /// The uses edges of one service: hosts named in its environment first, then
    /// depends_on; pools from DB_POOL_* variables.
    fn edges(&mut self, name: &str, entry: &Entry) {
        let Some(kind) = self.kind(name) else { return };
        let client = !matches!(kind.as_str(), "postgres" | "redis" | "nginx");
        if !client {
            return;
        }
        let mut env = self.envs.get(&entry.name).cloned().unwrap_or_default();
        // The app's main Redis (REDIS_URL, REDIS_HOST) before a cache's (REDIS_CACHE_HOST),
        // whatever order the env file lists them in: pool settings are the main one's.
        env.sort_by_key(|v| v.name.contains("CACHE"));
        let targets: &[&str] = if kind == "pgbouncer" { &["postgres"] } else { &["postgres", "pgbouncer", "redis"] };
        // Hosts from the environment.
        let mut db: Option<String> = None;
        let mut redis: Option<String> = None;
        // Edges made here: target, where, and what said so.
        let mut via: Vec<(String, FileId, Range<usize>, String)> = Vec::new();
        for var in &env {
            let Some(raw) = &var.value else { continue };
            let Some(url) = env::host_variable(&var.name, kind == "pgbouncer") else { continue };
            let host = if url { url_host(raw) } else { Some(raw.trim().to_string()) };
            let Some(host) = host else { continue };
            let resolved = interpolate(&host, self.vars);
            let Some(host) = resolved.text else {
                self.builder.ignored(var.file, var.bytes.clone(), format!("{}: the host comes from the environment at run time; the service it reaches is unknown", var.name));
                continue;
            };
            let Some(target) = self.hosts.get(&host).cloned() else { continue };
            let Some(target_kind) = self.kind(&target) else { continue };
            if !targets.contains(&target_kind.as_str()) {
                continue;
            }
            let slot = if target_kind == "redis" { &mut redis } else { &mut db };
            // A second Redis (a cache beside the queue) is a connection of its own.
            if target_kind == "redis" && slot.as_ref().is_some_and(|s| *s != target) {
                if !via.iter().any(|(t, ..)| *t == target) {
                    self.edge(name, &target, var.file, var.bytes.clone());
                    via.push((target.clone(), var.file, var.bytes.clone(), var.name.clone()));
                }
                continue;
            }
            if slot.as_ref().is_some_and(|s| *s != target) {
                self.builder.ignored(var.file, var.bytes.clone(), format!("{} names `{target}`; `{name}` already connects to `{}`", var.name, slot.clone().unwrap_or_default()));
                continue;
            }
            if slot.is_none() {
                *slot = Some(target.clone());
                self.edge(name, &target, var.file, var.bytes.clone());
                via.push((target.clone(), var.file, var.bytes.clone(), var.name.clone()));
            }
            if url
                && target_kind != "redis"
                && let Some(q) = raw.split_once('?').map(|(_, q)| q)
                && q.split('&').any(|kv| kv == "prepared_statements=false")
            {
                self.builder.set(&format!("services.{name}.uses.{target}.prepared_statements"), json!(false), var.file, var.bytes.clone());
            }
        }
        // depends_on: startup order, taken as a connection when nothing else says.
        let mut depends: Vec<(String, String, Range<usize>)> = Vec::new();
        for (i, d) in depends_on(&entry.def).iter().enumerate() {
            let pointer = match entry.def.get("depends_on") {
                Some(Value::Array(_)) => format!("{}/depends_on/{i}", entry.pointer),
                _ => format!("{}/depends_on/{}", entry.pointer, escape_segment(d)),
            };
            if let Some(target) = self.hosts.get(d).cloned()
                && let Some(k) = self.kind(&target)
                && targets.contains(&k.as_str())
                && !depends.iter().any(|(t, _, _)| *t == target)
            {
                depends.push((target, k, key_span(self.spans, &pointer)));
            }
        }
        if db.is_none() {
            let pick = depends.iter().find(|(_, k, _)| k == "pgbouncer").or_else(|| depends.iter().find(|(_, k, _)| k == "postgres")).cloned();
            if let Some((target, _, bytes)) = pick {
                self.edge(name, &target, self.file, bytes.clone());
                db = Some(target.clone());
                via.push((target, self.file, bytes, "depends_on".to_string()));
            }
        }
        if redis.is_none()
            && let Some((target, _, bytes)) = depends.iter().find(|(_, k, _)| k == "redis").cloned()
        {
            self.edge(name, &target, self.file, bytes.clone());
            redis = Some(target.clone());
            via.push((target, self.file, bytes, "depends_on".to_string()));
        }
        // Pools.
        interpret::app_env::apply_pools(self.builder, name, db.as_deref(), redis.as_deref(), &env);
        self.order_uses(name);
        for (target, file, bytes, why) in via {
            if self.builder.get(&format!("services.{name}.uses.{target}.pool")).is_none() && self.builder.get(&format!("services.{name}.uses.{target}.persistent")).is_none() {
                self.assume_edge(name, &target, file, bytes, &why);
            }
        }
        if kind == "pgbouncer"
            && let Some(target) = &db
            && self.builder.get(&format!("services.{name}.users")).is_none()
        {
            let user = env.iter().find(|v| matches!(v.name.as_str(), "DATABASES_USER" | "DB_USER" | "POSTGRESQL_USERNAME")).cloned();
            if let Some(var) = user
                && let Some(u) = var.value.as_deref().map(|v| interpolate(v, self.vars)).and_then(|i| i.text)
                && !u.is_empty()
            {
                self.builder.set(&format!("services.{name}.users"), json!([u]), var.file, var.bytes.clone());
            }
            let _ = target;
        }
    }

    /// The database edge first, then redis, then the rest (the order `render` writes
    /// pools in follows it).
    fn order_uses(&mut self, name: &str) {
        let rank = |kind: Option<String>| match kind.as_deref() {
            Some("pgbouncer" | "postgres") => 0,
            Some("redis") => 1,
            _ => 2,
        };
        let Some(uses) = self.builder.get(&format!("services.{name}.uses")).and_then(Value::as_object).cloned() else { return };
        let mut items: Vec<(String, Value)> = uses.into_iter().collect();
        items.sort_by_key(|(k, _)| rank(self.kind(k)));
        let ordered: Map<String, Value> = items.into_iter().collect();
        if let Some(slot) = self.builder.value.pointer_mut(&format!("/services/{}/uses", escape_segment(name))) {
            *slot = Value::Object(ordered);
        }
    }

    fn edge(&mut self, from: &str, to: &str, file: FileId, bytes: Range<usize>) {
        let path = format!("services.{from}.uses.{to}");
        if self.builder.get(&path).is_none() {
            self.builder.set(&path, json!({}), file, bytes);
        }
    }

    fn assume_edge(&mut self, from: &str, to: &str, file: FileId, bytes: Range<usize>, why: &str) {
        let to_kind = self.kind(to).unwrap_or_default();
        if to_kind == "postgres" && self.kind(from).as_deref() == Some("pgbouncer") {
            return;
        }
        // database.yml, read after the compose file, may set the pool.
        self.builder.assumed_at_unless_set(
            &format!("services.{from}.uses.{to}.pool"),
            file,
            bytes,
            format!("`{from}` connects to `{to}` ({why}); its pool size is not in these files, so one connection per concurrent slot"),
            format!("set services.{from}.uses.{to}.pool in an overlay if the app's settings cap it"),
        );
    }

    /// deploy.files for mounted configs whose format matches their service.
    fn deploy_files(&mut self) {
        let kinds: Vec<(&'static str, Vec<(String, String)>)> = self.files_by_kind.iter().map(|(k, v)| (*k, v.clone())).collect();
        for (kind, mut files) in kinds {
            files.dedup_by(|a, b| a.0 == b.0);
            let several = files.len() > 1;
            for (service, rel) in files {
                let key = match (kind, several) {
                    ("redis", _) if rel.contains("sentinel") => "sentinel".to_string(),
                    (k, false) => k.to_string(),
                    (k, true) => format!("{k}.{service}"),
                };
                let path = format!("deploy.files[{}]", serde_json::to_string(&key).unwrap_or_default());
                if self.builder.get(&path).is_none() {
                    self.builder.set(&path, json!(rel), self.file, 0..0);
                }
            }
        }
    }
}

fn file_kind_matches(service_kind: &str, file: detect::Kind) -> bool {
    matches!(
        (service_kind, file),
        ("nginx", detect::Kind::Nginx)
            | ("pgbouncer", detect::Kind::Pgbouncer)
            | ("postgres", detect::Kind::PostgresConf)
            | ("redis", detect::Kind::RedisConf | detect::Kind::SentinelConf)
    )
}

fn relative_to(file: &Path, dir: &Path) -> Option<String> {
    let dir = std::fs::canonicalize(dir).ok()?;
    file.strip_prefix(&dir).ok().map(|p| p.display().to_string())
}

fn collect_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.filter_map(Result::ok) {
        if out.len() >= 200 {
            return;
        }
        let Ok(t) = entry.file_type() else { continue };
        if t.is_file() {
            out.push(entry.path());
        } else if t.is_dir() && depth < 3 {
            collect_files(&entry.path(), depth + 1, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> ImportBuilder {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("/nonexistent/docker-compose.yml", text.to_string()));
        read(&mut b, id);
        b
    }

    fn line(b: &ImportBuilder, pointer: &str) -> usize {
        let o = b.origins.get(pointer).unwrap_or_else(|| panic!("no origin for {pointer}"));
        b.sources[o.file].line_col(o.bytes.start).line
    }

    fn notes(b: &ImportBuilder) -> Vec<String> {
        b.diagnostics.iter().map(|d| d.message.clone()).collect()
    }

    fn validates(b: &ImportBuilder) {
        let mut v = b.value.clone();
        let none = |_: &str, _: bool| None;
        if let Err(problems) = crate::load::validate_value(&mut v, &none) {
            panic!("{:#?}\n{}", problems.iter().map(|p| (&p.path, &p.message)).collect::<Vec<_>>(), serde_json::to_string_pretty(&b.value).unwrap());
        }
    }

    #[test]
    fn a_service_others_wait_to_complete_is_a_one_shot() {
        let b = read_text("services:\n  bootstrap:\n    build: .\n    command: python -m ledger.bootstrap --seed\n  web:\n    build: .\n    command: gunicorn -w 4 ledger.wsgi\n    depends_on:\n      bootstrap:\n        condition: service_completed_successfully\n");
        assert!(b.value["services"].get("bootstrap").is_none(), "{:#}", b.value);
        assert_eq!(b.value["services"]["web"]["workers"], 4);
        assert!(notes(&b).iter().any(|n| n.contains("compose service `bootstrap`: runs once and exits")), "{:?}", notes(&b));
    }

    #[test]
    fn an_application_image_runs_its_own_subcommands() {
        let b = read_text("services:\n  worker:\n    image: apache/airflow:3.1.3\n    command: celery worker\n  redis:\n    image: redis:7\n");
        assert!(b.value["services"].get("worker").is_none(), "{:#}", b.value);
        assert!(notes(&b).iter().any(|n| n.contains("runs Apache Airflow")), "{:?}", notes(&b));
    }

    #[test]
    fn images_imply_kinds() {
        assert_eq!(images::image_kind("redis:7-alpine"), Some("redis"));
        assert_eq!(images::image_kind("bitnami/redis-sentinel:7.2"), Some("sentinel"));
        assert_eq!(images::image_kind("edoburu/pgbouncer:latest"), Some("pgbouncer"));
        assert_eq!(images::image_kind("pgbouncer/pgbouncer"), Some("pgbouncer"));
        assert_eq!(images::image_kind("postgres:16"), Some("postgres"));
        assert_eq!(images::image_kind("pgvector/pgvector:pg16"), Some("postgres"));
        assert_eq!(images::image_kind("prometheuscommunity/postgres-exporter"), None);
        assert_eq!(images::image_kind("registry.example.com:5000/nginx:alpine"), Some("nginx"));
        assert_eq!(images::image_kind("qdrant/qdrant:latest"), None);
        assert_eq!(images::image_kind("zulip/zulip-postgresql:14"), Some("postgres"));
        assert_eq!(images::image_kind("example/app-valkey:8"), Some("redis"));
        assert_eq!(images::image_kind("oliver006/redis_exporter"), None);
    }

    const REPLICAS: &str = r#"services:
  web-1:
    build: ./backend
    container_name: arena-web-1
    command: gunicorn --bind 0.0.0.0:8000 --workers 8 --worker-class gthread --threads 4 --timeout 600 arena_backend.wsgi
    environment:
      - REDIS_HOST=redis
      - CONTAINER_NAME=web-1
    depends_on:
      - redis
      - pgbouncer
    deploy:
      resources:
        limits:
          cpus: '2.0'
          memory: 2048M
        reservations:
          cpus: '1.0'
          memory: 1024M
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:8000/health/"]
      interval: 30s
      timeout: 10s
      retries: 3
      start_period: 1m30s
  web-2:
    build: ./backend
    container_name: arena-web-2
    command: gunicorn --bind 0.0.0.0:8000 --workers 8 --worker-class gthread --threads 4 --timeout 600 arena_backend.wsgi
    environment:
      - REDIS_HOST=redis
      - CONTAINER_NAME=web-2
    depends_on:
      - redis
      - pgbouncer
    deploy:
      resources:
        limits:
          cpus: '2.0'
          memory: 2048M
        reservations:
          cpus: '1.0'
          memory: 1024M
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:8000/health/"]
      interval: 30s
      timeout: 10s
      retries: 3
      start_period: 1m30s
  redis:
    image: "redis:7-alpine"
    command: redis-server --maxmemory 8gb --maxclients 10000
    ulimits:
      nofile: { soft: 65535, hard: 65535 }
    sysctls:
      net.core.somaxconn: 4096
      vm.overcommit_memory: 1
  pgbouncer:
    image: edoburu/pgbouncer:latest
    ports:
      - "6432:6432"
  qdrant:
    image: qdrant/qdrant
"#;

    #[test]
    fn expanded_replicas_fold_into_one_service() {
        let b = read_text(REPLICAS);
        let web = &b.value["services"]["web"];
        assert_eq!(web["kind"], "gunicorn");
        assert_eq!(web["replicas"], 2);
        assert_eq!(web["workers"], 8);
        assert_eq!(web["threads"], 4);
        assert_eq!(web["timeout"], "600s");
        assert_eq!(web["build"], "./backend");
        assert_eq!(web["resources"], json!({"cpus": 2, "memory": "2GiB", "reserve_cpus": 1, "reserve_memory": "1GiB"}));
        assert_eq!(web["health"], json!({"path": "/health/", "interval": "30s", "timeout": "10s", "start_period": "90s", "retries": 3}));
        assert_eq!(web["uses"], json!({"redis": {}, "pgbouncer": {}}));
        assert_eq!(line(&b, "/services/web/workers"), 5);
        assert_eq!(line(&b, "/services/web/replicas"), 2);
        assert_eq!(line(&b, "/services/web/resources/memory"), 16);
        assert_eq!(line(&b, "/services/web/uses/redis"), 7);
        assert_eq!(line(&b, "/services/web/uses/pgbouncer"), 11);
        let redis = &b.value["services"]["redis"];
        assert_eq!(redis["kind"], "redis");
        assert_eq!(redis["nofile"], 65535);
        assert_eq!(redis["sysctls"], json!({"net.core.somaxconn": 4096}));
        assert_eq!(b.value["services"]["pgbouncer"]["port"], 6432);
        assert!(b.value["services"].get("qdrant").is_none());
        let n = notes(&b);
        assert!(n.iter().any(|m| m.contains("read as one service `web` with replicas: 2")), "{n:?}");
        assert!(n.iter().any(|m| m.contains("vm.overcommit_memory")), "{n:?}");
        assert!(n.iter().any(|m| m.contains("qdrant")), "{n:?}");
        assert!(n.iter().any(|m| m.starts_with("assumed: `web` connects to `pgbouncer`")), "{n:?}");
        assert_eq!(b.value["deploy"]["compose"], json!({"file": "docker-compose.yml", "replicas": "expand"}));
        validates(&b);
    }

    #[test]
    fn differing_numbered_services_stay_separate() {
        let text = REPLICAS.replacen("--workers 8", "--workers 4", 1);
        let b = read_text(&text);
        assert_eq!(b.value["services"]["web-1"]["workers"], 4);
        assert_eq!(b.value["services"]["web-2"]["workers"], 8);
        assert!(notes(&b).iter().any(|m| m.contains("differs from `web-1` in command")));
        validates(&b);
    }

    const VOICE: &str = r#"services:
  api:
    image: voiceassist/server
    command: gunicorn app.main:app -k uvicorn.workers.UvicornWorker --workers ${GUNICORN_WORKERS:-4}
    environment:
      DATABASE_URL: postgresql://voiceassist:${POSTGRES_PASSWORD}@pgbouncer:6432/voiceassist?prepared_statements=false
      REDIS_URL: redis://redis-master:6379/0
      DB_POOL_SIZE: 20
      DB_MAX_OVERFLOW: "10"
    deploy:
      replicas: 3
  postgres:
    image: postgres:16
    command:
      - "postgres"
      - "-c"
      - "max_connections=200" # raised
  pgbouncer:
    image: pgbouncer/pgbouncer:latest
    environment:
      DATABASES_HOST: postgres
      DATABASES_USER: voiceassist
      PGBOUNCER_POOL_MODE: transaction
      PGBOUNCER_MAX_CLIENT_CONN: ${MAX_CLIENT_CONN}
  redis-master:
    image: redis:7-alpine
    command: redis-server --port 6379
  redis-slave-1:
    image: redis:7-alpine
    command: redis-server --port 6379 --slaveof redis-master 6379
  redis-slave-2:
    image: redis:7-alpine
    command: redis-server --port 6379 --slaveof redis-master 6379
  redis-sentinel-1:
    image: redis:7-alpine
    command: redis-sentinel /etc/redis/sentinel.conf
    depends_on: [redis-master]
  redis-sentinel-2:
    image: redis:7-alpine
    command: redis-sentinel /etc/redis/sentinel.conf
    depends_on: [redis-master]
  redis-sentinel-3:
    image: redis:7-alpine
    command: redis-sentinel /etc/redis/sentinel.conf
    depends_on: [redis-master]
  postgres-replica:
    image: postgres:15
    command: ["postgres", "-c", "hot_standby=on"]
    depends_on: [postgres]
"#;

    #[test]
    fn topology_from_environment_sentinels_and_replicas() {
        let b = read_text(VOICE);
        let s = &b.value["services"];
        assert_eq!(s["api"]["replicas"], 3);
        assert_eq!(s["api"]["workers"], 4);
        assert_eq!(s["api"]["worker_class"], "uvicorn");
        assert_eq!(
            s["api"]["uses"],
            json!({"pgbouncer": {"prepared_statements": false, "pool": 20, "max_overflow": 10, "framework": "sqlalchemy"}, "redis-master": {}})
        );
        assert_eq!(line(&b, "/services/api/uses/pgbouncer/pool"), 8);
        assert_eq!(s["pgbouncer"]["uses"], json!({"postgres": {}}));
        assert_eq!(s["pgbouncer"]["users"], json!(["voiceassist"]));
        assert_eq!(s["postgres"]["max_connections"], 200);
        assert_eq!(line(&b, "/services/postgres/max_connections"), 17);
        assert_eq!(s["postgres"]["read_replicas"], 1);
        assert_eq!(s["redis-master"]["mode"], "sentinel");
        assert_eq!(s["redis-master"]["sentinels"], 3);
        assert_eq!(s["redis-master"]["replicas"], 3);
        for gone in ["redis-slave-1", "redis-slave", "redis-sentinel-1", "redis-sentinel", "postgres-replica"] {
            assert!(s.get(gone).is_none(), "{gone}");
        }
        let n = notes(&b);
        assert!(n.iter().any(|m| m.contains("PGBOUNCER_MAX_CLIENT_CONN") && m.contains("${MAX_CLIENT_CONN}")), "{n:?}");
        assert!(n.iter().any(|m| m.starts_with("assumed") && m.contains("GUNICORN_WORKERS")), "{n:?}");
        validates(&b);
    }

    #[test]
    fn versions_from_image_tags() {
        assert_eq!(images::image_version("postgres", "postgres:15"), Some(json!(15)));
        assert_eq!(images::image_version("postgres", "pgvector/pgvector:pg16"), None);
        assert_eq!(images::image_version("postgres", "postgres:16.2-alpine"), Some(json!(16)));
        assert_eq!(images::image_version("pgbouncer", "edoburu/pgbouncer:1.22.1"), Some(json!("1.22")));
        assert_eq!(images::image_version("pgbouncer", "pgbouncer/pgbouncer:latest"), None);
        assert_eq!(images::image_version("postgres", "localhost:5000/postgres"), None);
        assert_eq!(images::image_version("redis", "redis:7-alpine"), None);
    }

    #[test]
    fn bad_input_is_located_never_a_panic() {
        let b = read_text("services:\n  web:\n    command: \"gunicorn --bind '0.0.0.0\n");
        assert!(b.diagnostics.iter().any(|d| d.rule == crate::import::UNPARSABLE));
        let b = read_text("services:\n  web:\n    command: gunicorn --bind '0.0.0.0:80\n");
        let d = b.diagnostics.iter().find(|d| d.rule == crate::import::UNPARSABLE).unwrap();
        assert_eq!(d.span.as_ref().unwrap().line, 3);
        assert!(d.message.contains("unterminated"));
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\nservices: {web: {image: nginx}}\n";
        let b = read_text(bomb);
        assert!(b.diagnostics.iter().any(|d| d.rule == crate::import::UNPARSABLE));
        for odd in ["", "services: 3", "services:\n  web: 3\n", "\u{1}\u{2}\u{3}", "[1, 2", "services:\n  w:\n    command: {a: 1}\n    deploy: {replicas: many}\n    healthcheck: {test: 3, retries: x}\n"] {
            let _ = read_text(odd);
        }
    }

    #[test]
    fn env_files_next_to_the_compose_file_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.env"), "# settings\nexport DB_POOL_SIZE=15\nSECRET_KEY=abc\n").unwrap();
        let compose = "services:\n  web:\n    image: app\n    command: gunicorn -w 2 app\n    env_file: ./app.env\n    depends_on: [db]\n  db:\n    image: postgres:16\n";
        let b = read_compose(dir.path(), compose);
        assert_eq!(b.value["services"]["web"]["uses"]["db"]["pool"], 15);
        let o = &b.origins["/services/web/uses/db/pool"];
        assert!(b.sources[o.file].path.ends_with("app.env"));
        assert_eq!(b.sources[o.file].line_col(o.bytes.start).line, 2);
        assert_eq!(b.sources.len(), 2);
        assert!(!serde_json::to_string(&b.value).unwrap().contains("abc"));
        validates(&b);
    }

    #[test]
    fn a_service_built_to_a_target_stage_runs_that_stages_command() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM python:3.12 AS base\nCMD [\"gunicorn\", \"-w\", \"6\", \"app:app\"]\n\nFROM base AS web\nENV WEB=1\n\nFROM base AS dev\nCMD [\"flask\", \"run\"]\n").unwrap();
        let compose = "services:\n  web:\n    build: { context: ., target: web }\n";
        let b = read_compose(dir.path(), compose);
        // The `web` stage inherits the CMD of `base`, not the final (`dev`) stage's.
        assert_eq!(b.value["services"]["web"]["kind"], "gunicorn", "{:#}", b.value);
        assert_eq!(b.value["services"]["web"]["workers"], 6);
    }

    /// Reads `compose` as the docker-compose.yml of `dir`.
    fn read_compose(dir: &Path, compose: &str) -> ImportBuilder {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new(dir.join("docker-compose.yml"), compose.to_string()));
        read(&mut b, id);
        b
    }

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import").join(rel)
    }

    /// The file name and line a value was read from.
    fn line_in(b: &ImportBuilder, pointer: &str) -> (String, usize) {
        let o = b.origins.get(pointer).unwrap_or_else(|| panic!("no origin for {pointer}"));
        let s = &b.sources[o.file];
        (s.path.file_name().unwrap().to_string_lossy().to_string(), s.line_col(o.bytes.start).line)
    }

    #[test]
    fn django_compose_fixture() {
        let b = crate::import::read_paths(&[fixture("django-compose/docker-compose.loadbalanced.yml")], "arena");
        let s = &b.value["services"];
        let file = "docker-compose.loadbalanced.yml";
        let web = &s["web"];
        assert_eq!(web["kind"], "gunicorn");
        assert_eq!(web["replicas"], 15);
        assert_eq!(line_in(&b, "/services/web/replicas"), (file.into(), 4));
        for (key, value) in [("workers", json!(8)), ("threads", json!(4)), ("worker_class", json!("gthread")), ("timeout", json!("600s")), ("keepalive", json!("5s")), ("max_requests", json!(1000)), ("max_requests_jitter", json!(100)), ("port", json!(8000)), ("app", json!("arena_backend.wsgi"))] {
            assert_eq!(web[key], value, "{key}");
            assert_eq!(line_in(&b, &format!("/services/web/{key}")), (file.into(), 7), "{key}");
        }
        assert_eq!(web["resources"], json!({"cpus": 2, "memory": "2GiB", "reserve_cpus": 1, "reserve_memory": "1GiB"}));
        assert_eq!(line_in(&b, "/services/web/resources/memory"), (file.into(), 30));
        assert_eq!(web["health"], json!({"path": "/health/", "interval": "30s", "timeout": "10s", "start_period": "40s", "retries": 3}));
        assert_eq!(line_in(&b, "/services/web/health/path"), (file.into(), 35));
        assert_eq!(web["uses"], json!({"redis": {}, "pgbouncer": {}}));
        assert_eq!(line_in(&b, "/services/web/uses/redis"), (file.into(), 17));
        assert_eq!(line_in(&b, "/services/web/uses/pgbouncer"), (file.into(), 22));
        assert_eq!(s["nginx"]["kind"], "nginx");
        assert_eq!(s["nginx"]["nofile"], 65535);
        assert_eq!(s["pgbouncer"]["kind"], "pgbouncer");
        assert_eq!(s["pgbouncer"]["resources"]["memory"], "512MiB");
        assert_eq!(line_in(&b, "/services/pgbouncer/resources/memory"), (file.into(), 619));
        assert_eq!(s["redis"]["kind"], "redis");
        assert_eq!(s["redis"]["resources"]["memory"], "8GiB");
        for name in ["web-1", "web-15", "arena-web-1"] {
            assert!(s.get(name).is_none(), "{name}");
        }
        // The configs it mounts belong to nginx and pgbouncer.
        let dir = fixture("django-compose");
        for (path, owner) in [("nginx/load-balancer.conf", "nginx"), ("pgbouncer/pgbouncer.ini", "pgbouncer")] {
            if let Ok(canonical) = std::fs::canonicalize(dir.join(path)) {
                assert_eq!(b.owners.get(&canonical).map(String::as_str), Some(owner), "{path}");
            }
        }
        let notes = notes(&b);
        assert!(notes.iter().any(|n| n.contains("web-1 … web-15: 15 services")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("./config.env")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("DB_HOST") && n.contains("run time")), "{notes:?}");
    }

    #[test]
    fn voiceassist_fixture() {
        let b = crate::import::read_paths(&[fixture("voiceassist/docker-compose.yml")], "voiceassist");
        let s = &b.value["services"];
        let file = "docker-compose.yml";
        let api = &s["voiceassist-server"];
        assert_eq!(api["kind"], "gunicorn");
        assert_eq!(api["worker_class"], "uvicorn");
        assert_eq!(api["workers"], 4);
        assert_eq!(api["replicas"], 3);
        assert_eq!(line_in(&b, "/services/voiceassist-server/replicas"), (file.into(), 29));
        assert_eq!(api["resources"], json!({"cpus": 2, "memory": "2GiB", "reserve_cpus": 1, "reserve_memory": "1GiB"}));
        assert_eq!(api["health"]["path"], "/health");
        assert_eq!(api["uses"]["pgbouncer"], json!({"pool": 20, "max_overflow": 10, "framework": "sqlalchemy"}));
        assert_eq!(line_in(&b, "/services/voiceassist-server/uses/pgbouncer"), (file.into(), 17));
        assert_eq!(line_in(&b, "/services/voiceassist-server/uses/pgbouncer/pool"), (file.into(), 20));
        assert_eq!(api["uses"]["redis-master"], json!({}));
        let pg = &s["postgres"];
        assert_eq!(pg["kind"], "postgres");
        assert_eq!(pg["max_connections"], 200);
        assert_eq!(line_in(&b, "/services/postgres/max_connections"), (file.into(), 62));
        assert_eq!(pg["databases"], json!(["voiceassist"]));
        assert_eq!(pg["read_replicas"], 1);
        assert_eq!(pg["resources"]["memory"], "8GiB");
        let pgb = &s["pgbouncer"];
        assert_eq!(pgb["uses"], json!({"postgres": {}}));
        assert_eq!(line_in(&b, "/services/pgbouncer/uses/postgres"), (file.into(), 104));
        assert_eq!(pgb["users"], json!(["voiceassist"]));
        let redis = &s["redis-master"];
        assert_eq!((redis["kind"].clone(), redis["mode"].clone(), redis["sentinels"].clone(), redis["replicas"].clone()), (json!("redis"), json!("sentinel"), json!(3), json!(3)));
        assert_eq!(line_in(&b, "/services/redis-master/sentinels"), (file.into(), 142));
        for gone in ["redis-slave-1", "redis-sentinel-1", "postgres-replica", "qdrant"] {
            assert!(s.get(gone).is_none(), "{gone}");
        }
        let conf = std::fs::canonicalize(fixture("voiceassist/redis-sentinel.conf")).unwrap();
        assert_eq!(b.owners.get(&conf).map(String::as_str), Some("redis-master"));
        validates(&b);
    }

    #[test]
    fn binary_compose_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker-compose.yml");
        std::fs::write(&path, [0xff, 0xfe, 0x00, 0x01, b's', b':', 0x80]).unwrap();
        let b = crate::import::read_paths(&[path], "t");
        assert!(b.diagnostics.iter().any(|d| d.rule == crate::import::UNPARSABLE && d.message.contains("not a text file")));
    }

    #[test]
    fn mounted_config_files_are_owned_by_their_service() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("nginx")).unwrap();
        std::fs::write(dir.path().join("nginx/load-balancer.conf"), "upstream app { server web:8000; }\n").unwrap();
        let compose = "services:\n  lb:\n    image: nginx:alpine\n    volumes:\n      - ./nginx/load-balancer.conf:/etc/nginx/conf.d/default.conf:ro\n      - logs:/var/log\n";
        let b = read_compose(dir.path(), compose);
        let canonical = std::fs::canonicalize(dir.path().join("nginx/load-balancer.conf")).unwrap();
        assert_eq!(b.owners.get(&canonical).map(String::as_str), Some("lb"));
        assert_eq!(b.value["deploy"]["files"]["nginx"], "nginx/load-balancer.conf");
        assert_eq!(b.service_named_by_host("lb"), Some("lb".into()));
        validates(&b);
    }

    /// A compose file in the style of large self-hosted projects: one anchor of shared
    /// settings aliased by every service, over a hundred aliases in all.
    fn anchored_compose(services: usize) -> String {
        let mut text = String::from("x-restart: &restart\n  restart: unless-stopped\nx-logging: &logging\n  logging:\n    driver: json-file\n    options: { max-size: 10m }\nx-env: &env\n  TZ: UTC\n  LOG_LEVEL: info\nservices:\n");
        for i in 0..services {
            text.push_str(&format!("  worker-{i}:\n    <<: [*restart, *logging]\n    image: \"${{REGISTRY:-ghcr.io/acme}}/worker:${{TAG:-latest}}\"\n    command: celery -A app worker -c 2 -Q q{i}\n    environment:\n      <<: *env\n      QUEUE: q{i}\n"));
        }
        text
    }

    #[test]
    fn many_anchors_load_and_alias_bombs_still_stop() {
        let b = read_text(&anchored_compose(60));
        assert!(!b.diagnostics.iter().any(|d| d.rule == crate::import::UNPARSABLE), "{:?}", notes(&b));
        assert_eq!(b.value["services"]["worker-0"]["kind"], "celery");
        assert_eq!(b.value["services"]["worker-59"]["concurrency"], 2);
        // The image's defaults are used, and said so.
        assert_eq!(b.value["services"]["worker-0"]["image"], "ghcr.io/acme/worker:latest");
        assert!(notes(&b).iter().any(|n| n.starts_with("assumed: image of `worker-0`") && n.contains("$REGISTRY")), "{:?}", notes(&b));
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nservices: {web: {image: nginx, x: *e}}\n";
        let b = read_text(bomb);
        let d = b.diagnostics.iter().find(|d| d.rule == crate::import::UNPARSABLE).expect("the bomb is refused");
        assert!(d.fix.as_deref().is_some_and(|f| f.contains("alias bomb")), "{d:?}");
    }

    #[test]
    fn the_project_env_file_fills_substitutions_and_the_environment_reaches_config_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::write(dir.path().join(".env"), "GUNICORN_WORKERS=6\nIMAGE_TAG=2.1\nPUMA_THREADS=9\n").unwrap();
        std::fs::write(dir.path().join("config/puma.rb"), "threads_count = ENV.fetch(\"RAILS_MAX_THREADS\") { 5 }\nthreads threads_count, threads_count\n").unwrap();
        let compose = "services:\n  api:\n    image: acme/api:${IMAGE_TAG}\n    command: gunicorn --workers ${GUNICORN_WORKERS:-2} --bind :8000 app:app\n  rails:\n    image: acme/rails:${IMAGE_TAG}\n    command: bundle exec puma -C config/puma.rb\n    environment:\n      RAILS_MAX_THREADS: ${PUMA_THREADS}\n    volumes:\n      - ./config/puma.rb:/app/config/puma.rb\n  unknown:\n    image: ${REGISTRY}/thing\n    command: gunicorn app:app\n";
        let path = dir.path().join("docker-compose.yml");
        std::fs::write(&path, compose).unwrap();
        let b = crate::import::read_paths(&[dir.path().to_path_buf()], "t");
        let s = &b.value["services"];
        assert_eq!(s["api"]["workers"], 6, "{:#?}", notes(&b));
        assert_eq!(s["api"]["image"], "acme/api:2.1");
        // compose `environment:` (its value from .env) reaches puma.rb's ENV.fetch.
        assert_eq!(s["rails"]["threads"], 9, "{:#?}", notes(&b));
        assert!(s["unknown"].get("image").is_none());
        assert!(notes(&b).iter().any(|n| n.contains("depends on $REGISTRY")), "{:#?}", notes(&b));
        let files: Vec<(String, Option<String>)> = b.files().into_iter().map(|f| (f.path.rsplit('/').next().unwrap().to_string(), f.format)).collect();
        assert!(files.contains(&(".env".into(), Some("env file".into()))), "{files:?}");
        assert!(files.contains(&("docker-compose.yml".into(), Some("docker-compose".into()))), "{files:?}");
        assert!(files.contains(&("puma.rb".into(), Some("puma.rb".into()))), "{files:?}");
        validates(&b);
    }
}
