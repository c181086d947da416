//! Rule `redis-clients-exhausted`.

use super::Check;
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// TODO
    pub struct RedisClientsExhausted { id: "redis-clients-exhausted", severity: Warning }
}

impl Check for RedisClientsExhausted {
    fn run(&self, _plan: &Plan, _out: &mut Vec<Diagnostic>) {}
}
