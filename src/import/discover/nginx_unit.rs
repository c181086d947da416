//! NGINX Unit's configuration (the JSON put to its control socket, or placed in
//! /docker-entrypoint.d/): each Python or Ruby application is a service of its
//! `processes` (or `processes.max`) processes of `threads` threads, with its
//! `environment` as the process environment and `limits.timeout` as its request
//! timeout; a listener that passes straight to an application gives its port.
//! Python applications are modelled as gunicorn services, Ruby ones as puma.

use serde_json::{Value, json};

use crate::import::interpret::{self, Process};
use crate::import::shared::env::{EnvVar, Variables};
use crate::import::shared::names::service_name;
use crate::import::shared::yaml::{key_span, kv_span};
use crate::import::{FileId, ImportBuilder};
use crate::load::yaml::{self, escape_segment};

/// Reads a Unit config.json.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let Some(source) = builder.sources.get(file).cloned() else { return };
    let (root, spans) = match yaml::parse_foreign(&source) {
        Ok(parsed) => parsed,
        Err(e) => {
            builder.unparsable(file, e.span, format!("NGINX Unit config: {}", e.message), "fix the JSON syntax");
            return;
        }
    };
    // Listener ports by the application they pass to.
    let mut ports: Vec<(String, u16, String)> = Vec::new();
    for (address, listener) in root.get("listeners").and_then(Value::as_object).into_iter().flatten() {
        let pointer = format!("/listeners/{}", escape_segment(address));
        let pass = listener.get("pass").and_then(Value::as_str).unwrap_or("");
        let port = address.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
        // A listener passing to routes reaches the application its routes pass to
        // (static files are served by Unit itself).
        let app = pass.strip_prefix("applications/").map(|a| a.split('/').next().unwrap_or(a).to_string()).or_else(|| match route_apps(&root, pass).as_slice() {
            [only] => Some(only.clone()),
            _ => None,
        });
        match (app, port) {
            (Some(app), Some(port)) => ports.push((app, port, pointer)),
            _ => builder.ignored(file, key_span(&spans, &pointer), format!("Unit listener `{}` passes to `{}`, which leads to no single application; its port is not mapped", address.escape_debug(), pass.escape_debug())),
        }
    }
    let Some(apps) = root.get("applications").and_then(Value::as_object) else {
        builder.ignored(file, 0..0, "NGINX Unit config without `applications`");
        return;
    };
    for (name, app) in apps {
        let pointer = format!("/applications/{}", escape_segment(name));
        let declared = key_span(&spans, &pointer);
        let Some(kind) = app_kind(app) else {
            let language = app.get("type").and_then(Value::as_str).unwrap_or("").split_whitespace().next().unwrap_or("");
            builder.ignored(file, declared, format!("Unit application `{name}` of type `{language}`: not a program headroom models; not counted"));
            continue;
        };
        // A compose service whose image starts this application (NetBox's `netbox`
        // runs Unit from docker/nginx-unit.json) is this application's service.
        let service = builder.in_image_owners.get(name).cloned().unwrap_or_else(|| service_name(name));
        let env: Vec<EnvVar> = app
            .get("environment")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, v)| EnvVar {
                name: k.clone(),
                value: v.as_str().map(str::to_string).or_else(|| Some(v.to_string())),
                file,
                bytes: kv_span(&spans, &format!("{pointer}/environment/{}", escape_segment(k))),
            })
            .collect();
        builder.mark(&format!("services.{service}"), file, declared.clone());
        let set = |builder: &mut ImportBuilder, key: &str, value: Value, at: &str| builder.set(&format!("services.{service}.{key}"), value, file, kv_span(&spans, &format!("{pointer}/{at}")));
        // What the config says comes first: the environment does not override it.
        match app.get("processes") {
            Some(Value::Number(n)) => set(builder, "workers", json!(n.as_u64().unwrap_or(1).max(1)), "processes"),
            Some(Value::Object(p)) => match p.get("max").and_then(Value::as_u64) {
                Some(max) => {
                    set(builder, "workers", json!(max.max(1)), "processes/max");
                    builder.assumed_at(file, kv_span(&spans, &format!("{pointer}/processes/max")), format!("`{service}` counted at its most processes ({max}); Unit keeps fewer while idle"), "the budgets count what load may start");
                }
                None => builder.ignored(file, kv_span(&spans, &format!("{pointer}/processes")), "Unit `processes` without `max`: one process"),
            },
            _ => {}
        }
        let threads = app.get("threads").and_then(Value::as_u64).filter(|t| *t >= 1);
        if let Some(t) = threads {
            set(builder, "threads", json!(t), "threads");
        }
        if kind == "gunicorn" {
            set(builder, "worker_class", json!(if threads.unwrap_or(1) > 1 { "gthread" } else { "sync" }), "type");
            match app.get("limits").and_then(|l| l.get("timeout")).and_then(Value::as_u64) {
                Some(t) => set(builder, "timeout", json!(format!("{t}s")), "limits/timeout"),
                // Unit gives a request all the time it takes unless limits.timeout says.
                None => set(builder, "timeout", json!("0s"), "type"),
            }
        } else if threads.is_none() {
            set(builder, "threads", json!(1), "type");
        }
        if kind == "puma" && app.get("processes").is_none() {
            set(builder, "workers", json!(1), "type");
        }
        if let Some(requests) = app.get("limits").and_then(|l| l.get("requests")).and_then(Value::as_u64).filter(|_| kind == "gunicorn") {
            set(builder, "max_requests", json!(requests), "limits/requests");
        }
        if let Some((_, port, at)) = ports.iter().find(|(app, _, _)| app == name) {
            builder.set(&format!("services.{service}.port"), json!(port), file, key_span(&spans, at));
        }
        let process = Process { service: service.clone(), file, declared: declared.clone(), command: None, command_file: None, kind: Some(kind), env: env.clone(), variables: Variables::default() };
        interpret::process(builder, &process);
        if !env.is_empty() {
            let (db, redis) = interpret::app_env::targets(builder, &service);
            interpret::app_env::apply_pools(builder, &service, db.as_ref().map(|d| d.0.as_str()), redis.as_ref().map(|r| r.0.as_str()), &env);
        }
        builder.assumed_at(file, declared, format!("NGINX Unit application `{name}` is modelled as a {kind} service of the same processes and threads"), format!("`import` writes it as {kind}; render's {kind} files would replace Unit's"));
    }
}

/// The applications the steps of a route (`routes/main`, or `routes` when the routes
/// are one list) pass to, each once.
fn route_apps(root: &Value, pass: &str) -> Vec<String> {
    let routes = root.get("routes");
    let steps = match pass.strip_prefix("routes") {
        Some("") => routes.and_then(Value::as_array),
        Some(name) => name.strip_prefix('/').and_then(|n| routes.and_then(|r| r.get(n))).and_then(Value::as_array),
        None => None,
    };
    let mut apps: Vec<String> = Vec::new();
    for step in steps.into_iter().flatten() {
        if let Some(app) = step.get("action").and_then(|a| a.get("pass")).and_then(Value::as_str).and_then(|p| p.strip_prefix("applications/")) {
            let app = app.split('/').next().unwrap_or(app).to_string();
            if !apps.contains(&app) {
                apps.push(app);
            }
        }
    }
    apps
}

/// The applications of a Unit configuration headroom models, with the kind each is
/// modelled as (Python apps as gunicorn, Ruby apps as puma); empty when the text is
/// not a Unit config.
pub fn applications(text: &str) -> Vec<(String, &'static str)> {
    let Ok(root) = serde_json::from_str::<Value>(text) else { return Vec::new() };
    root.get("applications")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(name, app)| app_kind(app).map(|k| (name.clone(), k)))
        .collect()
}

/// The kind an application is modelled as, by its `type` (`python 3.12`).
fn app_kind(app: &Value) -> Option<&'static str> {
    match app.get("type").and_then(Value::as_str).unwrap_or("").split_whitespace().next().unwrap_or("") {
        "python" => Some("gunicorn"),
        "ruby" => Some("puma"),
        _ => None,
    }
}

/// Whether a JSON text is a Unit configuration (top-level `listeners` and
/// `applications`).
pub fn is_unit_config(text: &str) -> bool {
    text.contains("\"listeners\"") && text.contains("\"applications\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    #[test]
    fn applications_listeners_and_environment() {
        let text = r#"{
  "listeners": {
    "*:8300": { "pass": "applications/shop" },
    "*:80": { "pass": "routes" }
  },
  "applications": {
    "shop": {
      "type": "python 3.12",
      "path": "/srv/shop",
      "module": "shop.wsgi",
      "processes": { "max": 8, "spare": 2, "idle_timeout": 30 },
      "threads": 4,
      "limits": { "timeout": 45, "requests": 5000 },
      "environment": { "DJANGO_SETTINGS_MODULE": "shop.settings", "CONN_MAX_AGE": "60" }
    },
    "admin": { "type": "ruby 3.3", "script": "/srv/admin/config.ru", "processes": 2, "threads": 5 },
    "assets": { "type": "php", "root": "/srv/www" }
  }
}"#;
        let mut b = ImportBuilder::new("t");
        b.value["services"] = json!({"db": {"kind": "postgres"}});
        let id = b.add_source(SourceFile::new("/x/unit/config.json", text.to_string()));
        read(&mut b, id);
        let shop = &b.value["services"]["shop"];
        assert_eq!((shop["kind"].clone(), shop["workers"].clone(), shop["threads"].clone(), shop["worker_class"].clone()), (json!("gunicorn"), json!(8), json!(4), json!("gthread")));
        assert_eq!((shop["timeout"].clone(), shop["max_requests"].clone(), shop["port"].clone()), (json!("45s"), json!(5000), json!(8300)));
        assert_eq!(shop["uses"]["db"]["framework"], "django");
        let admin = &b.value["services"]["admin"];
        assert_eq!((admin["kind"].clone(), admin["workers"].clone(), admin["threads"].clone()), (json!("puma"), json!(2), json!(5)));
        assert!(b.value["services"].get("assets").is_none());
        let o = &b.origins["/services/shop/workers"];
        assert_eq!(b.sources[o.file].line_col(o.bytes.start).line, 11);
        let notes: Vec<&str> = b.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert!(notes.iter().any(|n| n.contains("passes to `routes`")), "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("type `php`")), "{notes:?}");
    }
}
