//! Target `puma` (stub: renders nothing yet).

use super::{Artifact, Context, RenderError, Target};

pub struct Puma;

impl Target for Puma {
    fn name(&self) -> &'static str {
        "puma"
    }
    fn render(&self, _ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        Ok(Vec::new())
    }
}

/// Where the puma config goes (`deploy.files.puma`, default `config/puma.rb`).
pub fn path(ctx: &Context<'_>, service: &crate::plan::ServicePlan) -> String {
    let _ = (ctx, service);
    String::from("config/puma.rb")
}

/// The puma command line (argv), for compose and Kamal.
pub fn command(ctx: &Context<'_>, service: &crate::plan::ServicePlan) -> Vec<String> {
    let _ = (ctx, service);
    vec!["bundle".into(), "exec".into(), "puma".into()]
}
