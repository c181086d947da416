//! Rule `redis-cluster-masters`.

use super::Check;
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// TODO
    pub struct RedisClusterMasters { id: "redis-cluster-masters", severity: Warning }
}

impl Check for RedisClusterMasters {
    fn run(&self, _plan: &Plan, _out: &mut Vec<Diagnostic>) {}
}
