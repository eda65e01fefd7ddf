//! The simulator is as strict as HubSpot: bodies of the wrong shape and query parameters of the
//! wrong type get HubSpot's 400 bodies, unknown routes its HTML 404, and the read routes HubSpot
//! documents exist; answers are gzipped when the request accepts it, and a `truncated_json`
//! fault cuts the compressed body.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::Sim;

/// POSTs `raw` bytes as JSON.
async fn post_raw(sim: &Sim, path: &str, raw: &str) -> (StatusCode, Value) {
    let resp = sim
        .http
        .post(sim.url(path))
        .bearer_auth(&sim.token)
        .header("content-type", "application/json")
        .body(raw.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// HubSpot's body for input it could not read: `status`, `message` (prefixed as HubSpot words
/// it) and `correlationId`, nothing else.
fn is_unreadable(body: &Value, prefix: &str) -> bool {
    body["status"] == "error"
        && body["message"].as_str().is_some_and(|m| m.starts_with(prefix))
        && body["correlationId"].as_str().is_some()
        && body.as_object().is_some_and(|o| o.len() == 3)
}

#[tokio::test]
async fn bodies_of_the_wrong_shape_get_hubspots_400_and_change_nothing() {
    let sim = Sim::small().await;
    let before = sim.truth_ids("contacts").await;
    let cases = [
        ("/crm/v3/objects/contacts", "[null, null]"),
        ("/crm/v3/objects/contacts", r#"{"properties": ["email"]}"#),
        ("/crm/v3/objects/contacts/batch/read", r#"{"inputs": {}}"#),
        ("/crm/v3/objects/contacts/batch/read", r#"{"inputs": [{"name": "x"}]}"#),
        ("/crm/v3/objects/contacts/batch/archive", r#"{"inputs": {}}"#),
        ("/crm/v3/objects/contacts/batch/create", r#"{"inputs": [null]}"#),
        ("/crm/v3/objects/contacts/batch/update", r#"{"inputs": [{"properties": {"firstname": "x"}}]}"#),
        ("/crm/v3/objects/contacts/search", "\n"),
        ("/crm/v3/objects/contacts/search", r#"{"filterGroups": {}}"#),
        ("/crm/v4/associations/contacts/companies/batch/read", r#"{"inputs": {}}"#),
        ("/crm/v3/properties/contacts/batch/read", r#"{"inputs": ["email"]}"#),
        ("/crm-object-schemas/v3/schemas/batch/read", r#"{"inputs": [{"name": "cars"}]}"#),
    ];
    for (path, raw) in cases {
        let (status, body) = post_raw(&sim, path, raw).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {raw:?}: {body}");
        assert!(is_unreadable(&body, "Invalid input JSON on line "), "{path} {raw:?}: {body}");
    }
    assert_eq!(sim.truth_ids("contacts").await, before, "nothing was created or archived");
    // The right shapes still pass, numbers taken for strings as HubSpot does.
    let id = before.iter().next().unwrap();
    let (status, body) =
        post_raw(&sim, "/crm/v3/objects/contacts/batch/read", &format!(r#"{{"inputs": [{{"id": {id}}}]}}"#)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn query_parameters_of_the_wrong_type_get_hubspots_400() {
    let sim = Sim::small().await;
    for path in ["/crm/v3/owners?limit=abc", "/crm/v3/owners?after=xyz", "/crm/v3/objects/contacts?limit=abc"] {
        let (status, _, body) = sim.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(is_unreadable(&body, "Unable to parse value for query parameter: "), "{path}: {body}");
    }
    let (status, _, body) = sim.get("/crm/v3/owners?limit=2").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn answers_are_gzipped_when_asked_and_a_truncated_fault_cuts_the_compressed_body() {
    let sim = Sim::small().await;
    // A client that does not decode, to see the bytes on the wire.
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let get = |encoding: Option<&'static str>| {
        let mut req = raw.get(sim.url("/crm/v3/objects/contacts?limit=100")).bearer_auth(&sim.token);
        if let Some(e) = encoding {
            req = req.header("accept-encoding", e);
        }
        req.send()
    };
    let plain = get(None).await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain: Value = plain.json().await.unwrap();
    let zipped = get(Some("gzip")).await.unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let bytes = zipped.bytes().await.unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a gzip stream");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text).unwrap();
    let unzipped: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(unzipped["results"], plain["results"], "the same answer, compressed");

    sim.admin_ok(Method::PUT, "/_sim/faults", Some(&json!([{"kind": "truncated_json", "probability": 1.0}]))).await;
    let cut = get(Some("gzip")).await.unwrap();
    assert_eq!(cut.status(), StatusCode::OK);
    assert_eq!(cut.headers()["content-encoding"], "gzip");
    let bytes = cut.bytes().await.unwrap();
    let mut text = String::new();
    let decoded = std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut text);
    assert!(decoded.is_err(), "the compressed stream ends early: {} bytes decoded", text.len());
}

fn is_not_found(body: &Value) -> bool {
    body["status"] == "error"
        && body["category"] == "OBJECT_NOT_FOUND"
        && body["correlationId"].as_str().is_some()
        && body["message"].as_str().is_some_and(|m| !m.is_empty())
}

/// The HTML 404 HubSpot's web server answers an unknown path with.
async fn assert_no_route(sim: &Sim, path: &str) {
    let resp = sim.http.get(sim.url(path)).bearer_auth(&sim.token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
    assert_eq!(resp.headers()["content-type"], "text/html;charset=utf-8", "{path}");
    assert!(resp.text().await.unwrap().contains("<title>Error 404 Not Found</title>"), "{path}");
}

#[tokio::test]
async fn the_read_routes_hubspot_documents_exist_and_unknown_routes_get_its_html_404() {
    let sim = Sim::small().await;
    // Pipelines: a stage by id, audits; any other third segment is no route.
    let (status, _, stages) = sim.get("/crm/v3/pipelines/deals/default/stages").await;
    assert_eq!(status, StatusCode::OK, "{stages}");
    let stage = stages["results"][0]["id"].as_str().unwrap().to_owned();
    let (status, _, one) = sim.get(&format!("/crm/v3/pipelines/deals/default/stages/{stage}")).await;
    assert_eq!((status, one["id"].as_str()), (StatusCode::OK, Some(stage.as_str())), "{one}");
    for path in
        ["/crm/v3/pipelines/deals/default/audit", &format!("/crm/pipelines/2026-03/deals/default/stages/{stage}/audit")]
    {
        let (status, _, audit) = sim.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {audit}");
        let first = &audit["results"][0];
        assert!(
            first["action"].is_string() && first["identifier"].is_string() && first["portalId"].is_number(),
            "{audit}"
        );
    }
    assert_no_route(&sim, "/crm/v3/pipelines/deals/default/nonsense").await;
    // A route that exists, for a stage that does not: HubSpot's JSON 404.
    let (status, _, body) = sim.get("/crm/v3/pipelines/deals/default/stages/no-such-stage").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(is_not_found(&body), "{body}");

    // Properties: groups by name, batch read.
    let (_, _, groups) = sim.get("/crm/v3/properties/contacts/groups").await;
    let group = groups["results"][0]["name"].as_str().unwrap().to_owned();
    let (status, _, one) = sim.get(&format!("/crm/v3/properties/contacts/groups/{group}")).await;
    assert_eq!((status, one["name"].as_str()), (StatusCode::OK, Some(group.as_str())), "{one}");
    let (status, _, body) = sim.get("/crm/v3/properties/contacts/groups/no_such_group").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let read = json!({"archived": false, "inputs": [{"name": "email"}, {"name": "no_such_property"}]});
    let (status, _, body) = sim.post("/crm/v3/properties/contacts/batch/read", &read).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["results"].as_array().unwrap().iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["email"], "{body}");
    assert_eq!(body["status"], "COMPLETE");

    // Schemas: batch read of the custom types named.
    let (status, _, body) =
        sim.post("/crm-object-schemas/v3/schemas/batch/read", &json!({"inputs": ["cars", "contacts"]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(1), "{body}");

    // Association definitions: configurations and labels under the `/crm/associations/v4` spelling.
    for path in [
        "/crm/associations/v4/definitions/configurations/all",
        "/crm/associations/v4/definitions/configurations/contacts/companies",
        "/crm/associations/2026-03/definitions/configurations/contacts/companies",
        "/crm/associations/v4/contacts/companies/labels",
    ] {
        let (status, _, body) = sim.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let first = &body["results"][0];
        assert!(first["typeId"].is_number() && first["category"].is_string(), "{path}: {body}");
    }

    // Anything else: HubSpot's HTML 404, and its HTML 405 for a method a route does not take.
    for path in ["/crm/v3/nonsense", "/crm/v3/objects/contacts/1/2/3/4", "/nothing/here"] {
        assert_no_route(&sim, path).await;
    }
    let resp = sim.http.delete(sim.url("/crm/v3/owners")).bearer_auth(&sim.token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["content-type"], "text/html;charset=utf-8");
    assert!(resp.text().await.unwrap().contains("<title>Error 405 Method Not Allowed</title>"));
}
