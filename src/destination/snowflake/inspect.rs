//! Read-back for the conformance suite (built with the `test-support` feature): rows, stages,
//! rejects and edges as stored (Snowflake holds no checkpoints).

use super::client::{Bindings, Value};
use super::{hsync_columns, sql, value_text, SnowflakeDestination, KIND};
use crate::destination::conformance::{EdgeRow, Inspect, Row};
use crate::destination::{Destination, Error};
use crate::schema::Reject;
use crate::state::Checkpoint;

fn table_missing(table: &str) -> Error {
    Error::Statement { kind: KIND, action: format!("read {table}"), detail: "the table does not exist".to_owned() }
}

impl Inspect for SnowflakeDestination {
    async fn read_table(&self, table: &str) -> Result<Vec<Row>, Error> {
        let columns = self.describe(table).await?.ok_or_else(|| table_missing(table))?;
        let order: Vec<&str> = match crate::schema::dimension::DIMENSION_TABLES.iter().find(|d| d.name == table) {
            Some(d) => d.key.to_vec(),
            None => vec![hsync_columns::ID],
        };
        let statement = sql::render_read_table(&self.location, table, &columns, &order);
        let result = self.client.query(&statement, &Bindings::None, &format!("read {table}")).await?;
        super::cells_of(table, &columns, result.rows)
    }

    async fn stage_tables(&self) -> Result<Vec<String>, Error> {
        self.list_stages().await
    }

    async fn read_rejects(&self, object: &str) -> Result<Vec<Reject>, Error> {
        let result = self
            .client
            .query(
                &sql::render_read_rejects(&self.location),
                &Bindings::Positional(vec![Some(object.to_owned())]),
                "read rejects",
            )
            .await?;
        Ok(result
            .rows
            .into_iter()
            .map(|row| {
                let mut cells = row.into_iter().map(value_text);
                let mut next = || cells.next().flatten().unwrap_or_default();
                Reject { object: next(), id: next(), property: next(), raw: next(), reason: next() }
            })
            .collect())
    }

    /// Snowflake holds no checkpoints: they live in the local state file.
    async fn checkpoint(&self, _stream: &crate::state::StreamId) -> Result<Option<Checkpoint>, Error> {
        Ok(None)
    }

    async fn read_edges(&self) -> Result<Vec<EdgeRow>, Error> {
        let action = "read the association edges";
        let result = self.client.query(&sql::render_read_edges(&self.location), &Bindings::None, action).await?;
        let corrupt =
            || Error::Statement { kind: KIND, action: action.to_owned(), detail: "an edge row is malformed".into() };
        result
            .rows
            .into_iter()
            .map(|row| {
                let int = |i: usize| row.get(i).and_then(Value::as_i64);
                let text = |i: usize| row.get(i).cloned().and_then(value_text);
                Ok(EdgeRow {
                    from_type: text(0).ok_or_else(corrupt)?,
                    from_id: int(1).ok_or_else(corrupt)?,
                    to_type: text(2).ok_or_else(corrupt)?,
                    to_id: int(3).ok_or_else(corrupt)?,
                    type_id: int(4).and_then(|v| i32::try_from(v).ok()).ok_or_else(corrupt)?,
                    category: text(5).ok_or_else(corrupt)?,
                    label: text(6),
                    synced_at_ms: int(7).ok_or_else(corrupt)?,
                    deleted_at_ms: int(8),
                })
            })
            .collect()
    }
}
