//! What the files may not say about where processes run: the app environment the run
//! evaluates config code as (`--env`, default production) and the CPUs of a machine
//! (`--cpus`), with whether they are known or assumed.

/// What the files may not say about where a process runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    /// The environment the app runs as (`RAILS_ENV` / `RACK_ENV` when no file sets it).
    pub app_env: String,
    /// The CPUs a process sees (`Concurrent.processor_count`), and whether the files
    /// or the command line said so.
    pub cpus: u64,
    pub cpus_known: bool,
    /// `max_connections` of a database no file describes (`--db-max-connections`).
    pub db_max_connections: Option<u64>,
    /// The Kamal destination deployed (`kamal deploy -d NAME`): config/deploy.NAME.yml
    /// is merged over config/deploy.yml.
    pub destination: Option<String>,
    /// The program the process whose config is evaluated runs (`sidekiq`, `puma`),
    /// when known: what `Sidekiq.server?` answers.
    pub program: Option<&'static str>,
}

impl Default for Facts {
    fn default() -> Self {
        Facts { app_env: "production".into(), cpus: ASSUMED_CPUS, cpus_known: false, db_max_connections: None, destination: None, program: None }
    }
}

/// The CPU count used when neither the files nor `--cpus` say it.
pub const ASSUMED_CPUS: u64 = 2;
