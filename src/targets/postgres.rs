//! Target `postgres` (stub: renders nothing yet).

use super::{Artifact, Context, RenderError, Target};

pub struct Postgres;

impl Target for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn render(&self, _ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        Ok(Vec::new())
    }
}

/// Where a postgres service's settings include goes (default `postgres/<service>.conf`).
pub fn path(ctx: &Context<'_>, service: &crate::plan::ServicePlan) -> String {
    let _ = ctx;
    format!("postgres/{}.conf", service.name)
}

/// The same settings as `postgres -c key=value` arguments, for compose and Kamal.
pub fn server_args(service: &crate::plan::ServicePlan) -> Vec<String> {
    let _ = service;
    vec!["postgres".into()]
}
