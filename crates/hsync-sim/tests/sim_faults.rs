//! Injected faults as a client meets them over real HTTP (Cloudflare HTML and JSON 5xx, 429
//! bursts, slow and hanging responses, dropped connections, truncated JSON, a spent daily
//! limit), rule counting and targeting, and the admin request log.

use std::time::{Duration, Instant};

use hsync_sim::LimitSettings;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{category, limited, small_portal, Sim};

async fn inject(sim: &Sim, rule: Value) {
    sim.admin_ok(Method::POST, "/_sim/faults", Some(&rule)).await;
}

/// A GET whose raw outcome (including transport errors) the test inspects.
async fn raw_get(sim: &Sim, client: &reqwest::Client, path: &str) -> reqwest::Result<reqwest::Response> {
    client.get(sim.url(path)).bearer_auth(&sim.token).send().await
}

fn content_type(resp: &reqwest::Response) -> String {
    resp.headers().get(reqwest::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
}

#[tokio::test]
async fn faults_server_error_sends_html_or_json_5xx_once() {
    let sim = Sim::small().await;
    inject(&sim, json!({ "kind": "server_error", "status": 502, "html": true, "remaining": 1 })).await;
    let resp = raw_get(&sim, &sim.http, "/crm/v3/objects/contacts").await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert!(content_type(&resp).starts_with("text/html"), "{}", content_type(&resp));
    let text = resp.text().await.unwrap();
    assert!(text.contains("<html") && text.contains("502"), "{text}");
    assert!(serde_json::from_str::<Value>(&text).is_err(), "the HTML page is not JSON");
    assert_eq!(sim.get("/crm/v3/objects/contacts").await.0, StatusCode::OK, "remaining 1 fires once");

    inject(&sim, json!({ "kind": "server_error", "status": 500, "html": false, "remaining": 1 })).await;
    let resp = raw_get(&sim, &sim.http, "/crm/v3/objects/contacts").await.unwrap();
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(content_type(&resp).starts_with("application/json"));
    let body: Value = resp.json().await.expect("a JSON 500");
    assert_eq!(body["status"], "error");
    assert!(body["message"].is_string() && body["correlationId"].is_string() && body["category"].is_string());
}

#[tokio::test]
async fn faults_rate_limit_burst_is_429_with_the_policy_of_the_route() {
    let sim = Sim::small().await;
    inject(&sim, json!({ "kind": "rate_limit", "remaining": 1 })).await;
    let (status, headers, body) = sim.get("/crm/v3/objects/contacts").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert_eq!(body["message"], "You have reached your ten_secondly_rolling limit.");
    assert!(headers.get("retry-after").is_none());

    inject(&sim, json!({ "kind": "rate_limit", "target": "search", "remaining": 1 })).await;
    let (status, _, _) = sim.get("/crm/v3/objects/contacts").await;
    assert_eq!(status, StatusCode::OK, "a search rule leaves list alone");
    let (status, _, body) = sim.post("/crm/v3/objects/contacts/search", &json!({})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["message"], "You have reached your secondly limit.");
    let (status, _, _) = sim.post("/crm/v3/objects/contacts/search", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn faults_slow_response_arrives_after_the_delay() {
    let sim = Sim::small().await;
    inject(&sim, json!({ "kind": "slow", "delay_ms": 400, "remaining": 1 })).await;
    let started = Instant::now();
    let (status, _, body) = sim.get("/crm/v3/objects/contacts?limit=3").await;
    let waited = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["results"].as_array().unwrap().len(), 3, "the full answer arrives");
    assert!(waited >= Duration::from_millis(400), "held for the delay: {waited:?}");
    let log = sim.admin_ok(Method::GET, "/_sim/requests", None).await;
    assert_eq!(log["entries"][0]["fault"], "slow");
}

#[tokio::test]
async fn faults_hang_makes_the_client_time_out() {
    let sim = Sim::small().await;
    sim.admin_ok(Method::PUT, "/_sim/behaviour", Some(&json!({ "hang_ms": 3_000 }))).await;
    inject(&sim, json!({ "kind": "hang", "remaining": 1 })).await;
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().unwrap();
    let err = raw_get(&sim, &impatient, "/crm/v3/objects/contacts")
        .await
        .expect_err("no response before the client gives up");
    assert!(err.is_timeout(), "{err:?}");
    let (status, _, _) = sim.get("/crm/v3/objects/contacts").await;
    assert_eq!(status, StatusCode::OK, "the rule is spent");
}

#[tokio::test]
async fn faults_drop_connection_is_a_transport_error_not_a_status() {
    let sim = Sim::small().await;
    inject(&sim, json!({ "kind": "drop_connection", "remaining": 1 })).await;
    let err = raw_get(&sim, &sim.http, "/crm/v3/objects/contacts")
        .await
        .expect_err("the connection closes without a response");
    assert!(err.status().is_none(), "{err:?}");
    assert!(!err.is_timeout(), "{err:?}");
    assert!(err.is_request() || err.is_connect() || err.is_body(), "{err:?}");
    let (status, _, _) = sim.get("/crm/v3/objects/contacts").await;
    assert_eq!(status, StatusCode::OK, "a new connection works");
    let log = sim.admin_ok(Method::GET, "/_sim/requests", None).await;
    let dropped = &log["entries"][0];
    assert_eq!(dropped["fault"], "drop_connection");
    assert_eq!(dropped["status"], 0);
}

#[tokio::test]
async fn faults_truncated_json_is_200_with_a_body_that_fails_to_parse() {
    let sim = Sim::small().await;
    inject(&sim, json!({ "kind": "truncated_json", "target": "list", "remaining": 1 })).await;
    // A client that does not ask for gzip gets the plain body cut (`sim_strict` cuts a gzipped one).
    let plain = reqwest::Client::builder().no_gzip().build().unwrap();
    let resp = raw_get(&sim, &plain, "/crm/v3/objects/contacts?limit=20").await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(content_type(&resp).starts_with("application/json"));
    let text = resp.text().await.unwrap();
    assert!(text.starts_with('{') && text.len() > 100, "half a JSON document: {text}");
    assert!(serde_json::from_str::<Value>(&text).is_err());
    let (status, _, body) = sim.get("/crm/v3/objects/contacts?limit=20").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["results"].as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn faults_exhaust_daily_makes_every_call_429_daily() {
    let sim = Sim::start(limited(small_portal(), LimitSettings::default())).await;
    inject(&sim, json!({ "kind": "exhaust_daily", "remaining": 1 })).await;
    for path in ["/crm/v3/objects/contacts", "/crm/v3/owners"] {
        let (status, _, body) = sim.get(path).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert_eq!(body["policyName"], "DAILY");
        assert_eq!(body["message"], "You have reached your daily limit.");
    }
    let limits = sim.admin_ok(Method::GET, "/_sim/limits", None).await;
    assert_eq!(limits["dailyUsed"], limits["settings"]["daily_limit"]);
    let faults = sim.admin_ok(Method::GET, "/_sim/faults", None).await;
    assert_eq!(faults["injected"]["exhaust_daily"], 1, "the later 429s come from the limit, not the rule");
}

#[tokio::test]
async fn faults_remaining_skip_and_target_are_respected_and_counted() {
    let sim = Sim::small().await;
    inject(
        &sim,
        json!({ "kind": "server_error", "status": 503, "html": false, "target": "search", "remaining": 2, "skip": 1 }),
    )
    .await;
    inject(
        &sim,
        json!({ "kind": "server_error", "status": 504, "html": true, "target": "associations", "remaining": 1 }),
    )
    .await;
    let one = json!({ "limit": 1 });
    let search = || sim.post("/crm/v3/objects/contacts/search", &one);
    assert_eq!(sim.get("/crm/v3/objects/contacts").await.0, StatusCode::OK, "list is not a search");
    assert_eq!(search().await.0, StatusCode::OK, "the first search is skipped");
    assert_eq!(search().await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(search().await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(search().await.0, StatusCode::OK, "remaining 2 is spent");
    let (status, _, _) = sim.post("/crm/v4/associations/contacts/companies/batch/read", &json!({ "inputs": [] })).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);

    let faults = sim.admin_ok(Method::GET, "/_sim/faults", None).await;
    assert_eq!(faults["injected"]["server_error"], 3);
    assert_eq!(faults["rules"], json!([]), "spent rules are dropped");
    let log = sim.admin_ok(Method::GET, "/_sim/requests", None).await;
    assert_eq!(log["byStatus"]["503"], 2);
    assert_eq!(log["byStatus"]["504"], 1);
}

#[tokio::test]
async fn request_log_records_method_path_status_and_post_bodies_with_counters() {
    let sim = Sim::small().await;
    let search_body = json!({ "limit": 2, "properties": ["email"] });
    sim.get("/crm/v3/objects/contacts?limit=1").await;
    sim.post("/crm/v3/objects/contacts/search", &search_body).await;
    let (status, _, _) = sim.get("/crm/v3/objects/contacts/987654321").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sim.admin_ok(Method::GET, "/_sim/health", None).await;

    let log = sim.admin_ok(Method::GET, "/_sim/requests", None).await;
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "admin calls are not logged: {log}");
    assert_eq!(entries[0]["method"], "GET");
    assert_eq!(entries[0]["path"], "/crm/v3/objects/contacts");
    assert_eq!(entries[0]["query"], "limit=1");
    assert_eq!(entries[0]["status"], 200);
    assert!(entries[0]["body"].is_null(), "GET bodies are not kept");
    assert_eq!(entries[1]["method"], "POST");
    assert_eq!(entries[1]["path"], "/crm/v3/objects/contacts/search");
    assert_eq!(entries[1]["bucket"], "search");
    let logged: Value = serde_json::from_str(entries[1]["body"].as_str().unwrap()).unwrap();
    assert_eq!(logged, search_body);
    assert_eq!(entries[2]["status"], 404);
    assert_eq!(log["byStatus"], json!({ "200": 2, "404": 1 }));
    assert_eq!(log["byBucket"], json!({ "general": 2, "search": 1 }));
    assert_eq!(log["count"], 3);

    let since = log["nextSeq"].as_u64().unwrap();
    let (status, _, body) = sim.get("/crm/v3/objects/companies").await;
    assert_eq!(status, StatusCode::OK, "{}", category(&body));
    let newer = sim.admin_ok(Method::GET, &format!("/_sim/requests?since={since}"), None).await;
    assert_eq!(newer["entries"].as_array().unwrap().len(), 1);
    assert_eq!(newer["entries"][0]["path"], "/crm/v3/objects/companies");
    sim.admin_ok(Method::DELETE, "/_sim/requests", None).await;
    let cleared = sim.admin_ok(Method::GET, "/_sim/requests", None).await;
    assert_eq!(cleared["entries"], json!([]));
    assert_eq!(cleared["count"], 0);
}

#[tokio::test]
async fn a_request_whose_client_goes_away_is_logged_unanswered() {
    let sim = Sim::small().await;
    inject(&sim, json!({ "kind": "slow", "delay_ms": 60_000, "remaining": 1 })).await;
    let impatient = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
    let err = raw_get(&sim, &impatient, "/crm/v3/objects/contacts?limit=3").await.expect_err("the client gives up");
    assert!(err.is_timeout(), "{err:?}");
    drop(impatient);
    // The server notices the closed connection and stops serving it; wait for the log entry
    // (bounded), which a client crashing mid-request leaves too.
    let mut entries = Vec::new();
    for _ in 0..100 {
        let log = sim.admin_ok(Method::GET, "/_sim/requests", None).await;
        entries = log["entries"].as_array().unwrap().clone();
        if !entries.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!((&entries[0]["status"], &entries[0]["path"]), (&json!(0), &json!("/crm/v3/objects/contacts")));
}
