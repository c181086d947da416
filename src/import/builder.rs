//! Writing what the readers found: spec values by dotted path, each with the file and
//! bytes it was read from, plus the notes (ignored constructs, assumptions) and
//! errors (unparsable files) of the run.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;

use serde_json::{Map, Value};

use super::shared::names::{numbered, service_name};
use super::{ASSUMED, IGNORED, UNPARSABLE};
use crate::diag::{Diagnostic, Severity};
use crate::load::{self, path as spec_path};
use crate::report::FileRead;
use crate::source::SourceFile;

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
    /// The environment each service's processes see (values resolved where the
    /// files say), by service: what its config files' `ENV` lookups read.
    pub environments: HashMap<String, Vec<crate::import::shared::env::EnvVar>>,
    /// What the files may not say about the run: the app environment (`--env`) and the
    /// CPUs of the machines (`--cpus`).
    pub facts: crate::import::shared::ruby::Facts,
    /// Services whose puma runs the Solid Queue supervisor (`plugin :solid_queue`),
    /// with where it says so.
    pub solid_queue_in_puma: Vec<(String, FileId, Range<usize>)>,
    /// Job runners' config files (sidekiq.yml, queue.yml), evaluated per service at
    /// the end of the run.
    pub job_configs: Vec<FileId>,
    /// The format each file was read as, by file id (`docker-compose`, `env file`).
    pub formats: HashMap<FileId, String>,
    /// Files looked at and not read, with why.
    pub skipped: Vec<(PathBuf, String)>,
    /// Which service a config file belongs to (filled by compose and Kamal readers from
    /// their mounts and `files:`), keyed by the file's canonical path.
    pub owners: HashMap<PathBuf, String>,
    /// The owner a reader gave one file it found inside another (a ConfigMap's file
    /// mounted into a Kubernetes container), by file id; wins over `owners`.
    pub file_owners: HashMap<FileId, String>,
    /// Host names that stand for a service under another name (Kamal's
    /// `<service>-<accessory>`, compose `container_name` / `hostname` / aliases, a
    /// Kubernetes Service `app-svc` selecting the pods of Deployment `web`,
    /// CloudNativePG's `db-rw`).
    pub host_aliases: HashMap<String, String>,
    /// Kubernetes manifest files taken so far, read together once every file is in.
    pub manifests: Vec<FileId>,
    /// Byte ranges from `offset` on in file `from` that belong to file `to` (at the
    /// range minus `offset`): how one document merged from two files (a Kamal
    /// destination over deploy.yml) keeps each value's own file: (from, offset, to).
    pub redirects: Vec<(FileId, usize, FileId)>,
    /// The program each service's command runs, when it names one (`uwsgi` for a
    /// gunicorn-shaped service): a uwsgi.ini is not applied to a service that runs
    /// gunicorn.
    pub programs: HashMap<String, &'static str>,
    /// Kamal destination files found beside a deploy.yml (`production` for
    /// config/deploy.production.yml), sorted.
    pub kamal_destinations: Vec<String>,
    /// Services the files declare that headroom lists but does not model (memcached, a
    /// Node front end, a one-shot migration), by host name -> why: a proxy that sends
    /// to one of them is not pointing at an app server.
    pub unmodelled: HashMap<String, String>,
    /// Config files a command line names (`puma -C config/puma.rb`): where it names
    /// one, the path, and the note to give if that file is not among the files read.
    /// Settled by `settle_named_configs` once every file is in, since the command is
    /// often read before the file it names.
    pub named_configs: Vec<(FileId, Range<usize>, String, String)>,
    /// Applications an in-image config among the files to read starts (NGINX Unit's
    /// `applications`), known before any file is read: app name -> (the kind it is
    /// modelled as, the config's path). A compose service of that name, or one that
    /// runs `unitd`, is that application's service.
    pub in_image_apps: std::collections::BTreeMap<String, (&'static str, PathBuf)>,
    /// The deployment service that runs each in-image application, by app name.
    pub in_image_owners: HashMap<String, String>,
    /// Files bind-mounted into containers: the path a container sees -> the file's
    /// canonical path here (a command naming `/usr/local/etc/redis/redis.conf` reads
    /// the mounted ./redis.conf).
    pub mounted_at: HashMap<String, PathBuf>,
    /// Assumptions that hold only while a value stays unset (a compose edge's pool,
    /// until the database.yml read later sets it): spec path -> the note's message.
    /// Settled by `settle_assumptions` once every file is in.
    pub assumed_unless_set: Vec<(String, String)>,
}

impl ImportBuilder {
    pub fn new(name: &str) -> Self {
        let mut root = Map::new();
        root.insert("version".into(), Value::from(1));
        root.insert("name".into(), Value::from(name));
        root.insert("services".into(), Value::Object(Map::new()));
        Self { value: Value::Object(root), ..Self::default() }
    }

    /// Records the format a file was read as.
    pub fn read_as(&mut self, file: FileId, format: impl Into<String>) {
        self.formats.insert(file, format.into());
    }

    /// Records a file that was looked at and not read.
    pub fn skip(&mut self, path: impl Into<PathBuf>, why: impl Into<String>) {
        self.skipped.push((path.into(), why.into()));
    }

    /// Every file read (with its format) and skipped (with why), each path once.
    pub fn files(&self) -> Vec<FileRead> {
        let mut out: Vec<FileRead> = Vec::new();
        let skipped_paths: Vec<&PathBuf> = self.skipped.iter().map(|(p, _)| p).collect();
        for (id, source) in self.sources.iter().enumerate() {
            let path = source.path.display().to_string();
            if skipped_paths.contains(&&source.path) || out.iter().any(|f| f.path == path) {
                continue;
            }
            let format = self.formats.get(&id).cloned().unwrap_or_else(|| "included file".to_string());
            out.push(FileRead { path, format: Some(format), skipped: None, deployment: None });
        }
        for (path, why) in &self.skipped {
            let path = path.display().to_string();
            if !out.iter().any(|f| f.path == path) {
                out.push(FileRead { path, format: None, skipped: Some(why.clone()), deployment: None });
            }
        }
        out
    }

    /// Adds a file and returns its id.
    pub fn add_source(&mut self, source: SourceFile) -> FileId {
        self.sources.push(source);
        self.sources.len() - 1
    }

    /// Sets the value at a dotted spec path (`services.lb.worker_connections`),
    /// creating mappings on the way, and records where it came from.
    pub fn set(&mut self, path: &str, value: Value, file: FileId, bytes: Range<usize>) {
        let (file, bytes) = self.real(file, bytes);
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
        let (file, bytes) = self.real(file, bytes);
        self.origins.entry(spec_path::to_pointer(path)).or_insert(Origin { file, bytes });
    }

    /// The value at a dotted path, when set.
    pub fn get(&self, path: &str) -> Option<&Value> {
        self.value.pointer(&spec_path::to_pointer(path))
    }

    /// The service a file belongs to: the owner a compose/Kamal mount named, else the
    /// one headroom's own layout names (`conventional_owner`), else `default`.
    pub fn owner_of(&self, file: FileId, default: &str) -> String {
        if let Some(owner) = self.file_owners.get(&file) {
            return owner.clone();
        }
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

    /// The spec service a host name (a compose service or one of its expanded
    /// replicas, `web-3`) stands for, when the builder has it.
    pub fn service_named_by_host(&self, host: &str) -> Option<String> {
        if let Some(service) = self.host_aliases.get(host).filter(|s| self.has_service(s)) {
            return Some(service.clone());
        }
        let name = service_name(host);
        if self.has_service(&name) {
            return Some(name);
        }
        let (base, _) = numbered(&name)?;
        self.has_service(base).then(|| base.to_string())
    }

    /// Whether a service of that name exists already.
    pub fn has_service(&self, name: &str) -> bool {
        self.value.get("services").and_then(|s| s.get(name)).is_some()
    }

    /// Whether a server config file would describe a service no deployment file runs:
    /// the files describe a deployment (compose, Kamal, manifests) and `service`, the
    /// file's owner by mounts or default, is not one of its services (a uwsgi.ini
    /// beside a compose file whose services run other programs).
    pub fn runs_no_service(&self, service: &str) -> bool {
        let deployment = self.get("deploy.compose").is_some() || self.get("deploy.kamal").is_some() || !self.manifests.is_empty();
        deployment && !self.has_service(service)
    }

    /// The file and bytes a (file, bytes) pair stands for, through `redirects`.
    pub fn real(&self, file: FileId, bytes: Range<usize>) -> (FileId, Range<usize>) {
        match self.redirects.iter().find(|(from, offset, _)| *from == file && bytes.start >= *offset) {
            Some((_, offset, to)) => (*to, bytes.start - offset..bytes.end.saturating_sub(*offset).max(bytes.start - offset)),
            None => (file, bytes),
        }
    }

    fn diagnostic(&mut self, rule: &str, severity: Severity, file: FileId, bytes: Range<usize>, message: String, hint: Option<String>) {
        let (file, bytes) = self.real(file, bytes);
        let span = self.sources.get(file).map(|s| load::make_span(s, bytes));
        let mut d = Diagnostic::new(rule, severity, "", message).at(span);
        d.fix = hint;
        self.diagnostics.push(d);
    }

    /// A construct the reader saw but does not model: a note, never an error.
    pub fn ignored(&mut self, file: FileId, bytes: Range<usize>, what: impl Into<String>) {
        self.diagnostic(IGNORED, Severity::Info, file, bytes, format!("ignored: {}", what.into()), None);
    }

    /// A config file named on a command line; noted as not read unless it is among the
    /// files read by the end of the run.
    pub fn config_named(&mut self, file: FileId, bytes: Range<usize>, path: &str, note: String) {
        self.named_configs.push((file, bytes, path.to_string(), note));
    }

    /// An assumption noted only if `path` is still unset once every file is read.
    pub fn assumed_at_unless_set(&mut self, path: &str, file: FileId, bytes: Range<usize>, message: impl Into<String>, hint: impl Into<String>) {
        self.assumed_at(file, bytes, message, hint);
        if let Some(note) = self.diagnostics.last() {
            self.assumed_unless_set.push((path.to_string(), note.message.clone()));
        }
    }

    /// Withdraws the notes of `assumed_at_unless_set` whose value a file did set.
    pub fn settle_assumptions(&mut self) {
        let set: Vec<String> = std::mem::take(&mut self.assumed_unless_set).into_iter().filter(|(path, _)| self.get(path).is_some()).map(|(_, message)| message).collect();
        self.diagnostics.retain(|d| !(d.rule == ASSUMED && set.contains(&d.message)));
    }

    /// Gives the note of each named config file that no file read stands for.
    pub fn settle_named_configs(&mut self) {
        for (file, bytes, path, note) in std::mem::take(&mut self.named_configs) {
            let mounted = self.mounted_at.get(&path);
            let read = |source: &SourceFile| stands_for(&source.path, &path) || mounted.is_some_and(|m| std::fs::canonicalize(&source.path).is_ok_and(|c| c == *m));
            if !self.sources.iter().any(read) {
                self.ignored(file, bytes, note);
            }
        }
    }

    /// A value the files do not say, and the default headroom used instead.
    pub fn assumed(&mut self, message: impl Into<String>, hint: impl Into<String>) {
        let mut d = Diagnostic::new(ASSUMED, Severity::Info, "", format!("assumed: {}", message.into()));
        d.fix = Some(hint.into());
        self.diagnostics.push(d);
    }

    /// A note that a value was assumed, located where the assumption applies.
    pub fn assumed_at(&mut self, file: FileId, bytes: Range<usize>, message: impl Into<String>, hint: impl Into<String>) {
        let (file, bytes) = self.real(file, bytes);
        let span = self.sources.get(file).map(|s| load::make_span(s, bytes));
        let mut d = Diagnostic::new(ASSUMED, Severity::Info, "", format!("assumed: {}", message.into())).at(span);
        d.fix = Some(hint.into());
        self.diagnostics.push(d);
    }

    /// The kind already set for a service.
    pub fn kind_of_service(&self, service: &str) -> Option<String> {
        self.get(&format!("services.{service}.kind")).and_then(Value::as_str).map(str::to_string)
    }

    /// Sets the service's kind when it has none. True when the service is (now) of that
    /// kind.
    pub fn ensure_kind(&mut self, service: &str, kind: &str, file: FileId, bytes: Range<usize>) -> bool {
        match self.kind_of_service(service) {
            Some(existing) => existing == kind,
            None => {
                self.set(&format!("services.{service}.kind"), Value::from(kind), file, bytes);
                true
            }
        }
    }

    /// The command-line flag (`--workers 8`) a value was read from, when it was: flags win
    /// over config files, which win over environment defaults.
    pub fn set_by_flag(&self, path: &str) -> Option<String> {
        let origin = self.origins.get(&load::path::to_pointer(path))?;
        let text = self.sources.get(origin.file)?.text.get(origin.bytes.clone())?;
        text.starts_with('-').then(|| text.to_string())
    }

    /// The one service of a kind in the builder, else `fallback`.
    pub fn default_service(&self, kinds: &[&str], fallback: &str) -> String {
        let services = self.value.get("services").and_then(Value::as_object);
        let matching: Vec<&String> = services
            .map(|s| s.iter().filter(|(_, v)| v.get("kind").and_then(Value::as_str).is_some_and(|k| kinds.contains(&k))).map(|(k, _)| k).collect())
            .unwrap_or_default();
        if matching.len() == 1 && !self.has_service(fallback) {
            return matching[0].clone();
        }
        fallback.to_string()
    }

    /// A file (or part of one) that cannot be parsed: an error naming file and line;
    /// other files are still read.
    pub fn unparsable(&mut self, file: FileId, bytes: Range<usize>, message: impl Into<String>, hint: impl Into<String>) {
        self.diagnostic(UNPARSABLE, Severity::Error, file, bytes, message.into(), Some(hint.into()));
    }
}

/// Whether the file read at `read` is the one a command names as `named`: the same
/// trailing path, where an absolute name inside a container (`/app/config/puma.rb`)
/// may drop its leading folders down to the file and its folder (`config/puma.rb`).
fn stands_for(read: &std::path::Path, named: &str) -> bool {
    use std::path::{Component, Path};
    let parts: Vec<&std::ffi::OsStr> = Path::new(named)
        .components()
        .filter_map(|c| if let Component::Normal(part) = c { Some(part) } else { None })
        .collect();
    let shortest = parts.len().min(2);
    (shortest.max(1)..=parts.len()).rev().any(|n| read.ends_with(parts[parts.len() - n..].iter().collect::<PathBuf>()))
}

#[cfg(test)]
mod named_config_tests {
    use super::stands_for;
    use std::path::Path;

    #[test]
    fn a_named_config_matches_the_file_read_by_its_trailing_path() {
        let read = Path::new("/repo/app/config/puma.rb");
        assert!(stands_for(read, "config/puma.rb"));
        assert!(stands_for(read, "./config/puma.rb"));
        assert!(stands_for(read, "/rails/config/puma.rb"));
        assert!(!stands_for(read, "config/puma/production.rb"));
        assert!(!stands_for(read, "/etc/puma.rb"));
        assert!(stands_for(Path::new("/repo/gunicorn.conf.py"), "gunicorn.conf.py"));
        assert!(!stands_for(read, ""));
    }
}
