//! Property history: every version of the properties `sync.history` names, read with
//! `propertiesWithHistory` through batch read (50 records a call, HubSpot's limit with
//! history; the names in the body, so no `414`) into `property_history` (layout and keys in
//! [`crate::schema::history`]).
//!
//! # Passes
//! A pass first fixes `through_ms`, the instant up to which every record of the object is in
//! the warehouse (the CDC watermark, see [`super::state::settled_through`]). It then reads the
//! history of every live record on the first load, and afterwards of the records whose stored
//! version was modified at or after the previous pass's `through_ms`: exactly what CDC wrote
//! since, so the cost follows the changes, not the table. Records go in ascending id, [`CHUNK`]
//! ids a commit: the versions and the checkpoint (the last id done) are written together, and
//! [`CHUNKS_IN_FLIGHT`] chunks are read at once (committed in order), so a stop or a `kill -9`
//! costs at most the chunks in flight (800 records, 16 calls). A record read twice (resumed chunk,
//! or modified after `through_ms` and read again by the next pass) writes the same version
//! keys, so nothing doubles.

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::runner::Runner;
use super::state::{load, settled_through, HistoryState};
use super::Error;
use crate::config::HistorySelection;
use crate::destination::Destination;
use crate::hubspot::model::BatchRead;
use crate::hubspot::{HubSpotClient, ObjectRef};
use crate::schema::dimension::{build_dimension_batch, PROPERTY_HISTORY};
use crate::schema::history::version_rows;
use crate::state::{Checkpoint, StateStore, StreamId};

/// Records per commit: four history batch reads.
pub const CHUNK: usize = 200;
/// Chunks read at once: sixteen batch reads in flight keep the general bucket (19 calls a
/// second on Professional) full at up to about 800 ms of HubSpot latency, while commits go in
/// id order.
pub const CHUNKS_IN_FLIGHT: usize = 4;

/// What a pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Records whose history was read.
    pub records: u64,
    /// Versions written (a version read again is written again, unchanged).
    pub versions: u64,
    /// Versions left out, recorded in `_hsync_rejects`.
    pub rejects: u64,
    /// The pass read every record it set out to; `false` when a stop cut it short.
    pub finished: bool,
}

/// The names `selection` stands for on `object`: for `"*"`, every property it has now (one
/// call).
pub async fn selected_properties(
    client: &HubSpotClient,
    object: &ObjectRef,
    selection: &HistorySelection,
) -> Result<Vec<String>, Error> {
    Ok(match selection {
        HistorySelection::Named(names) => names.clone(),
        HistorySelection::Every => {
            client.properties(&object.api_name, false).await?.into_iter().map(|p| p.name).collect()
        }
    })
}

/// Runs (or resumes) one pass over `object`'s history of `selection`; see the module docs.
pub async fn pass<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    object: &ObjectRef,
    selection: &HistorySelection,
    settle_lag: std::time::Duration,
    stop: &CancellationToken,
) -> Result<Report, Error> {
    let table = object.table.as_str();
    let properties = selected_properties(&runner.client, object, selection).await?;
    let now_ms = runner.clock.now().timestamp_millis();
    let (since_ms, through_ms, after_id, started_at_ms, mut versions) =
        match load::<HistoryState>(&runner.state, &StreamId::history(table)).await? {
            Some(HistoryState::Reading { since_ms, through_ms, after_id, started_at_ms, versions }) => {
                (since_ms, through_ms, after_id, started_at_ms, versions)
            }
            previous => {
                let since_ms = match previous {
                    Some(HistoryState::Current { through_ms, .. }) => Some(through_ms),
                    _ => None,
                };
                let settle_ms = settle_lag.as_millis() as i64;
                (since_ms, settled_through(&runner.state, table, settle_ms).await?, i64::MIN, now_ms, 0)
            }
        };
    let ids = match since_ms {
        None => runner.dest.live_ids(table).await?,
        Some(since) => runner.dest.ids_modified_since(table, since).await?,
    };
    let ids: Vec<i64> = ids.into_iter().filter(|id| *id > after_id).collect();
    let mut report = Report::default();
    // Chunks are read ahead, [`CHUNKS_IN_FLIGHT`] at once, and committed in id order. The reads
    // in flight are driven while this loop waits for the next one, not while it writes (a
    // spawned read would be, but the client's batch futures cannot be spawned).
    let client = &runner.client;
    let properties = &properties;
    let mut reads = futures_util::stream::iter(ids.chunks(CHUNK))
        .map(|chunk| async move {
            let asked: Vec<String> = chunk.iter().map(i64::to_string).collect();
            client.batch_read_history(&object.api_name, &asked, properties).await.map(|read| (chunk, read))
        })
        .buffered(CHUNKS_IN_FLIGHT);
    loop {
        let next = tokio::select! {
            _ = stop.cancelled() => return Ok(report),
            next = reads.next() => next,
        };
        let Some(read) = next else { break };
        let (chunk, read) = read?;
        if stop.is_cancelled() {
            return Ok(report);
        }
        let last = *chunk.last().expect("invariant: chunks are never empty");
        let (written, rejects) = write_read(runner, table, &read, |written| {
            versions += written as i64;
            HistoryState::Reading { since_ms, through_ms, after_id: last, started_at_ms, versions }.checkpoint(table)
        })
        .await?;
        report.records += chunk.len() as u64;
        report.versions += written;
        report.rejects += rejects;
    }
    let finished_at_ms = runner.clock.now().timestamp_millis();
    runner.commit(&HistoryState::Current { through_ms, finished_at_ms, versions }.checkpoint(table)).await?;
    report.finished = true;
    tracing::info!(
        object = table,
        records = report.records,
        versions = report.versions,
        rejects = report.rejects,
        "property history pass finished"
    );
    Ok(report)
}

/// Reads the history of `ids` of `object` (at most [`CHUNK`]) for `properties` and writes it
/// with `checkpoint`, outside any pass: for records the caller just merged, so their versions
/// arrive with them. Returns the versions written.
pub async fn write_versions<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    object: &ObjectRef,
    properties: &[String],
    ids: &[i64],
    checkpoint: &Checkpoint,
) -> Result<u64, Error> {
    let asked: Vec<String> = ids.iter().map(i64::to_string).collect();
    let read = runner.client.batch_read_history(&object.api_name, &asked, properties).await?;
    Ok(write_read(runner, &object.table, &read, |_| checkpoint.clone()).await?.0)
}

/// Writes the versions a history read found, and the values left out to `_hsync_rejects`, in
/// one transaction with the checkpoint `checkpoint` makes from the count of versions (alone
/// when there is nothing to write). Returns (versions, rejects).
async fn write_read<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &str,
    read: &BatchRead,
    checkpoint: impl FnOnce(u64) -> Checkpoint,
) -> Result<(u64, u64), Error> {
    let (rows, mut rejects) = version_rows(table, &read.found);
    let checkpoint = &checkpoint(rows.len() as u64);
    let (batch, more) = build_dimension_batch(&PROPERTY_HISTORY, &rows);
    rejects.extend(more);
    if rows.is_empty() && rejects.is_empty() {
        runner.commit(checkpoint).await?;
    } else {
        runner.write_dimensions(&[batch], &rejects, checkpoint).await?;
    }
    metrics::counter!("hsync_history_versions_total", "object" => table.to_owned()).increment(rows.len() as u64);
    Ok((rows.len() as u64, rejects.len() as u64))
}
