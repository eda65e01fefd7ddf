//! Calculated properties kept fresh: a rollup (`num_associated_deals`) that HubSpot changes
//! without moving the record's last-modified time is missed by CDC, and brought back to ground
//! truth by the re-read around association changes and by the calculated-property sweep, in
//! real SQLite and real Postgres. A re-read HubSpot cannot answer never holds the edges back.

use std::sync::Arc;
use std::time::Duration;

use hsync::destination::conformance::{Cell, Inspect};
use hsync::destination::{Destination, EdgeEnd};
use hsync::hubspot::{resolve_objects, BudgetStore, RetryPolicy};
use hsync::state::StateStore;
use hsync::stream::runner::{PreparedTable, Runner};
use hsync::stream::{associations, backfill, calculated, cdc};
use hsync_sim::PortalSpec;
use reqwest::Method;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::support::Sim;
use crate::sync_engine::differences_in;

const OBJECTS: [&str; 2] = ["companies", "deals"];

fn portal() -> PortalSpec {
    PortalSpec {
        contacts: 200,
        companies: 150,
        deals: 300,
        tickets: 10,
        cars: 5,
        custom_properties: 4,
        ..PortalSpec::default()
    }
}

async fn tables<D: Destination, S: StateStore>(runner: &Runner<D, S>) -> Vec<PreparedTable> {
    let names: Vec<String> = OBJECTS.iter().map(|s| (*s).to_owned()).collect();
    let mut out = Vec::new();
    for object in resolve_objects(&runner.client, &names).await.unwrap() {
        out.push(runner.prepare(&object).await.unwrap());
    }
    out
}

/// The warehouse's `num_associated_deals` of company `id`.
async fn stored_deals<D: Inspect>(dest: &D, id: u64) -> Cell {
    let rows = dest.read_table("companies").await.unwrap();
    let row = rows.iter().find(|r| r.get("id") == Some(&Cell::Int(id as i64))).expect("the company's row");
    row.get("num_associated_deals").cloned().expect("a num_associated_deals column")
}

async fn link(sim: &Sim, deal: u64, company: u64) {
    let (status, body) = sim
        .admin(
            Method::POST,
            "/_sim/associations",
            Some(&json!({"from": "deals", "fromId": deal, "to": "companies", "toId": company})),
        )
        .await;
    assert!(status.is_success(), "{body}");
}

async fn scenario<D: Inspect, S: StateStore>(sim: &Sim, runner: &Runner<D, S>) {
    let never = CancellationToken::new();
    let prepared = tables(runner).await;
    let (companies, deals) = (&prepared[0], &prepared[1]);
    assert!(companies.calculated.iter().any(|p| p == "num_associated_deals"), "{:?}", companies.calculated);
    assert!(!companies.calculated.iter().any(|p| p == "hs_lastmodifieddate" || p == "name"));
    for table in &prepared {
        assert!(
            crate::support::backfill_with(runner, table, backfill::Mode::Fresh, backfill::Fetch::InTurn).await.finished
        );
    }
    assert_eq!(differences_in(&runner.dest, sim, &OBJECTS).await, Vec::<String>::new());
    let source = associations::Source { from: deals.object.clone(), targets: vec![companies.object.clone()] };
    let around = associations::Around { tables: &prepared, every_batch: false };
    let settle = Duration::from_millis(200);
    // The first pass of the association stream is a full sweep that stores every edge.
    assert!(associations::poll_changes(runner, &source, settle, around, &never).await.unwrap().swept);

    // Three deals that exist already are linked to one company: neither side's last-modified
    // time moves, the company's rollup does.
    let company = sim.truth_ids("companies").await.into_iter().next().unwrap();
    let before = stored_deals(&runner.dest, company).await;
    let linked: Vec<u64> = sim.truth_ids("deals").await.into_iter().rev().take(3).collect();
    for &deal in &linked {
        link(sim, deal, company).await;
    }
    tokio::time::sleep(settle).await;
    for table in &prepared {
        cdc::pass(runner, table, settle, 1, &never).await.unwrap();
    }
    assert_eq!(stored_deals(&runner.dest, company).await, before, "CDC cannot see the change: the bug class");
    let stale = differences_in(&runner.dest, sim, &["companies"]).await;
    assert!(stale.iter().any(|d| d.contains("num_associated_deals")), "{stale:?}");

    // The sweep re-reads only the calculated columns of every record and restores ground truth.
    let report = calculated::sweep(runner, companies, None, 0, &never).await.unwrap();
    assert!(report.finished && report.rows >= 150, "{report:?}");
    assert_eq!(differences_in(&runner.dest, sim, &OBJECTS).await, Vec::<String>::new());
    // A second run soon after is not due when asked for a minimum age.
    let again = calculated::sweep(runner, companies, Some(3_600_000), 0, &never).await.unwrap();
    assert!(again.not_due && again.rows == 0, "{again:?}");

    // Around changes: the association sweep re-reads both ends of the batches whose edges
    // changed, so the company's rollup is right without waiting for the calculated sweep.
    let other = sim.truth_ids("companies").await.into_iter().nth(1).unwrap();
    link(sim, linked[0], other).await;
    let report = associations::sweep_all(runner, &source, settle, around, &never).await.unwrap();
    assert!(report.finished);
    let refreshed: u64 = report.pairs.iter().map(|p| p.refreshed).sum();
    // Only the batch with changed edges (deals are read 1,000 at a time: all of them here).
    assert!(refreshed > 0, "{report:?}");
    assert_eq!(differences_in(&runner.dest, sim, &OBJECTS).await, Vec::<String>::new());

    // A new deal linked to a company is a changed record: the incremental poll re-reads the
    // company's rollup around it.
    let created = sim.admin_create("deals", json!({"dealname": "New business"})).await;
    link(sim, created, other).await;
    tokio::time::sleep(settle).await;
    cdc::pass(runner, deals, settle, 1, &never).await.unwrap();
    let report = associations::poll_changes(runner, &source, settle, around, &never).await.unwrap();
    assert!(report.finished && !report.swept, "{report:?}");
    assert_eq!(differences_in(&runner.dest, sim, &OBJECTS).await, Vec::<String>::new());

    // A re-read HubSpot cannot answer (every batch read a 200 with an HTML page, a data-class
    // error) does not hold the edges back: the pass writes them and finishes, the rollup waits
    // for the calculated sweep.
    let third = sim.truth_ids("companies").await.into_iter().nth(2).unwrap();
    let third_before = stored_deals(&runner.dest, third).await;
    link(sim, linked[1], third).await;
    let cut = json!([{"kind": "server_error", "status": 200, "html": true, "target": "batch_read"}]);
    let (status, body) = sim.admin(Method::PUT, "/_sim/faults", Some(&cut)).await;
    assert!(status.is_success(), "{body}");
    let report = associations::sweep_all(runner, &source, settle, around, &never).await.unwrap();
    assert!(report.finished, "{report:?}");
    assert_eq!(report.pairs.iter().map(|p| p.refreshed).sum::<u64>(), 0, "{report:?}");
    let edges = runner.dest.edge_ends("deals", "companies", EdgeEnd::From, Some(&[third as i64])).await.unwrap();
    assert!(edges.contains(&(linked[1] as i64)), "the edge is stored: {edges:?}");
    assert_eq!(stored_deals(&runner.dest, third).await, third_before);
    let (status, body) = sim.admin(Method::PUT, "/_sim/faults", Some(&json!([]))).await;
    assert!(status.is_success(), "{body}");
    assert!(calculated::sweep(runner, companies, None, 0, &never).await.unwrap().finished);
    assert_eq!(differences_in(&runner.dest, sim, &OBJECTS).await, Vec::<String>::new());
}

/// `runner` with a client that retries quickly: an injected fault is final within a second.
fn quick_retries<D, S: StateStore + BudgetStore + Clone + 'static>(sim: &Sim, runner: Runner<D, S>) -> Runner<D, S> {
    let retry = RetryPolicy {
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        ..RetryPolicy::default()
    };
    let client = crate::support::sim_client_with_retry(sim, Arc::new(runner.state.clone()), retry);
    Runner { client, ..runner }
}

#[tokio::test]
async fn rollups_changed_without_last_modified_are_refreshed_in_sqlite() {
    let sim = Sim::start(crate::support::unlimited(portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = quick_retries(&sim, crate::support::sqlite_runner(&sim, dir.path()).await);
    scenario(&sim, &runner).await;
}

#[tokio::test]
async fn rollups_changed_without_last_modified_are_refreshed_in_postgres() {
    let Some(pg) = crate::support::FreshPostgres::create().await else { return };
    let sim = Sim::start(crate::support::unlimited(portal())).await;
    let runner = quick_retries(&sim, crate::support::postgres_runner(&sim, &pg).await);
    scenario(&sim, &runner).await;
    pg.drop_schemas().await;
}
