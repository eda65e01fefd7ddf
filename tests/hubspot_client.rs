//! The HubSpot client against the simulator over HTTP: rate buckets, the daily budget, the
//! retry policy per fault class, typed operations, auth and secrecy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hsync::clock::{Clock, ManualClock};
use hsync::error::{Classify, ErrorClass};
use hsync::hubspot::ApiFamily;
use hsync::hubspot::{
    BudgetConfig, BudgetSetting, BudgetStore, ClientConfig, Direction, Error, FileBudgetStore, Filter, FilterGroup,
    HubSpotClient, ListParams, Operator, RetryPolicy, SearchRequest, Secret, TokenSource,
};
use hsync_sim::{LimitSettings, OAuthClient, PortalSpec, SimConfig, Tier, TokenGrant, DEFAULT_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::Sim;

fn portal(contacts: u64) -> PortalSpec {
    PortalSpec {
        contacts,
        companies: 40,
        deals: 30,
        tickets: 20,
        cars: 10,
        custom_properties: 6,
        ..PortalSpec::default()
    }
}

fn fixed_token(token: &str) -> TokenSource {
    TokenSource::Fixed { token: Secret::new(token), origin: "test token".into() }
}

struct Built {
    client: HubSpotClient,
    _dir: tempfile::TempDir,
    store: Arc<FileBudgetStore>,
}

/// A client for `sim` with test-sized retry waits and an unlimited budget unless changed.
fn client_with(sim: &Sim, adjust: impl FnOnce(&mut ClientConfig)) -> Built {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileBudgetStore::new(dir.path().join("budget.json")));
    let mut config = ClientConfig {
        base_url: sim.handle.base_url(),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(200),
            window: Duration::from_millis(300),
            ..RetryPolicy::default()
        },
        budget: BudgetConfig { setting: BudgetSetting::Unlimited, ..BudgetConfig::default() },
        ..ClientConfig::default()
    };
    adjust(&mut config);
    let client = HubSpotClient::new(
        config,
        fixed_token(DEFAULT_TOKEN),
        Arc::clone(&store) as Arc<dyn BudgetStore>,
        hsync::clock::system(),
    )
    .unwrap();
    Built { client, _dir: dir, store }
}

async fn requests(sim: &Sim) -> Value {
    sim.admin(Method::GET, "/_sim/requests", None).await.1
}

async fn request_count(sim: &Sim) -> u64 {
    requests(sim).await["count"].as_u64().unwrap()
}

async fn add_fault(sim: &Sim, rule: Value) {
    let (status, _) = sim.admin(Method::POST, "/_sim/faults", Some(&rule)).await;
    assert!(status.is_success(), "fault rule accepted: {rule}");
}

async fn truth(sim: &Sim) -> Value {
    sim.admin(Method::GET, "/_sim/truth", None).await.1
}

fn live_ids(truth: &Value, object: &str) -> Vec<String> {
    let mut ids: Vec<String> = truth["objects"][object]["live"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort_by_key(|id| id.parse::<u64>().unwrap());
    ids
}

#[tokio::test]
async fn client_concurrent_tasks_under_professional_limits_see_zero_429s() {
    let sim = Sim::start(SimConfig {
        portal: portal(2_000),
        limits: LimitSettings::for_tier(Tier::Professional),
        ..SimConfig::default()
    })
    .await;
    let built = client_with(&sim, |_| {});
    let client = built.client.clone();
    let deadline = Instant::now() + Duration::from_secs(21);
    let mut tasks = Vec::new();
    for task in 0..4u64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut calls = 0u64;
            let mut after: Option<String> = None;
            while Instant::now() < deadline {
                let page = client
                    .list("contacts", &ListParams { limit: 10, after: after.clone(), ..ListParams::default() })
                    .await
                    .unwrap();
                after = page.next_after().map(str::to_owned);
                calls += 1;
            }
            (task, calls)
        }));
    }
    for task in 0..2u64 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut calls = 0u64;
            let mut last = 0u64;
            while Instant::now() < deadline {
                let request = SearchRequest::new(
                    vec![FilterGroup(vec![Filter::compare("hs_object_id", Operator::Gt, last)])],
                    Some(("hs_object_id".into(), Direction::Ascending)),
                    vec!["email".into()],
                    100,
                    0,
                )
                .unwrap();
                let page = client.search("contacts", &request).await.unwrap();
                last = page.results.last().map_or(0, |r| r.id.parse().unwrap());
                calls += 1;
            }
            (task + 10, calls)
        }));
    }
    // Association reads draw from their own window (150 per 10 s on Professional) beside both.
    let ids: Vec<String> = live_ids(&truth(&sim).await, "contacts").into_iter().take(100).collect();
    for task in 0..2u64 {
        let (client, ids) = (client.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut calls = 0u64;
            while Instant::now() < deadline {
                client.associations("contacts", "companies", &ids).await.unwrap();
                calls += 1;
            }
            (task + 20, calls)
        }));
    }
    let mut total = 0;
    let mut association_calls = 0;
    for t in tasks {
        let (task, calls) = t.await.unwrap();
        total += calls;
        if task >= 20 {
            association_calls += calls;
        }
    }
    let log = requests(&sim).await;
    assert_eq!(log["byStatus"].get("429"), None, "no 429 from any bucket: {}", log["byPolicy"]);
    assert_eq!(log["byPolicy"], json!({}));
    assert!(total > 0 && association_calls > 0);
    assert_eq!(client.general_limit().max, 190, "the tier was learned from the headers");
    assert_eq!(client.association_limit().max, 150, "the association window from their own headers");
}

#[tokio::test]
async fn client_daily_budget_stops_at_k_survives_restart_and_resets_at_midnight() {
    let sim = Sim::start(crate::support::unlimited(portal(50))).await;
    let clock = ManualClock::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.json");
    let make = |clock: &ManualClock| {
        let config = ClientConfig {
            base_url: sim.handle.base_url(),
            budget: BudgetConfig { setting: BudgetSetting::Calls(12), reserve_block: 1, ..BudgetConfig::default() },
            ..ClientConfig::default()
        };
        HubSpotClient::new(
            config,
            fixed_token(DEFAULT_TOKEN),
            Arc::new(FileBudgetStore::new(&path)),
            Arc::new(clock.clone()),
        )
        .unwrap()
    };
    let first = make(&clock);
    for _ in 0..7 {
        first.properties("contacts", false).await.unwrap();
    }
    drop(first);
    let second = make(&clock);
    let mut more = 0;
    let exhausted = loop {
        match second.properties("contacts", false).await {
            Ok(_) => more += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(7 + more, 12, "exactly K calls across the restart");
    assert_eq!(request_count(&sim).await, 12, "the simulator saw exactly K calls");
    let Error::BudgetExhausted { used, budget, resets_at } = &exhausted else { panic!("{exhausted}") };
    assert_eq!((*used, *budget), (12, 12));
    assert_eq!(exhausted.class(), ErrorClass::RateLimited);
    assert!(exhausted.to_string().contains("pauses until"), "{exhausted}");
    // The next midnight (UTC by default) resets the budget.
    let until_reset = *resets_at - clock.now();
    clock.advance(until_reset + chrono::Duration::seconds(1));
    second.properties("contacts", false).await.unwrap();
    assert_eq!(request_count(&sim).await, 13);
}

#[tokio::test]
async fn client_budget_reserve_tightens_from_daily_remaining_header() {
    let sim = Sim::start(SimConfig {
        portal: portal(20),
        limits: LimitSettings { daily_limit: 100, ..LimitSettings::for_tier(Tier::Professional) },
        ..SimConfig::default()
    })
    .await;
    let built = client_with(&sim, |c| {
        c.budget = BudgetConfig { setting: BudgetSetting::ReservePercent(20), ..BudgetConfig::default() }
    });
    // Another integration has used 70 of the portal's 100 calls today.
    for _ in 0..70 {
        let resp = sim.http.get(sim.url("/crm/v3/owners")).bearer_auth(DEFAULT_TOKEN).send().await.unwrap();
        assert!(resp.status().is_success());
    }
    let mut ours = 0;
    let err = loop {
        match built.client.properties("contacts", false).await {
            Ok(_) => ours += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::BudgetExhausted { .. }), "{err}");
    // 20 of 100 stay free for others: 30 were left, so hsync takes 10 (one to learn the headers).
    assert_eq!(ours, 10, "stopped with the reserve intact");
    let limits = sim.admin(Method::GET, "/_sim/limits", None).await.1;
    assert_eq!(limits["dailyUsed"], 80);
}

async fn expect_recovers(sim: &Sim, client: &HubSpotClient, rule: Value, expected_calls: u64) {
    sim.admin(Method::DELETE, "/_sim/requests", None).await;
    add_fault(sim, rule.clone()).await;
    let props = client.properties("contacts", false).await;
    assert!(props.is_ok(), "recovered from {rule}: {:?}", props.err());
    assert_eq!(request_count(sim).await, expected_calls, "calls for {rule}");
}

#[tokio::test]
async fn client_retries_each_transient_fault_class_and_recovers() {
    let sim = Sim::start(crate::support::unlimited(portal(20))).await;
    let built = client_with(&sim, |c| c.request_timeout = Duration::from_millis(700));
    let client = &built.client;
    expect_recovers(&sim, client, json!({"kind":"server_error","status":502,"html":true,"remaining":2}), 3).await;
    expect_recovers(&sim, client, json!({"kind":"server_error","status":504,"html":true,"remaining":1}), 2).await;
    expect_recovers(&sim, client, json!({"kind":"server_error","status":500,"html":false,"remaining":1}), 2).await;
    expect_recovers(&sim, client, json!({"kind":"server_error","status":503,"html":false,"remaining":1}), 2).await;
    expect_recovers(&sim, client, json!({"kind":"rate_limit","remaining":2}), 3).await;
    expect_recovers(&sim, client, json!({"kind":"truncated_json","remaining":1}), 2).await;
    expect_recovers(&sim, client, json!({"kind":"drop_connection","remaining":1}), 2).await;
    expect_recovers(&sim, client, json!({"kind":"locked","remaining":1}), 2).await;
    expect_recovers(&sim, client, json!({"kind":"migration_in_progress","retry_after_secs":1,"remaining":1}), 2).await;
    sim.admin(Method::PUT, "/_sim/behaviour", Some(&json!({"hang_ms": 3000}))).await;
    expect_recovers(&sim, client, json!({"kind":"hang","remaining":1}), 2).await;
    // Search gets its own secondly 429, retried the same way.
    sim.admin(Method::DELETE, "/_sim/requests", None).await;
    add_fault(&sim, json!({"kind":"rate_limit","target":"search","remaining":1})).await;
    let request = SearchRequest::new(vec![], None, vec![], 10, 0).unwrap();
    client.search("contacts", &request).await.unwrap();
    assert_eq!(request_count(&sim).await, 2);
}

#[tokio::test]
async fn client_gives_up_after_bounded_attempts_with_a_transient_error() {
    let sim = Sim::start(crate::support::unlimited(portal(20))).await;
    let built = client_with(&sim, |c| c.retry.max_attempts = 3);
    add_fault(&sim, json!({"kind":"server_error","status":502,"html":true})).await;
    let err = built.client.properties("contacts", false).await.unwrap_err();
    assert!(matches!(err, Error::Server { status: 502, attempts: 3, .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Transient);
    assert_eq!(request_count(&sim).await, 3);
}

#[tokio::test]
async fn client_never_retries_permanent_errors() {
    let sim = Sim::start(SimConfig {
        tokens: vec![
            TokenGrant { token: DEFAULT_TOKEN.into(), scopes: None },
            TokenGrant { token: "contacts-only".into(), scopes: Some(vec!["crm.objects.contacts.read".into()]) },
        ],
        ..crate::support::unlimited(portal(20))
    })
    .await;
    let built = client_with(&sim, |_| {});
    // 400: seven filter groups cannot be built, so send them raw through the one send().
    let groups: Vec<Value> = (0..7).map(|_| json!({"filters":[]})).collect();
    let raw = hsync::hubspot::ApiRequest::post(
        "search",
        "/crm/v3/objects/contacts/search".into(),
        json!({ "filterGroups": groups }),
    )
    .bucket(hsync::hubspot::Bucket::Search);
    let err = built.client.send::<Value>(&raw).await.unwrap_err();
    assert!(matches!(err, Error::Rejected { status: 400, .. }), "{err}");
    assert!(err.to_string().contains("VALIDATION_ERROR"), "{err}");
    assert_eq!(request_count(&sim).await, 1);

    // 404 on a path that must exist.
    let err = built.client.pipelines("nonsense_type_that_does_not_exist").await.unwrap_err();
    assert!(matches!(err, Error::Rejected { .. } | Error::NotFound { .. }), "{err}");
    assert_eq!(request_count(&sim).await, 2);

    // A record that is not there is not an error.
    assert!(built.client.get("contacts", "999999999", &[]).await.unwrap().is_none());
    assert_eq!(request_count(&sim).await, 3);

    // 401 names the token's origin, 403 the missing scope.
    let wrong = HubSpotClient::new(
        ClientConfig { base_url: sim.handle.base_url(), ..ClientConfig::default() },
        TokenSource::Fixed { token: Secret::new("pat-na1-wrong"), origin: "environment variable HUBSPOT_TOKEN".into() },
        Arc::clone(&built.store) as Arc<dyn BudgetStore>,
        hsync::clock::system(),
    )
    .unwrap();
    let err = wrong.properties("contacts", false).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err}");
    assert_eq!(err.class(), ErrorClass::Auth);
    assert!(err.to_string().contains("environment variable HUBSPOT_TOKEN"), "{err}");
    assert_eq!(request_count(&sim).await, 4);

    let scoped = HubSpotClient::new(
        ClientConfig { base_url: sim.handle.base_url(), ..ClientConfig::default() },
        fixed_token("contacts-only"),
        Arc::clone(&built.store) as Arc<dyn BudgetStore>,
        hsync::clock::system(),
    )
    .unwrap();
    scoped.list("contacts", &ListParams { limit: 1, ..ListParams::default() }).await.unwrap();
    let err = scoped.list("companies", &ListParams { limit: 1, ..ListParams::default() }).await.unwrap_err();
    assert!(matches!(&err, Error::MissingScopes { scopes, .. } if scopes == &["crm.objects.companies.read"]), "{err}");
    assert!(err.to_string().contains("crm.objects.companies.read"), "{err}");
    assert_eq!(request_count(&sim).await, 6);

    // The daily limit is not slept through: it comes back as rate-limited at once.
    add_fault(&sim, json!({"kind":"exhaust_daily","remaining":1})).await;
    let err = built.client.properties("contacts", false).await.unwrap_err();
    assert!(matches!(&err, Error::RateLimited { policy, .. } if policy == "DAILY"), "{err}");
    assert_eq!(err.class(), ErrorClass::RateLimited);
    assert!(err.retry_after().unwrap() > Duration::ZERO);
    assert_eq!(request_count(&sim).await, 7);
}

#[tokio::test]
async fn client_reads_2500_associations_of_one_record_through_per_input_paging() {
    let sim = Sim::start(crate::support::unlimited(PortalSpec {
        companies: 2_600,
        association_page_size: 100,
        ..portal(30)
    }))
    .await;
    let built = client_with(&sim, |_| {});
    let t = truth(&sim).await;
    let contact = live_ids(&t, "contacts")[0].clone();
    let companies = live_ids(&t, "companies");
    let edges: Vec<Value> = companies
        .iter()
        .take(2_500)
        .map(|c| json!({"from":"contacts","fromId":contact.parse::<u64>().unwrap(),"to":"companies","toId":c.parse::<u64>().unwrap()}))
        .collect();
    let (status, _) = sim.admin(Method::POST, "/_sim/associations", Some(&Value::Array(edges))).await;
    assert!(status.is_success());
    let expected: std::collections::BTreeSet<String> = truth(&sim).await["associations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["fromType"] == "contacts" && e["fromId"] == contact.as_str() && e["toType"] == "companies")
        .map(|e| e["toId"].as_str().unwrap().to_owned())
        .collect();
    assert!(expected.len() >= 2_500);
    let other = live_ids(&t, "contacts")[1].clone();
    let got = built.client.associations("contacts", "companies", &[contact.clone(), other.clone()]).await.unwrap();
    let ids: std::collections::BTreeSet<String> = got[&contact].iter().map(|a| a.to_object_id.clone()).collect();
    assert_eq!(got[&contact].len(), ids.len(), "no duplicates across pages");
    assert_eq!(ids, expected, "every edge read");
    assert!(got[&contact].iter().all(|a| a.association_types.iter().any(|t| t.type_id == 279)));
    assert!(got.contains_key(&other));
}

#[tokio::test]
async fn client_batch_read_keeps_found_records_and_reports_missing_ids() {
    let sim = Sim::start(crate::support::unlimited(portal(150))).await;
    let built = client_with(&sim, |_| {});
    let mut ids = live_ids(&truth(&sim).await, "contacts");
    ids.truncate(120);
    ids.push("987654321".into());
    ids.push("987654322".into());
    let read = built.client.batch_read("contacts", &ids, &["email".into()], false).await.unwrap();
    assert_eq!(read.found.len(), 120);
    let mut missing = read.missing.clone();
    missing.sort();
    assert_eq!(missing, ["987654321", "987654322"]);
    assert!(read.found.iter().all(|r| r.properties.contains_key("hs_object_id")));
    assert_eq!(request_count(&sim).await, 2, "chunks of 100");
}

/// History reads go 50 records a call (HubSpot refuses more with history) and carry every
/// version the simulator's ground truth holds, in its order, with each version's source.
#[tokio::test]
async fn client_history_reads_fifty_records_a_call_and_match_ground_truth() {
    let sim = Sim::start(crate::support::unlimited(portal(120))).await;
    let built = client_with(&sim, |_| {});
    let mut ids = live_ids(&truth(&sim).await, "contacts");
    ids.truncate(100);
    let body = json!({"properties": {"lifecyclestage": "customer", "firstname": "Ada"}});
    sim.admin_ok(Method::PATCH, &format!("/_sim/objects/contacts/{}", ids[0]), Some(&body)).await;
    let wanted: Vec<String> = ["lifecyclestage", "firstname", "email"].map(str::to_owned).to_vec();
    let mut asked = ids.clone();
    asked.push("987654321".into());
    let read = built.client.batch_read_history("contacts", &asked, &wanted).await.unwrap();
    assert_eq!(request_count(&sim).await, 3, "101 inputs: chunks of 50");
    assert_eq!(read.missing, ["987654321"]);
    assert_eq!(read.found.len(), ids.len());

    let (_, history) =
        sim.admin(Method::GET, "/_sim/truth?objects=contacts&history=lifecyclestage,firstname,email", None).await;
    let records = history["objects"]["contacts"]["live"].as_array().unwrap();
    let mut versions = 0;
    for rec in &read.found {
        let truth = records.iter().find(|r| r["id"] == rec.id.as_str()).unwrap();
        assert!(rec.properties_with_history.skipped.is_empty(), "{:?}", rec.properties_with_history.skipped);
        for name in &wanted {
            let expected = truth["history"][name].as_array().cloned().unwrap_or_default();
            let got = rec.properties_with_history.versions.get(name).cloned().unwrap_or_default();
            assert_eq!(got.len(), expected.len(), "contact {} {name}", rec.id);
            for (v, e) in got.iter().zip(&expected) {
                assert_eq!(v.value.as_deref(), e["value"].as_str(), "contact {} {name}", rec.id);
                assert_eq!(Some(v.timestamp.as_str()), e["timestamp"].as_str());
                assert_eq!(v.source_type.as_deref(), e["sourceType"].as_str());
                assert_eq!(v.source_id.as_deref(), e["sourceId"].as_str());
                assert_eq!(v.updated_by_user_id, e["updatedByUserId"].as_i64());
            }
            versions += got.len();
        }
    }
    assert!(versions > 2 * ids.len(), "records have several versions: {versions}");
    let first = read.found.iter().find(|r| r.id == ids[0]).unwrap();
    let stage = &first.properties_with_history.versions["lifecyclestage"][0];
    assert_eq!(stage.value.as_deref(), Some("customer"), "the newest version comes first");
    assert_eq!(stage.source_type.as_deref(), Some("CRM_UI"), "an admin write is a user's in HubSpot's UI");
}

#[tokio::test]
async fn client_typed_operations_match_ground_truth_on_both_path_families() {
    for family in [ApiFamily::Numbered, ApiFamily::Dated202603] {
        let sim = Sim::start(crate::support::unlimited(portal(230))).await;
        let built = client_with(&sim, |c| c.api_family = family);
        let client = &built.client;
        let t = truth(&sim).await;
        let expected = live_ids(&t, "contacts");
        // List to the end.
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = client
                .list(
                    "contacts",
                    &ListParams { limit: 100, after: after.clone(), properties: vec!["email".into()], archived: false },
                )
                .await
                .unwrap();
            seen.extend(page.results.iter().map(|r| r.id.clone()));
            assert!(seen.len() <= expected.len(), "list paging must end");
            match page.next_after() {
                Some(a) => after = Some(a.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, expected, "{family:?} list");
        // Keyset search to the end.
        let mut last = 0u64;
        let mut found = Vec::new();
        loop {
            let req = SearchRequest::new(
                vec![FilterGroup(vec![Filter::compare("hs_object_id", Operator::Gt, last)])],
                Some(("hs_object_id".into(), Direction::Ascending)),
                vec!["email".into()],
                200,
                0,
            )
            .unwrap();
            let page = client.search("contacts", &req).await.unwrap();
            if page.results.is_empty() {
                break;
            }
            let next: u64 = page.results.last().unwrap().id.parse().unwrap();
            assert!(next > last, "keyset search must advance");
            last = next;
            found.extend(page.results.into_iter().map(|r| r.id));
        }
        assert_eq!(found, expected, "{family:?} search");
        let props = client.properties("contacts", false).await.unwrap();
        assert!(props.iter().any(|p| p.name == "lastmodifieddate" && p.kind == "datetime"));
        let schemas = client.schemas().await.unwrap();
        assert_eq!(schemas[0].object_type_id, "2-3508482");
        assert!(client.get("cars", &live_ids(&t, "cars")[0], &[]).await.unwrap().is_some());
        assert_eq!(client.owners(false).await.unwrap().len(), 23);
        assert_eq!(client.owners(true).await.unwrap().len(), 2);
        assert_eq!(client.pipelines("deals").await.unwrap().len(), 2);
        assert_eq!(client.pipelines("tickets").await.unwrap()[0].stages.len(), 4);
        let paths: Vec<String> = requests(&sim).await["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap().to_owned())
            .collect();
        let prefix = match family {
            ApiFamily::Numbered => "/crm/v3/objects/contacts",
            ApiFamily::Dated202603 => "/crm/objects/2026-03/contacts",
        };
        assert!(paths.iter().any(|p| p.starts_with(prefix)), "{family:?}: {paths:?}");
    }
}

#[tokio::test]
async fn client_oauth_refreshes_before_expiry_and_once_after_a_401() {
    let sim = Sim::start(SimConfig {
        oauth_clients: vec![OAuthClient {
            client_id: "client-1".into(),
            client_secret: "client-secret-value".into(),
            refresh_token: "refresh-token-value".into(),
            scopes: None,
        }],
        ..crate::support::unlimited(portal(20))
    })
    .await;
    sim.admin(Method::PUT, "/_sim/behaviour", Some(&json!({"oauth_token_lifetime_secs": 1800}))).await;
    let clock = ManualClock::new();
    let dir = tempfile::tempdir().unwrap();
    let client = HubSpotClient::new(
        ClientConfig { base_url: sim.handle.base_url(), ..ClientConfig::default() },
        TokenSource::OAuth {
            client_id: "client-1".into(),
            client_secret: Secret::new("client-secret-value"),
            refresh_token: Secret::new("refresh-token-value"),
        },
        Arc::new(FileBudgetStore::new(dir.path().join("b.json"))),
        Arc::new(clock.clone()),
    )
    .unwrap();
    let oauth_calls = |log: &Value| log["byBucket"]["oauth"].as_u64().unwrap_or(0);
    client.properties("contacts", false).await.unwrap();
    client.properties("contacts", false).await.unwrap();
    assert_eq!(oauth_calls(&requests(&sim).await), 1, "one token for both calls");
    // 26 minutes later the token is within 5 minutes of expiry: refreshed before the call.
    clock.advance(chrono::Duration::minutes(26));
    client.properties("contacts", false).await.unwrap();
    assert_eq!(oauth_calls(&requests(&sim).await), 2);
    // A revoked token gets a 401; the client refreshes once and the call succeeds.
    sim.admin(Method::POST, "/_sim/oauth/revoke", None).await;
    client.properties("contacts", false).await.unwrap();
    let log = requests(&sim).await;
    assert_eq!(oauth_calls(&log), 3);
    assert_eq!(log["byStatus"]["401"], 1);
}

#[tokio::test]
async fn client_token_never_appears_in_errors_or_debug_output() {
    const TOKEN: &str = "pat-na1-7c0ffee0-dead-beef-0000-5ecret5ecret";
    let sim = Sim::start(SimConfig {
        tokens: vec![TokenGrant { token: TOKEN.into(), scopes: Some(vec!["crm.objects.contacts.read".into()]) }],
        ..crate::support::unlimited(portal(20))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let client = HubSpotClient::new(
        ClientConfig { base_url: sim.handle.base_url(), ..ClientConfig::default() },
        fixed_token(TOKEN),
        Arc::new(FileBudgetStore::new(dir.path().join("b.json"))),
        hsync::clock::system(),
    )
    .unwrap();
    add_fault(&sim, json!({"kind":"server_error","status":502,"html":true,"remaining":1})).await;
    add_fault(&sim, json!({"kind":"rate_limit","remaining":1})).await;
    client.list("contacts", &ListParams { limit: 5, ..ListParams::default() }).await.unwrap();
    let errors = vec![
        client.list("companies", &ListParams::default()).await.unwrap_err(),
        HubSpotClient::new(
            ClientConfig { base_url: sim.handle.base_url(), ..ClientConfig::default() },
            fixed_token("pat-na1-7c0ffee0-dead-beef-0000-wrongwrong"),
            Arc::new(FileBudgetStore::new(dir.path().join("c.json"))),
            hsync::clock::system(),
        )
        .unwrap()
        .properties("contacts", false)
        .await
        .unwrap_err(),
    ];
    // Log output is checked through the real binary in cli_schema_diff.
    let mut shown = String::new();
    for e in &errors {
        shown.push_str(&format!("{e}\n{e:?}\n"));
    }
    shown.push_str(&format!("{client:?}"));
    assert!(!shown.contains("5ecret5ecret") && !shown.contains("wrongwrong"), "a token leaked:\n{shown}");
    assert!(shown.contains("crm.objects.companies.read") && shown.contains("401"), "{shown}");
}

#[test]
fn client_records_requests_429s_retries_and_budget_in_metrics() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let sim = Sim::start(crate::support::unlimited(portal(20))).await;
            let built = client_with(&sim, |c| {
                c.budget = BudgetConfig { setting: BudgetSetting::Calls(1_000), ..BudgetConfig::default() }
            });
            add_fault(&sim, json!({"kind":"rate_limit","remaining":1})).await;
            add_fault(&sim, json!({"kind":"server_error","status":502,"html":true,"remaining":1})).await;
            built.client.properties("contacts", false).await.unwrap();
            let request = SearchRequest::new(vec![], None, vec![], 10, 0).unwrap();
            built.client.search("contacts", &request).await.unwrap();
        });
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let value = |name: &str, labels: &[(&str, &str)]| -> Option<&DebugValue> {
        snapshot
            .iter()
            .find(|(key, _, _, _)| {
                key.key().name() == name
                    && labels.iter().all(|(k, v)| key.key().labels().any(|l| l.key() == *k && l.value() == *v))
            })
            .map(|(_, _, _, v)| v)
    };
    assert_eq!(
        value("hsync_hubspot_requests_total", &[("endpoint", "properties"), ("status_class", "2xx")]),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        value("hsync_hubspot_requests_total", &[("endpoint", "properties"), ("status_class", "429")]),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        value("hsync_hubspot_requests_total", &[("endpoint", "properties"), ("status_class", "5xx")]),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        value("hsync_hubspot_requests_total", &[("endpoint", "search"), ("status_class", "2xx")]),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(
        value("hsync_hubspot_rate_limited_total", &[("policy", "TEN_SECONDLY_ROLLING")]),
        Some(&DebugValue::Counter(1))
    );
    assert_eq!(value("hsync_hubspot_retries_total", &[("reason", "rate_limited")]), Some(&DebugValue::Counter(1)));
    assert_eq!(value("hsync_hubspot_retries_total", &[("reason", "server_error")]), Some(&DebugValue::Counter(1)));
    let Some(&DebugValue::Gauge(remaining)) = value("hsync_hubspot_budget_remaining", &[]) else {
        panic!("budget gauge missing: {snapshot:?}")
    };
    assert_eq!(remaining.into_inner(), 996.0, "four calls of a thousand spent");
}
