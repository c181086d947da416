//! Target `qdrant`: per qdrant service, the node configuration (`qdrant/<service>.yaml`:
//! storage path, HTTP/gRPC ports, request size, API workers, cluster mode and P2P port,
//! each a key of Qdrant 1.19's config/config.yaml) and a collection-creation script
//! (`qdrant/<service>-collections.py`: waits for every node to join, creates each
//! collection with its shards and replication when missing, leaves an existing one alone
//! and says what differs). The same settings as `QDRANT__SECTION__KEY` environment, and
//! each node's identity (`QDRANT_URI`, and `QDRANT_BOOTSTRAP` on nodes 2..N: Qdrant's
//! `--uri` / `--bootstrap` arguments, which are not config keys), are what compose, Kamal
//! and Kubernetes give each node.

use serde::Serialize;
use serde_json::{Value, json};

use super::{Artifact, Context, RenderError, Target, render_template};
use crate::plan::resolve::replica_hosts;
use crate::plan::{CollectionPlan, Detail, Kind, QdrantPlan, ServicePlan};
use crate::spec::{Distance, QuantizationType};

const CONFIG: &str = include_str!("../../templates/qdrant/config.yaml.j2");
const SCRIPT: &str = include_str!("../../templates/qdrant/collections.py.j2");
const TARGET: &str = "qdrant";

/// Where the official image keeps its data and snapshots.
pub const STORAGE_PATH: &str = "/qdrant/storage";
pub const SNAPSHOTS_PATH: &str = "/qdrant/snapshots";
/// Where the official image (WORKDIR /qdrant) merges a config file last, after its own
/// `config/config.yaml` and `config/production.yaml`.
pub const CONFIG_MOUNT: &str = "/qdrant/config/local.yaml";

pub struct Qdrant;

impl Target for Qdrant {
    fn name(&self) -> &'static str {
        TARGET
    }
    fn render(&self, ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        let mut artifacts = Vec::new();
        for service in ctx.plan.services.iter().filter(|s| s.kind == Kind::Qdrant) {
            let Detail::Qdrant(q) = &service.detail else { continue };
            let header = ctx.header("#").trim_end().to_string();
            let config = ConfigContext { header: header.clone(), service: service.name.clone(), nodes: q.nodes, sections: sections(service, q) };
            let text = render_template(TARGET, "qdrant/config.yaml.j2", CONFIG, &config)?;
            artifacts.push(Artifact { target: TARGET, path: config_path(ctx, service), text, patched: false });
            if !q.collections.is_empty() {
                let script = ScriptContext {
                    header,
                    service: service.name.clone(),
                    url: format!("http://{}:{}", node_hosts(service).remove(0), service.port.value),
                    port: service.port.value,
                    nodes: q.nodes,
                    collections: collections_json(q),
                    notes: q.collections.iter().map(|c| super::escape::one_line(&collection_note(c))).collect(),
                };
                let text = render_template(TARGET, "qdrant/collections.py.j2", SCRIPT, &script)?;
                artifacts.push(Artifact { target: TARGET, path: script_path(ctx, service), text, patched: false });
            }
        }
        Ok(artifacts)
    }
}

fn several(ctx: &Context<'_>) -> bool {
    ctx.plan.services.iter().filter(|s| s.kind == Kind::Qdrant).count() > 1
}

/// Where a qdrant service's node configuration goes: `deploy.files.qdrant` (default
/// `qdrant/<service>.yaml`); with several qdrant services `deploy.files["qdrant.<service>"]`.
pub fn config_path(ctx: &Context<'_>, service: &ServicePlan) -> String {
    let default = format!("qdrant/{}.yaml", service.name);
    if several(ctx) { ctx.path_for(&format!("qdrant.{}", service.name), &default) } else { ctx.path_for("qdrant", &default) }
}

/// Where the collection script goes: `deploy.files.qdrant_collections` (default
/// `qdrant/<service>-collections.py`); with several qdrant services
/// `deploy.files["qdrant_collections.<service>"]`.
pub fn script_path(ctx: &Context<'_>, service: &ServicePlan) -> String {
    let default = format!("qdrant/{}-collections.py", service.name);
    if several(ctx) {
        ctx.path_for(&format!("qdrant_collections.{}", service.name), &default)
    } else {
        ctx.path_for("qdrant_collections", &default)
    }
}

/// Host names of the nodes, as compose services and Kubernetes' stable peer names
/// start from: `vectors` for one node, `vectors-1..vectors-N` for a cluster.
pub fn node_hosts(service: &ServicePlan) -> Vec<String> {
    replica_hosts(&service.name, service.replicas.value.max(1))
}

/// A setting's value as YAML and environment write it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum SettingValue {
    Bool(bool),
    Int(u64),
    Text(String),
}

impl SettingValue {
    /// The value as an environment variable holds it (`true`, `6335`, `/qdrant/storage`).
    pub fn env_text(&self) -> String {
        match self {
            SettingValue::Bool(b) => b.to_string(),
            SettingValue::Int(n) => n.to_string(),
            SettingValue::Text(t) => t.clone(),
        }
    }
}

/// One key of Qdrant's configuration: its dotted path (`cluster.p2p.port`), its value
/// and where the value came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Setting {
    pub key: &'static str,
    pub value: SettingValue,
    pub note: Option<String>,
}

/// Every setting headroom decides for a qdrant's nodes, in file order.
pub fn settings(service: &ServicePlan, q: &QdrantPlan) -> Vec<Setting> {
    let mut out = Vec::new();
    let mut push = |key: &'static str, value: SettingValue, note: Option<String>| {
        out.push(Setting { key, value, note: note.map(|n| super::escape::one_line(&n)) });
    };
    push("storage.storage_path", SettingValue::Text(STORAGE_PATH.into()), Some("the official image's data directory; each node has its own volume there".into()));
    push("storage.snapshots_path", SettingValue::Text(SNAPSHOTS_PATH.into()), None);
    push("service.host", SettingValue::Text("0.0.0.0".into()), Some("every interface of the container; keep the ports on a private network".into()));
    push("service.http_port", SettingValue::Int(service.port.value), Some(service.port.cite()));
    push("service.grpc_port", SettingValue::Int(q.grpc_port.value), Some(q.grpc_port.cite()));
    push("service.max_request_size_mb", SettingValue::Int(q.max_request_size_mb.value), Some(q.max_request_size_mb.cite()));
    push("service.max_workers", SettingValue::Int(q.max_workers.value), Some(q.max_workers.cite()));
    push(
        "cluster.enabled",
        SettingValue::Bool(q.nodes > 1),
        Some(if q.nodes > 1 { format!("{} nodes ({})", q.nodes, service.replicas.cite()) } else { "one node: no cluster".into() }),
    );
    if q.nodes > 1 {
        push("cluster.p2p.port", SettingValue::Int(q.p2p_port.value), Some(q.p2p_port.cite()));
    }
    out
}

/// The settings as `QDRANT__SECTION__KEY` environment variables (Qdrant reads them with
/// prefix `QDRANT` and `__` between levels).
pub fn env(service: &ServicePlan) -> Vec<(String, String)> {
    let Detail::Qdrant(q) = &service.detail else { return Vec::new() };
    settings(service, q)
        .iter()
        .map(|s| (format!("QDRANT__{}", s.key.to_uppercase().replace('.', "__")), s.value.env_text()))
        .collect()
}

/// The URI peers reach a node by: `http://vectors-2:6335`, `http://[fd00::2]:6345`.
pub fn peer_uri(address: &str, port: u64) -> String {
    if address.contains(':') { format!("http://[{address}]:{port}") } else { format!("http://{address}:{port}") }
}

/// The identity of node `index` (1-based) among nodes reached at `uris`: `QDRANT_URI`
/// (Qdrant's `--uri`: how peers reach this node; the first node must give it), and on
/// nodes 2..N `QDRANT_BOOTSTRAP` (`--bootstrap`: the first node's URI, to join through).
/// One node needs neither.
pub fn node_identity(uris: &[String], index: usize) -> Vec<(String, String)> {
    if uris.len() <= 1 || index == 0 || index > uris.len() {
        return Vec::new();
    }
    let mut out = vec![("QDRANT_URI".to_string(), uris[index - 1].clone())];
    if index > 1 {
        out.push(("QDRANT_BOOTSTRAP".to_string(), uris[0].clone()));
    }
    out
}

/// The `PUT /collections/{name}` body of each collection, by name.
pub fn collections_json(q: &QdrantPlan) -> String {
    let mut all = serde_json::Map::new();
    for c in &q.collections {
        all.insert(c.name.clone(), create_body(c));
    }
    serde_json::to_string(&Value::Object(all)).expect("a JSON value serializes")
}

fn distance(d: Distance) -> &'static str {
    match d {
        Distance::Cosine => "Cosine",
        Distance::Euclid => "Euclid",
        Distance::Dot => "Dot",
        Distance::Manhattan => "Manhattan",
    }
}

/// The creation request of the Qdrant REST API for one collection.
pub fn create_body(c: &CollectionPlan) -> Value {
    let mut vectors = json!({ "size": c.dimensions, "distance": distance(c.distance) });
    if c.on_disk.is_written() {
        vectors["on_disk"] = json!(c.on_disk.value);
    }
    let mut body = json!({
        "vectors": vectors,
        "shard_number": c.shard_number.value,
        "replication_factor": c.replication_factor.value,
        "write_consistency_factor": c.write_consistency_factor.value,
    });
    if let Some(q) = &c.quantization {
        let mut config = match q.kind {
            QuantizationType::Scalar => json!({ "type": "int8" }),
            QuantizationType::Product => json!({ "compression": q.compression.map(|c| format!("x{}", c.ratio())) }),
            QuantizationType::Binary => json!({}),
        };
        if let Some(always) = q.always_ram {
            config["always_ram"] = json!(always);
        }
        let kind = match q.kind {
            QuantizationType::Scalar => "scalar",
            QuantizationType::Product => "product",
            QuantizationType::Binary => "binary",
        };
        body["quantization_config"] = json!({ kind: config });
    }
    body
}

fn collection_note(c: &CollectionPlan) -> String {
    format!(
        "{}: {} vectors x {} dims, {} x {} ({}); {} of RAM per node",
        c.name,
        c.vectors,
        c.dimensions,
        crate::rules::plural(c.shard_number.value, "shard"),
        crate::rules::plural(c.replication_factor.value, "replica"),
        c.path,
        crate::rules::size(c.memory_per_node)
    )
}

#[derive(Serialize)]
struct ConfigContext {
    header: String,
    service: String,
    nodes: u64,
    sections: Vec<Section>,
}

/// A top-level section of the YAML file and its keys (nested one level for `p2p`).
#[derive(Serialize)]
struct Section {
    name: String,
    entries: Vec<Entry>,
}

#[derive(Serialize)]
struct Entry {
    /// The entry's lines below the section, indented (`  p2p:`, `    port: 6335`).
    lines: Vec<String>,
    note: Option<String>,
}

fn yaml_value(value: &SettingValue) -> String {
    match value {
        SettingValue::Bool(b) => b.to_string(),
        SettingValue::Int(n) => n.to_string(),
        SettingValue::Text(t) => super::escape::quoted(t).expect("quoting cannot fail"),
    }
}

fn sections(service: &ServicePlan, q: &QdrantPlan) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for s in settings(service, q) {
        let mut parts = s.key.split('.');
        let section = parts.next().unwrap_or_default().to_string();
        let path: Vec<&str> = parts.collect();
        let mut lines: Vec<String> = Vec::new();
        for (depth, part) in path.iter().enumerate() {
            let indent = "  ".repeat(depth + 1);
            if depth + 1 == path.len() {
                lines.push(format!("{indent}{part}: {}", yaml_value(&s.value)));
            } else {
                lines.push(format!("{indent}{part}:"));
            }
        }
        let entry = Entry { lines, note: s.note };
        match out.iter_mut().find(|x| x.name == section) {
            Some(existing) => existing.entries.push(entry),
            None => out.push(Section { name: section, entries: vec![entry] }),
        }
    }
    out
}

#[derive(Serialize)]
struct ScriptContext {
    header: String,
    service: String,
    url: String,
    port: u64,
    nodes: u64,
    /// The creation bodies as one JSON object text.
    collections: String,
    notes: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze_text;

    const SPEC: &str = "version: 1\nname: va\nservices:\n  vectors:\n    kind: qdrant\n    replicas: 3\n    resources: { memory: 8GiB }\n    collections:\n      voice_embeddings: { vectors: 2000000, dimensions: 384, distance: cosine, shard_number: 3, replication_factor: 2 }\n      docs: { vectors: 1000, dimensions: 768, distance: dot, on_disk: true, quantization: { type: product, compression: x16, always_ram: true } }\n";

    fn analyze(yaml: &str) -> crate::analysis::Analysis {
        analyze_text("capacity.yaml", yaml).expect("spec loads")
    }

    fn render(yaml: &str) -> Vec<Artifact> {
        let analysis = analyze(yaml);
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        Qdrant.render(&ctx).expect("renders")
    }

    #[test]
    fn config_file_holds_the_cluster_settings() {
        let a = render(SPEC);
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].path, "qdrant/vectors.yaml");
        let text = &a[0].text;
        assert!(text.starts_with("# Generated by headroom from capacity.yaml"));
        for line in [
            "storage:\n",
            "  storage_path: \"/qdrant/storage\"\n",
            "service:\n",
            "  http_port: 6333\n",
            "  grpc_port: 6334\n",
            "  max_request_size_mb: 32\n",
            "  max_workers: 0\n",
            "cluster:\n",
            "  enabled: true\n",
            "  p2p:\n    port: 6335\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        let one = render(&SPEC.replace("replicas: 3", "replicas: 1"));
        assert!(one[0].text.contains("  enabled: false\n") && !one[0].text.contains("p2p"), "{}", one[0].text);
    }

    #[test]
    fn env_and_node_identity() {
        let analysis = analyze(SPEC);
        let service = analysis.plan.service("vectors").unwrap();
        let env = env(service);
        assert!(env.contains(&("QDRANT__CLUSTER__ENABLED".into(), "true".into())));
        assert!(env.contains(&("QDRANT__CLUSTER__P2P__PORT".into(), "6335".into())));
        assert!(env.contains(&("QDRANT__SERVICE__MAX_REQUEST_SIZE_MB".into(), "32".into())));
        assert!(env.contains(&("QDRANT__STORAGE__STORAGE_PATH".into(), "/qdrant/storage".into())));
        let hosts = node_hosts(service);
        assert_eq!(hosts, ["vectors-1", "vectors-2", "vectors-3"]);
        let uris: Vec<String> = hosts.iter().map(|h| peer_uri(h, 6335)).collect();
        assert_eq!(peer_uri("fd00::2", 6345), "http://[fd00::2]:6345");
        assert_eq!(node_identity(&uris, 1), [("QDRANT_URI".to_string(), "http://vectors-1:6335".to_string())]);
        assert_eq!(
            node_identity(&uris, 3),
            [("QDRANT_URI".to_string(), "http://vectors-3:6335".to_string()), ("QDRANT_BOOTSTRAP".to_string(), "http://vectors-1:6335".to_string())]
        );
    }

    #[test]
    fn creation_bodies_are_the_rest_api_request() {
        let analysis = analyze(SPEC);
        let Detail::Qdrant(q) = &analysis.plan.service("vectors").unwrap().detail else { panic!() };
        let bodies: Value = serde_json::from_str(&collections_json(q)).unwrap();
        assert_eq!(
            bodies["voice_embeddings"],
            json!({ "vectors": { "size": 384, "distance": "Cosine" }, "shard_number": 3, "replication_factor": 2, "write_consistency_factor": 1 })
        );
        assert_eq!(
            bodies["docs"],
            json!({
                "vectors": { "size": 768, "distance": "Dot", "on_disk": true },
                "shard_number": 3, "replication_factor": 1, "write_consistency_factor": 1,
                "quantization_config": { "product": { "compression": "x16", "always_ram": true } }
            })
        );
    }

    #[test]
    fn script_names_the_first_node_and_the_node_count() {
        let a = render(SPEC);
        assert_eq!(a[1].path, "qdrant/vectors-collections.py");
        assert!(a[1].text.starts_with("#!/usr/bin/env python3\n# Generated by headroom"), "{}", a[1].text);
        assert!(a[1].text.contains("os.environ.get(\"QDRANT_URL\", \"http://vectors-1:6333\")"), "{}", a[1].text);
        assert!(a[1].text.contains("NODES = 3\n"));
        // No collections, no script.
        assert_eq!(render("version: 1\nname: va\nservices:\n  vectors: { kind: qdrant }\n").len(), 1);
    }
}
