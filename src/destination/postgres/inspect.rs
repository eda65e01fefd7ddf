//! Read-back for the conformance suite (built with the `test-support` feature): rows, stages,
//! rejects, checkpoints and edges as stored.

use sqlx::Row as _;

use super::{db_error, sql, statement, PostgresDestination, KIND};
use crate::destination::conformance::{EdgeRow, Inspect, Row};
use crate::destination::{Destination, Error};
use crate::schema::Reject;
use crate::state::Checkpoint;

impl Inspect for PostgresDestination {
    async fn read_table(&self, table: &str) -> Result<Vec<Row>, Error> {
        let Some(columns) = self.describe(table).await? else {
            return Err(Error::Statement {
                kind: KIND,
                action: format!("read {table}"),
                detail: "the table does not exist".to_owned(),
            });
        };
        let rows = statement(sql::render_read_table(&self.data_schema, table, &columns))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| db_error(&format!("read {table}"), table, e))?;
        super::cells_of(table, &columns, &rows)
    }

    async fn stage_tables(&self) -> Result<Vec<String>, Error> {
        self.list_stages().await
    }

    async fn read_rejects(&self, object: &str) -> Result<Vec<Reject>, Error> {
        let action = "read rejects";
        let rows = statement(sql::render_read_rejects(&self.data_schema))
            .bind(object)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::from_sqlx(KIND, action, e))?;
        rows.iter()
            .map(|row| {
                let raw: Option<String> = row.try_get(3)?;
                Ok(Reject {
                    object: row.try_get(0)?,
                    id: row.try_get(1)?,
                    property: row.try_get(2)?,
                    raw: raw.unwrap_or_default(),
                    reason: row.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| Error::from_sqlx(KIND, action, e))
    }

    async fn checkpoint(&self, stream: &crate::state::StreamId) -> Result<Option<Checkpoint>, Error> {
        self.state_store().stored_checkpoint(stream).await
    }

    async fn read_edges(&self) -> Result<Vec<EdgeRow>, Error> {
        let action = "read the association edges";
        let rows = statement(sql::render_read_edges(&self.data_schema))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::from_sqlx(KIND, action, e))?;
        rows.iter()
            .map(|row| {
                Ok(EdgeRow {
                    from_type: row.try_get(0)?,
                    from_id: row.try_get(1)?,
                    to_type: row.try_get(2)?,
                    to_id: row.try_get(3)?,
                    type_id: row.try_get(4)?,
                    category: row.try_get(5)?,
                    label: row.try_get(6)?,
                    synced_at_ms: row.try_get(7)?,
                    deleted_at_ms: row.try_get(8)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(|e| Error::from_sqlx(KIND, action, e))
    }
}
