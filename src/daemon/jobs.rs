//! The leader's job table: which job runs next, and what its outcome means for its next run.
//! Running a job is [`Jobs::run`]'s, as for the CLI. One job runs at a time (HubSpot's limits,
//! not CPU, bound the work), so two runs of one stream never overlap.
//!
//! Order: resolve the objects, then per object its schema check and backfill; once an object's
//! backfill is done its CDC and delete reconciles, association polls and sweeps and its
//! calculated-property sweep follow on their intervals. The owners and pipelines refresh runs
//! right after setup and then on its own interval. With webhooks on, CDC polls on
//! `webhooks.cdc_interval_secs` while webhooks are healthy, and [`apply_webhooks`] applies
//! stored events beside the scheduler, so they never wait behind a long job.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::live::{JobFailure, JobView, Live};
use super::schedule::{backoff, jittered};
use crate::config::Config;
use crate::error::{Classify, ErrorClass};
use crate::hubspot::{self, ObjectRef, ReadPath};
use crate::job::{associations_job_name, Job as SyncJob, Jobs, Unwatched};
use crate::state::{StateStore, StreamId};
use crate::stream::backfill::Mode;
use crate::stream::Error;

/// How often (at least; the coalescing window when longer) the webhook applier looks for stored
/// events no arrival announced (stored while another instance led, or before a restart).
const WEBHOOK_SWEEP: Duration = Duration::from_secs(5);

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
    /// Property history of the records CDC wrote since the last pass, per object with history.
    History(usize),
    /// Continue or start the sweep of an object's calculated properties.
    Calculated(usize),
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
            Work::History(_) => 8,
            Work::Calculated(_) => 9,
        }
    }
}

/// A job in the table: its work and when it runs.
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

/// The leader's scheduler.
pub(super) struct Scheduler<'a> {
    config: &'a Config,
    runner: Arc<Jobs>,
    live: &'a Live,
    objects: Vec<ObjectRef>,
    jobs: Vec<Job>,
    rng: rand::rngs::ThreadRng,
}

impl<'a> Scheduler<'a> {
    pub(super) fn new(config: &'a Config, runner: Arc<Jobs>, live: &'a Live) -> Self {
        let mut scheduler = Scheduler { config, runner, live, objects: Vec::new(), jobs: Vec::new(), rng: rand::rng() };
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
        let wall = self.runner.runner.clock.now();
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
                let wait = (until - self.runner.runner.clock.now()).to_std().unwrap_or_default();
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

    /// The time to the job's next run after a success: CDC polls less often while webhooks
    /// carry the changes (it stays the safety net for events HubSpot never delivered).
    fn next_interval(&self, work: Work, interval: Duration) -> Duration {
        let w = &self.config.webhooks;
        let healthy = w.enabled
            && self
                .live
                .webhooks_healthy(chrono::Duration::seconds(i64::try_from(w.healthy_within_secs).unwrap_or(i64::MAX)));
        match work {
            Work::Cdc(o) if healthy && self.objects[o].read_path() == ReadPath::Search => {
                interval.max(Self::secs(w.cdc_interval_secs))
            }
            _ => interval,
        }
    }

    fn next_job(&self) -> Option<usize> {
        (0..self.jobs.len())
            .filter(|&i| self.jobs[i].due.is_some())
            .min_by_key(|&i| (self.jobs[i].due, self.jobs[i].work.rank()))
    }

    async fn run_job(&mut self, i: usize, leading: &CancellationToken) {
        let work = self.jobs[i].work;
        self.publish(i, true);
        let outcome = self.execute(work, leading).await;
        let now = Instant::now();
        match outcome {
            // Stopped early by the stop signal or a lost lease: rerun at once next time.
            Ok(false) => self.jobs[i].due = Some(now),
            Ok(true) => {
                self.live.set_auth_error(None);
                let job = &mut self.jobs[i];
                job.failures = 0;
                job.last_success = Some(self.runner.runner.clock.now());
                let interval = job.interval;
                let next =
                    jittered(self.next_interval(work, interval), self.config.daemon.jitter_percent, &mut self.rng);
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
        if class == ErrorClass::Auth {
            self.live.set_auth_error(Some(e.to_string()));
        }
        let job = &mut self.jobs[i];
        job.failures += 1;
        job.last_failure = Some(JobFailure { at: self.runner.runner.clock.now(), class, message: e.to_string() });
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
        let poll = d.associations_interval_secs;
        let now = Some(Instant::now());
        for i in 0..self.objects.len() {
            let table = self.objects[i].table.clone();
            self.add(Work::Schema(i), StreamId::schema(&table).to_string(), Self::secs(schema), now);
            self.add(Work::Backfill(i), StreamId::backfill(&table).to_string(), Duration::ZERO, now);
            let cdc = match self.objects[i].read_path() {
                ReadPath::Search => cdc,
                ReadPath::List => d.list_cdc_interval_secs,
            };
            self.add(Work::Cdc(i), StreamId::cdc(&table).to_string(), Self::secs(cdc), None);
            self.add(Work::Deletes(i), StreamId::deletes(&table).to_string(), Self::secs(deletes), None);
            self.add(Work::Associations(i), associations_job_name(&table, false), Self::secs(poll), None);
            let sweep = d.association_sweep_secs(&self.config.sync.objects[i]);
            self.add(Work::AssociationSweep(i), associations_job_name(&table, true), Self::secs(sweep), None);
            if self.config.sync.history_for(&self.objects[i]).is_some() {
                // History follows CDC: each pass reads the records CDC wrote since the last one.
                self.add(Work::History(i), StreamId::history(&table).to_string(), Self::secs(cdc), None);
            }
            // Hourly at most, so a sweep paused for the budget continues soon after the reset;
            // each run starts a new sweep only when the last one ended an interval ago.
            let calculated = Self::secs(d.calculated_interval_secs.min(3_600));
            self.add(Work::Calculated(i), StreamId::calculated(&table).to_string(), calculated, None);
        }
        // Owners and pipelines are small complete lists: refresh them at once, backfill or not.
        let dimensions = StreamId::dimensions().to_string();
        self.add(Work::Dimensions, dimensions, Self::secs(d.dimensions_interval_secs), now);
        self.release_waiting();
    }

    /// Gives a due time to each job whose backfills are all done (and marks what the others
    /// wait for). Backfill jobs themselves find out on their first run that they are done.
    fn release_waiting(&mut self) {
        // The objects whose backfill has yet to finish, with its job's name.
        let pending: Vec<(usize, String)> = self
            .jobs
            .iter()
            .filter(|j| j.due.is_some())
            .filter_map(|j| match j.work {
                Work::Backfill(o) => Some((o, j.name.clone())),
                _ => None,
            })
            .collect();
        for i in 0..self.jobs.len() {
            // Each job waits for its own object's backfill only: a pair whose target is not
            // backfilled yet (or cannot be, for a scope the token lacks) waits inside the
            // association job and is swept in full once it is ready, so one object's failing
            // backfill never holds back another object's streams.
            let needs: Vec<&str> = match self.jobs[i].work {
                Work::Cdc(own)
                | Work::Deletes(own)
                | Work::Associations(own)
                | Work::AssociationSweep(own)
                | Work::History(own)
                | Work::Calculated(own) => {
                    pending.iter().filter(|(o, _)| *o == own).map(|(_, name)| name.as_str()).collect()
                }
                _ => continue,
            };
            let waiting_for = (!needs.is_empty()).then(|| needs.join(", "));
            let job = &mut self.jobs[i];
            if waiting_for.is_none() {
                job.due.get_or_insert_with(Instant::now);
            } else {
                job.due = None;
            }
            job.waiting_for = waiting_for;
            self.publish(i, false);
        }
    }

    /// Runs the work; `Ok(false)` when a stop cut it short.
    async fn execute(&mut self, work: Work, stop: &CancellationToken) -> Result<bool, Error> {
        let object = |o: usize| self.objects[o].clone();
        let job = match work {
            Work::Setup => {
                let client = &self.runner.runner.client;
                self.objects = hubspot::resolve_objects(client, &self.config.sync.objects).await?;
                tracing::info!(objects = self.objects.len(), "objects resolved");
                return Ok(true);
            }
            Work::Schema(o) => SyncJob::Schema(object(o)),
            Work::Backfill(o) => SyncJob::Backfill { object: object(o), mode: Mode::Resume, restart: false },
            Work::Cdc(o) => SyncJob::Cdc(object(o)),
            Work::Deletes(o) => SyncJob::Deletes(object(o)),
            Work::Associations(o) | Work::AssociationSweep(o) => {
                let from = &self.objects[o].table;
                let sources = self.runner.association_sources(&self.objects).await?;
                let Some(source) = sources.into_iter().find(|s| s.from.table == *from) else {
                    // HubSpot defines no pair stored from this object's side: nothing to poll.
                    return Ok(true);
                };
                SyncJob::Associations { source, sweep: work == Work::AssociationSweep(o) }
            }
            Work::Dimensions => SyncJob::Dimensions(self.objects.clone()),
            Work::History(o) => {
                let Some(selection) = self.config.sync.history_for(&self.objects[o]) else { return Ok(true) };
                SyncJob::History { object: object(o), selection }
            }
            Work::Calculated(o) => {
                let min_age = Some(Self::secs(self.config.daemon.calculated_interval_secs));
                SyncJob::Calculated { object: object(o), min_age }
            }
        };
        // The backfill's progress gauge needs HubSpot's record count.
        let outcome = self.runner.run(&job, stop, &Unwatched { count: true }).await?;
        Ok(outcome.finished)
    }
}

/// Applies the webhook events the receiver stores, for as long as this instance leads
/// (`leading`): `webhooks.coalesce_ms` after an arrival wakes it, and every [`WEBHOOK_SWEEP`]
/// regardless. It runs beside the scheduler, not in its queue, so events never wait behind a
/// long backfill or sweep; the writes are the same guarded merges and flags, which tolerate
/// another stream writing the same rows. A failure is shown in `/status` (CDC then polls at
/// its usual interval) and retried with the class's backoff.
pub(super) async fn apply_webhooks(config: &Config, jobs: Arc<Jobs>, live: &Live, leading: &CancellationToken) {
    let window = Duration::from_millis(config.webhooks.coalesce_ms);
    let sweep = WEBHOOK_SWEEP.max(window);
    let mut objects: Option<Vec<ObjectRef>> = None;
    let mut failures = 0;
    // The receiver's counts as last folded into the checkpoint.
    let mut folded = crate::webhooks::Receipts::default();
    loop {
        // The generator is not `Send`: made and dropped before the await.
        let wait = if failures == 0 {
            sweep
        } else {
            jittered(backoff(ErrorClass::Transient, failures), 10, &mut rand::rng())
        };
        tokio::select! {
            () = leading.cancelled() => return fold_receipts(&jobs, live, &mut folded).await,
            () = live.webhook_arrivals.notified() => {
                tokio::select! {
                    () = leading.cancelled() => return fold_receipts(&jobs, live, &mut folded).await,
                    () = tokio::time::sleep(window) => {}
                }
            }
            () = tokio::time::sleep(wait) => {}
        }
        fold_receipts(&jobs, live, &mut folded).await;
        // A run only when events wait: the run history records each one.
        match jobs.runner.state.event_backlog().await {
            Ok(backlog) if backlog.pending == 0 && failures == 0 => continue,
            Ok(backlog) => {
                let oldest = backlog.oldest_received_at_ms.unwrap_or_default();
                let age = (live.clock.now().timestamp_millis() - oldest).max(0);
                metrics::gauge!("hsync_webhook_backlog_events").set(backlog.pending as f64);
                metrics::gauge!("hsync_webhook_backlog_age_seconds").set(age as f64 / 1_000.0);
            }
            Err(e) => {
                failures += 1;
                live.update_webhooks(|w| w.failing = true);
                tracing::warn!(error = %e, "webhook events wait: the state store does not answer");
                continue;
            }
        }
        let resolved = match &objects {
            Some(resolved) => resolved.clone(),
            None => match hubspot::resolve_objects(&jobs.runner.client, &config.sync.objects).await {
                Ok(resolved) => {
                    objects = Some(resolved.clone());
                    resolved
                }
                Err(e) => {
                    failures += 1;
                    live.update_webhooks(|w| w.failing = true);
                    tracing::warn!(error = %e, "webhook events wait: the objects cannot be resolved");
                    continue;
                }
            },
        };
        let history = resolved
            .iter()
            .filter_map(|object| Some((object.table.clone(), config.sync.history_for(object)?)))
            .collect();
        let job = SyncJob::Webhooks { objects: resolved, history };
        match jobs.run(&job, leading, &Unwatched::default()).await {
            Ok(outcome) => {
                failures = 0;
                if let crate::job::Report::Webhooks(r) = &outcome.report {
                    live.update_webhooks(|w| {
                        w.failing = false;
                        w.events_applied += r.events;
                        w.events_coalesced += r.coalesced;
                        w.lag_ms = r.lag_ms.or(w.lag_ms);
                    });
                }
            }
            Err(e) => {
                failures += 1;
                live.update_webhooks(|w| w.failing = true);
                tracing::warn!(class = %e.class(), failures, error = %e, "applying webhook events failed; retrying (CDC keeps polling)");
            }
        }
    }
}

/// Runs the records pushed to the daemon (`POST /push/<name>`), one request at a time, as
/// recorded runs beside the scheduler, until `leading` ends; a request still waiting then is
/// answered by its sender seeing the channel close.
pub(super) async fn run_pushes(
    jobs: &Jobs,
    mut pushed: tokio::sync::mpsc::Receiver<super::live::PushRequest>,
    leading: &CancellationToken,
) {
    loop {
        let (job, answer) = tokio::select! {
            () = leading.cancelled() => return,
            next = pushed.recv() => match next {
                Some(request) => request,
                None => return,
            },
        };
        let outcome = jobs.run(&job, leading, &Unwatched::default()).await;
        // The sender may have gone (its client hung up): the outcome is in push_results.
        let _ = answer.send(outcome);
    }
}

/// Adds what the receiver counted since `folded` to the `webhooks:events` checkpoint, so
/// `hsync status` shows it; on failure the counts wait for the next fold.
async fn fold_receipts(jobs: &Jobs, live: &Live, folded: &mut crate::webhooks::Receipts) {
    let received = live.webhook_receipts();
    let arrived = received.since(folded);
    if arrived.is_empty() {
        return;
    }
    match crate::stream::webhooks::record_receipts(&jobs.runner.state, &arrived).await {
        Ok(()) => *folded = received,
        Err(e) => tracing::warn!(error = %e, "the webhook receiver's counts wait: the state store does not answer"),
    }
}
