//! Authentication, scopes and rate limits as the simulator enforces them: HubSpot's 401 and 403
//! bodies, the rate-limit headers, the rolling window, the search per-second limit, the daily
//! limit with its time-zone reset, the associations v4 API's own window and daily limit, the
//! no-limits mode and the optional Retry-After.

use chrono::TimeZone;
use hsync_sim::{LimitSettings, SimConfig, Tier, TokenGrant, DEFAULT_TOKEN};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::support::{category, limited, small_portal, Sim};

const RATE_HEADERS: [&str; 5] = [
    "x-hubspot-ratelimit-daily",
    "x-hubspot-ratelimit-daily-remaining",
    "x-hubspot-ratelimit-interval-milliseconds",
    "x-hubspot-ratelimit-max",
    "x-hubspot-ratelimit-remaining",
];

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn header_num(headers: &HeaderMap, name: &str) -> u64 {
    header(headers, name).unwrap_or_else(|| panic!("header {name} missing")).parse().expect("numeric header")
}

fn small_window(window_max: u32) -> LimitSettings {
    // A long window so a slow machine cannot see it roll over during the test.
    LimitSettings { window_max, window_ms: 60_000, ..LimitSettings::default() }
}

fn assert_rate_limited(body: &Value, policy: &str, message: &str) {
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["message"], message, "{body}");
    assert_eq!(body["errorType"], "RATE_LIMIT", "{body}");
    assert_eq!(body["policyName"], policy, "{body}");
    assert!(body["correlationId"].as_str().is_some_and(|c| c.len() == 36), "{body}");
}

#[tokio::test]
async fn auth_missing_or_unknown_token_is_401_invalid_authentication() {
    let sim = Sim::small().await;
    let message = "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview";
    for token in [None, Some("pat-na1-not-a-real-token")] {
        let (status, _, body) = sim.call_as(token, Method::GET, "/crm/v3/objects/contacts", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "token {token:?}");
        assert_eq!(category(&body), "INVALID_AUTHENTICATION");
        assert_eq!(body["message"], message);
        assert_eq!(body["status"], "error");
        assert!(body["correlationId"].is_string());
    }
    let (status, _, _) = sim.get("/crm/v3/objects/contacts").await;
    assert_eq!(status, StatusCode::OK, "the configured token works");
}

#[tokio::test]
async fn auth_token_missing_scope_is_403_missing_scopes_naming_the_scope() {
    let limited_token = "pat-na1-contacts-read-only";
    let sim = Sim::start(SimConfig {
        tokens: vec![
            TokenGrant { token: DEFAULT_TOKEN.to_owned(), scopes: None },
            TokenGrant { token: limited_token.to_owned(), scopes: Some(vec!["crm.objects.contacts.read".to_owned()]) },
        ],
        ..crate::support::unlimited(small_portal())
    })
    .await;
    let as_limited = |method: Method, path: &'static str, body: Option<Value>| {
        let sim = &sim;
        async move { sim.call_as(Some(limited_token), method, path, body.as_ref()).await }
    };
    let (status, _, _) = as_limited(Method::GET, "/crm/v3/objects/contacts", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = as_limited(Method::POST, "/crm/v3/objects/contacts/search", Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK, "search is a read");

    let (status, _, body) = as_limited(Method::GET, "/crm/v3/objects/companies", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(category(&body), "MISSING_SCOPES");
    assert_eq!(body["errors"][0]["context"]["requiredGranularScopes"], json!(["crm.objects.companies.read"]));
    assert!(body["message"].as_str().unwrap().contains("required scopes"));

    let (status, _, body) = as_limited(
        Method::POST,
        "/crm/v3/objects/contacts",
        Some(json!({ "properties": { "email": "x@example.com" } })),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["errors"][0]["context"]["requiredGranularScopes"], json!(["crm.objects.contacts.write"]));
}

#[tokio::test]
async fn limits_general_responses_carry_headers_and_search_responses_none() {
    let sim = Sim::start(limited(small_portal(), LimitSettings::default())).await;
    let (status, headers, _) = sim.get("/crm/v3/objects/contacts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header_num(&headers, "x-hubspot-ratelimit-daily"), 625_000);
    assert_eq!(header_num(&headers, "x-hubspot-ratelimit-daily-remaining"), 624_999);
    assert_eq!(header_num(&headers, "x-hubspot-ratelimit-interval-milliseconds"), 10_000);
    assert_eq!(header_num(&headers, "x-hubspot-ratelimit-max"), 190);
    assert_eq!(header_num(&headers, "x-hubspot-ratelimit-remaining"), 189);
    let (_, headers, _) = sim.get("/crm/v3/properties/contacts").await;
    assert_eq!(header_num(&headers, "x-hubspot-ratelimit-remaining"), 188);

    let (status, headers, _) = sim.post("/crm/v3/objects/contacts/search", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    for name in RATE_HEADERS {
        assert!(headers.get(name).is_none(), "search response carries {name}");
    }
    assert!(!headers.keys().any(|k| k.as_str().starts_with("x-hubspot-ratelimit")));
}

#[tokio::test]
async fn limits_tier_sets_burst_and_daily_headers() {
    for (tier, max, daily) in
        [(Tier::Starter, 100, 250_000), (Tier::Professional, 190, 625_000), (Tier::Enterprise, 190, 1_000_000)]
    {
        let sim = Sim::start(limited(small_portal(), LimitSettings::for_tier(tier))).await;
        let (status, headers, _) = sim.get("/crm/v3/owners").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header_num(&headers, "x-hubspot-ratelimit-max"), max, "{tier:?}");
        assert_eq!(header_num(&headers, "x-hubspot-ratelimit-daily"), daily, "{tier:?}");
        let limits = sim.admin_ok(Method::GET, "/_sim/limits", None).await;
        assert_eq!(limits["settings"]["window_max"], max);
    }
}

#[tokio::test]
async fn limits_window_exhausted_is_429_ten_secondly_rolling_with_hubspot_body() {
    let sim = Sim::start(limited(small_portal(), small_window(20))).await;
    for i in 1..=20u64 {
        let (status, headers, _) = sim.get("/crm/v3/objects/contacts?limit=1").await;
        assert_eq!(status, StatusCode::OK, "call {i}");
        assert_eq!(header_num(&headers, "x-hubspot-ratelimit-max"), 20);
        assert_eq!(header_num(&headers, "x-hubspot-ratelimit-remaining"), 20 - i);
    }
    let (status, headers, body) = sim.get("/crm/v3/objects/contacts?limit=1").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_rate_limited(&body, "TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.");
    assert!(headers.get("retry-after").is_none(), "no Retry-After by default");

    let (status, _, _) = sim.post("/crm/v3/objects/contacts/search", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "search has its own bucket");
    let log = sim.admin_ok(Method::GET, "/_sim/requests", None).await;
    assert_eq!(log["byPolicy"]["TEN_SECONDLY_ROLLING"], 1);

    sim.admin_ok(Method::POST, "/_sim/clock", Some(&json!({ "advanceMs": 60_001 }))).await;
    let (status, _, _) = sim.get("/crm/v3/objects/contacts?limit=1").await;
    assert_eq!(status, StatusCode::OK, "the window rolls over");
}

#[tokio::test]
async fn limits_retry_after_is_sent_in_seconds_only_when_enabled() {
    let sim = Sim::start(limited(small_portal(), LimitSettings { send_retry_after: true, ..small_window(3) })).await;
    for _ in 0..3 {
        assert_eq!(sim.get("/crm/v3/owners").await.0, StatusCode::OK);
    }
    let (status, headers, _) = sim.get("/crm/v3/owners").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let secs: u64 = header(&headers, "retry-after").expect("Retry-After").parse().expect("whole seconds");
    assert!((1..=60).contains(&secs), "Retry-After {secs}s is within the 60 s window");
}

#[tokio::test]
async fn limits_search_burst_over_five_per_second_is_429_secondly() {
    let sim = Sim::start(limited(small_portal(), LimitSettings::default())).await;
    let mut calls = JoinSet::new();
    for _ in 0..6 {
        let req = sim
            .http
            .post(sim.url("/crm/v3/objects/contacts/search"))
            .bearer_auth(&sim.token)
            .json(&json!({ "limit": 1 }));
        calls.spawn(async move {
            let resp = req.send().await.expect("search");
            let status = resp.status();
            let headers = resp.headers().clone();
            (status, headers, resp.json::<Value>().await.expect("JSON body"))
        });
    }
    let mut refused = Vec::new();
    let mut ok = 0;
    while let Some(done) = calls.join_next().await {
        let (status, headers, body) = done.expect("task");
        assert!(!headers.keys().any(|k| k.as_str().starts_with("x-hubspot-ratelimit")));
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => refused.push(body),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(ok <= 5, "at most five searches a second");
    assert!(!refused.is_empty());
    for body in &refused {
        assert_rate_limited(body, "SECONDLY", "You have reached your secondly limit.");
    }
    let (status, _, _) = sim.get("/crm/v3/objects/contacts").await;
    assert_eq!(status, StatusCode::OK, "general calls are not held back by search");
}

#[tokio::test]
async fn limits_daily_limit_is_429_daily_until_the_portals_midnight() {
    let sim = Sim::start(limited(small_portal(), LimitSettings { daily_limit: 5, ..LimitSettings::default() })).await;
    for i in 1..=5u64 {
        let (status, headers, _) = sim.get("/crm/v3/owners").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header_num(&headers, "x-hubspot-ratelimit-daily-remaining"), 5 - i);
    }
    let (status, _, body) = sim.get("/crm/v3/owners").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_rate_limited(&body, "DAILY", "You have reached your daily limit.");
    let (status, _, body) = sim.post("/crm/v3/objects/contacts/search", &json!({})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "search counts against the daily limit");
    assert_eq!(body["policyName"], "DAILY");

    let limits = sim.admin_ok(Method::GET, "/_sim/limits", None).await;
    assert_eq!(limits["dailyUsed"], 5);
    let until = limits["msUntilReset"].as_i64().expect("msUntilReset");
    assert!(until > 0 && until <= 86_400_000);
    sim.admin_ok(Method::POST, "/_sim/clock", Some(&json!({ "advanceMs": until + 1_000 }))).await;
    let limits = sim.admin_ok(Method::GET, "/_sim/limits", None).await;
    assert_eq!(limits["dailyUsed"], 0, "the admin view sees the new day before any call");
    let next = limits["msUntilReset"].as_i64().unwrap();
    assert!(next > 86_400_000 - 60_000 && next <= 86_400_000, "a whole day to the next reset: {next}");
    let (status, headers, _) = sim.get("/crm/v3/owners").await;
    assert_eq!(status, StatusCode::OK, "a new day");
    assert_eq!(header_num(&headers, "x-hubspot-ratelimit-daily-remaining"), 4);
}

#[tokio::test]
async fn limits_time_zone_moves_the_daily_reset_to_local_midnight() {
    let sim = Sim::start(limited(small_portal(), LimitSettings::default())).await;
    let mut resets = Vec::new();
    for zone in ["UTC", "Asia/Tokyo", "America/New_York"] {
        let settings = LimitSettings { timezone: zone.to_owned(), ..LimitSettings::default() };
        let body = serde_json::to_value(&settings).unwrap();
        sim.admin_ok(Method::PUT, "/_sim/limits", Some(&body)).await;
        let before = sim.admin_ok(Method::GET, "/_sim/clock", None).await["now"].as_i64().unwrap();
        let until = sim.admin_ok(Method::GET, "/_sim/limits", None).await["msUntilReset"].as_i64().unwrap();
        let after = sim.admin_ok(Method::GET, "/_sim/clock", None).await["now"].as_i64().unwrap();
        // The reset instant lies in [before + until, after + until]; it must be local midnight.
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let local = tz.timestamp_millis_opt(before + until).unwrap();
        let next_midnight = local
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map(|m| tz.from_local_datetime(&m).earliest().unwrap().timestamp_millis())
            .filter(|&m| m >= before + until)
            .unwrap_or_else(|| {
                let next = local.date_naive().succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap();
                tz.from_local_datetime(&next).earliest().unwrap().timestamp_millis()
            });
        assert!(
            (before + until..=after + until).contains(&next_midnight),
            "{zone}: reset in {until} ms is local midnight"
        );
        resets.push(next_midnight);
    }
    assert_ne!(resets[0], resets[1], "Tokyo resets at another instant than UTC");
    assert_ne!(resets[0], resets[2], "New York resets at another instant than UTC");
    assert_eq!((resets[0] - resets[1]).rem_euclid(86_400_000), 9 * 3_600_000);
}

#[tokio::test]
async fn limits_disabled_serves_many_calls_without_429() {
    let sim = Sim::start(limited(
        small_portal(),
        LimitSettings { enabled: false, daily_limit: 3, search_per_second: 1, ..small_window(3) },
    ))
    .await;
    for i in 0..40 {
        let (status, _, _) = sim.get("/crm/v3/owners").await;
        assert_eq!(status, StatusCode::OK, "general call {i}");
        let (status, _, _) = sim.post("/crm/v3/objects/contacts/search", &json!({ "limit": 1 })).await;
        assert_eq!(status, StatusCode::OK, "search call {i}");
    }
    let log = sim.admin_ok(Method::GET, "/_sim/requests", None).await;
    assert_eq!(log["byStatus"]["200"], 80);
    assert!(log["byStatus"].get("429").is_none());
}

/// An association batch read of one contact (200, or 207 when it has no companies).
async fn association_read(sim: &Sim, path: &str) -> (StatusCode, HeaderMap, Value) {
    let (status, headers, body) = sim.post(path, &json!({ "inputs": [{ "id": "1" }] })).await;
    assert!(
        status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::OK || status == StatusCode::MULTI_STATUS,
        "{path}: {status} {body}"
    );
    (status, headers, body)
}

#[tokio::test]
async fn limits_association_calls_beyond_their_own_window_are_429_while_general_calls_succeed() {
    let limits = LimitSettings { associations_window_max: 5, associations_window_ms: 60_000, ..small_window(50) };
    let sim = Sim::start(limited(small_portal(), limits)).await;
    // The v4 batch read, its dated alias and the labels endpoint all draw from one window.
    let paths = [
        "/crm/v4/associations/contacts/companies/batch/read",
        "/crm/associations/2026-03/contacts/companies/batch/read",
    ];
    for i in 1..=5u64 {
        let headers = if i == 3 {
            let (status, headers, _) = sim.get("/crm/v4/associations/contacts/companies/labels").await;
            assert_eq!(status, StatusCode::OK);
            headers
        } else {
            let (status, headers, _) = association_read(&sim, paths[i as usize % 2]).await;
            assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "association call {i}");
            headers
        };
        assert_eq!(header_num(&headers, "x-hubspot-ratelimit-max"), 5, "association answers report their window");
        assert_eq!(header_num(&headers, "x-hubspot-ratelimit-remaining"), 5 - i);
        assert_eq!(header_num(&headers, "x-hubspot-ratelimit-interval-milliseconds"), 60_000);
        assert_eq!(
            header_num(&headers, "x-hubspot-ratelimit-daily-remaining"),
            625_000 - i,
            "counted in the daily total"
        );
    }
    let (status, _, body) = association_read(&sim, paths[0]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_rate_limited(
        &body,
        "ASSOCIATIONS_TEN_SECONDLY_ROLLING",
        "You have reached your associations ten_secondly_rolling limit.",
    );
    let (status, _, _) = sim.get("/crm/v4/associations/contacts/companies/labels").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "labels share the association window");

    // The general window was not touched by the association calls.
    let (status, headers, _) = sim.get("/crm/v3/objects/contacts?limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header_num(&headers, "x-hubspot-ratelimit-max"), 50);
    assert_eq!(header_num(&headers, "x-hubspot-ratelimit-remaining"), 49);
    assert_eq!(header_num(&headers, "x-hubspot-ratelimit-daily-remaining"), 625_000 - 6, "refusals are not counted");
    // A record's associations (`/crm/v4/objects/...`) are not exempt from the general window.
    let (status, headers, _) = sim.get("/crm/v4/objects/contacts/1/associations/companies").await;
    assert_ne!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header_num(&headers, "x-hubspot-ratelimit-max"), 50);
    assert_eq!(header_num(&headers, "x-hubspot-ratelimit-remaining"), 48);

    let log = sim.admin_ok(Method::GET, "/_sim/requests", None).await;
    assert_eq!(log["byPolicy"]["ASSOCIATIONS_TEN_SECONDLY_ROLLING"], 2, "{log}");
    assert!(log["byPolicy"].get("TEN_SECONDLY_ROLLING").is_none(), "{log}");
    assert_eq!(log["byBucket"]["associations"], 7, "{log}");
    let limits = sim.admin_ok(Method::GET, "/_sim/limits", None).await;
    assert_eq!(limits["dailyUsed"], 7);
    assert_eq!(limits["associationsDailyUsed"], 5);

    sim.admin_ok(Method::POST, "/_sim/clock", Some(&json!({ "advanceMs": 60_001 }))).await;
    let (status, _, _) = association_read(&sim, paths[0]).await;
    assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "the association window rolls over");
}

#[tokio::test]
async fn limits_general_calls_beyond_their_window_are_429_while_association_calls_succeed() {
    let sim = Sim::start(limited(small_portal(), small_window(3))).await;
    for i in 1..=3 {
        assert_eq!(sim.get("/crm/v3/owners").await.0, StatusCode::OK, "general call {i}");
    }
    let (status, _, body) = sim.get("/crm/v3/objects/contacts?limit=1").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_rate_limited(&body, "TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.");
    let (status, _, _) = sim.get("/crm/v4/objects/contacts/1/associations/companies").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "a record's associations use the general window");

    let (status, headers, _) = association_read(&sim, "/crm/v4/associations/contacts/companies/batch/read").await;
    assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "association batch reads have their own window");
    assert_eq!(header_num(&headers, "x-hubspot-ratelimit-max"), 150, "Professional's association burst");
    assert_eq!(header_num(&headers, "x-hubspot-ratelimit-remaining"), 149);
    let (status, _, _) = sim.get("/crm/v4/associations/contacts/companies/labels").await;
    assert_eq!(status, StatusCode::OK);

    // A rate_limit fault on an association call names the association window.
    let fault = json!({ "kind": "rate_limit", "target": "associations", "remaining": 1 });
    sim.admin_ok(Method::POST, "/_sim/faults", Some(&fault)).await;
    let (status, _, body) = association_read(&sim, "/crm/v4/associations/contacts/companies/batch/read").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["policyName"], "ASSOCIATIONS_TEN_SECONDLY_ROLLING");
}

#[tokio::test]
async fn limits_association_daily_limit_refuses_only_association_calls() {
    let limits = LimitSettings { associations_daily_limit: Some(2), ..LimitSettings::default() };
    let sim = Sim::start(limited(small_portal(), limits)).await;
    for _ in 0..2 {
        let (status, _, _) = association_read(&sim, "/crm/v4/associations/contacts/companies/batch/read").await;
        assert_ne!(status, StatusCode::TOO_MANY_REQUESTS);
    }
    let (status, _, body) = association_read(&sim, "/crm/v4/associations/contacts/companies/batch/read").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_rate_limited(&body, "ASSOCIATIONS_DAILY", "You have reached your associations daily limit.");
    assert_eq!(sim.get("/crm/v3/owners").await.0, StatusCode::OK, "general calls go on");

    let until = sim.admin_ok(Method::GET, "/_sim/limits", None).await["msUntilReset"].as_i64().unwrap();
    sim.admin_ok(Method::POST, "/_sim/clock", Some(&json!({ "advanceMs": until + 1_000 }))).await;
    let (status, _, _) = association_read(&sim, "/crm/v4/associations/contacts/companies/batch/read").await;
    assert_ne!(status, StatusCode::TOO_MANY_REQUESTS, "a new day");
}
