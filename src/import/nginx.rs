//! Reader for nginx config (nginx.conf, conf.d files, `nginx -T` dumps) (stub).

use super::{FileId, ImportBuilder};

/// Reads an nginx config into the nginx service that owns the file.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let _ = (builder, file);
}
