//! Which program versions headroom renders for, and the settings only some of them
//! accept. A file whose version is not pinned must work on every supported version, so
//! it holds only settings all of them accept; a gated setting is written only for a
//! pinned version that has it, and setting one without such a version is a load error
//! that names the version it needs (never silently dropped).

use crate::spec::{Service, Spec};

use super::limits::Refused;

/// PostgreSQL major versions headroom renders for.
pub const POSTGRES: (u64, u64) = (13, 17);
/// PgBouncer versions headroom renders for.
pub const PGBOUNCER: ((u32, u32), (u32, u32)) = ((1, 17), (1, 24));
/// PostgreSQL's `reserved_connections` exists since 16.
pub const POSTGRES_RESERVED_CONNECTIONS: u64 = 16;
/// PgBouncer's `max_prepared_statements` exists since 1.21.
pub const PGBOUNCER_MAX_PREPARED_STATEMENTS: (u32, u32) = (1, 21);

/// Unsupported versions and gated settings without the version they need.
pub fn refused(spec: &Spec) -> Vec<Refused> {
    let mut out = Vec::new();
    for (name, service) in &spec.services {
        let base = super::Pointer("/services", name);
        match service {
            Service::Postgres(pg) => {
                let version = pg.version.map(u64::from);
                if let Some(v) = version
                    && !(POSTGRES.0..=POSTGRES.1).contains(&v)
                {
                    out.push(Refused {
                        pointer: format!("{base}/version"),
                        message: format!("PostgreSQL {v} is not a supported version ({}..{})", POSTGRES.0, POSTGRES.1),
                        hint: format!("pin a version from {} to {}, or leave `version` out for settings every one of them accepts", POSTGRES.0, POSTGRES.1),
                    });
                    continue;
                }
                if pg.reserved_connections.is_some() && version.is_none_or(|v| v < POSTGRES_RESERVED_CONNECTIONS) {
                    out.push(Refused {
                        pointer: format!("{base}/reserved_connections"),
                        message: match version {
                            Some(v) => format!("reserved_connections needs PostgreSQL {POSTGRES_RESERVED_CONNECTIONS} or later; this one is {v}"),
                            None => format!("reserved_connections needs PostgreSQL {POSTGRES_RESERVED_CONNECTIONS} or later, and `version` is not pinned"),
                        },
                        hint: format!(
                            "PostgreSQL {} refuses the file (`unrecognized configuration parameter \"reserved_connections\"`): pin `version: {POSTGRES_RESERVED_CONNECTIONS}` (or later), or remove reserved_connections",
                            POSTGRES.0
                        ),
                    });
                }
            }
            Service::Pgbouncer(pgb) => {
                let version = pgb.version.as_deref().and_then(crate::plan::resolve::parse_version);
                if let Some(v) = version
                    && !(PGBOUNCER.0..=PGBOUNCER.1).contains(&v)
                {
                    out.push(Refused {
                        pointer: format!("{base}/version"),
                        message: format!(
                            "PgBouncer {}.{} is not a supported version ({}.{}..{}.{})",
                            v.0, v.1, PGBOUNCER.0.0, PGBOUNCER.0.1, PGBOUNCER.1.0, PGBOUNCER.1.1
                        ),
                        hint: "pin a version from 1.17 to 1.24, or leave `version` out for settings every one of them accepts".into(),
                    });
                    continue;
                }
                if pgb.max_prepared_statements.is_some() && version.is_none_or(|v| v < PGBOUNCER_MAX_PREPARED_STATEMENTS) {
                    let (major, minor) = PGBOUNCER_MAX_PREPARED_STATEMENTS;
                    out.push(Refused {
                        pointer: format!("{base}/max_prepared_statements"),
                        message: match version {
                            Some(v) => format!("max_prepared_statements needs PgBouncer {major}.{minor} or later; this one is {}.{}", v.0, v.1),
                            None => format!("max_prepared_statements needs PgBouncer {major}.{minor} or later, and `version` is not pinned"),
                        },
                        hint: format!(
                            "PgBouncer 1.17-1.20 refuse the file (`unknown parameter: pgbouncer/max_prepared_statements`): pin `version: \"{major}.{minor}\"` (or later), or remove max_prepared_statements"
                        ),
                    });
                }
            }
            _ => {}
        }
    }
    out
}
