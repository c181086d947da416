//! Target `compose` (stub: renders nothing yet).

use super::{Artifact, Context, RenderError, Target};

pub struct Compose;

impl Target for Compose {
    fn name(&self) -> &'static str {
        "compose"
    }
    fn render(&self, _ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        Ok(Vec::new())
    }
}
