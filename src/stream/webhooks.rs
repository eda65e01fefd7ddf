//! Applying webhook events (see [`crate::webhooks`]): the events the receiver stored, oldest
//! first, [`BATCH`] at a time, folded into one plan ([`crate::webhooks::plan`]) so each record
//! is read once however many events name it. This module owns that pass and the
//! `webhooks:events` checkpoint (events applied, the latest `occurredAt` applied and how far
//! behind it was merged, which `hsync status` shows as the stream's lag, and the receiver's
//! counts, which the daemon folds in with [`record_receipts`]).
//!
//! - **Records named** (creation, property change, deletion, restore, merge, privacy deletion)
//!   are read back by id (batch read, 100 a call, every synced property) and merged through
//!   the guarded merge, as CDC writes them: a read older than the stored row never overwrites
//!   it, so duplicates and reordering are harmless. Ids not served live are read from the
//!   recycle bin (archived, flagged with their archive time), absorbed ids are flagged merged
//!   into the survivor that lists them, and ids found nowhere are flagged deleted, with the
//!   deletes reconcile's own decisions ([`super::deletes::plan`]).
//! - **Association changes** read the edges of the records named, for the pairs stored from
//!   their side, with the calculated properties around them ([`super::associations::poll`]).
//! - **Property history** (for objects `sync.history` names) is read for the live records read
//!   back, right after their merge, so their versions arrive with them; the history pass reads
//!   them again later (their cursor moved), which writes the same version keys.
//!
//! Events leave the queue only after everything they asked for is written, so a crash applies
//! them again (harmlessly). An event for a type hsync does not sync, or that cannot be read
//! back from the queue, is dropped with a count; a type whose reads fail for a reason retrying
//! cannot fix is logged and left to CDC, without holding back other types' events. CDC keeps
//! running as the safety net for events HubSpot never delivered.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::associations::{self, Around, Source};
use super::deletes::{self, Archived, Observed, MERGED_IDS};
use super::history;
use super::runner::{PreparedTable, Runner};
use super::{record_cursor_ms, Error};
use crate::config::HistorySelection;
use crate::destination::{Cell, Destination, IdFlags};
use crate::error::Classify;
use crate::hubspot::BATCH_READ_MAX;
use crate::schema::{hsync_columns, parse_instant_ms};
use crate::state::{Checkpoint, StateStore, StreamId};
use crate::webhooks::{plan, Event, Receipts};

/// Pending events applied together at most.
pub const BATCH: i64 = 1_000;

/// The stream's only phase: events are applied as they come.
const APPLYING: &str = "applying";

/// Where the application of events stands (the `webhooks:events` checkpoint).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhooksState {
    /// Always [`APPLYING`].
    pub phase: String,
    /// The latest `occurredAt` among the events applied (epoch ms).
    pub latest_event_ms: i64,
    /// From that event's `occurredAt` to its merge (ms): how far behind the events are.
    pub lag_ms: i64,
    /// Events applied since the stream began.
    pub rows: i64,
    /// Of those, events another event in the same batch had covered already.
    pub coalesced: i64,
    pub finished_at_ms: i64,
    /// What the receiver accepted and refused, as folded in so far.
    #[serde(default)]
    pub received: Receipts,
}

/// What one run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub events: u64,
    pub coalesced: u64,
    /// Events for types hsync does not sync, or unreadable in the queue.
    pub dropped: u64,
    /// Rows merged from records read back.
    pub merged: u64,
    /// Rows whose flags changed.
    pub flagged: u64,
    pub edges: u64,
    /// Property-history versions written for the records read back.
    pub versions: u64,
    /// From the latest applied event's `occurredAt` to its merge (ms).
    pub lag_ms: Option<i64>,
}

/// Applies every pending event (see the module docs) until the queue is empty or `shutdown`.
/// `history` holds, by table, the properties whose history is kept.
pub async fn apply<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    tables: &[PreparedTable],
    sources: &[Source],
    history: &BTreeMap<String, HistorySelection>,
    shutdown: &CancellationToken,
) -> Result<Report, Error> {
    let mut report = Report::default();
    let stream = StreamId::webhooks();
    let mut state = super::state::load::<WebhooksState>(&runner.state, &stream).await?.unwrap_or_default();
    while !shutdown.is_cancelled() {
        let pending = runner.state.pending_events(BATCH).await?;
        if pending.is_empty() {
            break;
        }
        let mut events: Vec<Event> = Vec::with_capacity(pending.len());
        for p in &pending {
            match serde_json::from_str::<Event>(&p.event) {
                Ok(e) if tables.iter().any(|t| t.object.type_id() == e.type_id) => events.push(e),
                Ok(_) => report.dropped += 1,
                Err(e) => {
                    tracing::warn!(seq = p.seq, error = %e, "a stored webhook event cannot be read; it is dropped and CDC covers its record");
                    report.dropped += 1;
                }
            }
        }
        let planned = plan(&events);
        for (type_id, ids) in &planned.lookups {
            let Some(table) = tables.iter().find(|t| t.object.type_id() == type_id) else { continue };
            let Some(found) = only_this_type(&table.object.table, look_up(runner, table, ids).await)? else { continue };
            report.merged += found.merged;
            report.flagged += found.flagged;
            let Some(selection) = history.get(&table.object.table) else { continue };
            if found.live.is_empty() {
                continue;
            }
            let read = follow_history(runner, table, selection, &found.live, &checkpoint(&stream, &state)).await;
            report.versions += only_this_type(&table.object.table, read)?.unwrap_or(0);
        }
        for source in sources {
            let Some(ids) = planned.associations.get(source.from.type_id()) else { continue };
            let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
            let around = Around { tables, every_batch: true };
            for to in &source.targets {
                let read = associations::poll(runner, &source.from, to, &ids, around).await;
                report.edges += only_this_type(&source.from.table, read)?.map_or(0, |pair| pair.edges);
            }
        }
        let seqs: Vec<i64> = pending.iter().map(|p| p.seq).collect();
        runner.state.remove_events(&seqs).await?;
        let now = runner.clock.now().timestamp_millis();
        report.events += planned.events;
        report.coalesced += planned.coalesced;
        if let Some(latest) = planned.latest_ms {
            report.lag_ms = Some(now - latest);
            state.latest_event_ms = state.latest_event_ms.max(latest);
            state.lag_ms = now - latest;
        }
        state.phase = APPLYING.to_owned();
        state.rows += planned.events as i64;
        state.coalesced += planned.coalesced as i64;
        state.finished_at_ms = now;
        runner.commit(&checkpoint(&stream, &state)).await?;
        metrics::counter!("hsync_webhook_events_applied_total").increment(planned.events);
        metrics::counter!("hsync_webhook_events_coalesced_total").increment(planned.coalesced);
        if let Some(lag) = report.lag_ms {
            metrics::gauge!("hsync_webhook_lag_seconds").set(lag as f64 / 1_000.0);
        }
    }
    if report.dropped > 0 {
        metrics::counter!("hsync_webhook_events_dropped_total").increment(report.dropped);
    }
    if report.events > 0 {
        tracing::info!(
            events = report.events,
            coalesced = report.coalesced,
            merged = report.merged,
            flagged = report.flagged,
            edges = report.edges,
            versions = report.versions,
            lag_ms = report.lag_ms,
            "webhook events applied"
        );
    }
    Ok(report)
}

/// The outcome of one type's part of a batch. A failure retrying may fix (limits, outages)
/// fails the run, which applies the same events again; one it cannot (an answer hsync cannot
/// read, a value the table refuses, a scope the token lacks) concerns only this type: it is
/// logged and its events are left to CDC and the reconciles, so it never holds back the
/// events of other types.
fn only_this_type<T>(table: &str, outcome: Result<T, Error>) -> Result<Option<T>, Error> {
    match outcome {
        Ok(done) => Ok(Some(done)),
        Err(e) if e.class().is_retryable() => Err(e),
        Err(e) => {
            tracing::warn!(table, class = %e.class(), error = %e, "webhook events of this object could not be applied; CDC and the reconciles cover them");
            metrics::counter!("hsync_webhook_events_failed_total", "object" => table.to_owned()).increment(1);
            Ok(None)
        }
    }
}

/// Adds `arrived`, what the receiver counted since the last fold, to the checkpoint.
pub async fn record_receipts<S: StateStore>(state: &S, arrived: &Receipts) -> Result<(), Error> {
    let stream = StreamId::webhooks();
    let mut current = super::state::load::<WebhooksState>(state, &stream).await?.unwrap_or_default();
    current.received.add(arrived);
    current.phase = APPLYING.to_owned();
    state.commit_checkpoint(&checkpoint(&stream, &current)).await?;
    Ok(())
}

/// Reads and writes the history of `ids` (records just merged) for the properties `selection`
/// names, with `checkpoint` (the stream's, unchanged) as the write requires one. Returns the
/// versions written.
async fn follow_history<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    selection: &HistorySelection,
    ids: &[i64],
    checkpoint: &Checkpoint,
) -> Result<u64, Error> {
    let properties = history::selected_properties(&runner.client, &table.object, selection).await?;
    let mut versions = 0;
    for chunk in ids.chunks(history::CHUNK) {
        versions += history::write_versions(runner, &table.object, &properties, chunk, checkpoint).await?;
    }
    Ok(versions)
}

fn checkpoint(stream: &StreamId, state: &WebhooksState) -> Checkpoint {
    Checkpoint {
        stream: stream.clone(),
        position: state.rows,
        state: serde_json::to_value(state).expect("invariant: stream state serializes"),
    }
}

/// What reading a type's records back did.
struct Found {
    merged: u64,
    flagged: u64,
    /// The ids HubSpot serves live, ascending.
    live: Vec<i64>,
}

/// Reads `ids` of `table` back by id and writes what HubSpot holds: live records merged,
/// archived, merged-away and vanished ones flagged.
async fn look_up<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    ids: &BTreeSet<i64>,
) -> Result<Found, Error> {
    let api = &table.object.api_name;
    let cursor = table.object.cursor_property;
    let asked: Vec<String> = ids.iter().map(i64::to_string).collect();
    let mut properties = table.properties.clone();
    if !properties.iter().any(|p| p == MERGED_IDS) {
        properties.push(MERGED_IDS.to_owned());
    }
    let mut observed = Observed::default();
    let live = runner.client.batch_read(api, &asked, &properties, false).await?;
    for rec in &live.found {
        if let Ok(id) = rec.id.trim().parse::<i64>() {
            observed.live.insert(id);
            observed.add_merges(id, rec);
        }
    }
    let merged = if live.found.is_empty() { 0 } else { runner.write(table, &live.found, None).await?.written };
    let rest: Vec<String> = ids.iter().filter(|id| !observed.live.contains(id)).map(i64::to_string).collect();
    if !rest.is_empty() {
        let wanted = [cursor.to_owned(), MERGED_IDS.to_owned()];
        for chunk in rest.chunks(BATCH_READ_MAX) {
            let archived = runner.client.batch_read(api, chunk, &wanted, true).await?;
            for rec in &archived.found {
                let Ok(id) = rec.id.trim().parse::<i64>() else { continue };
                let archived_at_ms = rec.archived_at.as_deref().and_then(parse_instant_ms);
                observed.archived.insert(id, Archived { archived_at_ms, cursor_ms: record_cursor_ms(rec, cursor) });
                observed.add_merges(id, rec);
            }
        }
    }
    observed.gone = ids
        .iter()
        .copied()
        .filter(|id| {
            !observed.live.contains(id) && !observed.archived.contains_key(id) && !observed.merged.contains_key(id)
        })
        .collect();
    let mut known = ids.clone();
    known.extend(observed.merged.keys());
    let stored = stored_flags(runner, &table.object.table, &known).await?;
    let now = runner.clock.now().timestamp_millis();
    let decided = deletes::plan(&observed, &stored, now);
    let flagged =
        if decided.flags.is_empty() { 0 } else { runner.dest.flag(&table.object.table, &decided.flags).await? };
    metrics::counter!("hsync_rows_flagged_total", "object" => table.object.table.clone()).increment(flagged);
    Ok(Found { merged, flagged, live: observed.live.into_iter().collect() })
}

/// The stored cursor and flags of the rows `ids` of `table` (those it holds).
async fn stored_flags<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &str,
    ids: &BTreeSet<i64>,
) -> Result<Vec<IdFlags>, Error> {
    use hsync_columns::{ARCHIVED_AT, CURSOR, DELETED_AT, ID, MERGED_INTO};
    let columns: Vec<String> = [ID, CURSOR, ARCHIVED_AT, MERGED_INTO, DELETED_AT].map(str::to_owned).into();
    let ids: Vec<i64> = ids.iter().copied().collect();
    let rows = runner.dest.read_cells(table, &columns, &ids).await?;
    let ms = |row: &crate::destination::Row, c: &str| match row.get(c) {
        Some(Cell::TimestampMs(v)) => Some(*v),
        _ => None,
    };
    Ok(rows
        .iter()
        .filter_map(|row| {
            let Some(Cell::Int(id)) = row.get(ID) else { return None };
            Some(IdFlags {
                id: *id,
                cursor: ms(row, CURSOR),
                archived_at: ms(row, ARCHIVED_AT),
                merged_into: match row.get(MERGED_INTO) {
                    Some(Cell::Int(v)) => Some(*v),
                    _ => None,
                },
                deleted_at: ms(row, DELETED_AT),
            })
        })
        .collect())
}
