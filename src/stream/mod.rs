//! Streams turn HubSpot pages into batches and say which state each batch advances to; the
//! [`runner`] writes them. Backfill (`backfill`) walks `hs_object_id` with keyset pagination;
//! CDC (`cdc`) follows the last-modified cursor with a settle lag (`cursor` holds the pure
//! arithmetic); a large backfill or CDC pass walks id ranges at once (`walk`, with the pure
//! range logic in `ranges` and the choice of buckets in `readers`); `deletes` reconciles archived, merged and hard-deleted records into flags;
//! `associations` polls association edges (changed records, and a slower full sweep);
//! `dimensions` refreshes the owners and pipelines tables in full; `calculated` re-reads the
//! properties HubSpot calculates (they change without moving last-modified); `listing` is the read path
//! of types without search; `state` holds the versioned
//! checkpoints. `status` reads those checkpoints back
//! for `hsync status`; `verify` compares the warehouse with HubSpot for `hsync verify`.

pub mod associations;
pub mod backfill;
pub mod calculated;
pub mod cdc;
pub mod cursor;
pub mod deletes;
pub mod dimensions;
pub mod history;
pub mod listing;
pub mod ranges;
pub mod readers;
pub mod reread;
pub mod runner;
pub mod state;
pub mod status;
pub mod verify;
pub mod walk;
pub mod webhooks;

use crate::error::{Classify, ErrorClass};

/// A stream failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    HubSpot(#[from] crate::hubspot::Error),
    #[error(transparent)]
    Destination(#[from] crate::destination::Error),
    #[error(transparent)]
    State(#[from] crate::state::Error),
    /// HubSpot changed a property in a way hsync will not apply by itself.
    #[error("table {table}: column {column} cannot follow HubSpot's change ({reason}); alter or rename the column by hand, then run again (other objects keep syncing)")]
    Incompatible { table: String, column: String, reason: String },
    /// HubSpot's records at one position of a stream could not be read, so the stream cannot
    /// move past them; only this stream stops.
    #[error("{stream}: the records at {range} could not be read ({detail}); this stream stops here and the other streams go on; the rejects table has what could be read; rerun after HubSpot's data is fixed")]
    Unreadable { stream: crate::state::StreamId, range: String, detail: String },
    /// A stream's checkpoint holds a state hsync cannot decode: the stream does not guess where
    /// it stands (taking it for missing would silently start over), so only it stops.
    #[error(
        "the checkpoint of {stream} cannot be read ({detail}); this stream stops and the other streams go on; {}",
        reset_advice(stream)
    )]
    CorruptCheckpoint { stream: crate::state::StreamId, detail: String },
    /// The command does not fit the stream's state.
    #[error("{0}")]
    Precondition(String),
    #[error("internal error: {0}")]
    Bug(String),
    /// An `hsync push` that cannot run as configured (its source, its columns).
    #[error("{0}")]
    PushConfig(String),
}

impl Classify for Error {
    fn class(&self) -> ErrorClass {
        match self {
            Error::HubSpot(e) => e.class(),
            Error::Destination(e) => e.class(),
            Error::State(e) => e.class(),
            Error::Incompatible { .. } | Error::Unreadable { .. } | Error::CorruptCheckpoint { .. } => ErrorClass::Data,
            Error::Precondition(_) | Error::PushConfig(_) => ErrorClass::Config,
            Error::Bug(_) => ErrorClass::Bug,
        }
    }
}

impl Error {
    /// Names the record range of a page HubSpot's answer for could not be read at all.
    pub(crate) fn at_range(self, stream: &crate::state::StreamId, range: impl FnOnce() -> String) -> Error {
        match self {
            Error::HubSpot(e @ crate::hubspot::Error::Unreadable { .. }) => {
                Error::Unreadable { stream: stream.clone(), range: range(), detail: e.to_string() }
            }
            other => other,
        }
    }
}

/// What an operator does about a stream whose checkpoint cannot be read.
fn reset_advice(stream: &crate::state::StreamId) -> String {
    use crate::state::StreamKind;
    match stream.kind() {
        // Forgetting a pending re-read would leave the new columns empty on existing rows.
        StreamKind::Reread => format!(
            "`hsync backfill --restart --object {}` copies the table again, new columns included",
            stream.table()
        ),
        StreamKind::Backfill | StreamKind::Cdc => format!(
            "`hsync reset {stream}` forgets it and the stream starts over from the backfill's start (rows are updated in place, nothing is lost)"
        ),
        StreamKind::Associations => format!(
            "`hsync reset {stream}` forgets it and the next poll sweeps every record's associations"
        ),
        StreamKind::History => format!(
            "`hsync reset {stream}` forgets it and the next pass reads every record's history again (stored versions are not doubled)"
        ),
        StreamKind::Calculated => format!(
            "`hsync reset {stream}` forgets it and the next sweep reads every record's calculated properties again"
        ),
        StreamKind::Deletes
        | StreamKind::Schema
        | StreamKind::Dimensions
        | StreamKind::Webhooks
        | StreamKind::Push => {
            format!("`hsync reset {stream}` forgets it and the next run starts afresh")
        }
    }
}

/// The last-modified instant of a record: its cursor property, else `updatedAt`.
pub fn record_cursor_ms(rec: &crate::hubspot::model::CrmObject, cursor_property: &str) -> Option<i64> {
    rec.properties
        .get(cursor_property)
        .and_then(|v| v.as_deref())
        .or(rec.updated_at.as_deref())
        .and_then(crate::schema::parse_instant_ms)
}

impl From<crate::push::Error> for Error {
    fn from(e: crate::push::Error) -> Error {
        match e {
            crate::push::Error::Stream(e) => e,
            other => Error::PushConfig(other.to_string()),
        }
    }
}
