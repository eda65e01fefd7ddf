//! Where things live under the destination directory, what files are named, and how a file
//! becomes visible: written under a hidden temporary name in its final directory, flushed to
//! disk, renamed into place, and the directory flushed, so a crash never leaves a partial file
//! under a name readers look at. See `docs/destinations/parquet.md` for the layout as users
//! see it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::types::{type_name, type_named};
use crate::schema::{Change, ColumnType, ExistingColumn, SchemaPlan};

/// Each table directory's description: its key and columns (see [`TableFile`]).
pub const SCHEMA_FILE: &str = "_schema.json";
/// The directory, inside a table's, of batches staged and not yet merged.
pub const STAGING_DIR: &str = "_staging";
/// The association edges of every object pair.
pub const EDGES_DIR: &str = "associations";
/// Values that did not parse.
pub const REJECTS_DIR: &str = "_hsync_rejects";
/// The file naming the layout's version, at the top of the directory.
pub const LAYOUT_FILE: &str = "_hsync_layout.json";
/// The layout version this build writes.
pub const LAYOUT_VERSION: u32 = 1;
/// Every data file's operation column.
pub const OP: &str = "_hsync_op";
/// Every data file's sequence number, the same in each of its rows.
pub const BATCH: &str = "_hsync_batch";
/// Data and staged files end with this.
pub const PARQUET_SUFFIX: &str = ".parquet";
/// Digits of the zero-padded sequence number that starts a data file's name.
const SEQ_DIGITS: usize = 20;

/// The directory name of a table: the name itself when it is made of ASCII letters, digits,
/// `_` and `-` (and does not start with `-`), else each other byte as `%XX`. The one place a
/// table name becomes a path, so no name can climb out of the destination directory.
pub fn dir_name(table: &str) -> String {
    let mut out = String::with_capacity(table.len());
    for (i, b) in table.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'_' || (b == b'-' && i > 0) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The name of a data file with sequence number `seq`: `<seq, 20 digits>-<uuid>.parquet`.
/// The uuid keeps two writers that picked the same number from replacing each other's file.
pub fn data_file_name(seq: u64) -> String {
    format!("{seq:0width$}-{}{PARQUET_SUFFIX}", uuid::Uuid::new_v4().simple(), width = SEQ_DIGITS)
}

/// The sequence number of a data file's name; `None` for anything else (temporary files,
/// `_schema.json`, directories' names).
pub fn data_file_seq(name: &str) -> Option<u64> {
    let rest = name.strip_suffix(PARQUET_SUFFIX)?;
    let (seq, id) = rest.split_once('-')?;
    (seq.len() == SEQ_DIGITS && !id.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()))
        .then(|| seq.parse().ok())
        .flatten()
}

/// The data files of a table directory, ordered by sequence number, then name.
pub fn data_files(dir: &Path) -> io::Result<Vec<(u64, String)>> {
    let mut files = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if let Some(seq) = data_file_seq(&name) {
            files.push((seq, name));
        }
    }
    files.sort();
    Ok(files)
}

/// A temporary file's name for `name`: hidden (a leading dot, which Spark, Hive and DuckDB's
/// `*.parquet` globs all skip) and not ending in `.parquet`.
fn temporary_name(name: &str) -> String {
    format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple())
}

/// Whether `name` is a temporary file a crash may have left.
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Writes `dir/name` atomically: `write` fills a hidden temporary file in `dir`, which is then
/// flushed, renamed to `name` and the directory flushed. On failure the temporary file is
/// removed and nothing named `name` appears.
pub fn write_atomically(dir: &Path, name: &str, write: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<()> {
    let temporary = dir.join(temporary_name(name));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&temporary)?;
        write(&mut file)?;
        file.flush()?;
        file.sync_all()?;
        fs::rename(&temporary, dir.join(name))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// Flushes a directory's entries (a rename or removal in it) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `batch` as a Parquet file `dir/name`, atomically (snappy-compressed, one row group
/// per million rows).
pub fn write_parquet(dir: &Path, name: &str, batch: &RecordBatch) -> io::Result<()> {
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    write_atomically(dir, name, |file| {
        let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(io::Error::other)?;
        writer.write(batch).map_err(io::Error::other)?;
        writer.close().map_err(io::Error::other)?;
        Ok(())
    })
}

/// Every record batch of a Parquet file, with the file's schema.
pub fn read_parquet(path: &Path) -> io::Result<(Arc<Schema>, Vec<RecordBatch>)> {
    let file = File::open(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(io::Error::other)?;
    let schema = Arc::clone(builder.schema());
    let reader = builder.with_batch_size(8_192).build().map_err(io::Error::other)?;
    let batches = reader.collect::<Result<Vec<_>, _>>().map_err(io::Error::other)?;
    Ok((schema, batches))
}

/// A table directory's `_schema.json`: the table's name, its key columns and every column with
/// its type, in table order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableFile {
    pub table: String,
    pub key: Vec<String>,
    pub columns: Vec<ExistingColumn>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct TableJson {
    table: String,
    key: Vec<String>,
    columns: Vec<ColumnJson>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ColumnJson {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

impl TableFile {
    pub fn new(table: &str, key: &[&str], columns: Vec<ExistingColumn>) -> TableFile {
        TableFile { table: table.to_owned(), key: key.iter().map(|k| (*k).to_owned()).collect(), columns }
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// The Arrow fields of the table's columns as files carry them.
    pub fn fields(&self) -> Vec<Field> {
        self.columns.iter().map(|c| super::types::file_field(&c.name, c.ty)).collect()
    }

    /// Reads `dir/_schema.json`; `None` when the table does not exist.
    pub fn read(dir: &Path) -> io::Result<Option<TableFile>> {
        let text = match fs::read_to_string(dir.join(SCHEMA_FILE)) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let json: TableJson = serde_json::from_str(&text)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{SCHEMA_FILE} is not readable: {e}")))?;
        let columns = json
            .columns
            .into_iter()
            .map(|c| {
                let ty: ColumnType = type_named(&c.ty).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, format!("{SCHEMA_FILE} names an unknown type {}", c.ty))
                })?;
                Ok(ExistingColumn { name: c.name, ty })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Some(TableFile { table: json.table, key: json.key, columns }))
    }

    /// Writes `dir/_schema.json` atomically, creating `dir` when missing.
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)?;
        let json = TableJson {
            table: self.table.clone(),
            key: self.key.clone(),
            columns: self
                .columns
                .iter()
                .map(|c| ColumnJson { name: c.name.clone(), ty: type_name(c.ty).to_owned() })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&json).map_err(io::Error::other)?;
        write_atomically(dir, SCHEMA_FILE, |file| file.write_all(text.as_bytes()))
    }
}

/// The root's layout marker, written once by `prepare`.
pub fn layout_json() -> String {
    serde_json::json!({ "layout": LAYOUT_VERSION, "writer": "hsync", "docs": "docs/destinations/parquet.md" })
        .to_string()
}

/// Paths under the destination directory.
#[derive(Clone, Debug)]
pub struct Root(pub PathBuf);

impl Root {
    pub fn table(&self, table: &str) -> PathBuf {
        self.0.join(dir_name(table))
    }

    pub fn staging(&self, table: &str) -> PathBuf {
        self.table(table).join(STAGING_DIR)
    }

    /// A stage's name: its path below the root, `<table dir>/_staging/<uuid>.parquet`.
    pub fn stage_name(table: &str, file: &str) -> String {
        format!("{}/{STAGING_DIR}/{file}", dir_name(table))
    }

    /// The file of a stage name, when the name is one [`Root::stage_name`] gives for `table`.
    pub fn stage_path(&self, table: &str, stage: &str) -> Option<PathBuf> {
        let file = stage.strip_prefix(&format!("{}/{STAGING_DIR}/", dir_name(table)))?;
        let valid = file.ends_with(PARQUET_SUFFIX) && !file.contains(['/', '\\']) && !file.starts_with('.');
        valid.then(|| self.staging(table).join(file))
    }
}

/// What `alter` would do for a plan, one line per change, for `hsync schema-diff`: the
/// Parquet destination runs no SQL, it rewrites the table's `_schema.json`.
pub fn render_plan(plan: &SchemaPlan) -> Vec<String> {
    let file = format!("{}/{SCHEMA_FILE}", dir_name(&plan.table));
    let quoted = |name: &str| serde_json::Value::from(name).to_string();
    plan.changes
        .iter()
        .filter_map(|change| match change {
            Change::CreateTable { schema } => {
                let columns: Vec<String> =
                    schema.columns.iter().map(|c| format!("{} {}", quoted(&c.name), type_name(c.ty))).collect();
                Some(format!("create {file}: key \"id\", columns {}", columns.join(", ")))
            }
            Change::AddColumn { column } => Some(format!(
                "add column {} {} to {file} (later files carry it; rows written before read NULL)",
                quoted(&column.name),
                type_name(column.ty)
            )),
            Change::Widen { column, from, to } => Some(format!(
                "widen column {} of {file} from {} to {} (later files carry the new type; readers convert earlier files)",
                quoted(column),
                type_name(*from),
                type_name(*to)
            )),
            Change::Incompatible { .. }
            | Change::Overflow { .. }
            | Change::PropertyRemoved { .. }
            | Change::Unmappable { .. }
            | Change::ReplaceView { .. } => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{diff, ColumnBudget};

    fn props(kinds: &[(&str, &str)]) -> Vec<crate::hubspot::model::PropertyDefinition> {
        kinds
            .iter()
            .map(|(name, kind)| serde_json::from_value(serde_json::json!({ "name": name, "type": kind })).unwrap())
            .collect()
    }

    #[test]
    fn plans_render_as_schema_file_changes() {
        let first = diff(
            "deals",
            &props(&[("amount", "number"), ("closed", "date"), ("order", "string")]),
            None,
            &[],
            &Default::default(),
            ColumnBudget(10_000),
        );
        insta::assert_snapshot!("plan_create", render_plan(&first).join("\n"));
        let existing: Vec<ExistingColumn> =
            first.target.columns.iter().map(|c| ExistingColumn { name: c.name.clone(), ty: c.ty }).collect();
        let next = props(&[("amount", "number"), ("closed", "datetime"), ("order", "string"), ("has\"quote", "bool")]);
        let plan = diff("deals", &next, Some(&existing), &[], &Default::default(), ColumnBudget(10_000));
        insta::assert_snapshot!("plan_alter", render_plan(&plan).join("\n"));
    }

    #[test]
    fn table_names_cannot_leave_the_directory() {
        assert_eq!(dir_name("contacts"), "contacts");
        assert_eq!(dir_name("p_2-x"), "p_2-x");
        assert_eq!(dir_name("../etc"), "%2E%2E%2Fetc");
        assert_eq!(dir_name("-rf"), "%2Drf");
        assert_eq!(dir_name("ñ"), "%C3%B1");
        assert_eq!(dir_name(""), "");
    }

    #[test]
    fn data_file_names_sort_by_sequence() {
        let name = data_file_name(42);
        assert_eq!(data_file_seq(&name), Some(42));
        assert!(name.starts_with("00000000000000000042-"), "{name}");
        assert_eq!(data_file_seq(&temporary_name(&name)), None);
        assert!(is_temporary(&temporary_name(&name)));
        assert_eq!(data_file_seq("_schema.json"), None);
        assert_eq!(data_file_seq("42-x.parquet"), None);
        assert!(data_file_name(9) < data_file_name(10));
    }

    #[test]
    fn stage_names_map_back_to_their_table_only() {
        let root = Root(PathBuf::from("/lake"));
        let name = Root::stage_name("select", "abc.parquet");
        assert_eq!(root.stage_path("select", &name), Some(PathBuf::from("/lake/select/_staging/abc.parquet")));
        assert_eq!(root.stage_path("other", &name), None);
        assert_eq!(root.stage_path("select", "select/_staging/../x.parquet"), None);
    }
}
