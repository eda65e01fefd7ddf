//! One push run, in order: read the source, resolve the object and its property definitions,
//! check and plan every row, then per batch: write (unless a dry run), record each row's outcome
//! in `push_results` with the checkpoint, report progress. See the module docs of
//! [`crate::push`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::plan::{batches, digest, plan_rows, tally, Planned, PlannedRow};
use super::validate::{Rules, RECORD_ID};
use super::{source, Error};
use crate::config::PushConfig;
use crate::destination::Destination;
use crate::error::{Classify, ErrorClass};
use crate::hubspot::{self, WriteInput, WriteResult};
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

/// Examples kept for the terminal.
const EXAMPLES: usize = 20;

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
    let object = hubspot::resolve_objects(&runner.client, std::slice::from_ref(&push.object))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| crate::stream::Error::Bug("resolving one object gave none".into()))?;
    let mut summary =
        Summary { object: object.table.clone(), rows: rows.rows.len(), dry_run: options.dry_run, ..Summary::default() };
    if rows.rows.is_empty() {
        return Ok(summary);
    }
    let defs = runner.client.properties(&object.api_name, false).await?;
    let region = push.default_region.as_deref().and_then(|r| r.parse().ok());
    let rules = Rules::new(&object.table, &defs, &rows.columns, &push.columns, &push.id_property, region)?;
    let planned = plan_rows(&rules, &rows.rows);
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
    progress.start(&object.table, planned.len() as u64, summary.resumed_after as u64);
    let todo = &planned[summary.resumed_after..];
    for range in batches(todo) {
        if stop.is_cancelled() {
            summary.stopped = true;
            break;
        }
        let rows = &todo[range];
        let outcomes = if options.dry_run {
            rows.iter().map(dry_outcome).collect()
        } else {
            let (outcomes, sent) = write(runner, &object.api_name, &rules, rows).await?;
            summary.calls += u64::from(sent);
            outcomes
        };
        for (row, outcome) in rows.iter().zip(&outcomes) {
            *state.outcomes.entry(outcome.name.to_owned()).or_default() += 1;
            if matches!(outcome.name, "rejected" | "failed") && summary.examples.len() < EXAMPLES {
                summary.examples.push((row.row_number, outcome.name.to_owned(), outcome.reason.clone()));
            }
        }
        let done = rows.last().map_or(0, |r| r.row_number);
        state.rows = done;
        state.total_rows += rows.len() as i64;
        if !options.dry_run {
            state.digest = digest(&planned, done as usize);
            if done as usize == planned.len() {
                state.phase = "done".to_owned();
                state.finished_at_ms = runner.clock.now().timestamp_millis();
            }
            record(runner, name, &object.table, &state, rows, &outcomes, &stream).await?;
        }
        progress.advance(rows.len() as u64);
    }
    progress.end();
    summary.outcomes =
        if options.dry_run { tally(planned.iter().map(|r| dry_outcome(r).name)) } else { state.outcomes.clone() };
    metrics::counter!("hsync_push_calls_total", "push" => name.to_owned()).increment(summary.calls);
    Ok(summary)
}

/// One row's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Outcome {
    name: &'static str,
    reason: String,
    record_id: Option<String>,
    correlation_id: Option<String>,
}

impl Outcome {
    fn of(name: &'static str, reason: String) -> Outcome {
        Outcome { name, reason, record_id: None, correlation_id: None }
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

/// Writes the batch's valid rows in one call; returns every row's outcome and the calls made
/// (0 or 1). HubSpot refusing the whole batch for its data fails each of its rows with the
/// error; anything retrying may fix, or that concerns the whole push, stops the run.
async fn write<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    api_name: &str,
    rules: &Rules,
    rows: &[PlannedRow],
) -> Result<(Vec<Outcome>, u8), Error> {
    let by_record_id = rules.by_record_id();
    let inputs: Vec<WriteInput> = rows
        .iter()
        .filter_map(|row| match &row.planned {
            Planned::Send(checked) => {
                let mut properties = checked.properties.clone();
                // The record id is the input's id, never a property to write.
                let id =
                    if by_record_id { properties.remove(RECORD_ID).unwrap_or_default() } else { checked.key.clone() };
                Some(WriteInput { trace_id: row.row_number.to_string(), id, properties })
            }
            Planned::Rejected(_) => None,
        })
        .collect();
    if inputs.is_empty() {
        return Ok((rows.iter().map(dry_outcome).collect(), 0));
    }
    let id_property = (!by_record_id).then(|| rules.id_property());
    let written = match runner.client.batch_write(api_name, id_property, &inputs).await {
        Ok(results) => Some(results),
        Err(e) if e.class() == ErrorClass::Data || matches!(e, hubspot::Error::Rejected { status: 400..=499, .. }) => {
            let correlation_id = match &e {
                hubspot::Error::Rejected { correlation_id, .. } => correlation_id.clone(),
                _ => None,
            };
            tracing::warn!(error = %e, rows = inputs.len(), "HubSpot refused a whole push batch; its rows are reported failed");
            let failed = Outcome { name: "failed", reason: e.to_string(), record_id: None, correlation_id };
            return Ok((rows.iter().map(|r| rejected(r).unwrap_or_else(|| failed.clone())).collect(), 1));
        }
        Err(e) => return Err(e.into()),
    };
    let mut results = written.into_iter().flatten();
    let outcomes = rows
        .iter()
        .map(|row| {
            if let Some(refused) = rejected(row) {
                return refused;
            }
            match results.next() {
                Some(WriteResult::Written { record_id, created }) => Outcome {
                    name: if created == Some(true) { "created" } else { "updated" },
                    reason: String::new(),
                    record_id: Some(record_id),
                    correlation_id: None,
                },
                Some(WriteResult::Refused { category, message }) => {
                    Outcome::of("failed", format!("{category}: {message}"))
                }
                None => Outcome::of("failed", "no result for this row".to_owned()),
            }
        })
        .collect();
    Ok((outcomes, 1))
}

/// Records the batch's outcomes in `push_results` with the checkpoint, in one transaction where
/// the destination holds the state.
async fn record<D: Destination, S: StateStore>(
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
