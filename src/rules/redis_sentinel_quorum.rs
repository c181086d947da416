//! Rule `redis-sentinel-quorum`.

use super::Check;
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// TODO
    pub struct RedisSentinelQuorum { id: "redis-sentinel-quorum", severity: Warning }
}

impl Check for RedisSentinelQuorum {
    fn run(&self, _plan: &Plan, _out: &mut Vec<Diagnostic>) {}
}
