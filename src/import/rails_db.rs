//! Reader for Rails config/database.yml (stub).

use super::{FileId, ImportBuilder};

/// Reads the production pool of a database.yml (ERB ENV.fetch defaults).
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let _ = (builder, file);
}
