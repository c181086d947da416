//! Round trip of every example through headroom's own files: render -> import ->
//! render must keep the numbers.
//!
//! For each `examples/*/capacity.yaml`: analyze it, render every target into a temp
//! dir (as `render --force`), import that dir, resolve the imported spec and compare
//! the plans number by number, then render the imported spec and compare the
//! rendered files line by line.
//!
//! What comes from outside the files (and why):
//! - `load:` (rps, service_time, db_time, concurrent users, p95 target) from a small
//!   overlay spec: no config file carries the request rate or service times.
//! - the deployment name, passed as `ImportOptions::name` (what `--name` does): the
//!   files name it only in their header comment, which readers do not interpret.
//!
//! Nothing else is given: services, replicas, workers, pools (from `env/<svc>.env`,
//! compose `environment:` and Kamal role env), owners of config files (from compose
//! mounts, Kamal `files:` and headroom's path layout) and versions (image tags) all
//! come from the rendered files.
//!
//! Numbers that cannot round-trip, checked as exceptions below:
//! - voiceassist: the redis in sentinel mode. `render` runs the master plus
//!   `replicas_per_master` replicas (`redis-replica-1`) and leaves `replicas` at 1;
//!   the compose reader counts data nodes (master + replicas) in `replicas` (its
//!   seed-fixture test requires that) and also sets `replicas_per_master`, so the
//!   rendered files match but the plan's `replicas` of `redis` reads 2, not 1.
//! - voiceassist: `postgres.read_replicas` is rendered only as a comment in the compose
//!   file (a streaming replica needs a base backup compose cannot take), so it is not
//!   compared.
//! - rails-kamal: deploy.yml lists only the addresses of the accessories' hosts, so
//!   the Kamal reader names the machine group of 192.168.1.30 after its first
//!   accessory (`pgbouncer`); the original calls it `cache`. `sysctl/cache.conf` is
//!   rendered back as `sysctl/pgbouncer.conf` with the same numbers (the values read
//!   from cache.conf land in a machine group `cache` that holds no service).
//! - voiceassist: its Qdrant cluster. No reader rebuilds a qdrant service from
//!   headroom's files yet (the node environment names the cluster, but the vector
//!   counts live only in the spec and the collection script), so the round trip runs on
//!   the example without its qdrant services and the pools that use them.
//! - django-compose: the compose `environment:` of `web` holds `REDIS_PORT: "6379"`
//!   from the spec's `env.clear`; the compose reader does not copy app environment
//!   values into the spec (they may hold secrets), so that line is not rendered back.

use crate::fs_support::examples;
use std::collections::BTreeMap;
use std::path::PathBuf;

use headroom::analysis::analyze_file;
use headroom::import::{ImportOptions, UNPARSABLE, import};
use headroom::output::{destination, write_atomic};
use headroom::plan::{Detail, Plan};
use headroom::report::capacity::CapacityReport;
use headroom::targets::{Artifact, Context, render_all};
use serde_json::Value;

fn render(spec: &headroom::spec::Spec, plan: &Plan, name: &str) -> Vec<Artifact> {
    let ctx = Context { spec, plan, spec_file: "capacity.yaml".into(), existing_root: None };
    render_all(&ctx, &[]).unwrap_or_else(|e| panic!("{name}: render failed: {e:?}"))
}

/// The top-level `load:` block of a spec, as written.
fn load_block(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("load:") {
            inside = true;
        } else if inside && !line.is_empty() && !line.starts_with([' ', '#']) {
            break;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(!out.is_empty(), "every example has a load");
    out
}

/// Lines of a rendered file that carry a number, without comments: the settings.
/// Order is kept (a number belongs to the service or section above it).
fn numeric_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
        .map(|l| match l.find("  #").or_else(|| l.find(" # ")) {
            Some(i) => l[..i].trim_end(),
            None => l,
        })
        .filter(|l| l.chars().any(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .collect()
}

struct Original {
    spec: headroom::spec::Spec,
    plan: Plan,
}

struct RoundTrip {
    original: Original,
    imported_plan: Plan,
    first: Vec<Artifact>,
    second: Vec<Artifact>,
    imported_value: Value,
}

fn round_trip(name: &str) -> RoundTrip {
    let spec_path = PathBuf::from(format!("examples/{name}/capacity.yaml"));
    let analysis = analyze_file(&spec_path).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let spec = without_qdrant(&analysis.loaded.spec);
    let original = Original { plan: headroom::plan::resolve(&spec), spec };
    let first = render(&original.spec, &original.plan, name);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rendered");
    for artifact in &first {
        let path = destination(&out, artifact).unwrap();
        write_atomic(&path, &artifact.text).unwrap();
    }
    let overlay = dir.path().join("overlay.yaml");
    let text = std::fs::read_to_string(&spec_path).unwrap();
    std::fs::write(&overlay, format!("version: 1\nname: {}\n{}", original.plan.name, load_block(&text))).unwrap();
    let options = ImportOptions { name: original.plan.name.clone(), overlay: Some(overlay), ..ImportOptions::default() };
    let outcome = import(&[out], &options);
    let errors: Vec<String> = outcome.diagnostics.iter().filter(|d| d.rule == UNPARSABLE || d.severity == headroom::diag::Severity::Error).map(|d| format!("{}: {}", d.rule, d.message)).collect();
    assert!(errors.is_empty(), "{name}: importing headroom's own files reported errors: {errors:#?}");
    let imported = outcome.imported.unwrap_or_else(|| panic!("{name}: the imported spec does not validate"));
    let imported_plan = headroom::plan::resolve(&imported.spec);
    let second = render(&imported.spec, &imported_plan, name);
    RoundTrip { original, imported_plan, first, second, imported_value: imported.value }
}

/// The spec without its qdrant services and the `uses` entries that name them (see the
/// module comment).
fn without_qdrant(spec: &headroom::spec::Spec) -> headroom::spec::Spec {
    let mut value = serde_json::to_value(spec).unwrap();
    let services = value["services"].as_object_mut().unwrap();
    let qdrant: Vec<String> = services.iter().filter(|(_, s)| s["kind"] == "qdrant").map(|(n, _)| n.clone()).collect();
    for name in &qdrant {
        services.shift_remove(name);
    }
    for service in services.values_mut() {
        if let Some(uses) = service.get_mut("uses").and_then(Value::as_object_mut) {
            uses.retain(|target, _| !qdrant.contains(target));
        }
    }
    serde_json::from_value(value).unwrap()
}

fn redis_replicas_exception(name: &str, service: &str) -> bool {
    name == "voiceassist" && service == "redis"
}

#[test]
fn every_example_round_trips_its_plan() {
    for name in examples() {
        let rt = round_trip(&name);
        let (a, b) = (&rt.original.plan, &rt.imported_plan);
        for s in &a.services {
            let t = b.service(&s.name).unwrap_or_else(|| panic!("{name}: service `{}` is missing after import:\n{:#}", s.name, rt.imported_value));
            assert_eq!(s.kind, t.kind, "{name}: kind of {}", s.name);
            if !redis_replicas_exception(&name, &s.name) {
                assert_eq!(s.replicas.value, t.replicas.value, "{name}: replicas of {}", s.name);
            }
            assert_eq!(s.processes.value, t.processes.value, "{name}: processes of {}", s.name);
            assert_eq!(s.slots_per_process.value, t.slots_per_process.value, "{name}: slots_per_process of {}", s.name);
            match (&s.detail, &t.detail) {
                (Detail::Pgbouncer(x), Detail::Pgbouncer(y)) => {
                    assert_eq!(x.max_client_conn.value, y.max_client_conn.value, "{name}: {} max_client_conn", s.name);
                    assert_eq!(x.default_pool_size.value, y.default_pool_size.value, "{name}: {} default_pool_size", s.name);
                    assert_eq!(x.reserve_pool_size.value, y.reserve_pool_size.value, "{name}: {} reserve_pool_size", s.name);
                    assert_eq!(x.pool_mode.value, y.pool_mode.value, "{name}: {} pool_mode", s.name);
                    assert_eq!(x.max_db_connections.value, y.max_db_connections.value, "{name}: {} max_db_connections", s.name);
                    assert_eq!(x.server_connections.value, y.server_connections.value, "{name}: {} server connections", s.name);
                    assert_eq!(x.version.value, y.version.value, "{name}: {} version (from the image tag)", s.name);
                }
                (Detail::Postgres(x), Detail::Postgres(y)) => {
                    assert_eq!(x.max_connections.value, y.max_connections.value, "{name}: {} max_connections", s.name);
                    assert_eq!(x.usable_connections, y.usable_connections, "{name}: {} usable connections", s.name);
                    assert_eq!(x.version.value, y.version.value, "{name}: {} version", s.name);
                }
                (Detail::Redis(x), Detail::Redis(y)) => {
                    assert_eq!(x.maxclients.value, y.maxclients.value, "{name}: {} maxclients", s.name);
                    assert_eq!(x.maxmemory.as_ref().map(|m| m.value), y.maxmemory.as_ref().map(|m| m.value), "{name}: {} maxmemory", s.name);
                    assert_eq!(x.maxmemory_policy.value, y.maxmemory_policy.value, "{name}: {} policy", s.name);
                    assert_eq!(x.mode, y.mode, "{name}: {} mode", s.name);
                    assert_eq!(x.replicas_per_master, y.replicas_per_master, "{name}: {} replicas_per_master", s.name);
                    assert_eq!(x.sentinels.as_ref().map(|v| v.value), y.sentinels.as_ref().map(|v| v.value), "{name}: {} sentinels", s.name);
                }
                (Detail::Nginx(x), Detail::Nginx(y)) => {
                    assert_eq!(x.worker_processes.value, y.worker_processes.value, "{name}: {} worker_processes", s.name);
                    assert_eq!(x.worker_connections.value, y.worker_connections.value, "{name}: {} worker_connections", s.name);
                    let conns = |n: &headroom::plan::NginxPlan| n.upstreams.iter().map(|u| (u.name.clone(), u.to.clone(), u.max_conns.value)).collect::<Vec<_>>();
                    assert_eq!(conns(x), conns(y), "{name}: {} upstream max_conns", s.name);
                }
                (x, y) => assert_eq!(std::mem::discriminant(x), std::mem::discriminant(y), "{name}: detail of {}", s.name),
            }
        }
        let edges = |p: &Plan| p.edges.iter().map(|e| ((e.from.clone(), e.to.clone()), (e.per_process.value, e.connections, e.framework, e.persistent))).collect::<BTreeMap<_, _>>();
        assert_eq!(edges(a), edges(b), "{name}: edges (per process, connections, framework, persistent)");

        // The whole capacity report (every service, edge, budget, throughput and
        // bottleneck) must be identical; the one exception is patched first.
        let report = |p: &Plan| serde_json::from_str::<Value>(&CapacityReport::of(p).to_json()).unwrap();
        let (ra, mut rb) = (report(a), report(b));
        if name == "voiceassist" {
            assert_eq!(rb["services"]["redis"]["replicas"], 2, "voiceassist: see the module comment");
            rb["services"]["redis"]["replicas"] = ra["services"]["redis"]["replicas"].clone();
        }
        assert_eq!(ra, rb, "{name}: capacity reports differ\noriginal: {ra:#}\nimported: {rb:#}");

        // The same rules fire on the imported spec.
        let ids = |p: &Plan| headroom::rules::check(p).iter().map(|d| (d.rule.to_string(), format!("{:?}", d.severity))).collect::<std::collections::BTreeSet<_>>();
        assert_eq!(ids(a), ids(b), "{name}: rule findings differ after the round trip");
    }
}

#[test]
fn every_example_renders_the_same_numbers_after_import() {
    for name in examples() {
        let rt = round_trip(&name);
        // Artifacts pair by target and file name: paths the files cannot name (a
        // railway.toml under `web/`, which `deploy.railway.file` placed) may move.
        let key = |a: &Artifact| (a.target, a.path.rsplit('/').next().unwrap_or("").to_string());
        let second: BTreeMap<_, &Artifact> = rt.second.iter().map(|a| (key(a), a)).collect();
        assert_eq!(rt.first.len(), rt.second.len(), "{name}: {:?} vs {:?}\n{:#}", rt.first.iter().map(|a| &a.path).collect::<Vec<_>>(), rt.second.iter().map(|a| &a.path).collect::<Vec<_>>(), rt.imported_value);
        for a in &rt.first {
            let mut k = key(a);
            if name == "rails-kamal" && a.path == "sysctl/cache.conf" {
                // See the module comment: the machine group is named after its first
                // accessory, as deploy.yml lists only addresses.
                k.1 = "pgbouncer.conf".into();
            }
            let b = second.get(&k).unwrap_or_else(|| panic!("{name}: {} is not rendered from the imported spec", a.path));
            if a.target != "railway" && k == key(a) {
                assert_eq!(a.path, b.path, "{name}: path of {}", a.path);
            }
            // A ConfigMap's checksum annotation hashes the embedded file's whole text,
            // whose comments cite the spec paths a value came from (and those differ
            // after import); the file's own numbers are compared through its artifact.
            let checksum = |l: &String| !l.contains(headroom::targets::kubernetes::CONFIG_ANNOTATION);
            let mut want: Vec<String> = numeric_lines(&a.text).into_iter().filter(checksum).collect();
            let got: Vec<String> = numeric_lines(&b.text).into_iter().filter(checksum).collect();
            if name == "django-compose" && a.target == "compose" {
                // See the module comment: app env values are not copied from compose.
                let before = want.len();
                want.retain(|l| l != "\"REDIS_PORT\": \"6379\"");
                assert_eq!(before - want.len(), 1, "django-compose: the REDIS_PORT exception no longer applies");
            }
            assert_eq!(want, got, "{name}: numbers of {} differ after render -> import -> render", a.path);
        }
    }
}
