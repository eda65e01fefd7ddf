//! The Parquet destination: a directory of Parquet files for lakehouse engines (DuckDB, Spark,
//! Trino), one directory per table, one immutable file per batch, each row a complete
//! after-image with the operation that produced it. Users rebuild current state with one query;
//! the layout, the operations and the rule are documented in `docs/destinations/parquet.md`.
//!
//! # Connection
//! [`ParquetDestination::connect`] takes `parquet://DIRECTORY` (`parquet:///var/lib/hsync/lake`
//! or, relative to the working directory, `parquet://lake`) and creates the directory when
//! missing. hsync's state (checkpoints, runs, snapshots, the budget ledger) cannot live in
//! Parquet files: it is in the local SQLite file `destination.state_path`
//! ([`super::LocalState`]), which the runner commits to right after each merge
//! ([`Destination::holds_state`] is false), and whose lock file is the leader lease.
//!
//! # Files
//! - `<table>/_schema.json`: the table's key and columns, written atomically by `alter`
//!   (object tables) or `prepare` (associations, rejects, dimensions). `describe` reads it.
//! - `<table>/<20-digit sequence>-<uuid>.parquet`: data files, written atomically
//!   ([`layout::write_atomically`]) and never changed. Every file has the table's columns at
//!   the time (see [`types`] for the Parquet types; decimals are exact text) plus `_hsync_op`
//!   and `_hsync_batch` (the sequence number).
//! - `<table>/_staging/<uuid>.parquet`: staged batches between `stage` and `merge`.
//! - `associations/`: every object pair's edges, keyed like the SQL destinations' table.
//! - `owners/`, `pipelines/`, `pipeline_stages/`: the dimension tables.
//! - `_hsync_rejects/`: values that did not parse, keyed by object, id, property and raw value.
//!
//! # Writing
//! Every operation reads the table's current state, rebuilt by the rule in [`log`] (cached
//! and brought up to date incrementally), decides which rows change exactly as the SQL
//! destinations' statements do, and appends one file holding only the changed rows' complete
//! new versions; nothing changed, no file. So the guard ("a row is never replaced by an older
//! version of itself") is applied when writing, `MergeOutcome` counts are exact, a replayed
//! batch writes nothing, and the rebuild rule stays "latest file wins". Operations on one
//! table are serialised by a lock per table; different tables proceed in parallel. File work
//! runs on tokio's blocking threads.
//!
//! A merge writes the batch's rejects, then the data file, then removes the stage. A crash in
//! between leaves either nothing visible or a complete file; the unmerged stage is removed by
//! `sweep_stages` (run it at start-up, before any stream stages: it cannot tell a crash's
//! leftovers from a stage in flight), and the replayed batch finds its rows already written.
//! Operations that write several tables (`replace_dimensions`) are not atomic across them; a
//! crash part-way is repaired by the replay the uncommitted checkpoint causes.

#[cfg(feature = "test-support")]
mod inspect;
pub mod layout;
pub mod log;
pub mod types;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;

use self::layout::{Root, TableFile, EDGES_DIR, REJECTS_DIR, STAGING_DIR};
use self::log::{Change, Key, TableLog, Values};
use self::types::Value;
use super::{
    Destination, DimensionOutcome, Edge, EdgeEnd, EdgeOutcome, Error, IdFlags, MergeOutcome, Row as Cells, RowFlag,
    Stage, StoredVersion, ASSOCIATION_COLUMNS, EDGE_KEY, REJECT_COLUMNS,
};
use crate::schema::dimension::{DimensionBatch, DimensionTable, DIMENSION_TABLES, PROPERTY_HISTORY, REMOVED_AT};
use crate::schema::{
    hsync_columns, Change as PlanChange, ColumnBudget, ColumnType, ExistingColumn, Reject, SchemaPlan,
};
use crate::state::Checkpoint;

const KIND: crate::config::DestinationKind = crate::config::DestinationKind::Parquet;

/// Parquet has no column limit; this keeps a runaway portal's files readable by every engine.
pub const COLUMN_BUDGET: ColumnBudget = ColumnBudget(10_000);

/// The operations `_hsync_op` names (see `docs/destinations/parquet.md`).
pub mod ops {
    /// A version of a record merged from HubSpot (new, newer, or the same version with other
    /// values); a listed dimension row; an edge inserted, relabelled or brought back.
    pub const UPSERT: &str = "upsert";
    /// The write set `_hsync_archived_at` (and neither of the flags below).
    pub const ARCHIVE: &str = "archive";
    /// The write set `_hsync_merged_into` (and not `_hsync_deleted_at`).
    pub const MERGE: &str = "merge";
    /// The write set `_hsync_deleted_at`.
    pub const DELETE: &str = "delete";
    /// The write only cleared reconciliation flags.
    pub const RESTORE: &str = "restore";
    /// An edge HubSpot no longer lists: `deleted_at` set.
    pub const TOMBSTONE: &str = "tombstone";
    /// A dimension row HubSpot no longer lists: `_hsync_removed_at` set.
    pub const REMOVE: &str = "remove";
    /// A rejected value.
    pub const REJECT: &str = "reject";
}

/// The key of the rejects files: the first four of [`REJECT_COLUMNS`] (a replay records a
/// value once).
const REJECT_KEY: [&str; 4] = ["object", "id", "property", "raw_value"];

fn columns_of(columns: &[(&str, ColumnType)]) -> Vec<ExistingColumn> {
    columns.iter().map(|(name, ty)| ExistingColumn { name: (*name).to_owned(), ty: *ty }).collect()
}

fn statement_error(action: impl Into<String>, detail: impl Into<String>) -> Error {
    Error::Statement { kind: KIND, action: action.into(), detail: detail.into() }
}

/// Maps a file system error raised while doing `action`.
fn io_error(action: &str, e: &io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            Error::Permission { kind: KIND, action: action.to_owned(), detail: e.to_string() }
        }
        io::ErrorKind::InvalidData | io::ErrorKind::NotFound => statement_error(action, e.to_string()),
        _ => Error::Unavailable { kind: KIND, detail: format!("{action}: {e}") },
    }
}

/// The directory a `parquet://` url names.
fn directory_of(url: &str) -> Result<PathBuf, Error> {
    let path = url.strip_prefix("parquet://").ok_or_else(|| {
        Error::Config("a Parquet destination url looks like parquet:///var/lib/hsync/lake or parquet://lake".to_owned())
    })?;
    if path.is_empty() || path.contains('?') || path.contains('#') {
        return Err(Error::Config(
            "the Parquet destination url names a directory and nothing else: parquet:///var/lib/hsync/lake".to_owned(),
        ));
    }
    Ok(PathBuf::from(path))
}

/// Checks, without creating anything, that the directory a `parquet://` url names exists or
/// can be created (its nearest existing ancestor is a directory), for `hsync check`.
pub fn reach(url: &str) -> Result<(), Error> {
    let dir = directory_of(url)?;
    let mut probe: &Path = &dir;
    loop {
        match std::fs::metadata(probe) {
            Ok(meta) if meta.is_dir() => return Ok(()),
            Ok(_) => {
                return Err(Error::Config(format!(
                    "{} is a file, not a directory; point destination.url at a directory",
                    probe.display()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match probe.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => probe = parent,
                _ => return Ok(()),
            },
            Err(e) => return Err(io_error(&format!("inspect {}", probe.display()), &e)),
        }
    }
}

/// The reconciliation flag a write set, by precedence; `restore` when it only cleared flags.
fn flag_op(old: &Values, new: &Values, [archived, merged, deleted]: [usize; 3]) -> &'static str {
    let set = |i: usize| !new[i].is_null() && new[i] != old[i];
    if set(deleted) {
        ops::DELETE
    } else if set(merged) {
        ops::MERGE
    } else if set(archived) {
        ops::ARCHIVE
    } else {
        ops::RESTORE
    }
}

/// A directory of Parquet files hsync writes to.
#[derive(Clone, Debug)]
pub struct ParquetDestination {
    root: Root,
    /// One cached log per table directory, each behind its own lock.
    logs: Arc<Mutex<HashMap<String, Arc<Mutex<TableLog>>>>>,
}

impl ParquetDestination {
    /// Opens `parquet://DIRECTORY`, creating the directory when missing.
    pub fn connect(url: &str) -> Result<ParquetDestination, Error> {
        let dir = directory_of(url)?;
        std::fs::create_dir_all(&dir).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                Error::Permission { kind: KIND, action: format!("create {}", dir.display()), detail: e.to_string() }
            }
            _ => Error::Config(format!(
                "cannot create the directory {}: {e}; point destination.url at a writable directory",
                dir.display()
            )),
        })?;
        if !dir.is_dir() {
            return Err(Error::Config(format!("{} is not a directory; point destination.url at one", dir.display())));
        }
        Ok(ParquetDestination { root: Root(dir), logs: Arc::default() })
    }

    /// The destination directory.
    pub fn directory(&self) -> &Path {
        &self.root.0
    }

    fn handle(&self, table: &str) -> Result<Arc<Mutex<TableLog>>, Error> {
        if table.is_empty() {
            return Err(statement_error("find a table", "a table name is empty"));
        }
        let dir = self.root.table(table);
        let mut logs = self.logs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let log = logs.entry(layout::dir_name(table)).or_insert_with(|| Arc::new(Mutex::new(TableLog::new(dir))));
        Ok(Arc::clone(log))
    }

    /// Runs `work` on a blocking thread with `table`'s log locked and brought up to date.
    async fn with_log<T: Send + 'static>(
        &self,
        table: &str,
        action: String,
        work: impl FnOnce(&mut TableLog) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let handle = self.handle(table)?;
        let task_action = action.clone();
        tokio::task::spawn_blocking(move || {
            let mut log = lock(&handle);
            log.refresh().map_err(|e| io_error(&task_action, &e))?;
            work(&mut log)
        })
        .await
        .map_err(|e| statement_error(action, format!("the file task failed: {e}")))?
    }

    /// Runs file work that needs no table log on a blocking thread.
    async fn blocking<T: Send + 'static>(
        action: String,
        work: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| statement_error(action, format!("the file task failed: {e}")))?
    }

    /// Writes `rejects` as the next file of `_hsync_rejects/`, under its lock but without
    /// replaying it (the next read replays the new file).
    fn append_rejects(&self, rejects: &[Reject], seen_at_ms: i64) -> Result<(), Error> {
        if rejects.is_empty() {
            return Ok(());
        }
        let action = "record rejected values";
        let handle = self.handle(REJECTS_DIR)?;
        let guard = lock(&handle);
        let dir = guard.dir().to_owned();
        let schema = TableFile::read(&dir)
            .map_err(|e| io_error(action, &e))?
            .ok_or_else(|| statement_error(action, "the rejects directory has no _schema.json; run prepare"))?;
        let changes: Vec<Change> = rejects
            .iter()
            .map(|r| Change {
                op: ops::REJECT,
                row: [&r.object, &r.id, &r.property, &r.raw, &r.reason]
                    .into_iter()
                    .map(|v| Value::Text(v.clone()))
                    .chain([Value::Timestamp(seen_at_ms)])
                    .collect(),
            })
            .collect();
        let seq = layout::data_files(&dir).map_err(|e| io_error(action, &e))?.last().map_or(1, |(seq, _)| seq + 1);
        let batch = log::file_batch(&schema, seq, &changes).map_err(|e| io_error(action, &e))?;
        layout::write_parquet(&dir, &layout::data_file_name(seq), &batch).map_err(|e| io_error(action, &e))?;
        drop(guard);
        Ok(())
    }

    /// Proves hsync may create, write, read and remove files here (`hsync check`): a scratch
    /// table directory `_hsync_check_<8 hex>` gets one data file, which is read back, and is
    /// removed, whichever step fails.
    pub async fn probe_write(&self) -> Result<(), Error> {
        let table = format!("{}{:08x}", super::PROBE_PREFIX, rand::random::<u32>());
        let dir = self.root.table(&table);
        Self::blocking("write a scratch table".to_owned(), move || {
            let action = format!("write the scratch table {table}");
            let probe = || -> io::Result<usize> {
                let schema = TableFile::new(
                    &table,
                    &[hsync_columns::ID],
                    vec![ExistingColumn { name: hsync_columns::ID.to_owned(), ty: ColumnType::BigInt }],
                );
                schema.write(&dir)?;
                let name = layout::data_file_name(1);
                let changes = [Change { op: ops::UPSERT, row: vec![Value::Int(1)] }];
                layout::write_parquet(&dir, &name, &log::file_batch(&schema, 1, &changes)?)?;
                let (_, batches) = layout::read_parquet(&dir.join(name))?;
                Ok(batches.iter().map(RecordBatch::num_rows).sum())
            };
            let result = probe();
            let removed = std::fs::remove_dir_all(&dir);
            match result.map_err(|e| io_error(&action, &e))? {
                1 => removed.map_err(|e| io_error(&format!("remove the scratch table {table}"), &e)),
                n => Err(statement_error(action, format!("{n} rows read back instead of 1"))),
            }
        })
        .await
    }

    /// Stage names (see [`Root::stage_name`]) of every table.
    fn list_stages(root: &Root) -> io::Result<Vec<(String, PathBuf)>> {
        let mut stages = Vec::new();
        for entry in std::fs::read_dir(&root.0)? {
            let entry = entry?;
            let Some(dir) = entry.file_name().to_str().map(str::to_owned) else { continue };
            let staging = entry.path().join(STAGING_DIR);
            let files = match std::fs::read_dir(&staging) {
                Ok(files) => files,
                Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => continue,
                Err(e) => return Err(e),
            };
            for file in files {
                let file = file?;
                let Some(name) = file.file_name().to_str().map(str::to_owned) else { continue };
                stages.push((format!("{dir}/{STAGING_DIR}/{name}"), file.path()));
            }
        }
        stages.sort();
        Ok(stages)
    }

    fn object_columns(log: &TableLog, action: &str) -> Result<ObjectColumns, Error> {
        let schema = log.table().map_err(|e| io_error(action, &e))?;
        let index = |name: &str| {
            schema.column(name).ok_or_else(|| statement_error(action, format!("the table has no {name} column")))
        };
        Ok(ObjectColumns {
            id: index(hsync_columns::ID)?,
            cursor: index(hsync_columns::CURSOR)?,
            flags: [
                index(hsync_columns::ARCHIVED_AT)?,
                index(hsync_columns::MERGED_INTO)?,
                index(hsync_columns::DELETED_AT)?,
            ],
        })
    }

    async fn id_rows<T: Send + 'static>(
        &self,
        table: &str,
        action: String,
        pick: impl Fn(&Values, &ObjectColumns) -> Option<T> + Send + 'static,
    ) -> Result<Vec<T>, Error> {
        let inner = action.clone();
        self.with_log(table, action, move |log| {
            if log.schema.is_none() {
                return Ok(Vec::new());
            }
            let columns = Self::object_columns(log, &inner)?;
            Ok(log.rows().values().filter_map(|row| pick(row, &columns)).collect())
        })
        .await
    }
}

fn lock(handle: &Mutex<TableLog>) -> std::sync::MutexGuard<'_, TableLog> {
    handle.lock().unwrap_or_else(|poisoned| {
        // A task panicked mid-operation: forget the cache, the files are the truth.
        handle.clear_poison();
        let mut log = poisoned.into_inner();
        log.invalidate();
        log
    })
}

/// Where an object table's own columns are.
#[derive(Clone, Copy, Debug)]
struct ObjectColumns {
    id: usize,
    cursor: usize,
    /// Archived, merged into, deleted.
    flags: [usize; 3],
}

impl ObjectColumns {
    fn live(&self, row: &Values) -> bool {
        self.flags.iter().all(|i| row[*i].is_null())
    }
}

/// The table file a plan creates or extends, applied to `existing`: never drops a column.
fn altered(table: &str, existing: Option<TableFile>, plan: &SchemaPlan) -> Result<Option<TableFile>, Error> {
    let schema_error = |detail: String| Error::Schema { kind: KIND, table: table.to_owned(), detail };
    let mut file = existing.clone();
    for change in &plan.changes {
        let wanted: Vec<ExistingColumn> = match change {
            PlanChange::CreateTable { schema } => {
                schema.columns.iter().map(|c| ExistingColumn { name: c.name.clone(), ty: c.ty }).collect()
            }
            PlanChange::AddColumn { column } => vec![ExistingColumn { name: column.name.clone(), ty: column.ty }],
            PlanChange::Widen { column, to, .. } => {
                let file = file.as_mut().ok_or_else(|| schema_error("the table to widen does not exist".to_owned()))?;
                let target = file
                    .columns
                    .iter_mut()
                    .find(|c| &c.name == column)
                    .ok_or_else(|| schema_error(format!("column {column} to widen does not exist")))?;
                if target.ty != *to && !target.ty.widens_to(*to) {
                    return Err(schema_error(format!("column {column} cannot be widened to {to:?}")));
                }
                target.ty = *to;
                continue;
            }
            PlanChange::Incompatible { .. }
            | PlanChange::Overflow { .. }
            | PlanChange::PropertyRemoved { .. }
            | PlanChange::Unmappable { .. }
            | PlanChange::ReplaceView { .. } => continue,
        };
        let file = file.get_or_insert_with(|| TableFile::new(table, &[hsync_columns::ID], Vec::new()));
        for column in wanted {
            if !file.columns.iter().any(|c| c.name == column.name) {
                file.columns.push(column);
            }
        }
    }
    Ok(if file == existing { None } else { file })
}

/// A staged file read back: the table column each staged column fills, and the rows.
struct Staged {
    columns: Vec<usize>,
    id: usize,
    cursor: usize,
    rows: Vec<Values>,
}

fn read_stage(path: &Path, schema: &TableFile, action: &str) -> Result<Staged, Error> {
    let (file_schema, batches) = layout::read_parquet(path).map_err(|e| io_error(action, &e))?;
    let columns: Vec<usize> = file_schema
        .fields()
        .iter()
        .map(|f| {
            schema.column(f.name()).ok_or_else(|| Error::Schema {
                kind: KIND,
                table: schema.table.clone(),
                detail: format!("the batch has a column {} the table lacks; apply the schema plan first", f.name()),
            })
        })
        .collect::<Result<_, _>>()?;
    let find = |name: &str| {
        file_schema.index_of(name).map_err(|_| statement_error(action, format!("the stage has no {name} column")))
    };
    let (id, cursor) = (find(hsync_columns::ID)?, find(hsync_columns::CURSOR)?);
    let mut rows = Vec::new();
    for batch in batches {
        let mut values: Vec<std::vec::IntoIter<Value>> = batch
            .columns()
            .iter()
            .zip(&columns)
            .map(|(array, i)| {
                let column = &schema.columns[*i];
                types::values_of(array, column.ty)
                    .map(Vec::into_iter)
                    .map_err(|e| statement_error(action, format!("column {} {e}", column.name)))
            })
            .collect::<Result<_, _>>()?;
        for _ in 0..batch.num_rows() {
            rows.push(values.iter_mut().map(|v| v.next().unwrap_or(Value::Null)).collect());
        }
    }
    Ok(Staged { columns, id, cursor, rows })
}

/// The guarded merge of staged rows into `log` (see the module docs). Returns the changes and
/// how many staged rows were skipped.
fn merge_rows(log: &TableLog, staged: &Staged, object: &ObjectColumns) -> Result<(Vec<Change>, u64), String> {
    // Duplicate ids keep the newest version; of equal versions, the one staged last.
    let mut newest: BTreeMap<i64, &Values> = BTreeMap::new();
    let mut skipped = 0;
    for row in &staged.rows {
        let id = row[staged.id].as_int().ok_or("a staged row has no id")?;
        match newest.get(&id) {
            Some(kept) if kept[staged.cursor] > row[staged.cursor] => skipped += 1,
            Some(_) => {
                skipped += 1;
                newest.insert(id, row);
            }
            None => {
                newest.insert(id, row);
            }
        }
    }
    // Of one version, a row is rewritten only when a value other than these differs.
    let synced_at = log.table().ok().and_then(|t| t.column(hsync_columns::SYNCED_AT));
    let compared: Vec<usize> = (0..staged.columns.len())
        .filter(|i| ![staged.id, staged.cursor].contains(i) && Some(staged.columns[*i]) != synced_at)
        .collect();
    let mut changes = Vec::new();
    for (id, row) in newest {
        let current = log.rows().get(&vec![Value::Int(id)]);
        let apply = match current {
            None => true,
            Some(current) => {
                let (stored, incoming) = (&current[object.cursor], &row[staged.cursor]);
                stored.is_null()
                    || (!incoming.is_null() && stored < incoming)
                    || (stored == incoming && compared.iter().any(|i| current[staged.columns[*i]] != row[*i]))
            }
        };
        if !apply {
            skipped += 1;
            continue;
        }
        let mut after = current.cloned().unwrap_or_else(|| log.empty_row());
        for (value, column) in row.iter().zip(&staged.columns) {
            after[*column] = value.clone();
        }
        changes.push(Change { op: ops::UPSERT, row: after });
    }
    Ok((changes, skipped))
}

/// The changes one set of flags makes (see [`Destination::flag`]).
fn flag_rows(log: &TableLog, flags: &[RowFlag], object: &ObjectColumns) -> Vec<Change> {
    let mut changed: BTreeMap<Key, Change> = BTreeMap::new();
    for flag in flags {
        let key = vec![Value::Int(flag.id)];
        let current = changed.get(&key).map(|c| &c.row).or_else(|| log.rows().get(&key));
        let sets_any = [flag.archived_at, flag.merged_into, flag.deleted_at].iter().any(|f| matches!(f, Some(Some(_))));
        let before = match current {
            Some(row) => {
                let newer = match (flag.observed_cursor, row[object.cursor].as_timestamp()) {
                    (Some(observed), Some(stored)) => stored > observed,
                    _ => false,
                };
                if newer {
                    continue;
                }
                row.clone()
            }
            None if sets_any => {
                let mut row = log.empty_row();
                row[object.id] = Value::Int(flag.id);
                row
            }
            None => continue,
        };
        let mut after = before.clone();
        let [archived, merged, deleted] = object.flags;
        if let Some(v) = flag.archived_at {
            after[archived] = Value::time(v);
        }
        if let Some(v) = flag.merged_into {
            after[merged] = v.map_or(Value::Null, Value::Int);
        }
        if let Some(v) = flag.deleted_at {
            after[deleted] = Value::time(v);
        }
        // Against the stored row, so flags set and cleared again in one call write nothing.
        let stored = log.rows().get(&key);
        if stored == Some(&after) {
            changed.remove(&key);
        } else if after != before || stored.is_none() {
            let op = flag_op(stored.unwrap_or(&before), &after, object.flags);
            changed.insert(key, Change { op, row: after });
        }
    }
    changed.into_values().collect()
}

impl Destination for ParquetDestination {
    fn kind(&self) -> crate::config::DestinationKind {
        KIND
    }

    fn holds_state(&self) -> bool {
        false
    }

    fn column_budget(&self) -> ColumnBudget {
        COLUMN_BUDGET
    }

    fn has_views(&self) -> bool {
        false
    }

    async fn prepare(&self) -> Result<(), Error> {
        let root = self.root.clone();
        Self::blocking("prepare the destination directory".to_owned(), move || {
            let action = "create hsync's bookkeeping files";
            let fail = |e: io::Error| io_error(action, &e);
            std::fs::create_dir_all(&root.0).map_err(fail)?;
            if !root.0.join(layout::LAYOUT_FILE).exists() {
                let text = layout::layout_json();
                layout::write_atomically(&root.0, layout::LAYOUT_FILE, |f| io::Write::write_all(f, text.as_bytes()))
                    .map_err(fail)?;
            }
            let mut tables = vec![
                TableFile::new(EDGES_DIR, &EDGE_KEY, columns_of(&ASSOCIATION_COLUMNS)),
                TableFile::new(REJECTS_DIR, &REJECT_KEY, columns_of(&REJECT_COLUMNS)),
            ];
            tables.extend(DIMENSION_TABLES.iter().map(|d| TableFile::new(d.name, d.key, d.all_columns())));
            for table in tables {
                let dir = root.table(&table.table);
                match TableFile::read(&dir).map_err(fail)? {
                    Some(existing) if existing == table => {}
                    Some(_) => {
                        return Err(statement_error(
                            action,
                            format!(
                                "{} holds a _schema.json of another layout; move the directory aside",
                                dir.display()
                            ),
                        ))
                    }
                    None => table.write(&dir).map_err(fail)?,
                }
            }
            Ok(())
        })
        .await
    }

    async fn healthcheck(&self) -> Result<(), Error> {
        let root = self.root.0.clone();
        Self::blocking("answer a health check".to_owned(), move || {
            std::fs::read_dir(&root).map(drop).map_err(|e| match e.kind() {
                io::ErrorKind::PermissionDenied => io_error("list the destination directory", &e),
                _ => Error::Unavailable { kind: KIND, detail: format!("cannot list {}: {e}", root.display()) },
            })
        })
        .await
    }

    async fn describe(&self, table: &str) -> Result<Option<Vec<ExistingColumn>>, Error> {
        let dir = self.root.table(table);
        let action = format!("describe {table}");
        Self::blocking(action.clone(), move || {
            Ok(TableFile::read(&dir).map_err(|e| io_error(&action, &e))?.map(|t| t.columns))
        })
        .await
    }

    async fn alter(&self, plan: &SchemaPlan) -> Result<(), Error> {
        if !plan.alters() {
            return Ok(());
        }
        let table = plan.table.clone();
        if [EDGES_DIR, REJECTS_DIR].contains(&layout::dir_name(&table).as_str()) {
            return Err(Error::Schema {
                kind: KIND,
                table,
                detail: "the name is reserved for hsync's own files in the Parquet layout".to_owned(),
            });
        }
        let plan = plan.clone();
        let name = table.clone();
        self.with_log(&name, format!("alter {table}"), move |log| {
            // Applied against the table as it is now, so a plan applied twice is harmless.
            if let Some(file) = altered(&table, log.schema.clone(), &plan)? {
                file.write(log.dir()).map_err(|e| io_error(&format!("write the schema of {table}"), &e))?;
                log.refresh().map_err(|e| io_error(&format!("read {table}"), &e))?;
            }
            Ok(())
        })
        .await
    }

    async fn stage(&self, table: &str, batch: &RecordBatch) -> Result<Stage, Error> {
        let action = format!("stage a batch for {table}");
        let schema = batch.schema();
        if let Some(key) = super::missing_key(batch) {
            return Err(statement_error(&action, format!("the batch has no {key} column")));
        }
        // The batch's own columns, decimals as exact text (see `types`).
        let columns: Vec<(String, ColumnType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), crate::schema::column_type_of(f.data_type(), f.name())))
            .collect();
        let values: Vec<Vec<Value>> = batch
            .columns()
            .iter()
            .zip(&columns)
            .map(|(array, (name, ty))| {
                types::values_of(array, *ty).map_err(|e| statement_error(&action, format!("column {name} {e}")))
            })
            .collect::<Result<_, _>>()?;
        let file_schema = TableFile::new(
            table,
            &[],
            columns.iter().map(|(name, ty)| ExistingColumn { name: name.clone(), ty: *ty }).collect(),
        );
        let arrays = file_schema.columns.iter().zip(&values).map(|(c, v)| types::array_of(c.ty, v.iter())).collect();
        let staged = RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(file_schema.fields())), arrays)
            .map_err(|e| statement_error(&action, e.to_string()))?;
        let (table_dir, staging) = (self.root.table(table), self.root.staging(table));
        let file = format!("{}{}", uuid::Uuid::new_v4().simple(), layout::PARQUET_SUFFIX);
        let stage_table = Root::stage_name(table, &file);
        let rows = batch.num_rows() as u64;
        let inner = action.clone();
        Self::blocking(action, move || {
            let fail = |e: io::Error| io_error(&inner, &e);
            if TableFile::read(&table_dir).map_err(fail)?.is_none() {
                return Err(statement_error(&inner, "the table does not exist; apply its schema plan first"));
            }
            std::fs::create_dir_all(&staging).map_err(fail)?;
            layout::write_parquet(&staging, &file, &staged).map_err(fail)
        })
        .await?;
        Ok(Stage { table: table.to_owned(), stage_table, columns: columns.into_iter().map(|c| c.0).collect(), rows })
    }

    async fn merge(
        &self,
        stage: Stage,
        rejects: &[Reject],
        _commit: Option<&Checkpoint>,
    ) -> Result<MergeOutcome, Error> {
        let table = stage.table.clone();
        let action = format!("merge into {table}");
        if let Some(key) = stage.missing_key() {
            return Err(statement_error(&action, format!("the stage has no {key} column")));
        }
        let path = self
            .root
            .stage_path(&table, &stage.stage_table)
            .ok_or_else(|| statement_error(&action, "the stage does not belong to the table"))?;
        // Rejects first: a crash after them replays the batch, which records them once more
        // under the same key (the rebuild keeps one).
        let (this, rejects, now) = (self.clone(), rejects.to_vec(), chrono::Utc::now().timestamp_millis());
        let inner = action.clone();
        Self::blocking(action.clone(), move || this.append_rejects(&rejects, now)).await?;
        let name = table.clone();
        self.with_log(&name, action, move |log| {
            let schema = log.table().map_err(|e| io_error(&inner, &e))?.clone();
            let object = Self::object_columns(log, &inner)?;
            let staged = read_stage(&path, &schema, &inner)?;
            let (changes, skipped) = merge_rows(log, &staged, &object).map_err(|e| statement_error(&inner, e))?;
            let written = changes.len() as u64;
            log.append(changes).map_err(|e| io_error(&inner, &e))?;
            std::fs::remove_file(&path).map_err(|e| io_error(&format!("remove the stage of {table}"), &e))?;
            Ok(MergeOutcome { written, skipped })
        })
        .await
    }

    async fn sweep_stages(&self) -> Result<u64, Error> {
        let root = self.root.clone();
        Self::blocking("remove staged files".to_owned(), move || {
            let action = "remove staged files";
            let stages = Self::list_stages(&root).map_err(|e| io_error(action, &e))?;
            for (_, path) in &stages {
                std::fs::remove_file(path).map_err(|e| io_error(action, &e))?;
            }
            // Temporary files a crash left mid-write are invisible; remove them too.
            for entry in std::fs::read_dir(&root.0).map_err(|e| io_error(action, &e))?.flatten() {
                for dir in [entry.path(), entry.path().join(STAGING_DIR)] {
                    let Ok(files) = std::fs::read_dir(&dir) else { continue };
                    for file in files.flatten() {
                        if file.file_name().to_str().is_some_and(layout::is_temporary) {
                            std::fs::remove_file(file.path()).map_err(|e| io_error(action, &e))?;
                        }
                    }
                }
            }
            Ok(stages.len() as u64)
        })
        .await
    }

    async fn merge_edges(
        &self,
        from_type: &str,
        to_type: &str,
        from_ids: &[i64],
        edges: &[Edge],
        synced_at_ms: i64,
    ) -> Result<EdgeOutcome, Error> {
        let action = format!("merge association edges from {from_type} to {to_type}");
        let edges: Vec<Edge> = super::edges_by_key(KIND, from_ids, edges)?.into_iter().cloned().collect();
        if from_ids.is_empty() {
            return Ok(EdgeOutcome::default());
        }
        let (from_type, to_type, from_ids) = (from_type.to_owned(), to_type.to_owned(), from_ids.to_vec());
        let inner = action.clone();
        self.with_log(EDGES_DIR, action, move |log| {
            let key = |from_id: i64, to_id: i64, type_id: i32| -> Key {
                vec![
                    Value::Text(from_type.clone()),
                    Value::Int(from_id),
                    Value::Text(to_type.clone()),
                    Value::Int(to_id),
                    Value::Int(i64::from(type_id)),
                ]
            };
            let (category, label, synced_at, deleted_at) = (5, 6, 7, 8);
            let mut changes = Vec::new();
            let mut listed = BTreeSet::new();
            for edge in &edges {
                let k = key(edge.from_id, edge.to_id, edge.type_id);
                let wanted = (Value::Text(edge.category.clone()), edge.label.clone().map_or(Value::Null, Value::Text));
                let stored = log.rows().get(&k);
                let unchanged = stored.is_some_and(|row| {
                    row[deleted_at].is_null() && (&row[category], &row[label]) == (&wanted.0, &wanted.1)
                });
                if !unchanged {
                    let mut row = k.clone();
                    row.extend([wanted.0, wanted.1, Value::Timestamp(synced_at_ms), Value::Null]);
                    changes.push(Change { op: ops::UPSERT, row });
                }
                listed.insert(k);
            }
            let upserted = changes.len() as u64;
            for from_id in from_ids.iter().copied().collect::<BTreeSet<_>>() {
                let start = vec![Value::Text(from_type.clone()), Value::Int(from_id)];
                let end = vec![Value::Text(from_type.clone()), Value::Int(from_id.saturating_add(1))];
                for (k, row) in log.rows().range(start..end) {
                    if k[2] != Value::Text(to_type.clone()) || !row[deleted_at].is_null() || listed.contains(k) {
                        continue;
                    }
                    let mut row = row.clone();
                    row[synced_at] = Value::Timestamp(synced_at_ms);
                    row[deleted_at] = Value::Timestamp(synced_at_ms);
                    changes.push(Change { op: ops::TOMBSTONE, row });
                }
            }
            let tombstoned = changes.len() as u64 - upserted;
            log.append(changes).map_err(|e| io_error(&inner, &e))?;
            Ok(EdgeOutcome { upserted, tombstoned })
        })
        .await
    }

    async fn replace_dimensions(
        &self,
        batches: &[DimensionBatch],
        synced_at_ms: i64,
        rejects: &[Reject],
        _commit: Option<&Checkpoint>,
    ) -> Result<Vec<DimensionOutcome>, Error> {
        let action = "replace the owners and pipelines tables";
        super::check_dimensions(KIND, batches)?;
        // Converted up front: a value that cannot be written fails before anything is.
        let prepared: Vec<(&'static DimensionTable, Vec<Values>)> = batches
            .iter()
            .map(|d| {
                let columns: Vec<Vec<Value>> = d
                    .batch
                    .columns()
                    .iter()
                    .zip(d.table.columns)
                    .map(|(array, (name, ty))| {
                        types::values_of(array, *ty)
                            .map_err(|e| statement_error(action, format!("column {name} of {} {e}", d.table.name)))
                    })
                    .collect::<Result<_, _>>()?;
                let rows = (0..d.batch.num_rows())
                    .map(|i| {
                        let removed_at = d.table.complete_lists.then_some(Value::Null);
                        columns
                            .iter()
                            .map(|c| c[i].clone())
                            .chain([Value::Timestamp(synced_at_ms)])
                            .chain(removed_at)
                            .collect()
                    })
                    .collect();
                Ok((d.table, rows))
            })
            .collect::<Result<_, Error>>()?;
        let (this, rejects) = (self.clone(), rejects.to_vec());
        Self::blocking(action.to_owned(), move || this.append_rejects(&rejects, synced_at_ms)).await?;
        let mut outcomes = Vec::with_capacity(prepared.len());
        for (table, rows) in prepared {
            let inner = format!("write the {} table", table.name);
            let outcome = self
                .with_log(table.name, inner.clone(), move |log| {
                    let count = rows.len() as u64;
                    if !table.complete_lists {
                        let changes = rows.into_iter().map(|row| Change { op: ops::UPSERT, row }).collect();
                        log.append(changes).map_err(|e| io_error(&inner, &e))?;
                        return Ok(DimensionOutcome { table: table.name, rows: count, removed: 0 });
                    }
                    let schema = log.table().map_err(|e| io_error(&inner, &e))?;
                    let removed_at = schema
                        .column(REMOVED_AT)
                        .ok_or_else(|| statement_error(&inner, format!("the table has no {REMOVED_AT} column")))?;
                    let listed: BTreeSet<Key> = rows.iter().map(|r| log.key_of(r)).collect();
                    let mut changes: Vec<Change> =
                        rows.into_iter().map(|row| Change { op: ops::UPSERT, row }).collect();
                    for (key, row) in log.rows() {
                        if !listed.contains(key) && row[removed_at].is_null() {
                            let mut row = row.clone();
                            row[removed_at] = Value::Timestamp(synced_at_ms);
                            changes.push(Change { op: ops::REMOVE, row });
                        }
                    }
                    let removed = changes.len() as u64 - count;
                    log.append(changes).map_err(|e| io_error(&inner, &e))?;
                    Ok(DimensionOutcome { table: table.name, rows: count, removed })
                })
                .await?;
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn live_ids(&self, table: &str) -> Result<Vec<i64>, Error> {
        self.id_rows(table, format!("read the live ids of {table}"), |row, c| {
            c.live(row).then(|| row[c.id].as_int()).flatten()
        })
        .await
    }

    async fn ids_modified_since(&self, table: &str, since_ms: i64) -> Result<Vec<i64>, Error> {
        self.id_rows(table, format!("read the ids of {table} modified since a time"), move |row, c| {
            row[c.cursor].as_timestamp().is_some_and(|t| t >= since_ms).then(|| row[c.id].as_int()).flatten()
        })
        .await
    }

    async fn edge_ends(
        &self,
        from_type: &str,
        to_type: &str,
        end: EdgeEnd,
        ids: Option<&[i64]>,
    ) -> Result<Vec<i64>, Error> {
        let action = end.action(from_type, to_type);
        let (from_type, to_type) = (Value::Text(from_type.to_owned()), Value::Text(to_type.to_owned()));
        let ids: Option<BTreeSet<i64>> = ids.map(|ids| ids.iter().copied().collect());
        // Key columns: from_type, from_id, to_type, to_id, type_id.
        let (wanted, other) = match end {
            EdgeEnd::From => (1, 3),
            EdgeEnd::To => (3, 1),
        };
        self.with_log(EDGES_DIR, action, move |log| {
            let mut found = BTreeSet::new();
            for (key, row) in log.rows() {
                let named = ids.as_ref().is_none_or(|ids| key[other].as_int().is_some_and(|id| ids.contains(&id)));
                if key[0] == from_type && key[2] == to_type && row[8].is_null() && named {
                    found.extend(key[wanted].as_int());
                }
            }
            Ok(found.into_iter().collect())
        })
        .await
    }

    async fn history_versions(&self, object_type: &str, record_ids: &[i64]) -> Result<Vec<StoredVersion>, Error> {
        let action = format!("read the stored history of {} {object_type}", record_ids.len());
        if record_ids.is_empty() {
            return Ok(Vec::new());
        }
        let (object_type, wanted) = (object_type.to_owned(), record_ids.iter().copied().collect::<BTreeSet<i64>>());
        let inner = action.clone();
        self.with_log(PROPERTY_HISTORY.name, action, move |log| {
            let schema = log.table().map_err(|e| io_error(&inner, &e))?;
            let index = |name: &str| {
                schema.column(name).ok_or_else(|| statement_error(&inner, format!("the table has no {name} column")))
            };
            let [object, record, property, version, value, changed] =
                ["object_type", "record_id", "property", "version_id", "value", "changed_at"].map(index);
            let (object, record, property, version, value, changed) =
                (object?, record?, property?, version?, value?, changed?);
            let text = |row: &Values, i: usize| row[i].as_text().map(str::to_owned);
            let versions: Vec<StoredVersion> = log
                .rows()
                .values()
                .filter(|row| row[object].as_text() == Some(object_type.as_str()))
                .filter_map(|row| {
                    let record_id = row[record].as_int().filter(|id| wanted.contains(id))?;
                    Some(StoredVersion {
                        record_id,
                        property: text(row, property)?,
                        version_id: text(row, version)?,
                        value: text(row, value),
                        changed_at_ms: row[changed].as_timestamp(),
                    })
                })
                .collect();
            Ok(versions)
        })
        .await
    }

    async fn flag(&self, table: &str, flags: &[RowFlag]) -> Result<u64, Error> {
        if flags.is_empty() {
            return Ok(0);
        }
        let action = format!("flag rows of {table}");
        let flags = flags.to_vec();
        let inner = action.clone();
        self.with_log(table, action, move |log| {
            let object = Self::object_columns(log, &inner)?;
            let changes = flag_rows(log, &flags, &object);
            let changed = changes.len() as u64;
            log.append(changes).map_err(|e| io_error(&inner, &e))?;
            Ok(changed)
        })
        .await
    }

    async fn id_flags(&self, table: &str) -> Result<Vec<IdFlags>, Error> {
        self.id_rows(table, format!("read the ids and flags of {table}"), |row, c| {
            let [archived, merged, deleted] = c.flags;
            Some(IdFlags {
                id: row[c.id].as_int()?,
                cursor: row[c.cursor].as_timestamp(),
                archived_at: row[archived].as_timestamp(),
                merged_into: row[merged].as_int(),
                deleted_at: row[deleted].as_timestamp(),
            })
        })
        .await
    }

    async fn read_cells(&self, table: &str, columns: &[String], ids: &[i64]) -> Result<Vec<Cells>, Error> {
        let action = format!("read {} columns of {} rows of {table}", columns.len(), ids.len());
        let (name, wanted, ids) = (table.to_owned(), columns.to_vec(), ids.to_vec());
        let inner = action.clone();
        self.with_log(table, action, move |log| {
            let described = log.schema.as_ref().map(|s| s.columns.as_slice());
            let Some(chosen) = super::wanted_columns(KIND, &name, described, &wanted, &ids)? else {
                return Ok(Vec::new());
            };
            let schema = log.table().map_err(|e| io_error(&inner, &e))?;
            let at: Vec<usize> = chosen
                .iter()
                .map(|c| {
                    schema
                        .columns
                        .iter()
                        .position(|d| d.name == c.name)
                        .expect("invariant: a chosen column is described")
                })
                .collect();
            let id = Self::object_columns(log, &inner)?.id;
            let asked: BTreeSet<i64> = ids.iter().copied().collect();
            log.rows()
                .values()
                .filter(|row| row[id].as_int().is_some_and(|v| asked.contains(&v)))
                .map(|row| {
                    chosen
                        .iter()
                        .zip(&at)
                        .map(|(c, &i)| {
                            Ok((
                                c.name.clone(),
                                types::cell(&row[i], c.ty, &c.name).map_err(|e| statement_error(&inner, e))?,
                            ))
                        })
                        .collect()
                })
                .collect()
        })
        .await
    }

    async fn query_text(&self, _query: &str) -> Result<super::TextRows, Error> {
        // Files, not a database: nothing here runs SQL.
        Err(Error::Query {
            kind: KIND,
            detail: "a Parquet destination has no SQL engine to run a query; leave out push.<name>.query and point \
                     push.<name>.file at a Parquet file (one of the destination's, or rows exported from elsewhere)"
                .to_owned(),
        })
    }
}
