//! The Parquet destination against real files in a temporary directory: the shared destination
//! conformance suite, then the layout's own promises, checked by reading the files with the
//! `parquet` crate directly (columns, types, `_hsync_op` values, one file per batch), crash
//! leftovers (a stage, a temporary file) that stay invisible and are swept, a second process
//! on the same directory, widening, and the wiring through the configuration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int64Type};
use arrow::record_batch::RecordBatch;
use hsync::config::{DestinationConfig, DestinationUrl};
use hsync::destination::conformance::{self, batch_of, ensure_table, load, property, record, Cell, Inspect};
use hsync::destination::parquet::{layout, ParquetDestination};
use hsync::destination::{AnyDestination, Destination, RowFlag};
use hsync::schema::{diff, parse_instant_ms};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tempfile::TempDir;

/// A prepared destination in a fresh directory; keep the directory alive while using it.
struct Lake {
    dir: TempDir,
    dest: ParquetDestination,
}

impl Lake {
    fn path(&self) -> PathBuf {
        self.dir.path().join("lake")
    }

    fn url(&self) -> String {
        format!("parquet://{}", self.path().display())
    }
}

async fn fresh() -> Lake {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest =
        ParquetDestination::connect(&format!("parquet://{}", dir.path().join("lake").display())).expect("connect");
    dest.prepare().await.expect("prepare");
    Lake { dir, dest }
}

/// The names of the data files directly in a table directory, as a `*.parquet` glob sees them.
fn globbed(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("table directory")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8 name"))
        .filter(|n| n.ends_with(".parquet") && !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// Every batch of one Parquet file, read with the `parquet` crate's Arrow reader.
fn read_file(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).expect("open");
    ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("a valid Parquet file")
        .build()
        .expect("reader")
        .map(|b| b.expect("batch"))
        .collect()
}

fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let array = batch.column_by_name(column).unwrap_or_else(|| panic!("column {column}"));
    let a = array.as_string::<i32>();
    (0..a.len()).map(|i| (!a.is_null(i)).then(|| a.value(i).to_owned())).collect()
}

fn ints(batch: &RecordBatch, column: &str) -> Vec<i64> {
    batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("column {column}"))
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

fn row_of(rows: &[conformance::Row], id: i64) -> &conformance::Row {
    rows.iter().find(|r| r.get("id") == Some(&Cell::Int(id))).unwrap_or_else(|| panic!("row {id} missing"))
}

#[tokio::test]
async fn conformance_suite() {
    let lake = fresh().await;
    conformance::run_all(&lake.dest).await;
}

#[tokio::test]
async fn files_are_parquet_with_the_documented_columns_and_operations() {
    let lake = fresh().await;
    let schema = ensure_table(
        &lake.dest,
        "deals",
        &[property("amount", "number"), property("payload", "json"), property("closed", "date")],
    )
    .await;
    let t0 = "2026-01-02T00:00:00.000Z";
    let records: Vec<_> = (1..=3)
        .map(|i| {
            record(
                i,
                t0,
                &[
                    ("amount", Some("12345678901234567890.000000000000000001")),
                    ("payload", Some("{\"a\":1}")),
                    ("closed", Some("2026-01-01")),
                ],
            )
        })
        .collect();
    let (b, r) = batch_of(&schema, &records);
    assert_eq!(load(&lake.dest, "deals", &b, &r).await.written, 3);
    // A replay writes no file at all.
    assert_eq!(load(&lake.dest, "deals", &b, &r).await, hsync::destination::MergeOutcome { written: 0, skipped: 3 });
    let t0_ms = parse_instant_ms(t0).unwrap();
    let flags = [
        RowFlag { id: 1, archived_at: Some(Some(t0_ms + 1)), observed_cursor: Some(t0_ms), ..RowFlag::default() },
        RowFlag { id: 2, merged_into: Some(Some(3)), ..RowFlag::default() },
        RowFlag { id: 7, deleted_at: Some(Some(t0_ms + 2)), ..RowFlag::default() },
    ];
    assert_eq!(lake.dest.flag("deals", &flags).await.unwrap(), 3);
    assert_eq!(
        lake.dest.flag("deals", &[RowFlag { id: 1, archived_at: Some(None), ..RowFlag::default() }]).await.unwrap(),
        1
    );

    let dir = lake.path().join("deals");
    let files = globbed(&dir);
    assert_eq!(files.len(), 3, "one file per write that changed something: {files:?}");
    let mut ops = Vec::new();
    for (seq, name) in files.iter().enumerate() {
        let batches = read_file(&dir.join(name));
        let batch = &batches[0];
        let schema = batch.schema();
        // The table's columns, then the operation and the sequence number.
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "id",
                "_hsync_cursor",
                "_hsync_synced_at",
                "_hsync_archived_at",
                "_hsync_merged_into",
                "_hsync_deleted_at",
                "_hsync_overflow",
                "amount",
                "closed",
                "payload",
                "_hsync_op",
                "_hsync_batch"
            ]
        );
        let amount = schema.field_with_name("amount").unwrap();
        assert_eq!(amount.data_type(), &DataType::Utf8, "decimals are exact text");
        assert_eq!(amount.metadata().get("hsync.type").map(String::as_str), Some("decimal"));
        assert_eq!(
            schema.field_with_name("payload").unwrap().metadata().get("hsync.type").map(String::as_str),
            Some("json")
        );
        assert_eq!(schema.field_with_name("closed").unwrap().data_type(), &DataType::Date32);
        assert!(
            matches!(schema.field_with_name("_hsync_cursor").unwrap().data_type(), DataType::Timestamp(_, Some(tz)) if tz.as_ref() == "UTC")
        );
        assert_eq!(ints(batch, "_hsync_batch"), vec![seq as i64 + 1; batch.num_rows()], "{name}");
        assert_eq!(layout::data_file_seq(name), Some(seq as u64 + 1));
        ops.push(
            ints(batch, "id")
                .into_iter()
                .zip(strings(batch, "_hsync_op"))
                .map(|(id, op)| (id, op.unwrap()))
                .collect::<Vec<_>>(),
        );
        if seq == 0 {
            assert_eq!(strings(batch, "amount")[0].as_deref(), Some("12345678901234567890.000000000000000001"));
        }
    }
    let op = |id: i64, op: &str| (id, op.to_owned());
    assert_eq!(
        ops,
        [
            vec![op(1, "upsert"), op(2, "upsert"), op(3, "upsert")],
            vec![op(1, "archive"), op(2, "merge"), op(7, "delete")],
            vec![op(1, "restore")],
        ]
    );
    // Every row is a complete after-image: the merge row of 2 still has its values.
    let second = &read_file(&dir.join(&files[1]))[0];
    assert_eq!(strings(second, "amount")[1].as_deref(), Some("12345678901234567890.000000000000000001"));
    assert_eq!(strings(second, "amount")[2], None, "an id-only row holds no values");
    let schema_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("_schema.json")).unwrap()).unwrap();
    assert_eq!(schema_json["key"], serde_json::json!(["id"]));
    assert_eq!(schema_json["columns"][7], serde_json::json!({"name": "amount", "type": "decimal"}));
}

#[tokio::test]
async fn a_stage_left_by_a_crash_is_invisible_and_swept_on_restart() {
    let lake = fresh().await;
    let schema = ensure_table(&lake.dest, "contacts", &[property("email", "string")]).await;
    let (b, r) = batch_of(&schema, &[record(1, "2026-01-01T00:00:00.000Z", &[("email", Some("before@example.com"))])]);
    load(&lake.dest, "contacts", &b, &r).await;
    let (b, _) = batch_of(&schema, &[record(1, "2026-01-02T00:00:00.000Z", &[("email", Some("after@example.com"))])]);
    let stage = lake.dest.stage("contacts", &b).await.expect("stage");
    // The process dies here. The staged file exists, but not where readers look.
    let dir = lake.path().join("contacts");
    let staged: Vec<_> = std::fs::read_dir(dir.join("_staging")).unwrap().collect();
    assert_eq!(staged.len(), 1);
    assert_eq!(globbed(&dir).len(), 1, "a *.parquet glob of the table sees only the merged file");
    let restarted = ParquetDestination::connect(&lake.url()).expect("connect");
    assert_eq!(restarted.stage_tables().await.unwrap(), std::slice::from_ref(&stage.stage_table));
    let rows = restarted.read_table("contacts").await.unwrap();
    assert_eq!(row_of(&rows, 1).get("email"), Some(&Cell::Text("before@example.com".into())));
    assert_eq!(restarted.sweep_stages().await.unwrap(), 1);
    assert!(restarted.stage_tables().await.unwrap().is_empty());
    assert_eq!(std::fs::read_dir(dir.join("_staging")).unwrap().count(), 0);
    // Merging the swept stage fails and changes nothing.
    assert!(restarted.merge(stage, &[], None).await.is_err());
    assert_eq!(restarted.read_table("contacts").await.unwrap(), rows);
}

#[tokio::test]
async fn a_temporary_file_never_counts_and_a_failed_write_leaves_nothing() {
    let lake = fresh().await;
    let schema = ensure_table(&lake.dest, "contacts", &[property("email", "string")]).await;
    let (b, r) = batch_of(&schema, &[record(1, "2026-01-01T00:00:00.000Z", &[("email", Some("a@example.com"))])]);
    load(&lake.dest, "contacts", &b, &r).await;
    let dir = lake.path().join("contacts");
    let before = lake.dest.read_table("contacts").await.unwrap();
    // What a crash mid-write leaves: a hidden temporary file, cut short, next to the data.
    let leftover = dir.join(format!(".{}.0123.tmp", layout::data_file_name(2)));
    std::fs::write(&leftover, b"PAR1 cut short").unwrap();
    let reader = ParquetDestination::connect(&lake.url()).expect("connect");
    assert_eq!(reader.read_table("contacts").await.unwrap(), before, "the temporary file is not read");
    assert_eq!(globbed(&dir).len(), 1);
    // Writing goes on past it, with the next sequence number.
    let (b, r) = batch_of(&schema, &[record(2, "2026-01-01T00:00:00.000Z", &[("email", Some("b@example.com"))])]);
    assert_eq!(load(&reader, "contacts", &b, &r).await.written, 1);
    assert_eq!(layout::data_file_seq(&globbed(&dir)[1]), Some(2));
    reader.sweep_stages().await.unwrap();
    assert!(!leftover.exists(), "the sweep removes temporary files too");

    // A write that fails part-way leaves neither the file nor its temporary.
    let failed = layout::write_atomically(&dir, "00000000000000000099-x.parquet", |f| {
        std::io::Write::write_all(f, b"PAR1")?;
        Err(std::io::Error::other("disk full"))
    });
    assert!(failed.is_err());
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().all(|n| !n.contains("0099")), "{names:?}");
    assert_eq!(lake.dest.read_table("contacts").await.unwrap().len(), 2);
}

#[tokio::test]
async fn another_process_sees_each_new_file() {
    let lake = fresh().await;
    let schema = ensure_table(&lake.dest, "contacts", &[property("email", "string")]).await;
    let reader = ParquetDestination::connect(&lake.url()).expect("connect");
    for day in 1..=3 {
        let modified = format!("2026-01-0{day}T00:00:00.000Z");
        let (b, r) = batch_of(
            &schema,
            &[
                record(1, &modified, &[("email", Some(&format!("v{day}@example.com")))]),
                record(day + 1, &modified, &[]),
            ],
        );
        load(&lake.dest, "contacts", &b, &r).await;
        let rows = reader.read_table("contacts").await.unwrap();
        assert_eq!(rows.len() as u64, day + 1);
        assert_eq!(row_of(&rows, 1).get("email"), Some(&Cell::Text(format!("v{day}@example.com"))));
        assert_eq!(reader.live_ids("contacts").await.unwrap().len() as u64, day + 1);
    }
    // The other process's guard sees the newest version too.
    let (b, r) = batch_of(&schema, &[record(1, "2026-01-02T00:00:00.000Z", &[("email", Some("old@example.com"))])]);
    let outcome = load(&reader, "contacts", &b, &r).await;
    assert_eq!((outcome.written, outcome.skipped), (0, 1));
    // A file removed behind the cache's back: the next read rebuilds from what is there.
    let dir = lake.path().join("contacts");
    std::fs::remove_file(dir.join(&globbed(&dir)[2])).unwrap();
    assert_eq!(lake.dest.read_table("contacts").await.unwrap().len(), 3);
}

#[tokio::test]
async fn widening_keeps_earlier_files_readable() {
    let lake = fresh().await;
    let schema = ensure_table(&lake.dest, "deals", &[property("closed", "date"), property("code", "number")]).await;
    let (b, r) = batch_of(
        &schema,
        &[record(1, "2026-01-01T00:00:00.000Z", &[("closed", Some("2026-03-29")), ("code", Some("42"))])],
    );
    load(&lake.dest, "deals", &b, &r).await;
    let wider = [property("closed", "datetime"), property("code", "string")];
    let existing = lake.dest.describe("deals").await.unwrap();
    let plan = diff("deals", &wider, existing.as_deref(), &[], &Default::default(), lake.dest.column_budget());
    assert_eq!(plan.changes.len(), 2, "{:?}", plan.changes);
    lake.dest.alter(&plan).await.unwrap();
    let rows = lake.dest.read_table("deals").await.unwrap();
    let midnight = parse_instant_ms("2026-03-29T00:00:00Z").unwrap();
    assert_eq!(row_of(&rows, 1).get("closed"), Some(&Cell::TimestampMs(midnight)));
    assert_eq!(row_of(&rows, 1).get("code"), Some(&Cell::Text("42".into())));
    let schema = ensure_table(&lake.dest, "deals", &wider).await;
    let (b, r) = batch_of(
        &schema,
        &[record(2, "2026-01-01T00:00:00.000Z", &[("closed", Some("2026-03-29T01:30:00Z")), ("code", Some("A-7"))])],
    );
    load(&lake.dest, "deals", &b, &r).await;
    let rows = lake.dest.read_table("deals").await.unwrap();
    assert_eq!(row_of(&rows, 2).get("code"), Some(&Cell::Text("A-7".into())));
    assert_eq!(row_of(&rows, 1).get("closed"), Some(&Cell::TimestampMs(midnight)), "the earlier file still reads");
}

#[tokio::test]
async fn the_configuration_wires_the_directory_and_a_local_state_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = DestinationConfig {
        url: DestinationUrl::new(format!("parquet://{}", dir.path().join("a/b/lake").display())),
        state_path: Some(dir.path().join("state.db")),
        ..DestinationConfig::default()
    };
    AnyDestination::reach(&config).await.expect("a creatable directory is reachable");
    assert!(!dir.path().join("a").exists(), "reach changes nothing");
    let dest = AnyDestination::connect(&config).await.expect("connect");
    assert!(matches!(dest, AnyDestination::Parquet(..)));
    assert!(!dest.holds_state());
    dest.prepare().await.unwrap();
    dest.probe_write().await.expect("probe");
    let left: BTreeMap<String, bool> = std::fs::read_dir(dir.path().join("a/b/lake"))
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| (e.file_name().into_string().unwrap(), e.path().is_dir()))
        .collect();
    assert!(left.keys().all(|n| !n.starts_with("_hsync_check_")), "the probe leaves nothing: {left:?}");
    for expected in ["associations", "owners", "pipelines", "pipeline_stages", "_hsync_rejects"] {
        assert_eq!(left.get(expected), Some(&true), "{expected} in {left:?}");
    }
    let lease =
        dest.try_lease("hsync", &hsync::destination::Holder::this_process("test")).await.unwrap().expect("lease");
    assert!(lease.describe().contains("state.db.lease"), "{}", lease.describe());
    assert!(
        dest.try_lease("hsync", &hsync::destination::Holder::this_process("test")).await.unwrap().is_none(),
        "held once"
    );

    for bad in ["parquet://", "parquet://lake?x=1", "parquet:lake"] {
        let config = DestinationConfig { url: DestinationUrl::new(bad), ..DestinationConfig::default() };
        assert!(AnyDestination::connect(&config).await.is_err(), "{bad}");
    }
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let config = DestinationConfig {
        url: DestinationUrl::new(format!("parquet://{}", file.display())),
        ..DestinationConfig::default()
    };
    let err = AnyDestination::reach(&config).await.expect_err("a file is not a directory");
    assert!(matches!(err, hsync::destination::Error::Config(_)), "{err}");
}

/// The binary end to end on a Parquet directory: `check` passes (the probe leaves nothing),
/// `backfill` and `cdc --once` write files and the local state file, and `verify` finds the
/// files equal to HubSpot.
#[tokio::test]
async fn the_binary_checks_syncs_and_verifies_a_parquet_directory() {
    use crate::support::cli::{explain, hsync, stdout, write_config};
    let sim = crate::support::Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let sections = format!(
        "[destination]\nurl = \"parquet://{}\"\nstate_path = \"{}\"\n\n[sync]\nobjects = [\"contacts\", \"cars\"]\n",
        dir.path().join("lake").display(),
        dir.path().join("state.db").display()
    );
    let config = write_config(dir.path(), &sim.handle.base_url(), &sections);
    let check = hsync(&config, &["check"]).await;
    assert_eq!(check.status.code(), Some(0), "{}", explain(&check));
    assert!(stdout(&check).contains("state.db"), "names the state file: {}", explain(&check));
    for args in [&["backfill"][..], &["cdc", "--once"]] {
        let out = hsync(&config, args).await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", explain(&out));
    }
    assert!(dir.path().join("state.db").exists());
    let lake = dir.path().join("lake");
    assert!(!globbed(&lake.join("contacts")).is_empty());
    let names: Vec<String> =
        std::fs::read_dir(&lake).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(names.iter().all(|n| !n.starts_with("_hsync_check_")), "{names:?}");
    let verify = hsync(&config, &["verify"]).await;
    assert_eq!(verify.status.code(), Some(0), "{}", explain(&verify));
    assert!(stdout(&verify).contains("matches"), "{}", explain(&verify));
}
