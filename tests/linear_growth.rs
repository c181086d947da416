//! The core grows linearly: resolving and checking ten times the services costs about
//! ten times the work. Timed in-process with the best of several runs and generous
//! slack (a quadratic lookup makes the ratio ~100, linear code ~10; the bound is 20), so a loaded
//! machine does not make it flaky.

#[path = "../benches/generated.rs"]
mod generated;

use std::time::{Duration, Instant};

use headroom::load;
use headroom::source::SourceFile;

/// The fastest of `runs` resolve + check passes over one loaded spec.
fn best_of(runs: usize, services: usize) -> Duration {
    let text = generated::generated(services);
    let loaded = load::load_source(SourceFile::new("generated.yaml", text)).expect("the generated spec loads");
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            let plan = headroom::plan::resolve(&loaded.spec);
            let findings = headroom::rules::check(&plan);
            std::hint::black_box(findings.len());
            start.elapsed()
        })
        .min()
        .expect("at least one run")
}

#[test]
fn ten_times_the_services_costs_at_most_about_ten_times() {
    let small = best_of(9, 500);
    let large = best_of(5, 5000);
    let ratio = large.as_secs_f64() / small.as_secs_f64();
    eprintln!("{small:?} -> {large:?}: {ratio:.1}x");
    assert!(ratio < 20.0, "resolve + check: 500 services {small:?}, 5,000 services {large:?}: {ratio:.1}x for 10x the services");
}

#[test]
fn whole_analysis_grows_linearly_too() {
    let time = |services: usize, runs: usize| {
        let text = generated::generated(services);
        let _ = headroom::analysis::analyze_text("warm.yaml", &text);
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                let analysis = headroom::analysis::analyze_text("generated.yaml", &text).expect("loads");
                std::hint::black_box(analysis.diagnostics.len());
                start.elapsed()
            })
            .min()
            .expect("at least one run")
    };
    let small = time(200, 5);
    let large = time(2000, 2);
    let ratio = large.as_secs_f64() / small.as_secs_f64();
    eprintln!("{small:?} -> {large:?}: {ratio:.1}x");
    assert!(ratio < 20.0, "load + resolve + check: 200 services {small:?}, 2,000 services {large:?}: {ratio:.1}x for 10x the services");
}
