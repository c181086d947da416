//! Rule `capacity-below-load`.

use super::Check;
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// TODO
    pub struct CapacityBelowLoad { id: "capacity-below-load", severity: Warning }
}

impl Check for CapacityBelowLoad {
    fn run(&self, _plan: &Plan, _out: &mut Vec<Diagnostic>) {}
}
