//! Benchmarks of load + resolve + check (and render) for every example and for a
//! generated 1,000-service spec. Run with `cargo bench`; the README quotes the numbers.

use std::path::Path;

#[path = "generated.rs"]
mod generated;
use generated::generated;

fn main() {
    // `HEADROOM_GENERATE=N cargo bench --bench check` prints the generated spec of N
    // services instead (benches/whole-process.sh times the whole process on it).
    if let Some(services) = std::env::var("HEADROOM_GENERATE").ok().and_then(|n| n.parse().ok()) {
        print!("{}", generated(services));
        return;
    }
    divan::main();
}

fn example(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name).join("capacity.yaml")).expect("example exists")
}

const EXAMPLES: &[&str] = &["django-compose", "rails-kamal", "rag-service", "sfpermits-railway", "sfpermits-railway-tier1", "voiceassist"];

#[divan::bench(args = EXAMPLES)]
fn check_example(bencher: divan::Bencher, name: &str) {
    let text = example(name);
    // The schema validator is built once per process, as in the CLI.
    let _ = headroom::analysis::analyze_text("warm.yaml", &text);
    bencher.bench(|| headroom::analysis::analyze_text("capacity.yaml", divan::black_box(&text)).expect("loads").diagnostics.len());
}

#[divan::bench(sample_count = 20, args = [1000, 10000])]
fn check_generated(bencher: divan::Bencher, services: usize) {
    let text = generated(services);
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
