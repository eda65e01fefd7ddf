//! The object-type catalogue over HTTP: the five original types generate exactly as before the
//! catalogue existed (a pinned digest), and the catalogue's further types are served as HubSpot
//! serves them.

use std::collections::{BTreeMap, BTreeSet};

use hsync_sim::{PortalSpec, SimConfig, TokenGrant, DEFAULT_TOKEN};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{category, filter, id_of, one_group, small_portal, unique_ids, unlimited, Sim};

/// The original five types, whose generated records, values and edges must never change for a
/// given seed: tests and benchmarks rely on their meaning.
const ORIGINAL_TYPES: [&str; 5] = ["contacts", "companies", "deals", "tickets", "cars"];

/// The digest, record count and edge count of [`original_digest`] for `small_portal()`.
const PINNED_DIGEST: u64 = 0xaba3_0e9c_834b_e18e;
const PINNED_RECORDS: usize = 520;
const PINNED_EDGES: usize = 1124;

/// FNV-1a over bytes: stable across platforms and releases, unlike `DefaultHasher`.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// A digest of the original types' ground truth: records with timestamps and values, the edges
/// between them (sorted, since truth lists them in hash order) and their pipelines.
async fn original_digest(sim: &Sim) -> (u64, usize, usize) {
    let truth = sim.truth(&ORIGINAL_TYPES.join(",")).await;
    let mut text = String::new();
    let mut records = 0;
    for t in ORIGINAL_TYPES {
        let mut live = truth["objects"][t]["live"].as_array().expect("live records").clone();
        // Values that came later, with the realistic catalogue: the rollups, the searchable
        // phone numbers and the sensitive property. The values generated before stay exactly as
        // they were.
        for rec in &mut live {
            let props = rec["properties"].as_object_mut().expect("properties");
            props.retain(|name, _| {
                name != "health_notes"
                    && !hsync_sim::catalogue::ROLLUPS.iter().any(|r| r.0 == t && r.1 == name)
                    && !hsync_sim::catalogue::SEARCHABLE_PHONES.iter().any(|r| r.0 == t && r.1 == name)
            });
        }
        records += live.len();
        text.push_str(t);
        text.push_str(&serde_json::to_string(&live).expect("json"));
    }
    let mut edges: Vec<String> = truth["associations"]
        .as_array()
        .expect("associations")
        .iter()
        .filter(|e| ORIGINAL_TYPES.iter().any(|t| e["toType"] == *t))
        .map(|e| serde_json::to_string(e).expect("json"))
        .collect();
    edges.sort_unstable();
    for e in &edges {
        text.push_str(e);
    }
    for t in ["deals", "tickets"] {
        text.push_str(&serde_json::to_string(&truth["pipelines"][t]).expect("json"));
    }
    (fnv(text.as_bytes()), records, edges.len())
}

#[tokio::test]
async fn catalogue_original_five_types_generate_exactly_as_before() {
    let sim = Sim::start(unlimited(small_portal())).await;
    let (digest, records, edges) = original_digest(&sim).await;
    // Computed on the generator before the catalogue existed (commit 939a15c), with the same
    // spec then holding no further types.
    assert_eq!((digest, records, edges), (PINNED_DIGEST, PINNED_RECORDS, PINNED_EDGES), "digest {digest:#x}");
}

fn results(body: &Value) -> &Vec<Value> {
    body["results"].as_array().expect("results array")
}

/// Association targets per `from` id according to ground truth, with their type ids.
async fn truth_edges(sim: &Sim, from: &str, to: &str) -> BTreeMap<u64, BTreeMap<u64, BTreeSet<u64>>> {
    let truth = sim.truth(from).await;
    let mut out: BTreeMap<u64, BTreeMap<u64, BTreeSet<u64>>> = BTreeMap::new();
    for e in truth["associations"].as_array().expect("associations") {
        if e["fromType"] == from && e["toType"] == to {
            let from_id: u64 = e["fromId"].as_str().unwrap().parse().unwrap();
            let to_id: u64 = e["toId"].as_str().unwrap().parse().unwrap();
            let types = e["types"].as_array().unwrap().iter().map(|t| t["typeId"].as_u64().unwrap());
            out.entry(from_id).or_default().entry(to_id).or_default().extend(types);
        }
    }
    out
}

/// Lists, searches, batch-reads, archives and lists the archive of type `t` over HTTP, checking
/// each against ground truth.
async fn serves_records(sim: &Sim, t: &str, props: &[&str]) {
    let truth = sim.truth_ids(t).await;
    assert!(truth.len() > 20, "{t}: the default portal has records ({})", truth.len());
    let listed = sim.list_all(&format!("/crm/v3/objects/{t}?limit=100")).await;
    assert_eq!(unique_ids(&listed), truth, "{t}: list reaches every record");

    let searched =
        sim.search_ids(t, &json!({ "sorts": [{ "propertyName": "hs_object_id", "direction": "ASCENDING" }] })).await;
    assert_eq!(searched, truth, "{t}: search reaches every record");

    let ids: Vec<u64> = truth.iter().copied().take(5).collect();
    let inputs: Vec<Value> = ids.iter().map(|id| json!({ "id": id.to_string() })).collect();
    let (status, _, batch) =
        sim.post(&format!("/crm/v3/objects/{t}/batch/read"), &json!({ "inputs": inputs, "properties": props })).await;
    assert_eq!(status, StatusCode::OK, "{t}: batch read {batch}");
    let got: BTreeSet<u64> = results(&batch).iter().map(id_of).collect();
    assert_eq!(got, ids.iter().copied().collect());
    let with_values = results(&batch)
        .iter()
        .filter(|r| props.iter().all(|p| r["properties"].get(*p).is_some_and(|v| !v.is_null())))
        .count();
    assert!(with_values > 0, "{t}: some record has every requested property: {batch}");

    let gone = ids[0];
    let (status, _, _) = sim.delete(&format!("/crm/v3/objects/{t}/{gone}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let archived = sim.list_all(&format!("/crm/v3/objects/{t}?archived=true")).await;
    assert_eq!(unique_ids(&archived), BTreeSet::from([gone]), "{t}: the archive lists the archived record");
    let (status, _, batch) = sim
        .post(
            &format!("/crm/v3/objects/{t}/batch/read?archived=true"),
            &json!({ "inputs": [{ "id": gone.to_string() }] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(results(&batch).len(), 1);
}

/// Associations v4 batch read of `from` → `to` matches ground truth and carries `type_id`;
/// the labels endpoints list the pair's type ids in both directions.
async fn serves_associations(sim: &Sim, from: &str, to: &str, type_id: u64, inverse: u64) {
    // Archived records keep their edges but association reads answer for live ones only.
    let live = sim.truth_ids(from).await;
    let mut edges = truth_edges(sim, from, to).await;
    edges.retain(|id, _| live.contains(id));
    assert!(!edges.is_empty(), "{from} -> {to}: generated edges");
    let inputs: Vec<Value> = edges.keys().take(50).map(|id| json!({ "id": id.to_string() })).collect();
    let (status, _, body) =
        sim.post(&format!("/crm/v4/associations/{from}/{to}/batch/read"), &json!({ "inputs": inputs })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for r in results(&body) {
        let from_id: u64 = r["from"]["id"].as_str().unwrap().parse().unwrap();
        let served: BTreeMap<u64, BTreeSet<u64>> = r["to"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let types = t["associationTypes"].as_array().unwrap().iter().map(|a| a["typeId"].as_u64().unwrap());
                (t["toObjectId"].as_u64().unwrap(), types.collect())
            })
            .collect();
        assert_eq!(served, edges[&from_id], "{from} {from_id} -> {to}");
        assert!(served.values().all(|types| types.contains(&type_id)), "{from} -> {to} carries {type_id}");
    }
    for (a, b, id) in [(from, to, type_id), (to, from, inverse)] {
        let (status, _, labels) = sim.get(&format!("/crm/v4/associations/{a}/{b}/labels")).await;
        assert_eq!(status, StatusCode::OK);
        let unlabeled: Vec<&Value> = results(&labels).iter().filter(|l| l["label"].is_null()).collect();
        assert_eq!(unlabeled.len(), 1, "{a} -> {b}: {labels}");
        assert_eq!(unlabeled[0]["typeId"], id, "{a} -> {b}");
        assert_eq!(unlabeled[0]["category"], "HUBSPOT_DEFINED");
    }
}

#[tokio::test]
async fn catalogue_calls_are_served_like_hubspot_with_contact_scopes() {
    let sim = Sim::small().await;
    serves_records(&sim, "calls", &["hs_timestamp", "hs_call_direction", "hs_call_duration"]).await;
    serves_associations(&sim, "calls", "contacts", 194, 193).await;
    serves_associations(&sim, "calls", "deals", 206, 205).await;
    serves_associations(&sim, "notes", "tickets", 228, 227).await;

    let outbound = sim.search_ids("calls", &one_group(vec![filter("hs_call_direction", "EQ", "OUTBOUND")])).await;
    let truth = sim.truth("calls").await;
    let expected: BTreeSet<u64> = truth["objects"]["calls"]["live"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["properties"]["hs_call_direction"] == "OUTBOUND")
        .map(id_of)
        .collect();
    assert_eq!(outbound, expected, "search filters calls on their properties");

    // The type id works as the path name.
    let (status, _, page) = sim.get("/crm/v3/objects/0-48?limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(results(&page).len(), 1);
    // Engagements have neither pipelines nor merge.
    let (status, _, body) = sim.get("/crm/v3/pipelines/calls").await;
    assert_eq!((status, category(&body)), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"));
    let ids: Vec<u64> = truth["objects"]["calls"]["live"].as_array().unwrap().iter().take(2).map(id_of).collect();
    let merge = json!({ "primaryObjectId": ids[0].to_string(), "objectIdToMerge": ids[1].to_string() });
    let (status, _, _) = sim.post("/crm/v3/objects/calls/merge", &merge).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    // HubSpot serves deal splits outside the objects API.
    let (status, _, body) = sim.get("/crm/v3/objects/deal_splits").await;
    assert_eq!((status, category(&body)), (StatusCode::BAD_REQUEST, "VALIDATION_ERROR"));
}

#[tokio::test]
async fn catalogue_line_items_are_served_and_refer_to_products_and_deals() {
    let sim = Sim::small().await;
    serves_records(&sim, "line_items", &["name", "quantity", "price", "amount", "hs_product_id"]).await;
    serves_associations(&sim, "line_items", "deals", 20, 19).await;
    serves_associations(&sim, "quotes", "line_items", 67, 68).await;
    serves_associations(&sim, "orders", "contacts", 507, 508).await;

    let products = sim.truth_ids("products").await;
    let truth = sim.truth("line_items").await;
    let mut checked = 0;
    for r in truth["objects"]["line_items"]["live"].as_array().unwrap() {
        let props = &r["properties"];
        if let Some(product) = props["hs_product_id"].as_str() {
            assert!(products.contains(&product.parse().unwrap()), "hs_product_id {product} is a product");
        }
        let number = |p: &str| props[p].as_str().and_then(|v| v.parse::<f64>().ok());
        if let (Some(q), Some(price), Some(amount)) = (number("quantity"), number("price"), number("amount")) {
            assert!((q * price - amount).abs() <= 0.01 * amount.abs().max(1.0), "amount is quantity × price: {props}");
            checked += 1;
        }
    }
    assert!(checked > 10, "amounts checked: {checked}");
    // Every line item belongs to a deal.
    let edges = truth_edges(&sim, "line_items", "deals").await;
    let live: BTreeSet<u64> = truth["objects"]["line_items"]["live"].as_array().unwrap().iter().map(id_of).collect();
    assert!(live.iter().all(|id| edges.contains_key(id)), "every live line item has a deal");
}

#[tokio::test]
async fn catalogue_types_with_pipelines_serve_them_and_their_records_use_them() {
    let sim = Sim::small().await;
    for (t, stage_property) in [("leads", "hs_pipeline_stage"), ("orders", "hs_pipeline_stage")] {
        let (status, _, body) = sim.get(&format!("/crm/v3/pipelines/{t}")).await;
        assert_eq!(status, StatusCode::OK, "{t}: {body}");
        let pipelines = results(&body);
        assert_eq!(pipelines.len(), 1);
        let pipeline = pipelines[0]["id"].as_str().unwrap().to_owned();
        let stages: BTreeSet<String> =
            pipelines[0]["stages"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
        assert!(stages.len() >= 3);
        let (status, _, listed) = sim.get(&format!("/crm/v3/pipelines/{t}/{pipeline}/stages")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(results(&listed).len(), stages.len());

        let truth = sim.truth(t).await;
        for r in truth["objects"][t]["live"].as_array().unwrap() {
            if let Some(stage) = r["properties"][stage_property].as_str() {
                assert!(stages.contains(stage), "{t}: stage {stage} is one of {stages:?}");
                if let Some(p) = r["properties"]["hs_pipeline"].as_str() {
                    assert_eq!(p, pipeline, "{t}: the record's pipeline");
                }
            }
        }
    }
    serves_records(&sim, "leads", &["hs_lead_name", "hs_pipeline_stage"]).await;
    // Leads link to contacts, some through the primary label.
    let edges = truth_edges(&sim, "leads", "contacts").await;
    assert!(edges.values().flat_map(|t| t.values()).any(|types| types.contains(&578)), "some primary contact");
    assert!(edges.values().flat_map(|t| t.values()).all(|types| types.contains(&608)));
}

#[tokio::test]
async fn catalogue_types_require_their_documented_read_scopes() {
    let grants = [
        ("contacts-only", vec!["crm.objects.contacts.read"]),
        ("e-commerce", vec!["e-commerce"]),
        ("leads", vec!["crm.objects.leads.read"]),
    ];
    let mut tokens = vec![TokenGrant { token: DEFAULT_TOKEN.to_owned(), scopes: None }];
    tokens.extend(grants.iter().map(|(token, scopes)| TokenGrant {
        token: (*token).to_owned(),
        scopes: Some(scopes.iter().map(|s| (*s).to_owned()).collect()),
    }));
    let sim = Sim::start(SimConfig { tokens, ..unlimited(small_portal()) }).await;
    let cases = [
        ("contacts-only", "/crm/v3/objects/calls", StatusCode::OK),
        ("contacts-only", "/crm/v3/objects/notes", StatusCode::OK),
        ("contacts-only", "/crm/v3/objects/line_items", StatusCode::FORBIDDEN),
        ("contacts-only", "/crm/v3/objects/leads", StatusCode::FORBIDDEN),
        ("contacts-only", "/crm/v3/pipelines/leads", StatusCode::FORBIDDEN),
        ("e-commerce", "/crm/v3/objects/line_items", StatusCode::OK),
        ("e-commerce", "/crm/v3/objects/products", StatusCode::OK),
        ("e-commerce", "/crm/v3/objects/taxes", StatusCode::FORBIDDEN),
        ("e-commerce", "/crm/v3/objects/orders", StatusCode::FORBIDDEN),
        ("e-commerce", "/crm/v3/objects/calls", StatusCode::FORBIDDEN),
        ("leads", "/crm/v3/objects/leads", StatusCode::OK),
        ("leads", "/crm/v3/pipelines/leads", StatusCode::OK),
    ];
    for (token, path, expected) in cases {
        let (status, _, body) = sim.call_as(Some(token), Method::GET, path, None).await;
        assert_eq!(status, expected, "{token} GET {path}: {body}");
        if expected == StatusCode::FORBIDDEN {
            assert_eq!(category(&body), "MISSING_SCOPES");
            assert!(body["errors"][0]["context"]["requiredGranularScopes"].as_array().is_some_and(|s| !s.is_empty()));
        }
    }
    let (status, _, body) =
        sim.call_as(Some("contacts-only"), Method::POST, "/crm/v3/objects/line_items/search", Some(&json!({}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let required = &body["errors"][0]["context"]["requiredGranularScopes"];
    assert_eq!(required, &json!(["crm.objects.line_items.read", "e-commerce"]));
}

#[tokio::test]
async fn catalogue_types_generate_deterministically_per_seed() {
    let spec = || PortalSpec { objects: PortalSpec::catalogue_counts(200), ..small_portal() };
    let a = Sim::start(unlimited(spec())).await;
    let b = Sim::start(unlimited(spec())).await;
    let c = Sim::start(unlimited(PortalSpec { seed: 7, ..spec() })).await;
    let types = "calls,emails,meetings,notes,tasks,communications,postal_mail,products,line_items,quotes,orders,carts,invoices,commerce_payments,subscriptions,discounts,fees,taxes,leads,goal_targets,feedback_submissions,listings,appointments,courses,services,users";
    let digest = |truth: Value| {
        let mut edges: Vec<String> = truth["associations"].as_array().unwrap().iter().map(|e| e.to_string()).collect();
        edges.sort_unstable();
        let objects: BTreeMap<String, Value> =
            truth["objects"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v["live"].clone())).collect();
        (objects, edges)
    };
    let (da, db, dc) = (digest(a.truth(types).await), digest(b.truth(types).await), digest(c.truth(types).await));
    assert_eq!(da.0.len(), types.split(',').count(), "every catalogue type is served");
    for (t, live) in &da.0 {
        assert!(!live.as_array().unwrap().is_empty(), "{t} has records");
    }
    assert!(da == db, "the same seed generates the same records and edges");
    assert!(da.0 != dc.0 && da.1 != dc.1, "another seed generates other ones");

    let empty = Sim::start(unlimited(PortalSpec { objects: BTreeMap::new(), ..small_portal() })).await;
    assert!(empty.truth_ids("calls").await.is_empty(), "a type left out of the spec has no records");
    let (status, _, _) = empty.get("/crm/v3/objects/calls").await;
    assert_eq!(status, StatusCode::OK, "but is still served");
}
