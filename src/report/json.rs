//! The JSON report. Its fields are a stable interface (listed in the README, "Output
//! formats"): new fields may be added, none renamed or removed.

use std::fmt::Write as _;

use serde::Serialize;

use super::ReportInput;
use crate::diag::{Counts, Diagnostic};

/// Version of the JSON report format.
pub const FORMAT_VERSION: u32 = 1;

/// Renders the findings as one pretty-printed JSON document.
///
/// Written directly rather than through `serde_json::to_string_pretty`: a report of
/// thousands of findings is mostly message text, and this writes each string once,
/// escaping only where a character needs it. The output is byte for byte what
/// `serde_json`'s pretty printer makes of the same document (a test holds both equal).
pub fn render(input: &ReportInput<'_>) -> String {
    let text_len: usize = input.diagnostics.iter().map(|d| d.message.len() + d.fix.as_ref().map_or(0, String::len) + d.path.len() + 400).sum();
    let mut out = String::with_capacity(text_len + 256);
    let counts = Counts::of(input.diagnostics);
    let _ = write!(out, "{{\n  \"format_version\": {FORMAT_VERSION},\n  \"tool\": \"headroom\",\n  \"tool_version\": ");
    string(&mut out, env!("CARGO_PKG_VERSION"));
    out.push_str(",\n  \"subject\": ");
    string(&mut out, &input.subject);
    let _ = write!(
        out,
        ",\n  \"summary\": {{\n    \"errors\": {},\n    \"warnings\": {},\n    \"infos\": {}\n  }},\n  \"findings\": ",
        counts.errors, counts.warnings, counts.infos
    );
    if input.diagnostics.is_empty() {
        out.push_str("[]");
    } else {
        out.push('[');
        for (i, d) in input.diagnostics.iter().enumerate() {
            out.push_str(if i == 0 { "\n    {" } else { ",\n    {" });
            finding(&mut out, d);
            out.push_str("\n    }");
        }
        out.push_str("\n  ]");
    }
    if !input.files.is_empty() {
        out.push_str(",\n  \"files\": ");
        nested(&mut out, input.files, "  ");
    }
    out.push_str("\n}\n");
    out
}

/// One finding's fields, at the indentation of an element of `findings`.
fn finding(out: &mut String, d: &Diagnostic) {
    out.push_str("\n      \"rule\": ");
    string(out, &d.rule);
    out.push_str(",\n      \"severity\": ");
    string(out, d.severity.as_str());
    out.push_str(",\n      \"message\": ");
    string(out, &d.message);
    out.push_str(",\n      \"path\": ");
    string(out, &d.path);
    out.push_str(",\n      \"file\": ");
    match &d.span {
        Some(span) => {
            string(out, &span.file);
            let _ = write!(
                out,
                ",\n      \"line\": {},\n      \"column\": {},\n      \"end_line\": {},\n      \"end_column\": {}",
                span.line, span.column, span.end_line, span.end_column
            );
        }
        None => out.push_str("null,\n      \"line\": null,\n      \"column\": null,\n      \"end_line\": null,\n      \"end_column\": null"),
    }
    out.push_str(",\n      \"numbers\": ");
    if d.numbers.is_empty() {
        out.push_str("{}");
    } else {
        out.push('{');
        for (i, (name, value)) in d.numbers.iter().enumerate() {
            out.push_str(if i == 0 { "\n        " } else { ",\n        " });
            string(out, name);
            out.push_str(": ");
            // serde_json's own number text (`3.0`, `1e21`, `null` when not finite).
            out.push_str(&serde_json::to_string(value).expect("a number serializes"));
        }
        out.push_str("\n      }");
    }
    out.push_str(",\n      \"fix\": ");
    match &d.fix {
        Some(fix) => string(out, fix),
        None => out.push_str("null"),
    }
    out.push_str(",\n      \"related\": ");
    if d.related.is_empty() {
        out.push_str("[]");
    } else {
        nested(out, &d.related, "      ");
    }
}

/// A rarely present value, pretty-printed by serde_json and indented to where it
/// sits (JSON strings hold no raw newline, so every newline is the printer's).
fn nested<T: Serialize + ?Sized>(out: &mut String, value: &T, indent: &str) {
    let text = serde_json::to_string_pretty(value).expect("the report serializes");
    let mut lines = text.split('\n');
    out.push_str(lines.next().unwrap_or_default());
    for line in lines {
        out.push('\n');
        out.push_str(indent);
        out.push_str(line);
    }
}

/// A JSON string, escaped as serde_json escapes it: `"`, `\\`, and control
/// characters (`\b \t \n \f \r` by name, the rest as `\u00xx`); everything else as is.
fn string(out: &mut String, text: &str) {
    out.push('"');
    let bytes = text.as_bytes();
    let needs_escape = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let mut written = 0;
    // Whole chunks without a character to escape are copied at once (the test of a
    // chunk has no early exit, so it compiles to a few vector compares).
    let mut at = 0;
    while at < bytes.len() {
        let end = (at + 16).min(bytes.len());
        let chunk = &bytes[at..end];
        if chunk.iter().fold(false, |any, &b| any | needs_escape(b)) {
            for (offset, &b) in chunk.iter().enumerate() {
                if !needs_escape(b) {
                    continue;
                }
                let i = at + offset;
                out.push_str(&text[written..i]);
                match b {
                    b'"' => out.push_str("\\\""),
                    b'\\' => out.push_str("\\\\"),
                    0x08 => out.push_str("\\b"),
                    0x09 => out.push_str("\\t"),
                    0x0a => out.push_str("\\n"),
                    0x0c => out.push_str("\\f"),
                    0x0d => out.push_str("\\r"),
                    _ => {
                        const HEX: &[u8; 16] = b"0123456789abcdef";
                        out.push_str("\\u00");
                        out.push(char::from(HEX[usize::from(b >> 4)]));
                        out.push(char::from(HEX[usize::from(b & 0xf)]));
                    }
                }
                written = i + 1;
            }
        }
        at = end;
    }
    out.push_str(&text[written..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::*;
    use crate::diag::{Related, Severity, Span};
    use crate::report::FileRead;

    /// The document as serde_json would print it: the format `render` must match.
    #[derive(Serialize)]
    struct Document<'a> {
        format_version: u32,
        tool: &'static str,
        tool_version: &'static str,
        subject: &'a str,
        summary: Counts,
        findings: Vec<Finding<'a>>,
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

    fn by_serde(input: &ReportInput<'_>) -> String {
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
        let mut text = serde_json::to_string_pretty(&document).unwrap();
        text.push('\n');
        text
    }

    fn span(file: &str, line: usize) -> Span {
        Span { file: file.into(), line, column: 3, end_line: line + 1, end_column: 9, bytes: 0..1, exact: true }
    }

    #[test]
    fn writes_what_serde_json_prints() {
        let every_control: String = (0u8..0x20).map(char::from).collect();
        let diagnostics = vec![
            Diagnostic::new("pgbouncer-client-limit", Severity::Error, "services.pgbouncer.max_client_conn", "a \"quoted\" `name` with \\ and\ttab\nnewline, é ü 漢字 \u{7f}")
                .number("demand", 480)
                .number("ratio", 0.1 + 0.2)
                .number("huge", 1e21)
                .number("infinite", f64::INFINITY)
                .number("weird \"key\"", -0.0)
                .fix("lower pool to 4")
                .related("services.web.uses.pgbouncer.pool", "pool 4 \"x\"")
                .related("services.web.replicas", "3 replicas")
                .at(Some(span("spec \"q\".yaml", 12))),
            Diagnostic::new("redis-no-auth", Severity::Warning, "services.cache", every_control.clone()),
            Diagnostic::new("single-replica", Severity::Info, "services.web.replicas", "x".repeat(40) + "\"" + &"y".repeat(17) + "\\"),
            Diagnostic::new("empty", Severity::Info, "", ""),
        ];
        let mut with_span = diagnostics.clone();
        with_span[0].related[0].span = Some(span("b.yaml", 4));
        let files = [
            FileRead { path: "docker-compose.yml".into(), format: Some("docker-compose".into()), skipped: None, deployment: None },
            FileRead { path: "odd\nname".into(), format: None, skipped: Some("binary".into()), deployment: Some("prod".into()) },
        ];
        for (diagnostics, files, subject) in [
            (&diagnostics[..], &files[..], "capacity.yaml"),
            (&with_span[..], &[][..], "a \"subject\"\n"),
            (&[][..], &[][..], ""),
            (&[][..], &files[..], "lint"),
        ] {
            let input = ReportInput { sources: Vec::new(), subject: subject.into(), diagnostics, files };
            assert_eq!(render(&input), by_serde(&input));
        }
    }
}
