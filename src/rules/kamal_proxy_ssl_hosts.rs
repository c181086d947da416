//! Rule `kamal-proxy-ssl-hosts`.

use super::{Check, finding};
use crate::diag::Diagnostic;
use crate::plan::Plan;

declare_rule! {
    /// kamal-proxy is asked for Let's Encrypt TLS on a role that runs on several hosts, which Kamal refuses.
    ///
    /// ## What it checks
    /// With `deploy.kamal.proxy.ssl: true` and no custom certificate
    /// (`certificate_pem` + `private_key_pem` secrets), the role kamal-proxy fronts
    /// (the first app server) must run on one host: its machine group lists one
    /// address (or has `count: 1`).
    ///
    /// ## Why it matters
    /// Automatic TLS comes from Let's Encrypt's HTTP challenge, answered by the
    /// kamal-proxy of the host the public name points at; with several hosts behind one
    /// name, each proxy would ask for its own certificate and most challenges would land
    /// on another host. Kamal checks this before it touches a server: `kamal deploy`
    /// stops with `SSL is only supported on a single server unless you provide custom
    /// certificates, found 3 servers for role web`, so nothing is deployed.
    ///
    /// ## Example
    /// ```yaml
    /// machines: { web: { count: 3, addresses: [10.0.0.10, 10.0.0.11, 10.0.0.12] } }
    /// services: { web: { kind: puma, machine: web, replicas: 3 } }
    /// deploy: { kamal: { image: acme/app, proxy: { host: app.example.com, ssl: true } } }
    /// ```
    ///
    /// ## Fix
    /// Give every proxy the same certificate: `deploy.kamal.proxy.certificate_pem:
    /// CERTIFICATE_PEM` and `private_key_pem: PRIVATE_KEY_PEM` (secret names, e.g. a
    /// Cloudflare origin certificate); or terminate TLS at a load balancer or CDN in
    /// front of the hosts and set `ssl: false`; or run the role on one host.
    ///
    /// ## Defaults
    /// `ssl` false (true when a custom certificate is given).
    ///
    /// ## References
    /// - https://kamal-deploy.org/docs/configuration/proxy/ (SSL, custom SSL certificate)
    /// - Kamal 2 `Kamal::Configuration::Role#ensure_one_host_for_ssl`
    pub struct KamalProxySslHosts { id: "kamal-proxy-ssl-hosts", severity: Error, core: false }
}

impl Check for KamalProxySslHosts {
    fn run(&self, plan: &Plan, out: &mut Vec<Diagnostic>) {
        let Some(tls) = &plan.kamal_tls else { return };
        if !tls.ssl || tls.custom_certificate || tls.hosts <= 1 {
            return;
        }
        out.push(
            finding::<Self>(
                "deploy.kamal.proxy.ssl",
                format!(
                    "kamal-proxy terminates TLS with Let's Encrypt (deploy.kamal.proxy.ssl) for role `{}` on {} hosts ({}): Kamal refuses the file before deploying (`SSL is only supported on a single server unless you provide custom certificates, found {} servers for role {}`)",
                    tls.role, tls.hosts, tls.hosts_path, tls.hosts, tls.role
                ),
            )
            .number("hosts", tls.hosts as f64)
            .related(tls.hosts_path.clone(), format!("{} hosts", tls.hosts))
            .fix("set deploy.kamal.proxy.certificate_pem and private_key_pem to the secret names of one certificate for every host (e.g. a Cloudflare origin certificate), or terminate TLS at a load balancer and set ssl: false"),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::findings_of;

    /// A spec whose `web` group is the hosts listed (one address per host).
    fn spec(hosts: &str, proxy: &str) -> String {
        let count = hosts.split(',').count();
        format!(
            "version: 1\nname: t\nmachines:\n  web: {{ count: {count}, addresses: [{hosts}] }}\nservices:\n  web: {{ kind: puma, machine: web }}\ndeploy:\n  kamal: {{ image: acme/t, registry: {{ username: U, password: P }}, proxy: {proxy} }}\n"
        )
    }

    #[test]
    fn several_hosts_with_lets_encrypt() {
        let found = findings_of("kamal-proxy-ssl-hosts", &spec("10.0.0.1, 10.0.0.2, 10.0.0.3", "{ host: a.example.com, ssl: true }"));
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("role `web` on 3 hosts (machines.web.addresses)"), "{}", found[0].message);
        assert!(found[0].message.contains("found 3 servers for role web"));
    }

    #[test]
    fn custom_certificate_one_host_or_no_ssl_pass() {
        let certs = "{ host: a.example.com, ssl: true, certificate_pem: CERTIFICATE_PEM, private_key_pem: PRIVATE_KEY_PEM }";
        assert!(findings_of("kamal-proxy-ssl-hosts", &spec("10.0.0.1, 10.0.0.2", certs)).is_empty());
        assert!(findings_of("kamal-proxy-ssl-hosts", &spec("10.0.0.1", "{ host: a.example.com, ssl: true }")).is_empty());
        assert!(findings_of("kamal-proxy-ssl-hosts", &spec("10.0.0.1, 10.0.0.2", "{ host: a.example.com, ssl: false }")).is_empty());
    }
}
