//! A realistic property catalogue: HubSpot's own properties by name and type (hundreds per
//! standard object), association rollups that change without moving last-modified, and
//! sensitive properties listed and served only when asked for.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{filter, one_group, Sim};

async fn definitions(sim: &Sim, path: &str) -> Vec<Value> {
    let (status, _, body) = sim.get(path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body["results"].as_array().unwrap().clone()
}

#[tokio::test]
async fn standard_objects_list_hundreds_of_hubspot_properties_of_every_type() {
    let sim = Sim::small().await;
    for (object, at_least) in [("contacts", 300), ("companies", 200), ("deals", 200), ("tickets", 150)] {
        let defs = definitions(&sim, &format!("/crm/v3/properties/{object}")).await;
        assert!(defs.len() >= at_least, "{object}: {} properties", defs.len());
        let hubspot = defs.iter().filter(|d| d["hubspotDefined"] == true).count();
        assert!(hubspot >= at_least - 20, "{object}: {hubspot} HubSpot-defined");
        let mut names: Vec<&str> = defs.iter().map(|d| d["name"].as_str().unwrap()).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "{object}: a name listed twice");
        let types: BTreeMap<&str, usize> = defs.iter().fold(BTreeMap::new(), |mut m, d| {
            *m.entry(d["type"].as_str().unwrap()).or_default() += 1;
            m
        });
        for kind in ["string", "number", "datetime", "enumeration", "bool", "object_coordinates"] {
            assert!(types.contains_key(kind), "{object}: no {kind} property in {types:?}");
        }
        let unique = defs.iter().filter(|d| d["hasUniqueValue"] == true).count();
        assert!(unique >= 2, "{object}: {unique} unique properties");
        let read_only = defs.iter().filter(|d| d["modificationMetadata"]["readOnlyValue"] == true).count();
        let calculation = defs.iter().filter(|d| d["fieldType"].as_str().unwrap().starts_with("calculation_")).count();
        assert!(read_only > 50 && calculation > 10, "{object}: {read_only} read-only, {calculation} calculation_*");
        assert!(
            defs.iter().all(|d| d["dataSensitivity"] == "non_sensitive"),
            "{object}: the default lists non-sensitive only"
        );
    }
    // Most of HubSpot's own properties are empty on most records; search sends them as null.
    let page = sim
        .search("contacts", &json!({"properties": ["hs_notes_last_activity", "hs_v2_date_entered_lead"], "limit": 5}))
        .await;
    let first = &page["results"][0]["properties"];
    assert!(first.as_object().unwrap().contains_key("hs_notes_last_activity"), "{first}");
}

#[tokio::test]
async fn sensitive_properties_are_listed_and_served_only_when_asked_for() {
    let sim = Sim::small().await;
    let plain = definitions(&sim, "/crm/v3/properties/contacts").await;
    assert!(plain.iter().all(|d| d["name"] != "health_notes"));
    let sensitive = definitions(&sim, "/crm/v3/properties/contacts?dataSensitivity=sensitive").await;
    assert_eq!(sensitive.len(), 1, "{sensitive:?}");
    assert_eq!(sensitive[0]["name"], "health_notes");
    assert_eq!(sensitive[0]["dataSensitivity"], "sensitive");
    assert!(definitions(&sim, "/crm/v3/properties/contacts?dataSensitivity=highly_sensitive").await.is_empty());
    let (status, _, body) = sim.get("/crm/v3/properties/contacts?dataSensitivity=secret").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // The batch read of definitions takes the level in its body.
    let (status, _, body) = sim
        .post(
            "/crm/v3/properties/contacts/batch/read",
            &json!({"inputs": [{"name": "health_notes"}, {"name": "email"}], "archived": false, "dataSensitivity": "sensitive"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["results"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["health_notes"]);
    // Values come only when the property is named; the defaults never carry it.
    let all = sim.search("contacts", &json!({"properties": ["health_notes"], "limit": 100})).await;
    let valued =
        all["results"].as_array().unwrap().iter().filter(|r| r["properties"]["health_notes"].is_string()).count();
    assert!(valued > 10, "{valued} of 100 contacts have a value");
    let defaults = sim.search("contacts", &json!({"limit": 100})).await;
    assert!(defaults["results"].as_array().unwrap().iter().all(|r| r["properties"].get("health_notes").is_none()));
}

async fn company(sim: &Sim, id: u64) -> Value {
    let path = format!("/crm/v3/objects/companies/{id}?properties=num_associated_deals,hs_lastmodifieddate&propertiesWithHistory=num_associated_deals");
    let (status, _, body) = sim.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn deals_of(company: &Value) -> Option<u64> {
    company["properties"]["num_associated_deals"].as_str().map(|v| v.parse().unwrap())
}

#[tokio::test]
async fn rollups_follow_associations_without_moving_last_modified() {
    let sim = Sim::small().await;
    let companies = sim.truth_ids("companies").await;
    let deals = sim.truth_ids("deals").await;
    // Seeded: every company's rollup counts its generated deals.
    let truth = sim.truth("companies").await;
    let seeded: u64 = truth["objects"]["companies"]["live"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["properties"]["num_associated_deals"].as_str().map(|v| v.parse::<u64>().unwrap()))
        .sum();
    assert_eq!(seeded, deals.len() as u64, "each generated deal has one company");

    let id = *companies.iter().next().unwrap();
    let before = company(&sim, id).await;
    let count = deals_of(&before).unwrap_or(0);
    let new_deal = sim.admin_create("deals", json!({"dealname": "Linked later"})).await;
    let (status, _, body) =
        sim.put(&format!("/crm/v4/objects/companies/{id}/associations/default/deals/{new_deal}")).await;
    assert!(status.is_success(), "{body}");
    let after = company(&sim, id).await;
    assert_eq!(deals_of(&after), Some(count + 1), "{after}");
    assert_eq!(after["updatedAt"], before["updatedAt"], "the rollup does not move last-modified");
    assert_eq!(after["properties"]["hs_lastmodifieddate"], before["properties"]["hs_lastmodifieddate"]);
    let newest = &after["propertiesWithHistory"]["num_associated_deals"][0];
    assert_eq!(newest["sourceType"], "CALCULATED", "{newest}");
    assert_eq!(newest["value"], (count + 1).to_string());
    // Search sees the new value (the index lag is zero in the small portal) at the old cursor.
    let found = sim
        .search_ids(
            "companies",
            &one_group(vec![
                filter("hs_object_id", "EQ", id.to_string()),
                filter("num_associated_deals", "EQ", (count + 1).to_string()),
            ]),
        )
        .await;
    assert!(found.contains(&id), "search filters on the rollup");

    // Archiving the deal takes it out of the count; restoring brings it back.
    sim.admin_ok(Method::POST, &format!("/_sim/objects/deals/{new_deal}/archive"), None).await;
    assert_eq!(deals_of(&company(&sim, id).await), Some(count));
    sim.admin_ok(Method::POST, &format!("/_sim/objects/deals/{new_deal}/restore"), None).await;
    assert_eq!(deals_of(&company(&sim, id).await), Some(count + 1));
    // Removing the association (admin API) lowers it too, to zero rather than to no value.
    let (status, body) = sim
        .admin(
            Method::DELETE,
            "/_sim/associations",
            Some(&json!({"from": "deals", "fromId": new_deal, "to": "companies", "toId": id})),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let last = company(&sim, id).await;
    assert_eq!(deals_of(&last), Some(count), "{last}");
    assert_eq!(last["updatedAt"], before["updatedAt"]);
    // A new company with no deal has no value, not zero.
    let fresh = sim.admin_create("companies", json!({"name": "Empty Co"})).await;
    assert_eq!(deals_of(&company(&sim, fresh).await), None);
}

#[tokio::test]
async fn a_narrow_catalogue_keeps_the_generated_properties_and_the_rollups() {
    let spec = hsync_sim::PortalSpec { hubspot_catalogue: false, ..crate::support::small_portal() };
    let sim = Sim::start(crate::support::unlimited(spec)).await;
    let defs = definitions(&sim, "/crm/v3/properties/companies").await;
    assert!(defs.len() < 40, "{} properties", defs.len());
    assert!(defs
        .iter()
        .any(|d| d["name"] == "num_associated_deals" && d["modificationMetadata"]["readOnlyValue"] == true));
    assert!(defs.iter().all(|d| d["name"] != "hs_notes_last_activity"));
}
