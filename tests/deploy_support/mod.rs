//! Shared by the deploy tests (suite/real_deploy.rs, live_redis.rs): running programs and
//! reading their output, and docker-compose's own reading of a rendered compose file.
//! A missing program fails the test: `.ci/install-validators` installs them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn validator(name: &str) -> PathBuf {
    let path = repo().join("tests/validators").join(name);
    assert!(path.is_file(), "validator {} is missing", path.display());
    path
}

pub fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.output().unwrap_or_else(|e| panic!("cannot run {shown}: {e}"))
}

/// stdout and stderr together.
pub fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

pub fn require_program(name: &str) {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {name}")).output().is_ok_and(|o| o.status.success());
    assert!(found, "`{name}` is not installed: run .ci/install-validators");
}

/// libnss_wrapper, which resolves container host names from a file (never /etc/hosts).
pub fn nss_wrapper() -> PathBuf {
    ["/usr/lib/x86_64-linux-gnu/libnss_wrapper.so", "/usr/lib/aarch64-linux-gnu/libnss_wrapper.so", "/usr/lib/libnss_wrapper.so"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("libnss_wrapper is not installed: run .ci/install-validators")
}

/// docker-compose's own reading of a compose file (tests/validators/compose_resolved.py):
/// per service its environment, build context, command and volumes. `env` is the
/// environment compose interpolates from.
pub fn compose_resolved(file: &Path, env: &[(String, String)]) -> serde_json::Value {
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(validator("compose_resolved.py")).arg(file).envs(env.iter().map(|(k, v)| (k, v)));
    let out = run(&mut cmd);
    assert!(out.status.success(), "compose_resolved.py {}:\n{}", file.display(), text(&out));
    serde_json::from_slice(&out.stdout).expect("compose_resolved.py prints JSON")
}
