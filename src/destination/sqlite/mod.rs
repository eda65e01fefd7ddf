//! The SQLite destination: object tables, staging tables, rejected values, association edges
//! and (through [`SqliteDestination::state_store`]) hsync's state, all in one database file.
//!
//! # Connection
//! [`SqliteDestination::connect`] takes `sqlite://path/to/hsync.db` (the file is created when
//! missing). In-memory databases are refused: every pooled connection would see its own empty
//! database. Each connection uses WAL journaling (readers never block the writer),
//! `synchronous = FULL` (a committed merge and its checkpoint survive power loss, not only a
//! crash) and a busy timeout, so concurrent streams queue for SQLite's single writer instead of
//! failing. Write transactions start with `begin immediate`, taking the write lock up front.
//!
//! # Tables
//! - Object tables: created and altered by [`Destination::alter`] from a schema plan (never
//!   from `migrations/`), primary key `id`, column types as in [`types`].
//! - `_hsync_checkpoints`, `_hsync_runs`, `_hsync_property_snapshots`, `_hsync_budget`: from
//!   `migrations/sqlite`, run by `prepare` (see [`SqliteStateStore`]).
//! - `_hsync_rejects (object, id, property, raw_value, reason, seen_at)`: values that did not
//!   parse, one row per distinct raw value of a record's property, so replays do not double it.
//! - `associations`: **one table for every object pair**, the pair as columns
//!   (`from_type, from_id, to_type, to_id, type_id, category, label, synced_at, deleted_at`),
//!   primary key `(from_type, from_id, to_type, to_id, type_id)`. One table keeps the edge
//!   sweep and tombstoning one statement whatever the object types (custom objects included),
//!   needs no DDL when a new pair appears, and keeps every label (each label is its own
//!   `type_id`). A vanished edge keeps its row with `deleted_at` set. `merge_edges` runs, in
//!   one write transaction, the upsert of [`sql::render_upsert_edges`] and the tombstoning
//!   update of [`sql::render_tombstone_edges`]; the edge list and the ids are each bound as one
//!   JSON array (read with `json_each`), so no statement meets SQLite's variable limit.
//! - `owners`, `pipelines`, `pipeline_stages`: the dimension tables, created by `prepare` from
//!   their layout in [`crate::schema::dimension`] ([`sql::render_create_dimension`]).
//! - `_hsync_stage_<table>_<8 hex digits>`: staging tables, alive between `stage` and `merge`.
//!
//! # Schema changes
//! `alter` applies a plan's `CreateTable`, `AddColumn` and `Widen` changes in one transaction,
//! against the table as it is at that moment (applying a plan twice is harmless); it never
//! drops a column, and leaves `PropertyRemoved`, `Overflow` and `Incompatible` to the caller.
//! SQLite cannot change a column's type, so widening rebuilds the table the way SQLite
//! documents: create the new table, copy every row (dates become midnight UTC, booleans
//! `true`/`false`, integers their text), drop the old one, rename the new one, then re-create
//! the indexes and triggers someone made on it. Views over the table keep working.
//!
//! # Stage and merge
//! `stage` creates a staging table with the batch's columns and inserts the batch with bound
//! values (multi-row inserts chunked under SQLite's limit of 32,766 variables), in one
//! committed transaction. `merge` runs, in one transaction: the guarded upsert rendered by
//! [`sql::render_merge`] (only the staged columns are set; a row is never replaced by an older
//! version; a replayed batch changes no row), the rejects, the checkpoint commit (the same
//! statement the state store uses, `sql/sqlite/commit_checkpoint.sql`) and the stage's drop.
//! `written` is the rows the upsert changed and `skipped` the other staged rows.
//!
//! `sweep_stages` drops every staging table: run it at start-up, before any stream stages,
//! since it cannot tell a crash's leftovers from a stage in flight.
//!
//! # Dimensions
//! `replace_dimensions` runs in one write transaction: per table, the listed rows in bound
//! multi-row upserts ([`sql::render_upsert_dimension`]), then, for a table of complete lists,
//! the flagging of the rows the list lacks ([`sql::render_remove_missing_dimension`], the
//! list's keys bound as one JSON array), then the rejects and the checkpoint.
//!
//! # Flags
//! `flag` writes reconciliation flags in one transaction, in chunks of bound `values` rows:
//! [`sql::render_flag_insert`] adds id-only rows for unknown ids, then
//! [`sql::render_flag_update`] sets or clears the flag columns of the rows whose flags differ,
//! without the cursor guard and without writing `_hsync_cursor`.
//!
//! Identifiers are quoted only by [`sql::quote_ident`]; values are always bound. Dynamic SQL
//! reaches sqlx through one function, `dynamic`.

#[cfg(feature = "test-support")]
mod inspect;
pub mod sql;
mod state;
pub mod types;

use std::str::FromStr;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Arguments, AssertSqlSafe, Row, Sqlite, SqliteConnection, SqlitePool};

pub use self::state::SqliteStateStore;
use self::state::{commit_checkpoint_on, run_migrations};
use self::types::Value;
use super::{
    Destination, DimensionOutcome, Edge, EdgeEnd, EdgeOutcome, Error, IdFlags, MergeOutcome, Row as Cells, RowFlag,
    Stage, StoredVersion,
};
use crate::schema::dimension::{DimensionBatch, DIMENSION_TABLES};
use crate::schema::{column_type_of, hsync_columns, Change, ColumnBudget, ExistingColumn, Reject, SchemaPlan};
use crate::state::Checkpoint;

const KIND: crate::config::DestinationKind = crate::config::DestinationKind::Sqlite;
/// SQLite's limit on bound variables per statement (the default since 3.32).
const MAX_VARIABLES: usize = 32_766;
/// Rows per multi-row insert, at most.
const MAX_ROWS_PER_INSERT: usize = 500;
/// How long a connection waits for another writer before failing with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// SQLite has one writer at a time; a few connections let reads proceed beside it.
const MAX_CONNECTIONS: u32 = 4;
/// Write transactions take the write lock up front, so they wait (busy timeout) instead of
/// failing when a read lock cannot be upgraded.
pub(crate) const BEGIN_WRITE: &str = "begin immediate";

/// Opens a pool on a SQLite file with hsync's connection settings (see the module docs).
pub(crate) async fn open_pool(options: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT);
    SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS).connect_with(options).await
}

/// The one place dynamic SQL text reaches sqlx. Every such text comes from a `sql::render_*`
/// function: identifiers quoted by `quote_ident`, values as `?` placeholders bound in `args`.
fn dynamic(sql: String, args: SqliteArguments) -> Query<'static, Sqlite, SqliteArguments> {
    sqlx::query_with(AssertSqlSafe(sql), args).persistent(false)
}

/// Maps an sqlx error raised while doing `action`.
fn failed(action: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Error {
    let action = action.into();
    move |e| Error::from_sqlx(KIND, action, e)
}

fn statement_error(action: impl Into<String>, detail: impl Into<String>) -> Error {
    Error::Statement { kind: KIND, action: action.into(), detail: detail.into() }
}

fn bind(args: &mut SqliteArguments, value: Value) -> Result<(), String> {
    match value {
        Value::Null => args.add(Option::<i64>::None),
        Value::Integer(v) => args.add(v),
        Value::Text(v) => args.add(v),
    }
    .map_err(|e| e.to_string())
}

async fn describe_on(conn: &mut SqliteConnection, table: &str) -> Result<Option<Vec<ExistingColumn>>, Error> {
    let rows = sqlx::query(sql::DESCRIBE_TABLE)
        .bind(table)
        .fetch_all(conn)
        .await
        .map_err(failed(format!("describe {table}")))?;
    if rows.is_empty() {
        return Ok(None);
    }
    rows.iter()
        .map(|row| {
            let name: String = row.try_get("name").map_err(failed(format!("describe {table}")))?;
            let declared: String = row.try_get("type").map_err(failed(format!("describe {table}")))?;
            Ok(ExistingColumn { name, ty: types::column_type(&declared) })
        })
        .collect::<Result<Vec<_>, Error>>()
        .map(Some)
}

/// Records rejected values inside the caller's transaction.
async fn insert_rejects(conn: &mut SqliteConnection, rejects: &[Reject]) -> Result<(), sqlx::Error> {
    for reject in rejects {
        sqlx::query(sql::INSERT_REJECT)
            .bind(&reject.object)
            .bind(&reject.id)
            .bind(&reject.property)
            .bind(&reject.raw)
            .bind(&reject.reason)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The values of one dimension batch ready to bind: per column its values, and the keys of the
/// list as the JSON array [`sql::render_remove_missing_dimension`] binds.
fn dimension_values(dimension: &DimensionBatch, action: &str) -> Result<(Vec<Vec<Value>>, String), Error> {
    let table = dimension.table;
    let columns: Vec<Vec<Value>> = dimension
        .batch
        .columns()
        .iter()
        .zip(table.columns)
        .map(|(array, (name, _))| {
            types::column_values(array)
                .map_err(|e| statement_error(action, format!("column {name} of {} {e}", table.name)))
        })
        .collect::<Result<_, _>>()?;
    let key_columns: Vec<&Vec<Value>> =
        table.columns.iter().zip(&columns).filter(|((name, _), _)| table.key.contains(name)).map(|(_, v)| v).collect();
    let keys: Vec<serde_json::Value> = (0..dimension.batch.num_rows())
        .map(|row| {
            key_columns
                .iter()
                .map(|column| match &column[row] {
                    Value::Text(key) => serde_json::Value::String(key.clone()),
                    Value::Integer(key) => serde_json::Value::from(*key),
                    // `check_dimensions` refused batches with a missing key.
                    _ => serde_json::Value::Null,
                })
                .collect()
        })
        .collect();
    Ok((columns, serde_json::Value::Array(keys).to_string()))
}

/// The bound values of one flag row, in the order of [`super::flag_sql::FLAG_COLUMNS`].
fn flag_values(flag: &RowFlag) -> Result<[Value; 8], String> {
    let time = |ms: Option<i64>| -> Result<Value, String> {
        match ms {
            None => Ok(Value::Null),
            Some(ms) => types::format_timestamp_ms(ms)
                .map(Value::Text)
                .ok_or_else(|| "a flag time is outside the years 0000 to 9999".to_owned()),
        }
    };
    let set = |f: Option<Option<i64>>| Value::Integer(i64::from(f.is_some()));
    Ok([
        Value::Integer(flag.id),
        set(flag.archived_at),
        time(flag.archived_at.flatten())?,
        set(flag.merged_into),
        flag.merged_into.flatten().map_or(Value::Null, Value::Integer),
        set(flag.deleted_at),
        time(flag.deleted_at.flatten())?,
        time(flag.observed_cursor)?,
    ])
}

/// A stored timestamp column read back as epoch milliseconds.
fn stored_ms(row: &SqliteRow, column: &str, action: &str) -> Result<Option<i64>, Error> {
    let text: Option<String> = row.try_get(column).map_err(failed(action))?;
    text.map(|t| {
        types::parse_timestamp_ms(&t)
            .ok_or_else(|| statement_error(action, format!("column {column} holds a value that is not a timestamp")))
    })
    .transpose()
}

/// A SQLite database hsync writes to.
#[derive(Clone, Debug)]
pub struct SqliteDestination {
    pool: SqlitePool,
}

impl SqliteDestination {
    /// Opens `sqlite://path/to/file.db`, creating the file when missing.
    pub async fn connect(url: &str) -> Result<SqliteDestination, Error> {
        if !url.starts_with("sqlite:") {
            return Err(Error::Config("a SQLite destination url looks like sqlite://path/to/hsync.db".to_owned()));
        }
        let options = SqliteConnectOptions::from_str(url).map_err(|e| Error::Config(format!("{e}")))?;
        let path = options.get_filename().to_string_lossy();
        if url.contains(":memory:") || url.contains("mode=memory") || path.is_empty() || path == ":memory:" {
            return Err(Error::Config(
                "the SQLite destination needs a file (sqlite://path/to/hsync.db), not an in-memory database".to_owned(),
            ));
        }
        let path = options.get_filename().to_owned();
        let pool =
            open_pool(options).await.map_err(|e| Error::from_sqlx_at(KIND, Some(&path), "open the database", e))?;
        Ok(SqliteDestination { pool })
    }

    /// The database file.
    pub fn database_path(&self) -> std::path::PathBuf {
        self.pool.connect_options().get_filename().to_owned()
    }

    /// The state store in the same database, sharing this destination's connections.
    pub fn state_store(&self) -> SqliteStateStore {
        SqliteStateStore::from_pool(self.pool.clone())
    }

    /// Closes every connection (waiting for those in use to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Like [`failed`], naming the database file, so a read-only or otherwise unusable file is
    /// reported by name.
    fn failed_here(&self, action: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Error + '_ {
        let action = action.into();
        move |e| Error::from_sqlx_at(KIND, Some(&self.database_path()), action, e)
    }

    async fn write_transaction(&self, action: &str) -> Result<sqlx::Transaction<'static, Sqlite>, Error> {
        self.pool.begin_with(BEGIN_WRITE).await.map_err(self.failed_here(action))
    }

    async fn create_missing(
        conn: &mut SqliteConnection,
        table: &str,
        existing: &mut Option<Vec<ExistingColumn>>,
        wanted: &[ExistingColumn],
    ) -> Result<(), Error> {
        match existing {
            None => {
                dynamic(sql::render_create_table(table, wanted), SqliteArguments::default())
                    .execute(&mut *conn)
                    .await
                    .map_err(failed(format!("create table {table}")))?;
                *existing = Some(wanted.to_vec());
            }
            Some(columns) => {
                for column in wanted {
                    if columns.iter().any(|c| c.name == column.name) {
                        continue;
                    }
                    dynamic(sql::render_add_column(table, column), SqliteArguments::default())
                        .execute(&mut *conn)
                        .await
                        .map_err(failed(format!("add column {} to {table}", column.name)))?;
                    columns.push(column.clone());
                }
            }
        }
        Ok(())
    }

    /// Rebuilds `table` with the `to` column types (SQLite's documented procedure: new table,
    /// copy, drop, rename, then the table's indexes and triggers again), inside the caller's
    /// transaction.
    async fn rebuild(
        conn: &mut SqliteConnection,
        table: &str,
        from: &[ExistingColumn],
        to: &[ExistingColumn],
    ) -> Result<(), Error> {
        let action = format!("widen columns of {table}");
        let dependents: Vec<String> = sqlx::query_scalar(sql::TABLE_DEPENDENTS)
            .bind(table)
            .fetch_all(&mut *conn)
            .await
            .map_err(failed(&action))?;
        sqlx::query(sql::LEGACY_ALTER_TABLE_ON).execute(&mut *conn).await.map_err(failed(&action))?;
        let mut rebuilt = Ok(());
        for statement in sql::render_rebuild_for_widen(table, from, to).into_iter().chain(dependents) {
            rebuilt = dynamic(statement, SqliteArguments::default()).execute(&mut *conn).await.map(drop);
            if rebuilt.is_err() {
                break;
            }
        }
        // The pragma belongs to the connection, not the transaction: reset it whatever happened.
        let reset = sqlx::query(sql::LEGACY_ALTER_TABLE_OFF).execute(&mut *conn).await;
        rebuilt.map_err(failed(&action))?;
        reset.map_err(failed(&action))?;
        Ok(())
    }

    /// Proves hsync may create, write and drop a table in this database (`hsync check`): a
    /// scratch table `_hsync_check_<8 hex>` is created, gets one bound row and is dropped, in
    /// one transaction, so nothing is left behind whichever step fails.
    pub async fn probe_write(&self) -> Result<(), Error> {
        let table = format!("{}{:08x}", super::PROBE_PREFIX, rand::random::<u32>());
        let mut tx = self.write_transaction("start a write transaction").await?;
        let id = ExistingColumn { name: hsync_columns::ID.to_owned(), ty: crate::schema::ColumnType::BigInt };
        dynamic(sql::render_create_table(&table, std::slice::from_ref(&id)), SqliteArguments::default())
            .execute(&mut *tx)
            .await
            .map_err(self.failed_here(format!("create table {table}")))?;
        let mut args = SqliteArguments::default();
        args.add(1_i64).map_err(|e| statement_error(format!("write to {table}"), e.to_string()))?;
        let written = dynamic(sql::render_insert_stage(&table, &[id.name], 1), args)
            .execute(&mut *tx)
            .await
            .map_err(self.failed_here(format!("write to {table}")))?
            .rows_affected();
        if written != 1 {
            return Err(statement_error(format!("write to {table}"), format!("{written} rows written instead of 1")));
        }
        dynamic(sql::render_drop(&table), SqliteArguments::default())
            .execute(&mut *tx)
            .await
            .map_err(self.failed_here(format!("drop table {table}")))?;
        tx.commit().await.map_err(self.failed_here("commit the write check"))
    }

    async fn list_stages(&self) -> Result<Vec<String>, Error> {
        let rows = sqlx::query(sql::LIST_STAGES)
            .fetch_all(&self.pool)
            .await
            .map_err(self.failed_here("list staging tables"))?;
        rows.iter().map(|r| r.try_get::<String, _>("name").map_err(self.failed_here("list staging tables"))).collect()
    }
}

impl Destination for SqliteDestination {
    fn kind(&self) -> crate::config::DestinationKind {
        KIND
    }

    fn column_budget(&self) -> ColumnBudget {
        ColumnBudget::SQLITE
    }

    async fn prepare(&self) -> Result<(), Error> {
        run_migrations(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) | sqlx::migrate::MigrateError::ExecuteMigration(e, _) => {
                self.failed_here("run the state migrations")(e)
            }
            other => statement_error("run the state migrations", other.to_string()),
        })?;
        sqlx::raw_sql(sql::PREPARE)
            .execute(&self.pool)
            .await
            .map_err(self.failed_here("create the rejects and associations tables"))?;
        dynamic(sql::render_create_associations_live(), SqliteArguments::default())
            .execute(&self.pool)
            .await
            .map_err(self.failed_here("create the associations_live view"))?;
        for table in DIMENSION_TABLES {
            dynamic(sql::render_create_dimension(table), SqliteArguments::default())
                .execute(&self.pool)
                .await
                .map_err(self.failed_here(format!("create the {} table", table.name)))?;
        }
        let view = crate::destination::HISTORY_SPANS_VIEW;
        let mut tx = self.write_transaction("create the property history view").await?;
        for statement in sql::render_replace_history_spans() {
            dynamic(statement, SqliteArguments::default())
                .execute(&mut *tx)
                .await
                .map_err(self.failed_here(format!("create the {view} view")))?;
        }
        tx.commit().await.map_err(self.failed_here(format!("create the {view} view")))?;
        Ok(())
    }

    async fn healthcheck(&self) -> Result<(), Error> {
        sqlx::query("select 1").fetch_one(&self.pool).await.map_err(self.failed_here("answer a health check"))?;
        Ok(())
    }

    async fn describe(&self, table: &str) -> Result<Option<Vec<ExistingColumn>>, Error> {
        let mut conn = self.pool.acquire().await.map_err(self.failed_here(format!("describe {table}")))?;
        describe_on(&mut conn, table).await
    }

    async fn alter(&self, plan: &SchemaPlan) -> Result<(), Error> {
        if !plan.alters() {
            return Ok(());
        }
        let table = plan.table.as_str();
        let mut tx = self.write_transaction(&format!("alter {table}")).await?;
        // Applied against the table as it is now, so a plan applied twice (or raced) is harmless.
        let mut existing = describe_on(&mut tx, table).await?;
        let mut widen = Vec::new();
        for change in &plan.changes {
            match change {
                Change::CreateTable { schema } => {
                    let wanted: Vec<ExistingColumn> =
                        schema.columns.iter().map(|c| ExistingColumn { name: c.name.clone(), ty: c.ty }).collect();
                    Self::create_missing(&mut tx, table, &mut existing, &wanted).await?;
                }
                Change::AddColumn { column } => {
                    let wanted = [ExistingColumn { name: column.name.clone(), ty: column.ty }];
                    Self::create_missing(&mut tx, table, &mut existing, &wanted).await?;
                }
                Change::Widen { column, to, .. } => widen.push((column, *to)),
                Change::Incompatible { .. }
                | Change::Overflow { .. }
                | Change::PropertyRemoved { .. }
                | Change::Unmappable { .. }
                | Change::ReplaceView { .. } => {}
            }
        }
        if !widen.is_empty() {
            let schema_error = |detail: String| Error::Schema { kind: KIND, table: table.to_owned(), detail };
            let from = existing.ok_or_else(|| schema_error("the table to widen does not exist".to_owned()))?;
            let mut to = from.clone();
            for (column, ty) in widen {
                let target = to
                    .iter_mut()
                    .find(|c| &c.name == column)
                    .ok_or_else(|| schema_error(format!("column {column} to widen does not exist")))?;
                target.ty = ty;
            }
            if to != from {
                Self::rebuild(&mut tx, table, &from, &to).await?;
            }
        }
        if let Some((view, _)) = plan.live_view() {
            for statement in sql::render_replace_live_view(table, view) {
                dynamic(statement, SqliteArguments::default())
                    .execute(&mut *tx)
                    .await
                    .map_err(failed(format!("replace view {view}")))?;
            }
        }
        tx.commit().await.map_err(self.failed_here(format!("commit the changes to {table}")))
    }

    async fn stage(&self, table: &str, batch: &RecordBatch) -> Result<Stage, Error> {
        let action = format!("stage a batch for {table}");
        let schema = batch.schema();
        let columns: Vec<ExistingColumn> = schema
            .fields()
            .iter()
            .map(|f| ExistingColumn { name: f.name().clone(), ty: column_type_of(f.data_type(), f.name()) })
            .collect();
        if let Some(key) = super::missing_key(batch) {
            return Err(statement_error(&action, format!("the batch has no {key} column")));
        }
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let stage_table = format!("{}{table}_{:08x}", sql::STAGE_PREFIX, rand::random::<u32>());
        let rows = batch.num_rows();
        let per_insert = (MAX_VARIABLES / names.len().max(1)).clamp(1, MAX_ROWS_PER_INSERT);

        let mut tx = self.write_transaction(&action).await?;
        dynamic(sql::render_create_stage(&stage_table, &columns), SqliteArguments::default())
            .execute(&mut *tx)
            .await
            .map_err(self.failed_here(format!("create a staging table for {table}")))?;
        for start in (0..rows).step_by(per_insert) {
            let end = (start + per_insert).min(rows);
            // Converted one insert's rows at a time, so a wide page is not held twice. A column
            // that cannot be written fails the transaction, so nothing of the batch is staged.
            let mut values: Vec<std::vec::IntoIter<Value>> = batch
                .slice(start, end - start)
                .columns()
                .iter()
                .zip(&columns)
                .map(|(array, c)| {
                    types::column_values(array)
                        .map(Vec::into_iter)
                        .map_err(|e| statement_error(&action, format!("column {} {e}", c.name)))
                })
                .collect::<Result<_, _>>()?;
            let mut args = SqliteArguments::default();
            for _ in start..end {
                for column in values.iter_mut() {
                    let value = column
                        .next()
                        .ok_or_else(|| statement_error(&action, "a batch column ended before the others"))?;
                    bind(&mut args, value).map_err(|e| statement_error(&action, e))?;
                }
            }
            dynamic(sql::render_insert_stage(&stage_table, &names, end - start), args)
                .execute(&mut *tx)
                .await
                .map_err(self.failed_here(&action))?;
        }
        tx.commit().await.map_err(self.failed_here(&action))?;
        Ok(Stage { table: table.to_owned(), stage_table, columns: names, rows: rows as u64 })
    }

    async fn merge(
        &self,
        stage: Stage,
        rejects: &[Reject],
        commit: Option<&Checkpoint>,
    ) -> Result<MergeOutcome, Error> {
        let table = stage.table.as_str();
        if let Some(key) = stage.missing_key() {
            return Err(statement_error(format!("merge into {table}"), format!("the stage has no {key} column")));
        }
        let mut tx = self.write_transaction(&format!("merge into {table}")).await?;
        let done = dynamic(sql::render_merge(table, &stage.stage_table, &stage.columns), SqliteArguments::default())
            .execute(&mut *tx)
            .await
            .map_err(self.failed_here(format!("merge into {table}")))?;
        let written = done.rows_affected();
        insert_rejects(&mut tx, rejects)
            .await
            .map_err(self.failed_here(format!("record rejected values of {table}")))?;
        if let Some(checkpoint) = commit {
            commit_checkpoint_on(&mut tx, checkpoint)
                .await
                .map_err(self.failed_here(format!("commit the checkpoint of {}", checkpoint.stream)))?;
        }
        dynamic(sql::render_drop(&stage.stage_table), SqliteArguments::default())
            .execute(&mut *tx)
            .await
            .map_err(self.failed_here(format!("drop the staging table of {table}")))?;
        tx.commit().await.map_err(self.failed_here(format!("commit the merge into {table}")))?;
        Ok(MergeOutcome { written, skipped: stage.rows.saturating_sub(written) })
    }

    async fn sweep_stages(&self) -> Result<u64, Error> {
        let stages = self.list_stages().await?;
        if stages.is_empty() {
            return Ok(0);
        }
        let mut tx = self.write_transaction("drop staging tables").await?;
        for stage in &stages {
            dynamic(sql::render_drop(stage), SqliteArguments::default())
                .execute(&mut *tx)
                .await
                .map_err(self.failed_here("drop staging tables"))?;
        }
        tx.commit().await.map_err(self.failed_here("drop staging tables"))?;
        Ok(stages.len() as u64)
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
        let edges = super::edges_by_key(KIND, from_ids, edges)?;
        if from_ids.is_empty() {
            return Ok(EdgeOutcome::default());
        }
        let synced_at = types::format_timestamp_ms(synced_at_ms)
            .ok_or_else(|| statement_error(&action, "the sync time is outside the years 0000 to 9999"))?;
        // Values travel as JSON data in one bound parameter each, whatever the number of edges.
        let edges_json = serde_json::Value::Array(
            edges.iter().map(|e| serde_json::json!([e.from_id, e.to_id, e.type_id, e.category, e.label])).collect(),
        )
        .to_string();
        let ids_json = serde_json::Value::from(from_ids.to_vec()).to_string();
        let args = |values: Vec<Value>| -> Result<SqliteArguments, Error> {
            let mut args = SqliteArguments::default();
            for value in values {
                bind(&mut args, value).map_err(|e| statement_error(&action, e))?;
            }
            Ok(args)
        };
        let upsert = args(vec![
            Value::Text(from_type.to_owned()),
            Value::Text(to_type.to_owned()),
            Value::Text(synced_at.clone()),
            Value::Text(edges_json.clone()),
        ])?;
        let tombstone = args(vec![
            Value::Text(synced_at.clone()),
            Value::Text(synced_at),
            Value::Text(from_type.to_owned()),
            Value::Text(to_type.to_owned()),
            Value::Text(ids_json),
            Value::Text(edges_json),
        ])?;
        let mut tx = self.write_transaction(&action).await?;
        let upserted = dynamic(sql::render_upsert_edges(), upsert)
            .execute(&mut *tx)
            .await
            .map_err(self.failed_here(&action))?
            .rows_affected();
        let tombstoned = dynamic(sql::render_tombstone_edges(), tombstone)
            .execute(&mut *tx)
            .await
            .map_err(self.failed_here(&action))?
            .rows_affected();
        tx.commit().await.map_err(self.failed_here(&action))?;
        Ok(EdgeOutcome { upserted, tombstoned })
    }

    async fn replace_dimensions(
        &self,
        batches: &[DimensionBatch],
        synced_at_ms: i64,
        rejects: &[Reject],
        commit: Option<&Checkpoint>,
    ) -> Result<Vec<DimensionOutcome>, Error> {
        let action = "replace the owners and pipelines tables";
        super::check_dimensions(KIND, batches)?;
        let synced_at = types::format_timestamp_ms(synced_at_ms)
            .ok_or_else(|| statement_error(action, "the sync time is outside the years 0000 to 9999"))?;
        // Converted up front: a value that cannot be written fails before anything is.
        let prepared: Vec<_> =
            batches.iter().map(|d| dimension_values(d, action).map(|v| (d.table, v))).collect::<Result<_, _>>()?;
        let mut tx = self.write_transaction(action).await?;
        let mut outcomes = Vec::with_capacity(prepared.len());
        for (table, (mut columns, keys)) in prepared {
            let rows = columns.first().map_or(0, Vec::len);
            let per_insert = (MAX_VARIABLES / (table.columns.len() + 1)).clamp(1, MAX_ROWS_PER_INSERT);
            for start in (0..rows).step_by(per_insert) {
                let end = (start + per_insert).min(rows);
                let mut args = SqliteArguments::default();
                for row in start..end {
                    for column in columns.iter_mut() {
                        let value = std::mem::replace(&mut column[row], Value::Null);
                        bind(&mut args, value).map_err(|e| statement_error(action, e))?;
                    }
                    bind(&mut args, Value::Text(synced_at.clone())).map_err(|e| statement_error(action, e))?;
                }
                dynamic(sql::render_upsert_dimension(table, end - start), args)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.failed_here(format!("write the {} table", table.name)))?;
            }
            let mut removed = 0;
            if table.complete_lists {
                let mut args = SqliteArguments::default();
                for value in [Value::Text(synced_at.clone()), Value::Text(keys)] {
                    bind(&mut args, value).map_err(|e| statement_error(action, e))?;
                }
                removed = dynamic(sql::render_remove_missing_dimension(table), args)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.failed_here(format!("flag the rows removed from {}", table.name)))?
                    .rows_affected();
            }
            outcomes.push(DimensionOutcome { table: table.name, rows: rows as u64, removed });
        }
        insert_rejects(&mut tx, rejects)
            .await
            .map_err(self.failed_here("record rejected values of the dimension tables"))?;
        if let Some(checkpoint) = commit {
            commit_checkpoint_on(&mut tx, checkpoint)
                .await
                .map_err(self.failed_here(format!("commit the checkpoint of {}", checkpoint.stream)))?;
        }
        tx.commit().await.map_err(self.failed_here(action))?;
        Ok(outcomes)
    }

    async fn live_ids(&self, table: &str) -> Result<Vec<i64>, Error> {
        if self.describe(table).await?.is_none() {
            return Ok(Vec::new());
        }
        dynamic(sql::render_live_ids(table), SqliteArguments::default())
            .fetch_all(&self.pool)
            .await
            .and_then(|rows| rows.iter().map(|r| r.try_get::<i64, _>(0)).collect())
            .map_err(self.failed_here(format!("read the live ids of {table}")))
    }

    async fn ids_modified_since(&self, table: &str, since_ms: i64) -> Result<Vec<i64>, Error> {
        let action = format!("read the ids of {table} modified since a time");
        if self.describe(table).await?.is_none() {
            return Ok(Vec::new());
        }
        // Before the epoch every row qualifies; stored timestamps compare as fixed-width text.
        let since = types::format_timestamp_ms(since_ms.max(0))
            .ok_or_else(|| statement_error(&action, "the time is outside the years 0000 to 9999"))?;
        let mut args = SqliteArguments::default();
        bind(&mut args, Value::Text(since)).map_err(|e| statement_error(&action, e))?;
        dynamic(sql::render_ids_modified_since(table), args)
            .fetch_all(&self.pool)
            .await
            .and_then(|rows| rows.iter().map(|r| r.try_get::<i64, _>(0)).collect())
            .map_err(self.failed_here(&action))
    }

    async fn edge_ends(
        &self,
        from_type: &str,
        to_type: &str,
        end: EdgeEnd,
        ids: Option<&[i64]>,
    ) -> Result<Vec<i64>, Error> {
        let action = end.action(from_type, to_type);
        let mut args = SqliteArguments::default();
        let mut values = vec![Value::Text(from_type.to_owned()), Value::Text(to_type.to_owned())];
        if let Some(ids) = ids {
            values.push(Value::Text(serde_json::Value::from(ids.to_vec()).to_string()));
        }
        for value in values {
            bind(&mut args, value).map_err(|e| statement_error(&action, e))?;
        }
        dynamic(sql::render_edge_ends(end, ids.is_some()), args)
            .fetch_all(&self.pool)
            .await
            .and_then(|rows| rows.iter().map(|r| r.try_get::<i64, _>(0)).collect())
            .map_err(self.failed_here(&action))
    }

    async fn history_versions(&self, object_type: &str, record_ids: &[i64]) -> Result<Vec<StoredVersion>, Error> {
        let action = format!("read the stored history of {} {object_type}", record_ids.len());
        if record_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = SqliteArguments::default();
        for value in
            [Value::Text(object_type.to_owned()), Value::Text(serde_json::Value::from(record_ids.to_vec()).to_string())]
        {
            bind(&mut args, value).map_err(|e| statement_error(&action, e))?;
        }
        let rows = dynamic(sql::render_history_versions(), args)
            .fetch_all(&self.pool)
            .await
            .map_err(self.failed_here(&action))?;
        rows.iter()
            .map(|row| {
                let version = StoredVersion {
                    record_id: row.try_get(0).map_err(self.failed_here(&action))?,
                    property: row.try_get(1).map_err(self.failed_here(&action))?,
                    version_id: row.try_get(2).map_err(self.failed_here(&action))?,
                    value: row.try_get(3).map_err(self.failed_here(&action))?,
                    changed_at_ms: stored_ms(row, "changed_at", &action)?,
                };
                Ok(version)
            })
            .collect()
    }

    async fn flag(&self, table: &str, flags: &[RowFlag]) -> Result<u64, Error> {
        if flags.is_empty() {
            return Ok(0);
        }
        let action = format!("flag rows of {table}");
        let rows: Vec<[Value; 8]> =
            flags.iter().map(flag_values).collect::<Result<_, _>>().map_err(|e| statement_error(&action, e))?;
        let per_statement = (MAX_VARIABLES / super::flag_sql::FLAG_COLUMNS.len()).clamp(1, MAX_ROWS_PER_INSERT);
        let mut tx = self.write_transaction(&action).await?;
        let mut changed = 0;
        for chunk in rows.chunks(per_statement) {
            // Unknown ids first, so the update then finds every row (and counts none twice).
            for statement in [sql::render_flag_insert(table, chunk.len()), sql::render_flag_update(table, chunk.len())]
            {
                let mut args = SqliteArguments::default();
                for value in chunk.iter().flatten() {
                    bind(&mut args, value.clone()).map_err(|e| statement_error(&action, e))?;
                }
                changed += dynamic(statement, args)
                    .execute(&mut *tx)
                    .await
                    .map_err(self.failed_here(&action))?
                    .rows_affected();
            }
        }
        tx.commit().await.map_err(self.failed_here(&action))?;
        Ok(changed)
    }

    async fn id_flags(&self, table: &str) -> Result<Vec<IdFlags>, Error> {
        let action = format!("read the ids and flags of {table}");
        if self.describe(table).await?.is_none() {
            return Ok(Vec::new());
        }
        let rows = dynamic(sql::render_id_flags(table), SqliteArguments::default())
            .fetch_all(&self.pool)
            .await
            .map_err(self.failed_here(&action))?;
        rows.iter()
            .map(|row| {
                Ok(IdFlags {
                    id: row.try_get(hsync_columns::ID).map_err(self.failed_here(&action))?,
                    cursor: stored_ms(row, hsync_columns::CURSOR, &action)?,
                    archived_at: stored_ms(row, hsync_columns::ARCHIVED_AT, &action)?,
                    merged_into: row.try_get(hsync_columns::MERGED_INTO).map_err(self.failed_here(&action))?,
                    deleted_at: stored_ms(row, hsync_columns::DELETED_AT, &action)?,
                })
            })
            .collect()
    }

    async fn read_cells(&self, table: &str, columns: &[String], ids: &[i64]) -> Result<Vec<Cells>, Error> {
        let action = format!("read {} columns of {} rows of {table}", columns.len(), ids.len());
        let described = self.describe(table).await?;
        let Some(columns) = super::wanted_columns(KIND, table, described.as_deref(), columns, ids)? else {
            return Ok(Vec::new());
        };
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let mut args = SqliteArguments::default();
        bind(&mut args, Value::Text(serde_json::Value::from(ids.to_vec()).to_string()))
            .map_err(|e| statement_error(&action, e))?;
        let rows = dynamic(sql::render_read_cells(table, &names), args)
            .fetch_all(&self.pool)
            .await
            .map_err(self.failed_here(&action))?;
        cells_of(&action, &columns, &rows)
    }

    async fn query_text(&self, query: &str) -> Result<super::TextRows, Error> {
        let failed = |e: sqlx::Error| Error::Query { kind: KIND, detail: e.to_string() };
        let mut conn = self.pool.acquire().await.map_err(|e| statement_error("run the push query", e.to_string()))?;
        // Read-only for the query alone: the connection goes back to the pool writable.
        sqlx::query("pragma query_only = on").execute(&mut *conn).await.map_err(failed)?;
        let rows = sqlx::query(AssertSqlSafe(query.to_owned())).persistent(false).fetch_all(&mut *conn).await;
        sqlx::query("pragma query_only = off").execute(&mut *conn).await.map_err(failed)?;
        let rows = rows.map_err(failed)?;
        text_rows(&rows).map_err(|detail| Error::Query { kind: KIND, detail })
    }
}

/// Rows read for `columns` (in that order), as [`Cells`].
fn cells_of(action: &str, columns: &[ExistingColumn], rows: &[SqliteRow]) -> Result<Vec<Cells>, Error> {
    rows.iter()
        .map(|row| {
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| Ok((c.name.clone(), types::cell(row, i, c).map_err(|e| statement_error(action, e))?)))
                .collect()
        })
        .collect()
}

/// A query's rows as text: integers and reals as written, text as is; a BLOB is refused.
fn text_rows(rows: &[sqlx::sqlite::SqliteRow]) -> Result<super::TextRows, String> {
    use sqlx::{Column, TypeInfo, ValueRef};
    let columns: Vec<String> =
        rows.first().map(|r| r.columns().iter().map(|c| c.name().to_owned()).collect()).unwrap_or_default();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut values = Vec::with_capacity(columns.len());
        for (i, name) in columns.iter().enumerate() {
            let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
            if raw.is_null() {
                values.push(None);
                continue;
            }
            let kind = raw.type_info().name().to_owned();
            let text = match kind.as_str() {
                "INTEGER" | "BOOLEAN" | "INT8" => row.try_get_unchecked::<i64, _>(i).map(|v| v.to_string()),
                "REAL" => row.try_get_unchecked::<f64, _>(i).map(|v| v.to_string()),
                "BLOB" => return Err(format!("column {name} holds a BLOB; cast it to text in the query")),
                _ => row.try_get_unchecked::<String, _>(i),
            };
            values.push(Some(text.map_err(|e| format!("column {name}: {e}"))?));
        }
        out.push(values);
    }
    Ok(super::TextRows { columns, rows: out })
}
