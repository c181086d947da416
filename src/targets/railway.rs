//! Target `railway`: the `[deploy]` keys of railway.toml that carry the plan (the start
//! command with the app server's settings, the health check). railway.toml belongs to
//! the user, so when it exists it is patched with `toml_edit`: only those keys change,
//! every other key, comment and blank line stays byte-for-byte.

use toml_edit::{DocumentMut, Item, Table, TableLike, Value};

use super::gunicorn::comment;
use super::{Artifact, Context, RenderError, Target};
use crate::plan::{HealthPlan, Kind, ServicePlan};

pub struct Railway;

impl Target for Railway {
    fn name(&self) -> &'static str {
        "railway"
    }
    fn render(&self, ctx: &Context<'_>) -> Result<Vec<Artifact>, RenderError> {
        let Some(railway) = ctx.spec.deploy.as_ref().and_then(|d| d.railway.as_ref()) else {
            return Ok(Vec::new());
        };
        let service = match &railway.service {
            Some(name) => ctx
                .plan
                .service(name)
                .filter(|s| s.kind.is_app())
                .ok_or_else(|| error(format!("deploy.railway.service `{name}` is not a gunicorn or puma service")))?,
            None => ctx.plan.apps().next().ok_or_else(|| error("deploy.railway needs a gunicorn or puma service to start".into()))?,
        };
        let path = railway.file.clone().unwrap_or_else(|| ctx.path_for("railway", "railway.toml"));
        super::check_relative(&path).map_err(error)?;
        let existing = match ctx.existing_root {
            Some(root) => match std::fs::read_to_string(root.join(&path)) {
                Ok(text) => Some(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(error(format!("cannot read {path} to patch it: {e}"))),
            },
            None => None,
        };
        let settings = Settings::new(ctx, service, existing.as_deref().and_then(builder_of).as_deref());
        let (text, patched) = match existing {
            Some(text) => (patch(&text, &settings).map_err(|e| error(format!("cannot patch {path}: {e}")))?, true),
            None => (fresh(ctx, service, &settings), false),
        };
        Ok(vec![Artifact { target: "railway", path, text, patched }])
    }
}

fn error(message: String) -> RenderError {
    RenderError { target: "railway", message }
}

/// The keys headroom owns in `[deploy]`.
struct Settings {
    start_command: String,
    health: Option<(String, i64)>,
}

/// Builders that run the start command in a shell (`$PORT` expands there).
const SHELL_BUILDERS: &[&str] = &["NIXPACKS", "RAILPACK", "HEROKU", "PAKETO"];

/// `[build] builder` of an existing railway.toml, upper-cased.
fn builder_of(text: &str) -> Option<String> {
    let doc: DocumentMut = text.parse().ok()?;
    doc.get("build")?.get("builder")?.as_str().map(str::to_ascii_uppercase)
}

impl Settings {
    /// `builder`: the `[build] builder` the user's railway.toml names, if any.
    fn new(ctx: &Context<'_>, service: &ServicePlan, builder: Option<&str>) -> Self {
        let argv = match service.kind {
            Kind::Puma => super::puma::command(ctx, service),
            _ => super::gunicorn::command(service),
        };
        // Railway routes to the port it puts in $PORT: gunicorn binds that port (puma.rb
        // already reads PORT).
        let bind_value = argv.iter().position(|w| w == "--bind").map(|i| i + 1);
        let line = argv
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if Some(i) == bind_value {
                    "0.0.0.0:$PORT".to_string()
                } else {
                    super::escape::shell_word(w).expect("shell quoting cannot fail")
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
        // Railpack and Nixpacks run the start command in a shell; a Dockerfile or image
        // deployment runs it in exec form, where `$PORT` would reach gunicorn literally
        // (`'$PORT' is not a valid port number`). Unless the builder is known to use a
        // shell, the line runs under `/bin/sh -c`, which works under both.
        let in_shell = builder.is_some_and(|b| SHELL_BUILDERS.contains(&b));
        let start_command = if line.contains('$') && !in_shell {
            format!("/bin/sh -c {}", super::escape::shell_word(&format!("exec {line}")).expect("shell quoting cannot fail"))
        } else {
            line
        };
        let health = service.health.as_ref().and_then(|h| h.path.clone().map(|path| (path, healthcheck_timeout(h))));
        Settings { start_command, health }
    }
}

/// Railway's healthcheckTimeout is how long a new deployment may take to answer its
/// health check at all (default 300s), not one probe's timeout: the time Docker gives a
/// container before calling it unhealthy, `start_period + interval x retries`.
fn healthcheck_timeout(h: &HealthPlan) -> i64 {
    let window = h.start_period.saturating_add(h.interval.saturating_mul(u64::from(h.retries)));
    i64::try_from(window.max(h.timeout)).unwrap_or(i64::MAX)
}

/// A new railway.toml: a header comment and the `[deploy]` keys.
fn fresh(ctx: &Context<'_>, service: &ServicePlan, settings: &Settings) -> String {
    let mut doc = DocumentMut::new();
    let mut deploy = Table::new();
    let mut prefix = ctx.header("#");
    prefix.push_str(&format!("# Railway config as code for service `{}` ({}).\n", comment(&service.name), comment(&service.path)));
    prefix.push_str("# headroom sets only [deploy] startCommand, healthcheckPath and healthcheckTimeout; other keys\n# and comments added here are kept on the next render.\n");
    prefix.push_str(&format!(
        "# Railway routes to the port in $PORT, so the start command binds $PORT (under /bin/sh -c: a Dockerfile\n# or image deployment runs it without a shell); the spec's port {}\n# ({}) is what the other targets use.\n",
        service.port.value,
        comment(&service.port.cite()),
    ));
    if let Some(h) = &service.health {
        prefix.push_str(&format!(
            "# healthcheckTimeout: start_period {}s + interval {}s x retries {} of {}.health.\n",
            h.start_period,
            h.interval,
            h.retries,
            comment(&service.path)
        ));
    }
    deploy.decor_mut().set_prefix(prefix);
    doc.insert("deploy", Item::Table(deploy));
    apply(doc.as_table_mut(), settings).expect("a new [deploy] table takes every key");
    doc.to_string()
}

/// Sets headroom's keys in an existing railway.toml and leaves everything else alone.
fn patch(text: &str, settings: &Settings) -> Result<String, String> {
    let mut doc: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| e.to_string().trim_end().to_string())?;
    apply(doc.as_table_mut(), settings)?;
    Ok(doc.to_string())
}

fn apply(root: &mut Table, settings: &Settings) -> Result<(), String> {
    if !root.contains_key("deploy") {
        root.insert("deploy", Item::Table(Table::new()));
    }
    let deploy = root.get_mut("deploy").expect("just ensured");
    if let Item::Table(t) = deploy {
        t.set_implicit(false);
    }
    let deploy = deploy.as_table_like_mut().ok_or("`deploy` is not a table")?;
    set(deploy, "startCommand", Value::from(settings.start_command.as_str()));
    if let Some((path, timeout)) = &settings.health {
        set(deploy, "healthcheckPath", Value::from(path.as_str()));
        set(deploy, "healthcheckTimeout", Value::from(*timeout));
    }
    Ok(())
}

/// Sets one key. An equal value is left as written; a changed one keeps the key's
/// comments (its decor) and the value's surrounding spaces and trailing comment.
fn set(table: &mut dyn TableLike, key: &str, mut value: Value) {
    if let Some(item) = table.get_mut(key) {
        if let Some(old) = item.as_value() {
            let same = match (old, &value) {
                (Value::String(a), Value::String(b)) => a.value() == b.value(),
                (Value::Integer(a), Value::Integer(b)) => a.value() == b.value(),
                _ => false,
            };
            if same {
                return;
            }
            *value.decor_mut() = old.decor().clone();
        }
        *item = Item::Value(value);
    } else {
        table.insert(key, Item::Value(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze_text;

    const SPEC: &str = r#"
version: 1
name: sfpermits
services:
  web:
    kind: gunicorn
    worker_class: gevent
    workers: 4
    worker_connections: 100
    timeout: 120s
    port: 8080
    app: web.app:app
    health: { path: /health }
deploy:
  railway: { service: web, file: web/railway.toml }
"#;

    const EXISTING: &str = r#"# The web service.
[build]
builder = "NIXPACKS"   # keep

[deploy]
# gevent workers
startCommand = "gunicorn --worker-class gevent --workers 4 --bind 0.0.0.0:$PORT web.app:app"  # the app
restartPolicyType = "ON_FAILURE"
restartPolicyMaxRetries = 10
"#;

    fn render_with(spec: &str, root: Option<&std::path::Path>) -> Vec<Artifact> {
        let analysis = analyze_text("capacity.yaml", spec).expect("spec loads");
        let ctx = Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file: "capacity.yaml".into(), existing_root: root };
        Railway.render(&ctx).expect("renders")
    }

    const COMMAND: &str = "gunicorn --bind 0.0.0.0:$PORT --workers 4 --worker-class gevent --worker-connections 100 --timeout 120 \
        --graceful-timeout 30 --keep-alive 2 --max-requests 0 --max-requests-jitter 0 --backlog 2048 web.app:app";

    #[test]
    fn fresh_file_when_none_exists() {
        let dir = tempfile::tempdir().unwrap();
        let artifacts = render_with(SPEC, Some(dir.path()));
        assert_eq!(artifacts.len(), 1);
        let a = &artifacts[0];
        assert_eq!(a.path, "web/railway.toml");
        assert!(!a.patched);
        assert!(a.text.starts_with("# Generated by headroom from capacity.yaml"), "{}", a.text);
        let doc: toml_edit::DocumentMut = a.text.parse().unwrap();
        // The builder is unknown: the line runs under /bin/sh -c, exec form or not.
        assert_eq!(doc["deploy"]["startCommand"].as_str(), Some(format!("/bin/sh -c 'exec {COMMAND}'").as_str()));
        assert_eq!(doc["deploy"]["healthcheckPath"].as_str(), Some("/health"));
        assert_eq!(doc["deploy"]["healthcheckTimeout"].as_integer(), Some(90));
    }

    #[test]
    fn patch_changes_only_headrooms_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("web")).unwrap();
        std::fs::write(dir.path().join("web/railway.toml"), EXISTING).unwrap();
        let a = &render_with(SPEC, Some(dir.path()))[0];
        assert!(a.patched);
        let expected = EXISTING.replace(
            "gunicorn --worker-class gevent --workers 4 --bind 0.0.0.0:$PORT web.app:app",
            COMMAND,
        ) + "healthcheckPath = \"/health\"\nhealthcheckTimeout = 90\n";
        assert_eq!(a.text, expected);
        // Patching the patched file changes nothing.
        std::fs::write(dir.path().join("web/railway.toml"), &a.text).unwrap();
        assert_eq!(render_with(SPEC, Some(dir.path()))[0].text, a.text);
    }

    #[test]
    fn dockerfile_builders_get_a_shell_and_shell_builders_do_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("web")).unwrap();
        for (builder, wrapped) in [("DOCKERFILE", true), ("dockerfile", true), ("RAILPACK", false), ("NIXPACKS", false)] {
            std::fs::write(dir.path().join("web/railway.toml"), format!("[build]\nbuilder = \"{builder}\"\n")).unwrap();
            let a = &render_with(SPEC, Some(dir.path()))[0];
            let doc: toml_edit::DocumentMut = a.text.parse().unwrap();
            let expected = if wrapped { format!("/bin/sh -c 'exec {COMMAND}'") } else { COMMAND.to_string() };
            assert_eq!(doc["deploy"]["startCommand"].as_str(), Some(expected.as_str()), "{builder}");
        }
    }

    #[test]
    fn patch_adds_a_deploy_table_and_reports_bad_toml() {
        let settings = Settings { start_command: "gunicorn app:app".into(), health: None };
        let out = patch("# mine\n[build]\nbuilder = \"DOCKERFILE\"\n", &settings).unwrap();
        assert_eq!(out, "# mine\n[build]\nbuilder = \"DOCKERFILE\"\n\n[deploy]\nstartCommand = \"gunicorn app:app\"\n");
        assert!(patch("[deploy\n", &settings).is_err());
        assert!(patch("deploy = 3\n", &settings).is_err());
    }

    #[test]
    fn hostile_values_stay_toml_strings() {
        let settings = Settings { start_command: "gunicorn 'a\"\nb'".into(), health: Some(("/h\"\n[x]".into(), 5)) };
        let out = patch("", &settings).unwrap();
        let doc: toml_edit::DocumentMut = out.parse().unwrap();
        assert_eq!(doc["deploy"]["startCommand"].as_str(), Some("gunicorn 'a\"\nb'"));
        assert_eq!(doc["deploy"]["healthcheckPath"].as_str(), Some("/h\"\n[x]"));
        assert!(doc.get("x").is_none());
    }

    #[test]
    fn nothing_without_deploy_railway() {
        let spec = SPEC.split("deploy:").next().unwrap();
        assert!(render_with(spec, None).is_empty());
    }

    #[test]
    fn puma_services_start_puma() {
        let spec = "version: 1\nname: r\nservices:\n  web: { kind: puma, workers: 2 }\ndeploy:\n  railway: {}\n";
        let a = &render_with(spec, None)[0];
        assert_eq!(a.path, "railway.toml");
        assert!(a.text.contains("startCommand = \"bundle exec puma -C config/puma.rb\""), "{}", a.text);
        assert!(!a.text.contains("healthcheckPath ="), "{}", a.text);
    }
}
