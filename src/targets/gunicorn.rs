//! Target `gunicorn` (stub: renders nothing yet).

use super::{Artifact, Context, RenderError, Target};

pub struct Gunicorn;

impl Target for Gunicorn {
    fn name(&self) -> &'static str {
        "gunicorn"
    }
    fn render(&self, _ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        Ok(Vec::new())
    }
}

/// Where a gunicorn service's config file goes: `deploy.files.gunicorn` (one gunicorn
/// service) or `deploy.files["gunicorn.<service>"]`, default `gunicorn.conf.py` /
/// `<service>/gunicorn.conf.py`.
pub fn path(ctx: &Context<'_>, service: &crate::plan::ServicePlan) -> String {
    let _ = (ctx, service);
    String::from("gunicorn.conf.py")
}

/// The gunicorn command line (argv) with the same settings as the config file, for
/// compose, Kamal and Railway.
pub fn command(service: &crate::plan::ServicePlan) -> Vec<String> {
    let _ = service;
    vec!["gunicorn".into()]
}
