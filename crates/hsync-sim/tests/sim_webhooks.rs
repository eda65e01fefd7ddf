//! Webhooks as a receiver meets them: events for changes made through the HubSpot API and the
//! admin API, v3 and v1 signatures checked independently, batches, retries with their attempt
//! numbers, drop, duplicate and reorder faults, subscriptions filtering, and the settings and
//! counters of `/_sim/webhooks`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus, Uri};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use hsync_sim::PortalSpec;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{id_of, unlimited, Sim};

const SECRET: &str = "webhook-secret-for-tests";

/// How long a test waits for deliveries before it fails.
const DEADLINE: Duration = Duration::from_secs(30);

/// A small portal: webhooks need a few records, not a realistic catalogue.
fn portal() -> PortalSpec {
    PortalSpec {
        contacts: 20,
        companies: 5,
        deals: 5,
        tickets: 0,
        cars: 0,
        objects: BTreeMap::new(),
        custom_properties: 0,
        hubspot_catalogue: false,
        ..PortalSpec::default()
    }
}

async fn sim() -> Sim {
    Sim::start(unlimited(portal())).await
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    /// The full URI as called: `http://` + the Host header + the path.
    uri: String,
    headers: HeaderMap,
    body: String,
    /// The status it answered.
    answered: u16,
}

impl Received {
    fn events(&self) -> Vec<Value> {
        match serde_json::from_str(&self.body) {
            Ok(Value::Array(events)) => events,
            other => panic!("a delivery is a JSON array of events, got {other:?}"),
        }
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

#[derive(Default)]
struct Recorded {
    /// Statuses to answer, in order; 200 once they run out.
    script: VecDeque<u16>,
    requests: Vec<Received>,
}

/// A webhook receiver on 127.0.0.1 that records every request.
struct Receiver {
    url: String,
    recorded: Arc<Mutex<Recorded>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(State(recorded): State<Arc<Mutex<Recorded>>>, uri: Uri, headers: HeaderMap, body: Bytes) -> AxumStatus {
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let mut recorded = recorded.lock().unwrap();
    let answered = recorded.script.pop_front().unwrap_or(200);
    recorded.requests.push(Received {
        uri: format!("http://{host}{uri}"),
        headers,
        body: String::from_utf8(body.to_vec()).expect("a UTF-8 body"),
        answered,
    });
    AxumStatus::from_u16(answered).unwrap()
}

impl Receiver {
    /// Starts a receiver that answers `script` in order, then 200.
    async fn start(script: &[u16]) -> Receiver {
        let recorded =
            Arc::new(Mutex::new(Recorded { script: script.iter().copied().collect(), requests: Vec::new() }));
        let app =
            axum::Router::new().route("/hooks/hubspot", axum::routing::post(record)).with_state(Arc::clone(&recorded));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/hubspot", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { url, recorded, task }
    }

    fn requests(&self) -> Vec<Received> {
        self.recorded.lock().unwrap().requests.clone()
    }

    /// Every event received, in the order received.
    fn events(&self) -> Vec<Value> {
        self.requests().iter().flat_map(Received::events).collect()
    }
}

/// The settings for `url`, with no delivery delay, and `extra` on top.
fn settings(url: &str, extra: Value) -> Value {
    let mut body = json!({ "target_url": url, "client_secret": SECRET, "delay_ms": 0, "delay_jitter_ms": 0 });
    for (k, v) in extra.as_object().expect("extra settings are an object") {
        body[k] = v.clone();
    }
    body
}

async fn configure(sim: &Sim, body: &Value) {
    sim.admin_ok(Method::PUT, "/_sim/webhooks", Some(body)).await;
}

async fn counters(sim: &Sim) -> Value {
    sim.admin_ok(Method::GET, "/_sim/webhooks", None).await["counters"].clone()
}

/// Polls the counters until `done` holds, or fails after [`DEADLINE`].
async fn wait_for(sim: &Sim, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let counters = counters(sim).await;
        if done(&counters) {
            return counters;
        }
        assert!(tokio::time::Instant::now() < deadline, "waited {DEADLINE:?} for {what}; counters: {counters}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every event generated so far is delivered (or otherwise settled).
async fn wait_settled(sim: &Sim) -> Value {
    wait_for(sim, "every event to settle", |c| c["pending_events"] == 0).await
}

/// Checks a request's headers and both signatures, computed here from what was received.
fn assert_signed(req: &Received) {
    assert_eq!(req.header("content-type"), "application/json");
    let timestamp = req.header("x-hubspot-request-timestamp");
    let sent: i64 = timestamp.parse().expect("an epoch-millisecond timestamp");
    let age = chrono::Utc::now().timestamp_millis() - sent;
    assert!((0..300_000).contains(&age), "the timestamp is recent: {age} ms old");
    let signature = base64::engine::general_purpose::STANDARD
        .decode(req.header("x-hubspot-signature-v3"))
        .expect("a base64 v3 signature");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("POST{}{}{timestamp}", req.uri, req.body).as_bytes());
    mac.verify_slice(&signature).expect("the v3 signature verifies over method + URI + body + timestamp");
    assert_eq!(req.header("x-hubspot-signature-version"), "v1");
    let v1 = format!("{:x}", Sha256::digest(format!("{SECRET}{}", req.body).as_bytes()));
    assert_eq!(req.header("x-hubspot-signature"), v1);
}

fn epoch_ms(iso: &Value) -> i64 {
    let text = iso.as_str().expect("an ISO timestamp");
    chrono::DateTime::parse_from_rfc3339(text).expect("RFC 3339").timestamp_millis()
}

/// `(subscriptionType, propertyName, propertyValue)` of each event, sorted.
fn kinds(events: &[Value]) -> Vec<(String, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut kinds: Vec<_> = events
        .iter()
        .map(|e| (text(&e["subscriptionType"]), text(&e["propertyName"]), text(&e["propertyValue"])))
        .collect();
    kinds.sort();
    kinds
}

fn triple(t: &str, name: &str, value: &str) -> (String, String, String) {
    (t.to_owned(), name.to_owned(), value.to_owned())
}

#[tokio::test]
async fn webhooks_api_and_admin_changes_arrive_signed_with_their_source() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    let subscriptions = json!([
        { "event_type": "contact.creation" },
        { "event_type": "contact.propertyChange", "property_name": "email" },
    ]);
    configure(&sim, &settings(&receiver.url, json!({ "app_id": 777, "subscriptions": subscriptions }))).await;

    let (status, _, created) = sim
        .post("/crm/v3/objects/contacts", &json!({ "properties": { "email": "ann@example.com", "firstname": "Ann" } }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = id_of(&created);
    assert_eq!(counters(&sim).await["events"], 2, "events are generated with the change");
    wait_settled(&sim).await;
    let events = receiver.events();
    assert_eq!(
        kinds(&events),
        [triple("contact.creation", "", ""), triple("contact.propertyChange", "email", "ann@example.com")],
        "firstname has no subscription"
    );
    for event in &events {
        assert_eq!(event["objectId"], id);
        assert_eq!(event["occurredAt"], epoch_ms(&created["createdAt"]), "the time of the change");
        assert_eq!(event["changeSource"], "API");
        assert_eq!(event["sourceId"], "3141592", "the writing app");
        assert_eq!(event["portalId"], 62_515);
        assert_eq!(event["appId"], 777);
        assert_eq!(event["attemptNumber"], 0);
        assert!(event.get("objectTypeId").is_none(), "contacts have their own event names");
    }
    let creation = events.iter().find(|e| e["subscriptionType"] == "contact.creation").unwrap();
    assert_eq!((&creation["subscriptionId"], &creation["changeFlag"]), (&json!(1), &json!("NEW")));
    let change = events.iter().find(|e| e["subscriptionType"] == "contact.propertyChange").unwrap();
    assert_eq!(change["subscriptionId"], 2);

    let updated = sim
        .admin_ok(
            Method::PATCH,
            &format!("/_sim/objects/contacts/{id}"),
            Some(&json!({ "properties": { "email": "bob@example.com", "firstname": "Bob" }, "userId": 42 })),
        )
        .await;
    wait_for(&sim, "the admin change", |c| c["delivered_events"] == 3).await;
    let events = receiver.events();
    let last = events.last().unwrap();
    assert_eq!(last["subscriptionType"], "contact.propertyChange");
    assert_eq!(last["propertyValue"], "bob@example.com");
    assert_eq!(last["changeSource"], "CRM_UI");
    assert_eq!(last["sourceId"], "userId:42");
    assert_eq!(last["occurredAt"], updated["updatedAtMs"], "the record's new last-modified time");
    let ids: BTreeSet<u64> = events.iter().map(|e| e["eventId"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), 3, "each event has its own id");

    let requests = receiver.requests();
    for req in &requests {
        assert_signed(req);
    }
    assert_eq!(requests[0].uri, receiver.url, "signed over the URL as configured");
}

#[tokio::test]
async fn webhooks_batches_hold_at_most_max_batch_events_in_order() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    let subscriptions = json!([{ "event_type": "contact.creation" }]);
    // A delay lets the events of one batch create wait together.
    configure(
        &sim,
        &settings(&receiver.url, json!({ "max_batch": 3, "delay_ms": 200, "subscriptions": subscriptions })),
    )
    .await;
    let inputs: Vec<Value> =
        (0..10).map(|i| json!({ "properties": { "email": format!("batch{i}@example.com") } })).collect();
    let (status, _, body) = sim.post("/crm/v3/objects/contacts/batch/create", &json!({ "inputs": inputs })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let created: BTreeSet<u64> = body["results"].as_array().unwrap().iter().map(id_of).collect();
    let counters = wait_for(&sim, "ten deliveries of events", |c| c["delivered_events"] == 10).await;
    assert_eq!(counters["events"], 10);

    let requests = receiver.requests();
    assert!(requests.iter().all(|r| (1..=3).contains(&r.events().len())), "at most max_batch events per POST");
    assert_eq!(counters["deliveries"], requests.len());
    let events = receiver.events();
    let ids: Vec<u64> = events.iter().map(|e| e["eventId"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "without reorder, events arrive in order: {ids:?}");
    let objects: BTreeSet<u64> = events.iter().map(|e| e["objectId"].as_u64().unwrap()).collect();
    assert_eq!(objects, created);
}

#[tokio::test]
async fn webhooks_failed_delivery_is_retried_with_the_next_attempt_number() {
    let sim = sim().await;
    let receiver = Receiver::start(&[500]).await;
    let subscriptions = json!([{ "event_type": "contact.creation" }]);
    configure(&sim, &settings(&receiver.url, json!({ "retry_time_scale": 0.0001, "subscriptions": subscriptions })))
        .await;
    sim.admin_create("contacts", json!({ "email": "retry@example.com" })).await;
    let counters = wait_for(&sim, "the retry to be delivered", |c| c["deliveries"] == 1).await;
    assert_eq!(counters["failed_attempts"], 1);
    assert_eq!(counters["retries"], 1);
    assert_eq!(counters["delivered_events"], 1);
    assert_eq!(counters["pending_events"], 0);

    let requests = receiver.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!((requests[0].answered, requests[1].answered), (500, 200));
    let (first, second) = (&requests[0].events()[0], &requests[1].events()[0]);
    assert_eq!((&first["attemptNumber"], &second["attemptNumber"]), (&json!(0), &json!(1)));
    assert_eq!(first["eventId"], second["eventId"], "the retry re-sends the same event");
    assert_ne!(requests[0].body, requests[1].body);
    assert_ne!(requests[0].header("x-hubspot-signature-v3"), requests[1].header("x-hubspot-signature-v3"));
    requests.iter().for_each(assert_signed);
}

#[tokio::test]
async fn webhooks_delivery_is_given_up_after_ten_retries() {
    let sim = sim().await;
    let receiver = Receiver::start(&[503; 11]).await;
    let subscriptions = json!([{ "event_type": "contact.creation" }]);
    configure(&sim, &settings(&receiver.url, json!({ "retry_time_scale": 0.000001, "subscriptions": subscriptions })))
        .await;
    sim.admin_create("contacts", json!({ "email": "never@example.com" })).await;
    let counters = wait_for(&sim, "the delivery to be given up", |c| c["given_up_events"] == 1).await;
    assert_eq!(counters["failed_attempts"], 11);
    assert_eq!(counters["retries"], 10);
    assert_eq!(counters["given_up_deliveries"], 1);
    assert_eq!((&counters["deliveries"], &counters["pending_events"]), (&json!(0), &json!(0)));
    let attempts: Vec<u64> =
        receiver.requests().iter().map(|r| r.events()[0]["attemptNumber"].as_u64().unwrap()).collect();
    assert_eq!(attempts, (0..=10).collect::<Vec<u64>>());
}

#[tokio::test]
async fn webhooks_unreachable_target_is_retried_then_given_up() {
    let sim = sim().await;
    // A port nobody listens on any more: every attempt fails to connect.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/hubspot", closed.local_addr().unwrap());
    drop(closed);
    let subscriptions = json!([{ "event_type": "contact.creation" }]);
    configure(&sim, &settings(&url, json!({ "retry_time_scale": 0.000001, "subscriptions": subscriptions }))).await;
    sim.admin_create("contacts", json!({ "email": "nobody@example.com" })).await;
    let counters = wait_for(&sim, "the delivery to be given up", |c| c["given_up_events"] == 1).await;
    assert_eq!((&counters["failed_attempts"], &counters["retries"]), (&json!(11), &json!(10)));
}

#[tokio::test]
async fn webhooks_drop_probability_one_drops_every_delivery() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    let subscriptions = json!([{ "event_type": "contact.creation" }]);
    configure(
        &sim,
        &settings(&receiver.url, json!({ "drop_probability": 1.0, "max_batch": 2, "subscriptions": subscriptions })),
    )
    .await;
    for i in 0..5 {
        sim.admin_create("contacts", json!({ "email": format!("drop{i}@example.com") })).await;
    }
    let counters = wait_for(&sim, "every event to be dropped", |c| c["dropped_events"] == 5).await;
    assert_eq!(counters["events"], 5);
    assert!(counters["dropped_deliveries"].as_u64().unwrap() >= 3, "batches of at most 2: {counters}");
    assert_eq!((&counters["deliveries"], &counters["failed_attempts"]), (&json!(0), &json!(0)));
    assert_eq!(counters["pending_events"], 0);
    assert!(receiver.requests().is_empty(), "a dropped delivery is never sent");
}

#[tokio::test]
async fn webhooks_duplicates_arrive_twice() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    let subscriptions = json!([{ "event_type": "contact.creation" }]);
    configure(&sim, &settings(&receiver.url, json!({ "duplicate_probability": 1.0, "subscriptions": subscriptions })))
        .await;
    sim.post("/crm/v3/objects/contacts", &json!({ "properties": { "email": "twice@example.com" } })).await;
    let counters = wait_for(&sim, "the duplicate", |c| c["duplicated_deliveries"] == 1 && c["deliveries"] == 2).await;
    assert_eq!(counters["delivered_events"], 1, "a duplicate delivers nothing new");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 2, "a duplicate is not duplicated again");
    assert_eq!(requests[0].events(), requests[1].events(), "the same events with the same attemptNumber");
    assert_ne!(
        requests[0].header("x-hubspot-request-timestamp"),
        requests[1].header("x-hubspot-request-timestamp"),
        "signed afresh"
    );
    requests.iter().for_each(assert_signed);
}

#[tokio::test]
async fn webhooks_reorder_shuffles_events_but_delivers_each_once() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    let subscriptions = json!([{ "event_type": "contact.creation" }]);
    configure(
        &sim,
        &settings(
            &receiver.url,
            json!({ "reorder": true, "max_batch": 3, "delay_ms": 200, "subscriptions": subscriptions }),
        ),
    )
    .await;
    let inputs: Vec<Value> =
        (0..12).map(|i| json!({ "properties": { "email": format!("shuffle{i}@example.com") } })).collect();
    sim.post("/crm/v3/objects/contacts/batch/create", &json!({ "inputs": inputs })).await;
    wait_for(&sim, "twelve events", |c| c["delivered_events"] == 12).await;
    assert!(receiver.requests().iter().all(|r| r.events().len() <= 3));
    let ids: Vec<u64> = receiver.events().iter().map(|e| e["eventId"].as_u64().unwrap()).collect();
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), 12, "each event once: {ids:?}");
    assert!(ids.windows(2).any(|w| w[0] > w[1]), "reorder changes the order: {ids:?}");
}

#[tokio::test]
async fn webhooks_subscriptions_filter_by_event_type_and_property() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    let subscriptions = json!([
        { "event_type": "contact.propertyChange", "property_name": "firstname" },
        { "event_type": "deal.creation" },
        { "event_type": "contact.propertyChange" },
    ]);
    configure(&sim, &settings(&receiver.url, json!({ "subscriptions": subscriptions }))).await;
    let events_now = || async { counters(&sim).await["events"].as_u64().unwrap() };

    let contact = sim.admin_create("contacts", json!({ "firstname": "Ann", "lastname": "Lee" })).await;
    assert_eq!(events_now().await, 3, "firstname twice (two subscriptions), lastname once, no creation");
    let path = format!("/crm/v3/objects/contacts/{contact}");
    sim.patch(&path, &json!({ "properties": { "lastname": "Lee" } })).await;
    assert_eq!(events_now().await, 3, "a write that changes nothing is no change");
    sim.patch(&path, &json!({ "properties": { "firstname": "Anna" } })).await;
    assert_eq!(events_now().await, 5);
    sim.post("/crm/v3/objects/companies", &json!({ "properties": { "name": "Quiet Ltd" } })).await;
    assert_eq!(events_now().await, 5, "no subscription names companies");
    sim.post("/crm/v3/objects/deals", &json!({ "properties": { "dealname": "Big one" } })).await;
    assert_eq!(events_now().await, 6, "deal.creation, not its properties");

    wait_for(&sim, "six events", |c| c["delivered_events"] == 6).await;
    let mut got: Vec<(u64, String, String)> = receiver
        .events()
        .iter()
        .map(|e| {
            let name = e["propertyName"].as_str().unwrap_or_default().to_owned();
            (e["subscriptionId"].as_u64().unwrap(), e["subscriptionType"].as_str().unwrap().to_owned(), name)
        })
        .collect();
    got.sort();
    let expected = [
        (1_u64, "contact.propertyChange", "firstname"),
        (1, "contact.propertyChange", "firstname"),
        (2, "deal.creation", ""),
        (3, "contact.propertyChange", "firstname"),
        (3, "contact.propertyChange", "firstname"),
        (3, "contact.propertyChange", "lastname"),
    ]
    .map(|(id, t, p)| (id, t.to_owned(), p.to_owned()));
    assert_eq!(got, expected);
}

#[tokio::test]
async fn webhooks_other_types_send_object_events_with_their_type_id() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    let subscriptions = json!([
        { "event_type": "object.creation" },
        { "event_type": "object.propertyChange", "object_type_id": "2-3508482", "property_name": "model" },
        { "event_type": "object.propertyChange", "object_type_id": "2-123", "property_name": "model" },
    ]);
    configure(&sim, &settings(&receiver.url, json!({ "subscriptions": subscriptions }))).await;
    let car = sim.admin_create("cars", json!({ "make": "Volvo", "model": "240" })).await;
    wait_for(&sim, "the car's events", |c| c["delivered_events"] == 2).await;
    let events = receiver.events();
    assert_eq!(kinds(&events), [triple("object.creation", "", ""), triple("object.propertyChange", "model", "240")]);
    for event in &events {
        assert_eq!(event["objectTypeId"], "2-3508482");
        assert_eq!(event["objectId"], car);
    }
}

#[tokio::test]
async fn webhooks_association_change_reports_both_sides() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    let contact = sim.admin_create("contacts", json!({ "email": "linked@example.com" })).await;
    let company = sim.admin_create("companies", json!({ "name": "Linked Ltd" })).await;
    let subscriptions =
        json!([{ "event_type": "contact.associationChange" }, { "event_type": "company.associationChange" }]);
    configure(&sim, &settings(&receiver.url, json!({ "subscriptions": subscriptions }))).await;

    let path = format!("/crm/v4/objects/contacts/{contact}/associations/default/companies/{company}");
    let (status, _, body) = sim.put(&path).await;
    assert!(status.is_success(), "{status} {body}");
    let edge = json!({ "from": "contacts", "fromId": contact, "to": "companies", "toId": company, "typeIds": [1] });
    sim.admin_ok(Method::POST, "/_sim/associations", Some(&edge)).await;
    let whole = json!({ "from": "contacts", "fromId": contact, "to": "companies", "toId": company });
    sim.admin_ok(Method::DELETE, "/_sim/associations", Some(&whole)).await;
    wait_for(&sim, "three changes, two sides each", |c| c["delivered_events"] == 6).await;

    let events = receiver.events();
    let sides: Vec<(String, u64, u64, u64, bool, bool, String)> = events
        .iter()
        .map(|e| {
            (
                e["associationType"].as_str().unwrap().to_owned(),
                e["objectId"].as_u64().unwrap(),
                e["fromObjectId"].as_u64().unwrap(),
                e["toObjectId"].as_u64().unwrap(),
                e["associationRemoved"].as_bool().unwrap(),
                e["isPrimaryAssociation"].as_bool().unwrap(),
                e["changeSource"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let side = |t: &str, from: u64, to: u64, removed: bool, primary: bool, source: &str| {
        (t.to_owned(), from, from, to, removed, primary, source.to_owned())
    };
    assert_eq!(
        sides,
        [
            side("CONTACT_TO_COMPANY", contact, company, false, false, "API"),
            side("COMPANY_TO_CONTACT", company, contact, false, false, "API"),
            side("CONTACT_TO_COMPANY", contact, company, false, true, "CRM_UI"),
            side("COMPANY_TO_CONTACT", company, contact, false, true, "CRM_UI"),
            side("CONTACT_TO_COMPANY", contact, company, true, true, "CRM_UI"),
            side("COMPANY_TO_CONTACT", company, contact, true, true, "CRM_UI"),
        ]
    );
    let types: Vec<&str> = events.iter().map(|e| e["subscriptionType"].as_str().unwrap()).collect();
    assert_eq!(types[..2], ["contact.associationChange", "company.associationChange"]);
}

#[tokio::test]
async fn webhooks_merge_carries_the_merge_fields() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    let primary = sim.admin_create("contacts", json!({ "email": "keep@example.com" })).await;
    let absorbed = sim.admin_create("contacts", json!({ "email": "gone@example.com" })).await;
    let subscriptions = json!([
        { "event_type": "contact.merge" },
        { "event_type": "contact.propertyChange", "property_name": "hs_merged_object_ids" },
    ]);
    configure(&sim, &settings(&receiver.url, json!({ "subscriptions": subscriptions }))).await;
    let (status, _, merged) = sim
        .post(
            "/crm/v3/objects/contacts/merge",
            &json!({ "primaryObjectId": primary.to_string(), "objectIdToMerge": absorbed.to_string() }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    wait_for(&sim, "the merge events", |c| c["delivered_events"] == 2).await;
    let events = receiver.events();
    let merge = events.iter().find(|e| e["subscriptionType"] == "contact.merge").expect("a merge event");
    assert_eq!(merge["objectId"], primary);
    assert_eq!(merge["primaryObjectId"], primary);
    assert_eq!(merge["mergedObjectIds"], json!([absorbed]));
    assert_eq!(merge["newObjectId"], primary);
    assert_eq!(merge["numberOfPropertiesMoved"], 0);
    assert_eq!(merge["changeFlag"], "MERGED");
    assert_eq!(merge["occurredAt"], epoch_ms(&merged["updatedAt"]));
    let ids = events.iter().find(|e| e["subscriptionType"] == "contact.propertyChange").expect("merged ids change");
    assert_eq!(ids["propertyValue"], absorbed.to_string());
}

#[tokio::test]
async fn webhooks_deletions_restores_and_gdpr_purges() {
    let sim = sim().await;
    let receiver = Receiver::start(&[]).await;
    let contact = sim.admin_create("contacts", json!({ "email": "forget@example.com" })).await;
    let company = sim.admin_create("companies", json!({ "name": "Purged Ltd" })).await;
    let subscriptions = json!([
        { "event_type": "contact.deletion" },
        { "event_type": "contact.restore" },
        { "event_type": "contact.privacyDeletion" },
        { "event_type": "company.deletion" },
    ]);
    configure(&sim, &settings(&receiver.url, json!({ "subscriptions": subscriptions }))).await;

    let (status, _, _) = sim.delete(&format!("/crm/v3/objects/contacts/{contact}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    sim.admin_ok(Method::POST, &format!("/_sim/objects/contacts/{contact}/restore"), None).await;
    let (status, _, _) =
        sim.post("/crm/v3/objects/contacts/gdpr-delete", &json!({ "objectId": contact.to_string() })).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    sim.admin_ok(Method::POST, &format!("/_sim/objects/companies/{company}/gdpr-delete"), None).await;
    wait_for(&sim, "four events", |c| c["delivered_events"] == 4).await;

    let got: Vec<(String, u64, String, String)> = receiver
        .events()
        .iter()
        .map(|e| {
            (
                e["subscriptionType"].as_str().unwrap().to_owned(),
                e["objectId"].as_u64().unwrap(),
                e["changeFlag"].as_str().unwrap().to_owned(),
                e["changeSource"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let event = |t: &str, id: u64, flag: &str, source: &str| (t.to_owned(), id, flag.to_owned(), source.to_owned());
    assert_eq!(
        got,
        [
            event("contact.deletion", contact, "DELETED", "API"),
            event("contact.restore", contact, "RESTORED", "CRM_UI"),
            event("contact.privacyDeletion", contact, "DELETED", "API"),
            event("company.deletion", company, "DELETED", "CRM_UI"),
        ]
    );
}

#[tokio::test]
async fn webhooks_settings_are_checked_shown_without_secret_and_turned_off() {
    let sim = sim().await;
    let url = "http://127.0.0.1:9/hooks/hubspot";
    for (bad, names) in [
        (json!({ "target_url": url }), "client_secret"),
        (json!({ "target_url": "ftp://example.com/x", "client_secret": SECRET }), "target_url"),
        (json!({ "target_url": url, "client_secret": SECRET, "drop_probability": 2.0 }), "drop_probability"),
        (json!({ "target_url": url, "client_secret": SECRET, "max_batch": 0 }), "max_batch"),
        (json!({ "target_url": url, "client_secret": SECRET, "colour": "red" }), "colour"),
        (
            json!({ "target_url": url, "client_secret": SECRET, "subscriptions": [{ "event_type": "product.associationChange" }] }),
            "subscriptions[0]",
        ),
        (
            json!({ "target_url": url, "client_secret": SECRET, "subscriptions": [{ "event_type": "contact.creation", "property_name": "email" }] }),
            "property_name",
        ),
    ] {
        let (status, body) = sim.admin(Method::PUT, "/_sim/webhooks", Some(&bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(names), "{bad}: the error names {names}: {error}");
    }
    assert_eq!(sim.admin_ok(Method::GET, "/_sim/webhooks", None).await["enabled"], false);

    // A long delay keeps the events pending while the test looks at them.
    configure(&sim, &json!({ "target_url": url, "client_secret": SECRET, "delay_ms": 600_000 })).await;
    let shown = sim.admin_ok(Method::GET, "/_sim/webhooks", None).await;
    assert!(!shown.to_string().contains(SECRET), "the secret is never shown: {shown}");
    assert_eq!(shown["enabled"], true);
    assert_eq!(shown["target_url"], url);
    assert_eq!(shown["app_id"], 1234);
    assert_eq!(shown["delay_jitter_ms"], 200);
    assert_eq!(shown["max_batch"], 100);
    assert_eq!(shown["retry_time_scale"], 1.0);
    assert_eq!((&shown["drop_probability"], &shown["duplicate_probability"]), (&json!(0.0), &json!(0.0)));
    assert_eq!(shown["reorder"], false);
    let types: BTreeSet<&str> =
        shown["subscriptions"].as_array().unwrap().iter().map(|s| s["event_type"].as_str().unwrap()).collect();
    assert!(types.contains("contact.privacyDeletion") && types.contains("object.propertyChange"));
    assert!(!types.contains("product.associationChange"));
    assert_eq!(shown["counters"]["events"], 0);

    sim.admin_create("contacts", json!({ "email": "pending@example.com" })).await;
    let counters = counters(&sim).await;
    let generated = counters["events"].as_u64().unwrap();
    assert!(generated >= 2, "creation and email at least: {counters}");
    assert_eq!(counters["pending_events"], generated);

    sim.admin_ok(Method::DELETE, "/_sim/webhooks", None).await;
    let shown = sim.admin_ok(Method::GET, "/_sim/webhooks", None).await;
    assert_eq!(shown["enabled"], false);
    assert_eq!(shown["counters"]["discarded_events"], generated);
    assert_eq!(shown["counters"]["pending_events"], 0);
    sim.admin_create("contacts", json!({ "email": "unheard@example.com" })).await;
    assert_eq!(
        sim.admin_ok(Method::GET, "/_sim/webhooks", None).await["counters"]["events"],
        generated,
        "webhooks off generate nothing"
    );
}
