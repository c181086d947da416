//! Reader for docker-compose files (stub).

use super::{FileId, ImportBuilder};

/// Reads a compose file: services, replicas, resources, commands, environment.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let _ = (builder, file);
}
