//! The SQLite destination and state store against real SQLite files in a temporary directory:
//! the shared destination conformance suite, then SQLite's own guarantees (stored types, the
//! widen rebuild, crash leftovers, the state tables and the budget ledger).

use chrono::{NaiveDate, TimeZone, Utc};
use hsync::destination::conformance::{self, batch_of, ensure_table, load, property, record, Cell, Inspect};
use hsync::destination::sqlite::SqliteDestination;
use hsync::destination::sqlite::SqliteStateStore;
use hsync::destination::Destination;
use hsync::hubspot::{BudgetRecord, BudgetStore};
use hsync::schema::{diff, ColumnType, ExistingColumn};
use hsync::state::{Checkpoint, PropertySnapshot, RunStatus, StateStore, StreamId};
use serde_json::json;
use sqlx::Row;
use tempfile::TempDir;

/// A prepared destination in a fresh file; keep the directory alive while using it.
struct Db {
    dir: TempDir,
    url: String,
    dest: SqliteDestination,
}

async fn fresh() -> Db {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("hsync.db").display());
    let dest = SqliteDestination::connect(&url).await.expect("connect");
    dest.prepare().await.expect("prepare");
    Db { dir, url, dest }
}

/// A separate connection for reading what SQLite actually stored.
async fn raw(db: &Db) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&db.url).await.expect("raw connection")
}

fn checkpoint(stream: &str, position: i64) -> Checkpoint {
    Checkpoint {
        stream: stream.parse().expect("a stream id"),
        position,
        state: json!({ "after": position, "note": "ñ" }),
    }
}

fn row_of(rows: &[conformance::Row], id: i64) -> &conformance::Row {
    rows.iter().find(|r| r.get("id") == Some(&Cell::Int(id))).unwrap_or_else(|| panic!("row {id} missing"))
}

#[tokio::test]
async fn conformance_suite() {
    let db = fresh().await;
    conformance::run_all(&db.dest).await;
}

#[tokio::test]
async fn connect_refuses_in_memory_and_foreign_urls() {
    for url in ["sqlite::memory:", "sqlite://:memory:", "sqlite://?mode=memory", "postgres://localhost/db", "hsync.db"]
    {
        let err = SqliteDestination::connect(url).await.expect_err(url);
        assert!(matches!(err, hsync::destination::Error::Config(_)), "{url}: {err}");
    }
}

#[tokio::test]
async fn prepare_is_idempotent_and_creates_the_bookkeeping_tables() {
    let db = fresh().await;
    db.dest.prepare().await.expect("prepare again");
    db.dest.state_store().migrate().await.expect("migrate again");
    let pool = raw(&db).await;
    let tables: Vec<String> = sqlx::query_scalar("select name from sqlite_schema where type = 'table' order by name")
        .fetch_all(&pool)
        .await
        .expect("tables");
    let expected =
        ["_hsync_budget", "_hsync_checkpoints", "_hsync_column_map", "_hsync_property_snapshots", "_hsync_rejects"];
    for t in expected.into_iter().chain(["_hsync_runs", "_hsync_webhook_events", "_hsync_webhook_deliveries"]) {
        assert!(tables.iter().any(|n| n == t), "{t} missing from {tables:?}");
    }
    let association_columns: Vec<String> =
        sqlx::query_scalar("select name from pragma_table_info('associations') order by cid")
            .fetch_all(&pool)
            .await
            .expect("columns");
    assert_eq!(
        association_columns,
        ["from_type", "from_id", "to_type", "to_id", "type_id", "category", "label", "synced_at", "deleted_at"]
    );
    let mode: String = sqlx::query_scalar("pragma journal_mode").fetch_one(&pool).await.expect("journal mode");
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn checkpoint_is_monotonic() {
    let db = fresh().await;
    let store = db.dest.state_store();
    assert_eq!(store.load_checkpoint(&StreamId::cdc("deals")).await.expect("load"), None);
    assert!(store.commit_checkpoint(&checkpoint("cdc:deals", 100)).await.expect("commit"));
    assert!(
        !store.commit_checkpoint(&checkpoint("cdc:deals", 99)).await.expect("commit"),
        "a lower position is ignored"
    );
    assert_eq!(store.load_checkpoint(&StreamId::cdc("deals")).await.expect("load"), Some(checkpoint("cdc:deals", 100)));
    let same = Checkpoint { state: json!({ "after": 100, "page": 2 }), ..checkpoint("cdc:deals", 100) };
    assert!(store.commit_checkpoint(&same).await.expect("commit"), "an equal position is stored");
    assert!(store.commit_checkpoint(&checkpoint("cdc:deals", 101)).await.expect("commit"));
    assert!(store.commit_checkpoint(&checkpoint("backfill:contacts", 5)).await.expect("commit"));
    let all = store.checkpoints().await.expect("all");
    assert_eq!(all, [checkpoint("backfill:contacts", 5), checkpoint("cdc:deals", 101)]);
}

#[tokio::test]
async fn a_failed_merge_commits_neither_rows_nor_checkpoint() {
    let db = fresh().await;
    let schema = ensure_table(&db.dest, "atomic", &[property("email", "string")]).await;
    let (batch, rejects) = batch_of(&schema, &[record(1, "2026-01-01T00:00:00.000Z", &[("email", Some("a@x.io"))])]);
    let mut stage = db.dest.stage("atomic", &batch).await.expect("stage");
    stage.table = "no_such_table".to_owned();
    let err = db.dest.merge(stage.clone(), &rejects, Some(&checkpoint("backfill:atomic", 1))).await.expect_err("merge");
    assert!(err.to_string().contains("no_such_table"), "{err}");
    assert_eq!(db.dest.checkpoint(&StreamId::backfill("atomic")).await.expect("checkpoint"), None);
    assert!(db.dest.stage_tables().await.expect("stages").contains(&stage.stage_table), "the stage survives to retry");
    stage.table = "atomic".to_owned();
    let outcome = db.dest.merge(stage, &rejects, Some(&checkpoint("backfill:atomic", 1))).await.expect("retry");
    assert_eq!((outcome.written, outcome.skipped), (1, 0));
    assert_eq!(
        db.dest.checkpoint(&StreamId::backfill("atomic")).await.expect("checkpoint"),
        Some(checkpoint("backfill:atomic", 1))
    );
    assert!(db.dest.stage_tables().await.expect("stages").is_empty());
}

#[tokio::test]
async fn runs_are_recorded_newest_first() {
    let db = fresh().await;
    let store = db.dest.state_store();
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("instant");
    let first = store.start_run(&StreamId::cdc("contacts"), t0).await.expect("start");
    let later = t0 + chrono::Duration::nanoseconds(1_234_567_891);
    store.finish_run(first, later, RunStatus::Ok, 250, None).await.expect("finish");
    let second = store.start_run(&StreamId::cdc("contacts"), t0 + chrono::Duration::minutes(5)).await.expect("start");
    store
        .finish_run(second, t0 + chrono::Duration::minutes(6), RunStatus::Failed, 0, Some("cannot reach HubSpot"))
        .await
        .expect("finish");
    let third = store.start_run(&StreamId::backfill("deals"), t0 + chrono::Duration::minutes(7)).await.expect("start");
    assert!(store.finish_run(third + 100, t0, RunStatus::Ok, 0, None).await.is_err(), "an unknown run is an error");

    let runs = store.recent_runs(10).await.expect("runs");
    assert_eq!(runs.len(), 3);
    assert_eq!(
        (runs[0].stream.to_string().as_str(), runs[0].status.as_str(), runs[0].finished_at),
        ("backfill:deals", "running", None)
    );
    assert_eq!(runs[1].error.as_deref(), Some("cannot reach HubSpot"));
    assert_eq!((runs[2].started_at, runs[2].finished_at, runs[2].rows), (t0, Some(later), 250), "exact instants");
    assert_eq!(store.recent_runs(1).await.expect("runs").len(), 1);
}

#[tokio::test]
async fn property_snapshot_round_trips() {
    let db = fresh().await;
    let store = db.dest.state_store();
    assert_eq!(store.load_snapshot("contacts").await.expect("load"), None);
    let mut archived = property("legacy", "string");
    archived.archived = true;
    let snapshot = PropertySnapshot {
        object: "contacts".to_owned(),
        properties: vec![property("email", "string"), property("ñandú", "number"), archived],
        acknowledged_removed: vec!["legacy".to_owned()],
    };
    store.save_snapshot(&snapshot).await.expect("save");
    assert_eq!(store.load_snapshot("contacts").await.expect("load"), Some(snapshot.clone()));
    let replaced = PropertySnapshot { acknowledged_removed: vec![], ..snapshot };
    store.save_snapshot(&replaced).await.expect("save again");
    assert_eq!(store.load_snapshot("contacts").await.expect("load"), Some(replaced));
}

#[tokio::test]
async fn budget_record_round_trips() {
    let db = fresh().await;
    let store = db.dest.state_store();
    assert_eq!(store.load().await.expect("load"), None);
    let day = NaiveDate::from_ymd_opt(2026, 3, 29).expect("date");
    store.save(BudgetRecord { day, reserved: 40 }).await.expect("save");
    assert_eq!(store.load().await.expect("load"), Some(BudgetRecord { day, reserved: 40 }));
    let next = BudgetRecord { day: day.succ_opt().expect("date"), reserved: 20 };
    store.save(next).await.expect("save");
    assert_eq!(store.load().await.expect("load"), Some(next), "one ledger row, replaced");
    // The ledger survives a restart.
    let url = db.url.clone();
    db.dest.close().await;
    let again = SqliteDestination::connect(&url).await.expect("reconnect");
    assert_eq!(again.state_store().load().await.expect("load"), Some(next));
}

#[tokio::test]
async fn standalone_state_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state").with_extension("db");
    let store = SqliteStateStore::open(&path).await.expect("open");
    store.migrate().await.expect("migrate");
    store.migrate().await.expect("migrate twice");
    assert!(store.commit_checkpoint(&checkpoint("backfill:cars", 7)).await.expect("commit"));
    drop(store);
    let reopened = SqliteStateStore::open(&path).await.expect("reopen");
    reopened.migrate().await.expect("migrate");
    assert_eq!(
        reopened.load_checkpoint(&StreamId::backfill("cars")).await.expect("load"),
        Some(checkpoint("backfill:cars", 7))
    );
}

#[tokio::test]
async fn merge_same_batch_twice_equals_once() {
    let db = fresh().await;
    let schema = ensure_table(&db.dest, "twice", &[property("email", "string"), property("amount", "number")]).await;
    let records: Vec<_> = (1..=3)
        .map(|i| record(i, "2026-01-01T10:00:00.000Z", &[("email", Some("e@x.io")), ("amount", Some("0.1"))]))
        .collect();
    let (batch, rejects) = batch_of(&schema, &records);
    let first = load(&db.dest, "twice", &batch, &rejects).await;
    let once = db.dest.read_table("twice").await.expect("read");
    let second = load(&db.dest, "twice", &batch, &rejects).await;
    assert_eq!(db.dest.read_table("twice").await.expect("read"), once);
    assert_eq!((first.written, first.skipped), (3, 0));
    assert_eq!((second.written, second.skipped), (0, 3), "a replay changes no row");
}

#[tokio::test]
async fn older_version_never_overwrites_newer() {
    let db = fresh().await;
    let schema = ensure_table(&db.dest, "versions", &[property("email", "string")]).await;
    let at = |ts: &str, email: &str| record(1, ts, &[("email", Some(email))]);
    let (b, r) = batch_of(&schema, &[at("2026-01-02T00:00:00.000Z", "new")]);
    load(&db.dest, "versions", &b, &r).await;
    // A millisecond older, out of order in a later batch: skipped.
    let (b, r) = batch_of(&schema, &[at("2026-01-01T23:59:59.999Z", "old")]);
    let outcome = load(&db.dest, "versions", &b, &r).await;
    assert_eq!((outcome.written, outcome.skipped), (0, 1));
    // Several versions in one batch, newest in the middle: the newest wins, once.
    let (b, r) = batch_of(
        &schema,
        &[
            at("2026-01-03T00:00:00.000Z", "mid"),
            at("2026-01-04T00:00:00.000Z", "newest"),
            at("2026-01-02T12:00:00.000Z", "older"),
        ],
    );
    let outcome = load(&db.dest, "versions", &b, &r).await;
    assert_eq!((outcome.written, outcome.skipped), (1, 2));
    let rows = db.dest.read_table("versions").await.expect("read");
    assert_eq!(rows.len(), 1);
    assert_eq!(row_of(&rows, 1).get("email"), Some(&Cell::Text("newest".into())));
    // Same cursor, same batch: the later row of the batch wins.
    let (b, r) =
        batch_of(&schema, &[at("2026-01-05T00:00:00.000Z", "first"), at("2026-01-05T00:00:00.000Z", "second")]);
    load(&db.dest, "versions", &b, &r).await;
    let rows = db.dest.read_table("versions").await.expect("read");
    assert_eq!(row_of(&rows, 1).get("email"), Some(&Cell::Text("second".into())));
}

#[tokio::test]
async fn stage_is_swept_after_a_crash_before_merge() {
    let db = fresh().await;
    let schema = ensure_table(&db.dest, "crash", &[property("email", "string")]).await;
    let (b, r) = batch_of(&schema, &[record(1, "2026-01-01T00:00:00.000Z", &[("email", Some("kept"))])]);
    load(&db.dest, "crash", &b, &r).await;
    let before = db.dest.read_table("crash").await.expect("read");
    let (b, _) = batch_of(&schema, &[record(1, "2026-02-01T00:00:00.000Z", &[("email", Some("lost"))])]);
    let stage = db.dest.stage("crash", &b).await.expect("stage");
    // The process dies: the destination goes away without merging.
    db.dest.close().await;
    drop(db.dest);

    let dest = SqliteDestination::connect(&db.url).await.expect("reconnect");
    dest.prepare().await.expect("prepare");
    assert_eq!(dest.stage_tables().await.expect("stages"), std::slice::from_ref(&stage.stage_table));
    assert_eq!(dest.sweep_stages().await.expect("sweep"), 1);
    assert_eq!(dest.sweep_stages().await.expect("sweep"), 0);
    assert!(dest.stage_tables().await.expect("stages").is_empty());
    assert_eq!(dest.read_table("crash").await.expect("read"), before);
    let _ = &db.dir;
}

#[tokio::test]
async fn six_hundred_property_table() {
    let db = fresh().await;
    let props: Vec<_> =
        (0..600).map(|i| property(&format!("p{i:03}"), if i % 2 == 0 { "string" } else { "number" })).collect();
    let schema = ensure_table(&db.dest, "wide", &props).await;
    assert_eq!(db.dest.describe("wide").await.expect("describe").expect("exists").len(), 607);
    let values: Vec<(String, String)> = (0..600).map(|i| (format!("p{i:03}"), format!("{i}.5"))).collect();
    let pairs: Vec<(&str, Option<&str>)> = values.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))).collect();
    // Enough rows to need several multi-row inserts (54 rows of 607 values each).
    let records: Vec<_> = (1..=200).map(|id| record(id, "2026-01-01T00:00:00.000Z", &pairs)).collect();
    let (b, r) = batch_of(&schema, &records);
    assert!(r.is_empty());
    let outcome = load(&db.dest, "wide", &b, &r).await;
    assert_eq!(outcome.written, 200);
    let rows = db.dest.read_table("wide").await.expect("read");
    assert_eq!(rows.len(), 200);
    assert_eq!(row_of(&rows, 200).get("p599"), Some(&Cell::Decimal("599.5".into())));
    assert_eq!(row_of(&rows, 1).get("p000"), Some(&Cell::Text("0.5".into())));
    // Same plan again: no drift.
    let existing = db.dest.describe("wide").await.expect("describe");
    assert!(diff("wide", &props, existing.as_deref(), &[], &Default::default(), db.dest.column_budget()).is_empty());
}

#[tokio::test]
async fn a_table_at_the_column_budget_overflows_and_merges() {
    let db = fresh().await;
    let props: Vec<_> = (0..1_950).map(|i| property(&format!("q{i:04}"), "string")).collect();
    let schema = ensure_table(&db.dest, "budget_wide", &props).await;
    assert_eq!(schema.overflow.len(), 50);
    let values: Vec<(String, String)> = (0..1_950).map(|i| (format!("q{i:04}"), format!("v{i}"))).collect();
    let pairs: Vec<(&str, Option<&str>)> = values.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))).collect();
    let (b, r) = batch_of(&schema, &[record(1, "2026-01-01T00:00:00.000Z", &pairs)]);
    load(&db.dest, "budget_wide", &b, &r).await;
    let (b, r) = batch_of(&schema, &[record(1, "2026-01-01T00:00:00.000Z", &pairs[..10])]);
    let outcome = load(&db.dest, "budget_wide", &b, &r).await;
    assert_eq!(outcome.written, 1, "same version, changed values: applied");
    let rows = db.dest.read_table("budget_wide").await.expect("read");
    assert_eq!(row_of(&rows, 1).get("q0000"), Some(&Cell::Text("v0".into())));
    assert_eq!(row_of(&rows, 1).get("q1899"), Some(&Cell::Null));
    assert_eq!(row_of(&rows, 1).get("_hsync_overflow"), Some(&Cell::Null));
}

#[tokio::test]
async fn exact_decimals_are_stored_as_text() {
    let db = fresh().await;
    let schema = ensure_table(&db.dest, "money", &[property("amount", "number")]).await;
    let cases = ["0.1", "12345678901234.56", "123456789012345678901234.56789", "100", "-0.000000000000000001"];
    let records: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, v)| record(i as u64 + 1, "2026-01-01T00:00:00.000Z", &[("amount", Some(*v))]))
        .collect();
    let (b, r) = batch_of(&schema, &records);
    load(&db.dest, "money", &b, &r).await;
    let pool = raw(&db).await;
    let stored = sqlx::query("select amount, typeof(amount) as kind from money order by id")
        .fetch_all(&pool)
        .await
        .expect("select");
    for (row, case) in stored.iter().zip(cases) {
        assert_eq!(row.get::<String, _>("kind"), "text", "{case}");
        assert_eq!(row.get::<String, _>("amount"), case);
    }
    let declared: String = sqlx::query_scalar("select type from pragma_table_info('money') where name = 'amount'")
        .fetch_one(&pool)
        .await
        .expect("type");
    assert_eq!(declared, "DECIMAL_TEXT");
}

#[tokio::test]
async fn timestamps_are_fixed_width_utc_text() {
    let db = fresh().await;
    let schema = ensure_table(
        &db.dest,
        "times",
        &[property("seen", "datetime"), property("day", "date"), property("ok", "bool")],
    )
    .await;
    let rec = record(
        1,
        "2026-03-29T02:30:00+01:00",
        &[("seen", Some("1774747800123")), ("day", Some("2026-03-29")), ("ok", Some("false"))],
    );
    let (b, r) = batch_of(&schema, &[rec]);
    load(&db.dest, "times", &b, &r).await;
    let pool = raw(&db).await;
    let row = sqlx::query("select seen, _hsync_cursor, _hsync_synced_at, day, ok, typeof(ok) as kind from times")
        .fetch_one(&pool)
        .await
        .expect("select");
    assert_eq!(row.get::<String, _>("seen"), "2026-03-29T01:30:00.123Z");
    assert_eq!(row.get::<String, _>("_hsync_cursor"), "2026-03-29T01:30:00.000Z");
    assert_eq!(row.get::<String, _>("_hsync_synced_at"), "2026-01-01T00:00:00.000Z");
    assert_eq!(row.get::<String, _>("day"), "2026-03-29");
    assert_eq!((row.get::<i64, _>("ok"), row.get::<String, _>("kind").as_str()), (0, "integer"));
}

#[tokio::test]
async fn widening_rebuilds_the_table_and_keeps_every_row() {
    let db = fresh().await;
    let before = [property("flag", "bool"), property("when", "date"), property("note", "string")];
    let schema = ensure_table(&db.dest, "widen", &before).await;
    let (b, r) = batch_of(
        &schema,
        &[
            record(
                1,
                "2026-01-01T00:00:00.000Z",
                &[("flag", Some("true")), ("when", Some("2026-01-31")), ("note", Some(""))],
            ),
            record(2, "2026-01-01T00:00:00.000Z", &[("flag", Some("false"))]),
        ],
    );
    load(&db.dest, "widen", &b, &r).await;
    let pool = raw(&db).await;
    sqlx::query("create view widen_flags as select id, flag from widen").execute(&pool).await.expect("view");
    sqlx::query("create index widen_by_note on widen (note)").execute(&pool).await.expect("index");

    let after = [property("flag", "string"), property("when", "datetime"), property("note", "string")];
    let existing = db.dest.describe("widen").await.expect("describe");
    let plan = diff("widen", &after, existing.as_deref(), &[], &Default::default(), db.dest.column_budget());
    assert_eq!(plan.changes.len(), 2, "{:?}", plan.changes);
    db.dest.alter(&plan).await.expect("alter");
    db.dest.alter(&plan).await.expect("alter twice is harmless");

    let described = db.dest.describe("widen").await.expect("describe").expect("exists");
    let ty = |name: &str| described.iter().find(|c| c.name == name).map(|c| c.ty);
    assert_eq!(
        (ty("flag"), ty("when"), ty("id")),
        (Some(ColumnType::Text), Some(ColumnType::Timestamp), Some(ColumnType::BigInt))
    );
    let rows = db.dest.read_table("widen").await.expect("read");
    assert_eq!(row_of(&rows, 1).get("flag"), Some(&Cell::Text("true".into())));
    assert_eq!(row_of(&rows, 2).get("flag"), Some(&Cell::Text("false".into())));
    assert_eq!(row_of(&rows, 1).get("when"), Some(&Cell::TimestampMs(1_769_817_600_000)));
    assert_eq!(row_of(&rows, 2).get("when"), Some(&Cell::Null));
    assert_eq!(row_of(&rows, 1).get("note"), Some(&Cell::Text(String::new())));
    let flags: Vec<String> = sqlx::query_scalar("select flag from widen_flags order by id")
        .fetch_all(&pool)
        .await
        .expect("view still works");
    assert_eq!(flags, ["true", "false"]);
    let indexes: Vec<String> = sqlx::query_scalar(
        "select name from sqlite_schema where type = 'index' and tbl_name = 'widen' and sql is not null",
    )
    .fetch_all(&pool)
    .await
    .expect("indexes");
    assert_eq!(indexes, ["widen_by_note"], "hand-made indexes are re-created");
    // The primary key survived: a replay still upserts.
    let outcome = load(&db.dest, "widen", &b.project(&[0, 1, 2]).expect("project"), &[]).await;
    assert_eq!((outcome.written, outcome.skipped), (0, 2));
    assert_eq!(db.dest.read_table("widen").await.expect("read").len(), 2);
    assert!(db.dest.describe("_hsync_rebuild_widen").await.expect("describe").is_none());
}

#[tokio::test]
async fn alter_never_drops_and_adds_only_missing_columns() {
    let db = fresh().await;
    ensure_table(&db.dest, "keep", &[property("a", "string"), property("b", "number")]).await;
    let existing = db.dest.describe("keep").await.expect("describe");
    let plan = diff(
        "keep",
        &[property("a", "string"), property("c", "bool")],
        existing.as_deref(),
        &[],
        &Default::default(),
        db.dest.column_budget(),
    );
    db.dest.alter(&plan).await.expect("alter");
    db.dest.alter(&plan).await.expect("alter again");
    let columns: Vec<ExistingColumn> = db.dest.describe("keep").await.expect("describe").expect("exists");
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    assert!(names.contains(&"b"), "a removed property's column stays: {names:?}");
    assert_eq!(names.iter().filter(|n| **n == "c").count(), 1);
}

#[tokio::test]
async fn rejects_are_not_doubled_by_a_replay() {
    let db = fresh().await;
    let schema = ensure_table(&db.dest, "bad", &[property("amount", "number")]).await;
    let (b, r) = batch_of(&schema, &[record(1, "2026-01-01T00:00:00.000Z", &[("amount", Some("1,5"))])]);
    load(&db.dest, "bad", &b, &r).await;
    load(&db.dest, "bad", &b, &r).await;
    let (b, r) = batch_of(&schema, &[record(1, "2026-01-02T00:00:00.000Z", &[("amount", Some("n/a"))])]);
    load(&db.dest, "bad", &b, &r).await;
    let stored = db.dest.read_rejects("bad").await.expect("rejects");
    let raws: Vec<&str> = stored.iter().map(|r| r.raw.as_str()).collect();
    assert_eq!(raws, ["1,5", "n/a"]);
}

/// Processes starting at once on one fresh file (a command beside `hsync status`, two
/// replicas) each prepare it: every prepare succeeds, none fails on another's migration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_prepares_of_a_fresh_file_all_succeed() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("hsync.db").display());
        let mut dests = Vec::new();
        for _ in 0..4 {
            dests.push(SqliteDestination::connect(&url).await.expect("connect"));
        }
        let mut preparing = tokio::task::JoinSet::new();
        for dest in dests {
            preparing.spawn(async move { dest.prepare().await });
        }
        for outcome in preparing.join_all().await {
            outcome.expect("every concurrent prepare succeeds");
        }
    }
}

/// The `<table>_live` view counts only the rows no flag marks, survives a widen rebuild and
/// shows a column drift added; `associations_live` leaves tombstoned edges out.
#[tokio::test]
async fn live_view_counts_live_rows_through_widen_and_drift() {
    use hsync::destination::{Edge, RowFlag};
    let db = fresh().await;
    let pool = raw(&db).await;
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.expect(sql) }
    };
    let before = [property("flag", "bool")];
    let schema = ensure_table(&db.dest, "deals", &before).await;
    let records: Vec<_> = (1..=4).map(|i| record(i, "2026-01-01T00:00:00.000Z", &[("flag", Some("true"))])).collect();
    let (b, r) = batch_of(&schema, &records);
    load(&db.dest, "deals", &b, &r).await;
    let flags = [
        RowFlag { id: 1, archived_at: Some(Some(1_767_000_000_000)), ..RowFlag::default() },
        RowFlag { id: 2, merged_into: Some(Some(4)), ..RowFlag::default() },
        RowFlag { id: 3, deleted_at: Some(Some(1_767_000_000_000)), ..RowFlag::default() },
    ];
    db.dest.flag("deals", &flags).await.expect("flag");
    assert_eq!(count("select count(*) from deals_live").await, 1);
    assert_eq!(count("select count(*) from deals").await, 4);

    // `flag` widens to text (a table rebuild) and `note` is added, in one plan.
    let after = [property("flag", "string"), property("note", "string")];
    let schema = ensure_table(&db.dest, "deals", &after).await;
    let (b, r) = batch_of(&schema, &[record(5, "2026-01-02T00:00:00.000Z", &[("note", Some("new"))])]);
    load(&db.dest, "deals", &b, &r).await;
    assert_eq!(count("select count(*) from deals_live").await, 2);
    let notes: Vec<Option<String>> =
        sqlx::query_scalar("select note from deals_live order by id").fetch_all(&pool).await.expect("note");
    assert_eq!(notes, [None, Some("new".to_owned())]);

    let edge = |to_id| Edge { from_id: 1, to_id, type_id: 1, category: "HUBSPOT_DEFINED".into(), label: None };
    db.dest.merge_edges("contacts", "companies", &[1], &[edge(10), edge(11)], 1).await.expect("edges");
    db.dest.merge_edges("contacts", "companies", &[1], &[edge(10)], 2).await.expect("edges");
    assert_eq!(count("select count(*) from associations_live").await, 1);
    assert_eq!(count("select count(*) from associations").await, 2);
    db.dest.prepare().await.expect("prepare again keeps the view");
    assert_eq!(count("select count(*) from associations_live").await, 1);
}

#[tokio::test]
async fn the_webhook_queue_stores_each_delivery_and_event_once() {
    let db = fresh().await;
    crate::support::webhook_queue_round_trip(&db.dest.state_store()).await;
}
