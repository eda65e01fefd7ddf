//! Every catalogue type end to end, as an operator runs it: `hsync backfill`, changes in
//! HubSpot (engagements updated, a note archived, a line item created, a contract changed and
//! another archived, edges added and removed), then `cdc --once`, `associations --sweep`,
//! `deletes`, `dimensions` and `verify` as real subprocesses against the simulator, into real
//! SQLite and real Postgres. Every record, flag and edge is compared with the simulator's
//! ground truth (zero differences); contracts, which HubSpot serves no search for, go through
//! the list path and never call search. The warehouses (BigQuery, Snowflake, Parquet) run the
//! same scenario on [`WAREHOUSE_OBJECTS`] from their own test files. A token without one
//! type's scope: `check` names the scope, the command fails for that type alone and every
//! other type syncs completely.

use std::path::{Path, PathBuf};

use hsync::destination::conformance::{Cell, Inspect};
use hsync::hubspot::{ReadPath, CATALOGUE};
use hsync_sim::PortalSpec;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{explain, hsync, hsync_with, logged_since, stdout, FreshPostgres, Sim, TOKEN_VAR};
use crate::sync_associations::edge_differences_in;
use crate::sync_engine::differences_in;

/// Every catalogue type, then the custom object, in the catalogue's order (which decides the
/// side each association pair is stored from).
fn objects() -> Vec<&'static str> {
    CATALOGUE.iter().map(|t| t.name).chain(["cars"]).collect()
}

fn portal() -> PortalSpec {
    let contacts = 120;
    PortalSpec {
        contacts,
        companies: 30,
        deals: 40,
        tickets: 15,
        cars: 8,
        objects: PortalSpec::catalogue_counts(contacts),
        custom_properties: 3,
        // Small pages, so a contact's many engagements follow their own paging tokens.
        association_page_size: 5,
        ..PortalSpec::default()
    }
}

/// The types the warehouse scenarios sync: two engagement types, a commerce type, a type
/// without search, and the standard objects they associate with.
pub(crate) const WAREHOUSE_OBJECTS: [&str; 7] =
    ["contacts", "companies", "deals", "calls", "notes", "line_items", "contracts"];

/// A small portal of [`WAREHOUSE_OBJECTS`] for the emulated warehouses, where every statement
/// is slow.
pub(crate) fn warehouse_portal() -> PortalSpec {
    let contacts = 40;
    let mut objects = PortalSpec::catalogue_counts(contacts);
    objects.retain(|name, _| WAREHOUSE_OBJECTS.contains(&name.as_str()));
    // A few of each at least: the scenario changes one contract and archives another.
    objects.values_mut().for_each(|count| *count = (*count).max(6));
    PortalSpec {
        contacts,
        companies: 10,
        deals: 15,
        tickets: 0,
        cars: 0,
        objects,
        custom_properties: 1,
        association_page_size: 5,
        ..PortalSpec::default()
    }
}

pub(crate) fn write_config(dir: &Path, base_url: &str, destination: &str, objects: &[&str]) -> PathBuf {
    let path = dir.join("hsync.toml");
    let list: Vec<String> = objects.iter().map(|o| format!("\"{o}\"")).collect();
    let text = format!(
        "[hubspot]\nbase_url = \"{base_url}\"\ntoken_env = \"{TOKEN_VAR}\"\n\n[destination]\n{destination}\n\n\
         [sync]\nobjects = [{}]\nsettle_lag_secs = 1\n",
        list.join(", ")
    );
    std::fs::write(&path, text).unwrap();
    path
}

pub(crate) async fn run_ok(config: &Path, args: &[&str]) -> String {
    let out = hsync(config, args).await;
    assert!(out.status.success(), "hsync {args:?}: {}", explain(&out));
    stdout(&out)
}

fn first_live(truth: &Value, object: &str) -> Vec<i64> {
    truth["objects"][object]["live"]
        .as_array()
        .unwrap_or_else(|| panic!("no {object} in the truth"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// Changes in HubSpot after the backfill, on the new types.
async fn change_portal(sim: &Sim) {
    let truth = sim.admin(Method::GET, "/_sim/truth?values=false", None).await.1;
    sim.admin_ok(Method::POST, "/_sim/objects/calls/touch", Some(&json!({"count": 25}))).await;
    sim.admin_ok(Method::POST, "/_sim/objects/line_items/touch", Some(&json!({"count": 5}))).await;
    let note = first_live(&truth, "notes")[0];
    sim.admin_ok(Method::POST, &format!("/_sim/objects/notes/{note}/archive"), None).await;
    let created = sim
        .admin_ok(
            Method::POST,
            "/_sim/objects/line_items",
            Some(&json!({"properties": {"name": "Extra seat", "quantity": "3", "price": "19.5"}})),
        )
        .await;
    let line_item: i64 = created["id"].as_str().map_or_else(|| created["id"].as_i64().unwrap(), |s| s.parse().unwrap());
    let deal = first_live(&truth, "deals")[0];
    let body = json!({"from": "line_items", "fromId": line_item, "to": "deals", "toId": deal, "typeIds": [20]});
    sim.admin_ok(Method::POST, "/_sim/associations", Some(&body)).await;
    let contracts = first_live(&truth, "contracts");
    assert!(contracts.len() >= 2, "the portal has contracts to change");
    let body = json!({"properties": {"hs_name": "Renewed contract"}});
    sim.admin_ok(Method::PATCH, &format!("/_sim/objects/contracts/{}", contracts[0]), Some(&body)).await;
    sim.admin_ok(Method::POST, &format!("/_sim/objects/contracts/{}/archive", contracts[1]), None).await;
    // A contact loses one of its calls, found only by the sweep (neither record's cursor moves).
    let contact = first_live(&truth, "contacts")[0];
    let edges = truth["associations"].as_array().unwrap();
    if let Some(edge) = edges.iter().find(|e| {
        e["fromType"] == "contacts" && e["toType"] == "calls" && e["fromId"].as_str() == Some(&contact.to_string())
    }) {
        let call: i64 = edge["toId"].as_str().unwrap().parse().unwrap();
        let body = json!({"from": "contacts", "fromId": contact, "to": "calls", "toId": call});
        sim.admin_ok(Method::DELETE, "/_sim/associations", Some(&body)).await;
    }
    // Past the settle lag, so the CDC pass reads every change.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
}

fn assert_none(what: &str, diffs: &[String]) {
    assert!(
        diffs.is_empty(),
        "{what}: {} differences, first ones:\n{}",
        diffs.len(),
        diffs.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// The scenario of the module docs over `objects` against `dest`, configured by `config`.
pub(crate) async fn scenario<D: Inspect>(sim: &Sim, config: &Path, dest: &D, objects: &[&str]) {
    run_ok(config, &["backfill"]).await;
    assert_none("records after the backfill", &differences_in(dest, sim, objects).await);
    let searched = logged_since(sim, 0).await;
    let synced = |t: &&hsync::hubspot::ObjectType| objects.contains(&t.name);
    for t in CATALOGUE.iter().filter(synced).filter(|t| t.read_path() == ReadPath::List) {
        let search = format!("/objects/{}/search", t.name);
        assert!(
            !searched.iter().any(|e| e["path"].as_str().is_some_and(|p| p.ends_with(&search))),
            "{} has no search in HubSpot, so hsync must not call it",
            t.name
        );
    }

    change_portal(sim).await;
    run_ok(config, &["cdc", "--once"]).await;
    run_ok(config, &["associations", "--sweep"]).await;
    run_ok(config, &["deletes"]).await;
    let dimensions = run_ok(config, &["dimensions"]).await;
    assert!(dimensions.contains("pipelines"), "{dimensions}");
    let verify = hsync(config, &["verify"]).await;
    assert!(verify.status.success(), "verify: {}", explain(&verify));

    assert_none("records", &differences_in(dest, sim, objects).await);
    assert_none("edges", &edge_differences_in(dest, sim, objects).await);
    // The archived note and contract are flagged, not dropped.
    let truth = sim.admin(Method::GET, "/_sim/truth?values=false", None).await.1;
    for object in ["notes", "contracts"] {
        let archived: Vec<i64> = truth["objects"][object]["archived"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(!archived.is_empty(), "{object} has an archived record");
        let rows = dest.read_table(object).await.unwrap();
        for id in archived {
            let row = rows.iter().find(|r| r.get("id") == Some(&Cell::Int(id)));
            let flag = row.and_then(|r| r.get("_hsync_archived_at"));
            assert!(matches!(flag, Some(c) if *c != Cell::Null), "{object} {id} is flagged archived: {row:?}");
        }
    }
    // Pipelines of every synced type that has them.
    let pipelines = dest.read_table("pipelines").await.unwrap();
    for t in CATALOGUE.iter().filter(synced).filter(|t| t.pipelines) {
        assert!(
            pipelines.iter().any(|r| r.get("object_type") == Some(&Cell::Text(t.name.to_owned()))),
            "the pipelines of {} are stored",
            t.name
        );
    }
}

#[tokio::test]
async fn every_catalogue_type_matches_ground_truth_in_sqlite() {
    let sim = Sim::start(crate::support::unlimited(portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let config = write_config(dir.path(), &sim.handle.base_url(), &format!("url = \"{url}\""), &objects());
    let dest = hsync::destination::sqlite::SqliteDestination::connect(&url).await.unwrap();
    scenario(&sim, &config, &dest, &objects()).await;
}

#[tokio::test]
async fn every_catalogue_type_matches_ground_truth_in_postgres() {
    let Some(pg) = FreshPostgres::create().await else { return };
    let sim = Sim::start(crate::support::unlimited(portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.handle.base_url(), &pg.destination_keys(), &objects());
    let dest = hsync::destination::postgres::PostgresDestination::connect(&pg.url, &pg.data_schema, &pg.state_schema)
        .await
        .unwrap();
    scenario(&sim, &config, &dest, &objects()).await;
    pg.drop_schemas().await;
}

/// The scopes of every type but line items (and the schema, owner and custom-object scopes).
pub(crate) fn scopes_without_line_items() -> Vec<String> {
    let mut scopes: Vec<&str> = CATALOGUE
        .iter()
        .filter(|t| t.name != "line_items")
        .flat_map(|t| t.read_scopes.iter().copied())
        .filter(|s| *s != "e-commerce" && *s != "crm.objects.line_items.read")
        .collect();
    let schemas: Vec<String> = CATALOGUE.iter().map(|t| format!("crm.schemas.{}.read", t.name)).collect();
    scopes.extend(schemas.iter().map(String::as_str));
    scopes.extend(["crm.objects.owners.read", "crm.objects.custom.read", "crm.schemas.custom.read"]);
    scopes.sort_unstable();
    scopes.dedup();
    scopes.into_iter().map(str::to_owned).collect()
}

#[tokio::test]
async fn a_missing_scope_stops_only_its_type() {
    let sim = Sim::start(crate::support::unlimited(portal())).await;
    let token = "pat-na1-without-line-items";
    sim.admin_ok(Method::PUT, "/_sim/tokens", Some(&json!({"token": token, "scopes": scopes_without_line_items()})))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let objects = ["contacts", "deals", "line_items", "calls", "products"];
    let config = write_config(dir.path(), &sim.handle.base_url(), &format!("url = \"{url}\""), &objects);

    let check = hsync_with(&config, &["check"], Some(token)).await;
    let text = stdout(&check);
    assert_eq!(check.status.code(), Some(77), "the scope failure's class: {}", explain(&check));
    let failed: Vec<&str> = text.lines().filter(|l| l.starts_with("FAILED")).collect();
    assert!(!failed.is_empty() && failed.iter().all(|l| l.contains("line_items")), "{text}");
    assert!(failed.iter().any(|l| l.contains("crm.objects.line_items.read")), "the scope is named: {text}");
    assert!(text.contains("ok       calls records"), "{text}");

    let backfill = hsync_with(&config, &["backfill"], Some(token)).await;
    assert!(!backfill.status.success(), "the line items failed: {}", explain(&backfill));
    let cdc = hsync_with(&config, &["cdc", "--once"], Some(token)).await;
    assert!(!cdc.status.success());
    let sweep = hsync_with(&config, &["associations", "--sweep"], Some(token)).await;
    assert!(sweep.status.success(), "the pairs without line items go on: {}", explain(&sweep));
    let dest = hsync::destination::sqlite::SqliteDestination::connect(&url).await.unwrap();
    let others = ["contacts", "deals", "calls", "products"];
    assert_none("the other types", &differences_in(&dest, &sim, &others).await);
    assert_none("the other types' edges", &edge_differences_in(&dest, &sim, &others).await);
}
