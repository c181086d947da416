//! The checked-in JSON schema is current, documents every key, and every example
//! names it in its yaml-language-server modeline.

use std::path::PathBuf;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn checked_in_schema_is_current() {
    let path = root().join("schema/capacity.schema.json");
    let on_disk = std::fs::read_to_string(&path).expect("schema/capacity.schema.json exists");
    let generated = headroom::schema::generated_text();
    assert!(
        on_disk == generated,
        "schema/capacity.schema.json is stale: regenerate it with `cargo test --test schema -- --ignored regenerate`"
    );
}

/// Rewrites the checked-in schema from the spec types (run by hand after changing them).
#[test]
#[ignore]
fn regenerate() {
    std::fs::write(root().join("schema/capacity.schema.json"), headroom::schema::generated_text()).unwrap();
}

fn undocumented(node: &Value, path: &str, out: &mut Vec<String>) {
    match node {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                for (key, value) in props {
                    if value.get("description").is_none() {
                        out.push(format!("{path}/properties/{key}"));
                    }
                }
            }
            for (key, value) in map {
                // `if` branches only test `kind`; they document nothing.
                if key != "if" {
                    undocumented(value, &format!("{path}/{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                undocumented(item, &format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_key_has_a_description() {
    let mut missing = Vec::new();
    let generated: Value = serde_json::from_str(&headroom::schema::generated_text()).unwrap();
    undocumented(&generated, "", &mut missing);
    assert!(missing.is_empty(), "keys without a description: {missing:#?}");
}

#[test]
fn schema_is_draft_07_and_closed() {
    let schema = headroom::schema::schema();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(schema["additionalProperties"], false);
    let kinds = schema.pointer("/definitions/Service/properties/kind/enum").and_then(Value::as_array).unwrap();
    assert_eq!(kinds.len(), headroom::spec::Service::KINDS.len());
}

#[test]
fn examples_start_with_the_modeline_and_load() {
    let mut count = 0;
    for entry in std::fs::read_dir(root().join("examples")).unwrap() {
        let spec = entry.unwrap().path().join("capacity.yaml");
        if !spec.exists() {
            continue;
        }
        count += 1;
        let text = std::fs::read_to_string(&spec).unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=../../schema/capacity.schema.json\n"),
            "{} must start with the yaml-language-server modeline",
            spec.display()
        );
        assert!(text.contains("seed") || text.contains("Models"), "{} must say which guide it models", spec.display());
        if let Err(f) = headroom::analysis::analyze_file(&spec) {
            panic!("{} does not load: {:#?}", spec.display(), f.diagnostics);
        }
    }
    assert!(count >= 6, "expected at least 6 examples, found {count}");
}

/// The fast pre-check may only say "valid" where the full validator agrees; over every
/// YAML file the project ships (examples, rule fixtures, the bad-input corpus).
#[test]
fn precheck_never_accepts_what_the_validator_rejects() {
    let mut files = Vec::new();
    for dir in ["examples", "tests/fixtures/rules", "tests/bad_input"] {
        let mut stack = vec![root().join(dir)];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "yaml") {
                    files.push(p);
                }
            }
        }
    }
    let mut accepted = 0;
    let mut rejected = 0;
    for file in files {
        let source = headroom::source::SourceFile::new(&file, std::fs::read_to_string(&file).unwrap_or_default());
        let Ok((mut value, _)) = headroom::load::yaml::parse(&source) else { continue };
        if let Some(map) = value.as_object_mut() {
            map.retain(|k, _| !k.starts_with("x-"));
        }
        let fast = headroom::load::precheck::conforms(&value);
        let full = headroom::load::validator().is_valid(&value);
        assert!(!fast || full, "{}: pre-check accepts what the validator rejects", file.display());
        assert_eq!(fast, full, "{}: pre-check and validator disagree (fast {fast}, full {full})", file.display());
        if full { accepted += 1 } else { rejected += 1 }
    }
    assert!(accepted > 20 && rejected > 5, "accepted {accepted}, rejected {rejected}");
}
