//! The concurrent backfill over id ranges: planned from the data, the ranges cover every id
//! exactly once around an empty range and a sparse one, while archived records come back inside
//! a range and new ones arrive above every id; a walker whose range ends early takes half of a
//! dense one; and a stopped walk resumes with at most one page per range read twice. The `kill
//! -9` bound is held by `chaos_kill` and the SIGTERM one by `daemon`. List walkers read ranges
//! beside the searches, and give them to search when the list cursor is no record id; a daily
//! budget too tight for both buckets reads by search alone. A CDC pass over a month-end update
//! walks ranges too, and a stopped one continues its walk.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hsync::destination::sqlite::{SqliteDestination, SqliteStateStore};
use hsync::destination::Destination;
use hsync::hubspot::resolve_objects;
use hsync::state::{StateStore, StreamId};
use hsync::stream::backfill;
use hsync::stream::cdc;
use hsync::stream::readers;
use hsync::stream::runner::{PreparedTable, Runner};
use hsync::stream::state::{BackfillState, CdcState};
use hsync_sim::PortalSpec;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::support::{data_page_key, logged_since, next_seq, Sim};
use crate::sync_engine::differences_in;

/// 12,000 contacts, then the second quarter of ids archived (an empty stretch) and nine in ten
/// of the third (a sparse one): 6,300 live contacts in two dense stretches. Returns the
/// simulator and the archived ids of the empty stretch.
async fn uneven_portal() -> (Sim, Vec<u64>) {
    let spec = PortalSpec { contacts: 12_000, companies: 0, deals: 0, tickets: 0, cars: 0, ..PortalSpec::default() };
    let sim = Sim::start(crate::support::unlimited(spec)).await;
    let ids: Vec<u64> = sim.truth_ids("contacts").await.into_iter().collect();
    let empty = ids[3_000..6_000].to_vec();
    let sparse: Vec<u64> =
        ids[6_000..9_000].iter().enumerate().filter(|(i, _)| i % 10 != 0).map(|(_, id)| *id).collect();
    for chunk in empty.iter().chain(&sparse).collect::<Vec<_>>().chunks(100) {
        let inputs: Vec<Value> = chunk.iter().map(|id| json!({ "id": id.to_string() })).collect();
        let (status, _, body) = sim.post("/crm/v3/objects/contacts/batch/archive", &json!({ "inputs": inputs })).await;
        assert!(status.is_success(), "{body}");
    }
    (sim, empty)
}

/// An [`uneven_portal`] whose searches each take `delay_ms` longer, and a SQLite runner with
/// the contacts table prepared.
struct Walking {
    sim: Sim,
    empty: Vec<u64>,
    dir: tempfile::TempDir,
    runner: Runner<SqliteDestination, SqliteStateStore>,
    table: PreparedTable,
}

async fn walking(delay_ms: u64) -> Walking {
    let (sim, empty) = uneven_portal().await;
    let slow = json!({"kind": "slow", "delay_ms": delay_ms, "target": "search"});
    sim.admin_ok(Method::POST, "/_sim/faults", Some(&slow)).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = crate::support::sqlite_runner(&sim, dir.path()).await;
    let object = resolve_objects(&runner.client, &["contacts".to_owned()]).await.unwrap().remove(0);
    let table = runner.prepare(&object).await.unwrap();
    Walking { sim, empty, dir, runner, table }
}

/// The search pages and list pages of records read since `since`.
async fn readers_used(sim: &Sim, since: u64) -> (usize, usize) {
    let keys: Vec<String> = logged_since(sim, since).await.iter().filter_map(data_page_key).collect();
    let lists = keys.iter().filter(|k| k.contains(" after=")).count();
    (keys.len() - lists, lists)
}

/// The `hs_object_id` bounds (`LTE` values) of the backfill's searches since `since`.
async fn range_bounds(sim: &Sim, since: u64) -> BTreeSet<String> {
    let mut bounds = BTreeSet::new();
    for entry in logged_since(sim, since).await {
        let Some(body) = entry["body"].as_str().and_then(|b| serde_json::from_str::<Value>(b).ok()) else { continue };
        for group in body["filterGroups"].as_array().into_iter().flatten() {
            for filter in group["filters"].as_array().into_iter().flatten() {
                if filter["operator"] == "LTE" && filter["propertyName"] == "hs_object_id" {
                    bounds.insert(filter["value"].to_string());
                }
            }
        }
    }
    bounds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ranges_cover_every_id_exactly_once_around_empty_and_dense_ranges() {
    // Searches a little slow, so the walk overlaps with the portal's changes below.
    let Walking { sim, empty, dir: _dir, runner, table } = walking(40).await;
    let since = next_seq(&sim).await;
    let never = CancellationToken::new();
    let walk = backfill::run(
        &runner,
        &table,
        backfill::Mode::Fresh,
        backfill::Fetch::InTurn,
        backfill::Concurrency::default(),
        &never,
        |_| {},
    );
    let changes = async {
        // Archived records come back inside the empty stretch; new ones arrive above every id.
        for id in empty.iter().step_by(100) {
            sim.admin_ok(Method::POST, &format!("/_sim/objects/contacts/{id}/restore"), None).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for i in 0..20 {
            sim.admin_create("contacts", json!({ "email": format!("arrived{i}@example.com") })).await;
        }
    };
    let (report, ()) = tokio::join!(walk, changes);
    let report = report.unwrap();
    assert!(report.finished, "{report:?}");
    let stored = runner.dest.live_ids("contacts").await.unwrap();
    assert_eq!(report.rows, stored.len() as u64, "no record was written twice: {report:?}");
    // 6,100 records after the first page make three planned ranges (two bounds); a walker
    // whose range ran out split a dense one, which adds a bound.
    let bounds = range_bounds(&sim, since).await;
    assert!(bounds.len() >= 3, "planned ranges and at least one split: {bounds:?}");
    // Both buckets read: list pages beside the searches.
    let (searches, lists) = readers_used(&sim, since).await;
    assert!(searches > 3 && lists > 3, "{searches} search pages and {lists} list pages");
    let saved = runner.state.load_checkpoint(&StreamId::backfill("contacts")).await.unwrap().unwrap();
    assert!(matches!(BackfillState::from_checkpoint(&saved), Ok(BackfillState::Done { .. })), "{:?}", saved.state);

    // CDC from the backfill's start picks up whatever the walk passed before it changed.
    sim.admin_ok(Method::PUT, "/_sim/faults", Some(&json!([]))).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    cdc::pass(&runner, &table, Duration::from_secs(1), backfill::DEFAULT_CONCURRENCY, &never).await.unwrap();
    let differences = differences_in(&runner.dest, &sim, &["contacts"]).await;
    assert!(
        differences.is_empty(),
        "{} differences: {:?}",
        differences.len(),
        &differences[..differences.len().min(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_ranged_backfill_resumes_reading_at_most_one_page_per_range_again() {
    let Walking { sim, dir: _dir, runner, table, .. } = walking(30).await;
    let since = next_seq(&sim).await;
    let stop = CancellationToken::new();
    let mut written = 0;
    let first = backfill::run(
        &runner,
        &table,
        backfill::Mode::Fresh,
        backfill::Fetch::InTurn,
        backfill::Concurrency::default(),
        &stop,
        |rows| {
            written += rows;
            if written >= 2_000 {
                stop.cancel();
            }
        },
    )
    .await
    .unwrap();
    assert!(!first.finished, "stopped part-way: {first:?}");
    let saved = runner.state.load_checkpoint(&StreamId::backfill("contacts")).await.unwrap().unwrap();
    let Ok(BackfillState::Running { rows, ranged: Some(walk), .. }) = BackfillState::from_checkpoint(&saved) else {
        panic!("a walk over ranges was interrupted: {:?}", saved.state);
    };
    let stored = runner.dest.live_ids("contacts").await.unwrap();
    assert_eq!(rows, stored.len() as i64, "the checkpoint counts what the table holds");
    assert!(stored.iter().all(|id| !walk.ranges.iter().any(|r| r.holds(*id))), "nothing stored inside a range left");

    let resumed = crate::support::backfill_with(&runner, &table, backfill::Mode::Resume, backfill::Fetch::InTurn).await;
    assert!(resumed.finished);
    let mut pages: BTreeMap<String, usize> = BTreeMap::new();
    for key in logged_since(&sim, since).await.iter().filter_map(data_page_key) {
        *pages.entry(key).or_default() += 1;
    }
    let repeated: usize = pages.values().map(|n| n - 1).sum();
    let walkers = backfill::DEFAULT_CONCURRENCY + readers::list_walkers(backfill::DEFAULT_CONCURRENCY, 1);
    assert!(repeated <= walkers, "{repeated} pages read again: at most the page in flight of each range");
    assert_eq!(first.rows + resumed.rows, runner.dest.live_ids("contacts").await.unwrap().len() as u64);
    sim.admin_ok(Method::PUT, "/_sim/faults", Some(&json!([]))).await;
    let differences = differences_in(&runner.dest, &sim, &["contacts"]).await;
    assert!(differences.is_empty(), "{:?}", &differences[..differences.len().min(10)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_walkers_give_their_ranges_to_search_when_the_list_cursor_is_not_a_record_id() {
    // An offset cursor lags the ids where records below were archived (the uneven portal has
    // 5,700 of them); an opaque one refuses an id. Either way search reads every range.
    for cursor in ["offset", "opaque"] {
        let Walking { sim, dir: _dir, runner, table, .. } = walking(5).await;
        let mut behaviour = sim.admin_ok(Method::GET, "/_sim/behaviour", None).await;
        behaviour["list_cursor"] = json!(cursor);
        sim.admin_ok(Method::PUT, "/_sim/behaviour", Some(&behaviour)).await;
        let since = next_seq(&sim).await;
        let report =
            crate::support::backfill_with(&runner, &table, backfill::Mode::Fresh, backfill::Fetch::InTurn).await;
        assert!(report.finished, "{cursor}: {report:?}");
        let stored = runner.dest.live_ids("contacts").await.unwrap();
        assert_eq!(report.rows, stored.len() as u64, "{cursor}: no record written twice");
        let (searches, _) = readers_used(&sim, since).await;
        assert!(searches > 3, "{cursor}: search read the ranges");
        let saved = runner.state.load_checkpoint(&StreamId::backfill("contacts")).await.unwrap().unwrap();
        assert!(matches!(BackfillState::from_checkpoint(&saved), Ok(BackfillState::Done { .. })), "{cursor}");
        sim.admin_ok(Method::PUT, "/_sim/faults", Some(&json!([]))).await;
        let differences = differences_in(&runner.dest, &sim, &["contacts"]).await;
        assert!(differences.is_empty(), "{cursor}: {:?}", &differences[..differences.len().min(10)]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_budget_too_tight_for_both_buckets_reads_by_search_alone() {
    // 20,000 contacts: search alone takes about 100 searches and a few range ends; both buckets
    // would take half again as many calls (list pages hold 100). 140 calls a day fit the first
    // and not the second.
    let spec = PortalSpec { contacts: 20_000, companies: 0, deals: 0, tickets: 0, cars: 0, ..PortalSpec::default() };
    let sim = Sim::start(crate::support::unlimited(spec)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut runner = crate::support::sqlite_runner(&sim, dir.path()).await;
    let store = std::sync::Arc::new(runner.state.clone());
    let budget = hsync::hubspot::BudgetSetting::Calls(140);
    runner.client = crate::support::sim_client_with(&sim, store, hsync::hubspot::RetryPolicy::default(), budget);
    let object = resolve_objects(&runner.client, &["contacts".to_owned()]).await.unwrap().remove(0);
    let table = runner.prepare(&object).await.unwrap();
    let since = next_seq(&sim).await;
    let report = crate::support::backfill_with(&runner, &table, backfill::Mode::Fresh, backfill::Fetch::InTurn).await;
    assert!(report.finished, "{report:?}");
    assert_eq!(runner.dest.live_ids("contacts").await.unwrap().len(), 20_000);
    let (searches, lists) = readers_used(&sim, since).await;
    assert!(searches >= 100 && lists == 0, "{searches} search pages and {lists} list pages");
    let used = runner.client.budget_status().await.used;
    assert!(used <= 140, "{used} calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_cdc_pass_walks_ranges_concurrently_and_a_stopped_one_continues_within_the_bound() {
    // A month-end update of 5,000 of the 6,300 live contacts, spread over a second: more than
    // two ranges' worth of changes, so the pass walks ranges by search.
    let Walking { sim, dir: _dir, runner, table, .. } = walking(60).await;
    let done = crate::support::backfill_with(&runner, &table, backfill::Mode::Fresh, backfill::Fetch::InTurn).await;
    assert!(done.finished);
    sim.admin_ok(Method::POST, "/_sim/objects/contacts/touch", Some(&json!({"count": 5_000, "spreadMs": 1_000}))).await;
    // The spread and the settle lag (1 s) have passed.
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let settle = Duration::from_secs(1);
    let since = next_seq(&sim).await;

    // Stopped once a third of the changes are written, with updates arriving meanwhile.
    let stop = CancellationToken::new();
    let watch = async {
        loop {
            let saved = runner.state.load_checkpoint(&StreamId::cdc("contacts")).await.unwrap();
            let phase = saved.as_ref().map(|c| (c.state["phase"].clone(), c.state["rows"].as_i64()));
            match phase {
                Some((phase, rows)) if phase == "ranged" && rows >= Some(1_700) => return stop.cancel(),
                // The pass ended first; the assertions below say so.
                Some((phase, _)) if phase == "polling" => return,
                _ => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    };
    let changes = async {
        for _ in 0..5 {
            sim.admin_ok(Method::POST, "/_sim/objects/contacts/touch", Some(&json!({"count": 20}))).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    };
    let (first, (), ()) =
        tokio::join!(cdc::pass(&runner, &table, settle, backfill::DEFAULT_CONCURRENCY, &stop), watch, changes);
    let first = first.unwrap();
    let saved = runner.state.load_checkpoint(&StreamId::cdc("contacts")).await.unwrap().unwrap();
    let Ok(CdcState::Ranged { watermark_ms, walk, .. }) = CdcState::from_checkpoint(&saved) else {
        panic!("a pass over ranges was stopped part-way: {:?}", saved.state);
    };
    assert!(walk.ranges.len() >= 2 && first.rows >= 1_700, "{first:?} left {:?}", walk.ranges);
    assert_eq!(first.watermark_ms, watermark_ms, "the watermark waits for the whole walk");

    // The next pass continues the walk, then moves the watermark.
    let never = CancellationToken::new();
    let second = cdc::pass(&runner, &table, settle, backfill::DEFAULT_CONCURRENCY, &never).await.unwrap();
    assert!(second.watermark_ms > watermark_ms, "{second:?}");
    let saved = runner.state.load_checkpoint(&StreamId::cdc("contacts")).await.unwrap().unwrap();
    assert!(matches!(CdcState::from_checkpoint(&saved), Ok(CdcState::Polling { .. })), "{:?}", saved.state);

    // Searches with id bounds and the watermark read the changes; a stop cost at most the page
    // in flight of each walker.
    let bounds = range_bounds(&sim, since).await;
    assert!(bounds.len() >= 2, "planned ranges: {bounds:?}");
    let mut pages: BTreeMap<String, usize> = BTreeMap::new();
    for key in logged_since(&sim, since).await.iter().filter_map(data_page_key) {
        *pages.entry(key).or_default() += 1;
    }
    let repeated: usize = pages.values().map(|n| n - 1).sum();
    assert!(repeated <= backfill::DEFAULT_CONCURRENCY, "{repeated} pages read again");
    // 5,100 changes in pages of 200, with the planned first page and range ends: far fewer
    // than a page per record, and no change read by more than one range.
    let searched = pages.len();
    assert!((26..=60).contains(&searched), "{searched} search pages for 5,100 changes");

    // Whatever changed after a range passed it is read by the pass after the settle lag.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    cdc::pass(&runner, &table, settle, backfill::DEFAULT_CONCURRENCY, &never).await.unwrap();
    let differences = differences_in(&runner.dest, &sim, &["contacts"]).await;
    assert!(differences.is_empty(), "{:?}", &differences[..differences.len().min(10)]);
}
