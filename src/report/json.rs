//! The JSON report. Its fields are a stable interface (listed in the README, "Output
//! formats"): new fields may be added, none renamed or removed.

use serde::Serialize;

use super::{FileRead, ReportInput};
use crate::diag::{Counts, Related};

/// Version of the JSON report format.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize)]
struct Document<'a> {
    format_version: u32,
    tool: &'static str,
    tool_version: &'static str,
    subject: &'a str,
    summary: Counts,
    findings: Vec<Finding<'a>>,
    /// `lint`: every file read (with its format) or skipped (with why).
    #[serde(skip_serializing_if = "<[FileRead]>::is_empty")]
    files: &'a [FileRead],
}

#[derive(Serialize)]
struct Finding<'a> {
    rule: &'a str,
    severity: &'a str,
    message: &'a str,
    path: &'a str,
    file: Option<&'a str>,
    line: Option<usize>,
    column: Option<usize>,
    end_line: Option<usize>,
    end_column: Option<usize>,
    numbers: &'a indexmap::IndexMap<String, f64>,
    fix: Option<&'a str>,
    related: &'a [Related],
}

/// Renders the findings as one pretty-printed JSON document.
pub fn render(input: &ReportInput<'_>) -> String {
    let findings = input
        .diagnostics
        .iter()
        .map(|d| Finding {
            rule: &d.rule,
            severity: d.severity.as_str(),
            message: &d.message,
            path: &d.path,
            file: d.span.as_ref().map(|s| s.file.as_str()),
            line: d.span.as_ref().map(|s| s.line),
            column: d.span.as_ref().map(|s| s.column),
            end_line: d.span.as_ref().map(|s| s.end_line),
            end_column: d.span.as_ref().map(|s| s.end_column),
            numbers: &d.numbers,
            fix: d.fix.as_deref(),
            related: &d.related,
        })
        .collect();
    let document = Document {
        format_version: FORMAT_VERSION,
        tool: "headroom",
        tool_version: env!("CARGO_PKG_VERSION"),
        subject: &input.subject,
        summary: Counts::of(input.diagnostics),
        findings,
        files: input.files,
    };
    let mut text = serde_json::to_string_pretty(&document).expect("the report serializes");
    text.push('\n');
    text
}
