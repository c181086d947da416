//! Reader for redis.conf, sentinel.conf and redis-server flags (stub).

use super::{FileId, ImportBuilder};

/// Reads a redis.conf into the redis service that owns it.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let _ = (builder, file);
}

/// Reads a sentinel.conf (sentinel count, quorum).
pub fn read_sentinel(builder: &mut ImportBuilder, file: FileId) {
    let _ = (builder, file);
}

/// Applies one redis directive (`maxmemory 8gb`, from a file or `--maxmemory 8gb`).
/// Returns false when not modelled.
pub fn apply_directive(builder: &mut ImportBuilder, service: &str, key: &str, args: &[&str], file: FileId, bytes: std::ops::Range<usize>) -> bool {
    let _ = (builder, service, key, args, file, bytes);
    false
}
