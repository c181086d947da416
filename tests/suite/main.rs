//! The offline integration tests, built as one test binary: one link of the library
//! instead of one per file keeps `target/` small enough for a crowded CI disk (each
//! binary carries the whole library and its dependencies, about 50 MB unoptimized).
//! Each file is a module; `cargo test --test suite <module>::` runs one of them.
//! The tests that measure time or drive live servers stay binaries of their own
//! (`live_stack`, `live_observe`, `live_redis`, `linear_growth`), so that nothing here
//! runs beside them.

#[path = "../deploy_support/mod.rs"]
mod deploy_support;
mod fs_support;

mod bad_input;
mod cli;
mod examples;
mod generated;
mod hostile_corpus;
mod import_roundtrip;
mod kubernetes_spec;
mod limits;
mod lint;
mod lint_corpus;
mod lint_kubernetes;
mod markdown;
mod properties;
mod qdrant;
mod real_alerts;
mod real_app;
mod real_data;
mod real_deploy;
mod real_kubernetes;
mod render;
mod render_safety;
mod review_hooks;
mod rules;
mod scale;
mod scale_probe;
mod schema;
mod seed_scaleups;
