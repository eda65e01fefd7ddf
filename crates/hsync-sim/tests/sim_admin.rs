//! The admin API under `/_sim`: every mutation is visible through the HubSpot routes (list,
//! GET, search, properties, associations), `touch` makes a bulk update, and the ground-truth
//! dump has the shape tests compare against.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{filter, id_of, one_group, unique_ids, Sim};

async fn live_ids(sim: &Sim) -> BTreeSet<u64> {
    unique_ids(&sim.list_all("/crm/v3/objects/contacts?limit=100").await)
}

async fn archived_ids(sim: &Sim) -> BTreeSet<u64> {
    unique_ids(&sim.list_all("/crm/v3/objects/contacts?limit=100&archived=true").await)
}

async fn searchable(sim: &Sim, id: u64) -> bool {
    let page = sim.search("contacts", &one_group(vec![filter("hs_object_id", "EQ", id.to_string())])).await;
    page["total"] == 1
}

#[tokio::test]
async fn admin_create_update_archive_restore_are_visible_in_list_and_search() {
    let sim = Sim::small().await;
    let created = sim
        .admin_ok(
            Method::POST,
            "/_sim/objects/contacts",
            Some(&json!({ "properties": { "email": "admin-made@example.com", "firstname": "Adminmade" } })),
        )
        .await;
    let id = id_of(&created);
    let created_ms = created["updatedAtMs"].as_i64().unwrap();
    assert!(live_ids(&sim).await.contains(&id));
    let by_email = sim.search_ids("contacts", &one_group(vec![filter("email", "EQ", "admin-made@example.com")])).await;
    assert_eq!(by_email, BTreeSet::from([id]));

    sim.admin_ok(Method::POST, "/_sim/clock", Some(&json!({ "advanceMs": 5_000 }))).await;
    let updated = sim
        .admin_ok(
            Method::PATCH,
            &format!("/_sim/objects/contacts/{id}"),
            Some(&json!({ "properties": { "firstname": "Changed" } })),
        )
        .await;
    assert!(updated["updatedAtMs"].as_i64().unwrap() >= created_ms + 5_000);
    let (_, _, got) = sim.get(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_eq!(got["properties"]["firstname"], "Changed");
    assert_eq!(got["updatedAt"], updated["updatedAt"]);
    let by_name = sim.search_ids("contacts", &one_group(vec![filter("firstname", "EQ", "changed")])).await;
    assert_eq!(by_name, BTreeSet::from([id]));

    sim.admin_ok(Method::POST, &format!("/_sim/objects/contacts/{id}/archive"), None).await;
    assert!(!live_ids(&sim).await.contains(&id));
    assert_eq!(archived_ids(&sim).await, BTreeSet::from([id]));
    assert!(!searchable(&sim, id).await);
    assert_eq!(sim.get(&format!("/crm/v3/objects/contacts/{id}")).await.0, StatusCode::NOT_FOUND);

    let restored = sim.admin_ok(Method::POST, &format!("/_sim/objects/contacts/{id}/restore"), None).await;
    assert!(restored["updatedAtMs"].as_i64().unwrap() >= updated["updatedAtMs"].as_i64().unwrap());
    assert!(live_ids(&sim).await.contains(&id));
    assert!(archived_ids(&sim).await.is_empty());
    assert!(searchable(&sim, id).await);

    let (status, _) =
        sim.admin(Method::PATCH, "/_sim/objects/contacts/987654321", Some(&json!({ "properties": {} }))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn admin_merge_and_gdpr_delete_are_visible_through_the_api() {
    let sim = Sim::small().await;
    let ids: Vec<u64> = sim.truth_ids("contacts").await.into_iter().collect();
    let (primary, absorbed, purged) = (ids[10], ids[11], ids[12]);

    sim.admin_ok(
        Method::POST,
        "/_sim/objects/contacts/merge",
        Some(&json!({ "primary": primary, "absorbed": absorbed })),
    )
    .await;
    let (_, _, survivor) =
        sim.get(&format!("/crm/v3/objects/contacts/{primary}?properties=hs_merged_object_ids")).await;
    assert_eq!(survivor["properties"]["hs_merged_object_ids"], absorbed.to_string());
    let live = live_ids(&sim).await;
    assert!(live.contains(&primary) && !live.contains(&absorbed));
    assert!(!archived_ids(&sim).await.contains(&absorbed));
    assert!(!searchable(&sim, absorbed).await);

    sim.admin_ok(Method::POST, &format!("/_sim/objects/contacts/{purged}/gdpr-delete"), None).await;
    assert!(!live_ids(&sim).await.contains(&purged));
    assert!(!archived_ids(&sim).await.contains(&purged));
    assert!(!searchable(&sim, purged).await);
    for path in
        [format!("/crm/v3/objects/contacts/{purged}"), format!("/crm/v3/objects/contacts/{purged}?archived=true")]
    {
        assert_eq!(sim.get(&path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let truth = sim.truth("contacts").await;
    let contacts = &truth["objects"]["contacts"];
    assert_eq!(contacts["mergedInto"], json!({ absorbed.to_string(): primary.to_string() }));
    assert_eq!(contacts["gdprDeleted"], json!([purged.to_string()]));
    assert_eq!(contacts["live"].as_array().unwrap().len(), ids.len() - 2);
}

#[tokio::test]
async fn admin_added_property_is_listed_writable_and_archivable() {
    let sim = Sim::small().await;
    let (status, _) = sim
        .admin(
            Method::POST,
            "/_sim/properties/contacts",
            Some(&json!({ "name": "loyalty_tier", "label": "Loyalty tier", "type": "string", "fieldType": "text" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let names = |list: &Value| -> BTreeSet<String> {
        list["results"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect()
    };
    let (_, _, list) = sim.get("/crm/v3/properties/contacts").await;
    assert!(names(&list).contains("loyalty_tier"));

    let id = *sim.truth_ids("contacts").await.iter().next().unwrap();
    let (status, _, body) = sim
        .patch(&format!("/crm/v3/objects/contacts/{id}"), &json!({ "properties": { "loyalty_tier": "gold" } }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, _, got) = sim.get(&format!("/crm/v3/objects/contacts/{id}?properties=loyalty_tier")).await;
    assert_eq!(got["properties"]["loyalty_tier"], "gold");
    let found = sim.search_ids("contacts", &one_group(vec![filter("loyalty_tier", "EQ", "gold")])).await;
    assert_eq!(found, BTreeSet::from([id]));

    let (status, _) = sim.admin(Method::DELETE, "/_sim/properties/contacts/loyalty_tier", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, _, list) = sim.get("/crm/v3/properties/contacts").await;
    assert!(!names(&list).contains("loyalty_tier"));
    let (_, _, archived) = sim.get("/crm/v3/properties/contacts?archived=true").await;
    assert!(names(&archived).contains("loyalty_tier"));
    let (_, _, got) = sim.get(&format!("/crm/v3/objects/contacts/{id}?properties=loyalty_tier")).await;
    assert!(got["properties"].get("loyalty_tier").is_none(), "archived properties are not served");
    let (status, _, _) = sim
        .patch(&format!("/crm/v3/objects/contacts/{id}"), &json!({ "properties": { "loyalty_tier": "silver" } }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn admin_associations_add_and_remove_show_in_v4_and_v3_reads() {
    let sim = Sim::small().await;
    let contact = sim.admin_create("contacts", json!({ "email": "assoc@example.com" })).await;
    let company = *sim.truth_ids("companies").await.iter().next().unwrap();
    let edge = json!({ "from": "contacts", "fromId": contact, "to": "companies", "toId": company, "typeIds": [28] });
    let added = sim.admin_ok(Method::POST, "/_sim/associations", Some(&edge)).await;
    assert_eq!(added["added"], 1);

    let inputs = json!({ "inputs": [{ "id": contact.to_string() }] });
    let read = || sim.post("/crm/v4/associations/contacts/companies/batch/read", &inputs);
    let (status, _, body) = read().await;
    assert_eq!(status, StatusCode::OK);
    let to = &body["results"][0]["to"][0];
    assert_eq!(to["toObjectId"], json!(company));
    let types = to["associationTypes"].as_array().unwrap();
    assert!(types.contains(&json!({ "category": "USER_DEFINED", "typeId": 28, "label": "Billing contact" })));
    assert!(types.contains(&json!({ "category": "HUBSPOT_DEFINED", "typeId": 279, "label": null })));
    let (_, _, v3) = sim.get(&format!("/crm/v3/objects/contacts/{contact}?associations=companies")).await;
    let v3_ids: Vec<&str> = v3["associations"]["companies"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(v3_ids.contains(&company.to_string().as_str()), "{v3}");

    let removed = sim
        .admin_ok(
            Method::DELETE,
            "/_sim/associations",
            Some(&json!({ "from": "contacts", "fromId": contact, "to": "companies", "toId": company })),
        )
        .await;
    assert_eq!(removed["removed"], 1);
    let (status, _, body) = read().await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(body["errors"][0]["subCategory"], "crm.associations.NO_ASSOCIATIONS_FOUND");
}

#[tokio::test]
async fn admin_touch_gives_records_one_shared_lastmodifieddate_found_by_eq() {
    let sim = Sim::small().await;
    sim.admin_ok(Method::POST, "/_sim/clock", Some(&json!({ "advanceMs": 1_000 }))).await;
    let touched = sim.admin_ok(Method::POST, "/_sim/objects/contacts/touch", Some(&json!({ "count": 50 }))).await;
    let records = touched["records"].as_array().unwrap();
    let ids = unique_ids(records);
    assert_eq!(ids.len(), 50);
    let stamps: BTreeSet<i64> = records.iter().map(|r| r["updatedAtMs"].as_i64().unwrap()).collect();
    assert_eq!(stamps.len(), 1, "one shared millisecond");
    let stamp = *stamps.iter().next().unwrap();
    let iso = records[0]["updatedAt"].as_str().unwrap().to_owned();

    let by_ms = sim.search_ids("contacts", &one_group(vec![filter("lastmodifieddate", "EQ", stamp.to_string())])).await;
    assert_eq!(by_ms, ids);
    let by_iso = sim.search_ids("contacts", &one_group(vec![filter("lastmodifieddate", "EQ", iso.clone())])).await;
    assert_eq!(by_iso, ids);
    let truth = sim.truth("contacts").await;
    let at_stamp: BTreeSet<u64> = truth["objects"]["contacts"]["live"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["updatedAtMs"] == stamp)
        .map(id_of)
        .collect();
    assert_eq!(at_stamp, ids);
    let (_, _, one) = sim.get(&format!("/crm/v3/objects/contacts/{}", ids.iter().next().unwrap())).await;
    assert_eq!(one["updatedAt"], iso);
    assert_eq!(one["properties"]["lastmodifieddate"], iso);
}

#[tokio::test]
async fn admin_truth_dump_has_live_archived_merged_purged_and_associations() {
    let sim = Sim::small().await;
    let ids: Vec<u64> = sim.truth_ids("contacts").await.into_iter().collect();
    sim.admin_ok(Method::POST, &format!("/_sim/objects/contacts/{}/archive", ids[0]), None).await;
    sim.admin_ok(Method::POST, "/_sim/objects/contacts/merge", Some(&json!({ "primary": ids[1], "absorbed": ids[2] })))
        .await;
    sim.admin_ok(Method::POST, &format!("/_sim/objects/contacts/{}/gdpr-delete", ids[3]), None).await;

    let truth = sim.admin_ok(Method::GET, "/_sim/truth", None).await;
    assert!(truth["now"].is_i64());
    let objects = truth["objects"].as_object().unwrap();
    let types: BTreeSet<&str> = objects.keys().map(String::as_str).collect();
    // Every type of the catalogue, the original five among them.
    let catalogue: BTreeSet<&str> = hsync_sim::catalogue::TYPES.iter().map(|k| k.name).collect();
    assert_eq!(types, catalogue);
    assert!(["cars", "companies", "contacts", "deals", "tickets"].iter().all(|t| types.contains(t)));
    let contacts = &truth["objects"]["contacts"];
    assert_eq!(contacts["objectTypeId"], "0-1");
    assert_eq!(contacts["cursorProperty"], "lastmodifieddate");
    let live = contacts["live"].as_array().unwrap();
    assert_eq!(live.len(), ids.len() - 3);
    for r in live {
        assert!(r["id"].is_string() && r["updatedAt"].is_string() && r["updatedAtMs"].is_i64(), "{r}");
        let props = r["properties"].as_object().unwrap();
        assert_eq!(props["hs_object_id"], r["id"]);
        assert!(props.values().all(Value::is_string));
    }
    let archived = contacts["archived"].as_array().unwrap();
    assert_eq!(archived.len(), 1);
    assert_eq!(archived[0]["id"], ids[0].to_string());
    assert!(archived[0]["archivedAt"].is_string());
    assert_eq!(contacts["mergedInto"], json!({ ids[2].to_string(): ids[1].to_string() }));
    assert_eq!(contacts["gdprDeleted"], json!([ids[3].to_string()]));

    let edges = truth["associations"].as_array().unwrap();
    assert!(!edges.is_empty());
    for e in edges {
        for key in ["fromType", "fromId", "toType", "toId"] {
            assert!(e[key].is_string(), "{key} in {e}");
        }
        for t in e["types"].as_array().unwrap() {
            assert!(t["typeId"].is_u64() && t["category"].is_string(), "{t}");
        }
    }
    // Every edge is listed from both sides.
    let pairs: BTreeSet<(String, String, String, String)> = edges
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_owned();
            (s("fromType"), s("fromId"), s("toType"), s("toId"))
        })
        .collect();
    assert!(pairs.iter().all(|(ft, fi, tt, ti)| pairs.contains(&(tt.clone(), ti.clone(), ft.clone(), fi.clone()))));

    let bare = sim.admin_ok(Method::GET, "/_sim/truth?objects=companies&values=false", None).await;
    let only: Vec<&String> = bare["objects"].as_object().unwrap().keys().collect();
    assert_eq!(only, ["companies"]);
    assert!(bare["objects"]["companies"]["live"][0].get("properties").is_none());
}

#[tokio::test]
async fn admin_owner_and_pipeline_changes_are_served_and_in_the_ground_truth() {
    let sim = Sim::small().await;
    let body =
        json!({"email": "new@example.com", "firstName": "Zoë", "teams": [{"id": 9, "name": "Nord", "primary": true}]});
    sim.admin_ok(Method::PUT, "/_sim/owners/20000001", Some(&body)).await;
    sim.admin_ok(Method::PUT, "/_sim/owners/10000001", Some(&json!({"email": "gone@example.com", "archived": true})))
        .await;
    sim.admin_ok(Method::DELETE, "/_sim/owners/10000002", None).await;
    assert_eq!(sim.admin(Method::DELETE, "/_sim/owners/10000002", None).await.0, StatusCode::NOT_FOUND);
    let active = sim.list_all("/crm/v3/owners").await;
    let archived = sim.list_all("/crm/v3/owners?archived=true").await;
    let ids = |owners: &[Value]| -> BTreeSet<u64> { owners.iter().map(id_of).collect() };
    assert!(ids(&active).contains(&20_000_001) && !ids(&active).contains(&10_000_002));
    assert!(ids(&archived).contains(&10_000_001) && !ids(&active).contains(&10_000_001));
    let new = active.iter().find(|o| id_of(o) == 20_000_001).unwrap();
    assert_eq!((&new["firstName"], &new["teams"][0]["name"]), (&json!("Zoë"), &json!("Nord")));

    // A pipeline for the custom object (whose type had none) and a deal pipeline with a stage
    // relabelled and one left out.
    let stages = json!([{"id": "new", "label": "New", "metadata": {"state": "open"}}]);
    sim.admin_ok(Method::PUT, "/_sim/pipelines/cars/default", Some(&json!({"label": "Fleet", "stages": stages}))).await;
    let renewals = json!({"label": "Renewals", "displayOrder": 1, "stages": [
        {"id": "renewal_open", "label": "Open", "metadata": {"probability": "0.5", "isClosed": "false"}},
        {"id": "renewal_won", "label": "Renewed", "metadata": {"probability": "1.0", "isClosed": "true"}}
    ]});
    sim.admin_ok(Method::PUT, "/_sim/pipelines/deals/renewals", Some(&renewals)).await;
    sim.admin_ok(Method::DELETE, "/_sim/pipelines/tickets/0", None).await;
    let (status, _, cars) = sim.get("/crm/v3/pipelines/cars").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cars["results"][0]["stages"][0]["metadata"]["state"], "open");
    let (_, _, deals) = sim.get("/crm/v3/pipelines/deals").await;
    let renewals = deals["results"].as_array().unwrap().iter().find(|p| p["id"] == "renewals").unwrap();
    let labels: Vec<&str> =
        renewals["stages"].as_array().unwrap().iter().map(|s| s["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["Open", "Renewed"]);
    let won = &renewals["stages"][1];
    let open = &renewals["stages"][0];
    assert_ne!(won["updatedAt"], won["createdAt"], "a changed stage has a new update time");
    assert_eq!(open["updatedAt"], open["createdAt"], "an unchanged stage keeps its times");
    let (_, _, tickets) = sim.get("/crm/v3/pipelines/tickets").await;
    assert_eq!(tickets["results"], json!([]));

    let truth = sim.admin_ok(Method::GET, "/_sim/truth?objects=cars", None).await;
    let truth_owners: BTreeSet<u64> = truth["owners"].as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(truth_owners, &ids(&active) | &ids(&archived), "every owner, active and archived");
    assert_eq!(truth["pipelines"]["cars"], cars["results"]);
    assert_eq!(truth["pipelines"]["deals"], deals["results"]);
}
