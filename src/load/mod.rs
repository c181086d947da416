//! Loading a spec: bytes -> YAML -> schema check -> typed `Spec` -> reference check.
//! Every problem found is collected (never only the first), each located at
//! file:line:column with a hint; a spec with any problem is never resolved.

pub mod kubernetes;
pub mod limits;
pub mod path;
pub mod versions;
pub mod precheck;
pub mod yaml;

use std::path::Path;

use serde_json::Value;

use crate::diag::{Diagnostic, Severity, Span};
use crate::source::SourceFile;
use crate::spec::{Service, Spec};
use yaml::SpanMap;

/// Rule ID of a schema, type or reference problem in the spec.
pub const SPEC_INVALID: &str = "spec-invalid";
/// Rule ID of a file that is not valid YAML (or not readable text).
pub const YAML_SYNTAX: &str = "yaml-syntax";

/// A spec that loaded cleanly, with what is needed to point into it.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub source: SourceFile,
    pub value: Value,
    pub spans: SpanMap,
    pub spec: Spec,
}

/// Where paths of a loaded input point. Specs and imported foreign files both
/// implement it, so reports locate every finding the same way.
pub trait Locate {
    /// The span of a dotted spec path, or of its closest written ancestor.
    fn locate(&self, path: &str) -> Option<Span>;
    /// The file a path lives in (for reports that need the text).
    fn source_for(&self, path: &str) -> Option<&SourceFile>;
}

impl Locate for Loaded {
    fn locate(&self, path: &str) -> Option<Span> {
        locate_in(&self.source, &self.spans, &path::to_pointer(path), false)
    }
    fn source_for(&self, _path: &str) -> Option<&SourceFile> {
        Some(&self.source)
    }
}

/// The span of a pointer: the key and value when both are written (`workers: 8`), the
/// closest written ancestor's key otherwise. `key_only` points at the key alone.
pub fn locate_in(source: &SourceFile, spans: &SpanMap, pointer: &str, key_only: bool) -> Option<Span> {
    let (found, node) = spans.closest(pointer)?;
    let exact = found == pointer;
    let range = match (&node.key, exact && !key_only) {
        (Some(key), true) if node.value.end >= key.start && node.value.end - key.start < 200 => key.start..node.value.end,
        (Some(key), _) => key.clone(),
        (None, _) => node.value.start..node.value.start.max(node.value.end.min(node.value.start + 1)),
    };
    let mut span = make_span(source, range);
    span.exact = exact;
    Some(span)
}

/// A `Span` of a byte range in a source.
pub fn make_span(source: &SourceFile, range: std::ops::Range<usize>) -> Span {
    let range = source.clamp(range);
    let start = source.line_col(range.start);
    let end = source.line_col(range.end);
    Span {
        file: source.path.display().to_string(),
        line: start.line,
        column: start.column,
        end_line: end.line,
        end_column: end.column,
        bytes: range,
        exact: true,
    }
}

/// The result of loading: a spec, or every problem found in it.
pub type LoadResult = Result<Loaded, LoadFailure>;

/// Why a spec could not be loaded.
#[derive(Debug)]
pub struct LoadFailure {
    /// The file, when it could be read.
    pub source: Option<SourceFile>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads and loads a spec file.
pub fn load_file(path: &Path) -> LoadResult {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                "pass the spec's path, or run where capacity.yaml is".to_string()
            } else {
                "check the path and its permissions".to_string()
            };
            return Err(LoadFailure {
                source: None,
                diagnostics: vec![
                    Diagnostic::new(YAML_SYNTAX, Severity::Error, "", format!("cannot read {}: {e}", path.display())).fix(hint),
                ],
            });
        }
    };
    load_bytes(path, bytes)
}

/// Loads a spec from bytes (the file name is used in messages only).
pub fn load_bytes(path: &Path, bytes: Vec<u8>) -> LoadResult {
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned();
            let source = SourceFile::new(path, lossy);
            let span = make_span(&source, prefix.len()..prefix.len() + 1);
            let d = Diagnostic::new(YAML_SYNTAX, Severity::Error, "", format!("the file is not UTF-8 text: invalid byte at offset {valid}"))
                .fix("a spec is YAML text; is this a binary file?")
                .at(Some(span));
            return Err(LoadFailure { source: Some(source), diagnostics: vec![d] });
        }
    };
    if let Some(pos) = text.find('\0') {
        let source = SourceFile::new(path, text);
        let span = make_span(&source, pos..pos + 1);
        let d = Diagnostic::new(YAML_SYNTAX, Severity::Error, "", "the file contains a NUL byte")
            .fix("a spec is YAML text; is this a binary file?")
            .at(Some(span));
        return Err(LoadFailure { source: Some(source), diagnostics: vec![d] });
    }
    load_source(SourceFile::new(path, text))
}

/// Loads a spec from text already in memory.
pub fn load_source(source: SourceFile) -> LoadResult {
    let (mut value, spans) = match yaml::parse(&source) {
        Ok(parsed) => parsed,
        Err(e) => {
            let span = make_span(&source, e.span.clone());
            let mut d = Diagnostic::new(YAML_SYNTAX, Severity::Error, "", e.message).at(Some(span));
            d.fix = e.hint;
            return Err(LoadFailure { source: Some(source), diagnostics: vec![d] });
        }
    };
    let locator = |pointer: &str, key_only: bool| locate_in(&source, &spans, pointer, key_only);
    let spec = match validate_value(&mut value, &locator) {
        Ok(spec) => spec,
        Err(diagnostics) => return Err(LoadFailure { source: Some(source), diagnostics }),
    };
    // A spec file is what `render` renders: what the targets' programs would refuse is
    // an error here too, with the program's limit. (Specs rebuilt from foreign configs
    // by `import` describe what runs today; the rules judge those.)
    let mut problems = Vec::new();
    target_problems(&locator, &spec, &mut problems);
    problems.extend(
        limits::refused(&spec)
            .into_iter()
            .chain(versions::refused(&spec))
            .map(|r| problem(&locator, &r.pointer, r.message, Some(r.hint))),
    );
    if !problems.is_empty() {
        return Err(LoadFailure { source: Some(source), diagnostics: problems });
    }
    let unrenderable: Vec<Diagnostic> = render_problems(&spec)
        .into_iter()
        .map(|(pointer, message)| problem(&locator, &pointer, message, Some(RENDER_HINT.into())))
        .collect();
    if !unrenderable.is_empty() {
        return Err(LoadFailure { source: Some(source), diagnostics: unrenderable });
    }
    Ok(Loaded { source, value, spans, spec })
}

const RENDER_HINT: &str = "every rendered file needs its own path: set `deploy.files` so no two coincide";

/// Two rendered files that would want one path (set by `deploy.files`, or by defaults
/// that coincide): found by rendering every target once (paths depend on the whole
/// plan), so a spec that loads never renders two files onto one.
fn render_problems(spec: &Spec) -> Vec<(String, String)> {
    // Default paths never coincide (each holds its service's or machine's name; the one
    // pair that could, a sentinel file and a redis service named like it, is refused in
    // `limits`): only a spec that sets paths needs the render, which costs as much as
    // `render` itself on a large spec.
    let sets_paths = spec.deploy.as_ref().is_some_and(|d| {
        !d.files.is_empty()
            || d.compose.as_ref().is_some_and(|c| c.file.is_some())
            || d.railway.as_ref().is_some_and(|r| r.file.is_some())
            || d.sysctl.as_ref().is_some_and(|s| s.dir.is_some())
    });
    if !sets_paths {
        return Vec::new();
    }
    let plan = crate::plan::resolve(spec);
    let ctx = crate::targets::Context { spec, plan: &plan, spec_file: "capacity.yaml".into(), existing_root: None };
    let artifacts: Vec<crate::targets::Artifact> = crate::targets::TARGETS.iter().filter_map(|t| t.render(&ctx).ok()).flatten().collect();
    let pointer = if spec.deploy.as_ref().is_some_and(|d| !d.files.is_empty()) { "/deploy/files" } else { "/services" };
    crate::targets::path_collisions(&artifacts).into_iter().map(|e| (pointer.to_string(), e.message)).collect()
}

/// The JSON pointer `PREFIX/SEGMENT` (the segment escaped, RFC 6901), written only
/// when formatted: loading a valid spec needs the pointer of no value, and building
/// one per service and per check cost more than the checks.
#[derive(Clone, Copy)]
pub struct Pointer<'a>(pub &'static str, pub &'a str);

impl std::fmt::Display for Pointer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)?;
        f.write_str("/")?;
        let mut rest = self.1;
        while let Some(i) = rest.find(['~', '/']) {
            f.write_str(&rest[..i])?;
            f.write_str(if rest.as_bytes()[i] == b'~' { "~0" } else { "~1" })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// Finds the span of a JSON pointer (`key_only`: the key, not the key and value).
pub type Locator<'a> = dyn Fn(&str, bool) -> Option<Span> + 'a;

/// Schema check, typed conversion and reference check of a spec already parsed into
/// JSON (from YAML, or rebuilt from foreign configs by `import`). Every problem found
/// is returned, each located through `locate`.
pub fn validate_value(value: &mut Value, locate: &Locator<'_>) -> Result<Spec, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    if !value.is_object() {
        problems.push(problem(locate, "", "the spec must be a mapping with `version`, `name` and `services`".into(), None));
        return Err(problems);
    }
    // `x-` keys are the user's annotations: gone before validation, so the validator
    // needs no per-object pattern for them (compiling those patterns dominated start-up).
    strip_annotations(value);
    if !precheck::conforms(value) {
        schema_problems(locate, value, &mut problems);
    }
    if !problems.is_empty() {
        // The typed checks cannot run on a spec that failed the schema; the references
        // can, so a dangling one is reported in the same run.
        raw_reference_problems(locate, value, &mut problems);
        problems.sort_by_key(|d| d.span.as_ref().map(|s| (s.line, s.column)));
        return Err(problems);
    }
    // Tracking the path of every field costs a third of the conversion: convert
    // untracked, and only when that fails convert again for the path of the error.
    let converted = match convert_by_kind(value) {
        Some(spec) => Ok(spec),
        None => <Spec as serde::Deserialize>::deserialize(&*value).or_else(|_| serde_path_to_error::deserialize::<_, Spec>(&*value)),
    };
    let spec: Spec = match converted {
        Ok(spec) => spec,
        Err(e) => {
            let pointer: String = e
                .path()
                .iter()
                .map(|s| match s {
                    serde_path_to_error::Segment::Seq { index } => format!("/{index}"),
                    serde_path_to_error::Segment::Map { key } => format!("/{}", yaml::escape_segment(key)),
                    _ => String::new(),
                })
                .collect();
            let message = e.inner().to_string();
            // Errors raised inside a value (a unit that overflows) name the text; point
            // at the value that holds it rather than at its service.
            let pointer = value
                .pointer(&pointer)
                .and_then(|v| leaf_mentioned(v, &pointer, &message))
                .unwrap_or(pointer);
            let hint = unit_kind(value, &pointer).map(unit_hint);
            problems.push(problem(locate, &pointer, message, hint));
            return Err(problems);
        }
    };
    reference_problems(locate, &spec, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(spec)
}

/// The typed spec of a value that passed the schema, each service converted as the
/// struct its `kind` names. serde converts an internally tagged enum by first copying
/// each service into a buffer to find its tag, which cost most of the conversion;
/// here the tag is read from the JSON. `None` on anything unexpected (a kind this
/// does not know, any conversion error): the caller then converts the whole spec as
/// serde does, for the same result or the same error.
fn convert_by_kind(value: &mut Value) -> Option<Spec> {
    use crate::spec::{Gunicorn, JobService, Nginx, Pgbouncer, Postgres, Puma, Qdrant, Redis};
    use serde::Deserialize;
    fn service(value: &Value) -> Option<Service> {
        // The tag stays in the map: each struct takes its `Common` keys through
        // `#[serde(flatten)]`, which lets an unknown key (here only `kind`) pass.
        Some(match value.get("kind")?.as_str()? {
            "gunicorn" => Service::Gunicorn(Gunicorn::deserialize(value).ok()?),
            "puma" => Service::Puma(Puma::deserialize(value).ok()?),
            "sidekiq" => Service::Sidekiq(JobService::deserialize(value).ok()?),
            "celery" => Service::Celery(JobService::deserialize(value).ok()?),
            "solid_queue" => Service::SolidQueue(JobService::deserialize(value).ok()?),
            "rq" => Service::Rq(JobService::deserialize(value).ok()?),
            "worker" => Service::Worker(JobService::deserialize(value).ok()?),
            "nginx" => Service::Nginx(Nginx::deserialize(value).ok()?),
            "pgbouncer" => Service::Pgbouncer(Pgbouncer::deserialize(value).ok()?),
            "postgres" => Service::Postgres(Postgres::deserialize(value).ok()?),
            "redis" => Service::Redis(Redis::deserialize(value).ok()?),
            "qdrant" => Service::Qdrant(Qdrant::deserialize(value).ok()?),
            _ => return None,
        })
    }
    // The rest of the spec converts as serde does, with `services` set aside (and put
    // back: the caller keeps the value).
    let slot = value.as_object_mut()?.get_mut("services")?;
    let services = std::mem::replace(slot, Value::Object(serde_json::Map::new()));
    let rest = Spec::deserialize(&*value);
    if let Some(slot) = value.get_mut("services") {
        *slot = services;
    }
    let mut spec = rest.ok()?;
    let services = value.get("services")?.as_object()?;
    let mut converted = indexmap::IndexMap::with_capacity(services.len());
    for (name, body) in services {
        converted.insert(name.clone(), service(body)?);
    }
    spec.services = converted;
    Some(spec)
}

fn problem(locate: &Locator<'_>, pointer: &str, message: String, hint: Option<String>) -> Diagnostic {
    problem_at(locate, pointer, message, hint, false)
}

fn problem_at(locate: &Locator<'_>, pointer: &str, message: String, hint: Option<String>, key_only: bool) -> Diagnostic {
    let span = locate(pointer, key_only);
    let path = path::from_pointer(pointer, &Value::Null);
    let mut d = Diagnostic::new(SPEC_INVALID, Severity::Error, path, message).at(span);
    d.fix = hint;
    d
}

/// The pointer of the first string leaf under `value` whose text the message quotes.
fn leaf_mentioned(value: &Value, pointer: &str, message: &str) -> Option<String> {
    match value {
        Value::String(s) if message.contains(&format!("`{s}`")) => Some(pointer.to_string()),
        Value::Object(map) => map.iter().find_map(|(k, v)| leaf_mentioned(v, &format!("{pointer}/{}", yaml::escape_segment(k)), message)),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| leaf_mentioned(v, &format!("{pointer}/{i}"), message)),
        _ => None,
    }
}

/// `x-` keys are the user's annotations: gone before the typed model sees them.
fn strip_annotations(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !k.starts_with("x-"));
            map.values_mut().for_each(strip_annotations);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_annotations),
        _ => {}
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".into(),
        Value::Bool(b) => format!("the boolean `{b}`"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string `{s}`"),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
    }
}

/// The closest candidate to a misspelled word (Levenshtein distance <= 2 or a prefix).
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let distance = levenshtein(word, candidate);
        let limit = if word.len() <= 4 { 1 } else { 2 };
        if (distance <= limit || (word.len() >= 4 && candidate.starts_with(word))) && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, c)| c)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == cb { previous } else { 1 + previous.min(row[j]).min(row[j + 1]) };
            previous = current;
        }
    }
    row[b.len()]
}

fn unit_kind(instance: &Value, pointer: &str) -> Option<&'static str> {
    let schema = crate::schema::schema_at(instance, pointer)?;
    let text = schema.to_string();
    if text.contains("#/definitions/Duration") || text.contains(crate::spec::units::DURATION_PATTERN) {
        Some("duration")
    } else if text.contains("#/definitions/ByteSize") || text.contains(crate::spec::units::SIZE_PATTERN) {
        Some("size")
    } else {
        None
    }
}

fn schema_problems(locate: &Locator<'_>, value: &Value, problems: &mut Vec<Diagnostic>) {
    use jsonschema::error::ValidationErrorKind as K;
    let validator = validator();
    let mut seen = std::collections::HashSet::new();
    for error in validator.iter_errors(value) {
        let pointer = error.instance_path().to_string();
        let instance = value.pointer(&pointer).unwrap_or(&Value::Null);
        let dotted = path::from_pointer(&pointer, value);
        let at = if dotted.is_empty() { "the top level".to_string() } else { format!("`{dotted}`") };
        let (message, hint, target, key_only) = match error.kind() {
            K::AdditionalProperties { unexpected } => {
                for key in unexpected {
                    let key_pointer = format!("{pointer}/{}", yaml::escape_segment(key));
                    let valid = crate::schema::keys_at(value, &pointer);
                    let kind = instance.get("kind").and_then(Value::as_str).map(|k| format!(" (kind {k})")).unwrap_or_default();
                    let mut hint = format!("valid keys here: {}", valid.join(", "));
                    if let Some(guess) = did_you_mean(key, valid.iter().map(String::as_str)) {
                        hint = format!("did you mean `{guess}`? {hint}");
                    }
                    hint.push_str("; keys starting with `x-` are free-form annotations");
                    if seen.insert(key_pointer.clone()) {
                        problems.push(problem_at(locate, &key_pointer, format!("unknown key `{key}` in {at}{kind}"), Some(hint), true));
                    }
                }
                continue;
            }
            K::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                (format!("missing required key `{name}` in {at}"), Some(format!("add `{name}:` (see `headroom schema`)")), pointer.clone(), true)
            }
            K::Enum { options } => {
                let options: Vec<&str> = options.as_array().map(|o| o.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
                let word = instance.as_str().unwrap_or_default();
                let mut hint = format!("one of: {}", options.join(", "));
                if let Some(guess) = did_you_mean(word, options.iter().copied()) {
                    hint = format!("did you mean `{guess}`? {hint}");
                }
                let what = if pointer.ends_with("/kind") { "unknown kind" } else { "unknown value" };
                let shown = instance.as_str().map_or_else(|| describe(instance), |s| format!("`{s}`"));
                (format!("{what} {shown} at {at}"), Some(hint), pointer.clone(), false)
            }
            K::Type { kind } => {
                let debug = format!("{kind:?}").to_lowercase();
                let names: Vec<&str> = ["integer", "number", "string", "boolean", "array", "object"]
                    .into_iter()
                    .filter(|t| debug.contains(t))
                    .filter(|t| !(*t == "number" && debug.contains("integer")))
                    .collect();
                let expected = names
                    .iter()
                    .map(|t| match *t {
                        "integer" => "a whole number",
                        "number" => "a number",
                        "string" => "a string",
                        "boolean" => "`true` or `false`",
                        "array" => "a list",
                        _ => "a mapping",
                    })
                    .collect::<Vec<_>>()
                    .join(" or ");
                (format!("expected {expected} at {at}, found {}", describe(instance)), type_hint(instance), pointer.clone(), false)
            }
            K::Minimum { limit } | K::ExclusiveMinimum { limit } => {
                (format!("{} at {at} is below the minimum {limit}", describe(instance)), Some(format!("use a value >= {limit}")), pointer.clone(), false)
            }
            K::Maximum { limit } | K::ExclusiveMaximum { limit } => {
                (format!("{} at {at} is above the maximum {limit}", describe(instance)), Some(format!("use a value <= {limit}")), pointer.clone(), false)
            }
            K::Pattern { pattern } => match unit_kind(value, &pointer) {
                Some(kind) => (unit_message(kind, instance, &at), Some(unit_hint(kind)), pointer.clone(), false),
                None => (
                    format!("{} at {at} does not match `{pattern}`", describe(instance)),
                    Some(pattern_hint(pattern)),
                    pointer.clone(),
                    false,
                ),
            },
            K::AnyOf { .. } | K::OneOfNotValid { .. } => match unit_kind(value, &pointer) {
                Some(kind) => (unit_message(kind, instance, &at), Some(unit_hint(kind)), pointer.clone(), false),
                None => {
                    let expected = if pointer.ends_with("workers") || pointer.ends_with("worker_processes") {
                        "a number or `auto`"
                    } else if instance.is_object() || instance.is_array() {
                        "a different shape"
                    } else {
                        "a mapping"
                    };
                    (format!("expected {expected} at {at}, found {}", describe(instance)), None, pointer.clone(), false)
                }
            },
            K::Constant { expected_value } => {
                (format!("expected {expected_value} at {at}, found {}", describe(instance)), None, pointer.clone(), false)
            }
            K::MaxLength { limit } => (format!("{} at {at} is longer than {limit} characters", describe(instance)), None, pointer.clone(), false),
            _ => (format!("invalid value at {at}: {error}"), None, pointer.clone(), false),
        };
        if seen.insert(format!("{target}\u{0}{message}")) {
            problems.push(problem_at(locate, &target, message, hint, key_only));
        }
    }
    problems.sort_by_key(|d| d.span.as_ref().map(|s| s.bytes.start));
}

fn type_hint(instance: &Value) -> Option<String> {
    match instance {
        Value::String(s) if matches!(s.as_str(), "yes" | "no" | "on" | "off" | "True" | "False" | "TRUE" | "FALSE") => {
            Some("booleans are `true` or `false` (YAML 1.2); `yes`/`no`/`on`/`off` are strings".into())
        }
        Value::String(s) if s.trim().parse::<f64>().is_ok() => Some(format!("remove the quotes: {}", s.trim())),
        _ => None,
    }
}

fn pattern_hint(pattern: &str) -> String {
    if pattern.contains("a-z0-9") {
        "use lowercase letters, digits and `-`".into()
    } else if pattern.contains("r/") {
        "write a rate as `1000r/s` or `60r/m`".into()
    } else {
        format!("match `{pattern}`")
    }
}

fn unit_message(kind: &str, instance: &Value, at: &str) -> String {
    let parsed = match (kind, instance) {
        ("duration", Value::String(s)) => crate::spec::Duration::parse(s).err(),
        ("size", Value::String(s)) => crate::spec::ByteSize::parse(s).err(),
        _ => None,
    };
    match parsed {
        Some(reason) => format!("invalid {kind} at {at}: {reason}"),
        None => format!("expected a {kind} at {at}, found {}", describe(instance)),
    }
}

fn unit_hint(kind: &str) -> String {
    match kind {
        "duration" => "durations are `250ms`, `30s`, `5m`, `1h`, or a bare number of seconds".into(),
        _ => "sizes are `512MiB`, `2GiB`, `8gb`, `10m` (1024-based), or a bare number of bytes".into(),
    }
}

/// The full validator (compiled once per process, and only when a spec needs it).
pub fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let mut schema = crate::schema::schema().clone();
        without_annotation_patterns(&mut schema);
        jsonschema::draft7::options()
            .build(&schema)
            .expect("the generated schema is a valid draft-07 schema")
    })
}

/// Removes the `^x-` patternProperties the published schema carries for editors.
fn without_annotation_patterns(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("patternProperties").and_then(Value::as_object).is_some_and(|p| p.len() == 1 && p.contains_key("^x-")) {
                map.remove("patternProperties");
            }
            map.values_mut().for_each(without_annotation_patterns);
        }
        Value::Array(items) => items.iter_mut().for_each(without_annotation_patterns),
        _ => {}
    }
}

const NAME_HINT: &str = "names are lowercase letters, digits, `-` and `_`, starting with a letter or digit (they become container and host names)";

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn reference_problems(locate: &Locator<'_>, spec: &Spec, problems: &mut Vec<Diagnostic>) {
    let mut add = |pointer: String, message: String, hint: String, key_only: bool| {
        problems.push(problem_at(locate, &pointer, message, Some(hint), key_only));
    };
    for name in spec.machines.keys() {
        if !valid_name(name) {
            add(format!("/machines/{}", yaml::escape_segment(name)), format!("invalid machine name `{name}`"), NAME_HINT.into(), true);
        }
    }
    for (name, machine) in &spec.machines {
        if machine.addresses.len() > machine.count as usize {
            add(
                format!("/machines/{name}/addresses"),
                format!("machine group `{name}` lists {} addresses but count is {}", machine.addresses.len(), machine.count),
                format!("set count: {} or remove addresses", machine.addresses.len()),
                false,
            );
        }
        for (key, value) in &machine.sysctl {
            if let Some(problem) = sysctl_problem(key, value) {
                add(format!("/machines/{name}/sysctl/{}", yaml::escape_segment(key)), problem, SYSCTL_HINT.into(), false);
            }
        }
        for address in &machine.addresses {
            if !safe_host(address) {
                add(format!("/machines/{name}/addresses"), format!("invalid address `{}`", address.escape_debug()), "an address is a host name or an IP address".into(), false);
            }
        }
    }
    let service_names: Vec<&str> = spec.services.keys().map(String::as_str).collect();
    let machine_names: Vec<&str> = spec.machines.keys().map(String::as_str).collect();
    for (name, service) in &spec.services {
        let base = Pointer("/services", name);
        if !valid_name(name) {
            add(base.to_string(), format!("invalid service name `{}`", name.escape_debug()), NAME_HINT.into(), true);
            continue;
        }
        let common = service.common();
        for (i, entry) in common.publish.iter().enumerate() {
            if let Err(why) = crate::spec::Published::parse(entry) {
                add(format!("{base}/publish/{i}"), format!("invalid published port `{}`: {why}", entry.escape_debug()), "write [ADDRESS:]HOST_PORT, e.g. \"10.0.0.31:6379\" (that address of the host only) or \"6379\" (every interface)".into(), false);
            }
        }
        if let crate::spec::Service::Redis(redis) = service
            && let Some(bind) = &redis.bind
        {
            if bind.is_empty() {
                add(format!("{base}/bind"), "redis `bind` lists no address".into(), "list the addresses redis listens on, e.g. [127.0.0.1, 10.0.0.31]".into(), false);
            }
            for (i, address) in bind.iter().enumerate() {
                let bare = address.strip_prefix('-').unwrap_or(address);
                if bare != "*" && bare != "::*" && bare.parse::<std::net::IpAddr>().is_err() {
                    add(format!("{base}/bind/{i}"), format!("invalid redis bind address `{}`", address.escape_debug()), "redis binds IP addresses (`-` before one makes it optional; `*` is every interface)".into(), false);
                }
            }
        }
        if let Some(machine) = &common.machine
            && !spec.machines.contains_key(machine)
        {
            let hint = match did_you_mean(machine, machine_names.iter().copied()) {
                Some(g) => format!("did you mean `{g}`? machine groups: {}", machine_names.join(", ")),
                None if machine_names.is_empty() => "declare it under `machines:`".to_string(),
                None => format!("machine groups: {}", machine_names.join(", ")),
            };
            add(format!("{base}/machine"), format!("service `{name}` is placed on machine group `{machine}`, which is not declared"), hint, false);
        }
        for (target, _) in &common.uses {
            let use_pointer = || format!("{base}/uses/{}", yaml::escape_segment(target));
            match spec.services.get(target) {
                None => {
                    let hint = match did_you_mean(target, service_names.iter().copied()) {
                        Some(g) => format!("did you mean `{g}`? services: {}", service_names.join(", ")),
                        None => format!("services: {}", service_names.join(", ")),
                    };
                    add(use_pointer(), format!("service `{name}` uses `{target}`, which is not a service in this spec"), hint, true);
                }
                Some(t) => {
                    let allowed = match service {
                        Service::Pgbouncer(_) => matches!(t, Service::Postgres(_)),
                        Service::Postgres(_) | Service::Redis(_) | Service::Nginx(_) | Service::Qdrant(_) => false,
                        _ => matches!(t, Service::Postgres(_) | Service::Pgbouncer(_) | Service::Redis(_) | Service::Qdrant(_)),
                    };
                    if !allowed {
                        let hint = match service {
                            Service::Pgbouncer(_) => "a pgbouncer `uses` the postgres it pools for".to_string(),
                            Service::Nginx(_) => "nginx reaches app servers through `upstreams`, not `uses`".to_string(),
                            Service::Postgres(_) | Service::Redis(_) | Service::Qdrant(_) => format!("a {} opens no pools; remove `uses`", service.kind()),
                            _ => "`uses` names a postgres, pgbouncer, redis or qdrant service".to_string(),
                        };
                        add(use_pointer(), format!("service `{name}` ({}) cannot use `{target}` ({})", service.kind(), t.kind()), hint, true);
                    }
                }
            }
        }
        for (key, value) in &common.sysctls {
            if let Some(problem) = sysctl_problem(key, value) {
                add(format!("{base}/sysctls/{}", yaml::escape_segment(key)), problem, SYSCTL_HINT.into(), false);
            }
        }
        if let Some(env) = &common.env {
            for key in env.clear.keys().chain(env.secret.iter()) {
                if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || key.is_empty() {
                    add(format!("{base}/env"), format!("invalid environment variable name `{}`", key.escape_debug()), "names are letters, digits and `_`".into(), false);
                }
            }
        }
        if let Service::Redis(redis) = service {
            match &redis.password {
                Some(crate::spec::RedisPassword::Enabled(true)) => add(
                    format!("{base}/password"),
                    "redis `password: true` names no secret".into(),
                    "give the name of the secret that holds the password (password: CACHE_PASSWORD), or false for none".into(),
                    false,
                ),
                Some(crate::spec::RedisPassword::Secret(secret)) if !is_env_name(secret) => add(
                    format!("{base}/password"),
                    format!("redis password `{}` is not a secret name: it names the environment variable that holds the password, never the password itself", secret.escape_debug()),
                    "a secret name: letters, digits and `_`, not starting with a digit (CACHE_PASSWORD)".into(),
                    false,
                ),
                _ => {}
            }
        }
        if let Service::Nginx(nginx) = service {
            for (upstream_name, upstream) in &nginx.upstreams {
                let up = format!("{base}/upstreams/{}", yaml::escape_segment(upstream_name));
                if !valid_name(upstream_name) {
                    add(up.clone(), format!("invalid upstream name `{}`", upstream_name.escape_debug()), NAME_HINT.into(), true);
                }
                match spec.services.get(&upstream.to) {
                    Some(Service::Gunicorn(_) | Service::Puma(_)) => {}
                    Some(other) => add(
                        format!("{up}/to"),
                        format!("upstream `{upstream_name}` points at `{}` ({}), which is not an app server", upstream.to, other.kind()),
                        "an upstream's `to` names a gunicorn or puma service".into(),
                        false,
                    ),
                    None => {
                        let hint = match did_you_mean(&upstream.to, service_names.iter().copied()) {
                            Some(g) => format!("did you mean `{g}`?"),
                            None => format!("services: {}", service_names.join(", ")),
                        };
                        add(format!("{up}/to"), format!("upstream `{upstream_name}` points at `{}`, which is not a service in this spec", upstream.to), hint, false);
                    }
                }
            }
            let upstream_names: Vec<&str> = nginx.upstreams.keys().map(String::as_str).collect();
            let zone_names: Vec<&str> = nginx.rate_limits.keys().map(String::as_str).collect();
            for (i, location) in nginx.locations.iter().enumerate() {
                let loc = format!("{base}/locations/{i}");
                if !nginx.upstreams.contains_key(&location.upstream) {
                    let hint = match did_you_mean(&location.upstream, upstream_names.iter().copied()) {
                        Some(g) => format!("did you mean `{g}`?"),
                        None => format!("upstreams: {}", upstream_names.join(", ")),
                    };
                    add(format!("{loc}/upstream"), format!("location `{}` routes to upstream `{}`, which is not declared", location.path, location.upstream), hint, false);
                }
                if let Some(zone) = &location.rate_limit
                    && !nginx.rate_limits.contains_key(zone)
                {
                    add(format!("{loc}/rate_limit"), format!("location `{}` uses rate limit `{zone}`, which is not declared", location.path), format!("rate_limits: {}", zone_names.join(", ")), false);
                }
                if !location.path.starts_with('/') || crate::targets::escape::nginx_token(&location.path).is_err() {
                    add(format!("{loc}/path"), format!("invalid location path `{}`", location.path.escape_debug()), "a location path starts with `/` and has no spaces, control characters, quotes, `;`, `{`, `}`, `#`, `\\` or `$`".into(), false);
                }
            }
            for zone in nginx.rate_limits.keys() {
                if !valid_name(zone) {
                    add(format!("{base}/rate_limits/{}", yaml::escape_segment(zone)), format!("invalid rate limit name `{}`", zone.escape_debug()), NAME_HINT.into(), true);
                }
            }
            if let Some(server_name) = &nginx.server_name
                && !server_name.split(' ').all(|h| h == "_" || safe_host(h.trim_start_matches("*.")))
            {
                add(format!("{base}/server_name"), format!("invalid server_name `{}`", server_name.escape_debug()), "host names separated by single spaces".into(), false);
            }
        }
        if let Service::Pgbouncer(pgbouncer) = service {
            if !common.uses.values().len().eq(&1) && !common.uses.is_empty() {
                add(format!("{base}/uses"), format!("pgbouncer `{name}` uses {} services; it pools for one postgres", common.uses.len()), "run one pgbouncer per postgres".into(), false);
            }
            for user in &pgbouncer.users {
                if !valid_identifier(user) {
                    add(format!("{base}/users"), format!("invalid user name `{}`", user.escape_debug()), "database user names are letters, digits, `_` and `-`".into(), false);
                }
            }
        }
        if let Service::Postgres(postgres) = service {
            for db in &postgres.databases {
                if !valid_identifier(db) {
                    add(format!("{base}/databases"), format!("invalid database name `{}`", db.escape_debug()), "database names are letters, digits, `_` and `-`".into(), false);
                }
            }
        }
        if let Service::Qdrant(qdrant) = service {
            for (collection, c) in &qdrant.collections {
                let at = format!("{base}/collections/{}", yaml::escape_segment(collection));
                if !valid_identifier(collection) {
                    add(at.clone(), format!("invalid collection name `{}`", collection.escape_debug()), "collection names are letters, digits, `_` and `-`".into(), true);
                }
                if let Some(q) = &c.quantization {
                    let product = q.kind == crate::spec::QuantizationType::Product;
                    if product && q.compression.is_none() {
                        add(format!("{at}/quantization"), format!("product quantization of `{collection}` needs a compression ratio"), "add compression: x4, x8, x16, x32 or x64 (Qdrant requires it)".into(), false);
                    }
                    if !product && q.compression.is_some() {
                        add(format!("{at}/quantization/compression"), format!("`compression` applies to product quantization only (`{collection}` uses {})", if q.kind == crate::spec::QuantizationType::Scalar { "scalar" } else { "binary" }), "remove compression, or use type: product".into(), false);
                    }
                }
            }
        }
        if let Some(health) = &common.health
            && let Some(p) = &health.path
            && (!p.starts_with('/') || p.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | ';' | '{' | '}' | '\\' | '`' | '$')))
        {
            add(format!("{base}/health/path"), format!("invalid health path `{}`", p.escape_debug()), "an HTTP path such as `/health/`".into(), false);
        }
        for (field, text) in [("image", common.image.as_deref()), ("app", app_of(service))] {
            if let Some(text) = text
                && (text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | ';' | '{' | '}' | '#' | '$' | '`' | '\\')))
            {
                add(format!("{base}/{field}"), format!("invalid {field} `{}`", text.escape_debug()), "no spaces, quotes, `;`, `#`, `$` or braces".into(), false);
            }
        }
    }
    for (pointer, message, hint, key_only) in kubernetes::problems(spec) {
        add(pointer, message, hint, key_only);
    }
    if let Some(deploy) = &spec.deploy {
        for (key, file) in &deploy.files {
            if crate::targets::check_relative(file).is_err() {
                add(format!("/deploy/files/{}", yaml::escape_segment(key)), format!("output path `{}` leaves the output directory", file.escape_debug()), "use a relative path inside the repository, without `..`".into(), false);
            }
        }
        if let Some(kamal) = &deploy.kamal {
            for (field, text) in [("image", Some(kamal.image.as_str()))] {
                if let Some(text) = text
                    && (text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | ';' | '#' | '$' | '`' | '{' | '}')))
                {
                    add(format!("/deploy/kamal/{field}"), format!("invalid {field} `{}`", text.escape_debug()), "no spaces, quotes, `;`, `#` or `$`".into(), false);
                }
            }
            if let Some(host) = kamal.proxy.as_ref().and_then(|p| p.host.as_deref())
                && !safe_host(host)
            {
                add("/deploy/kamal/proxy/host".into(), format!("invalid host `{}`", host.escape_debug()), "a host name such as app.example.com".into(), false);
            }
        }
    }
}

/// What the rendered files' programs would refuse, as each target knows it.
fn target_problems(locate: &Locator<'_>, spec: &Spec, problems: &mut Vec<Diagnostic>) {
    for p in crate::targets::spec_problems(spec) {
        problems.push(problem(locate, &p.pointer, p.message, Some(p.fix)));
    }
    unlisted_hosts(locate, spec, problems);
}

/// A machine group that lists addresses lists every host: the deploy targets go to the
/// addresses (Kamal deploys a role to each listed host), so a larger count would be
/// checked against machines nothing deploys to. (More addresses than the count are
/// refused with the references; `scale` tries larger counts before it names the hosts
/// to add, so this holds for a spec file only.)
fn unlisted_hosts(locate: &Locator<'_>, spec: &Spec, problems: &mut Vec<Diagnostic>) {
    for (name, machine) in &spec.machines {
        let listed = machine.addresses.len();
        if listed > 0 && listed < machine.count as usize {
            problems.push(problem(
                locate,
                &format!("/machines/{}/addresses", yaml::escape_segment(name)),
                format!("machine group `{name}` lists {listed} addresses but count is {}: the deploy goes to the hosts listed", machine.count),
                Some(format!("list the address of each of the {} hosts, or set count: {listed}", machine.count)),
            ));
        }
    }
}

const SYSCTL_HINT: &str = "a sysctl key is dotted lowercase words (`net.core.somaxconn`); its value a number or numbers separated by spaces (`1024 65535`)";

fn sysctl_problem(key: &str, value: &crate::spec::SysctlValue) -> Option<String> {
    let key_ok = !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !key_ok {
        return Some(format!("invalid sysctl key `{}`", key.escape_debug()));
    }
    if let crate::spec::SysctlValue::Text(text) = value
        && (text.trim().is_empty() || !text.split(' ').all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_digit())))
    {
        return Some(format!("invalid value `{}` for sysctl `{key}`", text.escape_debug()));
    }
    None
}

/// Dangling names (`uses`, `machine`, `upstreams.*.to`, `locations[*].upstream`) found
/// on the raw JSON, for specs the typed model cannot hold yet.
fn raw_reference_problems(locate: &Locator<'_>, value: &Value, problems: &mut Vec<Diagnostic>) {
    let Some(services) = value.get("services").and_then(Value::as_object) else { return };
    let machines: Vec<&str> = value.get("machines").and_then(Value::as_object).map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
    let names: Vec<&str> = services.keys().map(String::as_str).collect();
    let hint = |word: &str, among: &[&str], what: &str| match did_you_mean(word, among.iter().copied()) {
        Some(g) => format!("did you mean `{g}`? {what}: {}", among.join(", ")),
        None => format!("{what}: {}", among.join(", ")),
    };
    for (name, service) in services {
        let base = format!("/services/{}", yaml::escape_segment(name));
        if let Some(machine) = service.get("machine").and_then(Value::as_str)
            && !machines.contains(&machine)
        {
            problems.push(problem(locate, &format!("{base}/machine"), format!("service `{name}` is placed on machine group `{machine}`, which is not declared"), Some(hint(machine, &machines, "machine groups"))));
        }
        for target in service.get("uses").and_then(Value::as_object).map(|u| u.keys().collect::<Vec<_>>()).unwrap_or_default() {
            if !services.contains_key(target) {
                problems.push(problem_at(locate, &format!("{base}/uses/{}", yaml::escape_segment(target)), format!("service `{name}` uses `{target}`, which is not a service in this spec"), Some(hint(target, &names, "services")), true));
            }
        }
        let upstreams = service.get("upstreams").and_then(Value::as_object);
        for (upstream, body) in upstreams.into_iter().flatten() {
            if let Some(to) = body.get("to").and_then(Value::as_str)
                && !services.contains_key(to)
            {
                problems.push(problem(locate, &format!("{base}/upstreams/{}/to", yaml::escape_segment(upstream)), format!("upstream `{upstream}` points at `{to}`, which is not a service in this spec"), Some(hint(to, &names, "services"))));
            }
        }
        let upstream_names: Vec<&str> = upstreams.map(|u| u.keys().map(String::as_str).collect()).unwrap_or_default();
        for (i, location) in service.get("locations").and_then(Value::as_array).into_iter().flatten().enumerate() {
            if let Some(up) = location.get("upstream").and_then(Value::as_str)
                && !upstream_names.contains(&up)
            {
                problems.push(problem(locate, &format!("{base}/locations/{i}/upstream"), format!("a location routes to upstream `{up}`, which is not declared"), Some(hint(up, &upstream_names, "upstreams"))));
            }
        }
    }
}

fn app_of(service: &Service) -> Option<&str> {
    match service {
        Service::Gunicorn(g) => g.app.as_deref(),
        Service::Puma(p) => p.app.as_deref(),
        _ => None,
    }
}

/// A host name or IP address with nothing a config format could mistake for syntax.
pub fn safe_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
}

fn valid_identifier(name: &str) -> bool {
    !name.is_empty() && name.len() <= 63 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// An environment variable name as shells, compose and Kamal take it: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Converting each service by its `kind` gives what serde's conversion of the whole
    /// spec gives, on every spec the project ships that passes the schema (every kind
    /// occurs among them).
    #[test]
    fn conversion_by_kind_equals_serde() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut stack: Vec<_> = ["examples", "tests/fixtures", "tests/bad_input"].iter().map(|d| root.join(d)).collect();
        let (mut compared, mut kinds) = (0, std::collections::BTreeSet::new());
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|x| x != "yaml") {
                    continue;
                }
                let source = SourceFile::new(&path, std::fs::read_to_string(&path).unwrap_or_default());
                let Ok((mut value, _)) = yaml::parse(&source) else { continue };
                if !value.is_object() {
                    continue;
                }
                strip_annotations(&mut value);
                if !precheck::conforms(&value) {
                    continue;
                }
                let before = value.clone();
                let fast = convert_by_kind(&mut value);
                assert_eq!(value, before, "{}: the value is left as it was", path.display());
                let serde = <Spec as serde::Deserialize>::deserialize(&value).ok();
                assert_eq!(format!("{fast:?}"), format!("{serde:?}"), "{}", path.display());
                if let Some(spec) = serde {
                    compared += 1;
                    kinds.extend(spec.services.values().map(Service::kind));
                }
            }
        }
        assert!(compared > 50, "compared {compared} specs");
        assert_eq!(kinds.len(), Service::KINDS.len(), "kinds seen: {kinds:?}");
    }
}
