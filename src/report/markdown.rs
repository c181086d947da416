//! Markdown for a pull request comment: the capacity plan, findings, a comparison and a
//! `scale` proposal as GitHub-flavoured tables, with a Mermaid flowchart of the
//! connection graph (nginx -> app servers -> pools -> PgBouncer -> PostgreSQL, Redis)
//! where every edge carries its connections, every budget its used/allowed, and what
//! is over budget is drawn red. Formatting only; every number comes from the plan.
//!
//! Names and messages are escaped for the place they land: table cells (`|`, HTML,
//! emphasis and link characters) and Mermaid labels (every character outside a small
//! safe set becomes a `#NNN;` entity, so no name can close a label or start syntax).

use std::fmt::Write as _;

use crate::diag::{Counts, Diagnostic, Severity};
use crate::plan::{Detail, Plan};
use crate::report::capacity::{CapacityReport, Comparison};
use crate::rules::{num, plural};

/// Text for a table cell: no character of it can end the cell, open HTML, a link or
/// emphasis, or break the row.
pub fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A message for a table cell: its `code` spans stay code (with `|` escaped, which
/// GitHub's tables need even inside code); everything else is escaped as `cell`.
pub fn cell_message(text: &str) -> String {
    let parts: Vec<&str> = text.split('`').collect();
    // An unbalanced backtick would open a span that never closes: escape it all.
    if parts.len().is_multiple_of(2) {
        return cell(text);
    }
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 1 && !part.is_empty() && !part.contains(['\n', '\r']) {
            out.push('`');
            out.push_str(&part.replace('|', "\\|"));
            out.push('`');
        } else if i % 2 == 1 {
            out.push_str(&cell(&format!("`{part}`")));
        } else {
            out.push_str(&cell(part));
        }
    }
    out
}

/// A name as inline code in a cell (names of services, rules, paths).
fn code(text: &str) -> String {
    if text.is_empty() || text.contains(['`', '\n', '\r']) {
        return cell(text);
    }
    format!("`{}`", text.replace('|', "\\|"))
}

/// Text for a Mermaid label inside `"..."`: letters, digits, spaces and `.,:/-+=()%_`
/// stay; every other character becomes an entity code (`#35;`), which Mermaid
/// decodes, so a name can neither end the label nor inject a directive.
pub fn mermaid_label(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | ',' | ':' | '/' | '-' | '+' | '=' | '(' | ')' | '%' | '_') {
            out.push(c);
        } else {
            let _ = write!(out, "#{};", c as u32);
        }
    }
    out
}

fn row(out: &mut String, cells: &[String]) {
    out.push('|');
    for c in cells {
        out.push(' ');
        out.push_str(c);
        out.push_str(" |");
    }
    out.push('\n');
}

/// A table: header, alignment row (`r` columns right-aligned), rows.
fn table(out: &mut String, header: &[&str], align: &str, rows: &[Vec<String>]) {
    row(out, &header.iter().map(|h| cell(h)).collect::<Vec<_>>());
    let marks: Vec<String> = header.iter().enumerate().map(|(i, _)| if align.as_bytes().get(i) == Some(&b'r') { "--:".into() } else { "---".into() }).collect();
    row(out, &marks);
    for r in rows {
        row(out, r);
    }
}

/// The connection graph as a Mermaid flowchart. With `old`, an edge or budget whose
/// number changed shows `old -> new`.
pub fn graph(plan: &Plan, report: &CapacityReport, old: Option<&CapacityReport>) -> String {
    let index = |name: &str| plan.services.iter().position(|s| s.name == name);
    let changed = |old: Option<u64>, new: u64| match old {
        Some(o) if o != new => format!("{o} -> {new}"),
        _ => new.to_string(),
    };
    let mut out = String::from("```mermaid\nflowchart LR\n");
    let mut over_nodes = Vec::new();
    for (i, s) in plan.services.iter().enumerate() {
        let row = report.services.get(&s.name);
        let mut label = format!("<b>{}</b><br/>{}", mermaid_label(&s.name), mermaid_label(s.kind.as_str()));
        if let Some(r) = row
            && r.slots > 0
        {
            let _ = write!(label, "<br/>{}", mermaid_label(&format!("{} x {} procs x {} = {} slots", r.replicas, r.processes, r.slots_per_process, r.slots)));
        } else if s.replicas.value > 1 {
            let _ = write!(label, "<br/>{}", mermaid_label(&format!("{} replicas", s.replicas.value)));
        }
        if let Some(b) = report.budgets.get(&s.name) {
            let old_demand = old.and_then(|o| o.budgets.get(&s.name)).map(|b| b.demand);
            let old_allowed = old.and_then(|o| o.budgets.get(&s.name)).map(|b| b.allowed);
            let _ = write!(
                label,
                "<br/>{}",
                mermaid_label(&format!("{}: {} / {}", b.limit_name, changed(old_demand, b.demand), changed(old_allowed, b.allowed)))
            );
            if b.demand > b.allowed {
                over_nodes.push(i);
                label.push_str("<br/>OVER BUDGET");
            }
        }
        let _ = writeln!(out, "  s{i}[\"{label}\"]");
    }
    let mut links = 0usize;
    let mut over_links = Vec::new();
    // nginx upstreams: one arrow per nginx and target, the upstream names on it.
    for (i, s) in plan.services.iter().enumerate() {
        let Detail::Nginx(n) = &s.detail else { continue };
        let mut targets: Vec<(&str, Vec<String>)> = Vec::new();
        for u in &n.upstreams {
            let text = if u.max_conns.value > 0 {
                format!("{} max_conns {} x {}", u.name, u.max_conns.value, u.servers.len().max(1))
            } else {
                u.name.clone()
            };
            match targets.iter_mut().find(|(t, _)| *t == u.to) {
                Some((_, names)) => names.push(text),
                None => targets.push((u.to.as_str(), vec![text])),
            }
        }
        for (to, names) in targets {
            let Some(j) = index(to) else { continue };
            let _ = writeln!(out, "  s{i} -->|\"{}\"| s{j}", names.iter().map(|n| mermaid_label(n)).collect::<Vec<_>>().join("<br/>"));
            links += 1;
        }
    }
    for e in &plan.edges {
        let (Some(i), Some(j)) = (index(&e.from), index(&e.to)) else { continue };
        let key = format!("{} -> {}", e.from, e.to);
        let old_connections = old.and_then(|o| o.edges.get(&key)).map(|r| r.connections);
        let per_process = report.edges.get(&key).map_or(e.pool.value, |r| r.per_process);
        let _ = writeln!(
            out,
            "  s{i} -->|\"{}\"| s{j}",
            mermaid_label(&format!("{per_process} per process = {} conns", changed(old_connections, e.connections)))
        );
        if over_nodes.contains(&j) {
            over_links.push(links);
        }
        links += 1;
    }
    out.push_str("  classDef over fill:#ffe5e5,stroke:#d00,stroke-width:2px\n");
    if !over_nodes.is_empty() {
        let _ = writeln!(out, "  class {} over", over_nodes.iter().map(|i| format!("s{i}")).collect::<Vec<_>>().join(","));
    }
    if !over_links.is_empty() {
        let _ = writeln!(out, "  linkStyle {} stroke:#d00,stroke-width:3px", over_links.iter().map(usize::to_string).collect::<Vec<_>>().join(","));
    }
    out.push_str("```\n");
    out
}

fn ratio(headroom: f64) -> String {
    if headroom.is_finite() { format!("{}x", num(headroom)) } else { "unbounded".into() }
}

/// The services, connections and budgets tables.
fn tables(out: &mut String, report: &CapacityReport) {
    out.push_str("\n#### Services\n\n");
    let rows: Vec<Vec<String>> = report
        .services
        .iter()
        .map(|(name, s)| {
            let mut row = vec![code(name), cell(s.kind)];
            row.extend(s.cells());
            row
        })
        .collect();
    table(out, &["service", "kind", "replicas", "processes", "slots/process", "slots", "capacity rps", "utilization at load"], "llrrrrrr", &rows);
    if !report.edges.is_empty() {
        out.push_str("\n#### Connections\n\n");
        let rows: Vec<Vec<String>> = report.edges.values().map(|e| vec![format!("{} → {}", code(&e.from), code(&e.to)), e.per_process.to_string(), e.connections.to_string()]).collect();
        table(out, &["edge", "per process", "connections"], "lrr", &rows);
    }
    if !report.budgets.is_empty() {
        out.push_str("\n#### Budgets\n\n");
        let rows: Vec<Vec<String>> = report
            .budgets
            .iter()
            .map(|(name, b)| {
                let peak = b.rollout_demand.unwrap_or(b.demand);
                let verdict = if b.demand > b.allowed {
                    "❌ over"
                } else if peak > b.allowed {
                    "❌ over in rollout"
                } else {
                    "✅"
                };
                vec![code(name), cell(&b.limit_name), b.demand.to_string(), b.rollout_demand.map_or("-".into(), |d| d.to_string()), b.allowed.to_string(), ratio(b.headroom), verdict.into()]
            })
            .collect();
        let rollout = report.budgets.values().any(|b| b.rollout_demand.is_some());
        let rows: Vec<Vec<String>> = rows.into_iter().map(|mut r| {
            if !rollout {
                r.remove(3);
            }
            r
        }).collect();
        if rollout {
            table(out, &["where", "limit", "used", "in rollout", "allowed", "headroom", "verdict"], "llrrrrl", &rows);
        } else {
            table(out, &["where", "limit", "used", "allowed", "headroom", "verdict"], "llrrrl", &rows);
        }
    }
    if let Some(c) = &report.capacity {
        let _ = writeln!(
            out,
            "\n- **Throughput:** {} app slots → {} rps at 100%, {} rps planned; utilization at load {}%, headroom {}x.",
            c.app_slots,
            num(c.capacity_rps),
            num(c.planned_rps),
            num(c.utilization * 100.0),
            num(c.headroom)
        );
        if let Some(b) = &c.bottleneck {
            let _ = writeln!(out, "- **Bottleneck:** {} at {} rps ({}).", cell(&b.layer), num(b.capacity_rps), cell_message(&b.why));
        }
    }
}

fn load_line(report: &CapacityReport) -> String {
    match &report.load {
        Some(l) => format!(
            "- **Load:** {} rps, service time {} ms, db time {} ms, slots at most {}% busy.\n",
            num(l.rps),
            num(l.service_time_ms),
            num(l.db_time_ms),
            num(l.max_utilization * 100.0)
        ),
        None => "- **Load:** not given.\n".into(),
    }
}

fn verdict(findings: &[Diagnostic]) -> String {
    let counts = Counts::of(findings);
    let mark = if counts.errors > 0 { "❌" } else if counts.warnings > 0 { "⚠️" } else { "✅" };
    format!("{mark} {}, {}", plural(counts.errors as u64, "error"), plural(counts.warnings as u64, "warning"))
}

/// `plan --format markdown`.
pub fn plan(plan: &Plan, report: &CapacityReport, findings: &[Diagnostic]) -> String {
    let mut out = format!("### Capacity plan: {}\n\n", code(&report.name));
    out.push_str(&load_line(report));
    let _ = writeln!(out, "- **Checks:** {}.\n", verdict(findings));
    out.push_str(&graph_and_tables(plan, report));
    out
}

/// The connection graph and the budget tables of a plan.
pub fn graph_and_tables(plan: &Plan, report: &CapacityReport) -> String {
    let mut out = graph(plan, report, None);
    tables(&mut out, report);
    out
}

/// The findings as a table (`check`/`lint --format markdown`; also a load failure).
pub fn findings(subject: &str, findings: &[Diagnostic]) -> String {
    let mut out = format!("### headroom check: {}\n\n- **Checks:** {}.\n", code(subject), verdict(findings));
    if findings.is_empty() {
        return out;
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = findings
        .iter()
        .map(|d| {
            let severity = match d.severity {
                Severity::Error => "❌ error",
                Severity::Warning => "⚠️ warning",
                Severity::Info => "ℹ️ info",
            };
            let place = match &d.span {
                Some(s) => format!("{}:{}", s.file, s.line),
                None => d.path.clone(),
            };
            let mut message = cell_message(&d.message);
            if let Some(fix) = &d.fix {
                let _ = write!(message, "<br>**Fix:** {}", cell_message(fix));
            }
            vec![severity.to_string(), code(&d.rule), code(&place), message]
        })
        .collect();
    table(&mut out, &["severity", "rule", "where", "finding"], "llll", &rows);
    out
}

/// `check --format markdown`: the findings, then the graph and budgets they are about.
pub fn check(subject: &str, diagnostics: &[Diagnostic], plan: &Plan) -> String {
    let mut out = findings(subject, diagnostics);
    let report = CapacityReport::of(plan);
    out.push_str("\n<details><summary>Connection graph and budgets</summary>\n\n");
    out.push_str(&graph(plan, &report, None));
    tables(&mut out, &report);
    out.push_str("\n</details>\n");
    out
}

/// `plan --compare --format markdown` (and the second half of `scale`).
pub fn compare(comparison: &Comparison, old_name: &str, new_name: &str, new_plan: &Plan, old: &CapacityReport, new: &CapacityReport) -> String {
    let mut out = format!("### Capacity change: {} → {}\n\n", code(old_name), code(new_name));
    out.push_str(&graph(new_plan, new, Some(old)));
    if comparison.changed.is_empty() {
        out.push_str("\nNo number changes.\n");
    } else {
        out.push('\n');
        let rows: Vec<Vec<String>> = comparison
            .changed
            .iter()
            .map(|c| vec![code(&c.key), c.old.map_or("-".into(), num), c.new.map_or("-".into(), num), c.delta()])
            .collect();
        table(&mut out, &["number", "old", "new", "change"], "lrrr", &rows);
    }
    for (title, list) in [("Now failing", &comparison.now_failing), ("Now passing", &comparison.now_passing)] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n#### {title}\n");
        let rows: Vec<Vec<String>> = list.iter().map(|r| vec![cell(&r.severity), code(&r.rule), code(&r.path), cell_message(&r.message)]).collect();
        table(&mut out, &["severity", "rule", "where", "finding"], "llll", &rows);
    }
    if comparison.now_failing.is_empty() && comparison.now_passing.is_empty() {
        out.push_str("\nNo rule changes state.\n");
    }
    out
}

/// A unified diff in a fenced block long enough that no line of it can close it.
pub fn diff_block(diff: &str) -> String {
    let longest = diff.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let mut out = format!("{fence}diff\n{diff}");
    if !diff.ends_with('\n') {
        out.push('\n');
    }
    let _ = writeln!(out, "{fence}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cannot_break_a_table() {
        assert_eq!(cell("a|b<script>*x*_y_\n[l](u)"), "a\\|b&lt;script&gt;\\*x\\*\\_y\\_ \\[l\\](u)");
        assert_eq!(cell_message("`web` has | 3 `a|b`"), "`web` has \\| 3 `a\\|b`");
        assert_eq!(cell_message("odd ` tick"), "odd \\` tick");
    }

    #[test]
    fn labels_cannot_leave_their_quotes() {
        assert_eq!(mermaid_label("a\"]-->x;click"), "a#34;#93;--#62;x#59;click");
        assert_eq!(mermaid_label("web_1 #2 <b>"), "web_1 #35;2 #60;b#62;");
    }

    #[test]
    fn a_diff_fence_outlasts_backticks_in_the_diff() {
        let block = diff_block("+ a: ```x```\n");
        assert!(block.starts_with("````diff\n") && block.ends_with("````\n"), "{block}");
    }
}
