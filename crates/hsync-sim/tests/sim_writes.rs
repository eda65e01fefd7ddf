//! Writes through the HubSpot API as HubSpot refuses and answers them (docs/hubspot-write-api.md):
//! property values checked against their definitions, batch upsert by `email` or a unique
//! property with `new`, duplicate keys, the 409 of an existing contact, partial failure with
//! `objectWriteTraceId` versus whole-batch failure, single create and PATCH, the request log of
//! refused writes, default associations in batch, tasks and notes with inline associations and
//! their required `hs_timestamp`. The admin API plants what the API refuses.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{category, id_of, Sim};

const CONTACTS: &str = "/crm/v3/objects/contacts";

fn results(body: &Value) -> &Vec<Value> {
    body["results"].as_array().expect("results array")
}

/// Adds a property to `t` through the admin API (`definition` is HubSpot's `PropertyCreate`).
async fn add_property(sim: &Sim, t: &str, definition: Value) {
    sim.admin_ok(Method::POST, &format!("/_sim/properties/{t}"), Some(&definition)).await;
}

/// A contact property `name` of `type`/`fieldType` with options `(label, value)`.
async fn contact_property(sim: &Sim, name: &str, kind: &str, field: &str, options: &[(&str, &str)]) {
    let options: Vec<Value> = options.iter().map(|(label, value)| json!({ "label": label, "value": value })).collect();
    add_property(sim, "contacts", json!({ "name": name, "type": kind, "fieldType": field, "options": options })).await;
}

/// Creates a contact with `properties` through the API; returns status and body.
async fn create_contact(sim: &Sim, properties: Value) -> (StatusCode, Value) {
    let (status, _, body) = sim.post(CONTACTS, &json!({ "properties": properties })).await;
    (status, body)
}

/// The `code`s of a 400's `errors`, in order.
fn codes(body: &Value) -> Vec<&str> {
    body["errors"].as_array().map(|e| e.iter().filter_map(|e| e["code"].as_str()).collect()).unwrap_or_default()
}

/// The validation results HubSpot puts in the message as a JSON array after its prefix.
fn message_results(message: &str) -> Vec<Value> {
    let array = message.strip_prefix("Property values were not valid: ").expect("HubSpot's prefix");
    serde_json::from_str(array).expect("a JSON array")
}

/// A property value of record `id` of `t` as GET serves it.
async fn value_of(sim: &Sim, t: &str, id: u64, property: &str) -> Value {
    let (status, _, body) = sim.get(&format!("/crm/v3/objects/{t}/{id}?properties={property}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["properties"][property].clone()
}

/// The contact ids whose `email` is `email`, from the ground truth.
async fn contacts_with_email(sim: &Sim, email: &str) -> BTreeSet<u64> {
    let truth = sim.truth("contacts").await;
    truth["objects"]["contacts"]["live"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["properties"]["email"] == email)
        .map(id_of)
        .collect()
}

#[tokio::test]
async fn writes_number_values_must_be_plain_decimals() {
    let sim = Sim::small().await;
    contact_property(&sim, "score", "number", "number", &[]).await;
    for ok in ["17", "-3", "12.5"] {
        let (status, body) = create_contact(&sim, json!({ "score": ok })).await;
        assert_eq!(status, StatusCode::CREATED, "{ok}: {body}");
    }
    for bad in ["1.42e-14", "12,5", "abc"] {
        let (status, body) = create_contact(&sim, json!({ "score": bad })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(codes(&body), ["INVALID_INTEGER"]);
        assert_eq!(body["errors"][0]["message"], format!("{bad} was not a valid number."));
    }
}

#[tokio::test]
async fn writes_bool_values_are_lower_case_true_or_false() {
    let sim = Sim::small().await;
    contact_property(&sim, "opted_in", "bool", "booleancheckbox", &[]).await;
    for ok in ["true", "false"] {
        assert_eq!(create_contact(&sim, json!({ "opted_in": ok })).await.0, StatusCode::CREATED, "{ok}");
    }
    for bad in ["True", "1", "yes"] {
        let (status, body) = create_contact(&sim, json!({ "opted_in": bad })).await;
        assert_eq!((status, codes(&body)), (StatusCode::BAD_REQUEST, vec!["INVALID_OPTION"]), "{bad}: {body}");
    }
}

#[tokio::test]
async fn writes_enumerations_take_the_option_value_not_its_label() {
    let sim = Sim::small().await;
    contact_property(&sim, "shirt_size", "enumeration", "select", &[("Small", "s"), ("Large", "l")]).await;
    assert_eq!(create_contact(&sim, json!({ "shirt_size": "s" })).await.0, StatusCode::CREATED);
    let (status, body) = create_contact(&sim, json!({ "shirt_size": "Small" })).await;
    assert_eq!((status, codes(&body)), (StatusCode::BAD_REQUEST, vec!["INVALID_OPTION"]));
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("Small was not one of the allowed options: ["), "{message}");
}

#[tokio::test]
async fn writes_multi_select_takes_semicolon_separated_options_and_a_leading_semicolon_adds() {
    let sim = Sim::small().await;
    contact_property(
        &sim,
        "colors",
        "enumeration",
        "checkbox",
        &[("Red", "red"), ("Blue", "blue"), ("Green", "green")],
    )
    .await;
    let (status, body) = create_contact(&sim, json!({ "colors": "red;blue" })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = id_of(&body);
    let (status, body) = create_contact(&sim, json!({ "colors": "red;purple" })).await;
    assert_eq!((status, codes(&body)), (StatusCode::BAD_REQUEST, vec!["INVALID_OPTION"]));

    let (status, _, body) =
        sim.patch(&format!("{CONTACTS}/{id}"), &json!({ "properties": { "colors": ";green" } })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(value_of(&sim, "contacts", id, "colors").await, "red;blue;green", "appended, not replaced");
    sim.patch(&format!("{CONTACTS}/{id}"), &json!({ "properties": { "colors": "blue" } })).await;
    assert_eq!(value_of(&sim, "contacts", id, "colors").await, "blue", "replaced");
}

#[tokio::test]
async fn writes_date_values_are_days_or_epoch_millis_at_midnight_utc() {
    let sim = Sim::small().await;
    contact_property(&sim, "renewal_day", "date", "date", &[]).await;
    for ok in ["2025-03-01", "1735689600000"] {
        assert_eq!(create_contact(&sim, json!({ "renewal_day": ok })).await.0, StatusCode::CREATED, "{ok}");
    }
    let (status, body) = create_contact(&sim, json!({ "renewal_day": "1521225089103" })).await;
    assert_eq!((status, codes(&body)), (StatusCode::BAD_REQUEST, vec!["INVALID_DATE"]));
    assert_eq!(body["errors"][0]["message"], "1521225089103 is at 18:31:29.103 UTC, not midnight!");
    for bad in ["2025-02-30", "2025-03-01T00:00:00Z", "next week"] {
        let (status, body) = create_contact(&sim, json!({ "renewal_day": bad })).await;
        assert_eq!((status, codes(&body)), (StatusCode::BAD_REQUEST, vec!["INVALID_DATE"]), "{bad}");
    }
}

#[tokio::test]
async fn writes_datetime_values_are_epoch_millis_or_iso_8601() {
    let sim = Sim::small().await;
    contact_property(&sim, "last_seen", "datetime", "date", &[]).await;
    for ok in ["1735689600123", "2025-01-02T03:04:05.678Z", "2025-01-02T03:04:05+01:00"] {
        assert_eq!(create_contact(&sim, json!({ "last_seen": ok })).await.0, StatusCode::CREATED, "{ok}");
    }
    for bad in ["2025-01-02 03:04", "yesterday", "1.5e12"] {
        let (status, body) = create_contact(&sim, json!({ "last_seen": bad })).await;
        assert_eq!((status, codes(&body)), (StatusCode::BAD_REQUEST, vec!["INVALID_DATE"]), "{bad}");
    }
}

#[tokio::test]
async fn writes_contact_email_must_be_a_plausible_address() {
    let sim = Sim::small().await;
    assert_eq!(create_contact(&sim, json!({ "email": "first.last+x@mail.example.com" })).await.0, StatusCode::CREATED);
    for bad in ["no-at-sign", "@example.com", "a@localhost", "a b@example.com", "a@b@example.com"] {
        let (status, body) = create_contact(&sim, json!({ "email": bad })).await;
        assert_eq!((status, codes(&body)), (StatusCode::BAD_REQUEST, vec!["INVALID_EMAIL"]), "{bad}");
        assert_eq!(body["errors"][0]["message"], format!("Email address {bad} is invalid"));
    }
}

#[tokio::test]
async fn writes_values_longer_than_65536_characters_are_refused() {
    let sim = Sim::small().await;
    contact_property(&sim, "notes_text", "string", "textarea", &[]).await;
    let (status, body) = create_contact(&sim, json!({ "notes_text": "x".repeat(65_536) })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = create_contact(&sim, json!({ "notes_text": "x".repeat(65_537) })).await;
    assert_eq!((status, category(&body)), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"));
    assert_eq!(codes(&body), ["VALUE_TOO_LONG"]);
    assert_eq!(body["errors"][0]["context"]["propertyName"], json!(["notes_text"]));
}

#[tokio::test]
async fn writes_empty_string_clears_a_value_of_any_type() {
    let sim = Sim::small().await;
    contact_property(&sim, "score", "number", "number", &[]).await;
    contact_property(&sim, "renewal_day", "date", "date", &[]).await;
    let (status, body) =
        create_contact(&sim, json!({ "email": "clear@example.com", "score": "3", "renewal_day": "2025-01-01" })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = id_of(&body);
    let clear = json!({ "properties": { "email": "", "score": "", "renewal_day": "" } });
    let (status, _, body) = sim.patch(&format!("{CONTACTS}/{id}"), &clear).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(value_of(&sim, "contacts", id, "score").await, "");
}

#[tokio::test]
async fn writes_refused_values_answer_hubspots_validation_body_listing_every_property() {
    let sim = Sim::small().await;
    contact_property(&sim, "score", "number", "number", &[]).await;
    let (status, body) = create_contact(&sim, json!({ "email": "nope", "score": "1e3", "no_such": "x" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!((body["status"].as_str(), category(&body)), (Some("error"), "VALIDATION_ERROR"));
    assert!(body["correlationId"].is_string());
    assert_eq!(codes(&body), ["INVALID_EMAIL", "PROPERTY_DOESNT_EXIST", "INVALID_INTEGER"]);
    let names: Vec<&Value> = body["errors"].as_array().unwrap().iter().map(|e| &e["context"]["propertyName"]).collect();
    assert_eq!(names, [&json!(["email"]), &json!(["no_such"]), &json!(["score"])]);
    let listed = message_results(body["message"].as_str().unwrap());
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0]["isValid"], false);
    assert_eq!(
        (&listed[0]["error"], &listed[0]["name"], &listed[0]["propertyValue"]),
        (&json!("INVALID_EMAIL"), &json!("email"), &json!("nope"))
    );
    assert!(listed[2]["portalId"].is_u64());
}

#[tokio::test]
async fn writes_read_only_properties_are_refused_by_name() {
    let sim = Sim::small().await;
    let (status, body) = create_contact(&sim, json!({ "hs_object_id": "5" })).await;
    assert_eq!((status, category(&body)), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"));
    assert_eq!(body["message"], "Property \"hs_object_id\" is read only");
}

#[tokio::test]
async fn writes_admin_api_accepts_values_the_api_refuses() {
    let sim = Sim::small().await;
    contact_property(&sim, "score", "number", "number", &[]).await;
    let id = sim.admin_create("contacts", json!({ "email": "not an email", "score": "1e3" })).await;
    assert_eq!(value_of(&sim, "contacts", id, "score").await, "1e3");
    assert_eq!(value_of(&sim, "contacts", id, "email").await, "not an email");
}

#[tokio::test]
async fn writes_upsert_by_email_updates_the_contact_that_has_it_and_creates_the_others() {
    let sim = Sim::small().await;
    let known = sim.admin_create("contacts", json!({ "email": "known@example.com", "firstname": "Old" })).await;
    let inputs = json!([
        { "id": "Known@Example.com", "idProperty": "email", "properties": { "firstname": "Updated" } },
        { "id": "fresh@example.com", "idProperty": "email", "properties": { "firstname": "Fresh" } },
    ]);
    let (status, _, body) = sim.post(&format!("{CONTACTS}/batch/upsert"), &json!({ "inputs": inputs })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let by_name = |name: &str| results(&body).iter().find(|r| r["properties"]["firstname"] == name).cloned().unwrap();
    let updated = by_name("Updated");
    assert_eq!((id_of(&updated), &updated["new"]), (known, &json!(false)));
    let fresh = by_name("Fresh");
    assert_eq!(fresh["new"], true);
    assert_eq!(fresh["properties"]["email"], "fresh@example.com", "created with the key set");
    assert_eq!(contacts_with_email(&sim, "fresh@example.com").await, BTreeSet::from([id_of(&fresh)]));
}

#[tokio::test]
async fn writes_upsert_by_a_unique_custom_property_creates_then_updates() {
    let sim = Sim::small().await;
    let unique = json!({ "name": "warehouse_key", "type": "string", "fieldType": "text", "hasUniqueValue": true });
    add_property(&sim, "companies", unique).await;
    let upsert = |name: &str| {
        json!({ "inputs": [{ "id": "wh-1", "idProperty": "warehouse_key", "objectWriteTraceId": "t1",
                              "properties": { "name": name } }] })
    };
    let (status, _, first) = sim.post("/crm/v3/objects/companies/batch/upsert", &upsert("Acme")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(results(&first)[0]["new"], true);
    let id = id_of(&results(&first)[0]);
    let (status, _, second) = sim.post("/crm/v3/objects/companies/batch/upsert", &upsert("Acme Inc")).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!((id_of(&results(&second)[0]), &results(&second)[0]["new"]), (id, &json!(false)));
    assert_eq!(value_of(&sim, "companies", id, "name").await, "Acme Inc");
    assert_eq!(value_of(&sim, "companies", id, "warehouse_key").await, "wh-1");
}

#[tokio::test]
async fn writes_upsert_or_update_by_a_non_unique_property_is_refused() {
    let sim = Sim::small().await;
    let before = sim.truth_ids("companies").await;
    for (op, property) in [("upsert", "name"), ("upsert", "hs_object_id"), ("update", "name")] {
        let inputs = json!([{ "id": "Acme", "idProperty": property, "properties": { "city": "Paris" } }]);
        let path = format!("/crm/v3/objects/companies/batch/{op}");
        let (status, _, body) = sim.post(&path, &json!({ "inputs": inputs })).await;
        assert_eq!((status, category(&body)), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"), "{op} {property}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!("Unable to perform update/upsert by non-unique 0-2 property {property}")),
            "{message}"
        );
    }
    assert_eq!(sim.truth_ids("companies").await, before);
}

#[tokio::test]
async fn writes_batch_update_refuses_email_as_id_property() {
    let sim = Sim::small().await;
    sim.admin_create("contacts", json!({ "email": "known@example.com" })).await;
    let inputs = json!([{ "id": "known@example.com", "idProperty": "email", "properties": { "firstname": "X" } }]);
    let (status, _, body) = sim.post(&format!("{CONTACTS}/batch/update"), &json!({ "inputs": inputs })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .starts_with("Unable to perform update/upsert by non-unique 0-1 property email"));
}

#[tokio::test]
async fn writes_upsert_without_id_property_updates_by_record_id() {
    let sim = Sim::small().await;
    let id = sim.admin_create("contacts", json!({ "email": "byid@example.com" })).await;
    let inputs = json!([{ "id": id.to_string(), "properties": { "firstname": "ById" } }]);
    let (status, _, body) = sim.post(&format!("{CONTACTS}/batch/upsert"), &json!({ "inputs": inputs })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((id_of(&results(&body)[0]), &results(&body)[0]["new"]), (id, &json!(false)));
    assert_eq!(value_of(&sim, "contacts", id, "firstname").await, "ById");
}

#[tokio::test]
async fn writes_duplicate_keys_in_one_batch_fail_it_and_write_nothing() {
    let sim = Sim::small().await;
    let before = sim.truth("contacts").await["objects"]["contacts"]["live"].as_array().unwrap().len();
    let upsert = json!([
        { "id": "twin@example.com", "idProperty": "email", "properties": { "firstname": "A" } },
        { "id": "TWIN@example.com", "idProperty": "email", "properties": { "firstname": "B" } },
    ]);
    let (status, _, body) = sim.post(&format!("{CONTACTS}/batch/upsert"), &json!({ "inputs": upsert })).await;
    assert_eq!((status, category(&body)), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"), "{body}");
    assert!(body["message"].as_str().unwrap().starts_with("Duplicate IDs found in batch input"), "{body}");
    let id = *sim.truth_ids("contacts").await.iter().next().unwrap();
    let update = json!([
        { "id": id.to_string(), "properties": { "firstname": "A" } },
        { "id": id.to_string(), "properties": { "firstname": "B" } },
    ]);
    let (status, _, body) = sim.post(&format!("{CONTACTS}/batch/update"), &json!({ "inputs": update })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["context"]["ids"], json!([id.to_string()]));
    let after = sim.truth("contacts").await["objects"]["contacts"]["live"].as_array().unwrap().len();
    assert_eq!(after, before, "nothing created");
    assert_ne!(value_of(&sim, "contacts", id, "firstname").await, "B", "nothing updated");
}

#[tokio::test]
async fn writes_batch_update_by_unique_property_never_creates_and_reports_missing_keys() {
    let sim = Sim::small().await;
    add_property(&sim, "companies", json!({ "name": "erp_id", "type": "string", "hasUniqueValue": true })).await;
    let known = sim.admin_create("companies", json!({ "name": "Known", "erp_id": "E1" })).await;
    let inputs = json!([
        { "id": "E1", "idProperty": "erp_id", "properties": { "city": "Lyon" } },
        { "id": "E2", "idProperty": "erp_id", "properties": { "city": "Lyon" } },
    ]);
    let before = sim.truth_ids("companies").await;
    let (status, _, body) = sim.post("/crm/v3/objects/companies/batch/update", &json!({ "inputs": inputs })).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(results(&body).iter().map(id_of).collect::<Vec<_>>(), [known]);
    assert_eq!(body["numErrors"], 1);
    assert_eq!(body["errors"][0]["category"], "OBJECT_NOT_FOUND");
    assert_eq!(body["errors"][0]["context"]["ids"], json!(["E2"]));
    assert_eq!(sim.truth_ids("companies").await, before, "no record created");
    assert_eq!(value_of(&sim, "companies", known, "city").await, "Lyon");
}

#[tokio::test]
async fn writes_batch_update_of_unknown_record_ids_answers_207_and_writes_the_rest() {
    let sim = Sim::small().await;
    let id = *sim.truth_ids("deals").await.iter().next().unwrap();
    let inputs = json!([
        { "id": id.to_string(), "properties": { "dealname": "Kept" } },
        { "id": "999999999", "properties": { "dealname": "Lost" } },
    ]);
    let (status, _, body) = sim.post("/crm/v3/objects/deals/batch/update", &json!({ "inputs": inputs })).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(
        body["errors"][0]["message"],
        "Could not get some DEAL objects, they may be deleted or not exist. Check that ids are valid."
    );
    assert_eq!(body["errors"][0]["context"]["ids"], json!(["999999999"]));
    assert_eq!(value_of(&sim, "deals", id, "dealname").await, "Kept");
}

#[tokio::test]
async fn writes_batch_create_of_an_existing_contact_email_is_a_409_conflict() {
    let sim = Sim::small().await;
    let existing = sim.admin_create("contacts", json!({ "email": "taken@example.com" })).await;
    let inputs = json!([
        { "properties": { "email": "new-one@example.com" } },
        { "properties": { "email": "Taken@example.com" } },
    ]);
    let (status, _, body) = sim.post(&format!("{CONTACTS}/batch/create"), &json!({ "inputs": inputs })).await;
    assert_eq!((status, category(&body)), (StatusCode::CONFLICT, "CONFLICT"), "{body}");
    assert_eq!(body["message"], format!("Contact already exists. Existing ID: {existing}"));
    assert!(contacts_with_email(&sim, "new-one@example.com").await.is_empty(), "nothing written");
}

#[tokio::test]
async fn writes_trace_ids_on_every_input_fail_invalid_inputs_alone_with_207() {
    let sim = Sim::small().await;
    let existing = sim.admin_create("contacts", json!({ "email": "taken@example.com" })).await;
    let inputs = json!([
        { "objectWriteTraceId": "good", "properties": { "email": "good@example.com" } },
        { "objectWriteTraceId": "bad-email", "properties": { "email": "nope" } },
        { "objectWriteTraceId": "taken", "properties": { "email": "taken@example.com" } },
    ]);
    let (status, _, body) = sim.post(&format!("{CONTACTS}/batch/create"), &json!({ "inputs": inputs })).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(results(&body).len(), 1);
    assert_eq!(results(&body)[0]["properties"]["email"], "good@example.com");
    assert_eq!(body["numErrors"], 2);
    let error = |trace: &str| {
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["context"]["objectWriteTraceId"] == json!([trace]))
            .cloned()
    };
    let invalid = error("bad-email").expect("an error for the invalid input");
    assert_eq!((&invalid["status"], &invalid["category"]), (&json!("error"), &json!("VALIDATION_ERROR")));
    assert_eq!(message_results(invalid["message"].as_str().unwrap())[0]["error"], "INVALID_EMAIL");
    let conflict = error("taken").expect("an error for the existing contact");
    assert_eq!(conflict["category"], "CONFLICT");
    assert_eq!(conflict["context"]["existingId"], json!([existing.to_string()]));
    assert_eq!(contacts_with_email(&sim, "good@example.com").await.len(), 1, "the valid input was written");
}

#[tokio::test]
async fn writes_without_trace_ids_one_invalid_input_fails_the_whole_batch() {
    let sim = Sim::small().await;
    let inputs = json!([
        { "properties": { "email": "fine@example.com" } },
        { "properties": { "email": "nope" } },
    ]);
    let (status, _, body) = sim.post(&format!("{CONTACTS}/batch/create"), &json!({ "inputs": inputs })).await;
    assert_eq!((status, category(&body)), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"), "{body}");
    assert_eq!(codes(&body), ["INVALID_EMAIL"]);
    assert!(contacts_with_email(&sim, "fine@example.com").await.is_empty(), "nothing written");
}

#[tokio::test]
async fn writes_trace_ids_on_only_some_inputs_still_fail_the_whole_batch() {
    let sim = Sim::small().await;
    let ids: Vec<u64> = sim.truth_ids("contacts").await.into_iter().take(2).collect();
    let inputs = json!([
        { "id": ids[0].to_string(), "objectWriteTraceId": "a", "properties": { "firstname": "Partial" } },
        { "id": ids[1].to_string(), "properties": { "no_such": "x" } },
    ]);
    let (status, _, body) = sim.post(&format!("{CONTACTS}/batch/update"), &json!({ "inputs": inputs })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(codes(&body), ["PROPERTY_DOESNT_EXIST"]);
    assert_ne!(value_of(&sim, "contacts", ids[0], "firstname").await, "Partial", "nothing written");
}

#[tokio::test]
async fn writes_single_patch_validates_values_and_finds_the_record_by_email() {
    let sim = Sim::small().await;
    contact_property(&sim, "score", "number", "number", &[]).await;
    let id = sim.admin_create("contacts", json!({ "email": "patch@example.com", "score": "1" })).await;
    let (status, _, body) = sim.patch(&format!("{CONTACTS}/{id}"), &json!({ "properties": { "score": "2e3" } })).await;
    assert_eq!((status, codes(&body)), (StatusCode::BAD_REQUEST, vec!["INVALID_INTEGER"]));
    assert_eq!(value_of(&sim, "contacts", id, "score").await, "1", "nothing written");

    let path = format!("{CONTACTS}/patch@example.com?idProperty=email");
    let (status, _, body) = sim.patch(&path, &json!({ "properties": { "score": "2000" } })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(id_of(&body), id);
    assert_eq!(value_of(&sim, "contacts", id, "score").await, "2000");
    let (status, _, _) =
        sim.patch(&format!("{CONTACTS}/nobody@example.com?idProperty=email"), &json!({ "properties": {} })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn writes_refused_by_hubspot_are_in_the_request_log_with_their_status_and_body() {
    let sim = Sim::small().await;
    let body = json!({ "inputs": [{ "properties": { "email": "logged-nope" } }] });
    let (status, _, _) = sim.post(&format!("{CONTACTS}/batch/create"), &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let log = sim.admin_ok(Method::GET, "/_sim/requests", None).await;
    let entry = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == format!("{CONTACTS}/batch/create"))
        .cloned()
        .expect("the refused write is logged");
    assert_eq!((&entry["method"], &entry["status"]), (&json!("POST"), &json!(400)));
    assert!(entry["body"].as_str().unwrap().contains("logged-nope"), "{entry}");
    assert!(log["byStatus"]["400"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn writes_batch_associate_default_links_pairs_with_the_unlabeled_type() {
    let sim = Sim::small().await;
    let contact = sim.admin_create("contacts", json!({ "email": "assoc@example.com" })).await;
    let company = *sim.truth_ids("companies").await.iter().next().unwrap();
    let inputs = json!([{ "from": { "id": contact.to_string() }, "to": { "id": company.to_string() } }]);
    for path in [
        "/crm/v4/associations/contacts/companies/batch/associate/default",
        "/crm/associations/2026-03/contacts/companies/batch/associate/default",
    ] {
        let (status, _, body) = sim.post(path, &json!({ "inputs": inputs })).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let result = &results(&body)[0];
        assert_eq!(
            (&result["from"]["id"], &result["to"]["id"]),
            (&json!(contact.to_string()), &json!(company.to_string()))
        );
        assert_eq!(
            result["associationSpec"],
            json!({ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279 })
        );
    }
    let (_, _, linked) = sim.get(&format!("/crm/v4/objects/companies/{company}/associations/contacts")).await;
    let back: Vec<&Value> = results(&linked).iter().filter(|r| r["toObjectId"] == contact).collect();
    assert_eq!(back.len(), 1, "the reverse side exists: {linked}");
    assert_eq!(back[0]["associationTypes"][0]["typeId"], 280);
    let missing = json!({ "inputs": [{ "from": { "id": contact.to_string() }, "to": { "id": "999999999" } }] });
    let (status, _, _) = sim.post("/crm/v4/associations/contacts/companies/batch/associate/default", &missing).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn writes_tasks_and_notes_are_created_in_batch_with_inline_associations() {
    let sim = Sim::small().await;
    let contact = sim.admin_create("contacts", json!({ "email": "owner-of-tasks@example.com" })).await;
    let company = *sim.truth_ids("companies").await.iter().next().unwrap();
    let link = |id: u64, type_id: u32| json!({ "to": { "id": id.to_string() }, "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id }] });
    let cases = [
        ("tasks", json!({ "hs_timestamp": "1735689600000", "hs_task_subject": "Call back" }), 204, 192),
        ("notes", json!({ "hs_timestamp": "2025-01-01T09:00:00Z", "hs_note_body": "Met" }), 202, 190),
    ];
    for (t, properties, to_contact, to_company) in cases {
        let inputs = json!([{ "properties": properties, "associations": [link(contact, to_contact), link(company, to_company)] }]);
        let (status, _, body) =
            sim.post(&format!("/crm/v3/objects/{t}/batch/create"), &json!({ "inputs": inputs })).await;
        assert_eq!(status, StatusCode::CREATED, "{t}: {body}");
        let id = id_of(&results(&body)[0]);
        for (to, target, type_id) in [("contacts", contact, to_contact), ("companies", company, to_company)] {
            let (_, _, linked) = sim.get(&format!("/crm/v4/objects/{t}/{id}/associations/{to}")).await;
            let found = &results(&linked)[0];
            assert_eq!(found["toObjectId"], target, "{t} -> {to}: {linked}");
            assert_eq!(found["associationTypes"][0]["typeId"], type_id);
        }
    }
}

#[tokio::test]
async fn writes_tasks_and_notes_without_hs_timestamp_are_refused() {
    let sim = Sim::small().await;
    for (t, upper) in [("tasks", "TASK"), ("notes", "NOTE")] {
        let before = sim.truth_ids(t).await;
        let inputs = json!([{ "properties": { "hs_timestamp": "" } }]);
        let (status, _, body) =
            sim.post(&format!("/crm/v3/objects/{t}/batch/create"), &json!({ "inputs": inputs })).await;
        assert_eq!((status, category(&body)), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"), "{t}: {body}");
        assert_eq!(body["message"], format!("Error creating {upper}. Some required properties were not set."));
        assert_eq!(body["context"]["properties"], json!(["hs_timestamp"]));
        let (status, _, _) = sim.post(&format!("/crm/v3/objects/{t}"), &json!({ "properties": {} })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "single create too");
        assert_eq!(sim.truth_ids(t).await, before);
    }
}
