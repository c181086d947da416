//! Target `nginx` (stub: renders nothing yet).

use super::{Artifact, Context, RenderError, Target};

pub struct Nginx;

impl Target for Nginx {
    fn name(&self) -> &'static str {
        "nginx"
    }
    fn render(&self, _ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        Ok(Vec::new())
    }
}

/// Where an nginx service's config goes (`deploy.files.nginx`, default `nginx/nginx.conf`).
pub fn path(ctx: &Context<'_>, service: &crate::plan::ServicePlan) -> String {
    let _ = (ctx, service);
    String::from("nginx/nginx.conf")
}
