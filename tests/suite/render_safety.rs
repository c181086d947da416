//! What `render` does to a directory that already holds files: it never replaces a
//! file it did not write (or one edited since it wrote it) without `--force`, names
//! each such file with what to do, and `diff` / `render --check` report the same. And
//! a spec file name, whatever it holds, changes no directive of any rendered file.

use std::path::Path;
use std::process::{Command, Output};

const SPEC: &str = r#"version: 1
name: shop
services:
  web:
    kind: gunicorn
    worker_class: gthread
    workers: 2
    threads: 4
    health: { path: /health }
    uses: { db: { pool: 4 } }
  lb:
    kind: nginx
    upstreams: { app: { to: web } }
    locations: [ { path: /, upstream: app } ]
  db: { kind: postgres }
deploy:
  railway: {}
"#;

fn headroom(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_headroom")).args(args).current_dir(dir).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn render_leaves_hand_written_and_edited_files_alone_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("capacity.yaml"), SPEC).unwrap();
    let hand_gunicorn = "# mine\nworkers = 3\nraw_env = ['A=1']\n";
    let hand_nginx = "events {}\nhttp { server { listen 8080; } }\n";
    let hand_railway = "# my railway config\n[build]\nbuilder = \"NIXPACKS\"\n";
    std::fs::write(d.join("gunicorn.conf.py"), hand_gunicorn).unwrap();
    std::fs::create_dir_all(d.join("nginx")).unwrap();
    std::fs::write(d.join("nginx/nginx.conf"), hand_nginx).unwrap();
    std::fs::write(d.join("railway.toml"), hand_railway).unwrap();

    let refused = headroom(d, &["render"]);
    let said = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    for name in ["gunicorn.conf.py", "nginx/nginx.conf"] {
        assert!(said.contains(&format!("{name} was not written by headroom")), "{name} not named:\n{said}");
    }
    assert!(said.contains("headroom diff capacity.yaml") && said.contains("--force"), "no hint:\n{said}");
    assert!(!said.contains("railway.toml was not written"), "railway.toml is only patched:\n{said}");
    assert!(said.contains("nothing was written"), "{said}");
    assert_eq!(std::fs::read_to_string(d.join("gunicorn.conf.py")).unwrap(), hand_gunicorn);
    assert_eq!(std::fs::read_to_string(d.join("nginx/nginx.conf")).unwrap(), hand_nginx);
    assert_eq!(std::fs::read_to_string(d.join("railway.toml")).unwrap(), hand_railway);
    assert!(!d.join("postgres").exists(), "nothing may be written while a file is in the way");

    // `render --check` and `diff` report the same files.
    let check = headroom(d, &["render", "--check"]);
    assert_eq!(check.status.code(), Some(1));
    for name in ["gunicorn.conf.py", "nginx/nginx.conf"] {
        assert!(text(&check).contains(&format!("{name} was not written by headroom")), "{}", text(&check));
    }
    let diff = headroom(d, &["diff", "--format", "json"]);
    assert_eq!(diff.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&diff.stdout).unwrap();
    assert_eq!(doc["summary"]["blocked"], 2, "{doc:#}");
    let owners: Vec<(&str, &str)> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| Some((f["path"].as_str()?, f["owner"].as_str()?)))
        .collect();
    assert!(owners.contains(&("gunicorn.conf.py", "foreign")) && owners.contains(&("nginx/nginx.conf", "foreign")), "{owners:?}");
    let human = headroom(d, &["diff", "--color", "never"]);
    assert!(text(&human).contains("left alone by render without --force: gunicorn.conf.py"), "{}", text(&human));

    // --force replaces them; railway.toml keeps the user's keys.
    let forced = headroom(d, &["render", "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced));
    assert_ne!(std::fs::read_to_string(d.join("gunicorn.conf.py")).unwrap(), hand_gunicorn);
    let railway = std::fs::read_to_string(d.join("railway.toml")).unwrap();
    assert!(railway.starts_with("# my railway config\n[build]\nbuilder = \"NIXPACKS\"\n"), "{railway}");
    assert!(railway.contains("startCommand"), "{railway}");

    // Its own unedited files render replaces freely (same bytes here: nothing to do).
    let again = headroom(d, &["render"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(text(&again).contains("already up to date"), "{}", text(&again));

    // An edit anywhere in a file it wrote makes it the user's again.
    let conf = d.join("nginx/nginx.conf");
    let rendered = std::fs::read_to_string(&conf).unwrap();
    let edited = rendered.replace("worker_connections 512;", "worker_connections 4096;");
    assert_ne!(edited, rendered);
    std::fs::write(&conf, &edited).unwrap();
    let spec = std::fs::read_to_string(d.join("capacity.yaml")).unwrap();
    std::fs::write(d.join("capacity.yaml"), spec.replace("workers: 2", "workers: 3")).unwrap();
    let refused = headroom(d, &["render"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("nginx/nginx.conf was edited since headroom wrote it"), "{}", text(&refused));
    assert!(!text(&refused).contains("gunicorn.conf.py was"), "{}", text(&refused));
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), edited);
    // Undo the edit: headroom's again, and the new spec renders.
    std::fs::write(&conf, &rendered).unwrap();
    let ok = headroom(d, &["render"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(std::fs::read_to_string(d.join("gunicorn.conf.py")).unwrap().contains("workers = 3"));
}

#[test]
fn a_file_that_is_not_utf8_is_in_the_way_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("capacity.yaml"), SPEC).unwrap();
    std::fs::write(d.join("gunicorn.conf.py"), b"\xff\xfe binary").unwrap();
    let refused = headroom(d, &["render"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert_eq!(std::fs::read(d.join("gunicorn.conf.py")).unwrap(), b"\xff\xfe binary");
}

/// The directives of every rendered file: its lines that are not comments.
fn directives(dir: &Path) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for entry in std::fs::read_dir(&p).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if !path.ends_with("capacity.yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                let lines = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with(['#', ';']) && !l.trim().is_empty())
                    .map(str::to_string)
                    .collect();
                out.push((path.strip_prefix(dir).unwrap().display().to_string(), lines));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_hostile_spec_file_name_changes_no_directive() {
    let spec = SPEC.replace("  railway: {}\n", "  compose: {}\n  sysctl: {}\n") + "machines:\n  m: { count: 1 }\n";
    let spec = spec.replace("  lb:\n", "  lb:\n    machine: m\n");
    let plain = tempfile::tempdir().unwrap();
    std::fs::write(plain.path().join("capacity.yaml"), &spec).unwrap();
    let out = headroom(plain.path(), &["render", "capacity.yaml", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let expected = directives(plain.path());
    assert!(expected.len() >= 6, "{expected:?}");

    let names = [
        "x\nimport os; os.system('touch PWNED')\n#.yaml",
        "a\r\nlisten 81;\r\n.yaml",
        "b\u{85}evil: 1\u{2028}x\u{2029}.yaml",
        "c\u{7f}\u{9b}\u{1b}[31m?.yaml",
        "d;x=1 [pgbouncer] } { $(id) `id`.yaml",
    ];
    for name in names {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(name), &spec).unwrap();
        let out = headroom(dir.path(), &["render", name, "--force"]);
        assert_eq!(out.status.code(), Some(0), "{name:?}: {}", text(&out));
        std::fs::remove_file(dir.path().join(name)).unwrap();
        let got = directives(dir.path());
        assert_eq!(got, expected, "the spec file name {name:?} changed a directive");
        let gunicorn = std::fs::read_to_string(dir.path().join("gunicorn.conf.py")).unwrap();
        assert!(gunicorn.lines().next().unwrap().starts_with("# Generated by headroom from "), "{gunicorn}");
    }

    // Bytes that are not UTF-8 are shown as \xNN, never replaced.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let name = std::ffi::OsStr::from_bytes(b"e\xff\n.yaml");
        std::fs::write(dir.path().join(name), &spec).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_headroom")).arg("render").arg(name).arg("--force").current_dir(dir.path()).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let gunicorn = std::fs::read_to_string(dir.path().join("gunicorn.conf.py")).unwrap();
        assert!(gunicorn.starts_with("# Generated by headroom from e\\xff\\n.yaml "), "{gunicorn}");
    }
}
