//! Rule `pgbouncer-client-limit`.

use super::Check;
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// TODO
    pub struct PgbouncerClientLimit { id: "pgbouncer-client-limit", severity: Warning }
}

impl Check for PgbouncerClientLimit {
    fn run(&self, _plan: &Plan, _out: &mut Vec<Diagnostic>) {}
}
