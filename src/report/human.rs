//! rustc-style report: each finding with the spec lines it points at, the places its
//! numbers came from, and the fix.

use annotate_snippets::renderer::DecorStyle;
use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

use super::{FileRead, ReportInput};
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
                let context: Vec<(&std::ops::Range<usize>, &str)> = d
                    .related
                    .iter()
                    .filter_map(|r| r.span.as_ref().map(|rs| (rs, r.label.as_str())))
                    .filter(|(rs, _)| rs.file == span.file && rs.bytes != span.bytes)
                    .map(|(rs, label)| (&rs.bytes, label))
                    .collect();
                // Hand the renderer only the lines the annotations cover: a finding in a
                // multi-megabyte file then costs what its few lines cost. Places far from
                // the primary one get a snippet of their own.
                const NEAR: usize = 200;
                let primary_line = span.line;
                let (near, far): (Vec<_>, Vec<_>) =
                    context.into_iter().partition(|(b, _)| source.line_col(b.start).line.abs_diff(primary_line) <= NEAR);
                let window = window(&source.text, std::iter::once(&span.bytes).chain(near.iter().map(|(b, _)| *b)));
                let shift = |b: &std::ops::Range<usize>, w: &std::ops::Range<usize>| b.start - w.start..b.end - w.start;
                let mut snippet = Snippet::source(&source.text[window.clone()])
                    .line_start(source.line_col(window.start).line)
                    .path(span.file.as_str())
                    .fold(true)
                    .annotation(AnnotationKind::Primary.span(shift(&span.bytes, &window)).label(label));
                for (bytes, label) in near {
                    snippet = snippet.annotation(AnnotationKind::Context.span(shift(bytes, &window)).label(label));
                }
                let mut group = title.element(snippet);
                for (bytes, label) in far {
                    let w = window_of(&source.text, bytes);
                    group = group.element(
                        Snippet::source(&source.text[w.clone()])
                            .line_start(source.line_col(w.start).line)
                            .path(span.file.as_str())
                            .annotation(AnnotationKind::Context.span(shift(bytes, &w)).label(label)),
                    );
                }
                groups.push(group);
            }
            None => groups.push(Group::with_title(title)),
        }
        if let Some(fix) = &d.fix {
            groups.push(Group::with_title(Level::HELP.secondary_title(fix.as_str())));
        }
        out.push_str(&renderer.render(&groups));
        out.push_str("\n\n");
    }
    out.push_str(&files(input.files));
    out.push_str(&summary(input, color));
    out
}

/// What a lint run read and skipped, one line a file.
fn files(files: &[FileRead]) -> String {
    let read: Vec<&FileRead> = files.iter().filter(|f| f.skipped.is_none()).collect();
    let skipped: Vec<&FileRead> = files.iter().filter(|f| f.skipped.is_some()).collect();
    let mut out = String::new();
    let deployment = |f: &FileRead| f.deployment.as_ref().map(|d| format!(" [{d}]")).unwrap_or_default();
    if !read.is_empty() {
        out.push_str(&format!("read {} file{}:\n", read.len(), if read.len() == 1 { "" } else { "s" }));
        for f in read {
            out.push_str(&format!("  {} ({}){}\n", f.path, f.format.as_deref().unwrap_or("config file"), deployment(f)));
        }
    }
    if !skipped.is_empty() {
        out.push_str(&format!("skipped {} file{}:\n", skipped.len(), if skipped.len() == 1 { "" } else { "s" }));
        for f in skipped {
            out.push_str(&format!("  {}: {}\n", f.path, f.skipped.as_deref().unwrap_or("")));
        }
    }
    out
}

/// The whole lines of `text` that hold every range.
fn window<'a>(text: &str, ranges: impl Iterator<Item = &'a std::ops::Range<usize>>) -> std::ops::Range<usize> {
    let (mut start, mut end) = (usize::MAX, 0);
    for r in ranges {
        start = start.min(r.start.min(text.len()));
        end = end.max(r.end.min(text.len()));
    }
    if start == usize::MAX {
        return 0..0;
    }
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
    line_start..line_end
}

fn window_of(text: &str, range: &std::ops::Range<usize>) -> std::ops::Range<usize> {
    window(text, std::iter::once(range))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_the_whole_lines_around_the_ranges() {
        let text = "a: 1\nb: 22\nc: 333\nd: 4\n";
        assert_eq!(&text[window(text, [&(6..7)].into_iter())], "b: 22");
        assert_eq!(&text[window(text, [&(6..7), &(12..14)].into_iter())], "b: 22\nc: 333");
        assert_eq!(window(text, std::iter::empty()), 0..0);
        assert_eq!(&text[window_of(text, &(0..0))], "a: 1");
    }
}
