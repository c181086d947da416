//! Diagnostics: what a rule or the loader found, the numbers behind it, where in the
//! input it points, and the fix. Reports (human, json, sarif, github) only format these.

use std::ops::Range;

use indexmap::IndexMap;
use serde::Serialize;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// A place in an input file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Span {
    /// File as the user named it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// 1-based end line.
    pub end_line: usize,
    /// 1-based end column (exclusive).
    pub end_column: usize,
    /// Byte range in the file.
    #[serde(skip)]
    pub bytes: Range<usize>,
    /// The path itself is written here; false when the span is the closest written
    /// ancestor of a defaulted value.
    #[serde(skip)]
    pub exact: bool,
}

/// A secondary place a finding refers to (where a number came from).
#[derive(Clone, Debug, Serialize)]
pub struct Related {
    /// Spec path of the value (`services.pgbouncer.max_client_conn`).
    pub path: String,
    /// What this place contributes.
    pub label: String,
    /// Where it is, when it is written in the input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
}

/// One finding.
#[derive(Clone, Debug, Serialize)]
pub struct Diagnostic {
    /// Rule ID (kebab-case), or `spec-invalid` / `yaml-syntax` for bad input.
    pub rule: String,
    pub severity: Severity,
    /// The finding with its arithmetic and the paths the numbers came from.
    pub message: String,
    /// Spec path the finding is about (`services.pgbouncer.max_client_conn`).
    pub path: String,
    /// Where that path is in the input (the closest written ancestor when the value
    /// is a default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<Span>,
    /// The numbers the message shows, by name.
    pub numbers: IndexMap<String, f64>,
    /// How to fix it, with a concrete number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Other places the numbers came from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
}

impl Diagnostic {
    pub fn new(rule: impl Into<String>, severity: Severity, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            rule: rule.into(),
            severity,
            message: message.into(),
            path: path.into(),
            span: None,
            numbers: IndexMap::new(),
            fix: None,
            related: Vec::new(),
        }
    }

    /// Records a number the message shows.
    pub fn number(mut self, name: &str, value: impl Into<f64>) -> Self {
        self.numbers.insert(name.to_string(), value.into());
        self
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub fn related(mut self, path: impl Into<String>, label: impl Into<String>) -> Self {
        self.related.push(Related { path: path.into(), label: label.into(), span: None });
        self
    }

    pub fn at(mut self, span: Option<Span>) -> Self {
        self.span = span;
        self
    }
}

/// Summary counts of a set of diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
}

impl Counts {
    pub fn of(diagnostics: &[Diagnostic]) -> Self {
        let mut counts = Counts::default();
        for d in diagnostics {
            match d.severity {
                Severity::Error => counts.errors += 1,
                Severity::Warning => counts.warnings += 1,
                Severity::Info => counts.infos += 1,
            }
        }
        counts
    }
}
