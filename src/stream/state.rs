//! The persisted state of each stream, versioned and serde-tagged. A variant is added, never
//! changed in meaning, and the oldest format stays readable (tested below).

use serde::{Deserialize, Serialize};

use super::cursor::CdcPosition;
use super::Error;
use crate::state::{Checkpoint, StateStore, StreamId};

/// Decodes a stream's own state from its checkpoint; a state that does not decode is an error
/// naming the stream and the way out, never taken for a missing checkpoint (which would
/// silently move the stream back to where it started).
fn decode<T: serde::de::DeserializeOwned>(c: &Checkpoint) -> Result<T, Error> {
    serde_json::from_value(c.state.clone())
        .map_err(|e| Error::CorruptCheckpoint { stream: c.stream.clone(), detail: e.to_string() })
}

/// Loads and decodes a stream's own state; `None` when the stream has no checkpoint, an error
/// (see [`decode`]) when it has one that does not decode.
pub async fn load<T: serde::de::DeserializeOwned>(
    state: &impl StateStore,
    stream: &StreamId,
) -> Result<Option<T>, Error> {
    match state.load_checkpoint(stream).await? {
        Some(c) => decode(&c).map(Some),
        None => Ok(None),
    }
}

/// A backfill's progress: keyset pagination over `hs_object_id`, or the list endpoint's
/// paging for a type without search.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum BackfillState {
    /// Every record with an id up to `after_id` is in the warehouse; over the list path
    /// (`list_after` set), every record listed before that cursor is, and `after_id` is the
    /// highest id written. A backfill walking ranges concurrently (`ranged` set) has every
    /// record outside its unfinished ranges, and `after_id` is the lowest of their starts.
    Running {
        after_id: i64,
        started_at_ms: i64,
        rows: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        list_after: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ranged: Option<RangedWalk>,
    },
    /// Finished; CDC takes over from `started_at_ms` minus the settle lag.
    Done { started_at_ms: i64, finished_at_ms: i64, rows: i64 },
}

/// The unfinished ranges of a backfill walking ranges concurrently (see
/// [`super::ranges`]), and the highest id known when they were planned (the open range's
/// end, for splitting).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangedWalk {
    pub ranges: Vec<super::ranges::IdRange>,
    pub known_max: i64,
    /// What the server's list cursor names, once a list page showed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_after: Option<super::ranges::ListAfter>,
}

impl BackfillState {
    /// The checkpoint for this state. Positions only grow: `after_id` while running, then
    /// `i64::MAX` once done.
    pub fn checkpoint(&self, table: &str) -> Checkpoint {
        let position = match self {
            BackfillState::Running { after_id, .. } => *after_id,
            BackfillState::Done { .. } => i64::MAX,
        };
        Checkpoint {
            stream: StreamId::backfill(table),
            position,
            state: serde_json::to_value(self).expect("invariant: stream state serializes"),
        }
    }

    /// Reads the state back from a checkpoint (see [`decode`]).
    pub fn from_checkpoint(c: &Checkpoint) -> Result<BackfillState, Error> {
        decode(c)
    }

    pub fn started_at_ms(&self) -> i64 {
        match self {
            BackfillState::Running { started_at_ms, .. } | BackfillState::Done { started_at_ms, .. } => *started_at_ms,
        }
    }
}

/// CDC's progress: every change before `watermark_ms` is in the warehouse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum CdcState {
    /// Between passes; the next pass starts at the watermark.
    Polling { watermark_ms: i64, last_pass_ms: i64, rows: i64 },
    /// A pass stopped (or killed) after committing a page: the next run continues it at
    /// `position`, so a stop costs at most the page in flight. `pass_started_ms` bounds the
    /// watermark the continued pass may reach (see `cursor::durable_watermark`);
    /// `last_pass_ms` is when the last complete pass finished (0 when none has).
    Paging { watermark_ms: i64, position: CdcPosition, pass_started_ms: i64, last_pass_ms: i64, rows: i64 },
    /// A large pass walking id ranges at once (see `stream::walk`): every record modified at
    /// or after `watermark_ms` (and before `pass_started_ms` less the settle lag) whose id lies
    /// outside the unfinished ranges of `walk` is in the warehouse. The next run continues the
    /// walk; when it ends the watermark moves to `pass_started_ms` less the settle lag.
    Ranged { watermark_ms: i64, pass_started_ms: i64, last_pass_ms: i64, rows: i64, walk: RangedWalk },
}

impl CdcState {
    pub fn checkpoint(&self, table: &str) -> Checkpoint {
        let watermark_ms = self.watermark_ms();
        Checkpoint {
            stream: StreamId::cdc(table),
            position: watermark_ms,
            state: serde_json::to_value(self).expect("invariant: stream state serializes"),
        }
    }

    pub fn from_checkpoint(c: &Checkpoint) -> Result<CdcState, Error> {
        decode(c)
    }

    pub fn watermark_ms(&self) -> i64 {
        match self {
            CdcState::Polling { watermark_ms, .. }
            | CdcState::Paging { watermark_ms, .. }
            | CdcState::Ranged { watermark_ms, .. } => *watermark_ms,
        }
    }
}

/// The association stream of the pairs stored from one object's side (see
/// `stream::associations`): every association touching a record whose last-modified time is
/// before `watermark_ms` has been read, as of the last poll or sweep that read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum AssociationsState {
    Polling {
        watermark_ms: i64,
        /// When the last incremental poll finished, if one has.
        last_poll_ms: Option<i64>,
        /// When the last full sweep started (what it read is at least that current).
        last_sweep_ms: Option<i64>,
        /// The target objects the watermark covers; a pair whose target is not listed (an
        /// object added to `sync.objects` later) is swept before it is polled.
        #[serde(default)]
        targets: Vec<String>,
    },
}

impl AssociationsState {
    /// The checkpoint for this state; the position is the watermark, so it never moves back.
    pub fn checkpoint(&self, table: &str) -> Checkpoint {
        let AssociationsState::Polling { watermark_ms, .. } = self;
        Checkpoint {
            stream: StreamId::associations(table),
            position: *watermark_ms,
            state: serde_json::to_value(self).expect("invariant: stream state serializes"),
        }
    }

    pub fn from_checkpoint(c: &Checkpoint) -> Result<AssociationsState, Error> {
        decode(c)
    }

    pub fn watermark_ms(&self) -> i64 {
        let AssociationsState::Polling { watermark_ms, .. } = self;
        *watermark_ms
    }
}

/// The deletes reconciliation's record: when it last ran through, and what it found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum DeletesState {
    /// The last complete reconcile started at `started_at_ms` (what it saw is at least that
    /// current) and found these counts in HubSpot.
    Reconciled { started_at_ms: i64, finished_at_ms: i64, live: i64, archived: i64, merged: i64, deleted: i64 },
}

impl DeletesState {
    /// The checkpoint for this state; the position is the start time, so it only grows.
    pub fn checkpoint(&self, table: &str) -> Checkpoint {
        let DeletesState::Reconciled { started_at_ms, .. } = self;
        Checkpoint {
            stream: StreamId::deletes(table),
            position: *started_at_ms,
            state: serde_json::to_value(self).expect("invariant: stream state serializes"),
        }
    }

    pub fn from_checkpoint(c: &Checkpoint) -> Result<DeletesState, Error> {
        decode(c)
    }
}

/// The owners and pipelines refresh's record of its last complete refresh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum DimensionsState {
    /// The refresh that started at `started_at_ms` wrote lists of these lengths (`rows` is
    /// their sum).
    Refreshed { started_at_ms: i64, finished_at_ms: i64, rows: i64, owners: i64, pipelines: i64, stages: i64 },
}

impl DimensionsState {
    /// The checkpoint for this state; the position is the start time, so it only grows.
    pub fn checkpoint(&self) -> Checkpoint {
        let DimensionsState::Refreshed { started_at_ms, .. } = self;
        Checkpoint {
            stream: StreamId::dimensions(),
            position: *started_at_ms,
            state: serde_json::to_value(self).expect("invariant: stream state serializes"),
        }
    }

    pub fn from_checkpoint(c: &Checkpoint) -> Result<DimensionsState, Error> {
        decode(c)
    }
}

/// The instant up to which every record of `table` is in the warehouse: the CDC watermark, or
/// the backfill's start minus the settle lag when CDC has not run yet. A table without a
/// finished backfill is a [`Error::Precondition`] saying to run it.
pub async fn settled_through(state: &impl StateStore, table: &str, settle_ms: i64) -> Result<i64, Error> {
    if let Some(cdc) = load::<CdcState>(state, &StreamId::cdc(table)).await? {
        return Ok(cdc.watermark_ms());
    }
    match load::<BackfillState>(state, &StreamId::backfill(table)).await? {
        Some(BackfillState::Done { started_at_ms, .. }) => Ok(started_at_ms - settle_ms),
        _ => Err(Error::Precondition(format!(
            "{table} has no finished backfill yet, so its associations and history cannot be read; run `hsync backfill --object {table}` first"
        ))),
    }
}

/// Property history's progress on one object (`history:<table>`). Every version of the
/// records modified before `through_ms` is stored once a pass is `Current`; the position is
/// `through_ms`, which only grows from pass to pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum HistoryState {
    /// A pass reading the history of the records modified at or after `since_ms` (every live
    /// record on the first load, `since_ms` absent), up to `through_ms`; the records up to id
    /// `after_id` are done.
    Reading {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since_ms: Option<i64>,
        through_ms: i64,
        after_id: i64,
        started_at_ms: i64,
        versions: i64,
    },
    /// Every version of the records modified before `through_ms` is stored.
    Current { through_ms: i64, finished_at_ms: i64, versions: i64 },
}

impl HistoryState {
    pub fn checkpoint(&self, table: &str) -> Checkpoint {
        let (HistoryState::Reading { through_ms, .. } | HistoryState::Current { through_ms, .. }) = self;
        Checkpoint {
            stream: StreamId::history(table),
            position: *through_ms,
            state: serde_json::to_value(self).expect("invariant: stream state serializes"),
        }
    }

    pub fn from_checkpoint(c: &Checkpoint) -> Result<HistoryState, Error> {
        decode(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_format_stays_readable() {
        let running: Checkpoint = Checkpoint {
            stream: StreamId::backfill("contacts"),
            position: 41,
            state: serde_json::json!({"phase": "running", "after_id": 41, "started_at_ms": 5, "rows": 12}),
        };
        assert_eq!(
            BackfillState::from_checkpoint(&running).ok(),
            Some(BackfillState::Running { after_id: 41, started_at_ms: 5, rows: 12, list_after: None, ranged: None })
        );
        let cdc = Checkpoint {
            stream: StreamId::cdc("contacts"),
            position: 9,
            state: serde_json::json!({"phase": "polling", "watermark_ms": 9, "last_pass_ms": 10, "rows": 0}),
        };
        assert_eq!(CdcState::from_checkpoint(&cdc).ok().map(|s| s.watermark_ms()), Some(9));
    }

    #[test]
    fn a_pass_over_ranges_keeps_its_ranges_and_its_watermark_until_it_ends() {
        let walk = RangedWalk {
            ranges: vec![super::super::ranges::IdRange { after_id: 400, through_id: Some(900) }],
            known_max: 1_200,
            list_after: None,
        };
        let state = CdcState::Ranged { watermark_ms: 9, pass_started_ms: 70, last_pass_ms: 5, rows: 3, walk };
        let c = state.checkpoint("contacts");
        assert_eq!((c.stream.to_string().as_str(), c.position), ("cdc:contacts", 9));
        assert_eq!(c.state["phase"], "ranged");
        assert_eq!(c.state["walk"]["ranges"], serde_json::json!([{"after_id": 400, "through_id": 900}]));
        assert_eq!(CdcState::from_checkpoint(&c).ok(), Some(state));
    }

    #[test]
    fn a_pass_in_progress_keeps_its_position_and_the_watermark_orders_it() {
        let state = CdcState::Paging {
            watermark_ms: 9,
            position: CdcPosition::Tie { at_ms: 12, after_id: 400 },
            pass_started_ms: 70,
            last_pass_ms: 0,
            rows: 3,
        };
        let c = state.checkpoint("contacts");
        assert_eq!((c.stream.to_string().as_str(), c.position), ("cdc:contacts", 9));
        assert_eq!(c.state["phase"], "paging");
        assert_eq!(c.state["position"], serde_json::json!({"mode": "tie", "at_ms": 12, "after_id": 400}));
        assert_eq!(CdcState::from_checkpoint(&c).ok(), Some(state));
    }

    #[test]
    fn deletes_state_round_trips_through_its_checkpoint() {
        let state = DeletesState::Reconciled {
            started_at_ms: 7,
            finished_at_ms: 9,
            live: 10,
            archived: 2,
            merged: 1,
            deleted: 1,
        };
        let c = state.checkpoint("contacts");
        assert_eq!((c.stream.to_string().as_str(), c.position), ("deletes:contacts", 7));
        assert_eq!(c.state["phase"], "reconciled");
        assert_eq!(DeletesState::from_checkpoint(&c).ok(), Some(state));
    }

    #[test]
    fn association_state_round_trips_and_its_position_is_the_watermark() {
        let state = AssociationsState::Polling {
            watermark_ms: 42,
            last_poll_ms: None,
            last_sweep_ms: Some(40),
            targets: vec!["companies".into()],
        };
        let checkpoint = state.checkpoint("contacts");
        assert_eq!((checkpoint.stream.to_string().as_str(), checkpoint.position), ("associations:contacts", 42));
        assert_eq!(
            checkpoint.state,
            serde_json::json!({"phase": "polling", "watermark_ms": 42, "last_poll_ms": null, "last_sweep_ms": 40,
                               "targets": ["companies"]})
        );
        assert_eq!(AssociationsState::from_checkpoint(&checkpoint).ok(), Some(state));
    }

    #[test]
    fn history_state_keeps_its_pass_position_and_round_trips() {
        let first =
            HistoryState::Reading { since_ms: None, through_ms: 70, after_id: 12, started_at_ms: 80, versions: 9 };
        let c = first.checkpoint("deals");
        assert_eq!((c.stream.to_string().as_str(), c.position), ("history:deals", 70));
        assert!(c.state.get("since_ms").is_none(), "the first load has no lower bound");
        assert_eq!(HistoryState::from_checkpoint(&c).ok(), Some(first));
        let done = HistoryState::Current { through_ms: 70, finished_at_ms: 90, versions: 30 };
        assert_eq!(done.checkpoint("deals").position, 70, "the pass's end keeps its position");
        assert_eq!(HistoryState::from_checkpoint(&done.checkpoint("deals")).ok(), Some(done));
    }

    #[test]
    fn dimensions_state_round_trips_with_the_fields_status_reads() {
        let state = DimensionsState::Refreshed {
            started_at_ms: 5,
            finished_at_ms: 9,
            rows: 40,
            owners: 25,
            pipelines: 3,
            stages: 12,
        };
        let c = state.checkpoint();
        assert_eq!((c.stream.to_string().as_str(), c.position), ("dimensions:owners_pipelines", 5));
        assert_eq!(
            (&c.state["phase"], &c.state["rows"], &c.state["finished_at_ms"]),
            (&serde_json::json!("refreshed"), &serde_json::json!(40), &serde_json::json!(9))
        );
        assert_eq!(DimensionsState::from_checkpoint(&c).ok(), Some(state));
    }

    #[test]
    fn a_state_that_does_not_decode_is_an_error_naming_the_stream_not_a_missing_checkpoint() {
        let garbled = Checkpoint {
            stream: StreamId::cdc("deals"),
            position: 9,
            state: serde_json::json!({"phase": "polling", "watermark_ms": "yesterday"}),
        };
        let error = CdcState::from_checkpoint(&garbled).unwrap_err();
        assert!(matches!(&error, Error::CorruptCheckpoint { stream, .. } if *stream == StreamId::cdc("deals")));
        assert_eq!(crate::error::Classify::class(&error), crate::error::ErrorClass::Data);
        let message = error.to_string();
        assert!(message.contains("cdc:deals") && message.contains("hsync reset cdc:deals"), "{message}");
    }

    #[test]
    fn positions_only_grow_through_a_backfill() {
        let running =
            BackfillState::Running { after_id: 100, started_at_ms: 1, rows: 1, list_after: None, ranged: None }
                .checkpoint("contacts");
        let done = BackfillState::Done { started_at_ms: 1, finished_at_ms: 2, rows: 1 }.checkpoint("contacts");
        assert!(done.position > running.position);
    }
}
