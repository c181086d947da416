//! Rule `timeout-order`.

use super::Check;
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// TODO
    pub struct TimeoutOrder { id: "timeout-order", severity: Warning }
}

impl Check for TimeoutOrder {
    fn run(&self, _plan: &Plan, _out: &mut Vec<Diagnostic>) {}
}
