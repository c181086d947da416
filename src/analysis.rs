//! The whole check pipeline in one call: load, resolve, run the rules, and point each
//! finding into the input. The CLI, the benchmarks and the tests all go through here.

use std::path::Path;

use crate::diag::Diagnostic;
use crate::load::{self, Loaded, LoadFailure, Locate};
use crate::plan::{self, Plan};
use crate::source::SourceFile;

/// A loaded spec, its plan and the findings of every rule.
#[derive(Debug)]
pub struct Analysis {
    pub loaded: Loaded,
    pub plan: Plan,
    pub diagnostics: Vec<Diagnostic>,
}

/// Loads, resolves and checks a spec file.
pub fn analyze_file(path: &Path) -> Result<Analysis, LoadFailure> {
    load::load_file(path).map(analyze_loaded)
}

/// Loads, resolves and checks spec text (the path is used in messages).
pub fn analyze_text(path: impl AsRef<Path>, text: &str) -> Result<Analysis, LoadFailure> {
    load::load_source(SourceFile::new(path.as_ref(), text.to_string())).map(analyze_loaded)
}

/// Resolves and checks a loaded spec.
pub fn analyze_loaded(loaded: Loaded) -> Analysis {
    let plan = plan::resolve(&loaded.spec);
    let mut diagnostics = crate::rules::check(&plan);
    locate_all(&loaded, &mut diagnostics);
    Analysis { loaded, plan, diagnostics }
}

/// Fills in the span of every finding and its related places.
pub fn locate_all(input: &dyn Locate, diagnostics: &mut [Diagnostic]) {
    for d in diagnostics {
        if d.span.is_none() {
            d.span = input.locate(&d.path);
        }
        for related in &mut d.related {
            if related.span.is_none() {
                related.span = input.locate(&related.path);
            }
        }
    }
}
