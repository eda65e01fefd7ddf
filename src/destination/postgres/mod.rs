//! The Postgres destination: object tables in the data schema (`hubspot` by default), hsync's
//! bookkeeping (state tables from `migrations/postgres`, staging tables) in the state schema
//! (`hsync` by default). This module owns the connection pool, the one executor helper that
//! hands generated SQL to sqlx ([`statement`]), and the [`Destination`] implementation;
//! statement text comes from [`sql`], type mapping and COPY encoding from [`types`], and
//! hsync's state store over the same pool ([`PostgresStateStore`]) from `state.rs`.
//!
//! # How a batch lands
//! 1. `stage` creates an `UNLOGGED` table `<state>.stage_<table>_<8 hex>` with the batch's
//!    columns, typed as the object table types them, and COPYs the batch in (text format, see
//!    [`types`]), in one committed transaction.
//! 2. `merge`, in one transaction: checks the stage still holds every loaded row (Postgres
//!    empties unlogged tables after a crash; a merge of an emptied stage must not commit a
//!    checkpoint), upserts the newest staged version of each id guarded by `_hsync_cursor`
//!    (only the staged columns are written), records the rejects, commits the checkpoint with
//!    the state store's own statement (`sql/postgres/commit_checkpoint.sql`, search_path set
//!    locally to the state schema) and drops the stage.
//! 3. `sweep_stages` drops every `stage_%` table in the state schema. Run it at start-up,
//!    before streams run: it also drops stages that are waiting for a merge.
//!
//! The pool's TCP connections get `TCP_NODELAY` (`nodelay.rs`): without it each COPY waits for a
//! delayed ACK before its end is sent.
//!
//! `replace_dimensions`, in one transaction, copies each dimension list into a temporary table
//! (`on commit drop`, so a crash leaves nothing behind), upserts it into its table, flags the
//! stored rows the list lacks (`not exists` against the temporary table), then records the
//! rejects and commits the checkpoint.
//!
//! Reconciliation flags (`flag`) are bound as eight arrays and applied in one transaction by
//! two statements over `unnest`: id-only rows for unknown ids, then an update of the flag
//! columns that differ, without the cursor guard and without writing `_hsync_cursor`.
//!
//! # Bookkeeping tables
//! `prepare` creates, in the data schema, `_hsync_rejects` (values that did not parse, with
//! the raw value and reason) and `associations`: **one edge table for every object pair**,
//! keyed by `(from_type, from_id, to_type, to_id, type_id)`, with the category, label, the
//! sync time and a `deleted_at` tombstone for edges HubSpot no longer holds. One table keeps
//! the association sweep a single diff and lets new custom object pairs appear without DDL.
//! It also creates the dimension tables `owners`, `pipelines` and `pipeline_stages` from their
//! layout in [`crate::schema::dimension`].
//! `merge_edges` runs, in one transaction, an upsert from the edges bound as parallel arrays
//! (`unnest`) and an update tombstoning the records' other live edges (`not exists` against
//! the same arrays); an unchanged edge is not rewritten, so a replay changes nothing.
//!
//! # Connections
//! Every pooled connection has its search_path set to the state schema (bound with
//! `set_config`, never interpolated), so the state store's static SQL and sqlx's
//! `_sqlx_migrations` table land there. Everything in the data schema is schema-qualified.
//! Nothing depends on session settings: sqlx starts sessions in UTC, but values are loaded
//! with explicit offsets and widened and read back with explicit zones all the same.
//!
//! Errors name the action and the table, never a row value: Postgres's data-exception messages
//! quote the offending value, so those are replaced by their SQLSTATE.

#[cfg(feature = "test-support")]
mod inspect;
mod nodelay;
pub mod sql;
mod state;
pub mod types;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row as _};

use self::state::commit_checkpoint_on;
pub use self::state::PostgresStateStore;
use super::{
    Destination, DimensionOutcome, Edge, EdgeEnd, EdgeOutcome, Error, IdFlags, MergeOutcome, Row as Cells, RowFlag,
    Stage, StoredVersion,
};
use crate::schema::dimension::{DimensionBatch, DimensionTable, DIMENSION_TABLES};
use crate::schema::{
    hsync_columns, Change, Column, ColumnBudget, ColumnType, ExistingColumn, Reject, SchemaPlan, TableSchema,
};
use crate::state::Checkpoint;

const KIND: crate::config::DestinationKind = crate::config::DestinationKind::Postgres;

/// The data schema the CLI uses unless configured otherwise.
pub const DEFAULT_DATA_SCHEMA: &str = "hubspot";
/// The state schema the CLI uses unless configured otherwise.
pub const DEFAULT_STATE_SCHEMA: &str = "hsync";

const DESCRIBE_COLUMNS: &str = include_str!("../../../sql/postgres/describe_columns.sql");
const LIST_STAGES: &str = include_str!("../../../sql/postgres/list_stages.sql");
/// `$1` a quoted schema name, `$2` whether only for the current transaction.
const SET_SEARCH_PATH: &str = "select set_config('search_path', $1, $2)";
/// `$1` a schema name: serialises hsync's set-up of that schema across sessions until the
/// caller's transaction ends (`create ... if not exists` run by two sessions at once fails on a
/// catalog index with a duplicate key).
const LOCK_PREPARE: &str = "select pg_advisory_xact_lock(hashtextextended('hsync prepare ' || $1, 0))";
/// COPY data is sent in chunks of this size.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// The one place a generated statement (identifiers quoted by [`sql::quote_ident`], values
/// left to bind parameters) is handed to sqlx.
pub(crate) fn statement(sql: String) -> sqlx::query::Query<'static, Postgres, PgArguments> {
    sqlx::query(sqlx::AssertSqlSafe(sql))
}

/// Maps an sqlx error raised while doing `action` on `table`. Data exceptions (SQLSTATE class
/// 22) quote the rejected value in Postgres's message, so only their code is kept.
fn db_error(action: &str, table: &str, e: sqlx::Error) -> Error {
    if let sqlx::Error::Database(db) = &e {
        if let Some(code) = db.code().filter(|c| c.starts_with("22")) {
            return Error::Schema {
                kind: KIND,
                table: table.to_owned(),
                detail: format!(
                    "{action}: Postgres rejected a value (SQLSTATE {code}); the value is not shown, check the \
                     table's column types"
                ),
            };
        }
    }
    Error::from_sqlx(KIND, action, e)
}

fn check_schema_name(role: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > sql::MAX_IDENTIFIER_BYTES || name.contains('\0') {
        return Err(Error::Config(format!(
            "the {role} schema name must be 1 to {} bytes without NUL characters",
            sql::MAX_IDENTIFIER_BYTES
        )));
    }
    Ok(())
}

/// Postgres would silently truncate a longer name, so a table or column would not be found
/// again under the name hsync knows it by.
fn check_identifier(table: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > sql::MAX_IDENTIFIER_BYTES || name.contains('\0') {
        return Err(Error::Schema {
            kind: KIND,
            table: table.to_owned(),
            detail: format!(
                "the name {name:?} is empty, longer than {} bytes or contains a NUL character",
                sql::MAX_IDENTIFIER_BYTES
            ),
        });
    }
    Ok(())
}

/// Takes the set-up lock of `schema` for the caller's transaction (see [`LOCK_PREPARE`]).
pub(crate) async fn lock_prepare(conn: &mut sqlx::PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    sqlx::query(LOCK_PREPARE).bind(schema).execute(conn).await.map(|_| ())
}

/// One connection attempt, without the pool's retries (which wait out a server that is still
/// starting): for `hsync check`, so a server that is down is reported at once and by cause.
pub async fn reach(url: &str) -> Result<(), Error> {
    use sqlx::Connection;
    let conn = sqlx::PgConnection::connect_with(&connect_options(url)?)
        .await
        .map_err(|e| Error::from_sqlx(KIND, "connect", e))?;
    conn.close().await.map_err(|e| Error::from_sqlx(KIND, "close the connection", e))
}

/// The query parameters sqlx's Postgres driver reads (besides `options[NAME]`).
const DRIVER_PARAMETERS: [&str; 18] = [
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// The connect options of `url`. Parameters the driver does not read are dropped here, with a
/// warning naming only the parameter: sqlx would log each one with its value, and libpq's
/// `sslpassword` is such a parameter.
fn connect_options(url: &str) -> Result<PgConnectOptions, Error> {
    let mut kept = url.to_owned();
    if let Some((base, query)) = url.split_once('?') {
        let pairs: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let name: String = form_urlencoded::parse(pair.split('=').next().unwrap_or_default().as_bytes())
                    .map(|(k, _)| k.into_owned())
                    .collect();
                let known =
                    name.is_empty() || DRIVER_PARAMETERS.contains(&name.as_str()) || name.starts_with("options[");
                if !known {
                    let plain =
                        name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    let parameter = if plain { name.as_str() } else { "(a name that is not plain text)" };
                    tracing::warn!(
                        parameter,
                        "ignoring a destination.url parameter the Postgres driver does not support"
                    );
                }
                known
            })
            .collect();
        kept = if pairs.is_empty() { base.to_owned() } else { format!("{base}?{}", pairs.join("&")) };
    }
    PgConnectOptions::from_str(&kept).map_err(|e| {
        Error::Config(format!(
            "not a usable Postgres URL: {e}; percent-encode /, ?, #, @ and : inside the user name and password \
             (%2F, %3F, %23, %40, %3A)"
        ))
    })
}

/// Opens a pool whose connections use `state_schema` as their search_path.
pub(crate) async fn connect_pool(url: &str, state_schema: &str) -> Result<PgPool, Error> {
    check_schema_name("state", state_schema)?;
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(Error::Config("a Postgres URL starts with postgres:// or postgresql://".to_owned()));
    }
    let options = connect_options(url)?;
    let search_path = sql::quote_ident(state_schema);
    PgPoolOptions::new()
        .max_connections(8)
        // Short: the commands and the daemon retry an unreachable database with their own
        // logged backoff; a long silent wait here only hides an outage.
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            let search_path = search_path.clone();
            Box::pin(async move {
                nodelay::set(conn).await;
                sqlx::query(SET_SEARCH_PATH).bind(search_path).bind(false).execute(conn).await.map(|_| ())
            })
        })
        .connect_with(options)
        .await
        .map_err(|e| Error::from_sqlx(KIND, "connect", e))
}

/// Text Postgres can store: NUL characters become U+FFFD.
fn storable(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// A Postgres database hsync writes to.
#[derive(Clone)]
pub struct PostgresDestination {
    pool: PgPool,
    data_schema: String,
    state_schema: String,
}

impl fmt::Debug for PostgresDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool's options hold the connection settings, password included: not shown.
        f.debug_struct("PostgresDestination")
            .field("data_schema", &self.data_schema)
            .field("state_schema", &self.state_schema)
            .finish_non_exhaustive()
    }
}

impl PostgresDestination {
    /// Connects to `url`; object tables go to `data_schema`, state and stages to
    /// `state_schema` (which must differ: the stage sweep drops `stage_%` tables there).
    pub async fn connect(url: &str, data_schema: &str, state_schema: &str) -> Result<Self, Error> {
        check_schema_name("data", data_schema)?;
        check_schema_name("state", state_schema)?;
        if data_schema == state_schema {
            return Err(Error::Config(
                "the data and state schemas must differ: hsync drops leftover stage_* tables in the state schema"
                    .to_owned(),
            ));
        }
        let pool = connect_pool(url, state_schema).await?;
        Ok(PostgresDestination { pool, data_schema: data_schema.to_owned(), state_schema: state_schema.to_owned() })
    }

    /// The state store in this database, sharing the connection pool.
    pub fn state_store(&self) -> PostgresStateStore {
        PostgresStateStore::with_pool(self.pool.clone(), &self.state_schema)
    }

    pub fn data_schema(&self) -> &str {
        &self.data_schema
    }

    pub fn state_schema(&self) -> &str {
        &self.state_schema
    }

    /// The connection pool (the leader lease detaches a session from it).
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every connection (waiting for those in use to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Proves hsync may create, write and drop a table in the data schema (`hsync check`): a
    /// scratch table `_hsync_check_<8 hex>` is created, gets one bound row and is dropped, in
    /// one transaction, so nothing is left behind whichever step fails.
    pub async fn probe_write(&self) -> Result<(), Error> {
        let table = format!("{}{:08x}", super::PROBE_PREFIX, rand::random::<u32>());
        let schema = &self.data_schema;
        let mut tx = self.pool.begin().await.map_err(|e| Error::from_sqlx(KIND, "start a transaction", e))?;
        let scratch = TableSchema {
            name: table.clone(),
            columns: vec![Column::hsync(hsync_columns::ID, ColumnType::BigInt)],
            overflow: Vec::new(),
            retired: Vec::new(),
        };
        statement(sql::render_create_table(schema, &scratch))
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::from_sqlx(KIND, format!("create table {table} in schema {schema}"), e))?;
        let written = statement(sql::render_insert_id(schema, &table))
            .bind(1_i64)
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::from_sqlx(KIND, format!("write to {schema}.{table}"), e))?
            .rows_affected();
        if written != 1 {
            return Err(Error::Statement {
                kind: KIND,
                action: format!("write to {schema}.{table}"),
                detail: format!("{written} rows written instead of 1"),
            });
        }
        statement(sql::render_drop_table(schema, &table))
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::from_sqlx(KIND, format!("drop table {schema}.{table}"), e))?;
        tx.commit().await.map_err(|e| Error::from_sqlx(KIND, "commit the write check", e))
    }

    async fn list_stages(&self) -> Result<Vec<String>, Error> {
        sqlx::query_scalar(LIST_STAGES)
            .bind(&self.state_schema)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::from_sqlx(KIND, "list staging tables", e))
    }

    async fn drop_stage(&self, stage_table: &str) -> Result<(), Error> {
        statement(sql::render_drop_table(&self.state_schema, stage_table))
            .execute(&self.pool)
            .await
            .map_err(|e| Error::from_sqlx(KIND, format!("drop staging table {stage_table}"), e))?;
        Ok(())
    }

    async fn merge_in_transaction(
        &self,
        stage: &Stage,
        rejects: &[Reject],
        commit: Option<&Checkpoint>,
    ) -> Result<MergeOutcome, Error> {
        let table = stage.table.as_str();
        let action = format!("merge into {table}");
        let err = |e| db_error(&action, table, e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        self.state_search_path(&mut tx).await.map_err(err)?;
        let staged: i64 = statement(sql::render_count(&self.state_schema, &stage.stage_table))
            .fetch_one(&mut *tx)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(err)?;
        if u64::try_from(staged).ok() != Some(stage.rows) {
            return Err(Error::Unavailable {
                kind: KIND,
                detail: format!(
                    "staging table {} holds {staged} of the {} rows loaded into it (Postgres empties unlogged \
                     tables when it recovers from a crash); the batch must be staged again",
                    stage.stage_table, stage.rows
                ),
            });
        }
        let written = statement(sql::render_merge(
            &self.data_schema,
            table,
            &self.state_schema,
            &stage.stage_table,
            &stage.columns,
        ))
        .execute(&mut *tx)
        .await
        .map_err(err)?
        .rows_affected();
        self.insert_rejects(&mut tx, rejects)
            .await
            .map_err(|e| db_error(&format!("record rejects for {table}"), table, e))?;
        if let Some(checkpoint) = commit {
            commit_checkpoint_on(&mut tx, checkpoint)
                .await
                .map_err(|e| db_error(&format!("commit checkpoint {}", checkpoint.stream), table, e))?;
        }
        statement(sql::render_drop_table(&self.state_schema, &stage.stage_table))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(MergeOutcome { written, skipped: stage.rows.saturating_sub(written) })
    }

    /// Sets the search_path to the state schema for the caller's transaction only, so the
    /// state store's static statements find their tables.
    async fn state_search_path(&self, conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
        sqlx::query(SET_SEARCH_PATH).bind(sql::quote_ident(&self.state_schema)).bind(true).execute(conn).await?;
        Ok(())
    }

    /// Records rejected values inside the caller's transaction.
    async fn insert_rejects(&self, conn: &mut sqlx::PgConnection, rejects: &[Reject]) -> Result<(), sqlx::Error> {
        if rejects.is_empty() {
            return Ok(());
        }
        let column = |f: fn(&Reject) -> &str| rejects.iter().map(|r| storable(f(r))).collect::<Vec<String>>();
        statement(sql::render_insert_rejects(&self.data_schema))
            .bind(column(|r| &r.object))
            .bind(column(|r| &r.id))
            .bind(column(|r| &r.property))
            .bind(column(|r| &r.raw))
            .bind(column(|r| &r.reason))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Loads one dimension list into its temporary table, then upserts it and flags the rows it
    /// lacks, inside the caller's transaction.
    async fn replace_dimension(
        &self,
        conn: &mut sqlx::PgConnection,
        table: &'static DimensionTable,
        data: &[u8],
        synced_at: DateTime<Utc>,
    ) -> Result<DimensionOutcome, Error> {
        let action = format!("replace the {} table", table.name);
        let err = |e| db_error(&action, table.name, e);
        let stage = sql::dimension_stage_name(table);
        statement(sql::render_create_dimension_stage(&self.data_schema, table))
            .execute(&mut *conn)
            .await
            .map_err(err)?;
        let mut copy =
            conn.copy_in_raw(&sql::render_copy(sql::TEMP_SCHEMA, &stage, &table.column_names())).await.map_err(err)?;
        for chunk in data.chunks(COPY_CHUNK_BYTES) {
            if let Err(e) = copy.send(chunk).await {
                // The connection is unusable until the COPY ends; its own error is the one to report.
                let _ = copy.abort("hsync could not send the list").await;
                return Err(err(e));
            }
        }
        let rows = copy.finish().await.map_err(err)?;
        statement(sql::render_upsert_dimension(&self.data_schema, table))
            .bind(synced_at)
            .execute(&mut *conn)
            .await
            .map_err(err)?;
        let removed = if table.complete_lists {
            statement(sql::render_remove_missing_dimension(&self.data_schema, table))
                .bind(synced_at)
                .execute(&mut *conn)
                .await
                .map_err(err)?
                .rows_affected()
        } else {
            0
        };
        Ok(DimensionOutcome { table: table.name, rows, removed })
    }
}

impl Destination for PostgresDestination {
    fn kind(&self) -> crate::config::DestinationKind {
        KIND
    }

    fn column_budget(&self) -> ColumnBudget {
        ColumnBudget::POSTGRES
    }

    async fn prepare(&self) -> Result<(), Error> {
        self.state_store().create_tables().await?;
        let action = "create hsync's tables in the data schema";
        let mut tx = self.pool.begin().await.map_err(|e| Error::from_sqlx(KIND, action, e))?;
        lock_prepare(&mut tx, &self.data_schema).await.map_err(|e| Error::from_sqlx(KIND, action, e))?;
        let statements = std::iter::once(sql::render_create_schema(&self.data_schema))
            .chain(sql::render_create_rejects(&self.data_schema))
            .chain(sql::render_create_associations(&self.data_schema))
            .chain(DIMENSION_TABLES.iter().map(|t| sql::render_create_dimension(&self.data_schema, t)))
            .chain([sql::render_replace_history_spans(&self.data_schema)]);
        for s in statements {
            statement(s).execute(&mut *tx).await.map_err(|e| Error::from_sqlx(KIND, action, e))?;
        }
        tx.commit().await.map_err(|e| Error::from_sqlx(KIND, action, e))
    }

    async fn healthcheck(&self) -> Result<(), Error> {
        sqlx::query("select 1").execute(&self.pool).await.map_err(|e| Error::from_sqlx(KIND, "healthcheck", e))?;
        Ok(())
    }

    async fn describe(&self, table: &str) -> Result<Option<Vec<ExistingColumn>>, Error> {
        check_identifier(table, table)?;
        let rows: Vec<(String, String)> = sqlx::query_as(DESCRIBE_COLUMNS)
            .bind(&self.data_schema)
            .bind(table)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::from_sqlx(KIND, format!("describe {table}"), e))?;
        if rows.is_empty() {
            return Ok(None);
        }
        rows.into_iter()
            .map(|(name, data_type)| match types::column_type_of_pg(&data_type) {
                Some(ty) => Ok(ExistingColumn { name, ty }),
                None => Err(Error::Schema {
                    kind: KIND,
                    table: table.to_owned(),
                    detail: format!(
                        "column {name} has type {data_type}, which hsync does not write; change it back to one of \
                         text, numeric, boolean, date, timestamptz, jsonb or bigint"
                    ),
                }),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    async fn alter(&self, plan: &SchemaPlan) -> Result<(), Error> {
        let table = plan.table.as_str();
        check_identifier(table, table)?;
        for change in &plan.changes {
            match change {
                Change::CreateTable { schema } => {
                    for c in &schema.columns {
                        check_identifier(table, &c.name)?;
                    }
                }
                Change::AddColumn { column } => check_identifier(table, &column.name)?,
                _ => {}
            }
        }
        let statements = sql::render_plan(&self.data_schema, plan);
        if statements.is_empty() {
            return Ok(());
        }
        let action = format!("alter {table}");
        // A statement that fails here (a view depending on a widened column, say) is a schema
        // problem for the operator, not a bug.
        let err = |e| match db_error(&action, table, e) {
            Error::Statement { detail, .. } => Error::Schema { kind: KIND, table: table.to_owned(), detail },
            other => other,
        };
        let mut tx = self.pool.begin().await.map_err(err)?;
        for s in statements {
            statement(s).execute(&mut *tx).await.map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }

    async fn stage(&self, table: &str, batch: &RecordBatch) -> Result<Stage, Error> {
        check_identifier(table, table)?;
        let columns: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        super::check_batch_keys(KIND, table, batch)?;
        for c in &columns {
            check_identifier(table, c)?;
        }
        let data = types::encode_copy_text(batch).map_err(|e| Error::Schema {
            kind: KIND,
            table: table.to_owned(),
            detail: e.to_string(),
        })?;
        let stage_table = sql::stage_table_name(table, rand::random());
        let action = format!("stage a batch for {table}");
        let err = |e| db_error(&action, table, e);

        let mut tx = self.pool.begin().await.map_err(err)?;
        statement(sql::render_create_stage(&self.state_schema, &stage_table, &self.data_schema, table, &columns))
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        let mut copy =
            tx.copy_in_raw(&sql::render_copy(&self.state_schema, &stage_table, &columns)).await.map_err(err)?;
        for chunk in data.chunks(COPY_CHUNK_BYTES) {
            if let Err(e) = copy.send(chunk).await {
                // The connection is unusable until the COPY ends; its own error is the one to report.
                let _ = copy.abort("hsync could not send the batch").await;
                return Err(err(e));
            }
        }
        let rows = copy.finish().await.map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(Stage { table: table.to_owned(), stage_table, columns, rows })
    }

    async fn merge(
        &self,
        stage: Stage,
        rejects: &[Reject],
        commit: Option<&Checkpoint>,
    ) -> Result<MergeOutcome, Error> {
        stage.check_keys(KIND)?;
        let outcome = self.merge_in_transaction(&stage, rejects, commit).await;
        if outcome.is_err() {
            // The stage cannot be merged again (the caller stages the batch anew); a failing
            // drop leaves it to the start-up sweep.
            if let Err(e) = self.drop_stage(&stage.stage_table).await {
                tracing::warn!(table = %stage.table, error = %e, "could not drop the staging table of a failed merge");
            }
        }
        outcome
    }

    async fn sweep_stages(&self) -> Result<u64, Error> {
        let stages = self.list_stages().await?;
        for stage in &stages {
            self.drop_stage(stage).await?;
        }
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
        let table = sql::ASSOCIATIONS_TABLE;
        let action = format!("merge association edges from {from_type} to {to_type}");
        let edges = super::edges_by_key(KIND, from_ids, edges)?;
        if from_ids.is_empty() {
            return Ok(EdgeOutcome::default());
        }
        let synced_at = DateTime::<Utc>::from_timestamp_millis(synced_at_ms).ok_or_else(|| Error::Statement {
            kind: KIND,
            action: action.clone(),
            detail: "the sync time is out of range".to_owned(),
        })?;
        let edge_from: Vec<i64> = edges.iter().map(|e| e.from_id).collect();
        let edge_to: Vec<i64> = edges.iter().map(|e| e.to_id).collect();
        let type_ids: Vec<i32> = edges.iter().map(|e| e.type_id).collect();
        let categories: Vec<String> = edges.iter().map(|e| storable(&e.category)).collect();
        let labels: Vec<Option<String>> = edges.iter().map(|e| e.label.as_deref().map(storable)).collect();
        let err = |e| db_error(&action, table, e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        let upserted = statement(sql::render_upsert_edges(&self.data_schema))
            .bind(from_type)
            .bind(to_type)
            .bind(synced_at)
            .bind(&edge_from)
            .bind(&edge_to)
            .bind(&type_ids)
            .bind(&categories)
            .bind(&labels)
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected();
        let tombstoned = statement(sql::render_tombstone_edges(&self.data_schema))
            .bind(from_type)
            .bind(to_type)
            .bind(synced_at)
            .bind(from_ids)
            .bind(&edge_from)
            .bind(&edge_to)
            .bind(&type_ids)
            .execute(&mut *tx)
            .await
            .map_err(err)?
            .rows_affected();
        tx.commit().await.map_err(err)?;
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
        let synced_at = DateTime::<Utc>::from_timestamp_millis(synced_at_ms).ok_or_else(|| Error::Statement {
            kind: KIND,
            action: action.to_owned(),
            detail: "the sync time is out of range".to_owned(),
        })?;
        // Encoded up front: a value that cannot be written fails before anything is.
        let encoded: Vec<(&'static DimensionTable, Vec<u8>)> = batches
            .iter()
            .map(|d| {
                types::encode_copy_text(&d.batch).map(|data| (d.table, data)).map_err(|e| Error::Schema {
                    kind: KIND,
                    table: d.table.name.to_owned(),
                    detail: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        let err = |e| Error::from_sqlx(KIND, action, e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        let mut outcomes = Vec::with_capacity(encoded.len());
        for (table, data) in &encoded {
            outcomes.push(self.replace_dimension(&mut tx, table, data, synced_at).await?);
        }
        self.insert_rejects(&mut tx, rejects).await.map_err(err)?;
        if let Some(checkpoint) = commit {
            self.state_search_path(&mut tx).await.map_err(err)?;
            commit_checkpoint_on(&mut tx, checkpoint).await.map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(outcomes)
    }

    async fn live_ids(&self, table: &str) -> Result<Vec<i64>, Error> {
        if self.describe(table).await?.is_none() {
            return Ok(Vec::new());
        }
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql::render_live_ids(&self.data_schema, table)))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error(&format!("read the live ids of {table}"), table, e))
    }

    async fn ids_modified_since(&self, table: &str, since_ms: i64) -> Result<Vec<i64>, Error> {
        let action = format!("read the ids of {table} modified since a time");
        if self.describe(table).await?.is_none() {
            return Ok(Vec::new());
        }
        let since = DateTime::<Utc>::from_timestamp_millis(since_ms).ok_or_else(|| Error::Statement {
            kind: KIND,
            action: action.clone(),
            detail: "the time is out of range".to_owned(),
        })?;
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql::render_ids_modified_since(&self.data_schema, table)))
            .bind(since)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error(&action, table, e))
    }

    async fn edge_ends(
        &self,
        from_type: &str,
        to_type: &str,
        end: EdgeEnd,
        ids: Option<&[i64]>,
    ) -> Result<Vec<i64>, Error> {
        let action = end.action(from_type, to_type);
        let mut query =
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql::render_edge_ends(&self.data_schema, end, ids.is_some())))
                .bind(from_type)
                .bind(to_type);
        if let Some(ids) = ids {
            query = query.bind(ids);
        }
        query.fetch_all(&self.pool).await.map_err(|e| db_error(&action, sql::ASSOCIATIONS_TABLE, e))
    }

    async fn history_versions(&self, object_type: &str, record_ids: &[i64]) -> Result<Vec<StoredVersion>, Error> {
        let table = crate::schema::dimension::PROPERTY_HISTORY.name;
        let action = format!("read the stored history of {} {object_type}", record_ids.len());
        if record_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql::render_history_versions(&self.data_schema)))
            .bind(object_type)
            .bind(record_ids)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error(&action, table, e))?;
        rows.iter()
            .map(|row| {
                Ok(StoredVersion {
                    record_id: row.try_get(0)?,
                    property: row.try_get(1)?,
                    version_id: row.try_get(2)?,
                    value: row.try_get(3)?,
                    changed_at_ms: row.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| db_error(&action, table, e))
    }

    async fn flag(&self, table: &str, flags: &[RowFlag]) -> Result<u64, Error> {
        check_identifier(table, table)?;
        if flags.is_empty() {
            return Ok(0);
        }
        let action = format!("flag rows of {table}");
        let instant = |ms: Option<i64>| -> Result<Option<DateTime<Utc>>, Error> {
            ms.map(|ms| {
                DateTime::<Utc>::from_timestamp_millis(ms).ok_or_else(|| Error::Schema {
                    kind: KIND,
                    table: table.to_owned(),
                    detail: format!("{action}: a flag time is out of range"),
                })
            })
            .transpose()
        };
        let instants = |get: fn(&RowFlag) -> Option<i64>| -> Result<Vec<Option<DateTime<Utc>>>, Error> {
            flags.iter().map(|f| instant(get(f))).collect()
        };
        let ids: Vec<i64> = flags.iter().map(|f| f.id).collect();
        let set_archived: Vec<bool> = flags.iter().map(|f| f.archived_at.is_some()).collect();
        let archived_at = instants(|f| f.archived_at.flatten())?;
        let set_merged: Vec<bool> = flags.iter().map(|f| f.merged_into.is_some()).collect();
        let merged_into: Vec<Option<i64>> = flags.iter().map(|f| f.merged_into.flatten()).collect();
        let set_deleted: Vec<bool> = flags.iter().map(|f| f.deleted_at.is_some()).collect();
        let deleted_at = instants(|f| f.deleted_at.flatten())?;
        let observed = instants(|f| f.observed_cursor)?;
        let err = |e| db_error(&action, table, e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        let mut changed = 0;
        // Unknown ids first, so the update then finds every row (and counts none twice).
        for sql in
            [sql::render_flag_insert(&self.data_schema, table), sql::render_flag_update(&self.data_schema, table)]
        {
            changed += statement(sql)
                .bind(&ids)
                .bind(&set_archived)
                .bind(&archived_at)
                .bind(&set_merged)
                .bind(&merged_into)
                .bind(&set_deleted)
                .bind(&deleted_at)
                .bind(&observed)
                .execute(&mut *tx)
                .await
                .map_err(err)?
                .rows_affected();
        }
        tx.commit().await.map_err(err)?;
        Ok(changed)
    }

    async fn id_flags(&self, table: &str) -> Result<Vec<IdFlags>, Error> {
        if self.describe(table).await?.is_none() {
            return Ok(Vec::new());
        }
        let action = format!("read the ids and flags of {table}");
        let rows = statement(sql::render_id_flags(&self.data_schema, table))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error(&action, table, e))?;
        let ms = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_millis());
        rows.iter()
            .map(|row| {
                Ok(IdFlags {
                    id: row.try_get(0)?,
                    cursor: ms(row.try_get(1)?),
                    archived_at: ms(row.try_get(2)?),
                    merged_into: row.try_get(3)?,
                    deleted_at: ms(row.try_get(4)?),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| db_error(&action, table, e))
    }

    async fn read_cells(&self, table: &str, columns: &[String], ids: &[i64]) -> Result<Vec<Cells>, Error> {
        let described = self.describe(table).await?;
        let Some(columns) = super::wanted_columns(KIND, table, described.as_deref(), columns, ids)? else {
            return Ok(Vec::new());
        };
        let action = format!("read {} columns of {} rows of {table}", columns.len(), ids.len());
        let rows = statement(sql::render_read_cells(&self.data_schema, table, &columns))
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error(&action, table, e))?;
        cells_of(table, &columns, &rows)
    }

    async fn query_text(&self, query: &str) -> Result<super::TextRows, Error> {
        let failed = |e: sqlx::Error| Error::Query { kind: KIND, detail: e.to_string() };
        // Each row as one JSON object (`to_json` keeps the columns' order), read in a read-only
        // transaction with the data schema first on the search path.
        let wrapped = format!("select to_json(q)::text from ({}) as q", query.trim().trim_end_matches(';'));
        let mut tx = self.pool.begin().await.map_err(failed)?;
        sqlx::query("set transaction read only").execute(&mut *tx).await.map_err(failed)?;
        let path = format!("set local search_path to {}, public", sql::quote_ident(&self.data_schema));
        sqlx::query(sqlx::AssertSqlSafe(path)).execute(&mut *tx).await.map_err(failed)?;
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(wrapped))
            .persistent(false)
            .fetch_all(&mut *tx)
            .await
            .map_err(failed)?;
        tx.rollback().await.map_err(failed)?;
        text_rows(&rows).map_err(|detail| Error::Query { kind: KIND, detail })
    }
}

/// Rows that came back as JSON objects, as text: strings as they are, numbers and booleans as
/// JSON writes them, nested values as JSON. Columns are the first row's keys, in order.
fn text_rows(rows: &[String]) -> Result<super::TextRows, String> {
    use serde_json::Value;
    let mut columns: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(rows.len());
    for text in rows {
        let pairs: Vec<(String, Value)> = serde_json::from_str::<PreservedObject>(text).map_err(|e| e.to_string())?.0;
        if columns.is_empty() {
            columns = pairs.iter().map(|(k, _)| k.clone()).collect();
        }
        let values = pairs
            .into_iter()
            .map(|(_, v)| match v {
                Value::Null => None,
                Value::String(s) => Some(s),
                other => Some(other.to_string()),
            })
            .collect();
        out.push(values);
    }
    Ok(super::TextRows { columns, rows: out })
}

/// A JSON object's members in their order (serde_json's map sorts them).
struct PreservedObject(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for PreservedObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = PreservedObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<PreservedObject, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(PreservedObject(pairs))
            }
        }
        d.deserialize_map(Members)
    }
}

/// Rows read for `columns` of `table` (in that order), as [`Cells`].
fn cells_of(table: &str, columns: &[ExistingColumn], rows: &[sqlx::postgres::PgRow]) -> Result<Vec<Cells>, Error> {
    rows.iter()
        .map(|row| {
            columns.iter().enumerate().map(|(i, c)| Ok((c.name.clone(), types::cell_of(row, i, c, table)?))).collect()
        })
        .collect()
}
