//! Reports: the same diagnostics as rustc-style text, stable JSON, SARIF 2.1.0 or
//! GitHub workflow annotations. Formatting only; nothing here decides a finding.

pub mod github;
pub mod human;
pub mod json;
pub mod capacity;
pub mod sarif;

use crate::diag::Diagnostic;
use crate::source::SourceFile;

/// Output format of `check` and `lint`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Annotated source snippets for a terminal.
    Human,
    /// A stable JSON document (fields listed in the README, "Output formats").
    Json,
    /// SARIF 2.1.0 for code-scanning services.
    Sarif,
    /// GitHub Actions workflow commands (annotations on the PR diff).
    Github,
}

/// What a report needs besides the findings: the files they point into.
pub struct ReportInput<'a> {
    /// The files findings may point into.
    pub sources: Vec<&'a SourceFile>,
    /// What was checked (for summaries).
    pub subject: String,
    pub diagnostics: &'a [Diagnostic],
}

impl ReportInput<'_> {
    /// The source a span's file name refers to.
    pub fn source_named(&self, file: &str) -> Option<&SourceFile> {
        self.sources.iter().copied().find(|s| s.path.display().to_string() == file)
    }
}

/// Renders the findings in a format.
pub fn render(format: Format, input: &ReportInput<'_>, color: bool) -> String {
    match format {
        Format::Human => human::render(input, color),
        Format::Json => json::render(input),
        Format::Sarif => sarif::render(input),
        Format::Github => github::render(input),
    }
}
