//! Reading hand-edited configs back: one reader per foreign format, each writing what
//! it finds into an `ImportBuilder` as spec values with the file and line they came
//! from. The result goes through the same loader, plan and rules as a spec, so `lint`
//! reports the same rule IDs pointing at the foreign files, and `import` writes the
//! spec out.

pub mod app_env;
pub mod args;
pub mod compose;
pub mod detect;
pub mod gunicorn_py;
pub mod ini;
pub mod kamal;
pub mod nginx;
pub mod pgconf;
pub mod puma_rb;
pub mod rails_db;
pub mod redis_conf;
pub mod sysctl_conf;

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::diag::{Diagnostic, Severity, Span};
use crate::load::{self, Locate, path as spec_path};
use crate::source::SourceFile;

/// Rule ID of a construct a reader does not model (reported as a note).
pub const IGNORED: &str = "import-ignored";
/// Rule ID of a value a reader had to assume (reported as a note).
pub const ASSUMED: &str = "import-assumed";
/// Rule ID of a foreign file that cannot be parsed.
pub const UNPARSABLE: &str = "import-unparsable";

/// Index of a source file in the builder.
pub type FileId = usize;

/// Where a value came from in a foreign file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: FileId,
    pub bytes: Range<usize>,
}

/// Collects spec values (by dotted spec path) with their origins.
#[derive(Debug, Default)]
pub struct ImportBuilder {
    /// The files read, in order.
    pub sources: Vec<SourceFile>,
    /// The spec being rebuilt, as JSON (the same shape `capacity.yaml` has).
    pub value: Value,
    /// JSON pointer -> where it was read.
    pub origins: HashMap<String, Origin>,
    /// Notes (ignored constructs, assumptions) and errors (unparsable files).
    pub diagnostics: Vec<Diagnostic>,
    /// Which service a config file belongs to (filled by compose and Kamal readers from
    /// their mounts and `files:`), keyed by the file's canonical path.
    pub owners: HashMap<PathBuf, String>,
}

impl ImportBuilder {
    pub fn new(name: &str) -> Self {
        let mut root = Map::new();
        root.insert("version".into(), Value::from(1));
        root.insert("name".into(), Value::from(name));
        root.insert("services".into(), Value::Object(Map::new()));
        Self { value: Value::Object(root), ..Self::default() }
    }

    /// Adds a file and returns its id.
    pub fn add_source(&mut self, source: SourceFile) -> FileId {
        self.sources.push(source);
        self.sources.len() - 1
    }

    /// Sets the value at a dotted spec path (`services.lb.worker_connections`),
    /// creating mappings on the way, and records where it came from.
    pub fn set(&mut self, path: &str, value: Value, file: FileId, bytes: Range<usize>) {
        let pointer = spec_path::to_pointer(path);
        let mut node = &mut self.value;
        let segments: Vec<spec_path::Segment> = spec_path::parse(path);
        for (i, segment) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            match segment {
                spec_path::Segment::Key(key) => {
                    if !node.is_object() {
                        *node = Value::Object(Map::new());
                    }
                    let map = node.as_object_mut().expect("just made an object");
                    if last {
                        map.insert(key.clone(), value);
                        break;
                    }
                    node = map.entry(key.clone()).or_insert_with(|| match segments.get(i + 1) {
                        Some(spec_path::Segment::Index(_)) => Value::Array(Vec::new()),
                        _ => Value::Object(Map::new()),
                    });
                }
                spec_path::Segment::Index(index) => {
                    if !node.is_array() {
                        *node = Value::Array(Vec::new());
                    }
                    let items = node.as_array_mut().expect("just made an array");
                    while items.len() <= *index {
                        items.push(Value::Object(Map::new()));
                    }
                    if last {
                        items[*index] = value;
                        break;
                    }
                    node = &mut items[*index];
                }
            }
        }
        self.origins.insert(pointer, Origin { file, bytes });
    }

    /// Records where a mapping (a service, an upstream) was declared, without a value.
    pub fn mark(&mut self, path: &str, file: FileId, bytes: Range<usize>) {
        self.origins.entry(spec_path::to_pointer(path)).or_insert(Origin { file, bytes });
    }

    /// The value at a dotted path, when set.
    pub fn get(&self, path: &str) -> Option<&Value> {
        self.value.pointer(&spec_path::to_pointer(path))
    }

    /// The service a file belongs to: the owner a compose/Kamal mount named, else the
    /// one headroom's own layout names (`conventional_owner`), else `default`.
    pub fn owner_of(&self, file: FileId, default: &str) -> String {
        self.sources
            .get(file)
            .and_then(|s| std::fs::canonicalize(&s.path).ok())
            .and_then(|p| self.owners.get(&p).cloned())
            .or_else(|| self.conventional_owner(file))
            .unwrap_or_else(|| default.to_string())
    }

    /// The service (or, for sysctl files, machine group) the path of a file names in
    /// the layout `headroom render` writes: `postgres/<service>.conf`,
    /// `redis/<service>.conf`, `redis/<service>-sentinel.conf`, `env/<service>.env`,
    /// `sysctl/<machine>.conf` and `<service>/gunicorn.conf.py`. The name is taken when
    /// a service (machine) of that name is described already, or (except for the
    /// gunicorn directory) when the file carries headroom's header; a foreign
    /// `postgres/custom.conf` keeps the default owner.
    pub fn conventional_owner(&self, file: FileId) -> Option<String> {
        let source = self.sources.get(file)?;
        let path = &source.path;
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let parent = path.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
        let generated = source.text.lines().next().is_some_and(|l| l.starts_with("# Generated by headroom "));
        let valid = |n: &str| !n.is_empty() && n.len() <= 63 && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        let machine = |n: &str| self.value.get("machines").and_then(|m| m.get(n)).is_some();
        let (candidate, is_machine) = match parent.as_str() {
            "postgres" | "redis" => {
                let stem = name.strip_suffix(".conf")?;
                let stem = if parent == "redis" { stem.strip_suffix("-sentinel").unwrap_or(stem) } else { stem };
                (stem.to_string(), false)
            }
            "env" => (name.strip_suffix(".env")?.to_string(), false),
            "sysctl" => (name.strip_suffix(".conf")?.to_string(), true),
            // A directory is named after the service only when that service exists
            // (`config/gunicorn.conf.py` is not a service `config`).
            dir if name.starts_with("gunicorn") && name.ends_with(".py") => return (valid(dir) && self.has_service(dir)).then(|| dir.to_string()),
            _ => return None,
        };
        if !valid(&candidate) {
            return None;
        }
        let known = if is_machine { machine(&candidate) } else { self.has_service(&candidate) };
        (known || generated).then_some(candidate)
    }

    /// The line a value at a dotted path was read from (for reader tests).
    #[cfg(test)]
    pub(crate) fn origin_line(&self, path: &str) -> usize {
        let origin = self.origins.get(&spec_path::to_pointer(path)).unwrap_or_else(|| panic!("no origin for {path}"));
        self.sources[origin.file].line_col(origin.bytes.start).line
    }

    /// `LINE message` of every unparsable-file error (for reader tests).
    #[cfg(test)]
    pub(crate) fn unparsable_lines(&self) -> Vec<String> {
        self.diagnostics
            .iter()
            .filter(|d| d.rule == UNPARSABLE)
            .map(|d| format!("{} {}", d.span.as_ref().map_or(0, |s| s.line), d.message))
            .collect()
    }

    /// Whether a service of that name exists already.
    pub fn has_service(&self, name: &str) -> bool {
        self.value.get("services").and_then(|s| s.get(name)).is_some()
    }

    fn diagnostic(&mut self, rule: &str, severity: Severity, file: FileId, bytes: Range<usize>, message: String, hint: Option<String>) {
        let span = self.sources.get(file).map(|s| load::make_span(s, bytes));
        let mut d = Diagnostic::new(rule, severity, "", message).at(span);
        d.fix = hint;
        self.diagnostics.push(d);
    }

    /// A construct the reader saw but does not model: a note, never an error.
    pub fn ignored(&mut self, file: FileId, bytes: Range<usize>, what: impl Into<String>) {
        self.diagnostic(IGNORED, Severity::Info, file, bytes, format!("ignored: {}", what.into()), None);
    }

    /// A value the files do not say, and the default headroom used instead.
    pub fn assumed(&mut self, message: impl Into<String>, hint: impl Into<String>) {
        let mut d = Diagnostic::new(ASSUMED, Severity::Info, "", format!("assumed: {}", message.into()));
        d.fix = Some(hint.into());
        self.diagnostics.push(d);
    }

    /// A file (or part of one) that cannot be parsed: an error naming file and line;
    /// other files are still read.
    pub fn unparsable(&mut self, file: FileId, bytes: Range<usize>, message: impl Into<String>, hint: impl Into<String>) {
        self.diagnostic(UNPARSABLE, Severity::Error, file, bytes, message.into(), Some(hint.into()));
    }
}

/// What `lint` / `import` produced: a loaded spec plus the places its values came from.
#[derive(Debug)]
pub struct ImportedSpec {
    pub sources: Vec<SourceFile>,
    pub origins: HashMap<String, Origin>,
    pub value: Value,
    pub spec: crate::spec::Spec,
}

impl Locate for ImportedSpec {
    fn locate(&self, path: &str) -> Option<Span> {
        let mut pointer = spec_path::to_pointer(path);
        loop {
            if let Some(origin) = self.origins.get(&pointer) {
                let source = self.sources.get(origin.file)?;
                let mut span = load::make_span(source, origin.bytes.clone());
                span.exact = pointer == spec_path::to_pointer(path);
                return Some(span);
            }
            match pointer.rfind('/') {
                Some(i) => pointer.truncate(i),
                None => return None,
            }
        }
    }
    fn source_for(&self, path: &str) -> Option<&SourceFile> {
        let span = self.locate(path)?;
        self.sources.iter().find(|s| s.path.display().to_string() == span.file)
    }
}

/// Reads every path (files, or directories searched for known files) into a builder.
pub fn read_paths(paths: &[PathBuf], name: &str) -> ImportBuilder {
    let mut builder = ImportBuilder::new(name);
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            files.extend(detect::find_known_files(path));
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    files.dedup();
    // Compose and Kamal first: they name the services the other files configure.
    files.sort_by_key(|f| detect::order(&detect::kind_of(f, None)));
    for file in files {
        read_file(&mut builder, &file);
    }
    place_on_compose_host(&mut builder);
    builder
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

/// Reads one file by its detected kind.
pub fn read_file(builder: &mut ImportBuilder, path: &Path) {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            let mut d = Diagnostic::new(UNPARSABLE, Severity::Error, "", format!("cannot read {}: {e}", path.display()));
            d.fix = Some("check the path".into());
            builder.diagnostics.push(d);
            return;
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) if !t.contains('\0') => t,
        _ => {
            let source = SourceFile::new(path, String::new());
            let id = builder.add_source(source);
            builder.unparsable(id, 0..0, format!("{} is not a text file", path.display()), "pass config files only");
            return;
        }
    };
    if text.len() > load::yaml::MAX_INPUT_BYTES {
        let id = builder.add_source(SourceFile::new(path, String::new()));
        builder.unparsable(id, 0..0, format!("{} is larger than {} bytes", path.display(), load::yaml::MAX_INPUT_BYTES), "is this a config file?");
        return;
    }
    let kind = detect::kind_of(path, Some(&text));
    let id = builder.add_source(SourceFile::new(path, text));
    match kind {
        detect::Kind::Nginx => nginx::read(builder, id),
        detect::Kind::Pgbouncer => ini::read_pgbouncer(builder, id),
        detect::Kind::PostgresConf => pgconf::read(builder, id),
        detect::Kind::RedisConf => redis_conf::read(builder, id),
        detect::Kind::SentinelConf => redis_conf::read_sentinel(builder, id),
        detect::Kind::Compose => compose::read(builder, id),
        detect::Kind::Kamal => kamal::read(builder, id),
        detect::Kind::GunicornPy => gunicorn_py::read(builder, id),
        detect::Kind::PumaRb => puma_rb::read(builder, id),
        detect::Kind::RailsDatabase => rails_db::read(builder, id),
        detect::Kind::Sysctl => sysctl_conf::read(builder, id),
        detect::Kind::Railway => args::read_railway(builder, id),
        detect::Kind::AppEnv => app_env::read(builder, id),
        detect::Kind::Unknown => {
            let shown = path.display().to_string();
            builder.ignored(id, 0..0, format!("{shown}: not a format headroom reads (nginx, pgbouncer.ini, postgresql.conf, redis.conf, docker-compose, Kamal deploy.yml, gunicorn.conf.py, puma.rb, database.yml, sysctl, railway.toml)"));
        }
    }
}

/// What the files cannot know, given on the command line.
#[derive(Clone, Debug, Default)]
pub struct LoadFlags {
    pub rps: Option<f64>,
    pub service_time: Option<String>,
    pub db_time: Option<String>,
    pub concurrent_users: Option<u64>,
}

/// How to import.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Deployment name for the spec.
    pub name: String,
    /// A small spec supplying what the files cannot say (load, uses, ...).
    pub overlay: Option<PathBuf>,
    pub load: LoadFlags,
}

/// The outcome of reading foreign files.
#[derive(Debug)]
pub struct ImportOutcome {
    /// The rebuilt spec, when it validates.
    pub imported: Option<ImportedSpec>,
    /// Notes (ignored, assumed) and errors (unparsable files, invalid values), located
    /// in the foreign files.
    pub diagnostics: Vec<Diagnostic>,
    /// Every file read (for reports).
    pub sources: Vec<SourceFile>,
}

/// Merges `overlay` into `base`: the overlay fills what the files leave out; where
/// both set a value, the files win and the conflict is returned.
fn merge(base: &mut Value, overlay: &Value, pointer: &str, conflicts: &mut Vec<String>) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                let child = format!("{pointer}/{}", load::yaml::escape_segment(k));
                match b.get_mut(k) {
                    Some(existing) => merge(existing, v, &child, conflicts),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => {
            if b != o && pointer != "/version" && pointer != "/name" {
                conflicts.push(pointer.to_string());
            }
        }
    }
}

/// Reads the files, applies the overlay and flags, and validates the result as a spec.
pub fn import(paths: &[PathBuf], options: &ImportOptions) -> ImportOutcome {
    let mut builder = read_paths(paths, &options.name);
    if let Some(overlay_path) = &options.overlay {
        apply_overlay(&mut builder, overlay_path);
    }
    let flags = &options.load;
    let load_pairs: [(&str, Option<Value>); 4] = [
        ("load.rps", flags.rps.map(Value::from)),
        ("load.service_time", flags.service_time.clone().map(Value::from)),
        ("load.db_time", flags.db_time.clone().map(Value::from)),
        ("load.concurrent_users", flags.concurrent_users.map(Value::from)),
    ];
    for (path, value) in load_pairs {
        if let Some(v) = value {
            let pointer = spec_path::to_pointer(path);
            set_without_origin(&mut builder.value, &pointer, v);
        }
    }
    if builder.get("load").is_none() {
        builder.assumed(
            "no load is known: the files hold no request rate, so throughput and latency rules (capacity-below-load, db-pool-below-load, nginx-worker-connections) are skipped",
            "pass --rps and --service-time (e.g. --rps 800 --service-time 100ms), or an --overlay spec with `load:`",
        );
    } else if builder.get("load.service_time").is_none() || builder.get("load.rps").is_none() {
        builder.assumed("load is incomplete: both rps and service_time are needed", "pass --rps and --service-time");
        if let Some(map) = builder.value.as_object_mut() {
            map.remove("load");
        }
    }
    if builder.value.get("services").and_then(Value::as_object).is_some_and(|s| s.is_empty()) {
        builder.assumed("no service was found in the files given", "pass config files or a directory holding them");
    }
    let ImportBuilder { sources, mut value, origins, mut diagnostics, .. } = builder;
    let locate = |pointer: &str, _key_only: bool| -> Option<Span> {
        let mut p = pointer.to_string();
        loop {
            if let Some(o) = origins.get(&p) {
                return sources.get(o.file).map(|s| load::make_span(s, o.bytes.clone()));
            }
            match p.rfind('/') {
                Some(i) => p.truncate(i),
                None => return None,
            }
        }
    };
    let validated = load::validate_value(&mut value, &locate);
    let imported = match validated {
        Ok(spec) => Some(ImportedSpec { sources: sources.clone(), origins, value, spec }),
        Err(problems) => {
            diagnostics.extend(problems);
            None
        }
    };
    ImportOutcome { imported, diagnostics, sources }
}

fn set_without_origin(root: &mut Value, pointer: &str, value: Value) {
    let mut node = root;
    let segments: Vec<&str> = pointer.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        let map = node.as_object_mut().expect("object");
        if i + 1 == segments.len() {
            map.insert(seg.to_string(), value);
            return;
        }
        node = map.entry(seg.to_string()).or_insert_with(|| Value::Object(Map::new()));
    }
}

fn apply_overlay(builder: &mut ImportBuilder, path: &Path) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            let mut d = Diagnostic::new(UNPARSABLE, Severity::Error, "", format!("cannot read overlay {}: {e}", path.display()));
            d.fix = Some("check the --overlay path".into());
            builder.diagnostics.push(d);
            return;
        }
    };
    let source = SourceFile::new(path, text);
    let parsed = load::yaml::parse(&source);
    let id = builder.add_source(source);
    match parsed {
        Ok((overlay, spans)) => {
            let mut conflicts = Vec::new();
            merge(&mut builder.value, &overlay, "", &mut conflicts);
            for (pointer, node) in spans.iter() {
                let bytes = node.key.clone().map_or(node.value.clone(), |k| k.start..node.value.end);
                builder.origins.entry(pointer.to_string()).or_insert(Origin { file: id, bytes });
            }
            for pointer in conflicts {
                let bytes = spans.get(&pointer).map(|n| n.value.clone()).unwrap_or(0..0);
                let shown = spec_path::from_pointer(&pointer, &builder.value);
                builder.ignored(id, bytes, format!("overlay value for `{shown}`: the config files set it, and they win"));
            }
        }
        Err(e) => builder.unparsable(id, e.span, format!("overlay: {}", e.message), e.hint.unwrap_or_else(|| "fix the overlay YAML".into())),
    }
}

/// The imported spec as capacity.yaml text: modeline, where it came from, what was
/// assumed, then the spec.
pub fn to_yaml(imported: &ImportedSpec, notes: &[Diagnostic]) -> String {
    let mut out = String::from("# Imported by `headroom import` from:\n");
    for s in &imported.sources {
        out.push_str(&format!("#   {}\n", s.path.display()));
    }
    let assumed: Vec<&Diagnostic> = notes.iter().filter(|d| d.rule == ASSUMED).collect();
    if !assumed.is_empty() {
        out.push_str("#\n# Assumed (the files do not say; check these):\n");
        for d in assumed {
            out.push_str(&format!("#   - {}\n", d.message.trim_start_matches("assumed: ")));
        }
    }
    out.push_str("#\n# Editor support: `headroom schema > capacity.schema.json`, then start this file with\n");
    out.push_str("# `# yaml-language-server: $schema=capacity.schema.json`.\n\n");
    out.push_str(&serde_saphyr::to_string(&imported.value).unwrap_or_default());
    out
}
