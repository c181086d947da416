//! The JSON schema (draft-07, what yaml-language-server reads) of the capacity spec,
//! generated from the `spec` types and shaped for good messages: each service kind
//! becomes an `if kind == K then <keys of K>` branch, so an error names the key of
//! that kind instead of "not valid under any of the schemas".

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::spec::{Service, Spec};

/// The schema checked in at `schema/capacity.schema.json`, embedded in the binary:
/// parsing it costs a fraction of generating it, and a test keeps it equal to
/// `generated_text()`.
pub const EMBEDDED: &str = include_str!("../schema/capacity.schema.json");

/// The schema as a JSON value (parsed once per process).
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| serde_json::from_str(EMBEDDED).unwrap_or_else(|_| build()))
}

/// The schema text `headroom schema` prints.
pub fn schema_text() -> String {
    EMBEDDED.to_string()
}

/// The schema generated from the spec types now (what `schema/capacity.schema.json`
/// must equal).
pub fn generated_text() -> String {
    let mut text = serde_json::to_string_pretty(&build()).expect("a JSON value always serializes");
    text.push('\n');
    text
}

fn build() -> Value {
    let generator = SchemaSettings::draft07().into_generator();
    let schema = generator.into_root_schema_for::<Spec>();
    let mut value = schema.to_value();
    let root = value.as_object_mut().expect("the root schema is an object");
    root.insert("$id".into(), json!("https://headroom.dev/schema/capacity.schema.json"));
    root.insert("title".into(), json!("headroom capacity spec, version 1"));
    let definitions = root
        .get_mut("definitions")
        .and_then(Value::as_object_mut)
        .expect("the spec has definitions");
    let service = definitions.remove("Service").expect("the Service definition exists");
    let service = kind_branches(service, definitions);
    definitions.insert("Service".into(), service);
    annotations_allowed(&mut value);
    unwrap_nullable_refs(&mut value);
    value
}

/// `Option<Struct>` becomes `anyOf: [{$ref}, {type: null}]`, and a validator reports
/// a failing `anyOf` without saying which key inside was wrong. Writing the struct
/// alone keeps every inner error precise; an empty `load:` is then an error too, which
/// is what a reader of the spec would expect.
fn unwrap_nullable_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let replacement = map.get("anyOf").and_then(Value::as_array).and_then(|alternatives| {
                let [a, b] = alternatives.as_slice() else { return None };
                let is_null = |v: &Value| v.get("type") == Some(&json!("null"));
                match (is_null(a), is_null(b)) {
                    (false, true) => Some(a.clone()),
                    (true, false) => Some(b.clone()),
                    _ => None,
                }
            });
            if let Some(Value::Object(inner)) = replacement {
                map.remove("anyOf");
                map.remove("default");
                for (k, v) in inner {
                    map.entry(k).or_insert(v);
                }
            }
            for v in map.values_mut() {
                unwrap_nullable_refs(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_nullable_refs),
        _ => {}
    }
}

/// Turns schemars' `oneOf` over internally tagged variants into an `enum` on `kind`
/// plus one `if`/`then` per kind with `additionalProperties: false`.
fn kind_branches(service: Value, definitions: &mut Map<String, Value>) -> Value {
    let variants = service
        .get("oneOf")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut branches = Vec::new();
    for variant in variants {
        let kind = variant
            .pointer("/properties/kind/const")
            .and_then(Value::as_str)
            .expect("each variant names its kind")
            .to_string();
        let description = variant.get("description").cloned().unwrap_or(Value::Null);
        let mut properties = Map::new();
        let mut required: Vec<Value> = Vec::new();
        collect_properties(&variant, definitions, &mut properties, &mut required);
        properties.insert(
            "kind".into(),
            json!({ "description": description, "const": kind }),
        );
        required.retain(|r| r != "kind");
        let mut then = json!({
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
        });
        if !required.is_empty() {
            then["required"] = Value::Array(required);
        }
        branches.push(json!({
            "if": { "properties": { "kind": { "const": kind } }, "required": ["kind"] },
            "then": then,
        }));
    }
    json!({
        "description": "A service; `kind` selects which keys it takes.",
        "type": "object",
        "required": ["kind"],
        "properties": {
            "kind": {
                "description": "What the service is.",
                "enum": Service::KINDS,
            }
        },
        "allOf": branches,
    })
}

/// Gathers `properties` and `required` of a schema, following `$ref` and `allOf`
/// (how schemars expresses `#[serde(flatten)]`).
fn collect_properties(schema: &Value, definitions: &Map<String, Value>, properties: &mut Map<String, Value>, required: &mut Vec<Value>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/definitions/");
        if let Some(target) = definitions.get(name) {
            collect_properties(target, definitions, properties, required);
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            properties.insert(k.clone(), v.clone());
        }
    }
    if let Some(req) = schema.get("required").and_then(Value::as_array) {
        required.extend(req.iter().cloned());
    }
    for key in ["allOf", "anyOf"] {
        if let Some(parts) = schema.get(key).and_then(Value::as_array) {
            for part in parts {
                collect_properties(part, definitions, properties, required);
            }
        }
    }
}

/// Keys starting with `x-` are the user's own annotations: every closed object
/// accepts them.
fn annotations_allowed(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("additionalProperties") == Some(&Value::Bool(false)) {
                map.insert("patternProperties".into(), json!({ "^x-": {} }));
            }
            for v in map.values_mut() {
                annotations_allowed(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(annotations_allowed),
        _ => {}
    }
}

/// The schema that applies at `pointer` of an instance (following `$ref`, the
/// per-kind branches and `Option` wrappers), for messages and hints.
pub fn schema_at(instance: &Value, pointer: &str) -> Option<&'static Value> {
    let mut current = schema();
    let mut node = instance;
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        current = resolve(current);
        let next_node = match node {
            Value::Object(m) => m.get(&segment),
            Value::Array(a) => segment.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        }?;
        let object = object_form(current, node);
        current = object
            .get("properties")
            .and_then(|p| p.get(&segment))
            .or_else(|| object.get("additionalProperties").filter(|a| a.is_object()))
            .or_else(|| object.get("items"))?;
        node = next_node;
    }
    Some(current)
}

/// The keys a closed object at `pointer` accepts, for "valid keys here" hints.
pub fn keys_at(instance: &Value, pointer: &str) -> Vec<String> {
    let Some(at) = schema_at(instance, pointer) else { return Vec::new() };
    let node = instance.pointer(pointer).unwrap_or(&Value::Null);
    object_form(resolve(at), node)
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().filter(|k| *k != "kind").cloned().collect())
        .unwrap_or_default()
}

fn resolve(mut s: &'static Value) -> &'static Value {
    let definitions = schema().get("definitions");
    while let Some(r) = s.get("$ref").and_then(Value::as_str) {
        match definitions.and_then(|d| d.get(r.trim_start_matches("#/definitions/"))) {
            Some(t) => s = t,
            None => break,
        }
    }
    s
}

/// The object-shaped part of a schema: the branch of a service's kind, or the
/// referenced alternative of an `Option<T>`.
fn object_form(schema: &'static Value, node: &Value) -> &'static Value {
    if let Some(branch) = branch_for(schema, node) {
        return branch;
    }
    if schema.get("properties").is_some() || schema.get("additionalProperties").is_some() || schema.get("items").is_some() {
        return schema;
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(found) = schema.get(key).and_then(Value::as_array).and_then(|alts| {
            alts.iter().map(resolve).find(|s| s.get("properties").is_some() || s.get("additionalProperties").is_some() || s.get("items").is_some())
        }) {
            return found;
        }
    }
    schema
}

fn branch_for(schema: &'static Value, node: &Value) -> Option<&'static Value> {
    let kind = node.get("kind")?.as_str()?;
    schema.get("allOf")?.as_array()?.iter().find_map(|b| {
        (b.pointer("/if/properties/kind/const").and_then(Value::as_str) == Some(kind)).then(|| &b["then"])
    })
}

