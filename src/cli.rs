//! The command line: argument parsing (clap derive) and one function per command.
//! Exit codes: 0 clean, 1 findings or drift, 2 bad input or error.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::analysis::{self, Analysis};
use crate::diag::Severity;
use crate::load::LoadFailure;
use crate::report::capacity::{CapacityReport, Comparison};
use crate::report::{self, Format, ReportInput};

/// Exit code: nothing to report.
pub const EXIT_CLEAN: u8 = 0;
/// Exit code: findings (errors; warnings too with --strict) or drift.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code: bad input or an error.
pub const EXIT_ERROR: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "headroom",
    version,
    about = "A capacity compiler: checks the connection arithmetic of a deployment and renders its config files",
    long_about = "headroom reads one capacity spec (capacity.yaml), checks the connection arithmetic across \
every layer (app pools, PgBouncer, PostgreSQL, Redis, nginx, the kernel), explains the capacity plan, and \
renders the config files.\n\nExit codes: 0 clean, 1 findings or drift, 2 bad input or error."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// When to colour output.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// `headroom scale --help`: the cost order and the exit codes (README "Scaling a spec").
const SCALE_HELP: &str = "\
Settings are tried before hardware, cheapest first:
  1. connection limits that are only a number in a config file: per-process pools,
     PgBouncer max_client_conn / default_pool_size / max_db_connections /
     max_user_connections / nofile, Redis maxclients and nofile, nginx
     worker_connections / worker_rlimit_nofile, somaxconn, rate-limit zones; and
     lowering what oversteps a bound (workers past the CPUs, nginx max_conns past a
     replica's slots, PgBouncer max_db_connections past PostgreSQL's room)
  2. threads (gthread up to 8, Puma up to 5), gevent/uvicorn worker_connections (up to
     1000), PostgreSQL max_connections as far as its memory holds them (with its
     memory unknown or work_mem not written, up to PGTune's figure for its workload;
     down, when its memory cannot hold what is written)
  3. processes per replica within its CPUs (gunicorn 2 x cpus + 1, Puma cpus), nginx
     worker_processes
  4. replicas (the autoscaler's max with autoscale:)
  5. machines (a group's count) for a group that lists no addresses
Lowering follows the same order: for a connection budget that cannot hold its
clients, pools past their process's slots (1), then threads / worker_connections with
their pools (2), workers (3), replicas or the autoscaler's max down to its min (4),
never below what the target load needs; at equal cost the raise is tried first. A pool
below its slots is raised unless that overfills a budget and the load allows lowering
the slots to it.
Bigger machines are never applied, nor hosts added to a group's addresses (nor,
under Kamal, a role's replicas past them): they are named when nothing else fits.

Exit status:
  0  a change was found (printed; written with --write), or the spec already fits
  1  nothing within the machines fits: the wall and the smallest hardware change
     (or the hosts to add) are named, nothing is written
  2  bad input (the spec does not load or has no load:, the target is not a positive
     number or is past 1,000,000,000 rps) or an error (the file cannot be written, or
     the change cannot be written into it as it is laid out: a value shared through a
     YAML anchor is named, with the change to make by hand)";

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate the spec and run every rule.
    Check {
        /// The capacity spec.
        #[arg(default_value = "capacity.yaml")]
        spec: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Warnings fail too (exit 1).
        #[arg(long)]
        strict: bool,
    },
    /// Show the capacity table: slots, connections per edge, throughput, utilization, bottleneck.
    Plan {
        /// The capacity spec.
        #[arg(default_value = "capacity.yaml")]
        spec: PathBuf,
        /// Output format (markdown: tables and a Mermaid graph for a pull request comment).
        #[arg(long, value_enum, default_value_t = ReviewFormat::Human)]
        format: ReviewFormat,
        /// Compare with an older spec: the change of every number and which rules change state.
        #[arg(long, value_name = "OLD_SPEC")]
        compare: Option<PathBuf>,
    },
    /// Find the smallest change to the spec after which `check` holds at a new load;
    /// print it as a diff of the spec and what it does to the plan.
    #[command(
        group(clap::ArgGroup::new("target").required(true).args(["rps", "factor", "users"])),
        after_long_help = SCALE_HELP
    )]
    Scale {
        /// The capacity spec.
        #[arg(default_value = "capacity.yaml")]
        spec: PathBuf,
        /// The new load.rps.
        #[arg(long, allow_negative_numbers = true)]
        rps: Option<f64>,
        /// Multiply load.rps (and load.concurrent_users) by this factor.
        #[arg(long, allow_negative_numbers = true)]
        factor: Option<f64>,
        /// The new load.concurrent_users (load.rps grows in proportion).
        #[arg(long, allow_negative_numbers = true)]
        users: Option<u64>,
        /// Apply the change to the spec file (atomically).
        #[arg(long)]
        write: bool,
        /// Output format (markdown: the diff, tables and a Mermaid graph for a pull request comment).
        #[arg(long, value_enum, default_value_t = ReviewFormat::Human)]
        format: ReviewFormat,
    },
    /// Write every config file the spec calls for.
    Render {
        /// The capacity spec.
        #[arg(default_value = "capacity.yaml")]
        spec: PathBuf,
        /// Output directory (default: the spec's directory, so paths follow deploy.files).
        #[arg(short = 'o', long = "out")]
        out: Option<PathBuf>,
        /// Render even while `check` reports errors.
        #[arg(long)]
        force: bool,
        /// Render only these targets (repeatable).
        #[arg(long, value_name = "TARGET")]
        only: Vec<String>,
        /// Print the files instead of writing them.
        #[arg(long, conflicts_with = "check")]
        stdout: bool,
        /// Write nothing; exit 1 when a file on disk differs from what would be rendered (for CI).
        #[arg(long)]
        check: bool,
    },
    /// Show what `render` would change in the files a repository holds today.
    Diff {
        /// The capacity spec.
        #[arg(default_value = "capacity.yaml")]
        spec: PathBuf,
        /// Directory holding today's files (default: the spec's directory).
        #[arg(long, value_name = "DIR")]
        against: Option<PathBuf>,
        /// Output format (human or json).
        #[arg(long, value_enum, default_value_t = PlanFormat::Human)]
        format: PlanFormat,
        /// Compare only these targets (repeatable).
        #[arg(long, value_name = "TARGET")]
        only: Vec<String>,
    },
    /// Read existing config files, rebuild the model and run the same rules on them.
    Lint {
        /// Config files, or directories to search for known files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        import: ImportArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Warnings fail too (exit 1).
        #[arg(long)]
        strict: bool,
    },
    /// Write a capacity spec rebuilt from existing config files.
    Import {
        /// Config files, or directories to search for known files.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        import: ImportArgs,
        /// Where to write the spec (`-` for stdout).
        #[arg(short = 'o', long = "out", default_value = "capacity.yaml")]
        out: PathBuf,
    },
    /// Print a rule's documentation (or list every rule).
    Explain {
        /// A rule ID such as `pgbouncer-client-limit`; omit to list all rules.
        rule: Option<String>,
    },
    /// Read live numbers from a running stack and print them beside the plan's budgets
    /// (exit 1 when a number is past its threshold).
    Observe {
        /// The capacity spec.
        #[arg(default_value = "capacity.yaml")]
        spec: PathBuf,
        /// PostgreSQL URL (`postgresql://user:password@host:5432/db`), or `SERVICE=URL`
        /// when the spec has several; repeatable.
        #[arg(long, value_name = "URL", env = "HEADROOM_POSTGRES_URL", hide_env_values = true, value_delimiter = ' ')]
        postgres: Vec<String>,
        /// PgBouncer admin console URL (database `pgbouncer`, a user in admin_users or
        /// stats_users); repeatable.
        #[arg(long, value_name = "URL", env = "HEADROOM_PGBOUNCER_URL", hide_env_values = true, value_delimiter = ' ')]
        pgbouncer: Vec<String>,
        /// Redis or Valkey URL (`redis://:password@host:6379`); repeatable.
        #[arg(long, value_name = "URL", env = "HEADROOM_REDIS_URL", hide_env_values = true, value_delimiter = ' ')]
        redis: Vec<String>,
        /// nginx stub_status URL (`http://host/nginx-status`); repeatable.
        #[arg(long, value_name = "URL", env = "HEADROOM_NGINX_STATUS_URL", hide_env_values = true, value_delimiter = ' ')]
        nginx_status: Vec<String>,
        /// Seconds between the two samples a rate is computed from.
        #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
        interval: f64,
        /// Observe again every SECONDS until interrupted (or until stdout is closed).
        #[arg(long, value_name = "SECONDS")]
        watch: Option<f64>,
        /// Output format (human or json).
        #[arg(long, value_enum, default_value_t = PlanFormat::Human)]
        format: PlanFormat,
    },
    /// Print the JSON schema (draft-07) of the capacity spec.
    Schema,
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// What config files cannot say: the load, and anything else from a small spec.
#[derive(clap::Args, Debug, Clone)]
struct ImportArgs {
    /// A partial capacity spec merged in for what the files cannot know (load, which
    /// app uses which database, pool sizes); the files win where both say something.
    #[arg(long, value_name = "SPEC")]
    overlay: Option<PathBuf>,
    /// Peak requests per second.
    #[arg(long)]
    rps: Option<f64>,
    /// Mean time a request occupies an app slot (`100ms`).
    #[arg(long, value_name = "DURATION")]
    service_time: Option<String>,
    /// Mean time a request holds a database connection.
    #[arg(long, value_name = "DURATION")]
    db_time: Option<String>,
    /// Open client connections at the edge.
    #[arg(long)]
    concurrent_users: Option<u64>,
    /// Deployment name for the rebuilt spec.
    #[arg(long, default_value = "imported")]
    name: String,
    /// The environment config code is evaluated as (`RAILS_ENV`/`RACK_ENV` when no
    /// file sets them; the branches of `if Rails.env.production?`).
    #[arg(long = "env", value_name = "ENV", default_value = "production")]
    app_env: String,
    /// CPUs of the machines, for `Concurrent.processor_count`, `cpu_count()` and `auto`
    /// when the files do not give them (otherwise 2 are assumed, and said so).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=4096))]
    cpus: Option<u64>,
    /// `max_connections` of a database the files do not describe (a managed
    /// database behind DATABASE_URL), so the connection budget can be checked.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=262_143))]
    db_max_connections: Option<u64>,
    /// The Kamal destination to read (`kamal deploy -d NAME`): config/deploy.NAME.yml
    /// merged over config/deploy.yml. Without it, `lint` checks each destination
    /// found as its own deployment.
    #[arg(long, value_name = "NAME")]
    destination: Option<String>,
    /// The deployment to read when a directory holds several (compose or Kamal configs
    /// in separate folders), named by its folder as `lint` names it (`.`, `saas`,
    /// `deploy/mysql`). Without it, `lint` checks each and `import` reads the first.
    #[arg(long, value_name = "FOLDER")]
    deployment: Option<String>,
}

impl ImportArgs {
    fn options(&self) -> crate::import::ImportOptions {
        crate::import::ImportOptions {
            name: self.name.clone(),
            overlay: self.overlay.clone(),
            app_env: self.app_env.clone(),
            cpus: self.cpus,
            destination: self.destination.clone(),
            db_max_connections: self.db_max_connections,
            load: crate::import::LoadFlags {
                rps: self.rps,
                service_time: self.service_time.clone(),
                db_time: self.db_time.clone(),
                concurrent_users: self.concurrent_users,
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum PlanFormat {
    Human,
    Json,
}

/// Output formats of the commands whose result is reviewed in a pull request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ReviewFormat {
    Human,
    Json,
    /// GitHub-flavoured Markdown: tables and a Mermaid graph of the connections.
    Markdown,
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_ERROR } else { EXIT_CLEAN };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    ExitCode::from(run(cli))
}

fn color_for(choice: ColorChoice, stream: &impl IsTerminal) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => stream.is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

fn out(text: &str) {
    let _ = written(text);
}

/// Writes to stdout; false when it cannot be written (a closed pipe).
fn written(text: &str) -> bool {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).is_ok()
}

fn run(cli: Cli) -> u8 {
    let color = color_for(cli.color, &std::io::stdout());
    match cli.command {
        Command::Check { spec, format, strict } => check(&spec, format, strict, color),
        Command::Plan { spec, format, compare } => plan(&spec, format, compare.as_deref(), color),
        Command::Explain { rule } => explain(rule.as_deref()),
        Command::Scale { spec, rps, factor, users, write, format } => {
            let target = match (rps, factor, users) {
                (Some(n), _, _) => crate::scale::Target::Rps(n),
                (_, Some(f), _) => crate::scale::Target::Factor(f),
                (_, _, Some(u)) => crate::scale::Target::Users(u),
                _ => unreachable!("clap requires one of --rps, --factor, --users"),
            };
            scale(&spec, target, write, format, color)
        }
        Command::Lint { paths, import, format, strict } => lint(&paths, &import, format, strict, color),
        Command::Import { paths, import, out } => import_spec(&paths, &import, &out, color),
        Command::Render { spec, out, force, only, stdout, check } => render(&spec, out.as_deref(), force, &only, stdout, check, color),
        Command::Diff { spec, against, format, only } => diff(&spec, against.as_deref(), format, &only, color),
        Command::Observe { spec, postgres, pgbouncer, redis, nginx_status, interval, watch, format } => {
            let endpoints = crate::observe::Endpoints { postgres, pgbouncer, redis, nginx_status };
            observe(&spec, &endpoints, interval, watch, format, color)
        }
        Command::Schema => {
            out(&crate::schema::schema_text());
            EXIT_CLEAN
        }
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "headroom", &mut std::io::stdout());
            EXIT_CLEAN
        }
    }
}

/// Prints a load failure in the requested format; always exit 2.
pub fn report_failure(failure: &LoadFailure, subject: &Path, format: Format, color: bool) -> u8 {
    let input = ReportInput {
        sources: failure.source.iter().collect(),
        subject: subject.display().to_string(),
        diagnostics: &failure.diagnostics,
        files: &[],
    };
    let text = report::render(format, &input, color);
    match format {
        // Machine formats stay on stdout so a pipeline still gets a parseable document.
        Format::Json | Format::Sarif | Format::Github | Format::Markdown => out(&text),
        Format::Human => {
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(text.as_bytes());
        }
    }
    EXIT_ERROR
}

fn check(spec: &Path, format: Format, strict: bool, color: bool) -> u8 {
    let analysis = match analysis::analyze_file(spec) {
        Ok(a) => a,
        Err(failure) => return report_failure(&failure, spec, format, color_for_stderr(color)),
    };
    if format == Format::Markdown {
        out(&report::markdown::check(&spec.display().to_string(), &analysis.diagnostics, &analysis.plan));
        return exit_for(&analysis.diagnostics, strict);
    }
    let input = ReportInput { sources: vec![&analysis.loaded.source], subject: spec.display().to_string(), diagnostics: &analysis.diagnostics, files: &[] };
    out(&report::render(format, &input, color));
    let code = exit_for(&analysis.diagnostics, strict);
    exit_without_freeing(analysis);
    code
}

/// The process ends right after a command: the model is not freed piece by piece
/// (on a 10,000-service spec that cost about 7% of a `check`). Its memory goes back
/// with the process.
fn exit_without_freeing<T>(model: T) {
    std::mem::forget(model);
}

fn color_for_stderr(stdout_color: bool) -> bool {
    stdout_color && std::io::stderr().is_terminal()
}

/// 1 when any error (or, with `strict`, any warning) was found.
pub fn exit_for(diagnostics: &[crate::diag::Diagnostic], strict: bool) -> u8 {
    let failing = diagnostics.iter().any(|d| d.severity == Severity::Error || (strict && d.severity == Severity::Warning));
    if failing { EXIT_FINDINGS } else { EXIT_CLEAN }
}

fn load_for_plan(spec: &Path, color: bool) -> Result<Analysis, u8> {
    analysis::analyze_file(spec).map_err(|failure| report_failure(&failure, spec, Format::Human, color_for_stderr(color)))
}

fn observe(spec: &Path, endpoints: &crate::observe::Endpoints, interval: f64, watch: Option<f64>, format: PlanFormat, color: bool) -> u8 {
    let analysis = match load_for_plan(spec, color) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let seconds = |s: f64| std::time::Duration::try_from_secs_f64(s).ok().filter(|d| !d.is_zero());
    let (Some(interval), Some(pause)) = (seconds(interval), watch.map_or(Some(std::time::Duration::ZERO), seconds)) else {
        eprintln!("error: --interval and --watch take a positive number of seconds");
        return EXIT_ERROR;
    };
    loop {
        let code = match crate::observe::observe(&analysis.plan, endpoints, interval) {
            Ok(observation) => {
                let text = match format {
                    PlanFormat::Json => observation.to_json(),
                    PlanFormat::Human => observation.to_text(),
                };
                if !written(&text) {
                    // The reader is gone (`observe --watch 5 | head`): stop watching.
                    return EXIT_ERROR;
                }
                if observation.past() { EXIT_FINDINGS } else { EXIT_CLEAN }
            }
            Err(message) => {
                eprintln!("error: {message}");
                EXIT_ERROR
            }
        };
        if watch.is_none() {
            return code;
        }
        std::thread::sleep(pause);
    }
}

fn plan(spec: &Path, format: ReviewFormat, compare: Option<&Path>, color: bool) -> u8 {
    let new = match load_for_plan(spec, color) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let new_report = CapacityReport::of(&new.plan);
    let Some(old_path) = compare else {
        match format {
            ReviewFormat::Json => out(&new_report.to_json()),
            ReviewFormat::Human => out(&new_report.to_text(&new.diagnostics)),
            ReviewFormat::Markdown => out(&report::markdown::plan(&new.plan, &new_report, &new.diagnostics)),
        }
        return EXIT_CLEAN;
    };
    let old = match load_for_plan(old_path, color) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let old_report = CapacityReport::of(&old.plan);
    let comparison = Comparison::of(&old_report, &old.diagnostics, &new_report, &new.diagnostics);
    match format {
        ReviewFormat::Json => {
            let mut text = serde_json::to_string_pretty(&comparison).expect("serializes");
            text.push('\n');
            out(&text);
        }
        ReviewFormat::Human => out(&comparison.to_text(&old_path.display().to_string(), &spec.display().to_string())),
        ReviewFormat::Markdown => out(&report::markdown::compare(
            &comparison,
            &old_path.display().to_string(),
            &spec.display().to_string(),
            &new.plan,
            &old_report,
            &new_report,
        )),
    }
    EXIT_CLEAN
}

/// The largest load.rps `scale` plans for: a billion requests per second is past any
/// one deployment a spec describes, and the slot counts past it overflow the settings.
const MAX_TARGET_RPS: f64 = 1e9;

/// How a target is given, for the messages about a bad one.
const TARGET_HINT: &str = "give the new load as --rps N (the new load.rps, e.g. --rps 1000), --factor F (today's load times F, e.g. --factor 2) or --users N (the new load.concurrent_users)";

fn scale(spec: &Path, target: crate::scale::Target, write: bool, format: ReviewFormat, color: bool) -> u8 {
    use crate::scale::{Outcome, search};
    let (flag, number, positive) = match target {
        crate::scale::Target::Rps(n) => ("--rps", n.to_string(), n.is_finite() && n > 0.0),
        crate::scale::Target::Factor(f) => ("--factor", f.to_string(), f.is_finite() && f > 0.0),
        crate::scale::Target::Users(u) => ("--users", u.to_string(), u > 0),
    };
    if !positive {
        eprintln!("error: {flag} {number} is not a load to plan for: the target must be a positive number\n  = help: {TARGET_HINT}");
        return EXIT_ERROR;
    }
    let old = match load_for_plan(spec, color) {
        Ok(a) => a,
        Err(code) => return code,
    };
    // The load as it will be written: a target that rounds to nothing, or is past any
    // load one spec plans for, is refused before the search.
    if let Ok(at_target) = crate::scale::with_target(&old.loaded.value, target) {
        let rps = at_target.pointer("/load/rps").and_then(serde_json::Value::as_f64).unwrap_or(0.0);
        let today = old.loaded.value.pointer("/load/rps").and_then(serde_json::Value::as_f64).unwrap_or(0.0);
        let problem = if rps <= 0.0 {
            let from = if flag == "--rps" { String::new() } else { format!(" (today {})", crate::rules::num(today)) };
            Some(format!("it makes load.rps {}{from}, which is no load: load.rps is written to 3 decimals", crate::rules::num(rps)))
        } else if rps > MAX_TARGET_RPS {
            Some(format!("it makes load.rps {}, past the {} rps one spec plans for (the counts it would take overflow what PostgreSQL, nginx and the kernel accept)", crate::rules::num(rps), crate::rules::num(MAX_TARGET_RPS)))
        } else {
            None
        };
        if let Some(problem) = problem {
            eprintln!("error: {flag} {number} is not a load to plan for: {problem}\n  --> {}\n  = help: {TARGET_HINT}", spec.display());
            return EXIT_ERROR;
        }
    }
    let started = std::time::Instant::now();
    let outcome = match search(&old.loaded, target) {
        Ok(o) => o,
        Err(e) => {
            let (problem, hint) = e.split_once("; ").unwrap_or((e.as_str(), ""));
            let hint = if hint.is_empty() { String::new() } else { format!("\n  = help: {hint}") };
            eprintln!("error: {problem}\n  --> {}{hint}", spec.display());
            return EXIT_ERROR;
        }
    };
    let _ = started;
    let proposal = match outcome {
        Outcome::Fits(p) => p,
        Outcome::Wall(wall) => {
            let mut text = format!("error: nothing within the machines fits the new load\n  --> {}\n  = wall: {}\n", spec.display(), wall.message);
            if let Some(h) = &wall.hardware {
                text.push_str(&format!("  = help: {h}\n"));
            } else if let Some(fix) = &wall.finding.fix {
                text.push_str(&format!("  = help: {fix}\n"));
            }
            match format {
                ReviewFormat::Markdown => out(&format!(
                    "### headroom scale: {}\n\n❌ Nothing within the machines fits the new load.\n\n**Wall:** {}\n{}",
                    report::markdown::cell(&spec.display().to_string()),
                    report::markdown::cell_message(&wall.message),
                    wall.hardware.as_deref().or(wall.finding.fix.as_deref()).map_or(String::new(), |h| format!("\n**Smallest fix:** {}\n", report::markdown::cell_message(h)))
                )),
                ReviewFormat::Json => out(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "fits": false,
                        "wall": { "rule": wall.finding.rule, "path": wall.finding.path, "message": wall.message, "hardware": wall.hardware },
                    }))
                    .expect("serializes")
                )),
                ReviewFormat::Human => {
                    let _ = std::io::stderr().lock().write_all(text.as_bytes());
                }
            }
            return EXIT_FINDINGS;
        }
    };
    // Only a change of capacity carries the load with it: a spec that already fits the
    // target is left exactly as it is.
    let knob_changes = proposal.settings.iter().filter(|(p, _, _)| !p.starts_with("/load/")).count();
    let new_text = if knob_changes == 0 { old.loaded.source.text.clone() } else { proposal.text.clone() };
    let new = match analysis::analyze_text(spec, &new_text) {
        Ok(a) => a,
        Err(failure) => {
            eprintln!("error: the edited spec does not load; nothing was written");
            return report_failure(&failure, spec, Format::Human, color_for_stderr(color));
        }
    };
    if knob_changes > 0 && !crate::scale::same_spec(&new.loaded.value, &proposal) {
        return unwritable(spec, &old.loaded, &proposal);
    }
    let name = spec.display().to_string();
    let diff = similar::TextDiff::from_lines(&old.loaded.source.text, &new_text)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string();
    if write && knob_changes > 0
        && let Err(e) = crate::output::write_atomic(spec, &new_text)
    {
        eprintln!("error: cannot write {}: {e}", spec.display());
        return EXIT_ERROR;
    }
    let (old_report, new_report) = (CapacityReport::of(&old.plan), CapacityReport::of(&new.plan));
    let comparison = Comparison::of(&old_report, &old.diagnostics, &new_report, &new.diagnostics);
    match format {
        ReviewFormat::Markdown => {
            // The plan at the new load (the spec as written when nothing changes).
            let at_target = analysis::analyze_text(spec, &proposal.text).ok();
            let target_plan = at_target.as_ref().map_or(&new.plan, |a| &a.plan);
            let target_report = CapacityReport::of(target_plan);
            let target_load = target_report.load.as_ref().map_or(String::new(), |l| format!(" at {} rps", crate::rules::num(l.rps)));
            let mut text = format!("### headroom scale: {}{target_load}\n\n", report::markdown::cell(&name));
            if knob_changes == 0 {
                text.push_str("✅ Already fits the new load: no change.\n\n");
                text.push_str(&report::markdown::graph_and_tables(target_plan, &target_report));
            } else {
                text.push_str(&format!("✅ The smallest change after which every rule holds{}:\n\n", if write { " (written)" } else { "" }));
                text.push_str(&report::markdown::diff_block(&diff));
                text.push('\n');
                text.push_str(&report::markdown::compare(&comparison, &format!("{name} (today)"), &format!("{name} (proposed)"), &new.plan, &old_report, &new_report));
            }
            out(&text);
        }
        ReviewFormat::Json => {
            let changes: Vec<serde_json::Value> = proposal
                .settings
                .iter()
                .filter(|_| knob_changes > 0)
                .map(|(p, o, n)| serde_json::json!({ "path": crate::load::path::from_pointer(p, &new.loaded.value), "old": o, "new": n }))
                .collect();
            out(&format!(
                "{}\n",
                serde_json::to_string_pretty(&serde_json::json!({ "fits": true, "written": write && knob_changes > 0, "changes": changes, "diff": diff, "compare": comparison }))
                    .expect("serializes")
            ));
        }
        ReviewFormat::Human => {
            let mut text = String::new();
            if knob_changes == 0 {
                text.push_str(&format!("{name} already fits the new load: no change\n"));
            } else {
                text.push_str(&if color { crate::output::colorize(&diff) } else { diff.clone() });
                text.push('\n');
                text.push_str(&comparison.to_text(&format!("{name} (today)"), &format!("{name} (proposed)")));
                if write {
                    text.push_str(&format!("\nwrote {name}\n"));
                }
            }
            out(&text);
        }
    }
    EXIT_CLEAN
}

/// A proposal the spec's text cannot take as it is laid out (a value shared through a
/// YAML anchor): why, where, and the change itself so it can be made by hand.
fn unwritable(spec: &Path, loaded: &crate::load::Loaded, proposal: &crate::scale::Proposal) -> u8 {
    let why = match crate::scale::edit::apply(&loaded.source.text, &loaded.spans, &proposal.changes) {
        Err(e) => e,
        Ok(_) => crate::scale::edit::EditError("the edited text does not hold the change".into(), None),
    };
    let at = why.1.map_or(String::new(), |offset| {
        let lc = loaded.source.line_col(offset);
        format!(":{}:{}", lc.line, lc.column)
    });
    let change: Vec<String> = proposal
        .settings
        .iter()
        .map(|(p, old, new)| format!("{} {} -> {}", crate::load::path::from_pointer(p, &loaded.value), old.as_ref().map_or("(not set)".to_string(), crate::scale::edit::scalar_text), crate::scale::edit::scalar_text(new)))
        .collect();
    eprintln!(
        "error: scale found a change but cannot write it into {} as the file is laid out; nothing was written\n  --> {}{at}\n  = note: {}\n  = help: make the change by hand: {}; or write the shared value out where each service uses it, and run scale again",
        spec.display(),
        spec.display(),
        why.0,
        change.join(", ")
    );
    EXIT_ERROR
}

fn explain(rule: Option<&str>) -> u8 {
    let Some(id) = rule else {
        let mut text = String::from("rules (headroom explain ID for details):\n");
        for r in crate::rules::REGISTRY {
            text.push_str(&format!("  {:<34} {:<8} {}\n", r.id(), r.severity().as_str(), r.summary()));
        }
        out(&text);
        return EXIT_CLEAN;
    };
    match crate::rules::by_id(id) {
        Some(r) => {
            out(&format!("# {}\n\nseverity: {}\n\n{}", r.id(), r.severity().as_str(), r.docs()));
            EXIT_CLEAN
        }
        None => {
            let ids: Vec<&str> = crate::rules::REGISTRY.iter().map(|r| r.id()).collect();
            let hint = match crate::load::did_you_mean(id, ids.iter().copied()) {
                Some(g) => format!("did you mean `{g}`?"),
                None => "run `headroom explain` to list every rule".to_string(),
            };
            eprintln!("error: no rule `{id}`\n  = help: {hint}");
            EXIT_ERROR
        }
    }
}

fn spec_dir(spec: &Path) -> PathBuf {
    spec.parent().filter(|p| !p.as_os_str().is_empty()).map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn check_only(only: &[String]) -> Result<(), u8> {
    let names = crate::targets::names();
    for o in only {
        if !names.contains(&o.as_str()) {
            let hint = match crate::load::did_you_mean(o, names.iter().copied()) {
                Some(g) => format!("did you mean `{g}`? "),
                None => String::new(),
            };
            eprintln!("error: unknown target `{o}`\n  = help: {hint}targets: {}", names.join(", "));
            return Err(EXIT_ERROR);
        }
    }
    Ok(())
}

/// Loads the spec and renders its artifacts; refuses while `check` has errors unless
/// `force`. Returns the artifacts or the exit code to stop with.
/// The rendered artifacts of a spec, and the paths its `deploy.keep` says render must
/// never write.
type Rendered = (Vec<crate::targets::Artifact>, Vec<String>);

fn artifacts_for(spec: &Path, root: &Path, only: &[String], force: bool, color: bool) -> Result<Rendered, u8> {
    check_only(only)?;
    let analysis = match analysis::analyze_file(spec) {
        Ok(a) => a,
        Err(failure) => return Err(report_failure(&failure, spec, Format::Human, color_for_stderr(color))),
    };
    let errors = analysis.diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
    if errors > 0 && !force {
        let input = ReportInput { sources: vec![&analysis.loaded.source], subject: spec.display().to_string(), diagnostics: &analysis.diagnostics, files: &[] };
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(report::render(Format::Human, &input, color_for_stderr(color)).as_bytes());
        let _ = writeln!(
            stderr,
            "error: refusing to render: `headroom check` reports {} in {}\n  = help: fix the findings above, or pass --force to render the files anyway",
            crate::rules::plural(errors as u64, "error"),
            spec.display()
        );
        return Err(EXIT_FINDINGS);
    }
    let spec_file = spec.file_name().map_or_else(|| "capacity.yaml".to_string(), crate::targets::escape::file_name);
    let ctx = crate::targets::Context { spec: &analysis.loaded.spec, plan: &analysis.plan, spec_file, existing_root: Some(root) };
    let artifacts = crate::targets::render_all(&ctx, only).map_err(|errors| {
        for e in errors {
            eprintln!("error: cannot render {e}");
        }
        eprintln!("nothing was written");
        EXIT_ERROR
    })?;
    Ok((artifacts, analysis.loaded.spec.deploy.as_ref().map(|d| d.keep.clone()).unwrap_or_default()))
}

/// A relative path as `deploy.keep` and artifacts write it (`./a//b` -> `a/b`).
fn normal_relative(path: &str) -> String {
    path.split('/').filter(|part| !part.is_empty() && *part != ".").collect::<Vec<_>>().join("/")
}

/// Takes out the artifacts `deploy.keep` protects when rendering into the spec's own
/// directory (elsewhere, nothing of the repo can be overwritten), saying so on stderr.
fn leave_kept(artifacts: Vec<crate::targets::Artifact>, keep: &[String], root: &Path, spec: &Path) -> Vec<crate::targets::Artifact> {
    let same_dir = |a: &Path, b: &Path| a.canonicalize().ok().zip(b.canonicalize().ok()).is_some_and(|(a, b)| a == b);
    if keep.is_empty() || !same_dir(root, &spec_dir(spec)) {
        return artifacts;
    }
    let kept: Vec<String> = keep.iter().map(|k| normal_relative(k)).collect();
    let (left, written): (Vec<_>, Vec<_>) = artifacts.into_iter().partition(|a| kept.contains(&normal_relative(&a.path)));
    for a in &left {
        eprintln!(
            "note: {} is in deploy.keep of {}: headroom read it but does not own it (it holds what the spec does not model), so render leaves it as it is; `headroom diff {}` shows what would change",
            root.join(&a.path).display(),
            spec.display(),
            spec.display()
        );
    }
    written
}

#[allow(clippy::too_many_arguments)]
fn render(spec: &Path, out_dir: Option<&Path>, force: bool, only: &[String], stdout: bool, check: bool, color: bool) -> u8 {
    let root = out_dir.map_or_else(|| spec_dir(spec), Path::to_path_buf);
    // --check writes nothing, so it compares even while `check` has findings (those are
    // `headroom check`'s to report).
    let (artifacts, keep) = match artifacts_for(spec, &root, only, force || check, color) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let artifacts = if stdout { artifacts } else { leave_kept(artifacts, &keep, &root, spec) };
    if stdout {
        let mut text = String::new();
        for a in &artifacts {
            if artifacts.len() > 1 {
                text.push_str(&format!("==> {} <==\n", a.path));
            }
            text.push_str(&a.text);
        }
        out(&text);
        return EXIT_CLEAN;
    }
    let diffs = crate::output::diff_all(&root, &artifacts);
    let blocked: Vec<&crate::output::FileDiff> = diffs.iter().filter(|d| d.blocked()).collect();
    if check {
        let stale: Vec<_> = diffs.iter().filter(|d| d.status != crate::output::Status::Unchanged).collect();
        if stale.is_empty() {
            out(&format!("ok: {} files up to date in {}\n", artifacts.len(), root.display()));
            return EXIT_CLEAN;
        }
        let mut text = String::new();
        for d in &stale {
            text.push_str(&if color { crate::output::colorize(&d.unified) } else { d.unified.clone() });
        }
        text.push_str(&format!("{} of {} rendered files are stale in {}; run `headroom render {}`\n", stale.len(), artifacts.len(), root.display(), spec.display()));
        out(&text);
        report_blocked(&blocked, &root, spec);
        return EXIT_FINDINGS;
    }
    if !blocked.is_empty() && !force {
        report_blocked(&blocked, &root, spec);
        eprintln!("nothing was written");
        return EXIT_FINDINGS;
    }
    let mut destinations = Vec::new();
    for a in &artifacts {
        match crate::output::destination(&root, a) {
            Ok(p) => destinations.push(p),
            Err(e) => {
                eprintln!("error: {e}\nnothing was written");
                return EXIT_ERROR;
            }
        }
    }
    let mut text = String::new();
    let mut unchanged = 0;
    for (a, path) in artifacts.iter().zip(&destinations) {
        // A file that already holds the text is left alone: its mtime stays, so
        // watchers and build caches see no change.
        if std::fs::read(path).is_ok_and(|current| current == a.text.as_bytes()) {
            unchanged += 1;
            continue;
        }
        if let Err(e) = crate::output::write_atomic(path, &a.text) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return EXIT_ERROR;
        }
        text.push_str(&format!("wrote {}\n", path.display()));
    }
    if unchanged > 0 {
        text.push_str(&format!("{unchanged} files already up to date in {}\n", root.display()));
    }
    out(&text);
    EXIT_CLEAN
}

/// Names each file render leaves alone, why, and what to do (on stderr).
fn report_blocked(blocked: &[&crate::output::FileDiff], root: &Path, spec: &Path) {
    if blocked.is_empty() {
        return;
    }
    let mut stderr = std::io::stderr().lock();
    for d in blocked {
        let _ = writeln!(stderr, "error: {} {}; render leaves it as it is", root.join(&d.path).display(), d.why_blocked());
    }
    let _ = writeln!(
        stderr,
        "  = help: `headroom diff {spec}` shows what render would change; carry the edits you want into the spec, then \
         `headroom render {spec} --force` replaces {} (or set deploy.files to write elsewhere)",
        if blocked.len() == 1 { "it" } else { "them" },
        spec = spec.display()
    );
}

fn diff(spec: &Path, against: Option<&Path>, format: PlanFormat, only: &[String], color: bool) -> u8 {
    use crate::output::Status;
    let root = against.map_or_else(|| spec_dir(spec), Path::to_path_buf);
    let (artifacts, _) = match artifacts_for(spec, &root, only, true, color) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let diffs = crate::output::diff_all(&root, &artifacts);
    let changed = diffs.iter().filter(|d| d.status == Status::Changed).count();
    let new = diffs.iter().filter(|d| d.status == Status::New).count();
    let unchanged = diffs.len() - changed - new;
    match format {
        PlanFormat::Json => {
            let doc = serde_json::json!({
                "against": root.display().to_string(),
                "summary": { "changed": changed, "new": new, "unchanged": unchanged, "blocked": diffs.iter().filter(|d| d.blocked()).count() },
                "files": diffs,
            });
            let mut text = serde_json::to_string_pretty(&doc).expect("serializes");
            text.push('\n');
            out(&text);
        }
        PlanFormat::Human => {
            let mut text = String::new();
            for d in diffs.iter().filter(|d| d.status == Status::Changed) {
                text.push_str(&if color { crate::output::colorize(&d.unified) } else { d.unified.clone() });
            }
            for d in diffs.iter().filter(|d| d.status == Status::New) {
                text.push_str(&format!("new file (not in {}): {}\n", root.display(), d.path));
            }
            for d in diffs.iter().filter(|d| d.blocked()) {
                text.push_str(&format!("left alone by render without --force: {} {}\n", d.path, d.why_blocked()));
            }
            text.push_str(&format!("{changed} changed, {new} new, {unchanged} unchanged (against {})\n", root.display()));
            out(&text);
        }
    }
    if changed + new > 0 { EXIT_FINDINGS } else { EXIT_CLEAN }
}

fn subject_of(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// `lint`: exit 2 only when nothing at all could be read into a model; a file that
/// cannot be parsed is an error finding among the others (exit 1).
fn lint(paths: &[PathBuf], args: &ImportArgs, format: Format, strict: bool, color: bool) -> u8 {
    // A directory holding several deployments (compose or Kamal configs in separate
    // folders) is linted as each of them, never merged into one system.
    if let [dir] = paths
        && dir.is_dir()
        && let Some((deployments, skipped)) = crate::import::discover::deployments::split(dir)
    {
        return match &args.deployment {
            None => lint_deployments(paths, &deployments, skipped, args, format, strict, color),
            Some(name) => match chosen_deployment(dir, &deployments, name) {
                Ok(d) => lint(&d.files, &ImportArgs { deployment: None, ..args.clone() }, format, strict, color),
                Err(code) => code,
            },
        };
    }
    let options = args.options();
    let outcome = crate::import::import(paths, &options);
    if options.destination.is_none() && !outcome.kamal_destinations.is_empty() {
        return lint_destinations(paths, &options, &outcome.kamal_destinations, format, strict, color);
    }
    let (findings, nothing_read) = lint_findings(&outcome);
    let input = ReportInput { sources: outcome.sources.iter().collect(), subject: subject_of(paths), diagnostics: &findings, files: &outcome.files };
    out(&report::render(format, &input, color));
    if nothing_read { EXIT_ERROR } else { exit_for(&findings, strict) }
}

/// The rules' findings on what was read, then what could not be read or was assumed;
/// and whether nothing at all could be read.
fn lint_findings(outcome: &crate::import::ImportOutcome) -> (Vec<crate::diag::Diagnostic>, bool) {
    let mut findings = Vec::new();
    if let Some(imported) = &outcome.imported {
        let plan = crate::plan::resolve(&imported.spec);
        findings = crate::rules::check(&plan);
        analysis::locate_all(imported, &mut findings);
    }
    findings.extend(outcome.diagnostics.iter().cloned());
    let nothing_read = outcome.imported.as_ref().is_none_or(|i| i.spec.services.is_empty() && i.spec.machines.is_empty() && outcome.diagnostics.iter().any(|d| d.severity == Severity::Error));
    (findings, nothing_read)
}

/// `lint` of a Kamal config with destination files: each destination is its own
/// deployment (deploy.<destination>.yml merged over deploy.yml, as `kamal deploy -d`
/// does), linted on its own; findings and files say which destination they are of.
fn lint_destinations(paths: &[PathBuf], options: &crate::import::ImportOptions, destinations: &[String], format: Format, strict: bool, color: bool) -> u8 {
    let parts: Vec<LintPart> = destinations
        .iter()
        .map(|destination| {
            let options = crate::import::ImportOptions { destination: Some(destination.clone()), ..options.clone() };
            LintPart { prefix: format!("destination `{destination}`"), deployment: format!("destination {destination}"), outcome: crate::import::import(paths, &options) }
        })
        .collect();
    report_parts(paths, &parts, Vec::new(), format, strict, color)
}

/// `lint` of a directory holding alternatives in separate folders: each folder is its
/// own deployment (with the files no such folder holds), linted on its own.
#[allow(clippy::too_many_arguments)]
fn lint_deployments(
    paths: &[PathBuf],
    deployments: &[crate::import::discover::deployments::Deployment],
    skipped: crate::import::discover::deployments::Skipped,
    args: &ImportArgs,
    format: Format,
    strict: bool,
    color: bool,
) -> u8 {
    let mut parts: Vec<LintPart> = Vec::new();
    for d in deployments {
        let options = args.options();
        let outcome = crate::import::import(&d.files, &options);
        if options.destination.is_some() || outcome.kamal_destinations.is_empty() {
            parts.push(LintPart { prefix: format!("deployment `{}`", d.name), deployment: d.name.clone(), outcome });
            continue;
        }
        // A folder whose Kamal config has destinations: each destination on its own.
        for destination in &outcome.kamal_destinations {
            let options = crate::import::ImportOptions { destination: Some(destination.clone()), ..options.clone() };
            parts.push(LintPart {
                prefix: format!("deployment `{}`, destination `{destination}`", d.name),
                deployment: format!("{}, destination {destination}", d.name),
                outcome: crate::import::import(&d.files, &options),
            });
        }
    }
    let skipped = skipped.into_iter().map(|(path, why)| crate::report::FileRead { path: path.display().to_string(), format: None, skipped: Some(why), deployment: None }).collect();
    report_parts(paths, &parts, skipped, format, strict, color)
}

/// One deployment of a lint run that found several.
struct LintPart {
    /// Put before each of its findings (``destination `prod` ``).
    prefix: String,
    /// Named on each file it read.
    deployment: String,
    outcome: crate::import::ImportOutcome,
}

/// Reports several deployments together: every finding says which deployment it is
/// of, every file read which deployment read it. Exit 2 only when none read anything.
fn report_parts(paths: &[PathBuf], parts: &[LintPart], skipped: Vec<crate::report::FileRead>, format: Format, strict: bool, color: bool) -> u8 {
    let mut findings = Vec::new();
    let mut files = Vec::new();
    let mut all_empty = true;
    // A file one part skips (another destination's file) may be read by another part;
    // a file skipped by several parts is listed once.
    let read: std::collections::HashSet<&str> = parts.iter().flat_map(|p| p.outcome.files.iter()).filter(|f| f.skipped.is_none()).map(|f| f.path.as_str()).collect();
    let mut skipped_paths: std::collections::HashSet<String> = std::collections::HashSet::new();
    for part in parts {
        let (mut found, nothing_read) = lint_findings(&part.outcome);
        all_empty &= nothing_read;
        for f in &mut found {
            f.message = format!("{}: {}", part.prefix, f.message);
        }
        findings.extend(found);
        for f in &part.outcome.files {
            if f.skipped.is_some() && (read.contains(f.path.as_str()) || !skipped_paths.insert(f.path.clone())) {
                continue;
            }
            let mut f = f.clone();
            if f.skipped.is_none() {
                f.deployment = Some(part.deployment.clone());
            }
            files.push(f);
        }
    }
    files.extend(skipped.into_iter().filter(|f| !read.contains(f.path.as_str()) && skipped_paths.insert(f.path.clone())));
    let mut sources: Vec<&crate::source::SourceFile> = Vec::new();
    for source in parts.iter().flat_map(|p| p.outcome.sources.iter()) {
        if !sources.iter().any(|s| s.path == source.path) {
            sources.push(source);
        }
    }
    let input = ReportInput { sources, subject: subject_of(paths), diagnostics: &findings, files: &files };
    out(&report::render(format, &input, color));
    if all_empty { EXIT_ERROR } else { exit_for(&findings, strict) }
}

/// The deployment named `name` among those a directory holds; else exit 2 with the
/// names there are.
fn chosen_deployment<'a>(dir: &Path, deployments: &'a [crate::import::discover::deployments::Deployment], name: &str) -> Result<&'a crate::import::discover::deployments::Deployment, u8> {
    let wanted = name.trim_end_matches('/');
    deployments.iter().find(|d| d.name == wanted).ok_or_else(|| {
        let names = deployments.iter().map(|d| format!("`{}`", d.name)).collect::<Vec<_>>().join(", ");
        eprintln!("error: {} holds no deployment `{name}`\n  = help: its deployments are {names} (named by the folder that defines each)", dir.display());
        EXIT_ERROR
    })
}

fn import_spec(paths: &[PathBuf], args: &ImportArgs, out_path: &Path, color: bool) -> u8 {
    // A directory holding several deployments is imported as one of them, never
    // merged into one system (two apps' settings would mix).
    if let [dir] = paths
        && dir.is_dir()
        && let Some((deployments, _)) = crate::import::discover::deployments::split(dir)
    {
        let chosen = match &args.deployment {
            Some(name) => match chosen_deployment(dir, &deployments, name) {
                Ok(d) => d,
                Err(code) => return code,
            },
            None => {
                let names = deployments.iter().map(|d| format!("`{}`", d.name)).collect::<Vec<_>>().join(", ");
                eprintln!(
                    "note: {} holds {} deployments ({names}); importing `{}`\n  = help: pass --deployment FOLDER to import another",
                    dir.display(),
                    deployments.len(),
                    deployments[0].name
                );
                &deployments[0]
            }
        };
        return import_spec(&chosen.files, &ImportArgs { deployment: None, ..args.clone() }, out_path, color);
    }
    let outcome = crate::import::import(paths, &args.options());
    let problems: Vec<_> = outcome.diagnostics.iter().filter(|d| d.severity == Severity::Error).cloned().collect();
    let notes: Vec<_> = outcome.diagnostics.iter().filter(|d| d.severity != Severity::Error).cloned().collect();
    let report_to_stderr = |diags: &[crate::diag::Diagnostic]| {
        if diags.is_empty() {
            return;
        }
        let input = ReportInput { sources: outcome.sources.iter().collect(), subject: subject_of(paths), diagnostics: diags, files: &[] };
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(report::render(Format::Human, &input, color_for_stderr(color)).as_bytes());
    };
    let Some(imported) = outcome.imported else {
        report_to_stderr(&outcome.diagnostics);
        eprintln!("error: no spec written: the files above could not be read into one");
        return EXIT_ERROR;
    };
    report_to_stderr(&notes);
    report_to_stderr(&problems);
    let mut imported = imported;
    // The files read stay the user's: render into the spec's directory leaves them alone.
    let spec_dir = match out_path.parent() {
        Some(p) if out_path != Path::new("-") && !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let foreign = crate::import::foreign_files(&imported.sources, &spec_dir, args.options().overlay.as_deref());
    crate::import::keep_files(&mut imported, foreign);
    let text = crate::import::to_yaml(&imported, &outcome.diagnostics);
    let written = if problems.is_empty() { EXIT_CLEAN } else { EXIT_FINDINGS };
    if out_path == Path::new("-") {
        out(&text);
        return written;
    }
    if let Err(e) = crate::output::write_atomic(out_path, &text) {
        eprintln!("error: cannot write {}: {e}", out_path.display());
        return EXIT_ERROR;
    }
    out(&format!("wrote {} ({} services); run `headroom check {}`\n", out_path.display(), imported.spec.services.len(), out_path.display()));
    // Written, but some files could not be read into it.
    written
}
