//! Reader for Kamal deploy.yml (stub).

use super::{FileId, ImportBuilder};

/// Reads a Kamal deploy.yml: roles and hosts, env, accessories.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let _ = (builder, file);
}
