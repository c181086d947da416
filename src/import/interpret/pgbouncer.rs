//! pgbouncer command lines.

use super::Cx;
use crate::import::shared::argv::{Arg, Word, parse_args};

/// PgBouncer settings the common images read from plain (unprefixed) variables.
pub const PLAIN_VARIABLES: [&str; 15] = [
    "POOL_MODE", "MAX_CLIENT_CONN", "DEFAULT_POOL_SIZE", "MIN_POOL_SIZE", "RESERVE_POOL_SIZE", "RESERVE_POOL_TIMEOUT",
    "MAX_DB_CONNECTIONS", "MAX_USER_CONNECTIONS", "SERVER_IDLE_TIMEOUT", "SERVER_LIFETIME", "QUERY_WAIT_TIMEOUT",
    "AUTH_TYPE", "LISTEN_PORT", "MAX_PREPARED_STATEMENTS", "LISTEN_BACKLOG",
];

pub(super) fn flags(cx: &mut Cx<'_>, words: &[Word]) {
    let args = parse_args(words, |f| matches!(f, "-u" | "--user"));
    for arg in args {
        match arg {
            Arg::Positional((w, r)) => {
                let note = format!("pgbouncer reads `{}`; pass that file to headroom to read it too", w.escape_debug());
                cx.builder.config_named(cx.file, r, &w, note);
            }
            Arg::Opt(o) => {
                if !matches!(o.flag.as_str(), "-d" | "--daemon" | "-q" | "--quiet" | "-v" | "--verbose" | "-R" | "--reboot") {
                    cx.ignored(o.bytes.clone(), format!("pgbouncer `{}` does not change capacity", o.flag));
                }
            }
        }
    }
}
