//! Values in foreign spellings (`1m30s`, `2048M`, `"2.0"`) spelled as the spec spells
//! them.

use serde_json::{Value, json};

/// A duration in spec units from seconds (`120` -> `120s`); None when not a number.
pub fn seconds(text: &str) -> Option<String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Some(format!("{n}s"));
    }
    let f: f64 = t.parse().ok()?;
    (f.is_finite() && f >= 0.0).then(|| {
        let ms = (f * 1000.0).round() as u64;
        if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
    })
}

/// A Go/compose style duration (`1m30s`, `500ms`, `10s`, `2h`; a bare number is seconds)
/// in spec units.
pub fn go_duration(text: &str) -> Option<String> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return seconds(t);
    }
    let mut total_ns: f64 = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_end == 0 {
            return None;
        }
        let number: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total_ns += number * factor;
        rest = &rest[unit_end..];
    }
    if !(0.0..=1e21).contains(&total_ns) {
        return None;
    }
    let ms = (total_ns / 1e6).round() as u64;
    Some(if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") })
}

/// A Docker-style size (`2048M`, `1g`, `1.5G`, `512m`, `1024k`, a bare number of bytes)
/// in spec units (`2048MiB`, `1GiB`, `1536MiB`).
pub fn docker_size(text: &str) -> Option<String> {
    let t = text.trim().to_ascii_lowercase();
    let num_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    if num_end == 0 {
        return None;
    }
    let number: f64 = t[..num_end].parse().ok()?;
    let unit = t[num_end..].trim();
    let scale: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    let bytes = number * scale as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 / 2.0 {
        return None;
    }
    let bytes = bytes.round() as u64;
    for (size, suffix) in [(1u64 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return Some(format!("{}{suffix}", bytes / size));
        }
    }
    Some(format!("{bytes}"))
}

/// A CPU count as a JSON number (`"2.0"` -> 2, `"0.5"` -> 0.5).
pub fn cpus(text: &str) -> Option<Value> {
    let f: f64 = text.trim().parse().ok()?;
    if !f.is_finite() || f < 0.0 {
        return None;
    }
    Some(if f.fract() == 0.0 && f < 1e15 { json!(f as u64) } else { json!(f) })
}
