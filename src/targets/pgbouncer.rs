//! Target `pgbouncer` (stub: renders nothing yet).

use super::{Artifact, Context, RenderError, Target};

pub struct Pgbouncer;

impl Target for Pgbouncer {
    fn name(&self) -> &'static str {
        "pgbouncer"
    }
    fn render(&self, _ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        Ok(Vec::new())
    }
}

/// Where a pgbouncer service's ini goes (`deploy.files.pgbouncer`, default
/// `pgbouncer/pgbouncer.ini`).
pub fn path(ctx: &Context<'_>, service: &crate::plan::ServicePlan) -> String {
    let _ = (ctx, service);
    String::from("pgbouncer/pgbouncer.ini")
}
