//! Target `kubernetes`: a folder of manifests and a `kustomization.yaml` listing them.
//! Per app and job service a Deployment (argv, pool environment, requests/limits,
//! probes, rolling update, grace period, topology spread), a Service for listeners, an
//! autoscaling/v2 HorizontalPodAutoscaler when it autoscales and a PodDisruptionBudget;
//! nginx and PgBouncer as Deployments and PostgreSQL, Redis and Qdrant as StatefulSets
//! with volume claims (unless `external`; Qdrant's pods join by stable peer names).
//! Config files are ConfigMaps holding exactly the text the nginx, pgbouncer, redis and
//! qdrant targets render; secrets are referenced by name.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::compose::{Kv, kv};
use super::{Artifact, Context, RenderError, Target, app_env, compose, gunicorn, nginx, pgbouncer, postgres, puma, qdrant, redis, render_template, seal};
use crate::plan::{Detail, Kind, KubernetesPlan, ServicePlan, defaults as d};

const TARGET: &str = "kubernetes";
const WORKLOAD: &str = include_str!("../../templates/kubernetes/workload.yaml.j2");
const SERVICE: &str = include_str!("../../templates/kubernetes/service.yaml.j2");
const HPA: &str = include_str!("../../templates/kubernetes/hpa.yaml.j2");
const PDB: &str = include_str!("../../templates/kubernetes/pdb.yaml.j2");
const CONFIG_MAP: &str = include_str!("../../templates/kubernetes/configmap.yaml.j2");
const INGRESS: &str = include_str!("../../templates/kubernetes/ingress.yaml.j2");
const NAMESPACE: &str = include_str!("../../templates/kubernetes/namespace.yaml.j2");
const KUSTOMIZATION: &str = include_str!("../../templates/kubernetes/kustomization.yaml.j2");

/// Seconds a pod gets beyond its server's own graceful shutdown before SIGKILL: the
/// endpoint removal and the last requests' responses fit in it.
pub const GRACE_MARGIN_SECS: u64 = 10;
/// Graceful shutdown of servers whose timeout the spec does not hold: Puma's
/// `worker_shutdown_timeout` (30 s), Sidekiq's `-t` (25 s), and 30 s for the rest.
pub const PUMA_SHUTDOWN_SECS: u64 = 30;
pub const SIDEKIQ_SHUTDOWN_SECS: u64 = 25;
pub const OTHER_SHUTDOWN_SECS: u64 = 30;
/// Size of each volume claim when `deploy.kubernetes.volume_size` is not set.
pub const DEFAULT_VOLUME_BYTES: u64 = 10 * 1024 * 1024 * 1024;
/// The annotation on an app or job workload naming the services its pools connect to
/// (what compose says with `depends_on`); `lint` reads it back.
pub const USES_ANNOTATION: &str = "headroom.dev/uses";
/// The annotation that carries the SHA-256 of a pod's ConfigMap, so a config change
/// rolls the pods.
pub const CONFIG_ANNOTATION: &str = "headroom.dev/config-sha256";

/// Pod sysctls Kubernetes allows without kubelet flags, with the version that made
/// each one safe (docs: "Using sysctls in a Kubernetes Cluster").
pub const SAFE_SYSCTLS: &[(&str, (u32, u32))] = &[
    ("kernel.shm_rmid_forced", (1, 0)),
    ("net.ipv4.ip_local_port_range", (1, 0)),
    ("net.ipv4.tcp_syncookies", (1, 0)),
    ("net.ipv4.ping_group_range", (1, 18)),
    ("net.ipv4.ip_unprivileged_port_start", (1, 22)),
    ("net.ipv4.ip_local_reserved_ports", (1, 27)),
    ("net.ipv4.tcp_keepalive_time", (1, 29)),
    ("net.ipv4.tcp_fin_timeout", (1, 29)),
    ("net.ipv4.tcp_keepalive_intvl", (1, 29)),
    ("net.ipv4.tcp_keepalive_probes", (1, 29)),
    ("net.ipv4.tcp_rmem", (1, 32)),
    ("net.ipv4.tcp_wmem", (1, 32)),
];

pub struct Kubernetes;

impl Target for Kubernetes {
    fn name(&self) -> &'static str {
        TARGET
    }
    fn render(&self, ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        let (Some(spec_k8s), Some(k8s)) = (ctx.spec.deploy.as_ref().and_then(|d| d.kubernetes.as_ref()), ctx.plan.kubernetes.as_ref()) else {
            return Ok(Vec::new());
        };
        let dir = spec_k8s.dir.clone().unwrap_or_else(|| "kubernetes".into());
        let namespace = k8s.namespace.value.clone();
        let secret = spec_k8s.secret.clone().unwrap_or_else(|| format!("{}-secrets", ctx.plan.name));
        let mut files: Vec<(String, String)> = Vec::new();
        let mut notes: Vec<String> = Vec::new();

        let header = ctx.header("#");
        let labels = vec![kv("app.kubernetes.io/part-of", &ctx.plan.name), kv("app.kubernetes.io/managed-by", "headroom")];
        let text = render_template(TARGET, "kubernetes/namespace.yaml.j2", NAMESPACE, &NamespaceFile { header: header.clone(), n: NamespaceCtx { name: namespace.clone(), labels } })?;
        files.push(("namespace.yaml".into(), text));

        let builder = Builder { ctx, k8s, spec_k8s, namespace: &namespace, secret: &secret };
        for service in &ctx.plan.services {
            if service.external {
                notes.push(format!(
                    "{} ({}) is external: not rendered; its clients reach it as `{}` (create a Service of that name, e.g. type ExternalName)",
                    service.name, service.path, service.name
                ));
                continue;
            }
            let (docs, mut service_notes) = builder.service_docs(service)?;
            notes.append(&mut service_notes);
            let mut text = header.clone();
            text.push_str(&format!("# {} ({}): {}\n", escape(&service.name), escape(&service.path), service.kind.as_str()));
            text.push_str(&docs.join("---\n"));
            files.push((format!("{}.yaml", service.name), text));
        }

        if let Some(ingress) = &spec_k8s.ingress {
            let edge = ctx
                .plan
                .services
                .iter()
                .find(|s| s.kind == Kind::Nginx && !s.external)
                .or_else(|| ctx.plan.apps().next())
                .ok_or_else(|| err("deploy.kubernetes.ingress needs an nginx or an app server to route to"))?;
            let i = IngressCtx {
                meta: builder.meta(&format!("{}-ingress", ctx.plan.name), None),
                class: ingress.class.clone(),
                tls_secret: ingress.tls_secret.clone(),
                host: ingress.host.clone(),
                service: edge.name.clone(),
                port: edge.port.value,
            };
            let text = render_template(TARGET, "kubernetes/ingress.yaml.j2", INGRESS, &IngressFile { header: header.clone(), i })?;
            files.push(("ingress.yaml".into(), text));
        }

        let resources: Vec<String> = files.iter().map(|(name, _)| name.clone()).collect();
        let text = render_template(
            TARGET,
            "kubernetes/kustomization.yaml.j2",
            KUSTOMIZATION,
            &KustomizationFile { header, notes: notes.iter().map(|n| escape(n)).collect(), namespace, resources },
        )?;
        files.push(("kustomization.yaml".into(), text));
        Ok(files.into_iter().map(|(name, text)| Artifact { target: TARGET, path: format!("{dir}/{name}"), text, patched: false }).collect())
    }
}

/// The folder the manifests go to (`deploy.kubernetes.dir`, default `kubernetes`).
pub fn dir(ctx: &Context<'_>) -> Option<String> {
    ctx.spec.deploy.as_ref().and_then(|d| d.kubernetes.as_ref()).map(|k| k.dir.clone().unwrap_or_else(|| "kubernetes".into()))
}

/// Kubernetes expands `$(VAR)` in `args` and `env` values and reads `$$` as `$`: every
/// `$` is doubled so the container sees the text as written.
fn literal(value: &str) -> String {
    value.replace('$', "$$")
}

fn err(message: impl Into<String>) -> RenderError {
    RenderError { target: TARGET, message: message.into() }
}

fn escape(text: &str) -> String {
    super::escape::comment(text)
}

#[derive(Serialize, Clone)]
struct Meta {
    name: String,
    namespace: String,
    labels: Vec<Kv>,
}

#[derive(Serialize)]
struct NamespaceFile {
    header: String,
    n: NamespaceCtx,
}

#[derive(Serialize)]
struct NamespaceCtx {
    name: String,
    labels: Vec<Kv>,
}

#[derive(Serialize)]
struct KustomizationFile {
    header: String,
    notes: Vec<String>,
    namespace: String,
    resources: Vec<String>,
}

#[derive(Serialize)]
struct IngressFile {
    header: String,
    i: IngressCtx,
}

#[derive(Serialize)]
struct IngressCtx {
    meta: Meta,
    class: Option<String>,
    tls_secret: Option<String>,
    host: String,
    service: String,
    port: u64,
}

#[derive(Serialize)]
struct Workload {
    kind: &'static str,
    comments: Vec<String>,
    meta: Meta,
    /// The workload's own annotations (the pod template's are `annotations`).
    meta_annotations: Vec<Kv>,
    selector: Vec<Kv>,
    service_name: Option<String>,
    replicas: Option<u64>,
    strategy: Option<Strategy>,
    annotations: Vec<Kv>,
    grace: u64,
    sysctls: Vec<Kv>,
    spread: bool,
    container: Container,
    volumes: Vec<Volume>,
    claims: Vec<Claim>,
}

#[derive(Serialize)]
struct Strategy {
    /// YAML scalars as written: `1` or `"25%"`.
    max_surge: String,
    max_unavailable: String,
}

#[derive(Serialize, Default)]
struct Container {
    name: String,
    image: String,
    args: Vec<String>,
    ports: Vec<Port>,
    env: Vec<EnvVar>,
    requests: Vec<Kv>,
    limits: Vec<Kv>,
    probes: Vec<Probe>,
    mounts: Vec<Mount>,
}

#[derive(Serialize)]
struct Port {
    name: String,
    port: u64,
}

#[derive(Serialize)]
struct EnvVar {
    name: String,
    value: String,
    /// The Secret holding a key of the same name.
    secret: Option<String>,
    /// A field of the pod (downward API), e.g. `metadata.name`.
    field: Option<String>,
}

#[derive(Serialize)]
struct Probe {
    kind: &'static str,
    http_path: Option<String>,
    exec: Vec<String>,
    port: String,
    initial_delay: u64,
    period: u64,
    timeout: u64,
    failure: u64,
}

#[derive(Serialize)]
struct Mount {
    name: String,
    path: String,
    sub_path: Option<String>,
    read_only: bool,
}

#[derive(Serialize)]
struct Volume {
    name: String,
    config_map: Option<String>,
    secret: Option<String>,
}

#[derive(Serialize)]
struct Claim {
    name: String,
    size: String,
    storage_class: Option<String>,
}

#[derive(Serialize)]
struct ServiceCtx {
    meta: Meta,
    selector: Vec<Kv>,
    headless: bool,
    /// DNS names for pods that are not ready yet: Qdrant peers must reach a joining pod.
    publish_not_ready: bool,
    port_name: String,
    port: u64,
}

#[derive(Serialize)]
struct HpaCtx {
    note: String,
    meta: Meta,
    min: u64,
    max: u64,
    target_cpu: u64,
}

#[derive(Serialize)]
struct PdbCtx {
    meta: Meta,
    selector: Vec<Kv>,
}

#[derive(Serialize)]
struct ConfigMapCtx {
    note: String,
    meta: Meta,
    key: String,
    /// The YAML value: a literal block scalar, or a quoted string.
    block: String,
}

/// A ConfigMap's file: its key, the text, and where the container reads it.
struct ConfigFile {
    key: &'static str,
    text: String,
    mount: String,
    note: String,
}

struct Builder<'a> {
    ctx: &'a Context<'a>,
    k8s: &'a KubernetesPlan,
    spec_k8s: &'a crate::spec::KubernetesDeploy,
    namespace: &'a str,
    secret: &'a str,
}

impl Builder<'_> {
    fn meta(&self, name: &str, service: Option<&ServicePlan>) -> Meta {
        let mut labels = Vec::new();
        if let Some(service) = service {
            labels.extend(selector(self.ctx, service));
            labels.push(kv("app.kubernetes.io/component", component(service.kind)));
        }
        labels.push(kv("app.kubernetes.io/part-of", &self.ctx.plan.name));
        labels.push(kv("app.kubernetes.io/managed-by", "headroom"));
        Meta { name: name.to_string(), namespace: self.namespace.to_string(), labels }
    }

    /// Every document of one spec service, and notes for the kustomization.
    fn service_docs(&self, service: &ServicePlan) -> Result<(Vec<String>, Vec<String>), RenderError> {
        let mut docs = Vec::new();
        let mut notes = Vec::new();
        let config = self.config_file(service)?;
        if let Some(file) = &config {
            let c = ConfigMapCtx {
                note: escape(&file.note),
                meta: self.meta(&format!("{}-config", service.name), Some(service)),
                key: file.key.to_string(),
                block: block_scalar(&file.text, 4),
            };
            docs.push(render_template(TARGET, "kubernetes/configmap.yaml.j2", CONFIG_MAP, &C { c })?);
        }
        let workload = self.workload(service, config.as_ref(), &mut notes)?;
        docs.push(render_template(TARGET, "kubernetes/workload.yaml.j2", WORKLOAD, &W { w: workload })?);
        if let Some(port_name) = port_name(service.kind) {
            let s = ServiceCtx {
                meta: self.meta(&service.name, Some(service)),
                selector: selector(self.ctx, service),
                headless: matches!(service.kind, Kind::Postgres | Kind::Redis | Kind::Qdrant),
                publish_not_ready: service.kind == Kind::Qdrant && service.replicas.value > 1,
                port_name: port_name.into(),
                port: service.port.value,
            };
            docs.push(render_template(TARGET, "kubernetes/service.yaml.j2", SERVICE, &S { s })?);
        }
        if let Some(a) = &service.autoscale {
            let h = HpaCtx {
                note: escape(&format!(
                    "{} to {} pods at {}% CPU ({}, {}); every connection budget counts the max",
                    a.min.value,
                    a.max.value,
                    a.target_cpu.value,
                    a.max.path(),
                    a.target_cpu.cite()
                )),
                meta: self.meta(&service.name, Some(service)),
                min: a.min.value,
                max: a.max.value,
                target_cpu: a.target_cpu.value,
            };
            docs.push(render_template(TARGET, "kubernetes/hpa.yaml.j2", HPA, &H { h })?);
        }
        if service.kind.is_app() || service.kind.is_job() {
            let p = PdbCtx { meta: self.meta(&service.name, Some(service)), selector: selector(self.ctx, service) };
            docs.push(render_template(TARGET, "kubernetes/pdb.yaml.j2", PDB, &P { p })?);
        }
        Ok((docs, notes))
    }

    /// The file the nginx, pgbouncer or redis target renders for this service, sealed
    /// exactly as `render` writes it to disk.
    fn config_file(&self, service: &ServicePlan) -> Result<Option<ConfigFile>, RenderError> {
        let (target, path, key, mount): (&dyn Target, String, &'static str, &str) = match service.kind {
            Kind::Nginx => (&nginx::Nginx, nginx::path(self.ctx, service), "nginx.conf", "/etc/nginx/nginx.conf"),
            Kind::Pgbouncer => (&pgbouncer::Pgbouncer, pgbouncer::path(self.ctx, service), "pgbouncer.ini", "/etc/pgbouncer/pgbouncer.ini"),
            Kind::Redis => (&redis::Redis, redis::path(self.ctx, service), "redis.conf", REDIS_CONF),
            Kind::Qdrant => (&qdrant::Qdrant, qdrant::config_path(self.ctx, service), "local.yaml", qdrant::CONFIG_MOUNT),
            _ => return Ok(None),
        };
        let artifact = target
            .render(self.ctx)?
            .into_iter()
            .find(|a| a.path == path)
            .ok_or_else(|| err(format!("the {} target rendered no {path} for `{}`", target.name(), service.name)))?;
        Ok(Some(ConfigFile {
            key,
            text: seal::seal(artifact.text),
            mount: mount.to_string(),
            note: format!("{key} of `{}`: the same text as {path}", service.name),
        }))
    }

    fn workload(&self, service: &ServicePlan, config: Option<&ConfigFile>, notes: &mut Vec<String>) -> Result<Workload, RenderError> {
        let stateful = matches!(service.kind, Kind::Postgres | Kind::Redis | Kind::Qdrant);
        let mut comments = Vec::new();
        let mut container = Container {
            name: service.name.clone(),
            image: image(self.spec_k8s, service).ok_or_else(|| err(format!("service `{}` has no image (set `image` or deploy.kubernetes.image)", service.name)))?,
            ..Container::default()
        };
        if let Some(name) = port_name(service.kind) {
            container.ports.push(Port { name: name.into(), port: service.port.value });
        }
        container.args = self.args(service, &mut comments).iter().map(|a| literal(a)).collect();
        container.env = self.env(service).into_iter().map(|e| EnvVar { value: literal(&e.value), ..e }).collect();
        if let Some(secret) = redis::password_secret(service) {
            // Not passed through `literal`: Kubernetes expands $(NAME) from the secret's
            // env var (listed above), so the password is referenced, never written.
            container.args.extend(redis::auth_args(service, |name| format!("$({name})")));
            container.env.push(EnvVar { name: "REDISCLI_AUTH".into(), value: format!("$({secret})"), secret: None, field: None });
        }
        if let Detail::Qdrant(q) = &service.detail {
            self.qdrant_node(service, q, &mut container, &mut comments, notes);
        }
        let (requests, limits) = resources(service);
        container.requests = requests;
        container.limits = limits;
        container.probes = probes(service);

        let mut volumes = Vec::new();
        let mut annotations = Vec::new();
        if let Some(file) = config {
            container.mounts.push(Mount { name: "config".into(), path: file.mount.clone(), sub_path: Some(file.key.into()), read_only: true });
            volumes.push(Volume { name: "config".into(), config_map: Some(format!("{}-config", service.name)), secret: None });
            annotations.push(kv(CONFIG_ANNOTATION, sha256(&file.text)));
        }
        if let Detail::Pgbouncer(p) = &service.detail {
            let userlist = format!("{}-userlist", service.name);
            let auth_dir = p.auth_file.rsplit_once('/').map_or("/etc/pgbouncer", |(dir, _)| dir);
            let file = p.auth_file.rsplit('/').next().unwrap_or("userlist.txt").to_string();
            compose::check_container_path(&p.auth_file, &format!("{}.auth_file", service.path)).map_err(|e| err(e.message))?;
            container.mounts.push(Mount { name: "userlist".into(), path: p.auth_file.clone(), sub_path: Some(file.clone()), read_only: true });
            volumes.push(Volume { name: "userlist".into(), config_map: None, secret: Some(userlist.clone()) });
            comments.push(format!("{} reads its users from Secret `{userlist}` (key `{file}`, mounted in {auth_dir}): create it from the userlist.txt.example the pgbouncer target writes", service.name));
            comments.push("maxSurge 0: a rollout never runs an extra PgBouncer, whose server pool postgres' budget does not count".into());
        }
        let mut claims = Vec::new();
        if stateful {
            let data = match service.kind {
                Kind::Postgres => "/var/lib/postgresql/data",
                Kind::Qdrant => qdrant::STORAGE_PATH,
                _ => "/data",
            };
            container.mounts.push(Mount { name: "data".into(), path: data.into(), sub_path: None, read_only: false });
            claims.push(Claim {
                name: "data".into(),
                size: quantity_bytes(self.spec_k8s.volume_size.map_or(DEFAULT_VOLUME_BYTES, |s| s.bytes())),
                storage_class: self.spec_k8s.storage_class.clone(),
            });
            if let Detail::Postgres(p) = &service.detail
                && p.read_replicas > 0
            {
                notes.push(format!("{}: {} read replica(s) ({}.read_replicas) are not rendered; run them with an operator", service.name, p.read_replicas, service.path));
            }
        }

        // Namespaced sysctls go in the pod; the rest are the nodes' settings.
        let mut sysctls = Vec::new();
        for (key, value) in &service.sysctls {
            if !compose::is_namespaced(key) {
                notes.push(format!("node setting: {key} = {value} ({}.sysctls) is not namespaced; set it on the nodes (e.g. a DaemonSet or the node image)", service.path));
                comments.push(format!("{key} is not namespaced: it is a node setting (see kustomization.yaml)"));
                continue;
            }
            if !is_safe_sysctl(key, self.k8s.version.value) {
                let (major, minor) = self.k8s.version.value;
                notes.push(format!(
                    "kubelet: {key} ({}.sysctls) is not a safe sysctl in Kubernetes {major}.{minor}; the nodes' kubelets must allow it (allowedUnsafeSysctls: [\"{key}\"]) or the pods are rejected with SysctlForbidden",
                    service.path
                ));
            }
            sysctls.push(kv(key.clone(), value.clone()));
        }

        let app_or_job = service.kind.is_app() || service.kind.is_job();
        let strategy = match service.kind {
            _ if stateful => None,
            Kind::Pgbouncer => Some(Strategy { max_surge: "0".into(), max_unavailable: "1".into() }),
            _ => Some(Strategy { max_surge: rollout_scalar(self.k8s.max_surge.value), max_unavailable: rollout_scalar(self.k8s.max_unavailable.value) }),
        };
        if let Some(surge) = &service.rollout_surge {
            comments.push(format!(
                "a rolling update adds {} at {} ({}); the budget rules count them",
                crate::rules::plural(surge.value, "pod"),
                crate::rules::plural(service.replicas.value, "replica"),
                surge.cite()
            ));
        }
        if service.nofile.is_some() {
            comments.push(format!("{}.nofile: Kubernetes sets no per-pod open-files limit; the container runtime's default applies (check it on the nodes)", service.path));
        }
        let uses: Vec<String> = self.ctx.plan.edges_from(&service.name).map(|e| e.to.clone()).collect();
        Ok(Workload {
            kind: if stateful { "StatefulSet" } else { "Deployment" },
            comments: comments.iter().map(|c| escape(c)).collect(),
            meta: self.meta(&service.name, Some(service)),
            meta_annotations: if uses.is_empty() { Vec::new() } else { vec![kv(USES_ANNOTATION, uses.join(", "))] },
            selector: selector(self.ctx, service),
            service_name: stateful.then(|| service.name.clone()),
            // The autoscaler owns the count of an autoscaled Deployment.
            replicas: if service.autoscale.is_some() { None } else { Some(service.replicas.value) },
            strategy,
            annotations,
            grace: grace_seconds(service),
            sysctls,
            spread: app_or_job || service.replicas.value > 1,
            container,
            volumes,
            claims,
        })
    }

    /// The container's arguments (the image's entrypoint is kept, as compose and Kamal
    /// keep it): the same argv the other targets build.
    fn args(&self, service: &ServicePlan, comments: &mut Vec<String>) -> Vec<String> {
        match &service.detail {
            Detail::Gunicorn(_) => gunicorn::command(service),
            Detail::Puma(_) => puma::command(self.ctx, service),
            Detail::Job(job) => job_args(service, job.command.as_deref(), comments),
            Detail::Postgres(_) => postgres::server_args(service),
            Detail::Redis(_) => vec!["redis-server".into(), REDIS_CONF.into()],
            Detail::Nginx(_) | Detail::Pgbouncer(_) | Detail::Qdrant(_) => Vec::new(),
        }
    }

    /// A Qdrant pod's extra ports and identity. Pods are `<svc>-0..N-1` behind the headless
    /// Service `<svc>`, so a peer reaches pod k at `<svc>-k.<svc>`: each pod's `--uri`
    /// (QDRANT_URI) is built from its own name by Kubernetes' `$(POD_NAME)` expansion, and
    /// every pod bootstraps from pod 0, which Qdrant (1.19, `resolve_bootstrap_uri`)
    /// treats as the first peer because its bootstrap URI is its own. The StatefulSet's
    /// ordered start brings pod 0 up (ready on /readyz) before the others join.
    fn qdrant_node(&self, service: &ServicePlan, q: &crate::plan::QdrantPlan, container: &mut Container, comments: &mut Vec<String>, notes: &mut Vec<String>) {
        container.ports.push(Port { name: "grpc".into(), port: q.grpc_port.value });
        if q.nodes > 1 {
            container.ports.push(Port { name: "p2p".into(), port: q.p2p_port.value });
            let first = qdrant::peer_uri(&format!("{}-0.{}", service.name, service.name), q.p2p_port.value);
            // Not passed through `literal`: $(POD_NAME) is meant for Kubernetes to expand.
            container.env.push(EnvVar { name: "POD_NAME".into(), value: String::new(), secret: None, field: Some("metadata.name".into()) });
            container.env.push(EnvVar {
                name: "QDRANT_URI".into(),
                value: qdrant::peer_uri(&format!("$(POD_NAME).{}", service.name), q.p2p_port.value),
                secret: None,
                field: None,
            });
            container.env.push(EnvVar { name: "QDRANT_BOOTSTRAP".into(), value: first, secret: None, field: None });
            comments.push(format!("{} nodes: each pod announces itself as <pod>.{} and joins through {}-0", q.nodes, service.name, service.name));
        }
        if !q.collections.is_empty() {
            notes.push(format!(
                "{}: once every pod is ready, create the collections with QDRANT_URL=http://{}-0.{}:{} python3 {} (idempotent; e.g. from a Job or through kubectl port-forward)",
                service.name,
                service.name,
                service.name,
                service.port.value,
                qdrant::script_path(self.ctx, service)
            ));
        }
    }

    fn env(&self, service: &ServicePlan) -> Vec<EnvVar> {
        let mut env: Vec<EnvVar> = Vec::new();
        let mut put = |name: String, value: String, secret: Option<String>| {
            if !env.iter().any(|e| e.name == name) {
                env.push(EnvVar { name, value, secret, field: None });
            }
        };
        if service.kind.is_app() || service.kind.is_job() {
            for (key, value) in app_env::env(self.ctx, service) {
                put(key, value, None);
            }
        }
        for (key, value) in &service.env_clear {
            put(key.clone(), value.clone(), None);
        }
        let mut secrets = service.env_secret.clone();
        if let Detail::Postgres(p) = &service.detail {
            if let Some(db) = p.databases.first() {
                put("POSTGRES_DB".into(), db.clone(), None);
            }
            if let Some(user) = compose::postgres_user(self.ctx, service) {
                put("POSTGRES_USER".into(), user, None);
            }
            // A subdirectory: a fresh volume's root holds lost+found, which initdb refuses.
            put("PGDATA".into(), "/var/lib/postgresql/data/pgdata".into(), None);
            if !secrets.iter().any(|s| s == "POSTGRES_PASSWORD") {
                secrets.push("POSTGRES_PASSWORD".into());
            }
        }
        for name in secrets {
            put(name, String::new(), Some(self.secret.to_string()));
        }
        env
    }
}

// Single-field wrappers: each template names its object.
#[derive(Serialize)]
struct W {
    w: Workload,
}
#[derive(Serialize)]
struct S {
    s: ServiceCtx,
}
#[derive(Serialize)]
struct H {
    h: HpaCtx,
}
#[derive(Serialize)]
struct P {
    p: PdbCtx,
}
#[derive(Serialize)]
struct C {
    c: ConfigMapCtx,
}

/// Where the redis.conf ConfigMap is mounted (the official image's documented place).
const REDIS_CONF: &str = "/usr/local/etc/redis/redis.conf";

/// The selector labels of a service's pods.
fn selector(ctx: &Context<'_>, service: &ServicePlan) -> Vec<Kv> {
    vec![kv("app.kubernetes.io/name", &service.name), kv("app.kubernetes.io/instance", &ctx.plan.name)]
}

fn component(kind: Kind) -> &'static str {
    match kind {
        k if k.is_app() => "web",
        k if k.is_job() => "worker",
        Kind::Nginx => "proxy",
        Kind::Pgbouncer => "pooler",
        Kind::Postgres => "database",
        Kind::Qdrant => "vector-store",
        _ => "cache",
    }
}

/// The named container port, for services that listen.
fn port_name(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Gunicorn | Kind::Puma | Kind::Nginx => Some("http"),
        Kind::Pgbouncer => Some("pgbouncer"),
        Kind::Postgres => Some("postgres"),
        Kind::Redis => Some("redis"),
        Kind::Qdrant => Some("http"),
        _ => None,
    }
}

fn image(spec_k8s: &crate::spec::KubernetesDeploy, service: &ServicePlan) -> Option<String> {
    if let Some(image) = &service.image {
        return Some(image.clone());
    }
    match &service.detail {
        Detail::Postgres(p) => Some(format!("{}{}", compose::POSTGRES_IMAGE_PREFIX, p.version.value)),
        Detail::Redis(_) => Some(compose::REDIS_IMAGE.into()),
        Detail::Pgbouncer(_) => Some(compose::PGBOUNCER_IMAGE.into()),
        Detail::Nginx(_) => Some(compose::NGINX_IMAGE.into()),
        Detail::Qdrant(_) => Some(compose::QDRANT_IMAGE.into()),
        _ => spec_k8s.image.clone(),
    }
}

/// A job's argv: its command split into words (through `sh -c` when it needs a shell),
/// with the plan's concurrency added to a sidekiq or celery command that does not set
/// it; sidekiq without a command runs `bundle exec sidekiq`.
fn job_args(service: &ServicePlan, command: Option<&str>, comments: &mut Vec<String>) -> Vec<String> {
    let concurrency = service.slots_per_process.value.to_string();
    let Some(command) = command else {
        return match service.kind {
            Kind::Sidekiq => vec!["bundle".into(), "exec".into(), "sidekiq".into(), "--concurrency".into(), concurrency],
            _ => {
                comments.push(format!("{} has no `command`: the image's own command runs", service.path));
                Vec::new()
            }
        };
    };
    if command.chars().any(|c| matches!(c, '"' | '\'' | '\\' | '$' | '`' | '|' | '&' | ';' | '<' | '>' | '(' | ')' | '*' | '?' | '~')) {
        return vec!["sh".into(), "-c".into(), command.to_string()];
    }
    let mut words: Vec<String> = command.split_whitespace().map(str::to_string).collect();
    let flag = match service.kind {
        Kind::Sidekiq => Some(("sidekiq", ["-c", "--concurrency"])),
        Kind::Celery => Some(("celery", ["-c", "--concurrency"])),
        _ => None,
    };
    if let Some((program, flags)) = flag
        && words.iter().any(|w| w == program)
        && !words.iter().any(|w| flags.contains(&w.as_str()) || w.starts_with("--concurrency="))
    {
        words.push(flags[1].into());
        words.push(concurrency);
    }
    words
}

/// Requests from the reservations (else the limits), limits from the spec's limits.
fn resources(service: &ServicePlan) -> (Vec<Kv>, Vec<Kv>) {
    let cpus = service.cpus.as_ref().filter(|c| c.is_written()).map(|c| c.value);
    let memory = service.memory.as_ref().map(|m| m.value);
    let mut requests = Vec::new();
    if let Some(c) = service.reserve_cpus.or(cpus) {
        requests.push(kv("cpu", quantity_cpu(c)));
    }
    if let Some(m) = service.reserve_memory.or(memory) {
        requests.push(kv("memory", quantity_bytes(m)));
    }
    let mut limits = Vec::new();
    if let Some(c) = cpus {
        limits.push(kv("cpu", quantity_cpu(c)));
    }
    if let Some(m) = memory {
        limits.push(kv("memory", quantity_bytes(m)));
    }
    (requests, limits)
}

/// CPUs as a Kubernetes quantity: whole cores (`2`) or millicores (`500m`).
pub fn quantity_cpu(cpus: f64) -> String {
    let milli = (cpus * 1000.0).round() as u64;
    if milli.is_multiple_of(1000) { (milli / 1000).to_string() } else { format!("{milli}m") }
}

/// Bytes as a Kubernetes quantity in the largest binary unit that divides them.
pub fn quantity_bytes(bytes: u64) -> String {
    super::escape::binary_size(bytes, ["Gi", "Mi", "Ki"])
}

fn rollout_scalar(value: crate::plan::Rollout) -> String {
    match value {
        crate::plan::Rollout::Count(n) => n.to_string(),
        crate::plan::Rollout::Percent(_) => format!("\"{}\"", value.text()),
    }
}

/// Longer than the server's own graceful shutdown, so Kubernetes never kills a worker
/// that is still finishing requests.
fn grace_seconds(service: &ServicePlan) -> u64 {
    let own = match &service.detail {
        Detail::Gunicorn(g) => g.graceful_timeout.value,
        Detail::Puma(_) => PUMA_SHUTDOWN_SECS,
        _ if service.kind == Kind::Sidekiq => SIDEKIQ_SHUTDOWN_SECS,
        _ => OTHER_SHUTDOWN_SECS,
    };
    own.saturating_add(GRACE_MARGIN_SECS)
}

/// Readiness, liveness and startup probes from the health check (app servers with a
/// path), and each data service's own check.
fn probes(service: &ServicePlan) -> Vec<Probe> {
    let (interval, timeout, retries, start) = match &service.health {
        Some(h) => (h.interval.max(1), h.timeout.max(1), u64::from(h.retries.max(1)), h.start_period),
        None => (d::HEALTH_INTERVAL, d::HEALTH_TIMEOUT, u64::from(d::HEALTH_RETRIES), 0),
    };
    let port = service.port.value.to_string();
    let (http_path, exec, port_ref): (Option<String>, Vec<String>, String) = match service.kind {
        Kind::Gunicorn | Kind::Puma => match service.health.as_ref().and_then(|h| h.path.clone()) {
            Some(path) => (Some(path), Vec::new(), "http".into()),
            None => return Vec::new(),
        },
        Kind::Nginx => (Some(nginx::HEALTH_PATH.into()), Vec::new(), "http".into()),
        Kind::Pgbouncer => (None, Vec::new(), "pgbouncer".into()),
        Kind::Postgres => (None, vec!["pg_isready".into(), "-h".into(), "127.0.0.1".into(), "-p".into(), port], String::new()),
        Kind::Redis => (None, vec!["sh".into(), "-c".into(), super::compose::redis_ping(&port)], String::new()),
        // Ready once it serves (and, in a cluster, has joined consensus).
        Kind::Qdrant => (Some("/readyz".into()), Vec::new(), "http".into()),
        _ => return Vec::new(),
    };
    let probe = |kind: &'static str, period: u64, failure: u64| Probe {
        kind,
        http_path: http_path.clone(),
        exec: exec.clone(),
        port: port_ref.clone(),
        initial_delay: 0,
        period,
        timeout: timeout.min(period),
        failure,
    };
    // The startup probe holds the others off for start_period plus the retries.
    let startup_period = interval.min(10);
    let startup_failures = start.div_ceil(startup_period).saturating_add(retries).max(1);
    let mut probes = vec![probe("startupProbe", startup_period, startup_failures), probe("readinessProbe", interval, retries), probe("livenessProbe", interval, retries)];
    // Qdrant is alive (/livez) long before it is ready (/readyz: collections loaded, joined
    // the cluster); a liveness check on readiness would restart a node mid-recovery.
    if service.kind == Kind::Qdrant {
        for p in probes.iter_mut().filter(|p| p.kind != "readinessProbe") {
            p.http_path = Some("/livez".into());
        }
    }
    probes
}

fn is_safe_sysctl(key: &str, version: (u32, u32)) -> bool {
    SAFE_SYSCTLS.iter().any(|(k, since)| *k == key && version >= *since)
}

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A YAML value holding `text` exactly: a literal block scalar (`|`, with the
/// indentation and chomping indicators it needs) indented by `indent` spaces, so the
/// embedded file reads line for line as on disk; a double-quoted string when a literal
/// block could not hold it (characters YAML does not print, a whitespace-only line).
pub fn block_scalar(text: &str, indent: usize) -> String {
    let printable = |c: char| c == '\n' || c == '\t' || !(c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'));
    let body = text.strip_suffix('\n').unwrap_or(text);
    let blank_with_spaces = body.split('\n').any(|l| !l.is_empty() && l.chars().all(|c| c == ' ' || c == '\t'));
    if text.is_empty() || !text.chars().all(printable) || blank_with_spaces || body.split('\n').any(|l| l.starts_with('\t') && l.trim().is_empty()) {
        return super::escape::yaml_quoted(text).expect("quoting never fails");
    }
    let trailing_newlines = text.len() - text.trim_end_matches('\n').len();
    let chomp = match trailing_newlines {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let first = text.split('\n').next().unwrap_or_default();
    let indicator = if first.starts_with(' ') || first.starts_with('\t') { indent.to_string() } else { String::new() };
    let pad = " ".repeat(indent);
    let mut out = format!("|{indicator}{chomp}\n");
    let content = if trailing_newlines > 0 { &text[..text.len() - 1] } else { text };
    for line in content.split('\n') {
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
        out.push('\n');
    }
    // The template ends the value's line itself.
    out.pop();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze_text;

    const SPEC: &str = r#"
version: 1
name: shop
services:
  web:
    kind: gunicorn
    workers: 3
    graceful_timeout: 45s
    autoscale: { min: 2, max: 8 }
    resources: { cpus: 1 }
    health: { path: /health/, start_period: 40s }
    sysctls: { net.core.somaxconn: 4096, vm.overcommit_memory: 1 }
    env: { secret: [DJANGO_SECRET_KEY] }
    uses: { pgbouncer: { pool: 3 } }
  jobs: { kind: worker, replicas: 2, command: python worker.py, uses: { db: { pool: 2 } } }
  lb:
    kind: nginx
    upstreams: { app: { to: web } }
    locations: [{ path: /, upstream: app }]
  pgbouncer: { kind: pgbouncer, uses: { db: {} } }
  db: { kind: postgres }
deploy:
  kubernetes: { image: "acme/shop:1" }
"#;

    fn render(yaml: &str) -> Vec<Artifact> {
        let analysis = analyze_text("capacity.yaml", yaml).expect("spec loads");
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: None };
        crate::targets::render_all(&ctx, &[]).expect("renders")
    }

    fn file<'a>(artifacts: &'a [Artifact], path: &str) -> &'a str {
        &artifacts.iter().find(|a| a.path == path).unwrap_or_else(|| panic!("no {path}")).text
    }

    #[test]
    fn nothing_without_deploy_kubernetes() {
        let artifacts = render(&SPEC.replace("  kubernetes: { image: \"acme/shop:1\" }", "  sysctl: {}").replace("    autoscale: { min: 2, max: 8 }\n", ""));
        assert!(!artifacts.iter().any(|a| a.target == TARGET));
    }

    #[test]
    fn one_file_per_service_listed_in_the_kustomization() {
        let artifacts = render(SPEC);
        let kustomization = file(&artifacts, "kubernetes/kustomization.yaml");
        for name in ["namespace", "web", "jobs", "lb", "pgbouncer", "db"] {
            assert!(artifacts.iter().any(|a| a.path == format!("kubernetes/{name}.yaml")), "{name}");
            assert!(kustomization.contains(&format!("  - \"{name}.yaml\"\n")), "{kustomization}");
        }
        assert!(kustomization.contains("namespace: \"shop\""));
        assert_eq!(render(SPEC), artifacts, "deterministic");
    }

    #[test]
    fn an_autoscaled_deployment_leaves_its_count_to_the_hpa() {
        let artifacts = render(SPEC);
        let web = file(&artifacts, "kubernetes/web.yaml");
        assert!(!web.contains("\n  replicas:"), "{web}");
        assert!(web.contains("kind: HorizontalPodAutoscaler") && web.contains("minReplicas: 2\n  maxReplicas: 8\n"));
        assert!(web.contains("averageUtilization: 80"));
        assert!(web.contains("maxSurge: \"25%\"\n      maxUnavailable: \"25%\""));
        assert!(web.contains("kind: PodDisruptionBudget"));
        // gunicorn's graceful_timeout 45s + 10.
        assert!(web.contains("terminationGracePeriodSeconds: 55"));
        // start_period 40s at a 10s period: 4 + 3 retries.
        assert!(web.contains("startupProbe:\n            httpGet:\n              path: \"/health/\"\n              port: \"http\"\n            periodSeconds: 10\n            timeoutSeconds: 10\n            failureThreshold: 7"), "{web}");
        let jobs = file(&artifacts, "kubernetes/jobs.yaml");
        assert!(jobs.contains("\n  replicas: 2\n") && !jobs.contains("HorizontalPodAutoscaler") && !jobs.contains("kind: Service"));
        assert!(jobs.contains("- \"python\"\n            - \"worker.py\""));
    }

    #[test]
    fn secrets_by_name_and_sysctls_by_namespace() {
        let artifacts = render(SPEC);
        let web = file(&artifacts, "kubernetes/web.yaml");
        assert!(web.contains("- name: \"DJANGO_SECRET_KEY\"\n              valueFrom:\n                secretKeyRef:\n                  name: \"shop-secrets\"\n                  key: \"DJANGO_SECRET_KEY\""), "{web}");
        assert!(web.contains("sysctls:\n          - name: \"net.core.somaxconn\"\n            value: \"4096\""));
        assert!(!web.contains("name: \"vm.overcommit_memory\""));
        let kustomization = file(&artifacts, "kubernetes/kustomization.yaml");
        assert!(kustomization.contains("node setting: vm.overcommit_memory = 1"), "{kustomization}");
        assert!(kustomization.contains("allowedUnsafeSysctls: [\"net.core.somaxconn\"]"));
        let db = file(&artifacts, "kubernetes/db.yaml");
        assert!(db.contains("kind: StatefulSet") && db.contains("volumeClaimTemplates:") && db.contains("storage: \"10Gi\""));
        assert!(db.contains("key: \"POSTGRES_PASSWORD\"") && db.contains("clusterIP: None"));
    }

    #[test]
    fn config_maps_embed_the_files_render_writes() {
        let artifacts = render(SPEC);
        let lb = file(&artifacts, "kubernetes/lb.yaml");
        let conf = file(&artifacts, "nginx/nginx.conf");
        let embedded: String = conf.lines().map(|l| if l.is_empty() { "\n".to_string() } else { format!("    {l}\n") }).collect();
        assert!(lb.contains(&format!("  \"nginx.conf\": |\n{embedded}")), "{lb}");
        assert!(lb.contains(&format!("{CONFIG_ANNOTATION}\": \"{}\"", sha256(conf))));
        // Under Kubernetes the upstream's one server is the app's Service.
        assert!(conf.contains("server web:8000"), "{conf}");
        let pgbouncer = file(&artifacts, "kubernetes/pgbouncer.yaml");
        assert!(pgbouncer.contains("maxSurge: 0\n      maxUnavailable: 1"));
        assert!(pgbouncer.contains("secretName: \"pgbouncer-userlist\""));
        assert!(file(&artifacts, "pgbouncer/pgbouncer.ini").contains("host=db "), "pgbouncer reaches postgres by its Service name");
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity_cpu(2.0), "2");
        assert_eq!(quantity_cpu(0.5), "500m");
        assert_eq!(quantity_cpu(1.25), "1250m");
        assert_eq!(quantity_bytes(2 * 1024 * 1024 * 1024), "2Gi");
        assert_eq!(quantity_bytes(512 * 1024 * 1024), "512Mi");
        assert_eq!(quantity_bytes(1000), "1000");
    }

    #[test]
    fn block_scalars_choose_indicators() {
        assert_eq!(block_scalar("a\nb\n", 4), "|\n    a\n    b");
        assert_eq!(block_scalar("a\n\nb\n", 2), "|\n  a\n\n  b");
        assert_eq!(block_scalar("a", 2), "|-\n  a");
        assert_eq!(block_scalar("a\n\n", 2), "|+\n  a\n");
        assert_eq!(block_scalar("  indented\n", 2), "|2\n    indented");
        assert_eq!(block_scalar("a\n  \nb\n", 2), "\"a\\n  \\nb\\n\"");
        assert_eq!(block_scalar("bell\u{7}\n", 2), "\"bell\\u0007\\n\"");
    }

    #[test]
    fn safe_sysctls_by_version() {
        assert!(is_safe_sysctl("net.ipv4.tcp_keepalive_time", (1, 29)));
        assert!(!is_safe_sysctl("net.ipv4.tcp_keepalive_time", (1, 28)));
        assert!(!is_safe_sysctl("net.core.somaxconn", (1, 37)));
    }
}
