//! The SQLite state store: checkpoints, run history, property snapshots and the daily budget
//! ledger in `_hsync_*` tables created by `migrations/sqlite` (embedded at compile time).
//!
//! It shares the pool of a [`SqliteDestination`](super::SqliteDestination)
//! (so the destination commits a checkpoint in the merge's transaction, with the same
//! statement, `sql/sqlite/commit_checkpoint.sql`), or opens a standalone state file with
//! [`SqliteStateStore::open`] when the warehouse cannot hold state.
//!
//! Every statement here is static SQL with bound values. Instants are stored as fixed-width
//! ISO-8601 UTC text with nanoseconds, so they round-trip exactly and sort as text.

use std::path::Path;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::{open_pool, BEGIN_WRITE};
use crate::destination::Error as DestinationError;
use crate::hubspot::{BoxFuture, BudgetRecord, BudgetStore, StoreError};
use crate::state::{
    Checkpoint, ColumnMap, Enqueued, Error, EventBacklog, PendingEvent, PropertySnapshot, QueuedEvent, RunRecord,
    RunStatus, StateStore, StreamId,
};

/// The bookkeeping migrations, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// The monotonic checkpoint commit, shared with the destination's merge.
const COMMIT_CHECKPOINT: &str = include_str!("../../../sql/sqlite/commit_checkpoint.sql");

const LOAD_CHECKPOINT: &str = "select stream, position, state\nfrom _hsync_checkpoints\nwhere stream = ?1";
const ALL_CHECKPOINTS: &str = "select stream, position, state\nfrom _hsync_checkpoints\norder by stream";
const START_RUN: &str = "insert into _hsync_runs (stream, started_at, status)\nvalues (?1, ?2, 'running')";
const FINISH_RUN: &str = "update _hsync_runs\nset finished_at = ?2,\n    status = ?3,\n    rows_written = ?4,\n    error = ?5\nwhere id = ?1";
const RECENT_RUNS: &str = "select stream, started_at, finished_at, status, rows_written, error\nfrom _hsync_runs\norder by started_at desc, id desc\nlimit ?1";
const LOAD_SNAPSHOT: &str =
    "select object, properties, acknowledged_removed\nfrom _hsync_property_snapshots\nwhere object = ?1";
const SAVE_SNAPSHOT: &str = "insert into _hsync_property_snapshots (object, properties, acknowledged_removed, updated_at)\nvalues (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))\non conflict (object) do update\nset properties = excluded.properties,\n    acknowledged_removed = excluded.acknowledged_removed,\n    updated_at = excluded.updated_at";
const LOAD_COLUMN_MAP: &str = "select property, column_name, reason\nfrom _hsync_column_map\nwhere object = ?1";
const RECORD_COLUMN: &str = "insert into _hsync_column_map (object, property, column_name, reason, recorded_at)\nvalues (?1, ?2, ?3, ?4, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))\non conflict (object, property) do nothing";
const FORGET_DELIVERIES: &str = "delete from _hsync_webhook_deliveries\nwhere received_at < ?1";
const RECORD_DELIVERY: &str = "insert into _hsync_webhook_deliveries (signature, received_at)\nvalues (?1, ?2)\non conflict (signature) do nothing";
const ENQUEUE_EVENT: &str = "insert into _hsync_webhook_events (dedupe_key, object_id, occurred_at, received_at, event)\nvalues (?1, ?2, ?3, ?4, ?5)\non conflict (dedupe_key) do nothing";
const PENDING_EVENTS: &str = "select seq, received_at, event\nfrom _hsync_webhook_events\norder by seq\nlimit ?1";
const REMOVE_EVENTS: &str = "delete from _hsync_webhook_events\nwhere seq in (select value from json_each(?1))";
const EVENT_BACKLOG: &str = "select count(*), min(received_at)\nfrom _hsync_webhook_events";
/// The budget ledger has one row, keyed by this name.
const BUDGET_LEDGER: &str = "daily";
const LOAD_BUDGET: &str = "select day, reserved\nfrom _hsync_budget\nwhere ledger = ?1";
const SAVE_BUDGET: &str = "insert into _hsync_budget (ledger, day, reserved, updated_at)\nvalues (?1, ?2, ?3, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))\non conflict (ledger) do update\nset day = excluded.day,\n    reserved = excluded.reserved,\n    updated_at = excluded.updated_at";

/// Commits `checkpoint` on `conn` (inside the caller's transaction, if any) unless the stored
/// one has a higher position; returns whether it was stored.
pub(crate) async fn commit_checkpoint_on(
    conn: &mut SqliteConnection,
    checkpoint: &Checkpoint,
) -> Result<bool, sqlx::Error> {
    let stored = sqlx::query(COMMIT_CHECKPOINT)
        .bind(checkpoint.stream.to_string())
        .bind(checkpoint.position)
        .bind(checkpoint.state.to_string())
        .execute(conn)
        .await?;
    Ok(stored.rows_affected() > 0)
}

/// Loads a stream's checkpoint on `conn`.
pub(crate) async fn load_checkpoint_on(
    conn: &mut SqliteConnection,
    stream: &StreamId,
) -> Result<Option<Checkpoint>, Error> {
    let row = sqlx::query(LOAD_CHECKPOINT)
        .bind(stream.to_string())
        .fetch_optional(conn)
        .await
        .map_err(|e| error("load a checkpoint", e))?;
    row.as_ref().map(checkpoint_of).transpose()
}

/// Runs the bookkeeping migrations on `pool`, holding SQLite's write lock throughout: sqlx's
/// SQLite migrator takes no lock of its own, so two processes migrating a fresh file at once
/// would both apply the first migration and one would fail. The second now waits (busy
/// timeout), then finds the migrations applied.
pub(crate) async fn run_migrations(pool: &SqlitePool) -> Result<(), sqlx::migrate::MigrateError> {
    use sqlx::Connection;
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin_with(BEGIN_WRITE).await?;
    MIGRATOR.run_direct(None, &mut *tx, false).await?;
    tx.commit().await?;
    Ok(())
}

/// Classifies an sqlx error as the destination does, then as a state error.
fn error(action: &str, e: sqlx::Error) -> Error {
    error_at(None, action, e)
}

/// Like [`error`], naming the database file when it is the problem.
fn error_at(path: Option<&Path>, action: &str, e: sqlx::Error) -> Error {
    DestinationError::from_sqlx_at(crate::config::DestinationKind::Sqlite, path, action, e).into_state()
}

fn corrupt(what: impl Into<String>, detail: impl ToString) -> Error {
    Error::Corrupt { what: what.into(), detail: detail.to_string() }
}

fn instant_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn instant_of(text: &str, what: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).map_err(|e| corrupt(what, e))
}

fn column<'r, T>(row: &'r SqliteRow, name: &str, what: &str) -> Result<T, Error>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(name).map_err(|e| corrupt(what, e))
}

fn checkpoint_of(row: &SqliteRow) -> Result<Checkpoint, Error> {
    let stream: String = column(row, "stream", "a checkpoint")?;
    let what = format!("the checkpoint of {stream}");
    let stream: StreamId = stream.parse().map_err(|e| corrupt(what.clone(), e))?;
    let state: String = column(row, "state", &what)?;
    Ok(Checkpoint {
        position: column(row, "position", &what)?,
        state: serde_json::from_str(&state).map_err(|e| corrupt(what, e))?,
        stream,
    })
}

fn run_of(row: &SqliteRow) -> Result<RunRecord, Error> {
    let stream: String = column(row, "stream", "a run")?;
    let what = format!("a run of {stream}");
    let stream: StreamId = stream.parse().map_err(|e| corrupt(what.clone(), e))?;
    let status: String = column(row, "status", &what)?;
    let started: String = column(row, "started_at", &what)?;
    let finished: Option<String> = column(row, "finished_at", &what)?;
    Ok(RunRecord {
        started_at: instant_of(&started, &what)?,
        finished_at: finished.as_deref().map(|t| instant_of(t, &what)).transpose()?,
        status: status.parse().map_err(|e: String| corrupt(what.clone(), e))?,
        rows: column(row, "rows_written", &what)?,
        error: column(row, "error", &what)?,
        stream,
    })
}

/// hsync's state in a SQLite database.
#[derive(Clone, Debug)]
pub struct SqliteStateStore {
    pool: SqlitePool,
}

impl SqliteStateStore {
    /// A store over an open pool (the destination's).
    pub(crate) fn from_pool(pool: SqlitePool) -> SqliteStateStore {
        SqliteStateStore { pool }
    }

    /// Opens (creating if missing) a standalone state file, for destinations that cannot hold
    /// hsync's state. Call [`StateStore::migrate`] before use.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStateStore, Error> {
        let options = SqliteConnectOptions::new().filename(path.as_ref());
        let pool = open_pool(options).await.map_err(|e| error_at(Some(path.as_ref()), "open the state file", e))?;
        Ok(SqliteStateStore { pool })
    }

    /// Classifies an sqlx error, naming this store's database file when it is the problem.
    fn failed(&self, action: &str, e: sqlx::Error) -> Error {
        error_at(Some(self.pool.connect_options().get_filename()), action, e)
    }

    async fn budget_record(&self) -> Result<Option<BudgetRecord>, Error> {
        let what = "the budget ledger";
        let row = sqlx::query(LOAD_BUDGET)
            .bind(BUDGET_LEDGER)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.failed("load the budget ledger", e))?;
        let Some(row) = row else { return Ok(None) };
        let day: String = column(&row, "day", what)?;
        let reserved: i64 = column(&row, "reserved", what)?;
        Ok(Some(BudgetRecord {
            day: NaiveDate::parse_from_str(&day, "%Y-%m-%d").map_err(|e| corrupt(what, e))?,
            reserved: u64::try_from(reserved).map_err(|e| corrupt(what, e))?,
        }))
    }

    async fn save_budget_record(&self, record: BudgetRecord) -> Result<(), Error> {
        let reserved = i64::try_from(record.reserved).map_err(|e| Error::Statement {
            action: "save the budget ledger".to_owned(),
            detail: format!("the reserved call count does not fit a 64-bit integer: {e}"),
        })?;
        sqlx::query(SAVE_BUDGET)
            .bind(BUDGET_LEDGER)
            .bind(record.day.format("%Y-%m-%d").to_string())
            .bind(reserved)
            .execute(&self.pool)
            .await
            .map_err(|e| self.failed("save the budget ledger", e))?;
        Ok(())
    }
}

impl StateStore for SqliteStateStore {
    async fn migrate(&self) -> Result<(), Error> {
        run_migrations(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) | sqlx::migrate::MigrateError::ExecuteMigration(e, _) => {
                self.failed("run the state migrations", e)
            }
            other => Error::Statement { action: "run the state migrations".to_owned(), detail: other.to_string() },
        })
    }

    async fn load_checkpoint(&self, stream: &StreamId) -> Result<Option<Checkpoint>, Error> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.failed("load a checkpoint", e))?;
        load_checkpoint_on(&mut conn, stream).await
    }

    async fn commit_checkpoint(&self, checkpoint: &Checkpoint) -> Result<bool, Error> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.failed("commit a checkpoint", e))?;
        commit_checkpoint_on(&mut conn, checkpoint).await.map_err(|e| self.failed("commit a checkpoint", e))
    }

    async fn reset_checkpoint(&self, stream: &StreamId) -> Result<(), Error> {
        sqlx::query("delete from _hsync_checkpoints where stream = ?")
            .bind(stream.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| self.failed("reset a checkpoint", e))?;
        Ok(())
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, Error> {
        let rows =
            sqlx::query(ALL_CHECKPOINTS).fetch_all(&self.pool).await.map_err(|e| self.failed("list checkpoints", e))?;
        rows.iter().map(checkpoint_of).collect()
    }

    async fn start_run(&self, stream: &StreamId, at: DateTime<Utc>) -> Result<i64, Error> {
        let done = sqlx::query(START_RUN)
            .bind(stream.to_string())
            .bind(instant_text(at))
            .execute(&self.pool)
            .await
            .map_err(|e| self.failed("record the start of a run", e))?;
        Ok(done.last_insert_rowid())
    }

    async fn finish_run(
        &self,
        run: i64,
        at: DateTime<Utc>,
        status: RunStatus,
        rows: i64,
        error_message: Option<&str>,
    ) -> Result<(), Error> {
        let done = sqlx::query(FINISH_RUN)
            .bind(run)
            .bind(instant_text(at))
            .bind(status.as_str())
            .bind(rows)
            .bind(error_message)
            .execute(&self.pool)
            .await
            .map_err(|e| self.failed("record the end of a run", e))?;
        if done.rows_affected() == 0 {
            return Err(Error::Statement {
                action: "record the end of a run".to_owned(),
                detail: format!("run {run} was never started"),
            });
        }
        Ok(())
    }

    async fn recent_runs(&self, limit: i64) -> Result<Vec<RunRecord>, Error> {
        let rows = sqlx::query(RECENT_RUNS)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.failed("list recent runs", e))?;
        rows.iter().map(run_of).collect()
    }

    async fn load_snapshot(&self, object: &str) -> Result<Option<PropertySnapshot>, Error> {
        let row = sqlx::query(LOAD_SNAPSHOT)
            .bind(object)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.failed("load a property snapshot", e))?;
        let Some(row) = row else { return Ok(None) };
        let what = format!("the property snapshot of {object}");
        let properties: String = column(&row, "properties", &what)?;
        let acknowledged: String = column(&row, "acknowledged_removed", &what)?;
        Ok(Some(PropertySnapshot {
            object: column(&row, "object", &what)?,
            properties: serde_json::from_str(&properties).map_err(|e| corrupt(what.clone(), e))?,
            acknowledged_removed: serde_json::from_str(&acknowledged).map_err(|e| corrupt(what, e))?,
        }))
    }

    async fn save_snapshot(&self, snapshot: &PropertySnapshot) -> Result<(), Error> {
        let encode = |e: serde_json::Error| Error::Statement {
            action: "save a property snapshot".to_owned(),
            detail: format!("cannot encode the snapshot as JSON: {e}"),
        };
        let properties = serde_json::to_string(&snapshot.properties).map_err(encode)?;
        let acknowledged = serde_json::to_string(&snapshot.acknowledged_removed).map_err(encode)?;
        sqlx::query(SAVE_SNAPSHOT)
            .bind(&snapshot.object)
            .bind(properties)
            .bind(acknowledged)
            .execute(&self.pool)
            .await
            .map_err(|e| self.failed("save a property snapshot", e))?;
        Ok(())
    }

    async fn load_column_map(&self, object: &str) -> Result<ColumnMap, Error> {
        let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(LOAD_COLUMN_MAP)
            .bind(object)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| error("load the column map", e))?;
        Ok(ColumnMap::from_rows(rows))
    }

    async fn record_column_map(&self, object: &str, map: &ColumnMap) -> Result<(), Error> {
        let action = "record the column map";
        let mut tx = self.pool.begin().await.map_err(|e| error(action, e))?;
        for (property, column, reason) in map.rows() {
            sqlx::query(RECORD_COLUMN)
                .bind(object)
                .bind(property)
                .bind(column)
                .bind(reason)
                .execute(&mut *tx)
                .await
                .map_err(|e| error(action, e))?;
        }
        tx.commit().await.map_err(|e| error(action, e))
    }

    async fn enqueue_events(
        &self,
        signature: &str,
        received_at_ms: i64,
        forget_before_ms: i64,
        events: &[QueuedEvent],
    ) -> Result<Enqueued, Error> {
        use sqlx::Connection;
        let action = "store webhook events";
        let mut conn = self.pool.acquire().await.map_err(|e| error(action, e))?;
        let mut tx = conn.begin_with(BEGIN_WRITE).await.map_err(|e| error(action, e))?;
        let done = Self::enqueue_on(&mut tx, signature, received_at_ms, forget_before_ms, events)
            .await
            .map_err(|e| error(action, e))?;
        tx.commit().await.map_err(|e| error(action, e))?;
        Ok(done)
    }

    async fn pending_events(&self, limit: i64) -> Result<Vec<PendingEvent>, Error> {
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(PENDING_EVENTS)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| error("read pending webhook events", e))?;
        Ok(rows.into_iter().map(|(seq, received_at_ms, event)| PendingEvent { seq, received_at_ms, event }).collect())
    }

    async fn remove_events(&self, seqs: &[i64]) -> Result<(), Error> {
        if seqs.is_empty() {
            return Ok(());
        }
        sqlx::query(REMOVE_EVENTS)
            .bind(serde_json::Value::from(seqs.to_vec()).to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| error("remove applied webhook events", e))?;
        Ok(())
    }

    async fn event_backlog(&self) -> Result<EventBacklog, Error> {
        let (pending, oldest): (i64, Option<i64>) = sqlx::query_as(EVENT_BACKLOG)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| error("count pending webhook events", e))?;
        Ok(EventBacklog { pending: pending.max(0) as u64, oldest_received_at_ms: oldest })
    }
}

impl SqliteStateStore {
    async fn enqueue_on(
        conn: &mut SqliteConnection,
        signature: &str,
        received_at_ms: i64,
        forget_before_ms: i64,
        events: &[QueuedEvent],
    ) -> Result<Enqueued, sqlx::Error> {
        sqlx::query(FORGET_DELIVERIES).bind(forget_before_ms).execute(&mut *conn).await?;
        let recorded = sqlx::query(RECORD_DELIVERY).bind(signature).bind(received_at_ms).execute(&mut *conn).await?;
        if recorded.rows_affected() == 0 {
            return Ok(Enqueued { replayed: true, ..Enqueued::default() });
        }
        let mut done = Enqueued::default();
        for e in events {
            let stored = sqlx::query(ENQUEUE_EVENT)
                .bind(&e.dedupe_key)
                .bind(e.object_id)
                .bind(e.occurred_at_ms)
                .bind(received_at_ms)
                .bind(&e.event)
                .execute(&mut *conn)
                .await?;
            if stored.rows_affected() > 0 {
                done.stored += 1;
            } else {
                done.duplicates += 1;
            }
        }
        Ok(done)
    }
}

impl BudgetStore for SqliteStateStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<BudgetRecord>, StoreError>> {
        Box::pin(async move { self.budget_record().await.map_err(|e| StoreError(e.to_string())) })
    }

    fn save(&self, record: BudgetRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move { self.save_budget_record(record).await.map_err(|e| StoreError(e.to_string())) })
    }
}
