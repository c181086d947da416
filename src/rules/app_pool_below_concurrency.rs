//! Rule `app-pool-below-concurrency`.

use super::Check;
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// TODO
    pub struct AppPoolBelowConcurrency { id: "app-pool-below-concurrency", severity: Warning }
}

impl Check for AppPoolBelowConcurrency {
    fn run(&self, _plan: &Plan, _out: &mut Vec<Diagnostic>) {}
}
