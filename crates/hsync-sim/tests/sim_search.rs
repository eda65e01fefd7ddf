//! The simulator's search endpoint against ground truth: every operator, typed comparison,
//! dates in both formats, sorts, paging, the 10,000 cap, keyset paging, HubSpot's request
//! limits, nulls, index lag, archived records and the shared bulk-update millisecond.

use std::collections::{BTreeMap, BTreeSet};

use hsync_sim::generate::BULK_UPDATE_MS;
use hsync_sim::PortalSpec;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{category, filter, id_of, one_group, unlimited, Sim};

/// One live record of ground truth: its id, last-modified ms and property values.
struct TruthRecord {
    id: u64,
    updated_ms: i64,
    props: BTreeMap<String, String>,
}

impl TruthRecord {
    /// The value of `name`, treating an empty string as no value (as search does).
    fn value(&self, name: &str) -> Option<&str> {
        self.props.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn number(&self, name: &str) -> Option<f64> {
        self.value(name).map(|v| v.parse().expect("numeric truth value"))
    }
}

async fn truth_records(sim: &Sim, t: &str) -> Vec<TruthRecord> {
    let truth = sim.truth(t).await;
    truth["objects"][t]["live"]
        .as_array()
        .expect("live records")
        .iter()
        .map(|r| TruthRecord {
            id: id_of(r),
            updated_ms: r["updatedAtMs"].as_i64().expect("updatedAtMs"),
            props: r["properties"]
                .as_object()
                .expect("properties")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("string value").to_owned()))
                .collect(),
        })
        .collect()
}

fn expected(records: &[TruthRecord], pred: impl Fn(&TruthRecord) -> bool) -> BTreeSet<u64> {
    records.iter().filter(|r| pred(r)).map(|r| r.id).collect()
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("valid instant")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Asserts a single-filter search finds exactly `want`, which must be a proper, non-empty
/// subset of the type's records so the check can tell operators apart.
async fn assert_finds(sim: &Sim, t: &str, f: Value, want: &BTreeSet<u64>, all: usize) {
    assert!(!want.is_empty() && want.len() < all, "filter {f} should split the data: {} of {all}", want.len());
    let got = sim.search_ids(t, &one_group(vec![f.clone()])).await;
    assert_eq!(&got, want, "filter {f}");
}

#[tokio::test]
async fn search_comparison_operators_match_ground_truth() {
    let sim = Sim::small().await;
    let records = truth_records(&sim, "companies").await;
    let all = records.len();
    let mut employees: Vec<f64> = records.iter().filter_map(|r| r.number("numberofemployees")).collect();
    employees.sort_by(f64::total_cmp);
    let mid = employees[employees.len() / 2];
    let low = employees[employees.len() / 4];
    let high = employees[employees.len() * 3 / 4];
    let n = |r: &TruthRecord| r.number("numberofemployees");
    let p = "numberofemployees";

    let want = expected(&records, |r| n(r) == Some(mid));
    assert_finds(&sim, "companies", filter(p, "EQ", mid.to_string()), &want, all).await;
    let want = expected(&records, |r| n(r) != Some(mid));
    assert_finds(&sim, "companies", filter(p, "NEQ", mid.to_string()), &want, all).await;
    let want = expected(&records, |r| n(r).is_some_and(|v| v < mid));
    assert_finds(&sim, "companies", filter(p, "LT", mid.to_string()), &want, all).await;
    let want = expected(&records, |r| n(r).is_some_and(|v| v <= mid));
    assert_finds(&sim, "companies", filter(p, "LTE", mid.to_string()), &want, all).await;
    let want = expected(&records, |r| n(r).is_some_and(|v| v > mid));
    assert_finds(&sim, "companies", filter(p, "GT", mid.to_string()), &want, all).await;
    let want = expected(&records, |r| n(r).is_some_and(|v| v >= mid));
    assert_finds(&sim, "companies", filter(p, "GTE", mid.to_string()), &want, all).await;
    let want = expected(&records, |r| n(r).is_some_and(|v| v >= low && v <= high));
    let between =
        json!({ "propertyName": p, "operator": "BETWEEN", "value": low.to_string(), "highValue": high.to_string() });
    assert_finds(&sim, "companies", between, &want, all).await;
}

#[tokio::test]
async fn search_set_presence_and_token_operators_match_ground_truth() {
    let sim = Sim::small().await;
    let records = truth_records(&sim, "companies").await;
    let all = records.len();

    // Text EQ/NEQ compare case-insensitively.
    let city = |r: &TruthRecord| r.value("city").map(str::to_lowercase);
    let want = expected(&records, |r| city(r).as_deref() == Some("berlin"));
    assert_finds(&sim, "companies", filter("city", "EQ", "BERLIN"), &want, all).await;
    let want = expected(&records, |r| city(r).as_deref() != Some("berlin"));
    assert_finds(&sim, "companies", filter("city", "NEQ", "Berlin"), &want, all).await;

    // IN / NOT_IN take lower-case values.
    let industry = |r: &TruthRecord| r.value("industry").map(str::to_lowercase);
    let set = ["retail", "financial_services"];
    let want = expected(&records, |r| industry(r).is_some_and(|v| set.contains(&v.as_str())));
    let f = json!({ "propertyName": "industry", "operator": "IN", "values": set });
    assert_finds(&sim, "companies", f, &want, all).await;
    let want = expected(&records, |r| !industry(r).is_some_and(|v| set.contains(&v.as_str())));
    let f = json!({ "propertyName": "industry", "operator": "NOT_IN", "values": set });
    assert_finds(&sim, "companies", f, &want, all).await;

    // HAS_PROPERTY / NOT_HAS_PROPERTY on a custom property that many records lack.
    let want = expected(&records, |r| r.value("order").is_some());
    let f = json!({ "propertyName": "order", "operator": "HAS_PROPERTY" });
    assert_finds(&sim, "companies", f, &want, all).await;
    let want = expected(&records, |r| r.value("order").is_none());
    let f = json!({ "propertyName": "order", "operator": "NOT_HAS_PROPERTY" });
    assert_finds(&sim, "companies", f, &want, all).await;

    // CONTAINS_TOKEN / NOT_CONTAINS_TOKEN, exact and with a wildcard. Company names are
    // "<Word> <number>", so whitespace splits them into the same tokens search uses.
    let name_tokens = |r: &TruthRecord| -> Vec<String> {
        r.value("name").map(|v| v.split_whitespace().map(str::to_lowercase).collect()).unwrap_or_default()
    };
    let want = expected(&records, |r| name_tokens(r).iter().any(|t| t == "acme"));
    assert_finds(&sim, "companies", filter("name", "CONTAINS_TOKEN", "Acme"), &want, all).await;
    let want = expected(&records, |r| !name_tokens(r).iter().any(|t| t == "acme"));
    assert_finds(&sim, "companies", filter("name", "NOT_CONTAINS_TOKEN", "acme"), &want, all).await;
    let want = expected(&records, |r| name_tokens(r).iter().any(|t| t.starts_with("glob")));
    assert_finds(&sim, "companies", filter("name", "CONTAINS_TOKEN", "glob*"), &want, all).await;
}

#[tokio::test]
async fn search_number_property_compares_numerically_not_as_text() {
    let sim = Sim::small().await;
    let mut made = BTreeMap::new();
    for n in ["9", "10", "100"] {
        let id = sim.admin_create("companies", json!({ "name": "numeric-probe", "numberofemployees": n })).await;
        made.insert(n, id);
    }
    let probe =
        |op: &str, v: &str| one_group(vec![filter("name", "EQ", "numeric-probe"), filter("numberofemployees", op, v)]);
    let lt10 = sim.search_ids("companies", &probe("LT", "10")).await;
    assert_eq!(lt10, BTreeSet::from([made["9"]]), "9 < 10 but \"100\" < \"9\" as text");
    let gt9 = sim.search_ids("companies", &probe("GT", "9")).await;
    assert_eq!(gt9, BTreeSet::from([made["10"], made["100"]]));
    let sorted = sim
        .search(
            "companies",
            &json!({
                "filterGroups": [{ "filters": [filter("name", "EQ", "numeric-probe")] }],
                "sorts": [{ "propertyName": "numberofemployees", "direction": "ASCENDING" }],
                "properties": ["numberofemployees"],
            }),
        )
        .await;
    let order: Vec<&str> = sorted["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["properties"]["numberofemployees"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["9", "10", "100"]);
}

#[tokio::test]
async fn search_date_filter_epoch_ms_and_iso_give_same_result() {
    let sim = Sim::small().await;
    let records = truth_records(&sim, "contacts").await;
    let mut times: Vec<i64> = records.iter().map(|r| r.updated_ms).collect();
    times.sort_unstable();
    let pivot = times[times.len() / 3];
    let want = expected(&records, |r| r.updated_ms >= pivot);
    let by_ms =
        sim.search_ids("contacts", &one_group(vec![filter("lastmodifieddate", "GTE", pivot.to_string())])).await;
    let by_iso = sim.search_ids("contacts", &one_group(vec![filter("lastmodifieddate", "GTE", iso(pivot))])).await;
    assert_eq!(by_ms, want);
    assert_eq!(by_iso, want);

    let created =
        |r: &TruthRecord| chrono::DateTime::parse_from_rfc3339(&r.props["createdate"]).unwrap().timestamp_millis();
    let (lo, hi) = (created(&records[50]), created(&records[150]));
    let want = expected(&records, |r| (lo..=hi).contains(&created(r)));
    let between = |a: String, b: String| {
        one_group(vec![json!({ "propertyName": "createdate", "operator": "BETWEEN", "value": a, "highValue": b })])
    };
    let by_ms = sim.search_ids("contacts", &between(lo.to_string(), hi.to_string())).await;
    let by_iso = sim.search_ids("contacts", &between(iso(lo), iso(hi))).await;
    assert_eq!(by_ms, want);
    assert_eq!(by_iso, want);
    assert_eq!(want.len(), 101, "records 50..=150 by creation");
}

#[tokio::test]
async fn search_with_two_sorts_is_rejected_and_string_sorts_work() {
    let sim = Sim::small().await;
    let two = json!({ "sorts": [
        { "propertyName": "createdate", "direction": "ASCENDING" },
        { "propertyName": "email", "direction": "ASCENDING" },
    ] });
    let (status, _, body) = sim.post("/crm/v3/objects/contacts/search", &two).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(category(&body), "VALIDATION_ERROR");
    assert_eq!(body["status"], "error");

    let created = |page: &Value| -> Vec<String> {
        page["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["properties"]["createdate"].as_str().unwrap().to_owned())
            .collect()
    };
    let ms = |s: &String| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
    let desc = sim.search("contacts", &json!({ "sorts": ["-createdate"], "limit": 100 })).await;
    let desc_obj = sim
        .search(
            "contacts",
            &json!({ "sorts": [{ "propertyName": "createdate", "direction": "DESCENDING" }], "limit": 100 }),
        )
        .await;
    let asc = sim.search("contacts", &json!({ "sorts": ["createdate"], "limit": 100 })).await;
    let d: Vec<i64> = created(&desc).iter().map(ms).collect();
    let a: Vec<i64> = created(&asc).iter().map(ms).collect();
    assert!(d.windows(2).all(|w| w[0] >= w[1]), "\"-createdate\" sorts descending");
    assert!(a.windows(2).all(|w| w[0] <= w[1]), "\"createdate\" sorts ascending");
    assert_eq!(created(&desc), created(&desc_obj), "string and object sorts agree");
    assert!(d[0] > a[0], "the orders differ");
}

#[tokio::test]
async fn search_limit_above_200_is_rejected_and_200_is_served() {
    let sim = Sim::small().await;
    let (status, _, body) = sim.post("/crm/v3/objects/contacts/search", &json!({ "limit": 201 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(category(&body), "VALIDATION_ERROR");
    let page = sim.search("contacts", &json!({ "limit": 200 })).await;
    assert_eq!(page["results"].as_array().unwrap().len(), 200);
    assert_eq!(page["paging"]["next"]["after"], "200", "after is an offset");
    let default = sim.search("contacts", &json!({})).await;
    assert_eq!(default["results"].as_array().unwrap().len(), 10, "default page size");
}

#[tokio::test]
async fn search_after_paging_reaches_every_record_once_with_true_total() {
    let sim = Sim::small().await;
    let truth = sim.truth_ids("contacts").await;
    let (total, records) = sim.search_all("contacts", &json!({})).await;
    assert_eq!(total, truth.len() as u64);
    assert_eq!(crate::support::unique_ids(&records), truth);
    let last = sim.search("contacts", &json!({ "limit": 200, "after": "200" })).await;
    assert_eq!(last["results"].as_array().unwrap().len(), truth.len() - 200);
    assert!(last.get("paging").is_none(), "paging is absent on the last page");
}

fn big_portal() -> PortalSpec {
    PortalSpec {
        contacts: 10_500,
        companies: 10,
        deals: 10,
        tickets: 10,
        cars: 10,
        custom_properties: 0,
        ..PortalSpec::default()
    }
}

#[tokio::test]
async fn search_past_ten_thousand_is_rejected_but_total_is_true() {
    let sim = Sim::start(unlimited(big_portal())).await;
    let truth = sim.truth_ids("contacts").await;
    assert_eq!(truth.len(), 10_500);
    let page = sim.search("contacts", &json!({ "limit": 200, "after": "9800" })).await;
    assert_eq!(page["results"].as_array().unwrap().len(), 200);
    assert_eq!(page["total"], 10_500, "total reports the true count past the cap");
    let (status, _, body) =
        sim.post("/crm/v3/objects/contacts/search", &json!({ "limit": 200, "after": "10000" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(category(&body), "VALIDATION_ERROR");
    let (status, _, _) = sim.post("/crm/v3/objects/contacts/search", &json!({ "limit": 10, "after": 10_000 })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "numeric after is capped as well");
}

#[tokio::test]
async fn search_keyset_paging_by_object_id_reaches_every_id_once() {
    let sim = Sim::start(unlimited(big_portal())).await;
    let truth = sim.truth_ids("contacts").await;
    let mut seen = Vec::new();
    let mut last = 0u64;
    loop {
        let page = sim
            .search(
                "contacts",
                &json!({
                    "filterGroups": [{ "filters": [filter("hs_object_id", "GT", last.to_string())] }],
                    "sorts": [{ "propertyName": "hs_object_id", "direction": "ASCENDING" }],
                    "properties": ["hs_object_id"],
                    "limit": 200,
                }),
            )
            .await;
        let ids: Vec<u64> = page["results"].as_array().unwrap().iter().map(id_of).collect();
        if ids.is_empty() {
            break;
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ascending ids");
        assert!(ids[0] > last);
        last = *ids.last().unwrap();
        seen.extend(ids);
    }
    assert_eq!(seen.len(), truth.len(), "no id twice");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), truth);
}

fn groups(sizes: &[usize]) -> Value {
    let groups: Vec<Value> = sizes
        .iter()
        .map(|&n| json!({ "filters": vec![json!({ "propertyName": "email", "operator": "HAS_PROPERTY" }); n] }))
        .collect();
    json!({ "filterGroups": groups })
}

#[tokio::test]
async fn search_filter_group_limits_are_enforced() {
    let sim = Sim::small().await;
    let too_many: [(&str, Vec<usize>); 3] = [
        ("six groups", vec![1; 6]),
        ("seven filters in a group", vec![7]),
        ("nineteen filters in total", vec![5, 5, 5, 4]),
    ];
    for (what, sizes) in too_many {
        let (status, _, body) = sim.post("/crm/v3/objects/contacts/search", &groups(&sizes)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}");
        assert_eq!(category(&body), "VALIDATION_ERROR", "{what}");
    }
    for sizes in [vec![1; 5], vec![6], vec![6, 6, 6], vec![4, 4, 4, 3, 3]] {
        let (status, _, body) = sim.post("/crm/v3/objects/contacts/search", &groups(&sizes)).await;
        assert_eq!(status, StatusCode::OK, "{sizes:?} is within the limits: {body}");
    }
}

#[tokio::test]
async fn search_query_longer_than_3000_chars_is_rejected() {
    let sim = Sim::small().await;
    let (status, _, body) = sim.post("/crm/v3/objects/contacts/search", &json!({ "query": "a".repeat(3001) })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(category(&body), "VALIDATION_ERROR");
    let (status, _, _) = sim.post("/crm/v3/objects/contacts/search", &json!({ "query": "a".repeat(3000) })).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn search_requested_property_without_value_is_null_but_absent_on_get() {
    let sim = Sim::small().await;
    let records = truth_records(&sim, "contacts").await;
    let bare = records.iter().find(|r| !r.props.contains_key("order")).expect("some contact lacks the custom property");
    let page = sim
        .search(
            "contacts",
            &json!({
                "filterGroups": [{ "filters": [filter("hs_object_id", "EQ", bare.id.to_string())] }],
                "properties": ["order", "email"],
            }),
        )
        .await;
    let props = &page["results"][0]["properties"];
    assert!(props.as_object().unwrap().contains_key("order"), "{props}");
    assert!(props["order"].is_null());
    let (_, _, got) = sim.get(&format!("/crm/v3/objects/contacts/{}?properties=order,email", bare.id)).await;
    assert!(!got["properties"].as_object().unwrap().contains_key("order"), "{got}");
}

#[tokio::test]
async fn search_default_properties_are_hubspots_and_cursor_differs_by_type() {
    let sim = Sim::small().await;
    let keys = |page: &Value| -> BTreeSet<String> {
        page["results"][0]["properties"].as_object().unwrap().keys().cloned().collect()
    };
    let contacts = sim.search("contacts", &json!({})).await;
    let want: BTreeSet<String> =
        ["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"].map(String::from).into();
    assert_eq!(keys(&contacts), want);
    let companies = sim.search("companies", &json!({})).await;
    let want: BTreeSet<String> =
        ["name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"].map(String::from).into();
    assert_eq!(keys(&companies), want);

    let truth = sim.truth("contacts,companies,deals,tickets,cars").await;
    for (t, cursor) in [
        ("contacts", "lastmodifieddate"),
        ("companies", "hs_lastmodifieddate"),
        ("deals", "hs_lastmodifieddate"),
        ("tickets", "hs_lastmodifieddate"),
        ("cars", "hs_lastmodifieddate"),
    ] {
        assert_eq!(truth["objects"][t]["cursorProperty"], cursor, "{t}");
        let records = truth_records(&sim, t).await;
        let mut times: Vec<i64> = records.iter().map(|r| r.updated_ms).collect();
        times.sort_unstable();
        let pivot = times[times.len() / 2];
        let want = expected(&records, |r| r.updated_ms > pivot);
        let got = sim.search_ids(t, &one_group(vec![filter(cursor, "GT", pivot.to_string())])).await;
        assert_eq!(got, want, "{t} filters on {cursor}");
        let page = sim.search(t, &json!({})).await;
        assert!(page["results"][0]["properties"][cursor].is_string(), "{t} returns {cursor}");
    }
}

#[tokio::test]
async fn search_index_lag_hides_update_until_clock_passes_it() {
    let sim = Sim::small().await;
    let id = *sim.truth_ids("contacts").await.iter().nth(7).unwrap();
    sim.admin_ok(Method::PUT, "/_sim/index", Some(&json!({ "lagMs": 60_000 }))).await;
    sim.admin_ok(
        Method::PATCH,
        &format!("/_sim/objects/contacts/{id}"),
        Some(&json!({ "properties": { "firstname": "Lagged" } })),
    )
    .await;
    let by_name = one_group(vec![filter("firstname", "EQ", "Lagged")]);
    assert_eq!(sim.search("contacts", &by_name).await["total"], 0, "search has not seen it yet");
    let by_id = one_group(vec![filter("hs_object_id", "EQ", id.to_string())]);
    let stale = sim.search("contacts", &by_id).await;
    assert_ne!(stale["results"][0]["properties"]["firstname"], "Lagged");
    let (status, _, got) = sim.get(&format!("/crm/v3/objects/contacts/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["properties"]["firstname"], "Lagged", "GET reads the record itself");

    sim.admin_ok(Method::POST, "/_sim/clock", Some(&json!({ "advanceMs": 61_000 }))).await;
    let found = sim.search("contacts", &by_name).await;
    assert_eq!(found["total"], 1);
    assert_eq!(id_of(&found["results"][0]), id);
}

#[tokio::test]
async fn search_never_returns_archived_records() {
    let sim = Sim::small().await;
    let ids: Vec<u64> = sim.truth_ids("contacts").await.into_iter().collect();
    let (by_admin, by_api) = (ids[3], ids[4]);
    sim.admin_ok(Method::POST, &format!("/_sim/objects/contacts/{by_admin}/archive"), None).await;
    let (status, _, _) = sim.delete(&format!("/crm/v3/objects/contacts/{by_api}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for id in [by_admin, by_api] {
        let hit = sim.search("contacts", &one_group(vec![filter("hs_object_id", "EQ", id.to_string())])).await;
        assert_eq!(hit["total"], 0, "archived {id} is not searchable");
    }
    let all = sim.search_ids("contacts", &json!({})).await;
    assert_eq!(all.len(), ids.len() - 2);
    assert!(!all.contains(&by_admin) && !all.contains(&by_api));
}

#[tokio::test]
async fn search_bulk_update_millisecond_is_shared_and_matchable_by_eq() {
    let sim = Sim::small().await;
    let records = truth_records(&sim, "contacts").await;
    let want = expected(&records, |r| r.updated_ms == BULK_UPDATE_MS);
    assert!(want.len() > 10, "many records share the bulk millisecond: {}", want.len());
    let iso_value = "2025-12-25T00:00:00.123Z";
    assert_eq!(iso(BULK_UPDATE_MS), iso_value);
    let by_iso = sim.search_ids("contacts", &one_group(vec![filter("lastmodifieddate", "EQ", iso_value)])).await;
    let by_ms = sim
        .search_ids("contacts", &one_group(vec![filter("lastmodifieddate", "EQ", BULK_UPDATE_MS.to_string())]))
        .await;
    assert_eq!(by_iso, want);
    assert_eq!(by_ms, want);
    let page = sim.search("contacts", &one_group(vec![filter("lastmodifieddate", "EQ", iso_value)])).await;
    assert_eq!(page["results"][0]["properties"]["lastmodifieddate"], iso_value);
    assert_eq!(page["results"][0]["updatedAt"], iso_value);
}

#[tokio::test]
async fn a_stale_replica_answers_the_next_searches_with_older_versions() {
    let sim = Sim::small().await;
    let id = *sim.truth_ids("contacts").await.iter().nth(3).unwrap();
    let rename = |name: &'static str| json!({ "properties": { "firstname": name } });
    let path = format!("/_sim/objects/contacts/{id}");
    let v1 = sim.admin_ok(Method::PATCH, &path, Some(&rename("Older"))).await;
    assert_eq!(sim.admin(Method::PUT, "/_sim/index/replica", Some(&json!({ "reads": 1 }))).await.0, 400, "none taken");
    sim.admin_ok(Method::POST, "/_sim/index/replica", None).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let v2 = sim.admin_ok(Method::PATCH, &path, Some(&rename("Newer"))).await;
    assert!(v2["updatedAtMs"].as_i64() > v1["updatedAtMs"].as_i64());
    let by_id = one_group(vec![filter("hs_object_id", "EQ", id.to_string())]);
    let name = |page: &Value| page["results"][0]["properties"]["firstname"].clone();
    assert_eq!(name(&sim.search("contacts", &by_id).await), "Newer");

    sim.admin_ok(Method::PUT, "/_sim/index/replica", Some(&json!({ "reads": 2 }))).await;
    let stale = sim.search("contacts", &by_id).await;
    assert_eq!(name(&stale), "Older", "the replica serves the version it holds");
    assert_eq!(stale["results"][0]["properties"]["lastmodifieddate"], v1["updatedAt"]);
    // The replica is consistent with itself: it filters on the versions it holds.
    let since_newer = one_group(vec![filter("lastmodifieddate", "GTE", v2["updatedAtMs"].to_string())]);
    assert_eq!(sim.search("contacts", &since_newer).await["total"], 0);
    assert_eq!(sim.admin_ok(Method::GET, "/_sim/index/replica", None).await["readsLeft"], 0);
    assert_eq!(name(&sim.search("contacts", &by_id).await), "Newer", "reads spent: the index again");
    sim.admin_ok(Method::DELETE, "/_sim/index/replica", None).await;
    assert_eq!(sim.admin_ok(Method::GET, "/_sim/index/replica", None).await["taken"], false);
}
