//! The destination conformance suite: scenarios every destination must pass, written once.
//!
//! Each destination implements [`Inspect`] (reading rows back in a dialect-neutral form) in its
//! own module, and its integration test calls [`run_all`] against a real database. The scenarios
//! panic with a message on the first violation, as tests do. Built only with the `test-support`
//! feature, which the integration tests require: the hsync binary carries none of it.

use std::future::Future;

use arrow::record_batch::RecordBatch;
use serde_json::json;

pub use super::cell::{Cell, Row};
use super::{Destination, Edge, EdgeOutcome, Error, MergeOutcome};
use crate::hubspot::model::{CrmObject, PropertyDefinition};
use crate::schema::{
    build_batch, diff, hsync_columns, live_view_name, parse_instant_ms, parse_value, plan_live_view, Reject,
    TableSchema,
};
use crate::state::{Checkpoint, StreamId, StreamKind};

/// One stored association edge, as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeRow {
    pub from_type: String,
    pub from_id: i64,
    pub to_type: String,
    pub to_id: i64,
    pub type_id: i32,
    pub category: String,
    pub label: Option<String>,
    /// When hsync last wrote the edge (inserted, relabelled, tombstoned or revived it).
    pub synced_at_ms: i64,
    /// The tombstone: when hsync found the edge gone from HubSpot.
    pub deleted_at_ms: Option<i64>,
}

/// Read-back access the suite needs; each destination implements it in its `inspect.rs`.
pub trait Inspect: Destination {
    /// Every row of an object table, ordered by id, every column included.
    fn read_table(&self, table: &str) -> impl Future<Output = Result<Vec<Row>, Error>> + Send;
    /// Staging tables that exist now.
    fn stage_tables(&self) -> impl Future<Output = Result<Vec<String>, Error>> + Send;
    /// Rejected values recorded for an object.
    fn read_rejects(&self, object: &str) -> impl Future<Output = Result<Vec<Reject>, Error>> + Send;
    /// The stored checkpoint of a stream.
    fn checkpoint(&self, stream: &StreamId) -> impl Future<Output = Result<Option<Checkpoint>, Error>> + Send;
    /// Every stored association edge, tombstoned ones included, in key order.
    fn read_edges(&self) -> impl Future<Output = Result<Vec<EdgeRow>, Error>> + Send;
}

const CURSOR: &str = "hs_lastmodifieddate";

/// A property definition of the given HubSpot type.
pub fn property(name: &str, kind: &str) -> PropertyDefinition {
    serde_json::from_value(json!({ "name": name, "type": kind })).expect("invariant: a valid property definition")
}

/// A record last modified at `modified` (ISO 8601) with the given property values.
pub fn record(id: u64, modified: &str, values: &[(&str, Option<&str>)]) -> CrmObject {
    let mut properties: serde_json::Map<String, serde_json::Value> =
        values.iter().map(|(k, v)| ((*k).to_owned(), v.map_or(serde_json::Value::Null, |v| json!(v)))).collect();
    properties.insert(CURSOR.to_owned(), json!(modified));
    serde_json::from_value(json!({
        "id": id.to_string(),
        "properties": properties,
        "createdAt": "2025-01-01T00:00:00Z",
        "updatedAt": modified,
        "archived": false,
    }))
    .expect("invariant: a valid record")
}

/// Creates or alters `table` for `properties` (and its live view, where the destination has
/// views) and returns its layout.
pub async fn ensure_table<D: Destination>(dest: &D, table: &str, properties: &[PropertyDefinition]) -> TableSchema {
    let existing = dest.describe(table).await.expect("describe");
    let mut plan = diff(table, properties, existing.as_deref(), &[], &Default::default(), dest.column_budget());
    if dest.has_views() {
        let view = dest.describe(&live_view_name(table)).await.expect("describe the live view");
        plan_live_view(&mut plan, existing.as_deref(), view.as_deref());
    }
    assert_eq!(plan.incompatible().count(), 0, "unexpected incompatible change: {:?}", plan.changes);
    dest.alter(&plan).await.expect("alter");
    plan.target
}

/// Builds a batch of `records` for `schema` (synced at a fixed instant).
pub fn batch_of(schema: &TableSchema, records: &[CrmObject]) -> (RecordBatch, Vec<Reject>) {
    let built = build_batch(schema, &schema.name, CURSOR, records, 1_767_225_600_000);
    (built.batch, built.rejects)
}

/// Stages and merges a batch.
pub async fn load<D: Destination>(dest: &D, table: &str, batch: &RecordBatch, rejects: &[Reject]) -> MergeOutcome {
    let stage = dest.stage(table, batch).await.expect("stage");
    dest.merge(stage, rejects, None).await.expect("merge")
}

fn value<'a>(row: &'a Row, column: &str) -> &'a Cell {
    row.get(column).unwrap_or_else(|| panic!("column {column} missing from {row:?}"))
}

fn by_id(rows: &[Row], id: i64) -> &Row {
    rows.iter()
        .find(|r| r.get(hsync_columns::ID) == Some(&Cell::Int(id)))
        .unwrap_or_else(|| panic!("row {id} missing from {rows:?}"))
}

fn text(s: &str) -> Cell {
    Cell::Text(s.to_owned())
}

/// Runs every scenario, each on its own tables.
pub async fn run_all<D: Inspect>(dest: &D) {
    dest.prepare().await.expect("prepare");
    dest.healthcheck().await.expect("healthcheck");
    merge_twice_equals_once(dest).await;
    older_version_never_overwrites_newer(dest).await;
    add_column_then_merge(dest).await;
    null_is_not_empty_string(dest).await;
    six_hundred_properties(dest).await;
    awkward_identifiers(dest).await;
    exact_decimals(dest).await;
    timestamps_are_utc(dest).await;
    crash_between_stage_and_merge_leaves_nothing_visible(dest).await;
    concurrent_merges_into_different_tables(dest).await;
    rejects_are_recorded_with_raw_value_and_reason(dest).await;
    checkpoint_commits_with_the_merge_and_never_moves_back(dest).await;
    partial_batch_touches_only_its_columns(dest).await;
    read_cells_reads_the_chosen_columns_of_the_chosen_rows(dest).await;
    archived_property_keeps_its_values(dest).await;
    flags_bypass_the_guard_and_keep_the_cursor(dest).await;
    live_view_hides_flagged_rows_and_follows_columns(dest).await;
    edges_follow_the_current_list(dest).await;
    dimensions_follow_the_current_list(dest).await;
    property_history_only_gains_rows(dest).await;
}

/// Reconciliation flags are set and cleared without the cursor guard and without touching the
/// cursor or any property; an unknown id gets a row with only its id and flags; a flag
/// observed on an older version than the row holds is not applied; a replay changes nothing;
/// a full-row merge of a newer live version clears the flags, also on an id-only row.
pub async fn flags_bypass_the_guard_and_keep_the_cursor<D: Inspect>(dest: &D) {
    use super::{IdFlags, RowFlag};
    use hsync_columns::{ARCHIVED_AT, CURSOR, DELETED_AT, MERGED_INTO};
    let table = "conf_flags";
    let schema = ensure_table(dest, table, &[property("email", "string")]).await;
    let t0 = "2026-01-02T00:00:00.000Z";
    let t0_ms = parse_instant_ms(t0).expect("instant");
    let records: Vec<_> = (1..=3).map(|i| record(i, t0, &[("email", Some(&format!("{i}@example.com")))])).collect();
    let (b, r) = batch_of(&schema, &records);
    load(dest, table, &b, &r).await;
    let before = dest.read_table(table).await.expect("read");
    let (archived_at, deleted_at) = (1_767_000_000_123, 1_767_300_000_456);
    let flags = [
        RowFlag {
            id: 1,
            archived_at: Some(Some(archived_at)),
            merged_into: Some(None),
            deleted_at: Some(None),
            observed_cursor: Some(t0_ms),
        },
        RowFlag { id: 2, merged_into: Some(Some(3)), ..RowFlag::default() },
        RowFlag { id: 99, deleted_at: Some(Some(deleted_at)), ..RowFlag::default() },
        // Clearing the flags of an id the table does not hold inserts nothing.
        RowFlag { id: 98, archived_at: Some(None), ..RowFlag::default() },
    ];
    assert_eq!(dest.flag(table, &flags).await.expect("flag"), 3);
    let rows = dest.read_table(table).await.expect("read");
    assert_eq!(rows.len(), 4, "one id-only row added: {rows:?}");
    assert_eq!(value(by_id(&rows, 1), ARCHIVED_AT), &Cell::TimestampMs(archived_at));
    assert_eq!(value(by_id(&rows, 2), MERGED_INTO), &Cell::Int(3));
    assert_eq!(value(by_id(&rows, 2), ARCHIVED_AT), &Cell::Null, "a flag left as it is");
    let unknown = by_id(&rows, 99);
    assert_eq!(value(unknown, DELETED_AT), &Cell::TimestampMs(deleted_at));
    assert_eq!(value(unknown, CURSOR), &Cell::Null, "an id-only row holds no version");
    assert_eq!(value(unknown, "email"), &Cell::Null);
    for id in 1..=3 {
        let (old, new) = (by_id(&before, id), by_id(&rows, id));
        for (column, cell) in old.iter().filter(|(c, _)| ![ARCHIVED_AT, MERGED_INTO, DELETED_AT].contains(&c.as_str()))
        {
            assert_eq!(value(new, column), cell, "row {id} column {column}: flags touch nothing else");
        }
    }
    assert_eq!(dest.flag(table, &flags).await.expect("flag"), 0, "a replay changes nothing");
    let stored = dest.id_flags(table).await.expect("ids");
    let row =
        |id, cursor, archived_at, merged_into, deleted_at| IdFlags { id, cursor, archived_at, merged_into, deleted_at };
    assert_eq!(
        stored,
        vec![
            row(1, Some(t0_ms), Some(archived_at), None, None),
            row(2, Some(t0_ms), None, Some(3), None),
            row(3, Some(t0_ms), None, None, None),
            row(99, None, None, None, Some(deleted_at)),
        ]
    );

    // Observed on an older version than the row holds: not applied.
    let stale =
        RowFlag { id: 3, archived_at: Some(Some(archived_at)), observed_cursor: Some(t0_ms - 1), ..RowFlag::default() };
    assert_eq!(dest.flag(table, &[stale]).await.expect("flag"), 0);
    // Cleared on its own.
    assert_eq!(
        dest.flag(table, &[RowFlag { id: 2, merged_into: Some(None), ..RowFlag::default() }]).await.expect("flag"),
        1
    );
    let rows = dest.read_table(table).await.expect("read");
    assert_eq!(value(by_id(&rows, 3), ARCHIVED_AT), &Cell::Null);
    assert_eq!(value(by_id(&rows, 2), MERGED_INTO), &Cell::Null);

    // A newer live version (a restore) clears the flags; the id-only row takes any version.
    let t1 = "2026-01-03T00:00:00.000Z";
    let live =
        [record(1, t1, &[("email", Some("back@example.com"))]), record(99, t0, &[("email", Some("new@example.com"))])];
    let (b, r) = batch_of(&schema, &live);
    assert_eq!(load(dest, table, &b, &r).await.written, 2);
    let rows = dest.read_table(table).await.expect("read");
    assert_eq!(value(by_id(&rows, 1), ARCHIVED_AT), &Cell::Null);
    assert_eq!(value(by_id(&rows, 1), "email"), &text("back@example.com"));
    assert_eq!(value(by_id(&rows, 99), DELETED_AT), &Cell::Null);
    assert_eq!(value(by_id(&rows, 99), CURSOR), &Cell::TimestampMs(t0_ms));
    assert_eq!(value(by_id(&rows, 99), "email"), &text("new@example.com"));
    assert!(dest.id_flags("conf_flags_missing").await.expect("ids").is_empty(), "no table, no ids");
}

/// The live view (where the destination has views): a table made before hsync kept views gets
/// its view from the next preparation; the view shows every column and only the rows no flag
/// marks (archived, merged away, deleted, or an id-only deleted row); a column added by drift
/// appears in it; once applied, the next plan has nothing to do.
pub async fn live_view_hides_flagged_rows_and_follows_columns<D: Inspect>(dest: &D) {
    use super::RowFlag;
    if !dest.has_views() {
        return;
    }
    let table = "conf_live";
    let view = live_view_name(table);
    let email = [property("email", "string")];
    let old = diff(table, &email, None, &[], &Default::default(), dest.column_budget());
    dest.alter(&old).await.expect("alter without the view, as hsync did before it kept views");
    assert_eq!(dest.describe(&view).await.expect("describe the view"), None, "no view yet");
    let schema = ensure_table(dest, table, &email).await;
    let t0 = "2026-01-02T00:00:00.000Z";
    let records: Vec<_> = (1..=4).map(|i| record(i, t0, &[("email", Some(&format!("{i}@example.com")))])).collect();
    let (b, r) = batch_of(&schema, &records);
    load(dest, table, &b, &r).await;
    let ids = |rows: &[Row]| -> Vec<Cell> { rows.iter().map(|r| value(r, hsync_columns::ID).clone()).collect() };
    let live = dest.read_table(&view).await.expect("read the view");
    assert_eq!(ids(&live), [1, 2, 3, 4].map(Cell::Int), "nothing flagged yet");
    let flags = [
        RowFlag { id: 1, archived_at: Some(Some(1_767_000_000_000)), ..RowFlag::default() },
        RowFlag { id: 2, merged_into: Some(Some(4)), ..RowFlag::default() },
        RowFlag { id: 3, deleted_at: Some(Some(1_767_000_000_000)), ..RowFlag::default() },
        RowFlag { id: 99, deleted_at: Some(Some(1_767_000_000_000)), ..RowFlag::default() },
    ];
    assert_eq!(dest.flag(table, &flags).await.expect("flag"), 4);
    let live = dest.read_table(&view).await.expect("read the view");
    assert_eq!(ids(&live), [Cell::Int(4)], "archived, merged and deleted rows are hidden");
    let all = dest.read_table(table).await.expect("read the table");
    assert_eq!(all.len(), 5, "the table keeps every row");
    assert_eq!(live[0], *by_id(&all, 4), "the view shows every column of a live row");

    let grown = [property("email", "string"), property("phone", "string")];
    let schema = ensure_table(dest, table, &grown).await;
    let newer = record(5, t0, &[("email", Some("5@example.com")), ("phone", Some("+1 555 0100"))]);
    let (b, r) = batch_of(&schema, &[newer]);
    load(dest, table, &b, &r).await;
    let live = dest.read_table(&view).await.expect("read the view");
    assert_eq!(ids(&live), [4, 5].map(Cell::Int));
    assert_eq!(value(by_id(&live, 5), "phone"), &text("+1 555 0100"), "the added column is in the view");
    assert_eq!(value(by_id(&live, 4), "phone"), &Cell::Null);

    let existing = dest.describe(table).await.expect("describe");
    let mut again = diff(table, &grown, existing.as_deref(), &[], &Default::default(), dest.column_budget());
    let described = dest.describe(&view).await.expect("describe the view");
    plan_live_view(&mut again, existing.as_deref(), described.as_deref());
    assert!(again.is_empty(), "the view is current: {:?}", again.changes);
}

/// A column whose property was archived in HubSpot keeps its values when rows are updated.
pub async fn archived_property_keeps_its_values<D: Inspect>(dest: &D) {
    let both = ensure_table(dest, "conf_retired", &[property("email", "string"), property("legacy", "string")]).await;
    let rec = record(1, "2026-01-01T00:00:00.000Z", &[("email", Some("a@example.com")), ("legacy", Some("kept"))]);
    let (b, r) = batch_of(&both, &[rec]);
    load(dest, "conf_retired", &b, &r).await;
    let only_email = ensure_table(dest, "conf_retired", &[property("email", "string")]).await;
    assert_eq!(only_email.retired, ["legacy"]);
    let newer = record(1, "2026-01-02T00:00:00.000Z", &[("email", Some("b@example.com"))]);
    let (b, r) = batch_of(&only_email, &[newer]);
    load(dest, "conf_retired", &b, &r).await;
    let rows = dest.read_table("conf_retired").await.expect("read");
    assert_eq!(value(by_id(&rows, 1), "email"), &text("b@example.com"));
    assert_eq!(value(by_id(&rows, 1), "legacy"), &text("kept"), "never dropped, never blanked");
}

/// Merging the same batch twice leaves the table as merging it once.
pub async fn merge_twice_equals_once<D: Inspect>(dest: &D) {
    let schema = ensure_table(dest, "conf_twice", &[property("email", "string"), property("amount", "number")]).await;
    let records: Vec<_> = (1..=3)
        .map(|i| {
            record(
                i,
                "2026-01-01T10:00:00.000Z",
                &[("email", Some(&format!("p{i}@example.com"))), ("amount", Some("9.99"))],
            )
        })
        .collect();
    let (batch, rejects) = batch_of(&schema, &records);
    load(dest, "conf_twice", &batch, &rejects).await;
    let once = dest.read_table("conf_twice").await.expect("read");
    load(dest, "conf_twice", &batch, &rejects).await;
    let twice = dest.read_table("conf_twice").await.expect("read");
    assert_eq!(once.len(), 3);
    assert_eq!(once, twice, "a replayed batch changes nothing");
}

/// A row is never replaced by an older version of itself, across batches or inside one.
pub async fn older_version_never_overwrites_newer<D: Inspect>(dest: &D) {
    let schema = ensure_table(dest, "conf_older", &[property("email", "string")]).await;
    let newer = record(1, "2026-01-02T00:00:00.000Z", &[("email", Some("new@example.com"))]);
    let older = record(1, "2026-01-01T00:00:00.000Z", &[("email", Some("old@example.com"))]);
    let (b, r) = batch_of(&schema, std::slice::from_ref(&newer));
    load(dest, "conf_older", &b, &r).await;
    let (b, r) = batch_of(&schema, std::slice::from_ref(&older));
    let outcome = load(dest, "conf_older", &b, &r).await;
    assert_eq!(outcome.skipped, 1, "the older version is skipped: {outcome:?}");
    let rows = dest.read_table("conf_older").await.expect("read");
    assert_eq!(value(by_id(&rows, 1), "email"), &text("new@example.com"));
    // Both versions in one batch, older last: the newer still wins.
    let other_newer = record(2, "2026-01-02T00:00:00.000Z", &[("email", Some("b-new@example.com"))]);
    let other_older = record(2, "2026-01-01T00:00:00.000Z", &[("email", Some("b-old@example.com"))]);
    let (b, r) = batch_of(&schema, &[other_newer, other_older]);
    load(dest, "conf_older", &b, &r).await;
    let rows = dest.read_table("conf_older").await.expect("read");
    assert_eq!(value(by_id(&rows, 2), "email"), &text("b-new@example.com"));
    assert_eq!(rows.len(), 2, "one row per id");
}

/// A property added later becomes a column that merges carry.
pub async fn add_column_then_merge<D: Inspect>(dest: &D) {
    let first = ensure_table(dest, "conf_add", &[property("email", "string")]).await;
    let (b, r) = batch_of(&first, &[record(1, "2026-01-01T00:00:00.000Z", &[("email", Some("a@example.com"))])]);
    load(dest, "conf_add", &b, &r).await;
    let second =
        ensure_table(dest, "conf_add", &[property("email", "string"), property("favourite_colour", "enumeration")])
            .await;
    assert!(second.column("favourite_colour").is_some());
    let rec = record(
        2,
        "2026-01-01T00:00:00.000Z",
        &[("email", Some("b@example.com")), ("favourite_colour", Some("red;blue"))],
    );
    let (b, r) = batch_of(&second, &[rec]);
    load(dest, "conf_add", &b, &r).await;
    let rows = dest.read_table("conf_add").await.expect("read");
    assert_eq!(value(by_id(&rows, 1), "favourite_colour"), &Cell::Null);
    assert_eq!(value(by_id(&rows, 2), "favourite_colour"), &text("red;blue"));
}

/// `""` stays an empty string; `null` and absent stay NULL.
pub async fn null_is_not_empty_string<D: Inspect>(dest: &D) {
    let schema = ensure_table(dest, "conf_null", &[property("note", "string"), property("amount", "number")]).await;
    let records = vec![
        record(1, "2026-01-01T00:00:00.000Z", &[("note", Some("")), ("amount", Some(""))]),
        record(2, "2026-01-01T00:00:00.000Z", &[("note", None)]),
        record(3, "2026-01-01T00:00:00.000Z", &[]),
    ];
    let (b, r) = batch_of(&schema, &records);
    load(dest, "conf_null", &b, &r).await;
    let rows = dest.read_table("conf_null").await.expect("read");
    assert_eq!(value(by_id(&rows, 1), "note"), &text(""));
    assert_eq!(value(by_id(&rows, 1), "amount"), &Cell::Null, "an empty number is NULL");
    assert_eq!(value(by_id(&rows, 2), "note"), &Cell::Null);
    assert_eq!(value(by_id(&rows, 3), "note"), &Cell::Null);
}

/// A row with 600 properties of every type round-trips.
pub async fn six_hundred_properties<D: Inspect>(dest: &D) {
    let kinds = [
        ("string", "v"),
        ("number", "12.5"),
        ("bool", "true"),
        ("date", "2026-01-01"),
        ("datetime", "2026-01-01T00:00:00Z"),
    ];
    let props: Vec<_> = (0..600).map(|i| property(&format!("wide_{i:03}"), kinds[i % kinds.len()].0)).collect();
    let schema = ensure_table(dest, "conf_wide", &props).await;
    let values: Vec<(String, String)> =
        (0..600).map(|i| (format!("wide_{i:03}"), kinds[i % kinds.len()].1.to_owned())).collect();
    let pairs: Vec<(&str, Option<&str>)> = values.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))).collect();
    let (b, r) = batch_of(&schema, &[record(1, "2026-01-01T00:00:00.000Z", &pairs)]);
    assert!(r.is_empty(), "{r:?}");
    load(dest, "conf_wide", &b, &r).await;
    let rows = dest.read_table("conf_wide").await.expect("read");
    let row = by_id(&rows, 1);
    assert_eq!(value(row, "wide_000"), &text("v"));
    assert_eq!(value(row, "wide_001"), &Cell::Decimal("12.5".into()));
    assert_eq!(value(row, "wide_002"), &Cell::Bool(true));
    assert_eq!(value(row, "wide_003"), &Cell::Date("2026-01-01".into()));
    assert_eq!(value(row, "wide_004"), &Cell::TimestampMs(1_767_225_600_000));
    assert_eq!(row.keys().filter(|k| k.starts_with("wide_")).count(), 600);
    assert!(row.iter().filter(|(k, _)| k.starts_with("wide_")).all(|(_, v)| v != &Cell::Null));
}

/// Reserved words, mixed case, unicode, quotes and over-long names work as table and column names.
pub async fn awkward_identifiers<D: Inspect>(dest: &D) {
    let long = "a_very_long_custom_property_name_that_goes_well_past_the_postgres_identifier_limit";
    let names = ["order", "user", "default", "select", "MixedCase", "ñandú", "has\"quote", long];
    let props: Vec<_> = names.iter().map(|n| property(n, "string")).collect();
    let schema = ensure_table(dest, "select", &props).await;
    let pairs: Vec<(&str, Option<&str>)> = names.iter().map(|n| (*n, Some(*n))).collect();
    let (b, r) = batch_of(&schema, &[record(7, "2026-01-01T00:00:00.000Z", &pairs)]);
    load(dest, "select", &b, &r).await;
    let rows = dest.read_table("select").await.expect("read");
    let row = by_id(&rows, 7);
    for n in names {
        let column = crate::schema::column_name(n);
        assert_eq!(value(row, &column), &text(n), "column {column}");
    }
    // Describing the table again plans no change: names survive the round trip.
    let existing = dest.describe("select").await.expect("describe");
    let plan = diff("select", &props, existing.as_deref(), &[], &Default::default(), dest.column_budget());
    assert!(plan.is_empty(), "{:?}", plan.changes);
}

/// Decimals keep every digit.
pub async fn exact_decimals<D: Inspect>(dest: &D) {
    let schema = ensure_table(dest, "conf_decimal", &[property("amount", "number")]).await;
    let cases = ["0.1", "12345678901234.56", "123456789012345678901234.56789", "-0.000000000000000001", "100"];
    let records: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, v)| record(i as u64 + 1, "2026-01-01T00:00:00.000Z", &[("amount", Some(*v))]))
        .collect();
    let (b, r) = batch_of(&schema, &records);
    load(dest, "conf_decimal", &b, &r).await;
    let rows = dest.read_table("conf_decimal").await.expect("read");
    for (i, v) in cases.iter().enumerate() {
        assert_eq!(value(by_id(&rows, i as i64 + 1), "amount"), &Cell::Decimal((*v).to_owned()), "{v}");
    }
}

/// Instants are stored as UTC, and dates as dates.
pub async fn timestamps_are_utc<D: Inspect>(dest: &D) {
    let schema = ensure_table(dest, "conf_time", &[property("seen", "datetime"), property("day", "date")]).await;
    let seen = "2026-03-29T01:30:00.123Z";
    let rec = record(1, "2026-03-29T02:30:00.000+01:00", &[("seen", Some(seen)), ("day", Some("2026-03-29"))]);
    let (b, r) = batch_of(&schema, &[rec]);
    load(dest, "conf_time", &b, &r).await;
    let rows = dest.read_table("conf_time").await.expect("read");
    let row = by_id(&rows, 1);
    assert_eq!(value(row, "seen"), &Cell::TimestampMs(parse_instant_ms(seen).expect("instant")));
    assert_eq!(
        value(row, hsync_columns::CURSOR),
        &Cell::TimestampMs(parse_instant_ms("2026-03-29T01:30:00Z").expect("instant"))
    );
    assert_eq!(value(row, "day"), &Cell::Date("2026-03-29".into()));
}

/// A crash after `stage` and before `merge` leaves the table as it was; the sweep removes the stage.
pub async fn crash_between_stage_and_merge_leaves_nothing_visible<D: Inspect>(dest: &D) {
    let schema = ensure_table(dest, "conf_crash", &[property("email", "string")]).await;
    let (b, r) = batch_of(&schema, &[record(1, "2026-01-01T00:00:00.000Z", &[("email", Some("before@example.com"))])]);
    load(dest, "conf_crash", &b, &r).await;
    let before = dest.read_table("conf_crash").await.expect("read");
    let (b, _) = batch_of(
        &schema,
        &[
            record(1, "2026-01-02T00:00:00.000Z", &[("email", Some("after@example.com"))]),
            record(2, "2026-01-02T00:00:00.000Z", &[("email", Some("new@example.com"))]),
        ],
    );
    let stage = dest.stage("conf_crash", &b).await.expect("stage");
    // The process dies here: no merge.
    assert_eq!(dest.read_table("conf_crash").await.expect("read"), before, "staged rows are not visible");
    assert!(dest.stage_tables().await.expect("stages").contains(&stage.stage_table));
    let swept = dest.sweep_stages().await.expect("sweep");
    assert!(swept >= 1);
    assert!(dest.stage_tables().await.expect("stages").is_empty());
    assert_eq!(dest.read_table("conf_crash").await.expect("read"), before);
}

/// Merges into different tables can run at the same time.
pub async fn concurrent_merges_into_different_tables<D: Inspect>(dest: &D) {
    let a = ensure_table(dest, "conf_par_a", &[property("email", "string")]).await;
    let b = ensure_table(dest, "conf_par_b", &[property("email", "string")]).await;
    let rows = |n: u64| -> Vec<CrmObject> {
        (1..=n)
            .map(|i| record(i, "2026-01-01T00:00:00.000Z", &[("email", Some(&format!("{i}@example.com")))]))
            .collect()
    };
    let (ba, ra) = batch_of(&a, &rows(300));
    let (bb, rb) = batch_of(&b, &rows(200));
    let (oa, ob) = tokio::join!(load(dest, "conf_par_a", &ba, &ra), load(dest, "conf_par_b", &bb, &rb));
    assert_eq!((oa.written, ob.written), (300, 200));
    assert_eq!(dest.read_table("conf_par_a").await.expect("read").len(), 300);
    assert_eq!(dest.read_table("conf_par_b").await.expect("read").len(), 200);
}

/// A value that does not parse is NULL in its column and recorded with its raw value and reason.
pub async fn rejects_are_recorded_with_raw_value_and_reason<D: Inspect>(dest: &D) {
    let schema = ensure_table(dest, "conf_rejects", &[property("amount", "number"), property("closed", "bool")]).await;
    let rec = record(1, "2026-01-01T00:00:00.000Z", &[("amount", Some("twelve")), ("closed", Some("maybe"))]);
    let (b, r) = batch_of(&schema, &[rec]);
    assert_eq!(r.len(), 2);
    load(dest, "conf_rejects", &b, &r).await;
    let rows = dest.read_table("conf_rejects").await.expect("read");
    assert_eq!(value(by_id(&rows, 1), "amount"), &Cell::Null);
    let mut stored = dest.read_rejects("conf_rejects").await.expect("rejects");
    stored.sort_by(|a, b| a.property.cmp(&b.property));
    assert_eq!(stored.len(), 2);
    assert_eq!((stored[0].property.as_str(), stored[0].raw.as_str(), stored[0].id.as_str()), ("amount", "twelve", "1"));
    assert!(!stored[0].reason.is_empty());
}

/// A checkpoint handed to `merge` is committed with the data, and never moves backwards. A
/// destination that does not hold the state ignores it (the runner commits it to the local
/// state file after the merge).
pub async fn checkpoint_commits_with_the_merge_and_never_moves_back<D: Inspect>(dest: &D) {
    let schema = ensure_table(dest, "conf_state", &[property("email", "string")]).await;
    let stream = &StreamId::backfill("conf_state");
    let commit = |position: i64| Checkpoint { stream: stream.clone(), position, state: json!({ "after": position }) };
    let (b, r) = batch_of(&schema, &[record(10, "2026-01-01T00:00:00.000Z", &[("email", Some("x@example.com"))])]);
    let stage = dest.stage("conf_state", &b).await.expect("stage");
    dest.merge(stage, &r, Some(&commit(10))).await.expect("merge");
    if !dest.holds_state() {
        assert_eq!(dest.checkpoint(stream).await.expect("checkpoint"), None, "the checkpoint is the runner's");
        return;
    }
    assert_eq!(dest.checkpoint(stream).await.expect("checkpoint"), Some(commit(10)));
    let stage = dest.stage("conf_state", &b).await.expect("stage");
    dest.merge(stage, &r, Some(&commit(5))).await.expect("merge");
    assert_eq!(dest.checkpoint(stream).await.expect("checkpoint"), Some(commit(10)), "a replay never moves it back");
}

/// A batch carrying a subset of the table's columns (a targeted re-read of one property)
/// updates only those columns.
pub async fn partial_batch_touches_only_its_columns<D: Inspect>(dest: &D) {
    let schema = ensure_table(dest, "conf_partial", &[property("email", "string"), property("city", "string")]).await;
    let full = record(1, "2026-01-01T00:00:00.000Z", &[("email", Some("a@example.com")), ("city", Some("Berlin"))]);
    let (b, r) = batch_of(&schema, &[full]);
    load(dest, "conf_partial", &b, &r).await;
    let keep = [hsync_columns::ID, hsync_columns::CURSOR, hsync_columns::SYNCED_AT, "city"];
    let indices: Vec<usize> = keep.iter().map(|c| b.schema().index_of(c).expect("column")).collect();
    let (b2, r2) = batch_of(&schema, &[record(1, "2026-01-01T00:00:00.000Z", &[("city", Some("Zürich"))])]);
    let partial = b2.project(&indices).expect("project");
    load(dest, "conf_partial", &partial, &r2).await;
    let rows = dest.read_table("conf_partial").await.expect("read");
    assert_eq!(value(by_id(&rows, 1), "city"), &text("Zürich"));
    assert_eq!(value(by_id(&rows, 1), "email"), &text("a@example.com"), "columns outside the batch are untouched");
}

/// `read_cells` returns the chosen columns of the stored rows among the ids asked for, by id,
/// and each value is what HubSpot's raw value parses to for its column (what `hsync verify`
/// compares calculated values with); a missing table reads as empty, a missing column fails.
pub async fn read_cells_reads_the_chosen_columns_of_the_chosen_rows<D: Inspect>(dest: &D) {
    let table = "conf_cells";
    let kinds = [("amount", "number"), ("seen", "datetime"), ("day", "date"), ("ok", "bool"), ("name", "string")];
    let definitions: Vec<PropertyDefinition> = kinds.iter().map(|(n, k)| property(n, k)).collect();
    let schema = ensure_table(dest, table, &definitions).await;
    let raw = |i: u64| -> [(&str, Option<String>); 5] {
        [
            ("amount", Some(format!("{i}.50"))),
            ("seen", Some(format!("2026-03-0{i}T01:30:00.123Z"))),
            ("day", (i != 2).then(|| format!("2026-03-0{i}"))),
            ("ok", Some(i.is_multiple_of(2).to_string())),
            ("name", Some(if i == 4 { String::new() } else { format!("Name {i}") })),
        ]
    };
    let records: Vec<_> = (1..=4)
        .map(|i| {
            let values = raw(i);
            let values: Vec<(&str, Option<&str>)> = values.iter().map(|(k, v)| (*k, v.as_deref())).collect();
            record(i, "2026-01-01T00:00:00.000Z", &values)
        })
        .collect();
    let (b, r) = batch_of(&schema, &records);
    load(dest, table, &b, &r).await;
    let mut columns = vec![hsync_columns::ID.to_owned(), hsync_columns::CURSOR.to_owned()];
    columns.extend(kinds.iter().map(|(n, _)| (*n).to_owned()));
    let rows = dest.read_cells(table, &columns, &[4, 99, 2]).await.expect("read cells");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let whole = dest.read_table(table).await.expect("read");
    for (row, id) in rows.iter().zip([2_i64, 4]) {
        assert_eq!(row.keys().collect::<Vec<_>>().len(), columns.len(), "only the chosen columns: {row:?}");
        assert_eq!(value(row, hsync_columns::ID), &Cell::Int(id), "ascending ids");
        for c in &columns {
            assert_eq!(value(row, c), value(by_id(&whole, id), c), "{c} of {id}");
        }
        for (name, raw) in raw(id as u64) {
            let column = schema.columns.iter().find(|c| c.name == name).expect("the property's column");
            let expected = match raw {
                Some(raw) => Cell::from_parsed(&parse_value(column.ty, &raw).expect("parses").value).expect("a cell"),
                None => Cell::Null,
            };
            assert_eq!(value(row, name), &expected, "{name} of {id}");
        }
    }
    assert!(dest.read_cells(table, &columns, &[]).await.expect("no ids").is_empty());
    assert!(dest.read_cells("conf_cells_absent", &columns, &[1]).await.expect("no table").is_empty());
    let unknown = [hsync_columns::ID.to_owned(), "no_such_column".to_owned()];
    let err = dest.read_cells(table, &unknown, &[1]).await.expect_err("an unknown column fails");
    assert!(err.to_string().contains("no_such_column"), "{err}");
}

/// An association edge for the edge scenario.
fn edge(from_id: i64, to_id: i64, type_id: i32, category: &str, label: Option<&str>) -> Edge {
    Edge { from_id, to_id, type_id, category: category.to_owned(), label: label.map(str::to_owned) }
}

/// The stored edges of the scenario's object types.
async fn conformance_edges<D: Inspect>(dest: &D) -> Vec<EdgeRow> {
    let mut rows = dest.read_edges().await.expect("read edges");
    rows.retain(|e| e.from_type.starts_with("conf_edge_"));
    rows
}

fn stored<'a>(rows: &'a [EdgeRow], to_type: &str, from_id: i64, to_id: i64, type_id: i32) -> &'a EdgeRow {
    rows.iter()
        .find(|e| e.to_type == to_type && e.from_id == from_id && e.to_id == to_id && e.type_id == type_id)
        .unwrap_or_else(|| panic!("edge {from_id}->{to_id} ({type_id}) to {to_type} missing from {rows:?}"))
}

/// `merge_edges` makes the stored edges of the given records equal the current list: new
/// edges inserted, labels and categories updated, vanished edges tombstoned (kept, with
/// `deleted_at`), returning edges revived; other records and other pairs are untouched, and a
/// replay changes nothing.
pub async fn edges_follow_the_current_list<D: Inspect>(dest: &D) {
    const FROM: &str = "conf_edge_contacts";
    const TO: &str = "conf_edge_companies";
    const OTHER: &str = "conf_edge_deals";
    const HS: &str = "HUBSPOT_DEFINED";
    const USER: &str = "USER_DEFINED";
    let t0 = 1_767_225_600_000;
    let (t1, t2, t3) = (t0 + 1_000, t0 + 2_000, t0 + 3_000);
    let first = vec![
        edge(1, 10, 279, HS, None),
        edge(1, 10, 1, HS, Some("Primary")),
        edge(1, 11, 279, HS, None),
        edge(2, 10, 279, HS, None),
        // The same edge twice in one list is one row.
        edge(2, 10, 279, HS, None),
    ];
    let outcome = dest.merge_edges(FROM, TO, &[1, 2, 3], &first, t0).await.expect("merge edges");
    assert_eq!(outcome, EdgeOutcome { upserted: 4, tombstoned: 0 });
    dest.merge_edges(FROM, OTHER, &[1], &[edge(1, 50, 4, HS, None)], t0).await.expect("merge edges");
    let rows = conformance_edges(dest).await;
    assert_eq!(rows.len(), 5, "{rows:?}");
    let primary = stored(&rows, TO, 1, 10, 1);
    assert_eq!((primary.category.as_str(), primary.label.as_deref()), (HS, Some("Primary")));
    assert_eq!((primary.synced_at_ms, primary.deleted_at_ms), (t0, None));
    assert_eq!(stored(&rows, TO, 1, 11, 279).label, None, "the unlabeled type has no label");

    // A replay writes nothing.
    let replay = dest.merge_edges(FROM, TO, &[1, 2, 3], &first, t1).await.expect("merge edges");
    assert_eq!(replay, EdgeOutcome::default());
    assert_eq!(conformance_edges(dest).await, rows, "a replay changes nothing");

    // Record 1 now: Primary replaced by a user-defined label, and the unlabeled type's label
    // renamed. Record 2 is not in the call and keeps its edges.
    let relabelled = vec![
        edge(1, 10, 279, HS, None),
        edge(1, 10, 28, USER, Some("Billing contact")),
        edge(1, 11, 279, HS, Some("Renamed")),
    ];
    let outcome = dest.merge_edges(FROM, TO, &[1], &relabelled, t1).await.expect("merge edges");
    assert_eq!(outcome, EdgeOutcome { upserted: 2, tombstoned: 1 });
    let rows = conformance_edges(dest).await;
    let billing = stored(&rows, TO, 1, 10, 28);
    assert_eq!(
        (billing.category.as_str(), billing.label.as_deref(), billing.synced_at_ms),
        (USER, Some("Billing contact"), t1)
    );
    assert_eq!(stored(&rows, TO, 1, 11, 279).label.as_deref(), Some("Renamed"));
    let gone = stored(&rows, TO, 1, 10, 1);
    assert_eq!(gone.deleted_at_ms, Some(t1), "a vanished edge is tombstoned, not deleted");
    assert_eq!(gone.label.as_deref(), Some("Primary"), "a tombstone keeps its label");
    assert_eq!(stored(&rows, TO, 1, 10, 279).synced_at_ms, t0, "an unchanged edge is not rewritten");
    assert_eq!(stored(&rows, TO, 2, 10, 279).deleted_at_ms, None, "records outside the call are untouched");
    assert_eq!(stored(&rows, OTHER, 1, 50, 4).deleted_at_ms, None, "other pairs are untouched");

    // Record 2 loses its only edge; a tombstone is not tombstoned again.
    let outcome = dest.merge_edges(FROM, TO, &[1, 2], &relabelled, t2).await.expect("merge edges");
    assert_eq!(outcome, EdgeOutcome { upserted: 0, tombstoned: 1 });
    let rows = conformance_edges(dest).await;
    assert_eq!(stored(&rows, TO, 2, 10, 279).deleted_at_ms, Some(t2));
    assert_eq!(stored(&rows, TO, 1, 10, 1).deleted_at_ms, Some(t1), "the first tombstone keeps its time");

    // The edge comes back, under its old type: the tombstone is cleared.
    let back = [edge(2, 10, 279, HS, None)];
    let outcome = dest.merge_edges(FROM, TO, &[2], &back, t3).await.expect("merge edges");
    assert_eq!(outcome, EdgeOutcome { upserted: 1, tombstoned: 0 });
    let rows = conformance_edges(dest).await;
    let revived = stored(&rows, TO, 2, 10, 279);
    assert_eq!((revived.deleted_at_ms, revived.synced_at_ms), (None, t3));
    assert_eq!(dest.merge_edges(FROM, TO, &[2], &back, t3 + 1).await.expect("merge edges"), EdgeOutcome::default());
    assert_eq!(rows.len(), 6, "one row per edge and type, whatever happened: {rows:?}");

    // An edge of a record outside from_ids is refused, and nothing is written.
    let stray = dest.merge_edges(FROM, TO, &[1], &[edge(9, 10, 279, HS, None)], t3).await;
    assert!(stray.is_err(), "an edge outside from_ids is refused");
    assert_eq!(conformance_edges(dest).await, rows);
    // No records: nothing to do.
    assert_eq!(dest.merge_edges(FROM, TO, &[], &[], t3).await.expect("merge edges"), EdgeOutcome::default());
}

/// An owner row in the column order of [`crate::schema::dimension::OWNERS`].
fn owner_row(id: &str, email: Option<&str>, first_name: &str, archived: bool, created_at: &str) -> Vec<Option<String>> {
    [
        Some(id),
        email,
        Some(first_name),
        Some("Nuñez \"the\" O'Brien"),
        Some("5000001"),
        Some("5000001"),
        Some("PERSON"),
        Some(r#"[{"id":"301","name":"Équipe","primary":true}]"#),
        Some(if archived { "true" } else { "false" }),
        Some(created_at),
        Some("2025-06-01T00:00:00Z"),
    ]
    .iter()
    .map(|v| v.map(str::to_owned))
    .collect()
}

fn pipeline_row(object_type: &str, id: &str, label: &str) -> Vec<Option<String>> {
    [Some(object_type), Some(id), Some(label), Some("0"), Some("false"), None, Some("2025-01-01T00:00:00Z"), None]
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect()
}

fn stage_row(
    object_type: &str,
    pipeline: &str,
    id: &str,
    label: &str,
    probability: Option<&str>,
) -> Vec<Option<String>> {
    [
        Some(object_type),
        Some(pipeline),
        Some(id),
        Some(label),
        Some("3"),
        Some("false"),
        probability,
        Some("true"),
        Some(r#"{"isClosed":"true","probability":"1.0"}"#),
        None,
        Some("2025-01-01T00:00:00Z"),
        Some("2025-01-02T00:00:00Z"),
    ]
    .iter()
    .map(|v| v.map(str::to_owned))
    .collect()
}

/// The stored row of a dimension table whose key columns hold `key`.
fn by_key<'a>(rows: &'a [Row], key: &[(&str, &str)]) -> &'a Row {
    rows.iter()
        .find(|r| key.iter().all(|(column, v)| r.get(*column) == Some(&text(v))))
        .unwrap_or_else(|| panic!("row {key:?} missing from {rows:?}"))
}

/// `replace_dimensions` makes the owners and pipelines tables hold the current lists: typed
/// values, the same pipeline and stage ids under different object types kept apart, changed
/// rows updated, vanished rows flagged `_hsync_removed_at` (kept, with their values) and
/// revived when they come back; a replay flags nothing again; bad values are NULL plus a
/// reject; tables not given are untouched; a wrong batch is refused with nothing written and
/// no checkpoint committed.
pub async fn dimensions_follow_the_current_list<D: Inspect>(dest: &D) {
    use crate::schema::dimension::{build_dimension_batch, OWNERS, PIPELINES, PIPELINE_STAGES, REMOVED_AT};
    use hsync_columns::SYNCED_AT;
    let t0 = 1_767_225_600_000;
    let (t1, t2, t3) = (t0 + 1_000, t0 + 2_000, t0 + 3_000);
    let stream = &StreamId::new(StreamKind::Dimensions, "conformance");
    let commit = |position: i64| Checkpoint { stream: stream.clone(), position, state: json!({ "at": position }) };
    for table in ["owners", "pipelines", "pipeline_stages"] {
        assert_eq!(dest.read_table(table).await.expect("prepare creates the table"), Vec::<Row>::new());
    }
    let owners = |rows: &[Vec<Option<String>>]| build_dimension_batch(&OWNERS, rows);
    let (first_owners, rejects) = owners(&[
        owner_row("1", Some("zoë@example.com"), "Zoë", false, "2024-01-01T00:00:00.250Z"),
        owner_row("2", None, "Ann", true, "2024-02-01T00:00:00Z"),
    ]);
    assert!(rejects.is_empty(), "{rejects:?}");
    let (pipelines, _) = build_dimension_batch(
        &PIPELINES,
        &[pipeline_row("deals", "default", "Sales"), pipeline_row("tickets", "default", "Support")],
    );
    let (stages, _) = build_dimension_batch(
        &PIPELINE_STAGES,
        &[
            stage_row("deals", "default", "won", "Won", Some("1.0")),
            stage_row("tickets", "default", "won", "Solved", None),
        ],
    );
    let all = [first_owners, pipelines, stages];
    let outcomes = dest.replace_dimensions(&all, t0, &[], Some(&commit(t0))).await.expect("replace");
    let counts: Vec<_> = outcomes.iter().map(|o| (o.table, o.rows, o.removed)).collect();
    assert_eq!(counts, [("owners", 2, 0), ("pipelines", 2, 0), ("pipeline_stages", 2, 0)]);
    let held = |position: i64| dest.holds_state().then(|| commit(position));
    assert_eq!(dest.checkpoint(stream).await.expect("checkpoint"), held(t0), "committed with the lists");

    let rows = dest.read_table("owners").await.expect("read");
    let zoe = by_key(&rows, &[("id", "1")]);
    assert_eq!(value(zoe, "email"), &text("zoë@example.com"));
    assert_eq!(value(zoe, "last_name"), &text("Nuñez \"the\" O'Brien"));
    assert_eq!(value(zoe, "user_id"), &Cell::Int(5_000_001));
    assert_eq!(value(zoe, "archived"), &Cell::Bool(false));
    assert_eq!(value(zoe, "created_at"), &Cell::TimestampMs(parse_instant_ms("2024-01-01T00:00:00.250Z").unwrap()));
    assert_eq!(value(zoe, "teams"), &Cell::Json(json!([{"id": "301", "name": "Équipe", "primary": true}])));
    assert_eq!((value(zoe, SYNCED_AT), value(zoe, REMOVED_AT)), (&Cell::TimestampMs(t0), &Cell::Null));
    let ann = by_key(&rows, &[("id", "2")]);
    assert_eq!((value(ann, "email"), value(ann, "archived")), (&Cell::Null, &Cell::Bool(true)));
    let rows = dest.read_table("pipelines").await.expect("read");
    assert_eq!(rows.len(), 2, "one pipeline id under two object types is two rows");
    assert_eq!(value(by_key(&rows, &[("object_type", "tickets"), ("id", "default")]), "label"), &text("Support"));
    assert_eq!(value(by_key(&rows, &[("object_type", "deals"), ("id", "default")]), "updated_at"), &Cell::Null);
    let rows = dest.read_table("pipeline_stages").await.expect("read");
    let won = by_key(&rows, &[("object_type", "deals"), ("pipeline_id", "default"), ("id", "won")]);
    assert_eq!(value(won, "probability"), &Cell::Decimal("1".into()));
    assert_eq!(value(won, "is_closed"), &Cell::Bool(true));
    assert_eq!(value(won, "display_order"), &Cell::Int(3));
    assert_eq!(value(won, "metadata"), &Cell::Json(json!({"isClosed": "true", "probability": "1.0"})));
    let solved = by_key(&rows, &[("object_type", "tickets"), ("pipeline_id", "default"), ("id", "won")]);
    assert_eq!(value(solved, "probability"), &Cell::Null);

    // Owner 1 leaves, 2 changes, 3 arrives; the tickets pipeline and its stage go; a deal
    // stage is relabelled and one added.
    let (second_owners, _) = owners(&[
        owner_row("2", Some("ann@example.com"), "Ann", false, "2024-02-01T00:00:00Z"),
        owner_row("3", Some("new@example.com"), "Né", false, "2025-01-01T00:00:00Z"),
    ]);
    let (pipelines, _) = build_dimension_batch(&PIPELINES, &[pipeline_row("deals", "default", "Sales")]);
    let (stages, _) = build_dimension_batch(
        &PIPELINE_STAGES,
        &[
            stage_row("deals", "default", "won", "Closed won", Some("1.0")),
            stage_row("deals", "default", "lost", "Closed lost", Some("0")),
        ],
    );
    let second = [second_owners, pipelines, stages];
    let outcomes = dest.replace_dimensions(&second, t1, &[], Some(&commit(t1))).await.expect("replace");
    let counts: Vec<_> = outcomes.iter().map(|o| (o.table, o.rows, o.removed)).collect();
    assert_eq!(counts, [("owners", 2, 1), ("pipelines", 1, 1), ("pipeline_stages", 2, 1)]);
    let owner_rows = dest.read_table("owners").await.expect("read");
    assert_eq!(owner_rows.len(), 3, "a removed owner is kept");
    let gone = by_key(&owner_rows, &[("id", "1")]);
    assert_eq!(value(gone, REMOVED_AT), &Cell::TimestampMs(t1));
    assert_eq!(value(gone, SYNCED_AT), &Cell::TimestampMs(t0), "a removed row keeps the refresh that last saw it");
    assert_eq!(value(gone, "email"), &text("zoë@example.com"), "a removed row keeps its values");
    let ann = by_key(&owner_rows, &[("id", "2")]);
    assert_eq!((value(ann, "email"), value(ann, "archived")), (&text("ann@example.com"), &Cell::Bool(false)));
    assert_eq!(value(by_key(&owner_rows, &[("id", "3")]), SYNCED_AT), &Cell::TimestampMs(t1));
    let rows = dest.read_table("pipelines").await.expect("read");
    let tickets = by_key(&rows, &[("object_type", "tickets"), ("id", "default")]);
    assert_eq!(value(tickets, REMOVED_AT), &Cell::TimestampMs(t1));
    let rows = dest.read_table("pipeline_stages").await.expect("read");
    let won = by_key(&rows, &[("object_type", "deals"), ("pipeline_id", "default"), ("id", "won")]);
    assert_eq!((value(won, "label"), value(won, REMOVED_AT)), (&text("Closed won"), &Cell::Null));
    let solved = by_key(&rows, &[("object_type", "tickets"), ("pipeline_id", "default"), ("id", "won")]);
    assert_eq!(value(solved, REMOVED_AT), &Cell::TimestampMs(t1));

    // A replay flags nothing again: the first removal time stays.
    let outcomes = dest.replace_dimensions(&second, t2, &[], None).await.expect("replace");
    assert!(outcomes.iter().all(|o| o.removed == 0), "{outcomes:?}");
    let rows = dest.read_table("owners").await.expect("read");
    assert_eq!(value(by_key(&rows, &[("id", "1")]), REMOVED_AT), &Cell::TimestampMs(t1));

    // Owner 1 comes back with a value that does not parse; only owners are given, so the
    // pipeline tables are untouched.
    let pipelines_before = dest.read_table("pipelines").await.expect("read");
    let stages_before = dest.read_table("pipeline_stages").await.expect("read");
    let (back, rejects) = owners(&[
        owner_row("1", Some("zoë@example.com"), "Zoë", false, "yesterday"),
        owner_row("2", Some("ann@example.com"), "Ann", false, "2024-02-01T00:00:00Z"),
        owner_row("3", Some("new@example.com"), "Né", false, "2025-01-01T00:00:00Z"),
    ]);
    assert_eq!(rejects.len(), 1);
    let outcomes = dest.replace_dimensions(&[back], t3, &rejects, None).await.expect("replace");
    assert_eq!(outcomes.len(), 1);
    let rows = dest.read_table("owners").await.expect("read");
    let zoe = by_key(&rows, &[("id", "1")]);
    assert_eq!((value(zoe, REMOVED_AT), value(zoe, SYNCED_AT)), (&Cell::Null, &Cell::TimestampMs(t3)), "revived");
    assert_eq!(value(zoe, "created_at"), &Cell::Null, "a value that does not parse is NULL");
    let stored = dest.read_rejects("owners").await.expect("rejects");
    assert!(
        stored.iter().any(|r| (r.id.as_str(), r.property.as_str(), r.raw.as_str()) == ("1", "created_at", "yesterday")),
        "{stored:?}"
    );
    assert_eq!(dest.read_table("pipelines").await.expect("read"), pipelines_before);
    assert_eq!(dest.read_table("pipeline_stages").await.expect("read"), stages_before);

    // A repeated key is refused: nothing written, no checkpoint.
    let owners_before = dest.read_table("owners").await.expect("read");
    let (twice, _) = owners(&[
        owner_row("4", Some("a@example.com"), "A", false, "2025-01-01T00:00:00Z"),
        owner_row("4", Some("b@example.com"), "B", false, "2025-01-01T00:00:00Z"),
    ]);
    let refused = dest.replace_dimensions(&[twice], t3 + 1, &[], Some(&commit(t3 + 1))).await;
    assert!(refused.is_err(), "a repeated key is refused");
    assert_eq!(dest.read_table("owners").await.expect("read"), owners_before);
    assert_eq!(dest.checkpoint(stream).await.expect("checkpoint"), held(t1));
}

/// `property_history` only gains rows: versions are typed and keyed apart (three in one
/// millisecond are three rows), a later write of other versions leaves the stored ones alone
/// (no `_hsync_removed_at`), and a replay adds nothing.
pub async fn property_history_only_gains_rows<D: Inspect>(dest: &D) {
    use crate::schema::dimension::{build_dimension_batch, PROPERTY_HISTORY};
    use crate::schema::history::version_rows;
    let t0 = 1_767_225_600_000;
    let stream = &StreamId::new(StreamKind::History, "conformance");
    let commit = |position: i64| Checkpoint { stream: stream.clone(), position, state: json!({ "at": position }) };
    assert_eq!(dest.read_table("property_history").await.expect("prepare creates the table"), Vec::<Row>::new());
    let deal = |versions: &str| -> CrmObject {
        serde_json::from_str(&format!(
            r#"{{"id":"7","properties":{{}},"propertiesWithHistory":{{"dealstage":[{versions}]}}}}"#
        ))
        .expect("invariant: a valid record")
    };
    let first = deal(
        r#"{"value":"won","timestamp":"2026-01-02T03:04:05.678Z","sourceType":"CRM_UI","sourceId":"userId:5","updatedByUserId":5},
           {"value":"lost","timestamp":"2026-01-02T03:04:05.678Z","sourceType":"CRM_UI","sourceId":"userId:5","updatedByUserId":5},
           {"value":"won","timestamp":"2026-01-02T03:04:05.678Z","sourceType":"INTEGRATION","sourceId":"3141"},
           {"value":"Nuñez \"open\"","timestamp":"2025-12-01T00:00:00Z","sourceType":"IMPORT","sourceLabel":"Import ü"}"#,
    );
    let write = |record: CrmObject, at: i64| async move {
        let (rows, rejects) = version_rows("deals", &[record]);
        assert!(rejects.is_empty(), "{rejects:?}");
        let (batch, rejects) = build_dimension_batch(&PROPERTY_HISTORY, &rows);
        assert!(rejects.is_empty(), "{rejects:?}");
        dest.replace_dimensions(&[batch], at, &[], Some(&commit(at))).await.expect("write versions")
    };
    let outcomes = write(first.clone(), t0).await;
    assert_eq!(outcomes.iter().map(|o| (o.table, o.rows, o.removed)).collect::<Vec<_>>(), [("property_history", 4, 0)]);
    let rows = dest.read_table("property_history").await.expect("read");
    assert_eq!(rows.len(), 4, "three versions in one millisecond are three rows");
    assert!(rows.iter().all(|r| !r.contains_key(crate::schema::dimension::REMOVED_AT)), "no removal flag: {rows:?}");
    let open = rows.iter().find(|r| r.get("source_type") == Some(&text("IMPORT"))).expect("the import version");
    assert_eq!(value(open, "record_id"), &Cell::Int(7));
    assert_eq!(value(open, "value"), &text("Nuñez \"open\""));
    assert_eq!(value(open, "source_label"), &text("Import ü"));
    assert_eq!(value(open, "changed_at"), &Cell::TimestampMs(parse_instant_ms("2025-12-01T00:00:00Z").unwrap()));
    assert_eq!(value(open, "updated_by_user_id"), &Cell::Null);
    let won =
        rows.iter().find(|r| r.get("source_id") == Some(&text("userId:5")) && r.get("value") == Some(&text("won")));
    assert_eq!(won.map(|r| value(r, "updated_by_user_id")), Some(&Cell::Int(5)));
    let held = |position: i64| dest.holds_state().then(|| commit(position));
    assert_eq!(dest.checkpoint(stream).await.expect("checkpoint"), held(t0), "committed with the versions");

    // A later read lists only a new version: the stored ones stay as they are.
    let later = deal(r#"{"value":"closed","timestamp":"2026-02-01T00:00:00Z","sourceType":"CRM_UI"}"#);
    write(later, t0 + 1_000).await;
    let after = dest.read_table("property_history").await.expect("read");
    assert_eq!(after.len(), 5);
    for row in &rows {
        assert!(after.contains(row), "a stored version is untouched: {row:?}");
    }
    // A replay of the first read adds nothing.
    write(first, t0 + 2_000).await;
    assert_eq!(dest.read_table("property_history").await.expect("read").len(), 5, "a replay doubles nothing");

    // `history_versions` reads them back by record, for that object type only.
    let mut other = deal(r#"{"value":"x","timestamp":"2026-02-01T00:00:00Z","sourceType":"CRM_UI"}"#);
    other.id = "8".to_owned();
    write(other, t0 + 3_000).await;
    let mut stored = dest.history_versions("deals", &[7, 99]).await.expect("read versions");
    stored.sort_by(|a, b| (a.changed_at_ms, &a.version_id).cmp(&(b.changed_at_ms, &b.version_id)));
    assert_eq!(stored.len(), 5, "record 7's versions, not record 8's: {stored:?}");
    assert!(stored.iter().all(|v| v.record_id == 7 && v.property == "dealstage"), "{stored:?}");
    let oldest = &stored[0];
    assert_eq!(oldest.value.as_deref(), Some("Nuñez \"open\""));
    assert_eq!(oldest.changed_at_ms, parse_instant_ms("2025-12-01T00:00:00Z"));
    assert!(oldest.version_id.starts_with("7/dealstage/"), "{}", oldest.version_id);
    assert_eq!(stored[4].value.as_deref(), Some("closed"));
    assert_eq!(dest.history_versions("contacts", &[7]).await.expect("read versions"), []);
    assert_eq!(dest.history_versions("deals", &[]).await.expect("read versions"), []);
}
