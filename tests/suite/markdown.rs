//! `--format markdown` of `plan`, `check`, `plan --compare` and `scale`: a snapshot per
//! example, every Mermaid diagram accepted by Mermaid's own parser (the release
//! `.ci/install-validators` fetches, run by tests/validators/mermaid_parse.js), tables
//! GitHub can render (every row as many cells as its header), and names that cannot
//! break either.

use std::path::{Path, PathBuf};
use std::process::Command;

use headroom::report::capacity::CapacityReport;
use headroom::report::markdown;

fn headroom(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_headroom")).args(args).output().expect("runs");
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).expect("utf-8"), String::from_utf8(out.stderr).expect("utf-8"))
}

fn examples() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("examples")
        .expect("examples")
        .flatten()
        .filter(|e| e.path().join("capacity.yaml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(Path::new(env!("CARGO_MANIFEST_DIR")).join("snapshots"));
    s.set_prepend_module_to_snapshot(false);
    s
}

/// The body of every ```mermaid block.
fn mermaid_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line == "```mermaid" => current = Some(String::new()),
            Some(body) if line == "```" => {
                blocks.push(std::mem::take(body));
                current = None;
            }
            Some(body) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "an unclosed mermaid block:\n{markdown}");
    blocks
}

/// Every table outside code blocks: each row has its header's number of cells
/// (counting `|` not escaped by a backslash).
fn assert_tables_are_well_formed(markdown: &str, context: &str) {
    let cells = |line: &str| {
        let mut n = 0;
        let mut escaped = false;
        for c in line.chars() {
            match c {
                '\\' if !escaped => escaped = true,
                '|' if !escaped => n += 1,
                _ => escaped = false,
            }
            if c != '\\' {
                escaped = false;
            }
        }
        n
    };
    let mut fenced = false;
    let mut header: Option<usize> = None;
    for line in markdown.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        match (line.starts_with('|'), header) {
            (true, None) => header = Some(cells(line)),
            (true, Some(h)) => assert_eq!(cells(line), h, "{context}: a row with another number of cells than its header:\n{line}"),
            (false, _) => header = None,
        }
    }
}

/// Runs Mermaid's own parser on the diagrams; fails (never skips) when it is missing.
fn assert_mermaid_parses(diagrams: &[(String, String)]) {
    let (parsed, report) = mermaid_parse(diagrams);
    assert!(parsed, "Mermaid rejects a diagram:\n{report}");
    assert_eq!(report.lines().filter(|l| l.starts_with("ok flowchart")).count(), diagrams.len(), "{report}");
}

/// Whether Mermaid's parser accepts every diagram, and what it said.
fn mermaid_parse(diagrams: &[(String, String)]) -> (bool, String) {
    // Where .ci/install-validators puts it (HEADROOM_MERMAID_DIR there too).
    let dir = std::env::var_os("HEADROOM_MERMAID_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".cache/headroom/mermaid-11.17.2")
    });
    let bundle = dir.join("mermaid.min.js");
    assert!(bundle.exists(), "Mermaid's parser is not installed at {} (run `bash .ci/install-validators`)", bundle.display());
    let dir = tempfile::tempdir().expect("temp dir");
    let mut files = Vec::new();
    for (i, (name, text)) in diagrams.iter().enumerate() {
        let path = dir.path().join(format!("{i:03}-{name}.mmd"));
        std::fs::write(&path, text).expect("writes");
        files.push(path);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validators/mermaid_parse.js");
    let out = Command::new("node")
        .env("NODE_PATH", "/usr/share/nodejs")
        .arg(&script)
        .arg(&bundle)
        .args(&files)
        .output()
        .expect("node runs (installed by .ci/install-validators)");
    assert_ne!(out.status.code(), Some(2), "Mermaid's parser cannot run: {}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn the_parser_rejects_what_mermaid_cannot_read() {
    // A quote left raw in a label ends it early: exactly what the escaping prevents.
    let raw = "flowchart LR\n  s0[\"web\"]; click\"]\n";
    let (parsed, report) = mermaid_parse(&[("raw".into(), raw.into())]);
    assert!(!parsed, "{report}");
    let escaped = format!("flowchart LR\n  s0[\"{}\"]\n", markdown::mermaid_label("web\"]; click"));
    assert_mermaid_parses(&[("escaped".into(), escaped)]);
}

/// (snapshot name, markdown) for every command and example.
fn every_markdown() -> Vec<(String, String)> {
    let mut outputs = Vec::new();
    for name in examples() {
        let spec = format!("examples/{name}/capacity.yaml");
        let (code, plan, stderr) = headroom(&["plan", &spec, "--format", "markdown"]);
        assert_eq!(code, 0, "{stderr}");
        outputs.push((format!("markdown-plan-{name}"), plan));
        let (code, check, stderr) = headroom(&["check", &spec, "--format", "markdown"]);
        assert!(code == 0 || code == 1, "{stderr}");
        outputs.push((format!("markdown-check-{name}"), check));
        let (code, scale, stderr) = headroom(&["scale", &spec, "--factor", "2", "--format", "markdown"]);
        if code != 2 {
            outputs.push((format!("markdown-scale-{name}"), scale));
        } else {
            assert!(stderr.contains("load"), "{name}: {stderr}");
        }
    }
    for (old, new) in [("sfpermits-railway", "sfpermits-railway-tier1"), ("voiceassist-kubernetes", "voiceassist-kubernetes-fixed")] {
        let (code, compare, stderr) =
            headroom(&["plan", &format!("examples/{new}/capacity.yaml"), "--compare", &format!("examples/{old}/capacity.yaml"), "--format", "markdown"]);
        assert_eq!(code, 0, "{stderr}");
        outputs.push((format!("markdown-compare-{old}"), compare));
    }
    outputs
}

#[test]
fn markdown_snapshots_tables_and_mermaid_for_every_example() {
    let outputs = every_markdown();
    let mut diagrams = Vec::new();
    settings().bind(|| {
        for (name, text) in &outputs {
            insta::assert_snapshot!(name.clone(), text);
            assert_tables_are_well_formed(text, name);
            let blocks = mermaid_blocks(text);
            let wall = name.starts_with("markdown-scale-") && text.contains("Nothing within the machines fits");
            assert!(wall || blocks.len() == 1, "{name}: expected one diagram, found {}", blocks.len());
            diagrams.extend(blocks.into_iter().map(|b| (name.clone(), b)));
        }
    });
    assert_mermaid_parses(&diagrams);
}

#[test]
fn scale_of_a_spec_that_already_fits_draws_the_plan_at_the_new_load() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let spec = dir.path().join("capacity.yaml");
    std::fs::copy("examples/voiceassist-kubernetes-fixed/capacity.yaml", &spec).expect("copies");
    let spec = spec.to_string_lossy().into_owned();
    let (code, _, stderr) = headroom(&["scale", &spec, "--factor", "1.5", "--write"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, text, stderr) = headroom(&["scale", &spec, "--factor", "1.2", "--format", "markdown"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(text.contains("Already fits the new load: no change."), "{text}");
    // The heading and the graph are at the new load (1.2 x today's), not today's.
    let today = std::fs::read_to_string(&spec).expect("reads");
    let rps: f64 = today.lines().find_map(|l| l.trim().strip_prefix("rps:")).and_then(|v| v.split('#').next()).expect("load.rps").trim().parse().expect("a number");
    assert!(text.lines().next().is_some_and(|l| l.ends_with(&format!(" at {} rps", headroom::rules::num(rps * 1.2)))), "{text}");
    let blocks = mermaid_blocks(&text);
    assert_eq!(blocks.len(), 1, "{text}");
    assert_tables_are_well_formed(&text, "scale, already fits");
    assert_mermaid_parses(&[("scale-already-fits".to_string(), blocks[0].clone())]);
}

#[test]
fn over_budget_edges_and_nodes_are_marked_red() {
    // django-compose's redis allows 10000 clients and its web pools open 12000.
    let (_, text, _) = headroom(&["plan", "examples/django-compose/capacity.yaml", "--format", "markdown"]);
    let diagram = &mermaid_blocks(&text)[0];
    let node = diagram.lines().find(|l| l.contains("<b>redis</b>")).expect("a redis node");
    assert!(node.contains("maxclients: 12000 / 10000") && node.contains("OVER BUDGET"), "{node}");
    let id = node.trim().split('[').next().expect("an id").to_string();
    assert!(diagram.lines().any(|l| l.trim() == format!("class {id} over")), "{diagram}");
    // The arrow into it is the one linkStyle paints.
    let arrows: Vec<&str> = diagram.lines().filter(|l| l.contains("-->")).collect();
    let into: Vec<usize> = arrows.iter().enumerate().filter(|(_, l)| l.trim_end().ends_with(&format!("| {id}"))).map(|(i, _)| i).collect();
    let styled = diagram.lines().find(|l| l.trim().starts_with("linkStyle")).expect("a linkStyle");
    let indices: Vec<usize> = styled.split_whitespace().nth(1).expect("indices").split(',').map(|i| i.parse().expect("an index")).collect();
    assert_eq!(indices, into, "{diagram}");
    // Budgets that fit are not marked.
    let pgbouncer = diagram.lines().find(|l| l.contains("<b>pgbouncer</b>")).expect("a pgbouncer node");
    assert!(!pgbouncer.contains("OVER"), "{pgbouncer}");
}

#[test]
fn hostile_names_stay_inside_their_cells_and_labels() {
    let analysis = headroom::analysis::analyze_file(Path::new("examples/django-compose/capacity.yaml")).expect("loads");
    let mut plan = analysis.plan.clone();
    let hostile = "web\"]; click s0 \"https://x\" |a| `b` <i>_c_</i> #quot;\nend";
    for s in &mut plan.services {
        if s.name == "web" {
            s.name = hostile.into();
        }
    }
    for e in &mut plan.edges {
        if e.from == "web" {
            e.from = hostile.into();
        }
    }
    let report = CapacityReport::of(&plan);
    let text = markdown::plan(&plan, &report, &analysis.diagnostics);
    assert_tables_are_well_formed(&text, "hostile");
    let diagram = mermaid_blocks(&text).remove(0);
    assert!(!diagram.lines().any(|l| l.trim_start().starts_with("click") || l.trim() == "end"), "a name became a directive:\n{diagram}");
    assert_eq!(diagram.lines().filter(|l| l.trim_start().starts_with('s') && l.contains("[\"")).count(), plan.services.len(), "{diagram}");
    assert_mermaid_parses(&[("hostile".into(), diagram)]);
}

#[test]
fn scale_markdown_carries_the_diff_and_what_it_changes() {
    let (code, text, stderr) = headroom(&["scale", "examples/django-compose/capacity.yaml", "--rps", "1000", "--format", "markdown"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(text.contains("```diff\n--- a/examples/django-compose/capacity.yaml"), "{text}");
    assert!(text.contains("### Capacity change"), "{text}");
}
