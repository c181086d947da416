//! What an image name says: the kind (`redis:7-alpine` -> redis) and the version
//! (`postgres:15` -> 15).

use std::ops::Range;

use serde_json::Value;

use crate::import::{FileId, ImportBuilder};

/// The spec kind an image name implies (`redis:7-alpine` -> redis,
/// `edoburu/pgbouncer` -> pgbouncer); `sentinel` for sentinel images.
pub fn image_kind(image: &str) -> Option<&'static str> {
    let repo = image_repo(image);
    let name = repo.rsplit('/').next().unwrap_or(&repo);
    if repo.contains("pgbouncer") {
        return Some("pgbouncer");
    }
    if name.contains("exporter") || name.contains("backup") || name.contains("admin") || name.contains("insight") || name.contains("commander") {
        return None;
    }
    match name {
        "redis-sentinel" => Some("sentinel"),
        "redis" | "redis-stack" | "redis-stack-server" | "valkey" | "keydb" => Some("redis"),
        "postgres" | "postgresql" | "postgis" | "pgvector" | "timescaledb" | "timescaledb-ha" | "postgresql-repmgr" => Some("postgres"),
        "nginx" | "nginx-unprivileged" | "openresty" => Some("nginx"),
        // A project's own build of a server (`zulip/zulip-postgresql`, `acme/app-redis`).
        n if n.ends_with("-postgresql") || n.ends_with("-postgres") => Some("postgres"),
        n if n.ends_with("-redis") || n.ends_with("-valkey") => Some("redis"),
        _ => None,
    }
}

/// An image's repository, lowercase, without tag or digest
/// (`docker.io/library/Redis:7@sha256:..` -> `docker.io/library/redis`).
pub fn image_repo(image: &str) -> String {
    let lower = image.trim().to_ascii_lowercase();
    let no_digest = lower.split('@').next().unwrap_or("");
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[last_slash..].find(':') {
        Some(i) => no_digest[..last_slash + i].to_string(),
        None => no_digest.to_string(),
    }
}

/// The version an image tag names, as the spec's `version` of that kind:
/// `postgres:15-alpine` -> 15, `edoburu/pgbouncer:1.22.1` -> "1.22". None for `latest`,
/// digests and tags that start with no number.
pub fn image_version(kind: &str, image: &str) -> Option<Value> {
    let no_digest = image.trim().split('@').next().unwrap_or("");
    let last = &no_digest[no_digest.rfind('/').map_or(0, |i| i + 1)..];
    let tag = last.split_once(':')?.1;
    let tag = tag.strip_prefix('v').unwrap_or(tag);
    let numeric: String = tag.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
    let parts: Vec<&str> = numeric.split('.').filter(|p| !p.is_empty()).collect();
    match kind {
        "postgres" => parts.first()?.parse::<u32>().ok().filter(|v| (9..=99).contains(v)).map(Value::from),
        "pgbouncer" if parts.len() >= 2 => Some(Value::from(format!("{}.{}", parts[0], parts[1]))),
        _ => None,
    }
}

/// Sets `version` of a postgres or pgbouncer service from its image tag, when unset.
pub(crate) fn version_from_image(builder: &mut ImportBuilder, service: &str, kind: &str, image: &str, file: FileId, bytes: Range<usize>) {
    let path = format!("services.{service}.version");
    if builder.get(&path).is_none()
        && let Some(v) = image_version(kind, image)
    {
        builder.set(&path, v, file, bytes);
    }
}

