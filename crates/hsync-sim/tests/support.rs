//! The simulator driver shared by every test that runs one: starts a simulator on an ephemeral
//! loopback port and gives typed helpers for its HubSpot API and admin API. The simulator's own
//! tests use it as `support`; hsync's tests include this file from `tests/support/mod.rs`, so
//! there is one copy.

#![allow(dead_code)]

use std::collections::BTreeSet;

use hsync_sim::{LimitSettings, PortalSpec, SimConfig, SimHandle, DEFAULT_TOKEN};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A simulator running for one test.
pub struct Sim {
    pub handle: SimHandle,
    pub http: reqwest::Client,
    pub token: String,
}

/// Status, headers and JSON body (`Null` when the body is not JSON) of one response.
pub type Reply = (StatusCode, HeaderMap, Value);

/// A small portal: a few hundred records, enough to page through but quick to build.
pub fn small_portal() -> PortalSpec {
    PortalSpec {
        contacts: 250,
        companies: 120,
        deals: 80,
        tickets: 40,
        cars: 30,
        custom_properties: 12,
        ..PortalSpec::default()
    }
}

/// A configuration serving `portal` without rate limits, for tests that make many calls.
pub fn unlimited(portal: PortalSpec) -> SimConfig {
    SimConfig { portal, limits: LimitSettings { enabled: false, ..LimitSettings::default() }, ..SimConfig::default() }
}

/// A configuration serving `portal` with `limits`.
pub fn limited(portal: PortalSpec, limits: LimitSettings) -> SimConfig {
    SimConfig { portal, limits, ..SimConfig::default() }
}

impl Sim {
    /// Starts a simulator with `config` on 127.0.0.1:0.
    pub async fn start(config: SimConfig) -> Sim {
        let handle = hsync_sim::start_loopback(config).await.expect("start simulator");
        let http =
            reqwest::Client::builder().timeout(std::time::Duration::from_secs(600)).build().expect("http client");
        Sim { handle, http, token: DEFAULT_TOKEN.to_owned() }
    }

    /// Starts the small portal without rate limits.
    pub async fn small() -> Sim {
        Sim::start(unlimited(small_portal())).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.handle.base_url(), path)
    }

    /// Any HubSpot API call with the bearer token.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        self.call_as(Some(&self.token), method, path, body).await
    }

    /// Any HubSpot API call with `token` (or none).
    pub async fn call_as(&self, token: Option<&str>, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let mut req = self.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        split(req.send().await.expect("API call")).await
    }

    /// GET with the bearer token; returns status, headers and the JSON body (Null if not JSON).
    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    /// POST JSON with the bearer token.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    /// PATCH JSON with the bearer token.
    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// PUT with the bearer token and no body.
    pub async fn put(&self, path: &str) -> Reply {
        self.call(Method::PUT, path, None).await
    }

    /// DELETE with the bearer token.
    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    /// Admin API call (no token needed).
    pub async fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        let (status, _, body) = split(req.send().await.expect("admin call")).await;
        (status, body)
    }

    /// Admin call that must succeed (2xx); returns the body.
    pub async fn admin_ok(&self, method: Method, path: &str, body: Option<&Value>) -> Value {
        let (status, reply) = self.admin(method.clone(), path, body).await;
        assert!(status.is_success(), "admin {method} {path} answered {status}: {reply}");
        reply
    }

    /// Ground truth for the named object types.
    pub async fn truth(&self, objects: &str) -> Value {
        self.admin_ok(Method::GET, &format!("/_sim/truth?objects={objects}"), None).await
    }

    /// Live record ids of `t` according to ground truth.
    pub async fn truth_ids(&self, t: &str) -> BTreeSet<u64> {
        let truth = self.truth(t).await;
        truth["objects"][t]["live"].as_array().expect("truth live list").iter().map(id_of).collect()
    }

    /// Creates a record through the admin API; returns its id.
    pub async fn admin_create(&self, t: &str, properties: Value) -> u64 {
        let body = self
            .admin_ok(Method::POST, &format!("/_sim/objects/{t}"), Some(&json!({ "properties": properties })))
            .await;
        id_of(&body)
    }

    /// Runs a search and asserts it succeeds; returns the body.
    pub async fn search(&self, t: &str, body: &Value) -> Value {
        let (status, _, reply) = self.post(&format!("/crm/v3/objects/{t}/search"), body).await;
        assert_eq!(status, StatusCode::OK, "search {body} answered {reply}");
        reply
    }

    /// Pages a search to the end with `after` (limit 200); returns `total` and every record.
    pub async fn search_all(&self, t: &str, body: &Value) -> (u64, Vec<Value>) {
        let mut records = Vec::new();
        let mut after: Option<String> = None;
        let mut total = None;
        loop {
            let mut page_body = body.clone();
            page_body["limit"] = json!(200);
            if let Some(a) = &after {
                page_body["after"] = json!(a);
            }
            let page = self.search(t, &page_body).await;
            let page_total = page["total"].as_u64().expect("search total");
            assert!(total.is_none_or(|t| t == page_total), "total is stable while paging");
            total = Some(page_total);
            records.extend(page["results"].as_array().expect("results").iter().cloned());
            match page.pointer("/paging/next/after").and_then(Value::as_str) {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        (total.unwrap_or(0), records)
    }

    /// Ids a search finds, paging to the end; asserts no id appears twice.
    pub async fn search_ids(&self, t: &str, body: &Value) -> BTreeSet<u64> {
        let (total, records) = self.search_all(t, body).await;
        let ids = unique_ids(&records);
        assert_eq!(ids.len() as u64, total, "search {body}: total matches the records paged");
        ids
    }

    /// Pages a list endpoint (`path` may carry a query) to the end; returns every record.
    pub async fn list_all(&self, path: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut records = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let url = match &after {
                Some(a) => format!("{path}{sep}after={a}"),
                None => path.to_owned(),
            };
            let (status, _, page) = self.get(&url).await;
            assert_eq!(status, StatusCode::OK, "GET {url} answered {page}");
            assert!(page.get("total").is_none(), "list has no total");
            records.extend(page["results"].as_array().expect("results").iter().cloned());
            match page.pointer("/paging/next/after").and_then(Value::as_str) {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        records
    }
}

async fn split(resp: reqwest::Response) -> Reply {
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, headers, body)
}

/// The numeric id of a record-like value (`{"id": "123"}`).
pub fn id_of(v: &Value) -> u64 {
    match &v["id"] {
        Value::String(s) => s.parse().expect("numeric id"),
        Value::Number(n) => n.as_u64().expect("numeric id"),
        other => panic!("no id in {other} ({v})"),
    }
}

/// Ids of `records`, asserting none repeats.
pub fn unique_ids(records: &[Value]) -> BTreeSet<u64> {
    let mut ids = BTreeSet::new();
    for r in records {
        let id = id_of(r);
        assert!(ids.insert(id), "id {id} appears twice");
    }
    ids
}

/// `body` without the fields that differ between two otherwise identical calls: correlation
/// and request ids, the batch timestamps and paging links (which repeat the address asked).
pub fn stable(body: &Value) -> Value {
    match body {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "correlationId" | "requestId" | "startedAt" | "completedAt" | "link")
                })
                .map(|(k, v)| (k.clone(), stable(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(stable).collect()),
        other => other.clone(),
    }
}

/// A search filter.
pub fn filter(property: &str, operator: &str, value: impl Into<Value>) -> Value {
    json!({ "propertyName": property, "operator": operator, "value": value.into() })
}

/// A search body with one filter group.
pub fn one_group(filters: Vec<Value>) -> Value {
    json!({ "filterGroups": [{ "filters": filters }] })
}

/// The error category of a HubSpot error body.
pub fn category(body: &Value) -> &str {
    body["category"].as_str().unwrap_or_default()
}
