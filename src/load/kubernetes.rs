//! Load-time checks of what Kubernetes will refuse: object names (DNS-1123 / DNS-1035),
//! the namespace, image references, the Ingress host and secret names, the rollout
//! policy, the supported API versions and the autoscaler bounds. A spec that passes
//! renders manifests the API server accepts; each problem points at file:line:column.

use crate::plan::defaults as d;
use crate::plan::resolve::parse_version;
use crate::spec::{IntOrPercent, RedisMode, Service, Spec};

use super::yaml::escape_segment;

/// A problem: JSON pointer, message, hint, whether to point at the key alone.
pub type Problem = (String, String, String, bool);

/// Longest name of a service that becomes a StatefulSet: its pods' `controller-revision-hash`
/// label is `<name>-<10 characters>` and a label value holds at most 63.
pub const STATEFULSET_NAME_MAX: usize = 52;

/// A DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63): namespaces, ports.
pub fn dns1123_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A DNS-1035 label: a DNS-1123 label that starts with a letter (Service names).
pub fn dns1035_label(name: &str) -> bool {
    dns1123_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase())
}

/// A DNS-1123 subdomain (dot-separated labels, at most 253): most object names.
pub fn dns1123_subdomain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(dns1123_label)
}

/// An image reference: `[registry[:port]/]path[:tag][@digest]`, no spaces or quotes.
pub fn image_reference(image: &str) -> bool {
    let ok_chars = image.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@'));
    ok_chars && image.len() <= 4096 && image.starts_with(|c: char| c.is_ascii_alphanumeric()) && !image.ends_with([':', '/', '@'])
}

const LABEL_HINT: &str = "lowercase letters, digits and `-`, starting with a letter and ending with a letter or digit (a Kubernetes Service name is a DNS-1035 label)";
const SUBDOMAIN_HINT: &str = "lowercase letters, digits, `-` and `.` (a DNS-1123 subdomain, what Kubernetes object names are)";

/// Every problem `deploy.kubernetes` and `autoscale` have in this spec.
pub fn problems(spec: &Spec) -> Vec<Problem> {
    let mut out: Vec<Problem> = Vec::new();
    let mut add = |pointer: String, message: String, hint: &str, key_only: bool| out.push((pointer, message, hint.to_string(), key_only));

    for (name, service) in &spec.services {
        let base = super::Pointer("/services", name);
        if let Some(a) = service.autoscale()
            && a.min > a.max
        {
            add(format!("{base}/autoscale/min"), format!("autoscale min {} is above max {}", a.min, a.max), "min is the fewest pods, max the most: min <= max", false);
        }
    }

    let Some(k8s) = spec.deploy.as_ref().and_then(|dep| dep.kubernetes.as_ref()) else { return out };
    let base = "/deploy/kubernetes";
    if let Some(ns) = &k8s.namespace
        && !dns1123_label(ns)
    {
        add(format!("{base}/namespace"), format!("invalid namespace `{}`", ns.escape_debug()), "a namespace is a DNS-1123 label: lowercase letters, digits and `-`, at most 63", false);
    }
    if let Some(version) = &k8s.version {
        match parse_version(version) {
            Some(v) if (d::KUBERNETES_OLDEST..=d::KUBERNETES_NEWEST).contains(&v) => {}
            _ => add(
                format!("{base}/version"),
                format!("Kubernetes version `{}` is not supported", version.escape_debug()),
                &format!(
                    "the manifests are validated for {}.{} to {}.{}; write one of those as \"1.31\"",
                    d::KUBERNETES_OLDEST.0,
                    d::KUBERNETES_OLDEST.1,
                    d::KUBERNETES_NEWEST.0,
                    d::KUBERNETES_NEWEST.1
                ),
                false,
            ),
        }
    }
    if let Some(image) = &k8s.image
        && !image_reference(image)
    {
        add(format!("{base}/image"), format!("invalid image `{}`", image.escape_debug()), "an image reference such as ghcr.io/acme/arena:1.4.2", false);
    }
    for (field, value) in [("secret", &k8s.secret), ("storage_class", &k8s.storage_class)] {
        if let Some(value) = value
            && !dns1123_subdomain(value)
        {
            add(format!("{base}/{field}"), format!("invalid {field} `{}`", value.escape_debug()), SUBDOMAIN_HINT, false);
        }
    }
    if let Some(dir) = &k8s.dir
        && (dir.is_empty() || dir.starts_with('/') || dir.split(['/', '\\']).any(|p| p == ".." || p.is_empty()) || dir.chars().any(|c| c.is_control() || c == ':'))
    {
        add(format!("{base}/dir"), format!("output folder `{}` leaves the output directory", dir.escape_debug()), "use a relative path without `..`, such as `kubernetes` or `deploy/k8s`", false);
    }
    let percent = |value: &Option<IntOrPercent>| match value {
        Some(IntOrPercent::Percent(p)) => p.trim_end_matches('%').parse::<u64>().ok(),
        _ => None,
    };
    let zero = |value: &Option<IntOrPercent>| match value {
        Some(IntOrPercent::Count(0)) => true,
        Some(IntOrPercent::Percent(_)) => percent(value) == Some(0),
        _ => false,
    };
    if zero(&k8s.max_surge) && zero(&k8s.max_unavailable) {
        add(
            format!("{base}/max_unavailable"),
            "max_surge and max_unavailable are both 0: a rolling update could never replace a pod".into(),
            "Kubernetes refuses the Deployment; keep max_unavailable 0 and set max_surge to at least 1",
            false,
        );
    }
    if percent(&k8s.max_unavailable).is_some_and(|p| p > 100) {
        add(format!("{base}/max_unavailable"), "max_unavailable is above 100%".into(), "a percentage of the replicas, at most 100%", false);
    }
    if let Some(ingress) = &k8s.ingress {
        let host = ingress.host.strip_prefix("*.").unwrap_or(&ingress.host);
        if !dns1123_subdomain(host) || !host.contains('.') {
            add(format!("{base}/ingress/host"), format!("invalid Ingress host `{}`", ingress.host.escape_debug()), "a lowercase DNS name such as app.example.com (an Ingress host is a DNS-1123 subdomain)", false);
        }
        for (field, value) in [("class", &ingress.class), ("tls_secret", &ingress.tls_secret)] {
            if let Some(value) = value
                && !dns1123_subdomain(value)
            {
                add(format!("{base}/ingress/{field}"), format!("invalid {field} `{}`", value.escape_debug()), SUBDOMAIN_HINT, false);
            }
        }
    }

    for (name, service) in &spec.services {
        let base = format!("/services/{}", escape_segment(name));
        if !dns1035_label(name) {
            add(base.clone(), format!("service name `{}` cannot be a Kubernetes Service name", name.escape_debug()), LABEL_HINT, true);
        } else if matches!(service, Service::Postgres(_) | Service::Redis(_) | Service::Qdrant(_)) && !service.external() && name.len() > STATEFULSET_NAME_MAX {
            add(
                base.clone(),
                format!("service name `{name}` is {} characters; a StatefulSet's name holds at most {STATEFULSET_NAME_MAX}", name.len()),
                "its pods carry a `controller-revision-hash` label of the name plus 11 characters, and a label value holds at most 63",
                true,
            );
        }
        if let Some(image) = &service.common().image
            && !image_reference(image)
        {
            add(format!("{base}/image"), format!("invalid image `{}`", image.escape_debug()), "an image reference such as ghcr.io/acme/arena:1.4.2", false);
        }
        let app_or_job = matches!(
            service,
            Service::Gunicorn(_) | Service::Puma(_) | Service::Sidekiq(_) | Service::Celery(_) | Service::SolidQueue(_) | Service::Rq(_) | Service::Worker(_)
        );
        if app_or_job && service.common().image.is_none() && k8s.image.is_none() {
            add(
                format!("{base}/image"),
                format!("service `{name}` has no image to run on Kubernetes"),
                "set `image:` on the service or `deploy.kubernetes.image` (the image every app and job service runs)",
                true,
            );
        }
        if let Some(a) = service.autoscale() {
            let resources = service.common().resources.as_ref();
            if resources.is_none_or(|r| r.cpus.is_none() && r.reserve_cpus.is_none()) {
                add(
                    format!("{base}/autoscale"),
                    format!("service `{name}` autoscales on CPU ({}% target) but has no CPU request", a.target_cpu.unwrap_or(d::HPA_TARGET_CPU)),
                    "set `resources.cpus` (or `resources.reserve_cpus`): the HorizontalPodAutoscaler measures utilization against the pods' CPU request and does nothing without one",
                    true,
                );
            }
        }
        if let Service::Redis(redis) = service
            && !service.external()
            && matches!(redis.mode, Some(RedisMode::Sentinel | RedisMode::Cluster))
        {
            add(
                format!("{base}/mode"),
                format!("redis `{name}` in {} mode is not rendered for Kubernetes", if matches!(redis.mode, Some(RedisMode::Sentinel)) { "sentinel" } else { "cluster" }),
                "run it with an operator or a chart and mark it `external: true` (its clients still count against maxclients), or use mode standalone",
                false,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(dns1123_label("arena") && dns1123_label("a-1") && dns1123_label("0db"));
        assert!(!dns1123_label("Arena") && !dns1123_label("a_b") && !dns1123_label("-a") && !dns1123_label("a-") && !dns1123_label(""));
        assert!(!dns1123_label(&"a".repeat(64)));
        assert!(dns1035_label("web") && !dns1035_label("0db"));
        assert!(dns1123_subdomain("arena-tls") && dns1123_subdomain("app.example.com"));
        assert!(!dns1123_subdomain("app..example.com") && !dns1123_subdomain("App.example.com") && !dns1123_subdomain("a b"));
        assert!(image_reference("ghcr.io/acme/arena:1.4.2") && image_reference("localhost:5000/x@sha256:abc"));
        assert!(!image_reference("arena latest") && !image_reference("x\"y") && !image_reference("x:"));
    }
}
