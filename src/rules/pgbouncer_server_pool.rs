//! Rule `pgbouncer-server-pool`.

use super::Check;
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// TODO
    pub struct PgbouncerServerPool { id: "pgbouncer-server-pool", severity: Warning }
}

impl Check for PgbouncerServerPool {
    fn run(&self, _plan: &Plan, _out: &mut Vec<Diagnostic>) {}
}
