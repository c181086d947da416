//! GitHub Actions workflow commands: one `::error`/`::warning`/`::notice` line per
//! finding, which GitHub shows as an annotation on the changed file.

use super::ReportInput;
use crate::diag::Severity;

/// Escapes a message the way the runner reads it back.
fn escape_data(text: &str) -> String {
    text.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Escapes a property value (also `:` and `,`, which separate properties).
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// Renders one workflow command per finding.
pub fn render(input: &ReportInput<'_>) -> String {
    let mut out = String::new();
    for d in input.diagnostics {
        let command = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let mut properties = Vec::new();
        if let Some(span) = &d.span {
            properties.push(format!("file={}", escape_property(&span.file)));
            properties.push(format!("line={}", span.line));
            properties.push(format!("col={}", span.column));
            properties.push(format!("endLine={}", span.end_line));
            if span.end_line == span.line {
                properties.push(format!("endColumn={}", span.end_column));
            }
        }
        properties.push(format!("title={}", escape_property(&format!("headroom {}", d.rule))));
        let mut message = d.message.clone();
        if let Some(fix) = &d.fix {
            message.push_str("\nfix: ");
            message.push_str(fix);
        }
        out.push_str(&format!("::{command} {}::{}\n", properties.join(","), escape_data(&message)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_and_separators_cannot_start_a_new_command() {
        assert_eq!(escape_data("a\n::error::x"), "a%0A::error::x");
        assert_eq!(escape_property("a,b:c"), "a%2Cb%3Ac");
        assert_eq!(escape_data("100%"), "100%25");
    }
}
