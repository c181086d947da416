//! YAML text -> a JSON value plus a map from every JSON pointer to the byte spans of
//! its key and value. Parsing is strict (YAML 1.2 booleans only, no duplicate keys)
//! and budgeted (aliases, depth, size), so hostile input fails fast with a location.

use std::fmt;
use std::hash::BuildHasher;
use std::ops::Range;

use hashbrown::{DefaultHashBuilder, HashTable};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use serde_saphyr::{Spanned, budget::Budget};

use crate::source::SourceFile;

mod direct;
mod subset;

/// The generated large spec the benchmarks read, for the tests that hold the fast
/// readers to it.
#[cfg(test)]
#[path = "../../benches/generated.rs"]
mod generated_spec;

/// Largest spec file accepted (a 1,000-service spec is about 150 KiB).
pub const MAX_INPUT_BYTES: usize = 8 * 1024 * 1024;

/// Byte spans of one node.
#[derive(Clone, Debug, Default)]
pub struct NodeSpans {
    /// The key that introduced this node, for mapping values.
    pub key: Option<Range<usize>>,
    /// The value itself.
    pub value: Range<usize>,
}

/// JSON pointer (`/services/web/workers`) -> spans.
///
/// A spec of 1,000 services has some 20,000 pointers: they live end to end in one
/// string, and the table holds indices into the entries, so recording a node costs
/// no allocation of its own and no cryptographic hash. Entries keep the order they
/// were recorded in.
#[derive(Clone, Default)]
pub struct SpanMap {
    /// Every pointer, end to end.
    pointers: String,
    entries: Vec<SpanEntry>,
    /// Indices into `entries`, by the hash of their pointer.
    index: HashTable<usize>,
    hasher: DefaultHashBuilder,
}

#[derive(Clone)]
struct SpanEntry {
    /// Where the pointer sits in `SpanMap::pointers`.
    pointer: Range<usize>,
    spans: NodeSpans,
}

impl SpanMap {
    pub fn get(&self, pointer: &str) -> Option<&NodeSpans> {
        self.find(pointer).map(|i| &self.entries[i].spans)
    }

    /// Spans of the pointer, or of its closest ancestor that is written in the file.
    pub fn closest(&self, pointer: &str) -> Option<(&str, &NodeSpans)> {
        let mut p = pointer;
        loop {
            if let Some(i) = self.find(p) {
                let entry = &self.entries[i];
                return Some((&self.pointers[entry.pointer.clone()], &entry.spans));
            }
            if p.is_empty() {
                return None;
            }
            p = match p.rfind('/') {
                Some(i) => &p[..i],
                None => "",
            };
        }
    }

    /// Every pointer with its spans, in the order they were recorded.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &NodeSpans)> {
        self.entries.iter().map(|entry| (&self.pointers[entry.pointer.clone()], &entry.spans))
    }

    /// Moves every span `by` bytes later: the spans of a document parsed on its own,
    /// placed where it sits in a multi-document file.
    pub fn shift(&mut self, by: usize) {
        let move_range = |r: &mut Range<usize>| *r = r.start + by..r.end + by;
        for entry in &mut self.entries {
            move_range(&mut entry.spans.value);
            if let Some(key) = entry.spans.key.as_mut() {
                move_range(key);
            }
        }
    }

    /// Takes the spans of `other` over these, pointer by pointer: the spans of a
    /// document merged over this one.
    pub fn overlay(&mut self, other: SpanMap) {
        for (pointer, spans) in other.iter() {
            self.insert(pointer, spans.clone());
        }
    }

    fn with_capacity(capacity: usize) -> SpanMap {
        SpanMap {
            pointers: String::with_capacity(capacity * 24),
            entries: Vec::with_capacity(capacity),
            index: HashTable::with_capacity(capacity),
            hasher: DefaultHashBuilder::default(),
        }
    }

    fn find(&self, pointer: &str) -> Option<usize> {
        let hash = self.hasher.hash_one(pointer);
        self.index.find(hash, |&i| self.pointers[self.entries[i].pointer.clone()] == *pointer).copied()
    }

    /// Records the spans of `pointer`, replacing those recorded before for it.
    fn insert(&mut self, pointer: &str, spans: NodeSpans) {
        let SpanMap { pointers, entries, index, hasher } = self;
        let hash = hasher.hash_one(pointer);
        let found = index.find(hash, |&i| pointers[entries[i].pointer.clone()] == *pointer).copied();
        if let Some(i) = found {
            entries[i].spans = spans;
            return;
        }
        let start = pointers.len();
        pointers.push_str(pointer);
        entries.push(SpanEntry { pointer: start..pointers.len(), spans });
        index.insert_unique(hash, entries.len() - 1, |&i| hasher.hash_one(&pointers[entries[i].pointer.clone()]));
    }
}

impl fmt::Debug for SpanMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A parse failure with its location.
#[derive(Clone, Debug)]
pub struct YamlError {
    pub message: String,
    pub span: Range<usize>,
    pub hint: Option<String>,
}

/// A parsed YAML node with spans (any YAML, before the schema says what it means).
#[derive(Debug)]
enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<Node>, Spanned<Node>)>),
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NodeVisitor;
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
                Ok(Node::Int(v))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Node, E> {
                i128::try_from(v).map(Node::Int).map_err(|_| E::custom("number too large"))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
                Ok(Node::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Node::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Node::Map(entries))
            }
        }
        deserializer.deserialize_any(NodeVisitor)
    }
}

/// Limits of one parse: events, aliases and anchors, nesting depth, nodes, and
/// events replayed by aliases in total and per anchor.
#[derive(Clone, Copy)]
struct Limits {
    events: usize,
    aliases: usize,
    depth: usize,
    nodes: usize,
    alias_anchor_ratio: bool,
    replayed_events: usize,
    expansions_per_anchor: usize,
}

fn budget(limits: Limits) -> Budget {
    let mut budget = Budget::default();
    budget.max_reader_input_bytes = Some(MAX_INPUT_BYTES);
    budget.max_events = limits.events;
    budget.max_aliases = limits.aliases;
    budget.max_anchors = limits.aliases;
    budget.max_depth = limits.depth;
    budget.max_documents = 1;
    budget.max_nodes = limits.nodes;
    budget.max_total_scalar_bytes = MAX_INPUT_BYTES;
    budget.enforce_alias_anchor_ratio = limits.alias_anchor_ratio;
    budget.alias_anchor_min_aliases = 20;
    budget.alias_anchor_ratio_multiplier = 4;
    budget
}

/// The parser options `serde_saphyr` derives from the budget, so a direct pass over
/// the parser's events sees the events (and spans) the deserializer sees.
fn parser_options(limits: Limits) -> serde_saphyr::granit_parser::Options {
    let budget = budget(limits);
    let mut options = serde_saphyr::granit_parser::Options::default();
    options.simple_key_max_lookahead = budget.simple_key_max_lookahead;
    options.flow_nesting_limit = budget.flow_nesting_limit;
    options.block_nesting_limit = options.block_nesting_limit.max(budget.max_depth.saturating_add(1));
    options.emit_comments = true;
    options.max_buffered_comment_events = budget.max_buffered_comment_events;
    options
}

fn options_with(limits: Limits) -> serde_saphyr::Options {
    let budget = budget(limits);
    let mut alias_limits = serde_saphyr::options::AliasLimits::default();
    alias_limits.max_total_replayed_events = limits.replayed_events;
    alias_limits.max_alias_expansions_per_anchor = limits.expansions_per_anchor;
    serde_saphyr::options! {
        budget: Some(budget),
        alias_limits: alias_limits,
        strict_booleans: true,
        with_snippet: false,
        legacy_octal_numbers: false,
    }
}

/// The spec's budget: a spec has no need for deep alias expansion.
const SPEC_LIMITS: Limits = Limits { events: 500_000, aliases: 1_000, depth: 32, nodes: 200_000, alias_anchor_ratio: true, replayed_events: 10_000, expansions_per_anchor: 100 };

/// The budget for YAML headroom reads but did not write (compose files, Kamal and
/// Rails configs). Real files share anchors widely (a compose file with 10 anchors
/// and 140 aliases is ordinary), so the alias/anchor ratio is not a signal there; what
/// stops an alias bomb is the bound on what aliases expand to, in events replayed,
/// and on nesting depth.
const FOREIGN_LIMITS: Limits = Limits {
    events: 1_000_000,
    aliases: 20_000,
    depth: 64,
    nodes: 500_000,
    alias_anchor_ratio: false,
    replayed_events: FOREIGN_MAX_EXPANDED_EVENTS,
    expansions_per_anchor: 20_000,
};

/// Events that aliases of a foreign YAML file may expand to, in total: a few hundred
/// aliases of 100-event anchors fit; a billion-laughs bomb stops early.
pub const FOREIGN_MAX_EXPANDED_EVENTS: usize = 50_000;

fn span_of(source: &SourceFile, spanned_loc: &serde_saphyr::Location) -> Range<usize> {
    let span = spanned_loc.span();
    match (span.byte_offset(), span.byte_len()) {
        (Some(start), Some(len)) if start != u64::from(u32::MAX) => {
            source.clamp(start as usize..(start + len) as usize)
        }
        _ => {
            let start = source.offset_of(spanned_loc.line() as usize, spanned_loc.column() as usize);
            source.clamp(start..start + span.len() as usize)
        }
    }
}

/// Escapes a mapping key as one JSON-pointer segment (RFC 6901).
pub fn escape_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Parses a YAML file headroom did not write (see `FOREIGN_LIMITS` for its budget).
/// An empty document is `null`, not an error: what an empty file means is the
/// reader's to say.
pub fn parse_foreign(source: &SourceFile) -> Result<(Value, SpanMap), YamlError> {
    if source.text.len() > MAX_INPUT_BYTES {
        return Err(YamlError { message: format!("file is {} bytes; the limit is {MAX_INPUT_BYTES}", source.text.len()), span: 0..0, hint: None });
    }
    if source.text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Ok((Value::Null, SpanMap::default()));
    }
    if let Some(parsed) = subset::parse(source, &FOREIGN_LIMITS) {
        return Ok(parsed);
    }
    if let Some(parsed) = direct::parse(source, &FOREIGN_LIMITS, parser_options(FOREIGN_LIMITS)) {
        return Ok(parsed);
    }
    general(source, FOREIGN_LIMITS, |error| {
        let mut e = yaml_error(source, error);
        if e.hint.as_deref().is_some_and(|h| h.contains("spec")) {
            e.hint = Some(if e.message.to_ascii_lowercase().contains("depth") {
                "the file nests deeper than 64 levels".to_string()
            } else {
                format!("its aliases expand to more than {FOREIGN_MAX_EXPANDED_EVENTS} YAML events (an alias bomb?)")
            });
        }
        e
    })
}

/// Parses the YAML text of `source` into a JSON value and its span map.
pub fn parse(source: &SourceFile) -> Result<(Value, SpanMap), YamlError> {
    if source.text.len() > MAX_INPUT_BYTES {
        return Err(YamlError {
            message: format!("file is {} bytes; the limit is {MAX_INPUT_BYTES}", source.text.len()),
            span: 0..0,
            hint: Some("a capacity spec is a few kilobytes; is this the right file?".into()),
        });
    }
    if source.text.trim().is_empty() || source.text.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Err(YamlError {
            message: "the spec is empty".into(),
            span: 0..0,
            hint: Some("start with `version: 1`, `name:` and `services:` (see `headroom schema`)".into()),
        });
    }
    if let Some(parsed) = subset::parse(source, &SPEC_LIMITS) {
        return Ok(parsed);
    }
    if let Some(parsed) = direct::parse(source, &SPEC_LIMITS, parser_options(SPEC_LIMITS)) {
        return Ok(parsed);
    }
    general(source, SPEC_LIMITS, |error| yaml_error(source, error))
}

/// The general path: `serde_saphyr` into a span-carrying node tree, then a walk that
/// builds the value and the span map. It reads every YAML the spec budget allows and
/// words every error; `subset` and `direct` are the fast paths for the YAML specs are
/// written in.
fn general(source: &SourceFile, limits: Limits, describe: impl Fn(&serde_saphyr::Error) -> YamlError) -> Result<(Value, SpanMap), YamlError> {
    let parsed: Result<Spanned<Node>, _> = serde_saphyr::from_str_with_options(&source.text, options_with(limits));
    let root = parsed.map_err(|error| describe(&error))?;
    let mut spans = SpanMap::default();
    let value = convert(source, &root, String::new(), None, &mut spans)?;
    Ok((value, spans))
}

fn yaml_error(source: &SourceFile, error: &serde_saphyr::Error) -> YamlError {
    let mut message = error.to_string();
    // The library prefixes its own location and suggests library options; the
    // location is reported by the caller and the options are not the user's to set.
    if let Some(rest) = message.strip_prefix("error: ") {
        message = rest.to_string();
    }
    if message.starts_with("line ")
        && let Some(i) = message.find(": ")
    {
        message = message[i + 2..].to_string();
    }
    if let Some(i) = message.find(", set DuplicateKeyPolicy") {
        message.truncate(i);
    }
    let message = message.lines().next().unwrap_or("invalid YAML").trim().to_string();
    let span = error
        .location()
        .map(|loc| span_of(source, &loc))
        .unwrap_or(0..0);
    let lower = message.to_ascii_lowercase();
    let hint = if lower.contains("tab") {
        Some("YAML indents with spaces only: replace the tab with spaces".to_string())
    } else if lower.contains("duplicate") {
        Some("each key may appear once in a mapping: remove or merge the duplicate".to_string())
    } else if lower.contains("depth") {
        Some("the spec nests deeper than 32 levels; a capacity spec needs a handful".to_string())
    } else if lower.contains("alias") || lower.contains("budget") || lower.contains("anchor") {
        Some("a spec has no need for deep alias expansion; write the values out".to_string())
    } else if lower.contains("invalid boolean") || lower.contains("strict") {
        Some("booleans are `true` or `false`; quote other words".to_string())
    } else {
        None
    };
    YamlError { message, span, hint }
}

fn convert(
    source: &SourceFile,
    node: &Spanned<Node>,
    pointer: String,
    key: Option<Range<usize>>,
    spans: &mut SpanMap,
) -> Result<Value, YamlError> {
    let value_span = span_of(source, &node.referenced);
    let value = match &node.value {
        Node::Null => Value::Null,
        Node::Bool(b) => Value::Bool(*b),
        Node::Int(i) => {
            if let Ok(u) = u64::try_from(*i) {
                Value::Number(u.into())
            } else if let Ok(s) = i64::try_from(*i) {
                Value::Number(s.into())
            } else {
                return Err(too_large(value_span));
            }
        }
        Node::Float(f) => {
            let text = source.text.get(value_span.clone()).unwrap_or("");
            // An integer literal too wide for 64 bits arrives as a float: report it
            // rather than silently rounding a connection limit.
            if !text.is_empty() && text.trim_start_matches(['-', '+']).chars().all(|c| c.is_ascii_digit() || c == '_') {
                return Err(too_large(value_span));
            }
            match Number::from_f64(*f) {
                Some(n) => Value::Number(n),
                None => {
                    return Err(YamlError {
                        message: format!("`{text}` is not a finite number"),
                        span: value_span,
                        hint: Some("use a plain decimal number".into()),
                    });
                }
            }
        }
        Node::Str(s) => Value::String(s.clone()),
        Node::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(convert(source, item, format!("{pointer}/{i}"), None, spans)?);
            }
            Value::Array(out)
        }
        Node::Map(entries) => {
            let mut out = Map::with_capacity(entries.len());
            for (k, v) in entries {
                let key_span = span_of(source, &k.referenced);
                let key_text = match &k.value {
                    Node::Str(s) => s.clone(),
                    Node::Int(i) => i.to_string(),
                    Node::Bool(b) => b.to_string(),
                    _ => {
                        return Err(YamlError {
                            message: "mapping keys must be plain strings".into(),
                            span: key_span,
                            hint: Some("write the key as a word, e.g. `web:`".into()),
                        });
                    }
                };
                let child = format!("{pointer}/{}", escape_segment(&key_text));
                let converted = convert(source, v, child, Some(key_span), spans)?;
                out.insert(key_text, converted);
            }
            Value::Object(out)
        }
    };
    spans.insert(&pointer, NodeSpans { key, value: value_span });
    Ok(value)
}

fn too_large(span: Range<usize>) -> YamlError {
    YamlError {
        message: "number is too large (the limit is 18446744073709551615)".into(),
        span,
        hint: Some("use a realistic value; connection counts and sizes fit in 64 bits".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(spans: &SpanMap) -> Vec<(String, Option<Range<usize>>, Range<usize>)> {
        let mut entries: Vec<_> = spans.iter().map(|(p, n)| (p.to_string(), n.key.clone(), n.value.clone())).collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries
    }

    fn yaml_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                yaml_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }

    /// A spec of 10,000 services (about 190,000 nodes, near the budget's 200,000) is
    /// read by the direct pass, not handed to the general path.
    #[test]
    fn the_direct_pass_reads_large_specs() {
        let mut text = String::from("version: 1\nname: large\nservices:\n");
        for i in 0..2000 {
            text.push_str(&format!(
                "  web{i}:\n    kind: gunicorn\n    workers: 4\n    threads: 4\n    replicas: 3\n    resources: {{ cpus: 2, memory: 2GiB }}\n    uses:\n      pgb{i}: {{ pool: 4, framework: sqlalchemy }}\n      cache{i}: {{ pool: 10 }}\n  lb{i}:\n    kind: nginx\n    worker_connections: 4096\n    upstreams: {{ app: {{ to: web{i}, keepalive: 32, max_conns: 4 }} }}\n    locations: [ {{ path: /, upstream: app }} ]\n  pgb{i}:\n    kind: pgbouncer\n    default_pool_size: 20\n    uses: {{ db{i}: {{}} }}\n  db{i}:\n    kind: postgres\n    max_connections: 100\n  cache{i}:\n    kind: redis\n    maxmemory: 1gb\n"
            ));
        }
        let source = SourceFile::new("large.yaml", text);
        let (value, spans) = direct::parse(&source, &SPEC_LIMITS, parser_options(SPEC_LIMITS)).expect("the direct pass reads a large plain spec");
        assert_eq!(value["services"].as_object().map(|s| s.len()), Some(10_000));
        assert!(spans.get("/services/db1999/max_connections").is_some());
    }

    /// The pointers and spans of a map, in the order they were recorded.
    fn recorded(spans: &SpanMap) -> Vec<(String, Option<Range<usize>>, Range<usize>)> {
        spans.iter().map(|(p, n)| (p.to_string(), n.key.clone(), n.value.clone())).collect()
    }

    /// Where the subset reader answers, its value and spans are the direct pass's,
    /// recorded in the same order.
    fn assert_subset_agrees(source: &SourceFile, limits: Limits) -> bool {
        let Some((value, spans)) = subset::parse(source, &limits) else { return false };
        let name = source.path.display();
        let Some((expected, expected_spans)) = direct::parse(source, &limits, parser_options(limits)) else {
            panic!("{name}: the subset reader read what the direct pass leaves to the general path:\n{}", source.text);
        };
        assert_eq!(value, expected, "{name}:\n{}", source.text);
        assert_eq!(serde_json::to_string(&value).unwrap(), serde_json::to_string(&expected).unwrap(), "{name}:\n{}", source.text);
        assert_eq!(recorded(&spans), recorded(&expected_spans), "{name}:\n{}", source.text);
        true
    }

    /// The subset reader reads every example spec, the generated large spec and the
    /// large plain spec above, so the fast path is the one `check` takes.
    #[test]
    fn the_subset_reader_reads_every_example_and_the_generated_spec() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        yaml_files(&root.join("examples"), &mut files);
        let mut specs = 0;
        for path in files {
            let source = SourceFile::new(&path, std::fs::read_to_string(&path).unwrap());
            if direct::parse(&source, &SPEC_LIMITS, parser_options(SPEC_LIMITS)).is_none() {
                continue;
            }
            specs += 1;
            assert!(assert_subset_agrees(&source, SPEC_LIMITS), "{}: the subset reader gave up", path.display());
        }
        assert!(specs >= 8, "read only {specs} example specs");
        for n in [1_000, 10_000] {
            let source = SourceFile::new("generated.yaml", generated_spec::generated(n));
            assert!(assert_subset_agrees(&source, SPEC_LIMITS), "the subset reader gave up on the generated spec of {n} services");
        }
    }

    /// The direct pass gives exactly the general path's value and spans, on every YAML
    /// file in the repository (specs, fixtures, the bad-input corpus, foreign configs),
    /// under both budgets; where it gives up, the general path decides. The subset
    /// reader, where it answers, gives exactly the direct pass's.
    #[test]
    fn the_direct_pass_agrees_with_the_general_path() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        for dir in ["examples", "tests", "benches"] {
            yaml_files(&root.join(dir), &mut files);
        }
        assert!(files.len() > 100, "found only {} YAML files", files.len());
        let extra = [
            "a: 1\nb: -2\nc: ~\nd: true\ne: 'x'\nf: \"08\"\ng: [1, {h: i}]\n\"j/k~\": |\n  text\n",
            "a: 08\nb: 0x10\nc: 1.5\nd: .inf\ne: 1_000\n",
            "1: a\ntrue: b\n",
            "a: &x 1\nb: *x\n",
            "a: 1\na: 2\n",
            "a: !!str 1\n",
            "a: 1\n---\nb: 2\n",
            "a:\n  - b\n  -\n  - c: [ ]\n",
            "a: [1, 2\n",
        ];
        let (mut direct_count, mut subset_count) = (0, 0);
        let sources = files
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok().map(|text| SourceFile::new(path, text)))
            .chain(extra.iter().map(|text| SourceFile::new("extra.yaml", text.to_string())));
        for source in sources {
            for limits in [SPEC_LIMITS, FOREIGN_LIMITS] {
                subset_count += usize::from(assert_subset_agrees(&source, limits));
                let Some((value, spans)) = direct::parse(&source, &limits, parser_options(limits)) else { continue };
                direct_count += 1;
                match general(&source, limits, |error| yaml_error(&source, error)) {
                    Ok((expected, expected_spans)) => {
                        assert_eq!(value, expected, "{}", source.path.display());
                        assert_eq!(serde_json::to_string(&value).unwrap(), serde_json::to_string(&expected).unwrap(), "{}", source.path.display());
                        assert_eq!(sorted(&spans), sorted(&expected_spans), "{}", source.path.display());
                    }
                    Err(e) => panic!("{}: the direct pass read what the general path refuses: {}", source.path.display(), e.message),
                }
            }
        }
        assert!(direct_count > 100, "the direct pass read only {direct_count} files");
        assert!(subset_count > 100, "the subset reader read only {subset_count} files");
    }
}
