//! The sync engine end to end: backfill and CDC from the simulator over HTTP into real SQLite
//! and real Postgres, compared with the simulator's ground truth (zero differences required).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hsync::destination::conformance::{Cell, Inspect};
use hsync::destination::Destination;
use hsync::hubspot::resolve_objects;
use hsync::schema::{column_name, format_decimal, parse_value, ColumnType, ParsedValue};
use hsync::state::StateStore;
use hsync::stream::runner::{PropertyFilter, Runner};
use hsync::stream::{backfill, cdc};
use hsync_sim::PortalSpec;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::support::Sim;

const OBJECTS: [&str; 5] = ["contacts", "companies", "deals", "tickets", "cars"];

/// Backfills every object, fetching pages as `fetch` says.
async fn backfill_all<D: Destination, S: StateStore>(runner: &Runner<D, S>, fetch: backfill::Fetch) {
    let names: Vec<String> = OBJECTS.iter().map(|s| (*s).to_owned()).collect();
    for object in resolve_objects(&runner.client, &names).await.unwrap() {
        let table = runner.prepare(&object).await.unwrap();
        let report = crate::support::backfill_with(runner, &table, backfill::Mode::Fresh, fetch).await;
        assert!(report.finished);
    }
}

/// One CDC pass per object, `walkers` ranges at most (1 keeps the pass in cursor order).
async fn cdc_all<D: Destination, S: StateStore>(runner: &Runner<D, S>, settle: Duration, walkers: usize) -> u64 {
    let names: Vec<String> = OBJECTS.iter().map(|s| (*s).to_owned()).collect();
    let never = CancellationToken::new();
    let mut rows = 0;
    for object in resolve_objects(&runner.client, &names).await.unwrap() {
        let table = runner.prepare(&object).await.unwrap();
        rows += cdc::pass(runner, &table, settle, walkers, &never).await.unwrap().rows;
    }
    rows
}

/// The cell a HubSpot value `raw` becomes in a column of type `ty`.
pub(crate) fn expected_cell(ty: ColumnType, raw: Option<&str>) -> Cell {
    let Some(raw) = raw else { return Cell::Null };
    match parse_value(ty, raw).map(|parsed| parsed.value) {
        Ok(ParsedValue::Null) | Err(_) => Cell::Null,
        Ok(ParsedValue::Text(s)) => Cell::Text(s.into_owned()),
        Ok(ParsedValue::Json(s)) => Cell::Json(serde_json::from_str(&s).unwrap()),
        Ok(ParsedValue::Decimal(d)) => Cell::Decimal(format_decimal(d)),
        Ok(ParsedValue::Boolean(b)) => Cell::Bool(b),
        Ok(ParsedValue::Date(days)) => Cell::Date(
            (chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(i64::from(days)))
                .to_string(),
        ),
        Ok(ParsedValue::Timestamp(ms)) => Cell::TimestampMs(ms),
        Ok(ParsedValue::BigInt(i)) => Cell::Int(i),
    }
}

/// Every difference between the warehouse and the simulator's ground truth, as readable lines.
pub(crate) async fn differences<D: Inspect>(dest: &D, sim: &Sim) -> Vec<String> {
    differences_in(dest, sim, &OBJECTS).await
}

/// [`differences`] over the tables of `objects`.
pub(crate) async fn differences_in<D: Inspect>(dest: &D, sim: &Sim, objects: &[&str]) -> Vec<String> {
    let truth = sim.admin(Method::GET, "/_sim/truth", None).await.1;
    let mut out = Vec::new();
    for &object in objects {
        let Some(columns) = dest.describe(object).await.unwrap() else {
            out.push(format!("{object}: no table"));
            continue;
        };
        let types: BTreeMap<String, ColumnType> = columns.iter().map(|c| (c.name.clone(), c.ty)).collect();
        let rows = dest.read_table(object).await.unwrap();
        let by_id: BTreeMap<i64, &BTreeMap<String, Cell>> = rows
            .iter()
            .map(|r| match r.get("id") {
                Some(Cell::Int(id)) => (*id, r),
                other => panic!("row without an id: {other:?}"),
            })
            .collect();
        let live = truth["objects"][object]["live"].as_array().unwrap();
        let live_ids: BTreeSet<i64> = live.iter().map(|r| r["id"].as_str().unwrap().parse().unwrap()).collect();
        // A row of a record that is not live must carry a flag (archived, merged or deleted).
        let flagged = |row: &BTreeMap<String, Cell>| {
            ["_hsync_archived_at", "_hsync_merged_into", "_hsync_deleted_at"]
                .iter()
                .any(|f| row.get(*f).is_some_and(|c| *c != Cell::Null))
        };
        for (id, _) in by_id.iter().filter(|(id, row)| !live_ids.contains(id) && !flagged(row)) {
            out.push(format!("{object} {id}: in the warehouse, not live in HubSpot and not flagged"));
        }
        for rec in live {
            let id: i64 = rec["id"].as_str().unwrap().parse().unwrap();
            let Some(row) = by_id.get(&id) else {
                out.push(format!("{object} {id}: missing"));
                continue;
            };
            let props = rec["properties"].as_object().unwrap();
            for (column, ty) in &types {
                if column.starts_with("_hsync_") || column == "id" {
                    continue;
                }
                let property = props.keys().find(|p| column_name(p) == *column);
                let raw = property.and_then(|p| props[p].as_str());
                let expected = expected_cell(*ty, raw);
                let actual = row.get(column).cloned().unwrap_or(Cell::Null);
                if expected != actual {
                    out.push(format!("{object} {id} {column}: expected {expected:?}, found {actual:?}"));
                }
            }
            if row.get("_hsync_archived_at") != Some(&Cell::Null) {
                out.push(format!("{object} {id}: live in HubSpot but flagged archived"));
            }
        }
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

async fn touch(sim: &Sim, object: &str, body: Value) -> Value {
    let (status, reply) = sim.admin(Method::POST, &format!("/_sim/objects/{object}/touch"), Some(&body)).await;
    assert!(status.is_success(), "{reply}");
    reply
}

pub(crate) async fn scenario<D: Inspect, S: StateStore>(sim: &Sim, runner: &Runner<D, S>, fetch: backfill::Fetch) {
    backfill_all(runner, fetch).await;
    assert_no_differences(&differences(&runner.dest, sim).await);

    // Changes after the backfill: a bulk update on one millisecond (walked by id), spread
    // updates, a new record, a property written to an empty string.
    touch(sim, "contacts", json!({"count": 450})).await;
    touch(sim, "deals", json!({"count": 40, "spreadMs": 500})).await;
    let (status, _) = sim
        .admin(
            Method::POST,
            "/_sim/objects/companies",
            Some(&json!({"properties": {"name": "Né Company", "city": ""}})),
        )
        .await;
    assert!(status.is_success());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let read = cdc_all(runner, Duration::from_secs(1), backfill::DEFAULT_CONCURRENCY).await;
    assert!(read >= 491, "cdc read the changes: {read}");
    assert_no_differences(&differences(&runner.dest, sim).await);

    // A pass with nothing new reads only what the settle lag keeps open, and changes nothing.
    cdc_all(runner, Duration::from_secs(1), backfill::DEFAULT_CONCURRENCY).await;
    assert_no_differences(&differences(&runner.dest, sim).await);
}

fn portal() -> PortalSpec {
    PortalSpec {
        contacts: 3_000,
        companies: 300,
        deals: 400,
        tickets: 150,
        cars: 60,
        custom_properties: 14,
        ..PortalSpec::default()
    }
}

#[tokio::test]
async fn sync_backfill_and_cdc_match_ground_truth_in_sqlite() {
    let sim = Sim::start(crate::support::unlimited(portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = crate::support::sqlite_runner(&sim, dir.path()).await;
    scenario(&sim, &runner, backfill::Fetch::InTurn).await;
}

#[tokio::test]
async fn sync_backfill_and_cdc_match_ground_truth_in_postgres() {
    let Some(pg) = crate::support::FreshPostgres::create().await else { return };
    let sim = Sim::start(crate::support::unlimited(portal())).await;
    let runner = crate::support::postgres_runner(&sim, &pg).await;
    // The Postgres run fetches ahead, so both ways of paging are held to the ground truth.
    scenario(&sim, &runner, backfill::Fetch::Ahead).await;
    pg.drop_schemas().await;
}

#[tokio::test]
async fn cdc_walks_15000_updates_in_one_millisecond_and_survives_index_lag() {
    let sim = Sim::start(crate::support::unlimited(PortalSpec {
        contacts: 16_000,
        companies: 20,
        deals: 20,
        tickets: 20,
        cars: 5,
        custom_properties: 2,
        // About one millisecond's worth of records, not width.
        hubspot_catalogue: false,
        ..PortalSpec::default()
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let runner = crate::support::sqlite_runner(&sim, dir.path()).await;
    backfill_all(&runner, backfill::Fetch::InTurn).await;
    // 15,000 records on one millisecond: more than one search query can ever page through.
    let touched = touch(&sim, "contacts", json!({"count": 15_000})).await;
    let stamps: BTreeSet<&str> =
        touched["records"].as_array().unwrap().iter().map(|r| r["updatedAt"].as_str().unwrap()).collect();
    assert_eq!(stamps.len(), 1, "one shared millisecond");
    tokio::time::sleep(Duration::from_millis(20)).await;
    // In cursor order (one walker), so the millisecond is walked by id; a pass this large
    // would otherwise walk id ranges.
    cdc_all(&runner, Duration::from_secs(1), 1).await;
    assert_no_differences(&differences(&runner.dest, &sim).await);

    // A 30-second search index lag: changes are invisible to search at first; the settle lag
    // keeps the watermark behind, so the next pass after the index catches up reads them.
    sim.admin(Method::PUT, "/_sim/index", Some(&json!({"lagMs": 30_000}))).await;
    touch(&sim, "contacts", json!({"count": 120, "spreadMs": 200})).await;
    cdc_all(&runner, Duration::from_secs(60), backfill::DEFAULT_CONCURRENCY).await;
    let stale = differences(&runner.dest, &sim).await;
    assert!(!stale.is_empty(), "the index lag hid the changes from the first pass");
    sim.admin(Method::POST, "/_sim/clock", Some(&json!({"advanceMs": 31_000}))).await;
    cdc_all(&runner, Duration::from_secs(60), backfill::DEFAULT_CONCURRENCY).await;
    assert_no_differences(&differences(&runner.dest, &sim).await);
}

#[tokio::test]
async fn newly_included_property_is_filled_by_a_targeted_reread_not_a_resync() {
    let sim = Sim::start(crate::support::unlimited(PortalSpec {
        contacts: 900,
        companies: 50,
        deals: 50,
        tickets: 20,
        cars: 10,
        custom_properties: 8,
        ..PortalSpec::default()
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut runner = crate::support::sqlite_runner(&sim, dir.path()).await;
    runner.filter = PropertyFilter { include: Vec::new(), exclude: vec!["custom_prop_0006".into()] };
    backfill_all(&runner, backfill::Fetch::InTurn).await;
    let columns = runner.dest.describe("contacts").await.unwrap().unwrap();
    assert!(!columns.iter().any(|c| c.name == "custom_prop_0006"));

    // The property is included from now on: a new column, filled for existing rows.
    runner.filter = PropertyFilter::default();
    sim.admin(Method::DELETE, "/_sim/requests", None).await;
    let never = CancellationToken::new();
    let mut reread_rows = 0;
    for object in resolve_objects(&runner.client, &OBJECTS.map(str::to_owned)).await.unwrap() {
        let table = runner.prepare(&object).await.unwrap();
        assert!(table.added.iter().any(|p| p == "custom_prop_0006"), "{:?}", table.added);
        hsync::stream::reread::schedule(&runner, &table).await.unwrap();
        reread_rows += hsync::stream::reread::run(&runner, &table, &never).await.unwrap();
        assert_eq!(hsync::stream::reread::run(&runner, &table, &never).await.unwrap(), 0, "nothing left to re-read");
    }
    assert_eq!(reread_rows, 900 + 50 + 50 + 20 + 10);
    assert_no_differences(&differences(&runner.dest, &sim).await);
    // The re-read asked for the new property only.
    let log = sim.admin(Method::GET, "/_sim/requests", None).await.1;
    for entry in log["entries"].as_array().unwrap().iter().filter(|e| e["path"].as_str().unwrap().ends_with("/search"))
    {
        let body: Value = serde_json::from_str(entry["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["properties"].as_array().unwrap().len(), 2, "{body}");
    }
}

#[tokio::test]
async fn an_interrupted_cdc_pass_continues_at_its_last_page_instead_of_starting_over() {
    use crate::support::{logged_since, next_seq, search_page_key};
    use hsync::state::StreamId;
    use hsync::stream::state::CdcState;
    let sim = Sim::start(crate::support::unlimited(PortalSpec {
        contacts: 2_500,
        companies: 10,
        deals: 10,
        tickets: 10,
        cars: 5,
        custom_properties: 4,
        ..PortalSpec::default()
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut runner = crate::support::sqlite_runner(&sim, dir.path()).await;
    backfill_all(&runner, backfill::Fetch::InTurn).await;
    // A bulk millisecond (walked by id) and spread updates: a pass of about 15 pages.
    touch(&sim, "contacts", json!({"count": 900})).await;
    touch(&sim, "contacts", json!({"count": 1_500, "spreadMs": 1_000})).await;
    let contacts = resolve_objects(&runner.client, &["contacts".to_owned()]).await.unwrap().remove(0);
    let table = runner.prepare(&contacts).await.unwrap();

    // The seventh search fails for good (one attempt, no retry): the pass stops mid-way.
    runner.client = crate::support::sim_client_with_retry(
        &sim,
        std::sync::Arc::new(runner.state.clone()),
        hsync::hubspot::RetryPolicy { max_attempts: 1, ..hsync::hubspot::RetryPolicy::default() },
    );
    let fault =
        json!({"kind": "server_error", "status": 503, "html": false, "target": "search", "skip": 6, "remaining": 1});
    sim.admin_ok(Method::POST, "/_sim/faults", Some(&fault)).await;
    let since = next_seq(&sim).await;
    let never = CancellationToken::new();
    let settle = Duration::from_secs(1);
    cdc::pass(&runner, &table, settle, backfill::DEFAULT_CONCURRENCY, &never)
        .await
        .expect_err("the fault ends the pass");
    let stopped = runner.state.load_checkpoint(&StreamId::cdc("contacts")).await.unwrap().unwrap();
    assert!(matches!(CdcState::from_checkpoint(&stopped), Ok(CdcState::Paging { .. })), "{stopped:?}");
    let first_run = logged_since(&sim, since).await;
    let failed: Vec<&Value> = first_run.iter().filter(|e| e["status"] == 503).collect();
    assert_eq!(failed.len(), 1);
    let read: Vec<String> = first_run.iter().filter_map(search_page_key).collect();
    assert_eq!(read.len(), 6, "six pages were read and committed before the fault");

    // The next pass continues at the failed page: no committed page is read again.
    let since = next_seq(&sim).await;
    let report = cdc::pass(&runner, &table, settle, backfill::DEFAULT_CONCURRENCY, &never).await.unwrap();
    let second_run: Vec<String> = logged_since(&sim, since).await.iter().filter_map(search_page_key).collect();
    let failed_page = search_page_key(&json!({"path": failed[0]["path"], "status": 200, "body": failed[0]["body"]}));
    assert_eq!(second_run.first(), failed_page.as_ref(), "it starts with the page that failed");
    assert!(second_run.iter().all(|k| !read.contains(k)), "no page read before is read again: {second_run:?}");
    assert!(report.pages >= 5, "{report:?}");
    let done = runner.state.load_checkpoint(&StreamId::cdc("contacts")).await.unwrap().unwrap();
    assert!(matches!(CdcState::from_checkpoint(&done), Ok(CdcState::Polling { .. })), "{done:?}");
    assert_no_differences(&differences(&runner.dest, &sim).await);
}

/// 12,000 records updated at distinct instants within one minute: a single window whose
/// search `total` is above HubSpot's 10,000-result cap, so paging it by offset would fail. The
/// pass pages by cursor instead (never by offset) and reads every one.
async fn twelve_thousand_updates_in_one_window<D: Inspect, S: StateStore>(sim: &Sim, runner: &Runner<D, S>) {
    use crate::support::{logged_since, next_seq};
    backfill_all(runner, backfill::Fetch::InTurn).await;
    let touched = touch(sim, "contacts", json!({"count": 12_000, "spreadMs": 60_000})).await;
    let stamps: BTreeSet<i64> =
        touched["records"].as_array().unwrap().iter().map(|r| r["updatedAtMs"].as_i64().unwrap()).collect();
    assert_eq!(stamps.len(), 12_000, "distinct instants");
    let (first, last) = (*stamps.first().unwrap(), *stamps.last().unwrap());
    assert!(last - first < 60_000, "within one minute");
    let window = crate::support::one_group(vec![
        crate::support::filter("lastmodifieddate", "GTE", first.to_string()),
        crate::support::filter("lastmodifieddate", "LTE", last.to_string()),
    ]);
    let total = sim.search("contacts", &window).await["total"].as_u64().unwrap();
    assert!(total > 10_000, "the window is over the cap: {total}");

    let since = next_seq(sim).await;
    // In cursor order (one walker): a pass this large would otherwise walk id ranges.
    let read = cdc_all(runner, Duration::from_secs(1), 1).await;
    assert!(read >= 12_000, "cdc read every update: {read}");
    let log = logged_since(sim, since).await;
    let searches: Vec<&str> = log
        .iter()
        .filter(|e| e["path"].as_str().unwrap().ends_with("/search"))
        .map(|e| e["body"].as_str().unwrap())
        .collect();
    assert!(searches.len() >= 60, "{} searches", searches.len());
    assert!(searches.iter().all(|b| !b.contains("\"after\"")), "no page was asked for by offset");
    assert_no_differences(&differences(&runner.dest, sim).await);
}

fn twelve_thousand_portal() -> PortalSpec {
    PortalSpec {
        contacts: 12_500,
        companies: 10,
        deals: 10,
        tickets: 10,
        cars: 5,
        custom_properties: 2,
        // About a window's worth of records, not width.
        hubspot_catalogue: false,
        ..PortalSpec::default()
    }
}

#[tokio::test]
async fn cdc_reads_12000_updates_inside_one_window_in_sqlite() {
    let sim = Sim::start(crate::support::unlimited(twelve_thousand_portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = crate::support::sqlite_runner(&sim, dir.path()).await;
    twelve_thousand_updates_in_one_window(&sim, &runner).await;
}

#[tokio::test]
async fn cdc_reads_12000_updates_inside_one_window_in_postgres() {
    let Some(pg) = crate::support::FreshPostgres::create().await else { return };
    let sim = Sim::start(crate::support::unlimited(twelve_thousand_portal())).await;
    let runner = crate::support::postgres_runner(&sim, &pg).await;
    twelve_thousand_updates_in_one_window(&sim, &runner).await;
    pg.drop_schemas().await;
}

/// Search pages that arrive with older versions of records after newer versions were merged
/// (a search replica lagging the one the previous queries hit): the guarded merge keeps the
/// newer version, so the warehouse still equals HubSpot.
pub(crate) async fn older_versions_after_newer_ones<D: Inspect, S: StateStore>(sim: &Sim, runner: &Runner<D, S>) {
    backfill_all(runner, backfill::Fetch::InTurn).await;
    // Version 1 of 300 contacts, kept by a stale replica; then version 2 of the same records.
    let first = touch(sim, "contacts", json!({"count": 300, "spreadMs": 300})).await;
    let ids: Vec<u64> = first["records"].as_array().unwrap().iter().map(crate::support::id_of).collect();
    sim.admin_ok(Method::POST, "/_sim/index/replica", None).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    touch(sim, "contacts", json!({"ids": ids, "spreadMs": 300})).await;
    // A settle lag wider than both updates: every later pass reads them again.
    let settle = Duration::from_secs(60);
    assert!(cdc_all(runner, settle, backfill::DEFAULT_CONCURRENCY).await >= 300);
    assert_no_differences(&differences(&runner.dest, sim).await);

    // Now every search is answered by the replica: the pass reads version 1 of the 300.
    sim.admin_ok(Method::PUT, "/_sim/index/replica", Some(&json!({"reads": 1_000}))).await;
    let stale_rows = cdc_all(runner, settle, backfill::DEFAULT_CONCURRENCY).await;
    assert!(stale_rows >= 300, "the older versions were read: {stale_rows}");
    let left = sim.admin_ok(Method::GET, "/_sim/index/replica", None).await["readsLeft"].as_u64().unwrap();
    assert!(left < 1_000, "the replica answered");
    assert_no_differences(&differences(&runner.dest, sim).await);

    // Back to the index: still nothing to change.
    sim.admin_ok(Method::DELETE, "/_sim/index/replica", None).await;
    cdc_all(runner, settle, backfill::DEFAULT_CONCURRENCY).await;
    assert_no_differences(&differences(&runner.dest, sim).await);
}

fn small_sync_portal() -> PortalSpec {
    PortalSpec {
        contacts: 1_500,
        companies: 40,
        deals: 40,
        tickets: 20,
        cars: 10,
        custom_properties: 6,
        ..PortalSpec::default()
    }
}

#[tokio::test]
async fn pages_with_older_versions_after_newer_ones_never_replace_them_in_sqlite() {
    let sim = Sim::start(crate::support::unlimited(small_sync_portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = crate::support::sqlite_runner(&sim, dir.path()).await;
    older_versions_after_newer_ones(&sim, &runner).await;
}

#[tokio::test]
async fn pages_with_older_versions_after_newer_ones_never_replace_them_in_postgres() {
    let Some(pg) = crate::support::FreshPostgres::create().await else { return };
    let sim = Sim::start(crate::support::unlimited(small_sync_portal())).await;
    let runner = crate::support::postgres_runner(&sim, &pg).await;
    older_versions_after_newer_ones(&sim, &runner).await;
    pg.drop_schemas().await;
}

/// A backfill pays one search per page of 200 and none to confirm the end: the last page says
/// it is the last (no `paging`, the total within it). Fetching ahead pays no more.
#[tokio::test]
async fn backfill_pays_one_search_per_page_and_none_to_confirm_the_end() {
    for fetch in [backfill::Fetch::InTurn, backfill::Fetch::Ahead] {
        for contacts in [1_000u64, 1_001, 150] {
            let spec = PortalSpec { contacts, companies: 0, deals: 0, tickets: 0, cars: 0, ..PortalSpec::default() };
            let sim = Sim::start(crate::support::unlimited(spec)).await;
            let dir = tempfile::tempdir().unwrap();
            let runner = crate::support::sqlite_runner(&sim, dir.path()).await;
            let object = resolve_objects(&runner.client, &["contacts".to_owned()]).await.unwrap().remove(0);
            let table = runner.prepare(&object).await.unwrap();
            let since = crate::support::next_seq(&sim).await;
            let report = crate::support::backfill_with(&runner, &table, backfill::Mode::Fresh, fetch).await;
            let searches = crate::support::logged_since(&sim, since)
                .await
                .iter()
                .filter(|e| e["path"].as_str().is_some_and(|p| p.ends_with("/search")))
                .count() as u64;
            assert!(report.finished, "{fetch:?}, {contacts}: finished");
            assert_eq!(searches, contacts.div_ceil(200), "{fetch:?}, {contacts} contacts: one search per page");
            assert_eq!(report.rows, contacts, "{fetch:?}, {contacts}: every contact written");
            assert_eq!(runner.dest.live_ids("contacts").await.unwrap().len() as u64, contacts);
            // A resumed backfill that finished on its last page does nothing more.
            let again = crate::support::backfill_with(&runner, &table, backfill::Mode::Resume, fetch).await;
            assert!(again.finished && again.rows == 0, "{fetch:?}: {again:?}");
        }
    }
}

/// A CDC pass whose page boundaries fall inside busy milliseconds (about ten changes share
/// each) reads every change exactly once and pays one search per 200: a full page goes on past
/// the records of its last millisecond it read instead of reading that millisecond again, and
/// the page that holds the rest ends the pass without an empty confirming search.
#[tokio::test]
async fn cdc_pays_one_search_per_page_when_pages_end_inside_busy_milliseconds() {
    let spec = PortalSpec { contacts: 3_000, companies: 0, deals: 0, tickets: 0, cars: 0, ..PortalSpec::default() };
    let sim = Sim::start(crate::support::unlimited(spec)).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = crate::support::sqlite_runner(&sim, dir.path()).await;
    let object = resolve_objects(&runner.client, &["contacts".to_owned()]).await.unwrap().remove(0);
    let table = runner.prepare(&object).await.unwrap();
    let never = CancellationToken::new();
    assert!(
        crate::support::backfill_with(&runner, &table, backfill::Mode::Fresh, backfill::Fetch::InTurn).await.finished
    );
    let touched = touch(&sim, "contacts", json!({"count": 1_000, "spreadMs": 100})).await;
    let stamps: BTreeSet<i64> =
        touched["records"].as_array().unwrap().iter().map(|r| r["updatedAtMs"].as_i64().unwrap()).collect();
    assert!(stamps.len() <= 101, "about ten changes per millisecond: {} instants", stamps.len());

    let since = crate::support::next_seq(&sim).await;
    let report =
        cdc::pass(&runner, &table, Duration::from_secs(1), backfill::DEFAULT_CONCURRENCY, &never).await.unwrap();
    let log = crate::support::logged_since(&sim, since).await;
    let searches: Vec<&str> = log
        .iter()
        .filter(|e| e["path"].as_str().is_some_and(|p| p.ends_with("/search")))
        .map(|e| e["body"].as_str().unwrap())
        .collect();
    assert_eq!(searches.len(), 5, "one search per page of 200: {searches:#?}");
    assert_eq!(report.rows, 1_000, "no change read twice: {report:?}");
    let distinct: BTreeSet<&String> = report.changed_ids.iter().collect();
    assert_eq!(distinct.len(), 1_000);
    assert!(searches[1..].iter().all(|b| b.contains("NOT_IN")), "later pages leave out what was read");
    assert_eq!(runner.dest.live_ids("contacts").await.unwrap().len(), 3_000);
}
