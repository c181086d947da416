//! Reports: the same diagnostics as rustc-style text, stable JSON, SARIF 2.1.0 or
//! GitHub workflow annotations. Formatting only; nothing here decides a finding.

pub mod github;
pub mod human;
pub mod json;
pub mod markdown;
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
    /// GitHub-flavoured Markdown for a pull request comment (tables and a Mermaid graph).
    Markdown,
}

/// What a report needs besides the findings: the files they point into.
pub struct ReportInput<'a> {
    /// The files findings may point into.
    pub sources: Vec<&'a SourceFile>,
    /// What was checked (for summaries).
    pub subject: String,
    pub diagnostics: &'a [Diagnostic],
    /// For `lint`: every file looked at, read or skipped (empty for `check`).
    pub files: &'a [FileRead],
}

/// A file `lint` looked at: read in a format, or skipped with the reason.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileRead {
    pub path: String,
    /// The format it was read as (`docker-compose`, `puma.rb`, `env file`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// Why it was not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// The deployment it was read for, when the paths hold more than one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
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
        Format::Markdown => markdown::findings(&input.subject, input.diagnostics),
    }
}
