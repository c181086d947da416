//! Target `sysctl` (stub: renders nothing yet).

use super::{Artifact, Context, RenderError, Target};

pub struct Sysctl;

impl Target for Sysctl {
    fn name(&self) -> &'static str {
        "sysctl"
    }
    fn render(&self, _ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        Ok(Vec::new())
    }
}
