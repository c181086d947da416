//! Reader for command lines: shell words, and gunicorn / puma / redis-server / postgres / pgbouncer arguments; railway.toml start commands (stub).

use super::{FileId, ImportBuilder};

/// Splits a command line into words with their byte ranges in `text`.
pub fn shell_words(text: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let _ = text;
    Vec::new()
}

/// Applies a command line (words with byte ranges relative to the file) to a service:
/// gunicorn, puma, redis-server, postgres or pgbouncer by the program name. Returns the
/// kind it recognised.
pub fn apply_command(builder: &mut ImportBuilder, service: &str, words: &[(String, std::ops::Range<usize>)], file: FileId) -> Option<&'static str> {
    let _ = (builder, service, words, file);
    None
}

/// Reads a railway.toml start command.
pub fn read_railway(builder: &mut ImportBuilder, file: FileId) {
    let _ = (builder, file);
}
