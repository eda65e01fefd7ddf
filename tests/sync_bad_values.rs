//! One bad value from HubSpot costs only itself (design.md §1.7): a lone UTF-16 surrogate escape,
//! an object where a string belongs, a NUL character and a date no warehouse stores each become
//! the closest storable value (or NULL) plus a row in `_hsync_rejects` with the raw value and the
//! reason, while the page, the batch and the table go on. Served over HTTP by the simulator as
//! raw JSON, written into real SQLite and real Postgres, by the backfill and by CDC.

use std::time::Duration;

use hsync::destination::conformance::{Cell, Inspect};
use hsync::hubspot::resolve_objects;
use hsync::state::StateStore;
use hsync::stream::runner::Runner;
use hsync::stream::{backfill, cdc};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::support::Sim;

/// The live contact ids of the simulator, ascending.
async fn contact_ids(sim: &Sim) -> Vec<u64> {
    let truth = sim.admin_ok(Method::GET, "/_sim/truth", None).await;
    let mut ids: Vec<u64> = truth["objects"]["contacts"]["live"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().parse().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

/// Makes the API send `json` (JSON text) as the value of `property` of a contact.
async fn put_raw(sim: &Sim, id: u64, property: &str, json: &str, value: Option<&str>) {
    let body = json!({"properties": {property: {"json": json, "value": value}}});
    sim.admin_ok(Method::PUT, &format!("/_sim/objects/contacts/{id}/raw"), Some(&body)).await;
}

async fn update(sim: &Sim, id: u64, properties: Value) {
    sim.admin_ok(Method::PATCH, &format!("/_sim/objects/contacts/{id}"), Some(&json!({ "properties": properties })))
        .await;
}

fn cell<'a>(rows: &'a [hsync::destination::conformance::Row], id: u64, column: &str) -> &'a Cell {
    let id = i64::try_from(id).unwrap();
    let row = rows.iter().find(|r| r.get("id") == Some(&Cell::Int(id))).unwrap_or_else(|| panic!("row {id} missing"));
    row.get(column).unwrap_or_else(|| panic!("no column {column}"))
}

async fn scenario<D: Inspect, S: StateStore>(sim: &Sim, runner: &Runner<D, S>) {
    sim.admin_ok(
        Method::POST,
        "/_sim/properties/contacts",
        Some(&json!({"name": "birthday", "label": "Birthday", "type": "date", "fieldType": "date"})),
    )
    .await;
    let ids = contact_ids(sim).await;
    let (surrogate, object, nul, bad_date, good_date) = (ids[3], ids[40], ids[41], ids[120], ids[121]);
    put_raw(sim, surrogate, "firstname", r#""a \ud800 b""#, Some("a \u{FFFD} b")).await;
    put_raw(sim, object, "city", r#"{"k":1}"#, None).await;
    update(sim, nul, json!({"lastname": "a\u{0}b"})).await;
    update(sim, bad_date, json!({"birthday": "-0001-01-01"})).await;
    update(sim, good_date, json!({"birthday": "1990-05-17"})).await;

    let never = CancellationToken::new();
    let object_ref = resolve_objects(&runner.client, &["contacts".to_owned()]).await.unwrap().remove(0);
    let table = runner.prepare(&object_ref).await.unwrap();
    let report = crate::support::backfill_with(runner, &table, backfill::Mode::Fresh, backfill::Fetch::InTurn).await;
    assert!(report.finished, "the backfill went past every bad value");

    let rows = runner.dest.read_table("contacts").await.unwrap();
    assert_eq!(rows.len(), ids.len(), "every contact is in the table");
    assert_eq!(cell(&rows, surrogate, "firstname"), &Cell::Text("a \u{FFFD} b".into()));
    assert_eq!(cell(&rows, object, "city"), &Cell::Text(r#"{"k":1}"#.into()));
    assert_eq!(cell(&rows, nul, "lastname"), &Cell::Text("a\u{FFFD}b".into()));
    assert_eq!(cell(&rows, bad_date, "birthday"), &Cell::Null);
    assert_eq!(cell(&rows, good_date, "birthday"), &Cell::Date("1990-05-17".into()));

    let rejects = runner.dest.read_rejects("contacts").await.unwrap();
    let find = |id: u64, property: &str| {
        rejects
            .iter()
            .find(|r| r.id == id.to_string() && r.property == property)
            .unwrap_or_else(|| panic!("no reject for {id} {property}: {rejects:?}"))
    };
    assert_eq!(find(surrogate, "firstname").raw, r"a \ud800 b", "the raw value keeps the escape");
    assert!(find(surrogate, "firstname").reason.contains("surrogate"));
    assert_eq!(find(object, "city").raw, r#"{"k":1}"#);
    assert_eq!(find(nul, "lastname").raw, r"a\u0000b");
    assert_eq!(find(bad_date, "birthday").raw, "-0001-01-01");
    assert!(find(bad_date, "birthday").reason.contains("between the years 1 and 9999"));
    assert!(!rejects.iter().any(|r| r.id == good_date.to_string()), "a good value is not rejected");

    // CDC reads a newly broken value the same way: the pass ends and the rest of its page lands.
    let (later, neighbour) = (ids[7], ids[8]);
    put_raw(sim, later, "jobtitle", r#""x \udfff""#, None).await;
    update(sim, neighbour, json!({"jobtitle": "Chief Survivor"})).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let table = runner.prepare(&object_ref).await.unwrap();
    let pass = cdc::pass(runner, &table, Duration::from_secs(1), backfill::DEFAULT_CONCURRENCY, &never).await.unwrap();
    assert!(pass.rows >= 2, "cdc wrote both changed contacts: {}", pass.rows);
    let rows = runner.dest.read_table("contacts").await.unwrap();
    assert_eq!(cell(&rows, later, "jobtitle"), &Cell::Text("x \u{FFFD}".into()));
    assert_eq!(cell(&rows, neighbour, "jobtitle"), &Cell::Text("Chief Survivor".into()));
    let rejects = runner.dest.read_rejects("contacts").await.unwrap();
    assert!(rejects.iter().any(|r| r.id == later.to_string() && r.property == "jobtitle" && r.raw == r"x \udfff"));
}

#[tokio::test]
async fn bad_values_cost_only_themselves_in_sqlite() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let runner = crate::support::sqlite_runner(&sim, dir.path()).await;
    scenario(&sim, &runner).await;
}

#[tokio::test]
async fn bad_values_cost_only_themselves_in_postgres() {
    let Some(pg) = crate::support::FreshPostgres::create().await else { return };
    let sim = Sim::small().await;
    let runner = crate::support::postgres_runner(&sim, &pg).await;
    scenario(&sim, &runner).await;
    pg.drop_schemas().await;
}
