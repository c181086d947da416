//! Kubernetes manifests: multi-document YAML (a folder of manifests, `kustomize build`
//! or `helm template` output). Each container of a Deployment, StatefulSet, DaemonSet
//! or Argo Rollout becomes a process (its `command` + `args`, `env` and the env of the
//! ConfigMaps named by `envFrom`), handed to `interpret`; what only the manifest knows
//! is written here: replicas, a HorizontalPodAutoscaler's bounds, requests and limits,
//! the readiness probe, the port, the files of mounted ConfigMaps (nginx.conf,
//! pgbouncer.ini, redis.conf, postgresql.conf, read in place so findings point at the
//! manifest's lines), the `uses` edges from connection variables through Service
//! names, and CloudNativePG `Cluster` / `Pooler` resources.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde_json::{Value, json};

use super::detect;
use crate::import::formats::{pgbouncer_ini, pgconf};
use crate::import::interpret::{self, Process, app_env, images};
use crate::import::shared::argv::Word;
use crate::import::shared::env::{self, EnvVar};
use crate::import::shared::names::service_name;
use crate::import::shared::urls::url_host;
use crate::import::shared::yaml::{key_span, kv_span, scalar, value_span};
use crate::import::{FileId, ImportBuilder};
use crate::load::yaml::{SpanMap, escape_segment};
use crate::source::SourceFile;

use crate::targets::kubernetes::USES_ANNOTATION;
/// Workload kinds whose pod template runs containers.
const WORKLOADS: [&str; 4] = ["Deployment", "StatefulSet", "DaemonSet", "Rollout"];
/// Kinds a capacity model has nothing to take from: read without a note.
const QUIET_KINDS: [&str; 22] = [
    "Namespace",
    "Secret",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "ClusterRole",
    "ClusterRoleBinding",
    "Ingress",
    "IngressClass",
    "NetworkPolicy",
    "PodDisruptionBudget",
    "Kustomization",
    "PersistentVolumeClaim",
    "PersistentVolume",
    "StorageClass",
    "ServiceMonitor",
    "PodMonitor",
    "PrometheusRule",
    "Certificate",
    "Issuer",
    "LimitRange",
    "ResourceQuota",
];

/// One object of a manifest, with where its fields are in the file.
struct Object {
    /// The manifest file it was read from.
    file: FileId,
    value: Value,
    spans: SpanMap,
    /// JSON pointer of the object inside its document (`/items/3` in a `List`).
    base: String,
}

impl Object {
    fn get(&self, pointer: &str) -> &Value {
        self.value.pointer(pointer).unwrap_or(&Value::Null)
    }
    fn str(&self, pointer: &str) -> Option<&str> {
        self.get(pointer).as_str()
    }
    fn kind(&self) -> &str {
        self.str("/kind").unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.str("/metadata/name").unwrap_or_default()
    }
    /// Key and value of a field (`replicas: 3`).
    fn at(&self, pointer: &str) -> Range<usize> {
        kv_span(&self.spans, &format!("{}{pointer}", self.base))
    }
    fn value_at(&self, pointer: &str) -> Range<usize> {
        value_span(&self.spans, &format!("{}{pointer}", self.base))
    }
    fn key_at(&self, pointer: &str) -> Range<usize> {
        key_span(&self.spans, &format!("{}{pointer}", self.base))
    }
}

/// The byte ranges of the documents of a multi-document YAML text (split at `---`
/// and `...` lines), without the ones holding only comments and blank lines.
pub fn documents(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        let separator = bare == "---" || bare == "..." || bare.starts_with("--- #") || bare.starts_with("---\t") || (bare.starts_with("--- ") && bare[4..].trim().is_empty());
        if separator {
            out.push(start..offset);
            start = offset + line.len();
        }
        offset += line.len();
    }
    out.push(start..text.len());
    out.retain(|r| text[r.clone()].lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')));
    out
}

/// Whether a YAML text is Kubernetes manifests: a document with top-level
/// `apiVersion:` and `kind:`.
pub fn is_manifest(text: &str) -> bool {
    documents(text).iter().any(|r| {
        let doc = &text[r.clone()];
        let top = |key: &str| doc.lines().any(|l| l.strip_prefix(key).is_some_and(|rest| rest.starts_with(':')));
        top("apiVersion") && top("kind")
    })
}

/// Takes a file of manifests: its objects are read with every other manifest file's
/// (`finish`), so a Deployment in one file finds its ConfigMap, Service and HPA in
/// another.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    builder.manifests.push(file);
}

/// Reads the objects of every manifest file taken, together.
pub fn finish(builder: &mut ImportBuilder) {
    let files = std::mem::take(&mut builder.manifests);
    let mut objects = Vec::new();
    for file in files {
        objects.extend(parse(builder, file));
    }
    if objects.is_empty() {
        return;
    }
    let first = objects[0].file;
    let mut reader = Reader { b: builder, file: first, objects: &objects, services: BTreeMap::new(), mounted: Vec::new(), images: Vec::new() };
    reader.read_all();
}

/// The objects of one file (each document, the items of a `List`); a document that is
/// not valid YAML is an error at its line, and the others are still read.
fn parse(builder: &mut ImportBuilder, file: FileId) -> Vec<Object> {
    let text = builder.sources[file].text.clone();
    let mut objects = Vec::new();
    if text.contains("{{") && text.contains("}}") && text.lines().any(|l| l.trim_start().starts_with("{{") || l.contains(": {{")) {
        builder.ignored(
            file,
            0..0,
            "a Helm chart template (Go template syntax), not a manifest: run `helm template RELEASE CHART | headroom lint -` to lint what it renders",
        );
        return objects;
    }
    let path = builder.sources[file].path.clone();
    for range in documents(&text) {
        let source = SourceFile::new(&path, text[range.clone()].to_string());
        match crate::load::yaml::parse(&source) {
            Ok((value, mut spans)) => {
                spans.shift(range.start);
                if value.get("kind").and_then(Value::as_str) == Some("List") {
                    for (i, item) in value.get("items").and_then(Value::as_array).cloned().unwrap_or_default().into_iter().enumerate() {
                        objects.push(Object { file, value: item, spans: spans.clone(), base: format!("/items/{i}") });
                    }
                } else if value.is_object() {
                    objects.push(Object { file, value, spans, base: String::new() });
                }
            }
            Err(e) => builder.unparsable(
                file,
                e.span.start + range.start..e.span.end + range.start,
                format!("not valid YAML: {}", e.message),
                e.hint.unwrap_or_else(|| "fix the document; the others are still read".into()),
            ),
        }
    }
    objects
}

/// What one workload's containers became.
struct Workload {
    /// The spec service of each container (None: not modelled).
    containers: Vec<Option<String>>,
}

struct Reader<'a> {
    b: &'a mut ImportBuilder,
    /// The file of the object being read (every handler starts by setting it).
    file: FileId,
    objects: &'a [Object],
    /// Workload name -> its containers' services.
    services: BTreeMap<String, Workload>,
    /// ConfigMaps (name, key) read as mounted files.
    mounted: Vec<(String, String)>,
    /// (service, kind, image, file, bytes) of every container read.
    images: Vec<(String, String, String, FileId, Range<usize>)>,
}

impl Reader<'_> {
    fn read_all(&mut self) {
        let objects = self.objects;
        self.aliases();
        for o in objects.iter().filter(|o| o.kind() == "Cluster" && o.str("/apiVersion").is_some_and(|a| a.starts_with("postgresql.cnpg.io/"))) {
            self.cnpg_cluster(o);
        }
        for o in objects.iter().filter(|o| WORKLOADS.contains(&o.kind())) {
            self.workload(o);
        }
        for o in objects.iter().filter(|o| o.kind() == "Pooler" && o.str("/apiVersion").is_some_and(|a| a.starts_with("postgresql.cnpg.io/"))) {
            self.cnpg_pooler(o);
        }
        // Config files once every service is known (an nginx upstream, a pgbouncer
        // database name the services by host).
        for o in objects.iter().filter(|o| WORKLOADS.contains(&o.kind())) {
            self.file = o.file;
            let services = self.services.get(o.name()).map(|w| w.containers.clone()).unwrap_or_default();
            for (i, service) in services.iter().enumerate() {
                if let Some(service) = service {
                    self.mounts(o, &format!("/spec/template/spec/containers/{i}"), service);
                }
            }
        }
        for o in objects.iter().filter(|o| o.kind() == "HorizontalPodAutoscaler") {
            self.hpa(o);
        }
        for o in objects.iter().filter(|o| WORKLOADS.contains(&o.kind())) {
            self.edges(o);
        }
        for o in objects.iter().filter(|o| o.kind() == "ConfigMap") {
            self.loose_config_map(o);
        }
        self.deploy();
        for o in objects {
            let kind = o.kind();
            let known = WORKLOADS.contains(&kind) || matches!(kind, "Service" | "ConfigMap" | "HorizontalPodAutoscaler" | "Cluster" | "Pooler" | "");
            if !known && !QUIET_KINDS.contains(&kind) {
                self.b.ignored(o.file, o.key_at("/kind"), format!("{kind} `{}`: not a resource headroom models", o.name()));
            }
        }
    }

    /// Host names other than a workload's own that reach it: Services selecting its
    /// pods, CloudNativePG's `<cluster>-rw`/`-ro`/`-r`.
    fn aliases(&mut self) {
        let objects = self.objects;
        for service in objects.iter().filter(|o| o.kind() == "Service") {
            let Some(selector) = service.get("/spec/selector").as_object().filter(|s| !s.is_empty()) else { continue };
            let target = objects.iter().filter(|o| WORKLOADS.contains(&o.kind())).find(|w| {
                let labels = w.get("/spec/template/metadata/labels");
                selector.iter().all(|(k, v)| labels.get(k) == Some(v))
            });
            if let Some(w) = target {
                let (from, to) = (service_name(service.name()), service_name(w.name()));
                if from != to {
                    self.b.host_aliases.insert(from, to);
                }
            }
        }
        for cluster in objects.iter().filter(|o| o.kind() == "Cluster" && o.str("/apiVersion").is_some_and(|a| a.starts_with("postgresql.cnpg.io/"))) {
            let name = service_name(cluster.name());
            for suffix in ["rw", "ro", "r"] {
                self.b.host_aliases.insert(format!("{name}-{suffix}"), name.clone());
            }
        }
    }

    fn set(&mut self, path: &str, value: Value, bytes: Range<usize>) {
        self.b.set(path, value, self.file, bytes);
    }

    /// Sets a value unless the command line (or an earlier file) already did.
    fn set_unless_set(&mut self, path: &str, value: Value, bytes: Range<usize>) {
        if self.b.get(path).is_none() {
            self.set(path, value, bytes);
        }
    }

    fn workload(&mut self, o: &Object) {
        self.file = o.file;
        let name = service_name(o.name());
        let containers = o.get("/spec/template/spec/containers").as_array().cloned().unwrap_or_default();
        let mut services = Vec::new();
        for (i, container) in containers.iter().enumerate() {
            let c = format!("/spec/template/spec/containers/{i}");
            let image = container.get("image").and_then(Value::as_str).unwrap_or_default().to_string();
            let env = self.env(o, &c, true);
            let command = self.command(o, &c, &env);
            let image_kind = images::image_kind(&image);
            let program = command.as_ref().and_then(|w| interpret::classify(w)).map(|(k, _)| k);
            let service = if i == 0 {
                name.clone()
            } else if program.or(image_kind).is_some_and(|k| k != "sentinel") {
                service_name(&format!("{}-{}", o.name(), container.get("name").and_then(Value::as_str).unwrap_or("sidecar")))
            } else {
                self.b.ignored(self.file, o.value_at(&format!("{c}/name")), format!("container `{}` of {} `{}`: not a program headroom models", container.get("name").and_then(Value::as_str).unwrap_or(""), o.kind(), o.name()));
                services.push(None);
                continue;
            };
            self.b.mark(&format!("services.{service}"), self.file, o.key_at("/metadata/name"));
            let process = Process { service: service.clone(), file: self.file, declared: o.at("/metadata/name"), command, kind: image_kind.filter(|k| *k != "sentinel"), env, variables: Default::default(), command_file: None };
            interpret::process(self.b, &process);
            let Some(kind) = self.b.kind_of_service(&service) else {
                services.push(Some(service));
                continue;
            };
            if let Some(k) = image_kind.filter(|k| *k == kind) {
                images::version_from_image(self.b, &service, k, &image, self.file, o.at(&format!("{c}/image")));
            }
            if !image.is_empty() {
                self.images.push((service.clone(), kind.clone(), image.clone(), self.file, o.at(&format!("{c}/image"))));
            }
            self.plain_env(o, &c, &service, &kind);
            self.replicas(o, &service);
            self.resources(o, &c, &service);
            self.probe(o, &c, &service, &kind);
            self.port(o, &c, &service, &kind);
            if i == 0 {
                self.sysctls(o, &service);
            }
            services.push(Some(service));
        }
        self.services.insert(o.name().to_string(), Workload { containers: services });
    }

    fn replicas(&mut self, o: &Object, service: &str) {
        let path = format!("services.{service}.replicas");
        match o.get("/spec/replicas").as_u64() {
            Some(n) if n >= 1 => self.set(&path, json!(n), o.at("/spec/replicas")),
            Some(_) => self.b.ignored(self.file, o.at("/spec/replicas"), format!("{} `{}` runs 0 replicas", o.kind(), o.name())),
            None if o.kind() == "DaemonSet" => self.b.assumed_at(self.file, o.key_at("/kind"), format!("DaemonSet `{}` runs one pod per node; counted as 1", o.name()), format!("set services.{service}.replicas to the node count in an overlay")),
            None => {}
        }
    }

    /// The container's environment: `envFrom` ConfigMaps first, then `env` (which wins),
    /// with `$(VAR)` references expanded as the kubelet does.
    fn env(&mut self, o: &Object, c: &str, notes: bool) -> Vec<EnvVar> {
        let mut vars: Vec<EnvVar> = Vec::new();
        for (i, from) in o.get(&format!("{c}/envFrom")).as_array().cloned().unwrap_or_default().iter().enumerate() {
            let prefix = from.get("prefix").and_then(Value::as_str).unwrap_or("").to_string();
            let Some(map_name) = from.pointer("/configMapRef/name").and_then(Value::as_str) else { continue };
            match self.objects.iter().find(|m| m.kind() == "ConfigMap" && m.name() == map_name) {
                Some(map) => {
                    for (key, value) in map.get("/data").as_object().cloned().unwrap_or_default() {
                        let Some(text) = scalar(&value) else { continue };
                        vars.push(EnvVar { name: format!("{prefix}{key}"), value: Some(text), file: map.file, bytes: map.at(&format!("/data/{}", escape_segment(&key))) });
                    }
                }
                None if notes => self.b.ignored(self.file, o.at(&format!("{c}/envFrom/{i}")), format!("envFrom ConfigMap `{map_name}` is not among the manifests read; its variables are unknown")),
                None => {}
            }
        }
        for (i, entry) in o.get(&format!("{c}/env")).as_array().cloned().unwrap_or_default().iter().enumerate() {
            let Some(name) = entry.get("name").and_then(Value::as_str) else { continue };
            let at = format!("{c}/env/{i}");
            let (value, bytes) = match entry.get("value").and_then(scalar) {
                Some(v) => (Some(expand(&v, &vars)), o.at(&format!("{at}/value"))),
                // valueFrom (a Secret, a field): known at run time only.
                None => (None, o.at(&format!("{at}/name"))),
            };
            vars.push(EnvVar { name: name.to_string(), value, file: self.file, bytes });
        }
        vars
    }

    /// `command` then `args`, one word per item (no shell splitting: Kubernetes runs
    /// them as an argv), `$(VAR)` expanded.
    fn command(&self, o: &Object, c: &str, env: &[EnvVar]) -> Option<Vec<Word>> {
        let mut words = Vec::new();
        for key in ["command", "args"] {
            for (i, word) in o.get(&format!("{c}/{key}")).as_array().cloned().unwrap_or_default().iter().enumerate() {
                if let Some(text) = scalar(word) {
                    words.push((expand(&text, env), o.value_at(&format!("{c}/{key}/{i}"))));
                }
            }
        }
        (!words.is_empty()).then_some(words)
    }

    fn resources(&mut self, o: &Object, c: &str, service: &str) {
        for (section, cpu_key, memory_key) in [("limits", "cpus", "memory"), ("requests", "reserve_cpus", "reserve_memory")] {
            let at = format!("{c}/resources/{section}");
            if let Some(cpu) = o.get(&format!("{at}/cpu")).as_str().map(str::to_string).or_else(|| o.get(&format!("{at}/cpu")).as_f64().map(|f| f.to_string())) {
                match cpu_quantity(&cpu) {
                    Some(v) => self.set(&format!("services.{service}.resources.{cpu_key}"), v, o.at(&format!("{at}/cpu"))),
                    None => self.b.ignored(self.file, o.at(&format!("{at}/cpu")), format!("cpu `{cpu}` is not a quantity headroom reads")),
                }
            }
            if let Some(memory) = scalar(o.get(&format!("{at}/memory"))) {
                match memory_quantity(&memory) {
                    Some(bytes) => self.set(&format!("services.{service}.resources.{memory_key}"), json!(bytes), o.at(&format!("{at}/memory"))),
                    None => self.b.ignored(self.file, o.at(&format!("{at}/memory")), format!("memory `{memory}` is not a quantity headroom reads")),
                }
            }
        }
    }

    /// The readiness probe (else liveness) of an HTTP server: the health check.
    fn probe(&mut self, o: &Object, c: &str, service: &str, kind: &str) {
        if !matches!(kind, "gunicorn" | "puma") {
            return;
        }
        let Some(which) = ["readinessProbe", "livenessProbe"].into_iter().find(|p| o.get(&format!("{c}/{p}")).is_object()) else { return };
        let at = format!("{c}/{which}");
        let base = format!("services.{service}.health");
        if let Some(path) = o.str(&format!("{at}/httpGet/path")) {
            self.set_unless_set(&format!("{base}.path"), json!(path), o.at(&format!("{at}/httpGet/path")));
        } else {
            self.b.mark(&base, self.file, o.key_at(&at));
            if self.b.get(&base).is_none() {
                self.set(&base, json!({}), o.key_at(&at));
            }
        }
        for (field, key, unit) in [("periodSeconds", "interval", "s"), ("timeoutSeconds", "timeout", "s"), ("failureThreshold", "retries", ""), ("initialDelaySeconds", "start_period", "s")] {
            if let Some(n) = o.get(&format!("{at}/{field}")).as_u64() {
                let value = if unit.is_empty() { json!(n) } else { json!(format!("{n}s")) };
                self.set_unless_set(&format!("{base}.{key}"), value, o.at(&format!("{at}/{field}")));
            }
        }
        // A startup probe holds the others off for its failureThreshold x periodSeconds:
        // beyond the readiness probe's own retries, that is the start period.
        let startup = format!("{c}/startupProbe");
        if let (Some(failures), Some(period)) = (o.get(&format!("{startup}/failureThreshold")).as_u64(), o.get(&format!("{startup}/periodSeconds")).as_u64().or(Some(10))) {
            let retries = o.get(&format!("{at}/failureThreshold")).as_u64().unwrap_or(3);
            let start = failures.saturating_sub(retries).saturating_mul(period);
            if start > 0 {
                self.set_unless_set(&format!("{base}.start_period"), json!(format!("{start}s")), o.at(&format!("{startup}/failureThreshold")));
            }
        }
    }

    /// The pod's namespaced sysctls (`securityContext.sysctls`), the main container's.
    fn sysctls(&mut self, o: &Object, service: &str) {
        let at = "/spec/template/spec/securityContext/sysctls";
        for (i, entry) in o.get(at).as_array().cloned().unwrap_or_default().iter().enumerate() {
            let (Some(name), Some(value)) = (entry.get("name").and_then(Value::as_str), entry.get("value").and_then(scalar)) else { continue };
            let value = value.trim().parse::<u64>().map_or_else(|_| json!(value), |n| json!(n));
            let path = format!("services.{service}.sysctls[{}]", serde_json::to_string(name).unwrap_or_default());
            self.set(&path, value, o.at(&format!("{at}/{i}/value")));
        }
    }

    fn port(&mut self, o: &Object, c: &str, service: &str, kind: &str) {
        if !matches!(kind, "gunicorn" | "puma" | "nginx" | "pgbouncer" | "postgres" | "redis") {
            return;
        }
        if let Some(port) = o.get(&format!("{c}/ports/0/containerPort")).as_u64().filter(|p| (1..=65535).contains(p)) {
            self.set_unless_set(&format!("services.{service}.port"), json!(port), o.at(&format!("{c}/ports/0/containerPort")));
        }
    }

    /// Files of ConfigMaps mounted into the container, read as the container's own
    /// config files (nginx.conf, pgbouncer.ini, redis.conf, postgresql.conf).
    fn mounts(&mut self, o: &Object, c: &str, service: &str) {
        let volumes = o.get("/spec/template/spec/volumes").as_array().cloned().unwrap_or_default();
        for mount in o.get(&format!("{c}/volumeMounts")).as_array().cloned().unwrap_or_default() {
            let (Some(volume), Some(mount_path)) = (mount.get("name").and_then(Value::as_str), mount.get("mountPath").and_then(Value::as_str)) else { continue };
            let Some(config_map) = volumes.iter().find(|v| v.get("name").and_then(Value::as_str) == Some(volume)).and_then(|v| v.pointer("/configMap/name")).and_then(Value::as_str) else { continue };
            let Some(map) = self.objects.iter().find(|m| m.kind() == "ConfigMap" && m.name() == config_map) else { continue };
            let keys: Vec<String> = map.get("/data").as_object().map(|d| d.keys().cloned().collect()).unwrap_or_default();
            let files: Vec<(String, String)> = match mount.get("subPath").and_then(Value::as_str) {
                Some(sub) => keys.iter().filter(|k| *k == sub).map(|k| (k.clone(), mount_path.to_string())).collect(),
                None => keys.iter().map(|k| (k.clone(), format!("{}/{k}", mount_path.trim_end_matches('/')))).collect(),
            };
            for (key, path) in files {
                if self.embedded_file(map, &key, &path, Some(service)) {
                    self.mounted.push((config_map.to_string(), key));
                    // The program's command names the file; it was read from the mount.
                    let named = format!("`{path}`; pass that file");
                    self.b.diagnostics.retain(|d| !(d.rule == crate::import::IGNORED && d.message.contains(&named)));
                }
            }
        }
    }

    /// Reads one ConfigMap entry as the config file at `path` (its kind by the path,
    /// then by content); true when it is a format headroom reads.
    fn embedded_file(&mut self, map: &Object, key: &str, path: &str, owner: Option<&str>) -> bool {
        let pointer = format!("/data/{}", escape_segment(key));
        let Some(content) = map.get(&pointer).as_str().map(str::to_string) else { return false };
        let kind = detect::kind_of(Path::new(path), Some(&content));
        let Some(read) = super::reader(kind).filter(|_| !matches!(kind, detect::Kind::Kubernetes | detect::Kind::Compose | detect::Kind::Kamal | detect::Kind::Unknown)) else {
            return false;
        };
        let manifest = &self.b.sources[map.file];
        let span = map.value_at(&pointer);
        // A literal block (`|`) holds the file line for line: read the manifest with
        // everything else blanked, so findings point at the manifest's own lines.
        let text = match in_place(&manifest.text, &span, &content) {
            Some(text) => text,
            None => content,
        };
        let shown = if text.len() == manifest.text.len() { manifest.path.clone() } else { manifest.path.with_file_name(format!("{}#{}:{key}", manifest.path.file_name().and_then(|n| n.to_str()).unwrap_or("manifest"), map.name())) };
        let id = self.b.add_source(SourceFile::new(shown, text));
        if let Some(owner) = owner {
            self.b.file_owners.insert(id, owner.to_string());
        }
        read(self.b, id);
        true
    }

    /// ConfigMaps no container mounts whose keys name a config format.
    fn loose_config_map(&mut self, map: &Object) {
        self.file = map.file;
        let keys: Vec<String> = map.get("/data").as_object().map(|d| d.keys().cloned().collect()).unwrap_or_default();
        for key in keys {
            if self.mounted.iter().any(|(m, k)| m == map.name() && *k == key) {
                continue;
            }
            self.embedded_file(map, &key, &key, None);
        }
    }

    fn hpa(&mut self, o: &Object) {
        self.file = o.file;
        let Some(target) = o.str("/spec/scaleTargetRef/name") else { return };
        let Some(service) = self.services.get(target).and_then(|w| w.containers.first().cloned().flatten()) else {
            self.b.ignored(self.file, o.at("/spec/scaleTargetRef/name"), format!("HorizontalPodAutoscaler `{}` scales `{target}`, which is not among the workloads read", o.name()));
            return;
        };
        let Some(max) = o.get("/spec/maxReplicas").as_u64() else { return };
        let min = o.get("/spec/minReplicas").as_u64().unwrap_or(1);
        let kind = self.b.kind_of_service(&service).unwrap_or_default();
        let app_or_job = matches!(kind.as_str(), "gunicorn" | "puma" | "sidekiq" | "celery" | "solid_queue" | "rq" | "worker");
        if !app_or_job {
            // Budgets count the most pods the autoscaler may run.
            self.set(&format!("services.{service}.replicas"), json!(max), o.at("/spec/maxReplicas"));
            self.b.assumed_at(self.file, o.at("/spec/maxReplicas"), format!("`{service}` ({kind}) is autoscaled up to {max} pods: counted at {max} replicas"), "every pod opens its own connections");
            return;
        }
        let base = format!("services.{service}.autoscale");
        self.set(&format!("{base}.min"), json!(min), if o.get("/spec/minReplicas").is_null() { o.key_at("/spec") } else { o.at("/spec/minReplicas") });
        self.set(&format!("{base}.max"), json!(max), o.at("/spec/maxReplicas"));
        let cpu = o
            .get("/spec/metrics")
            .as_array()
            .and_then(|metrics| metrics.iter().position(|m| m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")))
            .map(|i| format!("/spec/metrics/{i}/resource/target/averageUtilization"))
            .filter(|p| o.get(p).is_u64())
            .or_else(|| o.get("/spec/targetCPUUtilizationPercentage").is_u64().then(|| "/spec/targetCPUUtilizationPercentage".to_string()));
        if let Some(p) = cpu {
            let value = o.get(&p).as_u64().unwrap_or(80).clamp(1, 1000);
            self.set(&format!("{base}.target_cpu"), json!(value), o.at(&p));
        }
    }

    /// `uses` edges from the connection variables (`DATABASE_URL`, `REDIS_URL`,
    /// `DB_HOST`, ...) of each container, by the host's Service name; pools from the
    /// environment.
    fn edges(&mut self, o: &Object) {
        self.file = o.file;
        let containers = o.get("/spec/template/spec/containers").as_array().cloned().unwrap_or_default();
        let services = self.services.get(o.name()).map(|w| w.containers.clone()).unwrap_or_default();
        for (i, service) in services.iter().enumerate() {
            let Some(service) = service else { continue };
            if i >= containers.len() {
                break;
            }
            let Some(kind) = self.b.kind_of_service(service) else { continue };
            if matches!(kind.as_str(), "postgres" | "redis" | "nginx") {
                continue;
            }
            let env = self.env(o, &format!("/spec/template/spec/containers/{i}"), false);
            let targets: &[&str] = if kind == "pgbouncer" { &["postgres"] } else { &["postgres", "pgbouncer", "redis"] };
            let (mut db, mut redis) = (None::<String>, None::<String>);
            // The edges `render` records on the workload (`headroom.dev/uses`).
            if let Some(listed) = o.str(&format!("/metadata/annotations/{}", escape_segment(USES_ANNOTATION))) {
                for target in listed.split(',').map(|t| service_name(t.trim())).filter(|t| !t.is_empty()) {
                    let Some(target_kind) = self.b.kind_of_service(&target) else { continue };
                    let slot = if target_kind == "redis" { &mut redis } else { &mut db };
                    if targets.contains(&target_kind.as_str()) && slot.is_none() {
                        *slot = Some(target.clone());
                        let bytes = o.at(&format!("/metadata/annotations/{}", escape_segment(USES_ANNOTATION)));
                        self.b.set(&format!("services.{service}.uses.{target}"), json!({}), self.file, bytes);
                    }
                }
            }
            for var in &env {
                let Some(url) = env::host_variable(&var.name, kind == "pgbouncer") else { continue };
                let Some(raw) = &var.value else {
                    // From a Secret: the host is not in the manifests. The one service of
                    // the kind it names is taken, with a note.
                    let wanted: &[&str] = if var.name.contains("REDIS") || var.name.contains("CACHE") || var.name.contains("BROKER") { &["redis"] } else if kind == "pgbouncer" { &["postgres"] } else { &["pgbouncer", "postgres"] };
                    let slot_taken = if wanted == ["redis"] { redis.is_some() } else { db.is_some() };
                    if slot_taken {
                        continue;
                    }
                    if let Some(target) = wanted.iter().find_map(|k| self.only_service(k, service)) {
                        let path = format!("services.{service}.uses.{target}");
                        if self.b.get(&path).is_none() {
                            self.b.set(&path, json!({}), var.file, var.bytes.clone());
                        }
                        let target_kind = self.b.kind_of_service(&target).unwrap_or_default();
                        self.b.assumed_at(var.file, var.bytes.clone(), format!("{} of `{service}` comes from a Secret; `{target}` is the only {target_kind} service here, so it is taken as the one it names", var.name), format!("set services.{service}.uses in an overlay if it connects elsewhere"));
                        if wanted == ["redis"] { redis = Some(target) } else { db = Some(target) }
                    }
                    continue;
                };
                let host = if url { url_host(raw) } else { Some(raw.trim().to_string()) };
                let Some(host) = host.filter(|h| !h.contains('$')) else { continue };
                let label = host.split('.').next().unwrap_or(&host).to_string();
                let target = self.b.service_named_by_host(&label).or_else(|| {
                    (matches!(host.as_str(), "localhost" | "127.0.0.1")).then(|| services.iter().flatten().find(|s| *s != service && self.b.kind_of_service(s).is_some_and(|k| targets.contains(&k.as_str()))).cloned()).flatten()
                });
                let Some(target) = target.filter(|t| t != service) else { continue };
                let Some(target_kind) = self.b.kind_of_service(&target) else { continue };
                if !targets.contains(&target_kind.as_str()) {
                    continue;
                }
                let slot = if target_kind == "redis" { &mut redis } else { &mut db };
                if slot.is_none() {
                    *slot = Some(target.clone());
                    let path = format!("services.{service}.uses.{target}");
                    if self.b.get(&path).is_none() {
                        self.b.set(&path, json!({}), var.file, var.bytes.clone());
                    }
                }
            }
            app_env::apply_pools(self.b, service, db.as_deref(), redis.as_deref(), &env);
            for target in [db, redis].into_iter().flatten() {
                let base = format!("services.{service}.uses.{target}");
                if self.b.get(&format!("{base}.pool")).is_none() && self.b.get(&format!("{base}.persistent")).is_none() && kind != "pgbouncer" {
                    let at = self.b.origins.get(&crate::load::path::to_pointer(&base)).cloned();
                    if let Some(at) = at {
                        self.b.assumed_at(at.file, at.bytes, format!("`{service}` connects to `{target}`; its pool size is not in these manifests, so one connection per concurrent slot"), format!("set {base}.pool in an overlay if the app's settings cap it"));
                    }
                }
            }
        }
    }

    /// An app or job container's own environment (not the concurrency and pool
    /// variables `render` writes from the plan): plain values as `env.clear`, values
    /// from a Secret by name as `env.secret`.
    fn plain_env(&mut self, o: &Object, c: &str, service: &str, kind: &str) {
        if !is_app_or_job(kind) {
            return;
        }
        for (i, entry) in o.get(&format!("{c}/env")).as_array().cloned().unwrap_or_default().iter().enumerate() {
            let Some(name) = entry.get("name").and_then(Value::as_str) else { continue };
            if name.is_empty() || !name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_') || app_env::is_managed(name) || env::host_variable(name, false).is_some() {
                continue;
            }
            let at = format!("{c}/env/{i}");
            if let Some(value) = entry.get("value").and_then(scalar) {
                self.set(&format!("services.{service}.env.clear.{name}"), json!(value), o.at(&format!("{at}/value")));
            } else if entry.pointer("/valueFrom/secretKeyRef").is_some() {
                let path = format!("services.{service}.env.secret");
                let mut names = self.b.get(&path).and_then(Value::as_array).cloned().unwrap_or_default();
                if !names.contains(&json!(name)) {
                    names.push(json!(name));
                    self.set(&path, Value::Array(names), o.at(&format!("{at}/name")));
                }
            }
        }
    }

    /// `deploy.kubernetes` from what the manifests show: the namespace, the image the
    /// app and job containers share, the rolling-update policy, the Secret they read,
    /// the volume claims and the Ingress; each container's image where it differs.
    fn deploy(&mut self) {
        let objects = self.objects;
        let Some(first) = objects.iter().find(|o| WORKLOADS.contains(&o.kind())) else { return };
        self.file = first.file;
        self.b.mark("deploy.kubernetes", first.file, first.key_at("/kind"));
        if self.b.get("deploy.kubernetes").is_none() {
            self.set("deploy.kubernetes", json!({}), first.key_at("/kind"));
        }
        if let Some(o) = objects.iter().find(|o| WORKLOADS.contains(&o.kind()) && o.str("/metadata/namespace").is_some_and(crate::load::kubernetes::dns1123_label)) {
            self.b.set("deploy.kubernetes.namespace", json!(o.str("/metadata/namespace")), o.file, o.at("/metadata/namespace"));
        }
        let app_image = self.images.iter().find(|(_, kind, ..)| is_app_or_job(kind)).map(|(_, _, image, file, bytes)| (image.clone(), *file, bytes.clone()));
        if let Some((image, file, bytes)) = &app_image {
            self.b.set("deploy.kubernetes.image", json!(image), *file, bytes.clone());
        }
        for (service, kind, image, file, bytes) in self.images.clone() {
            let shared = is_app_or_job(&kind) && app_image.as_ref().is_some_and(|(i, ..)| *i == image);
            if !shared && crate::load::kubernetes::image_reference(&image) && self.b.get(&format!("services.{service}.image")).is_none() {
                self.b.set(&format!("services.{service}.image"), json!(image), file, bytes);
            }
        }
        let rolled = objects.iter().filter(|o| o.kind() == "Deployment").find(|o| {
            let service = self.services.get(o.name()).and_then(|w| w.containers.first().cloned().flatten());
            service.and_then(|s| self.b.kind_of_service(&s)).is_some_and(|k| is_app_or_job(&k))
        });
        if let Some(o) = rolled {
            self.file = o.file;
            for (field, key) in [("maxSurge", "max_surge"), ("maxUnavailable", "max_unavailable")] {
                let pointer = format!("/spec/strategy/rollingUpdate/{field}");
                let value = match o.get(&pointer) {
                    Value::Number(n) => Some(json!(n)),
                    Value::String(text) if text.ends_with('%') => Some(json!(text)),
                    _ => None,
                };
                if let Some(value) = value {
                    self.set(&format!("deploy.kubernetes.{key}"), value, o.at(&pointer));
                }
            }
        }
        let secret = objects.iter().filter(|o| WORKLOADS.contains(&o.kind())).find_map(|o| {
            o.get("/spec/template/spec/containers")
                .as_array()?
                .iter()
                .flat_map(|c| c.get("env").and_then(Value::as_array).cloned().unwrap_or_default())
                .find_map(|e| e.pointer("/valueFrom/secretKeyRef/name").and_then(Value::as_str).map(|n| (n.to_string(), o.file)))
        });
        if let Some((name, file)) = secret.filter(|(n, _)| crate::load::kubernetes::dns1123_subdomain(n)) {
            self.b.set("deploy.kubernetes.secret", json!(name), file, 0..0);
        }
        if let Some(o) = objects.iter().find(|o| o.kind() == "StatefulSet" && o.get("/spec/volumeClaimTemplates/0").is_object()) {
            self.file = o.file;
            let claim = "/spec/volumeClaimTemplates/0/spec";
            if let Some(class) = o.str(&format!("{claim}/storageClassName")).filter(|c| crate::load::kubernetes::dns1123_subdomain(c)) {
                self.set("deploy.kubernetes.storage_class", json!(class), o.at(&format!("{claim}/storageClassName")));
            }
            if let Some(bytes) = o.str(&format!("{claim}/resources/requests/storage")).and_then(memory_quantity) {
                self.set("deploy.kubernetes.volume_size", json!(bytes), o.at(&format!("{claim}/resources/requests/storage")));
            }
        }
        if let Some(o) = objects.iter().find(|o| o.kind() == "Ingress") {
            self.file = o.file;
            if let Some(host) = o.str("/spec/rules/0/host") {
                self.set("deploy.kubernetes.ingress.host", json!(host), o.at("/spec/rules/0/host"));
                if let Some(class) = o.str("/spec/ingressClassName") {
                    self.set("deploy.kubernetes.ingress.class", json!(class), o.at("/spec/ingressClassName"));
                }
                if let Some(tls) = o.str("/spec/tls/0/secretName") {
                    self.set("deploy.kubernetes.ingress.tls_secret", json!(tls), o.at("/spec/tls/0/secretName"));
                }
            }
        }
    }

    /// The one service of a kind other than `except`, when there is exactly one.
    fn only_service(&self, kind: &str, except: &str) -> Option<String> {
        let services = self.b.value.get("services").and_then(Value::as_object)?;
        let matching: Vec<&String> = services.iter().filter(|(name, v)| *name != except && v.get("kind").and_then(Value::as_str) == Some(kind)).map(|(k, _)| k).collect();
        (matching.len() == 1).then(|| matching[0].clone())
    }

    /// CloudNativePG `Cluster`: a postgres with `instances - 1` streaming replicas,
    /// `spec.postgresql.parameters` as its settings.
    fn cnpg_cluster(&mut self, o: &Object) {
        self.file = o.file;
        let service = service_name(o.name());
        if !self.b.has_service(&service) {
            self.b.mark(&format!("services.{service}"), self.file, o.key_at("/metadata/name"));
            self.set(&format!("services.{service}.kind"), json!("postgres"), o.at("/kind"));
        }
        if let Some(n) = o.get("/spec/instances").as_u64().filter(|n| *n > 1) {
            self.set(&format!("services.{service}.read_replicas"), json!(n - 1), o.at("/spec/instances"));
        }
        for (key, value) in o.get("/spec/postgresql/parameters").as_object().cloned().unwrap_or_default() {
            let Some(text) = scalar(&value) else { continue };
            let bytes = o.at(&format!("/spec/postgresql/parameters/{}", escape_segment(&key)));
            if !pgconf::apply_setting(self.b, &service, &key, &text, self.file, bytes.clone()) {
                continue;
            }
        }
        if let Some(image) = o.str("/spec/imageName") {
            images::version_from_image(self.b, &service, "postgres", image, self.file, o.at("/spec/imageName"));
        }
        self.cnpg_resources(o, "/spec/resources", &service);
    }

    /// CloudNativePG `Pooler`: PgBouncer in front of a Cluster.
    fn cnpg_pooler(&mut self, o: &Object) {
        self.file = o.file;
        let service = service_name(o.name());
        self.b.mark(&format!("services.{service}"), self.file, o.key_at("/metadata/name"));
        if self.b.kind_of_service(&service).is_none() {
            self.set(&format!("services.{service}.kind"), json!("pgbouncer"), o.at("/kind"));
        }
        if let Some(n) = o.get("/spec/instances").as_u64().filter(|n| *n >= 1) {
            self.set(&format!("services.{service}.replicas"), json!(n), o.at("/spec/instances"));
        }
        if let Some(mode) = o.str("/spec/pgbouncer/poolMode") {
            pgbouncer_ini::apply_pgbouncer_setting(self.b, &service, "pool_mode", mode, self.file, o.at("/spec/pgbouncer/poolMode"));
        }
        for (key, value) in o.get("/spec/pgbouncer/parameters").as_object().cloned().unwrap_or_default() {
            let Some(text) = scalar(&value) else { continue };
            let bytes = o.at(&format!("/spec/pgbouncer/parameters/{}", escape_segment(&key)));
            if !pgbouncer_ini::apply_pgbouncer_setting(self.b, &service, &key, &text, self.file, bytes.clone()) {
                self.b.ignored(self.file, bytes, format!("PgBouncer parameter `{key}` of Pooler `{}`", o.name()));
            }
        }
        if let Some(cluster) = o.str("/spec/cluster/name") {
            let target = service_name(cluster);
            if self.b.kind_of_service(&target).as_deref() == Some("postgres") {
                self.set(&format!("services.{service}.uses.{target}"), json!({}), o.at("/spec/cluster/name"));
            }
        }
        if let Some(i) = o.get("/spec/template/spec/containers").as_array().and_then(|c| c.iter().position(|c| c.get("name").and_then(Value::as_str) == Some("pgbouncer"))) {
            self.cnpg_resources(o, &format!("/spec/template/spec/containers/{i}/resources"), &service);
        }
    }

    fn cnpg_resources(&mut self, o: &Object, at: &str, service: &str) {
        if o.get(at).is_object() {
            let container = at.strip_suffix("/resources").unwrap_or(at).to_string();
            self.resources(o, &container, service);
        }
    }
}

fn is_app_or_job(kind: &str) -> bool {
    matches!(kind, "gunicorn" | "puma" | "sidekiq" | "celery" | "solid_queue" | "rq" | "worker")
}

/// `$(VAR)` references as the kubelet expands them: a variable defined earlier is
/// replaced, `$$` is a literal `$`, anything else stays as written.
fn expand(text: &str, env: &[EnvVar]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some(value) = env.iter().rev().find(|v| v.name == inner[..end]).and_then(|v| v.value.clone())
        {
            out.push_str(&value);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// A literal block's content read in place: the manifest's text with every byte
/// outside the block's content lines blanked (newlines kept), so offsets are the
/// manifest's; None when the value is not a literal block that holds `content` line
/// for line.
fn in_place(text: &str, span: &Range<usize>, content: &str) -> Option<String> {
    // The value's span starts at its first content character; the line before holds
    // the key and the block indicator.
    let body_start = text.get(..span.start)?.rfind('\n').map_or(0, |i| i + 1);
    let key_line_start = text.get(..body_start.checked_sub(1)?)?.rfind('\n').map_or(0, |i| i + 1);
    let key_line = text.get(key_line_start..body_start)?;
    let indicator = key_line.split_once(':').map(|(_, rest)| rest.trim())?;
    if !indicator.starts_with('|') {
        return None;
    }
    let body = text.get(body_start..span.end.max(body_start))?;
    let lines: Vec<&str> = body.split('\n').collect();
    let expected: Vec<&str> = content.lines().collect();
    if lines.len() < expected.len() {
        return None;
    }
    for (line, want) in lines.iter().zip(&expected) {
        if line.trim() != want.trim() || !line.ends_with(want.trim_start()) {
            return None;
        }
    }
    let end = body_start + lines[..expected.len()].iter().map(|l| l.len() + 1).sum::<usize>();
    let end = end.min(text.len());
    let mut out: Vec<u8> = text.as_bytes().iter().map(|&b| if b == b'\n' { b'\n' } else { b' ' }).collect();
    out[body_start..end].copy_from_slice(&text.as_bytes()[body_start..end]);
    String::from_utf8(out).ok()
}

/// A CPU quantity (`500m`, `2`, `1.5`) as a number of CPUs.
pub fn cpu_quantity(text: &str) -> Option<Value> {
    let text = text.trim();
    let cpus = match text.strip_suffix('m') {
        Some(milli) => milli.parse::<f64>().ok()? / 1000.0,
        None => text.parse::<f64>().ok()?,
    };
    (cpus.is_finite() && cpus >= 0.0).then(|| if cpus.fract() == 0.0 { json!(cpus as u64) } else { json!((cpus * 1000.0).round() / 1000.0) })
}

/// A memory quantity (`512Mi`, `2Gi`, `1G`, `1e9`, `128974848`) in bytes.
pub fn memory_quantity(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic() && c != 'e').unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let factor: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        _ => return None,
    };
    let value: f64 = number.parse().ok()?;
    let bytes = value * factor;
    (bytes.is_finite() && (0.0..1.8e19).contains(&bytes)).then(|| bytes.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str) -> ImportBuilder {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("/nonexistent/manifests.yaml", text.to_string()));
        read(&mut b, id);
        finish(&mut b);
        b
    }

    fn line(b: &ImportBuilder, path: &str) -> usize {
        b.origin_line(path)
    }

    const APP: &str = r#"# Source: shop/templates/web.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: { app: web }
  template:
    metadata:
      labels: { app: web }
    spec:
      containers:
        - name: web
          image: ghcr.io/acme/shop:1.0
          args: ["gunicorn", "--workers", "$(WORKERS)", "--threads", "4", "-k", "gthread", "shop.wsgi"]
          envFrom:
            - configMapRef: { name: web-env }
          env:
            - name: WORKERS
              value: "8"
            - name: DATABASE_URL
              value: postgres://shop@pgbouncer-svc.shop.svc.cluster.local:6432/shop
            - name: SECRET_KEY
              valueFrom: { secretKeyRef: { name: shop, key: SECRET_KEY } }
          resources:
            requests: { cpu: 500m, memory: 1Gi }
            limits: { cpu: "2", memory: 2Gi }
          readinessProbe:
            httpGet: { path: /healthz, port: 8000 }
            periodSeconds: 5
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: web-env
data:
  DB_POOL_SIZE: "4"
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
spec:
  scaleTargetRef: { apiVersion: apps/v1, kind: Deployment, name: web }
  minReplicas: 3
  maxReplicas: 20
  metrics:
    - type: Resource
      resource: { name: cpu, target: { type: Utilization, averageUtilization: 65 } }
---
apiVersion: v1
kind: Service
metadata:
  name: pgbouncer-svc
spec:
  selector: { app.kubernetes.io/name: pgbouncer }
  ports: [{ port: 6432 }]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: pgbouncer
spec:
  replicas: 1
  selector:
    matchLabels: { app.kubernetes.io/name: pgbouncer }
  template:
    metadata:
      labels: { app.kubernetes.io/name: pgbouncer }
    spec:
      containers:
        - name: pgbouncer
          image: edoburu/pgbouncer:1.22.1
          volumeMounts:
            - { name: config, mountPath: /etc/pgbouncer/pgbouncer.ini, subPath: pgbouncer.ini }
      volumes:
        - name: config
          configMap: { name: pgbouncer-config }
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: pgbouncer-config
data:
  pgbouncer.ini: |
    [databases]
    shop = host=shop-db-rw port=5432 dbname=shop

    [pgbouncer]
    pool_mode = transaction
    max_client_conn = 500
    default_pool_size = 20
---
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata:
  name: shop-db
spec:
  instances: 3
  postgresql:
    parameters:
      max_connections: "150"
"#;

    #[test]
    fn a_deployment_with_its_hpa_configmaps_and_services() {
        let b = read_text(APP);
        let web = &b.value["services"]["web"];
        assert_eq!(web["kind"], "gunicorn", "{:#}", b.value);
        assert_eq!(web["workers"], 8, "$(WORKERS) expands from the env");
        assert_eq!(web["threads"], 4);
        assert_eq!(web["replicas"], 3);
        assert_eq!(web["autoscale"], json!({"min": 3, "max": 20, "target_cpu": 65}));
        assert_eq!(line(&b, "services.web.autoscale.max"), 48);
        assert_eq!(web["resources"], json!({"cpus": 2, "memory": 2147483648u64, "reserve_cpus": 0.5, "reserve_memory": 1073741824u64}));
        assert_eq!(web["health"]["path"], "/healthz");
        assert_eq!(web["health"]["interval"], "5s");
        // The Service `pgbouncer-svc` selects the pgbouncer pods.
        assert_eq!(web["uses"]["pgbouncer"]["pool"], 4, "{:#}", web);
        assert_eq!(line(&b, "services.web.uses.pgbouncer"), 24);
        assert_eq!(line(&b, "services.web.uses.pgbouncer.pool"), 39);
        let pgb = &b.value["services"]["pgbouncer"];
        assert_eq!(pgb["kind"], "pgbouncer");
        assert_eq!(pgb["max_client_conn"], 500);
        assert_eq!(line(&b, "services.pgbouncer.max_client_conn"), 93, "the embedded pgbouncer.ini is read at the manifest's lines");
        assert_eq!(pgb["uses"], json!({"shop-db": {}}), "CloudNativePG's `-rw` Service is the cluster");
        let db = &b.value["services"]["shop-db"];
        assert_eq!(db["kind"], "postgres");
        assert_eq!(db["max_connections"], 150);
        assert_eq!(db["read_replicas"], 2);
        assert_eq!(line(&b, "services.shop-db.max_connections"), 104);
    }

    #[test]
    fn cloudnativepg_pooler_and_a_list() {
        let text = r#"apiVersion: v1
kind: List
items:
  - apiVersion: postgresql.cnpg.io/v1
    kind: Cluster
    metadata: { name: app-db }
    spec:
      instances: 1
      postgresql:
        parameters: { max_connections: "60", superuser_reserved_connections: "5" }
  - apiVersion: postgresql.cnpg.io/v1
    kind: Pooler
    metadata: { name: app-pooler }
    spec:
      cluster: { name: app-db }
      instances: 2
      type: rw
      pgbouncer:
        poolMode: transaction
        parameters:
          max_client_conn: "300"
          default_pool_size: "25"
"#;
        let b = read_text(text);
        let pooler = &b.value["services"]["app-pooler"];
        assert_eq!(pooler["kind"], "pgbouncer", "{:#}", b.value);
        assert_eq!(pooler["replicas"], 2);
        assert_eq!(pooler["pool_mode"], "transaction");
        assert_eq!(pooler["max_client_conn"], 300);
        assert_eq!(pooler["uses"], json!({"app-db": {}}));
        assert_eq!(line(&b, "services.app-pooler.max_client_conn"), 21);
        assert_eq!(b.value["services"]["app-db"]["max_connections"], 60);
        assert_eq!(b.value["services"]["app-db"]["superuser_reserved_connections"], 5);
    }

    #[test]
    fn documents_and_quantities() {
        assert_eq!(documents("a: 1\n---\nb: 2\n--- # x\n# only\n...\nc: 3\n").len(), 3);
        assert_eq!(cpu_quantity("250m"), Some(json!(0.25)));
        assert_eq!(cpu_quantity("2"), Some(json!(2)));
        assert_eq!(memory_quantity("512Mi"), Some(512 * 1024 * 1024));
        assert_eq!(memory_quantity("1G"), Some(1_000_000_000));
        assert_eq!(memory_quantity("1e3"), Some(1000));
        assert_eq!(memory_quantity("lots"), None);
        let env = vec![EnvVar { name: "A".into(), value: Some("x".into()), file: 0, bytes: 0..0 }];
        assert_eq!(expand("$(A)-$$(A)-$(B)-$", &env), "x-$(A)-$(B)-$");
    }

    #[test]
    fn helm_templates_and_bad_documents_are_notes_or_located_errors() {
        let b = read_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n");
        assert!(b.diagnostics.iter().any(|d| d.message.contains("helm template")), "{:?}", b.diagnostics);
        let b = read_text("apiVersion: v1\nkind: Service\nmetadata: { name: a }\n---\napiVersion: v1\nkind: [unclosed\n");
        assert_eq!(b.unparsable_lines().len(), 1, "{:?}", b.diagnostics);
        assert!(b.unparsable_lines()[0].starts_with('6') || b.unparsable_lines()[0].starts_with('7'), "{:?}", b.unparsable_lines());
    }
}
