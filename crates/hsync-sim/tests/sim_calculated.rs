//! A realistic property catalogue: HubSpot's own properties by name and type (hundreds per
//! standard object), association rollups that change without moving last-modified, searchable
//! phone numbers that follow the phone properties, and sensitive properties listed and served
//! only when asked for.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{category, filter, one_group, Sim};

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
    // A searchable phone number comes with its phone property: contacts generate `phone`, but
    // `mobilephone` and companies' `phone` are only in the full catalogue.
    assert!(defs.iter().all(|d| d["name"] != PHONE_SEARCH), "companies have no phone here");
    let contacts = definitions(&sim, "/crm/v3/properties/contacts").await;
    assert!(contacts.iter().any(|d| d["name"] == PHONE_SEARCH && d["calculated"] == true));
    assert!(contacts.iter().all(|d| d["name"] != MOBILE_SEARCH));
}

const PHONE_SEARCH: &str = "hs_searchable_calculated_phone_number";
const MOBILE_SEARCH: &str = "hs_searchable_calculated_mobile_number";

/// A contact's properties, with the history of the searchable phone number.
async fn contact(sim: &Sim, id: u64) -> Value {
    let path = format!(
        "/crm/v3/objects/contacts/{id}?properties=phone,mobilephone,{PHONE_SEARCH},{MOBILE_SEARCH},lastmodifieddate&propertiesWithHistory={PHONE_SEARCH}"
    );
    let (status, _, body) = sim.get(&path).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Contacts whose `property` is `IN` `value`, as HubSpot's search guide has clients search
/// phone numbers.
async fn by_number(sim: &Sim, property: &str, value: &str) -> std::collections::BTreeSet<u64> {
    let body =
        json!({"filterGroups": [{"filters": [{"propertyName": property, "operator": "IN", "values": [value]}]}]});
    sim.search_ids("contacts", &body).await
}

#[tokio::test]
async fn searchable_phone_numbers_follow_the_phone_properties_and_refuse_writes() {
    let sim = Sim::small().await;
    // Defined as HubSpot lists them: calculated and read-only, on contacts and companies.
    for (object, name) in [("contacts", PHONE_SEARCH), ("contacts", MOBILE_SEARCH), ("companies", PHONE_SEARCH)] {
        let (status, _, def) = sim.get(&format!("/crm/v3/properties/{object}/{name}")).await;
        assert_eq!(status, StatusCode::OK, "{object}.{name}: {def}");
        assert_eq!((&def["calculated"], &def["modificationMetadata"]["readOnlyValue"]), (&json!(true), &json!(true)));
    }

    let (status, _, created) = sim
        .post(
            "/crm/v3/objects/contacts",
            &json!({"properties": {"email": "phone@example.com", "phone": "+1 415-555-2671", "mobilephone": "+44 7700 900123"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id: u64 = created["id"].as_str().unwrap().parse().unwrap();
    let one = std::collections::BTreeSet::from([id]);
    // Area code and local number, without the country code.
    assert_eq!(by_number(&sim, PHONE_SEARCH, "4155552671").await, one);
    assert_eq!(by_number(&sim, MOBILE_SEARCH, "7700900123").await, one);
    let eq = one_group(vec![filter(MOBILE_SEARCH, "EQ", "7700900123")]);
    assert_eq!(sim.search_ids("contacts", &eq).await, one);
    let before = contact(&sim, id).await;
    assert_eq!(before["properties"][PHONE_SEARCH], "4155552671", "{before}");
    assert_eq!(before["properties"][MOBILE_SEARCH], "7700900123");

    // A changed phone moves the value, as a calculated version at the phone's write.
    let (status, _, body) =
        sim.patch(&format!("/crm/v3/objects/contacts/{id}"), &json!({"properties": {"phone": "(212) 555-0100"}})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(by_number(&sim, PHONE_SEARCH, "4155552671").await.is_empty());
    assert_eq!(by_number(&sim, PHONE_SEARCH, "2125550100").await, one);
    let after = contact(&sim, id).await;
    assert_eq!(after["properties"][PHONE_SEARCH], "2125550100", "{after}");
    let versions = after["propertiesWithHistory"][PHONE_SEARCH].as_array().unwrap();
    let values: Vec<&Value> = versions.iter().map(|v| &v["value"]).collect();
    assert_eq!(values, [&json!("2125550100"), &json!("4155552671")], "{versions:?}");
    assert_eq!(versions[0]["sourceType"], "CALCULATED");
    assert_eq!(versions[0]["timestamp"], after["properties"]["lastmodifieddate"], "the phone's write, not later");

    // Admin writes (HubSpot's UI) move it too; a cleared number has no value.
    sim.admin_ok(
        Method::PATCH,
        &format!("/_sim/objects/contacts/{id}"),
        Some(&json!({"properties": {"mobilephone": ""}})),
    )
    .await;
    assert!(contact(&sim, id).await["properties"][MOBILE_SEARCH].is_null());
    assert!(by_number(&sim, MOBILE_SEARCH, "7700900123").await.is_empty());

    // Writing it is refused like any read-only property, and changes nothing.
    let (status, _, body) = sim
        .patch(&format!("/crm/v3/objects/contacts/{id}"), &json!({"properties": {PHONE_SEARCH: "4155552671"}}))
        .await;
    assert_eq!((status, category(&body)), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"), "{body}");
    assert_eq!(body["message"], format!("Property \"{PHONE_SEARCH}\" is read only"));
    assert_eq!(contact(&sim, id).await["properties"][PHONE_SEARCH], "2125550100");

    // Seeded contacts carry it for their generated phones: `+1 (aaa) bbb-cccc` searches as
    // `aaabbbcccc`.
    let truth = sim.truth("contacts").await;
    let seeded = truth["objects"]["contacts"]["live"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["properties"]["phone"].as_str().is_some_and(|p| p.starts_with("+1 (")))
        .expect("a seeded North American phone");
    let phone = seeded["properties"]["phone"].as_str().unwrap();
    let digits: String = phone[3..].chars().filter(char::is_ascii_digit).collect();
    assert_eq!(seeded["properties"][PHONE_SEARCH].as_str(), Some(digits.as_str()), "{seeded}");
    let seeded_id: u64 = seeded["id"].as_str().unwrap().parse().unwrap();
    assert!(by_number(&sim, PHONE_SEARCH, &digits).await.contains(&seeded_id));
}
