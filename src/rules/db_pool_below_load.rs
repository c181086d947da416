//! Rule `db-pool-below-load`.

use super::Check;
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// TODO
    pub struct DbPoolBelowLoad { id: "db-pool-below-load", severity: Warning }
}

impl Check for DbPoolBelowLoad {
    fn run(&self, _plan: &Plan, _out: &mut Vec<Diagnostic>) {}
}
