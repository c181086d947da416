//! Spec paths as users read them (`services.web.uses.db.pool`, `nginx.locations[1]`,
//! `machines.lb.sysctl["net.core.somaxconn"]`) and their JSON-pointer twins.

use serde_json::Value;

use super::yaml::escape_segment;

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

fn plain_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Renders segments as a dotted path.
pub fn render(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
            Segment::Key(k) if plain_key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Key(k) => out.push_str(&format!("[{}]", serde_json::to_string(k).unwrap_or_default())),
        }
    }
    out
}

/// Parses a dotted path back into segments.
pub fn parse(path: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted.find("\"]").unwrap_or(quoted.len());
                segments.push(Segment::Key(quoted[..end].replace("\\\"", "\"")));
                rest = quoted.get(end + 2..).unwrap_or("");
            } else {
                let end = after.find(']').unwrap_or(after.len());
                match after[..end].parse() {
                    Ok(i) => segments.push(Segment::Index(i)),
                    Err(_) => segments.push(Segment::Key(after[..end].to_string())),
                }
                rest = after.get(end + 1..).unwrap_or("");
            }
        } else {
            let rest_trimmed = rest.strip_prefix('.').unwrap_or(rest);
            let end = rest_trimmed.find(['.', '[']).unwrap_or(rest_trimmed.len());
            segments.push(Segment::Key(rest_trimmed[..end].to_string()));
            rest = &rest_trimmed[end..];
        }
    }
    segments
}

/// The JSON pointer of a dotted path.
pub fn to_pointer(path: &str) -> String {
    parse(path)
        .iter()
        .map(|s| match s {
            Segment::Key(k) => format!("/{}", escape_segment(k)),
            Segment::Index(i) => format!("/{i}"),
        })
        .collect()
}

/// The dotted path of a JSON pointer, using the instance to tell indexes from keys.
pub fn from_pointer(pointer: &str, instance: &Value) -> String {
    let mut node = Some(instance);
    let mut segments = Vec::new();
    for raw in pointer.split('/').skip(1) {
        let key = raw.replace("~1", "/").replace("~0", "~");
        match node {
            Some(Value::Array(items)) => {
                let index = key.parse().unwrap_or(usize::MAX);
                node = items.get(index);
                segments.push(Segment::Index(index));
            }
            Some(Value::Object(map)) => {
                node = map.get(&key);
                segments.push(Segment::Key(key));
            }
            _ => {
                node = None;
                segments.push(Segment::Key(key));
            }
        }
    }
    render(&segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_round_trip_through_pointers() {
        let instance = json!({"nginx": {"locations": [{"path": "/"}, {"path": "/ws/"}]},
                              "machines": {"lb": {"sysctl": {"net.core.somaxconn": 4096}}}});
        for (path, pointer) in [
            ("nginx.locations[1].path", "/nginx/locations/1/path"),
            ("machines.lb.sysctl[\"net.core.somaxconn\"]", "/machines/lb/sysctl/net.core.somaxconn"),
            ("services.web.uses.db.pool", "/services/web/uses/db/pool"),
        ] {
            assert_eq!(to_pointer(path), pointer);
            if !path.starts_with("services") {
                assert_eq!(from_pointer(pointer, &instance), path);
            }
        }
    }
}
