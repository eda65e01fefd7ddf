//! Stream ids and run statuses: the keys and values the state store keeps as text, typed.
//!
//! A stream id is a kind and the table it feeds (`cdc:contacts`); its text form is what the
//! state store, `hsync status` and the run history show, and it is written and parsed here only.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a stream does. The order is the one `hsync status` lists an object's streams in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    /// Copies every record once (keyset pagination over the id).
    Backfill,
    /// Reads what changed since the last pass.
    Cdc,
    /// Association edges of the pairs stored from one object's side.
    Associations,
    /// Archived, merged and deleted records reconciled into flags.
    Deletes,
    /// Values of columns added to a table that already has rows.
    Reread,
    /// Property definitions diffed and applied to the table (runs only, no checkpoint).
    Schema,
    /// The owners and pipelines tables, refreshed in full.
    Dimensions,
    /// Versions of the properties `sync.history` names, into `property_history`.
    History,
    /// Calculated properties (rollups, formulas) re-read, as they change without moving
    /// last-modified.
    Calculated,
    /// HubSpot's webhook events applied (records read back by id).
    Webhooks,
    /// Rows of an `hsync push` job written to HubSpot (`push:<name>`).
    Push,
}

impl StreamKind {
    const ALL: [StreamKind; 11] = [
        StreamKind::Backfill,
        StreamKind::Cdc,
        StreamKind::Associations,
        StreamKind::Deletes,
        StreamKind::Reread,
        StreamKind::Schema,
        StreamKind::Dimensions,
        StreamKind::History,
        StreamKind::Calculated,
        StreamKind::Webhooks,
        StreamKind::Push,
    ];

    /// The kind's name in stream ids and in `hsync status`.
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Backfill => "backfill",
            StreamKind::Cdc => "cdc",
            StreamKind::Associations => "associations",
            StreamKind::Deletes => "deletes",
            StreamKind::Reread => "reread",
            StreamKind::Schema => "schema",
            StreamKind::Dimensions => "dimensions",
            StreamKind::History => "history",
            StreamKind::Calculated => "calculated",
            StreamKind::Webhooks => "webhooks",
            StreamKind::Push => "push",
        }
    }
}

impl fmt::Display for StreamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The subject of the owners and pipelines refresh, which feeds several tables.
const DIMENSIONS_SUBJECT: &str = "owners_pipelines";
/// The subject of the webhook stream, which feeds every table.
const WEBHOOKS_SUBJECT: &str = "events";

/// One stream: its kind and the table it feeds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct StreamId {
    kind: StreamKind,
    table: String,
}

impl StreamId {
    pub fn new(kind: StreamKind, table: &str) -> StreamId {
        StreamId { kind, table: table.to_owned() }
    }

    pub fn backfill(table: &str) -> StreamId {
        StreamId::new(StreamKind::Backfill, table)
    }

    pub fn cdc(table: &str) -> StreamId {
        StreamId::new(StreamKind::Cdc, table)
    }

    pub fn associations(table: &str) -> StreamId {
        StreamId::new(StreamKind::Associations, table)
    }

    pub fn deletes(table: &str) -> StreamId {
        StreamId::new(StreamKind::Deletes, table)
    }

    pub fn reread(table: &str) -> StreamId {
        StreamId::new(StreamKind::Reread, table)
    }

    pub fn schema(table: &str) -> StreamId {
        StreamId::new(StreamKind::Schema, table)
    }

    pub fn history(table: &str) -> StreamId {
        StreamId::new(StreamKind::History, table)
    }

    pub fn calculated(table: &str) -> StreamId {
        StreamId::new(StreamKind::Calculated, table)
    }

    /// The owners and pipelines refresh (`dimensions:owners_pipelines`).
    pub fn webhooks() -> StreamId {
        StreamId::new(StreamKind::Webhooks, WEBHOOKS_SUBJECT)
    }

    /// The push job `name` (`push:<name>`).
    pub fn push(name: &str) -> StreamId {
        StreamId::new(StreamKind::Push, name)
    }

    /// Records pushed to the daemon for the push job `name` (`push:<name>.events`).
    pub fn push_events(name: &str) -> StreamId {
        StreamId::new(StreamKind::Push, &format!("{name}.events"))
    }

    pub fn dimensions() -> StreamId {
        StreamId::new(StreamKind::Dimensions, DIMENSIONS_SUBJECT)
    }

    pub fn kind(&self) -> StreamKind {
        self.kind
    }

    /// The table the stream feeds (for the dimensions refresh, `owners_pipelines`).
    pub fn table(&self) -> &str {
        &self.table
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.table)
    }
}

/// A stream id's text that is not `<kind>:<table>` with a known kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a stream id (expected <kind>:<table> with kind one of backfill, cdc, associations, deletes, reread, schema, dimensions, history, calculated)")]
pub struct UnknownStream {
    pub text: String,
}

impl FromStr for StreamId {
    type Err = UnknownStream;

    fn from_str(text: &str) -> Result<StreamId, UnknownStream> {
        let unknown = || UnknownStream { text: text.to_owned() };
        let (kind, table) = text.split_once(':').ok_or_else(unknown)?;
        let kind = StreamKind::ALL.into_iter().find(|k| k.as_str() == kind).ok_or_else(unknown)?;
        if table.is_empty() {
            return Err(unknown());
        }
        Ok(StreamId::new(kind, table))
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for StreamId {
    type Error = UnknownStream;

    fn try_from(text: String) -> Result<StreamId, UnknownStream> {
        text.parse()
    }
}

/// How a recorded run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Started and not (yet) recorded as ended; a run whose process died stays so.
    Running,
    /// Ran to its end.
    Ok,
    /// Stopped early by a stop signal or a lost lease; the next run continues it.
    Stopped,
    /// Ended with an error (its message is recorded with it).
    Failed,
}

impl RunStatus {
    /// The status's text in the run history.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Stopped => "stopped",
            RunStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RunStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<RunStatus, String> {
        [RunStatus::Running, RunStatus::Ok, RunStatus::Stopped, RunStatus::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| format!("{text:?} is not a run status"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_keep_the_text_form_checkpoints_were_stored_under() {
        assert_eq!(StreamId::backfill("contacts").to_string(), "backfill:contacts");
        assert_eq!(StreamId::cdc("p_widgets").to_string(), "cdc:p_widgets");
        assert_eq!(StreamId::dimensions().to_string(), "dimensions:owners_pipelines");
        for kind in StreamKind::ALL {
            let id = StreamId::new(kind, "deals");
            assert_eq!(id.to_string().parse::<StreamId>(), Ok(id));
        }
    }

    #[test]
    fn a_table_may_contain_a_colon_but_a_kind_must_be_known() {
        assert_eq!("cdc:a:b".parse::<StreamId>().map(|s| s.table().to_owned()), Ok("a:b".to_owned()));
        assert!("sync:contacts".parse::<StreamId>().is_err());
        assert!("cdc:".parse::<StreamId>().is_err());
        assert!("contacts".parse::<StreamId>().is_err());
    }

    #[test]
    fn stream_ids_and_run_statuses_serialize_as_their_text() {
        assert_eq!(serde_json::to_value(StreamId::deletes("deals")).unwrap(), serde_json::json!("deletes:deals"));
        assert_eq!(serde_json::to_value(RunStatus::Failed).unwrap(), serde_json::json!("failed"));
        for status in [RunStatus::Running, RunStatus::Ok, RunStatus::Stopped, RunStatus::Failed] {
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(status));
        }
    }
}
