//! Target `kamal`: a Kamal 2 `config/deploy.yml`. App servers and job processors are
//! roles on their machines' addresses (with the same command line the other targets
//! build, container limits as `options`, and their own env); kamal-proxy fronts the
//! primary role with the plan's response timeout and health check; postgres,
//! pgbouncer and redis are accessories on the first host of their machine. Secrets are
//! names only. Kamal 1's `traefik:` section is never written.

use std::net::IpAddr;

use serde::Serialize;

use super::{Artifact, Context, RenderError, SpecProblem, Target, app_env, gunicorn, pgbouncer, postgres, puma, redis};
use crate::load::yaml::escape_segment;
use crate::plan::{Detail, Kind, ServicePlan};
use crate::spec::{KamalDeploy, KamalRegistry, RedisMode, Service, Spec};

const TEMPLATE: &str = include_str!("../../templates/kamal/deploy.yml.j2");
const TARGET: &str = "kamal";

pub struct Kamal;

impl Target for Kamal {
    fn name(&self) -> &'static str {
        TARGET
    }
    fn render(&self, ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        let Some(kamal) = ctx.spec.deploy.as_ref().and_then(|d| d.kamal.as_ref()) else {
            return Ok(Vec::new());
        };
        let path = path(ctx);
        let file = build(ctx, kamal, &path)?;
        let text = super::render_template(TARGET, "deploy.yml.j2", TEMPLATE, &file)?;
        Ok(vec![Artifact { target: TARGET, path, text, patched: false }])
    }
}

/// Where deploy.yml goes: `deploy.files.kamal`, default `config/deploy.yml`.
pub fn path(ctx: &Context<'_>) -> String {
    ctx.path_for("kamal", "config/deploy.yml")
}

#[derive(Serialize)]
struct File {
    header: String,
    notes: Vec<String>,
    service: String,
    image: String,
    primary_role: Option<String>,
    registry: Option<Registry>,
    arch: String,
    env: Env,
    roles: Vec<Role>,
    proxy: Option<Proxy>,
    accessories: Vec<Accessory>,
}

#[derive(Serialize)]
struct Registry {
    server: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Serialize)]
struct Role {
    name: String,
    comments: Vec<String>,
    hosts: Vec<String>,
    cmd: Option<String>,
    proxy_off: bool,
    options: Vec<Opt>,
    env: Env,
}

#[derive(Serialize, Default)]
struct Env {
    clear: Vec<Kv>,
    secret: Vec<String>,
}

#[derive(Serialize)]
struct Kv {
    key: String,
    value: String,
}

/// A docker-run option: its name and its value already written as a YAML scalar.
#[derive(Serialize)]
struct Opt {
    key: String,
    yaml: String,
}

#[derive(Serialize)]
struct Proxy {
    comments: Vec<String>,
    host: Option<String>,
    ssl: bool,
    /// Secret names of a custom certificate and its key (`ssl:` becomes a hash).
    certificate: Option<(String, String)>,
    app_port: u64,
    response_timeout: u64,
    healthcheck: Option<ProxyHealth>,
}

#[derive(Serialize)]
struct ProxyHealth {
    path: Option<String>,
    interval: u64,
    timeout: u64,
}

#[derive(Serialize)]
struct Accessory {
    name: String,
    comments: Vec<String>,
    image: String,
    host: String,
    port: String,
    cmd: Option<String>,
    env: Env,
    files: Vec<String>,
    directories: Vec<String>,
    options: Vec<Opt>,
}

fn err(message: impl Into<String>) -> RenderError {
    RenderError { target: TARGET, message: message.into() }
}

/// Kamal runs deploy.yml through ERB before reading it: a literal `<%` is `<%%`.
fn erb(text: &str) -> String {
    text.replace("<%", "<%%")
}

fn comment(text: &str) -> String {
    erb(&text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>())
}

/// Secret and env names: `[A-Za-z_][A-Za-z0-9_]*`.
fn check_env_name(name: &str, at: &str) -> Result<(), RenderError> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok { Ok(()) } else { Err(err(format!("`{}` ({at}) is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)", name.escape_debug()))) }
}

/// Docker's memory syntax for `--memory`: `4g`, `512m`, `1536k`, `1000b`.
pub fn docker_memory(bytes: u64) -> String {
    const K: u64 = 1024;
    for (unit, size) in [("g", K * K * K), ("m", K * K), ("k", K)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}b")
}

/// A YAML number for a CPU count (`2`, `0.5`).
fn cpus_yaml(cpus: f64) -> String {
    if cpus.fract() == 0.0 { format!("{}", cpus as u64) } else { format!("{cpus}") }
}

fn yaml_str(text: &str) -> String {
    super::escape::yaml_quoted(&erb(text)).expect("quoting a string cannot fail")
}

/// A command line for `cmd:`: each argument as one shell word (Kamal passes the string
/// to `docker run` through the remote shell).
fn shell_line(argv: &[String]) -> String {
    argv.iter().map(|a| super::escape::shell_word(a).expect("shell quoting cannot fail")).collect::<Vec<_>>().join(" ")
}

/// The hosts of a service's machine group.
fn hosts_of(ctx: &Context<'_>, service: &ServicePlan) -> Result<Vec<String>, RenderError> {
    let Some(machine) = service.machine.as_deref().and_then(|m| ctx.plan.machine(m)) else {
        return Err(err(format!(
            "{} has no machine: Kamal deploys to hosts, so place it with `machine:` on a group that lists its addresses",
            service.path
        )));
    };
    if machine.addresses.is_empty() {
        return Err(err(format!("{}.addresses is empty: Kamal needs the hosts of `{}`", machine.path, service.name)));
    }
    for address in &machine.addresses {
        if address.is_empty() || address.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '\'' | '"' | '`' | '$')) {
            return Err(err(format!("{}.addresses: `{}` is not a host name or address", machine.path, address.escape_debug())));
        }
    }
    Ok(machine.addresses.clone())
}

/// Container options shared by roles and accessories: limits, open files and
/// namespaced sysctls, as `docker run` flags.
fn options(service: &ServicePlan) -> Vec<Opt> {
    let mut out = Vec::new();
    if let Some(memory) = &service.memory {
        out.push(Opt { key: "memory".into(), yaml: yaml_str(&docker_memory(memory.value)) });
    }
    if let Some(cpus) = service.cpus.as_ref().filter(|c| c.is_written()) {
        out.push(Opt { key: "cpus".into(), yaml: cpus_yaml(cpus.value) });
    }
    let mut nofile = service.nofile.as_ref().map(|n| n.value);
    if let Detail::Nginx(n) = &service.detail {
        nofile = Some(nofile.unwrap_or(0).max(n.rlimit_nofile.value));
    }
    if let Some(n) = nofile {
        out.push(Opt { key: "ulimit".into(), yaml: yaml_str(&format!("nofile={n}:{n}")) });
    }
    let sysctls: Vec<String> = service
        .sysctls
        .iter()
        .filter(|(k, v)| {
            super::compose::is_namespaced(k)
                && super::sysctl::valid_key(k)
                && v.split_whitespace().all(|f| f.chars().all(|c| c.is_ascii_digit()))
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    match sysctls.len() {
        0 => {}
        1 => out.push(Opt { key: "sysctl".into(), yaml: yaml_str(&sysctls[0]) }),
        _ => out.push(Opt {
            key: "sysctl".into(),
            yaml: format!("[{}]", sysctls.iter().map(|s| yaml_str(s)).collect::<Vec<_>>().join(", ")),
        }),
    }
    out
}

/// A service's env: what the app needs for its pools and concurrency (app_env), its
/// plain values and its secret names. Entries the root env already holds (`base`, which
/// Kamal merges into every role) are left out.
fn env_for(
    ctx: &Context<'_>,
    service: &ServicePlan,
    extra_clear: Vec<(String, String)>,
    extra_secret: &[&str],
    base: Option<&Env>,
) -> Result<Env, RenderError> {
    let at = format!("{}.env", service.path);
    let mut env = Env::default();
    let mut clear: Vec<(String, String)> = Vec::new();
    if service.kind.is_app() || service.kind.is_job() {
        clear.extend(app_env::env(ctx, service));
    }
    clear.extend(service.env_clear.iter().cloned());
    clear.extend(extra_clear);
    for (key, value) in clear {
        check_env_name(&key, &at)?;
        let value = erb(&value);
        if base.is_some_and(|b| b.clear.iter().any(|k| k.key == key && k.value == value)) {
            continue;
        }
        if !env.clear.iter().any(|k| k.key == key) {
            env.clear.push(Kv { key, value });
        }
    }
    let mut secrets: Vec<String> = service.env_secret.clone();
    for s in extra_secret {
        if !secrets.iter().any(|x| x == s) {
            secrets.push((*s).to_string());
        }
    }
    for name in secrets {
        check_env_name(&name, &format!("{at}.secret"))?;
        if env.clear.iter().any(|k| k.key == name) {
            return Err(err(format!("{at}: `{name}` is both a clear value and a secret")));
        }
        if base.is_some_and(|b| b.secret.contains(&name)) {
            continue;
        }
        if !env.secret.contains(&name) {
            env.secret.push(name);
        }
    }
    Ok(env)
}

/// The root env every role shares: the primary role's plain values and secret names
/// as the spec writes them (the capacity numbers stay per role).
fn root_env(primary: &ServicePlan) -> Result<Env, RenderError> {
    let at = format!("{}.env", primary.path);
    let mut env = Env::default();
    for (key, value) in &primary.env_clear {
        check_env_name(key, &at)?;
        env.clear.push(Kv { key: key.clone(), value: erb(value) });
    }
    for name in &primary.env_secret {
        check_env_name(name, &format!("{at}.secret"))?;
        env.secret.push(name.clone());
    }
    Ok(env)
}

/// `file` relative to Kamal's working directory: the directory holding `config/`
/// when deploy.yml is at `.../config/deploy.yml`, else the output root.
fn from_app_root(kamal_path: &str, file: &str) -> String {
    let root = kamal_path.strip_suffix("config/deploy.yml").map_or("", |r| r.trim_end_matches('/'));
    let rel = super::compose::relative(root, file);
    rel.strip_prefix("./").map(str::to_string).unwrap_or(rel)
}

/// A local registry, as Kamal tells one (`localhost:PORT`): it needs no credentials.
fn is_local(registry: &KamalRegistry) -> bool {
    registry.server.as_deref().is_some_and(|s| s.starts_with("localhost:"))
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Services Kamal runs as roles (app servers and job processors).
fn is_role(service: &Service) -> bool {
    matches!(service, Service::Gunicorn(_) | Service::Puma(_) | Service::Sidekiq(_) | Service::Celery(_) | Service::SolidQueue(_) | Service::Rq(_) | Service::Worker(_))
}

/// Services Kamal runs as accessories, on the first host of their machine group.
fn is_accessory(service: &Service) -> bool {
    matches!(service, Service::Postgres(_) | Service::Pgbouncer(_) | Service::Redis(_))
}

/// Why Kamal would change an env value on its way to the container, if it would.
/// Kamal writes each clear value into `docker run --env KEY="..."` with Ruby's
/// `String#dump` and runs that line in the host's shell: ASCII control characters
/// become escapes the shell keeps literally (a newline arrives as `\n`), `#{`, `#$` and
/// `#@` gain a backslash, and `${...}` is expanded by the host's shell.
fn kamal_env_change(value: &str) -> Option<&'static str> {
    if value.chars().any(|c| c.is_ascii_control()) {
        return Some("an ASCII control character (tab, newline, DEL, ...), which Kamal writes as an escape the container receives literally (a newline arrives as `\\n`)");
    }
    if ["#{", "#$", "#@"].iter().any(|p| value.contains(p)) {
        return Some("`#{`, `#$` or `#@`, which Kamal's escaping turns into `\\#{` (the container receives the backslash)");
    }
    if let Some(at) = value.find("${")
        && value[at..].contains('}')
    {
        return Some("`${...}`, which Kamal leaves to the host's shell to expand (the container receives the host's value, not this text)");
    }
    None
}

/// What Kamal 2 refuses in a deploy.yml (or would silently change), found on the spec:
/// the service name's characters, a registry (with credentials unless it is local),
/// TLS needing a host and both halves of a custom certificate, hosts for every role
/// and accessory (a private IP for published ports), env values that survive Kamal's
/// escaping, and one-line job commands.
pub fn spec_problems(spec: &Spec, out: &mut Vec<SpecProblem>) {
    let Some(kamal) = spec.deploy.as_ref().and_then(|d| d.kamal.as_ref()) else { return };
    let mut add = |pointer: String, message: String, fix: String| out.push(SpecProblem { pointer, message, fix });

    let (service, pointer) = match &kamal.service {
        Some(s) => (s.as_str(), "/deploy/kamal/service"),
        None => (spec.name.as_str(), "/name"),
    };
    if service.is_empty() || !service.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        let suggestion: String = service.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect();
        add(
            pointer.into(),
            format!("Kamal service name `{}`: Kamal refuses it (`Service name can only include alphanumeric characters, hyphens, and underscores`)", service.escape_debug()),
            format!("set deploy.kamal.service to `{}`", if suggestion.is_empty() { "app".into() } else { suggestion }),
        );
    }

    match &kamal.registry {
        None => add(
            "/deploy/kamal".into(),
            "deploy.kamal has no registry: Kamal pushes the image to a registry and pulls it on every host, and refuses a deploy.yml without one (`registry/username: is required`)".into(),
            "add registry: { server: ghcr.io, username: KAMAL_REGISTRY_USERNAME, password: KAMAL_REGISTRY_PASSWORD } (secret names), or a local registry: { server: \"localhost:5555\" }".into(),
        ),
        Some(registry) => {
            if let Some(server) = &registry.server
                && (server.is_empty() || server.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '`' | '$' | '<' | '>' | '#' | '\\')))
            {
                add("/deploy/kamal/registry/server".into(), format!("invalid registry server `{}`", server.escape_debug()), "a registry host, optionally with a port: ghcr.io, registry.example.com:5000, localhost:5555".into());
            }
            for (field, value) in [("username", &registry.username), ("password", &registry.password)] {
                match value {
                    None if !is_local(registry) => add(
                        "/deploy/kamal/registry".into(),
                        format!("deploy.kamal.registry has no {field}: Kamal refuses a remote registry without credentials (`registry/{field}: is required`); only a local registry (`localhost:PORT`) needs none"),
                        format!("set {field}: KAMAL_REGISTRY_{} (the name of the secret that holds it)", field.to_uppercase()),
                    ),
                    Some(name) if !is_env_name(name) => add(
                        format!("/deploy/kamal/registry/{field}"),
                        format!("registry {field} `{}` is not a secret name: it names the secret that holds the {field}, never the {field} itself", name.escape_debug()),
                        "a secret name: letters, digits and `_`, not starting with a digit (KAMAL_REGISTRY_PASSWORD)".into(),
                    ),
                    _ => {}
                }
            }
        }
    }

    let has_app = spec.services.values().any(|s| matches!(s, Service::Gunicorn(_) | Service::Puma(_)));
    if let Some(proxy) = kamal.proxy.as_ref().filter(|_| has_app) {
        let certificate = proxy.certificate_pem.is_some() || proxy.private_key_pem.is_some();
        let ssl = proxy.ssl.unwrap_or(certificate);
        if ssl && proxy.host.is_none() {
            add(
                format!("/deploy/kamal/proxy/{}", if proxy.ssl.is_some() { "ssl" } else { "certificate_pem" }),
                "kamal-proxy terminates TLS but deploy.kamal.proxy has no host: Kamal refuses it (`Must set a host to enable automatic SSL`); TLS is served for a name".into(),
                "set deploy.kamal.proxy.host to the public name (app.example.com), or ssl: false".into(),
            );
        }
        if proxy.ssl == Some(false) && certificate {
            add(
                "/deploy/kamal/proxy/ssl".into(),
                "deploy.kamal.proxy gives a custom certificate but ssl: false: the certificate would never be served".into(),
                "set ssl: true, or remove certificate_pem and private_key_pem".into(),
            );
        }
        for (field, value, other) in [("certificate_pem", &proxy.certificate_pem, &proxy.private_key_pem), ("private_key_pem", &proxy.private_key_pem, &proxy.certificate_pem)] {
            match (value, other) {
                (Some(name), _) if !is_env_name(name) => add(
                    format!("/deploy/kamal/proxy/{field}"),
                    format!("{field} `{}` is not a secret name: it names the secret that holds the PEM, never the PEM itself", name.escape_debug()),
                    "a secret name: letters, digits and `_` (CERTIFICATE_PEM)".into(),
                ),
                (None, Some(_)) => add(
                    "/deploy/kamal/proxy".into(),
                    format!("deploy.kamal.proxy has a custom certificate without {field}: Kamal refuses one without the other (`Missing {field} setting`)"),
                    format!("set {field} to the name of the secret that holds it"),
                ),
                _ => {}
            }
        }
    }

    if !spec.services.values().any(is_role) {
        add(
            "/deploy/kamal".into(),
            "deploy.kamal needs an app server or job service to deploy as a role; Kamal refuses a deploy.yml without servers".into(),
            "add a gunicorn, puma or job service, or remove deploy.kamal".into(),
        );
    }
    for (name, service) in &spec.services {
        let (role, accessory) = (is_role(service), is_accessory(service));
        if (!role && !accessory) || service.external() {
            continue;
        }
        let base = format!("/services/{}", escape_segment(name));
                let Some(group) = service.common().machine.as_ref() else {
            // A data service without a machine is not part of the Kamal deployment
            // (it runs elsewhere; render notes it). A role must have hosts.
            if accessory {
                continue;
            }
            add(
                base.clone(),
                format!("service `{name}` has no machine: Kamal deploys it as a role to hosts, and the spec gives it none"),
                "place it with `machine: GROUP` on a machine group that lists its addresses".into(),
            );
            continue;
        };
        let Some(machine) = spec.machines.get(group) else { continue };
        let group_pointer = format!("/machines/{}", escape_segment(group));
        match machine.addresses.first() {
            None => add(
                group_pointer,
                format!("machine group `{group}` lists no addresses: Kamal deploys service `{name}` to hosts by address"),
                format!("list the hosts: addresses: [10.0.0.10{}]", if machine.count > 1 { ", ..." } else { "" }),
            ),
            Some(first) if accessory && first.parse::<IpAddr>().is_err() => add(
                format!("{group_pointer}/addresses/0"),
                format!("service `{name}` is a Kamal accessory on `{}`, a host name: Kamal publishes its port on the host with `docker run --publish ADDRESS:PORT:PORT`, which takes an IP address; without one the port would be open on every interface (0.0.0.0)", first.escape_debug()),
                format!("list the host's private IP address first in machines.{group}.addresses"),
            ),
            _ => {}
        }
        let common = service.common();
        if let Some(env) = &common.env {
            for (key, value) in &env.clear {
                if let Some(why) = kamal_env_change(value) {
                    add(
                        format!("{base}/env/clear/{}", escape_segment(key)),
                        format!("env value of `{key}` holds {why}"),
                        "put the value in a secret (env.secret), or write it without those characters".into(),
                    );
                }
                if env.secret.contains(key) {
                    add(format!("{base}/env/secret"), format!("`{key}` is both a clear value and a secret of service `{name}`"), "keep one of them".into());
                }
            }
        }
    }
    super::one_line_commands(spec, "Kamal runs `cmd` through the host's shell, where a newline would start a second command on the host", out);
}

fn build(ctx: &Context<'_>, kamal: &KamalDeploy, kamal_path: &str) -> Result<File, RenderError> {
    let plan = ctx.plan;
    let mut notes = Vec::new();

    // `load` has refused a missing registry and missing credentials (spec_problems).
    let registry = kamal.registry.as_ref().map(|r| Registry {
        server: r.server.as_deref().map(erb),
        username: r.username.clone().filter(|_| !is_local(r)),
        password: r.password.clone().filter(|_| !is_local(r)),
    });
    if registry.as_ref().is_some_and(|r| r.username.is_none()) {
        notes.push("local registry: Kamal runs it on each host and pushes the image through an SSH tunnel, without credentials.".into());
    }
    let arch = kamal.arch.clone().unwrap_or_else(|| "amd64".into());

    // Roles: app servers first (the first is the primary role kamal-proxy fronts),
    // then job processors, in spec order.
    let role_services: Vec<&ServicePlan> = plan.apps().chain(plan.services.iter().filter(|s| s.kind.is_job())).collect();
    if role_services.is_empty() {
        return Err(err("no app server or job service to deploy: Kamal needs at least one role"));
    }
    let primary = role_services[0];
    let root = root_env(primary)?;
    let mut roles = Vec::new();
    for service in &role_services {
        let hosts = hosts_of(ctx, service)?;
        let mut comments = vec![comment(&format!("{} ({})", service.path, service.kind.as_str()))];
        if service.replicas.value != hosts.len() as u64 {
            comments.push(comment(&format!(
                "Kamal runs one container of a role per host: {} host(s) here, the spec plans {} replica(s) ({})",
                hosts.len(),
                service.replicas.value,
                service.replicas.path()
            )));
        }
        let cmd = match &service.detail {
            Detail::Gunicorn(_) => Some(shell_line(&gunicorn::command(service))),
            Detail::Puma(_) => Some(shell_line(&puma::command(ctx, service))),
            Detail::Job(j) => j.command.clone(),
            _ => None,
        };
        if cmd.is_none() {
            comments.push(comment(&format!("no command in the spec ({}.command): the image's default CMD runs", service.path)));
        }
        roles.push(Role {
            name: service.name.clone(),
            comments,
            hosts,
            cmd: cmd.map(|c| erb(&c)),
            proxy_off: std::ptr::eq(*service, primary) && !primary.kind.is_app(),
            options: options(service),
            env: env_for(ctx, service, Vec::new(), &[], Some(&root))?,
        });
    }
    let primary_role = (primary.name != "web").then(|| primary.name.clone());
    for service in plan.apps().skip(1) {
        notes.push(comment(&format!(
            "role `{}` runs without kamal-proxy (only the primary role `{}` is proxied); route to it from the primary or give it its own proxy host.",
            service.name, primary.name
        )));
    }

    let proxy = primary.kind.is_app().then(|| {
        let written = kamal.proxy.as_ref();
        let timeout = plan.kamal_proxy_timeout.as_ref().map_or(crate::plan::defaults::KAMAL_PROXY_RESPONSE_TIMEOUT, |t| t.value);
        let mut comments = vec![comment(&format!(
            "response_timeout: {}",
            plan.kamal_proxy_timeout.as_ref().map_or_else(|| "kamal-proxy default".to_string(), |t| t.cite())
        ))];
        let healthcheck = primary.health.as_ref().map(|h| ProxyHealth { path: h.path.as_deref().map(erb), interval: h.interval, timeout: h.timeout });
        if primary.health.as_ref().and_then(|h| h.path.as_ref()).is_none() {
            comments.push(comment(&format!("no health path in {}.health: kamal-proxy checks /up", primary.path)));
        }
        let certificate = written.and_then(|p| Some((p.certificate_pem.clone()?, p.private_key_pem.clone()?)));
        if certificate.is_some() {
            comments.push("TLS with a custom certificate: every host's kamal-proxy serves the same one, read from these secrets".into());
        }
        Proxy {
            comments,
            host: written.and_then(|p| p.host.as_deref()).map(erb),
            ssl: written.and_then(|p| p.ssl).unwrap_or(certificate.is_some()),
            certificate,
            app_port: primary.port.value,
            response_timeout: timeout,
            healthcheck,
        }
    });

    let mut accessories = Vec::new();
    for service in &plan.services {
        match service.kind {
            Kind::Postgres | Kind::Pgbouncer | Kind::Redis | Kind::Qdrant if service.external => notes.push(comment(&format!(
                "{} ({}) is external: it runs outside this deployment and is not an accessory.",
                service.path,
                service.kind.as_str()
            ))),
            Kind::Postgres | Kind::Pgbouncer | Kind::Redis | Kind::Qdrant if service.machine.is_none() => notes.push(comment(&format!(
                "{} ({}) has no machine, so Kamal does not deploy it: place it on a machine group to run it as an accessory.",
                service.path,
                service.kind.as_str()
            ))),
            Kind::Postgres | Kind::Pgbouncer | Kind::Redis => accessories.push(accessory(ctx, kamal_path, service)?),
            Kind::Qdrant => accessories.extend(qdrant_nodes(ctx, kamal_path, service)?),
            Kind::Nginx => notes.push(comment(&format!(
                "{} (nginx) is not deployed by Kamal: kamal-proxy fronts the `{}` role.",
                service.path, primary.name
            ))),
            _ => {}
        }
    }

    Ok(File {
        header: format!("{}\n", comment(ctx.header("#").trim_end_matches('\n'))),
        notes,
        service: erb(kamal.service.as_deref().unwrap_or(&plan.name)),
        image: erb(&kamal.image),
        primary_role,
        registry,
        arch,
        env: root,
        roles,
        proxy,
        accessories,
    })
}

fn accessory(ctx: &Context<'_>, kamal_path: &str, service: &ServicePlan) -> Result<Accessory, RenderError> {
    let host = hosts_of(ctx, service)?.remove(0);
    let port = service.port.value;
    // Published on the host's own (private) address, so the database is reachable from
    // the other hosts but not on every interface (`load` refuses a host name here).
    let port_spec = match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => format!("{ip}:{port}:{port}"),
        Ok(IpAddr::V6(ip)) => format!("[{ip}]:{port}:{port}"),
        Err(_) => return Err(err(format!("{}: Kamal publishes its port on the host's private IP address, and `{}` is a host name", service.path, host.escape_debug()))),
    };
    let mut comments = vec![comment(&format!("{} ({})", service.path, service.kind.as_str()))];
    let mut files = Vec::new();
    let mut directories = Vec::new();
    let (image, cmd, env) = match &service.detail {
        Detail::Postgres(p) => {
            directories.push("data:/var/lib/postgresql/data".to_string());
            let mut clear = Vec::new();
            if let Some(db) = p.databases.first() {
                clear.push(("POSTGRES_DB".to_string(), db.clone()));
            }
            if let Some(user) = ctx.plan.services.iter().find_map(|s| match &s.detail {
                Detail::Pgbouncer(b) if b.target.as_deref() == Some(service.name.as_str()) => b.users.first().cloned(),
                _ => None,
            }) {
                clear.push(("POSTGRES_USER".to_string(), user));
            }
            (
                service.image.clone().unwrap_or_else(|| format!("{}{}", super::compose::POSTGRES_IMAGE_PREFIX, p.version.value)),
                Some(shell_line(&postgres::server_args(service))),
                env_for(ctx, service, clear, &["POSTGRES_PASSWORD"], None)?,
            )
        }
        Detail::Pgbouncer(p) => {
            let ini = pgbouncer::path(ctx, service);
            files.push(format!("{}:/etc/pgbouncer/pgbouncer.ini", from_app_root(kamal_path, &ini)));
            let example = pgbouncer::userlist_path(&ini);
            let userlist = example.strip_suffix(".example").unwrap_or(&example).to_string();
            super::compose::check_container_path(&p.auth_file, &format!("{}.auth_file", service.path))
                .map_err(|e| err(e.message))?;
            files.push(format!("{}:{}", from_app_root(kamal_path, &userlist), p.auth_file));
            comments.push(comment(&format!(
                "{userlist} holds password hashes and is not rendered: create it from {example} and keep it out of version control"
            )));
            (service.image.clone().unwrap_or_else(|| super::compose::PGBOUNCER_IMAGE.into()), None, env_for(ctx, service, Vec::new(), &[], None)?)
        }
        Detail::Redis(r) => {
            if r.mode != RedisMode::Standalone {
                comments.push(comment(&format!(
                    "{} mode: only the master runs as this accessory; add its replicas/sentinels as further accessories",
                    if r.mode == RedisMode::Sentinel { "sentinel" } else { "cluster" }
                )));
            }
            directories.push("data:/data".to_string());
            let server = shell_line(&redis::server_args(service));
            // Kamal hands `cmd` to the host's shell: the password variable must expand
            // in the container (which has the secret in its env), so it is quoted for a
            // shell started there, which hands over to the image's entrypoint (it drops
            // root for the redis user, as it does for a plain `redis-server` command).
            let cmd = match redis::auth_args(service, |name| format!("\"${name}\"")) {
                auth if auth.is_empty() => server,
                auth => shell_line(&["sh".into(), "-c".into(), format!("exec docker-entrypoint.sh {server} {}", auth.join(" "))]),
            };
            (
                service.image.clone().unwrap_or_else(|| super::compose::REDIS_IMAGE.into()),
                Some(cmd),
                env_for(ctx, service, Vec::new(), &[], None)?,
            )
        }
        _ => unreachable!("only data services become accessories"),
    };
    Ok(Accessory {
        name: service.name.clone(),
        comments,
        image: erb(&image),
        host: erb(&host),
        port: port_spec,
        cmd: cmd.map(|c| erb(&c)),
        env,
        files: files.iter().map(|f| erb(f)).collect(),
        directories,
        options: options(service),
    })
}

/// A qdrant's nodes as accessories `<service>-1..N`, spread over its machine's hosts in
/// turn. Peers on other hosts reach a node through its host's address, so each node
/// publishes its HTTP, gRPC and P2P ports there and names that address in its URI; a
/// second node on the same host publishes each port 10 higher (the runbook's 6333, 6343,
/// 6353). The settings are the same `QDRANT__*` environment as in compose.
fn qdrant_nodes(ctx: &Context<'_>, kamal_path: &str, service: &ServicePlan) -> Result<Vec<Accessory>, RenderError> {
    let Detail::Qdrant(q) = &service.detail else { return Ok(Vec::new()) };
    let hosts = hosts_of(ctx, service)?;
    let nodes = q.nodes.max(1) as usize;
    let publish = |ip: &IpAddr, host_port: u64, port: u64| match ip {
        IpAddr::V4(ip) => format!("{ip}:{host_port}:{port}"),
        IpAddr::V6(ip) => format!("[{ip}]:{host_port}:{port}"),
    };
    // (host, its address, port offset) of every node, then the URI peers use for it.
    let mut placed = Vec::new();
    for i in 0..nodes {
        let host = hosts[i % hosts.len()].clone();
        let ip: IpAddr = host.parse().map_err(|_| {
            err(format!("{}: Kamal publishes the node ports on the host's private IP address, and `{}` is a host name", service.path, host.escape_debug()))
        })?;
        placed.push((host, ip, 10 * (i / hosts.len()) as u64));
    }
    let uris: Vec<String> = placed.iter().map(|(host, _, offset)| super::qdrant::peer_uri(host, q.p2p_port.value + offset)).collect();
    let script = super::qdrant::script_path(ctx, service);
    let mut out = Vec::new();
    for (i, (host, ip, offset)) in placed.iter().enumerate() {
        let index = i + 1;
        let name = if nodes == 1 { service.name.clone() } else { format!("{}-{index}", service.name) };
        let mut comments = vec![comment(&if nodes == 1 {
            format!("{} (qdrant)", service.path)
        } else {
            format!("{} (qdrant cluster): node {index} of {nodes}", service.path)
        })];
        if index == 1 && !q.collections.is_empty() {
            comments.push(comment(&format!(
                "once every node runs: QDRANT_URL=http://{host}:{} python3 {} (creates the collections, idempotent)",
                service.port.value + offset,
                from_app_root(kamal_path, &script)
            )));
        }
        let mut clear = super::qdrant::env(service);
        clear.extend(super::qdrant::node_identity(&uris, index));
        let mut options = options(service);
        let mut extra = vec![publish(ip, q.grpc_port.value + offset, q.grpc_port.value)];
        if nodes > 1 {
            extra.push(publish(ip, q.p2p_port.value + offset, q.p2p_port.value));
        }
        options.push(Opt { key: "publish".into(), yaml: format!("[{}]", extra.iter().map(|p| yaml_str(p)).collect::<Vec<_>>().join(", ")) });
        out.push(Accessory {
            name,
            comments,
            image: erb(&service.image.clone().unwrap_or_else(|| super::compose::QDRANT_IMAGE.into())),
            host: erb(host),
            port: publish(ip, service.port.value + offset, service.port.value),
            cmd: None,
            env: env_for(ctx, service, clear, &[], None)?,
            files: Vec::new(),
            directories: vec![format!("data:{}", super::qdrant::STORAGE_PATH)],
            options,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze_text;

    fn render(yaml: &str) -> Result<String, RenderError> {
        let analysis = analyze_text("capacity.yaml", yaml).expect("spec loads");
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        let artifacts = Kamal.render(&ctx)?;
        assert_eq!(artifacts.len(), 1);
        assert_eq!(artifacts[0].path, "config/deploy.yml");
        Ok(artifacts[0].text.clone())
    }

    const BASE: &str = r#"
version: 1
name: shop
machines:
  web: { count: 2, addresses: [10.0.0.1, 10.0.0.2] }
  jobs: { count: 1, addresses: [10.0.0.5] }
  db: { count: 1, addresses: [10.0.0.9] }
services:
  web:
    kind: puma
    machine: web
    replicas: 2
    workers: 2
    threads: 5
    resources: { cpus: 2, memory: 4GiB }
    health: { path: /up, interval: 10s, timeout: 3s }
    env:
      clear: { RAILS_ENV: production, NOTE: "<%= `id` %>" }
      secret: [RAILS_MASTER_KEY]
    uses: { db: { pool: 5 } }
  worker:
    kind: sidekiq
    machine: jobs
    command: bundle exec sidekiq
    concurrency: 5
    resources: { cpus: 1, memory: 1536MiB }
    uses: { db: { pool: 5 } }
  db:
    kind: postgres
    machine: db
    version: 16
    databases: [shop_production]
    resources: { cpus: 4, memory: 8GiB }
deploy:
  kamal:
    image: acme/shop
    registry: { server: ghcr.io, username: KAMAL_REGISTRY_USERNAME, password: KAMAL_REGISTRY_PASSWORD }
    proxy: { host: shop.example.com, ssl: true, response_timeout: 45s }
"#;

    #[test]
    fn roles_proxy_registry_and_accessories() {
        let text = render(BASE).unwrap();
        assert!(text.starts_with("# Generated by headroom from capacity.yaml"));
        assert!(text.contains("service: \"shop\"\nimage: \"acme/shop\"\n"));
        assert!(text.contains("  username:\n    - \"KAMAL_REGISTRY_USERNAME\"\n  password:\n    - \"KAMAL_REGISTRY_PASSWORD\"\n"));
        assert!(text.contains("builder:\n  arch: \"amd64\"\n"));
        assert!(text.contains("  \"web\":\n"));
        assert!(text.contains("      - \"10.0.0.1\"\n      - \"10.0.0.2\"\n"));
        assert!(text.contains("\"memory\": \"4g\"\n      \"cpus\": 2\n"), "{text}");
        assert!(text.contains("\"memory\": \"1536m\""));
        assert!(text.contains("    cmd: \"bundle exec sidekiq\"\n"));
        assert!(text.contains("  host: \"shop.example.com\"\n  ssl: true\n  app_port: 3000\n  response_timeout: 45\n"));
        assert!(text.contains("  healthcheck:\n    path: \"/up\"\n    interval: 10\n    timeout: 3\n"));
        assert!(text.contains("    host: \"10.0.0.9\"\n    port: \"10.0.0.9:5432:5432\"\n"));
        assert!(text.contains("\"POSTGRES_DB\": \"shop_production\""));
        assert!(text.contains("        - \"POSTGRES_PASSWORD\"\n"));
        assert!(text.contains("      - \"data:/var/lib/postgresql/data\"\n"));
        assert!(!text.contains("traefik"));
        assert!(!text.contains("primary_role"));
    }

    #[test]
    fn erb_is_neutralised_and_secrets_are_names() {
        let text = render(BASE).unwrap();
        assert!(text.contains("\"NOTE\": \"<%%= `id` %>\""), "{text}");
        assert!(!text.contains("<%="));
        // Shared by every role at the root; each role keeps its own capacity numbers.
        assert!(text.contains("\nenv:\n  clear:\n    \"RAILS_ENV\": \"production\"\n"), "{text}");
        assert!(text.contains("  secret:\n    - \"RAILS_MASTER_KEY\"\n"));
        assert_eq!(text.matches("RAILS_MASTER_KEY").count(), 1);
    }

    #[test]
    fn default_proxy_timeout_and_primary_role() {
        let text = render(&BASE.replace(", response_timeout: 45s", "").replace("  web:\n    kind: puma", "  app:\n    kind: puma")).unwrap();
        assert!(text.contains("response_timeout: 30\n"));
        assert!(text.contains("primary_role: \"app\"\n"));
    }

    /// The load errors (Kamal's refusals) of a spec.
    fn refused(yaml: &str) -> Vec<String> {
        match analyze_text("capacity.yaml", yaml) {
            Ok(_) => Vec::new(),
            Err(f) => f.diagnostics.into_iter().map(|d| format!("{}: {}", d.path, d.message)).collect(),
        }
    }

    fn refused_with(yaml: &str, text: &str) -> String {
        let found = refused(yaml);
        found.iter().find(|m| m.contains(text)).cloned().unwrap_or_else(|| panic!("no load error says `{text}`: {found:#?}"))
    }

    #[test]
    fn kamals_refusals_are_load_errors() {
        assert!(refused(BASE).is_empty());
        let cases: &[(&str, &str, &str)] = &[
            ("    machine: jobs\n", "", "services.worker: service `worker` has no machine"),
            ("password: KAMAL_REGISTRY_PASSWORD", "password: \"A B\"", "is not a secret name"),
            ("    registry: { server: ghcr.io, username: KAMAL_REGISTRY_USERNAME, password: KAMAL_REGISTRY_PASSWORD }\n", "", "registry/username: is required"),
            (", password: KAMAL_REGISTRY_PASSWORD", "", "registry/password: is required"),
            ("image: acme/shop", "image: acme/shop\n    service: shop.eu", "deploy.kamal.service: Kamal service name `shop.eu`"),
            ("host: shop.example.com, ", "", "Must set a host to enable automatic SSL"),
            ("ssl: true", "certificate_pem: CERT", "without private_key_pem"),
            ("RAILS_ENV: production", "RAILS_ENV: \"pro\\tduction\"", "services.web.env.clear.RAILS_ENV: env value of `RAILS_ENV` holds an ASCII control character"),
            ("RAILS_ENV: production", "RAILS_ENV: \"${HOME}\"", "leaves to the host's shell"),
            ("RAILS_ENV: production", "RAILS_ENV: \"a#{b}\"", "`#{`"),
            ("command: bundle exec sidekiq", "command: \"bundle exec sidekiq\\nrm -rf /\"", "a second command on the host"),
            ("db: { count: 1, addresses: [10.0.0.9] }", "db: { count: 1, addresses: [db.internal] }", "takes an IP address"),
        ];
        for (from, to, says) in cases {
            refused_with(&BASE.replace(from, to), says);
        }
    }

    #[test]
    fn what_kamal_accepts_loads() {
        // A local registry needs no credentials; `$` without braces and a C1 control
        // character reach the container unchanged.
        let local = BASE.replace("{ server: ghcr.io, username: KAMAL_REGISTRY_USERNAME, password: KAMAL_REGISTRY_PASSWORD }", "{ server: \"localhost:5555\" }");
        assert!(refused(&local).is_empty(), "{:?}", refused(&local));
        let text = render(&local).unwrap();
        assert!(text.contains("registry:\n  server: \"localhost:5555\"\n\nbuilder:"), "{text}");
        let values = BASE.replace("RAILS_ENV: production", "RAILS_ENV: \"5$ \\x85 x\"");
        assert!(refused(&values).is_empty(), "{:?}", refused(&values));
        assert!(render(&values).unwrap().contains("\"RAILS_ENV\": \"5$ \\u0085 x\""));
    }

    #[test]
    fn custom_certificate_becomes_the_ssl_hash() {
        let spec = BASE.replace("ssl: true", "certificate_pem: SHOP_CERT, private_key_pem: SHOP_KEY");
        let text = render(&spec).unwrap();
        assert!(text.contains("  ssl:\n    certificate_pem: \"SHOP_CERT\"\n    private_key_pem: \"SHOP_KEY\"\n"), "{text}");
    }

    #[test]
    fn ulimits_and_namespaced_sysctls_become_docker_options() {
        let spec = BASE.replace(
            "    databases: [shop_production]\n",
            "    databases: [shop_production]\n    nofile: 65536\n    sysctls: { net.core.somaxconn: 8192, vm.swappiness: 1 }\n",
        );
        let text = render(&spec).unwrap();
        assert!(text.contains("      \"ulimit\": \"nofile=65536:65536\"\n      \"sysctl\": \"net.core.somaxconn=8192\"\n"), "{text}");
        assert!(!text.contains("vm.swappiness"));
    }

    #[test]
    fn memory_units() {
        assert_eq!(docker_memory(4 * 1024 * 1024 * 1024), "4g");
        assert_eq!(docker_memory(1536 * 1024 * 1024), "1536m");
        assert_eq!(docker_memory(3), "3b");
        assert_eq!(from_app_root("config/deploy.yml", "config/pgbouncer.ini"), "config/pgbouncer.ini");
        assert_eq!(from_app_root("app/config/deploy.yml", "pgbouncer/pgbouncer.ini"), "../pgbouncer/pgbouncer.ini");
    }
}
