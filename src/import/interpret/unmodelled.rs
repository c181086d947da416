//! Processes that are not steady clients of the modelled services: third-party
//! programs headroom has no kind for (memcached, RabbitMQ, a Node front end, Flower),
//! and one-shot tasks (migrations, consoles, asset builds) that run and exit. Readers
//! list them as notes instead of counting them as workers that hold pools.

use crate::import::shared::argv::Word;

/// What a third-party image runs, when headroom has no kind for it
/// (`memcached:1.6-alpine` -> "memcached").
pub fn image(image: &str) -> Option<&'static str> {
    let repo = super::images::image_repo(image);
    let name = repo.rsplit('/').next().unwrap_or(&repo);
    KNOWN_IMAGES.iter().find(|(prefix, _)| name == *prefix || name.starts_with(&format!("{prefix}-"))).map(|(_, what)| *what)
}

/// Image names (the last path segment, before the tag) of programs headroom does not
/// model, and what to call them in a note.
const KNOWN_IMAGES: &[(&str, &str)] = &[
    ("memcached", "memcached"),
    ("taskbroker", "Sentry's task broker"),
    ("seaweedfs", "SeaweedFS (object storage)"),
    ("gotenberg", "Gotenberg (document conversion)"),
    ("tika", "Apache Tika (document parsing)"),
    ("rabbitmq", "RabbitMQ"),
    ("flower", "Flower (a Celery monitor)"),
    ("node", "Node.js"),
    ("bun", "Bun"),
    ("mysql", "MySQL"),
    ("mariadb", "MariaDB"),
    ("mongo", "MongoDB"),
    ("elasticsearch", "Elasticsearch"),
    ("opensearch", "OpenSearch"),
    ("meilisearch", "Meilisearch"),
    ("typesense", "Typesense"),
    ("minio", "MinIO"),
    ("mailhog", "MailHog"),
    ("mailpit", "Mailpit"),
    ("clickhouse", "ClickHouse"),
    ("clickhouse-server", "ClickHouse"),
    ("kafka", "Kafka"),
    ("cp-kafka", "Kafka"),
    ("zookeeper", "ZooKeeper"),
    ("traefik", "Traefik"),
    ("caddy", "Caddy"),
    ("haproxy", "HAProxy"),
    ("grafana", "Grafana"),
    ("prometheus", "Prometheus"),
    ("localstack", "LocalStack"),
    ("sentry", "Sentry (`sentry run web/worker/cron`; its servers' sizes are in sentry.conf.py)"),
    ("snuba", "Snuba (Sentry's event store service)"),
    ("relay", "Sentry Relay"),
    ("symbolicator", "Symbolicator"),
];

/// Images of applications whose command is a subcommand of the application itself
/// (`apache/airflow` with `command: celery worker` runs `airflow celery worker`): the
/// command's words name no program of their own, and the application's pools live in
/// its own configuration.
pub fn application_image(image: &str) -> Option<&'static str> {
    let repo = super::images::image_repo(image);
    let name = repo.rsplit('/').next().unwrap_or(&repo);
    APPLICATION_IMAGES.iter().find(|(prefix, _)| name == *prefix).map(|(_, what)| *what)
}

const APPLICATION_IMAGES: &[(&str, &str)] = &[
    ("airflow", "Apache Airflow (`airflow <component>`; its database pools are [database] sql_alchemy_pool_size and max_overflow in airflow.cfg, per component process)"),
];

/// Programs headroom does not model, by the command's first program word.
const KNOWN_PROGRAMS: &[(&str, &str)] = &[
    ("memcached", "memcached"),
    ("taskbroker", "Sentry's task broker"),
    ("weed", "SeaweedFS (object storage)"),
    ("gotenberg", "Gotenberg (document conversion)"),
    ("rabbitmq-server", "RabbitMQ"),
    ("node", "Node.js"),
    ("npm", "Node.js"),
    ("npx", "Node.js"),
    ("yarn", "Node.js"),
    ("pnpm", "Node.js"),
    ("next", "Node.js"),
    ("bun", "Bun"),
    ("deno", "Deno"),
    ("sentry", "Sentry (`sentry run web/worker/cron`; its servers' sizes are in sentry.conf.py)"),
];

/// Words that only wrap the program that runs.
fn is_wrapper(word: &str) -> bool {
    matches!(word, "exec" | "env" | "nice" | "tini" | "dumb-init" | "--" | "sh" | "bash" | "-c" | "-e" | "-ec" | "/bin/sh" | "/bin/bash")
}

/// The words of a command, with `sh -c "..."` strings split into their words.
fn tokens(words: &[Word]) -> Vec<String> {
    words.iter().flat_map(|(w, _)| w.split_whitespace().map(str::to_string).collect::<Vec<_>>()).collect()
}

fn base(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// What an unmodelled program in the command is (`memcached -m 256` -> "memcached",
/// `celery ... flower` -> Flower).
pub fn program(words: &[Word]) -> Option<&'static str> {
    let tokens = tokens(words);
    if tokens.iter().any(|t| base(t) == "celery") && tokens.iter().any(|t| t == "flower") {
        return Some("Flower (a Celery monitor)");
    }
    let first = tokens.iter().map(|t| base(t)).find(|t| !is_wrapper(t) && !t.contains('='))?;
    KNOWN_PROGRAMS.iter().find(|(name, _)| *name == first).map(|(_, what)| *what)
}

/// The task of a command that runs once and exits (`bundle exec rails db:migrate`,
/// `python manage.py migrate`, `rails console`), as written.
pub fn one_shot(words: &[Word]) -> Option<String> {
    let tokens = tokens(words);
    let has = |t: &str| tokens.iter().any(|x| x == t);
    let rails_task = tokens.iter().any(|t| {
        matches!(t.as_str(), "db:migrate" | "db:prepare" | "db:setup" | "db:create" | "db:seed" | "db:schema:load" | "assets:precompile" | "console" | "c" | "dbconsole" | "runner")
    }) && tokens.iter().any(|t| matches!(base(t), "rails" | "rake"));
    let django_task = tokens.iter().any(|t| base(t) == "manage.py" || base(t) == "django-admin")
        && tokens.iter().any(|t| matches!(t.as_str(), "migrate" | "collectstatic" | "createsuperuser" | "shell" | "dbshell" | "loaddata" | "compilemessages"));
    let alembic = tokens.iter().any(|t| base(t) == "alembic") && has("upgrade");
    let flask = tokens.iter().any(|t| base(t) == "flask") && has("db") && has("upgrade");
    (rails_task || django_task || alembic || flask).then(|| tokens.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<Word> {
        text.split(' ').map(|w| (w.to_string(), 0..0)).collect()
    }

    #[test]
    fn third_party_images_and_programs() {
        assert_eq!(image("memcached:1.6-alpine"), Some("memcached"));
        assert_eq!(image("docker.io/library/rabbitmq:3-management"), Some("RabbitMQ"));
        assert_eq!(image("mher/flower:2.0"), Some("Flower (a Celery monitor)"));
        assert_eq!(image("node:22-alpine"), Some("Node.js"));
        assert_eq!(image("ghcr.io/acme/app:1.2"), None);
        assert_eq!(image("getsentry/sentry:24.5.0").map(|w| w.starts_with("Sentry")), Some(true));
        assert_eq!(program(&words("sentry run web")).map(|w| w.starts_with("Sentry")), Some(true));
        assert_eq!(image("postgres:16"), None);
        assert_eq!(program(&words("memcached -m 256")), Some("memcached"));
        assert_eq!(program(&words("celery --broker=redis://redis:6379/0 flower --port=5555")), Some("Flower (a Celery monitor)"));
        assert_eq!(program(&words("npm run start")), Some("Node.js"));
        assert_eq!(program(&words("celery -A app worker")), None);
    }

    #[test]
    fn one_shot_tasks() {
        assert!(one_shot(&words("bundle exec rails db:migrate")).is_some());
        assert!(one_shot(&words("bundle exec rails console")).is_some());
        assert!(one_shot(&words("python manage.py migrate --noinput")).is_some());
        assert!(one_shot(&words("alembic upgrade head")).is_some());
        assert!(one_shot(&words("flask db upgrade")).is_some());
        // A server, or a worker, is not one.
        assert!(one_shot(&words("bundle exec rails server")).is_none());
        assert!(one_shot(&words("python manage.py rqworker default")).is_none());
    }
}
