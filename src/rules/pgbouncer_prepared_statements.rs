//! Rule `pgbouncer-prepared-statements`.

use super::{Check, finding};
use crate::diag::Diagnostic;
use crate::plan::{Edge, Detail, Plan};
use crate::spec::{Framework, PoolMode};

declare_rule! {
    /// Prepared statements go through transaction pooling that does not track them.
    ///
    /// ## What it checks
    /// For each `pgbouncer` service in `transaction` (or `statement`) pool mode, every
    /// client whose pool uses protocol-level prepared statements (`prepared_statements`,
    /// by default true for `framework: rails` and `framework: psycopg_pool`: ActiveRecord
    /// prepares by default, psycopg 3 prepares a query after `prepare_threshold` (5)
    /// executions) needs PgBouncer to track them: `max_prepared_statements` > 0, which
    /// exists since PgBouncer 1.21.
    ///
    /// ## Why it matters
    /// In transaction mode each transaction may run on a different server connection. A
    /// statement prepared on one is unknown on the next: the query fails with
    /// `ERROR: prepared statement "a1" does not exist` (or `prepared statement "a1"
    /// already exists` when a name is reused), intermittently and only under
    /// concurrency, so it passes tests and breaks in production. Other session state
    /// breaks the same way in transaction mode, with or without this setting: `SET`
    /// (use `SET LOCAL`), `LISTEN`/`NOTIFY` listeners, session advisory locks
    /// (`pg_advisory_lock`), temporary tables and `WITH HOLD` cursors.
    ///
    /// ## Example
    /// ```yaml
    /// web:       { kind: puma, uses: { pgbouncer: { framework: rails } } }
    /// pgbouncer: { kind: pgbouncer, version: "1.20", pool_mode: transaction, uses: { db: {} } }
    /// ```
    ///
    /// ## Fix
    /// On PgBouncer >= 1.21 set `max_prepared_statements` (1.24's default is 200; 1.21
    /// to 1.23 default to 0, off). On older versions upgrade, or turn prepared
    /// statements off in the client: `prepared_statements: false` in Rails'
    /// database.yml (or `?prepared_statements=false` in DATABASE_URL), psycopg 3
    /// `prepare_threshold=None`.
    ///
    /// ## Defaults
    /// pool_mode session (where prepared statements work); max_prepared_statements 0
    /// in PgBouncer 1.21 to 1.23, 200 since 1.24; the setting does not exist before
    /// 1.21. The PgBouncer version defaults to 1.24.
    ///
    /// ## References
    /// - https://www.pgbouncer.org/config.html#max_prepared_statements
    /// - https://www.pgbouncer.org/features.html#sql-feature-map-for-pooling-modes
    /// - https://www.pgbouncer.org/2023/10/pgbouncer-1-21-0
    /// - https://guides.rubyonrails.org/configuring.html#configuring-a-postgresql-database
    /// - https://www.psycopg.org/psycopg3/docs/advanced/prepare.html
    pub struct PgbouncerPreparedStatements { id: "pgbouncer-prepared-statements", severity: Warning }
}

impl Check for PgbouncerPreparedStatements {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            let Detail::Pgbouncer(pgb) = &service.detail else { continue };
            let mode = match pgb.pool_mode.value {
                PoolMode::Session => continue,
                PoolMode::Transaction => "transaction",
                PoolMode::Statement => "statement",
            };
            if pgb.max_prepared_statements.as_ref().is_some_and(|m| m.value > 0) {
                continue;
            }
            let clients: Vec<&Edge> = plan.edges_to(&service.name).filter(|e| e.prepared_statements).collect();
            if clients.is_empty() {
                continue;
            }
            let (major, minor) = pgb.version.value;
            let version = format!("PgBouncer {major}.{minor} ({})", pgb.version.cite());
            let (tracking, path, fix) = match &pgb.max_prepared_statements {
                Some(m) => (
                    format!("max_prepared_statements is 0 ({})", m.cite()),
                    m.path().to_string(),
                    format!(
                        "set max_prepared_statements: 200 ({}), or turn prepared statements off in the clients ({})",
                        m.path(),
                        client_switches(&clients)
                    ),
                ),
                None => (
                    format!("{version} cannot track them: max_prepared_statements exists since 1.21"),
                    pgb.version.path().to_string(),
                    format!(
                        "upgrade PgBouncer to >= 1.21 ({}) and set max_prepared_statements: 200, or turn prepared statements off in the clients ({})",
                        pgb.version.path(),
                        client_switches(&clients)
                    ),
                ),
            };
            let who: Vec<String> = clients.iter().map(|e| format!("`{}` ({})", e.from, why_prepared(e))).collect();
            let message = format!(
                "pgbouncer `{}` pools in {mode} mode ({}) and {} prepare{} statements, but {tracking}: a statement prepared on one server connection runs on another and fails with `ERROR: prepared statement \"a1\" does not exist` (intermittently, under concurrency); session features break the same way in {mode} mode: SET (use SET LOCAL), LISTEN/NOTIFY, session advisory locks, temporary tables",
                service.name,
                pgb.pool_mode.cite(),
                who.join(", "),
                if clients.len() == 1 { "s" } else { "" },
            );
            let mut d = finding::<Self>(path, message)
                .number("max_prepared_statements", pgb.max_prepared_statements.as_ref().map_or(0.0, |m| m.value as f64))
                .number("clients", clients.len() as f64)
                .fix(fix)
                .related(pgb.pool_mode.path(), format!("pool_mode {mode}"));
            for edge in &clients {
                d = d.related(edge.path.clone(), format!("`{}` uses prepared statements", edge.from));
            }
            out.push(d);
        }
    }
}

/// Why the plan thinks this client prepares statements.
fn why_prepared(edge: &Edge) -> String {
    match edge.framework {
        Framework::Rails => format!("framework rails, {}: ActiveRecord prepares statements unless prepared_statements: false", edge.path),
        Framework::PsycopgPool => format!("framework psycopg_pool, {}: psycopg 3 prepares a query after 5 executions unless prepare_threshold=None", edge.path),
        _ => format!("{}.prepared_statements: true", edge.path),
    }
}

/// How each client turns prepared statements off, clients of one framework together.
fn client_switches(clients: &[&Edge]) -> String {
    let mut groups: Vec<(&'static str, Vec<String>)> = Vec::new();
    for edge in clients {
        let switch = match edge.framework {
            Framework::Rails => "prepared_statements: false in database.yml (or ?prepared_statements=false in DATABASE_URL)",
            Framework::PsycopgPool | Framework::Django => "prepare_threshold=None on the connection",
            _ => "disable server-side prepared statements in the driver",
        };
        let name = format!("`{}`", edge.from);
        match groups.iter_mut().find(|(s, _)| *s == switch) {
            Some((_, names)) => names.push(name),
            None => groups.push((switch, vec![name])),
        }
    }
    groups.iter().map(|(switch, names)| format!("{}: {switch}", names.join(", "))).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {

    fn findings(yaml: &str) -> Vec<crate::diag::Diagnostic> {
        crate::rules::findings_of("pgbouncer-prepared-statements", yaml)
    }

    fn spec(pgbouncer: &str, client: &str) -> String {
        format!(
            "version: 1
name: t
services:
  web:
    kind: puma
    workers: 4
    threads: 5
    uses:
      pgbouncer: {{ {client} }}
  pgbouncer:
    kind: pgbouncer
    max_client_conn: 1000
{pgbouncer}    uses: {{ db: {{}} }}
  db:
    kind: postgres
"
        )
    }

    #[test]
    fn rails_through_transaction_mode_on_1_22() {
        let found = findings(&spec("    pool_mode: transaction\n    version: \"1.22\"\n", "framework: rails"));
        assert_eq!(found.len(), 1);
        let d = &found[0];
        assert_eq!(d.path, "services.pgbouncer.max_prepared_statements");
        assert!(d.message.contains("transaction mode (services.pgbouncer.pool_mode)"), "{}", d.message);
        assert!(d.message.contains("ActiveRecord prepares statements unless prepared_statements: false"), "{}", d.message);
        assert!(d.message.contains("max_prepared_statements is 0 (services.pgbouncer.max_prepared_statements not set; default: PgBouncer 1.22 max_prepared_statements = 0)"), "{}", d.message);
        assert!(d.message.contains("prepared statement \"a1\" does not exist"), "{}", d.message);
        assert!(d.message.contains("advisory locks"), "{}", d.message);
        assert!(d.fix.as_deref().unwrap().contains("set max_prepared_statements: 200"), "{:?}", d.fix);
    }

    #[test]
    fn old_version_has_no_setting() {
        let found = findings(&spec("    pool_mode: transaction\n    version: \"1.18\"\n", "framework: rails"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "services.pgbouncer.version");
        assert!(found[0].message.contains("PgBouncer 1.18 (services.pgbouncer.version) cannot track them"), "{}", found[0].message);
        assert!(found[0].fix.as_deref().unwrap().contains("upgrade PgBouncer to >= 1.21"), "{:?}", found[0].fix);
    }

    #[test]
    fn boundary_one_tracked_statement_is_enough() {
        let base = "    pool_mode: transaction\n    version: \"1.22\"\n";
        assert_eq!(findings(&spec(&format!("{base}    max_prepared_statements: 0\n"), "framework: rails")).len(), 1);
        assert!(findings(&spec(&format!("{base}    max_prepared_statements: 1\n"), "framework: rails")).is_empty());
    }

    #[test]
    fn no_finding_in_session_mode_default_1_24_or_without_prepared_statements() {
        assert!(findings(&spec("    pool_mode: session\n    version: \"1.18\"\n", "framework: rails")).is_empty());
        assert!(findings(&spec("    pool_mode: transaction\n    version: \"1.24\"\n", "framework: rails")).is_empty());
        // Not pinned: the file must work on 1.17, which cannot track prepared statements.
        let unpinned = findings(&spec("    pool_mode: transaction\n", "framework: rails"));
        assert_eq!(unpinned.len(), 1);
        assert!(unpinned[0].message.contains("PgBouncer 1.17 (services.pgbouncer.version not set; default: not pinned"), "{}", unpinned[0].message);
        assert!(findings(&spec("    pool_mode: transaction\n    version: \"1.18\"\n", "framework: rails, prepared_statements: false")).is_empty());
        assert!(findings(&spec("    pool_mode: transaction\n    version: \"1.18\"\n", "framework: psycopg2")).is_empty());
    }
}
