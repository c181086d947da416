//! Target `redis` (stub: renders nothing yet).

use super::{Artifact, Context, RenderError, Target};

pub struct Redis;

impl Target for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn render(&self, _ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        Ok(Vec::new())
    }
}

/// Where a redis service's config goes (default `redis/<service>.conf`).
pub fn path(ctx: &Context<'_>, service: &crate::plan::ServicePlan) -> String {
    let _ = ctx;
    format!("redis/{}.conf", service.name)
}

/// The same settings as `redis-server` arguments, for compose and Kamal commands.
pub fn server_args(service: &crate::plan::ServicePlan) -> Vec<String> {
    let _ = service;
    vec!["redis-server".into()]
}
