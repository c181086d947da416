//! Rule `upstream-max-conns-over-slots`.

use super::Check;
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// TODO
    pub struct UpstreamMaxConnsOverSlots { id: "upstream-max-conns-over-slots", severity: Warning }
}

impl Check for UpstreamMaxConnsOverSlots {
    fn run(&self, _plan: &Plan, _out: &mut Vec<Diagnostic>) {}
}
