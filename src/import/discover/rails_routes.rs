//! config/routes.rb of a Rails app deployed with Kamal: where Rails' health check is
//! served. kamal-proxy probes `GET /up` unless `proxy.healthcheck.path` says otherwise,
//! and Rails 7.1+ generates `get "up" => "rails/health#show"`; the route found becomes
//! the app's `health.path` (with the route's line as origin), and a routes.rb without
//! it is noted, since kamal-proxy's probe would get a 404.

use std::path::Path;

use serde_json::json;

use crate::import::ImportBuilder;
use crate::source::SourceFile;

/// The largest routes.rb read (bigger files are skipped with a note).
const MAX_BYTES: u64 = 1024 * 1024;

/// The path and byte range of the route to Rails' health controller, when present:
/// `get "up" => "rails/health#show"`, `get "/healthz", to: "rails/health#show"`.
/// Else a route of its own at `/up` (`get "up", to: proc { [200, {}, ["OK"]] }`), which
/// answers kamal-proxy's probe as well.
pub fn health_route(text: &str) -> Option<(String, std::ops::Range<usize>)> {
    let mut own_up = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') || (!trimmed.starts_with("get ") && !trimmed.starts_with("get(")) {
            continue;
        }
        let quoted = trimmed.trim_start_matches("get").trim_start_matches(['(', ' ']);
        let Some(quote) = quoted.chars().next().filter(|c| *c == '"' || *c == '\'') else { continue };
        let Some(path) = quoted[1..].split(quote).next() else { continue };
        let route = format!("/{}", path.trim_start_matches('/'));
        let bytes = start + (line.len() - trimmed.len())..start + line.trim_end().len();
        if line.contains("rails/health#show") {
            return Some((route, bytes));
        }
        if route == "/up" && own_up.is_none() {
            own_up = Some((route, bytes));
        }
    }
    own_up
}

/// Whether a routes.rb draws the routes of an engine (`Fizzy::Saas::Engine.routes.draw`)
/// rather than the application's: the app that mounts it serves the health check.
fn draws_an_engine(text: &str) -> bool {
    let draws = |line: &str| line.split_whitespace().next().is_some_and(|w| w.ends_with(".routes.draw"));
    text.lines().any(|l| draws(l) && l.contains("Engine.routes.draw")) && !text.lines().any(|l| draws(l) && !l.contains("Engine.routes.draw"))
}

/// Reads `<project>/config/routes.rb` for the primary role `service` when it runs
/// puma and Kamal's config sets no health check path.
pub fn read_for_kamal(builder: &mut ImportBuilder, project: &Path, service: &str) {
    if builder.kind_of_service(service).as_deref() != Some("puma") || builder.get(&format!("services.{service}.health.path")).is_some() {
        return;
    }
    let path = project.join("config").join("routes.rb");
    let Ok(meta) = std::fs::metadata(&path) else { return };
    if meta.len() > MAX_BYTES {
        builder.skip(path, format!("larger than {} KiB", MAX_BYTES / 1024));
        return;
    }
    let Ok(text) = std::fs::read_to_string(&path) else { return };
    if draws_an_engine(&text) {
        builder.skip(path, "the routes of a Rails engine: the application that mounts it serves the health check".to_string());
        return;
    }
    let found = health_route(&text);
    let end = text.len();
    let file = builder.add_source(SourceFile::new(&path, text));
    builder.read_as(file, "Rails routes.rb");
    match found {
        Some((route, bytes)) if route == "/up" => builder.set(&format!("services.{service}.health.path"), json!(route), file, bytes),
        Some((route, bytes)) => builder.assumed_at(
            file,
            bytes,
            format!("Rails' health check is served at `{route}`, but kamal-proxy probes its default GET /up (proxy.healthcheck.path is not set): new containers of `{service}` get a 404 there and deploys fail with `target failed to become healthy`"),
            format!("set proxy.healthcheck.path: {route} in the Kamal config"),
        ),
        None => builder.assumed_at(
            file,
            0..end.min(1),
            format!("config/routes.rb has no route to `rails/health#show`: kamal-proxy probes GET /up on new containers of `{service}`; unless another route answers 200 there, deploys fail with `target failed to become healthy`"),
            "add `get \"up\" => \"rails/health#show\", as: :rails_health_check` to config/routes.rb, or set proxy.healthcheck.path to a path the app serves",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_health_route_as_rails_writes_it_and_variants() {
        let text = "Rails.application.routes.draw do\n  resources :posts\n  get \"up\" => \"rails/health#show\", as: :rails_health_check\nend\n";
        let (path, bytes) = health_route(text).unwrap();
        assert_eq!(path, "/up");
        assert_eq!(&text[bytes], "get \"up\" => \"rails/health#show\", as: :rails_health_check");
        assert_eq!(health_route("  get '/healthz', to: 'rails/health#show'\n").map(|r| r.0).as_deref(), Some("/healthz"));
        // Commented out, or no route at all.
        assert_eq!(health_route("  # get \"up\" => \"rails/health#show\"\n"), None);
        assert_eq!(health_route("Rails.application.routes.draw do\nend\n"), None);
        // A route of its own at /up answers the probe too.
        assert_eq!(health_route("  get \"/up\", to: proc { [200, {}, [\"OK\"]] }\n").map(|r| r.0).as_deref(), Some("/up"));
        assert_eq!(health_route("  get \"/upload\", to: \"files#new\"\n"), None);
    }

    #[test]
    fn an_engines_routes_are_not_the_apps() {
        assert!(draws_an_engine("Fizzy::Saas::Engine.routes.draw do\n  resources :accounts\nend\n"));
        assert!(!draws_an_engine("Rails.application.routes.draw do\nend\n"));
        assert!(!draws_an_engine("Rails.application.routes.draw do\n  mount Admin::Engine => \"/admin\"\nend\nAdmin::Engine.routes.draw do\nend\n"));
    }
}
