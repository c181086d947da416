//! Reader for gunicorn.conf.py (top-level assignments) (stub).

use super::{FileId, ImportBuilder};

/// Reads a gunicorn.conf.py into the gunicorn service that owns it.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let _ = (builder, file);
}
