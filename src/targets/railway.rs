//! Target `railway` (stub: renders nothing yet).

use super::{Artifact, Context, RenderError, Target};

pub struct Railway;

impl Target for Railway {
    fn name(&self) -> &'static str {
        "railway"
    }
    fn render(&self, _ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        Ok(Vec::new())
    }
}
