//! Target `postgres`: a settings file to include from postgresql.conf (connection
//! budget, and PGTune's memory settings when the plan knows the memory), and the same
//! settings as `postgres -c key=value` arguments for compose and Kamal.

use serde::Serialize;

use super::escape::comment;
use super::{Artifact, Context, RenderError, Target, render_template};
use crate::plan::{Detail, Kind, PostgresPlan, ServicePlan};

const TEMPLATE: &str = include_str!("../../templates/postgres/postgresql.conf.j2");

pub struct Postgres;

impl Target for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn render(&self, ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        let mut artifacts = Vec::new();
        for service in ctx.plan.services.iter().filter(|s| s.kind == Kind::Postgres) {
            let Detail::Postgres(pg) = &service.detail else { continue };
            let context = PostgresContext {
                header: ctx.header("#").trim_end().to_string(),
                service: service.name.clone(),
                version: if pinned(pg) { pg.version.value.to_string() } else { "13-17 (version not pinned)".into() },
                usable: format!(
                    "{} max_connections - {} superuser_reserved_connections - {} reserved_connections = {} usable; clients may open {}",
                    pg.max_connections.value,
                    pg.superuser_reserved_connections.value,
                    pg.reserved_connections.value,
                    pg.usable_connections,
                    pg.demand
                ),
                settings: with_listen_addresses(settings(pg), service, ctx.plan.host_listen(service).as_deref()),
                file_name: path(ctx, service).rsplit('/').next().unwrap_or_default().to_string(),
            };
            let text = render_template("postgres", "postgres/postgresql.conf.j2", TEMPLATE, &context)?;
            artifacts.push(Artifact { target: "postgres", path: path(ctx, service), text, patched: false });
        }
        Ok(artifacts)
    }
}

/// Where a postgres service's settings include goes: `deploy.files.postgres` (default
/// `postgres/<service>.conf`); with several postgres services,
/// `deploy.files["postgres.<service>"]`.
pub fn path(ctx: &Context<'_>, service: &ServicePlan) -> String {
    let default = format!("postgres/{}.conf", service.name);
    let several = ctx.plan.services.iter().filter(|s| s.kind == Kind::Postgres).count() > 1;
    if several { ctx.path_for(&format!("postgres.{}", service.name), &default) } else { ctx.path_for("postgres", &default) }
}

/// The same settings as `postgres -c key=value` arguments, for compose and Kamal.
pub fn server_args(service: &ServicePlan) -> Vec<String> {
    let mut args = vec!["postgres".to_string()];
    if let Detail::Postgres(pg) = &service.detail {
        for s in settings(pg) {
            args.push("-c".into());
            args.push(format!("{}={}", s.key, s.value));
        }
    }
    args
}

#[derive(Serialize)]
struct PostgresContext {
    header: String,
    service: String,
    version: String,
    usable: String,
    settings: Vec<Setting>,
    file_name: String,
}

/// On a host install, `listen_addresses` first: loopback and the private addresses of
/// the machine group, never every interface (`*`, what the official image sets for
/// its container). An address this machine does not have only logs a warning
/// (`could not bind`), so one file serves every machine of the group. In a container
/// (`host_listen` `None`) the image's own setting stands.
fn with_listen_addresses(mut settings: Vec<Setting>, service: &ServicePlan, host_listen: Option<&[String]>) -> Vec<Setting> {
    let Some(addresses) = host_listen else { return settings };
    let value = std::iter::once("localhost").chain(addresses.iter().map(String::as_str)).collect::<Vec<_>>().join(",");
    let note = super::host_listen_note(service, addresses);
    let group = settings.first_mut().and_then(|s| s.group.take());
    settings.insert(0, Setting { key: "listen_addresses", value, note: comment(&note), group, quoted: true });
    settings
}

/// One `key = value` line, with where the value came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Setting {
    pub key: &'static str,
    pub value: String,
    /// Written as a quoted string (`listen_addresses = 'localhost,10.0.0.31'`).
    pub quoted: bool,
    pub note: String,
    /// First line of a group (a blank line and a heading precede it).
    pub group: Option<&'static str>,
}

/// A size in the units postgresql.conf reads (kB, MB, GB, TB; 1024-based), as an
/// integer of the largest unit that divides it (what `SHOW` prints back).
pub fn size(bytes: u64) -> String {
    const K: u64 = 1024;
    let kb = bytes / K;
    if kb == 0 {
        return "0".into();
    }
    for (unit, factor) in [("TB", K * K * K), ("GB", K * K), ("MB", K)] {
        if kb.is_multiple_of(factor) {
            return format!("{}{unit}", kb / factor);
        }
    }
    format!("{kb}kB")
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 { format!("{}", value as i64) } else { format!("{value}") }
}


/// The version is known (written, or implied by a setting only some versions read),
/// not the default of an unpinned spec.
fn pinned(pg: &PostgresPlan) -> bool {
    !matches!(pg.version.origin, crate::plan::Origin::Default { .. })
}

/// Every setting the plan decides for one postgres, in file order. `reserved_connections`
/// only for PostgreSQL 16 and later (15 rejects an unknown parameter).
pub fn settings(pg: &PostgresPlan) -> Vec<Setting> {
    let mut out = Vec::new();
    let mut push = |key: &'static str, value: String, note: String, group: Option<&'static str>| {
        out.push(Setting { key, value, note: comment(&note), group, quoted: false });
    };
    push("max_connections", pg.max_connections.value.to_string(), pg.max_connections.cite(), Some("Connections"));
    push("superuser_reserved_connections", pg.superuser_reserved_connections.value.to_string(), pg.superuser_reserved_connections.cite(), None);
    // Only for a pinned PostgreSQL 16 or later: an unpinned file must load on 13-15,
    // which refuse the parameter.
    if pinned(pg) && pg.version.value >= crate::load::versions::POSTGRES_RESERVED_CONNECTIONS {
        push("reserved_connections", pg.reserved_connections.value.to_string(), pg.reserved_connections.cite(), None);
    }
    push("max_worker_processes", pg.max_worker_processes.value.to_string(), pg.max_worker_processes.cite(), None);
    if let Some(t) = &pg.tuning {
        push("shared_buffers", size(t.shared_buffers.value), t.shared_buffers.cite(), Some("Memory (PGTune's formulas)"));
        push("effective_cache_size", size(t.effective_cache_size), "memory x 3/4".into(), None);
        push("maintenance_work_mem", size(t.maintenance_work_mem), "memory / 16, at most 2GB".into(), None);
        push("work_mem", size(t.work_mem.value), t.work_mem.cite(), None);
        push("wal_buffers", size(t.wal_buffers), "3% of shared_buffers, at most 16MB".into(), None);
        let disk = match pg.storage {
            crate::spec::Storage::Hdd => "hdd",
            crate::spec::Storage::Ssd => "ssd",
            crate::spec::Storage::Nvme => "nvme",
        };
        push("random_page_cost", number(t.random_page_cost), format!("storage: {disk}"), Some("Disk"));
        push("effective_io_concurrency", t.effective_io_concurrency.to_string(), format!("storage: {disk}"), None);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze_text;

    fn analyze(db: &str) -> crate::analysis::Analysis {
        let yaml = format!("version: 1\nname: t\nservices:\n  web: {{ kind: gunicorn, workers: 4, uses: {{ db: {{ pool: 5 }} }} }}\n  db: {{ kind: postgres, {db} }}\n");
        analyze_text("capacity.yaml", &yaml).expect("spec loads")
    }

    fn render(db: &str) -> Artifact {
        let analysis = analyze(db);
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        let mut a = Postgres.render(&ctx).expect("renders");
        assert_eq!(a.len(), 1);
        a.remove(0)
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(|l| l.split(" #").next().unwrap().trim_end()).collect()
    }

    #[test]
    fn connections_and_memory_from_the_plan() {
        let a = render("version: 16, max_connections: 200, resources: { memory: 8GiB }");
        assert_eq!(a.path, "postgres/db.conf");
        assert!(a.text.starts_with("# Generated by headroom from capacity.yaml"));
        // work_mem = (8GiB - 2GiB) / ((200 + 8) x 3) = 10082 kB (floored to whole kB)
        assert_eq!(
            lines(&a.text),
            [
                "listen_addresses = 'localhost'",
                "max_connections = 200",
                "superuser_reserved_connections = 3",
                "reserved_connections = 0",
                "max_worker_processes = 8",
                "shared_buffers = 2GB",
                "effective_cache_size = 6GB",
                "maintenance_work_mem = 512MB",
                "work_mem = 10082kB",
                "wal_buffers = 16MB",
                "random_page_cost = 1.1",
                "effective_io_concurrency = 200",
            ]
        );
    }

    #[test]
    fn postgres_15_gets_no_reserved_connections_and_unknown_memory_no_tuning() {
        let a = render("version: 15");
        assert_eq!(lines(&a.text), ["listen_addresses = 'localhost'", "max_connections = 100", "superuser_reserved_connections = 3", "max_worker_processes = 8"]);
    }

    #[test]
    fn server_args_match_the_file() {
        let analysis = analyze("version: 16, storage: hdd, resources: { memory: 4GiB }, shared_buffers: 512MiB");
        let service = analysis.plan.service("db").unwrap();
        let args = server_args(service);
        assert_eq!(args[0], "postgres");
        let pairs: Vec<String> = args[1..].chunks(2).map(|c| {
            assert_eq!(c[0], "-c");
            c[1].replacen('=', " = ", 1)
        }).collect();
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        let text = Postgres.render(&ctx).unwrap().remove(0).text;
        // the file, for a host install, adds where to listen; the args run in a container
        assert_eq!(lines(&text)[0], "listen_addresses = 'localhost'");
        assert_eq!(pairs, lines(&text)[1..]);
        assert!(args.contains(&"shared_buffers=512MB".to_string()));
        assert!(args.contains(&"random_page_cost=4".to_string()));
        assert!(args.contains(&"effective_io_concurrency=2".to_string()));
    }

    #[test]
    fn listen_addresses_on_a_host_only() {
        let machines = "machines:\n  db: { count: 2, addresses: [10.0.0.31, \"fd00::31\"] }\n";
        let yaml = format!("version: 1\nname: t\nservices:\n  db: {{ kind: postgres, machine: db }}\n{machines}");
        let analysis = analyze_text("capacity.yaml", &yaml).expect("spec loads");
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        let text = Postgres.render(&ctx).unwrap().remove(0).text;
        assert_eq!(lines(&text)[0], "listen_addresses = 'localhost,10.0.0.31,fd00::31'", "{text}");
        assert!(text.contains("machines.db.addresses"), "{text}");
        let analysis = analyze_text("capacity.yaml", &format!("{yaml}deploy:\n  compose: {{}}\n")).expect("spec loads");
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        let text = Postgres.render(&ctx).unwrap().remove(0).text;
        assert!(!text.contains("listen_addresses"), "a container keeps the image's setting: {text}");
    }

    #[test]
    fn sizes_in_postgres_units() {
        assert_eq!(size(16 * 1024 * 1024), "16MB");
        assert_eq!(size(4 << 30), "4GB");
        assert_eq!(size(10082 * 1024), "10082kB");
        assert_eq!(size(1 << 40), "1TB");
        assert_eq!(size(1536), "1kB");
    }
}
