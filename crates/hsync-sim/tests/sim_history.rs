//! Property history (`propertiesWithHistory`) over HTTP: seeded records' earlier versions, the
//! versions writes append (source, time, same-millisecond order, cleared values), GET, list and
//! batch read with history and their limits, and the ground-truth dump's histories.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{category, id_of, Sim};

/// The app id the simulator's API writes carry as `sourceId`.
const API_APP_ID: &str = "3141592";

const BATCH_HISTORY_MESSAGE: &str = "The maximum number of inputs supported in a batch request for property histories is 50. Please reduce the number of items and try again";

fn millis(iso: &Value) -> i64 {
    let text = iso.as_str().unwrap_or_else(|| panic!("an ISO timestamp, not {iso}"));
    chrono::DateTime::parse_from_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}")).timestamp_millis()
}

/// The versions of `prop` in a record's `propertiesWithHistory` (empty when it has none).
fn versions<'a>(record: &'a Value, prop: &str) -> &'a [Value] {
    record["propertiesWithHistory"][prop].as_array().map_or(&[], Vec::as_slice)
}

/// Asserts the `ValueWithTimestamp` shape, newest-first order within the record's life, and that
/// the newest version is the current value.
fn assert_history_of(record: &Value, prop: &str) {
    let versions = versions(record, prop);
    let (created, updated) = (millis(&record["createdAt"]), millis(&record["updatedAt"]));
    for v in versions {
        assert!(v["value"].is_string() && v["sourceType"].is_string(), "{prop}: {v}");
        let at = millis(&v["timestamp"]);
        assert!((created..=updated).contains(&at), "{prop} version {v} within the record's life: {record}");
        if v["sourceType"] == "CRM_UI" {
            let user = v["updatedByUserId"].as_u64().expect("a UI version names its user");
            assert_eq!(v["sourceId"], format!("userId:{user}"));
        }
    }
    let times: Vec<i64> = versions.iter().map(|v| millis(&v["timestamp"])).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{prop}: newest first: {versions:?}");
    match record["properties"].get(prop) {
        Some(current) => assert_eq!(&versions[0]["value"], current, "{prop}: newest version is the current value"),
        None => assert!(versions.first().is_none_or(|v| v["value"] == ""), "{prop}: no value, no versions"),
    }
}

async fn get_with_history(sim: &Sim, t: &str, id: u64, props: &str) -> Value {
    let (status, _, body) = sim.get(&format!("/crm/v3/objects/{t}/{id}?propertiesWithHistory={props}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn history_of_seeded_deal_stages_moves_through_earlier_stages_to_the_current_one() {
    let sim = Sim::small().await;
    let records = sim.list_all("/crm/v3/objects/deals?limit=50&properties=dealstage,dealname,amount&propertiesWithHistory=dealstage,dealname,amount,no_such_property").await;
    let mut several = 0;
    for r in &records {
        for prop in ["dealstage", "dealname", "amount"] {
            assert_history_of(r, prop);
        }
        assert!(r["propertiesWithHistory"].get("no_such_property").is_none());
        let stages = versions(r, "dealstage");
        if stages.len() >= 3 {
            several += 1;
            let oldest = stages.last().unwrap();
            assert_eq!(millis(&oldest["timestamp"]), millis(&r["createdAt"]), "the first stage is set at creation");
        }
        assert!(versions(r, "dealname").len() <= 3, "other properties have one to three versions");
    }
    assert!(several >= 10, "many deals went through several stages ({several} of {})", records.len());

    // GET one answers the same history as the list.
    let r = records.iter().find(|r| versions(r, "dealstage").len() >= 3).unwrap();
    let one = get_with_history(&sim, "deals", id_of(r), "dealstage").await;
    assert_eq!(one["propertiesWithHistory"]["dealstage"], r["propertiesWithHistory"]["dealstage"]);
    assert!(one["propertiesWithHistory"].get("dealname").is_none(), "only the properties asked for");
    let (_, _, plain) = sim.get(&format!("/crm/v3/objects/deals/{}", id_of(r))).await;
    assert!(plain.get("propertiesWithHistory").is_none(), "no history unless asked for");
}

#[tokio::test]
async fn history_writes_append_versions_with_their_source_and_time() {
    let sim = Sim::small().await;
    let id = *sim.truth_ids("deals").await.iter().next().unwrap();
    let before = get_with_history(&sim, "deals", id, "dealname").await;
    let seeded = versions(&before, "dealname").to_vec();

    // An API write: an integration, at the write's time.
    let (status, _, updated) =
        sim.patch(&format!("/crm/v3/objects/deals/{id}"), &json!({ "properties": { "dealname": "Renamed" } })).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let after = get_with_history(&sim, "deals", id, "dealname").await;
    let history = versions(&after, "dealname");
    assert_eq!(history.len(), seeded.len() + 1);
    assert_eq!(history[0]["value"], "Renamed");
    assert_eq!(history[0]["sourceType"], "INTEGRATION");
    assert_eq!(history[0]["sourceId"], API_APP_ID);
    assert!(history[0].get("updatedByUserId").is_none());
    assert_eq!(millis(&history[0]["timestamp"]), millis(&updated["updatedAt"]));
    assert_eq!(history[1..], seeded[..], "earlier versions stay as they were");

    // An admin write: a user in HubSpot's UI, an owner's user id.
    let owners = sim.get("/crm/v3/owners?limit=500").await.2;
    let user_ids: Vec<u64> =
        owners["results"].as_array().unwrap().iter().map(|o| o["userId"].as_u64().unwrap()).collect();
    let summary = sim
        .admin_ok(
            Method::PATCH,
            &format!("/_sim/objects/deals/{id}"),
            Some(&json!({ "properties": { "dealname": "By hand" } })),
        )
        .await;
    let history = versions(&get_with_history(&sim, "deals", id, "dealname").await, "dealname").to_vec();
    assert_eq!(history[0]["value"], "By hand");
    assert_eq!(history[0]["sourceType"], "CRM_UI");
    let user = history[0]["updatedByUserId"].as_u64().unwrap();
    assert!(user_ids.contains(&user), "{user} is an owner's user id");
    assert_eq!(history[0]["sourceId"], format!("userId:{user}"));
    assert_eq!(millis(&history[0]["timestamp"]), summary["updatedAtMs"].as_i64().unwrap());
    // The admin API can name the user.
    sim.admin_ok(
        Method::PATCH,
        &format!("/_sim/objects/deals/{id}"),
        Some(&json!({ "properties": { "dealname": "By another" }, "userId": 5_000_003 })),
    )
    .await;
    let history = versions(&get_with_history(&sim, "deals", id, "dealname").await, "dealname").to_vec();
    assert_eq!(
        (history[0]["updatedByUserId"].as_u64(), history[0]["sourceId"].as_str()),
        (Some(5_000_003), Some("userId:5000003"))
    );

    // Clearing a value is an empty-string version.
    sim.patch(&format!("/crm/v3/objects/deals/{id}"), &json!({ "properties": { "dealname": null } })).await;
    let cleared = get_with_history(&sim, "deals", id, "dealname").await;
    assert!(cleared["properties"].get("dealname").is_none());
    assert_eq!(versions(&cleared, "dealname")[0]["value"], "");
    assert_eq!(versions(&cleared, "dealname").len(), seeded.len() + 4);

    // `touch` writes as a UI user too.
    let touched = sim
        .admin_ok(Method::POST, "/_sim/objects/deals/touch", Some(&json!({ "ids": [id], "property": "dealname" })))
        .await;
    let history = versions(&get_with_history(&sim, "deals", id, "dealname").await, "dealname").to_vec();
    assert_eq!(history[0]["sourceType"], "CRM_UI");
    assert_eq!(millis(&history[0]["timestamp"]), touched["records"][0]["updatedAtMs"].as_i64().unwrap());
}

#[tokio::test]
async fn history_of_created_and_merged_records_starts_at_their_creation() {
    let sim = Sim::small().await;
    let (status, _, created) = sim
        .post("/crm/v3/objects/contacts", &json!({ "properties": { "email": "history@example.com", "firstname": "" } }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = id_of(&created);
    let got = get_with_history(&sim, "contacts", id, "email,firstname,lifecyclestage,createdate").await;
    let email = versions(&got, "email");
    assert_eq!(email.len(), 1);
    assert_eq!((&email[0]["value"], &email[0]["sourceType"]), (&json!("history@example.com"), &json!("INTEGRATION")));
    assert_eq!(email[0]["timestamp"], got["createdAt"]);
    assert_eq!(versions(&got, "firstname")[0]["value"], "", "an empty string is a value");
    assert!(got["propertiesWithHistory"].get("lifecyclestage").is_none(), "never set: no versions");
    assert_eq!(versions(&got, "createdate")[0]["value"], got["properties"]["createdate"]);

    // The survivor of a merge keeps its own history and lists the merge in hs_merged_object_ids.
    let ids: Vec<u64> = sim.truth_ids("contacts").await.into_iter().take(2).collect();
    let before = get_with_history(&sim, "contacts", ids[0], "email").await;
    let (status, _, merged) = sim
        .post(
            "/crm/v3/objects/contacts/merge",
            &json!({ "primaryObjectId": ids[0].to_string(), "objectIdToMerge": ids[1].to_string() }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    let after = get_with_history(&sim, "contacts", ids[0], "email,hs_merged_object_ids").await;
    assert_eq!(after["propertiesWithHistory"]["email"], before["propertiesWithHistory"]["email"]);
    let merged_ids = versions(&after, "hs_merged_object_ids");
    assert_eq!(merged_ids.len(), 1);
    assert_eq!(merged_ids[0]["value"], ids[1].to_string());
    assert_eq!(merged_ids[0]["sourceType"], "CALCULATED");
}

#[tokio::test]
async fn history_keeps_two_writes_in_one_millisecond_as_two_versions_later_first() {
    let sim = Sim::small().await;
    let id = *sim.truth_ids("tickets").await.iter().next().unwrap();
    let clock = sim.admin_ok(Method::POST, "/_sim/clock", Some(&json!({ "frozen": true }))).await;
    assert_eq!(clock["frozen"], true);
    for (stage, user) in [("2", 5_000_002), ("3", 5_000_004)] {
        sim.admin_ok(
            Method::PATCH,
            &format!("/_sim/objects/tickets/{id}"),
            Some(&json!({ "properties": { "hs_pipeline_stage": stage }, "userId": user })),
        )
        .await;
    }
    let got = get_with_history(&sim, "tickets", id, "hs_pipeline_stage").await;
    assert_history_of(&got, "hs_pipeline_stage");
    let history = versions(&got, "hs_pipeline_stage");
    assert_eq!(history[0]["timestamp"], history[1]["timestamp"], "the same millisecond");
    assert_eq!(millis(&history[0]["timestamp"]), clock["now"].as_i64().unwrap());
    assert_eq!((&history[0]["value"], &history[0]["updatedByUserId"]), (&json!("3"), &json!(5_000_004)));
    assert_eq!((&history[1]["value"], &history[1]["updatedByUserId"]), (&json!("2"), &json!(5_000_002)));
    let running = sim.admin_ok(Method::POST, "/_sim/clock", Some(&json!({ "frozen": false }))).await;
    assert_eq!(running["frozen"], false);
    assert!(running["now"].as_i64().unwrap() >= clock["now"].as_i64().unwrap(), "the clock never moves back");
}

#[tokio::test]
async fn history_batch_read_returns_versions_and_refuses_more_than_50_inputs() {
    let sim = Sim::small().await;
    let ids: Vec<u64> = sim.truth_ids("deals").await.into_iter().collect();
    let inputs = |n: usize| ids[..n].iter().map(|id| json!({ "id": id.to_string() })).collect::<Vec<_>>();
    let body =
        json!({ "inputs": inputs(50), "properties": ["dealstage"], "propertiesWithHistory": ["dealstage", "amount"] });
    let (status, _, read) = sim.post("/crm/v3/objects/deals/batch/read", &body).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    let results = read["results"].as_array().unwrap();
    assert_eq!(results.len(), 50);
    for r in results.iter().take(10) {
        assert_history_of(r, "dealstage");
        let one = get_with_history(&sim, "deals", id_of(r), "dealstage,amount").await;
        assert_eq!(r["propertiesWithHistory"], one["propertiesWithHistory"], "batch read and GET agree");
    }

    let over = json!({ "inputs": inputs(51), "propertiesWithHistory": ["dealstage"] });
    let (status, _, refused) = sim.post("/crm/v3/objects/deals/batch/read", &over).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(category(&refused), "VALIDATION_ERROR");
    assert_eq!(refused["status"], "error");
    assert_eq!(refused["message"], BATCH_HISTORY_MESSAGE);
    assert!(refused["correlationId"].is_string());

    // Without history the usual 100 inputs stand.
    let (status, _, plain) = sim.post("/crm/v3/objects/deals/batch/read", &json!({ "inputs": inputs(51) })).await;
    assert_eq!(status, StatusCode::OK, "{plain}");
    assert!(plain["results"][0].get("propertiesWithHistory").is_none());
}

#[tokio::test]
async fn history_list_pages_hold_at_most_50_records() {
    let sim = Sim::small().await;
    let (status, _, page) = sim.get("/crm/v3/objects/deals?limit=100&propertiesWithHistory=dealstage").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["results"].as_array().unwrap().len(), 50);
    let (_, _, full) = sim.get("/crm/v3/objects/deals?limit=100").await;
    assert_eq!(full["results"].as_array().unwrap().len(), 80, "without history a page holds 100");
    sim.admin_ok(Method::PUT, "/_sim/behaviour", Some(&json!({ "list_over_limit": "reject" }))).await;
    let (status, _, body) = sim.get("/crm/v3/objects/deals?limit=51&propertiesWithHistory=dealstage").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn history_in_the_ground_truth_matches_the_api() {
    let sim = Sim::small().await;
    let ids: Vec<u64> = sim.truth_ids("deals").await.into_iter().collect();
    sim.patch(&format!("/crm/v3/objects/deals/{}", ids[0]), &json!({ "properties": { "dealstage": "closedwon" } }))
        .await;
    sim.admin_ok(Method::POST, &format!("/_sim/objects/deals/{}/archive", ids[1]), None).await;

    let default = sim.truth("deals").await;
    assert!(default["objects"]["deals"]["live"][0].get("history").is_none(), "no history unless asked for");

    let truth =
        sim.admin_ok(Method::GET, "/_sim/truth?objects=deals&history=dealstage,dealname,no_such_property", None).await;
    let api: BTreeMap<u64, Value> = sim
        .list_all("/crm/v3/objects/deals?limit=50&propertiesWithHistory=dealstage,dealname")
        .await
        .into_iter()
        .map(|r| (id_of(&r), r["propertiesWithHistory"].clone()))
        .collect();
    let live = truth["objects"]["deals"]["live"].as_array().unwrap();
    assert_eq!(live.len(), api.len());
    for r in live {
        assert_eq!(r["history"], api[&id_of(r)], "deal {}", id_of(r));
    }
    let archived = &truth["objects"]["deals"]["archived"][0];
    assert_eq!(id_of(archived), ids[1]);
    let (_, _, one) = sim
        .get(&format!("/crm/v3/objects/deals/{}?archived=true&propertiesWithHistory=dealstage,dealname", ids[1]))
        .await;
    assert_eq!(archived["history"], one["propertiesWithHistory"]);

    // `*` asks for every live property.
    let all = sim.admin_ok(Method::GET, "/_sim/truth?objects=deals&history=*&values=false", None).await;
    let first = &all["objects"]["deals"]["live"][0];
    assert!(first.get("properties").is_none());
    for prop in ["hs_object_id", "createdate", "hs_lastmodifieddate", "dealstage"] {
        assert!(first["history"].get(prop).is_some(), "{prop} in {first}");
    }
}

/// A write stamped ahead of the clock (a touch spread over a second) followed at once by
/// another: the later write's version is not dated before the earlier one, so the newest
/// version is still the current value.
#[tokio::test]
async fn a_write_never_predates_the_records_last_modification() {
    let sim = Sim::small().await;
    let ids: Vec<u64> = sim.truth_ids("contacts").await.into_iter().take(2).collect();
    let body = json!({ "ids": ids, "property": "firstname", "spreadMs": 1_000 });
    sim.admin_ok(Method::POST, "/_sim/objects/contacts/touch", Some(&body)).await;
    let last = ids[1];
    let patch = json!({ "properties": { "firstname": "written after" } });
    sim.admin_ok(Method::PATCH, &format!("/_sim/objects/contacts/{last}"), Some(&patch)).await;
    let got = get_with_history(&sim, "contacts", last, "firstname").await;
    assert_history_of(&got, "firstname");
    assert_eq!(versions(&got, "firstname")[0]["value"], "written after");
}
