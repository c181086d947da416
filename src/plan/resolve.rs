//! Spec -> Plan: applies every default (citing it), places replicas on machines, builds
//! the connection edges and computes each derived number exactly once.

use super::defaults as d;
use super::*;
use crate::spec::{self, Count, Service, Spec};

fn secs(duration: spec::Duration) -> u64 {
    duration.as_secs_ceil()
}

/// `prefix.key`: spec paths are built a few dozen times per service, so one exact
/// allocation each rather than the formatting machinery.
fn dotted(prefix: &str, key: &str) -> String {
    let mut path = String::with_capacity(prefix.len() + 1 + key.len());
    path.push_str(prefix);
    path.push('.');
    path.push_str(key);
    path
}

/// Host names of a service's replicas, as compose services and nginx upstream
/// servers both name them: `web` for one replica, `web-1..web-N` for more.
pub fn replica_hosts(name: &str, replicas: u64) -> Vec<String> {
    if replicas <= 1 {
        vec![name.to_string()]
    } else {
        (1..=replicas)
            .map(|i| {
                use std::fmt::Write as _;
                let mut host = String::with_capacity(name.len() + 4);
                host.push_str(name);
                let _ = write!(host, "-{i}");
                host
            })
            .collect()
    }
}

/// Parses `"1.24"` / `"1.24.1"` into (major, minor).
pub fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Service names to their position in the spec (and in the plan's `services`).
type Positions<'a> = std::collections::HashMap<&'a str, usize, foldhash::fast::FixedState>;

/// Resolves a loaded spec into a plan.
pub fn resolve(spec: &Spec) -> Plan {
    let load = spec.load.as_ref().map(|load| {
        let service_time = Sourced::spec(load.service_time.as_secs_f64(), "load.service_time");
        LoadPlan {
            rps: Sourced::spec(load.rps, "load.rps"),
            concurrent_users: load.concurrent_users.map(|c| Sourced::spec(c, "load.concurrent_users")),
            db_time: match load.db_time {
                Some(t) => Sourced::spec(t.as_secs_f64(), "load.db_time"),
                None => Sourced::default(service_time.value, "load.db_time", "load.service_time"),
            },
            service_time,
            max_utilization: Sourced::or_default(load.max_utilization, "load.max_utilization", d::MAX_UTILIZATION, "0.75"),
            p95_target: load.p95_target.map(|t| Sourced::spec(t.as_secs_f64(), "load.p95_target")),
        }
    });
    let containerized = spec.deploy.as_ref().is_some_and(|dep| dep.compose.is_some() || dep.kamal.is_some() || dep.kubernetes.is_some());
    let kubernetes = spec.deploy.as_ref().and_then(|dep| dep.kubernetes.as_ref()).map(|k| kubernetes_plan(spec, k));

    let mut services: Vec<ServicePlan> = spec
        .services
        .iter()
        .map(|(name, service)| resolve_service(spec, name, service, containerized))
        .collect();

    if let Some(k8s) = &kubernetes {
        for service in services.iter_mut().filter(|s| s.kind.is_app() || s.kind.is_job()) {
            service.rollout_surge = Some(rollout_surge(k8s, &service.replicas));
        }
    }

    // A service's position in `services` is its position in the spec: looked up
    // by name once per edge, with a fast hasher (the spec's map hashes with SipHash).
    let positions: Positions = spec.services.keys().enumerate().map(|(i, name)| (name.as_str(), i)).collect();

    // Edges by target (a position in `services`), built once: every per-service sum
    // below reads its own list.
    let mut edges = Vec::with_capacity(spec.services.values().map(|s| s.common().uses.len()).sum());
    let mut edges_to: Vec<Vec<usize>> = vec![Vec::new(); services.len()];
    for (index, service) in spec.services.values().enumerate() {
        for (target, pool_use) in &service.common().uses {
            let Some(&target_index) = positions.get(target.as_str()) else { continue };
            let target_service = &spec.services[target_index];
            let edge = resolve_edge(spec, &services[index], target, target_service, pool_use);
            services[index].uses.push(edges.len());
            edges_to[target_index].push(edges.len());
            edges.push(edge);
        }
    }
    let into = |index: usize| edges_to[index].as_slice();

    // Poolers first: a postgres' demand includes its poolers' server connections.
    // (Indexes, not an iterator: each pooler reads the edges and writes itself.)
    #[allow(clippy::needless_range_loop)]
    for index in 0..services.len() {
        if let Detail::Pgbouncer(_) = services[index].detail {
            let client_demand = sum(into(index).iter().map(|&e| edges[e].connections));
            let target_databases = services[index]
                .uses
                .first()
                .and_then(|&e| positions.get(edges[e].to.as_str()).map(|&i| &spec.services[i]))
                .and_then(|s| match s {
                    Service::Postgres(p) => Some(p.databases.clone()),
                    _ => None,
                });
            let users_from_clients: Vec<String> = {
                let mut users: Vec<String> = into(index).iter().map(|&e| edges[e].user.clone()).collect();
                users.sort();
                users.dedup();
                users
            };
            let replicas = services[index].replicas.value;
            let target = services[index].uses.first().map(|&e| edges[e].to.clone());
            let service_path = services[index].path.clone();
            if let Detail::Pgbouncer(p) = &mut services[index].detail {
                p.client_demand = client_demand;
                p.target = target;
                p.databases = match target_databases {
                    Some(dbs) if !dbs.is_empty() => dbs,
                    _ => vec![spec.name.clone()],
                };
                if p.users.is_empty() {
                    p.users = if users_from_clients.is_empty() { vec![spec.name.clone()] } else { users_from_clients };
                }
                p.pools = mul(&[p.databases.len() as u64, p.users.len() as u64]);
                let per_pool = p.default_pool_size.value.saturating_add(p.reserve_pool_size.value);
                let users = p.users.len() as u64;
                let per_db = match p.max_db_connections.value {
                    0 => mul(&[users, per_pool]),
                    cap => mul(&[users, per_pool]).min(cap),
                };
                let mut per_instance = mul(&[per_db, p.databases.len() as u64]);
                if p.max_user_connections.value > 0 {
                    per_instance = per_instance.min(mul(&[users, p.max_user_connections.value]));
                }
                let total = mul(&[per_instance, replicas]);
                let mut formula = format!(
                    "{} x {} x (default_pool_size {} + reserve_pool_size {})",
                    crate::rules::plural(p.databases.len() as u64, "database"),
                    crate::rules::plural(users, "user"),
                    p.default_pool_size.value,
                    p.reserve_pool_size.value
                );
                // Name a cap only where it binds.
                if p.max_db_connections.value > 0 && p.max_db_connections.value < mul(&[users, per_pool]) {
                    formula.push_str(&format!(", capped at max_db_connections {} per database", p.max_db_connections.value));
                }
                if p.max_user_connections.value > 0 && mul(&[users, p.max_user_connections.value]) < mul(&[per_db, p.databases.len() as u64]) {
                    formula.push_str(&format!(", capped at max_user_connections {} per user", p.max_user_connections.value));
                }
                if replicas > 1 {
                    formula.push_str(&format!(", x {replicas} replicas"));
                }
                p.server_connections = Sourced::derived(total, dotted(&service_path, "server_connections"), formula.clone());
                // A pooler's edge to postgres carries its server connections.
                if let Some(&e) = services[index].uses.first() {
                    edges[e].per_process = Sourced::derived(per_instance, dotted(&service_path, "default_pool_size"), formula);
                    edges[e].connections = total;
                }
            }
        }
    }
    // Server connections of the poolers in front of each service (by position).
    let mut pooler_server: Vec<u64> = vec![0; services.len()];
    for service in &services {
        if let Detail::Pgbouncer(p) = &service.detail
            && let Some(&target) = p.target.as_deref().and_then(|t| positions.get(t))
        {
            pooler_server[target] = pooler_server[target].saturating_add(p.server_connections.value);
        }
    }
    for (index, service) in services.iter_mut().enumerate() {
        let incoming = into(index);
        match &mut service.detail {
            Detail::Postgres(p) => {
                let direct = sum(incoming.iter().map(|&e| &edges[e]).filter(|e| e.from_kind != Kind::Pgbouncer).map(|e| e.connections));
                let pooled = pooler_server[index];
                p.demand = sum([direct, pooled, p.other_connections.value]);
            }
            Detail::Redis(r) => {
                r.demand = sum(incoming.iter().map(|&e| edges[e].connections));
            }
            Detail::Qdrant(q) => {
                q.demand = sum(incoming.iter().map(|&e| edges[e].connections));
            }
            _ => {}
        }
    }

    redis_auth(spec, &positions, &mut services, &edges, containerized);

    let mut placed: std::collections::HashMap<&str, Vec<&ServicePlan>> = std::collections::HashMap::new();
    for service in &services {
        if let Some(machine) = &service.machine {
            placed.entry(machine.as_str()).or_default().push(service);
        }
    }
    let machines = spec
        .machines
        .iter()
        .map(|(name, machine)| resolve_machine(name, machine, placed.get(name.as_str()).map_or(&[][..], Vec::as_slice)))
        .collect();

    let kamal_proxy_timeout = spec.deploy.as_ref().and_then(|dep| dep.kamal.as_ref()).map(|kamal| {
        let written = kamal.proxy.as_ref().and_then(|p| p.response_timeout).map(secs);
        Sourced::or_default(written, "deploy.kamal.proxy.response_timeout", d::KAMAL_PROXY_RESPONSE_TIMEOUT, "kamal-proxy response_timeout = 30s")
    });

    let kamal_tls = spec.deploy.as_ref().and_then(|dep| dep.kamal.as_ref()).and_then(|kamal| kamal_tls(spec, kamal, &services));

    let mut plan = Plan {
        name: spec.name.clone(),
        load,
        machines,
        services,
        edges,
        capacity: None,
        containerized,
        railway: spec.deploy.as_ref().is_some_and(|d| d.railway.is_some()),
        kamal_proxy_timeout,
        kubernetes,
        kamal_tls,
        index: PlanIndex::default(),
    };
    plan.reindex();
    set_expected_clients(&mut plan);
    plan.capacity = capacity(&plan);
    plan
}

/// Under Kubernetes alone, an app's pods sit behind one Service named after it: an
/// nginx upstream has one server, the Service, whatever the pod count (which the
/// autoscaler changes).
pub fn behind_one_service(spec: &Spec) -> bool {
    spec.deploy.as_ref().is_some_and(|d| d.kubernetes.is_some() && d.compose.is_none() && d.kamal.is_none())
}

fn rollout_value(written: Option<&spec::IntOrPercent>, path: &str, default_percent: u64) -> Sourced<Rollout> {
    match written {
        Some(spec::IntOrPercent::Count(n)) => Sourced::spec(Rollout::Count(*n), path),
        Some(spec::IntOrPercent::Percent(text)) => {
            Sourced::spec(Rollout::Percent(text.trim_end_matches('%').parse().unwrap_or(default_percent)), path)
        }
        None => Sourced::default(Rollout::Percent(default_percent), path, format!("Kubernetes' {default_percent}%")),
    }
}

fn kubernetes_plan(spec: &Spec, k8s: &spec::KubernetesDeploy) -> KubernetesPlan {
    let p = |key: &str| format!("deploy.kubernetes.{key}");
    KubernetesPlan {
        namespace: match &k8s.namespace {
            Some(ns) => Sourced::spec(ns.clone(), p("namespace")),
            None => Sourced::default(spec.name.clone(), p("namespace"), "the deployment name"),
        },
        version: match k8s.version.as_deref().and_then(parse_version) {
            Some(v) => Sourced::spec(v, p("version")),
            None => Sourced::default(d::KUBERNETES_VERSION, p("version"), "Kubernetes 1.35, the oldest release maintained upstream"),
        },
        max_surge: rollout_value(k8s.max_surge.as_ref(), &p("max_surge"), d::ROLLOUT_SURGE_PERCENT),
        max_unavailable: rollout_value(k8s.max_unavailable.as_ref(), &p("max_unavailable"), d::ROLLOUT_UNAVAILABLE_PERCENT),
    }
}

/// Pods a rolling update adds at `replicas` (the autoscaler's max when it has one).
fn rollout_surge(k8s: &KubernetesPlan, replicas: &Sourced<u64>) -> Sourced<u64> {
    let surge = k8s.max_surge.value.pods(replicas.value, true);
    let default = if k8s.max_surge.is_default() { "; Kubernetes' default" } else { "" };
    let formula = match k8s.max_surge.value {
        Rollout::Count(n) => format!("{n} pods"),
        Rollout::Percent(pct) => format!("{pct}% of {}, rounded up{default}", crate::rules::plural(replicas.value, "replica")),
    };
    Sourced::derived(surge, k8s.max_surge.path().to_string(), formula)
}

/// kamal-proxy's TLS and the hosts of the role it fronts: the first app server, on
/// the addresses of its machine group (its `count` when none are listed).
fn kamal_tls(spec: &Spec, kamal: &spec::KamalDeploy, services: &[ServicePlan]) -> Option<KamalTlsPlan> {
    let role = services.iter().find(|s| s.kind.is_app())?;
    let proxy = kamal.proxy.as_ref();
    let custom_certificate = proxy.is_some_and(|p| p.certificate_pem.is_some() && p.private_key_pem.is_some());
    let ssl = proxy.and_then(|p| p.ssl).unwrap_or(custom_certificate);
    let (hosts, hosts_path) = match role.machine.as_ref().and_then(|m| spec.machines.get(m).map(|g| (m, g))) {
        Some((name, group)) if !group.addresses.is_empty() => (group.addresses.len() as u64, format!("machines.{name}.addresses")),
        Some((name, group)) => (u64::from(group.count), format!("machines.{name}.count")),
        None => (1, format!("{}.machine", role.path)),
    };
    Some(KamalTlsPlan { ssl, custom_certificate, role: role.name.clone(), role_path: role.path.clone(), hosts, hosts_path })
}

fn machine_cpus(spec: &Spec, machine: Option<&String>) -> Option<(f64, String)> {
    let name = machine?;
    let cpus = spec.machines.get(name)?.cpus?;
    Some((cpus, format!("machines.{name}.cpus")))
}

fn resolve_service(spec: &Spec, name: &str, service: &Service, containerized: bool) -> ServicePlan {
    let path = dotted("services", name);
    let p = |key: &str| dotted(&path, key);
    let common = service.common();
    let autoscale = service.autoscale().map(|a| AutoscalePlan {
        min: Sourced::spec(a.min, p("autoscale.min")),
        max: Sourced::spec(a.max, p("autoscale.max")),
        target_cpu: Sourced::or_default(a.target_cpu, p("autoscale.target_cpu"), d::HPA_TARGET_CPU, "80% of the CPU request, what `kubectl autoscale` sets"),
    });
    let (replicas, min_replicas) = match &autoscale {
        Some(a) => (a.max.clone(), a.min.clone()),
        None => {
            let replicas = Sourced::or_default(common.replicas, p("replicas"), 1, "1 replica");
            (replicas.clone(), replicas)
        }
    };
    let resources = common.resources.clone().unwrap_or_default();
    let cpus = match resources.cpus {
        Some(c) => Some(Sourced::spec(c, p("resources.cpus"))),
        None => machine_cpus(spec, common.machine.as_ref()).map(|(c, at)| Sourced::derived(c, p("resources.cpus"), at)),
    };
    let memory = resources.memory.map(|m| Sourced::spec(m.bytes(), p("resources.memory")));
    let nofile = match (common.nofile, common.machine.as_ref().and_then(|m| spec.machines.get(m)).and_then(|m| m.nofile)) {
        (Some(n), _) => Some(Sourced::spec(n, p("nofile"))),
        (None, Some(n)) => Some(Sourced::derived(n, p("nofile"), format!("machines.{}.nofile", common.machine.as_deref().unwrap_or_default()))),
        _ => None,
    };
    let sysctls: Vec<(String, String)> = common.sysctls.iter().map(|(k, v)| (k.clone(), sysctl_text(v))).collect();
    let somaxconn = somaxconn_for(spec, name, common, containerized);
    let health = common.health.as_ref().map(|h| HealthPlan {
        path: h.path.clone(),
        interval: h.interval.map_or(d::HEALTH_INTERVAL, secs),
        timeout: h.timeout.map_or(d::HEALTH_TIMEOUT, secs),
        retries: h.retries.unwrap_or(d::HEALTH_RETRIES),
        start_period: h.start_period.map_or(0, secs),
    });
    let env = common.env.clone().unwrap_or_default();
    let one = |key: &str, note: &'static str| Sourced::default(1u64, p(key), note);

    let (kind, processes, slots_per_process, port, backlog, detail) = match service {
        Service::Gunicorn(g) => {
            let worker_class = Sourced::or_default(g.worker_class, p("worker_class"), spec::WorkerClass::Sync, "gunicorn worker_class = sync");
            let workers = match &g.workers {
                Some(Count::Number(n)) => Sourced::spec(*n, p("workers")),
                Some(Count::Auto(_)) => match &cpus {
                    Some(c) => Sourced::derived(
                        (2.0 * c.value.ceil()) as u64 + 1,
                        p("workers"),
                        format!("auto = 2 x {} cpus ({}) + 1", c.value.ceil(), c.path()),
                    ),
                    None => Sourced::default(3, p("workers"), "auto with unknown cpus: 2 x 1 + 1"),
                },
                None => Sourced::default(d::GUNICORN_WORKERS, p("workers"), "gunicorn workers = 1"),
            };
            let threads = Sourced::or_default(g.threads, p("threads"), d::GUNICORN_THREADS, "gunicorn threads = 1");
            let worker_connections = Sourced::or_default(g.worker_connections, p("worker_connections"), d::GUNICORN_WORKER_CONNECTIONS, "gunicorn worker_connections = 1000");
            let slots = match worker_class.value {
                spec::WorkerClass::Sync => Sourced::derived(1, p("worker_class"), "sync: one request per worker"),
                spec::WorkerClass::Gthread => threads.clone(),
                spec::WorkerClass::Gevent | spec::WorkerClass::Uvicorn => worker_connections.clone(),
            };
            let detail = Detail::Gunicorn(GunicornPlan {
                worker_class,
                workers: workers.clone(),
                threads,
                worker_connections,
                timeout: Sourced::or_default(g.timeout.map(secs), p("timeout"), d::GUNICORN_TIMEOUT, "gunicorn timeout = 30s"),
                graceful_timeout: Sourced::or_default(g.graceful_timeout.map(secs), p("graceful_timeout"), d::GUNICORN_GRACEFUL_TIMEOUT, "gunicorn graceful_timeout = 30s"),
                keepalive: Sourced::or_default(g.keepalive.map(secs), p("keepalive"), d::GUNICORN_KEEPALIVE, "gunicorn keepalive = 2s"),
                max_requests: Sourced::or_default(g.max_requests, p("max_requests"), 0, "gunicorn max_requests = 0 (never restart)"),
                max_requests_jitter: Sourced::or_default(g.max_requests_jitter, p("max_requests_jitter"), 0, "gunicorn max_requests_jitter = 0"),
                app: g.app.clone().unwrap_or_else(|| "app:app".into()),
                build: g.build.clone(),
            });
            let port = Sourced::or_default(common.port.map(u64::from), p("port"), d::GUNICORN_PORT, "gunicorn bind port 8000");
            let backlog = Sourced::or_default(g.backlog, p("backlog"), d::GUNICORN_BACKLOG, "gunicorn backlog = 2048");
            (Kind::Gunicorn, workers, slots, port, Some(backlog), detail)
        }
        Service::Puma(puma) => {
            let workers = Sourced::or_default(puma.workers, p("workers"), d::PUMA_WORKERS, "puma workers = 0 (single mode)");
            let processes = if workers.value == 0 {
                Sourced::derived(1, p("workers"), "single mode: one process")
            } else {
                workers.clone()
            };
            let threads = Sourced::or_default(puma.threads, p("threads"), d::PUMA_THREADS, "puma max threads = 5");
            let min_threads = Sourced::or_default(puma.min_threads, p("min_threads"), threads.value, "same as threads");
            let detail = Detail::Puma(PumaPlan {
                preload: puma.preload.unwrap_or(workers.value > 0),
                workers,
                threads: threads.clone(),
                min_threads,
                timeout: Sourced::or_default(puma.timeout.map(secs), p("timeout"), d::PUMA_WORKER_TIMEOUT, "puma worker_timeout = 60s"),
                app: puma.app.clone().unwrap_or_else(|| "config.ru".into()),
                build: puma.build.clone(),
            });
            let port = Sourced::or_default(common.port.map(u64::from), p("port"), d::PUMA_PORT, "Rails' puma port 3000");
            let backlog = Sourced::or_default(puma.backlog, p("backlog"), d::PUMA_BACKLOG, "puma backlog = 1024");
            (Kind::Puma, processes, threads, port, Some(backlog), detail)
        }
        Service::Sidekiq(job) | Service::Celery(job) | Service::SolidQueue(job) | Service::Rq(job) | Service::Worker(job) => {
            let (kind, default, note) = match service {
                Service::Sidekiq(_) => (Kind::Sidekiq, d::SIDEKIQ_CONCURRENCY, "sidekiq concurrency = 5".into()),
                Service::SolidQueue(_) => (Kind::SolidQueue, d::SOLID_QUEUE_THREADS, "solid_queue threads = 3".into()),
                Service::Celery(_) => {
                    let c = cpus.as_ref().map_or(1, |c| c.value.ceil().max(1.0) as u64);
                    (Kind::Celery, c, std::borrow::Cow::Owned(format!("celery concurrency = cpus ({c})")))
                }
                Service::Rq(_) => (Kind::Rq, 1, "rq runs one job per worker".into()),
                _ => (Kind::Worker, 1, "1".into()),
            };
            let concurrency = Sourced::or_default(job.concurrency, p("concurrency"), default, note);
            let processes = Sourced::or_default(job.processes, p("processes"), 1, "1 process");
            let detail = Detail::Job(JobPlan { concurrency: concurrency.clone(), command: job.command.clone(), build: job.build.clone() });
            let port = Sourced::default(0, p("port"), "no listener");
            (kind, processes, concurrency, port, None, detail)
        }
        Service::Nginx(nginx) => {
            let (worker_processes, auto) = match &nginx.worker_processes {
                Some(Count::Number(n)) => (Sourced::spec(*n, p("worker_processes")), false),
                Some(Count::Auto(_)) => match &cpus {
                    Some(c) => (Sourced::derived(c.value.ceil().max(1.0) as u64, p("worker_processes"), format!("auto = {} cpus ({})", c.value.ceil(), c.path())), true),
                    None => (Sourced::default(1, p("worker_processes"), "auto with unknown cpus: 1 assumed"), true),
                },
                None => (Sourced::default(d::NGINX_WORKER_PROCESSES, p("worker_processes"), "nginx worker_processes = 1"), false),
            };
            let worker_connections = Sourced::or_default(nginx.worker_connections, p("worker_connections"), d::NGINX_WORKER_CONNECTIONS, "nginx worker_connections = 512");
            let upstreams = nginx
                .upstreams
                .iter()
                .map(|(up_name, up)| {
                    let up_path = [path.as_str(), ".upstreams.", up_name].concat();
                    let target = spec.services.get(&up.to);
                    let target_replicas = target.map_or(1, |t| t.autoscale().map_or(t.common().replicas.unwrap_or(1), |a| a.max));
                    let target_port = target.map_or(d::GUNICORN_PORT, |t| {
                        t.common().port.map(u64::from).unwrap_or(match t {
                            Service::Puma(_) => d::PUMA_PORT,
                            _ => d::GUNICORN_PORT,
                        })
                    });
                    let max_conns = Sourced::or_default(up.max_conns, dotted(&up_path, "max_conns"), 0, "nginx max_conns = 0 (unlimited)");
                    UpstreamPlan {
                        name: up_name.clone(),
                        path: up_path.clone(),
                        to: up.to.clone(),
                        balance: up.balance.unwrap_or(spec::Balance::RoundRobin),
                        keepalive: up.keepalive.map(|k| Sourced::spec(k, dotted(&up_path, "keepalive"))),
                        keepalive_timeout: up.keepalive_timeout.map(secs),
                        keepalive_requests: up.keepalive_requests,
                        max_fails: Sourced::or_default(up.max_fails, dotted(&up_path, "max_fails"), d::NGINX_MAX_FAILS, "nginx max_fails = 1"),
                        fail_timeout: Sourced::or_default(up.fail_timeout.map(secs), dotted(&up_path, "fail_timeout"), d::NGINX_FAIL_TIMEOUT, "nginx fail_timeout = 10s"),
                        zone: max_conns.value > 0,
                        max_conns,
                        weight: up.weight.unwrap_or(1),
                        servers: if behind_one_service(spec) {
                            vec![(up.to.clone(), target_port)]
                        } else {
                            replica_hosts(&up.to, target_replicas).into_iter().map(|h| (h, target_port)).collect()
                        },
                    }
                })
                .collect();
            let locations = nginx
                .locations
                .iter()
                .enumerate()
                .map(|(i, loc)| {
                    let lp = p(&format!("locations[{i}]"));
                    LocationPlan {
                        path: loc.path.clone(),
                        spec_path: lp.clone(),
                        upstream: loc.upstream.clone(),
                        read_timeout: Sourced::or_default(loc.read_timeout.map(secs), dotted(&lp, "read_timeout"), d::NGINX_PROXY_TIMEOUT, "nginx proxy_read_timeout = 60s"),
                        send_timeout: Sourced::or_default(loc.send_timeout.map(secs), dotted(&lp, "send_timeout"), d::NGINX_PROXY_TIMEOUT, "nginx proxy_send_timeout = 60s"),
                        connect_timeout: Sourced::or_default(loc.connect_timeout.map(secs), dotted(&lp, "connect_timeout"), d::NGINX_PROXY_TIMEOUT, "nginx proxy_connect_timeout = 60s"),
                        websocket: loc.websocket.unwrap_or(false),
                        rate_limit: loc.rate_limit.clone(),
                        burst: loc.burst,
                    }
                })
                .collect();
            let rate_limits = nginx
                .rate_limits
                .iter()
                .map(|(zone, rl)| RateLimitPlan { name: zone.clone(), path: p(&format!("rate_limits.{zone}")), rate: rl.rate.clone(), zone: rl.zone.bytes() })
                .collect();
            let detail = Detail::Nginx(NginxPlan {
                worker_processes: worker_processes.clone(),
                worker_processes_auto: auto,
                worker_connections: worker_connections.clone(),
                worker_rlimit_nofile: nginx.worker_rlimit_nofile.map(|n| Sourced::spec(n, p("worker_rlimit_nofile"))),
                rlimit_nofile: match nginx.worker_rlimit_nofile {
                    Some(n) => Sourced::spec(n, p("worker_rlimit_nofile")),
                    None => Sourced::derived(
                        worker_connections.value.saturating_mul(2),
                        p("worker_rlimit_nofile"),
                        format!("2 x worker_connections {} ({})", worker_connections.value, worker_connections.path()),
                    ),
                },
                server_name: nginx.server_name.clone().unwrap_or_else(|| "_".into()),
                upstreams,
                locations,
                rate_limits,
                expected_clients: None,
            });
            let port = Sourced::or_default(common.port.map(u64::from), p("port"), 80, "http port 80");
            let backlog = Sourced::or_default(nginx.backlog, p("backlog"), d::NGINX_BACKLOG, "nginx listen backlog = 511");
            (Kind::Nginx, worker_processes, worker_connections, port, Some(backlog), detail)
        }
        Service::Pgbouncer(pgb) => {
            let version = match pgb.version.as_deref().and_then(parse_version) {
                Some(v) => Sourced::spec(v, p("version")),
                None => Sourced::default(d::PGBOUNCER_VERSION, p("version"), "not pinned: what every supported version (1.17-1.24) accepts, as the oldest, 1.17"),
            };
            let pool_mode = Sourced::or_default(pgb.pool_mode, p("pool_mode"), spec::PoolMode::Session, "PgBouncer pool_mode = session");
            let max_prepared_statements = if version.value < (1, 21) {
                None
            } else if version.value < (1, 24) {
                Some(Sourced::or_default(pgb.max_prepared_statements, p("max_prepared_statements"), 0, format!("PgBouncer {}.{} max_prepared_statements = 0", version.value.0, version.value.1)))
            } else {
                Some(Sourced::or_default(pgb.max_prepared_statements, p("max_prepared_statements"), d::PGBOUNCER_MAX_PREPARED_STATEMENTS_1_24, "PgBouncer 1.24 max_prepared_statements = 200"))
            };
            let detail = Detail::Pgbouncer(Box::new(PgbouncerPlan {
                version,
                pool_mode,
                max_client_conn: Sourced::or_default(pgb.max_client_conn, p("max_client_conn"), d::PGBOUNCER_MAX_CLIENT_CONN, "PgBouncer max_client_conn = 100"),
                default_pool_size: Sourced::or_default(pgb.default_pool_size, p("default_pool_size"), d::PGBOUNCER_DEFAULT_POOL_SIZE, "PgBouncer default_pool_size = 20"),
                min_pool_size: Sourced::or_default(pgb.min_pool_size, p("min_pool_size"), 0, "PgBouncer min_pool_size = 0"),
                reserve_pool_size: Sourced::or_default(pgb.reserve_pool_size, p("reserve_pool_size"), 0, "PgBouncer reserve_pool_size = 0"),
                reserve_pool_timeout: Sourced::or_default(pgb.reserve_pool_timeout.map(secs), p("reserve_pool_timeout"), d::PGBOUNCER_RESERVE_POOL_TIMEOUT, "PgBouncer reserve_pool_timeout = 5s"),
                max_db_connections: Sourced::or_default(pgb.max_db_connections, p("max_db_connections"), 0, "PgBouncer max_db_connections = 0 (unlimited)"),
                max_user_connections: Sourced::or_default(pgb.max_user_connections, p("max_user_connections"), 0, "PgBouncer max_user_connections = 0 (unlimited)"),
                max_prepared_statements,
                query_wait_timeout: Sourced::or_default(pgb.query_wait_timeout.map(secs), p("query_wait_timeout"), d::PGBOUNCER_QUERY_WAIT_TIMEOUT, "PgBouncer query_wait_timeout = 120s"),
                server_idle_timeout: Sourced::or_default(pgb.server_idle_timeout.map(secs), p("server_idle_timeout"), d::PGBOUNCER_SERVER_IDLE_TIMEOUT, "PgBouncer server_idle_timeout = 600s"),
                server_lifetime: Sourced::or_default(pgb.server_lifetime.map(secs), p("server_lifetime"), d::PGBOUNCER_SERVER_LIFETIME, "PgBouncer server_lifetime = 3600s"),
                auth_type: pgb.auth_type.clone().unwrap_or_else(|| "scram-sha-256".into()),
                auth_file: pgb.auth_file.clone().unwrap_or_else(|| "/etc/pgbouncer/userlist.txt".into()),
                users: pgb.users.clone(),
                target: None,
                databases: Vec::new(),
                pools: 0,
                server_connections: Sourced::derived(0, p("server_connections"), "not resolved"),
                client_demand: 0,
            }));
            let port = Sourced::or_default(common.port.map(u64::from), p("port"), d::PGBOUNCER_PORT, "PgBouncer listen_port = 6432");
            let backlog = Sourced::or_default(pgb.listen_backlog, p("listen_backlog"), d::PGBOUNCER_LISTEN_BACKLOG, "PgBouncer listen_backlog = 128");
            (Kind::Pgbouncer, one("processes", "one process"), one("slots", "n/a"), port, Some(backlog), detail)
        }
        Service::Postgres(pg) => {
            let max_connections = Sourced::or_default(pg.max_connections, p("max_connections"), d::POSTGRES_MAX_CONNECTIONS, "PostgreSQL max_connections = 100");
            let superuser = Sourced::or_default(pg.superuser_reserved_connections, p("superuser_reserved_connections"), d::POSTGRES_SUPERUSER_RESERVED, "PostgreSQL superuser_reserved_connections = 3");
            let reserved = Sourced::or_default(pg.reserved_connections, p("reserved_connections"), d::POSTGRES_RESERVED, "PostgreSQL reserved_connections = 0");
            let usable = max_connections.value.saturating_sub(superuser.value).saturating_sub(reserved.value);
            let max_worker_processes = Sourced::or_default(pg.max_worker_processes, p("max_worker_processes"), d::POSTGRES_MAX_WORKER_PROCESSES, "PostgreSQL max_worker_processes = 8");
            let ram = memory.as_ref().map(|m| m.value).or_else(|| {
                common.machine.as_ref().and_then(|m| spec.machines.get(m)).and_then(|m| m.memory).map(|m| m.bytes())
            });
            let storage = pg.storage.unwrap_or(spec::Storage::Ssd);
            let tuning = ram.map(|ram| postgres_tuning(ram, pg, storage, max_connections.value, max_worker_processes.value, &p));
            let detail = Detail::Postgres(PostgresPlan {
                version: match (pg.version, pg.reserved_connections) {
                    (Some(v), _) => Sourced::spec(u64::from(v), p("version")),
                    // Specs rebuilt by `import` from a postgresql.conf that sets it (a
                    // loaded spec must pin the version itself): only 16+ reads that file.
                    (None, Some(_)) => Sourced::derived(
                        crate::load::versions::POSTGRES_RESERVED_CONNECTIONS,
                        p("version"),
                        "reserved_connections is set, which only PostgreSQL 16+ reads",
                    ),
                    (None, None) => Sourced::default(d::POSTGRES_VERSION, p("version"), "not pinned: PostgreSQL 16 for the image, settings every supported version (13-17) accepts"),
                },
                max_connections,
                superuser_reserved_connections: superuser,
                reserved_connections: reserved,
                usable_connections: usable,
                other_connections: Sourced::or_default(pg.other_connections, p("other_connections"), 0, "none declared"),
                databases: if pg.databases.is_empty() { vec![spec.name.clone()] } else { pg.databases.clone() },
                workload: pg.workload.unwrap_or(spec::Workload::Web),
                storage,
                read_replicas: pg.read_replicas.unwrap_or(0),
                max_worker_processes,
                demand: 0,
                tuning,
            });
            let port = Sourced::or_default(common.port.map(u64::from), p("port"), d::POSTGRES_PORT, "PostgreSQL port 5432");
            (Kind::Postgres, one("processes", "one server"), one("slots", "n/a"), port, None, detail)
        }
        Service::Redis(redis) => {
            let maxclients = Sourced::or_default(redis.maxclients, p("maxclients"), d::REDIS_MAXCLIENTS, "Redis maxclients = 10000");
            let effective = match &nofile {
                Some(n) if n.value.saturating_sub(d::REDIS_RESERVED_FDS) < maxclients.value => Sourced::derived(
                    n.value.saturating_sub(d::REDIS_RESERVED_FDS),
                    p("maxclients"),
                    format!("nofile {} ({}) - 32: Redis lowers maxclients to fit its fd limit", n.value, n.path()),
                ),
                _ => maxclients.clone(),
            };
            let policy = Sourced::or_default(redis.maxmemory_policy.clone(), p("maxmemory_policy"), d::REDIS_POLICY.to_string(), "Redis maxmemory-policy = noeviction");
            let usage = redis.usage.unwrap_or(if policy.value == "noeviction" { spec::RedisUsage::Store } else { spec::RedisUsage::Cache });
            let mode = redis.mode.unwrap_or(spec::RedisMode::Standalone);
            let detail = Detail::Redis(Box::new(RedisPlan {
                mode,
                maxmemory: redis.maxmemory.map(|m| Sourced::spec(m.bytes(), p("maxmemory"))),
                maxmemory_policy: policy,
                maxclients,
                effective_maxclients: effective,
                tcp_backlog: Sourced::or_default(redis.tcp_backlog, p("tcp_backlog"), d::REDIS_TCP_BACKLOG, "Redis tcp-backlog = 511"),
                persistence: Sourced::or_default(redis.persistence, p("persistence"), spec::Persistence::None, "no persistence"),
                usage,
                sentinels: redis.sentinels.map(|s| Sourced::spec(s, p("sentinels"))),
                quorum: redis.quorum.map(|q| Sourced::spec(q, p("quorum"))),
                sentinel_quorum: (mode == spec::RedisMode::Sentinel).then(|| match redis.quorum {
                    Some(q) => Sourced::spec(q, p("quorum")),
                    None => {
                        let sentinels = redis.sentinels.unwrap_or(3);
                        Sourced::derived(sentinels / 2 + 1, p("quorum"), format!("majority of {sentinels} sentinels: {sentinels} / 2 + 1"))
                    }
                }),
                masters: redis.masters.map(|m| Sourced::spec(m, p("masters"))),
                replicas_per_master: redis.replicas_per_master.unwrap_or(1),
                demand: 0,
                password: match &redis.password {
                    Some(spec::RedisPassword::Secret(secret)) => Some(Sourced::spec(secret.clone(), p("password"))),
                    Some(spec::RedisPassword::Enabled(_)) => None,
                    None if redis.external == Some(true) => None,
                    None => Some(Sourced::default(default_redis_secret(name), p("password"), "<SERVICE>_PASSWORD")),
                },
                bind: redis.bind.clone(),
                reachable_from: Vec::new(),
            }));
            let port = Sourced::or_default(common.port.map(u64::from), p("port"), d::REDIS_PORT, "Redis port 6379");
            let backlog = match &detail {
                Detail::Redis(r) => Some(r.tcp_backlog.clone()),
                _ => None,
            };
            (Kind::Redis, one("processes", "one server"), one("slots", "n/a"), port, backlog, detail)
        }
        Service::Qdrant(q) => {
            let nodes = replicas.value.max(1);
            let memory_limit = memory.clone().or_else(|| {
                let name = common.machine.as_ref()?;
                let bytes = spec.machines.get(name)?.memory?.bytes();
                Some(Sourced::derived(bytes, p("resources.memory"), format!("machines.{name}.memory")))
            });
            let (collections, memory_per_node, nodes_needed) =
                super::qdrant::collections(&path, q, nodes, memory_limit.as_ref().map(|m| m.value));
            let detail = Detail::Qdrant(QdrantPlan {
                nodes,
                grpc_port: Sourced::or_default(q.grpc_port.map(u64::from), p("grpc_port"), d::QDRANT_GRPC_PORT, "Qdrant service.grpc_port = 6334"),
                p2p_port: Sourced::or_default(q.p2p_port.map(u64::from), p("p2p_port"), d::QDRANT_P2P_PORT, "Qdrant cluster.p2p.port = 6335"),
                max_request_size_mb: Sourced::or_default(q.max_request_size_mb, p("max_request_size_mb"), d::QDRANT_MAX_REQUEST_SIZE_MB, "Qdrant service.max_request_size_mb = 32"),
                max_workers: Sourced::or_default(q.max_workers, p("max_workers"), d::QDRANT_MAX_WORKERS, "Qdrant service.max_workers = 0 (one per CPU)"),
                collections,
                memory_per_node,
                memory_limit,
                nodes_needed,
                demand: 0,
            });
            let port = Sourced::or_default(common.port.map(u64::from), p("port"), d::QDRANT_HTTP_PORT, "Qdrant service.http_port = 6333");
            (Kind::Qdrant, one("processes", "one server"), one("slots", "n/a"), port, None, detail)
        }
    };
    let slots = mul(&[replicas.value, processes.value, slots_per_process.value]);
    ServicePlan {
        name: name.to_string(),
        kind,
        path,
        replicas,
        min_replicas,
        autoscale,
        rollout_surge: None,
        external: service.external(),
        processes,
        slots_per_process,
        slots,
        machine: common.machine.clone(),
        cpus,
        memory,
        reserve_cpus: resources.reserve_cpus,
        reserve_memory: resources.reserve_memory.map(|m| m.bytes()),
        image: common.image.clone(),
        port,
        backlog,
        somaxconn,
        nofile,
        health,
        env_clear: env.clear.into_iter().collect(),
        env_secret: env.secret,
        sysctls,
        publish: common.publish.iter().filter_map(|entry| spec::Published::parse(entry).ok()).collect(),
        uses: Vec::with_capacity(common.uses.len()),
        detail,
    }
}

fn sysctl_text(value: &spec::SysctlValue) -> String {
    match value {
        spec::SysctlValue::Number(n) => n.to_string(),
        spec::SysctlValue::Text(t) => t.clone(),
    }
}

fn somaxconn_for(spec: &Spec, name: &str, common: &spec::Common, containerized: bool) -> Sourced<u64> {
    const KEY: &str = "net.core.somaxconn";
    const AT: &str = ".sysctls[\"net.core.somaxconn\"]";
    let service_path = || {
        let mut path = String::with_capacity("services.".len() + name.len() + AT.len());
        path.push_str("services.");
        path.push_str(name);
        path.push_str(AT);
        path
    };
    if let Some(v) = common.sysctls.get(KEY).and_then(|v| sysctl_text(v).trim().parse().ok()) {
        return Sourced::spec(v, service_path());
    }
    let machine_value = common
        .machine
        .as_ref()
        .and_then(|m| spec.machines.get(m).map(|mm| (m, mm)))
        .and_then(|(m, mm)| mm.sysctl.get(KEY).and_then(|v| sysctl_text(v).trim().parse().ok()).map(|v| (m, v)));
    match (machine_value, containerized) {
        (Some((m, v)), false) => Sourced::spec(v, format!("machines.{m}.sysctl[\"{KEY}\"]")),
        (_, true) => Sourced::default(
            d::SOMAXCONN,
            service_path(),
            "4096, the kernel default a container's network namespace starts with (Linux >= 5.4)",
        ),
        (None, false) => Sourced::default(d::SOMAXCONN, service_path(), "Linux >= 5.4 net.core.somaxconn = 4096"),
    }
}

fn postgres_tuning(ram: u64, pg: &spec::Postgres, storage: spec::Storage, max_connections: u64, max_workers: u64, p: &dyn Fn(&str) -> String) -> PostgresTuning {
    const MIB: u64 = 1024 * 1024;
    const KIB: u64 = 1024;
    const PAGE: u64 = 8 * KIB;
    // Derived sizes land on the unit PostgreSQL keeps them in (8kB pages, kB) and inside
    // its ranges, so the server holds exactly what the file says.
    let pages = |bytes: u64, (min, max): (u64, u64)| (bytes / PAGE * PAGE).clamp(min, max);
    let shared_buffers = match pg.shared_buffers {
        Some(s) => Sourced::spec(s.bytes(), p("shared_buffers")),
        None => Sourced::derived(pages(ram / 4, crate::load::limits::POSTGRES_SHARED_BUFFERS), p("shared_buffers"), "memory / 4"),
    };
    let work_mem = match pg.work_mem {
        Some(w) => Sourced::spec(w.bytes(), p("work_mem")),
        None => {
            let per = ram.saturating_sub(shared_buffers.value) / mul(&[max_connections.saturating_add(max_workers), 3]).max(1);
            // Round down to whole KiB, inside PostgreSQL's 64kB .. 2147483647kB.
            let (min, max) = crate::load::limits::POSTGRES_WORK_MEM;
            Sourced::derived((per / KIB * KIB).clamp(min, max), p("work_mem"), "(memory - shared_buffers) / ((max_connections + max_worker_processes) x 3)")
        }
    };
    let (random_page_cost, effective_io_concurrency) = match storage {
        spec::Storage::Hdd => (4.0, 2),
        spec::Storage::Ssd | spec::Storage::Nvme => (1.1, 200),
    };
    PostgresTuning {
        wal_buffers: pages(shared_buffers.value * 3 / 100, (32 * KIB, 16 * MIB)),
        shared_buffers,
        effective_cache_size: pages(ram / 4 * 3, (PAGE, crate::load::limits::INT_MAX * PAGE)),
        // PostgreSQL 13-15 refuse less than 1MB.
        maintenance_work_mem: (ram / 16 / KIB * KIB).clamp(MIB, 2048 * MIB),
        work_mem,
        random_page_cost,
        effective_io_concurrency,
    }
}

fn resolve_edge(spec: &Spec, client: &ServicePlan, target: &str, target_service: &Service, pool_use: &spec::Use) -> Edge {
    let path = [client.path.as_str(), ".uses.", target].concat();
    let framework = pool_use.framework.unwrap_or(spec::Framework::Generic);
    let to_kind = match target_service {
        Service::Postgres(_) => Kind::Postgres,
        Service::Pgbouncer(_) => Kind::Pgbouncer,
        Service::Redis(_) => Kind::Redis,
        Service::Qdrant(_) => Kind::Qdrant,
        other => match other.kind() {
            "nginx" => Kind::Nginx,
            _ => Kind::Worker,
        },
    };
    // Slots of one process that may need a connection at the same time.
    let slots_needing = match client.kind {
        Kind::SolidQueue => Sourced::derived(
            client.slots_per_process.value.saturating_add(d::SOLID_QUEUE_EXTRA_CONNECTIONS),
            client.slots_per_process.path().to_string(),
            format!("threads {} + 2 (polling + heartbeat)", client.slots_per_process.value),
        ),
        Kind::Sidekiq if to_kind == Kind::Redis => Sourced::derived(
            client.slots_per_process.value.saturating_add(5),
            client.slots_per_process.path().to_string(),
            format!("concurrency {} + 5 (Sidekiq's server pool)", client.slots_per_process.value),
        ),
        _ => client.slots_per_process.clone(),
    };
    // SQLAlchemy's QueuePool has its own defaults (5 + 10 overflow); other libraries
    // are counted at one connection per slot when no pool is written.
    let sqlalchemy = framework == spec::Framework::Sqlalchemy;
    let database_pools: Vec<(String, Sourced<u64>)> =
        pool_use.databases.iter().map(|(name, pool)| (name.clone(), Sourced::spec(*pool, format!("{path}.databases.{name}")))).collect();
    let pool = match (pool_use.pool, database_pools.first(), sqlalchemy) {
        (Some(p), _, _) => Sourced::spec(p, dotted(&path, "pool")),
        (None, Some((_, first)), _) => first.clone(),
        (None, None, true) => Sourced::default(d::SQLALCHEMY_POOL_SIZE, dotted(&path, "pool"), "SQLAlchemy pool_size = 5"),
        (None, None, false) => Sourced::default(slots_needing.value, dotted(&path, "pool"), format!("one per slot ({})", slots_needing.value)),
    };
    let max_overflow = pool_use.max_overflow.unwrap_or(if sqlalchemy && pool_use.pool.is_none() { d::SQLALCHEMY_MAX_OVERFLOW } else { 0 });
    let persistent = pool_use.persistent.unwrap_or(false) && framework == spec::Framework::Django;
    let per_process = if persistent {
        Sourced::derived(
            client.slots_per_process.value,
            format!("{path}.persistent"),
            format!("Django persistent connections: one per thread = {} ({})", client.slots_per_process.value, client.slots_per_process.path()),
        )
    } else if database_pools.len() > 1 {
        let total = database_pools.iter().fold(0u64, |t, (_, p)| t.saturating_add(p.value));
        let parts: Vec<String> = database_pools.iter().map(|(name, p)| format!("{name} {}", p.value)).collect();
        Sourced::derived(total, format!("{path}.databases"), format!("a pool per database: {} = {total}", parts.join(" + ")))
    } else if max_overflow > 0 {
        Sourced::derived(pool.value.saturating_add(max_overflow), format!("{path}.pool"), format!("pool {} + max_overflow {max_overflow}", pool.value))
    } else {
        pool.clone()
    };
    let connections = mul(&[client.replicas.value, client.processes.value, per_process.value]);
    let prepared_statements = pool_use
        .prepared_statements
        .unwrap_or(matches!(framework, spec::Framework::Rails | spec::Framework::PsycopgPool));
    let (database, user) = match target_service {
        Service::Pgbouncer(pgb) => {
            let pooled_db = pgb
                .common
                .uses
                .keys()
                .next()
                .and_then(|t| match spec.services.get(t) {
                    Some(Service::Postgres(p)) => p.databases.first().cloned(),
                    _ => None,
                });
            (
                pool_use.database.clone().or(pooled_db).unwrap_or_else(|| spec.name.clone()),
                pool_use.user.clone().or_else(|| pgb.users.first().cloned()).unwrap_or_else(|| spec.name.clone()),
            )
        }
        Service::Postgres(pg) => (
            pool_use.database.clone().or_else(|| pg.databases.first().cloned()).unwrap_or_else(|| spec.name.clone()),
            pool_use.user.clone().unwrap_or_else(|| spec.name.clone()),
        ),
        _ => (pool_use.database.clone().unwrap_or_default(), pool_use.user.clone().unwrap_or_default()),
    };
    Edge {
        from: client.name.clone(),
        from_kind: client.kind,
        to: target.to_string(),
        to_kind,
        path,
        framework,
        pool,
        max_overflow,
        database_pools,
        min: pool_use.min,
        persistent,
        per_process,
        replicas: client.replicas.value,
        processes: client.processes.value,
        connections,
        slots_needing,
        prepared_statements,
        database,
        user,
    }
}

/// A machine group and the services placed on it (in spec order).
fn resolve_machine(name: &str, machine: &spec::Machine, services: &[&ServicePlan]) -> MachinePlan {
    let count = u64::from(machine.count.max(1));
    let placements: Vec<Placement> = services
        .iter()
        .map(|s| Placement {
            service: s.name.clone(),
            replicas_per_host: s.replicas.value.div_ceil(count),
            memory_per_replica: s.memory.as_ref().map(|m| m.value),
            cpus_per_replica: s.cpus.as_ref().filter(|c| c.is_written()).map(|c| c.value),
        })
        .collect();
    let memory_demand = sum(placements.iter().map(|p| mul(&[p.replicas_per_host, p.memory_per_replica.unwrap_or(0)])));
    let cpu_demand = placements.iter().map(|p| p.replicas_per_host as f64 * p.cpus_per_replica.unwrap_or(0.0)).sum();
    MachinePlan {
        name: name.to_string(),
        path: dotted("machines", name),
        count,
        cpus: machine.cpus,
        memory: machine.memory.map(|m| m.bytes()),
        addresses: machine.addresses.clone(),
        sysctl: machine.sysctl.iter().map(|(k, v)| (k.clone(), sysctl_text(v))).collect(),
        nofile: machine.nofile,
        placements,
        memory_demand,
        cpu_demand,
    }
}

fn set_expected_clients(plan: &mut Plan) {
    let Some(load) = &plan.load else { return };
    let expected = match &load.concurrent_users {
        Some(c) => Sourced::spec(c.value as f64, c.path().to_string()),
        None => Sourced::derived(
            load.rps.value * load.service_time.value,
            "load",
            format!("Little's law at the edge: rps {} x service_time {}s", load.rps.value, load.service_time.value),
        ),
    };
    for service in &mut plan.services {
        if let Detail::Nginx(n) = &mut service.detail {
            n.expected_clients = Some(expected.clone());
        }
    }
}

fn capacity(plan: &Plan) -> Option<Capacity> {
    let load = plan.load.as_ref()?;
    let service_time = load.service_time.value.max(1e-9);
    let db_time = load.db_time.value.max(1e-9);
    let app_slots = sum(plan.apps().map(|s| s.slots));
    let capacity_rps = app_slots as f64 / service_time;
    let planned_rps = capacity_rps * load.max_utilization.value;
    let utilization = if app_slots == 0 { f64::INFINITY } else { load.rps.value * service_time / app_slots as f64 };
    let headroom = if load.rps.value > 0.0 { planned_rps / load.rps.value } else { f64::INFINITY };
    let db_connections = db_connections_for_apps(plan);
    let db_capacity_rps = db_connections as f64 / db_time;

    // The layer with the least capacity (the first of equals), worded once it is known.
    enum Layer<'a> {
        App,
        Database,
        Nginx(&'a ServicePlan, &'a NginxPlan, u64),
    }
    let mut candidates: Vec<(Layer, f64)> = vec![(Layer::App, capacity_rps)];
    if db_connections > 0 {
        candidates.push((Layer::Database, db_capacity_rps));
    }
    for service in &plan.services {
        if let Detail::Nginx(n) = &service.detail {
            let concurrent = mul(&[n.worker_processes.value, n.worker_connections.value, service.replicas.value]) / 2;
            candidates.push((Layer::Nginx(service, n, concurrent), concurrent as f64 / service_time));
        }
    }
    let bottleneck = candidates.into_iter().min_by(|a, b| a.1.total_cmp(&b.1)).map(|(layer, capacity_rps)| match layer {
        Layer::App => Bottleneck { layer: "app servers".into(), capacity_rps, why: format!("{app_slots} slots / {service_time}s service_time") },
        Layer::Database => Bottleneck {
            layer: "database connections".into(),
            capacity_rps,
            why: format!("{db_connections} connections reachable at once / {db_time}s db_time"),
        },
        Layer::Nginx(service, n, concurrent) => Bottleneck {
            layer: format!("nginx `{}`", service.name),
            capacity_rps,
            why: format!(
                "{} x {} / 2 per proxied request = {concurrent} concurrent requests / {service_time}s",
                crate::rules::plural(n.worker_processes.value, "worker"),
                crate::rules::plural(n.worker_connections.value, "connection")
            ),
        },
    });
    Some(Capacity { app_slots, capacity_rps, planned_rps, utilization, headroom, db_connections, db_capacity_rps, bottleneck })
}

/// Database connections that can be busy at once on behalf of the app servers: each
/// app's pools, limited by the pooler's server connections and postgres' usable slots.
pub fn db_connections_for_apps(plan: &Plan) -> u64 {
    let from_app = |e: &&Edge| plan.service(&e.from).is_some_and(|s| s.kind.is_app());
    let mut total = 0u64;
    for postgres in plan.of_kind(Kind::Postgres) {
        let Detail::Postgres(pg) = &postgres.detail else { continue };
        let mut reachable = sum(plan.edges_into(&postgres.name).filter(from_app).map(|e| e.connections));
        for (pooler, pgb) in plan.poolers_of(&postgres.name) {
            let from_apps = sum(plan.edges_into(&pooler.name).filter(from_app).map(|e| e.connections));
            reachable = reachable.saturating_add(from_apps.min(pgb.server_connections.value));
        }
        total = total.saturating_add(reachable.min(pg.usable_connections));
    }
    total
}

/// The default secret name of a redis service's password: `cache` -> `CACHE_PASSWORD`.
pub fn default_redis_secret(service: &str) -> String {
    let mut out = String::with_capacity(service.len() + "__PASSWORD".len());
    out.extend(service.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }));
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out.push_str("_PASSWORD");
    out
}

/// Redis authentication across the deployment: the password's secret reaches the
/// server and every client by name; a server without one records why other hosts
/// can reach it (for `redis-no-auth`).
fn redis_auth(spec: &Spec, positions: &Positions, services: &mut [ServicePlan], edges: &[Edge], containerized: bool) {
    let kamal = spec.deploy.as_ref().is_some_and(|d| d.kamal.is_some());
    // `services` is in the spec's order: a name's position there is its position in
    // `spec.services`, and a service's machine is the one its spec names.
    let machine_of = |name: &str| positions.get(name).and_then(|&i| spec.services[i].common().machine.as_ref());
    // Indexed once: a scan of every edge per redis, or of every service per grant,
    // makes a spec with many redis services quadratic.
    let mut edges_into: Vec<Vec<&Edge>> = vec![Vec::new(); services.len()];
    for edge in edges {
        if let Some(&target) = positions.get(edge.to.as_str()) {
            edges_into[target].push(edge);
        }
    }
    let mut grants: Vec<(usize, String)> = Vec::new();
    for (index, service) in services.iter_mut().enumerate() {
        let Detail::Redis(redis) = &mut service.detail else { continue };
        let clients = edges_into[index].iter().copied();
        if let Some(secret) = &redis.password {
            grants.extend(clients.filter_map(|e| Some((*positions.get(e.from.as_str())?, secret.value.clone()))));
            if !service.external {
                grants.push((index, secret.value.clone()));
            }
            continue;
        }
        if service.external {
            continue;
        }
        if let Some(machine) = &service.machine {
            if kamal {
                redis.reachable_from.push(format!("it is a Kamal accessory: Kamal publishes port {} on the address of machine group `{machine}`", service.port.value));
            }
            for edge in clients {
                if let Some(client_machine) = machine_of(&edge.from)
                    && client_machine != machine
                {
                    redis.reachable_from.push(format!("service `{}` on machine group `{client_machine}` connects to it from another host", edge.from));
                }
            }
        }
        for published in &service.publish {
            if published.beyond_loopback() {
                let on = published.address.map_or("every interface of the host".to_string(), |ip| format!("host address {ip}"));
                redis.reachable_from.push(format!("{}.publish puts port {} on {on}", service.path, published.host_port));
            }
        }
        // On a host, redis.conf binds what `bind` says, else loopback and the machine
        // group's addresses (Railway runs each service in a container of its own).
        if !containerized && spec.deploy.as_ref().is_none_or(|d| d.railway.is_none()) {
            match &redis.bind {
                Some(bind) => {
                    let open: Vec<&str> = bind.iter().map(String::as_str).filter(|a| spec::bind_beyond_loopback(a)).collect();
                    if !open.is_empty() {
                        redis.reachable_from.push(format!("it runs on a host, not in a container, and binds {} ({}.bind)", open.join(" "), service.path));
                    }
                }
                None => {
                    if let Some(machine) = &service.machine
                        && let Some(group) = spec.machines.get(machine)
                        && group.addresses.iter().any(|a| a.parse::<std::net::IpAddr>().is_ok())
                    {
                        let ips: Vec<&str> = group.addresses.iter().map(String::as_str).filter(|a| a.parse::<std::net::IpAddr>().is_ok()).collect();
                        redis.reachable_from.push(format!(
                            "it runs on a host, not in a container, and redis.conf binds the addresses of machine group `{machine}` ({})",
                            ips.join(", ")
                        ));
                    }
                }
            }
        }
    }
    for (client, secret) in grants {
        let service = &mut services[client];
        if !service.env_secret.contains(&secret) {
            service.env_secret.push(secret);
        }
    }
}
