//! Rule `machine-memory-oversubscribed`.

use super::Check;
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// TODO
    pub struct MachineMemoryOversubscribed { id: "machine-memory-oversubscribed", severity: Warning }
}

impl Check for MachineMemoryOversubscribed {
    fn run(&self, _plan: &Plan, _out: &mut Vec<Diagnostic>) {}
}
