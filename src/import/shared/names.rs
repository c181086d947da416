//! Spec names for foreign names (services, hosts, numbered replicas).

/// A spec service name (`[a-z0-9][a-z0-9-_]*`, at most 63) for a foreign name.
pub fn service_name(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' { c } else { '-' })
        .collect();
    while out.starts_with(['-', '_']) {
        out.remove(0);
    }
    out.truncate(63);
    if out.is_empty() { "service".into() } else { out }
}

/// `web-12` -> (`web`, 12); `redis_node3` -> (`redis_node`, 3).
pub fn numbered(name: &str) -> Option<(&str, u64)> {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 || digits == name.len() {
        return None;
    }
    let n: u64 = name[name.len() - digits..].parse().ok()?;
    let base = name[..name.len() - digits].trim_end_matches(['-', '_']);
    (!base.is_empty()).then_some((base, n))
}
