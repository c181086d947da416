//! Target `sysctl`: one sysctl.d file per machine group, with the kernel settings the
//! services placed there need (listen backlogs, fork-safe overcommit for a persisting
//! Redis, file handles, ephemeral ports for busy proxies), each value with a comment
//! naming the service that needs it, plus `apply.sh`, which shows current vs new,
//! changes only what differs, never lowers a floor, and has a `--dry-run`.

use serde::Serialize;

use super::{Artifact, Context, RenderError, Target};
use crate::plan::{Detail, MachinePlan, Plan, ServicePlan, defaults as d};
use crate::spec::{Persistence, RedisMode};

const MACHINE_TEMPLATE: &str = include_str!("../../templates/sysctl/machine.conf.j2");
const APPLY_TEMPLATE: &str = include_str!("../../templates/sysctl/apply.sh.j2");
const TARGET: &str = "sysctl";

/// Keys apply.sh treats as lower bounds: a higher value already set is kept.
pub const FLOORS: &[&str] = &["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "fs.file-max", "fs.nr_open"];

/// Linux's default `fs.nr_open` (the highest RLIMIT_NOFILE a process may get).
const NR_OPEN_DEFAULT: u64 = 1_048_576;
/// Ports in Linux's default ephemeral range 32768-60999.
const DEFAULT_EPHEMERAL_PORTS: u64 = 28_232;
/// The range a busy proxy gets.
const WIDE_PORT_RANGE: &str = "1024 65535";

pub struct Sysctl;

impl Target for Sysctl {
    fn name(&self) -> &'static str {
        TARGET
    }
    fn render(&self, ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        let Some(config) = ctx.spec.deploy.as_ref().and_then(|d| d.sysctl.as_ref()) else {
            return Ok(Vec::new());
        };
        let dir = config.dir.clone().unwrap_or_else(|| "sysctl".into());
        let dir = dir.trim_end_matches('/').to_string();
        let apply_path = format!("{dir}/apply.sh");
        let header = header(ctx);
        let mut artifacts = Vec::new();
        for machine in &ctx.plan.machines {
            let entries = entries(ctx.plan, machine)?;
            if entries.is_empty() {
                continue;
            }
            if !valid_file_name(&machine.name) {
                return Err(err(format!("machine group name `{}` cannot be a file name", machine.name.escape_debug())));
            }
            let path = format!("{dir}/{}.conf", machine.name);
            let mut notes = Vec::new();
            if ctx.plan.containerized {
                notes.push(
                    "Containers get their own network namespace: the net.* values below apply to processes on the host network; a container takes net.core.somaxconn from its own sysctls (compose `sysctls:`, Kamal `options: sysctl`).".to_string(),
                );
            }
            let file = MachineFile {
                header: header.clone(),
                machine: machine.name.clone(),
                machine_path: comment(&machine.path),
                count: machine.count,
                apply_script: comment(&apply_path),
                self_path: comment(&path),
                notes: notes.iter().map(|n| comment(n)).collect(),
                entries,
            };
            let text = super::render_template(TARGET, "machine.conf.j2", MACHINE_TEMPLATE, &file)?;
            artifacts.push(Artifact { target: TARGET, path, text, patched: false });
        }
        if !artifacts.is_empty() {
            let text = super::render_template(
                TARGET,
                "apply.sh.j2",
                APPLY_TEMPLATE,
                &ApplyFile { header, deployment: ctx.plan.name.clone(), floors: FLOORS.to_vec() },
            )?;
            artifacts.push(Artifact { target: TARGET, path: apply_path, text, patched: false });
        }
        Ok(artifacts)
    }
}

#[derive(Serialize)]
struct MachineFile {
    header: String,
    machine: String,
    machine_path: String,
    count: u64,
    apply_script: String,
    self_path: String,
    notes: Vec<String>,
    entries: Vec<Entry>,
}

#[derive(Serialize)]
struct ApplyFile {
    header: String,
    deployment: String,
    floors: Vec<&'static str>,
}

/// One setting and why it is there.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub why: Vec<String>,
}

fn err(message: impl Into<String>) -> RenderError {
    RenderError { target: TARGET, message: message.into() }
}

use super::escape::comment;

/// The header lines (escaped where they are made, in `Context::header`).
fn header(ctx: &Context<'_>) -> String {
    ctx.header("#")
}

fn valid_file_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A key as sysctl.d and apply.sh accept it: `^[a-z0-9_.-]+$` (`-` for `fs.file-max`),
/// starting with a letter.
pub fn valid_key(key: &str) -> bool {
    key.starts_with(|c: char| c.is_ascii_lowercase())
        && key.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
}

/// A value: numbers separated by single spaces.
pub fn valid_value(value: &str) -> bool {
    !value.is_empty() && value.split(' ').all(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
}

fn label(service: &ServicePlan) -> String {
    format!("{} `{}`", service.kind.as_str(), service.name)
}

/// What the machine has today for `key` (machines.X.sysctl), when it is one number.
fn today(machine: &MachinePlan, key: &str) -> Option<u64> {
    machine.sysctl.iter().find(|(k, _)| k == key).and_then(|(_, v)| v.trim().parse().ok())
}

fn today_note(machine: &MachinePlan, key: &str, value: u64) -> String {
    format!("{}.sysctl[\"{key}\"] is {value} today; kept (apply.sh never lowers it)", machine.path)
}

/// Rounds up to a multiple of 1024.
fn round_up_k(n: u64) -> u64 {
    n.div_ceil(1024).saturating_mul(1024)
}

/// The settings one machine group needs, in a fixed order.
pub fn entries(plan: &Plan, machine: &MachinePlan) -> Result<Vec<Entry>, RenderError> {
    let here: Vec<(&ServicePlan, u64)> = machine
        .placements
        .iter()
        .filter_map(|p| plan.service(&p.service).map(|s| (s, p.replicas_per_host.max(1))))
        .collect();
    let mut out = Vec::new();

    // Listen backlogs: the kernel silently caps every listen() backlog at somaxconn.
    let listeners: Vec<(&ServicePlan, u64)> = here.iter().filter_map(|(s, _)| s.backlog.as_ref().map(|b| (*s, b.value))).collect();
    if let Some(&(largest_service, need)) = listeners.iter().max_by_key(|(s, b)| (*b, std::cmp::Reverse(s.name.clone()))) {
        let mut why = vec![format!(
            "net.core.somaxconn caps every listen() backlog; the largest here is {need}, {} ({})",
            label(largest_service),
            largest_service.backlog.as_ref().map_or_else(String::new, |b| b.cite())
        )];
        for (service, backlog) in &listeners {
            if !std::ptr::eq(*service, largest_service) {
                why.push(format!("also listening here: {} with backlog {backlog}", label(service)));
            }
        }
        let current = today(machine, "net.core.somaxconn").unwrap_or(0);
        let value = need.max(d::SOMAXCONN).max(current);
        if current > need.max(d::SOMAXCONN) {
            why.push(today_note(machine, "net.core.somaxconn", current));
        } else if need < d::SOMAXCONN {
            why.push(format!("at least {}, the Linux >= 5.4 default", d::SOMAXCONN));
        }
        out.push(Entry { key: "net.core.somaxconn".into(), value: value.to_string(), why });

        let current = today(machine, "net.ipv4.tcp_max_syn_backlog");
        let mut why = vec![format!(
            "half-open (SYN_RECV) connections queued per listener: at least the largest backlog, {need} ({})",
            label(largest_service)
        )];
        let mut value = need;
        if let Some(c) = current
            && c > value
        {
            why.push(today_note(machine, "net.ipv4.tcp_max_syn_backlog", c));
            value = c;
        }
        out.push(Entry { key: "net.ipv4.tcp_max_syn_backlog".into(), value: value.to_string(), why });
    }

    // Redis forks to persist (BGSAVE / BGREWRITEAOF) and to feed a replica a full sync;
    // with vm.overcommit_memory 0 the fork fails once the data is large.
    let mut forks = Vec::new();
    for (service, _) in &here {
        if let Detail::Redis(r) = &service.detail {
            if r.persistence.value != Persistence::None {
                let how = match r.persistence.value {
                    Persistence::Rdb => "rdb snapshots (BGSAVE)",
                    _ => "an append-only file (BGREWRITEAOF)",
                };
                forks.push(format!("{} persists with {how} ({}): the fork must not fail under memory pressure", label(service), r.persistence.cite()));
            } else if r.mode != RedisMode::Standalone {
                forks.push(format!("{} replicates: a full resync forks the master", label(service)));
            }
        }
    }
    if !forks.is_empty() {
        forks.push("Redis warns at start when this is 0 (`WARNING Memory overcommit must be enabled!`); a container cannot set it".into());
        out.push(Entry { key: "vm.overcommit_memory".into(), value: "1".into(), why: forks });
    }

    // Open files: what every process here may hold, summed over the busiest host.
    let mut needs: Vec<(String, u64, u64)> = Vec::new(); // (why, total, per process)
    for (service, per_host) in &here {
        let per_host = *per_host;
        match &service.detail {
            Detail::Nginx(n) => {
                let per_process = n.rlimit_nofile.value;
                let total = crate::plan::mul(&[per_process, n.worker_processes.value, per_host]);
                needs.push((
                    format!(
                        "{}: {per_host} x {} x worker_rlimit_nofile {per_process} ({}) = {total}",
                        label(service),
                        crate::rules::plural(n.worker_processes.value, "worker"),
                        n.rlimit_nofile.cite()
                    ),
                    total,
                    per_process,
                ));
            }
            Detail::Redis(r) => {
                let per_process = r.effective_maxclients.value.saturating_add(d::REDIS_RESERVED_FDS);
                let total = crate::plan::mul(&[per_process, per_host]);
                needs.push((
                    format!("{}: {per_host} x (maxclients {} + 32 it keeps for itself) = {total}", label(service), r.effective_maxclients.value),
                    total,
                    per_process,
                ));
            }
            Detail::Pgbouncer(p) => {
                let (per_process, how) = match &service.nofile {
                    Some(n) => (n.value, format!("nofile {}", n.value)),
                    None => {
                        let servers = p.server_connections.value.div_ceil(service.replicas.value.max(1));
                        (
                            p.max_client_conn.value.saturating_add(servers),
                            format!("max_client_conn {} + {servers} server connections", p.max_client_conn.value),
                        )
                    }
                };
                let total = crate::plan::mul(&[per_process, per_host]);
                needs.push((format!("{}: {per_host} x ({how}) = {total}", label(service)), total, per_process));
            }
            _ => {
                if let Some(n) = &service.nofile {
                    let total = crate::plan::mul(&[n.value, service.processes.value, per_host]);
                    needs.push((
                        format!("{}: {per_host} x {} x nofile {} = {total}", label(service), crate::rules::plural(service.processes.value, "process"), n.value),
                        total,
                        n.value,
                    ));
                }
            }
        }
    }
    if !needs.is_empty() {
        let total = crate::plan::sum(needs.iter().map(|n| n.1));
        let mut value = round_up_k(total.saturating_mul(2));
        let mut why = vec![format!("file handles for the whole host: 2 x the {total} the services here may hold, rounded up")];
        why.extend(needs.iter().map(|n| format!("  {}", n.0)));
        if let Some(c) = today(machine, "fs.file-max")
            && c > value
        {
            why.push(today_note(machine, "fs.file-max", c));
            value = c;
        }
        out.push(Entry { key: "fs.file-max".into(), value: value.to_string(), why });

        let (largest_why, _, largest) = needs.iter().max_by_key(|n| n.2).cloned().expect("needs is not empty");
        if largest > NR_OPEN_DEFAULT {
            out.push(Entry {
                key: "fs.nr_open".into(),
                value: largest.to_string(),
                why: vec![
                    format!("the highest open-files limit one process may get; one process here needs {largest}"),
                    format!("  {largest_why}"),
                    format!("above the kernel default {NR_OPEN_DEFAULT}"),
                ],
            });
        }
    }

    // Ephemeral ports: a proxy holding many upstream connections (and their TIME_WAIT
    // remains) runs out of the 28,232 ports of the default range.
    let mut busy = Vec::new();
    for (service, _) in &here {
        match &service.detail {
            Detail::Nginx(n) if !n.upstreams.is_empty() => {
                let upstream = crate::plan::mul(&[n.worker_processes.value, n.worker_connections.value]) / 2;
                let no_keepalive: Vec<&str> = n.upstreams.iter().filter(|u| u.keepalive.is_none()).map(|u| u.name.as_str()).collect();
                if upstream >= DEFAULT_EPHEMERAL_PORTS / 2 {
                    busy.push(format!(
                        "{} may hold {upstream} upstream connections ({} x {} worker_connections / 2)",
                        label(service),
                        crate::rules::plural(n.worker_processes.value, "worker"),
                        n.worker_connections.value
                    ));
                } else if !no_keepalive.is_empty() {
                    busy.push(format!(
                        "{} opens a new connection per request to upstream(s) without keepalive ({}); each port then waits 60s in TIME_WAIT",
                        label(service),
                        no_keepalive.join(", ")
                    ));
                }
            }
            Detail::Pgbouncer(p) if p.server_connections.value >= DEFAULT_EPHEMERAL_PORTS / 2 => {
                busy.push(format!("{} may open {} server connections ({})", label(service), p.server_connections.value, p.server_connections.cite()));
            }
            _ => {}
        }
    }
    if !busy.is_empty() {
        let mut why = vec![format!("outgoing connections draw local ports from this range; the default 32768-60999 has {DEFAULT_EPHEMERAL_PORTS}")];
        why.extend(busy);
        let mut ports: Vec<u64> = here.iter().filter(|(s, _)| s.backlog.is_some() && s.port.value >= 1024).map(|(s, _)| s.port.value).collect();
        ports.sort_unstable();
        ports.dedup();
        if !ports.is_empty() {
            why.push(format!(
                "listeners here on ports >= 1024 ({}): start them before the proxies, or list them in net.ipv4.ip_local_reserved_ports",
                ports.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
            ));
        }
        out.push(Entry { key: "net.ipv4.ip_local_port_range".into(), value: WIDE_PORT_RANGE.into(), why });
    }

    for entry in &mut out {
        if !valid_key(&entry.key) || !valid_value(&entry.value) {
            return Err(err(format!("refusing to write `{} = {}`", entry.key.escape_debug(), entry.value.escape_debug())));
        }
        for why in &mut entry.why {
            *why = comment(why);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze_text;

    fn render(yaml: &str) -> Vec<Artifact> {
        let analysis = analyze_text("capacity.yaml", yaml).expect("spec loads");
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        Sysctl.render(&ctx).expect("renders")
    }

    fn file<'a>(artifacts: &'a [Artifact], path: &str) -> &'a str {
        &artifacts.iter().find(|a| a.path == path).unwrap_or_else(|| panic!("no {path}")).text
    }

    const SPEC: &str = r#"
version: 1
name: shop
machines:
  lb: { count: 1, sysctl: { net.core.somaxconn: 65535, fs.file-max: 2000000 } }
  app: { count: 2 }
  cache: { count: 1 }
  jobs: { count: 1 }
services:
  web:
    kind: gunicorn
    machine: app
    replicas: 4
    backlog: 8192
  nginx:
    kind: nginx
    machine: lb
    worker_processes: 16
    worker_connections: 10000
    worker_rlimit_nofile: 65535
    upstreams: { backend: { to: web, keepalive: 64 } }
    locations: [{ path: /, upstream: backend }]
  redis:
    kind: redis
    machine: cache
    persistence: aof
    maxclients: 20000
  worker:
    kind: sidekiq
    machine: jobs
deploy:
  sysctl: {}
"#;

    #[test]
    fn one_file_per_machine_with_something_to_set_plus_apply() {
        let artifacts = render(SPEC);
        let paths: Vec<&str> = artifacts.iter().map(|a| a.path.as_str()).collect();
        assert_eq!(paths, ["sysctl/lb.conf", "sysctl/app.conf", "sysctl/cache.conf", "sysctl/apply.sh"]);
        for a in &artifacts {
            let first = if a.path.ends_with(".sh") { a.text.lines().nth(1) } else { a.text.lines().next() };
            assert!(first.unwrap().starts_with("# Generated by headroom from capacity.yaml"), "{}", a.path);
        }
    }

    #[test]
    fn somaxconn_covers_backlogs_and_keeps_higher_values() {
        let artifacts = render(SPEC);
        let app = file(&artifacts, "sysctl/app.conf");
        assert!(app.contains("\nnet.core.somaxconn = 8192\n"), "{app}");
        assert!(app.contains("gunicorn `web`"));
        assert!(app.contains("\nnet.ipv4.tcp_max_syn_backlog = 8192\n"));
        let lb = file(&artifacts, "sysctl/lb.conf");
        assert!(lb.contains("\nnet.core.somaxconn = 65535\n"), "the machine's current value is kept:\n{lb}");
        let cache = file(&artifacts, "sysctl/cache.conf");
        assert!(cache.contains("\nnet.core.somaxconn = 4096\n"), "never below the kernel default");
    }

    #[test]
    fn redis_persistence_and_file_handles() {
        let artifacts = render(SPEC);
        let cache = file(&artifacts, "sysctl/cache.conf");
        assert!(cache.contains("\nvm.overcommit_memory = 1\n"));
        assert!(cache.contains("redis `redis` persists"));
        // 2 x (20000 + 32) rounded up to 1024.
        assert!(cache.contains("\nfs.file-max = 40960\n"), "{cache}");
        let lb = file(&artifacts, "sysctl/lb.conf");
        // 2 x 16 x 65535 = 2097120 -> 2097152, above the machine's 2000000.
        assert!(lb.contains("\nfs.file-max = 2097152\n"), "{lb}");
        assert!(!lb.contains("fs.nr_open"));
        assert!(lb.contains("\nnet.ipv4.ip_local_port_range = 1024 65535\n"));
        assert!(!cache.contains("ip_local_port_range"));
        assert!(!file(&artifacts, "sysctl/app.conf").contains("vm.overcommit_memory"));
    }

    #[test]
    fn higher_values_of_today_are_kept_and_overcommit_follows_replication() {
        let spec = SPEC
            .replace("  cache: { count: 1 }", "  cache: { count: 1, sysctl: { fs.file-max: 9000000, net.ipv4.tcp_max_syn_backlog: 4096 } }")
            .replace("    persistence: aof\n", "    mode: sentinel\n");
        let artifacts = render(&spec);
        let cache = file(&artifacts, "sysctl/cache.conf");
        assert!(cache.contains("\nfs.file-max = 9000000\n"), "{cache}");
        assert!(cache.contains("\nnet.ipv4.tcp_max_syn_backlog = 4096\n"));
        assert!(cache.contains("is 9000000 today; kept"));
        assert!(cache.contains("replicates: a full resync forks the master"));
        assert!(cache.contains("\nvm.overcommit_memory = 1\n"));
    }

    #[test]
    fn nr_open_only_above_the_kernel_default() {
        let artifacts = render(&SPEC.replace("worker_rlimit_nofile: 65535", "worker_rlimit_nofile: 2000000"));
        let lb = file(&artifacts, "sysctl/lb.conf");
        assert!(lb.contains("\nfs.nr_open = 2000000\n"), "{lb}");
    }

    #[test]
    fn nothing_without_deploy_sysctl_and_custom_dir() {
        assert!(render(&SPEC.replace("  sysctl: {}\n", "  compose: {}\n")).iter().all(|a| a.target != "sysctl"));
        let artifacts = render(&SPEC.replace("sysctl: {}", "sysctl: { dir: ops/kernel }"));
        assert!(artifacts.iter().any(|a| a.path == "ops/kernel/apply.sh"));
        assert!(file(&artifacts, "ops/kernel/lb.conf").contains("sudo bash ops/kernel/apply.sh ops/kernel/lb.conf"));
    }

    #[test]
    fn apply_script_is_strict_and_has_a_dry_run() {
        let artifacts = render(SPEC);
        let script = file(&artifacts, "sysctl/apply.sh");
        assert!(script.starts_with("#!/usr/bin/env bash\n"));
        assert!(script.contains("set -euo pipefail"));
        assert!(script.contains("--dry-run"));
        assert!(script.contains("DEPLOYMENT=shop\n"));
        assert!(script.contains("FLOORS=(net.core.somaxconn net.ipv4.tcp_max_syn_backlog fs.file-max fs.nr_open)"));
    }

    #[test]
    fn every_entry_is_valid() {
        assert!(valid_key("net.core.somaxconn") && valid_key("fs.file-max"));
        assert!(!valid_key("net.core.somaxconn\nvm.x") && !valid_key("Net.x") && !valid_key("-x") && !valid_key("a b"));
        assert!(valid_value("1024 65535") && !valid_value("1; rm") && !valid_value("1  2") && !valid_value(""));
        let artifacts = render(SPEC);
        for a in artifacts.iter().filter(|a| a.path.ends_with(".conf")) {
            for line in a.text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
                let (k, v) = line.split_once(" = ").expect("key = value");
                assert!(valid_key(k) && valid_value(v), "{line}");
            }
        }
    }
}
