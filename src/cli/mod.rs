//! The `hsync` command line: one file per command. This is the only module that uses `anyhow`,
//! to add context for people; library code returns typed errors with a class.

mod associations;
mod backfill;
mod calculated;
mod cdc;
mod check;
mod config_cmd;
mod deletes;
mod demo;
mod dimensions;
mod history;
mod plan;
mod push;
mod reset;
mod run;
mod schema_diff;
mod session;
mod sim;
mod status;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::{Classify, ErrorClass};
use crate::telemetry::{self, Verbosity};

/// Keeps a data warehouse in sync with a HubSpot CRM portal.
#[derive(Debug, Parser)]
#[command(name = "hsync", version, about, propagate_version = true)]
pub struct Cli {
    /// The configuration file (TOML). Keys can be overridden as HSYNC_<SECTION>__<KEY>.
    #[arg(long, short, global = true, env = "HSYNC_CONFIG")]
    pub config: Option<PathBuf>,
    /// Only warnings and errors.
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Debug logging for hsync's own modules.
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// How long a writing command waits for the destination's lease while another hsync (a
    /// daemon or another command) holds it; 0 refuses at once, naming the holder.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 0, env = "HSYNC_WAIT_FOR_LEASE")]
    pub wait_for_lease: u64,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a simulated HubSpot portal over HTTP (for trying hsync and for tests).
    Sim(Box<sim::SimArgs>),
    /// Try hsync with no token and no database server: sync a simulated portal into a SQLite
    /// file, change records, run CDC, and print what happened with SQL to try.
    Demo(demo::DemoArgs),
    /// Print the effective configuration (file plus environment), with secrets redacted.
    Config,
    /// Check the configuration, the destination (connect, write access) and HubSpot (token,
    /// scopes per object), one line each with what to do about a failure.
    Check,
    /// Compare HubSpot's properties with the destination's tables; exit 3 on drift, 4 when a
    /// change is incompatible; `--apply` applies creating, adding and widening changes.
    SchemaDiff(schema_diff::SchemaDiffArgs),
    /// Copy every record of the configured objects (checkpointed per page; `--resume` continues).
    Backfill(backfill::BackfillArgs),
    /// Read what changed since the last pass (`--once` for one pass, as cron would).
    Cdc(cdc::CdcArgs),
    /// Read association edges: those of records changed since the last poll, or of every
    /// record with `--sweep` (which also catches changes that moved no last-modified time).
    Associations(associations::AssociationsArgs),
    /// Flag archived, merged-away and permanently deleted records, and un-flag restored ones
    /// (one reconcile per object: the recycle bin, survivors' merged ids and an id sweep).
    Deletes(deletes::DeletesArgs),
    /// Re-read the calculated properties (rollups such as num_associated_deals, formulas,
    /// scores) of every record: HubSpot changes them without moving last-modified, so CDC
    /// cannot see them. The daemon sweeps daily; `--object` narrows it.
    RefreshCalculated(calculated::RefreshCalculatedArgs),
    /// The daemon: backfill until done, then CDC, associations, deletes and schema checks on
    /// their intervals; serves /healthz, /readyz, /metrics and /status; one leader per
    /// destination (a second instance stands by).
    Run(run::RunArgs),
    /// Refresh the owners, pipelines and pipeline_stages tables in full (rows HubSpot no longer
    /// lists are kept, flagged with _hsync_removed_at).
    Dimensions(dimensions::DimensionsArgs),
    /// Read the property history `sync.history` names into property_history: every record's
    /// the first time, then only the records CDC wrote since the last pass.
    History(history::HistoryArgs),
    /// Each stream's phase, watermark, lag, rows and last error, and the day's API budget, from
    /// the state store alone (no HubSpot call); `--json` for machines.
    Status(status::StatusArgs),
    /// Estimate a backfill before running it: HubSpot calls per object (one search each for
    /// the record count), time under the rate limits and days under the daily budget.
    Plan(plan::PlanArgs),
    /// Compare the warehouse with HubSpot: counts, missing and extra ids, stale rows; exit 5
    /// when they differ.
    Verify(verify::VerifyArgs),
    /// Write rows from a query on the destination or a CSV file into HubSpot (`[push.<name>]`):
    /// checked against HubSpot's property definitions first, upserted 100 a call within the
    /// sync's rate limits and daily budget, each row's outcome in push_results; exit 5 when
    /// rows were rejected or failed. `--dry-run` checks without writing.
    Push(push::PushArgs),
    /// Forget streams' checkpoints (`cdc:contacts` ...) so they start over: the way out of a
    /// checkpoint hsync cannot read. Rows are updated in place; nothing is lost.
    Reset(reset::ResetArgs),
}

/// Parses the command line, runs the command and maps failures to an exit code by class.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbosity = if cli.quiet {
        Verbosity::Quiet
    } else if cli.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    telemetry::init(verbosity);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(ErrorClass::Bug.exit_code());
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(class_of(&error).exit_code())
        }
    }
}

impl Command {
    /// The command as a lease's holder description names it (never its arguments).
    fn name(&self) -> &'static str {
        match self {
            Command::Sim(_) => "hsync sim",
            Command::Demo(_) => "hsync demo",
            Command::Config => "hsync config",
            Command::Check => "hsync check",
            Command::SchemaDiff(_) => "hsync schema-diff",
            Command::Backfill(_) => "hsync backfill",
            Command::Cdc(_) => "hsync cdc",
            Command::Associations(_) => "hsync associations",
            Command::Deletes(_) => "hsync deletes",
            Command::RefreshCalculated(_) => "hsync refresh-calculated",
            Command::Run(_) => "hsync run",
            Command::Dimensions(_) => "hsync dimensions",
            Command::History(_) => "hsync history",
            Command::Status(_) => "hsync status",
            Command::Plan(_) => "hsync plan",
            Command::Verify(_) => "hsync verify",
            Command::Reset(_) => "hsync reset",
            Command::Push(_) => "hsync push",
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let leasing =
        session::Leasing { command: cli.command.name(), wait: std::time::Duration::from_secs(cli.wait_for_lease) };
    let leasing = &leasing;
    match cli.command {
        Command::Sim(args) => sim::run(*args).await,
        Command::Demo(args) => demo::run(args, leasing).await,
        Command::Config => config_cmd::run(cli.config.as_deref()),
        Command::Check => check::run(cli.config.as_deref()).await,
        Command::SchemaDiff(args) => schema_diff::run(cli.config.as_deref(), args, leasing).await,
        Command::Backfill(args) => backfill::run(cli.config.as_deref(), args, leasing).await,
        Command::Cdc(args) => cdc::run(cli.config.as_deref(), args, leasing).await,
        Command::Associations(args) => associations::run(cli.config.as_deref(), args, leasing).await,
        Command::Deletes(args) => deletes::run(cli.config.as_deref(), args, leasing).await,
        Command::RefreshCalculated(args) => calculated::run(cli.config.as_deref(), args, leasing).await,
        Command::Run(args) => run::run(cli.config.as_deref(), args).await,
        Command::Dimensions(args) => dimensions::run(cli.config.as_deref(), args, leasing).await,
        Command::History(args) => history::run(cli.config.as_deref(), args, leasing).await,
        Command::Status(args) => status::run(cli.config.as_deref(), args).await,
        Command::Plan(args) => plan::run(cli.config.as_deref(), args).await,
        Command::Verify(args) => verify::run(cli.config.as_deref(), args).await,
        Command::Reset(args) => reset::run(cli.config.as_deref(), args, leasing).await,
        Command::Push(args) => push::run(cli.config.as_deref(), args).await,
    }
}

/// The class of the first classified error in the chain; unclassified errors are bugs.
pub(crate) fn class_of(error: &anyhow::Error) -> ErrorClass {
    error
        .chain()
        .find_map(|e| {
            e.downcast_ref::<crate::config::Error>()
                .map(Classify::class)
                .or_else(|| e.downcast_ref::<crate::hubspot::Error>().map(Classify::class))
                .or_else(|| e.downcast_ref::<crate::destination::Error>().map(Classify::class))
                .or_else(|| e.downcast_ref::<crate::state::Error>().map(Classify::class))
                .or_else(|| e.downcast_ref::<crate::stream::Error>().map(Classify::class))
                .or_else(|| e.downcast_ref::<crate::daemon::Error>().map(Classify::class))
        })
        .unwrap_or(ErrorClass::Bug)
}

/// The objects of a one-shot command whose streams stopped on bad data or on a scope the token
/// lacks for their type: such a failure stops only that object, the command goes on with the
/// others and then fails with the first such error. Any other failure (the token refused, the
/// destination down) ends the command at once.
#[derive(Debug, Default)]
pub(crate) struct ObjectFailures(Vec<anyhow::Error>);

impl ObjectFailures {
    /// The object's result, or `None` when its stream stopped on bad data (kept for
    /// [`ObjectFailures::finish`]).
    pub(crate) fn take<T>(&mut self, object: &str, outcome: anyhow::Result<T>) -> anyhow::Result<Option<T>> {
        let why = match &outcome {
            Ok(_) => None,
            Err(e) if class_of(e) == ErrorClass::Data => Some("stopped on data hsync cannot read"),
            Err(e) if lacks_scope(e) => Some("stopped: the token may not read this object type"),
            Err(_) => None,
        };
        match (outcome, why) {
            (Ok(value), _) => Ok(Some(value)),
            (Err(e), Some(why)) => {
                eprintln!("error: {object}: {e:#}");
                eprintln!("{object} stopped; going on with the other objects");
                self.0.push(e.context(format!("{object} {why}")));
                Ok(None)
            }
            (Err(e), None) => Err(e),
        }
    }

    /// Success when no object stopped, else the first object's error.
    pub(crate) fn finish(&mut self) -> anyhow::Result<ExitCode> {
        let mut stopped = std::mem::take(&mut self.0).into_iter();
        match stopped.next() {
            None => Ok(ExitCode::SUCCESS),
            Some(first) => Err(first.context(format!("{} object(s) stopped on bad data", stopped.len() + 1))),
        }
    }
}

/// Whether `error` is HubSpot refusing one object type for a missing scope (other types may
/// still be readable), rather than refusing the token.
fn lacks_scope(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        matches!(e.downcast_ref::<crate::hubspot::Error>(), Some(crate::hubspot::Error::MissingScopes { .. }))
            || matches!(
                e.downcast_ref::<crate::stream::Error>(),
                Some(crate::stream::Error::HubSpot(crate::hubspot::Error::MissingScopes { .. }))
            )
    })
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
