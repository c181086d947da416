//! Reader for Rails config/database.yml: the production (or primary) `pool:` with its
//! ERB `ENV.fetch` defaults evaluated, and `prepared_statements`, as the `uses` pool of
//! every Rails process.

use std::ops::Range;

use serde_json::{Value, json};

use crate::import::shared::erb::{Erb, strip_erb};
use crate::import::shared::yaml::kv_span;
use crate::import::{FileId, ImportBuilder};
use crate::load::yaml;
use crate::source::SourceFile;

/// service (Rails processes of one image); `web` when there is none.
fn rails_services(builder: &ImportBuilder, file: FileId) -> Vec<String> {
    let owner = builder.owner_of(file, "");
    if !owner.is_empty() {
        return vec![owner];
    }
    let services = builder.value.get("services").and_then(Value::as_object);
    let found: Vec<String> = services
        .map(|s| {
            s.iter()
                .filter(|(_, v)| {
                    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
                    let command = v.get("command").and_then(Value::as_str).unwrap_or("");
                    matches!(kind, "puma" | "solid_queue" | "sidekiq") || (kind == "worker" && (command.starts_with("bin/") || command.contains("rails") || command.contains("rake")))
                })
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    if found.is_empty() { vec!["web".to_string()] } else { found }
}

/// The database service a Rails service connects to: its one postgres/pgbouncer `uses`
/// edge, else the one pgbouncer, else the one postgres of the builder.
fn database_of(builder: &ImportBuilder, service: &str, host: Option<&str>) -> Option<String> {
    let services = builder.value.get("services").and_then(Value::as_object)?;
    let kind = |name: &str| services.get(name).and_then(|s| s.get("kind")).and_then(Value::as_str).map(str::to_string);
    if let Some(h) = host
        && let Some(target) = builder.service_named_by_host(h)
        && matches!(kind(&target).as_deref(), Some("postgres" | "pgbouncer"))
    {
        return Some(target);
    }
    if let Some(uses) = services.get(service).and_then(|s| s.get("uses")).and_then(Value::as_object) {
        let db: Vec<&String> = uses.keys().filter(|t| matches!(kind(t).as_deref(), Some("postgres" | "pgbouncer"))).collect();
        if db.len() == 1 {
            return Some(db[0].clone());
        }
    }
    for k in ["pgbouncer", "postgres"] {
        let of_kind: Vec<&String> = services.iter().filter(|(_, v)| v.get("kind").and_then(Value::as_str) == Some(k)).map(|(n, _)| n).collect();
        if of_kind.len() == 1 {
            return Some(of_kind[0].clone());
        }
    }
    None
}

/// One database configuration of the environment read.
struct DbConfig {
    name: String,
    pointer: String,
}

/// Reads the production pool of a database.yml (ERB ENV.fetch defaults).
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let Some(source) = builder.sources.get(file).cloned() else { return };
    let services = rails_services(builder, file);
    let env_service = services.first().cloned().unwrap_or_else(|| "web".into());
    let env = super::service_env(builder, &env_service);
    let (text, tags) = strip_erb(&source.text, &env);
    for tag in &tags {
        if let Some(why) = &tag.error
            && tag.output
        {
            builder.ignored(file, tag.bytes.clone(), format!("ERB `{}`: {why} cannot be evaluated here", tag.code.escape_debug()));
        }
    }
    let stripped = SourceFile::new(source.path.clone(), text);
    let (root, spans) = match yaml::parse_foreign(&stripped) {
        Ok(p) => p,
        Err(e) => {
            builder.unparsable(file, e.span, format!("database.yml: {}", e.message), e.hint.unwrap_or_else(|| "fix the YAML syntax".into()));
            return;
        }
    };
    let Some(envs) = root.as_object() else {
        builder.unparsable(file, 0..0, "database.yml is not a mapping of environments", "database.yml maps environments (production:) to settings");
        return;
    };
    let env_name = if envs.contains_key("production") {
        "production".to_string()
    } else {
        match envs.keys().find(|k| !matches!(k.as_str(), "default" | "development" | "test") && envs[k.as_str()].is_object()) {
            Some(k) => k.clone(),
            None => {
                builder.ignored(file, 0..0, "database.yml has no production environment; nothing read");
                return;
            }
        }
    };
    if env_name != "production" {
        builder.assumed_at(file, kv_span(&spans, &format!("/{}", yaml::escape_segment(&env_name))), format!("database.yml environment `{env_name}` is the deployed one"), "name it production");
    }
    let env_pointer = format!("/{}", yaml::escape_segment(&env_name));
    let env_value = &envs[&env_name];
    // Single database (adapter/database/pool/url at this level) or several named ones.
    let direct = ["adapter", "database", "pool", "url", "host"].iter().any(|k| env_value.get(k).is_some_and(|v| !v.is_object()));
    let configs: Vec<DbConfig> = if direct {
        vec![DbConfig { name: env_name.clone(), pointer: env_pointer.clone() }]
    } else {
        env_value
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| v.is_object())
                    .map(|(k, _)| DbConfig { name: k.clone(), pointer: format!("{env_pointer}/{}", yaml::escape_segment(k)) })
                    .collect()
            })
            .unwrap_or_default()
    };
    if configs.is_empty() {
        builder.ignored(file, kv_span(&spans, &env_pointer), format!("database.yml `{env_name}` names no database"));
        return;
    }
    let mut total: Option<(u64, Range<usize>)> = None;
    let mut sum_parts = Vec::new();
    let mut prepared: Option<(bool, Range<usize>)> = None;
    let mut host: Option<String> = None;
    for c in &configs {
        let cfg = root.pointer(&c.pointer).cloned().unwrap_or(Value::Null);
        if cfg.get("replica").and_then(Value::as_bool) == Some(true) || cfg.get("database_tasks").and_then(Value::as_bool) == Some(false) && c.name.contains("replica") {
            builder.ignored(file, kv_span(&spans, &c.pointer), format!("database.yml `{}` is a replica connection; not counted", c.name));
            continue;
        }
        if let Some(adapter) = cfg.get("adapter").and_then(Value::as_str)
            && !adapter.starts_with("postg")
        {
            builder.ignored(file, kv_span(&spans, &format!("{}/adapter", c.pointer)), format!("database.yml `{}` uses the {adapter} adapter; only PostgreSQL is modelled", c.name));
            continue;
        }
        let pool_pointer = format!("{}/pool", c.pointer);
        let pool_bytes = kv_span(&spans, &pool_pointer);
        let pool = match cfg.get("pool") {
            None => {
                builder.assumed_at(file, kv_span(&spans, &c.pointer), format!("database.yml `{}` sets no pool: ActiveRecord's default of 5", c.name), "write pool: explicitly");
                Some(5)
            }
            Some(v) => pool_value(builder, file, v, &pool_bytes, &tags),
        };
        if let Some(p) = pool {
            sum_parts.push(format!("{} {p}", c.name));
            total = Some(match total {
                Some((t, b)) => (t + p, b),
                None => (p, pool_bytes.clone()),
            });
        }
        if let Some(ps) = cfg.get("prepared_statements") {
            let b = kv_span(&spans, &format!("{}/prepared_statements", c.pointer));
            match ps.as_bool().or_else(|| ps.as_str().and_then(|s| s.parse().ok())) {
                Some(v) => prepared = Some((v, b)),
                None => builder.ignored(file, b, "prepared_statements is not true or false"),
            }
        }
        if let Some(url) = cfg.get("url").and_then(Value::as_str) {
            if url.contains("prepared_statements=false") {
                prepared = Some((false, kv_span(&spans, &format!("{}/url", c.pointer))));
            }
            if host.is_none() {
                host = url.split_once("://").map(|(_, r)| r.split(['/', '?']).next().unwrap_or("")).map(|a| a.rsplit_once('@').map_or(a, |(_, h)| h)).map(|h| h.split(':').next().unwrap_or("").to_string()).filter(|h| !h.is_empty() && !h.contains('_'));
            }
        }
        if host.is_none() {
            host = cfg.get("host").and_then(Value::as_str).filter(|h| !h.contains('_')).map(str::to_string);
        }
    }
    let Some((pool, pool_bytes)) = total else { return };
    if sum_parts.len() > 1 {
        builder.assumed_at(file,
            kv_span(&spans, &env_pointer),
            format!("each Rails process keeps a pool per database, all on one server: {} = {pool}", sum_parts.join(" + ")),
            "if the databases live on different servers, split them in an overlay",
        );
    }
    for service in services {
        if !builder.has_service(&service) {
            builder.ensure_kind(&service, "puma", file, pool_bytes.clone());
            builder.assumed_at(file, pool_bytes.clone(), format!("`{service}` is a puma service (database.yml is read by a Rails app)"), "pass config/puma.rb or the deploy file too");
        }
        let Some(db) = database_of(builder, &service, host.as_deref()) else {
            builder.ignored(
                file,
                pool_bytes.clone(),
                format!("database.yml pool {pool} of `{service}`: the database it connects to is not described by the files read (pass the compose or Kamal file)"),
            );
            continue;
        };
        let base = format!("services.{service}.uses.{db}");
        builder.set(&format!("{base}.pool"), json!(pool), file, pool_bytes.clone());
        builder.set(&format!("{base}.framework"), json!("rails"), file, pool_bytes.clone());
        if let Some((ps, b)) = &prepared {
            builder.set(&format!("{base}.prepared_statements"), json!(ps), file, b.clone());
        }
    }
}

/// The pool as a number: a literal, or an evaluated ERB tag (noting the defaults it
/// used).
fn pool_value(builder: &mut ImportBuilder, file: FileId, v: &Value, bytes: &Range<usize>, tags: &[Erb]) -> Option<u64> {
    let tag = tags.iter().find(|t| t.output && t.bytes.start < bytes.end && t.bytes.end > bytes.start);
    if let Some(tag) = tag {
        let e = tag.value.as_ref()?;
        let n = e.value.as_int().filter(|n| *n >= 1)?;
        let arithmetic = tag.code.contains(['*', '+', '/']) || tag.code.contains(" - ");
        if e.defaulted.is_empty() && arithmetic {
            builder.assumed_at(file,
                bytes.clone(),
                format!("pool {n} computed as `{}` with {} as the files read set them", tag.code, e.from_env.join(", ")),
                "if those variables differ where the app runs, the pool follows them",
            );
        }
        if !e.defaulted.is_empty() {
            let computed = if arithmetic { format!(" computed as `{}`", tag.code) } else { String::new() };
            builder.assumed_at(file,
                bytes.clone(),
                format!("pool {n}{computed} with the defaults of {} (not set in the files read)", e.defaulted.join(", ")),
                "if those variables are set where the app runs, the pool follows them",
            );
        }
        return u64::try_from(n).ok();
    }
    match v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())) {
        Some(n) if n >= 1 => Some(n),
        _ => {
            builder.ignored(file, bytes.clone(), "database.yml pool is not a whole number");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"default: &default
  adapter: postgresql
  encoding: unicode
  pool: <%= ENV.fetch("RAILS_MAX_THREADS") { 5 } %>

production:
  primary:
    <<: *default
    database: saas_production
    pool: <%= ENV.fetch("RAILS_MAX_THREADS") { 5 }.to_i * ENV.fetch("WEB_CONCURRENCY") { 4 }.to_i + 5 %>
    timeout: 5000
    checkout_timeout: 10

    # Connection health checking
    variables:
      statement_timeout: 30000  # 30 second timeout
      lock_timeout: 10000       # 10 second lock timeout
"#;

    fn builder(text: &str) -> (ImportBuilder, FileId) {
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new("config/database.yml", text.to_string()));
        (b, id)
    }

    fn with_db(b: &mut ImportBuilder, id: FileId) {
        b.set("services.web.kind", json!("puma"), id, 0..0);
        b.set("services.db.kind", json!("postgres"), id, 0..0);
    }

    #[test]
    fn erb_is_replaced_in_place() {
        let none = |_: &str| None;
        let text = "a: <%= ENV.fetch(\"X\") { 5 } %>\nb: <% if x %>\nc: <%= ENV[\"HOST\"] %>\n";
        let (out, tags) = strip_erb(text, &none);
        assert_eq!(out.len(), text.len());
        assert_eq!(out.lines().next().unwrap().trim_end(), "a: 5");
        assert_eq!(out.lines().nth(1).unwrap().trim_end(), "b:");
        assert!(out.lines().nth(2).unwrap().contains("___"));
        assert_eq!(tags.len(), 3);
        let (out, _) = strip_erb("x: <%= 1\ny: 2\n", &none);
        assert_eq!(out.len(), "x: <%= 1\ny: 2\n".len());
        let _ = strip_erb("é<%=é%>ü<%", &none);
    }

    #[test]
    fn reads_the_seed_pool_with_defaults() {
        let (mut b, id) = builder(SEED);
        with_db(&mut b, id);
        read(&mut b, id);
        let edge = &b.value["services"]["web"]["uses"]["db"];
        assert_eq!(edge["pool"], 25);
        assert_eq!(edge["framework"], "rails");
        let o = &b.origins["/services/web/uses/db/pool"];
        assert_eq!(b.sources[o.file].line_col(o.bytes.start).line, 10);
        let notes: Vec<&str> = b.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert!(notes.iter().any(|n| n.contains("pool 25 computed as") && n.contains("RAILS_MAX_THREADS, WEB_CONCURRENCY")), "{notes:?}");
    }

    #[test]
    fn the_environment_of_the_service_is_used() {
        let (mut b, id) = builder(SEED);
        with_db(&mut b, id);
        b.set("services.web.env.clear.RAILS_MAX_THREADS", json!("3"), id, 0..0);
        read(&mut b, id);
        // 3 x 4 (default) + 5
        assert_eq!(b.value["services"]["web"]["uses"]["db"]["pool"], 17);
    }

    #[test]
    fn multiple_databases_add_up_and_prepared_statements_are_read() {
        let text = "default: &default\n  adapter: postgresql\n  pool: 5\n  prepared_statements: false\nproduction:\n  primary:\n    <<: *default\n  cache:\n    <<: *default\n  queue:\n    <<: *default\n    pool: 10\n";
        let (mut b, id) = builder(text);
        with_db(&mut b, id);
        read(&mut b, id);
        let edge = &b.value["services"]["web"]["uses"]["db"];
        assert_eq!(edge["pool"], 20);
        assert_eq!(edge["prepared_statements"], false);
    }

    #[test]
    fn no_database_service_is_a_note_not_an_invented_service() {
        let (mut b, id) = builder("production:\n  adapter: postgresql\n  pool: 12\n");
        read(&mut b, id);
        assert!(b.value["services"]["web"].get("uses").is_none());
        assert!(b.diagnostics.iter().any(|d| d.message.contains("pool 12")));
    }

    #[test]
    fn hostile_yaml_is_located() {
        let bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nproduction: {pool: *e}\n";
        let (mut b, id) = builder(bomb);
        read(&mut b, id);
        assert!(b.diagnostics.iter().any(|d| d.rule == crate::import::UNPARSABLE));
        for odd in ["production:\n  <<: *missing\n", "- 1\n", "production: 3\n", "production:\n  pool: <%= ENV.fetch('X') %>\n", "\u{0}"] {
            let (mut b, id) = builder(odd);
            read(&mut b, id);
        }
    }
}
