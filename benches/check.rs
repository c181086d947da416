//! Benchmarks of load + resolve + check (and render) for every example and for a
//! generated 1,000-service spec. Run with `cargo bench`; the README quotes the numbers.

use std::path::Path;

fn main() {
    divan::main();
}

fn example(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name).join("capacity.yaml")).expect("example exists")
}

const EXAMPLES: &[&str] = &["django-compose", "rails-kamal", "rag-service", "sfpermits-railway", "sfpermits-railway-tier1", "voiceassist"];

/// A spec of `n` services: groups of gunicorn app + pgbouncer + postgres + redis, with
/// an nginx in front of every app.
pub fn generated(n: usize) -> String {
    let mut text = String::from("version: 1\nname: generated\nload: { rps: 5000, service_time: 100ms, db_time: 20ms }\nservices:\n");
    let groups = n / 5;
    for g in 0..groups {
        text.push_str(&format!(
            "  web{g}:\n    kind: gunicorn\n    worker_class: gthread\n    workers: 4\n    threads: 4\n    replicas: 3\n    uses:\n      pgb{g}: {{ pool: 4, framework: sqlalchemy }}\n      cache{g}: {{ pool: 10 }}\n  lb{g}:\n    kind: nginx\n    worker_processes: 2\n    worker_connections: 4096\n    worker_rlimit_nofile: 16384\n    upstreams: {{ app: {{ to: web{g}, keepalive: 32, max_conns: 4 }} }}\n    locations: [ {{ path: /, upstream: app }} ]\n  pgb{g}:\n    kind: pgbouncer\n    pool_mode: transaction\n    max_client_conn: 500\n    default_pool_size: 20\n    uses: {{ db{g}: {{}} }}\n  db{g}:\n    kind: postgres\n    max_connections: 100\n  cache{g}:\n    kind: redis\n    maxmemory: 1gb\n    resources: {{ memory: 4GiB }}\n"
        ));
    }
    text
}

#[divan::bench(args = EXAMPLES)]
fn check_example(bencher: divan::Bencher, name: &str) {
    let text = example(name);
    // The schema validator is built once per process, as in the CLI.
    let _ = headroom::analysis::analyze_text("warm.yaml", &text);
    bencher.bench(|| headroom::analysis::analyze_text("capacity.yaml", divan::black_box(&text)).expect("loads").diagnostics.len());
}

#[divan::bench(sample_count = 20)]
fn check_generated_1000_services(bencher: divan::Bencher) {
    let text = generated(1000);
    let _ = headroom::analysis::analyze_text("warm.yaml", &text).expect("the generated spec loads");
    bencher.bench(|| headroom::analysis::analyze_text("generated.yaml", divan::black_box(&text)).expect("loads").diagnostics.len());
}

#[divan::bench(args = EXAMPLES)]
fn render_example(bencher: divan::Bencher, name: &str) {
    let text = example(name);
    let analysis = headroom::analysis::analyze_text("capacity.yaml", &text).expect("loads");
    bencher.bench(|| {
        let ctx = headroom::targets::Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        headroom::targets::render_all(&ctx, &[]).map(|a| a.len()).unwrap_or(0)
    });
}
