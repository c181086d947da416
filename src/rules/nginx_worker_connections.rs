//! Rule `nginx-worker-connections`.

use super::Check;
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// TODO
    pub struct NginxWorkerConnections { id: "nginx-worker-connections", severity: Warning }
}

impl Check for NginxWorkerConnections {
    fn run(&self, _plan: &Plan, _out: &mut Vec<Diagnostic>) {}
}
