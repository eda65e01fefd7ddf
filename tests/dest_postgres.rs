//! The Postgres destination and state store against a real Postgres
//! (`HSYNC_TEST_DATABASE_URL`): the shared conformance suite, then what is particular to
//! Postgres or worth attacking directly: monotonic checkpoints, runs, snapshots and the budget
//! ledger, guarded merges, crash leftovers, COPY escaping, exact decimals, session time zones,
//! widening, concurrency and awkward names. Each test works in its own schemas, dropped when
//! it ends (also when it fails).

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{NaiveDate, TimeZone, Utc};
use hsync::destination::conformance::{self, batch_of, ensure_table, load, property, record, Cell, Inspect};
use hsync::destination::postgres::sql::{self, quote_ident};
use hsync::destination::postgres::PostgresStateStore;
use hsync::destination::postgres::{types, PostgresDestination};
use hsync::destination::{Destination, Error, MergeOutcome};
use hsync::hubspot::{BudgetRecord, BudgetStore};
use hsync::schema::{diff, hsync_columns, ColumnType};
use hsync::state::{Checkpoint, PropertySnapshot, RunStatus, StateStore, StreamId};
use serde_json::json;
use sqlx::{Connection, Row};

use crate::support::FreshPostgres;

/// A prepared destination in two fresh schemas, dropped with the guard.
struct Db {
    url: String,
    data: String,
    state: String,
    dest: PostgresDestination,
}

impl Db {
    /// Fresh schemas on the test database (`None`: Postgres unreachable outside CI, skipped).
    async fn new() -> Option<Db> {
        let fresh = FreshPostgres::create().await?;
        Some(Db::at(&fresh.url, &fresh.data_schema, &fresh.state_schema).await)
    }

    /// Schemas with names that need quoting (spaces, quotes, case, unicode).
    async fn awkward() -> Option<Db> {
        let fresh = FreshPostgres::create().await?;
        let suffix = format!("{:08x}", rand::random::<u32>());
        Some(Db::at(&fresh.url, &format!("Data \"ñ\" {suffix}"), &format!("State ñ {suffix}")).await)
    }

    async fn at(url: &str, data: &str, state: &str) -> Db {
        let dest = PostgresDestination::connect(url, data, state).await.expect("connect");
        let db = Db { url: url.to_owned(), data: data.to_owned(), state: state.to_owned(), dest };
        db.dest.prepare().await.expect("prepare");
        db
    }

    /// Another destination on the same schemas, through `url`.
    async fn reconnect(&self, url: &str) -> PostgresDestination {
        PostgresDestination::connect(url, &self.data, &self.state).await.expect("reconnect")
    }

    fn store(&self) -> PostgresStateStore {
        self.dest.state_store()
    }

    /// A data-schema table, quoted.
    fn table(&self, name: &str) -> String {
        format!("{}.{}", quote_ident(&self.data), quote_ident(name))
    }

    /// Runs `sql` on a connection of its own (to `url`); rows come back as they are.
    async fn raw(&self, url: &str, sql: String) -> Vec<sqlx::postgres::PgRow> {
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut conn).await.expect("raw query")
    }

    /// One text column of a raw query.
    async fn texts(&self, url: &str, sql: String) -> Vec<Option<String>> {
        self.raw(url, sql).await.iter().map(|r| r.get::<Option<String>, _>(0)).collect()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let (url, schemas) = (self.url.clone(), [self.data.clone(), self.state.clone()]);
        // A runtime of its own: this also runs while a failed test unwinds.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&url).await.map_err(|e| e.to_string())?;
                for schema in schemas {
                    let sql = format!("drop schema if exists {} cascade", quote_ident(&schema));
                    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.map_err(|e| e.to_string())?;
                }
                Ok::<_, String>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop the test schemas {:?} and {:?}: {e}", self.data, self.state),
            Err(_) => eprintln!("could not drop the test schemas {:?} and {:?}", self.data, self.state),
        }
    }
}

fn checkpoint(stream: &str, position: i64) -> Checkpoint {
    Checkpoint {
        stream: stream.parse().expect("a stream id"),
        position,
        state: json!({ "after": position, "note": "ünï" }),
    }
}

#[tokio::test]
async fn passes_the_conformance_suite() {
    let Some(db) = Db::new().await else { return };
    conformance::run_all(&db.dest).await;
}

#[tokio::test]
async fn passes_the_conformance_suite_with_schema_names_that_need_quoting() {
    let Some(db) = Db::awkward().await else { return };
    conformance::run_all(&db.dest).await;
}

#[tokio::test]
async fn checkpoints_only_move_forward() {
    let Some(db) = Db::new().await else { return };
    let store = db.store();
    assert_eq!(store.load_checkpoint(&StreamId::cdc("contacts")).await.unwrap(), None);
    assert!(store.commit_checkpoint(&checkpoint("cdc:contacts", 10)).await.unwrap());
    assert!(!store.commit_checkpoint(&checkpoint("cdc:contacts", 5)).await.unwrap(), "older is ignored");
    assert_eq!(store.load_checkpoint(&StreamId::cdc("contacts")).await.unwrap(), Some(checkpoint("cdc:contacts", 10)));
    let same = Checkpoint { state: json!({ "after": 10, "more": true }), ..checkpoint("cdc:contacts", 10) };
    assert!(store.commit_checkpoint(&same).await.unwrap(), "the same position is stored");
    assert_eq!(store.load_checkpoint(&StreamId::cdc("contacts")).await.unwrap(), Some(same));
    assert!(store.commit_checkpoint(&checkpoint("backfill:deals", -1)).await.unwrap());
    assert!(store.commit_checkpoint(&checkpoint("cdc:contacts", 20)).await.unwrap());
    let all = store.checkpoints().await.unwrap();
    assert_eq!(all, vec![checkpoint("backfill:deals", -1), checkpoint("cdc:contacts", 20)]);
}

#[tokio::test]
async fn a_merge_commits_its_checkpoint_with_the_same_monotonic_rule() {
    let Some(db) = Db::new().await else { return };
    let schema = ensure_table(&db.dest, "contacts", &[property("email", "string")]).await;
    let (batch, rejects) = batch_of(&schema, &[record(1, "2026-01-01T00:00:00Z", &[("email", Some("a@x.io"))])]);
    let stream = "backfill:contacts";
    db.store().commit_checkpoint(&checkpoint(stream, 50)).await.unwrap();
    let stage = db.dest.stage("contacts", &batch).await.unwrap();
    db.dest.merge(stage, &rejects, Some(&checkpoint(stream, 40))).await.unwrap();
    assert_eq!(db.store().load_checkpoint(&stream.parse().unwrap()).await.unwrap(), Some(checkpoint(stream, 50)));
    let stage = db.dest.stage("contacts", &batch).await.unwrap();
    db.dest.merge(stage, &rejects, Some(&checkpoint(stream, 60))).await.unwrap();
    assert_eq!(db.store().load_checkpoint(&stream.parse().unwrap()).await.unwrap(), Some(checkpoint(stream, 60)));
}

#[tokio::test]
async fn runs_are_recorded_and_listed_newest_first() {
    let Some(db) = Db::new().await else { return };
    let store = db.store();
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let first = store.start_run(&StreamId::cdc("contacts"), t0).await.unwrap();
    let second = store.start_run(&StreamId::cdc("deals"), t0 + chrono::Duration::minutes(1)).await.unwrap();
    assert_ne!(first, second);
    store.finish_run(first, t0 + chrono::Duration::seconds(30), RunStatus::Ok, 1_234, None).await.unwrap();
    store
        .finish_run(second, t0 + chrono::Duration::minutes(2), RunStatus::Failed, 0, Some("HubSpot said 500"))
        .await
        .unwrap();
    let runs = store.recent_runs(10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0].stream.to_string().as_str(), runs[0].status.as_str()), ("cdc:deals", "failed"));
    assert_eq!(runs[0].error.as_deref(), Some("HubSpot said 500"));
    assert_eq!(runs[1].rows, 1_234);
    assert_eq!(runs[1].started_at, t0);
    assert_eq!(runs[1].finished_at, Some(t0 + chrono::Duration::seconds(30)));
    assert_eq!(store.recent_runs(1).await.unwrap().len(), 1);
    assert!(store.recent_runs(-5).await.unwrap().is_empty());
    assert!(store.finish_run(first + second + 1_000, t0, RunStatus::Ok, 0, None).await.is_err(), "an unknown run");
}

#[tokio::test]
async fn property_snapshots_round_trip() {
    let Some(db) = Db::new().await else { return };
    let store = db.store();
    assert_eq!(store.load_snapshot("contacts").await.unwrap(), None);
    let properties = vec![
        serde_json::from_value(json!({
            "name": "favourite_colour", "label": "Favourite colour", "type": "enumeration",
            "fieldType": "checkbox", "groupName": "contactinformation", "hubspotDefined": false,
            "options": [{ "label": "Red", "value": "red" }, { "label": "Blue ñ", "value": "blue" }]
        }))
        .unwrap(),
        property("amount", "number"),
    ];
    let snapshot =
        PropertySnapshot { object: "contacts".to_owned(), properties, acknowledged_removed: vec!["legacy".to_owned()] };
    store.save_snapshot(&snapshot).await.unwrap();
    assert_eq!(store.load_snapshot("contacts").await.unwrap(), Some(snapshot.clone()));
    let changed =
        PropertySnapshot { acknowledged_removed: vec![], properties: vec![property("x", "bool")], ..snapshot };
    store.save_snapshot(&changed).await.unwrap();
    assert_eq!(store.load_snapshot("contacts").await.unwrap(), Some(changed));
    assert_eq!(store.load_snapshot("deals").await.unwrap(), None);
}

#[tokio::test]
async fn budget_records_round_trip_and_survive_a_new_connection() {
    let Some(db) = Db::new().await else { return };
    let store: Arc<dyn BudgetStore> = Arc::new(db.store());
    assert_eq!(store.load().await.unwrap(), None);
    let day = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
    store.save(BudgetRecord { day, reserved: 40 }).await.unwrap();
    store.save(BudgetRecord { day, reserved: 60 }).await.unwrap();
    let standalone = PostgresStateStore::connect(&db.url, &db.state).await.unwrap();
    assert_eq!(BudgetStore::load(&standalone).await.unwrap(), Some(BudgetRecord { day, reserved: 60 }));
    let next = BudgetRecord { day: day.succ_opt().unwrap(), reserved: 0 };
    BudgetStore::save(&standalone, next).await.unwrap();
    assert_eq!(store.load().await.unwrap(), Some(next));
    assert!(store.save(BudgetRecord { day, reserved: u64::MAX }).await.is_err(), "does not wrap");
}

#[tokio::test]
async fn migrations_land_in_the_state_schema_and_run_again_cleanly() {
    let Some(db) = Db::new().await else { return };
    db.store().migrate().await.unwrap();
    db.dest.prepare().await.unwrap();
    let tables = |schema: &str| {
        format!(
            "select tablename::text from pg_catalog.pg_tables where schemaname = '{}' order by 1",
            schema.replace('\'', "''")
        )
    };
    let state: Vec<_> = db.texts(&db.url, tables(&db.state)).await.into_iter().flatten().collect();
    assert_eq!(
        state,
        [
            "_sqlx_migrations",
            "budget",
            "checkpoints",
            "column_map",
            "property_snapshots",
            "runs",
            "webhook_deliveries",
            "webhook_events"
        ]
    );
    let data: Vec<_> = db.texts(&db.url, tables(&db.data)).await.into_iter().flatten().collect();
    assert_eq!(
        data,
        [
            "_hsync_rejects",
            "associations",
            "owners",
            "pipeline_stages",
            "pipelines",
            "property_history",
            "push_results"
        ]
    );
}

#[tokio::test]
async fn merging_a_batch_twice_equals_merging_it_once() {
    let Some(db) = Db::new().await else { return };
    let schema = ensure_table(&db.dest, "deals", &[property("amount", "number"), property("name", "string")]).await;
    let records: Vec<_> = (1..=5)
        .map(|i| record(i, "2026-01-01T00:00:00Z", &[("amount", Some("1.50")), ("name", Some(&format!("deal {i}")))]))
        .collect();
    let (batch, rejects) = batch_of(&schema, &records);
    let first = load(&db.dest, "deals", &batch, &rejects).await;
    assert_eq!(first, MergeOutcome { written: 5, skipped: 0 });
    let once = db.dest.read_table("deals").await.unwrap();
    let second = load(&db.dest, "deals", &batch, &rejects).await;
    assert_eq!(second.written + second.skipped, 5);
    assert_eq!(db.dest.read_table("deals").await.unwrap(), once);
    assert_eq!(once[0]["amount"], Cell::Decimal("1.5".into()));
}

#[tokio::test]
async fn an_older_version_never_overwrites_a_newer_one() {
    let Some(db) = Db::new().await else { return };
    let schema = ensure_table(&db.dest, "tickets", &[property("subject", "string")]).await;
    let (newer, _) = batch_of(&schema, &[record(1, "2026-02-01T00:00:00Z", &[("subject", Some("new"))])]);
    let (older, _) = batch_of(
        &schema,
        &[
            record(1, "2026-01-01T00:00:00Z", &[("subject", Some("old"))]),
            record(2, "2026-01-01T00:00:00Z", &[("subject", Some("two-old"))]),
            record(2, "2026-01-03T00:00:00Z", &[("subject", Some("two-new"))]),
            record(2, "2026-01-02T00:00:00Z", &[("subject", Some("two-middle"))]),
        ],
    );
    assert_eq!(load(&db.dest, "tickets", &newer, &[]).await.written, 1);
    let outcome = load(&db.dest, "tickets", &older, &[]).await;
    assert_eq!(outcome, MergeOutcome { written: 1, skipped: 3 }, "id 1 is older; id 2 keeps its newest");
    let rows = db.dest.read_table("tickets").await.unwrap();
    assert_eq!(rows[0]["subject"], Cell::Text("new".into()));
    assert_eq!(rows[1]["subject"], Cell::Text("two-new".into()));
    // An older partial batch touches nothing either.
    let (partial, _) = batch_of(&schema, &[record(1, "2026-01-15T00:00:00Z", &[("subject", Some("stale"))])]);
    let keep: Vec<usize> = [hsync_columns::ID, hsync_columns::CURSOR, "subject"]
        .iter()
        .map(|c| partial.schema().index_of(c).unwrap())
        .collect();
    let outcome = load(&db.dest, "tickets", &partial.project(&keep).unwrap(), &[]).await;
    assert_eq!(outcome, MergeOutcome { written: 0, skipped: 1 });
    assert_eq!(db.dest.read_table("tickets").await.unwrap(), rows);
}

#[tokio::test]
async fn a_stage_left_by_a_crash_is_swept_and_never_merged() {
    let Some(db) = Db::new().await else { return };
    let schema = ensure_table(&db.dest, "companies", &[property("domain", "string")]).await;
    let (first, _) = batch_of(&schema, &[record(1, "2026-01-01T00:00:00Z", &[("domain", Some("a.io"))])]);
    load(&db.dest, "companies", &first, &[]).await;
    let before = db.dest.read_table("companies").await.unwrap();

    // A second process stages a batch and dies before merging.
    let crashing = db.reconnect(&db.url).await;
    let (batch, _) = batch_of(
        &schema,
        &[
            record(1, "2026-02-01T00:00:00Z", &[("domain", Some("b.io"))]),
            record(2, "2026-02-01T00:00:00Z", &[("domain", Some("c.io"))]),
        ],
    );
    let stage = crashing.stage("companies", &batch).await.unwrap();
    assert_eq!(stage.rows, 2);
    crashing.close().await;
    drop(crashing);

    let restarted = db.reconnect(&db.url).await;
    assert_eq!(restarted.stage_tables().await.unwrap(), vec![stage.stage_table.clone()]);
    assert_eq!(restarted.read_table("companies").await.unwrap(), before, "staged rows are invisible");
    assert_eq!(restarted.sweep_stages().await.unwrap(), 1);
    assert!(restarted.stage_tables().await.unwrap().is_empty());
    assert_eq!(restarted.sweep_stages().await.unwrap(), 0);
    assert_eq!(restarted.read_table("companies").await.unwrap(), before);
    assert!(restarted.merge(stage, &[], Some(&checkpoint("cdc:companies", 9))).await.is_err(), "the stage is gone");
    assert_eq!(db.store().load_checkpoint(&StreamId::cdc("companies")).await.unwrap(), None);
}

#[tokio::test]
async fn a_stage_emptied_by_crash_recovery_is_not_merged_and_commits_no_checkpoint() {
    let Some(db) = Db::new().await else { return };
    let schema = ensure_table(&db.dest, "contacts", &[property("email", "string")]).await;
    let (batch, _) = batch_of(&schema, &[record(1, "2026-01-01T00:00:00Z", &[("email", Some("a@x.io"))])]);
    let stage = db.dest.stage("contacts", &batch).await.unwrap();
    // Postgres truncates unlogged tables when it recovers from a crash.
    let stage_table = format!("{}.{}", quote_ident(&db.state), quote_ident(&stage.stage_table));
    db.raw(&db.url, format!("truncate {stage_table}")).await;
    let err = db.dest.merge(stage, &[], Some(&checkpoint("cdc:contacts", 1))).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert_eq!(db.store().load_checkpoint(&StreamId::cdc("contacts")).await.unwrap(), None);
    assert!(db.dest.read_table("contacts").await.unwrap().is_empty());
    assert!(db.dest.stage_tables().await.unwrap().is_empty(), "the failed stage is dropped");
}

#[tokio::test]
async fn six_hundred_properties_of_every_type_round_trip() {
    let Some(db) = Db::new().await else { return };
    let kinds = [
        ("string", "v\tw"),
        ("number", "12345678901234.56"),
        ("bool", "false"),
        ("date", "2026-01-31"),
        ("datetime", "2026-01-31T23:59:59.999Z"),
        ("json", "{\"a\": [1, 2]}"),
    ];
    let props: Vec<_> = (0..600).map(|i| property(&format!("p_{i:03}"), kinds[i % kinds.len()].0)).collect();
    let schema = ensure_table(&db.dest, "wide", &props).await;
    let described = db.dest.describe("wide").await.unwrap().unwrap();
    assert_eq!(described.len(), 607);
    assert!(diff("wide", &props, Some(&described), &[], &Default::default(), db.dest.column_budget()).is_empty());
    let values: Vec<(String, String)> =
        (0..600).map(|i| (format!("p_{i:03}"), kinds[i % kinds.len()].1.to_owned())).collect();
    let pairs: Vec<(&str, Option<&str>)> = values.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))).collect();
    let records: Vec<_> = (1..=50).map(|id| record(id, "2026-01-01T00:00:00Z", &pairs)).collect();
    let (batch, rejects) = batch_of(&schema, &records);
    assert!(rejects.is_empty());
    assert_eq!(load(&db.dest, "wide", &batch, &rejects).await.written, 50);
    let rows = db.dest.read_table("wide").await.unwrap();
    assert_eq!(rows.len(), 50);
    let row = &rows[49];
    assert_eq!(row["p_000"], Cell::Text("v\tw".into()));
    assert_eq!(row["p_001"], Cell::Decimal("12345678901234.56".into()));
    assert_eq!(row["p_002"], Cell::Bool(false));
    assert_eq!(row["p_003"], Cell::Date("2026-01-31".into()));
    assert_eq!(row["p_004"], Cell::TimestampMs(1_769_903_999_999));
    assert_eq!(row["p_005"], Cell::Json(json!({ "a": [1, 2] })));
    assert_eq!(row["p_595"], Cell::Decimal("12345678901234.56".into()));
}

#[tokio::test]
async fn decimals_are_stored_exactly() {
    let Some(db) = Db::new().await else { return };
    let schema = ensure_table(&db.dest, "money", &[property("amount", "number")]).await;
    let cases = [
        "0.1",
        "12345678901234.56",
        "123456789012345678901234.567891",
        "-0.000000000000000001",
        "99999999999999999999999999999999999999",
        "0",
    ];
    let records: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, v)| record(i as u64 + 1, "2026-01-01T00:00:00Z", &[("amount", Some(*v))]))
        .collect();
    let (batch, rejects) = batch_of(&schema, &records);
    assert!(rejects.is_empty(), "{rejects:?}");
    load(&db.dest, "money", &batch, &[]).await;
    let stored = db.texts(&db.url, format!("select amount::text from {} order by id", db.table("money"))).await;
    let stored: Vec<_> = stored.into_iter().flatten().collect();
    assert_eq!(stored, cases);
    let sum =
        db.texts(&db.url, format!("select (sum(amount) - 0.1)::text from {} where id <= 2", db.table("money"))).await;
    assert_eq!(sum, [Some("12345678901234.56".to_owned())], "arithmetic stays exact");
}

/// A connection whose session time zone is New York (sqlx starts every session in UTC, so
/// the pool cannot be made to use another zone; the generated SQL and COPY text run here).
async fn new_york_session(url: &str) -> sqlx::PgConnection {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query("set timezone = 'America/New_York'").execute(&mut conn).await.expect("set timezone");
    let zone: String = sqlx::query_scalar("show timezone").fetch_one(&mut conn).await.expect("show timezone");
    assert_eq!(zone, "America/New_York");
    conn
}

async fn run_on(conn: &mut sqlx::PgConnection, sql: String) {
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *conn).await.expect("statement");
}

#[tokio::test]
async fn instants_do_not_depend_on_the_session_time_zone() {
    let Some(db) = Db::new().await else { return };
    let schema = ensure_table(&db.dest, "events", &[property("seen", "datetime"), property("day", "date")]).await;
    let rec = record(
        1,
        "2026-03-08T07:30:00.250Z",
        &[("seen", Some("2026-03-08T06:59:59.999Z")), ("day", Some("2026-03-08"))],
    );
    let (batch, _) = batch_of(&schema, &[rec]);
    // Stage and merge exactly as the destination does, on a New York session.
    let mut ny = new_york_session(&db.url).await;
    let columns: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
    let stage = sql::stage_table_name("events", 1);
    run_on(&mut ny, sql::render_create_stage(&db.state, &stage, &db.data, "events", &columns)).await;
    let mut copy = ny.copy_in_raw(&sql::render_copy(&db.state, &stage, &columns)).await.expect("copy");
    copy.send(types::encode_copy_text(&batch).expect("encode")).await.expect("send");
    assert_eq!(copy.finish().await.expect("finish"), 1);
    run_on(&mut ny, sql::render_merge(&db.data, "events", &db.state, &stage, &columns)).await;
    run_on(&mut ny, sql::render_drop_table(&db.state, &stage)).await;

    let utc: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "select to_char(seen at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') || ' ' || \
         to_char(_hsync_cursor at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') || ' ' || day::text from {}",
        db.table("events")
    )))
    .fetch_one(&mut ny)
    .await
    .expect("read");
    assert_eq!(utc, "2026-03-08 06:59:59.999 2026-03-08 07:30:00.250 2026-03-08");
    let rows = db.dest.read_table("events").await.unwrap();
    assert_eq!(rows[0]["seen"], Cell::TimestampMs(1_772_953_199_999));
    assert_eq!(rows[0]["day"], Cell::Date("2026-03-08".into()));
    // The guard compares instants, not text: 02:30 at -04:00 is an hour before the stored 07:30Z.
    let older = record(1, "2026-03-08T02:30:00.250-04:00", &[("seen", Some("2020-01-01T00:00:00Z"))]);
    let (batch, _) = batch_of(&schema, &[older]);
    assert_eq!(load(&db.dest, "events", &batch, &[]).await.skipped, 1);
    assert_eq!(db.dest.read_table("events").await.unwrap(), rows);
}

#[tokio::test]
async fn widening_keeps_every_value_whatever_the_session_time_zone() {
    let Some(db) = Db::new().await else { return };
    let before =
        [property("flag", "bool"), property("day", "date"), property("seen", "datetime"), property("n", "number")];
    let schema = ensure_table(&db.dest, "deals", &before).await;
    let rec = record(
        1,
        "2026-01-01T00:00:00Z",
        &[
            ("flag", Some("true")),
            ("day", Some("2026-01-31")),
            ("seen", Some("2026-01-31T23:00:00.5Z")),
            ("n", Some("0.10")),
        ],
    );
    let (batch, _) = batch_of(&schema, &[rec]);
    load(&db.dest, "deals", &batch, &[]).await;
    let after =
        [property("flag", "string"), property("day", "datetime"), property("seen", "string"), property("n", "string")];
    let existing = db.dest.describe("deals").await.unwrap();
    let mut plan = diff("deals", &after, existing.as_deref(), &[], &Default::default(), db.dest.column_budget());
    assert_eq!(plan.incompatible().count(), 0);
    // As the schema engine plans it: the live view is dropped around the widen and made again.
    let view = db.dest.describe(&hsync::schema::live_view_name("deals")).await.unwrap();
    hsync::schema::plan_live_view(&mut plan, existing.as_deref(), view.as_deref());
    // The statements `alter` runs, on a New York session.
    let mut ny = new_york_session(&db.url).await;
    let statements = sql::render_plan(&db.data, &plan);
    assert_eq!(statements.len(), 6, "drop the view, four widens, create the view: {statements:?}");
    for statement in statements {
        run_on(&mut ny, statement).await;
    }
    let described = db.dest.describe("deals").await.unwrap().unwrap();
    let ty = |name: &str| described.iter().find(|c| c.name == name).unwrap().ty;
    assert_eq!(
        (ty("flag"), ty("day"), ty("seen"), ty("n")),
        (ColumnType::Text, ColumnType::Timestamp, ColumnType::Text, ColumnType::Text)
    );
    let row = &db.dest.read_table("deals").await.unwrap()[0];
    assert_eq!(row["flag"], Cell::Text("true".into()));
    assert_eq!(row["day"], Cell::TimestampMs(1_769_817_600_000), "midnight UTC, not New York");
    assert_eq!(row["seen"], Cell::Text("2026-01-31T23:00:00.500Z".into()));
    assert_eq!(row["n"], Cell::Text("0.1".into()));
    assert!(diff("deals", &after, Some(&described), &[], &Default::default(), db.dest.column_budget()).is_empty());
}

#[tokio::test]
async fn alter_applies_a_whole_plan_or_nothing() {
    let Some(db) = Db::new().await else { return };
    ensure_table(&db.dest, "deals", &[property("flag", "bool")]).await;
    // A view on the column makes the widening fail; the column added before it must not stay.
    db.raw(&db.url, format!("create view {} as select flag from {}", db.table("deals_view"), db.table("deals"))).await;
    let props = [property("flag", "string"), property("added", "string")];
    let existing = db.dest.describe("deals").await.unwrap();
    let mut plan = diff("deals", &props, existing.as_deref(), &[], &Default::default(), db.dest.column_budget());
    plan.changes.sort_by_key(|c| !matches!(c, hsync::schema::Change::AddColumn { .. }));
    let err = db.dest.alter(&plan).await.unwrap_err();
    assert!(matches!(err, Error::Schema { .. }), "{err}");
    let after = db.dest.describe("deals").await.unwrap().unwrap();
    assert!(after.iter().all(|c| c.name != "added"), "rolled back: {after:?}");
}

#[tokio::test]
async fn concurrent_merges_into_different_tables_commit_their_own_checkpoints() {
    let Some(db) = Db::new().await else { return };
    let a = ensure_table(&db.dest, "par_a", &[property("email", "string")]).await;
    let b = ensure_table(&db.dest, "par_b", &[property("email", "string")]).await;
    let rows = |n: u64| -> Vec<_> {
        (1..=n).map(|i| record(i, "2026-01-01T00:00:00Z", &[("email", Some(&format!("{i}@x.io")))])).collect()
    };
    let (ba, _) = batch_of(&a, &rows(500));
    let (bb, _) = batch_of(&b, &rows(400));
    let run = |table: &'static str, batch: RecordBatch, position: i64| {
        let dest = &db.dest;
        async move {
            let stage = dest.stage(table, &batch).await.unwrap();
            dest.merge(stage, &[], Some(&checkpoint(&format!("backfill:{table}"), position))).await.unwrap()
        }
    };
    let (oa, ob) = tokio::join!(run("par_a", ba, 500), run("par_b", bb, 400));
    assert_eq!((oa.written, ob.written), (500, 400));
    let store = db.store();
    assert_eq!(store.load_checkpoint(&StreamId::backfill("par_a")).await.unwrap().unwrap().position, 500);
    assert_eq!(store.load_checkpoint(&StreamId::backfill("par_b")).await.unwrap().unwrap().position, 400);
    assert_eq!(db.dest.read_table("par_a").await.unwrap().len(), 500);
    assert_eq!(db.dest.read_table("par_b").await.unwrap().len(), 400);
}

#[tokio::test]
async fn reserved_words_unicode_and_quotes_work_as_table_and_column_names() {
    let Some(db) = Db::awkward().await else { return };
    let names = ["order", "user", "default", "select", "MixedCase", "ñandú", "has\"quote", "Spaced Out"];
    let props: Vec<_> = names.iter().map(|n| property(n, "string")).collect();
    for table in ["order", "User \"Ñ\""] {
        let schema = ensure_table(&db.dest, table, &props).await;
        let pairs: Vec<(&str, Option<&str>)> = names.iter().map(|n| (*n, Some(*n))).collect();
        let (batch, _) = batch_of(&schema, &[record(3, "2026-01-01T00:00:00Z", &pairs)]);
        load(&db.dest, table, &batch, &[]).await;
        let rows = db.dest.read_table(table).await.unwrap();
        for n in names {
            assert_eq!(rows[0][n], Cell::Text(n.to_owned()), "{table}.{n}");
        }
        let existing = db.dest.describe(table).await.unwrap();
        assert!(diff(table, &props, existing.as_deref(), &[], &Default::default(), db.dest.column_budget()).is_empty());
    }
}

#[tokio::test]
async fn text_survives_copy_escaping_and_empty_is_not_null() {
    let Some(db) = Db::new().await else { return };
    let schema = ensure_table(&db.dest, "notes", &[property("body", "string")]).await;
    let cases = [
        "back\\slash",
        "tab\there",
        "line\nbreak",
        "carriage\rreturn",
        "\\N",
        "\\.",
        "\n\\.\n",
        "",
        "ünïcödé 🎉 ñandú",
        "\u{7}bell\u{8}",
        "'quotes\" and ; drop table x; --",
    ];
    let mut records: Vec<_> = cases
        .iter()
        .enumerate()
        .map(|(i, v)| record(i as u64 + 1, "2026-01-01T00:00:00Z", &[("body", Some(*v))]))
        .collect();
    records.push(record(100, "2026-01-01T00:00:00Z", &[("body", None)]));
    records.push(record(101, "2026-01-01T00:00:00Z", &[("body", Some("nul\0byte"))]));
    let (batch, _) = batch_of(&schema, &records);
    load(&db.dest, "notes", &batch, &[]).await;
    let stored = db.texts(&db.url, format!("select body from {} order by id", db.table("notes"))).await;
    let mut expected: Vec<Option<String>> = cases.iter().map(|c| Some((*c).to_owned())).collect();
    expected.push(None);
    expected.push(Some("nul\u{FFFD}byte".to_owned()));
    assert_eq!(stored, expected);
}

#[tokio::test]
async fn rejects_are_stored_with_raw_values_even_odd_ones() {
    let Some(db) = Db::new().await else { return };
    let schema = ensure_table(&db.dest, "contacts", &[property("age", "number")]).await;
    let records = [
        record(1, "2026-01-01T00:00:00Z", &[("age", Some("forty\ttwo\n"))]),
        record(2, "2026-01-01T00:00:00Z", &[("age", Some("nul\0"))]),
    ];
    let (batch, rejects) = batch_of(&schema, &records);
    assert_eq!(rejects.len(), 2);
    load(&db.dest, "contacts", &batch, &rejects).await;
    let stored = db.dest.read_rejects("contacts").await.unwrap();
    let raws: Vec<_> = stored.iter().map(|r| r.raw.as_str()).collect();
    // A NUL, which Postgres text cannot hold, is kept as its JSON escape: the raw value stays exact.
    assert!(raws.contains(&"forty\ttwo\n") && raws.contains(&r"nul\u0000"), "{raws:?}");
    assert!(db.dest.read_rejects("deals").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_value_postgres_refuses_fails_the_stage_without_showing_the_value() {
    let Some(db) = Db::new().await else { return };
    let schema = ensure_table(&db.dest, "contacts", &[property("email", "string")]).await;
    let (batch, _) = batch_of(&schema, &[record(1, "2026-01-01T00:00:00Z", &[("email", Some("a@x.io"))])]);
    // A hand-made batch whose overflow column is not JSON.
    let fields = vec![
        Field::new("id", DataType::Int64, false),
        Field::new("_hsync_cursor", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), true),
        Field::new("_hsync_overflow", DataType::Utf8, true),
    ];
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1])),
        Arc::new(TimestampMillisecondArray::from(vec![0]).with_timezone("UTC")),
        Arc::new(StringArray::from(vec!["secret-value{"])),
    ];
    let bad = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    let err = db.dest.stage("contacts", &bad).await.unwrap_err();
    assert!(matches!(err, Error::Schema { .. }), "{err}");
    assert!(!err.to_string().contains("secret-value"), "{err}");
    assert!(db.dest.stage_tables().await.unwrap().is_empty(), "a failed stage leaves nothing");
    // The good batch still loads.
    assert_eq!(load(&db.dest, "contacts", &batch, &[]).await.written, 1);
}

#[tokio::test]
async fn a_column_of_a_type_hsync_does_not_write_is_a_schema_error() {
    let Some(db) = Db::new().await else { return };
    ensure_table(&db.dest, "contacts", &[property("email", "string")]).await;
    db.raw(&db.url, format!("alter table {} add column score integer", db.table("contacts"))).await;
    let err = db.dest.describe("contacts").await.unwrap_err();
    assert!(matches!(err, Error::Schema { .. }), "{err}");
    assert!(err.to_string().contains("score"), "{err}");
}

#[tokio::test]
async fn unusable_settings_are_refused_before_anything_is_written() {
    let Some(db) = Db::new().await else { return };
    let same = PostgresDestination::connect(&db.url, "hsync", "hsync").await.unwrap_err();
    assert!(matches!(same, Error::Config(_)), "{same}");
    let long = "s".repeat(64);
    assert!(matches!(PostgresDestination::connect(&db.url, &long, "hsync").await, Err(Error::Config(_))));
    assert!(matches!(PostgresDestination::connect("mysql://x", "a", "b").await, Err(Error::Config(_))));
    let refused =
        PostgresDestination::connect("postgres://hsync:hunter2@127.0.0.1:1/test", "a", "b").await.unwrap_err();
    assert!(matches!(refused, Error::Unavailable { .. }), "{refused}");
    assert!(!refused.to_string().contains("hunter2"), "{refused}");
    let long_table = "t".repeat(64);
    assert!(matches!(db.dest.describe(&long_table).await, Err(Error::Schema { .. })));
    let schema = ensure_table(&db.dest, "contacts", &[property("email", "string")]).await;
    let (batch, _) = batch_of(&schema, &[record(1, "2026-01-01T00:00:00Z", &[])]);
    let no_cursor = batch.project(&[0, 2]).unwrap();
    assert!(matches!(db.dest.stage("contacts", &no_cursor).await, Err(Error::Schema { .. })));
    assert!(format!("{:?}", db.dest).contains(&db.data));
}

/// Processes starting at once (the two-replica manifest, a command beside `hsync status`) each
/// prepare the same fresh schemas: every prepare succeeds, none trips over another's
/// `create schema`/`create table` (a duplicate key in the catalog).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_prepares_of_fresh_schemas_all_succeed() {
    for _ in 0..3 {
        let Some(fresh) = FreshPostgres::create().await else { return };
        let mut preparing = tokio::task::JoinSet::new();
        let mut dests = Vec::new();
        for _ in 0..6 {
            let dest = PostgresDestination::connect(&fresh.url, &fresh.data_schema, &fresh.state_schema).await;
            dests.push(dest.expect("connect"));
        }
        for dest in dests {
            preparing.spawn(async move { dest.prepare().await });
        }
        let outcomes = preparing.join_all().await;
        fresh.drop_schemas().await;
        for outcome in outcomes {
            outcome.expect("every concurrent prepare succeeds");
        }
    }
}

/// The `<table>_live` view, in a schema whose name needs quoting: it counts only the rows no
/// flag marks, is dropped and re-created around a widen (Postgres refuses to change the type of
/// a column a view uses) and shows a column drift added; `associations_live` leaves tombstoned
/// edges out.
#[tokio::test]
async fn live_view_counts_live_rows_through_widen_and_drift() {
    use hsync::destination::{Edge, RowFlag};
    let Some(db) = Db::awkward().await else { return };
    let db = &db;
    let count = |relation: &str| {
        let sql = format!("select count(*)::text from {}", db.table(relation));
        async move { db.texts(&db.url, sql).await[0].clone().expect("a count") }
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
    assert_eq!((count("deals_live").await, count("deals").await), ("1".to_owned(), "4".to_owned()));

    let after = [property("flag", "string"), property("note", "string")];
    let schema = ensure_table(&db.dest, "deals", &after).await;
    let (b, r) = batch_of(&schema, &[record(5, "2026-01-02T00:00:00.000Z", &[("note", Some("new"))])]);
    load(&db.dest, "deals", &b, &r).await;
    assert_eq!(count("deals_live").await, "2");
    let notes = db.texts(&db.url, format!("select note from {} order by id", db.table("deals_live"))).await;
    assert_eq!(notes, [None, Some("new".to_owned())]);
    let flag = db.texts(&db.url, format!("select flag from {} where id = 4", db.table("deals_live"))).await;
    assert_eq!(flag, [Some("true".to_owned())], "the widened column, as text, in the view");

    let edge = |to_id| Edge { from_id: 1, to_id, type_id: 1, category: "HUBSPOT_DEFINED".into(), label: None };
    db.dest.merge_edges("contacts", "companies", &[1], &[edge(10), edge(11)], 1).await.expect("edges");
    db.dest.merge_edges("contacts", "companies", &[1], &[edge(10)], 2).await.expect("edges");
    assert_eq!((count("associations_live").await, count("associations").await), ("1".to_owned(), "2".to_owned()));
}

#[tokio::test]
async fn the_webhook_queue_stores_each_delivery_and_event_once() {
    let Some(db) = Db::new().await else { return };
    crate::support::webhook_queue_round_trip(&db.store()).await;
}
