//! Read-back for the conformance suite (built with the `test-support` feature): rows, staged
//! files, rejects and edges as stored (checkpoints live in the local state file), values as the
//! suite compares them.

use super::layout::{self, EDGES_DIR, REJECTS_DIR};
use super::log::TableLog;
use super::types::{self, Value};
use super::{io_error, statement_error, ParquetDestination};
use crate::destination::conformance::{EdgeRow, Inspect, Row};
use crate::destination::Error;
use crate::schema::Reject;
use crate::state::Checkpoint;

impl Inspect for ParquetDestination {
    async fn read_table(&self, table: &str) -> Result<Vec<Row>, Error> {
        let action = format!("read {table}");
        let inner = action.clone();
        self.with_log(table, action, move |log| {
            let schema =
                log.table().map_err(|e| statement_error(&inner, format!("table {}: {e}", schema_name(log))))?;
            log.rows()
                .values()
                .map(|row| {
                    schema
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| {
                            Ok((c.name.clone(), types::cell(v, c.ty, &c.name).map_err(|e| statement_error(&inner, e))?))
                        })
                        .collect()
                })
                .collect()
        })
        .await
    }

    async fn stage_tables(&self) -> Result<Vec<String>, Error> {
        let root = self.root.clone();
        Self::blocking("list staged files".to_owned(), move || {
            Ok(Self::list_stages(&root)
                .map_err(|e| io_error("list staged files", &e))?
                .into_iter()
                .map(|(name, _)| name)
                .filter(|name| name.ends_with(layout::PARQUET_SUFFIX))
                .collect())
        })
        .await
    }

    async fn read_rejects(&self, object: &str) -> Result<Vec<Reject>, Error> {
        let object = object.to_owned();
        self.with_log(REJECTS_DIR, format!("read the rejected values of {object}"), move |log| {
            let text = |v: &Value| v.as_text().unwrap_or_default().to_owned();
            Ok(log
                .rows()
                .values()
                .filter(|row| row[0].as_text() == Some(object.as_str()))
                .map(|row| Reject {
                    object: text(&row[0]),
                    id: text(&row[1]),
                    property: text(&row[2]),
                    raw: text(&row[3]),
                    reason: text(&row[4]),
                })
                .collect())
        })
        .await
    }

    /// The Parquet destination stores no checkpoints: they are in the local state file.
    async fn checkpoint(&self, _stream: &crate::state::StreamId) -> Result<Option<Checkpoint>, Error> {
        Ok(None)
    }

    async fn read_edges(&self) -> Result<Vec<EdgeRow>, Error> {
        let action = "read the association edges".to_owned();
        let inner = action.clone();
        self.with_log(EDGES_DIR, action, move |log| {
            log.rows()
                .values()
                .map(|row| {
                    let text = |i: usize| row[i].as_text().map(str::to_owned);
                    let int = |i: usize| row[i].as_int().ok_or_else(|| statement_error(&inner, "an edge lacks an id"));
                    Ok(EdgeRow {
                        from_type: text(0).unwrap_or_default(),
                        from_id: int(1)?,
                        to_type: text(2).unwrap_or_default(),
                        to_id: int(3)?,
                        type_id: i32::try_from(int(4)?)
                            .map_err(|_| statement_error(&inner, "an edge's type id is out of range"))?,
                        category: text(5).unwrap_or_default(),
                        label: text(6),
                        synced_at_ms: row[7]
                            .as_timestamp()
                            .ok_or_else(|| statement_error(&inner, "an edge has no synced_at"))?,
                        deleted_at_ms: row[8].as_timestamp(),
                    })
                })
                .collect()
        })
        .await
    }
}

fn schema_name(log: &TableLog) -> String {
    log.dir().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
