//! The Parquet destination end to end: backfill, CDC, deletes and merges, and associations from
//! the simulator over HTTP into a directory of Parquet files, through the same scenarios as
//! SQLite and Postgres. After each scenario the files are rebuilt **independently** of hsync's
//! own reading code: this file reads them with the `parquet` crate by the rule
//! `docs/destinations/parquet.md` gives (per key, the row of the highest `_hsync_batch`, then
//! the greater file name; columns a file lacks are NULL; types from `_schema.json`), and the
//! result must equal the simulator's ground truth exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{Date32Type, Int64Type, TimestampMillisecondType};
use hsync::destination::conformance::Cell;
use hsync::schema::{column_name, parse_instant_ms, ColumnType};
use hsync_sim::PortalSpec;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use reqwest::Method;
use serde_json::Value;

use crate::support::parquet::{lake, parquet_runner};
use crate::support::Sim;
use crate::sync_engine::expected_cell;

const OBJECTS: [&str; 5] = ["contacts", "companies", "deals", "tickets", "cars"];

/// A table rebuilt from its files: column types and the current row of each key.
struct Rebuilt {
    types: BTreeMap<String, ColumnType>,
    rows: BTreeMap<String, BTreeMap<String, Cell>>,
}

fn column_type(name: &str) -> ColumnType {
    match name {
        "text" => ColumnType::Text,
        "decimal" => ColumnType::Decimal,
        "boolean" => ColumnType::Boolean,
        "date" => ColumnType::Date,
        "timestamp" => ColumnType::Timestamp,
        "json" => ColumnType::Json,
        "big_int" => ColumnType::BigInt,
        other => panic!("_schema.json names an undocumented type {other}"),
    }
}

/// One value of a file's column as a [`Cell`] of the documented type.
fn cell(array: &ArrayRef, row: usize, ty: ColumnType) -> Cell {
    if array.is_null(row) {
        return Cell::Null;
    }
    match ty {
        ColumnType::Text => Cell::Text(array.as_string::<i32>().value(row).to_owned()),
        ColumnType::Decimal => Cell::Decimal(array.as_string::<i32>().value(row).to_owned()),
        ColumnType::Json => Cell::Json(serde_json::from_str(array.as_string::<i32>().value(row)).unwrap()),
        ColumnType::Boolean => Cell::Bool(array.as_boolean().value(row)),
        ColumnType::BigInt => Cell::Int(array.as_primitive::<Int64Type>().value(row)),
        ColumnType::Timestamp => Cell::TimestampMs(array.as_primitive::<TimestampMillisecondType>().value(row)),
        ColumnType::Date => Cell::Date(
            (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
                + chrono::Duration::days(i64::from(array.as_primitive::<Date32Type>().value(row))))
            .to_string(),
        ),
    }
}

/// Where a row comes from: its `_hsync_batch` and file name.
type Order = (i64, String);
type Row = BTreeMap<String, Cell>;

/// Rebuilds `dir` by the documented rule.
fn rebuild(dir: &Path) -> Rebuilt {
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("_schema.json")).unwrap()).unwrap();
    let types: BTreeMap<String, ColumnType> = schema["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_owned(), column_type(c["type"].as_str().unwrap())))
        .collect();
    let key: Vec<String> = schema["key"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()).collect();
    // Per key: (batch, file name) of the row kept, and the row.
    let mut latest: BTreeMap<String, (Order, Row)> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".parquet") || name.starts_with('.') {
            continue;
        }
        let file = std::fs::File::open(dir.join(&name)).unwrap();
        for batch in ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap() {
            let batch = batch.unwrap();
            let sequence = batch.column_by_name("_hsync_batch").unwrap().as_primitive::<Int64Type>().clone();
            let ops = batch.column_by_name("_hsync_op").unwrap().as_string::<i32>().clone();
            for i in 0..batch.num_rows() {
                assert!(
                    ["upsert", "archive", "merge", "delete", "restore", "tombstone", "remove", "reject"]
                        .contains(&ops.value(i)),
                    "undocumented operation {}",
                    ops.value(i)
                );
                let row: BTreeMap<String, Cell> = types
                    .iter()
                    .map(|(column, ty)| {
                        let value = batch.column_by_name(column).map_or(Cell::Null, |a| cell(a, i, *ty));
                        (column.clone(), value)
                    })
                    .collect();
                let k = format!("{:?}", key.iter().map(|c| row[c].clone()).collect::<Vec<_>>());
                let order = (sequence.value(i), name.clone());
                if latest.get(&k).is_none_or(|(kept, _)| order >= *kept) {
                    latest.insert(k, (order, row));
                }
            }
        }
    }
    Rebuilt { types, rows: latest.into_iter().map(|(k, (_, row))| (k, row)).collect() }
}

fn id(v: &Value) -> i64 {
    v.as_str().unwrap().parse().unwrap()
}

/// Every difference between the rebuilt object tables and ground truth: each live record
/// present with HubSpot's values and no flags, each archived one flagged with its time, each
/// merged-away id flagged with its survivor, each GDPR-deleted row flagged deleted, no other row.
async fn object_differences(root: &Path, sim: &Sim, objects: &[&str]) -> Vec<String> {
    let truth = sim.admin(Method::GET, "/_sim/truth", None).await.1;
    let mut out = Vec::new();
    for &object in objects {
        let table = rebuild(&root.join(object));
        let by_id: BTreeMap<i64, &BTreeMap<String, Cell>> = table
            .rows
            .values()
            .map(|r| match r.get("id") {
                Some(Cell::Int(id)) => (*id, r),
                other => panic!("row without an id: {other:?}"),
            })
            .collect();
        let flags = |row: &BTreeMap<String, Cell>| {
            ["_hsync_archived_at", "_hsync_merged_into", "_hsync_deleted_at"].map(|f| row[f].clone())
        };
        let t = &truth["objects"][object];
        let mut known = BTreeSet::new();
        for rec in t["live"].as_array().unwrap() {
            let id = id(&rec["id"]);
            known.insert(id);
            let Some(row) = by_id.get(&id) else {
                out.push(format!("{object} {id}: live record missing"));
                continue;
            };
            let props = rec["properties"].as_object().unwrap();
            for (column, ty) in table.types.iter().filter(|(c, _)| !c.starts_with("_hsync_") && *c != "id") {
                let raw = props.keys().find(|p| column_name(p) == *column).and_then(|p| props[p].as_str());
                let (expected, actual) = (expected_cell(*ty, raw), row[column].clone());
                if expected != actual {
                    out.push(format!("{object} {id} {column}: expected {expected:?}, found {actual:?}"));
                }
            }
            if flags(row) != [Cell::Null, Cell::Null, Cell::Null] {
                out.push(format!("{object} {id}: live but flagged {:?}", flags(row)));
            }
        }
        for rec in t["archived"].as_array().unwrap() {
            let id = id(&rec["id"]);
            known.insert(id);
            let at = parse_instant_ms(rec["archivedAt"].as_str().unwrap()).unwrap();
            match by_id.get(&id) {
                None => out.push(format!("{object} {id}: archived record has no row")),
                Some(row) if flags(row) != [Cell::TimestampMs(at), Cell::Null, Cell::Null] => {
                    out.push(format!("{object} {id}: archived at {at}, flags {:?}", flags(row)))
                }
                Some(_) => {}
            }
        }
        for (absorbed, survivor) in t["mergedInto"].as_object().unwrap() {
            let (absorbed, survivor) = (absorbed.parse::<i64>().unwrap(), id(survivor));
            known.insert(absorbed);
            match by_id.get(&absorbed) {
                None => out.push(format!("{object} {absorbed}: merged-away id has no row")),
                Some(row) if flags(row) != [Cell::Null, Cell::Int(survivor), Cell::Null] => {
                    out.push(format!("{object} {absorbed}: merged into {survivor}, flags {:?}", flags(row)))
                }
                Some(_) => {}
            }
        }
        for purged in t["gdprDeleted"].as_array().unwrap() {
            let purged = id(purged);
            known.insert(purged);
            if by_id.get(&purged).is_some_and(|row| row["_hsync_deleted_at"] == Cell::Null) {
                out.push(format!("{object} {purged}: GDPR-deleted but not flagged deleted"));
            }
        }
        for id in by_id.keys().filter(|id| !known.contains(id)) {
            out.push(format!("{object} {id}: a row HubSpot knows nothing about"));
        }
    }
    out
}

/// Every difference between the rebuilt edges and HubSpot's among `objects`.
async fn edge_differences(root: &Path, sim: &Sim, objects: &[&str]) -> Vec<String> {
    let expected = crate::sync_associations::truth_edges_in(sim, objects).await;
    let table = rebuild(&root.join("associations"));
    let text = |c: &Cell| match c {
        Cell::Text(s) => Some(s.clone()),
        _ => None,
    };
    let int = |c: &Cell| match c {
        Cell::Int(v) => *v,
        other => panic!("not an integer: {other:?}"),
    };
    let mut live = BTreeMap::new();
    let mut tombstoned = BTreeSet::new();
    for row in table.rows.values() {
        let key: crate::sync_associations::EdgeKey = (
            text(&row["from_type"]).unwrap(),
            int(&row["from_id"]),
            text(&row["to_type"]).unwrap(),
            int(&row["to_id"]),
            i32::try_from(int(&row["type_id"])).unwrap(),
        );
        assert!(matches!(row["synced_at"], Cell::TimestampMs(_)), "{key:?} has a synced_at");
        if row["deleted_at"] == Cell::Null {
            live.insert(key, (text(&row["category"]).unwrap(), text(&row["label"])));
        } else {
            tombstoned.insert(key);
        }
    }
    let mut out = Vec::new();
    for (k, wanted) in &expected {
        match live.get(k) {
            None if tombstoned.contains(k) => out.push(format!("{k:?}: in HubSpot but tombstoned")),
            None => out.push(format!("{k:?}: missing")),
            Some(found) if found != wanted => out.push(format!("{k:?}: expected {wanted:?}, found {found:?}")),
            Some(_) => {}
        }
    }
    for k in live.keys().filter(|k| !expected.contains_key(*k)) {
        out.push(format!("{k:?}: live in the files but gone from HubSpot"));
    }
    out
}

fn assert_no_differences(diffs: &[String]) {
    assert!(
        diffs.is_empty(),
        "{} differences, first ones:\n{}",
        diffs.len(),
        diffs.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[tokio::test]
async fn parquet_backfill_and_cdc_rebuild_to_ground_truth() {
    let portal = PortalSpec {
        contacts: 1_200,
        companies: 150,
        deals: 200,
        tickets: 60,
        cars: 30,
        custom_properties: 10,
        ..PortalSpec::default()
    };
    let sim = Sim::start(crate::support::unlimited(portal)).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = parquet_runner(&sim, dir.path()).await;
    crate::sync_engine::scenario(&sim, &runner, hsync::stream::backfill::Fetch::InTurn).await;
    assert_no_differences(&object_differences(&lake(dir.path()), &sim, &OBJECTS).await);
}

#[tokio::test]
async fn parquet_older_versions_never_replace_newer_ones() {
    let portal = PortalSpec {
        contacts: 600,
        companies: 20,
        deals: 20,
        tickets: 10,
        cars: 10,
        custom_properties: 4,
        ..PortalSpec::default()
    };
    let sim = Sim::start(crate::support::unlimited(portal)).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = parquet_runner(&sim, dir.path()).await;
    crate::sync_engine::older_versions_after_newer_ones(&sim, &runner).await;
    assert_no_differences(&object_differences(&lake(dir.path()), &sim, &OBJECTS).await);
}

#[tokio::test]
async fn parquet_archives_restores_merges_and_deletes_rebuild_to_ground_truth() {
    let portal = PortalSpec {
        contacts: 300,
        companies: 60,
        deals: 40,
        tickets: 20,
        cars: 20,
        custom_properties: 6,
        ..PortalSpec::default()
    };
    let sim = Sim::start(crate::support::unlimited(portal)).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = parquet_runner(&sim, dir.path()).await;
    crate::sync_deletes::scenario(&sim, &runner).await;
    assert_no_differences(&object_differences(&lake(dir.path()), &sim, &OBJECTS).await);
}

#[tokio::test]
async fn parquet_associations_rebuild_to_ground_truth() {
    let portal = PortalSpec {
        contacts: 400,
        companies: 80,
        deals: 120,
        tickets: 40,
        cars: 20,
        custom_properties: 4,
        association_page_size: 2,
        ..PortalSpec::default()
    };
    let sim = Sim::start(crate::support::unlimited(portal)).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = parquet_runner(&sim, dir.path()).await;
    crate::sync_associations::scenario(&sim, &runner).await;
    assert_no_differences(&edge_differences(&lake(dir.path()), &sim, &OBJECTS).await);
    assert_no_differences(&object_differences(&lake(dir.path()), &sim, &OBJECTS).await);
}

/// The catalogue scenario through the `hsync` binary, then the files rebuilt independently.
#[tokio::test]
async fn parquet_engagements_line_items_and_contracts_rebuild_to_ground_truth() {
    let sim = Sim::start(crate::support::unlimited(crate::sync_catalogue::warehouse_portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("parquet://{}", lake(dir.path()).display());
    let objects = crate::sync_catalogue::WAREHOUSE_OBJECTS;
    let config =
        crate::sync_catalogue::write_config(dir.path(), &sim.handle.base_url(), &format!("url = \"{url}\""), &objects);
    let dest = hsync::destination::parquet::ParquetDestination::connect(&url).expect("parquet destination");
    crate::sync_catalogue::scenario(&sim, &config, &dest, &objects).await;
    assert_no_differences(&object_differences(&lake(dir.path()), &sim, &objects).await);
    assert_no_differences(&edge_differences(&lake(dir.path()), &sim, &objects).await);
}

/// Property history through the `hsync` binary into `property_history`'s files.
#[tokio::test]
async fn parquet_property_history_matches_ground_truth() {
    let sim = Sim::start(crate::support::unlimited(crate::sync_history::portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("parquet://{}", lake(dir.path()).display());
    let config = crate::sync_history::write_config(dir.path(), &sim, &format!("url = \"{url}\""));
    let dest = hsync::destination::parquet::ParquetDestination::connect(&url).expect("parquet destination");
    crate::sync_history::scenario(&sim, &config, &dest).await;
}
