//! Destinations: where batches land. Each dialect lives in its own folder with the same files
//! (`mod.rs` for the [`Destination`] implementation, `sql.rs` for pure `render_*` functions
//! with snapshot tests, `types.rs` for the column type mapping, and `inspect.rs` for reading
//! rows back). The contract every destination keeps is checked by `conformance`, a suite every
//! destination's tests run; it and the read-back are built only with the `test-support` feature
//! (the integration tests require it), so the hsync binary does not carry them.
//!
//! # The contract
//! - `stage` loads a batch into a new staging table and commits it; nothing reading the object
//!   table sees it.
//! - `merge` upserts a stage into its table **guarded by the cursor** (a row is never replaced
//!   by an older version of itself: `target._hsync_cursor <= staged._hsync_cursor`), records the
//!   batch's rejects, commits the stream checkpoint when the destination holds the state, and
//!   drops the stage, all in one transaction. Merging the same batch twice equals merging it
//!   once; duplicate ids inside one stage keep the newest version.
//! - `sweep_stages` drops stages a crash left between `stage` and `merge`.
//! - `flag` sets or clears the reconciliation flags (`_hsync_archived_at`,
//!   `_hsync_merged_into`, `_hsync_deleted_at`) bypassing the cursor guard and leaving
//!   `_hsync_cursor` alone, and inserts id-only rows for ids the table never held; a full-row
//!   merge of a live record clears the flags again (the batch carries them as NULL).
//! - `alter` applies a plan's creating, adding and widening changes and never drops a table or
//!   a column. A destination with views (all but Parquet) also applies the plan's
//!   `ReplaceView`: the table's live view (`<table>_live`, see [`crate::schema::live_view_name`])
//!   is (re)created after the table's changes, in their transaction where the dialect has one, so
//!   a reader never finds it missing or without a column the table has.
//! - `merge_edges` makes the stored association edges of some records equal HubSpot's current
//!   list for them in one transaction: new edges inserted, changed labels and categories
//!   updated, vanished edges tombstoned (`deleted_at`), never deleted; a replay changes nothing.
//! - `replace_dimensions` makes the owners and pipelines tables (created by `prepare`, layout
//!   in [`crate::schema::dimension`]) hold complete current lists, in one transaction with the
//!   rejects and the checkpoint: listed rows upserted, unlisted rows flagged
//!   `_hsync_removed_at`, never deleted. For a table that only gains rows (`property_history`,
//!   see [`crate::schema::dimension::DimensionTable::complete_lists`]) the given rows are
//!   upserted and nothing else is touched, so replaying a write changes nothing.
//! - Identifiers are quoted by one function per dialect; values are bound or loaded as data,
//!   never interpolated into SQL text.

mod any;
#[cfg(feature = "bigquery")]
pub mod bigquery;
mod cell;
#[cfg(feature = "test-support")]
pub mod conformance;
mod error;
mod flag_sql;
mod history_sql;
mod lease;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod postgres;
#[cfg(any(feature = "bigquery", feature = "snowflake"))]
mod read_only_query;
#[cfg(feature = "snowflake")]
pub mod snowflake;
pub mod sqlite;

use std::future::Future;

use arrow::record_batch::RecordBatch;

#[cfg(any(feature = "parquet", feature = "snowflake", feature = "bigquery"))]
pub use any::LocalState;
pub use any::{AnyDestination, AnyStateStore};
pub use cell::{Cell, Row, TextRows};
pub use error::Error;
pub use lease::{Holder, Lease};

use crate::schema::dimension::DimensionBatch;
use crate::schema::{ColumnBudget, ColumnType, ExistingColumn, Reject, SchemaPlan};
use crate::state::Checkpoint;

/// The name prefix of the scratch tables `probe_write` creates and drops (`hsync check`).
pub const PROBE_PREFIX: &str = "_hsync_check_";
/// The table holding values that did not parse, beside the object tables.
pub const REJECTS_TABLE: &str = "_hsync_rejects";
/// The association edge table, beside the object tables.
pub const ASSOCIATIONS_TABLE: &str = "associations";
/// The association table's columns, in order, with their types: one row per edge and
/// association type, `deleted_at` the tombstone of an edge HubSpot no longer lists.
pub const ASSOCIATION_COLUMNS: [(&str, ColumnType); 9] = [
    ("from_type", ColumnType::Text),
    ("from_id", ColumnType::BigInt),
    ("to_type", ColumnType::Text),
    ("to_id", ColumnType::BigInt),
    ("type_id", ColumnType::BigInt),
    ("category", ColumnType::Text),
    ("label", ColumnType::Text),
    ("synced_at", ColumnType::Timestamp),
    ("deleted_at", ColumnType::Timestamp),
];
/// The view of the association edges that are not tombstoned (`deleted_at` NULL), beside the
/// association table in every destination with views. Its columns are fixed, so `prepare`
/// creates it once.
pub const ASSOCIATIONS_LIVE_VIEW: &str = "associations_live";
/// The view over `property_history` giving each version's span: when the property took the
/// value (`entered_at`), when the next version replaced it (`exited_at`, NULL for the current
/// value), the seconds between, and `is_current`; per record and property, versions in time
/// order (ties by `version_id`). Deal-stage durations are its rows with `property =
/// 'dealstage'`; any pipeline-stage property has the same shape. Every destination with views
/// has it; `prepare` creates it.
pub const HISTORY_SPANS_VIEW: &str = "property_history_spans";
/// The association table's key (the first of [`ASSOCIATION_COLUMNS`]).
pub const EDGE_KEY: [&str; 5] = ["from_type", "from_id", "to_type", "to_id", "type_id"];
/// The rejects table's columns, in order, with their types.
pub const REJECT_COLUMNS: [(&str, ColumnType); 6] = [
    ("object", ColumnType::Text),
    ("id", ColumnType::Text),
    ("property", ColumnType::Text),
    ("raw_value", ColumnType::Text),
    ("reason", ColumnType::Text),
    ("seen_at", ColumnType::Timestamp),
];
/// The prefix of staging and scratch tables kept beside the object tables (Postgres keeps its
/// stages in a schema of their own instead); start-up sweeps drop every table that has it.
pub const STAGE_PREFIX: &str = "_hsync_stage_";

/// A staging or scratch table's name, `<prefix><what>_<8 hex>`, with `what` cut (at a
/// character boundary) so the whole name stays within the dialect's `max_bytes`.
pub(crate) fn stage_name(prefix: &str, what: &str, suffix: u32, max_bytes: usize) -> String {
    let room = max_bytes - prefix.len() - 9;
    let mut cut = what.len().min(room);
    while !what.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{prefix}{}_{suffix:08x}", &what[..cut])
}

/// An identifier quoted the ANSI way, as Postgres, SQLite and Snowflake take it verbatim (case,
/// reserved words, unicode): wrapped in double quotes, embedded double quotes doubled. Each
/// dialect's `quote_ident` is the one place its statements quote through.
pub fn double_quoted(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        if c == '"' {
            quoted.push('"');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// A batch loaded into a staging table, waiting to be merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stage {
    /// The object table the stage merges into.
    pub table: String,
    /// The staging table's name (unquoted).
    pub stage_table: String,
    /// The staged columns, in order (a batch may carry a subset of the table's columns).
    pub columns: Vec<String>,
    pub rows: u64,
}

impl Stage {
    /// The first of [`KEY_COLUMNS`] the stage lacks (`merge` refuses such a stage).
    pub(crate) fn missing_key(&self) -> Option<&'static str> {
        KEY_COLUMNS.into_iter().find(|key| !self.columns.iter().any(|c| c == key))
    }

    /// Refuses a stage without a key column as a schema problem of its table (as Postgres,
    /// BigQuery and Snowflake report it; SQLite and Parquet report a failed statement).
    pub(crate) fn check_keys(&self, kind: crate::config::DestinationKind) -> Result<(), Error> {
        match self.missing_key() {
            Some(key) => {
                Err(Error::Schema { kind, table: self.table.clone(), detail: format!("the stage has no {key} column") })
            }
            None => Ok(()),
        }
    }
}

/// The columns every batch and stage must carry: merges match rows by the one and guard by the
/// other.
const KEY_COLUMNS: [&str; 2] = [crate::schema::hsync_columns::ID, crate::schema::hsync_columns::CURSOR];

/// The first of [`KEY_COLUMNS`] a batch lacks (`stage` refuses such a batch).
pub(crate) fn missing_key(batch: &RecordBatch) -> Option<&'static str> {
    let schema = batch.schema();
    KEY_COLUMNS.into_iter().find(|key| schema.index_of(key).is_err())
}

/// Refuses a batch without a key column as a schema problem of `table` (as Postgres, BigQuery
/// and Snowflake report it; SQLite and Parquet report a failed statement).
pub(crate) fn check_batch_keys(
    kind: crate::config::DestinationKind,
    table: &str,
    batch: &RecordBatch,
) -> Result<(), Error> {
    match missing_key(batch) {
        Some(key) => Err(Error::Schema {
            kind,
            table: table.to_owned(),
            detail: format!("the batch has no {key} column; every batch must carry id and _hsync_cursor"),
        }),
        None => Ok(()),
    }
}

/// What a merge did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MergeOutcome {
    /// Rows inserted or updated.
    pub written: u64,
    /// Staged rows not applied because the table already held the same or a newer version
    /// (or a newer duplicate in the same stage).
    pub skipped: u64,
}

/// One version stored in `property_history`, as `hsync verify` compares it (see
/// [`Destination::history_versions`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredVersion {
    pub record_id: i64,
    pub property: String,
    pub version_id: String,
    pub value: Option<String>,
    /// `changed_at`, in milliseconds since the Unix epoch.
    pub changed_at_ms: Option<i64>,
}

/// A change to the reconciliation flags of one row (see [`Destination::flag`]). For each flag,
/// the outer `None` leaves the column as it is, `Some(None)` clears it and `Some(Some(v))`
/// sets it. Times are milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowFlag {
    pub id: i64,
    /// `_hsync_archived_at`: when HubSpot archived the record.
    pub archived_at: Option<Option<i64>>,
    /// `_hsync_merged_into`: the surviving record's id.
    pub merged_into: Option<Option<i64>>,
    /// `_hsync_deleted_at`: when hsync found the record permanently deleted.
    pub deleted_at: Option<Option<i64>>,
    /// The last-modified time of the version the flag was observed on. When set, the flag
    /// applies only to a row whose `_hsync_cursor` is NULL or not newer (a row CDC has
    /// meanwhile replaced by a newer version, a restored record say, keeps its flags).
    pub observed_cursor: Option<i64>,
}

/// A row's id with its cursor and reconciliation flags, as stored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdFlags {
    pub id: i64,
    pub cursor: Option<i64>,
    pub archived_at: Option<i64>,
    pub merged_into: Option<i64>,
    pub deleted_at: Option<i64>,
}

impl IdFlags {
    /// Whether any flag marks the row as no longer live.
    pub fn flagged(&self) -> bool {
        self.archived_at.is_some() || self.merged_into.is_some() || self.deleted_at.is_some()
    }
}

/// One association edge under one association type, read from `from_id`'s side: the
/// `associations` table holds one row per `(from_type, from_id, to_type, to_id, type_id)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub from_id: i64,
    pub to_id: i64,
    /// HubSpot's association type id (each label is its own type id; direction matters).
    pub type_id: i32,
    /// `HUBSPOT_DEFINED`, `USER_DEFINED`, `INTEGRATOR_DEFINED` or `WORK`.
    pub category: String,
    /// `None` for the unlabeled type.
    pub label: Option<String>,
}

/// What [`Destination::merge_edges`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EdgeOutcome {
    /// Edges inserted, relabelled or brought back from a tombstone (unchanged edges are not
    /// written, so a replay counts zero).
    pub upserted: u64,
    /// Stored edges HubSpot no longer lists, now tombstoned.
    pub tombstoned: u64,
}

/// What [`Destination::replace_dimensions`] did to one dimension table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DimensionOutcome {
    pub table: &'static str,
    /// Rows HubSpot lists now, each written with this refresh's `_hsync_synced_at`.
    pub rows: u64,
    /// Stored rows HubSpot no longer lists, newly flagged with `_hsync_removed_at`.
    pub removed: u64,
}

/// Checks the batches of a dimension replace (columns, keys, each table once) before anything
/// is written.
pub(crate) fn check_dimensions(kind: crate::config::DestinationKind, batches: &[DimensionBatch]) -> Result<(), Error> {
    let refuse = |detail: String| Error::Statement { kind, action: "replace the dimension tables".to_owned(), detail };
    for (i, d) in batches.iter().enumerate() {
        d.table.check(&d.batch).map_err(refuse)?;
        if batches[..i].iter().any(|other| other.table.name == d.table.name) {
            return Err(refuse(format!("{} is given twice", d.table.name)));
        }
    }
    Ok(())
}

/// Checks that every edge starts at one of `from_ids` and returns the edges ordered by key,
/// one per key (the last one given wins), so each destination writes rows in one order.
pub(crate) fn edges_by_key<'a>(
    kind: crate::config::DestinationKind,
    from_ids: &[i64],
    edges: &'a [Edge],
) -> Result<Vec<&'a Edge>, Error> {
    let sources: std::collections::HashSet<i64> = from_ids.iter().copied().collect();
    if edges.iter().any(|e| !sources.contains(&e.from_id)) {
        return Err(Error::Statement {
            kind,
            action: "merge association edges".to_owned(),
            detail: "an edge starts at a record outside the from_ids given with it".to_owned(),
        });
    }
    let mut by_key: std::collections::BTreeMap<(i64, i64, i32), &Edge> = std::collections::BTreeMap::new();
    for edge in edges {
        by_key.insert((edge.from_id, edge.to_id, edge.type_id), edge);
    }
    Ok(by_key.into_values().collect())
}

/// Which end of stored association edges a lookup returns ([`Destination::edge_ends`]); the ids
/// it is given, if any, name the other end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeEnd {
    /// The records the edges start at (`from_id`).
    From,
    /// The records the edges point at (`to_id`).
    To,
}

impl EdgeEnd {
    /// What a lookup does, for its error messages.
    pub(crate) fn action(self, from_type: &str, to_type: &str) -> String {
        let end = match self {
            EdgeEnd::From => "sources",
            EdgeEnd::To => "targets",
        };
        format!("read the {end} of the stored edges from {from_type} to {to_type}")
    }

    /// The column returned and the column the given ids filter.
    pub(crate) fn columns(self) -> (&'static str, &'static str) {
        match self {
            EdgeEnd::From => ("from_id", "to_id"),
            EdgeEnd::To => ("to_id", "from_id"),
        }
    }
}

/// A warehouse hsync writes to.
pub trait Destination: Send + Sync {
    /// `sqlite`, `postgres`, ...
    fn kind(&self) -> crate::config::DestinationKind;

    /// Whether `merge` and `replace_dimensions` commit the checkpoint they are given in their
    /// own transaction. Destinations without such transactions (BigQuery, Snowflake, Parquet)
    /// return false and ignore it: the runner commits to the local state store once the merge
    /// has returned, and a crash in between replays one batch, which the guarded merge absorbs.
    fn holds_state(&self) -> bool {
        true
    }

    /// How many property columns a table may have before properties overflow.
    fn column_budget(&self) -> ColumnBudget;

    /// Whether the destination keeps a live view beside each object table (see the module
    /// docs); Parquet files have no views.
    fn has_views(&self) -> bool {
        true
    }

    /// Checks that the destination answers and hsync may write; creates hsync's bookkeeping
    /// (state tables from `migrations/`, the rejects and association tables) when missing.
    fn prepare(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// Checks that the destination answers, without changing anything.
    fn healthcheck(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// The columns of an object table, or `None` when the table does not exist.
    fn describe(&self, table: &str) -> impl Future<Output = Result<Option<Vec<ExistingColumn>>, Error>> + Send;

    /// Applies a plan's altering changes (create table, add column, widen). Never drops.
    fn alter(&self, plan: &SchemaPlan) -> impl Future<Output = Result<(), Error>> + Send;

    /// Loads `batch` into a new staging table for `table`.
    fn stage(&self, table: &str, batch: &RecordBatch) -> impl Future<Output = Result<Stage, Error>> + Send;

    /// Merges a stage (see the module docs), in one transaction with `rejects` and `commit`.
    fn merge(
        &self,
        stage: Stage,
        rejects: &[Reject],
        commit: Option<&Checkpoint>,
    ) -> impl Future<Output = Result<MergeOutcome, Error>> + Send;

    /// Drops staging tables left behind by a crash; returns how many.
    fn sweep_stages(&self) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Brings the stored edges of `from_ids` (records of `from_type`) to `to_type` in line
    /// with `edges`, the complete current list for those records, in one transaction: each
    /// edge is inserted, or updated when its category or label changed or it was tombstoned
    /// (the tombstone is cleared); every other stored live edge of those records to `to_type`
    /// gets `deleted_at = synced_at_ms`. Edges are never deleted. Replaying the same call
    /// changes nothing.
    fn merge_edges(
        &self,
        from_type: &str,
        to_type: &str,
        from_ids: &[i64],
        edges: &[Edge],
        synced_at_ms: i64,
    ) -> impl Future<Output = Result<EdgeOutcome, Error>> + Send;

    /// Makes each dimension table in `batches` hold the complete current list its batch
    /// carries, in one transaction with `rejects` and `commit`: every listed row is inserted or
    /// updated (`_hsync_synced_at = synced_at_ms`, `_hsync_removed_at` cleared), and every stored
    /// row the list lacks keeps its values and gets `_hsync_removed_at = synced_at_ms` unless it
    /// has one already (only in a table of complete lists: in `property_history` the rows are
    /// upserted and nothing else changes). Rows are never deleted; tables not in `batches` are
    /// untouched. Batches
    /// with wrong columns, a missing or repeated key, or a table given twice are refused before
    /// anything is written. Returns one outcome per batch, in order.
    fn replace_dimensions(
        &self,
        batches: &[DimensionBatch],
        synced_at_ms: i64,
        rejects: &[Reject],
        commit: Option<&Checkpoint>,
    ) -> impl Future<Output = Result<Vec<DimensionOutcome>, Error>> + Send;

    /// Ids of the rows of an object table that are live (not flagged archived, merged or
    /// deleted), ascending. Empty when the table does not exist.
    fn live_ids(&self, table: &str) -> impl Future<Output = Result<Vec<i64>, Error>> + Send;

    /// Ids of the rows of an object table whose `_hsync_cursor` is at or after `since_ms`,
    /// flagged or not, ascending. Empty when the table does not exist.
    fn ids_modified_since(&self, table: &str, since_ms: i64) -> impl Future<Output = Result<Vec<i64>, Error>> + Send;

    /// The distinct ids at `end` of the live (not tombstoned) edges from `from_type` to
    /// `to_type`, ascending; with `ids`, only edges whose other end is one of them
    /// ([`EdgeEnd::From`] with target ids: the records pointing at them).
    fn edge_ends(
        &self,
        from_type: &str,
        to_type: &str,
        end: EdgeEnd,
        ids: Option<&[i64]>,
    ) -> impl Future<Output = Result<Vec<i64>, Error>> + Send;

    /// The versions `property_history` holds for the records `record_ids` of the table
    /// `object_type`, in no particular order (`prepare` creates the table).
    fn history_versions(
        &self,
        object_type: &str,
        record_ids: &[i64],
    ) -> impl Future<Output = Result<Vec<StoredVersion>, Error>> + Send;

    /// Applies reconciliation flags (see [`RowFlag`]) in one transaction: existing rows get
    /// the flag columns set or cleared **without** the cursor guard of `merge` and without
    /// touching `_hsync_cursor` or any other column; an id the table does not hold gets a row
    /// carrying only its id and flags (when a flag is set). Returns the rows inserted or
    /// changed: applying the same flags twice changes nothing the second time. Give each id
    /// once: with duplicates, which one applies is unspecified.
    fn flag(&self, table: &str, flags: &[RowFlag]) -> impl Future<Output = Result<u64, Error>> + Send;

    /// Every id of an object table with its cursor and flags, by id; empty when the table does
    /// not exist.
    fn id_flags(&self, table: &str) -> impl Future<Output = Result<Vec<IdFlags>, Error>> + Send;

    /// The stored values of `columns` in the rows of an object table whose id is one of `ids`,
    /// one [`Row`] per stored id, ascending; ids the table lacks are left out. Reads only those
    /// columns (BigQuery bills by the columns a query reads). Empty when the table does not
    /// exist; a column it lacks is an error.
    fn read_cells(
        &self,
        table: &str,
        columns: &[String],
        ids: &[i64],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send;

    /// Runs `query`, a read-only SQL query the operator wrote (`hsync push`), with hsync's data
    /// tables reachable unqualified, and returns its rows as text. A query that fails, or a
    /// destination that cannot run one, is [`Error::Query`] (a configuration problem).
    fn query_text(&self, query: &str) -> impl Future<Output = Result<TextRows, Error>> + Send;
}

/// Of a table's described columns (`None`: no table), those `wanted` names, in that order:
/// what [`Destination::read_cells`] reads for `ids`. `None` when there is nothing to read (no
/// table, no ids, no columns); a name the table lacks is an error naming it.
fn wanted_columns(
    kind: crate::config::DestinationKind,
    table: &str,
    described: Option<&[ExistingColumn]>,
    wanted: &[String],
    ids: &[i64],
) -> Result<Option<Vec<ExistingColumn>>, Error> {
    let Some(described) = described else { return Ok(None) };
    let columns = wanted
        .iter()
        .map(|name| {
            described.iter().find(|c| &c.name == name).cloned().ok_or_else(|| Error::Statement {
                kind,
                action: format!("read {name} of {table}"),
                detail: format!("{table} has no column {name}"),
            })
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok((!ids.is_empty() && !columns.is_empty()).then_some(columns))
}
