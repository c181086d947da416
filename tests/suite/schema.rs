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
        "schema/capacity.schema.json is stale: regenerate it with `cargo test --test suite schema:: -- --ignored regenerate`"
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

/// Every spec (as JSON, top-level `x-` keys gone) of the YAML files under `dirs`.
fn specs_under(dirs: &[&str]) -> Vec<(PathBuf, Value)> {
    let mut files = Vec::new();
    for dir in dirs {
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
    files.sort();
    let mut specs = Vec::new();
    for file in files {
        let source = headroom::source::SourceFile::new(&file, std::fs::read_to_string(&file).unwrap_or_default());
        let Ok((mut value, _)) = headroom::load::yaml::parse(&source) else { continue };
        if let Some(map) = value.as_object_mut() {
            map.retain(|k, _| !k.starts_with("x-"));
        }
        specs.push((file, value));
    }
    specs
}

/// The fast pre-check may only say "valid" where the full validator agrees; over every
/// YAML file the project ships (examples, rule fixtures, the bad-input corpus).
#[test]
fn precheck_never_accepts_what_the_validator_rejects() {
    let mut accepted = 0;
    let mut rejected = 0;
    for (file, value) in specs_under(&["examples", "tests/fixtures/rules", "tests/bad_input"]) {
        let fast = headroom::load::precheck::conforms(&value);
        let full = headroom::load::validator().is_valid(&value);
        assert!(!fast || full, "{}: pre-check accepts what the validator rejects", file.display());
        assert_eq!(fast, full, "{}: pre-check and validator disagree (fast {fast}, full {full})", file.display());
        if full { accepted += 1 } else { rejected += 1 }
    }
    assert!(accepted > 20 && rejected > 5, "accepted {accepted}, rejected {rejected}");
}

/// Every JSON pointer of `value` (the root too).
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| pointers(v, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out)),
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| pointers(v, format!("{at}/{i}"), out)),
        _ => {}
    }
    out.push(at);
}

/// The same over specs broken in many shapes: every node of every example (and every
/// service of the rule fixtures) replaced by values of each JSON type and of the
/// shapes units take, objects given an unknown key or losing each key, every service
/// turned into each other kind. A "yes" of the pre-check must always be the full
/// validator's; where they differ, only the pre-check may say no.
#[test]
fn precheck_never_accepts_a_broken_spec_the_validator_rejects() {
    use serde_json::json;
    let replacements = [
        json!(null), json!(true), json!(-1), json!(0), json!(1), json!(1.5), json!(70000), json!(18446744073709551615u64),
        json!(""), json!("x"), json!("100ms"), json!("2GiB"), json!("auto"), json!("10r/s"), json!("/x"), json!([]), json!(["a"]),
        json!({}), json!({"to": "x"}),
    ];
    let kinds = headroom::spec::Service::KINDS;
    let validator = headroom::load::validator();
    let (mut tried, mut fast_yes, mut full_yes) = (0, 0, 0);
    let mut judge = |file: &PathBuf, what: &str, spec: &Value| {
        let fast = headroom::load::precheck::conforms(spec);
        let full = validator.is_valid(spec);
        assert!(!fast || full, "{}: pre-check accepts a spec the validator rejects ({what}):\n{spec:#}", file.display());
        tried += 1;
        fast_yes += usize::from(fast);
        full_yes += usize::from(full);
    };
    for (file, value) in specs_under(&["examples", "tests/fixtures/rules"]) {
        let in_examples = file.components().any(|c| c.as_os_str() == "examples");
        let mut all = Vec::new();
        pointers(&value, String::new(), &mut all);
        for pointer in &all {
            // Rule fixtures: the services' kinds and keys only (the examples cover the rest).
            let is_service = pointer.starts_with("/services/") && pointer.matches('/').count() == 2;
            if !in_examples && !is_service {
                continue;
            }
            if in_examples {
                for replacement in &replacements {
                    let mut broken = value.clone();
                    *broken.pointer_mut(pointer).unwrap() = replacement.clone();
                    judge(&file, &format!("{pointer} = {replacement}"), &broken);
                }
            }
            let Some(object) = value.pointer(pointer).and_then(Value::as_object) else { continue };
            let mut broken = value.clone();
            broken.pointer_mut(pointer).unwrap().as_object_mut().unwrap().insert("bogus".into(), json!(1));
            judge(&file, &format!("{pointer} gains `bogus`"), &broken);
            for key in object.keys() {
                let mut broken = value.clone();
                broken.pointer_mut(pointer).unwrap().as_object_mut().unwrap().shift_remove(key);
                judge(&file, &format!("{pointer} loses `{key}`"), &broken);
            }
            if is_service {
                for kind in kinds {
                    let mut broken = value.clone();
                    broken.pointer_mut(pointer).unwrap().as_object_mut().unwrap().insert("kind".into(), json!(kind));
                    judge(&file, &format!("{pointer} becomes a {kind}"), &broken);
                }
            }
        }
    }
    // Both answers occur often, and the pre-check says yes to nearly all the validator takes.
    assert!(tried > 5000 && full_yes > 500 && full_yes < tried - 1000, "tried {tried}, validator accepted {full_yes}");
    assert!(fast_yes * 10 >= full_yes * 9, "pre-check accepted {fast_yes} of the {full_yes} the validator accepted");
}
