//! Reader for pgbouncer.ini (and the PGBOUNCER_* environment of common images) (stub).

use super::{FileId, ImportBuilder};

/// Reads a pgbouncer.ini into the pgbouncer service that owns the file.
pub fn read_pgbouncer(builder: &mut ImportBuilder, file: FileId) {
    let _ = (builder, file);
}

/// Applies one PgBouncer setting (from the ini, or from a PGBOUNCER_* variable) to a
/// service. Returns false when headroom does not model the key.
pub fn apply_pgbouncer_setting(builder: &mut ImportBuilder, service: &str, key: &str, value: &str, file: FileId, bytes: std::ops::Range<usize>) -> bool {
    let _ = (builder, service, key, value, file, bytes);
    false
}
