//! Rule `backlog-over-somaxconn`.

use super::{Check, finding};
use crate::diag::Diagnostic;
use crate::plan::{Kind, Plan};

declare_rule! {
    /// A listener asks for a longer accept queue than the kernel allows where it runs.
    ///
    /// ## What it checks
    /// For every listening service (nginx, gunicorn, puma, redis, pgbouncer), its listen
    /// backlog must not exceed `net.core.somaxconn` where it runs. `somaxconn` is per
    /// network namespace: a container gets the kernel's default (4096 on Linux >= 5.4,
    /// 128 before), or what its own `sysctls` set, never the host's value; a service
    /// running on a machine directly gets the machine's `sysctl`.
    ///
    /// ## Why it matters
    /// `listen()` silently truncates the backlog to `somaxconn`. The server believes it
    /// can queue, say, 2048 connections during a burst, but the kernel keeps only 128;
    /// the rest of the SYNs and ACKs are dropped, clients retransmit after 1s, 3s, 7s
    /// (latency spikes with no error anywhere in the app's logs), and the drops only show
    /// in `nstat` as `TcpExtListenOverflows` / `TcpExtListenDrops`. Redis is the only one
    /// that says so: `WARNING: The TCP backlog setting of 511 cannot be enforced because
    /// /proc/sys/net/core/somaxconn is set to the lower value of 128.`
    ///
    /// ## Example
    /// ```yaml
    /// machines: { app: { count: 1, sysctl: { net.core.somaxconn: 128 } } }
    /// services:
    ///   web: { kind: gunicorn, machine: app }    # backlog 2048 > 128
    /// ```
    ///
    /// ## Fix
    /// Raise `net.core.somaxconn` to at least the backlog where the listener runs: the
    /// machine's `sysctl` for services on the host, the service's `sysctls` in a
    /// container (it is namespaced, so compose and Kamal can set it per container).
    /// Or lower the backlog to fit.
    ///
    /// ## Defaults
    /// Backlogs: nginx `listen ... backlog=` 511, gunicorn `backlog` 2048, puma
    /// `backlog` 1024, redis `tcp-backlog` 511, pgbouncer `listen_backlog` 128.
    /// `net.core.somaxconn` 4096 on Linux >= 5.4 (128 before).
    ///
    /// ## References
    /// - https://docs.kernel.org/networking/ip-sysctl.html
    /// - https://man7.org/linux/man-pages/man2/listen.2.html
    /// - https://nginx.org/en/docs/http/ngx_http_core_module.html#listen
    /// - https://docs.gunicorn.org/en/stable/settings.html#backlog
    /// - https://raw.githubusercontent.com/redis/redis/unstable/redis.conf
    /// - https://www.pgbouncer.org/config.html#listen_backlog
    /// - https://docs.docker.com/reference/compose-file/services/#sysctls
    pub struct BacklogOverSomaxconn { id: "backlog-over-somaxconn", severity: Warning }
}

/// The name of the backlog setting in the program's own config.
fn setting(kind: Kind) -> &'static str {
    match kind {
        Kind::Nginx => "listen backlog",
        Kind::Redis => "tcp-backlog",
        Kind::Pgbouncer => "listen_backlog",
        _ => "backlog",
    }
}

impl Check for BacklogOverSomaxconn {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            let Some(backlog) = &service.backlog else { continue };
            let somaxconn = &service.somaxconn;
            if backlog.value <= somaxconn.value {
                continue;
            }
            let consequence = if service.kind == Kind::Redis {
                format!(
                    "redis logs `WARNING: The TCP backlog setting of {} cannot be enforced because /proc/sys/net/core/somaxconn is set to the lower value of {}` and",
                    backlog.value, somaxconn.value
                )
            } else {
                "the kernel silently truncates it, and".to_string()
            };
            let message = format!(
                "{} `{}` {} {} ({}) > net.core.somaxconn {} ({}): {consequence} in a burst only {} connections wait to be accepted; the rest are dropped (clients retransmit after 1s, 3s, 7s: latency spikes with no error in the logs, visible only as TcpExtListenOverflows/ListenDrops in `nstat`)",
                service.kind.as_str(),
                service.name,
                setting(service.kind),
                backlog.value,
                backlog.cite(),
                somaxconn.value,
                somaxconn.cite(),
                somaxconn.value,
            );
            let path = if somaxconn.is_written() { somaxconn.path() } else { backlog.path() };
            out.push(
                finding::<Self>(path, message)
                    .number("backlog", backlog.value as f64)
                    .number("somaxconn", somaxconn.value as f64)
                    .fix(format!(
                        "set net.core.somaxconn to >= {} at {}, or lower {} to <= {}",
                        backlog.value,
                        somaxconn.path(),
                        backlog.path(),
                        somaxconn.value
                    ))
                    .related(backlog.path(), format!("{} {}", setting(service.kind), backlog.value))
                    .related(somaxconn.path(), format!("net.core.somaxconn {}", somaxconn.value)),
            );
        }
    }
}

#[cfg(test)]
mod tests {

    fn findings(yaml: &str) -> Vec<crate::diag::Diagnostic> {
        crate::rules::findings_of("backlog-over-somaxconn", yaml)
    }

    #[test]
    fn machine_sysctl_below_default_backlogs() {
        let yaml = "version: 1\nname: t\nmachines:\n  app: { count: 1, sysctl: { net.core.somaxconn: 128 } }\nservices:\n  web: { kind: gunicorn, machine: app }\n  cache: { kind: redis, machine: app }\n  bouncer: { kind: pgbouncer, machine: app }\n";
        let found = findings(yaml);
        assert_eq!(found.len(), 2, "{found:#?}");
        let web = found.iter().find(|d| d.message.contains("`web`")).unwrap();
        assert!(web.message.contains("backlog 2048 (services.web.backlog not set; default: gunicorn backlog = 2048) > net.core.somaxconn 128 (machines.app.sysctl[\"net.core.somaxconn\"])"), "{}", web.message);
        assert!(web.fix.as_deref().unwrap().contains(">= 2048"));
        let cache = found.iter().find(|d| d.message.contains("`cache`")).unwrap();
        assert!(cache.message.contains("The TCP backlog setting of 511 cannot be enforced because /proc/sys/net/core/somaxconn is set to the lower value of 128"), "{}", cache.message);
    }

    #[test]
    fn containers_get_their_own_namespace() {
        // The host's 128 does not apply to a container: it starts with 4096.
        let yaml = "version: 1\nname: t\nmachines:\n  app: { count: 1, sysctl: { net.core.somaxconn: 128 } }\nservices:\n  web: { kind: gunicorn, machine: app, backlog: 8192 }\ndeploy: { compose: {} }\n";
        let found = findings(yaml);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("backlog 8192 (services.web.backlog) > net.core.somaxconn 4096"), "{}", found[0].message);
    }

    #[test]
    fn boundary() {
        let spec = |backlog: u64| format!("version: 1\nname: t\nservices:\n  web: {{ kind: puma, backlog: {backlog}, sysctls: {{ net.core.somaxconn: 1024 }} }}\n");
        assert!(findings(&spec(1024)).is_empty());
        assert_eq!(findings(&spec(1025)).len(), 1);
    }
}
