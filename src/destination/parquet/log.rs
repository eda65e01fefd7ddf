//! A table's current state, rebuilt from its files by the documented rule, and the writing of
//! new files.
//!
//! **The rule.** Every data file holds complete rows (after-images): the whole row as it is
//! after the operation, every column the table had when the file was written. The current row
//! of a key is its row in the file with the highest `_hsync_batch` (ties, which only two
//! writers at once could cause, go to the greater file name); a column a file lacks (added to
//! the table later) is NULL. `_hsync_op` says what happened and never changes the rule.
//!
//! A [`TableLog`] caches the rebuilt rows of one table and keeps them current cheaply: before
//! each use it lists the directory and replays only files it has not seen, and it rebuilds from
//! scratch when `_schema.json` changed or a file appeared out of order.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use super::layout::{self, TableFile, BATCH, OP};
use super::types::{self, Value};

/// A key's values, in key column order.
pub type Key = Vec<Value>;
/// A row's values, in the table's column order.
pub type Values = Vec<Value>;

/// One row to write: its operation and its complete values.
#[derive(Clone, Debug)]
pub struct Change {
    pub op: &'static str,
    pub row: Values,
}

/// The rebuilt current rows of one table directory.
#[derive(Debug)]
pub struct TableLog {
    dir: PathBuf,
    /// `None` until the table exists.
    pub schema: Option<TableFile>,
    key: Vec<usize>,
    rows: BTreeMap<Key, Values>,
    /// Replayed or written files, by (sequence, name).
    files: BTreeSet<(u64, String)>,
}

fn invalid(detail: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, detail)
}

impl TableLog {
    pub fn new(dir: PathBuf) -> TableLog {
        TableLog { dir, schema: None, key: Vec::new(), rows: BTreeMap::new(), files: BTreeSet::new() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Forgets everything, so the next [`TableLog::refresh`] replays every file.
    pub fn invalidate(&mut self) {
        self.schema = None;
        self.rows.clear();
        self.files.clear();
    }

    /// Brings the rows up to date with the directory: replays the files not seen yet, or
    /// everything when the schema changed or a file sorts before one already replayed.
    pub fn refresh(&mut self) -> io::Result<()> {
        let schema = TableFile::read(&self.dir)?;
        if schema != self.schema {
            self.invalidate();
            self.key = match &schema {
                Some(s) => s
                    .key
                    .iter()
                    .map(|k| s.column(k).ok_or_else(|| invalid(format!("the key column {k} is not a column"))))
                    .collect::<io::Result<_>>()?,
                None => Vec::new(),
            };
            self.schema = schema;
        }
        if self.schema.is_none() {
            return Ok(());
        }
        let listed = layout::data_files(&self.dir)?;
        let unseen: Vec<&(u64, String)> = listed.iter().filter(|f| !self.files.contains(f)).collect();
        let in_order = match (self.files.last(), unseen.first()) {
            (Some(last), Some(first)) => *first > last,
            _ => true,
        };
        let all_still_there = self.files.len() + unseen.len() == listed.len();
        if !in_order || !all_still_there {
            let schema = self.schema.take();
            self.invalidate();
            self.schema = schema;
            return self.replay(&listed);
        }
        let unseen: Vec<(u64, String)> = unseen.into_iter().cloned().collect();
        self.replay(&unseen)
    }

    fn replay(&mut self, files: &[(u64, String)]) -> io::Result<()> {
        for file in files {
            self.apply_file(&file.1)?;
            self.files.insert(file.clone());
        }
        Ok(())
    }

    fn apply_file(&mut self, name: &str) -> io::Result<()> {
        let Some(schema) = &self.schema else { return Ok(()) };
        let (file_schema, batches) = layout::read_parquet(&self.dir.join(name))?;
        // Where each table column is in the file, when it is.
        let positions: Vec<Option<usize>> = schema.columns.iter().map(|c| file_schema.index_of(&c.name).ok()).collect();
        for batch in batches {
            let n = batch.num_rows();
            let columns: Vec<Option<Vec<Value>>> = positions
                .iter()
                .zip(&schema.columns)
                .map(|(position, column)| {
                    position
                        .map(|i| {
                            types::values_of(batch.column(i), column.ty)
                                .map_err(|e| invalid(format!("column {} of {name} {e}", column.name)))
                        })
                        .transpose()
                })
                .collect::<io::Result<_>>()?;
            let mut columns: Vec<std::vec::IntoIter<Value>> =
                columns.into_iter().map(|c| c.unwrap_or_else(|| vec![Value::Null; n]).into_iter()).collect();
            for _ in 0..n {
                let row: Values = columns.iter_mut().map(|c| c.next().unwrap_or(Value::Null)).collect();
                let key: Key = self.key.iter().map(|i| row[*i].clone()).collect();
                if key.iter().any(Value::is_null) {
                    return Err(invalid(format!("{name} holds a row without a key")));
                }
                self.rows.insert(key, row);
            }
        }
        Ok(())
    }

    /// The table's schema; an error naming the table when it does not exist.
    pub fn table(&self) -> io::Result<&TableFile> {
        self.schema.as_ref().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the table does not exist"))
    }

    /// The current rows, by key.
    pub fn rows(&self) -> &BTreeMap<Key, Values> {
        &self.rows
    }

    /// The key of a row.
    pub fn key_of(&self, row: &Values) -> Key {
        self.key.iter().map(|i| row[*i].clone()).collect()
    }

    /// A new row of NULLs as wide as the table.
    pub fn empty_row(&self) -> Values {
        vec![Value::Null; self.schema.as_ref().map_or(0, |s| s.columns.len())]
    }

    /// Writes `changes` as the table's next data file and applies them; nothing is written
    /// when there are none. Returns the file's sequence number.
    pub fn append(&mut self, changes: Vec<Change>) -> io::Result<Option<u64>> {
        if changes.is_empty() {
            return Ok(None);
        }
        let schema = self.table()?.clone();
        // The next number after every file there is, ours or not.
        let seq = layout::data_files(&self.dir)?.last().map_or(1, |(seq, _)| seq + 1);
        let batch = file_batch(&schema, seq, &changes)?;
        let name = layout::data_file_name(seq);
        layout::write_parquet(&self.dir, &name, &batch)?;
        // Files written by someone else since the last refresh are replayed first.
        self.refresh_before(seq)?;
        for change in changes {
            let key = self.key_of(&change.row);
            self.rows.insert(key, change.row);
        }
        self.files.insert((seq, name));
        Ok(Some(seq))
    }

    /// Replays the unseen files numbered below `seq`.
    fn refresh_before(&mut self, seq: u64) -> io::Result<()> {
        let listed = layout::data_files(&self.dir)?;
        let unseen: Vec<(u64, String)> = listed.into_iter().filter(|f| f.0 < seq && !self.files.contains(f)).collect();
        if unseen.iter().any(|f| self.files.last().is_some_and(|last| f < last)) {
            self.invalidate();
            return self.refresh();
        }
        self.replay(&unseen)
    }
}

/// The record batch of one data file: the table's columns, then `_hsync_op` and `_hsync_batch`.
pub fn file_batch(schema: &TableFile, seq: u64, changes: &[Change]) -> io::Result<RecordBatch> {
    let mut fields = schema.fields();
    fields.push(Field::new(OP, DataType::Utf8, false));
    fields.push(Field::new(BATCH, DataType::Int64, false));
    let mut arrays: Vec<ArrayRef> = schema
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| types::array_of(c.ty, changes.iter().map(|ch| ch.row.get(i).unwrap_or(&Value::Null))))
        .collect();
    arrays.push(Arc::new(changes.iter().map(|c| Some(c.op)).collect::<StringArray>()));
    let seq = i64::try_from(seq).map_err(|_| invalid("the sequence number is past 2^63".to_owned()))?;
    arrays.push(Arc::new(Int64Array::from(vec![seq; changes.len()])));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(io::Error::other)
}
