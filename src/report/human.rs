//! rustc-style report: each finding with the spec lines it points at, the places its
//! numbers came from, and the fix.

use annotate_snippets::renderer::DecorStyle;
use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

use super::ReportInput;
use crate::diag::{Counts, Severity};

/// Renders findings for a terminal.
pub fn render(input: &ReportInput<'_>, color: bool) -> String {
    let renderer = if color { Renderer::styled() } else { Renderer::plain() }.decor_style(DecorStyle::Ascii);
    let mut out = String::new();
    for d in input.diagnostics {
        let level = match d.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
            Severity::Info => Level::INFO,
        };
        let title = level.primary_title(d.message.as_str()).id(d.rule.as_str());
        let mut groups: Vec<Group<'_>> = Vec::new();
        match d.span.as_ref().and_then(|s| input.source_named(&s.file).map(|src| (s, src))) {
            Some((span, source)) => {
                let label = match (d.path.is_empty(), span.exact) {
                    (true, _) => String::new(),
                    (false, true) => d.path.clone(),
                    (false, false) => format!("{} is not set here, so its default applies", d.path),
                };
                let mut snippet = Snippet::source(source.text.as_str())
                    .line_start(1)
                    .path(span.file.as_str())
                    .fold(true)
                    .annotation(AnnotationKind::Primary.span(span.bytes.clone()).label(label));
                for related in &d.related {
                    if let Some(rs) = &related.span
                        && rs.file == span.file
                        && rs.bytes != span.bytes
                    {
                        snippet = snippet.annotation(AnnotationKind::Context.span(rs.bytes.clone()).label(related.label.as_str()));
                    }
                }
                groups.push(title.element(snippet));
            }
            None => groups.push(Group::with_title(title)),
        }
        if let Some(fix) = &d.fix {
            groups.push(Group::with_title(Level::HELP.secondary_title(fix.as_str())));
        }
        out.push_str(&renderer.render(&groups));
        out.push_str("\n\n");
    }
    out.push_str(&summary(input, color));
    out
}

/// `2 errors, 1 warning in capacity.yaml` (or `no findings in ...`).
pub fn summary(input: &ReportInput<'_>, color: bool) -> String {
    let counts = Counts::of(input.diagnostics);
    let mut parts = Vec::new();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    if counts.errors > 0 {
        parts.push(plural(counts.errors, "error"));
    }
    if counts.warnings > 0 {
        parts.push(plural(counts.warnings, "warning"));
    }
    if counts.infos > 0 {
        parts.push(plural(counts.infos, "note"));
    }
    let text = if parts.is_empty() {
        format!("ok: no findings in {}\n", input.subject)
    } else {
        format!("{} in {}\n", parts.join(", "), input.subject)
    };
    if color && counts.errors > 0 {
        format!("\x1b[1;31m{text}\x1b[0m")
    } else if color && parts.is_empty() {
        format!("\x1b[1;32m{text}\x1b[0m")
    } else {
        text
    }
}
