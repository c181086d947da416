//! Rule `nginx-rlimit-nofile`.

use super::Check;
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// TODO
    pub struct NginxRlimitNofile { id: "nginx-rlimit-nofile", severity: Warning }
}

impl Check for NginxRlimitNofile {
    fn run(&self, _plan: &Plan, _out: &mut Vec<Diagnostic>) {}
}
