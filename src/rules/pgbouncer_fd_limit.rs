//! Rule `pgbouncer-fd-limit`.

use super::{Check, finding, plural};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Plan, Sourced, mul};

declare_rule! {
    /// PgBouncer may need more file descriptors than its open-files limit allows.
    ///
    /// ## What it checks
    /// For each `pgbouncer` service, the file descriptors it may hold at once are one
    /// per client plus one per server connection, the formula of the PgBouncer docs
    /// for `max_client_conn`: `max_client_conn + pools x (default_pool_size +
    /// reserve_pool_size)`, where pools = databases x users (server connections capped
    /// by `max_db_connections` / `max_user_connections` when those bind). That must fit
    /// in the process's open-files limit: the service's `nofile`, else its machine's.
    /// When neither is given the common soft limit 1024 (`ulimit -n` on most Linux
    /// distributions, and in containers under recent Docker/containerd) is assumed and
    /// the message says so.
    ///
    /// ## Why it matters
    /// PgBouncer logs the budget at start-up (`File descriptor limit: 1024 (H:4096),
    /// max_client_conn: 2000, max fds possible: 2060`) and then runs anyway. When the
    /// limit is reached it cannot accept clients (`accept() failed: Too many open
    /// files`) or open server connections: new connections hang or are refused long
    /// before `max_client_conn`, so the client limit the plan was sized for is never
    /// available.
    ///
    /// ## Example
    /// ```yaml
    /// pgbouncer: { kind: pgbouncer, max_client_conn: 2000, default_pool_size: 50, uses: { db: {} } }
    /// # 2000 + 1 pool x 50 = 2050 > 1024 (nofile not set)
    /// ```
    ///
    /// ## Fix
    /// Raise the open-files limit to at least the number in the message (`nofile:` on
    /// the service, which renders compose `ulimits: { nofile: N }`, or `LimitNOFILE=` in
    /// a systemd unit), or lower `max_client_conn`.
    ///
    /// ## Defaults
    /// max_client_conn 100, default_pool_size 20, reserve_pool_size 0; open-files soft
    /// limit assumed 1024 when unknown.
    ///
    /// ## References
    /// - https://www.pgbouncer.org/config.html#max_client_conn
    /// - https://www.pgbouncer.org/config.html#default_pool_size
    /// - https://docs.docker.com/compose/compose-file/05-services/#ulimits
    /// - https://man7.org/linux/man-pages/man2/getrlimit.2.html
    pub struct PgbouncerFdLimit { id: "pgbouncer-fd-limit", severity: Warning, core: false }
}

/// The soft RLIMIT_NOFILE most processes start with.
const ASSUMED_NOFILE: u64 = 1024;

impl Check for PgbouncerFdLimit {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            let Detail::Pgbouncer(pgb) = &service.detail else { continue };
            let per_pool = pgb.default_pool_size.value.saturating_add(pgb.reserve_pool_size.value);
            let uncapped = mul(&[pgb.pools, per_pool]);
            // One instance's server connections, as the plan computed them (caps applied).
            let per_instance = pgb.server_connections.value / service.replicas.value.max(1);
            let servers = uncapped.min(per_instance);
            let need = pgb.max_client_conn.value.saturating_add(servers);
            if need <= service.nofile.as_ref().map_or(ASSUMED_NOFILE, |n| n.value) {
                continue;
            }
            let nofile = service.nofile.clone().unwrap_or_else(|| {
                Sourced::default(
                    ASSUMED_NOFILE,
                    format!("{}.nofile", service.path),
                    "assumed 1024, the common soft open-files limit (ulimit -n)",
                )
            });
            let mut servers_text = format!(
                "{} ({} x {}) x (default_pool_size {} + reserve_pool_size {})",
                plural(pgb.pools, "pool"),
                plural(pgb.databases.len() as u64, "database"),
                plural(pgb.users.len() as u64, "user"),
                pgb.default_pool_size.value,
                pgb.reserve_pool_size.value,
            );
            if servers < uncapped {
                servers_text = format!("{servers_text} = {uncapped}, capped at {servers} server connections by max_db_connections / max_user_connections");
            }
            let message = format!(
                "pgbouncer `{}` may need {need} file descriptors but may open {}: max_client_conn {} ({}) + {servers_text} = {need} > nofile {} ({}); PgBouncer logs `File descriptor limit: {} ..., max fds possible: ...` at start-up and runs anyway, then fails with `accept() failed: Too many open files` once {} sockets are open, so new clients hang or are refused below max_client_conn",
                service.name,
                nofile.value,
                pgb.max_client_conn.value,
                pgb.max_client_conn.cite(),
                nofile.value,
                nofile.cite(),
                nofile.value,
                nofile.value,
            );
            out.push(
                finding::<Self>(nofile.path(), message)
                    .number("fds_needed", need as f64)
                    .number("nofile", nofile.value as f64)
                    .number("max_client_conn", pgb.max_client_conn.value as f64)
                    .fix(format!(
                        "set {} to >= {need} (compose ulimits nofile / systemd LimitNOFILE), or lower max_client_conn to <= {}",
                        nofile.path(),
                        nofile.value.saturating_sub(servers)
                    ))
                    .related(pgb.max_client_conn.path(), format!("max_client_conn {}", pgb.max_client_conn.value)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze_text;

    fn findings(pgbouncer: &str) -> Vec<crate::diag::Diagnostic> {
        let yaml = format!("version: 1\nname: t\nservices:\n  pgbouncer: {{ kind: pgbouncer, {pgbouncer}, uses: {{ db: {{}} }} }}\n  db: {{ kind: postgres, max_connections: 500 }}\n");
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "pgbouncer-fd-limit")
            .collect()
    }

    #[test]
    fn assumed_soft_limit() {
        let found = findings("max_client_conn: 2000, default_pool_size: 50, reserve_pool_size: 10");
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("max_client_conn 2000 (services.pgbouncer.max_client_conn) + 1 pool (1 database x 1 user) x (default_pool_size 50 + reserve_pool_size 10) = 2060 > nofile 1024"), "{m}");
        assert!(m.contains("assumed 1024") && m.contains("Too many open files"), "{m}");
        assert!(found[0].fix.as_deref().unwrap().contains(">= 2060"));
    }

    #[test]
    fn written_nofile() {
        assert!(findings("max_client_conn: 2000, default_pool_size: 50, nofile: 65536").is_empty());
        let found = findings("max_client_conn: 2000, default_pool_size: 50, nofile: 2000");
        assert!(found[0].message.contains("> nofile 2000 (services.pgbouncer.nofile)"), "{}", found[0].message);
    }

    #[test]
    fn boundary() {
        // 1004 + 20 = 1024 fits the assumed limit exactly; 1005 does not.
        assert!(findings("max_client_conn: 1004").is_empty());
        assert_eq!(findings("max_client_conn: 1005").len(), 1);
    }

    #[test]
    fn caps_bind() {
        let found = findings("max_client_conn: 1000, default_pool_size: 50, max_db_connections: 30");
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("capped at 30 server connections") && found[0].message.contains("= 1030 >"), "{}", found[0].message);
    }
}
