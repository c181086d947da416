//! A hostile-value corpus for every string field of the spec: each value, set in each
//! field of a spec that uses every target, either does not load (a located error), or
//! loads and renders, with no rendered line that the value began or ended (the mark of
//! a value that became a directive, a key or a command of its own). The spec's file
//! name goes through the same corpus (tests/render_safety.rs runs the programs on it).

use headroom::analysis::analyze_text;
use headroom::targets::{Context, render_all};
use serde_json::{Value, json};

/// Every payload carries `PWN` on a line of its own, after a line break of some kind.
const CORPUS: &[&str] = &[
    "x\nPWN on;",
    "x\r\nPWN = 1",
    "x\rPWN",
    "x\u{85}PWN: 1",
    "x\u{2028}PWN",
    "x\u{2029}PWN",
    "x\u{b}PWN",
    "x\u{c}PWN",
    "x;\nPWN\n",
    "x\"\nPWN = \"",
    "x'\nPWN='",
    "x}\nPWN {",
    "x]\n[PWN]",
    "x #\nPWN",
    "$(PWN)",
    "`PWN`",
    "${PWN}",
    "x\\\nPWN",
    "x\u{7f}\u{9b}PWN",
    "-PWN",
    "../../PWN",
    "",
    " ",
    "ü漢✓",
];

fn breaks(payload: &str) -> bool {
    payload.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}', '\u{b}', '\u{c}'])
}

fn base() -> Value {
    json!({
        "version": 1,
        "name": "corpus",
        "machines": { "web": { "count": 1, "cpus": 2, "memory": "8GiB", "addresses": ["10.0.0.1"], "sysctl": { "net.core.somaxconn": 4096 } } },
        "services": {
            "web": {
                "kind": "gunicorn", "machine": "web", "worker_class": "gthread", "workers": 2, "threads": 4,
                "app": "app:app", "build": "./app", "image": "acme/web",
                "health": { "path": "/health" },
                "env": { "clear": { "GREETING": "hi" }, "secret": ["DATABASE_URL"] },
                "sysctls": { "net.core.somaxconn": 4096 },
                "uses": { "pool": { "pool": 4, "database": "app", "user": "app" }, "cache": { "pool": 4 } }
            },
            "rails": { "kind": "puma", "app": "config.ru", "build": "./rails", "uses": { "db": { "pool": 5, "framework": "rails" } } },
            "jobs": { "kind": "worker", "command": "bin/jobs", "build": "./jobs", "uses": { "pool": { "pool": 2 } } },
            "lb": {
                "kind": "nginx", "server_name": "app.example.com",
                "upstreams": { "app": { "to": "web", "keepalive": 8 } },
                "locations": [ { "path": "/", "upstream": "app", "rate_limit": "general" } ],
                "rate_limits": { "general": { "rate": "10r/s", "zone": "10m" } }
            },
            "pool": { "kind": "pgbouncer", "pool_mode": "transaction", "auth_type": "md5", "auth_file": "/etc/pgbouncer/userlist.txt", "version": "1.22", "users": ["app"], "uses": { "db": {} } },
            "db": { "kind": "postgres", "version": 16, "databases": ["app"], "resources": { "memory": "2GiB" } },
            "cache": { "kind": "redis", "maxmemory": "256mb", "maxmemory_policy": "allkeys-lru", "resources": { "memory": "1GiB" } }
        },
        "deploy": { "compose": { "network": "backend" }, "sysctl": {} }
    })
}

/// The base spec with output paths set (a spec that sets paths renders every target at
/// load to find clashes, so only the path fields are tried on it).
fn with_paths() -> Value {
    let mut spec = base();
    spec["deploy"]["compose"]["file"] = json!("docker-compose.yml");
    spec["deploy"]["sysctl"]["dir"] = json!("sysctl");
    spec["deploy"]["files"] = json!({ "nginx": "nginx/lb.conf" });
    spec
}

/// Every string field of the base spec (JSON pointers), keys that name things included.
fn string_fields(value: &Value, pointer: &str, out: &mut Vec<String>) {
    match value {
        Value::String(_) => out.push(pointer.to_string()),
        Value::Object(map) => {
            for (k, v) in map {
                string_fields(v, &format!("{pointer}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                string_fields(v, &format!("{pointer}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Keys that are names: the key itself gets the payload (references to it are left
/// dangling, which must then be a load error, never a render).
const NAME_KEYS: &[&str] = &["/machines/web", "/services/web", "/services/lb/upstreams/app", "/services/lb/rate_limits/general", "/services/web/env/clear/GREETING", "/machines/web/sysctl/net.core.somaxconn", "/deploy/files/nginx"];

fn rename_key(spec: &mut Value, pointer: &str, new: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let map = spec.pointer_mut(parent).and_then(Value::as_object_mut).unwrap();
    let value = map.remove(key).unwrap();
    map.insert(new.to_string(), value);
}

enum Outcome {
    Refused,
    Rendered,
    Failed(String),
}

/// Loads and renders one hostile spec.
fn try_spec((what, breaks, spec): &(String, bool, Value)) -> Outcome {
    let text = serde_json::to_string_pretty(spec).unwrap();
    let analysis = match analyze_text("capacity.yaml", &text) {
        Ok(a) => a,
        Err(f) if f.diagnostics.iter().any(|d| d.span.is_none()) => {
            return Outcome::Failed(format!("{what}: refused without a location: {:?}", f.diagnostics.iter().map(|d| &d.message).collect::<Vec<_>>()));
        }
        Err(_) => return Outcome::Refused,
    };
    let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
    let artifacts = match render_all(&ctx, &[]) {
        Ok(a) => a,
        Err(e) => return Outcome::Failed(format!("{what}: loads but does not render: {e:?}")),
    };
    // Only a payload with a line break can start a line (the others may start their own
    // value, a database name that is a key of its line).
    for a in artifacts.iter().filter(|_| *breaks) {
        // A line break of any kind a format honours, then the payload at the start of a line.
        for line in a.text.split(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}', '\u{b}', '\u{c}']) {
            let t = line.trim_start_matches([' ', '\t', '-', '"', '\'', '[', '{', '}', ';']);
            if t.starts_with("PWN") {
                return Outcome::Failed(format!("{what}: became a line of its own in {}: {line:?}", a.path));
            }
        }
    }
    Outcome::Rendered
}

#[test]
fn every_string_field_either_refuses_a_hostile_value_or_renders_it_inert() {
    let mut fields = Vec::new();
    string_fields(&with_paths(), "", &mut fields);
    assert!(fields.len() >= 30, "{fields:?}");
    let text = serde_json::to_string(&with_paths()).unwrap();
    let analysis = analyze_text("capacity.yaml", &text).expect("the base spec loads");
    let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
    render_all(&ctx, &[]).expect("the base spec renders");

    // Every (spec, what it tries), then tried on two threads.
    let mut tries: Vec<(String, bool, Value)> = Vec::new();
    for field in &fields {
        for payload in CORPUS {
            let mut spec = if base().pointer(field).is_some() { base() } else { with_paths() };
            *spec.pointer_mut(field).unwrap() = json!(payload);
            tries.push((format!("{field} = {payload:?}"), breaks(payload), spec));
        }
    }
    for key in NAME_KEYS {
        for payload in CORPUS {
            let mut spec = if base().pointer(key).is_some() { base() } else { with_paths() };
            rename_key(&mut spec, key, payload);
            tries.push((format!("key {key} -> {payload:?}"), breaks(payload), spec));
        }
    }
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let half = tries.len() / 2;
        let (a, b) = tries.split_at(half);
        let first = scope.spawn(|| a.iter().map(try_spec).collect::<Vec<_>>());
        let mut out: Vec<Outcome> = b.iter().map(try_spec).collect();
        out.extend(first.join().unwrap());
        out
    });
    let refused = outcomes.iter().filter(|o| matches!(o, Outcome::Refused)).count();
    let rendered = outcomes.iter().filter(|o| matches!(o, Outcome::Rendered)).count();
    let failures: Vec<String> = outcomes.into_iter().filter_map(|o| if let Outcome::Failed(f) = o { Some(f) } else { None }).collect();
    assert!(failures.is_empty(), "{} of {} hostile values misbehaved:\n{}", failures.len(), tries.len(), failures.join("\n"));
    assert!(rendered > 50, "only {rendered} hostile values rendered (refused {refused}): the corpus must exercise the escaping, not only refusals");
    eprintln!("{} fields x {} values: {refused} refused at load, {rendered} rendered inert", fields.len() + NAME_KEYS.len(), CORPUS.len());
}
