//! Reader for postgresql.conf and `postgres -c key=value` arguments (stub).

use super::{FileId, ImportBuilder};

/// Reads a postgresql.conf (or an include of it) into the postgres service that owns it.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let _ = (builder, file);
}

/// Applies one PostgreSQL setting to a service. Returns false when not modelled.
pub fn apply_setting(builder: &mut ImportBuilder, service: &str, key: &str, value: &str, file: FileId, bytes: std::ops::Range<usize>) -> bool {
    let _ = (builder, service, key, value, file, bytes);
    false
}
