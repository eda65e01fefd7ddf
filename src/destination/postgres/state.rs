//! The Postgres state store: checkpoints, run history, property snapshots and the daily
//! budget ledger, in hsync's state schema (`hsync` by default) of the destination database.
//!
//! Tables come from `migrations/postgres`, which name no schema: the pool's connections have
//! their search_path set to the state schema (see the destination module), so the migrations,
//! sqlx's `_sqlx_migrations` table and every statement here land in it. All SQL in this module
//! is static; the monotonic checkpoint commit is `sql/postgres/commit_checkpoint.sql`, shared
//! with the destination's merge so both commit a checkpoint the same way.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::PgPool;
use sqlx::PgConnection;

use super::{connect_pool, lock_prepare, sql, statement, KIND};
use crate::destination::Error as DestinationError;
use crate::hubspot::model::PropertyDefinition;
use crate::hubspot::{BoxFuture, BudgetRecord, BudgetStore, StoreError};
use crate::state::{
    Checkpoint, ColumnMap, Enqueued, Error, EventBacklog, PendingEvent, PropertySnapshot, QueuedEvent, RunRecord,
    RunStatus, StateStore, StreamId,
};

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

const COMMIT_CHECKPOINT: &str = include_str!("../../../sql/postgres/commit_checkpoint.sql");

/// Commits `checkpoint` on `conn` (in the caller's transaction) unless the stored one is
/// further along; returns whether it was stored. The connection's search_path must be the
/// state schema.
pub(crate) async fn commit_checkpoint_on(
    conn: &mut PgConnection,
    checkpoint: &Checkpoint,
) -> Result<bool, sqlx::Error> {
    let stored: Option<bool> = sqlx::query_scalar(COMMIT_CHECKPOINT)
        .bind(checkpoint.stream.to_string())
        .bind(checkpoint.position)
        .bind(&checkpoint.state)
        .fetch_optional(conn)
        .await?;
    Ok(stored.is_some())
}

/// Classifies an sqlx error as the destination does, then as a state error.
fn state_error(action: &str, e: sqlx::Error) -> Error {
    DestinationError::from_sqlx(KIND, action, e).into_state()
}

fn budget_error(action: &str, e: sqlx::Error) -> StoreError {
    StoreError(state_error(action, e).to_string())
}

/// hsync's state in a Postgres schema.
#[derive(Clone)]
pub struct PostgresStateStore {
    pool: PgPool,
    schema: String,
}

impl fmt::Debug for PostgresStateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool's options hold the connection settings, password included: not shown.
        f.debug_struct("PostgresStateStore").field("schema", &self.schema).finish_non_exhaustive()
    }
}

impl PostgresStateStore {
    /// A store over `pool`, whose connections must have `schema` as their search_path.
    pub(crate) fn with_pool(pool: PgPool, schema: &str) -> PostgresStateStore {
        PostgresStateStore { pool, schema: schema.to_owned() }
    }

    /// Connects to `url` with its own pool, keeping state in `schema`.
    pub async fn connect(url: &str, schema: &str) -> Result<PostgresStateStore, DestinationError> {
        Ok(PostgresStateStore::with_pool(connect_pool(url, schema).await?, schema))
    }

    /// The state schema.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Creates the state schema and runs the migrations, failing as the destination does (its
    /// `prepare` calls this; [`StateStore::migrate`] reports the same failure as a state error).
    pub(super) async fn create_tables(&self) -> Result<(), DestinationError> {
        // sqlx's migrator takes its own lock for the migrations, but the schema comes first.
        let action = "create the state schema";
        let failed = |e| DestinationError::from_sqlx(KIND, action, e);
        let mut tx = self.pool.begin().await.map_err(failed)?;
        lock_prepare(&mut tx, &self.schema).await.map_err(failed)?;
        statement(sql::render_create_schema(&self.schema)).execute(&mut *tx).await.map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            MigrateError::Execute(e) => DestinationError::from_sqlx(KIND, "run migrations", e),
            other => DestinationError::Statement {
                kind: KIND,
                action: "run migrations".to_owned(),
                detail: other.to_string(),
            },
        })
    }

    /// A stream's stored checkpoint row, failing as the destination does.
    async fn checkpoint_row(&self, stream: &StreamId) -> Result<Option<CheckpointRow>, DestinationError> {
        sqlx::query_as("select stream, position, state from checkpoints where stream = $1")
            .bind(stream.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| DestinationError::from_sqlx(KIND, "load a checkpoint", e))
    }

    /// A stream's checkpoint, failing as the destination does (for the read-back).
    #[cfg(feature = "test-support")]
    pub(super) async fn stored_checkpoint(&self, stream: &StreamId) -> Result<Option<Checkpoint>, DestinationError> {
        let row = self.checkpoint_row(stream).await?;
        row.map(checkpoint_of).transpose().map_err(|e| DestinationError::Statement {
            kind: KIND,
            action: "load a checkpoint".to_owned(),
            detail: e.to_string(),
        })
    }
}

type CheckpointRow = (String, i64, serde_json::Value);

fn corrupt(what: &str, detail: impl fmt::Display) -> Error {
    Error::Corrupt { what: what.to_owned(), detail: detail.to_string() }
}

fn checkpoint_of((stream, position, state): CheckpointRow) -> Result<Checkpoint, Error> {
    let stream = stream.parse().map_err(|e| corrupt(&format!("the checkpoint of {stream}"), e))?;
    Ok(Checkpoint { stream, position, state })
}

impl StateStore for PostgresStateStore {
    async fn migrate(&self) -> Result<(), Error> {
        self.create_tables().await.map_err(DestinationError::into_state)
    }

    async fn load_checkpoint(&self, stream: &StreamId) -> Result<Option<Checkpoint>, Error> {
        let row = self.checkpoint_row(stream).await.map_err(DestinationError::into_state)?;
        row.map(checkpoint_of).transpose()
    }

    async fn reset_checkpoint(&self, stream: &StreamId) -> Result<(), Error> {
        sqlx::query("delete from checkpoints where stream = $1")
            .bind(stream.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| state_error("reset a checkpoint", e))?;
        Ok(())
    }

    async fn commit_checkpoint(&self, checkpoint: &Checkpoint) -> Result<bool, Error> {
        let mut conn = self.pool.acquire().await.map_err(|e| state_error("commit a checkpoint", e))?;
        commit_checkpoint_on(&mut conn, checkpoint).await.map_err(|e| state_error("commit a checkpoint", e))
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, Error> {
        let rows: Vec<(String, i64, serde_json::Value)> =
            sqlx::query_as("select stream, position, state from checkpoints order by stream")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| state_error("list checkpoints", e))?;
        rows.into_iter().map(checkpoint_of).collect()
    }

    async fn start_run(&self, stream: &StreamId, at: DateTime<Utc>) -> Result<i64, Error> {
        sqlx::query_scalar(
            "insert into runs (stream, started_at, status, row_count)\nvalues ($1, $2, 'running', 0)\nreturning id",
        )
        .bind(stream.to_string())
        .bind(at)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| state_error("record the start of a run", e))
    }

    async fn finish_run(
        &self,
        run: i64,
        at: DateTime<Utc>,
        status: RunStatus,
        rows: i64,
        error: Option<&str>,
    ) -> Result<(), Error> {
        let action = "record the end of a run";
        let done =
            sqlx::query("update runs\nset finished_at = $2, status = $3, row_count = $4, error = $5\nwhere id = $1")
                .bind(run)
                .bind(at)
                .bind(status.as_str())
                .bind(rows)
                .bind(error)
                .execute(&self.pool)
                .await
                .map_err(|e| state_error(action, e))?;
        if done.rows_affected() == 0 {
            return Err(Error::Statement { action: action.to_owned(), detail: format!("there is no run {run}") });
        }
        Ok(())
    }

    async fn recent_runs(&self, limit: i64) -> Result<Vec<RunRecord>, Error> {
        type RunRow = (String, DateTime<Utc>, Option<DateTime<Utc>>, String, i64, Option<String>);
        let rows: Vec<RunRow> = sqlx::query_as(
            "select stream, started_at, finished_at, status, row_count, error\nfrom runs\n\
             order by started_at desc, id desc\nlimit $1",
        )
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| state_error("list recent runs", e))?;
        rows.into_iter()
            .map(|(stream, started_at, finished_at, status, rows, error)| {
                let what = format!("a run of {stream}");
                Ok(RunRecord {
                    stream: stream.parse().map_err(|e: crate::state::UnknownStream| corrupt(&what, e))?,
                    started_at,
                    finished_at,
                    status: status.parse().map_err(|e: String| corrupt(&what, e))?,
                    rows,
                    error,
                })
            })
            .collect()
    }

    async fn load_snapshot(&self, object: &str) -> Result<Option<PropertySnapshot>, Error> {
        let row: Option<(serde_json::Value, serde_json::Value)> =
            sqlx::query_as("select properties, acknowledged_removed\nfrom property_snapshots\nwhere object = $1")
                .bind(object)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| state_error("load a property snapshot", e))?;
        let Some((properties, acknowledged)) = row else { return Ok(None) };
        let corrupt = |e: serde_json::Error| Error::Corrupt {
            what: format!("the property snapshot of {object}"),
            detail: e.to_string(),
        };
        Ok(Some(PropertySnapshot {
            object: object.to_owned(),
            properties: serde_json::from_value::<Vec<PropertyDefinition>>(properties).map_err(corrupt)?,
            acknowledged_removed: serde_json::from_value(acknowledged).map_err(corrupt)?,
        }))
    }

    async fn save_snapshot(&self, snapshot: &PropertySnapshot) -> Result<(), Error> {
        let action = "save a property snapshot";
        let encode =
            |e: serde_json::Error| Error::Statement { action: action.to_owned(), detail: format!("encoding: {e}") };
        let properties = serde_json::to_value(&snapshot.properties).map_err(encode)?;
        let acknowledged = serde_json::to_value(&snapshot.acknowledged_removed).map_err(encode)?;
        sqlx::query(
            "insert into property_snapshots (object, properties, acknowledged_removed, updated_at)\n\
             values ($1, $2, $3, now())\n\
             on conflict (object) do update\n\
             set properties = excluded.properties,\n    \
             acknowledged_removed = excluded.acknowledged_removed,\n    \
             updated_at = excluded.updated_at",
        )
        .bind(&snapshot.object)
        .bind(properties)
        .bind(acknowledged)
        .execute(&self.pool)
        .await
        .map_err(|e| state_error(action, e))?;
        Ok(())
    }

    async fn load_column_map(&self, object: &str) -> Result<ColumnMap, Error> {
        let rows: Vec<(String, Option<String>, Option<String>)> =
            sqlx::query_as("select property, column_name, reason from column_map where object = $1")
                .bind(object)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| state_error("load the column map", e))?;
        Ok(ColumnMap::from_rows(rows))
    }

    async fn record_column_map(&self, object: &str, map: &ColumnMap) -> Result<(), Error> {
        let action = "record the column map";
        let mut tx = self.pool.begin().await.map_err(|e| state_error(action, e))?;
        for (property, column, reason) in map.rows() {
            sqlx::query(
                "insert into column_map (object, property, column_name, reason)\n\
                 values ($1, $2, $3, $4)\n\
                 on conflict (object, property) do nothing",
            )
            .bind(object)
            .bind(property)
            .bind(column)
            .bind(reason)
            .execute(&mut *tx)
            .await
            .map_err(|e| state_error(action, e))?;
        }
        tx.commit().await.map_err(|e| state_error(action, e))
    }

    async fn enqueue_events(
        &self,
        signature: &str,
        received_at_ms: i64,
        forget_before_ms: i64,
        events: &[QueuedEvent],
    ) -> Result<Enqueued, Error> {
        let action = "store webhook events";
        let fail = |e| state_error(action, e);
        let mut tx = self.pool.begin().await.map_err(fail)?;
        sqlx::query("delete from webhook_deliveries where received_at < $1")
            .bind(forget_before_ms)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        let recorded = sqlx::query(
            "insert into webhook_deliveries (signature, received_at)\n\
             values ($1, $2)\n\
             on conflict (signature) do nothing",
        )
        .bind(signature)
        .bind(received_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
        if recorded.rows_affected() == 0 {
            return Ok(Enqueued { replayed: true, ..Enqueued::default() });
        }
        let mut done = Enqueued::default();
        for e in events {
            let stored = sqlx::query(
                "insert into webhook_events (dedupe_key, object_id, occurred_at, received_at, event)\n\
                 values ($1, $2, $3, $4, $5)\n\
                 on conflict (dedupe_key) do nothing",
            )
            .bind(&e.dedupe_key)
            .bind(e.object_id)
            .bind(e.occurred_at_ms)
            .bind(received_at_ms)
            .bind(&e.event)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
            if stored.rows_affected() > 0 {
                done.stored += 1;
            } else {
                done.duplicates += 1;
            }
        }
        tx.commit().await.map_err(fail)?;
        Ok(done)
    }

    async fn pending_events(&self, limit: i64) -> Result<Vec<PendingEvent>, Error> {
        let rows: Vec<(i64, i64, String)> =
            sqlx::query_as("select seq, received_at, event from webhook_events order by seq limit $1")
                .bind(limit)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| state_error("read pending webhook events", e))?;
        Ok(rows.into_iter().map(|(seq, received_at_ms, event)| PendingEvent { seq, received_at_ms, event }).collect())
    }

    async fn remove_events(&self, seqs: &[i64]) -> Result<(), Error> {
        if seqs.is_empty() {
            return Ok(());
        }
        sqlx::query("delete from webhook_events where seq = any($1)")
            .bind(seqs)
            .execute(&self.pool)
            .await
            .map_err(|e| state_error("remove applied webhook events", e))?;
        Ok(())
    }

    async fn event_backlog(&self) -> Result<EventBacklog, Error> {
        let (pending, oldest): (i64, Option<i64>) =
            sqlx::query_as("select count(*), min(received_at) from webhook_events")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| state_error("count pending webhook events", e))?;
        Ok(EventBacklog { pending: pending.max(0) as u64, oldest_received_at_ms: oldest })
    }
}

impl BudgetStore for PostgresStateStore {
    fn load(&self) -> BoxFuture<'_, Result<Option<BudgetRecord>, StoreError>> {
        Box::pin(async move {
            let row: Option<(NaiveDate, i64)> = sqlx::query_as("select day, reserved from budget where singleton")
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| budget_error("load the budget record", e))?;
            row.map(|(day, reserved)| {
                u64::try_from(reserved)
                    .map(|reserved| BudgetRecord { day, reserved })
                    .map_err(|_| StoreError("the stored budget record has a negative call count".to_owned()))
            })
            .transpose()
        })
    }

    fn save(&self, record: BudgetRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let reserved = i64::try_from(record.reserved)
                .map_err(|_| StoreError(format!("{} reserved calls do not fit the ledger", record.reserved)))?;
            sqlx::query(
                "insert into budget (singleton, day, reserved, updated_at)\n\
                 values (true, $1, $2, now())\n\
                 on conflict (singleton) do update\n\
                 set day = excluded.day,\n    \
                 reserved = excluded.reserved,\n    \
                 updated_at = excluded.updated_at",
            )
            .bind(record.day)
            .bind(reserved)
            .execute(&self.pool)
            .await
            .map_err(|e| budget_error("save the budget record", e))?;
            Ok(())
        })
    }
}
