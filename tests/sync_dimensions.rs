//! Owners and pipelines as dimension tables, end to end: a refresh reads the simulator's owners
//! (active and archived) and the pipelines of every type that has them over HTTP into real
//! SQLite and real Postgres, and the tables equal the simulator's ground truth. After owners
//! and pipelines are added, changed and removed in the simulator, a second refresh follows:
//! additions and changes arrive, removed rows stay with their values and `_hsync_removed_at`.
//! `hsync dimensions` as a real process records its runs (ok and failed) in the run history
//! `hsync status` reads.

use std::collections::BTreeMap;

use hsync::destination::conformance::{Cell, Inspect};
use hsync::schema::dimension::{DimensionTable, OWNERS, PIPELINES, PIPELINE_STAGES, REMOVED_AT};
use hsync::schema::ColumnType;
use hsync::state::StateStore;
use hsync::stream::dimensions;
use hsync::stream::runner::Runner;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{explain, hsync, hsync_with, Sim, TOKEN_VAR};
use crate::sync_engine::expected_cell;

/// Every catalogue type with pipelines, as if all were synced: their pipelines are refreshed.
fn with_pipelines() -> Vec<hsync::hubspot::ObjectRef> {
    hsync::hubspot::CATALOGUE.iter().filter(|t| t.pipelines).map(hsync::hubspot::ObjectRef::of).collect()
}

/// A HubSpot value as the text the refresh hands to the batch builder.
fn raw(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A row as column to raw value.
type RawRow = BTreeMap<&'static str, Option<String>>;
/// Rows by key, by table name.
type RowsByTable = BTreeMap<&'static str, BTreeMap<Vec<String>, RawRow>>;

/// The rows HubSpot's lists say each dimension table should hold, from the ground-truth dump.
fn expected_rows(truth: &Value) -> RowsByTable {
    let mut out: BTreeMap<_, BTreeMap<_, _>> = BTreeMap::new();
    for o in truth["owners"].as_array().unwrap() {
        let row = BTreeMap::from([
            ("id", raw(&o["id"])),
            ("email", raw(&o["email"])),
            ("first_name", raw(&o["firstName"])),
            ("last_name", raw(&o["lastName"])),
            ("user_id", raw(&o["userId"])),
            ("user_id_including_inactive", raw(&o["userIdIncludingInactive"])),
            ("type", raw(&o["type"])),
            ("teams", Some(o["teams"].to_string())),
            ("archived", raw(&o["archived"])),
            ("created_at", raw(&o["createdAt"])),
            ("updated_at", raw(&o["updatedAt"])),
        ]);
        out.entry(OWNERS.name).or_default().insert(vec![raw(&o["id"]).unwrap()], row);
    }
    for (object_type, pipelines) in truth["pipelines"].as_object().unwrap() {
        for p in pipelines.as_array().unwrap() {
            let id = raw(&p["id"]).unwrap();
            let row = BTreeMap::from([
                ("object_type", Some(object_type.clone())),
                ("id", Some(id.clone())),
                ("label", raw(&p["label"])),
                ("display_order", raw(&p["displayOrder"])),
                ("archived", raw(&p["archived"])),
                ("archived_at", raw(&p["archivedAt"])),
                ("created_at", raw(&p["createdAt"])),
                ("updated_at", raw(&p["updatedAt"])),
            ]);
            out.entry(PIPELINES.name).or_default().insert(vec![object_type.clone(), id.clone()], row);
            for s in p["stages"].as_array().unwrap() {
                let metadata = &s["metadata"];
                // `is_closed` is HubSpot's `isClosed`, else a ticket stage's `ticketState`.
                let closed = raw(&metadata["isClosed"]).or_else(|| match metadata["ticketState"].as_str() {
                    Some("CLOSED") => Some("true".to_owned()),
                    Some("OPEN") => Some("false".to_owned()),
                    _ => None,
                });
                let row = BTreeMap::from([
                    ("object_type", Some(object_type.clone())),
                    ("pipeline_id", Some(id.clone())),
                    ("id", raw(&s["id"])),
                    ("label", raw(&s["label"])),
                    ("display_order", raw(&s["displayOrder"])),
                    ("archived", raw(&s["archived"])),
                    ("probability", raw(&metadata["probability"])),
                    ("is_closed", closed),
                    ("metadata", Some(metadata.to_string())),
                    ("archived_at", raw(&s["archivedAt"])),
                    ("created_at", raw(&s["createdAt"])),
                    ("updated_at", raw(&s["updatedAt"])),
                ]);
                let key = vec![object_type.clone(), id.clone(), raw(&s["id"]).unwrap()];
                out.entry(PIPELINE_STAGES.name).or_default().insert(key, row);
            }
        }
    }
    out
}

fn key_of(table: &DimensionTable, row: &BTreeMap<String, Cell>) -> Vec<String> {
    table
        .key
        .iter()
        .map(|k| match row.get(*k) {
            Some(Cell::Text(v)) => v.clone(),
            other => panic!("{} row without a text key {k}: {other:?}", table.name),
        })
        .collect()
}

/// Every difference between the dimension tables and the simulator's owners and pipelines:
/// listed rows must match and be live, rows HubSpot no longer lists must be flagged removed.
async fn dimension_differences<D: Inspect>(dest: &D, sim: &Sim) -> Vec<String> {
    let truth = sim.admin_ok(Method::GET, "/_sim/truth?objects=deals", None).await;
    let expected = expected_rows(&truth);
    let mut out = Vec::new();
    for table in [&OWNERS, &PIPELINES, &PIPELINE_STAGES] {
        let wanted = expected.get(table.name).cloned().unwrap_or_default();
        let stored: BTreeMap<Vec<String>, BTreeMap<String, Cell>> =
            dest.read_table(table.name).await.unwrap().into_iter().map(|r| (key_of(table, &r), r)).collect();
        for (key, row) in &stored {
            if !wanted.contains_key(key) && row.get(REMOVED_AT) == Some(&Cell::Null) {
                out.push(format!("{} {key:?}: stored as live but HubSpot does not list it", table.name));
            }
        }
        for (key, values) in &wanted {
            let Some(row) = stored.get(key) else {
                out.push(format!("{} {key:?}: missing", table.name));
                continue;
            };
            if row.get(REMOVED_AT) != Some(&Cell::Null) {
                out.push(format!("{} {key:?}: HubSpot lists it but it is flagged removed", table.name));
            }
            for (column, ty) in table.columns {
                let expected = match ty {
                    // JSON compares as values, not as text.
                    ColumnType::Json => {
                        values[column].as_deref().map_or(Cell::Null, |v| Cell::Json(serde_json::from_str(v).unwrap()))
                    }
                    _ => expected_cell(*ty, values[column].as_deref()),
                };
                let actual = row.get(*column).cloned().unwrap_or(Cell::Null);
                if expected != actual {
                    out.push(format!("{} {key:?} {column}: expected {expected:?}, found {actual:?}", table.name));
                }
            }
        }
    }
    out
}

fn assert_none(diffs: &[String]) {
    assert!(diffs.is_empty(), "{} differences:\n{}", diffs.len(), diffs.join("\n"));
}

/// The stored row of `table` with `key`.
async fn stored<D: Inspect>(dest: &D, table: &DimensionTable, key: &[&str]) -> BTreeMap<String, Cell> {
    let rows = dest.read_table(table.name).await.unwrap();
    rows.into_iter().find(|r| key_of(table, r) == key).unwrap_or_else(|| panic!("{} {key:?} missing", table.name))
}

/// Owners added, changed (deactivated) and removed; a deal pipeline with a stage relabelled, one
/// removed and one added; a new deal pipeline; the tickets pipeline removed; and the custom
/// object given a pipeline whose id (`default`) the deals also use.
async fn change_owners_and_pipelines(sim: &Sim) {
    let owner = json!({"email": "zoë@example.com", "firstName": "Zoë", "lastName": "Nuñez",
                       "teams": [{"id": 301, "name": "Sales EMEA", "primary": false}, {"id": 9, "name": "Nord", "primary": true}]});
    sim.admin_ok(Method::PUT, "/_sim/owners/20000001", Some(&owner)).await;
    let deactivated = json!({"email": "owner4@example.com", "firstName": "Four", "archived": true});
    sim.admin_ok(Method::PUT, "/_sim/owners/10000005", Some(&deactivated)).await;
    sim.admin_ok(Method::DELETE, "/_sim/owners/10000002", None).await;
    let stage = |id: &str, label: &str, probability: &str, closed: bool| json!({"id": id, "label": label, "metadata": {"probability": probability, "isClosed": closed.to_string()}});
    let renewals = json!({"label": "Renewals", "displayOrder": 1, "stages": [
        stage("renewal_open", "Open", "0.5", false),
        stage("renewal_won", "Renewed", "1.0", true),
        stage("renewal_paused", "Paused", "0.25", false),
    ]});
    sim.admin_ok(Method::PUT, "/_sim/pipelines/deals/renewals", Some(&renewals)).await;
    let partners =
        json!({"label": "Partners \"EU\"", "displayOrder": 2, "stages": [stage("p1", "Intro", "0.1", false)]});
    sim.admin_ok(Method::PUT, "/_sim/pipelines/deals/partners", Some(&partners)).await;
    sim.admin_ok(Method::DELETE, "/_sim/pipelines/tickets/0", None).await;
    let fleet = json!({"label": "Fleet", "stages": [{"id": "ordered", "label": "Ordered", "metadata": {}},
                                                     {"id": "delivered", "label": "Delivered", "metadata": {"isClosed": "true"}}]});
    sim.admin_ok(Method::PUT, "/_sim/pipelines/cars/default", Some(&fleet)).await;
}

async fn scenario<D: Inspect, S: StateStore>(sim: &Sim, runner: &Runner<D, S>) {
    let first = dimensions::refresh(runner, &with_pipelines()).await.unwrap();
    // 23 active and 2 archived owners; deals have 2 pipelines (7 + 3 stages), tickets 1 (4), and
    // leads, orders, listings, appointments, courses and services 1 each (5, 5, 5, 4, 3, 3).
    assert_eq!((first.owners, first.pipelines, first.stages, first.removed), (25, 9, 39, 0), "{first:?}");
    assert_eq!(first.rejects, 0);
    assert_none(&dimension_differences(&runner.dest, sim).await);
    let won = stored(&runner.dest, &PIPELINE_STAGES, &["deals", "default", "closedwon"]).await;
    assert_eq!((&won["probability"], &won["is_closed"]), (&Cell::Decimal("1".into()), &Cell::Bool(true)));
    let closed = stored(&runner.dest, &PIPELINE_STAGES, &["tickets", "0", "4"]).await;
    assert_eq!(closed["is_closed"], Cell::Bool(true), "a ticket stage is closed by its ticketState");
    let checkpoint = runner.state.load_checkpoint(&hsync::state::StreamId::dimensions()).await.unwrap();
    assert_eq!(checkpoint.expect("committed with the tables").state["rows"], json!(73));

    change_owners_and_pipelines(sim).await;
    let before = dimension_differences(&runner.dest, sim).await;
    for expected in [
        "owners [\"20000001\"]: missing",
        "pipelines [\"tickets\", \"0\"]: stored as live but HubSpot does not list it",
        "pipeline_stages [\"deals\", \"renewals\", \"renewal_won\"] label",
    ] {
        assert!(before.iter().any(|d| d.starts_with(expected)), "the comparison sees {expected}: {before:?}");
    }
    let second = dimensions::refresh(runner, &with_pipelines()).await.unwrap();
    // Removed: owner 10000002, the tickets pipeline and its 4 stages, the renewal_lost stage.
    assert_eq!((second.owners, second.pipelines, second.stages, second.removed), (25, 10, 38, 7), "{second:?}");
    assert_none(&dimension_differences(&runner.dest, sim).await);
    let gone = stored(&runner.dest, &OWNERS, &["10000002"]).await;
    assert!(matches!(gone[REMOVED_AT], Cell::TimestampMs(_)), "{gone:?}");
    assert_eq!(gone["email"], Cell::Text("owner1@example.com".into()), "a removed owner keeps its values");
    let fleet = stored(&runner.dest, &PIPELINES, &["cars", "default"]).await;
    let sales = stored(&runner.dest, &PIPELINES, &["deals", "default"]).await;
    assert_eq!((&fleet["label"], &sales["label"]), (&Cell::Text("Fleet".into()), &Cell::Text("Sales Pipeline".into())));

    // Nothing changed: nothing newly removed, the removal times stay.
    let third = dimensions::refresh(runner, &with_pipelines()).await.unwrap();
    assert_eq!(third.removed, 0);
    assert_eq!(stored(&runner.dest, &OWNERS, &["10000002"]).await[REMOVED_AT], gone[REMOVED_AT]);
    assert_none(&dimension_differences(&runner.dest, sim).await);
}

#[tokio::test]
async fn dimensions_follow_owners_and_pipelines_in_sqlite() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let runner = crate::support::sqlite_runner(&sim, dir.path()).await;
    scenario(&sim, &runner).await;
}

#[tokio::test]
async fn dimensions_follow_owners_and_pipelines_in_postgres() {
    let Some(pg) = crate::support::FreshPostgres::create().await else { return };
    let sim = Sim::small().await;
    let runner = crate::support::postgres_runner(&sim, &pg).await;
    scenario(&sim, &runner).await;
    pg.drop_schemas().await;
}

#[tokio::test]
async fn dimensions_command_records_its_runs_in_the_history() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("warehouse.db");
    let config = dir.path().join("hsync.toml");
    let text = format!(
        "[hubspot]\nbase_url = \"{}\"\ntoken_env = \"{TOKEN_VAR}\"\n\n[destination]\nurl = \"sqlite://{}\"\n",
        sim.handle.base_url(),
        db.display()
    );
    std::fs::write(&config, text).unwrap();
    let ok = hsync(&config, &["dimensions"]).await;
    assert_eq!(ok.status.code(), Some(0), "{}", explain(&ok));
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(out.contains("owners: 25 rows") && out.contains("pipeline_stages: 14 rows"), "{}", explain(&ok));

    // A token without the owners scope: the run fails, says which scope to add, and is recorded.
    const LIMITED: &str = "pat-na1-11111111-1111-1111-1111-limitedscope";
    let grant = json!({"token": LIMITED, "scopes": ["crm.objects.deals.read", "tickets", "crm.schemas.custom.read"]});
    sim.admin_ok(Method::PUT, "/_sim/tokens", Some(&grant)).await;
    let failed = hsync_with(&config, &["dimensions"], Some(LIMITED)).await;
    assert_eq!(failed.status.code(), Some(77), "{}", explain(&failed));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("crm.objects.owners.read"), "{}", explain(&failed));

    let status = hsync(&config, &["status", "--json"]).await;
    assert_eq!(status.status.code(), Some(0), "{}", explain(&status));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let stream = status["streams"].as_array().unwrap().iter().find(|s| s["kind"] == "dimensions").expect("a stream");
    assert_eq!(stream["stream"], "dimensions:owners_pipelines", "{stream}");
    assert_eq!(stream["phase"], "refreshed", "{stream}");
    assert_eq!(stream["rows"], json!(42), "{stream}");
    assert_eq!(stream["last_run"]["status"], "failed", "{stream}");
    let message = stream["last_error"]["message"].as_str().unwrap();
    assert!(message.contains("crm.objects.owners.read"), "{message}");
    assert!(!status.to_string().contains("limitedscope"), "the token leaked: {status}");
    let runs = {
        use hsync::destination::sqlite::SqliteDestination;
        let dest = SqliteDestination::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        dest.state_store().recent_runs(10).await.unwrap()
    };
    let statuses: Vec<(&str, i64)> = runs
        .iter()
        .filter(|r| r.stream == hsync::state::StreamId::dimensions())
        .map(|r| (r.status.as_str(), r.rows))
        .collect();
    assert_eq!(statuses, [("failed", 0), ("ok", 42)], "newest first");
}
