//! hsync's bookkeeping: stream checkpoints that only move forward, run history, property
//! snapshots (with the orphaned columns already reported) and the daily budget ledger.
//!
//! It lives in the destination when that is SQLite or Postgres (tables from `migrations/`,
//! schema `hsync` in Postgres), so a checkpoint commits in the same transaction as the data it
//! covers; otherwise in a local SQLite file.
//!
//! This module is the contract ([`StateStore`]) and its plain types; the stores live with the
//! destination that holds them (`destination::sqlite::SqliteStateStore`,
//! `destination::postgres::PostgresStateStore`), so nothing here names a destination.

mod stream_id;

use std::collections::BTreeMap;

use std::future::Future;
pub use stream_id::{RunStatus, StreamId, StreamKind, UnknownStream};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Classify, ErrorClass};
use crate::hubspot::model::PropertyDefinition;

/// A stream's progress. `position` orders checkpoints: a commit with a lower position than the
/// stored one is ignored, so replays can never move a stream backwards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// `backfill:contacts`, `cdc:deals`, ...
    pub stream: StreamId,
    /// Monotonic position (the last id for a backfill, the watermark in ms for CDC).
    pub position: i64,
    /// The stream's own state, versioned by the stream.
    pub state: serde_json::Value,
}

/// One run of a stream, for `hsync status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub stream: StreamId,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub rows: i64,
    /// The error's message (never row values).
    pub error: Option<String>,
}

/// The property definitions seen last time for an object, and the columns whose properties
/// disappeared and were already reported.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PropertySnapshot {
    pub object: String,
    pub properties: Vec<PropertyDefinition>,
    pub acknowledged_removed: Vec<String>,
}

/// The columns given to an object's properties, and the properties no column can carry (see
/// `schema::naming`). Entries are recorded once and never changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ColumnMap {
    /// Property to column.
    pub columns: BTreeMap<String, String>,
    /// Property to the reason it has no column.
    pub unmappable: BTreeMap<String, String>,
}

impl ColumnMap {
    /// A column map from its stored rows (property, column, reason).
    pub(crate) fn from_rows(rows: Vec<(String, Option<String>, Option<String>)>) -> ColumnMap {
        let mut map = ColumnMap::default();
        for (property, column, reason) in rows {
            match column {
                Some(column) => map.columns.insert(property, column),
                None => map.unmappable.insert(property, reason.unwrap_or_default()),
            };
        }
        map
    }

    /// The entries as rows to store (property as [`stored_property_name`] keeps it, column,
    /// reason).
    pub(crate) fn rows(&self) -> impl Iterator<Item = (String, Option<&str>, Option<&str>)> {
        let columns = self.columns.iter().map(|(p, c)| (stored_property_name(p).into_owned(), Some(c.as_str()), None));
        let unmappable =
            self.unmappable.iter().map(|(p, r)| (stored_property_name(p).into_owned(), None, Some(r.as_str())));
        columns.chain(unmappable)
    }
}

/// A property name as the state store keeps it: a NUL (which Postgres text cannot hold, and
/// only an unmappable name has) is written as the text `\u0000`.
pub fn stored_property_name(property: &str) -> std::borrow::Cow<'_, str> {
    if property.contains('\0') {
        std::borrow::Cow::Owned(property.replace('\0', "\\u0000"))
    } else {
        std::borrow::Cow::Borrowed(property)
    }
}

/// A webhook event to keep until it is applied (see `crate::webhooks`): what the state store
/// needs of it, with the event itself as JSON text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedEvent {
    /// Equal for the same event sent again (a retry, a duplicate): stored once.
    pub dedupe_key: String,
    pub object_id: i64,
    pub occurred_at_ms: i64,
    pub event: String,
}

/// A queued event as stored: its place in the queue and when it was received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingEvent {
    pub seq: i64,
    pub received_at_ms: i64,
    pub event: String,
}

/// What storing one webhook delivery did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Enqueued {
    /// Events stored now.
    pub stored: u64,
    /// Events stored already (sent before): left as they were.
    pub duplicates: u64,
    /// The delivery's signature was accepted before: nothing was stored.
    pub replayed: bool,
}

/// The queue of webhook events, for status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventBacklog {
    pub pending: u64,
    /// When the oldest pending event was received (epoch ms).
    pub oldest_received_at_ms: Option<i64>,
}

/// A state store failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the state store is unavailable: {0}; check the destination or the state file")]
    Unavailable(String),
    #[error("the state store failed to {action}: {detail}")]
    Statement { action: String, detail: String },
    #[error("the state store holds unreadable data for {what}: {detail}")]
    Corrupt { what: String, detail: String },
    /// The database refused for a reason an operator must fix (a login, a privilege, a
    /// read-only file): the refusal's own class and message, which says what to fix.
    #[error("{message}")]
    Refused { class: ErrorClass, message: String },
}

impl Error {
    /// A refusal that keeps the class and the message of the error that refused.
    pub fn refused(cause: &(impl Classify + std::fmt::Display)) -> Error {
        Error::Refused { class: cause.class(), message: cause.to_string() }
    }
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::Unavailable(_) => ErrorClass::Transient,
            Error::Statement { .. } => ErrorClass::Bug,
            Error::Corrupt { .. } => ErrorClass::Data,
            Error::Refused { class, .. } => *class,
        }
    }
}

/// Where state is kept.
pub trait StateStore: Send + Sync {
    /// Creates the bookkeeping tables when missing (runs `migrations/<dialect>`).
    fn migrate(&self) -> impl Future<Output = Result<(), Error>> + Send;

    fn load_checkpoint(&self, stream: &StreamId) -> impl Future<Output = Result<Option<Checkpoint>, Error>> + Send;

    /// Stores the checkpoint unless the stored one has a higher position; returns whether it
    /// was stored.
    fn commit_checkpoint(&self, checkpoint: &Checkpoint) -> impl Future<Output = Result<bool, Error>> + Send;

    /// Forgets a stream's checkpoint: the one way to move a stream back (an explicit restart).
    fn reset_checkpoint(&self, stream: &StreamId) -> impl Future<Output = Result<(), Error>> + Send;

    /// Every checkpoint, for `hsync status`.
    fn checkpoints(&self) -> impl Future<Output = Result<Vec<Checkpoint>, Error>> + Send;

    /// Records the start of a run; returns its id.
    fn start_run(&self, stream: &StreamId, at: DateTime<Utc>) -> impl Future<Output = Result<i64, Error>> + Send;

    /// Records the end of a run.
    fn finish_run(
        &self,
        run: i64,
        at: DateTime<Utc>,
        status: RunStatus,
        rows: i64,
        error: Option<&str>,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The latest runs, newest first.
    fn recent_runs(&self, limit: i64) -> impl Future<Output = Result<Vec<RunRecord>, Error>> + Send;

    fn load_snapshot(&self, object: &str) -> impl Future<Output = Result<Option<PropertySnapshot>, Error>> + Send;

    fn save_snapshot(&self, snapshot: &PropertySnapshot) -> impl Future<Output = Result<(), Error>> + Send;

    /// The columns recorded for `object`'s properties (names as [`stored_property_name`] keeps
    /// them).
    fn load_column_map(&self, object: &str) -> impl Future<Output = Result<ColumnMap, Error>> + Send;

    /// Records new entries of `object`'s column map; an entry already recorded is kept as it is.
    fn record_column_map(&self, object: &str, map: &ColumnMap) -> impl Future<Output = Result<(), Error>> + Send;

    /// Stores one accepted webhook delivery in one transaction: its `signature` (a signature
    /// seen before makes it a replay, and nothing is stored) and each event not stored before
    /// (by [`QueuedEvent::dedupe_key`]). Signatures received before `forget_before_ms` are
    /// pruned. Returns once it is durable.
    fn enqueue_events(
        &self,
        signature: &str,
        received_at_ms: i64,
        forget_before_ms: i64,
        events: &[QueuedEvent],
    ) -> impl Future<Output = Result<Enqueued, Error>> + Send;

    /// Up to `limit` pending events, oldest first.
    fn pending_events(&self, limit: i64) -> impl Future<Output = Result<Vec<PendingEvent>, Error>> + Send;

    /// Removes applied events by [`PendingEvent::seq`].
    fn remove_events(&self, seqs: &[i64]) -> impl Future<Output = Result<(), Error>> + Send;

    /// How many events are pending, and the oldest one's arrival.
    fn event_backlog(&self) -> impl Future<Output = Result<EventBacklog, Error>> + Send;
}
