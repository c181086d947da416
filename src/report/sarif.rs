//! SARIF 2.1.0: one rule descriptor per rule of the registry (plus the input-error
//! IDs), one result per finding, `ruleId` = the rule's ID.

use serde_json::{Value, json};

use super::ReportInput;
use crate::diag::Severity;
use crate::load::{SPEC_INVALID, YAML_SYNTAX};
use crate::rules::REGISTRY;

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

fn pascal(id: &str) -> String {
    id.split('-').map(|w| {
        let mut c = w.chars();
        c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
    }).collect()
}

/// Every rule descriptor, in registry order, then the input-error IDs.
fn descriptors() -> Vec<(String, Value)> {
    let mut rules: Vec<(String, Value)> = REGISTRY
        .iter()
        .map(|r| {
            (
                r.id().to_string(),
                json!({
                    "id": r.id(),
                    "name": pascal(r.id()),
                    "shortDescription": { "text": r.summary() },
                    "fullDescription": { "text": r.summary() },
                    "help": { "text": r.docs(), "markdown": r.docs() },
                    "defaultConfiguration": { "level": level(r.severity()) },
                    "properties": { "core": r.core() }
                }),
            )
        })
        .collect();
    for (id, text) in [
        (SPEC_INVALID, "The spec does not match the schema or refers to something that does not exist."),
        (YAML_SYNTAX, "The file is not valid YAML, or not text."),
    ] {
        rules.push((
            id.to_string(),
            json!({
                "id": id,
                "name": pascal(id),
                "shortDescription": { "text": text },
                "defaultConfiguration": { "level": "error" }
            }),
        ));
    }
    rules
}

fn location(span: &crate::diag::Span) -> Value {
    json!({
        "physicalLocation": {
            "artifactLocation": { "uri": span.file.replace('\\', "/") },
            "region": {
                "startLine": span.line,
                "startColumn": span.column,
                "endLine": span.end_line,
                "endColumn": span.end_column
            }
        }
    })
}

/// Renders a SARIF 2.1.0 log.
pub fn render(input: &ReportInput<'_>) -> String {
    let descriptors = descriptors();
    let results: Vec<Value> = input
        .diagnostics
        .iter()
        .map(|d| {
            let index = descriptors.iter().position(|(id, _)| *id == d.rule);
            let mut text = d.message.clone();
            if let Some(fix) = &d.fix {
                text.push_str(&format!(" Fix: {fix}"));
            }
            let mut result = json!({
                "ruleId": d.rule,
                "level": level(d.severity),
                "message": { "text": text },
                "locations": d.span.as_ref().map(|s| vec![location(s)]).unwrap_or_default(),
                "properties": { "path": d.path, "numbers": d.numbers, "fix": d.fix }
            });
            if let Some(i) = index {
                result["ruleIndex"] = json!(i);
            }
            let related: Vec<Value> = d
                .related
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    r.span.as_ref().map(|s| {
                        let mut l = location(s);
                        l["id"] = json!(i);
                        l["message"] = json!({ "text": format!("{}: {}", r.path, r.label) });
                        l
                    })
                })
                .collect();
            if !related.is_empty() {
                result["relatedLocations"] = Value::Array(related);
            }
            result
        })
        .collect();
    let mut log = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "headroom",
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://github.com/headroom-dev/headroom",
                    "rules": descriptors.into_iter().map(|(_, d)| d).collect::<Vec<_>>()
                }
            },
            "columnKind": "unicodeCodePoints",
            "results": results
        }]
    });
    // `lint`: the files read and skipped are the run's artifacts.
    if !input.files.is_empty() {
        let artifacts: Vec<Value> = input
            .files
            .iter()
            .map(|f| {
                let text = match (&f.format, &f.skipped) {
                    (_, Some(why)) => format!("skipped: {why}"),
                    (Some(format), None) => format!("read as {format}"),
                    (None, None) => "read".to_string(),
                };
                let mut artifact = json!({ "location": { "uri": f.path.replace('\\', "/") }, "description": { "text": text } });
                if f.skipped.is_none() {
                    artifact["roles"] = json!(["analysisTarget"]);
                }
                if let Some(d) = &f.deployment {
                    artifact["properties"] = json!({ "deployment": d });
                }
                artifact
            })
            .collect();
        log["runs"][0]["artifacts"] = Value::Array(artifacts);
    }
    let mut text = serde_json::to_string_pretty(&log).expect("SARIF serializes");
    text.push('\n');
    text
}
