//! Target `redis`: redis.conf per redis service (memory, clients, backlog, persistence,
//! cluster settings) and, in sentinel mode, a sentinel.conf watching it; plus the same
//! server settings as `redis-server` arguments for compose and Kamal commands.

use serde::Serialize;

use super::escape::one_line;
use super::{Artifact, Context, RenderError, Target, render_template};
use crate::plan::{Detail, Kind, RedisPlan, ServicePlan};
use crate::spec::{Persistence, RedisMode};

const REDIS: &str = include_str!("../../templates/redis/redis.conf.j2");
const SENTINEL: &str = include_str!("../../templates/redis/sentinel.conf.j2");

/// Redis' documented default save points (redis.conf of Redis 7).
pub const RDB_SAVE_POINTS: &str = "3600 1 300 100 60 10000";
/// Redis' default `cluster-node-timeout` (ms).
pub const CLUSTER_NODE_TIMEOUT_MS: u64 = 15_000;
/// Sentinel's port.
pub const SENTINEL_PORT: u64 = 26379;
/// Sentinel's documented defaults: `down-after-milliseconds` 30 s,
/// `failover-timeout` 3 min, `parallel-syncs` 1.
pub const SENTINEL_DOWN_AFTER_MS: u64 = 30_000;
pub const SENTINEL_FAILOVER_TIMEOUT_MS: u64 = 180_000;
pub const SENTINEL_PARALLEL_SYNCS: u64 = 1;

pub struct Redis;

impl Target for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn render(&self, ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        let mut artifacts = Vec::new();
        for service in ctx.plan.services.iter().filter(|s| s.kind == Kind::Redis) {
            let Detail::Redis(redis) = &service.detail else { continue };
            let context = RedisContext {
                header: ctx.header("#").trim_end().to_string(),
                service: service.name.clone(),
                mode: match redis.mode {
                    RedisMode::Standalone => "standalone",
                    RedisMode::Sentinel => "sentinel",
                    RedisMode::Cluster => "cluster",
                },
                directives: directives(service, ctx.plan.host_listen(service).as_deref()),
                sentinel: sentinel(service, redis, super::pgbouncer::host_of(ctx, service), ctx.plan.host_listen(service).as_deref()),
            };
            let text = render_template("redis", "redis/redis.conf.j2", REDIS, &context)?;
            artifacts.push(Artifact { target: "redis", path: path(ctx, service), text, patched: false });
            if context.sentinel.is_some() {
                let text = render_template("redis", "redis/sentinel.conf.j2", SENTINEL, &context)?;
                artifacts.push(Artifact { target: "redis", path: sentinel_path(ctx, service), text, patched: false });
            }
        }
        Ok(artifacts)
    }
}

fn several(ctx: &Context<'_>) -> bool {
    ctx.plan.services.iter().filter(|s| s.kind == Kind::Redis).count() > 1
}

/// Where a redis service's config goes: `deploy.files.redis` (default
/// `redis/<service>.conf`); with several redis services, `deploy.files["redis.<service>"]`.
pub fn path(ctx: &Context<'_>, service: &ServicePlan) -> String {
    let default = format!("redis/{}.conf", service.name);
    if several(ctx) { ctx.path_for(&format!("redis.{}", service.name), &default) } else { ctx.path_for("redis", &default) }
}

/// Where a sentinel-mode redis service's sentinel.conf goes: `deploy.files.sentinel`
/// (default `redis/<service>-sentinel.conf`); with several redis services,
/// `deploy.files["sentinel.<service>"]`.
pub fn sentinel_path(ctx: &Context<'_>, service: &ServicePlan) -> String {
    let default = format!("redis/{}-sentinel.conf", service.name);
    if several(ctx) { ctx.path_for(&format!("sentinel.{}", service.name), &default) } else { ctx.path_for("sentinel", &default) }
}

/// The same settings as `redis-server` arguments, for compose and Kamal commands (the
/// server runs in a container: it binds every interface of the container).
pub fn server_args(service: &ServicePlan) -> Vec<String> {
    let mut args = vec!["redis-server".to_string()];
    for d in directives(service, None) {
        args.push(format!("--{}", d.key));
        args.extend(d.args);
    }
    args
}

/// The arguments that give the server its password from the environment, by
/// reference: `reference` spells the variable the way the caller's format expands it
/// (`${NAME}` in compose, `$(NAME)` in Kubernetes, `"$NAME"` in a shell). `--masterauth`
/// too, so replicas (and a master demoted by a failover) authenticate to their master.
pub fn auth_args(service: &ServicePlan, reference: impl Fn(&str) -> String) -> Vec<String> {
    match password_secret(service) {
        Some(secret) => {
            let value = reference(secret);
            vec!["--requirepass".into(), value.clone(), "--masterauth".into(), value]
        }
        None => Vec::new(),
    }
}

/// The secret holding a redis service's password, if it has one.
pub fn password_secret(service: &ServicePlan) -> Option<&str> {
    match &service.detail {
        Detail::Redis(redis) => redis.password.as_ref().map(|secret| secret.value.as_str()),
        _ => None,
    }
}

/// The shell script that creates a Redis Cluster from its nodes' host names, once.
/// `redis-cli --cluster create` takes IP addresses only (CLUSTER MEET refuses a name:
/// `ERR Invalid node address specified`), and container addresses are known only at
/// run time: each name is resolved with `getent hosts` when the script runs. A cluster
/// that already knows its nodes is left alone, so a restart never re-creates it.
/// `hosts` are compose/DNS names (letters, digits, `-`, `_`, `.`: nothing a shell reads).
pub fn cluster_create_script(hosts: &[String], port: u64, replicas_per_master: u64) -> String {
    let first = hosts.first().map_or("127.0.0.1", String::as_str);
    format!(
        "set -e\n\
         if redis-cli -h {first} -p {port} cluster info | tr -d '\\r' | grep -qx 'cluster_state:ok'; then echo 'cluster-init: the cluster is already formed'; exit 0; fi\n\
         nodes=''\n\
         for host in {hosts}; do\n\
         \x20 ip=$(getent hosts \"$host\" | awk '{{ print $1; exit }}')\n\
         \x20 if [ -z \"$ip\" ]; then echo \"cluster-init: cannot resolve $host\" >&2; exit 1; fi\n\
         \x20 nodes=\"$nodes $ip:{port}\"\n\
         done\n\
         exec redis-cli --cluster create $nodes --cluster-replicas {replicas_per_master} --cluster-yes\n",
        hosts = hosts.join(" "),
    )
}

/// One redis.conf directive with its arguments (each one argument, as `redis-server
/// --key arg` takes it) and a note on where the value came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Directive {
    pub key: &'static str,
    pub args: Vec<String>,
    pub note: Option<String>,
}

#[derive(Serialize)]
struct RedisContext {
    header: String,
    service: String,
    mode: &'static str,
    directives: Vec<Directive>,
    sentinel: Option<SentinelContext>,
}

#[derive(Serialize)]
struct SentinelContext {
    port: u64,
    master_name: String,
    master_host: String,
    master_port: u64,
    quorum: u64,
    quorum_note: String,
    sentinels: Option<u64>,
    down_after_ms: u64,
    failover_timeout_ms: u64,
    parallel_syncs: u64,
    /// Secret holding the master's password (sentinel gets it as `--sentinel auth-pass`).
    auth_secret: Option<String>,
    /// What the sentinel binds: the same addresses as its master (see `bind`).
    bind: Vec<String>,
}


/// A size in the units redis.conf documents (`kb`, `mb`, `gb`: 1024-based; a bare
/// number is bytes).
pub fn size(bytes: u64) -> String {
    super::escape::binary_size(bytes, ["gb", "mb", "kb"])
}

/// What a server binds, with why: every interface of its container (`host_listen`
/// `None`), or on a host, loopback plus the private addresses of its machine group.
/// Each machine address is optional (`-ADDRESS`, Redis 6.2+): one file serves every
/// machine of the group, and each binds the address it has.
pub fn bind(service: &ServicePlan, host_listen: Option<&[String]>) -> (Vec<String>, String) {
    match host_listen {
        None => (vec!["0.0.0.0".into()], "every interface of the container; keep the port on a private network".into()),
        Some(_) if let Some(bind) = written_bind(service) => (bind.to_vec(), format!("{}.bind", service.path)),
        Some(addresses) => {
            let mut args = vec!["127.0.0.1".to_string(), "-::1".to_string()];
            args.extend(addresses.iter().map(|a| format!("-{a}")));
            let note = super::host_listen_note(service, addresses);
            (args, note)
        }
    }
}

fn written_bind(service: &ServicePlan) -> Option<&[String]> {
    match &service.detail {
        Detail::Redis(redis) => redis.bind.as_deref(),
        _ => None,
    }
}

/// Every redis.conf directive the plan decides, in file order; `host_listen` as
/// `Plan::host_listen` gives it (`None`: the file is read in a container).
pub fn directives(service: &ServicePlan, host_listen: Option<&[String]>) -> Vec<Directive> {
    let Detail::Redis(redis) = &service.detail else { return Vec::new() };
    let mut out = Vec::new();
    let (bind_args, bind_note) = bind(service, host_listen);
    out.push(Directive { key: "bind", args: bind_args, note: Some(one_line(&bind_note)) });
    let mut push = |key: &'static str, args: &[&str], note: Option<String>| {
        out.push(Directive { key, args: args.iter().map(|a| a.to_string()).collect(), note: note.map(|n| one_line(&n)) });
    };
    push("port", &[&service.port.value.to_string()], None);
    match &redis.password {
        Some(secret) => push(
            "protected-mode",
            &["yes"],
            Some(format!(
                "clients authenticate with the password in secret {} ({}), given at start as --requirepass and --masterauth: a config file cannot read the environment",
                secret.value,
                secret.cite()
            )),
        ),
        None => push("protected-mode", &["no"], Some(format!("{}.password is false: no password, so only the network keeps other clients out", service.path))),
    }
    push("tcp-backlog", &[&service.backlog.as_ref().map_or(redis.tcp_backlog.value, |b| b.value).to_string()], Some(redis.tcp_backlog.cite()));
    let clients_note = if redis.effective_maxclients.value < redis.maxclients.value {
        format!("{}; Redis lowers it to {} ({})", redis.maxclients.cite(), redis.effective_maxclients.value, redis.effective_maxclients.cite())
    } else {
        redis.maxclients.cite()
    };
    push("maxclients", &[&redis.maxclients.value.to_string()], Some(clients_note));
    if let Some(m) = &redis.maxmemory {
        push("maxmemory", &[&size(m.value)], Some(m.cite()));
    }
    push("maxmemory-policy", &[&redis.maxmemory_policy.value], Some(redis.maxmemory_policy.cite()));
    let persistence_note = Some(redis.persistence.cite());
    match redis.persistence.value {
        Persistence::None => {
            push("save", &[""], persistence_note);
            push("appendonly", &["no"], None);
        }
        Persistence::Rdb => {
            push("save", &[RDB_SAVE_POINTS], persistence_note);
            push("appendonly", &["no"], None);
        }
        Persistence::Aof => {
            push("save", &[""], persistence_note);
            push("appendonly", &["yes"], None);
            push("appendfsync", &["everysec"], None);
        }
    }
    push("dir", &["/data"], Some("the official image's data volume".into()));
    if redis.mode == RedisMode::Cluster {
        push("cluster-enabled", &["yes"], redis.masters.as_ref().map(|m| format!("{} x {} each", crate::rules::plural(m.value, "master"), crate::rules::plural(redis.replicas_per_master, "replica"))));
        push("cluster-config-file", &["nodes.conf"], Some("written by Redis in dir".into()));
        push("cluster-node-timeout", &[&CLUSTER_NODE_TIMEOUT_MS.to_string()], Some("Redis' default".into()));
    }
    out
}

fn sentinel(service: &ServicePlan, redis: &RedisPlan, master_host: String, host_listen: Option<&[String]>) -> Option<SentinelContext> {
    if redis.mode != RedisMode::Sentinel {
        return None;
    }
    let quorum = redis.sentinel_quorum.as_ref()?;
    Some(SentinelContext {
        port: SENTINEL_PORT,
        master_name: service.name.clone(),
        master_host,
        master_port: service.port.value,
        quorum: quorum.value,
        quorum_note: one_line(&quorum.cite()),
        sentinels: redis.sentinels.as_ref().map(|s| s.value),
        down_after_ms: SENTINEL_DOWN_AFTER_MS,
        failover_timeout_ms: SENTINEL_FAILOVER_TIMEOUT_MS,
        parallel_syncs: SENTINEL_PARALLEL_SYNCS,
        auth_secret: redis.password.as_ref().map(|p| p.value.clone()),
        bind: bind(service, host_listen).0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze_text;

    fn analyze(redis: &str) -> crate::analysis::Analysis {
        analyze_with(redis, "")
    }

    fn analyze_with(redis: &str, rest: &str) -> crate::analysis::Analysis {
        let yaml = format!("version: 1\nname: t\nservices:\n  cache: {{ kind: redis, {redis} }}\n{rest}");
        analyze_text("capacity.yaml", &yaml).expect("spec loads")
    }

    fn render_with(redis: &str, rest: &str) -> Vec<Artifact> {
        let analysis = analyze_with(redis, rest);
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        Redis.render(&ctx).expect("renders")
    }

    #[test]
    fn a_host_install_binds_loopback_and_its_machine_addresses_never_every_interface() {
        let machines = "machines:\n  db: { count: 2, addresses: [10.0.0.31, 10.0.0.32] }\n";
        let a = render_with("machine: db, mode: sentinel, sentinels: 3", machines);
        assert!(lines(&a[0].text).contains(&"bind 127.0.0.1 -::1 -10.0.0.31 -10.0.0.32"), "{}", a[0].text);
        assert!(a[0].text.contains("machines.db.addresses"), "{}", a[0].text);
        assert!(lines(&a[1].text).contains(&"bind 127.0.0.1 -::1 -10.0.0.31 -10.0.0.32"), "sentinel: {}", a[1].text);
        for text in [&a[0].text, &a[1].text] {
            assert!(!text.contains("0.0.0.0"), "{text}");
        }
        // an IPv6 machine address names the master to its sentinels
        let a = render_with("machine: db, mode: sentinel, sentinels: 3", "machines:\n  db: { count: 1, addresses: [\"fd00::1:1\"] }\n");
        assert!(lines(&a[1].text).contains(&"sentinel monitor cache fd00::1:1 6379 2"), "{}", a[1].text);
        // placed on a group without addresses, or on no machine: loopback only
        let a = render_with("machine: db", "machines:\n  db: { count: 1 }\n");
        assert!(lines(&a[0].text).contains(&"bind 127.0.0.1 -::1"), "{}", a[0].text);
        assert!(a[0].text.contains("machines.db.addresses for other hosts"), "{}", a[0].text);
        // in a container (compose, Kamal, Kubernetes): every interface of the container
        for deploy in ["deploy:\n  compose: {}\n", "deploy:\n  kubernetes: {}\n"] {
            let a = render_with("machine: db", &format!("{machines}{deploy}"));
            assert!(lines(&a[0].text).contains(&"bind 0.0.0.0"), "{deploy}: {}", a[0].text);
        }
    }

    fn render(redis: &str) -> Vec<Artifact> {
        let analysis = analyze(redis);
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        Redis.render(&ctx).expect("renders")
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(|l| l.split(" #").next().unwrap().trim_end()).collect()
    }

    #[test]
    fn standalone_without_persistence() {
        let a = render("maxmemory: 8gb, maxmemory_policy: allkeys-lru, maxclients: 20000");
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].path, "redis/cache.conf");
        assert!(a[0].text.starts_with("# Generated by headroom from capacity.yaml"));
        assert_eq!(
            lines(&a[0].text),
            [
                "bind 127.0.0.1 -::1",
                "port 6379",
                "protected-mode yes",
                "tcp-backlog 511",
                "maxclients 20000",
                "maxmemory 8gb",
                "maxmemory-policy allkeys-lru",
                "save \"\"",
                "appendonly no",
                "dir /data",
            ]
        );
    }

    #[test]
    fn password_by_reference_or_protected_mode_off_when_disabled() {
        let a = render("maxmemory: 1gb");
        assert!(a[0].text.contains("protected-mode yes"), "{}", a[0].text);
        assert!(a[0].text.contains("secret CACHE_PASSWORD (services.cache.password not set; default: <SERVICE>_PASSWORD)"), "{}", a[0].text);
        assert!(!lines(&a[0].text).iter().any(|l| l.starts_with("requirepass")), "the password is given at start, never written: {}", a[0].text);
        let analysis = analyze("password: QUEUE_SECRET");
        let service = analysis.plan.service("cache").unwrap();
        assert_eq!(auth_args(service, |n| format!("${{{n}}}")), ["--requirepass", "${QUEUE_SECRET}", "--masterauth", "${QUEUE_SECRET}"]);
        assert_eq!(password_secret(service), Some("QUEUE_SECRET"));
        let a = render("password: false");
        assert!(lines(&a[0].text).contains(&"protected-mode no"), "{}", a[0].text);
        let analysis = analyze("password: false");
        assert!(auth_args(analysis.plan.service("cache").unwrap(), |n| n.to_string()).is_empty());
    }

    #[test]
    fn persistence_modes() {
        let rdb = render("persistence: rdb, maxmemory: 512mb");
        let t = lines(&rdb[0].text);
        assert!(t.contains(&"save \"3600 1 300 100 60 10000\""), "{t:?}");
        assert!(t.contains(&"maxmemory 512mb"));
        let aof = render("persistence: aof");
        let t = lines(&aof[0].text);
        assert!(t.contains(&"appendonly yes") && t.contains(&"appendfsync everysec") && t.contains(&"save \"\""), "{t:?}");
        assert!(!t.iter().any(|l| l.starts_with("maxmemory ")), "no maxmemory when the plan has none");
    }

    #[test]
    fn sentinel_mode_renders_a_sentinel_conf() {
        let a = render("mode: sentinel, sentinels: 3, quorum: 2, maxmemory: 1gb");
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].path, "redis/cache-sentinel.conf");
        let t = lines(&a[1].text);
        assert!(t.contains(&"port 26379"));
        assert!(t.contains(&"sentinel resolve-hostnames yes"));
        assert!(t.contains(&"sentinel monitor cache cache 6379 2"), "{t:?}");
        assert!(t.contains(&"sentinel down-after-milliseconds cache 30000"));
        assert!(t.contains(&"sentinel failover-timeout cache 180000"));
        assert!(t.contains(&"sentinel parallel-syncs cache 1"));
        // quorum unset: the majority of the sentinels
        let a = render("mode: sentinel, sentinels: 5");
        assert!(lines(&a[1].text).contains(&"sentinel monitor cache cache 6379 3"));
    }

    #[test]
    fn cluster_mode() {
        let a = render("mode: cluster, masters: 3");
        assert_eq!(a.len(), 1);
        let t = lines(&a[0].text);
        assert!(t.contains(&"cluster-enabled yes") && t.contains(&"cluster-config-file nodes.conf") && t.contains(&"cluster-node-timeout 15000"), "{t:?}");
    }

    #[test]
    fn server_args_match_the_file() {
        // args are for a container, so is the file with compose
        for spec in ["maxmemory: 8gb, maxmemory_policy: allkeys-lru", "persistence: rdb", "persistence: aof, mode: cluster, masters: 3"] {
            let analysis = analyze_with(spec, "deploy:\n  compose: {}\n");
            let args = server_args(analysis.plan.service("cache").unwrap());
            assert_eq!(args[0], "redis-server");
            let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
            let text = Redis.render(&ctx).unwrap().remove(0).text;
            // rebuild each file line from the arguments
            let mut rebuilt = Vec::new();
            for arg in &args[1..] {
                match arg.strip_prefix("--") {
                    Some(key) => rebuilt.push(key.to_string()),
                    None => {
                        let last = rebuilt.last_mut().unwrap();
                        last.push(' ');
                        last.push_str(&crate::targets::escape::redis_arg(arg).unwrap());
                    }
                }
            }
            assert_eq!(rebuilt, lines(&text));
        }
        let analysis = analyze("maxmemory: 8gb");
        let args = server_args(analysis.plan.service("cache").unwrap());
        let at = args.iter().position(|a| a == "--maxmemory").unwrap();
        assert_eq!(args[at + 1], "8gb");
        let at = args.iter().position(|a| a == "--save").unwrap();
        assert_eq!(args[at + 1], "");
    }

    #[test]
    fn sizes_in_redis_units() {
        assert_eq!(size(8 << 30), "8gb");
        assert_eq!(size(768 << 20), "768mb");
        assert_eq!(size(1536), "1536");
        assert_eq!(size(3 << 10), "3kb");
    }
}
