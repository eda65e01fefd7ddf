//! The leader's job table: which stream runs next, running it, and what its outcome means for
//! its next run. One job runs at a time (HubSpot's limits, not CPU, bound the work), so two runs
//! of one stream never overlap; each run is recorded in the run history like a CLI command's.
//!
//! Order: resolve the objects, then per object its schema check and backfill; once an object's
//! backfill is done its CDC and delete reconciles follow on their intervals, and once every
//! backfill is done the association polls and sweeps do too. The owners and pipelines refresh
//! runs right after setup and then on its own interval.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::live::{JobFailure, JobView, Live};
use super::schedule::{backoff, jittered};
use crate::config::Config;
use crate::destination::{AnyDestination, AnyStateStore};
use crate::error::{Classify, ErrorClass};
use crate::hubspot::{self, ObjectRef, SearchRequest};
use crate::state::StateStore;
use crate::stream::backfill::{self, Mode};
use crate::stream::runner::{PreparedTable, Runner};
use crate::stream::state::{
    associations_stream, backfill_stream, cdc_stream, deletes_stream, BackfillState, DIMENSIONS_STREAM,
};
use crate::stream::{associations, cdc, deletes, dimensions, reread, Error};

/// What a job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    /// Resolve the configured objects; everything else waits for it.
    Setup,
    /// Diff the object's properties, alter its table, re-read new columns.
    Schema(usize),
    Backfill(usize),
    Cdc(usize),
    Deletes(usize),
    /// Association edges of records changed since the last poll, per source object.
    Associations(usize),
    /// Every record's association edges, per source object.
    AssociationSweep(usize),
    /// The owners and pipelines tables, refreshed in full.
    Dimensions,
}

impl Work {
    /// Among jobs due at once, lower runs first.
    fn rank(self) -> u8 {
        match self {
            Work::Setup => 0,
            Work::Schema(_) => 1,
            Work::Backfill(_) => 2,
            Work::Cdc(_) => 3,
            Work::Deletes(_) => 4,
            Work::Associations(_) => 5,
            Work::AssociationSweep(_) => 6,
            Work::Dimensions => 7,
        }
    }
}

#[derive(Debug)]
struct Job {
    name: String,
    work: Work,
    interval: Duration,
    /// `None` while waiting for a backfill.
    due: Option<Instant>,
    waiting_for: Option<String>,
    failures: u32,
    last_success: Option<DateTime<Utc>>,
    last_failure: Option<JobFailure>,
}

/// How a run ended, for its job's next due time.
enum Ran {
    /// Done until its next interval; `rows` for the run history.
    Done { rows: u64 },
    /// Stopped early by the stop signal or a lost lease; rerun at once next time.
    Interrupted { rows: u64 },
}

/// The leader's scheduler.
pub(super) struct Scheduler<'a> {
    config: &'a Config,
    runner: Runner<AnyDestination, AnyStateStore>,
    live: &'a Live,
    objects: Vec<ObjectRef>,
    tables: HashMap<usize, PreparedTable>,
    sources: Option<Vec<associations::Source>>,
    jobs: Vec<Job>,
    rng: rand::rngs::ThreadRng,
}

impl<'a> Scheduler<'a> {
    pub(super) fn new(config: &'a Config, runner: Runner<AnyDestination, AnyStateStore>, live: &'a Live) -> Self {
        let mut scheduler = Scheduler {
            config,
            runner,
            live,
            objects: Vec::new(),
            tables: HashMap::new(),
            sources: None,
            jobs: Vec::new(),
            rng: rand::rng(),
        };
        scheduler.add(Work::Setup, "setup".to_owned(), Duration::ZERO, Some(Instant::now()));
        scheduler
    }

    fn add(&mut self, work: Work, name: String, interval: Duration, due: Option<Instant>) {
        self.jobs.push(Job {
            name,
            work,
            interval,
            due,
            waiting_for: None,
            failures: 0,
            last_success: None,
            last_failure: None,
        });
        self.publish(self.jobs.len() - 1, false);
    }

    /// Shows job `i` in `/status`.
    fn publish(&self, i: usize, running: bool) {
        let job = &self.jobs[i];
        let now = Instant::now();
        let wall = self.runner.clock.now();
        let next_run = job
            .due
            .filter(|_| !running)
            .map(|due| wall + chrono::Duration::from_std(due.saturating_duration_since(now)).unwrap_or_default());
        self.live.update_job(JobView {
            job: job.name.clone(),
            running,
            next_run,
            waiting_for: job.waiting_for.clone(),
            last_success: job.last_success,
            failures: job.failures,
            last_failure: job.last_failure.clone(),
        });
    }

    fn secs(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    /// Runs jobs until `leading` is cancelled (stop signal or lost lease).
    pub(super) async fn run(&mut self, leading: &CancellationToken) {
        while !leading.is_cancelled() {
            if let Some(until) = self.live.paused_until() {
                let wait = (until - self.runner.clock.now()).to_std().unwrap_or_default();
                tokio::select! {
                    () = leading.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                tracing::info!("the daily API budget was reset: streams resume");
                self.live.set_paused(None);
                continue;
            }
            let Some(i) = self.next_job() else {
                // Nothing is scheduled (cannot happen once set up); idle until stopped.
                leading.cancelled().await;
                return;
            };
            let due = self.jobs[i].due.unwrap_or_else(Instant::now);
            tokio::select! {
                () = leading.cancelled() => return,
                () = tokio::time::sleep_until(due) => {}
            }
            self.run_job(i, leading).await;
        }
    }

    fn next_job(&self) -> Option<usize> {
        (0..self.jobs.len())
            .filter(|&i| self.jobs[i].due.is_some())
            .min_by_key(|&i| (self.jobs[i].due, self.jobs[i].work.rank()))
    }

    async fn run_job(&mut self, i: usize, leading: &CancellationToken) {
        let name = self.jobs[i].name.clone();
        let work = self.jobs[i].work;
        self.publish(i, true);
        let run_id = match self.runner.state.start_run(&name, self.runner.clock.now()).await {
            Ok(id) => Some(id),
            Err(e) => {
                tracing::warn!(job = %name, error = %e, "could not record the start of the run");
                None
            }
        };
        tracing::debug!(job = %name, "job started");
        let outcome = self.execute(work, leading).await;
        if let Some(id) = run_id {
            let (status, rows, error) = match &outcome {
                Ok(Ran::Done { rows } | Ran::Interrupted { rows }) => ("ok", *rows, None),
                Err(e) => ("failed", 0, Some(e.to_string())),
            };
            let rows = i64::try_from(rows).unwrap_or(i64::MAX);
            let now = self.runner.clock.now();
            if let Err(e) = self.runner.state.finish_run(id, now, status, rows, error.as_deref()).await {
                tracing::warn!(job = %name, error = %e, "could not record the end of the run");
            }
        }
        let now = Instant::now();
        match outcome {
            Ok(Ran::Interrupted { .. }) => self.jobs[i].due = Some(now),
            Ok(Ran::Done { .. }) => {
                self.live.set_auth_error(None);
                let job = &mut self.jobs[i];
                job.failures = 0;
                job.last_success = Some(self.runner.clock.now());
                metrics::gauge!("hsync_stream_last_success_timestamp_seconds", "stream" => name.clone())
                    .set(self.runner.clock.now().timestamp() as f64);
                let interval = job.interval;
                let next = jittered(interval, self.config.daemon.jitter_percent, &mut self.rng);
                self.jobs[i].due = if interval.is_zero() { None } else { Some(now + next) };
                self.after_success(work);
            }
            Err(e) => self.after_failure(i, &e),
        }
        self.publish(i, false);
    }

    fn after_failure(&mut self, i: usize, e: &Error) {
        let name = self.jobs[i].name.clone();
        if let Error::HubSpot(hubspot::Error::BudgetExhausted { resets_at, .. }) = e {
            tracing::warn!(job = %name, resets_at = %resets_at, "daily API budget spent: every stream pauses until the reset");
            self.live.set_paused(Some(*resets_at));
            self.jobs[i].due = Some(Instant::now());
            return;
        }
        let class = e.class();
        metrics::counter!("hsync_errors_total", "stream" => name.clone(), "class" => class.to_string()).increment(1);
        if class == ErrorClass::Auth {
            self.live.set_auth_error(Some(e.to_string()));
        }
        let job = &mut self.jobs[i];
        job.failures += 1;
        job.last_failure = Some(JobFailure { at: self.runner.clock.now(), class, message: e.to_string() });
        let wait = jittered(backoff(class, job.failures), self.config.daemon.jitter_percent, &mut self.rng);
        job.due = Some(Instant::now() + wait);
        if class.is_retryable() {
            tracing::warn!(job = %name, class = %class, failures = job.failures, retry_in_s = wait.as_secs(), error = %e, "job failed; retrying");
        } else {
            tracing::error!(job = %name, class = %class, failures = job.failures, retry_in_s = wait.as_secs(), error = %e, "job failed; needs attention");
        }
    }

    /// Schedules what a successful run unlocks.
    fn after_success(&mut self, work: Work) {
        match work {
            Work::Setup => self.schedule_objects(),
            Work::Backfill(_) => self.release_waiting(),
            _ => {}
        }
    }

    /// After setup: per object its schema check and backfill, and the jobs that wait for it.
    fn schedule_objects(&mut self) {
        let d = &self.config.daemon;
        let (schema, cdc, deletes) = (d.schema_interval_secs, d.cdc_interval_secs, d.deletes_interval_secs);
        let (poll, sweep) = (d.associations_interval_secs, d.association_sweep_interval_secs);
        let now = Some(Instant::now());
        for i in 0..self.objects.len() {
            let table = self.objects[i].table.clone();
            self.add(Work::Schema(i), format!("schema:{table}"), Self::secs(schema), now);
            self.add(Work::Backfill(i), backfill_stream(&table), Duration::ZERO, now);
            self.add(Work::Cdc(i), cdc_stream(&table), Self::secs(cdc), None);
            self.add(Work::Deletes(i), deletes_stream(&table), Self::secs(deletes), None);
            self.add(Work::Associations(i), associations_stream(&table), Self::secs(poll), None);
            self.add(Work::AssociationSweep(i), format!("associations-sweep:{table}"), Self::secs(sweep), None);
        }
        // Owners and pipelines are small complete lists: refresh them at once, backfill or not.
        self.add(Work::Dimensions, DIMENSIONS_STREAM.to_owned(), Self::secs(d.dimensions_interval_secs), now);
        self.release_waiting();
    }

    /// Gives a due time to each job whose backfills are all done (and marks what the others
    /// wait for). Backfill jobs themselves find out on their first run that they are done.
    fn release_waiting(&mut self) {
        let pending: Vec<String> = self
            .jobs
            .iter()
            .filter(|j| matches!(j.work, Work::Backfill(_)) && j.due.is_some())
            .map(|j| j.name.clone())
            .collect();
        for i in 0..self.jobs.len() {
            let needs: Vec<String> = match self.jobs[i].work {
                Work::Cdc(o) | Work::Deletes(o) => {
                    let own = backfill_stream(&self.objects[o].table);
                    pending.iter().filter(|p| **p == own).cloned().collect()
                }
                Work::Associations(_) | Work::AssociationSweep(_) => pending.clone(),
                _ => continue,
            };
            let job = &mut self.jobs[i];
            if needs.is_empty() {
                job.waiting_for = None;
                job.due.get_or_insert_with(Instant::now);
            } else {
                job.waiting_for = Some(needs.join(", "));
                job.due = None;
            }
            self.publish(i, false);
        }
    }

    async fn table(&mut self, o: usize) -> Result<PreparedTable, Error> {
        if let Some(table) = self.tables.get(&o) {
            return Ok(table.clone());
        }
        self.refresh_schema(o).await
    }

    async fn refresh_schema(&mut self, o: usize) -> Result<PreparedTable, Error> {
        let table = self.runner.prepare(&self.objects[o]).await?;
        reread::schedule(&self.runner, &table).await?;
        self.tables.insert(o, table.clone());
        Ok(table)
    }

    async fn sources(&mut self) -> Result<Vec<associations::Source>, Error> {
        if let Some(sources) = &self.sources {
            return Ok(sources.clone());
        }
        let pairs = associations::defined_pairs(&self.runner.client, &self.objects).await?;
        let sources = associations::sources(&pairs);
        self.sources = Some(sources.clone());
        Ok(sources)
    }

    async fn execute(&mut self, work: Work, stop: &CancellationToken) -> Result<Ran, Error> {
        let settle = Duration::from_secs(self.config.sync.settle_lag_secs);
        let ran = |finished: bool, rows: u64| if finished { Ran::Done { rows } } else { Ran::Interrupted { rows } };
        match work {
            Work::Setup => {
                self.objects = hubspot::resolve_objects(&self.runner.client, &self.config.sync.objects).await?;
                tracing::info!(objects = self.objects.len(), "objects resolved");
                Ok(Ran::Done { rows: 0 })
            }
            Work::Schema(o) => {
                let table = self.refresh_schema(o).await?;
                let rows = reread::run(&self.runner, &table, stop).await?;
                Ok(ran(!stop.is_cancelled(), rows))
            }
            Work::Backfill(o) => {
                let table = self.table(o).await?;
                let rows = self.backfill(&table, stop).await?;
                Ok(rows)
            }
            Work::Cdc(o) => {
                let table = self.table(o).await?;
                reread::run(&self.runner, &table, stop).await?;
                let report = cdc::pass(&self.runner, &table, settle, stop).await?;
                Ok(ran(!stop.is_cancelled(), report.rows))
            }
            Work::Deletes(o) => {
                let table = self.table(o).await?;
                let report = deletes::reconcile(&self.runner, &table, stop).await?;
                Ok(ran(report.finished, report.written))
            }
            Work::Associations(o) | Work::AssociationSweep(o) => {
                let from = self.objects[o].table.clone();
                let Some(source) = self.sources().await?.into_iter().find(|s| s.from.table == from) else {
                    // HubSpot defines no pair stored from this object's side: nothing to poll.
                    return Ok(Ran::Done { rows: 0 });
                };
                let report = if work == Work::Associations(o) {
                    associations::poll_changes(&self.runner, &source, settle, stop).await?
                } else {
                    associations::sweep_all(&self.runner, &source, settle, stop).await?
                };
                let rows = report.pairs.iter().map(|p| p.upserted + p.tombstoned).sum();
                Ok(ran(report.finished, rows))
            }
            Work::Dimensions => {
                let report = dimensions::refresh(&self.runner).await?;
                Ok(Ran::Done { rows: report.rows() })
            }
        }
    }

    /// Runs (or resumes) a backfill, keeping `hsync_backfill_progress_ratio` current.
    async fn backfill(&mut self, table: &PreparedTable, stop: &CancellationToken) -> Result<Ran, Error> {
        let name = table.object.table.clone();
        let saved = self.runner.state.load_checkpoint(&backfill_stream(&name)).await?;
        let done_before = match saved.as_ref().and_then(BackfillState::from_checkpoint) {
            Some(BackfillState::Done { .. }) => {
                metrics::gauge!("hsync_backfill_progress_ratio", "object" => name).set(1.0);
                return Ok(Ran::Done { rows: 0 });
            }
            Some(BackfillState::Running { rows, .. }) => u64::try_from(rows).unwrap_or_default(),
            None => 0,
        };
        // One search for HubSpot's total, so progress shows as a share.
        let count = SearchRequest::new(Vec::new(), None, vec!["hs_object_id".to_owned()], 1, 0)?;
        let total = self.runner.client.search(&table.object.api_name, &count).await?.total.max(1);
        let gauge = metrics::gauge!("hsync_backfill_progress_ratio", "object" => name);
        let mut copied = done_before;
        gauge.set((copied as f64 / total as f64).min(1.0));
        let fetch = backfill::Fetch::ahead_if(self.config.sync.backfill_fetch_ahead);
        let report = backfill::run(&self.runner, table, Mode::Resume, fetch, stop, |rows| {
            copied += rows;
            gauge.set((copied as f64 / total as f64).min(1.0));
        })
        .await?;
        if report.finished {
            gauge.set(1.0);
            reread::run(&self.runner, table, stop).await?;
            Ok(Ran::Done { rows: report.rows })
        } else {
            Ok(Ran::Interrupted { rows: report.rows })
        }
    }
}
