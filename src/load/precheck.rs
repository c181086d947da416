//! A fast yes/no check of a spec against the same schema, for the common case of a
//! valid spec. Compiling the full validator costs more than everything else a `check`
//! does, so it is built only when this check says no (to report every problem with
//! its path). The check is conservative: a keyword it does not know makes it answer
//! no, so "yes" always means the full validator would accept the spec too (a test
//! holds the two to that).
//!
//! The schema is compiled into static tables by `build.rs` (`$ref`s resolved, property
//! tables sorted, a service's per-kind branches looked up by its `kind`), so checking
//! a spec parses no JSON and walks each instance node against a handful of checks.

use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

/// Index of a compiled schema node in `NODES`.
type Node = u16;

/// Bits of the JSON types a `type` keyword admits.
mod types {
    pub const NULL: u8 = 1;
    pub const BOOLEAN: u8 = 2;
    pub const OBJECT: u8 = 4;
    pub const ARRAY: u8 = 8;
    pub const STRING: u8 = 16;
    pub const NUMBER: u8 = 32;
    pub const INTEGER: u8 = 64;
}

/// What `additionalProperties` says of keys `properties` does not name.
enum Additional {
    Any,
    Never,
    Schema(Node),
}

/// One keyword of a schema node, compiled. Not every form occurs in today's schema;
/// each is here so a schema that grows one is still checked.
#[allow(dead_code)]
enum Check {
    /// A keyword (or form of one) the compiler does not know: answer no.
    Never,
    Ref(Node),
    Type(u8),
    Const(&'static str),
    Enum(&'static [&'static str]),
    Minimum(f64),
    Maximum(f64),
    MinLength(u64),
    MaxLength(u64),
    Pattern(usize),
    Required(&'static [&'static str]),
    /// `properties` (sorted by key length, then key) and `additionalProperties`.
    Object(&'static [(&'static str, Node)], Additional),
    Items(Node),
    AllOf(&'static [Node]),
    AnyOf(&'static [Node]),
    OneOf(&'static [Node]),
    If { condition: Node, then: Option<Node>, otherwise: Option<Node> },
    /// `allOf: [{if: {properties: {KEY: {const: V}}, required: [KEY]}, then: T}, ...]`:
    /// the key, and each branch's V and T.
    KindBranches(&'static str, &'static [(&'static str, Node)]),
}

include!(concat!(env!("OUT_DIR"), "/precheck_tables.rs"));

/// Whether `instance` conforms to the spec schema.
pub fn conforms(instance: &Value) -> bool {
    check(0, instance)
}

/// The regex of a `pattern`, compiled the first time an instance meets it. A pattern
/// that does not compile is unknown here: answer no, and let the full validator decide.
fn matches(pattern: usize, text: &str) -> bool {
    static REGEXES: [OnceLock<Option<Regex>>; PATTERNS.len()] = [const { OnceLock::new() }; PATTERNS.len()];
    REGEXES[pattern].get_or_init(|| Regex::new(PATTERNS[pattern]).ok()).as_ref().is_some_and(|r| r.is_match(text))
}

fn check(node: Node, instance: &Value) -> bool {
    NODES[usize::from(node)].iter().all(|c| holds(c, instance))
}

fn holds(check_: &Check, instance: &Value) -> bool {
    match check_ {
        Check::Never => false,
        Check::Ref(node) => check(*node, instance),
        Check::Type(mask) => mask & type_of(instance) != 0,
        Check::Const(expected) => instance.as_str() == Some(expected),
        Check::Enum(options) => instance.as_str().is_some_and(|s| options.contains(&s)),
        Check::Minimum(m) => number_ok(instance, |n| n >= *m),
        Check::Maximum(m) => number_ok(instance, |n| n <= *m),
        Check::MinLength(m) => instance.as_str().is_none_or(|s| s.chars().count() as u64 >= *m),
        Check::MaxLength(m) => instance.as_str().is_none_or(|s| s.chars().count() as u64 <= *m),
        Check::Pattern(p) => instance.as_str().is_none_or(|text| matches(*p, text)),
        Check::Required(keys) => instance.as_object().is_none_or(|object| keys.iter().all(|k| object.contains_key(*k))),
        Check::Object(properties, additional) => instance.as_object().is_none_or(|object| {
            object.iter().all(|(key, value)| match properties.binary_search_by(|(k, _)| (k.len(), *k).cmp(&(key.len(), key.as_str()))) {
                Ok(i) => check(properties[i].1, value),
                Err(_) => match additional {
                    Additional::Any => true,
                    Additional::Never => false,
                    Additional::Schema(node) => check(*node, value),
                },
            })
        }),
        Check::Items(node) => instance.as_array().is_none_or(|items| items.iter().all(|item| check(*node, item))),
        Check::AllOf(parts) => parts.iter().all(|p| check(*p, instance)),
        Check::AnyOf(parts) => parts.iter().any(|p| check(*p, instance)),
        Check::OneOf(parts) => parts.iter().filter(|p| check(**p, instance)).count() == 1,
        Check::If { condition, then, otherwise } => match if check(*condition, instance) { then } else { otherwise } {
            Some(node) => check(*node, instance),
            None => true,
        },
        Check::KindBranches(key, branches) => match instance.as_object() {
            // A branch applies when the key holds its constant (`if` needs the key).
            Some(object) => match object.get(*key).and_then(Value::as_str) {
                Some(kind) => branches.iter().filter(|(v, _)| *v == kind).all(|(_, then)| check(*then, instance)),
                None => true,
            },
            // `properties` and `required` hold for anything but an object: every branch applies.
            None => branches.iter().all(|(_, then)| check(*then, instance)),
        },
    }
}

fn type_of(instance: &Value) -> u8 {
    match instance {
        Value::Null => types::NULL,
        Value::Bool(_) => types::BOOLEAN,
        Value::Object(_) => types::OBJECT,
        Value::Array(_) => types::ARRAY,
        Value::String(_) => types::STRING,
        // Stricter than draft-07 (which also takes 1.0 as an integer): a "no" here only
        // costs the full validator's time.
        Value::Number(n) if n.is_i64() || n.is_u64() => types::NUMBER | types::INTEGER,
        Value::Number(_) => types::NUMBER,
    }
}

fn number_ok(instance: &Value, test: impl Fn(f64) -> bool) -> bool {
    match instance {
        Value::Number(n) => n.as_f64().is_some_and(test),
        _ => true,
    }
}
