//! Rule `backlog-over-somaxconn`.

use super::Check;
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// TODO
    pub struct BacklogOverSomaxconn { id: "backlog-over-somaxconn", severity: Warning }
}

impl Check for BacklogOverSomaxconn {
    fn run(&self, _plan: &Plan, _out: &mut Vec<Diagnostic>) {}
}
