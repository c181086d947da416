//! Rule `pgbouncer-prepared-statements`.

use super::Check;
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// TODO
    pub struct PgbouncerPreparedStatements { id: "pgbouncer-prepared-statements", severity: Warning }
}

impl Check for PgbouncerPreparedStatements {
    fn run(&self, _plan: &Plan, _out: &mut Vec<Diagnostic>) {}
}
