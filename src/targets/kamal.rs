//! Target `kamal` (stub: renders nothing yet).

use super::{Artifact, Context, RenderError, Target};

pub struct Kamal;

impl Target for Kamal {
    fn name(&self) -> &'static str {
        "kamal"
    }
    fn render(&self, _ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        Ok(Vec::new())
    }
}
