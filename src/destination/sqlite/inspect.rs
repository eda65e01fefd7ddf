//! Read-back for the conformance suite (built with the `test-support` feature): rows, stages,
//! rejects, checkpoints and edges as stored.

use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::Row as _;

use super::state::load_checkpoint_on;
use super::{dynamic, failed, sql, statement_error, types, SqliteDestination};
use crate::destination::conformance::{EdgeRow, Inspect, Row};
use crate::destination::{Destination, Error};
use crate::schema::Reject;
use crate::state::Checkpoint;

impl Inspect for SqliteDestination {
    async fn read_table(&self, table: &str) -> Result<Vec<Row>, Error> {
        let action = format!("read {table}");
        let columns = self
            .describe(table)
            .await?
            .ok_or_else(|| statement_error(&action, format!("table {table} does not exist")))?;
        let rows = dynamic(sql::render_select_all(table), SqliteArguments::default())
            .fetch_all(&self.pool)
            .await
            .map_err(failed(&action))?;
        super::cells_of(&action, &columns, &rows)
    }

    async fn stage_tables(&self) -> Result<Vec<String>, Error> {
        self.list_stages().await
    }

    async fn read_rejects(&self, object: &str) -> Result<Vec<Reject>, Error> {
        let action = format!("read the rejected values of {object}");
        let rows = sqlx::query(sql::READ_REJECTS).bind(object).fetch_all(&self.pool).await.map_err(failed(&action))?;
        rows.iter()
            .map(|row| {
                let get = |name: &str| row.try_get::<String, _>(name).map_err(failed(&action));
                Ok(Reject {
                    object: get("object")?,
                    id: get("id")?,
                    property: get("property")?,
                    raw: get("raw_value")?,
                    reason: get("reason")?,
                })
            })
            .collect()
    }

    async fn checkpoint(&self, stream: &crate::state::StreamId) -> Result<Option<Checkpoint>, Error> {
        let action = format!("read the checkpoint of {stream}");
        let mut conn = self.pool.acquire().await.map_err(failed(&action))?;
        load_checkpoint_on(&mut conn, stream).await.map_err(|e| statement_error(&action, e.to_string()))
    }

    async fn read_edges(&self) -> Result<Vec<EdgeRow>, Error> {
        let action = "read the association edges";
        let rows = dynamic(sql::render_read_edges(), SqliteArguments::default())
            .fetch_all(&self.pool)
            .await
            .map_err(failed(action))?;
        let instant = |row: &SqliteRow, column: &str| -> Result<Option<i64>, Error> {
            let text: Option<String> = row.try_get(column).map_err(failed(action))?;
            text.map(|t| {
                types::parse_timestamp_ms(&t)
                    .ok_or_else(|| statement_error(action, format!("{column} holds a value that is not a timestamp")))
            })
            .transpose()
        };
        rows.iter()
            .map(|row| {
                Ok(EdgeRow {
                    from_type: row.try_get("from_type").map_err(failed(action))?,
                    from_id: row.try_get("from_id").map_err(failed(action))?,
                    to_type: row.try_get("to_type").map_err(failed(action))?,
                    to_id: row.try_get("to_id").map_err(failed(action))?,
                    type_id: row.try_get("type_id").map_err(failed(action))?,
                    category: row.try_get::<Option<String>, _>("category").map_err(failed(action))?.unwrap_or_default(),
                    label: row.try_get("label").map_err(failed(action))?,
                    synced_at_ms: instant(row, "synced_at")?
                        .ok_or_else(|| statement_error(action, "an edge has no synced_at"))?,
                    deleted_at_ms: instant(row, "deleted_at")?,
                })
            })
            .collect()
    }
}
