//! Reader for Kamal deploy.yml: roles and their hosts (services on machine groups),
//! commands, container options, env, kamal-proxy, accessories (postgres, pgbouncer,
//! redis) and their `files:`, and `deploy.kamal` (service, image, registry secret
//! names). Kamal 1's `traefik:` is noted, never carried over.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde_json::{Value, json};

use super::dockerfile;
use crate::import::interpret::{self, Process, images};
use crate::import::shared::argv::{self, Word};
use crate::import::shared::env::{EnvVar, Variables};
use crate::import::shared::erb;
use crate::import::shared::names::service_name;
use crate::import::shared::units;
use crate::import::shared::yaml::{key_span, kv_span, scalar, value_span};
use crate::import::{FileId, ImportBuilder};
use crate::load::yaml::{self, SpanMap, escape_segment};
use crate::source::SourceFile;

/// Top-level keys that do not change capacity.
const OTHER_KEYS: [&str; 20] = [
    "ssh", "volumes", "asset_path", "aliases", "boot", "logging", "retain_containers", "minimum_version", "deploy_timeout",
    "readiness_delay", "drain_timeout", "require_destination", "run_directory", "hooks_path", "secrets_path", "sshkit",
    "error_pages_path", "labels", "allow_empty_roles", "primary_role",
];

struct Kamal<'a> {
    builder: &'a mut ImportBuilder,
    file: FileId,
    spans: &'a SpanMap,
    root: &'a Value,
    /// The project root (`config/deploy.yml` -> the folder holding `config/`).
    project: std::path::PathBuf,
    /// Machine groups by their sorted addresses.
    machines: BTreeMap<Vec<String>, String>,
    /// Role / accessory name -> spec service.
    names: BTreeMap<String, String>,
    /// Kamal 1 Traefik labels of roles, read after `proxy:` (which wins).
    labels: Vec<(String, serde_json::Map<String, Value>, String)>,
}

/// Reads a Kamal deploy.yml: roles and hosts, env, accessories.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let Some(source) = builder.sources.get(file).cloned() else { return };
    // Kamal runs deploy.yml through ERB first.
    let none = |_: &str| None;
    let facts = builder.facts.clone();
    let (text, tags) = erb::strip_erb(&source.text, &crate::import::shared::ruby::Context { env: &none, facts: &facts });
    for tag in tags.iter().filter(|t| t.output) {
        builder.ignored(file, tag.bytes.clone(), format!("ERB `{}` in deploy.yml: its value is not known here", tag.code.escape_debug()));
    }
    let stripped = SourceFile::new(source.path.clone(), text);
    let (mut root, mut spans) = match yaml::parse_foreign(&stripped) {
        Ok(p) => p,
        Err(e) => {
            builder.unparsable(file, e.span, format!("deploy.yml: {}", e.message), e.hint.unwrap_or_else(|| "fix the YAML syntax".into()));
            return;
        }
    };
    builder.kamal_destinations = destinations_beside(&source.path);
    if let Some(destination) = builder.facts.destination.clone() {
        let offset = source.text.len().max(stripped.text.len()) + 1;
        merge_destination(builder, file, &source.path, &destination, offset, &mut root, &mut spans);
    }
    if !root.is_object() {
        builder.unparsable(file, 0..0, "deploy.yml is not a mapping", "Kamal's deploy.yml starts with `service:`, `image:` and `servers:`");
        return;
    }
    let dir = source.path.parent().map(Path::to_path_buf).unwrap_or_default();
    let project = if dir.file_name().is_some_and(|n| n == "config") { dir.parent().map(Path::to_path_buf).unwrap_or_default() } else { dir };
    let mut k = Kamal { builder, file, spans: &spans, root: &root, project, machines: BTreeMap::new(), names: BTreeMap::new(), labels: Vec::new() };
    k.top_level();
    k.deploy();
    let primary = k.roles();
    k.proxy(primary.as_deref());
    k.traefik(primary.as_deref());
    if let Some(service) = &primary {
        super::rails_routes::read_for_kamal(k.builder, &k.project, service);
    }
    for (name, labels, pointer) in std::mem::take(&mut k.labels) {
        k.traefik_labels(&name, &labels, &pointer);
    }
    k.accessories();
    k.edges();
}

/// Destination files beside a Kamal config (`deploy.production.yml` beside
/// `deploy.yml`): their names, sorted.
pub fn destinations_beside(config: &Path) -> Vec<String> {
    let (Some(dir), Some(stem)) = (config.parent(), config.file_stem().and_then(|s| s.to_str())) else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter_map(|name| destination_of(stem, &name))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `production` for `deploy.production.yml` of the config stem `deploy`.
pub fn destination_of(stem: &str, file_name: &str) -> Option<String> {
    let rest = file_name.strip_prefix(stem)?.strip_prefix('.')?;
    let name = rest.strip_suffix(".yml").or_else(|| rest.strip_suffix(".yaml"))?;
    (!name.is_empty() && !name.contains('.')).then(|| name.to_string())
}

/// Kamal's merge of a destination file over the config: mappings merge key by key,
/// anything else (a list of hosts) is replaced.
fn deep_merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) if existing.is_object() && value.is_object() => deep_merge(existing, value),
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// Reads `<stem>.<destination>.yml` beside the config and merges it over `root`, its
/// spans placed from `offset` on (redirected to its own file), as `kamal deploy -d`
/// does.
fn merge_destination(builder: &mut ImportBuilder, file: FileId, config: &Path, destination: &str, offset: usize, root: &mut Value, spans: &mut SpanMap) {
    let stem = config.file_stem().and_then(|s| s.to_str()).unwrap_or("deploy");
    let dir = config.parent().map(Path::to_path_buf).unwrap_or_default();
    let candidates = [dir.join(format!("{stem}.{destination}.yml")), dir.join(format!("{stem}.{destination}.yaml"))];
    let Some(path) = candidates.iter().find(|p| p.is_file()) else {
        builder.ignored(file, 0..0, format!("Kamal destination `{destination}`: no {} beside it; deploy.yml read alone", candidates[0].display()));
        return;
    };
    let Ok(text) = std::fs::read_to_string(path) else {
        builder.ignored(file, 0..0, format!("Kamal destination file {} cannot be read", path.display()));
        return;
    };
    let id = builder.add_source(SourceFile::new(path, text.clone()));
    builder.read_as(id, "Kamal destination");
    let none = |_: &str| None;
    let facts = builder.facts.clone();
    let (stripped, tags) = erb::strip_erb(&text, &crate::import::shared::ruby::Context { env: &none, facts: &facts });
    for tag in tags.iter().filter(|t| t.output) {
        builder.ignored(id, tag.bytes.clone(), format!("ERB `{}` in the destination file: its value is not known here", tag.code.escape_debug()));
    }
    match yaml::parse_foreign(&SourceFile::new(path, stripped)) {
        Ok((over, mut over_spans)) => {
            if !over.is_object() {
                // Nothing but ERB (`<%= ERB.new(File.read(...)).result %>` including a
                // shared file): what it writes is only known when Kamal runs it.
                if over.is_null() || over.as_str().is_some_and(|t| t.chars().all(|c| c == '_' || c.is_whitespace())) {
                    builder.ignored(id, 0..0, format!("Kamal destination `{destination}` is written by ERB when Kamal runs; its keys are not known here, deploy.yml read alone"));
                    return;
                }
                builder.unparsable(id, 0..0, "a Kamal destination file is not a mapping", "write the keys that differ from deploy.yml (servers:, env:, proxy:)");
                return;
            }
            over_spans.shift(offset);
            deep_merge(root, over);
            spans.overlay(over_spans);
            builder.redirects.push((file, offset, id));
        }
        Err(e) => builder.unparsable(id, e.span, format!("Kamal destination file: {}", e.message), e.hint.unwrap_or_else(|| "fix the YAML syntax".into())),
    }
}

/// A Kamal destination file found on its own: read with its deploy.yml when that
/// destination is linted, else listed as a deployment of its own.
pub fn read_destination(builder: &mut ImportBuilder, file: FileId) {
    let path = builder.sources[file].path.clone();
    let already = builder.sources.iter().enumerate().any(|(id, s)| id != file && s.path == path);
    if already {
        return;
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let destination = destination_of("deploy", name).unwrap_or_else(|| name.to_string());
    builder.skip(path, format!("Kamal destination `{destination}`: linted on its own, merged over deploy.yml (`headroom lint --destination {destination}`)"));
}

impl Kamal<'_> {
    fn span(&self, pointer: &str) -> Range<usize> {
        kv_span(self.spans, pointer)
    }

    fn set(&mut self, path: &str, value: Value, bytes: Range<usize>) {
        self.builder.set(path, value, self.file, bytes);
    }

    fn top_level(&mut self) {
        let Some(map) = self.root.as_object() else { return };
        for key in map.keys() {
            let bytes = key_span(self.spans, &format!("/{}", escape_segment(key)));
            match key.as_str() {
                "service" | "image" | "servers" | "registry" | "env" | "proxy" | "accessories" | "builder" | "traefik" | "healthcheck" => {}
                k if OTHER_KEYS.contains(&k) => {
                    if k != "primary_role" {
                        self.builder.ignored(self.file, bytes, format!("Kamal `{k}` does not change capacity"));
                    }
                }
                k if k.starts_with("x-") => {}
                k => self.builder.ignored(self.file, bytes, format!("Kamal key `{k}` is not modelled")),
            }
        }
    }

    fn deploy(&mut self) {
        let root = self.root;
        let Some(image) = root.get("image").and_then(Value::as_str) else {
            self.builder.ignored(self.file, 0..0, "deploy.yml has no `image:`; deploy.kamal is not set");
            return;
        };
        self.set("deploy.kamal.image", json!(image), self.span("/image"));
        if let Some(service) = root.get("service").and_then(Value::as_str) {
            self.set("deploy.kamal.service", json!(service), self.span("/service"));
        }
        if let Some(arch) = root.pointer("/builder/arch") {
            let a = match arch {
                Value::Array(items) => items.first().and_then(Value::as_str),
                v => v.as_str(),
            };
            if let Some(a) = a {
                self.set("deploy.kamal.arch", json!(a), self.span("/builder/arch"));
            }
        }
        if let Some(registry) = root.get("registry").and_then(Value::as_object) {
            let mut names = Vec::new();
            for (key, default) in [("username", "KAMAL_REGISTRY_USERNAME"), ("password", "KAMAL_REGISTRY_PASSWORD")] {
                let pointer = format!("/registry/{key}");
                let bytes = self.span(&pointer);
                let name = match registry.get(key) {
                    Some(Value::Array(items)) => items.first().and_then(Value::as_str).map(str::to_string),
                    Some(Value::String(s)) if s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') && !s.is_empty() => {
                        self.builder.assumed_at(self.file, bytes.clone(), format!("registry {key} `{s}` read as the name of a secret"), "Kamal 2 names secrets in a list: `- NAME`");
                        Some(s.clone())
                    }
                    Some(_) => {
                        let msg = if key == "password" {
                            format!("registry password is written in clear in deploy.yml; headroom keeps only a secret name, assumed {default}")
                        } else {
                            format!("registry {key} is a literal; headroom keeps only a secret name, assumed {default}")
                        };
                        self.builder.assumed_at(self.file, bytes.clone(), msg, format!("write `{key}: [- {default}]` and keep the value in .kamal/secrets"));
                        Some(default.to_string())
                    }
                    None => None,
                };
                names.push(name.map(|n| (n, bytes)));
            }
            match (names[0].clone(), names[1].clone()) {
                (Some((u, ub)), Some((p, pb))) => {
                    self.set("deploy.kamal.registry.username", json!(u), ub);
                    self.set("deploy.kamal.registry.password", json!(p), pb);
                    if let Some(server) = registry.get("server").and_then(Value::as_str) {
                        self.set("deploy.kamal.registry.server", json!(server), self.span("/registry/server"));
                    }
                }
                _ => self.builder.ignored(self.file, self.span("/registry"), "registry without username and password names"),
            }
        }
    }

    /// The hosts of a role (`- 1.2.3.4` or `- 1.2.3.4: [tag]`).
    fn hosts(value: &Value) -> Vec<String> {
        let list = match value {
            Value::Array(items) => items.clone(),
            Value::Object(m) => match m.get("hosts") {
                Some(Value::Array(items)) => items.clone(),
                _ => Vec::new(),
            },
            Value::String(s) => vec![Value::String(s.clone())],
            _ => Vec::new(),
        };
        list.iter()
            .filter_map(|h| match h {
                Value::String(s) => Some(s.clone()),
                Value::Object(m) => m.keys().next().cloned(),
                _ => None,
            })
            .collect()
    }

    /// The tags of each host of a role (`- 1.2.3.4: [replica, monitoring]`, `- 1.2.3.4: replica`).
    fn host_tags(value: &Value) -> Vec<Vec<String>> {
        let list = match value {
            Value::Array(items) => items.clone(),
            Value::Object(m) => m.get("hosts").and_then(Value::as_array).cloned().unwrap_or_default(),
            _ => Vec::new(),
        };
        list.iter()
            .filter(|h| h.is_string() || h.is_object())
            .map(|h| match h.as_object().and_then(|m| m.values().next()) {
                Some(Value::Array(tags)) => tags.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                Some(Value::String(tag)) => vec![tag.clone()],
                _ => Vec::new(),
            })
            .collect()
    }

    /// The clear variables of `env.tags` a role's containers get: a tag on every host
    /// of the role applies to the whole service (over the role's own env, as Kamal
    /// merges it); a tag on some hosts only makes those containers differ, which one
    /// service cannot say, so it is noted.
    fn tag_vars(&mut self, role: &str, def: &Value, key: &Range<usize>) -> Vec<EnvVar> {
        let Some(tags) = self.root.pointer("/env/tags").and_then(Value::as_object) else { return Vec::new() };
        let per_host = Self::host_tags(def);
        let mut vars = Vec::new();
        for tag in tags.keys() {
            let on = per_host.iter().filter(|t| t.contains(tag)).count();
            if on == 0 {
                continue;
            }
            let tag_vars = self.clear_vars(&format!("/env/tags/{}", escape_segment(tag)));
            if on == per_host.len() {
                vars.extend(tag_vars);
            } else {
                // Only variables headroom reads make the containers differ in capacity.
                let read = |n: &str| interpret::app_env::is_managed(n) || crate::import::shared::env::host_variable(n, false).is_some() || ["THREADS", "CONCURRENCY", "WORKERS", "POOL"].iter().any(|w| n.contains(w));
                let names = tag_vars.iter().map(|v| v.name.as_str()).filter(|n| read(n)).collect::<Vec<_>>().join(", ");
                if names.is_empty() {
                    continue;
                }
                self.builder.ignored(self.file, key.clone(), format!("env tag `{tag}` applies to {on} of the {} hosts of role `{role}`: its variables ({names}) differ between the role's containers, which one service cannot say; read without them", per_host.len()));
            }
        }
        vars
    }

    /// The machine group of a host set: one group per distinct set of addresses.
    fn machine(&mut self, name: &str, hosts: &[String], bytes: Range<usize>) -> String {
        let mut key = hosts.to_vec();
        key.sort();
        if let Some(existing) = self.machines.get(&key) {
            return existing.clone();
        }
        let mut group = service_name(name);
        while self.machines.values().any(|g| *g == group) {
            group.push_str("-hosts");
        }
        self.set(&format!("machines.{group}.count"), json!(hosts.len().max(1)), bytes.clone());
        let addresses: Vec<&String> = hosts.iter().filter(|h| crate::load::safe_host(h)).collect();
        if addresses.len() == hosts.len() {
            self.set(&format!("machines.{group}.addresses"), json!(addresses), bytes);
        } else {
            self.builder.ignored(self.file, bytes, format!("hosts of `{name}` are not plain host names or addresses; only their count is kept"));
        }
        self.machines.insert(key, group.clone());
        group
    }

    /// Roles: returns the primary role's service.
    fn roles(&mut self) -> Option<String> {
        let root = self.root;
        let servers = root.get("servers")?;
        let roles: Vec<(String, Value, String)> = match servers {
            Value::Array(_) => vec![("web".to_string(), servers.clone(), "/servers".to_string())],
            Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v.clone(), format!("/servers/{}", escape_segment(k)))).collect(),
            _ => {
                self.builder.unparsable(self.file, self.span("/servers"), "`servers` is neither a list of hosts nor a mapping of roles", "see Kamal's servers docs");
                return None;
            }
        };
        let primary_role = root.get("primary_role").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| {
            if roles.iter().any(|(r, _, _)| r == "web") { "web".into() } else { roles.first().map(|r| r.0.clone()).unwrap_or_default() }
        });
        let mut primary = None;
        for (role, def, pointer) in roles {
            let name = service_name(&role);
            self.names.insert(role.clone(), name.clone());
            let key = key_span(self.spans, &pointer);
            self.builder.mark(&format!("services.{name}"), self.file, key.clone());
            let is_primary = role == primary_role;
            if is_primary {
                primary = Some(name.clone());
            }
            self.role(&role, &name, &def, &pointer, key, is_primary);
        }
        primary
    }

    fn role(&mut self, role: &str, name: &str, def: &Value, pointer: &str, key: Range<usize>, primary: bool) {
        let root = self.root;
        // The process: its command, the kind when the command does not say, and the
        // clear env (the role's values win over the top-level ones).
        let cmd = def.get("cmd").and_then(Value::as_str).map(str::to_string);
        let cmd_bytes = self.span(&format!("{pointer}/cmd"));
        let mut words = cmd.as_ref().map(|c| self.words(&format!("{pointer}/cmd"), c));
        // No cmd: the image's default command, from the Dockerfile Kamal builds.
        let mut command_file = None;
        if cmd.is_none()
            && let Some(default) = self.default_command()
        {
            command_file = Some(default.file);
            words = Some(default.words);
        }
        // `cmd: worker` handed to an entrypoint script that dispatches on it.
        if let Some((arg, _)) = words.as_ref().filter(|w| cmd.is_some() && interpret::classify(w).is_none()).and_then(|w| w.first()).cloned()
            && let Some(branch) = self.image_command(Some(&arg))
        {
            command_file = Some(branch.file);
            words = Some(branch.words);
        }
        let program = words.as_deref().and_then(interpret::classify).map(|(k, _)| k);
        let known = self.builder.kind_of_service(name);
        let (fallback, declared) = match (&cmd, program) {
            (Some(_), Some(_)) | (None, Some(_)) => (None, key.clone()),
            (Some(cmd), None) => {
                if known.is_none() {
                    self.builder.ignored(self.file, cmd_bytes.clone(), format!("role `{role}` runs `{}`, a program headroom does not model; read as a `worker`", cmd.escape_debug()));
                }
                (Some("worker"), cmd_bytes.clone())
            }
            (None, _) => {
                let rails = env_names(root.get("env")).iter().chain(env_names(def.get("env")).iter()).any(|n| n.starts_with("RAILS_"));
                let k = if primary { "puma" } else { "worker" };
                if known.as_deref().is_none_or(|existing| existing == k) {
                    let why = if !primary {
                        format!("role `{role}` has no cmd: it runs the image's default command; read as a `worker`")
                    } else if rails {
                        format!("role `{role}` runs the image's default command: Rails' puma (the env sets RAILS_* variables)")
                    } else {
                        format!("role `{role}` runs the image's default command: assumed Rails' puma, Kamal's default app server")
                    };
                    self.builder.assumed_at(self.file, key.clone(), why, "set `cmd:` on the role to say which server it runs");
                }
                (Some(k), key.clone())
            }
        };
        // The image's `ENV` first: Kamal's `env:` wins over it.
        let target = self.build_target();
        let mut env = self.dockerfile().map(|(_, d)| dockerfile::image_env(self.builder, &d, target.as_deref())).unwrap_or_default();
        env.extend(self.clear_vars("/env"));
        env.extend(self.clear_vars(&format!("{pointer}/env")));
        env.extend(self.tag_vars(role, def, &key));
        let variables = Variables::new(env.clone());
        let process = Process { service: name.to_string(), file: self.file, declared, command: words, kind: fallback, env, variables, command_file };
        interpret::process(self.builder, &process);
        let kind = self.builder.kind_of_service(name);
        if let Some(cmd) = &cmd
            && matches!(kind.as_deref(), Some("worker" | "sidekiq" | "celery" | "rq" | "solid_queue"))
        {
            self.set(&format!("services.{name}.command"), json!(cmd), cmd_bytes);
        }
        // Hosts -> replicas and a machine group.
        let hosts = Self::hosts(def);
        let hosts_pointer = if def.get("hosts").is_some() { format!("{pointer}/hosts") } else { pointer.to_string() };
        let hosts_bytes = key_span(self.spans, &hosts_pointer);
        if hosts.is_empty() {
            self.builder.ignored(self.file, key, format!("role `{role}` lists no hosts"));
        } else {
            let group = self.machine(role, &hosts, hosts_bytes.clone());
            self.set(&format!("services.{name}.machine"), json!(group), hosts_bytes.clone());
            self.set(&format!("services.{name}.replicas"), json!(hosts.len()), hosts_bytes);
        }
        // Options, env, labels, per-role proxy.
        if let Some(options) = def.get("options").and_then(Value::as_object) {
            self.options(name, options, &format!("{pointer}/options"));
        }
        self.env(name, root.get("env"), "/env");
        self.env(name, def.get("env"), &format!("{pointer}/env"));
        if let Some(labels) = def.get("labels").and_then(Value::as_object) {
            let traefik = labels.keys().any(|k| k.starts_with("traefik."));
            let bytes = key_span(self.spans, &format!("{pointer}/labels"));
            if traefik {
                self.builder.ignored(self.file, bytes, format!("role `{role}` has Traefik labels, a Kamal 1 construct: Kamal 2 routes through kamal-proxy (`proxy:`)"));
                self.labels.push((name.to_string(), labels.clone(), format!("{pointer}/labels")));
            } else {
                self.builder.ignored(self.file, bytes, format!("labels of role `{role}`"));
            }
        }
        if let Some(proxy) = def.get("proxy").filter(|p| p.is_object()) {
            self.health_from_proxy(name, proxy, &format!("{pointer}/proxy"));
        }
        if let Some(m) = def.as_object() {
            for k in m.keys() {
                if !matches!(k.as_str(), "hosts" | "cmd" | "options" | "env" | "labels" | "proxy" | "tags" | "logging") {
                    self.builder.ignored(self.file, key_span(self.spans, &format!("{pointer}/{}", escape_segment(k))), format!("role key `{k}`"));
                }
            }
        }
    }

    /// The command of the image Kamal builds (`builder.dockerfile` in
    /// `builder.context`, by default the project's Dockerfile).
    fn default_command(&mut self) -> Option<dockerfile::DefaultCommand> {
        self.image_command(None)
    }

    /// The image's default command, or (with `arg`) the branch its entrypoint script
    /// runs for that argument.
    fn image_command(&mut self, arg: Option<&str>) -> Option<dockerfile::DefaultCommand> {
        let (context, file) = self.dockerfile()?;
        match arg {
            Some(arg) => dockerfile::dispatched_command(self.builder, &context, &file, self.build_target().as_deref(), arg),
            None => dockerfile::default_command(self.builder, &context, &file, self.build_target().as_deref()),
        }
    }

    /// The Dockerfile stage Kamal builds (`builder.target`), or the final one.
    fn build_target(&self) -> Option<String> {
        self.root.pointer("/builder/target").and_then(Value::as_str).map(str::to_string)
    }

    /// The build context and Dockerfile of the image Kamal builds.
    fn dockerfile(&self) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
        let context = self.project.join(self.root.pointer("/builder/context").and_then(Value::as_str).unwrap_or("."));
        let file = self.root.pointer("/builder/dockerfile").and_then(Value::as_str).unwrap_or("Dockerfile");
        if file.contains("..") || file.starts_with('/') {
            return None;
        }
        let dockerfile = context.join(file);
        Some((context, dockerfile))
    }

    fn words(&mut self, pointer: &str, cmd: &str) -> Vec<Word> {
        let text = self.builder.sources[self.file].text.clone();
        let (words, error) = argv::words_in(&text, &value_span(self.spans, pointer), cmd);
        if let Some(e) = error {
            self.builder.unparsable(self.file, e.bytes, format!("cmd: {}", e.message), "close the quote; the command is read up to it");
        }
        words
    }

    /// docker-run options: memory, cpus, ulimit nofile, sysctl.
    fn options(&mut self, name: &str, options: &serde_json::Map<String, Value>, pointer: &str) {
        for (key, value) in options {
            let p = format!("{pointer}/{}", escape_segment(key));
            let bytes = self.span(&p);
            let Some(text) = scalar(value) else {
                self.builder.ignored(self.file, bytes, format!("docker option `{key}`"));
                continue;
            };
            let (path, v) = match key.as_str() {
                "memory" | "m" => ("resources.memory", units::docker_size(&text).map(Value::from)),
                "memory-reservation" => ("resources.reserve_memory", units::docker_size(&text).map(Value::from)),
                "cpus" => ("resources.cpus", units::cpus(&text)),
                "ulimit" => {
                    let soft = text.strip_prefix("nofile=").and_then(|v| v.split(':').next()).and_then(|n| n.parse::<u64>().ok());
                    ("nofile", soft.map(Value::from))
                }
                "sysctl" => {
                    match text.split_once('=') {
                        Some((k, v)) if k.trim().starts_with("net.") => {
                            let v = v.trim().parse::<u64>().map(Value::from).unwrap_or(Value::from(v.trim()));
                            self.set(&format!("services.{name}.sysctls[{}]", serde_json::to_string(k.trim()).unwrap_or_default()), v, bytes);
                        }
                        _ => self.builder.ignored(self.file, bytes, "docker sysctl option is not a namespaced `net.*=value`"),
                    }
                    continue;
                }
                other => {
                    self.builder.ignored(self.file, bytes, format!("docker option `{other}`"));
                    continue;
                }
            };
            match v {
                Some(v) => self.set(&format!("services.{name}.{path}"), v, bytes),
                None => self.builder.ignored(self.file, bytes, format!("docker option `{key}`: `{}` is not understood", text.escape_debug())),
            }
        }
    }

    /// `env:` (clear/secret, or a plain mapping = clear): clear values go to the
    /// service's env; secret values never are read.
    fn env(&mut self, name: &str, env: Option<&Value>, pointer: &str) {
        let Some(env) = env.and_then(Value::as_object) else { return };
        let (clear, clear_pointer) = if env.contains_key("clear") || env.contains_key("secret") || env.contains_key("tags") {
            (env.get("clear").and_then(Value::as_object).cloned().unwrap_or_default(), format!("{pointer}/clear"))
        } else {
            (env.clone(), pointer.to_string())
        };
        for (k, v) in &clear {
            let Some(value) = scalar(v) else { continue };
            let p = format!("{clear_pointer}/{}", escape_segment(k));
            let bytes = self.span(&p);
            // A role's own concurrency and pool variables (what `render` writes there
            // from the plan) are read as settings, not kept as plain env.
            let managed = pointer != "/env" && interpret::app_env::is_managed(k);
            if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !k.is_empty() && !managed {
                self.set(&format!("services.{name}.env.clear.{k}"), json!(value), bytes);
            }
        }
    }

    fn health_from_proxy(&mut self, name: &str, proxy: &Value, pointer: &str) {
        if let Some(path) = proxy.pointer("/healthcheck/path").and_then(Value::as_str) {
            self.set(&format!("services.{name}.health.path"), json!(path), self.span(&format!("{pointer}/healthcheck/path")));
        }
        for key in ["interval", "timeout"] {
            if let Some(v) = proxy.pointer(&format!("/healthcheck/{key}")).and_then(scalar) {
                let p = format!("{pointer}/healthcheck/{key}");
                match units::go_duration(&v) {
                    Some(d) => self.set(&format!("services.{name}.health.{key}"), json!(d), self.span(&p)),
                    None => self.builder.ignored(self.file, self.span(&p), format!("proxy healthcheck {key} is not a duration")),
                }
            }
        }
        if let Some(port) = proxy.get("app_port").and_then(scalar).and_then(|p| p.parse::<u16>().ok()).filter(|p| *p > 0) {
            self.set(&format!("services.{name}.port"), json!(port), self.span(&format!("{pointer}/app_port")));
        }
    }

    fn proxy(&mut self, primary: Option<&str>) {
        let root = self.root;
        let Some(proxy) = root.get("proxy").and_then(Value::as_object) else { return };
        let has_image = root.get("image").is_some();
        if has_image {
            let host = proxy.get("host").and_then(Value::as_str).map(|h| (h.to_string(), "/proxy/host")).or_else(|| {
                proxy.get("hosts").and_then(Value::as_array).and_then(|h| h.first()).and_then(Value::as_str).map(|h| (h.to_string(), "/proxy/hosts"))
            });
            if let Some((h, p)) = host {
                self.set("deploy.kamal.proxy.host", json!(h), self.span(p));
                if p == "/proxy/hosts" && proxy.get("hosts").and_then(Value::as_array).is_some_and(|a| a.len() > 1) {
                    self.builder.ignored(self.file, self.span(p), "proxy hosts after the first");
                }
            }
            if let Some(ssl) = proxy.get("ssl").and_then(Value::as_bool) {
                self.set("deploy.kamal.proxy.ssl", json!(ssl), self.span("/proxy/ssl"));
            }
            if let Some(t) = proxy.get("response_timeout").and_then(scalar) {
                match units::go_duration(&t) {
                    Some(d) => self.set("deploy.kamal.proxy.response_timeout", json!(d), self.span("/proxy/response_timeout")),
                    None => self.builder.ignored(self.file, self.span("/proxy/response_timeout"), "proxy response_timeout is not a duration"),
                }
            }
        }
        if let Some(service) = primary {
            let service = service.to_string();
            self.health_from_proxy(&service, &Value::Object(proxy.clone()), "/proxy");
        }
        for key in proxy.keys() {
            if !matches!(key.as_str(), "host" | "hosts" | "ssl" | "response_timeout" | "healthcheck" | "app_port") {
                self.builder.ignored(self.file, key_span(self.spans, &format!("/proxy/{}", escape_segment(key))), format!("proxy `{key}`"));
            }
        }
    }

    /// Kamal 1 `traefik:` and `healthcheck:`.
    fn traefik(&mut self, primary: Option<&str>) {
        let root = self.root;
        if root.get("traefik").is_some() {
            self.builder.ignored(
                self.file,
                key_span(self.spans, "/traefik"),
                "`traefik:` is a Kamal 1 key: Kamal 2 rejects it and routes through kamal-proxy (`proxy:`); not carried over",
            );
        }
        if let Some(h) = root.get("healthcheck") {
            self.builder.ignored(self.file, key_span(self.spans, "/healthcheck"), "`healthcheck:` is a Kamal 1 key (Kamal 2: proxy.healthcheck)");
            if let (Some(service), Some(path)) = (primary, h.get("path").and_then(Value::as_str)) {
                let p = format!("services.{service}.health.path");
                if self.builder.get(&p).is_none() {
                    self.set(&p, json!(path), self.span("/healthcheck/path"));
                }
            }
        }
    }

    /// Health path and interval from Kamal 1 Traefik labels, when proxy: says nothing.
    fn traefik_labels(&mut self, name: &str, labels: &serde_json::Map<String, Value>, pointer: &str) {
        for (k, v) in labels {
            let key = if k.ends_with("loadbalancer.healthcheck.path") {
                "path"
            } else if k.ends_with("loadbalancer.healthcheck.interval") {
                "interval"
            } else {
                continue;
            };
            let Some(value) = scalar(v) else { continue };
            let path = format!("services.{name}.health.{key}");
            if self.builder.get(&path).is_some() {
                continue;
            }
            let bytes = self.span(&format!("{pointer}/{}", escape_segment(k)));
            let v = if key == "interval" { units::go_duration(&value).map(Value::from) } else { Some(Value::from(value)) };
            if let Some(v) = v {
                self.set(&path, v, bytes.clone());
                self.builder.assumed_at(self.file, bytes, format!("health {key} of `{name}` from a Kamal 1 Traefik label"), "move it to proxy.healthcheck for Kamal 2");
            }
        }
    }

    fn accessories(&mut self) {
        let root = self.root;
        let Some(accessories) = root.get("accessories").and_then(Value::as_object) else { return };
        for (acc, def) in accessories {
            let pointer = format!("/accessories/{}", escape_segment(acc));
            let key = key_span(self.spans, &pointer);
            let image = def.get("image").and_then(Value::as_str);
            let cmd = def.get("cmd").and_then(Value::as_str).map(str::to_string);
            let words = cmd.as_ref().map(|c| self.words(&format!("{pointer}/cmd"), c));
            let by_cmd = words.as_deref().and_then(interpret::classify).map(|(k, _)| k);
            let kind = by_cmd.or(image.and_then(images::image_kind));
            let kind = match kind {
                Some(k @ ("redis" | "postgres" | "pgbouncer" | "nginx")) => k,
                Some("sentinel") => {
                    self.builder.ignored(self.file, key, format!("accessory `{acc}` is a redis sentinel; count sentinels with `mode: sentinel` and `sentinels:` on the redis in an overlay"));
                    continue;
                }
                _ => {
                    let what = image.map_or("no image".to_string(), |i| format!("image `{i}`"));
                    self.builder.ignored(self.file, key, format!("accessory `{acc}` ({what}) is not a kind headroom models; skipped"));
                    continue;
                }
            };
            let mut name = service_name(acc);
            if self.builder.has_service(&name) && self.builder.kind_of_service(&name).as_deref() != Some(kind) {
                name = format!("{name}-{kind}");
            }
            self.names.insert(acc.clone(), name.clone());
            // Kamal names an accessory's container (its host on the Kamal network)
            // `<service>-<accessory>`.
            if let Some(service) = root.get("service").and_then(Value::as_str) {
                self.builder.host_aliases.insert(format!("{service}-{acc}"), name.clone());
            }
            self.builder.mark(&format!("services.{name}"), self.file, key.clone());
            self.builder.ensure_kind(&name, kind, self.file, key.clone());
            if let Some(image) = image {
                let bytes = self.span(&format!("{pointer}/image"));
                self.set(&format!("services.{name}.image"), json!(image), bytes.clone());
                images::version_from_image(self.builder, &name, kind, image, self.file, bytes);
            }
            let env = self.clear_vars(&format!("{pointer}/env"));
            let variables = Variables::new(env.clone());
            interpret::process(self.builder, &Process { service: name.clone(), file: self.file, declared: key.clone(), command: words, kind: Some(kind), env, variables, command_file: None });
            // Host(s) -> a machine group.
            let hosts: Vec<String> = match (def.get("host"), def.get("hosts"), def.get("roles").or(def.get("role"))) {
                (Some(Value::String(h)), _, _) => vec![h.clone()],
                (_, Some(h), _) => Self::hosts(h),
                (_, _, Some(r)) => {
                    let roles: Vec<String> = match r {
                        Value::String(s) => vec![s.clone()],
                        Value::Array(a) => a.iter().filter_map(Value::as_str).map(str::to_string).collect(),
                        _ => Vec::new(),
                    };
                    roles.iter().flat_map(|r| root.pointer(&format!("/servers/{}", escape_segment(r))).map(Self::hosts).unwrap_or_default()).collect()
                }
                _ => Vec::new(),
            };
            let host_pointer = ["host", "hosts", "roles", "role"].iter().find(|k| def.get(**k).is_some()).map(|k| format!("{pointer}/{k}"));
            if let Some(hp) = host_pointer.filter(|_| !hosts.is_empty()) {
                let bytes = self.span(&hp);
                let group = self.machine(acc, &hosts, bytes.clone());
                self.set(&format!("services.{name}.machine"), json!(group), bytes.clone());
                if hosts.len() > 1 {
                    self.set(&format!("services.{name}.replicas"), json!(hosts.len()), bytes);
                }
            }
            if let Some(port) = def.get("port").and_then(scalar) {
                let container = port.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).filter(|p| *p > 0);
                if let Some(p) = container
                    && self.builder.get(&format!("services.{name}.port")).is_none()
                {
                    self.set(&format!("services.{name}.port"), json!(p), self.span(&format!("{pointer}/port")));
                }
            }
            if let Some(options) = def.get("options").and_then(Value::as_object) {
                self.options(&name, options, &format!("{pointer}/options"));
            }
            if let Some(Value::Array(files)) = def.get("files") {
                for f in files {
                    let local = match f {
                        Value::String(s) => s.split(':').next().unwrap_or("").to_string(),
                        Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
                        _ => continue,
                    };
                    self.own(&local, &name, kind);
                }
            }
            if let Some(m) = def.as_object() {
                for k in m.keys() {
                    if !matches!(k.as_str(), "image" | "host" | "hosts" | "roles" | "role" | "port" | "cmd" | "env" | "options" | "files" | "directories" | "volumes" | "labels" | "service" | "proxy" | "registry") {
                        self.builder.ignored(self.file, key_span(self.spans, &format!("{pointer}/{}", escape_segment(k))), format!("accessory key `{k}`"));
                    }
                }
            }
        }
    }

    /// A local file an accessory mounts (relative to the project root) is owned by it.
    /// A config of the accessory's own format (`config/pgbouncer.ini` of a pgbouncer)
    /// also becomes `deploy.files.<kind>`, so `render` writes it back where it was.
    fn own(&mut self, local: &str, owner: &str, kind: &str) {
        if local.is_empty() || local.contains("<%") {
            return;
        }
        let candidates = [self.project.join(local), self.builder.sources[self.file].path.parent().map(|d| d.join(local)).unwrap_or_default()];
        for c in candidates {
            if let Ok(canonical) = std::fs::canonicalize(&c)
                && canonical.is_file()
            {
                let file_kind = super::detect::kind_of(&canonical, None);
                let matches = matches!(
                    (kind, file_kind),
                    ("pgbouncer", super::detect::Kind::Pgbouncer) | ("nginx", super::detect::Kind::Nginx) | ("postgres", super::detect::Kind::PostgresConf) | ("redis", super::detect::Kind::RedisConf)
                );
                let key = format!("deploy.files[{}]", serde_json::to_string(kind).unwrap_or_default());
                if matches && !local.starts_with('/') && !local.contains("..") && self.builder.get(&key).is_none() {
                    self.set(&key, json!(local), self.span("/accessories"));
                }
                self.builder.owners.entry(canonical).or_insert_with(|| owner.to_string());
                return;
            }
        }
    }

    /// Roles connect to the database and redis accessories; DATABASE_URL and
    /// REDIS_URL are secrets, so which ones is assumed.
    fn edges(&mut self) {
        let services = self.builder.value.get("services").and_then(Value::as_object).cloned().unwrap_or_default();
        let ours: Vec<String> = self.names.values().cloned().collect();
        let of_kind = |k: &str| -> Vec<String> {
            ours.iter().filter(|n| services.get(*n).and_then(|s| s.get("kind")).and_then(Value::as_str) == Some(k)).cloned().collect()
        };
        let pgbouncers = of_kind("pgbouncer");
        let postgres = of_kind("postgres");
        let redis = of_kind("redis");
        let db = if pgbouncers.len() == 1 { pgbouncers.first().cloned() } else if pgbouncers.is_empty() && postgres.len() == 1 { postgres.first().cloned() } else { None };
        let top_env = env_names(self.root.get("env"));
        let roles: Vec<(String, String)> = self.names.iter().filter(|(role, _)| self.root.pointer(&format!("/servers/{}", escape_segment(role))).is_some() || (self.root.get("servers").is_some_and(Value::is_array) && *role == "web")).map(|(r, n)| (r.clone(), n.clone())).collect();
        for (role, name) in &roles {
            let kind = services.get(name).and_then(|s| s.get("kind")).and_then(Value::as_str).unwrap_or("");
            if matches!(kind, "postgres" | "pgbouncer" | "redis" | "nginx" | "") {
                continue;
            }
            let pointer = if self.root.get("servers").is_some_and(Value::is_array) { "/servers".to_string() } else { format!("/servers/{}", escape_segment(role)) };
            let bytes = key_span(self.spans, &pointer);
            let mut env = top_env.clone();
            env.extend(env_names(self.root.pointer(&format!("{pointer}/env"))));
            if let Some(target) = &db {
                // Rails merges a DATABASE_URL set where the app runs over database.yml
                // (the URL's adapter wins), so a role that names it keeps this edge
                // whatever database.yml's adapter; one that does not is only assumed
                // to use the one database accessory.
                let why = if env.iter().any(|e| e == "DATABASE_URL") { "DATABASE_URL is a secret here; until database.yml says, " } else { "the only database accessory; until database.yml says, " };
                self.edge(name, target, bytes.clone(), why);
            }
            let wants_redis = kind == "sidekiq" || env.iter().any(|e| e.starts_with("REDIS") || e.contains("REDIS_URL"));
            if wants_redis && redis.len() == 1 {
                self.edge(name, &redis[0], bytes.clone(), "its env names a REDIS variable whose value is a secret or absent; ");
            }
            // Pools from the clear env (DATABASE_POOL, REDIS_POOL_SIZE, ...): the
            // role's values win over the top-level ones.
            let mut vars = self.clear_vars("/env");
            vars.extend(self.clear_vars(&format!("{pointer}/env")));
            let redis_target = (wants_redis && redis.len() == 1).then(|| redis[0].clone());
            interpret::app_env::apply_pools(self.builder, name, db.as_deref(), redis_target.as_deref(), &vars);
            for target in db.iter().chain(redis_target.iter()) {
                if self.builder.get(&format!("services.{name}.uses.{target}.pool")).is_some() {
                    let prefix = format!("assumed: `{name}` connects to the accessory `{target}` (");
                    for d in self.builder.diagnostics.iter_mut().filter(|d| d.message.starts_with(&prefix)) {
                        if let Some(i) = d.message.find("its pool is not in the files") {
                            d.message.truncate(i);
                            d.message.push_str("its pool comes from the env)");
                        }
                    }
                }
            }
        }
        if pgbouncers.len() == 1 && postgres.len() == 1 {
            let (from, to) = (pgbouncers[0].clone(), postgres[0].clone());
            let bytes = self.builder.origins.get(&format!("/services/{from}")).map(|o| o.bytes.clone()).unwrap_or(0..0);
            self.edge(&from, &to, bytes, "the only postgres accessory; ");
        }
    }

    /// The clear variables of an `env:` at `pointer` (a plain mapping is clear).
    fn clear_vars(&self, pointer: &str) -> Vec<EnvVar> {
        let Some(env) = self.root.pointer(pointer).and_then(Value::as_object) else { return Vec::new() };
        let (clear, clear_pointer) = if env.contains_key("clear") || env.contains_key("secret") || env.contains_key("tags") {
            (env.get("clear").and_then(Value::as_object).cloned().unwrap_or_default(), format!("{pointer}/clear"))
        } else {
            (env.clone(), pointer.to_string())
        };
        clear
            .iter()
            .map(|(k, v)| EnvVar { name: k.clone(), value: scalar(v), file: self.file, bytes: self.span(&format!("{clear_pointer}/{}", escape_segment(k))) })
            .collect()
    }

    fn edge(&mut self, from: &str, to: &str, bytes: Range<usize>, why: &str) {
        let path = format!("services.{from}.uses.{to}");
        if self.builder.get(&path).is_some() {
            return;
        }
        self.set(&path, json!({}), bytes.clone());
        self.builder.assumed_at(self.file,
            bytes,
            format!("`{from}` connects to the accessory `{to}` ({why}its pool is not in the files: one connection per concurrent slot)"),
            format!("set services.{from}.uses.{to}.pool in an overlay if the app caps it"),
        );
    }
}

/// Names in an `env:` (clear keys and secret names).
fn env_names(env: Option<&Value>) -> Vec<String> {
    let Some(env) = env.and_then(Value::as_object) else { return Vec::new() };
    let mut out = Vec::new();
    if env.contains_key("clear") || env.contains_key("secret") {
        if let Some(c) = env.get("clear").and_then(Value::as_object) {
            out.extend(c.keys().cloned());
        }
        if let Some(s) = env.get("secret").and_then(Value::as_array) {
            out.extend(s.iter().filter_map(Value::as_str).map(|s| s.split(':').next().unwrap_or(s).to_string()));
        }
    } else {
        out.extend(env.keys().cloned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"service: subcontractor-command
image: your-registry/subcontractor-command

servers:
  web:
    hosts:
      - 192.168.1.10  # Web Server 1
      - 192.168.1.11  # Web Server 2
      - 192.168.1.12  # Web Server 3
    labels:
      traefik.http.routers.web.rule: Host(`app.yoursite.com`)
      traefik.http.services.web.loadbalancer.healthcheck.path: /up
      traefik.http.services.web.loadbalancer.healthcheck.interval: 10s
    options:
      memory: 4g
      cpus: 2

  job:
    hosts:
      - 192.168.1.20  # Dedicated job server
    cmd: bin/jobs
    options:
      memory: 2g
      cpus: 1

  cable:
    hosts:
      - 192.168.1.21  # Dedicated WebSocket server
    cmd: bin/cable
    options:
      memory: 1g
      cpus: 1

proxy:
  ssl: true
  host: app.yoursite.com
  healthcheck:
    path: /up
    interval: 10

registry:
  server: ghcr.io
  username:
    - KAMAL_REGISTRY_USERNAME
  password:
    - KAMAL_REGISTRY_PASSWORD

env:
  clear:
    RAILS_ENV: production
    RAILS_LOG_TO_STDOUT: "true"
    RAILS_SERVE_STATIC_FILES: "true"
    WEB_CONCURRENCY: 4
    RAILS_MAX_THREADS: 5
  secret:
    - RAILS_MASTER_KEY
    - DATABASE_URL
    - REDIS_URL
    - SENTRY_DSN

accessories:
  redis:
    image: redis:7-alpine
    host: 192.168.1.30
    port: 6379
    cmd: redis-server --appendonly yes --maxmemory 512mb --maxmemory-policy allkeys-lru
    directories:
      - data:/data
    options:
      memory: 1g

  db:
    image: postgres:16
    host: 192.168.1.31
    port: 5432
    env:
      clear:
        POSTGRES_USER: subcontractor
        POSTGRES_DB: subcontractor_production
      secret:
        - POSTGRES_PASSWORD
    directories:
      - data:/var/lib/postgresql/data
    options:
      memory: 8g
      cpus: 4

traefik:
  options:
    publish:
      - "443:443"
      - "80:80"
  args:
    entryPoints.web.address: ":80"
"#;

    fn read_text(text: &str) -> ImportBuilder {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("/nonexistent/config/deploy.yml", text.to_string()));
        read(&mut b, id);
        b
    }

    fn line(b: &ImportBuilder, pointer: &str) -> usize {
        let o = b.origins.get(pointer).unwrap_or_else(|| panic!("no origin for {pointer}"));
        b.sources[o.file].line_col(o.bytes.start).line
    }

    #[test]
    fn reads_the_seed_deploy_yml() {
        let b = read_text(SEED);
        let s = &b.value["services"];
        assert_eq!(s["web"]["kind"], "puma");
        assert_eq!(s["web"]["replicas"], 3);
        assert_eq!(s["web"]["machine"], "web");
        assert_eq!(s["web"]["workers"], 4);
        assert_eq!(s["web"]["threads"], 5);
        assert_eq!(s["web"]["resources"], json!({"memory": "4GiB", "cpus": 2}));
        assert_eq!(s["web"]["health"], json!({"path": "/up", "interval": "10s"}));
        assert_eq!(s["web"]["env"]["clear"]["WEB_CONCURRENCY"], "4");
        assert!(s["web"]["env"].get("secret").is_none());
        assert_eq!(s["web"]["uses"], json!({"db": {}, "redis": {}}));
        assert_eq!(s["job"]["kind"], "solid_queue");
        assert_eq!(s["job"]["command"], "bin/jobs");
        assert_eq!(s["job"]["uses"], json!({"db": {}, "redis": {}}));
        assert_eq!(s["cable"]["kind"], "worker");
        assert_eq!(s["redis"]["kind"], "redis");
        assert_eq!(s["redis"]["machine"], "redis");
        assert_eq!(s["redis"]["resources"], json!({"memory": "1GiB"}));
        assert_eq!(s["db"]["kind"], "postgres");
        assert_eq!(s["db"]["databases"], json!(["subcontractor_production"]));
        assert_eq!(s["db"]["resources"], json!({"memory": "8GiB", "cpus": 4}));
        assert_eq!(b.value["machines"]["web"], json!({"count": 3, "addresses": ["192.168.1.10", "192.168.1.11", "192.168.1.12"]}));
        assert_eq!(b.value["machines"]["db"], json!({"count": 1, "addresses": ["192.168.1.31"]}));
        let k = &b.value["deploy"]["kamal"];
        assert_eq!(k["image"], "your-registry/subcontractor-command");
        assert_eq!(k["service"], "subcontractor-command");
        assert_eq!(k["registry"], json!({"username": "KAMAL_REGISTRY_USERNAME", "password": "KAMAL_REGISTRY_PASSWORD", "server": "ghcr.io"}));
        assert_eq!(k["proxy"], json!({"host": "app.yoursite.com", "ssl": true}));
        assert_eq!(line(&b, "/services/web/replicas"), 6);
        assert_eq!(line(&b, "/services/web/resources/memory"), 15);
        assert_eq!(line(&b, "/services/web/workers"), 53);
        assert_eq!(line(&b, "/services/db/resources/memory"), 85);
        let notes: Vec<&str> = b.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert!(notes.iter().any(|n| n.contains("`traefik:` is a Kamal 1 key")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("Traefik labels")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("bin/cable")), "{notes:?}");
        let mut v = b.value.clone();
        let none = |_: &str, _: bool| None;
        if let Err(p) = crate::load::validate_value(&mut v, &none) {
            panic!("{:?}", p.iter().map(|d| (&d.path, &d.message)).collect::<Vec<_>>());
        }
    }

    #[test]
    fn kamal_rails_fixture_with_puma_rb_and_database_yml() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import/kamal-rails");
        let b = crate::import::read_paths(&[dir], "saas");
        let at = |pointer: &str| {
            let o = b.origins.get(pointer).unwrap_or_else(|| panic!("no origin for {pointer}"));
            let s = &b.sources[o.file];
            (s.path.file_name().unwrap().to_string_lossy().to_string(), s.line_col(o.bytes.start).line)
        };
        let s = &b.value["services"];
        let web = &s["web"];
        assert_eq!(web["kind"], "puma");
        assert_eq!(web["replicas"], 3);
        assert_eq!(at("/services/web/replicas"), ("deploy.yml".into(), 6));
        // WEB_CONCURRENCY and RAILS_MAX_THREADS come from deploy.yml's env, which
        // puma.rb's ENV.fetch reads.
        assert_eq!(web["workers"], 4);
        assert_eq!(at("/services/web/workers"), ("deploy.yml".into(), 53));
        assert_eq!(web["threads"], 5);
        assert_eq!(at("/services/web/threads"), ("deploy.yml".into(), 54));
        assert_eq!(web["min_threads"], 5);
        assert_eq!(at("/services/web/min_threads"), ("puma.rb".into(), 4));
        assert_eq!(web["preload"], true);
        assert_eq!(at("/services/web/preload"), ("puma.rb".into(), 11));
        assert_eq!(web["health"], json!({"path": "/up", "interval": "10s"}));
        assert_eq!(at("/services/web/health/path"), ("deploy.yml".into(), 38));
        // 5 threads x 4 workers + 5, per process, from database.yml's ERB.
        for role in ["web", "job"] {
            assert_eq!(s[role]["uses"]["db"], json!({"pool": 25, "framework": "rails"}), "{role}");
            assert_eq!(at(&format!("/services/{role}/uses/db/pool")), ("database.yml".into(), 20));
        }
        assert_eq!(s["job"]["kind"], "solid_queue");
        assert_eq!(s["db"]["kind"], "postgres");
        assert_eq!(s["redis"]["kind"], "redis");
        assert_eq!(at("/services/db/resources/memory"), ("deploy.yml".into(), 85));
        assert_eq!(b.value["deploy"]["kamal"]["image"], "your-registry/subcontractor-command");
        let notes: Vec<&str> = b.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert!(notes.iter().any(|n| n.contains("pool 25 computed as") && n.contains("RAILS_MAX_THREADS")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("`traefik:` is a Kamal 1 key")), "{notes:?}");
        let mut v = b.value.clone();
        let none = |_: &str, _: bool| None;
        if let Err(p) = crate::load::validate_value(&mut v, &none) {
            panic!("{:?}", p.iter().map(|d| (&d.path, &d.message)).collect::<Vec<_>>());
        }
    }

    /// Writes `text` as `config/deploy.yml` under `root` and reads it, so the files it
    /// names (config/redis.conf, bin/entrypoint, ...) are found beside it.
    fn read_deploy_in(root: &std::path::Path, text: &str) -> ImportBuilder {
        let path = root.join("config/deploy.yml");
        std::fs::write(&path, text).unwrap();
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new(&path, text.to_string()));
        read(&mut b, id);
        b
    }

    #[test]
    fn accessory_files_proxy_and_commands() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::write(dir.path().join("config/redis.conf"), "maxmemory 1gb\n").unwrap();
        let text = "service: app\nimage: me/app\nservers:\n  web:\n    hosts: [10.0.0.1]\n    cmd: gunicorn -w 5 -k gevent app:app\n  workers:\n    hosts: [10.0.0.1]\n    cmd: bundle exec sidekiq -c 10\nproxy:\n  host: a.example.com\n  app_port: 8000\n  response_timeout: 60\n  healthcheck:\n    path: /healthz\n    timeout: 3\naccessories:\n  cache:\n    image: redis:7\n    roles: [web]\n    files:\n      - config/redis.conf:/usr/local/etc/redis/redis.conf\n  pooler:\n    image: edoburu/pgbouncer\n    host: 10.0.0.9\n  db:\n    image: postgres:16\n    host: 10.0.0.9\n  search:\n    image: elasticsearch:8\n    host: 10.0.0.9\n";
        let b = read_deploy_in(dir.path(), text);
        let s = &b.value["services"];
        assert_eq!((s["web"]["kind"].clone(), s["web"]["workers"].clone(), s["web"]["worker_class"].clone()), (json!("gunicorn"), json!(5), json!("gevent")));
        assert_eq!(s["web"]["port"], 8000);
        assert_eq!(s["web"]["health"], json!({"path": "/healthz", "timeout": "3s"}));
        assert_eq!(b.value["deploy"]["kamal"]["proxy"], json!({"host": "a.example.com", "response_timeout": "60s"}));
        assert_eq!((s["workers"]["kind"].clone(), s["workers"]["concurrency"].clone()), (json!("sidekiq"), json!(10)));
        // One machine group per distinct host set: web and workers share 10.0.0.1; the
        // cache runs on the web role's hosts.
        assert_eq!(s["workers"]["machine"], "web");
        assert_eq!(s["cache"]["machine"], "web");
        assert_eq!(s["pooler"]["machine"], s["db"]["machine"]);
        assert_eq!(s["web"]["uses"], json!({"pooler": {}}));
        assert_eq!(s["workers"]["uses"], json!({"pooler": {}, "cache": {}}));
        assert_eq!(s["pooler"]["uses"], json!({"db": {}}));
        assert!(s.get("search").is_none());
        let conf = std::fs::canonicalize(dir.path().join("config/redis.conf")).unwrap();
        assert_eq!(b.owners.get(&conf).map(String::as_str), Some("cache"));
        let mut v = b.value.clone();
        let none = |_: &str, _: bool| None;
        if let Err(p) = crate::load::validate_value(&mut v, &none) {
            panic!("{:?}", p.iter().map(|d| (&d.path, &d.message)).collect::<Vec<_>>());
        }
    }

    #[test]
    fn env_tags_on_every_host_of_a_role_apply_and_on_some_are_noted() {
        let text = "service: app\nimage: me/app\nservers:\n  web:\n    hosts:\n      - 10.0.0.1: big\n      - 10.0.0.2: [big, eu]\n  jobs:\n    hosts:\n      - 10.0.0.3: [big]\n      - 10.0.0.4\n    cmd: bundle exec sidekiq\nenv:\n  clear:\n    RAILS_MAX_THREADS: 3\n  tags:\n    big:\n      RAILS_MAX_THREADS: 8\n    eu:\n      clear:\n        REGION: eu\n";
        let b = read_text(text);
        assert_eq!(b.value["services"]["web"]["threads"], 8, "{:#}", b.value["services"]["web"]);
        let o = &b.origins["/services/web/threads"];
        assert_eq!(b.sources[o.file].line_col(o.bytes.start).line, 18);
        let notes: Vec<&str> = b.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert!(notes.iter().any(|m| m.contains("env tag `big` applies to 1 of the 2 hosts of role `jobs`") && m.contains("(RAILS_MAX_THREADS)")), "{notes:#?}");
        // A tag whose variables headroom does not read (REGION) changes nothing it models.
        assert!(!notes.iter().any(|m| m.contains("env tag `eu`")), "{notes:#?}");
    }

    #[test]
    fn list_servers_literal_registry_and_erb() {
        let text = "service: app\nimage: me/app\nservers:\n  - 10.0.0.1\n  - 10.0.0.2: [big]\nregistry:\n  username: me\n  password: hunter2\nenv:\n  PORT: <%= ENV['PORT'] %>\n";
        let b = read_text(text);
        assert_eq!(b.value["services"]["web"]["replicas"], 2);
        assert_eq!(b.value["machines"]["web"]["addresses"], json!(["10.0.0.1", "10.0.0.2"]));
        assert_eq!(b.value["deploy"]["kamal"]["registry"]["password"], "KAMAL_REGISTRY_PASSWORD");
        assert!(!serde_json::to_string(&b.value).unwrap().contains("hunter2"));
        assert!(b.diagnostics.iter().any(|d| d.message.contains("written in clear")));
        assert!(b.diagnostics.iter().any(|d| d.message.contains("ERB")));
    }

    #[test]
    fn broken_input_is_located() {
        let b = read_text("service: a\nimage: b\nservers:\n  web:\n    hosts: [1.1.1.1]\n    cmd: bundle exec puma -w '2\n");
        let d = b.diagnostics.iter().find(|d| d.rule == crate::import::UNPARSABLE).expect("unterminated quote");
        assert_eq!(d.span.as_ref().unwrap().line, 6);
        for odd in ["servers: 3", "- a", "service: x\nimage: y\nservers:\n  web: {hosts: {a: 1}}\naccessories: 3\n", "\u{0}", "servers:\n  web:\n    hosts:\n      - \"a b;c\"\n"] {
            let _ = read_text(odd);
        }
    }

    #[test]
    fn a_destination_merges_over_deploy_yml_and_keeps_its_own_lines() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir_all(&config).unwrap();
        let base = "service: app\nimage: acme/app\nservers:\n  web:\n    - 10.0.0.1\n    - 10.0.0.2\nenv:\n  clear:\n    WEB_CONCURRENCY: 2\n    RAILS_MAX_THREADS: 5\n";
        let staging = "# staging\nservers:\n  web:\n    - 10.0.9.1\nenv:\n  clear:\n    RAILS_MAX_THREADS: 12\n";
        std::fs::write(config.join("deploy.yml"), base).unwrap();
        std::fs::write(config.join("deploy.staging.yml"), staging).unwrap();
        std::fs::write(config.join("deploy.production.yml"), "servers:\n  web: [10.0.0.3]\n").unwrap();
        assert_eq!(destinations_beside(&config.join("deploy.yml")), ["production", "staging"]);
        assert_eq!(destination_of("deploy", "deploy.staging.yml").as_deref(), Some("staging"));
        assert_eq!(destination_of("deploy", "deploy.yml"), None);
        assert_eq!(destination_of("deploy", "deploy.a.b.yml"), None);
        let mut b = ImportBuilder::new("t");
        b.facts.destination = Some("staging".into());
        let id = b.add_source(SourceFile::new(config.join("deploy.yml"), base.to_string()));
        read(&mut b, id);
        let web = &b.value["services"]["web"];
        // Mappings merge key by key; the hosts list is replaced.
        assert_eq!((web["threads"].clone(), web["workers"].clone()), (json!(12), json!(2)), "{:#}", b.value);
        assert_eq!(web.get("replicas").and_then(Value::as_u64).unwrap_or(1), 1, "{:#}", b.value);
        let o = &b.origins["/services/web/threads"];
        assert!(b.sources[o.file].path.ends_with("deploy.staging.yml"));
        assert_eq!(b.sources[o.file].line_col(o.bytes.start).line, 7);
        let o = &b.origins["/services/web/workers"];
        assert!(b.sources[o.file].path.ends_with("config/deploy.yml"));
        assert_eq!(b.sources[o.file].line_col(o.bytes.start).line, 9);
    }

    #[test]
    fn a_role_cmd_picks_the_branch_of_the_entrypoint_script() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM ruby:3.3\nENTRYPOINT [\"bin/entrypoint\"]\nCMD [\"web\"]\n").unwrap();
        std::fs::write(dir.path().join("bin/entrypoint"), "#!/bin/sh\nif [ \"$1\" = \"worker\" ]; then\n  exec bundle exec sidekiq -c 15\nelif [ \"$1\" = \"web\" ]; then\n  exec bundle exec puma -t 5:5\nfi\nexec \"$@\"\n").unwrap();
        let text = "service: app\nimage: acme/app\nservers:\n  web:\n    - 10.0.0.1\n  jobs:\n    hosts:\n      - 10.0.0.2\n    cmd: worker\n";
        let b = read_deploy_in(dir.path(), text);
        let s = &b.value["services"];
        assert_eq!((s["jobs"]["kind"].clone(), s["jobs"]["concurrency"].clone()), (json!("sidekiq"), json!(15)), "{s:#}");
        assert_eq!((s["web"]["kind"].clone(), s["web"]["threads"].clone()), (json!("puma"), json!(5)), "{s:#}");
        let o = &b.origins["/services/jobs/concurrency"];
        assert!(b.sources[o.file].path.ends_with("bin/entrypoint"));
    }
}
