//! railway.toml: the start command and health check path of one service.

use serde_json::json;

use crate::import::interpret::{self, Process};
use crate::import::shared::argv;
use crate::import::{FileId, ImportBuilder};

/// Reads a railway.toml start command.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let Some(text) = builder.sources.get(file).map(|s| s.text.clone()) else { return };
    let doc = match toml_edit::Document::parse(text.as_str()) {
        Ok(d) => d,
        Err(e) => {
            let bytes = e.span().unwrap_or(0..0);
            let message = e.message().trim().to_string();
            builder.unparsable(file, bytes, format!("railway.toml: {message}"), "fix the TOML syntax");
            return;
        }
    };
    let service = builder.owner_of(file, "web");
    let Some((deploy_key, deploy)) = doc.as_table().get_key_value("deploy") else {
        builder.ignored(file, 0..0, "railway.toml has no [deploy] table: the start command comes from the Procfile or Dockerfile, which headroom does not read");
        return;
    };
    let Some(deploy) = deploy.as_table_like() else {
        builder.unparsable(file, deploy.span().unwrap_or(0..0), "railway.toml: `deploy` is not a table", "write it as [deploy]");
        return;
    };
    let deploy_span = deploy_key.span().unwrap_or(0..0);
    let mut started = false;
    for (key, item) in deploy.iter() {
        let key_span = deploy.key(key).and_then(|k| k.span()).unwrap_or(deploy_span.clone());
        let value_span = item.span().or_else(|| item.as_value().and_then(|v| v.span())).unwrap_or(key_span.clone());
        let whole = key_span.start..value_span.end.max(key_span.end);
        match key {
            "startCommand" => {
                let Some(command) = item.as_str() else {
                    builder.unparsable(file, whole, "railway.toml: startCommand is not a string", "write startCommand = \"gunicorn ...\"");
                    continue;
                };
                let (words, error) = argv::words_in(&text, &value_span, command);
                if let Some(e) = error {
                    builder.unparsable(file, e.bytes, format!("startCommand: {}", e.message), "close the quote");
                }
                builder.mark(&format!("services.{service}"), file, whole.clone());
                match interpret::process(builder, &Process { service: service.clone(), file, declared: whole.clone(), command: Some(words), kind: None, env: Vec::new(), variables: Default::default(), command_file: None }) {
                    Some(kind) => {
                        started = true;
                        if !matches!(kind, "gunicorn" | "puma") {
                            builder.ignored(file, whole, format!("railway start command runs {kind}"));
                        }
                    }
                    None => builder.ignored(file, whole, "startCommand runs a program headroom does not model (gunicorn, puma, redis-server, postgres, pgbouncer, celery, sidekiq)"),
                }
            }
            "healthcheckPath" => match item.as_str() {
                Some(path) => builder.set(&format!("services.{service}.health.path"), json!(path), file, whole),
                None => builder.ignored(file, whole, "healthcheckPath is not a string"),
            },
            "numReplicas" => match item.as_integer().filter(|n| *n >= 1) {
                Some(n) => builder.set(&format!("services.{service}.replicas"), json!(n), file, whole),
                None => builder.ignored(file, whole, "numReplicas is not a positive integer"),
            },
            "healthcheckTimeout" => builder.ignored(file, whole, "healthcheckTimeout is how long Railway waits for a new deployment to become healthy, not a probe timeout"),
            other => builder.ignored(file, whole, format!("railway [deploy] `{other}` does not change capacity")),
        }
    }
    if started && builder.kind_of_service(&service).is_some_and(|k| k == "gunicorn" || k == "puma") {
        builder.set("deploy.railway.service", json!(service), file, deploy_span);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;

    fn builder_with(text: &str) -> (ImportBuilder, FileId) {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("cmd.txt", text.to_string()));
        (b, id)
    }

    fn line_of(b: &ImportBuilder, pointer: &str) -> usize {
        let o = &b.origins[pointer];
        b.sources[o.file].line_col(o.bytes.start).line
    }

    fn notes(b: &ImportBuilder) -> Vec<String> {
        b.diagnostics.iter().map(|d| d.message.clone()).collect()
    }

    #[test]
    fn railway_start_command_and_health_path() {
        let text = "[build]\nbuilder = \"NIXPACKS\"\n\n[deploy]\nstartCommand = \"gunicorn --worker-class gevent --workers 4 --worker-connections 100 --timeout 120 --bind 0.0.0.0:$PORT web.app:app\"\nhealthcheckPath = \"/health\"\nhealthcheckTimeout = 300\n";
        let (mut b, id) = builder_with(text);
        read(&mut b, id);
        let web = &b.value["services"]["web"];
        assert_eq!(web["kind"], "gunicorn");
        assert_eq!(web["worker_class"], "gevent");
        assert_eq!(web["workers"], 4);
        assert_eq!(web["worker_connections"], 100);
        assert_eq!(web["timeout"], "120s");
        assert_eq!(web["app"], "web.app:app");
        assert_eq!(web["health"]["path"], "/health");
        assert!(web.get("port").is_none());
        assert_eq!(line_of(&b, "/services/web/workers"), 5);
        assert_eq!(line_of(&b, "/services/web/health/path"), 6);
        let o = &b.origins["/services/web/workers"];
        assert_eq!(&text[o.bytes.clone()], "--workers 4");
        assert!(notes(&b).iter().any(|n| n.contains("$PORT")));
        assert_eq!(b.value["deploy"]["railway"]["service"], "web");
    }

    fn fixture(rel: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import").join(rel)
    }

    #[test]
    fn sfpermits_fixture_reads_railway_toml_only() {
        let b = crate::import::read_paths(&[fixture("sfpermits")], "sfpermits");
        // src/db.py is not a format headroom reads: it is never opened.
        let files: Vec<String> = b.sources.iter().map(|s| s.path.display().to_string()).collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].ends_with("sfpermits/web/railway.toml"));
        let web = &b.value["services"]["web"];
        assert_eq!(web["kind"], "gunicorn");
        assert_eq!(web["worker_class"], "gevent");
        assert_eq!(web["workers"], 4);
        assert_eq!(web["worker_connections"], 100);
        assert_eq!(web["timeout"], "120s");
        assert_eq!(web["health"]["path"], "/health");
        for pointer in ["/services/web/workers", "/services/web/worker_class", "/services/web/worker_connections", "/services/web/timeout", "/services/web/app"] {
            assert_eq!(line_of(&b, pointer), 5, "{pointer}");
        }
        assert_eq!(line_of(&b, "/services/web/health/path"), 6);
        let port_note = b.diagnostics.iter().find(|d| d.message.contains("$PORT")).expect("a note about $PORT");
        assert_eq!(port_note.span.as_ref().map(|s| s.line), Some(5));
    }

    #[test]
    fn railway_errors_are_located() {
        let (mut b, id) = builder_with("[deploy]\nstartCommand = \"gunicorn 'x\"\n");
        read(&mut b, id);
        let d = b.diagnostics.iter().find(|d| d.rule == crate::import::UNPARSABLE).expect("unterminated quote reported");
        assert_eq!(d.span.as_ref().unwrap().line, 2);
        let (mut b, id) = builder_with("[deploy\nstartCommand = 1\n");
        read(&mut b, id);
        assert_eq!(b.diagnostics[0].rule, crate::import::UNPARSABLE);
        assert_eq!(b.diagnostics[0].span.as_ref().unwrap().line, 1);
    }
}
