//! The latency model over HTTP: off by default, set and read through `/_sim/latency` (bad
//! settings are a 400 that changes nothing), applied per endpoint family with the per-result
//! cost, reported in `X-Sim-Latency-Ms`, reproducible from the seed, and composed with a `slow`
//! fault. Nothing here measures time: the header says what the model applied.

use hsync_sim::{FamilyLatency, LatencySettings, PortalSpec, SimConfig};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{small_portal, unlimited, Sim};

const HEADER: &str = "x-sim-latency-ms";

fn applied(headers: &HeaderMap) -> Option<u64> {
    headers.get(HEADER).map(|v| v.to_str().expect("ASCII header").parse().expect("whole milliseconds"))
}

fn flat(median_ms: f64, per_record_ms: f64) -> FamilyLatency {
    FamilyLatency { median_ms, jitter: 0.0, per_record_ms }
}

/// Distinct medians per family, without jitter, so each answer's delay is exact.
fn exact() -> LatencySettings {
    LatencySettings {
        search: flat(20.0, 0.5),
        list: flat(10.0, 0.2),
        batch: flat(7.0, 1.0),
        associations: flat(5.0, 0.0),
        other: flat(3.0, 0.0),
    }
}

#[tokio::test]
async fn latency_is_off_by_default() {
    let sim = Sim::small().await;
    let settings = sim.admin_ok(Method::GET, "/_sim/latency", None).await;
    let zero = json!({ "median_ms": 0.0, "jitter": 0.0, "per_record_ms": 0.0 });
    for family in ["search", "list", "batch", "associations", "other"] {
        assert_eq!(settings[family], zero, "{family}: {settings}");
    }
    assert_eq!(settings.as_object().map(|o| o.len()), Some(5), "{settings}");
    let (status, headers, _) = sim.get("/crm/v3/objects/contacts?limit=5").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(applied(&headers), None, "no latency, no header");
}

#[tokio::test]
async fn latency_admin_round_trips_and_rejects_bad_settings_with_400() {
    let sim = Sim::small().await;
    let settings = serde_json::to_value(LatencySettings::realistic(300.0, 0.3)).unwrap();
    assert_eq!(sim.admin(Method::PUT, "/_sim/latency", Some(&settings)).await.0, StatusCode::NO_CONTENT);
    assert_eq!(sim.admin_ok(Method::GET, "/_sim/latency", None).await, settings);
    assert_eq!(settings["list"]["median_ms"], 240.0);
    assert_eq!(settings["associations"]["median_ms"], 210.0);

    let bad = [
        (json!({ "serch": { "median_ms": 1 } }), "unknown field `serch`"),
        (json!({ "search": { "median": 1 } }), "unknown field `median`"),
        (json!({ "search": { "median_ms": "fast" } }), "invalid type"),
        (json!({ "list": { "median_ms": -5 } }), "list.median_ms"),
        (json!({ "batch": { "jitter": 4 } }), "batch.jitter"),
        (json!({ "other": { "per_record_ms": 1e9 } }), "other.per_record_ms"),
        (json!([1, 2]), "invalid type"),
    ];
    for (body, needle) in bad {
        let (status, reply) = sim.admin(Method::PUT, "/_sim/latency", Some(&body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {reply}");
        let message = reply["error"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{body}: {message:?} names {needle:?}");
    }
    assert_eq!(sim.admin_ok(Method::GET, "/_sim/latency", None).await, settings, "a rejected PUT changes nothing");

    // Families left out are off.
    let only_search = json!({ "search": { "median_ms": 12.5 } });
    sim.admin_ok(Method::PUT, "/_sim/latency", Some(&only_search)).await;
    let read = sim.admin_ok(Method::GET, "/_sim/latency", None).await;
    assert_eq!(read["search"], json!({ "median_ms": 12.5, "jitter": 0.0, "per_record_ms": 0.0 }));
    assert_eq!(read["list"]["median_ms"], 0.0);
}

#[tokio::test]
async fn latency_is_applied_per_family_with_the_per_result_cost() {
    let sim = Sim::start(SimConfig { latency: exact(), ..unlimited(small_portal()) }).await;
    let page = |limit: u64| json!({ "limit": limit, "properties": ["email"] });

    let (status, headers, body) = sim.post("/crm/v3/objects/contacts/search", &page(10)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(applied(&headers), Some(25), "search: 20 + 10 × 0.5");
    let (_, headers, _) = sim.post("/crm/v3/objects/contacts/search", &page(100)).await;
    assert_eq!(applied(&headers), Some(70), "search: 20 + 100 × 0.5");

    let (_, headers, body) = sim.get("/crm/v3/objects/contacts?limit=50").await;
    assert_eq!(applied(&headers), Some(20), "list: 10 + 50 × 0.2");
    let ids: Vec<Value> =
        body["results"].as_array().unwrap().iter().take(4).map(|r| json!({ "id": r["id"] })).collect();
    let first = ids[0]["id"].as_str().unwrap().to_owned();
    let (_, headers, _) = sim.get(&format!("/crm/v3/objects/contacts/{first}")).await;
    assert_eq!(applied(&headers), Some(10), "a single GET is a list-family answer of one record");
    let (status, headers, _) = sim.get("/crm/v3/objects/contacts/987654321").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(applied(&headers), Some(10), "handler errors are held too");

    let (_, headers, body) = sim.post("/crm/v3/objects/contacts/batch/read", &json!({ "inputs": ids })).await;
    assert_eq!(body["results"].as_array().unwrap().len(), 4);
    assert_eq!(applied(&headers), Some(11), "batch: 7 + 4 × 1");

    let inputs = json!({ "inputs": [{ "id": first }] });
    let (_, headers, _) = sim.post("/crm/v4/associations/contacts/companies/batch/read", &inputs).await;
    assert_eq!(applied(&headers), Some(5), "associations batch read");
    let (_, headers, _) = sim.get("/crm/v4/associations/contacts/companies/labels").await;
    assert_eq!(applied(&headers), Some(5), "association labels");
    let (_, headers, _) = sim.get(&format!("/crm/v4/objects/contacts/{first}/associations/companies")).await;
    assert_eq!(applied(&headers), Some(5), "a record's associations");

    for path in ["/crm/v3/properties/contacts", "/crm/v3/owners", "/crm/v3/pipelines/deals", "/crm/v3/schemas"] {
        let (status, headers, _) = sim.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(applied(&headers), Some(3), "{path} is in the other family");
    }

    let (status, headers, _) = sim.call_as(None, Method::GET, "/crm/v3/objects/contacts", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(applied(&headers), None, "the gate's own refusals are not held");
}

#[tokio::test]
async fn latency_with_jitter_stays_in_the_familys_range_and_repeats_with_the_seed() {
    let jittery = LatencySettings {
        search: FamilyLatency { median_ms: 40.0, jitter: 0.5, per_record_ms: 0.1 },
        ..LatencySettings::default()
    };
    let run = |seed: u64| {
        let settings = jittery.clone();
        async move {
            let sim =
                Sim::start(SimConfig { latency: settings, ..unlimited(PortalSpec { seed, ..small_portal() }) }).await;
            let mut delays = Vec::new();
            for _ in 0..20 {
                let (status, headers, _) = sim.post("/crm/v3/objects/contacts/search", &json!({ "limit": 50 })).await;
                assert_eq!(status, StatusCode::OK);
                delays.push(applied(&headers).expect("latency header"));
            }
            delays
        }
    };
    let first = run(7).await;
    // Four sigma either side of the median, plus 50 results × 0.1 ms.
    let (lo, hi) = (40.0 * (-2.0f64).exp() + 5.0, 40.0 * 2.0f64.exp() + 5.0);
    for d in &first {
        assert!((lo.floor() as u64..=hi.ceil() as u64).contains(d), "{d} ms within {lo:.1}..{hi:.1}");
    }
    assert!(first.iter().any(|d| *d != first[0]), "jitter varies the delay: {first:?}");
    assert_eq!(run(7).await, first, "the same seed draws the same delays");
    assert_ne!(run(8).await, first, "another seed draws others");
}

#[tokio::test]
async fn latency_composes_with_a_slow_fault_and_can_be_turned_off_at_runtime() {
    let sim = Sim::start(SimConfig { latency: exact(), ..unlimited(small_portal()) }).await;
    let slow = json!({ "kind": "slow", "delay_ms": 5, "target": "list", "remaining": 1 });
    sim.admin_ok(Method::POST, "/_sim/faults", Some(&slow)).await;
    let (status, headers, _) = sim.get("/crm/v3/objects/contacts?limit=5").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(applied(&headers), Some(11), "the model's own delay, on top of the fault's");
    let log = sim.admin_ok(Method::GET, "/_sim/requests", None).await;
    assert_eq!(log["entries"][0]["fault"], "slow");

    sim.admin_ok(Method::PUT, "/_sim/latency", Some(&json!({}))).await;
    let (_, headers, _) = sim.get("/crm/v3/objects/contacts?limit=5").await;
    assert_eq!(applied(&headers), None, "an empty body turns every family off");
}
