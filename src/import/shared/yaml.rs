//! Locating values in foreign YAML: the byte range of a key and its value by JSON
//! pointer, and scalars as text.

use std::ops::Range;

use serde_json::Value;

use crate::load::yaml::SpanMap;

/// Byte range of a node: key and value when short (`workers: 8`), else the key.
pub(crate) fn kv_span(spans: &SpanMap, pointer: &str) -> Range<usize> {
    match spans.get(pointer) {
        Some(node) => match &node.key {
            Some(key) if node.value.end >= key.start && node.value.end - key.start < 200 => key.start..node.value.end,
            Some(key) => key.clone(),
            None => node.value.clone(),
        },
        None => spans.closest(pointer).map(|(_, n)| n.key.clone().unwrap_or(n.value.clone())).unwrap_or(0..0),
    }
}

pub(crate) fn value_span(spans: &SpanMap, pointer: &str) -> Range<usize> {
    spans.get(pointer).map(|n| n.value.clone()).unwrap_or_else(|| kv_span(spans, pointer))
}

pub(crate) fn key_span(spans: &SpanMap, pointer: &str) -> Range<usize> {
    spans.get(pointer).and_then(|n| n.key.clone()).unwrap_or_else(|| value_span(spans, pointer))
}

/// A scalar as text (`2.0`, `"2048M"`, `3`).
pub(crate) fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}
