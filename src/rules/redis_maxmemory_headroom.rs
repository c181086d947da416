//! Rule `redis-maxmemory-headroom`.

use super::Check;
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// TODO
    pub struct RedisMaxmemoryHeadroom { id: "redis-maxmemory-headroom", severity: Warning }
}

impl Check for RedisMaxmemoryHeadroom {
    fn run(&self, _plan: &Plan, _out: &mut Vec<Diagnostic>) {}
}
