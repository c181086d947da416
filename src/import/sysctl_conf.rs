//! Reader for sysctl.conf / sysctl.d files (stub).

use super::{FileId, ImportBuilder};

/// Reads sysctl settings into the machine group that owns the file.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let _ = (builder, file);
}
