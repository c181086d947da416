//! Rule `redis-no-auth`.

use super::{Check, finding};
use crate::diag::Diagnostic;
use crate::plan::{Detail, Plan};

declare_rule! {
    /// A redis that other hosts can reach accepts clients without a password.
    ///
    /// ## What it checks
    /// A redis or valkey service with authentication turned off (`password: false`,
    /// or a redis.conf with `protected-mode no` and neither `requirepass` nor an ACL
    /// user with a password) that is reachable beyond its own container network: a
    /// Kamal accessory (Kamal publishes its port on the host's address), a port
    /// published on the host other than on loopback (`publish`, compose `ports:
    /// ["6379:6379"]`), a client placed on another machine group, or a server running
    /// on a host rather than in a container, bound to an address other than loopback
    /// (its machine group's addresses, or `bind`).
    ///
    /// ## Why it matters
    /// Without a password and with `protected-mode no`, nothing but the network stops a
    /// remote client: anyone on that network can read every key, write, `FLUSHALL`,
    /// or `CONFIG SET dir` to drop files on the host. With protected mode on and no
    /// password, Redis instead refuses every non-loopback client (`DENIED Redis is
    /// running in protected mode because protected mode is enabled and no password is
    /// set for the default user`), so the clients on other hosts cannot work at all.
    ///
    /// ## Example
    /// ```yaml
    /// machines: { db: { count: 1, addresses: [10.0.0.31] } }
    /// services: { cache: { kind: redis, machine: db, password: false } }
    /// deploy: { kamal: { image: acme/app } }
    /// ```
    ///
    /// ## Fix
    /// Name the secret that holds a password: `password: CACHE_PASSWORD` (the default
    /// when `password` is not written). headroom renders `--requirepass` from that
    /// variable for the server and gives every client the variable by name; the value
    /// never enters a file. In redis.conf: `requirepass`, or an ACL user
    /// (`user app on >PASSWORD ~* +@all`).
    ///
    /// ## Defaults
    /// `password` `<SERVICE>_PASSWORD` (authentication on); Redis' own default is no
    /// password with `protected-mode yes`.
    ///
    /// ## References
    /// - https://redis.io/docs/latest/operate/oss_and_stack/management/security/ (protected mode, authentication)
    /// - redis.conf: `protected-mode`, `requirepass`, `bind`
    /// - https://redis.io/docs/latest/operate/oss_and_stack/management/security/acl/
    pub struct RedisNoAuth { id: "redis-no-auth", severity: Error, core: false }
}

impl Check for RedisNoAuth {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        for service in &plan.services {
            let Detail::Redis(redis) = &service.detail else { continue };
            if service.external || redis.password.is_some() || redis.reachable_from.is_empty() {
                continue;
            }
            out.push(
                finding::<Self>(
                    format!("{}.password", service.path),
                    format!(
                        "redis `{}` has no password and other hosts can reach it: {}; anyone on that network can read, write and FLUSHALL it",
                        service.name,
                        redis.reachable_from.join("; ")
                    ),
                )
                .fix(format!(
                    "set {}.password to the name of the secret that holds its password (e.g. {}), or keep it on a private container network",
                    service.path,
                    crate::plan::resolve::default_redis_secret(&service.name)
                )),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::findings_of;

    const KAMAL: &str = "deploy:\n  kamal: { image: acme/t, registry: { username: U, password: P } }\n";

    fn spec(cache: &str, deploy: &str) -> String {
        format!(
            "version: 1\nname: t\nmachines:\n  web: {{ count: 1, addresses: [10.0.0.10] }}\n  db: {{ count: 1, addresses: [10.0.0.31] }}\nservices:\n  web: {{ kind: puma, machine: web, uses: {{ cache: {{ pool: 5 }} }} }}\n  cache: {{ kind: redis, {cache} }}\n{deploy}"
        )
    }

    #[test]
    fn kamal_accessory_without_password() {
        let found = findings_of("redis-no-auth", &spec("machine: db, password: false", KAMAL));
        assert_eq!(found.len(), 1);
        let m = &found[0].message;
        assert!(m.contains("Kamal publishes port 6379 on the address of machine group `db`"), "{m}");
        assert!(m.contains("service `web` on machine group `web` connects to it from another host"), "{m}");
        assert_eq!(found[0].path, "services.cache.password");
    }

    #[test]
    fn host_without_container() {
        let found = findings_of("redis-no-auth", &spec("machine: db, password: false", ""));
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("redis.conf binds the addresses of machine group `db` (10.0.0.31)"), "{}", found[0].message);
        // on a host with no address in the spec, redis.conf binds loopback only
        assert!(findings_of("redis-no-auth", &spec("password: false", "")).is_empty());
    }

    #[test]
    fn published_on_the_host_or_bound_beyond_loopback() {
        let compose = "deploy:\n  compose: {}\n";
        let found = findings_of("redis-no-auth", &spec("password: false, publish: [\"6379\"]", compose));
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("services.cache.publish puts port 6379 on every interface of the host"), "{}", found[0].message);
        let found = findings_of("redis-no-auth", &spec("password: false, publish: [\"10.0.0.31:6379\"]", compose));
        assert!(found[0].message.contains("on host address 10.0.0.31"), "{}", found[0].message);
        assert!(findings_of("redis-no-auth", &spec("password: false, publish: [\"127.0.0.1:6379\"]", compose)).is_empty(), "loopback only");
        assert!(findings_of("redis-no-auth", &spec("publish: [\"6379\"]", compose)).is_empty(), "with a password");
        let found = findings_of("redis-no-auth", &spec("password: false, bind: [\"0.0.0.0\"]", ""));
        assert!(found[0].message.contains("binds 0.0.0.0 (services.cache.bind)"), "{}", found[0].message);
        assert!(findings_of("redis-no-auth", &spec("password: false, bind: [127.0.0.1, \"-::1\"]", "")).is_empty());
    }

    #[test]
    fn password_or_private_network_pass() {
        assert!(findings_of("redis-no-auth", &spec("machine: db", KAMAL)).is_empty(), "default password");
        assert!(findings_of("redis-no-auth", &spec("machine: db, password: CACHE_SECRET", KAMAL)).is_empty());
        let compose = "deploy:\n  compose: {}\n";
        assert!(findings_of("redis-no-auth", &spec("password: false", compose)).is_empty(), "compose network only");
        assert!(findings_of("redis-no-auth", &spec("password: false, external: true", "")).is_empty());
    }
}
