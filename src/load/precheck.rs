//! A fast yes/no check of a spec against the same schema, for the common case of a
//! valid spec. Compiling the full validator costs more than everything else a `check`
//! does, so it is built only when this check says no (to report every problem with
//! its path). The check is conservative: a keyword it does not know makes it answer
//! no, so "yes" always means the full validator would accept the spec too (a test
//! holds the two to that).

use std::collections::HashMap;

use regex::Regex;
use serde_json::Value;

/// Keywords that only annotate (no effect on validity).
const ANNOTATIONS: &[&str] = &["description", "default", "format", "title", "$schema", "$id", "definitions", "examples"];

/// Whether `instance` conforms to the spec schema.
pub fn conforms(instance: &Value) -> bool {
    let schema = crate::schema::schema();
    Checker { definitions: schema.get("definitions"), patterns: patterns() }.check(schema, instance)
}

/// Every `pattern` of the schema, compiled once per process.
fn patterns() -> &'static HashMap<String, Regex> {
    static PATTERNS: std::sync::OnceLock<HashMap<String, Regex>> = std::sync::OnceLock::new();
    PATTERNS.get_or_init(|| {
        fn collect(value: &Value, out: &mut HashMap<String, Regex>) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(p)) = map.get("pattern")
                        && let Ok(r) = Regex::new(p)
                    {
                        out.insert(p.clone(), r);
                    }
                    map.values().for_each(|v| collect(v, out));
                }
                Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
                _ => {}
            }
        }
        let mut out = HashMap::new();
        collect(crate::schema::schema(), &mut out);
        out
    })
}

struct Checker<'a> {
    definitions: Option<&'a Value>,
    patterns: &'static HashMap<String, Regex>,
}

impl<'a> Checker<'a> {
    fn resolve(&self, schema: &'a Value) -> Option<&'a Value> {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => self.definitions?.get(reference.strip_prefix("#/definitions/")?),
            None => Some(schema),
        }
    }

    fn matches(&self, pattern: &str, text: &str) -> bool {
        // A pattern that did not compile is unknown here: answer no, and let the full
        // validator decide.
        self.patterns.get(pattern).is_some_and(|r| r.is_match(text))
    }

    fn check(&mut self, schema: &'a Value, instance: &Value) -> bool {
        let map = match schema {
            Value::Bool(b) => return *b,
            Value::Object(map) => map,
            _ => return false,
        };
        if map.contains_key("$ref") {
            // Draft-07: siblings of $ref are ignored.
            return match self.resolve(schema) {
                Some(target) => self.check(target, instance),
                None => false,
            };
        }
        for (keyword, value) in map {
            let ok = match keyword.as_str() {
                k if ANNOTATIONS.contains(&k) => true,
                "type" => type_ok(value, instance),
                "const" => instance == value,
                "enum" => value.as_array().is_some_and(|options| options.contains(instance)),
                "minimum" => number_ok(instance, |n| value.as_f64().is_some_and(|m| n >= m)),
                "maximum" => number_ok(instance, |n| value.as_f64().is_some_and(|m| n <= m)),
                "minLength" => instance.as_str().is_none_or(|s| value.as_u64().is_some_and(|m| s.chars().count() as u64 >= m)),
                "maxLength" => instance.as_str().is_none_or(|s| value.as_u64().is_some_and(|m| s.chars().count() as u64 <= m)),
                "pattern" => match (instance.as_str(), value.as_str()) {
                    (Some(text), Some(pattern)) => self.matches(pattern, text),
                    (None, _) => true,
                    _ => false,
                },
                "required" => match instance.as_object() {
                    Some(object) => value.as_array().is_some_and(|keys| keys.iter().all(|k| k.as_str().is_some_and(|k| object.contains_key(k)))),
                    None => true,
                },
                "properties" => match (instance.as_object(), value.as_object()) {
                    // Walk the smaller side: a service names a handful of the dozens of
                    // keys its kind takes, and each lookup hashes a key.
                    (Some(object), Some(properties)) if object.len() < properties.len() => {
                        object.iter().all(|(k, v)| properties.get(k).is_none_or(|sub| self.check(sub, v)))
                    }
                    (Some(object), Some(properties)) => properties
                        .iter()
                        .all(|(k, sub)| object.get(k).is_none_or(|v| self.check(sub, v))),
                    (None, _) => true,
                    _ => false,
                },
                "patternProperties" => true, // only `^x-`, whose keys were stripped before this runs
                "additionalProperties" => match instance.as_object() {
                    Some(object) => {
                        let known = map.get("properties").and_then(Value::as_object);
                        object
                            .iter()
                            .filter(|(k, _)| known.is_none_or(|p| !p.contains_key(*k)))
                            .all(|(_, v)| self.check(value, v))
                    }
                    None => true,
                },
                "items" => match instance.as_array() {
                    Some(items) => items.iter().all(|item| self.check(value, item)),
                    None => true,
                },
                "allOf" => value.as_array().is_some_and(|parts| parts.iter().all(|p| self.check(p, instance))),
                "anyOf" => value.as_array().is_some_and(|parts| parts.iter().any(|p| self.check(p, instance))),
                "oneOf" => value.as_array().is_some_and(|parts| parts.iter().filter(|p| self.check(p, instance)).count() == 1),
                "if" => {
                    if self.check(value, instance) {
                        map.get("then").is_none_or(|then| self.check(then, instance))
                    } else {
                        map.get("else").is_none_or(|otherwise| self.check(otherwise, instance))
                    }
                }
                "then" | "else" => true, // evaluated with `if`
                _ => false,              // unknown keyword: let the full validator decide
            };
            if !ok {
                return false;
            }
        }
        true
    }
}

fn number_ok(instance: &Value, test: impl Fn(f64) -> bool) -> bool {
    match instance {
        Value::Number(n) => n.as_f64().is_some_and(test),
        _ => true,
    }
}

fn type_ok(expected: &Value, instance: &Value) -> bool {
    let one = |t: &str| match t {
        "null" => instance.is_null(),
        "boolean" => instance.is_boolean(),
        "object" => instance.is_object(),
        "array" => instance.is_array(),
        "string" => instance.is_string(),
        "number" => instance.is_number(),
        // Stricter than draft-07 (which also takes 1.0): a "no" here only costs the
        // full validator's time.
        "integer" => instance.is_i64() || instance.is_u64(),
        _ => false,
    };
    match expected {
        Value::String(t) => one(t),
        Value::Array(types) => types.iter().any(|t| t.as_str().is_some_and(one)),
        _ => false,
    }
}
