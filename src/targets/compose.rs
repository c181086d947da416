//! Target `compose`: one docker-compose file (the Compose Specification, read by
//! docker-compose 1.29 and Compose v2) holding every service of the plan. Replicas
//! are either `deploy.replicas` or expanded into `web-1..web-N`, the names nginx
//! upstreams use; limits, health checks, `depends_on`, ulimits and namespaced sysctls
//! come from the plan, commands from the same argv the other targets build, and config
//! files are mounted read-only from where the other targets render them.

use serde::Serialize;

use super::{Artifact, Context, RenderError, Target, app_env, gunicorn, nginx, pgbouncer, postgres, puma, qdrant, redis};
use crate::plan::resolve::replica_hosts;
use crate::plan::{Detail, Kind, ServicePlan, defaults as d};
use crate::spec::{ComposeDeploy, RedisMode};

const TEMPLATE: &str = include_str!("../../templates/compose/docker-compose.yml.j2");
const TARGET: &str = "compose";

/// Images used when the spec names none.
pub const POSTGRES_IMAGE_PREFIX: &str = "postgres:";
pub const REDIS_IMAGE: &str = "redis:7-alpine";
pub const PGBOUNCER_IMAGE: &str = "edoburu/pgbouncer";
pub const NGINX_IMAGE: &str = "nginx:1.25-alpine";
/// The Qdrant release whose reference configuration the rendered settings are proven
/// against.
pub const QDRANT_IMAGE: &str = "qdrant/qdrant:v1.19.0";
/// Runs the collection script (Python 3, standard library only).
pub const QDRANT_COLLECTIONS_IMAGE: &str = "python:3.12-alpine";

use super::escape::compose_literal;
use super::redis::SENTINEL_PORT;

pub struct Compose;

impl Target for Compose {
    fn name(&self) -> &'static str {
        TARGET
    }
    fn render(&self, ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        let Some(compose) = ctx.spec.deploy.as_ref().and_then(|d| d.compose.as_ref()) else {
            return Ok(Vec::new());
        };
        let path = file_path(ctx);
        let file = build(ctx, compose, &path)?;
        let text = super::render_template(TARGET, "docker-compose.yml.j2", TEMPLATE, &file)?;
        Ok(vec![Artifact { target: TARGET, path, text, patched: false }])
    }
}

/// Where the compose file goes: `deploy.compose.file`, else `deploy.files.compose`,
/// else `docker-compose.yml`.
pub fn file_path(ctx: &Context<'_>) -> String {
    ctx.spec
        .deploy
        .as_ref()
        .and_then(|d| d.compose.as_ref())
        .and_then(|c| c.file.clone())
        .unwrap_or_else(|| ctx.path_for("compose", "docker-compose.yml"))
}

/// The compose service names a spec service becomes, in file order (`web-1..web-15`
/// when expanded, `web` when it runs as `deploy.replicas`; a sentinel-mode redis is
/// its master, replicas and sentinels; a cluster its nodes).
pub fn service_names(ctx: &Context<'_>, service: &ServicePlan) -> Vec<String> {
    let compose = ctx.spec.deploy.as_ref().and_then(|d| d.compose.clone()).unwrap_or_default();
    instances(ctx.plan, &compose, service).map(|list| list.into_iter().map(|i| i.name).collect()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------
// The document handed to the template. Every string here is still raw text: the
// template writes each one through `quoted` (a JSON string, which YAML reads as the
// same string); `$` has already been doubled where compose would interpolate it.

#[derive(Serialize)]
struct File {
    header: String,
    notes: Vec<String>,
    services: Vec<Svc>,
    network: String,
    volumes: Vec<String>,
}

#[derive(Serialize, Default)]
struct Svc {
    name: String,
    /// The first expanded replica carries a YAML anchor; the others merge it.
    anchor: Option<String>,
    alias: Option<String>,
    comments: Vec<String>,
    image: Option<String>,
    build: Option<String>,
    command_list: Vec<String>,
    command_string: Option<String>,
    environment: Vec<Kv>,
    ports: Vec<String>,
    expose: Vec<String>,
    volumes: Vec<String>,
    depends_on: Vec<Kv>,
    healthcheck: Option<Healthcheck>,
    nofile: Option<u64>,
    sysctls: Vec<Kv>,
    replicas: Option<u64>,
    limits: Option<Res>,
    reservations: Option<Res>,
    restart: String,
}

/// A key and its value, for templates (environment, labels, sysctls).
#[derive(Serialize, Clone, Debug, PartialEq)]
pub(super) struct Kv {
    key: String,
    value: String,
}

pub(super) fn kv(key: impl Into<String>, value: impl Into<String>) -> Kv {
    Kv { key: key.into(), value: value.into() }
}

#[derive(Serialize, Clone)]
struct Healthcheck {
    test: Vec<String>,
    interval: String,
    timeout: String,
    retries: u32,
    start_period: Option<String>,
}

#[derive(Serialize)]
struct Res {
    cpus: Option<String>,
    memory: Option<String>,
}

/// What one compose service is to its spec service.
#[derive(Clone, Debug, PartialEq)]
enum Role {
    /// The only compose service of a spec service (maybe with `deploy.replicas`).
    Single { replicas: u64 },
    /// Replica `index` of `of`, expanded.
    Replica { index: u64, of: u64 },
    RedisMaster,
    RedisReplica { index: u64, of: u64 },
    RedisSentinel { index: u64, of: u64 },
    ClusterNode { index: u64, of: u64 },
    ClusterInit,
    /// Node `index` of a qdrant of `of` nodes (each with its own identity and volume).
    QdrantNode { index: u64, of: u64 },
    /// One-shot: runs the collection script once every node is healthy.
    QdrantCollections,
}

#[derive(Clone, Debug)]
struct Instance {
    name: String,
    role: Role,
}

fn err(message: impl Into<String>) -> RenderError {
    RenderError { target: TARGET, message: message.into() }
}

/// A compose service (and DNS) name: letters, digits, `-`, `_`, `.`.
fn check_name(name: &str, what: &str) -> Result<(), RenderError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(err(format!("{what} `{}` is not a valid compose name (letters, digits, `-`, `_`, `.`)", name.escape_debug())));
    }
    Ok(())
}

/// An environment variable name, as a shell and `${NAME}` interpolation read it.
fn check_env_name(name: &str, at: &str) -> Result<(), RenderError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(err(format!("environment variable name `{}` ({at}) must match [A-Za-z_][A-Za-z0-9_]*", name.escape_debug())));
    }
    Ok(())
}

/// A path inside a container, as a mount target: absolute, no `:` or whitespace.
pub(crate) fn check_container_path(path: &str, at: &str) -> Result<(), RenderError> {
    if !path.starts_with('/') || path.chars().any(|c| c == ':' || c.is_whitespace() || c.is_control()) {
        return Err(err(format!("{at} `{}` must be an absolute path without `:` or spaces to be mounted", path.escape_debug())));
    }
    Ok(())
}

/// One-line text for a `#` comment.
fn comment(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Docker's memory syntax in the largest exact unit: `2048M`, `512K`, `1000b`.
pub fn docker_memory(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{}M", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{}K", bytes / KIB)
    } else {
        format!("{bytes}b")
    }
}

/// CPUs as compose writes them: a decimal string (`"2.0"`, `"0.5"`).
pub fn docker_cpus(cpus: f64) -> String {
    if cpus.fract() == 0.0 { format!("{cpus:.1}") } else { format!("{cpus}") }
}

/// `target` relative to directory `from` (both `/`-separated, relative to the output
/// root), starting with `./` or `../` so compose reads it as a bind mount.
pub fn relative(from: &str, target: &str) -> String {
    let from: Vec<&str> = from.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let to: Vec<&str> = target.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let ups = from.len() - common;
    let rest = to[common..].join("/");
    if ups == 0 { format!("./{rest}") } else { format!("{}{rest}", "../".repeat(ups)) }
}

fn parent_dir(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// Spec services that an nginx upstream routes to (their servers are `name-1..name-N`).
fn upstream_targets(plan: &crate::plan::Plan) -> Vec<&str> {
    plan.services
        .iter()
        .filter_map(|s| match &s.detail {
            Detail::Nginx(n) => Some(n.upstreams.iter().map(|u| u.to.as_str())),
            _ => None,
        })
        .flatten()
        .collect()
}

fn sentinel_count(service: &ServicePlan) -> u64 {
    match &service.detail {
        // Three when not given: the smallest count that survives one failure (the
        // plan's sentinel_quorum assumes the same).
        Detail::Redis(r) => r.sentinels.as_ref().map_or(3, |s| s.value),
        _ => 0,
    }
}

/// The compose services a spec service becomes.
fn instances(plan: &crate::plan::Plan, compose: &ComposeDeploy, service: &ServicePlan) -> Result<Vec<Instance>, RenderError> {
    let name = &service.name;
    let replicas = service.replicas.value.max(1);
    if let Detail::Redis(r) = &service.detail {
        match r.mode {
            RedisMode::Sentinel => {
                let mut out = vec![Instance { name: name.clone(), role: Role::RedisMaster }];
                let of = r.replicas_per_master;
                out.extend((1..=of).map(|index| Instance { name: format!("{name}-replica-{index}"), role: Role::RedisReplica { index, of } }));
                let of = sentinel_count(service);
                out.extend((1..=of).map(|index| Instance { name: format!("{name}-sentinel-{index}"), role: Role::RedisSentinel { index, of } }));
                return Ok(out);
            }
            RedisMode::Cluster => {
                let masters = r.masters.as_ref().map_or(3, |m| m.value);
                let of = masters.saturating_mul(r.replicas_per_master.saturating_add(1));
                let mut out: Vec<Instance> =
                    (1..=of).map(|index| Instance { name: format!("{name}-node-{index}"), role: Role::ClusterNode { index, of } }).collect();
                out.push(Instance { name: format!("{name}-cluster-init"), role: Role::ClusterInit });
                return Ok(out);
            }
            RedisMode::Standalone => {}
        }
    }
    if let Detail::Qdrant(q) = &service.detail {
        let of = q.nodes;
        let mut out: Vec<Instance> = qdrant::node_hosts(service)
            .into_iter()
            .enumerate()
            .map(|(i, host)| Instance { name: host, role: Role::QdrantNode { index: i as u64 + 1, of } })
            .collect();
        if !q.collections.is_empty() {
            out.push(Instance { name: format!("{name}-collections"), role: Role::QdrantCollections });
        }
        return Ok(out);
    }
    let targeted = upstream_targets(plan).contains(&name.as_str());
    // Data services never share one named volume between replicas: always expanded.
    let data = matches!(service.kind, Kind::Postgres | Kind::Redis);
    let expand = match compose.replicas.as_deref() {
        Some("expand") => true,
        Some("replicas") => data,
        _ => targeted || data,
    };
    if replicas == 1 {
        return Ok(vec![Instance { name: name.clone(), role: Role::Single { replicas: 1 } }]);
    }
    if !expand {
        if targeted {
            return Err(err(format!(
                "an nginx upstream names the servers of `{name}` {}..{}, but deploy.compose.replicas: replicas runs one compose service `{name}` with deploy.replicas {replicas}; use deploy.compose.replicas: expand",
                format_args!("{name}-1"),
                format_args!("{name}-{replicas}"),
            )));
        }
        return Ok(vec![Instance { name: name.clone(), role: Role::Single { replicas } }]);
    }
    Ok(replica_hosts(name, replicas)
        .into_iter()
        .enumerate()
        .map(|(i, host)| Instance { name: host, role: Role::Replica { index: i as u64 + 1, of: replicas } })
        .collect())
}

fn health_timing(service: &ServicePlan, test: Vec<String>) -> Healthcheck {
    let (interval, timeout, retries, start) = match &service.health {
        Some(h) => (h.interval, h.timeout, h.retries, h.start_period),
        None => (d::HEALTH_INTERVAL, d::HEALTH_TIMEOUT, d::HEALTH_RETRIES, 0),
    };
    Healthcheck {
        test: test.iter().map(|a| compose_literal(a)).collect(),
        interval: format!("{interval}s"),
        timeout: format!("{timeout}s"),
        retries,
        start_period: (start > 0).then(|| format!("{start}s")),
    }
}

/// A shell command that succeeds only when the redis (or sentinel) on `port` answers
/// PONG, as the container's own client (REDISCLI_AUTH in its environment) sees it.
pub(crate) fn redis_ping(port: impl std::fmt::Display) -> String {
    format!("redis-cli -p {port} ping | grep -q PONG")
}

/// The health check of one compose service, when its kind has one.
fn healthcheck(service: &ServicePlan, role: &Role) -> Option<Healthcheck> {
    let port = service.port.value.to_string();
    let test: Vec<String> = match service.kind {
        Kind::Gunicorn | Kind::Puma => {
            let path = service.health.as_ref()?.path.as_ref()?;
            let path = if path.starts_with('/') { path.clone() } else { format!("/{path}") };
            vec!["CMD".into(), "curl".into(), "-fsS".into(), "-o".into(), "/dev/null".into(), format!("http://localhost:{port}{path}")]
        }
        Kind::Redis => match role {
            Role::ClusterInit => return None,
            // `redis-cli ping` exits 0 on a NOAUTH or WRONGPASS reply too: only a PONG
            // means this redis serves the clients that hold the password.
            Role::RedisSentinel { .. } => vec!["CMD-SHELL".into(), redis_ping(SENTINEL_PORT)],
            _ => vec!["CMD-SHELL".into(), redis_ping(service.port.value)],
        },
        Kind::Postgres | Kind::Pgbouncer => vec!["CMD".into(), "pg_isready".into(), "-h".into(), "127.0.0.1".into(), "-p".into(), port],
        // The image has bash but no curl: ask /readyz over bash's /dev/tcp.
        Kind::Qdrant => match role {
            Role::QdrantCollections => return None,
            _ => vec![
                "CMD".into(),
                "bash".into(),
                "-c".into(),
                format!("exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"),
            ],
        },
        _ => return None,
    };
    Some(health_timing(service, test))
}

/// Image or build context: the spec's image, else the app's `build`, else the
/// documented default image of the kind; app and job services without either build
/// from the compose file's directory.
fn image_or_build(service: &ServicePlan) -> (Option<String>, Option<String>) {
    if let Some(image) = &service.image {
        return (Some(image.clone()), None);
    }
    let build = match &service.detail {
        Detail::Gunicorn(g) => g.build.clone(),
        Detail::Puma(p) => p.build.clone(),
        Detail::Job(j) => j.build.clone(),
        _ => None,
    };
    match &service.detail {
        Detail::Postgres(p) => (Some(format!("{POSTGRES_IMAGE_PREFIX}{}", p.version.value)), None),
        Detail::Redis(_) => (Some(REDIS_IMAGE.into()), None),
        Detail::Pgbouncer(_) => (Some(PGBOUNCER_IMAGE.into()), None),
        Detail::Nginx(_) => (Some(NGINX_IMAGE.into()), None),
        Detail::Qdrant(_) => (Some(QDRANT_IMAGE.into()), None),
        _ => (None, Some(build.unwrap_or_else(|| ".".into()))),
    }
}

/// What docker-compose would refuse or change, found on the spec: job commands must
/// be one line (compose splits a `command:` string like a shell, so a newline would
/// silently become an argument separator).
pub fn spec_problems(spec: &crate::spec::Spec, out: &mut Vec<super::SpecProblem>) {
    if spec.deploy.as_ref().is_some_and(|d| d.compose.is_some()) {
        super::one_line_commands(spec, "compose splits `command:` like a shell, so a newline would silently become an argument separator", out);
    }
}

/// A build context as compose reads it: relative to the compose file's directory
/// (`dir`, relative to the output root), while the spec writes it relative to the
/// spec. Absolute paths and remote contexts (git URLs) are kept as written.
fn build_context(dir: &str, context: &str) -> String {
    let remote = context.contains("://") || context.starts_with("git@") || context.starts_with("github.com/");
    if remote || context.starts_with('/') {
        return context.to_string();
    }
    let rebased = relative(dir, context);
    // `relative` writes the spec's own directory as `./`; compose reads `.` the same.
    rebased.strip_suffix('/').filter(|r| !r.is_empty()).map(str::to_string).unwrap_or(rebased)
}

/// Namespaced sysctls a container may set: `net.*` and the IPC keys. Everything else
/// (`vm.*`, `fs.*`, `kernel.*` outside IPC) is host-wide and belongs in the sysctl target.
pub fn is_namespaced(key: &str) -> bool {
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    key.starts_with("net.") || IPC.contains(&key)
}

fn sysctl_key_ok(key: &str) -> bool {
    super::sysctl::valid_key(key)
}

fn sysctl_value_ok(value: &str) -> bool {
    !value.trim().is_empty() && value.split_whitespace().all(|f| f.chars().all(|c| c.is_ascii_digit() || c == '-'))
}

fn build(ctx: &Context<'_>, compose: &ComposeDeploy, path: &str) -> Result<File, RenderError> {
    let plan = ctx.plan;
    let dir = parent_dir(path);
    let network = compose.network.clone().unwrap_or_else(|| plan.name.clone());
    check_name(&network, "deploy.compose.network")?;

    // Every spec service's compose instances, and which of them carry a health check
    // (decides `condition: service_healthy` for the services that depend on them).
    let mut layout: Vec<(&ServicePlan, Vec<Instance>)> = Vec::new();
    for service in &plan.services {
        check_name(&service.name, &service.path)?;
        layout.push((service, instances(plan, compose, service)?));
    }
    let healthy = |name: &str| -> Option<bool> {
        layout.iter().find_map(|(s, list)| list.iter().find(|i| i.name == name).map(|i| healthcheck(s, &i.role).is_some()))
    };
    // The compose services a client of `target` waits for.
    let entry_points = |target: &str| -> Vec<String> {
        layout
            .iter()
            .filter(|(s, _)| s.name == target)
            .flat_map(|(_, list)| {
                list.iter()
                    .filter(|i| !matches!(i.role, Role::RedisReplica { .. } | Role::RedisSentinel { .. } | Role::ClusterInit | Role::QdrantCollections))
                    .map(|i| i.name.clone())
            })
            .collect()
    };

    let mut notes = Vec::new();
    let mut services = Vec::new();
    let mut volumes = Vec::new();
    for (service, list) in &layout {
        // Dependencies: the targets of its pools, an nginx's upstream servers, a
        // pooler's postgres.
        let mut deps: Vec<String> = Vec::new();
        for edge in plan.edges_from(&service.name) {
            deps.extend(entry_points(&edge.to));
        }
        if let Detail::Nginx(n) = &service.detail {
            for upstream in &n.upstreams {
                deps.extend(entry_points(&upstream.to));
            }
        }
        let mut depends_on: Vec<Kv> = Vec::new();
        for dep in deps {
            if depends_on.iter().any(|k| k.key == dep) {
                continue;
            }
            let condition = if healthy(&dep) == Some(true) { "service_healthy" } else { "service_started" };
            depends_on.push(kv(dep, condition));
        }

        if let Detail::Postgres(p) = &service.detail
            && p.read_replicas > 0
        {
            notes.push(comment(&format!(
                "{}: {} read replica(s) ({}.read_replicas) are not rendered here; streaming replication needs a base backup taken outside compose.",
                service.name, p.read_replicas, service.path
            )));
        }

        // Expanded replicas are identical but for their name: the first one is written
        // out with an anchor, the others merge it (`<<: *web`).
        let anchor: String = service.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let mut anchored = false;
        for instance in list {
            let mut svc = compose_service(ctx, dir, service, instance, list, &depends_on, &mut volumes)?;
            if let Role::Replica { .. } = instance.role {
                if anchored {
                    svc = Svc { name: svc.name, alias: Some(anchor.clone()), comments: svc.comments, ..Svc::default() };
                } else {
                    svc.anchor = Some(anchor.clone());
                    anchored = true;
                }
            }
            services.push(svc);
        }
    }
    volumes.sort();
    volumes.dedup();
    Ok(File { header: format!("{}\n", comment(ctx.header("#").trim_end_matches('\n'))), notes, services, network, volumes })
}

fn compose_service(
    ctx: &Context<'_>,
    dir: &str,
    service: &ServicePlan,
    instance: &Instance,
    siblings: &[Instance],
    depends_on: &[Kv],
    volumes: &mut Vec<String>,
) -> Result<Svc, RenderError> {
    let (image, build) = image_or_build(service);
    let mut svc = Svc {
        name: instance.name.clone(),
        image: image.map(|i| compose_literal(&i)),
        build: build.map(|b| compose_literal(&build_context(dir, &b))),
        restart: "unless-stopped".into(),
        depends_on: depends_on.to_vec(),
        ..Svc::default()
    };
    let port = service.port.value;
    svc.comments.push(comment(&match &instance.role {
        Role::Single { replicas } if *replicas > 1 => format!("{} ({}), {replicas} replicas", service.path, service.kind.as_str()),
        Role::Single { .. } => format!("{} ({})", service.path, service.kind.as_str()),
        Role::Replica { index, of } => format!("{} ({}), replica {index} of {of}", service.path, service.kind.as_str()),
        Role::RedisMaster => format!("{} (redis sentinel mode): master", service.path),
        Role::RedisReplica { index, of } => format!("{} (redis sentinel mode): replica {index} of {of}", service.path),
        Role::RedisSentinel { index, of } => format!("{} (redis sentinel mode): sentinel {index} of {of}", service.path),
        Role::ClusterNode { index, of } => format!("{} (redis cluster mode): node {index} of {of}", service.path),
        Role::ClusterInit => format!("{} (redis cluster mode): creates the cluster once every node is up", service.path),
        Role::QdrantNode { of, .. } if *of == 1 => format!("{} (qdrant)", service.path),
        Role::QdrantNode { index, of } => format!("{} (qdrant cluster): node {index} of {of}", service.path),
        Role::QdrantCollections => format!("{} (qdrant): creates the collections once every node is healthy, then exits", service.path),
    }));
    if let Role::Single { replicas } = instance.role
        && replicas > 1
    {
        svc.replicas = Some(replicas);
    }

    // Command and config files.
    let config_mount = |rendered: &str, target: &str| format!("{}:{}:ro", compose_literal(&relative(dir, rendered)), compose_literal(target));
    match &service.detail {
        Detail::Gunicorn(_) => svc.command_list = gunicorn::command(service).iter().map(|a| compose_literal(a)).collect(),
        Detail::Puma(_) => svc.command_list = puma::command(ctx, service).iter().map(|a| compose_literal(a)).collect(),
        Detail::Job(j) => svc.command_string = j.command.as_ref().map(|c| compose_literal(c)),
        Detail::Nginx(_) => svc.volumes.push(config_mount(&nginx::path(ctx, service), "/etc/nginx/nginx.conf")),
        Detail::Pgbouncer(p) => {
            let ini = pgbouncer::path(ctx, service);
            svc.volumes.push(config_mount(&ini, "/etc/pgbouncer/pgbouncer.ini"));
            let example = pgbouncer::userlist_path(&ini);
            let userlist = example.strip_suffix(".example").unwrap_or(&example).to_string();
            check_container_path(&p.auth_file, &format!("{}.auth_file", service.path))?;
            svc.volumes.push(config_mount(&userlist, &p.auth_file));
            svc.comments.push(comment(&format!(
                "{userlist} holds password hashes and is not rendered: create it from {example} and keep it out of version control"
            )));
        }
        Detail::Postgres(_) => {
            svc.command_list = postgres::server_args(service).iter().map(|a| compose_literal(a)).collect();
            let volume = format!("{}-data", instance.name);
            svc.volumes.push(format!("{volume}:/var/lib/postgresql/data"));
            volumes.push(volume);
        }
        // Qdrant nodes are configured through their environment (below).
        Detail::Qdrant(_) => match &instance.role {
            Role::QdrantCollections => {
                svc.image = Some(compose_literal(QDRANT_COLLECTIONS_IMAGE));
                svc.volumes.push(config_mount(&qdrant::script_path(ctx, service), "/qdrant-collections.py"));
                svc.command_list = vec!["python3".into(), "/qdrant-collections.py".into()];
                svc.restart = "no".into();
                svc.depends_on = siblings
                    .iter()
                    .filter(|i| matches!(i.role, Role::QdrantNode { .. }))
                    .map(|i| kv(i.name.clone(), "service_healthy"))
                    .collect();
            }
            role => {
                let volume = format!("{}-storage", instance.name);
                svc.volumes.push(format!("{volume}:{}", qdrant::STORAGE_PATH));
                volumes.push(volume);
                // Nodes 2..N join through node 1, which must be up first.
                if let (Role::QdrantNode { index, .. }, Some(first)) = (role, siblings.first())
                    && *index > 1
                {
                    svc.depends_on.push(kv(first.name.clone(), "service_healthy"));
                }
            }
        },
        Detail::Redis(r) => match &instance.role {
            Role::RedisSentinel { .. } => {
                svc.volumes.push(config_mount(&redis::sentinel_path(ctx, service), SENTINEL_CONF));
                svc.command_list = sentinel_command(service);
                svc.depends_on = vec![kv(service.name.clone(), "service_healthy")];
            }
            Role::ClusterInit => {
                let nodes: Vec<String> = siblings.iter().filter(|i| matches!(i.role, Role::ClusterNode { .. })).map(|i| i.name.clone()).collect();
                let script = redis::cluster_create_script(&nodes, port, r.replicas_per_master);
                svc.command_list = ["sh".to_string(), "-c".to_string(), script].iter().map(|a| compose_literal(a)).collect();
                svc.restart = "on-failure".into();
                svc.depends_on = siblings
                    .iter()
                    .filter(|i| matches!(i.role, Role::ClusterNode { .. }))
                    .map(|i| kv(i.name.clone(), "service_healthy"))
                    .collect();
            }
            role => {
                let mut argv = redis::server_args(service);
                // (A cluster node's server_args already hold cluster-enabled and its file.)
                if let Role::RedisReplica { .. } = role {
                    argv.extend(["--replicaof".into(), service.name.clone(), port.to_string()]);
                }
                svc.command_list = argv.iter().map(|a| compose_literal(a)).collect();
                // The password by reference: compose fills `${NAME}` from its environment.
                svc.command_list.extend(redis::auth_args(service, |name| format!("${{{name}}}")));
                let volume = format!("{}-data", instance.name);
                svc.volumes.push(format!("{volume}:/data"));
                volumes.push(volume);
                if let Role::RedisReplica { .. } = role {
                    svc.depends_on = vec![kv(service.name.clone(), "service_healthy")];
                }
            }
        },
    }

    // Environment: what the app needs for its pools and concurrency, then the spec's
    // plain values, then secrets as `${NAME}` references (never values).
    let mut env: Vec<Kv> = Vec::new();
    fn put(key: &str, value: String, at: &str, env: &mut Vec<Kv>) -> Result<(), RenderError> {
        check_env_name(key, at)?;
        if !env.iter().any(|k| k.key == key) {
            env.push(kv(key, value));
        }
        Ok(())
    }
    let env_path = format!("{}.env", service.path);
    if service.kind.is_app() || service.kind.is_job() {
        for (key, value) in app_env::env(ctx, service) {
            put(&key, compose_literal(&value), &env_path, &mut env)?;
        }
    }
    match &instance.role {
        Role::QdrantNode { index, .. } => {
            let p2p = match &service.detail {
                Detail::Qdrant(q) => q.p2p_port.value,
                _ => 0,
            };
            let uris: Vec<String> =
                siblings.iter().filter(|i| matches!(i.role, Role::QdrantNode { .. })).map(|i| qdrant::peer_uri(&i.name, p2p)).collect();
            for (key, value) in qdrant::env(service).into_iter().chain(qdrant::node_identity(&uris, *index as usize)) {
                put(&key, compose_literal(&value), &env_path, &mut env)?;
            }
        }
        Role::QdrantCollections => {
            let first = siblings.first().map_or(service.name.as_str(), |i| i.name.as_str());
            put("QDRANT_URL", compose_literal(&format!("http://{first}:{port}")), &env_path, &mut env)?;
        }
        _ => {}
    }
    let is_sentinel_role = matches!(instance.role, Role::RedisSentinel { .. } | Role::ClusterInit | Role::QdrantCollections);
    if !is_sentinel_role {
        for (key, value) in &service.env_clear {
            put(key, compose_literal(value), &format!("{env_path}.clear"), &mut env)?;
        }
        if let Detail::Postgres(p) = &service.detail {
            if let Some(db) = p.databases.first() {
                put("POSTGRES_DB", compose_literal(db), &env_path, &mut env)?;
            }
            if let Some(user) = postgres_user(ctx, service) {
                put("POSTGRES_USER", compose_literal(&user), &env_path, &mut env)?;
            }
        }
        let mut secrets = service.env_secret.clone();
        if service.kind == Kind::Postgres && !secrets.iter().any(|s| s == "POSTGRES_PASSWORD") {
            // The postgres image refuses to initialise without a password.
            secrets.push("POSTGRES_PASSWORD".into());
        }
        for name in &secrets {
            put(name, format!("${{{name}}}"), &format!("{env_path}.secret"), &mut env)?;
        }
    }
    if let Some(secret) = redis::password_secret(service) {
        match instance.role {
            // redis-cli (health checks, cluster creation) reads the password from REDISCLI_AUTH.
            Role::RedisSentinel { .. } => put(secret, format!("${{{secret}}}"), &env_path, &mut env)?,
            _ => put("REDISCLI_AUTH", format!("${{{secret}}}"), &env_path, &mut env)?,
        }
    }
    svc.environment = env;

    // Ports: the edge publishes; everything else is reachable on the network only,
    // unless the spec publishes it (`publish`: on the host address it names).
    match (&service.kind, &instance.role) {
        (_, Role::Single { .. } | Role::RedisMaster) if !service.publish.is_empty() => {
            for published in &service.publish {
                svc.ports.push(match published.address {
                    Some(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{}:{port}", published.host_port),
                    Some(ip) => format!("{ip}:{}:{port}", published.host_port),
                    None => format!("{}:{port}", published.host_port),
                });
            }
        }
        (Kind::Nginx, _) => svc.ports.push(format!("{port}:{port}")),
        (_, Role::RedisSentinel { .. }) => svc.expose.push(SENTINEL_PORT.to_string()),
        (_, Role::ClusterInit | Role::QdrantCollections) => {}
        (_, Role::QdrantNode { of, .. }) => {
            if let Detail::Qdrant(q) = &service.detail {
                svc.expose.push(port.to_string());
                svc.expose.push(q.grpc_port.value.to_string());
                if *of > 1 {
                    svc.expose.push(q.p2p_port.value.to_string());
                }
            }
        }
        (kind, _) if port > 0 && !kind.is_job() => svc.expose.push(port.to_string()),
        _ => {}
    }

    svc.healthcheck = healthcheck(service, &instance.role);

    // Open files: what the plan sets; nginx at least the worker_rlimit_nofile its
    // config asks for (a worker cannot raise its limit above the hard limit).
    let mut nofile = service.nofile.as_ref().map(|n| n.value);
    if let Detail::Nginx(n) = &service.detail {
        nofile = Some(nofile.unwrap_or(0).max(n.rlimit_nofile.value));
    }
    svc.nofile = nofile;

    // Container sysctls: only the ones a network/IPC namespace has.
    for (key, value) in &service.sysctls {
        if !sysctl_key_ok(key) || !sysctl_value_ok(value) {
            return Err(err(format!("{}.sysctls: `{}` = `{}` is not a sysctl key and numeric value", service.path, key.escape_debug(), value.escape_debug())));
        }
        if is_namespaced(key) {
            svc.sysctls.push(kv(key.clone(), value.clone()));
        } else {
            svc.comments.push(comment(&format!("{key} is not namespaced: a container cannot set it; it belongs on the host (sysctl target)")));
        }
    }

    // Limits and reservations per replica, as written in the spec.
    let cpus = service.cpus.as_ref().filter(|c| c.is_written()).map(|c| docker_cpus(c.value));
    let memory = service.memory.as_ref().map(|m| docker_memory(m.value));
    if !matches!(instance.role, Role::RedisSentinel { .. } | Role::ClusterInit | Role::QdrantCollections) {
        if cpus.is_some() || memory.is_some() {
            svc.limits = Some(Res { cpus, memory });
        }
        let reserve_cpus = service.reserve_cpus.map(docker_cpus);
        let reserve_memory = service.reserve_memory.map(docker_memory);
        if reserve_cpus.is_some() || reserve_memory.is_some() {
            svc.reservations = Some(Res { cpus: reserve_cpus, memory: reserve_memory });
        }
    }
    Ok(svc)
}

/// The database user a postgres container creates: the user its pooler (or its first
/// direct client) connects as.
pub fn postgres_user(ctx: &Context<'_>, service: &ServicePlan) -> Option<String> {
    let plan = ctx.plan;
    for pooler in &plan.services {
        if let Detail::Pgbouncer(p) = &pooler.detail
            && p.target.as_deref() == Some(service.name.as_str())
            && let Some(user) = p.users.first()
        {
            return Some(user.clone());
        }
    }
    plan.edges_to(&service.name).map(|e| e.user.clone()).find(|u| !u.is_empty())
}

/// Where a sentinel's rendered config is mounted; sentinel rewrites its config, so
/// the command copies it to a writable place first.
const SENTINEL_CONF: &str = "/usr/local/etc/redis/sentinel.conf";

fn sentinel_command(service: &ServicePlan) -> Vec<String> {
    // The master's password as `--sentinel auth-pass` from the container's
    // environment (`$$` is compose's literal `$`): sentinel.conf never holds it.
    let auth = redis::password_secret(service).map_or(String::new(), |secret| format!(" --sentinel auth-pass {} \"$${secret}\"", service.name));
    vec!["sh".into(), "-c".into(), format!("cp {SENTINEL_CONF} /tmp/sentinel.conf && exec redis-server /tmp/sentinel.conf --sentinel{auth}")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze_text;

    fn render(yaml: &str) -> Result<String, RenderError> {
        let analysis = analyze_text("capacity.yaml", yaml).expect("spec loads");
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        let artifacts = Compose.render(&ctx)?;
        assert_eq!(artifacts.len(), 1);
        Ok(artifacts[0].text.clone())
    }

    const BASE: &str = r#"
version: 1
name: shop
services:
  web:
    kind: gunicorn
    workers: 2
    replicas: 3
    port: 8000
    resources: { cpus: 2, memory: 2GiB, reserve_cpus: 0.5, reserve_memory: 512MiB }
    health: { path: /health/, interval: 15s, timeout: 5s, retries: 4, start_period: 20s }
    env:
      clear: { PRICE: "5$" }
      secret: [DJANGO_SECRET_KEY]
    uses: { db: { pool: 2 }, cache: { pool: 4 } }
  lb:
    kind: nginx
    worker_connections: 2048
    upstreams: { backend: { to: web } }
    locations: [{ path: /, upstream: backend }]
    sysctls: { net.core.somaxconn: 8192, vm.overcommit_memory: 1 }
  jobs:
    kind: celery
    replicas: 2
    command: celery -A shop worker
    uses: { db: { pool: 1 } }
  db:
    kind: postgres
    version: 15
    databases: [shop]
  cache:
    kind: redis
    persistence: rdb
deploy:
  compose: {}
"#;

    #[test]
    fn nothing_without_deploy_compose() {
        let analysis = analyze_text("capacity.yaml", &BASE.replace("  compose: {}\n", "  sysctl: {}\n")).unwrap();
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        assert!(Compose.render(&ctx).unwrap().is_empty());
    }

    #[test]
    fn expands_upstream_targets_and_uses_replicas_for_the_rest() {
        let text = render(BASE).unwrap();
        assert!(text.starts_with("# Generated by headroom from capacity.yaml"));
        for name in ["\"web-1\": &web", "\"web-2\":", "\"web-3\":", "\"jobs\":", "\"db\":", "\"cache\":", "\"lb\":"] {
            assert!(text.contains(&format!("\n  {name}\n")), "missing {name} in\n{text}");
        }
        assert!(text.contains("  \"web-3\":\n    # services.web (gunicorn), replica 3 of 3\n    <<: *web\n"));
        assert!(!text.contains("\n  \"web\":"));
        assert!(text.contains("replicas: 2"), "celery runs as deploy.replicas");
        // nginx waits for every healthy replica.
        assert!(text.contains("\"web-3\":\n        condition: \"service_healthy\""));
        // postgres has pg_isready, so its clients wait for it healthy.
        assert!(text.contains("\"db\":\n        condition: \"service_healthy\""));
    }

    #[test]
    fn replicas_mode_refuses_upstream_targets() {
        let e = render(&BASE.replace("compose: {}", "compose: { replicas: replicas }")).unwrap_err();
        assert!(e.message.contains("web-1..web-3"), "{}", e.message);
    }

    #[test]
    fn resources_health_env_and_secrets() {
        let text = render(BASE).unwrap();
        assert!(text.contains("cpus: \"2.0\"\n          memory: \"2048M\""), "{text}");
        assert!(text.contains("cpus: \"0.5\"\n          memory: \"512M\""));
        assert!(text.contains("\"http://localhost:8000/health/\""));
        assert!(text.contains("interval: \"15s\"\n      timeout: \"5s\"\n      retries: 4\n      start_period: \"20s\""));
        assert!(text.contains("\"PRICE\": \"5$$\""), "a literal $ is escaped for interpolation");
        assert!(text.contains("\"DJANGO_SECRET_KEY\": \"${DJANGO_SECRET_KEY}\""));
        assert!(text.contains("\"POSTGRES_PASSWORD\": \"${POSTGRES_PASSWORD}\""));
        assert!(text.contains("\"POSTGRES_DB\": \"shop\""));
        assert!(text.contains("image: \"postgres:15\""));
        assert!(text.contains("image: \"redis:7-alpine\""));
        assert!(text.contains("command: \"celery -A shop worker\""));
    }

    #[test]
    fn nginx_gets_config_nofile_and_only_namespaced_sysctls() {
        let text = render(BASE).unwrap();
        assert!(text.contains("\"./nginx/nginx.conf:/etc/nginx/nginx.conf:ro\""), "{text}");
        // worker_rlimit_nofile defaults to 2 x worker_connections in the plan.
        assert!(text.contains("nofile:\n        soft: 4096\n        hard: 4096"));
        assert!(text.contains("\"net.core.somaxconn\": \"8192\""));
        assert!(!text.contains("\"vm.overcommit_memory\":"));
        assert!(text.contains("# vm.overcommit_memory is not namespaced"));
        assert!(text.contains("\"ports\"") || text.contains("ports:\n      - \"80:80\""));
    }

    #[test]
    fn only_the_edge_publishes_a_port_on_the_host() {
        // A database, pooler or cache port published on the host would listen on every
        // interface of the host (`ports: ["6379:6379"]` is 0.0.0.0): they stay on the
        // compose network (`expose`).
        let text = render(BASE).unwrap();
        let doc: serde_json::Value = serde_saphyr::from_str(&text).expect("compose parses");
        let services = doc["services"].as_object().expect("services");
        let published: Vec<&String> = services.iter().filter(|(_, s)| s.get("ports").is_some()).map(|(name, _)| name).collect();
        assert!(!published.is_empty() && published.iter().all(|name| name.starts_with("lb")), "published: {published:?}\n{text}");
        for data in ["db", "cache"] {
            assert!(services.contains_key(data), "{data} in {text}");
            assert!(services[data].get("ports").is_none(), "{data} published: {text}");
        }
        // published where the spec says, on that host address
        let text = render(&BASE.replace("    persistence: rdb\n", "    persistence: rdb\n    publish: [\"10.0.0.31:6380\", \"[fd00::31]:6379\"]\n")).unwrap();
        let doc: serde_json::Value = serde_saphyr::from_str(&text).expect("compose parses");
        assert_eq!(doc["services"]["cache"]["ports"], serde_json::json!(["10.0.0.31:6380:6379", "[fd00::31]:6379:6379"]), "{text}");
    }

    #[test]
    fn volumes_network_and_mount_paths_relative_to_the_file() {
        let text = render(&BASE.replace("compose: {}", "compose: { file: deploy/compose.yml, network: shopnet }")).unwrap();
        assert!(text.contains("\"../nginx/nginx.conf:/etc/nginx/nginx.conf:ro\""));
        assert!(text.contains("networks:\n  \"shopnet\":\n    driver: \"bridge\""));
        assert!(text.contains("volumes:\n  \"cache-data\": {}\n  \"db-data\": {}\n"));
    }

    #[test]
    fn sentinel_mode_has_master_replicas_and_sentinels() {
        let spec = BASE.replace("    persistence: rdb\n", "    persistence: rdb\n    mode: sentinel\n    sentinels: 3\n    quorum: 2\n    replicas_per_master: 2\n");
        let text = render(&spec).unwrap();
        for name in ["cache", "cache-replica-1", "cache-replica-2", "cache-sentinel-1", "cache-sentinel-2", "cache-sentinel-3"] {
            assert!(text.contains(&format!("\n  \"{name}\":\n")), "missing {name}");
        }
        assert!(text.contains("\"--replicaof\",") || text.contains("- \"--replicaof\"\n      - \"cache\"\n      - \"6379\""));
        assert!(text.contains("\"./redis/cache-sentinel.conf:/usr/local/etc/redis/sentinel.conf:ro\""), "{text}");
        assert!(text.contains("exec redis-server /tmp/sentinel.conf --sentinel"));
    }

    #[test]
    fn cluster_mode_has_nodes_and_a_one_shot_create() {
        let spec = BASE.replace("    persistence: rdb\n", "    persistence: rdb\n    mode: cluster\n    masters: 3\n    replicas_per_master: 1\n");
        let text = render(&spec).unwrap();
        for i in 1..=6 {
            assert!(text.contains(&format!("\n  \"cache-node-{i}\":\n")), "missing node {i}");
        }
        assert!(text.contains("\n  \"cache-cluster-init\":\n"));
        // Names are resolved when the one-shot runs (redis-cli takes addresses only);
        // the shell's `$` is doubled for compose.
        assert!(text.contains("for host in cache-node-1 cache-node-2 cache-node-3 cache-node-4 cache-node-5 cache-node-6; do"), "{text}");
        assert!(text.contains("ip=$$(getent hosts \\\"$$host\\\""), "{text}");
        assert!(text.contains("exec redis-cli --cluster create $$nodes --cluster-replicas 1 --cluster-yes"), "{text}");
        assert!(text.contains("restart: \"on-failure\""));
        // Clients wait for the nodes, not for the one-shot.
        assert!(text.contains("\"cache-node-1\":\n        condition: \"service_healthy\""));
    }

    #[test]
    fn deterministic() {
        assert_eq!(render(BASE).unwrap(), render(BASE).unwrap());
    }

    #[test]
    fn helpers() {
        assert_eq!(docker_memory(2048 * 1024 * 1024), "2048M");
        assert_eq!(docker_memory(1536 * 1024), "1536K");
        assert_eq!(docker_memory(1000), "1000b");
        assert_eq!(docker_cpus(2.0), "2.0");
        assert_eq!(docker_cpus(0.25), "0.25");
        assert_eq!(relative("", "nginx/nginx.conf"), "./nginx/nginx.conf");
        assert_eq!(relative("deploy", "nginx/nginx.conf"), "../nginx/nginx.conf");
        assert_eq!(relative("deploy", "deploy/nginx.conf"), "./nginx.conf");
        assert_eq!(build_context("", "./backend"), "./backend");
        assert_eq!(build_context("deploy/compose", "./backend"), "../../backend");
        assert_eq!(build_context("deploy", "."), "..");
        assert_eq!(build_context("", "."), ".");
        assert_eq!(build_context("deploy", "https://github.com/acme/app.git#main"), "https://github.com/acme/app.git#main");
        assert_eq!(build_context("deploy", "/srv/app"), "/srv/app");
        assert!(is_namespaced("net.core.somaxconn") && is_namespaced("kernel.shmmax"));
        assert!(!is_namespaced("vm.overcommit_memory") && !is_namespaced("fs.file-max"));
    }
}
