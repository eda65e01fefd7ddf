//! Read-back for the conformance suite (built with the `test-support` feature): rows, stages,
//! rejects and edges as stored (BigQuery holds no checkpoints), values normalised as the suite
//! compares them.

use super::client::string_param;
use super::{hsync_columns, int_at, ms_at, sql, text_at, unreadable, BigQueryDestination, DIMENSION_TABLES, KIND};
use crate::destination::conformance::{EdgeRow, Inspect, Row};
use crate::destination::{Destination, Error};
use crate::schema::Reject;
use crate::state::Checkpoint;

impl Inspect for BigQueryDestination {
    async fn read_table(&self, table: &str) -> Result<Vec<Row>, Error> {
        let action = format!("read {table}");
        let Some(columns) = self.describe(table).await? else {
            return Err(Error::Statement { kind: KIND, action, detail: "the table does not exist".to_owned() });
        };
        let order: Vec<&str> = match DIMENSION_TABLES.iter().find(|d| d.name == table) {
            Some(d) => d.key.to_vec(),
            None => vec![hsync_columns::ID],
        };
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let rows =
            self.read_rows(&action, sql::render_read_table(self.ds(), table, &names, &order), Vec::new()).await?;
        super::cells_of(&action, &columns, &rows)
    }

    async fn stage_tables(&self) -> Result<Vec<String>, Error> {
        self.list_stages().await
    }

    async fn read_rejects(&self, object: &str) -> Result<Vec<Reject>, Error> {
        let action = "read rejects";
        let rows =
            self.read_rows(action, sql::render_read_rejects(self.ds()), vec![string_param("object", object)]).await?;
        rows.iter()
            .map(|r| {
                let text = |i| text_at(action, r, i).map(Option::unwrap_or_default);
                Ok(Reject { object: text(0)?, id: text(1)?, property: text(2)?, raw: text(3)?, reason: text(4)? })
            })
            .collect()
    }

    /// BigQuery holds no checkpoint: they live in the local state file (see the module docs).
    async fn checkpoint(&self, _stream: &crate::state::StreamId) -> Result<Option<Checkpoint>, Error> {
        Ok(None)
    }

    async fn read_edges(&self) -> Result<Vec<EdgeRow>, Error> {
        let action = "read the association edges";
        let rows = self.read_rows(action, sql::render_read_edges(self.ds()), Vec::new()).await?;
        rows.iter()
            .map(|r| {
                let required = |v: Option<i64>| v.ok_or_else(|| unreadable(action, "a NULL in a required column"));
                let text = |i| text_at(action, r, i)?.ok_or_else(|| unreadable(action, "a NULL in a required column"));
                Ok(EdgeRow {
                    from_type: text(0)?,
                    from_id: required(int_at(action, r, 1)?)?,
                    to_type: text(2)?,
                    to_id: required(int_at(action, r, 3)?)?,
                    type_id: i32::try_from(required(int_at(action, r, 4)?)?)
                        .map_err(|_| unreadable(action, "a type id out of range"))?,
                    category: text(5)?,
                    label: text_at(action, r, 6)?,
                    synced_at_ms: required(ms_at(action, r, 7)?)?,
                    deleted_at_ms: ms_at(action, r, 8)?,
                })
            })
            .collect()
    }
}
