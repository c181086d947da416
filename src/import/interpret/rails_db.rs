//! Reader for Rails config/database.yml: the production (or primary) `pool:` with its
//! ERB `ENV.fetch` defaults evaluated, and `prepared_statements`, as the `uses` pool of
//! every Rails process.

use std::ops::Range;

use serde_json::{Value, json};

use crate::import::shared::erb::{Erb, strip_erb};
use crate::import::shared::ruby::Context;
use crate::import::shared::names::service_name;
use crate::import::shared::urls::url_host;
use crate::import::shared::yaml::kv_span;
use crate::import::{FileId, ImportBuilder};
use crate::load::yaml;
use crate::source::SourceFile;

/// Services whose processes read database.yml: every puma, solid_queue and sidekiq
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
                .filter(|(k, v)| {
                    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
                    let command = v.get("command").and_then(Value::as_str).unwrap_or("");
                    let resque = builder.programs.get(k.as_str()).is_some_and(|p| matches!(*p, "resque" | "delayed_job"));
                    matches!(kind, "puma" | "solid_queue" | "sidekiq") || (kind == "worker" && (resque || command.starts_with("bin/") || command.contains("rails") || command.contains("rake")))
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

/// The output tag that writes the whole file (`<%= ERB.new(File.read(path)).result %>`,
/// a dispatcher that includes another database.yml chosen at run time), when the
/// file holds nothing but ERB and that tag could not be evaluated.
fn writes_whole_file<'a>(text: &str, tags: &'a [Erb]) -> Option<&'a Erb> {
    let mut rest = String::with_capacity(text.len());
    let mut at = 0;
    for tag in tags {
        rest.push_str(&text[at..tag.bytes.start.max(at)]);
        at = tag.bytes.end.max(at);
    }
    rest.push_str(&text[at.min(text.len())..]);
    let only_erb = rest.lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    only_erb.then(|| tags.iter().rev().find(|t| t.output && t.error.is_some())).flatten()
}

/// The database.yml variants beside `path` (`database.mysql.yml`,
/// `database.sqlite.yml`): what to pass instead, as a sentence.
fn included_candidates(path: &std::path::Path) -> String {
    let mut names: Vec<String> = path
        .parent()
        .and_then(|dir| std::fs::read_dir(dir).ok())
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("database.") && n.ends_with(".yml") && n != "database.yml")
        .collect();
    names.sort();
    if names.is_empty() {
        return "pass the file it includes to headroom to read the pools".into();
    }
    let dir = path.parent().and_then(|d| d.file_name()).map(|d| format!("{}/", d.to_string_lossy())).unwrap_or_default();
    let list = names.iter().map(|n| format!("`{dir}{n}`")).collect::<Vec<_>>().join(", ");
    format!("pass the one production includes ({list}) beside the directory to read its pools")
}

/// One database configuration of the environment read.
struct DbConfig {
    name: String,
    pointer: String,
}

/// Reads the production pool of a database.yml (ERB ENV.fetch defaults), evaluated in
/// the environment of the processes that read it. A file that asks which program reads
/// it (`pool: <%= Sidekiq.server? ? … : … %>`) is evaluated once for the Sidekiq
/// processes and once for the others; the second reading adds no notes of its own.
pub fn read(builder: &mut ImportBuilder, file: FileId) {
    let Some(source) = builder.sources.get(file).cloned() else { return };
    let services = rails_services(builder, file);
    let (sidekiq, others): (Vec<String>, Vec<String>) = services.iter().cloned().partition(|s| builder.programs.get(s.as_str()) == Some(&"sidekiq"));
    if source.text.contains("Sidekiq.server?") && !sidekiq.is_empty() && !others.is_empty() {
        read_for(builder, file, &source, others);
        let notes = builder.diagnostics.len();
        read_for(builder, file, &source, sidekiq);
        builder.diagnostics.truncate(notes);
        return;
    }
    read_for(builder, file, &source, services);
}

fn read_for(builder: &mut ImportBuilder, file: FileId, source: &SourceFile, services: Vec<String>) {
    let env_service = services.first().cloned().unwrap_or_else(|| "web".into());
    let env = super::service_env(builder, &env_service);
    let facts = super::facts_for(builder, &env_service);
    let (text, tags) = strip_erb(&source.text, &Context { env: &env, facts: &facts });
    let whole = writes_whole_file(&source.text, &tags).map(|t| t.bytes.clone());
    let stripped = SourceFile::new(source.path.clone(), text);
    let parsed = yaml::parse_foreign(&stripped);
    // ERB that could not be evaluated, except in the sections of environments that are
    // never deployed (development:, test:).
    let unused: Vec<Range<usize>> = match &parsed {
        Ok((root, spans)) => ["development", "test"].iter().filter(|k| root.get(**k).is_some()).map(|k| kv_span(spans, &format!("/{k}"))).collect(),
        Err(_) => Vec::new(),
    };
    for tag in &tags {
        if let Some(why) = &tag.error
            && tag.output
            && whole.as_ref() != Some(&tag.bytes)
            && !unused.iter().any(|r| r.start <= tag.bytes.start && tag.bytes.end <= r.end)
        {
            builder.ignored(file, tag.bytes.clone(), format!("ERB `{}`: {why} cannot be evaluated here", tag.code.escape_debug()));
        }
    }
    let (root, spans) = match parsed {
        Ok(p) => p,
        Err(e) => {
            builder.unparsable(file, e.span, format!("database.yml: {}", e.message), e.hint.unwrap_or_else(|| "fix the YAML syntax".into()));
            return;
        }
    };
    let Some(envs) = root.as_object() else {
        if let Some(tag) = writes_whole_file(&source.text, &tags) {
            builder.ignored(file, tag.bytes.clone(), format!("database.yml is written at run time by `{}`, which cannot be evaluated here; {}", tag.code.escape_debug(), included_candidates(&source.path)));
            return;
        }
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
    let database_url = env("DATABASE_URL");
    let mut pools: Vec<DbPool> = Vec::new();
    // The first database's adapter, when database.yml writes one other than PostgreSQL.
    let mut other_adapter: Option<(String, Range<usize>)> = None;
    for c in &configs {
        let cfg = root.pointer(&c.pointer).cloned().unwrap_or(Value::Null);
        if cfg.get("replica").and_then(Value::as_bool) == Some(true) || cfg.get("database_tasks").and_then(Value::as_bool) == Some(false) && c.name.contains("replica") {
            builder.ignored(file, kv_span(&spans, &c.pointer), format!("database.yml `{}` is a replica connection; not counted", c.name));
            continue;
        }
        // DATABASE_URL is merged over the primary (or only) database's settings.
        let url = cfg.get("url").and_then(Value::as_str).map(|u| {
            let bytes = kv_span(&spans, &format!("{}/url", c.pointer));
            // `url: <%= ENV["DATABASE_URL"] %>`: the URL is longer than its tag, so the
            // stripped text holds a placeholder; the tag's value is the URL.
            (evaluated_text(&tags, &bytes).unwrap_or_else(|| u.to_string()), bytes)
        }).or_else(|| {
            (pools.is_empty()).then(|| database_url.clone().map(|u| (u, kv_span(&spans, &c.pointer)))).flatten()
        });
        let scheme = url.as_ref().and_then(|(u, _)| u.split_once("://").map(|(s, _)| s.to_ascii_lowercase()));
        // Rails merges the URL over database.yml's settings, so the URL's scheme names
        // the adapter when there is one (`postgres://` over `adapter: sqlite3` connects
        // to PostgreSQL).
        let adapter = scheme.filter(|s| !s.is_empty()).or_else(|| cfg.get("adapter").and_then(Value::as_str).map(str::to_string));
        if let Some(adapter) = &adapter
            && !adapter.starts_with("postg")
        {
            let bytes = kv_span(&spans, &format!("{}/adapter", c.pointer));
            builder.ignored(file, bytes.clone(), format!("database.yml `{}` uses the {adapter} adapter; only PostgreSQL is modelled", c.name));
            if url.is_none() && other_adapter.is_none() {
                other_adapter = Some((adapter.clone(), bytes));
            }
            continue;
        }
        // Rails 8.1 names the pool `max_connections` (`pool` before); a `?pool=` in the
        // URL wins over both.
        let key = if cfg.get("max_connections").is_some() { "max_connections" } else { "pool" };
        let pool_bytes = kv_span(&spans, &format!("{}/{key}", c.pointer));
        let from_url = url.as_ref().and_then(|(u, b)| query_param(u, "pool").or_else(|| query_param(u, "max_connections")).map(|p| (p, b.clone())));
        let pool = match (from_url, cfg.get(key)) {
            (Some((n, b)), _) => n.parse::<u64>().ok().filter(|n| *n >= 1).map(|n| (n, b)),
            (None, None) => {
                builder.assumed_at(file, kv_span(&spans, &c.pointer), format!("database.yml `{}` sets no pool: ActiveRecord's default of 5", c.name), "write max_connections: (pool: before Rails 8.1) explicitly");
                Some((5, kv_span(&spans, &c.pointer)))
            }
            (None, Some(v)) => pool_value(builder, file, v, &pool_bytes, &tags).map(|n| (n, pool_bytes.clone())),
        };
        let Some((pool, bytes)) = pool else { continue };
        let mut prepared = None;
        if let Some(ps) = cfg.get("prepared_statements") {
            let b = kv_span(&spans, &format!("{}/prepared_statements", c.pointer));
            match ps.as_bool().or_else(|| ps.as_str().and_then(|s| s.parse().ok())) {
                Some(v) => prepared = Some((v, b)),
                None => builder.ignored(file, b, "prepared_statements is not true or false"),
            }
        }
        if let Some((u, b)) = &url
            && query_param(u, "prepared_statements").as_deref() == Some("false")
        {
            prepared = Some((false, b.clone()));
        }
        let host = url.as_ref().and_then(|(u, _)| url_host(u)).or_else(|| cfg.get("host").and_then(Value::as_str).map(str::to_string)).filter(|h| !h.is_empty() && !h.contains(['_', '$']));
        pools.push(DbPool { name: c.name.clone(), pool, bytes, prepared, host, via_url: database_url.is_some() && cfg.get("url").is_none() });
    }
    let Some(first) = pools.first() else {
        if let Some((adapter, bytes)) = other_adapter {
            withdraw_assumed_database_edges(builder, file, &services, &adapter, bytes);
        }
        return;
    };
    let (pool, pool_bytes) = (first.pool, first.bytes.clone());
    let host = pools.iter().find_map(|p| p.host.clone());
    let prepared = pools.iter().find_map(|p| p.prepared.clone());
    for service in services {
        if !builder.has_service(&service) {
            builder.ensure_kind(&service, "puma", file, pool_bytes.clone());
            // Withdrawn when a puma.rb or unicorn config read later describes it.
            builder.assumed_at_unless_set(&format!("services.{service}.threads"), file, pool_bytes.clone(), format!("`{service}` is a puma service (database.yml is read by a Rails app)"), "pass config/puma.rb or the deploy file too");
        }
        let db = match database_of(builder, &service, host.as_deref()) {
            Some(db) => db,
            None => external_database(builder, file, &service, host.as_deref(), first.via_url, &pool_bytes),
        };
        let base = format!("services.{service}.uses.{db}");
        builder.set(&format!("{base}.pool"), json!(pool), file, pool_bytes.clone());
        if pools.len() > 1 {
            for p in &pools {
                builder.set(&format!("{base}.databases[{}]", serde_json::to_string(&p.name).unwrap_or_default()), json!(p.pool), file, p.bytes.clone());
            }
        }
        builder.set(&format!("{base}.framework"), json!("rails"), file, pool_bytes.clone());
        if let Some((ps, b)) = &prepared {
            builder.set(&format!("{base}.prepared_statements"), json!(ps), file, b.clone());
        }
    }
}

/// A Rails app whose production databases use another adapter (SQLite, MySQL) is no
/// client of a PostgreSQL or PgBouncer a deployment file only assumed it connects to
/// (the one Kamal `db` accessory, with no DATABASE_URL in the role's env): that edge is
/// withdrawn, with a note. Edges a URL or host in the files names are kept, and so are
/// edges of roles whose env names DATABASE_URL (Rails lets that URL win).
fn withdraw_assumed_database_edges(builder: &mut ImportBuilder, file: FileId, services: &[String], adapter: &str, bytes: Range<usize>) {
    let kind_of = |b: &ImportBuilder, name: &str| b.kind_of_service(name);
    for service in services {
        let targets: Vec<String> = builder
            .value
            .pointer(&format!("/services/{service}/uses"))
            .and_then(Value::as_object)
            .map(|uses| uses.iter().filter(|(_, edge)| edge.get("pool").is_none()).map(|(t, _)| t.clone()).collect())
            .unwrap_or_default();
        for target in targets {
            let assumed = format!("assumed: `{service}` connects to the accessory `{target}` (");
            // A role whose env names DATABASE_URL keeps the edge: Rails merges that URL
            // over database.yml, and its adapter wins.
            let only_assumed = builder.diagnostics.iter().any(|d| d.message.starts_with(&assumed) && !d.message.contains("DATABASE_URL"));
            if !matches!(kind_of(builder, &target).as_deref(), Some("postgres" | "pgbouncer")) || !only_assumed {
                continue;
            }
            if let Some(uses) = builder.value.pointer_mut(&format!("/services/{service}/uses")).and_then(Value::as_object_mut) {
                uses.remove(&target);
                if uses.is_empty()
                    && let Some(svc) = builder.value.pointer_mut(&format!("/services/{service}")).and_then(Value::as_object_mut)
                {
                    svc.remove("uses");
                }
            }
            let edge = format!("/services/{service}/uses/{target}");
            builder.origins.retain(|k, _| k != &edge && !k.starts_with(&format!("{edge}/")));
            builder.diagnostics.retain(|d| !d.message.starts_with(&assumed));
            builder.assumed_at(
                file,
                bytes.clone(),
                format!("`{service}` does not connect to `{target}`: database.yml's production database uses the {adapter} adapter"),
                format!("if DATABASE_URL is set to a PostgreSQL URL where `{service}` runs, it wins over database.yml: name it in the role's env (env.secret) or add services.{service}.uses.{target} in an --overlay"),
            );
        }
    }
}

/// One database of database.yml's production environment.
struct DbPool {
    name: String,
    pool: u64,
    /// Where the pool was read.
    bytes: Range<usize>,
    prepared: Option<(bool, Range<usize>)>,
    host: Option<String>,
    /// Its connection comes from DATABASE_URL in the environment.
    via_url: bool,
}

/// The text an output ERB tag within `bytes` evaluated to, when it is a string.
fn evaluated_text(tags: &[Erb], bytes: &Range<usize>) -> Option<String> {
    let tag = tags.iter().find(|t| t.output && t.bytes.start < bytes.end && t.bytes.end > bytes.start)?;
    match &tag.value.as_ref()?.value {
        crate::import::shared::ruby::RValue::Str(text) if !text.is_empty() => Some(text.clone()),
        _ => None,
    }
}

/// The value of `name` in a URL's query (`?pool=10&sslmode=require`).
fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
}

/// The postgres a Rails service connects to when no file describes it (a managed
/// database behind DATABASE_URL, a host outside the deployment): a service marked
/// `external`, named after its host when that is known, whose max_connections is
/// unknown unless `--db-max-connections` gives it.
fn external_database(builder: &mut ImportBuilder, file: FileId, service: &str, host: Option<&str>, via_url: bool, bytes: &Range<usize>) -> String {
    let mut name = host.filter(|h| h.parse::<std::net::IpAddr>().is_err()).map(|h| service_name(h.split('.').next().unwrap_or(h))).unwrap_or_else(|| "db".to_string());
    if builder.kind_of_service(&name).is_some_and(|k| k != "postgres") {
        name = format!("{name}-postgres");
    }
    if builder.has_service(&name) {
        return name;
    }
    builder.ensure_kind(&name, "postgres", file, bytes.clone());
    builder.set(&format!("services.{name}.external"), json!(true), file, bytes.clone());
    let why = match (host, via_url) {
        (Some(h), _) => format!("its host `{h}` is not a service of the files read"),
        (None, true) => "DATABASE_URL names it, and no file read describes it".to_string(),
        (None, false) => "no file read describes it (DATABASE_URL is a secret, or set where the app runs)".to_string(),
    };
    match builder.facts.db_max_connections {
        Some(n) => {
            builder.set(&format!("services.{name}.max_connections"), json!(n), file, bytes.clone());
            builder.assumed_at(file, bytes.clone(), format!("`{service}` connects to postgres `{name}`, outside these files ({why}): external, max_connections {n} from --db-max-connections"), "check that number against the provider's limit");
        }
        None => builder.assumed_at(
            file,
            bytes.clone(),
            format!("`{service}` connects to postgres `{name}`, outside these files ({why}): external, its max_connections unknown; the pool rules still run and the demand on it is printed"),
            "pass --db-max-connections N to check the connection budget too",
        ),
    }
    name
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
    fn a_database_yml_that_includes_another_file_is_noted_with_the_candidates() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir(&config).unwrap();
        std::fs::write(config.join("database.sqlite.yml"), "production:\n  adapter: sqlite3\n").unwrap();
        std::fs::write(config.join("database.mysql.yml"), "production:\n  adapter: trilogy\n").unwrap();
        let text = "<%\n  config_path = if App.saas?\n    \"saas/database.yml\"\n  else\n    File.join(\"config\", \"database.#{App.adapter}.yml\")\n  end\n%>\n<%= ERB.new(File.read(config_path)).result %>\n";
        let mut b = ImportBuilder::new("t");
        let id = b.add_source(SourceFile::new(config.join("database.yml"), text.to_string()));
        read(&mut b, id);
        let notes: Vec<_> = b.diagnostics.iter().map(|d| (d.severity, d.message.clone())).collect();
        assert!(notes.iter().all(|(s, _)| *s == crate::diag::Severity::Info), "{notes:?}");
        assert!(notes.iter().any(|(_, m)| m.contains("written at run time") && m.contains("`config/database.mysql.yml`, `config/database.sqlite.yml`")), "{notes:?}");
    }

    #[test]
    fn erb_is_replaced_in_place() {
        let none = |_: &str| None;
        let text = "a: <%= ENV.fetch(\"X\") { 5 } %>\nb: <% if x %>\nc: <%= ENV[\"HOST\"] %>\n";
        let (out, tags) = strip_erb(text, &Context { env: &none, facts: &Default::default() });
        assert_eq!(out.len(), text.len());
        assert_eq!(out.lines().next().unwrap().trim_end(), "a: 5");
        assert_eq!(out.lines().nth(1).unwrap().trim_end(), "b:");
        assert!(out.lines().nth(2).unwrap().contains("___"));
        assert_eq!(tags.len(), 3);
        let (out, _) = strip_erb("x: <%= 1\ny: 2\n", &Context { env: &none, facts: &Default::default() });
        assert_eq!(out.len(), "x: <%= 1\ny: 2\n".len());
        let _ = strip_erb("é<%=é%>ü<%", &Context { env: &none, facts: &Default::default() });
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
    fn each_database_keeps_its_own_pool_and_prepared_statements_are_read() {
        let text = "default: &default\n  adapter: postgresql\n  pool: 5\n  prepared_statements: false\nproduction:\n  primary:\n    <<: *default\n  cache:\n    <<: *default\n  queue:\n    <<: *default\n    pool: 10\n";
        let (mut b, id) = builder(text);
        with_db(&mut b, id);
        read(&mut b, id);
        let edge = &b.value["services"]["web"]["uses"]["db"];
        // The primary's pool is checked against the threads on its own; the process
        // opens all three to the server.
        assert_eq!(edge["pool"], 5);
        assert_eq!(edge["databases"], json!({"primary": 5, "cache": 5, "queue": 10}));
        assert_eq!(edge["prepared_statements"], false);
    }

    #[test]
    fn a_database_no_file_describes_is_an_external_node() {
        let (mut b, id) = builder("production:\n  adapter: postgresql\n  max_connections: 2\n");
        read(&mut b, id);
        let s = &b.value["services"];
        assert_eq!((s["db"]["kind"].clone(), s["db"]["external"].clone()), (json!("postgres"), json!(true)));
        assert!(s["db"].get("max_connections").is_none());
        // Rails 8.1's `max_connections:` is the pool.
        assert_eq!(s["web"]["uses"]["db"]["pool"], 2);
        assert!(b.diagnostics.iter().any(|d| d.message.contains("outside these files") && d.message.contains("max_connections unknown")));
        // A DATABASE_URL with ?pool= wins, and names the host.
        let (mut b, id) = builder("production:\n  adapter: postgresql\n  pool: 5\n");
        b.set("services.web.kind", json!("puma"), id, 0..0);
        b.set("services.web.env.clear.DATABASE_URL", json!("postgres://app@main-db.internal:5432/app?pool=3"), id, 0..0);
        b.facts.db_max_connections = Some(50);
        read(&mut b, id);
        let s = &b.value["services"];
        assert_eq!(s["web"]["uses"]["main-db"]["pool"], 3);
        assert_eq!((s["main-db"]["external"].clone(), s["main-db"]["max_connections"].clone()), (json!(true), json!(50)));
        // `url: <%= ENV["DATABASE_URL"] %>` (the Procfile/Heroku shape): the URL is the
        // tag's value, longer than the tag, and still names the host.
        let (mut b, id) = builder("production:\n  adapter: postgresql\n  pool: 5\n  url: <%= ENV[\"DATABASE_URL\"] %>\n");
        b.set("services.web.kind", json!("puma"), id, 0..0);
        b.set("services.web.env.clear.DATABASE_URL", json!("postgres://shop@shop-db.internal:5432/shop_production?pool=7"), id, 0..0);
        read(&mut b, id);
        let s = &b.value["services"];
        assert_eq!(s["web"]["uses"]["shop-db"]["pool"], 7, "{s:#}");
        assert_eq!(s["shop-db"]["external"], json!(true));
        // Other adapters are not modelled.
        let (mut b, id) = builder("production:\n  adapter: sqlite3\n  pool: 5\n");
        read(&mut b, id);
        assert!(b.value["services"].get("db").is_none());
        // A DATABASE_URL's scheme wins over database.yml's adapter, both ways.
        let (mut b, id) = builder("production:\n  adapter: sqlite3\n  pool: 5\n");
        b.set("services.web.kind", json!("puma"), id, 0..0);
        b.set("services.web.env.clear.DATABASE_URL", json!("postgresql://app@app-db.internal/app"), id, 0..0);
        read(&mut b, id);
        assert_eq!(b.value["services"]["web"]["uses"]["app-db"]["pool"], 5, "{:#}", b.value);
        let (mut b, id) = builder("production:\n  adapter: postgresql\n  pool: 5\n");
        b.set("services.web.kind", json!("puma"), id, 0..0);
        b.set("services.web.env.clear.DATABASE_URL", json!("trilogy://app@mysql.internal/app"), id, 0..0);
        read(&mut b, id);
        assert!(b.value["services"]["web"].get("uses").is_none_or(|u| u.as_object().is_some_and(|u| u.is_empty())), "{:#}", b.value);
        assert!(b.diagnostics.iter().any(|d| d.message.contains("uses the trilogy adapter")));
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
