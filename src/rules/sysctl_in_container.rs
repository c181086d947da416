//! Rule `sysctl-in-container`.

use super::{Check, finding};
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// A container asks for a host-wide kernel setting, which Docker refuses to apply.
    ///
    /// ## What it checks
    /// When the deployment runs services in containers (`deploy.compose` or
    /// `deploy.kamal`), every key under `services.<name>.sysctls` must be namespaced:
    /// `net.*` (network namespace) or an IPC key (`kernel.shm*`, `kernel.msg*`,
    /// `kernel.sem`, `fs.mqueue.*`). Everything else - `vm.*`, `fs.*` such as
    /// `fs.file-max`, the rest of `kernel.*` - is one value for the whole host.
    ///
    /// ## Why it matters
    /// A container runtime applies sysctls inside the container's namespaces and
    /// refuses keys that would change the host. The container is not created: runc
    /// fails with `OCI runtime create failed: runc create failed: sysctl
    /// "vm.overcommit_memory" is not in a separate kernel namespace: unknown`, and
    /// `docker run --sysctl` rejects it up front with `sysctl 'vm.overcommit_memory=1'
    /// is not allowed` (`is not whitelisted` in older clients). So the service never
    /// starts, and the setting it was meant to provide (overcommit for redis,
    /// `vm.max_map_count`, `fs.file-max`) is not applied either. headroom's compose target leaves such keys out with a comment,
    /// so the rendered file starts but the service runs without the setting.
    ///
    /// ## Example
    /// ```yaml
    /// redis: { kind: redis, persistence: aof, sysctls: { vm.overcommit_memory: 1 } }
    /// deploy: { compose: {} }
    /// ```
    ///
    /// ## Fix
    /// Move the key to the host: `machines.<machine>.sysctl` (headroom's sysctl target
    /// writes `/etc/sysctl.d/` and an apply script), and keep only `net.*` and IPC keys
    /// under `services.<name>.sysctls`.
    ///
    /// ## Defaults
    /// None: a container starts with its namespaces' kernel defaults for namespaced
    /// keys (e.g. `net.core.somaxconn` 4096) and sees the host's values for the rest.
    ///
    /// ## References
    /// - https://docs.docker.com/reference/cli/docker/container/run/#sysctl
    /// - https://docs.docker.com/reference/compose-file/services/#sysctls
    /// - https://github.com/opencontainers/runc/blob/main/libcontainer/configs/validate/validator.go (sysctl validation)
    /// - https://www.kernel.org/doc/Documentation/sysctl/
    pub struct SysctlInContainer { id: "sysctl-in-container", severity: Error, core: false }
}

/// Keys a container's own namespaces carry: network and IPC.
fn namespaced(key: &str) -> bool {
    key.starts_with("net.") || key.starts_with("kernel.shm") || key.starts_with("kernel.msg") || key == "kernel.sem" || key.starts_with("fs.mqueue.")
}

impl Check for SysctlInContainer {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        if !plan.containerized {
            return;
        }
        let runtime = if plan.kamal_proxy_timeout.is_some() {
            "deploy.kamal"
        } else if plan.kubernetes.is_some() {
            "deploy.kubernetes: a pod's securityContext.sysctls"
        } else {
            "deploy.compose"
        };
        for service in &plan.services {
            for (key, value) in &service.sysctls {
                if namespaced(key) {
                    continue;
                }
                let path = format!("{}.sysctls[\"{key}\"]", service.path);
                let family = key.split('.').next().unwrap_or(key);
                let fix = match &service.machine {
                    Some(m) => format!("remove {path} and set machines.{m}.sysctl[\"{key}\"]: {value} on the host (the sysctl target renders it)"),
                    None => format!(
                        "remove {path} and set {key} = {value} on the host that runs `{}` (declare it under machines.<name>.sysctl and place the service there with {}.machine; the sysctl target renders it)",
                        service.name, service.path
                    ),
                };
                let message = format!(
                    "`{}` sets {key} = {value} ({path}) inside its container ({runtime}), but {family}.* is not namespaced (only net.* and the IPC keys kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.* are): the runtime refuses to create the container with `sysctl \"{key}\" is not in a separate kernel namespace` (docker run --sysctl: `sysctl '{key}={value}' is not allowed`), so `{}` does not start, and the setting is not applied",
                    service.name, service.name,
                );
                out.push(
                    finding::<Self>(path.clone(), message)
                        .fix(fix),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::analysis::analyze_text;

    fn findings(sysctls: &str, deploy: &str) -> Vec<crate::diag::Diagnostic> {
        let yaml = format!("version: 1\nname: t\nmachines:\n  host: {{ memory: 4GiB }}\nservices:\n  redis: {{ kind: redis, machine: host, sysctls: {sysctls} }}\n{deploy}");
        analyze_text("t.yaml", &yaml)
            .expect("spec loads")
            .diagnostics
            .into_iter()
            .filter(|d| d.rule == "sysctl-in-container")
            .collect()
    }

    const COMPOSE: &str = "deploy: { compose: {} }\n";

    #[test]
    fn vm_key_in_a_container() {
        let found = findings("{ vm.overcommit_memory: 1, net.core.somaxconn: 1024 }", COMPOSE);
        assert_eq!(found.len(), 1, "{found:#?}");
        let m = &found[0].message;
        assert!(m.contains("`redis` sets vm.overcommit_memory = 1 (services.redis.sysctls[\"vm.overcommit_memory\"])"), "{m}");
        assert!(m.contains("vm.* is not namespaced") && m.contains("is not in a separate kernel namespace"), "{m}");
        assert_eq!(found[0].path, "services.redis.sysctls[\"vm.overcommit_memory\"]");
        assert!(found[0].fix.as_deref().unwrap().contains("machines.host.sysctl[\"vm.overcommit_memory\"]: 1"));
    }

    #[test]
    fn fs_and_kernel_keys() {
        let found = findings("{ fs.file-max: 200000, kernel.pid_max: 65536, kernel.shmmax: 68719476736, kernel.sem: \"250 32000 100 128\", fs.mqueue.msg_max: 100 }", COMPOSE);
        let paths: Vec<_> = found.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["services.redis.sysctls[\"fs.file-max\"]", "services.redis.sysctls[\"kernel.pid_max\"]"]);
    }

    #[test]
    fn boundary() {
        // Namespaced keys pass; outside containers the rule does not apply.
        assert!(findings("{ net.core.somaxconn: 4096, kernel.msgmax: 65536 }", COMPOSE).is_empty());
        assert!(findings("{ vm.overcommit_memory: 1 }", "").is_empty());
    }
}
