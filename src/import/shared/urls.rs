//! Hosts and paths in connection URLs (`postgres://u:p@pgbouncer:6432/db`) and health
//! check commands.

/// The host of a URL (`postgres://u:p@pgbouncer:6432/db` -> `pgbouncer`).
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') { host_port.split(']').next().map(|h| &h[1..]).unwrap_or("") } else { host_port.split(':').next().unwrap_or("") };
    (!host.is_empty()).then(|| host.to_string())
}

/// The path of an http(s) URL in a health check command.
pub fn url_path(word: &str) -> Option<String> {
    let start = word.find("http://").or_else(|| word.find("https://"))?;
    let url = &word[start..];
    let rest = url.split_once("://")?.1;
    let path = match rest.find('/') {
        Some(i) => &rest[i..],
        None => "/",
    };
    let path = path.split(['?', '#', '"', '\'', ' ']).next().unwrap_or("/");
    Some(if path.is_empty() { "/".into() } else { path.to_string() })
}
