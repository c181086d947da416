//! Target `pgbouncer`: pgbouncer.ini per pgbouncer service (one `[databases]` entry per
//! database of the postgres it pools for, every limit from the `PgbouncerPlan`) and a
//! `userlist.txt.example` beside it that names the users and holds no secret.

use serde::Serialize;

use super::escape::comment;
use super::{Artifact, Context, RenderError, Target, render_template};
use crate::plan::{Detail, Kind, PgbouncerPlan, ServicePlan};
use crate::spec::PoolMode;

const INI: &str = include_str!("../../templates/pgbouncer/pgbouncer.ini.j2");
const USERLIST: &str = include_str!("../../templates/pgbouncer/userlist.txt.example.j2");

pub struct Pgbouncer;

impl Target for Pgbouncer {
    fn name(&self) -> &'static str {
        "pgbouncer"
    }
    fn render(&self, ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        let mut artifacts = Vec::new();
        for service in ctx.plan.services.iter().filter(|s| s.kind == Kind::Pgbouncer) {
            let Detail::Pgbouncer(pgb) = &service.detail else { continue };
            let context = context(ctx, service, pgb)?;
            let ini_path = path(ctx, service);
            let text = render_template("pgbouncer", "pgbouncer/pgbouncer.ini.j2", INI, &context)?;
            artifacts.push(Artifact { target: "pgbouncer", path: ini_path.clone(), text, patched: false });
            let text = render_template("pgbouncer", "pgbouncer/userlist.txt.example.j2", USERLIST, &context)?;
            artifacts.push(Artifact { target: "pgbouncer", path: userlist_path(&ini_path), text, patched: false });
        }
        Ok(artifacts)
    }
}

/// Where a pgbouncer service's ini goes: `deploy.files.pgbouncer` (default
/// `pgbouncer/pgbouncer.ini`); with several pgbouncer services,
/// `deploy.files["pgbouncer.<service>"]` (default `pgbouncer/<service>.ini`).
pub fn path(ctx: &Context<'_>, service: &ServicePlan) -> String {
    let several = ctx.plan.services.iter().filter(|s| s.kind == Kind::Pgbouncer).count() > 1;
    if several {
        ctx.path_for(&format!("pgbouncer.{}", service.name), &format!("pgbouncer/{}.ini", service.name))
    } else {
        ctx.path_for("pgbouncer", "pgbouncer/pgbouncer.ini")
    }
}

/// The example auth file lives next to the ini: `userlist.txt.example` beside a
/// `pgbouncer.ini`, `<name>.userlist.txt.example` beside any other `<name>.ini`, so
/// several PgBouncers (`pgbouncer/<service>.ini` by default) never share one.
pub fn userlist_path(ini_path: &str) -> String {
    let (dir, file) = match ini_path.rsplit_once('/') {
        Some((dir, file)) => (format!("{dir}/"), file),
        None => (String::new(), ini_path),
    };
    let stem = file.strip_suffix(".ini").unwrap_or(file);
    if stem == "pgbouncer" { format!("{dir}userlist.txt.example") } else { format!("{dir}{stem}.userlist.txt.example") }
}

/// How other services reach `service`: by its service name on a compose network;
/// without compose (Kamal runs it as an accessory on its machine and publishes the
/// port there), by the first address of the machine it is placed on, when the spec
/// lists one.
pub fn host_of(ctx: &Context<'_>, service: &ServicePlan) -> String {
    // Compose and Kubernetes both give each service a DNS name of its own.
    let compose = ctx.spec.deploy.as_ref().is_some_and(|d| d.compose.is_some() || d.kubernetes.is_some());
    let address = service.machine.as_deref().and_then(|m| ctx.plan.machine(m)).and_then(|m| m.addresses.first());
    match address {
        Some(address) if !compose => address.clone(),
        _ => service.name.clone(),
    }
}

#[derive(Serialize)]
struct PgbouncerContext {
    header: String,
    service: String,
    version: String,
    postgres: String,
    host: String,
    port: u64,
    databases: Vec<String>,
    users: Vec<String>,
    /// `listen_addr`: every interface in a container; on a host, loopback and the
    /// machine group's private addresses (PgBouncer warns and goes on for an address
    /// this machine does not have).
    listen_addr: String,
    listen_note: String,
    listen_port: u64,
    listen_backlog: u64,
    auth_type: String,
    auth_file: String,
    pool_mode: &'static str,
    max_client_conn: u64,
    default_pool_size: u64,
    min_pool_size: u64,
    reserve_pool_size: u64,
    reserve_pool_timeout: u64,
    max_db_connections: u64,
    max_user_connections: u64,
    server_idle_timeout: u64,
    server_lifetime: u64,
    query_wait_timeout: u64,
    max_prepared_statements: Option<u64>,
    server_connections: String,
    /// The placeholder the example userlist shows for the auth type.
    secret_placeholder: &'static str,
}


fn context(ctx: &Context<'_>, service: &ServicePlan, pgb: &PgbouncerPlan) -> Result<PgbouncerContext, RenderError> {
    let Some(target) = pgb.target.as_deref().and_then(|t| ctx.plan.service(t)).filter(|t| t.kind == Kind::Postgres) else {
        return Err(RenderError {
            target: "pgbouncer",
            message: format!("pgbouncer `{}` pools for no postgres service: add `uses: {{ <postgres service>: {{}} }}` to {}", service.name, service.path),
        });
    };
    let secret_placeholder = match pgb.auth_type.as_str() {
        "scram-sha-256" => "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>",
        "md5" => "md5<md5 hex of password followed by user name>",
        _ => "<password>",
    };
    Ok(PgbouncerContext {
        header: ctx.header(";").trim_end().to_string(),
        service: service.name.clone(),
        version: if pgb.version.is_written() {
            format!("{}.{}", pgb.version.value.0, pgb.version.value.1)
        } else {
            "1.17-1.24, version not pinned".into()
        },
        postgres: target.name.clone(),
        host: host_of(ctx, target),
        port: target.port.value,
        databases: pgb.databases.clone(),
        users: pgb.users.clone(),
        listen_addr: match ctx.plan.host_listen(service).as_deref() {
            None => "0.0.0.0".into(),
            Some(addresses) => std::iter::once("127.0.0.1").chain(addresses.iter().map(String::as_str)).collect::<Vec<_>>().join(","),
        },
        listen_note: comment(&match ctx.plan.host_listen(service).as_deref() {
            None => "every interface of the container; keep the port on a private network".to_string(),
            Some(addresses) => super::host_listen_note(service, addresses),
        }),
        listen_port: service.port.value,
        listen_backlog: service.backlog.as_ref().map_or(crate::plan::defaults::PGBOUNCER_LISTEN_BACKLOG, |b| b.value),
        auth_type: pgb.auth_type.clone(),
        auth_file: pgb.auth_file.clone(),
        pool_mode: match pgb.pool_mode.value {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
            PoolMode::Statement => "statement",
        },
        max_client_conn: pgb.max_client_conn.value,
        default_pool_size: pgb.default_pool_size.value,
        min_pool_size: pgb.min_pool_size.value,
        reserve_pool_size: pgb.reserve_pool_size.value,
        reserve_pool_timeout: pgb.reserve_pool_timeout.value,
        max_db_connections: pgb.max_db_connections.value,
        max_user_connections: pgb.max_user_connections.value,
        server_idle_timeout: pgb.server_idle_timeout.value,
        server_lifetime: pgb.server_lifetime.value,
        query_wait_timeout: pgb.query_wait_timeout.value,
        max_prepared_statements: pgb.max_prepared_statements.as_ref().map(|m| m.value),
        server_connections: comment(&match &pgb.server_connections.origin {
            crate::plan::Origin::Derived { formula, .. } => format!("{} = {formula}", pgb.server_connections.value),
            _ => pgb.server_connections.value.to_string(),
        }),
        secret_placeholder,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze_text;

    fn render(yaml: &str) -> Result<Vec<Artifact>, RenderError> {
        let analysis = analyze_text("capacity.yaml", yaml).expect("spec loads");
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        Pgbouncer.render(&ctx)
    }

    fn spec(pgbouncer: &str) -> String {
        format!(
            "version: 1\nname: shop\nservices:\n  web: {{ kind: gunicorn, workers: 2, uses: {{ pool: {{ pool: 5 }} }} }}\n  pool:\n    kind: pgbouncer\n{pgbouncer}    uses: {{ main-db: {{}} }}\n  main-db: {{ kind: postgres, port: 5433, databases: [shop, analytics] }}\n"
        )
    }

    #[test]
    fn renders_databases_limits_and_auth_file_path() {
        let a = render(&spec("    pool_mode: transaction\n    max_client_conn: 500\n    default_pool_size: 30\n    reserve_pool_size: 5\n    max_db_connections: 60\n    version: \"1.22\"\n    users: [shop]\n")).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].path, "pgbouncer/pgbouncer.ini");
        assert_eq!(a[1].path, "pgbouncer/userlist.txt.example");
        let t = &a[0].text;
        assert!(t.starts_with("; Generated by headroom from capacity.yaml"), "{t}");
        assert!(t.contains("[databases]\nshop = host=main-db port=5433 dbname=shop\nanalytics = host=main-db port=5433 dbname=analytics\n"), "{t}");
        for line in [
            "listen_addr = 127.0.0.1",
            "listen_port = 6432",
            "listen_backlog = 128",
            "auth_type = scram-sha-256",
            "auth_file = /etc/pgbouncer/userlist.txt",
            "pool_mode = transaction",
            "max_client_conn = 500",
            "default_pool_size = 30",
            "min_pool_size = 0",
            "reserve_pool_size = 5",
            "reserve_pool_timeout = 5",
            "max_db_connections = 60",
            "max_user_connections = 0",
            "server_idle_timeout = 600",
            "server_lifetime = 3600",
            "query_wait_timeout = 120",
            "max_prepared_statements = 0",
        ] {
            assert!(t.lines().any(|l| l == line), "missing `{line}` in\n{t}");
        }
        assert!(!t.to_lowercase().contains("password ="));
    }

    #[test]
    fn max_prepared_statements_follows_the_version() {
        let old = render(&spec("    version: \"1.18\"\n")).unwrap();
        assert!(!old[0].text.contains("max_prepared_statements"), "{}", old[0].text);
        let new = render(&spec("    version: \"1.24\"\n")).unwrap();
        assert!(new[0].text.lines().any(|l| l == "max_prepared_statements = 200"), "{}", new[0].text);
    }

    #[test]
    fn userlist_example_names_users_without_secrets() {
        let a = render(&spec("    users: [shop, reporting]\n    auth_type: md5\n")).unwrap();
        let u = &a[1].text;
        assert!(u.starts_with("; Generated by headroom"));
        let entries: Vec<&str> = u.lines().filter(|l| !l.starts_with(';') && !l.trim().is_empty()).collect();
        assert_eq!(entries, ["\"shop\" \"md5<md5 hex of password followed by user name>\"", "\"reporting\" \"md5<md5 hex of password followed by user name>\""]);
        let a = render(&spec("    users: [shop]\n")).unwrap();
        assert!(a[1].text.contains("\"shop\" \"SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>\""));
    }

    #[test]
    fn hostile_values_are_refused_and_a_pooler_without_postgres_is_an_error() {
        let analysis = analyze_text("capacity.yaml", &spec("")).expect("spec loads");
        for bad in ["/etc/x\nlisten_port = 1", "/etc/x;y"] {
            let mut plan = analysis.plan.clone();
            for s in &mut plan.services {
                if let Detail::Pgbouncer(p) = &mut s.detail {
                    p.auth_file = bad.into();
                }
            }
            let ctx = Context { spec: &analysis.loaded.spec, plan: &plan, spec_file: "capacity.yaml".into(), existing_root: None };
            assert!(Pgbouncer.render(&ctx).unwrap_err().message.contains("refusing"));
        }
        let mut plan = analysis.plan.clone();
        for s in &mut plan.services {
            if let Detail::Pgbouncer(p) = &mut s.detail {
                p.target = None;
            }
        }
        let ctx = Context { spec: &analysis.loaded.spec, plan: &plan, spec_file: "capacity.yaml".into(), existing_root: None };
        assert!(Pgbouncer.render(&ctx).unwrap_err().message.contains("pools for no postgres"));
    }

    #[test]
    fn postgres_host_is_its_machine_address_without_compose() {
        let placed = spec("").replace("  main-db: {", "  main-db: { machine: db,") + "machines:\n  db: { count: 1, addresses: [10.0.0.31] }\n";
        let a = render(&placed).unwrap();
        assert!(a[0].text.contains("shop = host=10.0.0.31 port=5433 dbname=shop"), "{}", a[0].text);
        let a = render(&format!("{placed}deploy:\n  compose: {{}}\n")).unwrap();
        assert!(a[0].text.contains("shop = host=main-db port=5433 dbname=shop"), "{}", a[0].text);
    }

    #[test]
    fn listens_on_its_machine_addresses_on_a_host_and_every_interface_in_a_container() {
        let placed = spec("    machine: pool\n") + "machines:\n  pool: { count: 2, addresses: [10.0.0.21, 10.0.0.22] }\n";
        let a = render(&placed).unwrap();
        assert!(a[0].text.lines().any(|l| l == "listen_addr = 127.0.0.1,10.0.0.21,10.0.0.22"), "{}", a[0].text);
        assert!(a[0].text.contains("machines.pool.addresses"), "{}", a[0].text);
        let a = render(&format!("{placed}deploy:\n  compose: {{}}\n")).unwrap();
        assert!(a[0].text.lines().any(|l| l == "listen_addr = 0.0.0.0"), "{}", a[0].text);
    }

    #[test]
    fn host_names_are_not_listened_on() {
        // PgBouncer stops at start-up on a name that does not resolve: only IPs are bound.
        let placed = spec("    machine: pool\n") + "machines:\n  pool: { count: 2, addresses: [pool-1.internal, 10.0.0.22] }\n";
        let a = render(&placed).unwrap();
        assert!(a[0].text.lines().any(|l| l == "listen_addr = 127.0.0.1,10.0.0.22"), "{}", a[0].text);
    }

    #[test]
    fn paths_follow_deploy_files() {
        let yaml = format!("{}deploy:\n  files: {{ pgbouncer: config/pgbouncer.ini }}\n", spec(""));
        let a = render(&yaml).unwrap();
        assert_eq!(a[0].path, "config/pgbouncer.ini");
        assert_eq!(a[1].path, "config/userlist.txt.example");
        assert_eq!(userlist_path("pgbouncer.ini"), "userlist.txt.example");
        assert_eq!(userlist_path("pgbouncer/orders.ini"), "pgbouncer/orders.userlist.txt.example");
        assert_eq!(userlist_path("a/b/reports"), "a/b/reports.userlist.txt.example");
    }
}
