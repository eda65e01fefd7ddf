//! Property names that collide as column names (`id` beside `p_id`, `_hsync_cursor` beside
//! `p__hsync_cursor`, a long name beside its own hashed form, names differing only in case) or
//! cannot be column names at all (empty, holding a NUL) never make an object unsyncable: each
//! property gets its own column, recorded so it keeps it, and an unmappable one is skipped with
//! a reject row. Over HTTP from the simulator into real SQLite and real Postgres.

use hsync::destination::conformance::{Cell, Inspect};
use hsync::hubspot::resolve_objects;
use hsync::schema::column_name;
use hsync::state::StateStore;
use hsync::stream::backfill;
use hsync::stream::runner::Runner;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::Sim;

/// Property names HubSpot's API would refuse today but older portals and integrations hold.
fn hostile_names() -> Vec<String> {
    let long = format!("custom_{}", "x".repeat(70));
    let hashed = column_name(&long);
    ["id", "p_id", "_hsync_cursor", "p__hsync_cursor", "DealName", "dealname", "", "a\u{0}b"]
        .map(str::to_owned)
        .into_iter()
        .chain([long, hashed])
        .collect()
}

async fn add_property(sim: &Sim, name: &str) {
    let body = json!({"name": name, "label": format!("Hostile {name:?}"), "type": "string", "fieldType": "text", "unchecked": true});
    sim.admin_ok(Method::POST, "/_sim/properties/contacts", Some(&body)).await;
}

async fn scenario<D: Inspect, S: StateStore>(sim: &Sim, runner: &Runner<D, S>) {
    let names = hostile_names();
    for name in &names {
        add_property(sim, name).await;
    }
    let truth = sim.admin_ok(Method::GET, "/_sim/truth", None).await;
    let id: u64 = truth["objects"]["contacts"]["live"][5]["id"].as_str().unwrap().parse().unwrap();
    let values: serde_json::Map<String, Value> =
        names.iter().enumerate().map(|(i, n)| (n.clone(), json!(format!("value {i}")))).collect();
    sim.admin_ok(Method::PATCH, &format!("/_sim/objects/contacts/{id}"), Some(&json!({ "properties": values }))).await;

    let object = resolve_objects(&runner.client, &["contacts".to_owned()]).await.unwrap().remove(0);
    let table = runner.prepare(&object).await.unwrap();
    let report = crate::support::backfill_with(runner, &table, backfill::Mode::Fresh, backfill::Fetch::InTurn).await;
    assert!(report.finished);

    // Every mappable property has a column of its own, holding its own value.
    let rows = runner.dest.read_table("contacts").await.unwrap();
    let row = rows.iter().find(|r| r.get("id") == Some(&Cell::Int(i64::try_from(id).unwrap()))).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for (i, name) in names.iter().enumerate() {
        let column = table.schema.columns.iter().find(|c| c.property.as_deref() == Some(name.as_str()));
        if name.is_empty() || name.contains('\0') {
            assert!(column.is_none(), "{name:?} is unmappable");
            continue;
        }
        let column = column.unwrap_or_else(|| panic!("{name} has no column"));
        assert!(seen.insert(column.name.to_lowercase()), "{} is given twice", column.name);
        assert_eq!(row.get(&column.name), Some(&Cell::Text(format!("value {i}"))), "{name} -> {}", column.name);
    }
    assert_eq!(row.get("_hsync_cursor").map(|c| matches!(c, Cell::TimestampMs(_))), Some(true));

    // The unmappable ones are recorded once, where operators look for what was not stored.
    let rejects = runner.dest.read_rejects("contacts").await.unwrap();
    assert!(rejects.iter().any(|r| r.property.is_empty() && r.reason.contains("empty")), "{rejects:?}");
    assert!(rejects.iter().any(|r| r.property == r"a\u0000b" && r.reason.contains("NUL")), "{rejects:?}");

    // Stable: a later property cannot take a column, and preparing again changes nothing.
    add_property(sim, "P_ID").await;
    let again = runner.prepare(&object).await.unwrap();
    for column in table.schema.columns.iter().filter(|c| c.property.is_some()) {
        let now = again.schema.columns.iter().find(|c| c.property == column.property).unwrap();
        assert_eq!(now.name, column.name, "{:?} kept its column", column.property);
    }
    let newcomer = again.schema.columns.iter().find(|c| c.property.as_deref() == Some("P_ID")).unwrap();
    assert!(!seen.contains(&newcomer.name.to_lowercase()));
    assert_eq!(runner.dest.read_rejects("contacts").await.unwrap().len(), rejects.len(), "reported once");
    let planned = runner.plan_schema(&object).await.unwrap();
    assert!(planned.plan.is_empty() && planned.plan.assigned.is_empty(), "{:?}", planned.plan.changes);
}

#[tokio::test]
async fn colliding_and_unmappable_property_names_sync_in_sqlite() {
    let sim = Sim::small().await;
    let dir = tempfile::tempdir().unwrap();
    let runner = crate::support::sqlite_runner(&sim, dir.path()).await;
    scenario(&sim, &runner).await;
}

#[tokio::test]
async fn colliding_and_unmappable_property_names_sync_in_postgres() {
    let Some(pg) = crate::support::FreshPostgres::create().await else { return };
    let sim = Sim::small().await;
    let runner = crate::support::postgres_runner(&sim, &pg).await;
    scenario(&sim, &runner).await;
    pg.drop_schemas().await;
}
