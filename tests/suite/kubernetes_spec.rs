//! `autoscale` and `deploy.kubernetes` in the spec: what Kubernetes would refuse is a
//! load error at file:line:column with a hint, and nothing else is.

use headroom::analysis::analyze_text;

const BASE: &str = "version: 1
name: shop
services:
  web:
    kind: gunicorn
    workers: 2
    resources: { cpus: 1 }
    autoscale: { min: 2, max: 6, target_cpu: 70 }
    uses: { db: { pool: 2 } }
  db:
    kind: postgres
deploy:
  kubernetes:
    namespace: shop
    image: ghcr.io/acme/shop:1.2.0
    version: \"1.31\"
    max_surge: 25%
    max_unavailable: 0
    ingress: { host: shop.example.com, class: nginx, tls_secret: shop-tls }
";

/// The (line, column, message, hint) of every load problem of a spec.
fn problems(yaml: &str) -> Vec<(usize, usize, String, String)> {
    match analyze_text("capacity.yaml", yaml) {
        Ok(_) => Vec::new(),
        Err(failure) => failure
            .diagnostics
            .iter()
            .map(|d| {
                let span = d.span.as_ref().expect("every load problem is located");
                (span.line, span.column, d.message.clone(), d.fix.clone().unwrap_or_default())
            })
            .collect(),
    }
}

fn one_problem(yaml: &str) -> (usize, usize, String, String) {
    let found = problems(yaml);
    assert_eq!(found.len(), 1, "{found:#?}");
    found.into_iter().next().unwrap()
}

#[test]
fn the_base_spec_loads() {
    assert!(problems(BASE).is_empty(), "{:#?}", problems(BASE));
    let analysis = analyze_text("capacity.yaml", BASE).unwrap();
    let web = analysis.plan.service("web").unwrap();
    assert_eq!(web.replicas.value, 6, "budgets count the autoscaler's max");
    assert_eq!(web.replicas.path(), "services.web.autoscale.max");
    assert_eq!(web.min_replicas.value, 2);
    assert_eq!(web.rollout_surge.as_ref().unwrap().value, 2, "25% of 6, rounded up");
    let k8s = analysis.plan.kubernetes.as_ref().unwrap();
    assert_eq!(k8s.version.value, (1, 31));
    assert_eq!(k8s.namespace.value, "shop");
}

#[test]
fn service_names_must_be_kubernetes_service_names() {
    let yaml = BASE.replace("  db:\n    kind: postgres\n", "  main_db:\n    kind: postgres\n").replace("db: { pool: 2 }", "main_db: { pool: 2 }");
    let (line, column, message, hint) = one_problem(&yaml);
    assert_eq!((line, column), (10, 3));
    assert!(message.contains("`main_db` cannot be a Kubernetes Service name"), "{message}");
    assert!(hint.contains("DNS-1035"), "{hint}");
}

#[test]
fn namespace_image_ingress_and_version_are_checked_where_written() {
    let cases: &[(&str, &str, usize, usize, &str)] = &[
        ("namespace: shop", "namespace: Shop_Prod", 14, 5, "invalid namespace `Shop_Prod`"),
        ("image: ghcr.io/acme/shop:1.2.0", "image: \"acme/shop 1.2\"", 15, 5, "invalid image"),
        ("version: \"1.31\"", "version: \"1.12\"", 16, 5, "`1.12` is not supported"),
        ("host: shop.example.com", "host: \"shop.example.com\\nevil: 1\"", 19, 16, "invalid Ingress host"),
        ("tls_secret: shop-tls", "tls_secret: Shop_TLS", 19, 54, "invalid tls_secret"),
    ];
    for (from, to, line, column, phrase) in cases {
        let yaml = BASE.replace(from, to);
        let (l, c, message, _) = one_problem(&yaml);
        assert!(message.contains(phrase), "{to}: {message}");
        assert_eq!((l, c), (*line, *column), "{to}: {message}");
    }
}

#[test]
fn a_rollout_that_can_never_progress_is_refused() {
    let yaml = BASE.replace("max_surge: 25%", "max_surge: 0%");
    let (line, _, message, hint) = one_problem(&yaml);
    assert_eq!(line, 18);
    assert!(message.contains("both 0"), "{message}");
    assert!(hint.contains("max_surge to at least 1"), "{hint}");
}

#[test]
fn autoscale_bounds_and_cpu_request() {
    let (line, _, message, _) = one_problem(&BASE.replace("min: 2, max: 6", "min: 7, max: 6"));
    assert_eq!(line, 8);
    assert!(message.contains("autoscale min 7 is above max 6"), "{message}");

    let (line, _, message, hint) = one_problem(&BASE.replace("    resources: { cpus: 1 }\n", ""));
    assert_eq!(line, 7);
    assert!(message.contains("no CPU request"), "{message}");
    assert!(hint.contains("resources.cpus"), "{hint}");

    // autoscale is for app and job services only.
    let yaml = BASE.replace("    kind: postgres\n", "    kind: postgres\n    autoscale: { min: 1, max: 2 }\n");
    let (_, _, message, _) = one_problem(&yaml);
    assert!(message.contains("unknown key `autoscale`"), "{message}");
}

#[test]
fn app_services_need_an_image() {
    let yaml = BASE.replace("    image: ghcr.io/acme/shop:1.2.0\n", "");
    let (line, column, message, hint) = one_problem(&yaml);
    assert_eq!((line, column), (4, 3));
    assert!(message.contains("`web` has no image"), "{message}");
    assert!(hint.contains("deploy.kubernetes.image"), "{hint}");
}

#[test]
fn external_services_are_not_statefulsets() {
    let yaml = BASE.replace("    kind: postgres\n", "    kind: postgres\n    external: true\n    max_connections: 50\n");
    let analysis = analyze_text("capacity.yaml", &yaml).unwrap();
    assert!(analysis.plan.service("db").unwrap().external);
}
