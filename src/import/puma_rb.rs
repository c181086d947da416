//! Reader for config/puma.rb (stub).

use super::{FileId, ImportBuilder};

/// Reads a puma.rb (workers, threads, ENV.fetch defaults).
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let _ = (builder, file);
}
