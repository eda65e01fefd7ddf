//! The simulator's object, property, schema, association, owner and pipeline routes over HTTP:
//! list paging and limits, get, batch read, writes, merges, GDPR deletes, association paging
//! and type ids, the dated path aliases, and determinism of the generated portal.

use std::collections::{BTreeMap, BTreeSet};

use hsync_sim::PortalSpec;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{category, filter, id_of, one_group, small_portal, stable, unique_ids, unlimited, Sim};

fn results(body: &Value) -> &Vec<Value> {
    body["results"].as_array().expect("results array")
}

fn result_ids(body: &Value) -> BTreeSet<u64> {
    results(body).iter().map(id_of).collect()
}

/// Association targets per `from` id according to ground truth, with their type ids.
async fn truth_edges(sim: &Sim, from: &str, to: &str) -> BTreeMap<u64, BTreeMap<u64, BTreeSet<u64>>> {
    let truth = sim.truth(from).await;
    let mut out: BTreeMap<u64, BTreeMap<u64, BTreeSet<u64>>> = BTreeMap::new();
    for e in truth["associations"].as_array().expect("associations") {
        if e["fromType"] == from && e["toType"] == to {
            let from_id: u64 = e["fromId"].as_str().unwrap().parse().unwrap();
            let to_id: u64 = e["toId"].as_str().unwrap().parse().unwrap();
            let types = e["types"].as_array().unwrap().iter().map(|t| t["typeId"].as_u64().unwrap());
            out.entry(from_id).or_default().entry(to_id).or_default().extend(types);
        }
    }
    out
}

#[tokio::test]
async fn objects_list_limit_above_100_clamps_to_100_by_default() {
    let sim = Sim::small().await;
    let (status, _, page) = sim.get("/crm/v3/objects/contacts?limit=500").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(results(&page).len(), 100);
    let (_, _, page) = sim.get("/crm/v3/objects/contacts").await;
    assert_eq!(results(&page).len(), 10, "default page size");

    sim.admin_ok(Method::PUT, "/_sim/behaviour", Some(&json!({ "list_over_limit": "reject" }))).await;
    let (status, _, body) = sim.get("/crm/v3/objects/contacts?limit=500").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(category(&body), "VALIDATION_ERROR");
}

#[tokio::test]
async fn objects_list_after_paging_reaches_every_id_once_and_last_page_has_no_paging() {
    let sim = Sim::small().await;
    let truth = sim.truth_ids("contacts").await;
    let records = sim.list_all("/crm/v3/objects/contacts?limit=100").await;
    assert_eq!(unique_ids(&records), truth);
    let ids: Vec<u64> = records.iter().map(id_of).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "list pages in id order");

    let (_, _, first) = sim.get("/crm/v3/objects/contacts?limit=100").await;
    assert!(first.get("total").is_none(), "list has no total");
    let next = first["paging"]["next"]["after"].as_str().unwrap().to_owned();
    // An absolute link that keeps the query, as HubSpot sends: followed verbatim, it reads the
    // next page.
    let link = first["paging"]["next"]["link"].as_str().unwrap();
    assert_eq!(link, sim.url(&format!("/crm/v3/objects/contacts?limit=100&after={next}")));
    let followed: serde_json::Value =
        sim.http.get(link).bearer_auth(&sim.token).send().await.unwrap().json().await.unwrap();
    assert_eq!(results(&followed).first().map(id_of), Some(ids[100]));
    let (_, _, last) = sim.get(&format!("/crm/v3/objects/contacts?limit=100&after={}", ids[200])).await;
    assert_eq!(results(&last).len(), truth.len() - 200);
    assert!(last.get("paging").is_none(), "paging is absent on the last page: {last}");
}

#[tokio::test]
async fn objects_list_properties_as_comma_list_or_repeated_params_select_the_same() {
    let sim = Sim::small().await;
    let (_, _, comma) = sim.get("/crm/v3/objects/contacts?limit=20&properties=email,firstname,no_such_property").await;
    let (_, _, repeated) = sim.get("/crm/v3/objects/contacts?limit=20&properties=email&properties=firstname").await;
    assert_eq!(stable(&comma), stable(&repeated));
    let mut seen_email = false;
    for r in results(&comma) {
        let props = r["properties"].as_object().unwrap();
        assert!(!props.contains_key("lastname"), "only requested properties: {r}");
        assert!(!props.contains_key("no_such_property"));
        assert!(props.contains_key("hs_object_id"));
        seen_email |= props.contains_key("email");
    }
    assert!(seen_email);
    let (_, _, defaults) = sim.get("/crm/v3/objects/contacts?limit=20").await;
    assert!(results(&defaults).iter().any(|r| r["properties"].get("lastname").is_some()));
}

#[tokio::test]
async fn objects_list_archived_true_returns_only_archived_records() {
    let sim = Sim::small().await;
    let ids: Vec<u64> = sim.truth_ids("contacts").await.into_iter().collect();
    let gone: BTreeSet<u64> = [ids[1], ids[50], ids[120]].into();
    for id in &gone {
        let (status, _, _) = sim.delete(&format!("/crm/v3/objects/contacts/{id}")).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let archived = sim.list_all("/crm/v3/objects/contacts?archived=true&limit=100").await;
    assert_eq!(unique_ids(&archived), gone);
    for r in &archived {
        assert_eq!(r["archived"], true);
        assert!(r["archivedAt"].is_string());
    }
    let live = unique_ids(&sim.list_all("/crm/v3/objects/contacts?limit=100").await);
    assert_eq!(live.len(), ids.len() - 3);
    assert!(live.is_disjoint(&gone));
}

#[tokio::test]
async fn objects_get_by_id_and_email_work_and_unknown_id_is_404_object_not_found() {
    let sim = Sim::small().await;
    let truth = sim.truth("contacts").await;
    let live = truth["objects"]["contacts"]["live"].as_array().unwrap();
    let (id, email) = live
        .iter()
        .map(|r| (id_of(r), r["properties"]["email"].as_str().unwrap_or_default().to_owned()))
        .find(|(id, email)| *email == format!("person{id}@example.com"))
        .expect("a contact with its own email");

    let (status, _, by_id) = sim.get(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_id["id"], id.to_string());
    assert_eq!(by_id["properties"]["email"], email);
    assert_eq!(by_id["archived"], false);
    for key in ["createdAt", "updatedAt", "url"] {
        assert!(by_id[key].is_string(), "{key} in {by_id}");
    }
    let (status, _, by_email) = sim.get(&format!("/crm/v3/objects/contacts/{email}?idProperty=email")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_email, by_id);

    let (status, _, missing) = sim.get("/crm/v3/objects/contacts/987654321").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["status"], "error");
    assert_eq!(category(&missing), "OBJECT_NOT_FOUND");
    assert_eq!(missing["message"], "Object not found.  objectId are usually numeric.");
    assert_eq!(missing["context"]["id"], json!(["987654321"]));
    assert!(missing["correlationId"].is_string());
}

#[tokio::test]
async fn objects_batch_read_caps_at_100_and_reports_missing_ids_with_207() {
    let sim = Sim::small().await;
    let ids: Vec<u64> = sim.truth_ids("contacts").await.into_iter().collect();
    let inputs =
        |ids: &[u64]| json!({ "inputs": ids.iter().map(|i| json!({ "id": i.to_string() })).collect::<Vec<_>>() });

    let (status, _, body) = sim.post("/crm/v3/objects/contacts/batch/read", &inputs(&ids[..101])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(category(&body), "VALIDATION_ERROR");
    let (status, _, body) = sim.post("/crm/v3/objects/contacts/batch/read", &inputs(&ids[..100])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(result_ids(&body), ids[..100].iter().copied().collect());
    assert_eq!(body["status"], "COMPLETE");

    let found = [ids[0], ids[10], ids[20]];
    let missing = [987_654_321u64, 987_654_322];
    let mixed: Vec<u64> = found.iter().chain(missing.iter()).copied().collect();
    let (status, _, body) = sim.post("/crm/v3/objects/contacts/batch/read", &inputs(&mixed)).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(result_ids(&body), found.into());
    assert_eq!(body["numErrors"], 1);
    let error = &body["errors"][0];
    assert_eq!(error["category"], "OBJECT_NOT_FOUND");
    assert_eq!(error["status"], "error");
    let reported: BTreeSet<&str> =
        error["context"]["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(reported, BTreeSet::from(["987654321", "987654322"]));
    assert!(error["message"].as_str().unwrap().contains("CONTACT"));
}

#[tokio::test]
async fn objects_create_update_archive_move_a_record_to_the_recycle_bin() {
    let sim = Sim::small().await;
    let (status, _, created) = sim
        .post("/crm/v3/objects/contacts", &json!({ "properties": { "email": "new@example.com", "firstname": "New" } }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["properties"]["email"], "new@example.com");
    let id = id_of(&created);

    let (status, _, updated) = sim
        .patch(&format!("/crm/v3/objects/contacts/{id}"), &json!({ "properties": { "firstname": "Renamed" } }))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["properties"]["firstname"], "Renamed");
    let (_, _, got) = sim.get(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_eq!(got["properties"]["firstname"], "Renamed");
    assert_eq!(got["properties"]["email"], "new@example.com");

    let (status, _, bad) = sim
        .patch(&format!("/crm/v3/objects/contacts/{id}"), &json!({ "properties": { "no_such_property": "x" } }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(bad["errors"][0]["code"], "PROPERTY_DOESNT_EXIST");

    let (status, _, _) = sim.delete(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = sim.get(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, archived) = sim.get(&format!("/crm/v3/objects/contacts/{id}?archived=true")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(archived["archived"], true);
    let live = unique_ids(&sim.list_all("/crm/v3/objects/contacts?limit=100").await);
    assert!(!live.contains(&id));
    let bin = unique_ids(&sim.list_all("/crm/v3/objects/contacts?limit=100&archived=true").await);
    assert_eq!(bin, BTreeSet::from([id]));
}

#[tokio::test]
async fn objects_batch_create_update_archive_apply_to_every_input() {
    let sim = Sim::small().await;
    let inputs: Vec<Value> = (0..3)
        .map(
            |i| json!({ "properties": { "name": format!("Batch Co {i}"), "domain": format!("batch{i}.example.com") } }),
        )
        .collect();
    let (status, _, created) = sim.post("/crm/v3/objects/companies/batch/create", &json!({ "inputs": inputs })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let ids: Vec<u64> = results(&created).iter().map(id_of).collect();
    assert_eq!(ids.len(), 3);

    let updates: Vec<Value> =
        ids.iter().map(|id| json!({ "id": id.to_string(), "properties": { "city": "Batchville" } })).collect();
    let (status, _, updated) = sim.post("/crm/v3/objects/companies/batch/update", &json!({ "inputs": updates })).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let read = sim.search_ids("companies", &one_group(vec![filter("city", "EQ", "Batchville")])).await;
    assert_eq!(read, ids.iter().copied().collect());

    let archive: Vec<Value> = ids.iter().map(|id| json!({ "id": id.to_string() })).collect();
    let (status, _, _) = sim.post("/crm/v3/objects/companies/batch/archive", &json!({ "inputs": archive })).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let bin = unique_ids(&sim.list_all("/crm/v3/objects/companies?limit=100&archived=true").await);
    assert_eq!(bin, ids.iter().copied().collect());
    let (status, _, body) = sim
        .post(
            "/crm/v3/objects/companies/batch/read",
            &json!({ "inputs": [{ "id": ids[0].to_string() }], "properties": ["city"] }),
        )
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "archived records are missing from batch read: {body}");
}

#[tokio::test]
async fn objects_merge_lists_absorbed_id_on_survivor_and_removes_it_everywhere() {
    let sim = Sim::small().await;
    let edges = truth_edges(&sim, "contacts", "companies").await;
    // Merge two contacts with different companies so moved associations are visible.
    let mut linked = edges.iter();
    let (&primary, primary_targets) = linked.next().expect("a contact with companies");
    let (&absorbed, absorbed_targets) = linked
        .find(|(_, t)| t.keys().any(|c| !primary_targets.contains_key(c)))
        .expect("a contact with another company");
    let absorbed_companies: BTreeSet<u64> = absorbed_targets.keys().copied().collect();
    let (status, _, merged) = sim
        .post(
            "/crm/v3/objects/contacts/merge",
            &json!({ "primaryObjectId": primary.to_string(), "objectIdToMerge": absorbed.to_string() }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    assert_eq!(id_of(&merged), primary);

    let (_, _, survivor) =
        sim.get(&format!("/crm/v3/objects/contacts/{primary}?properties=hs_merged_object_ids")).await;
    let merged_ids: Vec<&str> =
        survivor["properties"]["hs_merged_object_ids"].as_str().expect("hs_merged_object_ids").split(';').collect();
    assert!(merged_ids.contains(&absorbed.to_string().as_str()));

    let live = unique_ids(&sim.list_all("/crm/v3/objects/contacts?limit=100").await);
    assert!(live.contains(&primary) && !live.contains(&absorbed));
    let bin = unique_ids(&sim.list_all("/crm/v3/objects/contacts?limit=100&archived=true").await);
    assert!(!bin.contains(&absorbed), "a merged-away id is not archived");
    let truth = sim.truth("contacts").await;
    assert_eq!(truth["objects"]["contacts"]["mergedInto"][absorbed.to_string()], primary.to_string());
    let survivor_companies: BTreeSet<u64> =
        truth_edges(&sim, "contacts", "companies").await.remove(&primary).unwrap_or_default().into_keys().collect();
    assert!(absorbed_companies.is_subset(&survivor_companies), "associations move to the survivor");
}

#[tokio::test]
async fn objects_gdpr_delete_removes_contact_everywhere() {
    let sim = Sim::small().await;
    let edges = truth_edges(&sim, "contacts", "companies").await;
    let (&id, _) = edges.iter().next().expect("a contact with a company");
    let (status, _, _) = sim.post("/crm/v3/objects/contacts/gdpr-delete", &json!({ "objectId": id.to_string() })).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    for path in [format!("/crm/v3/objects/contacts/{id}"), format!("/crm/v3/objects/contacts/{id}?archived=true")] {
        let (status, _, _) = sim.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let live = unique_ids(&sim.list_all("/crm/v3/objects/contacts?limit=100").await);
    let bin = unique_ids(&sim.list_all("/crm/v3/objects/contacts?limit=100&archived=true").await);
    assert!(!live.contains(&id) && !bin.contains(&id));
    let hit = sim.search("contacts", &one_group(vec![filter("hs_object_id", "EQ", id.to_string())])).await;
    assert_eq!(hit["total"], 0);
    let truth = sim.truth("contacts").await;
    let purged = &truth["objects"]["contacts"]["gdprDeleted"];
    assert!(purged.as_array().unwrap().contains(&json!(id.to_string())));
    assert!(!truth_edges(&sim, "contacts", "companies").await.contains_key(&id));
    let back = truth_edges(&sim, "companies", "contacts").await;
    assert!(back.values().all(|targets| !targets.contains_key(&id)), "no company keeps the contact");
    let (status, _, body) = sim
        .post("/crm/v4/associations/contacts/companies/batch/read", &json!({ "inputs": [{ "id": id.to_string() }] }))
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
}

#[tokio::test]
async fn properties_api_has_hubspot_shape_and_creates_and_archives_properties() {
    let sim = Sim::small().await;
    let (status, _, list) = sim.get("/crm/v3/properties/contacts").await;
    assert_eq!(status, StatusCode::OK);
    assert!(list.get("paging").is_none());
    for p in results(&list) {
        for key in ["name", "label", "type", "fieldType", "groupName", "description"] {
            assert!(p[key].is_string(), "{key} in {p}");
        }
        assert!(p["options"].is_array(), "{p}");
        for key in ["calculated", "hasUniqueValue", "hidden", "archived", "hubspotDefined"] {
            assert!(p[key].is_boolean(), "{key} in {p}");
        }
    }
    let by_name: BTreeMap<&str, &Value> = results(&list).iter().map(|p| (p["name"].as_str().unwrap(), p)).collect();
    assert_eq!(by_name["email"]["type"], "string");
    assert_eq!(by_name["email"]["fieldType"], "text");
    assert_eq!(by_name["hs_object_id"]["hasUniqueValue"], true);
    let stages: Vec<&str> =
        by_name["lifecyclestage"]["options"].as_array().unwrap().iter().map(|o| o["value"].as_str().unwrap()).collect();
    assert!(stages.contains(&"customer"));
    assert_eq!(by_name["hubspot_owner_id"]["referencedObjectType"], "OWNER");

    let (status, _, created) = sim
        .post(
            "/crm/v3/properties/contacts",
            &json!({
                "name": "favorite_color", "label": "Favorite color", "type": "enumeration",
                "fieldType": "select", "groupName": "contactinformation",
                "options": [{ "label": "Red", "value": "red" }, { "label": "Blue", "value": "blue" }],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "favorite_color");
    assert_eq!(created["options"][1]["value"], "blue");
    let (status, _, again) = sim
        .post(
            "/crm/v3/properties/contacts",
            &json!({ "name": "favorite_color", "label": "x", "type": "string", "fieldType": "text", "groupName": "g" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let (status, _, one) = sim.get("/crm/v3/properties/contacts/favorite_color").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["label"], "Favorite color");

    let (status, _, _) = sim.delete("/crm/v3/properties/contacts/favorite_color").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = sim.get("/crm/v3/properties/contacts/favorite_color").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, archived) = sim.get("/crm/v3/properties/contacts?archived=true").await;
    let gone = results(&archived)
        .iter()
        .find(|p| p["name"] == "favorite_color")
        .expect("archived property listed with archived=true");
    assert_eq!(gone["archived"], true);
    let (status, _, _) = sim.delete("/crm/v3/properties/contacts/email").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "HubSpot-defined properties cannot be archived");
}

#[tokio::test]
async fn schemas_custom_object_is_addressable_by_type_id_and_fully_qualified_name() {
    let sim = Sim::small().await;
    let (status, _, list) = sim.get("/crm/v3/schemas").await;
    assert_eq!(status, StatusCode::OK);
    let schemas = results(&list);
    assert_eq!(schemas.len(), 1);
    let cars = &schemas[0];
    assert_eq!(cars["objectTypeId"], "2-3508482");
    assert_eq!(cars["fullyQualifiedName"], "p62515_cars");
    assert!(cars["properties"].as_array().unwrap().iter().any(|p| p["name"] == "vin"));
    assert!(cars["associations"].as_array().unwrap().len() >= 2);

    let (status, _, by_id) = sim.get("/crm/v3/schemas/2-3508482").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, by_fqn) = sim.get("/crm/v3/schemas/p62515_cars").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&by_id, cars);
    assert_eq!(by_fqn, by_id);
    let (status, _, _) = sim.get("/crm/v3/schemas/contacts").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "standard objects have no schema here");

    let truth = sim.truth_ids("cars").await;
    for t in ["2-3508482", "p62515_cars", "cars"] {
        let records = sim.list_all(&format!("/crm/v3/objects/{t}?limit=100")).await;
        assert_eq!(unique_ids(&records), truth, "objects/{t}");
        assert!(records[0]["url"].as_str().unwrap().contains("/2-3508482/"));
    }
}

#[tokio::test]
async fn associations_batch_read_accepts_1000_inputs_and_rejects_1001() {
    let sim = Sim::small().await;
    let ids: Vec<u64> = sim.truth_ids("contacts").await.into_iter().collect();
    let inputs = |n: usize| -> Value {
        json!({ "inputs": (0..n).map(|i| json!({ "id": ids[i % ids.len()].to_string() })).collect::<Vec<_>>() })
    };
    let (status, _, body) = sim.post("/crm/v4/associations/contacts/companies/batch/read", &inputs(1000)).await;
    assert!(status == StatusCode::OK || status == StatusCode::MULTI_STATUS, "1,000 inputs are served: {status}");
    assert!(!results(&body).is_empty());
    let (status, _, body) = sim.post("/crm/v4/associations/contacts/companies/batch/read", &inputs(1001)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(category(&body), "VALIDATION_ERROR");
}

#[tokio::test]
async fn associations_batch_read_pages_each_input_to_the_end() {
    let sim = Sim::start(unlimited(PortalSpec { association_page_size: 3, ..small_portal() })).await;
    let contacts: Vec<u64> = sim.truth_ids("contacts").await.into_iter().collect();
    let companies: Vec<u64> = sim.truth_ids("companies").await.into_iter().collect();
    let (a, b) = (contacts[0], contacts[1]);
    let mut edges = Vec::new();
    for (from, count) in [(a, 10), (b, 7)] {
        for to in companies.iter().step_by(5).take(count) {
            edges.push(json!({ "from": "contacts", "fromId": from, "to": "companies", "toId": to }));
        }
    }
    let added = sim.admin_ok(Method::POST, "/_sim/associations", Some(&Value::Array(edges))).await;
    assert_eq!(added["added"], 17);

    let mut got: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut pending: Vec<Value> = vec![json!({ "id": a.to_string() }), json!({ "id": b.to_string() })];
    let mut pages = 0;
    while !pending.is_empty() {
        pages += 1;
        assert!(pages < 20, "paging terminates");
        let (status, _, body) =
            sim.post("/crm/v4/associations/contacts/companies/batch/read", &json!({ "inputs": pending })).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        pending = Vec::new();
        for r in results(&body) {
            let from: u64 = r["from"]["id"].as_str().unwrap().parse().unwrap();
            let to = r["to"].as_array().unwrap();
            assert!(to.len() <= 3, "page size is respected");
            got.entry(from).or_default().extend(to.iter().map(|t| t["toObjectId"].as_u64().unwrap()));
            if let Some(after) = r.pointer("/paging/next/after").and_then(Value::as_str) {
                pending.push(json!({ "id": from.to_string(), "after": after }));
            }
        }
    }
    let truth = truth_edges(&sim, "contacts", "companies").await;
    for from in [a, b] {
        let want: Vec<u64> = truth[&from].keys().copied().collect();
        assert_eq!(got[&from], want, "contact {from}: every target once, in order");
        assert!(want.len() >= 7);
    }
}

#[tokio::test]
async fn associations_batch_read_reports_ids_without_associations_as_207() {
    let sim = Sim::small().await;
    let fresh = sim.admin_create("contacts", json!({ "email": "alone@example.com" })).await;
    let edges = truth_edges(&sim, "contacts", "companies").await;
    let (&linked, targets) = edges.iter().next().unwrap();
    let (status, _, body) = sim
        .post(
            "/crm/v4/associations/contacts/companies/batch/read",
            &json!({ "inputs": [{ "id": fresh.to_string() }, { "id": linked.to_string() }] }),
        )
        .await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(results(&body).len(), 1);
    assert_eq!(results(&body)[0]["from"]["id"], linked.to_string());
    let got: BTreeSet<u64> =
        results(&body)[0]["to"].as_array().unwrap().iter().map(|t| t["toObjectId"].as_u64().unwrap()).collect();
    assert_eq!(got, targets.keys().copied().collect());
    assert_eq!(body["numErrors"], 1);
    let error = &body["errors"][0];
    assert_eq!(error["category"], "OBJECT_NOT_FOUND");
    assert_eq!(error["subCategory"], "crm.associations.NO_ASSOCIATIONS_FOUND");
    assert_eq!(error["context"]["fromObjectId"], json!([fresh.to_string()]));
}

#[tokio::test]
async fn associations_carry_hubspot_type_ids_labels_and_numeric_target_ids() {
    let sim = Sim::small().await;
    let edges = truth_edges(&sim, "contacts", "companies").await;
    let (contact, company) = edges
        .iter()
        .flat_map(|(from, targets)| targets.iter().map(move |(to, types)| (*from, *to, types)))
        .find(|(_, _, types)| types.contains(&1))
        .map(|(f, t, _)| (f, t))
        .expect("a primary contact-company association");
    let (status, _, body) = sim
        .post(
            "/crm/v4/associations/contacts/companies/batch/read",
            &json!({ "inputs": [{ "id": contact.to_string() }] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let target = results(&body)[0]["to"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["toObjectId"] == json!(company))
        .expect("toObjectId is a JSON number")
        .clone();
    let types = target["associationTypes"].as_array().unwrap();
    assert!(types.contains(&json!({ "category": "HUBSPOT_DEFINED", "typeId": 279, "label": null })), "{target}");
    assert!(types.contains(&json!({ "category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary" })), "{target}");

    let (status, _, back) = sim
        .post(
            "/crm/v4/associations/companies/contacts/batch/read",
            &json!({ "inputs": [{ "id": company.to_string() }] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let to_contact =
        results(&back)[0]["to"].as_array().unwrap().iter().find(|t| t["toObjectId"] == json!(contact)).unwrap().clone();
    let back_types: BTreeSet<u64> =
        to_contact["associationTypes"].as_array().unwrap().iter().map(|t| t["typeId"].as_u64().unwrap()).collect();
    assert!(back_types.contains(&280) && back_types.contains(&2), "{to_contact}");

    let (status, _, labels) = sim.get("/crm/v4/associations/contacts/companies/labels").await;
    assert_eq!(status, StatusCode::OK);
    let ids: BTreeSet<u64> = results(&labels).iter().map(|l| l["typeId"].as_u64().unwrap()).collect();
    assert!(ids.is_superset(&BTreeSet::from([1, 279, 28])), "{labels}");
}

#[tokio::test]
async fn associations_create_default_labeled_and_archive_change_both_sides() {
    let sim = Sim::small().await;
    let contact = sim.admin_create("contacts", json!({ "email": "links@example.com" })).await;
    let companies: Vec<u64> = sim.truth_ids("companies").await.into_iter().collect();
    let (first, second) = (companies[0], companies[1]);

    let (status, _, body) =
        sim.put(&format!("/crm/v4/objects/contacts/{contact}/associations/default/companies/{first}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = sim
        .post(
            "/crm/v4/associations/contacts/companies/batch/create",
            &json!({ "inputs": [{
                "from": { "id": contact.to_string() }, "to": { "id": second.to_string() },
                "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1 }],
            }] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let edges = truth_edges(&sim, "contacts", "companies").await;
    assert_eq!(edges[&contact][&first], BTreeSet::from([279]));
    assert_eq!(edges[&contact][&second], BTreeSet::from([1, 279]));
    let back = truth_edges(&sim, "companies", "contacts").await;
    assert_eq!(back[&second][&contact], BTreeSet::from([2, 280]));

    let (status, _, body) = sim
        .post(
            "/crm/v4/associations/contacts/companies/batch/archive",
            &json!({ "inputs": [{ "from": { "id": contact.to_string() }, "to": [{ "id": first.to_string() }] }] }),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _, body) = sim
        .post(
            "/crm/v4/associations/contacts/companies/batch/read",
            &json!({ "inputs": [{ "id": contact.to_string() }] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let targets: Vec<u64> =
        results(&body)[0]["to"].as_array().unwrap().iter().map(|t| t["toObjectId"].as_u64().unwrap()).collect();
    assert_eq!(targets, [second]);
    assert!(!truth_edges(&sim, "companies", "contacts").await.get(&first).is_some_and(|t| t.contains_key(&contact)));
}

#[tokio::test]
async fn owners_page_with_after_and_pipelines_list_stages() {
    let sim = Sim::small().await;
    let owners = sim.list_all("/crm/v3/owners?limit=10").await;
    assert_eq!(unique_ids(&owners).len(), 23, "active owners, paged by 10");
    for o in &owners {
        assert!(o["userId"].is_u64() && o["email"].is_string(), "{o}");
        assert_eq!(o["archived"], false);
    }
    let (_, _, archived) = sim.get("/crm/v3/owners?archived=true").await;
    assert_eq!(results(&archived).len(), 2);
    let (_, _, first) = sim.get("/crm/v3/owners?limit=10").await;
    assert_eq!(results(&first).len(), 10);
    assert!(first["paging"]["next"]["after"].is_string());

    let (status, _, deals) = sim.get("/crm/v3/pipelines/deals").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = results(&deals).iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["default", "renewals"]);
    let won = results(&deals)[0]["stages"].as_array().unwrap().iter().find(|s| s["id"] == "closedwon").unwrap();
    assert_eq!(won["metadata"]["probability"], "1.0");
    let (status, _, tickets) = sim.get("/crm/v3/pipelines/tickets").await;
    assert_eq!(status, StatusCode::OK);
    let stages = results(&tickets)[0]["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 4);
    assert!(stages.iter().all(|s| s["metadata"]["ticketState"].is_string()));
}

#[tokio::test]
async fn dated_alias_paths_serve_the_same_bodies_as_numbered_paths() {
    let sim = Sim::small().await;
    let ids: Vec<u64> = sim.truth_ids("contacts").await.into_iter().take(5).collect();
    let gets = [
        ("/crm/v3/objects/contacts?limit=7", "/crm/objects/2026-03/contacts?limit=7"),
        (&format!("/crm/v3/objects/contacts/{}", ids[0]), &format!("/crm/objects/2026-03/contacts/{}", ids[0])),
        ("/crm/v3/properties/contacts", "/crm/properties/2026-03/contacts"),
        ("/crm/v3/schemas", "/crm-object-schemas/2026-03/schemas"),
        ("/crm-object-schemas/v3/schemas", "/crm-object-schemas/2026-03/schemas"),
        ("/crm/v3/owners", "/crm/owners/2026-03"),
        ("/crm/v3/pipelines/deals", "/crm/pipelines/2026-03/deals"),
    ];
    for (numbered, dated) in gets {
        let (s1, _, a) = sim.get(numbered).await;
        let (s2, _, b) = sim.get(dated).await;
        assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK), "{numbered} / {dated}");
        assert_eq!(stable(&a), stable(&b), "{numbered} and {dated}");
        let non_empty = a["results"].as_array().is_some_and(|r| !r.is_empty()) || a["id"].is_string();
        assert!(non_empty, "{numbered}: {a}");
    }
    let inputs = json!({ "inputs": ids.iter().map(|i| json!({ "id": i.to_string() })).collect::<Vec<_>>() });
    let (s1, _, a) = sim.post("/crm/v4/associations/contacts/companies/batch/read", &inputs).await;
    let (s2, _, b) = sim.post("/crm/associations/2026-03/contacts/companies/batch/read", &inputs).await;
    assert_eq!(s1, s2);
    assert_eq!(stable(&a), stable(&b));
    let search = json!({ "limit": 20, "sorts": ["-createdate"] });
    let (_, _, a) = sim.post("/crm/v3/objects/contacts/search", &search).await;
    let (_, _, b) = sim.post("/crm/objects/2026-03/contacts/search", &search).await;
    assert_eq!(a, b);
    assert_eq!(results(&a).len(), 20);
}

#[tokio::test]
async fn portal_same_seed_serves_identical_pages_and_other_seed_differs() {
    let one = Sim::small().await;
    let two = Sim::small().await;
    let other = Sim::start(unlimited(PortalSpec { seed: 7, ..small_portal() })).await;
    for path in [
        "/crm/v3/objects/contacts?limit=100&properties=email,firstname,lastname,order,user,select",
        "/crm/v3/objects/companies?limit=100&properties=name,domain,numberofemployees,industry",
        "/crm/v3/objects/deals?limit=100&properties=amount,dealstage,closedate",
    ] {
        let (_, _, a) = one.get(path).await;
        let (_, _, b) = two.get(path).await;
        let (_, _, c) = other.get(path).await;
        assert!(results(&a).len() >= 80, "{path}");
        assert_eq!(stable(&a), stable(&b), "same seed, same page: {path}");
        assert_ne!(a, c, "different seed, different page: {path}");
    }
    let ids: Vec<u64> = one.truth_ids("contacts").await.into_iter().take(30).collect();
    let inputs = json!({ "inputs": ids.iter().map(|i| json!({ "id": i.to_string() })).collect::<Vec<_>>() });
    let path = "/crm/v4/associations/contacts/companies/batch/read";
    let (_, _, a) = one.post(path, &inputs).await;
    let (_, _, b) = two.post(path, &inputs).await;
    assert!(!results(&a).is_empty());
    assert_eq!(stable(&a), stable(&b), "same seed, same associations");
}
