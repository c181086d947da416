//! Reading hand-edited configs back into a spec, in three steps:
//!
//! 1. `discover`: find the files under the paths given, tell each file's kind, and
//!    read the deployments they describe (compose projects, Kamal configs, Railway
//!    services) as processes, each with its command line and environment.
//! 2. `interpret`: each process by the program its command runs (gunicorn, puma,
//!    sidekiq, celery, redis-server, postgres, ...), its flags, the environment
//!    variables that program reads and the config files it loads (puma.rb,
//!    gunicorn.conf.py, database.yml), evaluated in that environment; `formats`
//!    reads the config files of nginx, pgbouncer, postgres, redis and sysctl.
//! 3. `builder`: every value is written as a spec value with the file and bytes it
//!    came from, so `lint` reports the same rule IDs as `check`, pointing into the
//!    foreign files, and `import` writes the spec out.
//!
//! `shared` holds what all of them use and nothing format-specific: YAML spans,
//! command-line words, environment references, units, names, and the small Ruby,
//! ERB and Python evaluators.

pub mod builder;
pub mod discover;
pub mod formats;
pub mod interpret;
pub mod shared;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

pub use builder::{FileId, ImportBuilder, Origin};
pub use discover::{read_file, read_paths};
use crate::diag::{Diagnostic, Severity, Span};
use crate::load::{self, Locate, path as spec_path};
use crate::source::SourceFile;

/// Rule ID of a construct a reader does not model (reported as a note).
pub const IGNORED: &str = "import-ignored";
/// Rule ID of a value a reader had to assume (reported as a note).
pub const ASSUMED: &str = "import-assumed";
/// Rule ID of a foreign file that cannot be parsed.
pub const UNPARSABLE: &str = "import-unparsable";

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
    /// The environment config code runs as (empty: production).
    pub app_env: String,
    /// The CPUs of the machines, when the files do not say.
    pub cpus: Option<u64>,
    /// `max_connections` of a database the files do not describe.
    pub db_max_connections: Option<u64>,
    /// The Kamal destination to read (`deploy.<destination>.yml` over deploy.yml).
    pub destination: Option<String>,
}

impl ImportOptions {
    /// The facts of the run these options give.
    pub fn facts(&self) -> shared::facts::Facts {
        let mut facts = shared::facts::Facts::default();
        if !self.app_env.is_empty() {
            facts.app_env = self.app_env.clone();
        }
        facts.db_max_connections = self.db_max_connections;
        facts.destination = self.destination.clone();
        if let Some(cpus) = self.cpus {
            facts.cpus = cpus;
            facts.cpus_known = true;
        }
        facts
    }
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
    /// Every file read, with its format, and every file skipped, with why.
    pub files: Vec<crate::report::FileRead>,
    /// Kamal destinations found beside a deploy.yml (each its own deployment).
    pub kamal_destinations: Vec<String>,
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
    let mut builder = discover::read_paths_with(paths, &options.name, options.facts());
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
    let files = builder.files();
    let kamal_destinations = builder.kamal_destinations.clone();
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
    let imported = validate_dropping(&mut value, &locate, &mut diagnostics).map(|spec| ImportedSpec { sources: sources.clone(), origins, value, spec });
    ImportOutcome { imported, diagnostics, sources, files, kamal_destinations }
}

/// Rounds of dropping invalid values before the spec is given up on.
const MAX_DROP_ROUNDS: usize = 64;

/// Validates the rebuilt spec. A value the files gave that the spec cannot hold (an
/// upstream to a service that serves no requests, a setting out of range) is
/// dropped with a located note saying why, and the rest validated again, so what
/// could be read is still checked. None when even that leaves nothing valid.
fn validate_dropping(value: &mut Value, locate: &dyn Fn(&str, bool) -> Option<Span>, notes: &mut Vec<Diagnostic>) -> Option<crate::spec::Spec> {
    for _ in 0..MAX_DROP_ROUNDS {
        let problems = match load::validate_value(value, locate) {
            Ok(spec) => return Some(spec),
            Err(problems) => problems,
        };
        let mut dropped = false;
        for problem in &problems {
            let Some(pointer) = droppable(value, &spec_path::to_pointer(&problem.path)) else { continue };
            if remove_pointer(value, &pointer) {
                dropped = true;
                let shown = spec_path::from_pointer(&pointer, &Value::Null);
                let mut d = Diagnostic::new(IGNORED, Severity::Info, "", format!("ignored: `{shown}` as read: {}", problem.message)).at(problem.span.clone());
                d.fix = problem.fix.clone();
                notes.push(d);
            }
        }
        if !dropped {
            notes.extend(problems);
            return None;
        }
    }
    None
}

/// The deepest part of `pointer` that exists in the value and may be dropped: never
/// the root, `version`, `name` or the `services` mapping itself.
fn droppable(value: &Value, pointer: &str) -> Option<String> {
    let mut p = pointer.to_string();
    while value.pointer(&p).is_none() {
        p.truncate(p.rfind('/')?);
    }
    (!matches!(p.as_str(), "" | "/version" | "/name" | "/services")).then_some(p)
}

fn remove_pointer(value: &mut Value, pointer: &str) -> bool {
    let Some((parent, last)) = pointer.rsplit_once('/') else { return false };
    let key = last.replace("~1", "/").replace("~0", "~");
    match value.pointer_mut(parent) {
        Some(Value::Object(map)) => map.shift_remove(&key).is_some(),
        Some(Value::Array(items)) => match key.parse::<usize>() {
            Ok(i) if i < items.len() => {
                items.remove(i);
                true
            }
            _ => false,
        },
        _ => false,
    }
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

/// The files read that headroom did not write (no headroom-sha256 seal), relative to
/// `spec_dir` where the spec will live: what `deploy.keep` lists, so `render` never
/// replaces the volumes, env_file, entrypoints, secrets, plugins and hooks they hold
/// with what the spec models. The overlay, stdin and files outside `spec_dir` are left
/// out.
pub fn foreign_files(sources: &[SourceFile], spec_dir: &Path, overlay: Option<&Path>) -> Vec<String> {
    let Ok(dir) = spec_dir.canonicalize() else { return Vec::new() };
    let overlay = overlay.and_then(|o| o.canonicalize().ok());
    let mut kept: Vec<String> = sources
        .iter()
        .filter(|s| crate::targets::seal::ownership(&s.text) == crate::targets::seal::Owner::Foreign)
        .filter_map(|s| s.path.canonicalize().ok())
        .filter(|p| overlay.as_ref() != Some(p))
        .filter_map(|p| p.strip_prefix(&dir).ok().map(|r| r.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect::<Vec<_>>().join("/")))
        .filter(|r| !r.is_empty())
        .collect();
    kept.sort();
    kept.dedup();
    kept
}

/// Sets `deploy.keep` of the imported spec to `files` (nothing when empty).
pub fn keep_files(imported: &mut ImportedSpec, files: Vec<String>) {
    if files.is_empty() {
        return;
    }
    if let Some(root) = imported.value.as_object_mut() {
        let deploy = root.entry("deploy").or_insert_with(|| Value::Object(Map::new()));
        if let Some(deploy) = deploy.as_object_mut() {
            deploy.insert("keep".into(), Value::from(files.clone()));
        }
    }
    imported.spec.deploy.get_or_insert_with(Default::default).keep = files;
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
    let unread: Vec<&Diagnostic> = notes.iter().filter(|d| d.rule == UNPARSABLE).collect();
    if !unread.is_empty() {
        out.push_str("#\n# Not read (these files, or parts of them, could not be parsed):\n");
        for d in unread {
            let at = d.span.as_ref().map(|s| format!("{}:{}: ", s.file, s.line)).unwrap_or_default();
            out.push_str(&format!("#   - {at}{}\n", d.message.replace('\n', " ")));
        }
    }
    out.push_str("#\n# Editor support: `headroom schema > capacity.schema.json`, then start this file with\n");
    out.push_str("# `# yaml-language-server: $schema=capacity.schema.json`.\n\n");
    out.push_str(&serde_saphyr::to_string(&imported.value).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::shared::argv::{shell_words, split};

    /// Generated garbage through every reader: notes and errors, never a panic.
    #[test]
    fn no_reader_panics_on_generated_input() {
        const PIECES: [&str; 48] = [
            "gunicorn", " ", "-w", "--workers", "=", "'", "\"", "\\", "$", "${", "}", ":-", "8", "\n", "#", "&&", ";", "é", "services:",
            "\n  web-1:", "\n    command: ", "\n- ", "<%=", "%>", "ENV.fetch(\"X\") { 5 }", "workers ", "threads ", "(", ")", "[", "]", "*", "+",
            " do\n", "end\n", "\t", "\u{0}", "&a ", "*a", "{", "redis-server --maxmemory", "postgres -c", "servers:", "hosts:", "image: redis",
            "[deploy]\nstartCommand = ", "pool: ", "production:",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let readers: [fn(&mut ImportBuilder, FileId); 7] = [
            discover::compose::read,
            discover::kamal::read,
            interpret::puma::read,
            interpret::gunicorn::read,
            interpret::rails_db::read,
            discover::railway::read,
            |b, f| {
                let text = b.sources[f].text.clone();
                let words = shell_words(&text);
                interpret::apply_command(b, "web", &words, f, &Default::default());
            },
        ];
        for _ in 0..1500 {
            let n = (next() % 40) as usize + 1;
            let text: String = (0..n).map(|_| PIECES[(next() % PIECES.len() as u64) as usize]).collect();
            let _ = split(&text);
            let reader = readers[(next() % readers.len() as u64) as usize];
            let mut b = ImportBuilder::new("t");
            let id = b.add_source(SourceFile::new("fuzz", text));
            reader(&mut b, id);
        }
    }
}
