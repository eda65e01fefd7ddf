//! Read-back for the conformance suite (built with the `test-support` feature): rows, stages,
//! rejects, checkpoints and edges as stored.

use sqlx::postgres::PgRow;
use sqlx::Row as _;

use super::{db_error, sql, statement, types, PostgresDestination, KIND};
use crate::destination::conformance::{Cell, EdgeRow, Inspect, Row};
use crate::destination::{Destination, Error};
use crate::schema::{ColumnType, ExistingColumn, Reject};
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
        rows.iter()
            .map(|row| {
                columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| Ok((c.name.clone(), column_of(row, i, c, table)?)))
                    .collect::<Result<Row, Error>>()
            })
            .collect()
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

/// One value of a row [`sql::render_read_table`] read, as text, as the suite compares it.
fn column_of(row: &PgRow, index: usize, column: &ExistingColumn, table: &str) -> Result<Cell, Error> {
    let corrupt =
        |detail: String| Error::Statement { kind: KIND, action: format!("read {table}.{}", column.name), detail };
    let text: Option<String> = row.try_get(index).map_err(|e| Error::from_sqlx(KIND, format!("read {table}"), e))?;
    let Some(text) = text else { return Ok(Cell::Null) };
    Ok(match column.ty {
        ColumnType::Text => Cell::Text(text),
        ColumnType::Decimal => Cell::Decimal(types::normalise_decimal(&text)),
        ColumnType::Boolean => Cell::Bool(text == "true"),
        ColumnType::Date => Cell::Date(text),
        ColumnType::Timestamp => {
            Cell::TimestampMs(text.parse().map_err(|_| corrupt("not epoch milliseconds".to_owned()))?)
        }
        ColumnType::Json => Cell::Json(serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?),
        ColumnType::BigInt => Cell::Int(text.parse().map_err(|_| corrupt("not an integer".to_owned()))?),
    })
}
