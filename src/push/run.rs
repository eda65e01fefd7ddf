//! One push run, in order: read the source, resolve the object and its property definitions,
//! check and plan every row, then per batch: write (unless a dry run), record each row's outcome
//! in `push_results` with the checkpoint, report progress. See the module docs of
//! [`crate::push`].

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::associate::{Link, Targets, OWNER};
use super::plan::{batches, digest, plan_rows, tally, Planned, PlannedRow, RunningDigest};
use super::validate::{Checked, Rules, RECORD_ID};
use super::{source, Error};
use crate::config::PushConfig;
use crate::destination::Destination;
use crate::error::{Classify, ErrorClass};
use crate::hubspot::{self, HubSpotClient, ObjectRef, WriteInput, WriteResult};
use crate::job::Progress;
use crate::schema::dimension::{build_dimension_batch, PUSH_RESULTS};
use crate::state::{Checkpoint, StateStore, StreamId};
use crate::stream::runner::Runner;

/// How to run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Check and plan only: nothing is written to HubSpot or the destination.
    pub dry_run: bool,
    /// Start a new run even when the last one did not finish.
    pub restart: bool,
}

/// Where a push job stands (the `push:<name>` checkpoint).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushState {
    /// `running` until every row is recorded, then `done`.
    pub phase: String,
    pub run_id: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    /// Source rows whose outcome is recorded, from the first.
    pub rows: i64,
    /// Rows recorded by every run of the job: the checkpoint's position, which only grows.
    pub total_rows: i64,
    /// [`digest`] of those rows, to resume only on the same source.
    pub digest: String,
    /// Outcomes so far, by name (`created`, `updated`, `rejected`, `failed`).
    pub outcomes: BTreeMap<String, i64>,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub run_id: String,
    pub object: String,
    /// Rows in the source.
    pub rows: usize,
    /// Rows an earlier, unfinished run of the same source had recorded (skipped).
    pub resumed_after: usize,
    /// Outcomes of the whole run (a resumed run's earlier rows included).
    pub outcomes: BTreeMap<String, i64>,
    /// Batch writes sent.
    pub calls: u64,
    pub dry_run: bool,
    /// Whether a stop signal cut the run short (the next run resumes it).
    pub stopped: bool,
    /// The first refused or failed rows: (row number, outcome, reason).
    pub examples: Vec<(i64, String, String)>,
}

/// Batches written at once: with HubSpot's latency a push waits on answers, not on its limits
/// (which the client's rate buckets and daily budget still enforce).
const BATCHES_IN_FLIGHT: usize = 4;

/// Examples kept for the terminal.
const EXAMPLES: usize = 20;

/// What a push writes through: the client, the object, its checks and associations. Made
/// once a run by [`Target::ready`]; shared by [`run`] and the daemon's push endpoint.
#[derive(Debug)]
pub struct Target {
    pub object: ObjectRef,
    pub rules: Rules,
    pub links: Vec<Link>,
    pub skip_unchanged: bool,
    region: Option<phonenumber::country::Id>,
}

impl Target {
    /// Resolves the object, reads its property definitions and makes every association ready
    /// for a source with `columns`: a configuration HubSpot cannot take stops here, before
    /// any row is sent.
    pub async fn ready(client: &HubSpotClient, push: &PushConfig, columns: &[String]) -> Result<Target, Error> {
        let object = hubspot::resolve_objects(client, std::slice::from_ref(&push.object))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| crate::stream::Error::Bug("resolving one object gave none".into()))?;
        let defs = client.properties(&object.api_name, false).await?;
        let region = push.default_region.as_deref().and_then(|r| r.parse().ok());
        let not_written: BTreeSet<String> = push.associations.values().map(|a| a.column.clone()).collect();
        let rules = Rules::new(&object.table, &defs, columns, &push.columns, &push.id_property, &not_written, region)?;
        let mut links = Vec::with_capacity(push.associations.len());
        for (name, config) in &push.associations {
            links.push(Link::ready(client, name, config, &object, columns).await?);
        }
        Ok(Target { object, rules, links, skip_unchanged: push.skip_unchanged, region })
    }

    /// Checks and plans `rows`, with each row's association keys.
    pub fn plan(&self, rows: &[Vec<Option<String>>]) -> Vec<PlannedRow> {
        let mut planned = plan_rows(&self.rules, rows);
        if !self.links.is_empty() {
            for (row, source) in planned.iter_mut().zip(rows) {
                row.link_keys = self.links.iter().map(|l| l.keys(source, self.region)).collect();
            }
        }
        planned
    }
}

/// Runs (or resumes) the push `name`, telling `progress` about the rows recorded.
pub async fn run<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    name: &str,
    push: &PushConfig,
    options: Options,
    progress: &dyn Progress,
    stop: &CancellationToken,
) -> Result<Summary, Error> {
    let rows = source::read(push, &runner.dest).await?;
    if rows.rows.is_empty() {
        let object = push.object.clone();
        return Ok(Summary { object, dry_run: options.dry_run, ..Summary::default() });
    }
    let target = Target::ready(&runner.client, push, &rows.columns).await?;
    let mut summary = Summary {
        object: target.object.table.clone(),
        rows: rows.rows.len(),
        dry_run: options.dry_run,
        ..Summary::default()
    };
    let planned = target.plan(&rows.rows);
    drop(rows);

    let stream = StreamId::push(name);
    let now_ms = runner.clock.now().timestamp_millis();
    let previous = crate::stream::state::load::<PushState>(&runner.state, &stream).await?;
    let mut state = match previous {
        Some(p)
            if !options.restart
                && p.phase == "running"
                && (p.rows as usize) <= planned.len()
                && digest(&planned, p.rows as usize) == p.digest =>
        {
            summary.resumed_after = p.rows as usize;
            p
        }
        other => PushState {
            phase: "running".to_owned(),
            run_id: uuid::Uuid::new_v4().to_string(),
            started_at_ms: now_ms,
            total_rows: other.map_or(0, |p| p.total_rows),
            ..PushState::default()
        },
    };
    summary.run_id.clone_from(&state.run_id);
    progress.start(&target.object.table, planned.len() as u64, summary.resumed_after as u64);
    let todo = &planned[summary.resumed_after..];
    let mut running = RunningDigest::default();
    running.add(&planned[..summary.resumed_after]);
    // Batches are written up to BATCHES_IN_FLIGHT at a time (each step is idempotent) and
    // recorded strictly in order, so the checkpoint only ever covers rows whose batches and
    // every batch before them are recorded.
    let (client, shared) = (&runner.client, &target);
    let written = futures_util::stream::iter(batches(todo))
        .map(|range| {
            let rows = &todo[range];
            async move {
                if options.dry_run {
                    Ok((rows, rows.iter().map(dry_outcome).collect::<Vec<_>>(), 0))
                } else {
                    write_batch(client, shared, rows).await.map(|(outcomes, calls)| (rows, outcomes, calls))
                }
            }
        })
        .buffered(BATCHES_IN_FLIGHT);
    let mut written = std::pin::pin!(written);
    loop {
        let next = tokio::select! {
            biased;
            () = stop.cancelled() => {
                summary.stopped = true;
                break;
            }
            next = written.next() => next,
        };
        let Some(step) = next else { break };
        let (rows, outcomes, calls) = step?;
        summary.calls += calls;
        for (row, outcome) in rows.iter().zip(&outcomes) {
            *state.outcomes.entry(outcome.name.to_owned()).or_default() += 1;
            if outcome.unassociated {
                *state.outcomes.entry(UNASSOCIATED.to_owned()).or_default() += 1;
            }
            let noteworthy = matches!(outcome.name, "rejected" | "failed") || outcome.unassociated;
            if noteworthy && summary.examples.len() < EXAMPLES {
                summary.examples.push((row.row_number, outcome.name.to_owned(), outcome.reason.clone()));
            }
        }
        let done = rows.last().map_or(0, |r| r.row_number);
        state.rows = done;
        state.total_rows += rows.len() as i64;
        running.add(rows);
        if !options.dry_run {
            state.digest = running.hex();
            if done as usize == planned.len() {
                state.phase = "done".to_owned();
                state.finished_at_ms = runner.clock.now().timestamp_millis();
            }
            record(runner, name, &target.object.table, &state, rows, &outcomes, &stream).await?;
        }
        progress.advance(rows.len() as u64);
    }
    progress.end();
    summary.outcomes =
        if options.dry_run { tally(planned.iter().map(|r| dry_outcome(r).name)) } else { state.outcomes.clone() };
    metrics::counter!("hsync_push_calls_total", "push" => name.to_owned()).increment(summary.calls);
    Ok(summary)
}

/// The outcome count of rows written without one of their associations (also counted under
/// their own outcome).
pub const UNASSOCIATED: &str = "unassociated";

/// One row's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// `created`, `updated`, `unchanged`, `rejected`, `failed` (`to_send` in a dry run).
    pub name: &'static str,
    /// Why it was rejected or failed, and any association not made; never a value.
    pub reason: String,
    pub record_id: Option<String>,
    pub correlation_id: Option<String>,
    /// Written, but an association found nothing to associate with or failed.
    pub unassociated: bool,
}

impl Outcome {
    fn of(name: &'static str, reason: String) -> Outcome {
        Outcome { name, reason, record_id: None, correlation_id: None, unassociated: false }
    }

    fn note(&mut self, note: String) {
        if !self.reason.is_empty() {
            self.reason.push_str("; ");
        }
        self.reason.push_str(&note);
        self.unassociated = true;
    }
}

fn rejected(row: &PlannedRow) -> Option<Outcome> {
    let Planned::Rejected(problems) = &row.planned else { return None };
    let reasons: Vec<String> = problems.iter().map(|p| format!("{}: {}", p.property, p.reason)).collect();
    Some(Outcome::of("rejected", reasons.join("; ")))
}

fn dry_outcome(row: &PlannedRow) -> Outcome {
    rejected(row).unwrap_or_else(|| Outcome::of("to_send", String::new()))
}

/// Writes one batch (at most [`hubspot::WRITE_BATCH_MAX`] rows to send) and returns every
/// row's outcome and the calls made, in order: each association finds its records (a row
/// whose required association finds none is rejected, unsent); with `skip_unchanged` the
/// records are read and rows HubSpot already holds are left out; the rest are written in one
/// call; then every written or unchanged record is associated. HubSpot refusing the whole
/// write for its data fails each of its rows with the error; anything retrying may fix, or
/// that concerns the whole push, stops the run (every step is idempotent, so the rerun
/// repeats the batch without harm).
pub async fn write_batch(
    client: &HubSpotClient,
    target: &Target,
    rows: &[PlannedRow],
) -> Result<(Vec<Outcome>, u64), Error> {
    let mut calls = 0;
    let mut outcomes: Vec<Option<Outcome>> = rows.iter().map(rejected).collect();
    let mut sending: Vec<Option<Checked>> = rows
        .iter()
        .map(|r| match &r.planned {
            Planned::Send(checked) => Some(checked.clone()),
            Planned::Rejected(_) => None,
        })
        .collect();

    // Associations: find each link's records for the rows to send.
    let mut targets: Vec<Vec<Targets>> = vec![Vec::new(); rows.len()];
    for (l, link) in target.links.iter().enumerate() {
        let keys: BTreeSet<String> = rows
            .iter()
            .zip(&sending)
            .filter(|(_, send)| send.is_some())
            .flat_map(|(row, _)| row.link_keys.get(l).into_iter().flatten().cloned())
            .collect();
        let (found, made) = link.find(client, &keys).await?;
        calls += made;
        for (i, row) in rows.iter().enumerate() {
            let Some(checked) = sending[i].as_mut() else { continue };
            let given = link.targets(row.link_keys.get(l).map_or(&[][..], Vec::as_slice), &found);
            if let Targets::Found(found) = &given {
                if link.owner && !checked.properties.contains_key(OWNER) {
                    if let Some(owner) = found.iter().find_map(|f| f.owner.clone()) {
                        checked.properties.insert(OWNER.to_owned(), owner);
                    }
                }
            }
            targets[i].push(given);
        }
    }
    // A row is written only when one of its required associations found a record (a ticket's
    // contact by its email or by its phone number).
    if target.links.iter().any(|l| l.required) {
        for i in 0..rows.len() {
            if sending[i].is_none() {
                continue;
            }
            let required = || target.links.iter().zip(&targets[i]).filter(|(l, _)| l.required);
            if required().any(|(_, t)| matches!(t, Targets::Found(_))) {
                continue;
            }
            let why: Vec<String> = required()
                .filter_map(|(l, t)| match t {
                    Targets::None(why) => Some(format!("{}: {why}", l.name)),
                    Targets::Found(_) => None,
                })
                .collect();
            outcomes[i] =
                Some(Outcome::of("rejected", format!("{}; the record is not written without it", why.join("; "))));
            sending[i] = None;
        }
    }

    // Records HubSpot already holds as the row has them are left alone.
    let by_record_id = target.rules.by_record_id();
    if target.skip_unchanged && sending.iter().any(Option::is_some) {
        let keys: Vec<String> = sending.iter().flatten().map(|c| c.key.clone()).collect();
        let wanted = target.rules.properties();
        let api = &target.object.api_name;
        let read = if by_record_id {
            client.batch_read(api, &keys, &wanted, false).await?
        } else {
            client.batch_read_by(api, target.rules.id_property(), &keys, &wanted).await?
        };
        calls += keys.len().div_ceil(hubspot::BATCH_READ_MAX) as u64;
        let stored: HashMap<String, (String, BTreeMap<String, Option<String>>)> = read
            .found
            .into_iter()
            .map(|record| {
                let key = if by_record_id {
                    record.id.clone()
                } else {
                    let value = record.properties.get(target.rules.id_property()).cloned().flatten();
                    value.unwrap_or_default().to_lowercase()
                };
                let values: BTreeMap<String, Option<String>> =
                    record.properties.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                (key, (record.id, values))
            })
            .collect();
        for i in 0..rows.len() {
            let Some(checked) = &sending[i] else { continue };
            let lookup = if by_record_id { checked.key.clone() } else { checked.key.to_lowercase() };
            if let Some((id, values)) = stored.get(&lookup) {
                if target.rules.unchanged(checked, values) {
                    let mut same = Outcome::of("unchanged", String::new());
                    same.record_id = Some(id.clone());
                    outcomes[i] = Some(same);
                    sending[i] = None;
                }
            }
        }
    }

    // The write.
    let inputs: Vec<(usize, WriteInput)> = sending
        .iter()
        .enumerate()
        .filter_map(|(i, checked)| {
            let checked = checked.as_ref()?;
            let mut properties = checked.properties.clone();
            // The record id is the input's id, never a property to write.
            let id = if by_record_id { properties.remove(RECORD_ID).unwrap_or_default() } else { checked.key.clone() };
            Some((i, WriteInput { trace_id: rows[i].row_number.to_string(), id, properties }))
        })
        .collect();
    if !inputs.is_empty() {
        let id_property = (!by_record_id).then(|| target.rules.id_property());
        let sent: Vec<WriteInput> = inputs.iter().map(|(_, input)| input.clone()).collect();
        calls += 1;
        match client.batch_write(&target.object.api_name, id_property, &sent).await {
            Ok(results) => {
                for ((i, _), result) in inputs.iter().zip(results) {
                    outcomes[*i] = Some(match result {
                        WriteResult::Written { record_id, created } => Outcome {
                            record_id: Some(record_id),
                            ..Outcome::of(if created == Some(true) { "created" } else { "updated" }, String::new())
                        },
                        WriteResult::Refused { category, message } => {
                            Outcome::of("failed", format!("{category}: {message}"))
                        }
                    });
                }
            }
            Err(e)
                if e.class() == ErrorClass::Data || matches!(e, hubspot::Error::Rejected { status: 400..=499, .. }) =>
            {
                let correlation_id = match &e {
                    hubspot::Error::Rejected { correlation_id, .. } => correlation_id.clone(),
                    _ => None,
                };
                tracing::warn!(error = %e, rows = inputs.len(), "HubSpot refused a whole push batch; its rows are reported failed");
                for (i, _) in &inputs {
                    outcomes[*i] = Some(Outcome {
                        correlation_id: correlation_id.clone(),
                        ..Outcome::of("failed", e.to_string())
                    });
                }
            }
            Err(e) => return Err(e.into()),
        }
    }

    // Associations of every record written or left unchanged.
    let mut outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Outcome::of("failed", "no result for this row".to_owned())))
        .collect();
    for (l, link) in target.links.iter().enumerate() {
        let mut pairs = Vec::new();
        let mut paired = Vec::new();
        for (i, outcome) in outcomes.iter_mut().enumerate() {
            let (Some(record_id), Some(given)) = (&outcome.record_id, targets[i].get(l)) else { continue };
            match given {
                Targets::Found(found) => {
                    pairs.extend(found.iter().map(|f| (record_id.clone(), f.id.clone())));
                    paired.push(i);
                }
                // A required association another one satisfied is no loss.
                Targets::None(_) if link.required => {}
                Targets::None(why) => outcome.note(format!("{}: {why}; not associated", link.name)),
            }
        }
        if pairs.is_empty() {
            continue;
        }
        calls += pairs.len().div_ceil(hubspot::ASSOCIATE_BATCH_MAX) as u64;
        match link.associate(client, &target.object, &pairs).await {
            Ok(_) => {}
            Err(e)
                if e.class() == ErrorClass::Data || matches!(e, hubspot::Error::Rejected { status: 400..=499, .. }) =>
            {
                tracing::warn!(error = %e, association = %link.name, "HubSpot refused a push batch's associations");
                for i in paired {
                    outcomes[i].note(format!("{}: not associated ({e})", link.name));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((outcomes, calls))
}

/// Records the batch's outcomes in `push_results` with the checkpoint, in one transaction where
/// the destination holds the state.
pub(super) async fn record<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    name: &str,
    table: &str,
    state: &PushState,
    rows: &[PlannedRow],
    outcomes: &[Outcome],
    stream: &StreamId,
) -> Result<(), Error> {
    let at = runner.clock.now().to_rfc3339();
    let values: Vec<Vec<Option<String>>> = rows
        .iter()
        .zip(outcomes)
        .map(|(row, outcome)| {
            vec![
                Some(name.to_owned()),
                Some(state.run_id.clone()),
                Some(row.row_number.to_string()),
                Some(row.row_number.to_string()),
                Some(table.to_owned()),
                Some(row.id_value.clone()).filter(|v| !v.is_empty()),
                Some(outcome.name.to_owned()),
                Some(outcome.reason.clone()).filter(|r| !r.is_empty()),
                outcome.record_id.clone(),
                outcome.correlation_id.clone(),
                Some(at.clone()),
            ]
        })
        .collect();
    let (batch, rejects) = build_dimension_batch(&PUSH_RESULTS, &values);
    let checkpoint = Checkpoint {
        stream: stream.clone(),
        position: state.total_rows,
        state: serde_json::to_value(state).expect("invariant: push state serializes"),
    };
    runner.write_dimensions(&[batch], &rejects, &checkpoint).await?;
    Ok(())
}
