//! Jobs: the units of sync work and the one sequence that runs each, for the command line and
//! the daemon alike. A [`Job`] says what to do (a backfill, a CDC pass, an association poll or
//! sweep, a deletes reconcile, the dimensions refresh, a schema check, a calculated-property
//! sweep, the application of webhook events); [`Jobs::run`] does it, always in this order:
//!
//! record the run's start ─► prepare the table (diff the properties, alter, schedule a re-read
//! of new columns) ─► finish a pending re-read ─► the stream's pass (each batch staged, merged
//! and committed by the [`Runner`]) ─► record the run's end (status, rows, error) ─► metrics.
//!
//! The CLI commands build jobs and print their reports; the daemon only schedules them. Both
//! build [`Jobs`] from the configuration with [`Jobs::from_config`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::config::HistorySelection;
use crate::destination::{AnyDestination, AnyStateStore, Destination};
use crate::error::Classify;
use crate::hubspot::{HubSpotClient, ObjectRef, ReadPath};
use crate::state::{RunStatus, StateStore, StreamId};
use crate::stream::backfill::{self, Mode};
use crate::stream::runner::{PlannedSchema, PreparedTable, PropertyFilter, Runner};
use crate::stream::state::BackfillState;
use crate::stream::{associations, calculated, cdc, deletes, dimensions, history, reread, webhooks, Error};

/// One unit of sync work.
#[derive(Clone, Debug)]
pub enum Job {
    /// Diff the object's properties, alter its table and re-read columns it gained.
    Schema(ObjectRef),
    /// Copy every record; `restart` first forgets the object's backfill, CDC and re-read
    /// checkpoints.
    Backfill { object: ObjectRef, mode: Mode, restart: bool },
    /// Read what changed since the last pass.
    Cdc(ObjectRef),
    /// Reconcile archived, merged and deleted records into flags.
    Deletes(ObjectRef),
    /// The association edges of the pairs stored from one object's side: of the records
    /// changed since the last poll, or of every record with `sweep`.
    Associations { source: associations::Source, sweep: bool },
    /// Refresh the owners and pipelines tables in full, with the pipelines of the synced
    /// objects' types.
    Dimensions(Vec<ObjectRef>),
    /// Read the property history of the records changed since the last pass (of every
    /// record, the first time).
    History { object: ObjectRef, selection: HistorySelection },
    /// Re-read every record's calculated properties (or continue the sweep in progress);
    /// with `min_age`, not when the last sweep ended less than that long ago.
    Calculated { object: ObjectRef, min_age: Option<Duration> },
    /// Apply the webhook events the receiver stored, for the synced objects; `history` holds,
    /// by table, the properties whose history is kept.
    Webhooks { objects: Vec<ObjectRef>, history: BTreeMap<String, HistorySelection> },
    /// Write the rows of the push job `name` to HubSpot (or resume its unfinished run).
    Push { name: String, push: crate::config::PushConfig, options: crate::push::Options },
    /// Write records sent to the daemon for the push job `name` (`POST /push/<name>`).
    PushRecords { name: String, push: crate::config::PushConfig, rows: crate::destination::TextRows },
}

impl Job {
    /// The stream the job advances, which its runs are recorded under.
    pub fn stream(&self) -> StreamId {
        match self {
            Job::Schema(object) => StreamId::schema(&object.table),
            Job::Backfill { object, .. } => StreamId::backfill(&object.table),
            Job::Cdc(object) => StreamId::cdc(&object.table),
            Job::Deletes(object) => StreamId::deletes(&object.table),
            Job::Associations { source, .. } => StreamId::associations(&source.from.table),
            Job::Dimensions(_) => StreamId::dimensions(),
            Job::History { object, .. } => StreamId::history(&object.table),
            Job::Calculated { object, .. } => StreamId::calculated(&object.table),
            Job::Webhooks { .. } => StreamId::webhooks(),
            Job::Push { name, .. } => StreamId::push(name),
            Job::PushRecords { name, .. } => StreamId::push_events(name),
        }
    }

    /// The job as logs, metrics and the daemon's `/status` name it: its stream, except that
    /// an association sweep is told from a poll.
    pub fn name(&self) -> String {
        match self {
            Job::Associations { source, sweep } => associations_job_name(&source.from.table, *sweep),
            other => other.stream().to_string(),
        }
    }
}

/// The name of the association poll or sweep of the pairs stored from `table`'s side (see
/// [`Job::name`]).
pub fn associations_job_name(table: &str, sweep: bool) -> String {
    let stream = StreamId::associations(table);
    if sweep {
        format!("associations-sweep:{}", stream.table())
    } else {
        stream.to_string()
    }
}

/// What a job's stream reported.
#[derive(Clone, Debug)]
pub enum Report {
    /// Rows whose new columns a re-read filled.
    Schema {
        reread_rows: u64,
    },
    Backfill(backfill::Report),
    Cdc(cdc::Report),
    Deletes(deletes::Report),
    Associations(associations::Report),
    Dimensions(dimensions::Report),
    History(history::Report),
    Calculated(calculated::Report),
    Webhooks(webhooks::Report),
    Push(crate::push::Summary),
    PushRecords(crate::push::events::Pushed),
}

impl Report {
    /// The rows the run wrote, for the run history.
    pub fn rows(&self) -> u64 {
        match self {
            Report::Schema { reread_rows } => *reread_rows,
            Report::Backfill(r) => r.rows,
            Report::Cdc(r) => r.rows,
            Report::Deletes(r) => r.written,
            Report::Associations(r) => r.pairs.iter().map(|p| p.upserted + p.tombstoned).sum(),
            Report::Dimensions(r) => r.rows(),
            Report::History(r) => r.versions,
            Report::Calculated(r) => r.rows,
            Report::Webhooks(r) => r.events,
            Report::Push(s) => s
                .outcomes
                .iter()
                .filter(|(name, _)| name.as_str() != crate::push::UNASSOCIATED)
                .map(|(_, n)| n)
                .sum::<i64>()
                .try_into()
                .unwrap_or(0),
            Report::PushRecords(p) => p.results.len() as u64,
        }
    }
}

/// How a job's run ended when it did not fail.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub report: Report,
    /// Whether it ran to its end; `false` when a stop signal (or a lost lease) cut it short,
    /// and the next run continues it.
    pub finished: bool,
}

impl Outcome {
    fn status(&self) -> RunStatus {
        if self.finished {
            RunStatus::Ok
        } else {
            RunStatus::Stopped
        }
    }
}

/// Who watches a backfill's progress (a terminal's bar, the daemon's gauge).
pub trait Progress: Send + Sync {
    /// Whether the backfill should count the object's records first (one search) so its
    /// progress shows as a share.
    fn wants_total(&self) -> bool {
        false
    }

    /// The backfill of `object` starts with `done` of `total` records already copied.
    fn start(&self, _object: &str, _total: u64, _done: u64) {}

    /// `rows` more records were copied.
    fn advance(&self, _rows: u64) {}

    /// The run ended (finished or not).
    fn end(&self) {}
}

/// No one watches; a backfill still keeps `hsync_backfill_progress_ratio` current when it
/// counted its records.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unwatched {
    /// Count the records anyway (the daemon does, for the gauge).
    pub count: bool,
}

impl Progress for Unwatched {
    fn wants_total(&self) -> bool {
        self.count
    }
}

/// The settings jobs read from the configuration.
#[derive(Debug, Clone, Copy)]
struct Settings {
    settle_lag: Duration,
    fetch: backfill::Fetch,
    /// How a large backfill reads at once (`sync.backfill_concurrency`, `sync.backfill_list`).
    concurrency: backfill::Concurrency,
    /// How long a prepared table is used before its properties are read again.
    schema_max_age: Duration,
    /// The share of the day's budget a calculated-property sweep leaves to the other streams.
    calculated_reserve_percent: u8,
}

/// Runs jobs: the runner with what jobs keep between runs (each object's prepared table and
/// the association sources).
#[derive(Debug)]
pub struct Jobs<D = AnyDestination, S = AnyStateStore> {
    pub runner: Runner<D, S>,
    settings: Settings,
    tables: Mutex<HashMap<String, (PreparedTable, Instant)>>,
    sources: Mutex<Option<Vec<associations::Source>>>,
    /// Push targets made for records sent to the daemon, by push name: the columns they were
    /// made for, when, and the target (property definitions and associations checked once
    /// every [`Settings::schema_max_age`], not once a request).
    push_targets: Mutex<HashMap<String, PushTarget>>,
}

/// A push target made for records sent to the daemon: the columns it was made for, when, and
/// the target.
type PushTarget = (Vec<String>, Instant, Arc<crate::push::Target>);

impl Jobs {
    /// The jobs of `config`, writing to `dest` (with its state store and budget ledger): the
    /// one place a runner is built from the configuration.
    pub fn from_config(config: &Config, dest: &AnyDestination) -> Result<Jobs, Error> {
        let state = dest.state_store();
        let clock = crate::clock::system();
        let client = HubSpotClient::new(
            config.hubspot_client_config(),
            config.token_source(),
            Arc::new(state.clone()),
            Arc::clone(&clock),
        )?;
        let filter = PropertyFilter {
            include: config.sync.include_properties.clone(),
            exclude: config.sync.exclude_properties.clone(),
        };
        let runner = Runner { client, dest: dest.clone(), state, clock, filter };
        Ok(Jobs::new(runner, config))
    }
}

impl<D: Destination, S: StateStore> Jobs<D, S> {
    /// Jobs over `runner` with the sync and schedule settings of `config`.
    pub fn new(runner: Runner<D, S>, config: &Config) -> Jobs<D, S> {
        Jobs {
            runner,
            settings: Settings {
                settle_lag: Duration::from_secs(config.sync.settle_lag_secs),
                fetch: backfill::Fetch::ahead_if(config.sync.backfill_fetch_ahead),
                concurrency: backfill::Concurrency {
                    walkers: usize::try_from(config.sync.backfill_concurrency).unwrap_or(1),
                    list: config.sync.backfill_list,
                },
                schema_max_age: Duration::from_secs(config.daemon.schema_interval_secs),
                calculated_reserve_percent: config.daemon.calculated_budget_reserve_percent,
            },
            tables: Mutex::new(HashMap::new()),
            sources: Mutex::new(None),
            push_targets: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `job` as one recorded run (see the module doc for the order), until it ends or
    /// `stop` fires (then the run is recorded as stopped and the next run continues it).
    pub async fn run(&self, job: &Job, stop: &CancellationToken, progress: &dyn Progress) -> Result<Outcome, Error> {
        let stream = job.stream();
        let name = job.name();
        let clock = &self.runner.clock;
        let run = self.runner.state.start_run(&stream, clock.now()).await?;
        tracing::debug!(job = %name, "job started");
        let outcome = self.execute(job, stop, progress).await;
        let (status, rows, message) = match &outcome {
            Ok(done) => (done.status(), done.report.rows(), None),
            Err(e) => (RunStatus::Failed, 0, Some(e.to_string())),
        };
        let rows = i64::try_from(rows).unwrap_or(i64::MAX);
        let recorded = self.runner.state.finish_run(run, clock.now(), status, rows, message.as_deref()).await;
        match &outcome {
            Ok(done) if !done.finished => {}
            Ok(_) => {
                metrics::gauge!("hsync_stream_last_success_timestamp_seconds", "stream" => name)
                    .set(clock.now().timestamp() as f64);
            }
            Err(e) => {
                metrics::counter!("hsync_errors_total", "stream" => name, "class" => e.class().to_string())
                    .increment(1);
                // Prepare afresh next time: the failure may have been the table's (a column
                // dropped by hand, say).
                if let Some(object) = job_object(job) {
                    self.forget_table(&object.table);
                }
            }
        }
        match (outcome, recorded) {
            (Ok(done), Ok(())) => Ok(done),
            (Ok(_), Err(e)) => Err(e.into()),
            (Err(e), recorded) => {
                if let Err(record) = recorded {
                    tracing::warn!(stream = %stream, error = %record, "could not record the failed run");
                }
                Err(e)
            }
        }
    }

    async fn execute(&self, job: &Job, stop: &CancellationToken, progress: &dyn Progress) -> Result<Outcome, Error> {
        let runner = &self.runner;
        let until_stopped = |report| Outcome { report, finished: !stop.is_cancelled() };
        match job {
            Job::Schema(object) => {
                let table = self.refresh_table(object).await?;
                let reread_rows = reread::run(runner, &table, stop).await?;
                Ok(until_stopped(Report::Schema { reread_rows }))
            }
            Job::Backfill { object, mode, restart } => self.backfill(object, *mode, *restart, stop, progress).await,
            Job::Cdc(object) => {
                let table = self.table(object).await?;
                reread::run(runner, &table, stop).await?;
                let report =
                    cdc::pass(runner, &table, self.settings.settle_lag, self.settings.concurrency.walkers, stop)
                        .await?;
                Ok(until_stopped(Report::Cdc(report)))
            }
            Job::Deletes(object) => {
                let table = self.table(object).await?;
                let report = deletes::reconcile(runner, &table, stop).await?;
                Ok(Outcome { finished: report.finished, report: Report::Deletes(report) })
            }
            Job::Associations { source, sweep } => {
                let settle = self.settings.settle_lag;
                let tables = self.calculated_tables(source).await;
                let around = associations::Around { tables: &tables, every_batch: false };
                let report = if *sweep {
                    associations::sweep_all(runner, source, settle, around, stop).await?
                } else {
                    associations::poll_changes(runner, source, settle, around, stop).await?
                };
                Ok(Outcome { finished: report.finished, report: Report::Associations(report) })
            }
            Job::Dimensions(synced) => {
                Ok(Outcome { report: Report::Dimensions(dimensions::refresh(runner, synced).await?), finished: true })
            }
            Job::History { object, selection } => {
                let report = history::pass(runner, object, selection, self.settings.settle_lag, stop).await?;
                Ok(Outcome { finished: report.finished, report: Report::History(report) })
            }
            Job::Calculated { object, min_age } => {
                let table = self.table(object).await?;
                reread::run(runner, &table, stop).await?;
                let min_age_ms = min_age.map(|age| i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
                let reserve = self.settings.calculated_reserve_percent;
                let report = calculated::sweep(runner, &table, min_age_ms, reserve, stop).await?;
                // A sweep held for the budget is not cut short: its next run continues it.
                Ok(until_stopped(Report::Calculated(report)))
            }
            Job::Webhooks { objects, history } => {
                let mut tables = Vec::new();
                for object in objects {
                    match self.table(object).await {
                        Ok(table) => tables.push(table),
                        // Its events are dropped; CDC catches its changes once it prepares.
                        Err(e) => {
                            tracing::warn!(table = %object.table, error = %e, "webhook events of this object wait for CDC")
                        }
                    }
                }
                let sources = self.association_sources(objects).await?;
                let report = webhooks::apply(runner, &tables, &sources, history, stop).await?;
                Ok(until_stopped(Report::Webhooks(report)))
            }
            Job::Push { name, push, options } => {
                let summary = crate::push::run(runner, name, push, *options, progress, stop).await?;
                Ok(Outcome { finished: !summary.stopped, report: Report::Push(summary) })
            }
            Job::PushRecords { name, push, rows } => {
                let target = self.push_target(name, push, &rows.columns).await?;
                let pushed = crate::push::events::push_records(runner, name, &target, rows).await?;
                Ok(Outcome { finished: true, report: Report::PushRecords(pushed) })
            }
        }
    }

    /// The prepared tables of `source`'s objects that have calculated properties, for the
    /// re-read around the edges an association pass reads. A table that cannot be prepared now
    /// (a scope its properties need, say) is left out with a warning: its own streams report
    /// the failure, and its calculated properties wait for their sweep.
    async fn calculated_tables(&self, source: &associations::Source) -> Vec<PreparedTable> {
        let mut tables = Vec::new();
        for object in std::iter::once(&source.from).chain(&source.targets) {
            match self.table(object).await {
                Ok(table) if !table.calculated.is_empty() => tables.push(table),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(table = %object.table, error = %e, "calculated properties around association changes wait for their sweep");
                }
            }
        }
        tables
    }

    /// Runs (or resumes) a backfill, then the re-read of columns added meanwhile; keeps
    /// `hsync_backfill_progress_ratio` current when it counted the records.
    async fn backfill(
        &self,
        object: &ObjectRef,
        mode: Mode,
        restart: bool,
        stop: &CancellationToken,
        progress: &dyn Progress,
    ) -> Result<Outcome, Error> {
        let runner = &self.runner;
        let name = &object.table;
        let table = self.table(object).await?;
        if restart {
            for stream in [StreamId::backfill(name), StreamId::cdc(name), StreamId::reread(name)] {
                runner.state.reset_checkpoint(&stream).await?;
            }
            tracing::info!(table = %name, "backfill restarted from the first id");
            // The re-read forgotten above is moot: the backfill copies every column.
        }
        let gauge = metrics::gauge!("hsync_backfill_progress_ratio", "object" => name.clone());
        let saved = crate::stream::state::load::<BackfillState>(&runner.state, &StreamId::backfill(name)).await?;
        let done_before = match (saved, mode) {
            (Some(BackfillState::Done { .. }), _) => {
                gauge.set(1.0);
                None
            }
            (Some(BackfillState::Running { rows, .. }), Mode::Resume) => Some(u64::try_from(rows).unwrap_or(0)),
            // A fresh backfill over an interrupted one refuses to start (see backfill::run).
            (Some(BackfillState::Running { .. }), Mode::Fresh) => None,
            (None, _) => Some(0),
        };
        let mut copied = done_before.unwrap_or(0);
        let mut total = None;
        // A type without search has no count short of listing it all: its progress shows rows only.
        let countable = object.read_path() == ReadPath::Search;
        if let Some(done) = done_before.filter(|_| progress.wants_total() && countable) {
            let counted = runner.client.count(&object.api_name).await?.max(done);
            gauge.set(share(done, counted));
            progress.start(name, counted, done);
            total = Some(counted);
        }
        let settings = &self.settings;
        let report = backfill::run(runner, &table, mode, settings.fetch, settings.concurrency, stop, |rows| {
            copied += rows;
            if let Some(total) = total {
                gauge.set(share(copied, total));
            }
            progress.advance(rows);
        })
        .await;
        progress.end();
        let report = report?;
        if report.finished {
            gauge.set(1.0);
            reread::run(runner, &table, stop).await?;
        }
        Ok(Outcome { finished: report.finished && !stop.is_cancelled(), report: Report::Backfill(report) })
    }

    /// The object's prepared table: the one prepared by an earlier job when it is recent
    /// enough, else prepared afresh.
    pub async fn table(&self, object: &ObjectRef) -> Result<PreparedTable, Error> {
        let cached = self.lock_tables().get(&object.table).cloned();
        match cached {
            Some((table, at)) if at.elapsed() < self.settings.schema_max_age => Ok(table),
            _ => self.refresh_table(object).await,
        }
    }

    /// Prepares the object's table afresh: reads its properties, applies the drift and
    /// schedules a re-read of the columns it gained.
    pub async fn refresh_table(&self, object: &ObjectRef) -> Result<PreparedTable, Error> {
        let planned = self.runner.plan_schema(object).await?;
        self.apply_plan(object, planned).await
    }

    /// Applies a plan from [`Runner::plan_schema`] (see [`Runner::apply_planned`]) and
    /// schedules a re-read of the columns the table gained, so rows already copied get their
    /// values too.
    pub async fn apply_plan(&self, object: &ObjectRef, planned: PlannedSchema) -> Result<PreparedTable, Error> {
        let table = self.runner.apply_planned(object, planned).await?;
        reread::schedule(&self.runner, &table).await?;
        self.lock_tables().insert(object.table.clone(), (table.clone(), Instant::now()));
        Ok(table)
    }

    /// The target of records pushed to `name` with `columns`: the one made earlier when it
    /// is recent enough and for the same columns, else made afresh ([`crate::push::Target::ready`]).
    async fn push_target(
        &self,
        name: &str,
        push: &crate::config::PushConfig,
        columns: &[String],
    ) -> Result<Arc<crate::push::Target>, Error> {
        let cached = self.push_targets.lock().unwrap_or_else(PoisonError::into_inner).get(name).cloned();
        if let Some((made_for, at, target)) = cached {
            if made_for == columns && at.elapsed() < self.settings.schema_max_age {
                return Ok(target);
            }
        }
        let target = Arc::new(crate::push::Target::ready(&self.runner.client, push, columns).await?);
        self.push_targets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), (columns.to_vec(), Instant::now(), Arc::clone(&target)));
        Ok(target)
    }

    fn forget_table(&self, table: &str) {
        self.lock_tables().remove(table);
    }

    fn lock_tables(&self) -> std::sync::MutexGuard<'_, HashMap<String, (PreparedTable, Instant)>> {
        // The map holds no invariant a panicking holder could break.
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The association sources among `configured` (the pairs HubSpot defines, each stored
    /// from the side listed first), read from HubSpot once.
    pub async fn association_sources(&self, configured: &[ObjectRef]) -> Result<Vec<associations::Source>, Error> {
        let cached = self.sources.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(sources) = cached {
            return Ok(sources);
        }
        let pairs = associations::defined_pairs(&self.runner.client, configured).await?;
        let sources = associations::sources(&pairs);
        *self.sources.lock().unwrap_or_else(PoisonError::into_inner) = Some(sources.clone());
        Ok(sources)
    }
}

/// The object a job prepares a table for.
fn job_object(job: &Job) -> Option<&ObjectRef> {
    match job {
        Job::Schema(object)
        | Job::Backfill { object, .. }
        | Job::Cdc(object)
        | Job::Deletes(object)
        | Job::Calculated { object, .. } => Some(object),
        Job::Associations { .. }
        | Job::Dimensions(_)
        | Job::History { .. }
        | Job::Webhooks { .. }
        | Job::Push { .. }
        | Job::PushRecords { .. } => None,
    }
}

fn share(done: u64, total: u64) -> f64 {
    (done as f64 / total.max(1) as f64).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contacts() -> ObjectRef {
        ObjectRef::of(crate::hubspot::catalogue::find("contacts").expect("contacts are in the catalogue"))
    }

    #[test]
    fn jobs_record_their_runs_under_the_stream_they_advance() {
        let object = contacts();
        assert_eq!(Job::Cdc(object.clone()).stream(), StreamId::cdc("contacts"));
        assert_eq!(
            Job::Backfill { object: object.clone(), mode: Mode::Resume, restart: false }.stream(),
            StreamId::backfill("contacts")
        );
        assert_eq!(Job::Schema(object.clone()).name(), "schema:contacts");
        let source = associations::Source { from: object, targets: Vec::new() };
        let sweep = Job::Associations { source: source.clone(), sweep: true };
        assert_eq!(
            (sweep.stream(), sweep.name()),
            (StreamId::associations("contacts"), "associations-sweep:contacts".to_owned())
        );
        assert_eq!(Job::Associations { source, sweep: false }.name(), "associations:contacts");
        assert_eq!(Job::Dimensions(Vec::new()).name(), "dimensions:owners_pipelines");
    }

    #[test]
    fn progress_is_a_share_that_never_passes_one() {
        assert_eq!(share(0, 0), 0.0);
        assert_eq!(share(50, 200), 0.25);
        assert_eq!(share(300, 200), 1.0);
    }
}
