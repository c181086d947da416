//! Qdrant's rendered configuration, proven against Qdrant 1.19 and the real validators:
//! - every key of every rendered `qdrant/*.yaml` exists in Qdrant 1.19's reference
//!   config/config.yaml (`$HEADROOM_SHARED/reference/qdrant-1.19/config.yaml`) with the
//!   same type, and every `QDRANT__*` variable a compose service or Kamal accessory
//!   gets maps to such a key the way Qdrant reads its environment (prefix `QDRANT`,
//!   `__` between levels, lowercased) with a value of that type; the only other Qdrant
//!   variables are the `--uri` / `--bootstrap` arguments' `QDRANT_URI` /
//!   `QDRANT_BOOTSTRAP`, each a URI of a node at its P2P port;
//! - the compose files go through tests/validators/compose.sh and the Kamal files
//!   through Kamal's own validation (`$HEADROOM_SHARED/tools/kamal-validate`);
//! - the collection script runs against a stand-in of Qdrant's REST API
//!   (tests/validators/qdrant_standin.py, on a free loopback port): it waits for the
//!   nodes, creates what is missing with the planned shards and replication, changes
//!   nothing on a second run, and lists (without changing) what differs;
//! - the compose health check command answers from /readyz;
//! - on Kubernetes the nodes are a StatefulSet with stable peer names (each pod's URI
//!   from its own name, all joining through pod 0) and the node file as a ConfigMap
//!   (tests/real_kubernetes.rs runs kubernetes-validate on tests/fixtures/kubernetes).
//!
//! No Qdrant server is installable from the registries this project uses (Debian,
//! PyPI, crates.io, npm): the reference configuration is the proof of the keys.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use headroom::analysis::analyze_text;
use headroom::targets::{Artifact, Context, render_all};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shared() -> PathBuf {
    std::env::var_os("HEADROOM_SHARED").map(PathBuf::from).unwrap_or_else(|| repo().join("../shared"))
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str::<Value>(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
}

/// The reference configuration as `dotted.key -> value`, leaves only.
fn reference() -> BTreeMap<String, Value> {
    let path = shared().join("reference/qdrant-1.19/config.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (set HEADROOM_SHARED)", path.display()));
    let mut out = BTreeMap::new();
    flatten("", &yaml(&text), &mut out);
    assert!(out.contains_key("cluster.p2p.port") && out.contains_key("service.max_request_size_mb"), "{} is not Qdrant's reference config", path.display());
    out
}

fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        leaf => {
            out.insert(prefix.to_string(), leaf.clone());
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Null => "null",
        _ => "structure",
    }
}

/// A rendered config key against the reference: it exists, with the same type.
fn check_key(reference: &BTreeMap<String, Value>, key: &str, value: &Value) -> Result<(), String> {
    let Some(expected) = reference.get(key) else { return Err(format!("`{key}` is not a key of Qdrant 1.19's config")) };
    if type_name(expected) != type_name(value) {
        return Err(format!("`{key}` is a {} in Qdrant 1.19's config ({expected}), rendered as a {} ({value})", type_name(expected), type_name(value)));
    }
    Ok(())
}

/// A `QDRANT__*` variable as Qdrant reads it: the key it sets and a value of its type.
fn check_env(reference: &BTreeMap<String, Value>, name: &str, value: &str) -> Result<(), String> {
    let key = name.to_lowercase().strip_prefix("qdrant__").ok_or_else(|| format!("`{name}` is not a QDRANT__ variable"))?.replace("__", ".");
    let expected = reference.get(&key).ok_or_else(|| format!("`{name}` sets `{key}`, which is not a key of Qdrant 1.19's config: Qdrant ignores it"))?;
    let ok = match expected {
        Value::Bool(_) => matches!(value, "true" | "false"),
        Value::Number(n) if n.is_u64() => value.parse::<u64>().is_ok(),
        Value::Number(_) => value.parse::<f64>().is_ok(),
        Value::String(_) => true,
        _ => false,
    };
    if ok { Ok(()) } else { Err(format!("`{name}` = `{value}` is not a {} (`{key}` in Qdrant 1.19's config)", type_name(expected))) }
}

/// `QDRANT_URI` / `QDRANT_BOOTSTRAP`: `http://HOST:PORT` with a known node host and the P2P port.
fn check_peer_uri(name: &str, value: &str, hosts: &[String], p2p_ports: &[u64]) -> Result<(), String> {
    let rest = value.strip_prefix("http://").ok_or_else(|| format!("{name} `{value}` is not an http:// URI"))?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(|| format!("{name} `{value}` has no port"))?;
    let port: u64 = port.parse().map_err(|_| format!("{name} `{value}`: bad port"))?;
    if !hosts.iter().any(|h| h == host.trim_matches(['[', ']'])) {
        return Err(format!("{name} `{value}` names `{host}`, which is not a node ({hosts:?})"));
    }
    if !p2p_ports.contains(&port) {
        return Err(format!("{name} `{value}` is not at a P2P port ({p2p_ports:?})"));
    }
    Ok(())
}

fn render(yaml_text: &str) -> (tempfile::TempDir, Vec<Artifact>) {
    let analysis = analyze_text("capacity.yaml", yaml_text).unwrap_or_else(|f| panic!("spec does not load: {:#?}", f.diagnostics));
    let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
    let artifacts = render_all(&ctx, &[]).unwrap_or_else(|e| panic!("render failed: {e:?}"));
    let dir = tempfile::tempdir().unwrap();
    for a in &artifacts {
        let path = dir.path().join(&a.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &a.text).unwrap();
    }
    (dir, artifacts)
}

/// The runbook's cluster, on compose and on Kamal (two hosts: node 3 shares a host with
/// node 1 and publishes its ports 10 higher), with a second, quantized collection.
const CLUSTER: &str = r#"version: 1
name: voiceassist
machines:
  app: { count: 1, addresses: [10.0.0.10] }
  vec: { count: 2, addresses: [10.0.0.21, 10.0.0.22] }
services:
  api:
    kind: gunicorn
    machine: app
    workers: 4
    uses: { qdrant-node: { pool: 10 } }
  qdrant-node:
    kind: qdrant
    machine: vec
    replicas: 3
    max_request_size_mb: 64
    max_workers: 4
    resources: { cpus: 4, memory: 8GiB }
    collections:
      voice_embeddings: { vectors: 2000000, dimensions: 384, distance: cosine, shard_number: 3, replication_factor: 2 }
      transcripts: { vectors: 500000, dimensions: 768, distance: dot, shard_number: 6, replication_factor: 2, write_consistency_factor: 2, on_disk: true, quantization: { type: product, compression: x16, always_ram: true } }
deploy:
  compose: {}
  kamal:
    image: acme/voiceassist
    registry: { username: KAMAL_REGISTRY_USERNAME, password: KAMAL_REGISTRY_PASSWORD }
"#;

/// One node, other ports, binary quantization.
const SINGLE: &str = r#"version: 1
name: rag
machines:
  box: { count: 1, addresses: [10.0.1.5] }
services:
  api:
    kind: gunicorn
    machine: box
    uses: { vectors: { pool: 4 } }
  vectors:
    kind: qdrant
    machine: box
    port: 7333
    grpc_port: 7334
    collections:
      docs: { vectors: 100000, dimensions: 1536, distance: cosine, on_disk: true, quantization: { type: binary, always_ram: true } }
deploy:
  compose: {}
  kamal:
    image: acme/rag
    registry: { username: KAMAL_REGISTRY_USERNAME, password: KAMAL_REGISTRY_PASSWORD }
"#;

fn specs() -> Vec<(String, String)> {
    let mut out = vec![("cluster".to_string(), CLUSTER.to_string()), ("single".to_string(), SINGLE.to_string())];
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let path = entry.unwrap().path().join("capacity.yaml");
        if let Ok(text) = std::fs::read_to_string(&path)
            && text.contains("kind: qdrant")
        {
            out.push((path.display().to_string(), text));
        }
    }
    assert!(out.len() > 2, "no example holds a qdrant");
    out
}

/// Every QDRANT variable of a Qdrant node's environment (compose `environment:` or Kamal
/// `env.clear`); other services' environments are left out.
fn check_environment(reference: &BTreeMap<String, Value>, env: &serde_json::Map<String, Value>, hosts: &[String], p2p: &[u64], problems: &mut Vec<String>) -> usize {
    let mut checked = 0;
    if !env.keys().any(|k| k.starts_with("QDRANT__")) {
        return 0;
    }
    for (name, value) in env {
        let value = value.as_str().map(str::to_string).unwrap_or_else(|| value.to_string());
        let result = if name.starts_with("QDRANT__") {
            check_env(reference, name, &value)
        } else if name == "QDRANT_URI" || name == "QDRANT_BOOTSTRAP" {
            check_peer_uri(name, &value, hosts, p2p)
        } else if name.starts_with("QDRANT") && name != "QDRANT_URL" {
            Err(format!("`{name}` is neither a config variable nor one of Qdrant's arguments"))
        } else {
            continue;
        };
        checked += 1;
        if let Err(e) = result {
            problems.push(e);
        }
    }
    checked
}

#[test]
fn rendered_keys_and_environment_are_qdrant_1_19_settings() {
    let reference = reference();
    for (name, spec) in specs() {
        let (_dir, artifacts) = render(&spec);
        let mut problems = Vec::new();
        let mut counted = BTreeMap::<&str, usize>::new();
        for a in artifacts.iter().filter(|a| a.target == "qdrant" && a.path.ends_with(".yaml")) {
            let mut keys = BTreeMap::new();
            flatten("", &yaml(&a.text), &mut keys);
            for (key, value) in &keys {
                if let Err(e) = check_key(&reference, key, value) {
                    problems.push(format!("{}: {e}", a.path));
                }
            }
            *counted.entry("config keys").or_default() += keys.len();
        }
        for a in artifacts.iter().filter(|a| a.target == "compose") {
            let file = yaml(&a.text);
            let services = file["services"].as_object().unwrap();
            let hosts: Vec<String> = services.keys().cloned().collect();
            for svc in services.values() {
                let Some(env) = svc["environment"].as_object() else { continue };
                let p2p: Vec<u64> = env.get("QDRANT__CLUSTER__P2P__PORT").and_then(|v| v.as_str()?.parse().ok()).into_iter().collect();
                *counted.entry("compose variables").or_default() += check_environment(&reference, env, &hosts, &p2p, &mut problems);
            }
        }
        for a in artifacts.iter().filter(|a| a.target == "kamal") {
            let file = yaml(&a.text);
            let Some(accessories) = file["accessories"].as_object() else { continue };
            let hosts: Vec<String> = accessories.values().filter_map(|x| x["host"].as_str().map(str::to_string)).collect();
            // Published P2P ports: the container port 6335 at host port 6335 + 10 x k.
            let p2p: Vec<u64> = accessories
                .values()
                .flat_map(|x| x["options"]["publish"].as_array().cloned().unwrap_or_default())
                .filter_map(|p| p.as_str().and_then(|p| p.rsplit(':').nth(1)).and_then(|h| h.parse().ok()))
                .collect();
            for acc in accessories.values() {
                if let Some(env) = acc["env"]["clear"].as_object() {
                    *counted.entry("kamal variables").or_default() += check_environment(&reference, env, &hosts, &p2p, &mut problems);
                }
            }
        }
        assert!(problems.is_empty(), "{name}:\n{}", problems.join("\n"));
        for what in ["config keys", "compose variables"] {
            assert!(counted.get(what).copied().unwrap_or(0) > 0, "{name}: nothing checked for {what}: {counted:?}");
        }
        eprintln!("{name}: {counted:?}");
    }
}

#[test]
fn the_checks_refuse_what_qdrant_would_ignore_or_misread() {
    let reference = reference();
    // The runbook's bootstrap variable sets no key: Qdrant ignores it.
    let e = check_env(&reference, "QDRANT__CLUSTER__P2P__BOOTSTRAP__URI", "http://qdrant-node-1:6335").unwrap_err();
    assert!(e.contains("not a key"), "{e}");
    assert!(check_env(&reference, "QDRANT__CLUSTER__ENABLED", "true").is_ok());
    assert!(check_env(&reference, "QDRANT__CLUSTER__ENABLED", "yes please").is_err());
    assert!(check_env(&reference, "QDRANT__SERVICE__HTTP_PORT", "http").is_err());
    assert!(check_key(&reference, "cluster.p2p.bootstrap", &Value::from("x")).is_err());
    assert!(check_key(&reference, "cluster.enabled", &Value::from("true")).is_err(), "a quoted boolean is a string");
    assert!(check_key(&reference, "service.max_request_size_mb", &Value::from(32)).is_ok());
    let hosts = vec!["qdrant-node-1".to_string()];
    assert!(check_peer_uri("QDRANT_URI", "http://qdrant-node-1:6335", &hosts, &[6335]).is_ok());
    assert!(check_peer_uri("QDRANT_URI", "http://qdrant-node-9:6335", &hosts, &[6335]).is_err());
    assert!(check_peer_uri("QDRANT_URI", "http://qdrant-node-1:6333", &hosts, &[6335]).is_err());
}

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.output().unwrap_or_else(|e| panic!("cannot run {shown}: {e}"))
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn compose_and_kamal_accept_the_qdrant_nodes() {
    let compose_sh = repo().join("tests/validators/compose.sh");
    let kamal_validate = shared().join("tools/kamal-validate");
    assert!(kamal_validate.is_file(), "{} is missing: set HEADROOM_SHARED", kamal_validate.display());
    for spec in [CLUSTER, SINGLE] {
        let (dir, artifacts) = render(spec);
        for a in &artifacts {
            let path = dir.path().join(&a.path);
            if a.target == "compose" {
                for line in a.text.lines() {
                    if let Some(ctx) = line.trim_start().strip_prefix("build: ") {
                        std::fs::create_dir_all(path.parent().unwrap().join(serde_json::from_str::<String>(ctx).unwrap())).unwrap();
                    }
                }
                let out = run(Command::new("bash").arg(&compose_sh).arg(&path));
                assert!(out.status.success(), "compose.sh rejected {}:\n{}\n{}", a.path, text(&out), a.text);
            }
            if a.target == "kamal" {
                let out = run(Command::new(&kamal_validate).arg("--resolve-secrets").arg(&path));
                assert!(out.status.success(), "Kamal rejected {}:\n{}\n{}", a.path, text(&out), a.text);
            }
        }
    }
    // The cluster's nodes in compose: one service and volume each, joined through node 1.
    let (_dir, artifacts) = render(CLUSTER);
    let compose = yaml(&artifacts.iter().find(|a| a.target == "compose").unwrap().text);
    for i in 1..=3 {
        let node = &compose["services"][format!("qdrant-node-{i}")];
        assert_eq!(node["volumes"][0], format!("qdrant-node-{i}-storage:/qdrant/storage"));
        assert_eq!(node["environment"]["QDRANT_URI"], format!("http://qdrant-node-{i}:6335"));
        assert_eq!(node["environment"].get("QDRANT_BOOTSTRAP").is_some(), i > 1);
    }
    assert_eq!(compose["services"]["qdrant-node-2"]["depends_on"]["qdrant-node-1"]["condition"], "service_healthy");
    let init = &compose["services"]["qdrant-node-collections"];
    assert_eq!(init["environment"]["QDRANT_URL"], "http://qdrant-node-1:6333");
    assert_eq!(init["depends_on"].as_object().unwrap().len(), 3);
}

/// A stand-in Qdrant on a free loopback port, stopped by PID when dropped.
struct StandIn {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl StandIn {
    fn start(dir: &Path, peers: u64, ready_file: Option<&Path>) -> StandIn {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = dir.join(format!("puts-{port}.jsonl"));
        let mut cmd = Command::new("python3");
        cmd.arg(repo().join("tests/validators/qdrant_standin.py")).arg(port.to_string()).arg(peers.to_string()).arg(&log);
        if let Some(r) = ready_file {
            cmd.arg(r);
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("python3 runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the stand-in did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        StandIn { child, port, log }
    }
    fn puts(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log).unwrap_or_default().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
    fn post(&self, path: &str, body: &str) {
        let script = format!(
            "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:{}{path}', data={body:?}.encode(), method='POST'))",
            self.port
        );
        assert!(run(Command::new("python3").arg("-c").arg(script)).status.success());
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_script(script: &Path, port: u16, wait: &str) -> Output {
    run(Command::new("python3").arg(script).env("QDRANT_URL", format!("http://127.0.0.1:{port}")).env("QDRANT_WAIT_SECONDS", wait))
}

#[test]
fn the_collection_script_creates_once_and_reports_differences() {
    let (dir, artifacts) = render(CLUSTER);
    let script_artifact = artifacts.iter().find(|a| a.path.ends_with("-collections.py")).expect("a collection script");
    let script = dir.path().join(&script_artifact.path);

    // Only 2 of 3 nodes have joined: the script waits, then gives up without creating.
    let standin = StandIn::start(dir.path(), 2, None);
    let out = run_script(&script, standin.port, "1");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("did not reach 3 nodes"), "{}", text(&out));
    assert!(standin.puts().is_empty(), "nothing is created before every node joined");

    // All 3 joined: each collection created once, with the planned shards and replication.
    standin.post("/standin/peers/3", "{}");
    let out = run_script(&script, standin.port, "5");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("voice_embeddings: created (3 shards x 2 replicas)"), "{}", text(&out));
    let puts = standin.puts();
    assert_eq!(puts.len(), 2, "{puts:?}");
    assert_eq!(puts[0]["name"], "voice_embeddings");
    assert_eq!(puts[0]["body"]["vectors"], serde_json::json!({ "size": 384, "distance": "Cosine" }));
    assert_eq!((puts[0]["body"]["shard_number"].as_u64(), puts[0]["body"]["replication_factor"].as_u64()), (Some(3), Some(2)));
    assert_eq!(puts[1]["body"]["quantization_config"], serde_json::json!({ "product": { "compression": "x16", "always_ram": true } }));
    assert_eq!(puts[1]["body"]["vectors"]["on_disk"], true);

    // Second run: nothing to do, nothing sent.
    let out = run_script(&script, standin.port, "5");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("voice_embeddings: exists, as planned"), "{}", text(&out));
    assert_eq!(standin.puts().len(), 2, "a second run creates nothing");

    // A collection made by hand with one replica: listed, left alone, exit 1.
    standin.post("/standin/set/voice_embeddings", r#"{"replication_factor": 1}"#);
    let out = run_script(&script, standin.port, "5");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("replication_factor: spec 2, collection 1"), "{}", text(&out));
    assert_eq!(standin.puts().len(), 2, "a differing collection is not recreated");

    // Qdrant unreachable: exit 2 and a message.
    drop(standin);
    let out = run_script(&script, TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(), "0");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn the_compose_health_check_reads_readyz() {
    let (dir, artifacts) = render(CLUSTER);
    let compose = yaml(&artifacts.iter().find(|a| a.target == "compose").unwrap().text);
    let test = compose["services"]["qdrant-node-1"]["healthcheck"]["test"].as_array().unwrap().clone();
    assert_eq!(test[0], "CMD");
    let ready = dir.path().join("ready");
    let standin = StandIn::start(dir.path(), 3, Some(&ready));
    let argv: Vec<String> = test[1..].iter().map(|v| v.as_str().unwrap().replace("127.0.0.1/6333", &format!("127.0.0.1/{}", standin.port))).collect();
    let check = || run(Command::new(&argv[0]).args(&argv[1..])).status.success();
    assert!(!check(), "503 from /readyz is unhealthy");
    std::fs::write(&ready, "").unwrap();
    assert!(check(), "200 from /readyz is healthy");
}

#[test]
fn kubernetes_runs_the_nodes_as_a_statefulset_with_stable_peer_names() {
    let spec = std::fs::read_to_string(repo().join("tests/fixtures/kubernetes/qdrant-cluster.yaml")).unwrap();
    let (_dir, artifacts) = render(&spec);
    let manifest = artifacts.iter().find(|a| a.path == "kubernetes/qdrant-node.yaml").expect("a manifest for the qdrant service");
    let docs: Vec<Value> = manifest.text.split("\n---\n").map(yaml).collect();
    let kind = |k: &str| docs.iter().find(|d| d["kind"] == k).unwrap_or_else(|| panic!("no {k} in\n{}", manifest.text));
    let set = kind("StatefulSet");
    assert_eq!(set["spec"]["serviceName"], "qdrant-node");
    assert_eq!(set["spec"]["replicas"], 3);
    let container = &set["spec"]["template"]["spec"]["containers"][0];
    let env: BTreeMap<String, Value> = container["env"].as_array().unwrap().iter().map(|e| (e["name"].as_str().unwrap().to_string(), e.clone())).collect();
    assert_eq!(env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
    assert_eq!(env["QDRANT_URI"]["value"], "http://$(POD_NAME).qdrant-node:6335");
    // Pod 0's own URI: Qdrant 1.19 starts it as the first peer.
    assert_eq!(env["QDRANT_BOOTSTRAP"]["value"], "http://qdrant-node-0.qdrant-node:6335");
    let ports: Vec<u64> = container["ports"].as_array().unwrap().iter().map(|p| p["containerPort"].as_u64().unwrap()).collect();
    assert_eq!(ports, [6333, 6334, 6335]);
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/livez");
    let mounts = container["volumeMounts"].as_array().unwrap();
    assert!(mounts.iter().any(|m| m["mountPath"] == "/qdrant/storage" && m["name"] == "data"), "{mounts:?}");
    assert!(mounts.iter().any(|m| m["mountPath"] == "/qdrant/config/local.yaml"), "{mounts:?}");
    assert_eq!(set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"], "data");
    let service = kind("Service");
    assert_eq!(service["spec"]["clusterIP"], "None");
    assert_eq!(service["spec"]["publishNotReadyAddresses"], true);
    // The ConfigMap holds the file the qdrant target writes, whose keys are proven above.
    let config = kind("ConfigMap");
    let on_disk = artifacts.iter().find(|a| a.path == "qdrant/qdrant-node.yaml").unwrap();
    assert_eq!(config["data"]["local.yaml"].as_str().unwrap(), on_disk.text);
}
