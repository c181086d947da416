//! Target `app-env` (stub: renders nothing yet).

use super::{Artifact, Context, RenderError, Target};

pub struct AppEnv;

impl Target for AppEnv {
    fn name(&self) -> &'static str {
        "app-env"
    }
    fn render(&self, _ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        Ok(Vec::new())
    }
}

/// The environment an app or job service needs for its pools and concurrency
/// (WEB_CONCURRENCY, RAILS_MAX_THREADS, DB_POOL_*, ...), in a stable order.
pub fn env(ctx: &Context<'_>, service: &crate::plan::ServicePlan) -> Vec<(String, String)> {
    let _ = (ctx, service);
    Vec::new()
}

/// Where a service's env file goes (default `env/<service>.env`).
pub fn path(ctx: &Context<'_>, service: &crate::plan::ServicePlan) -> String {
    let _ = ctx;
    format!("env/{}.env", service.name)
}
