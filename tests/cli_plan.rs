//! `hsync plan` as a real subprocess against a rate-limited simulator with known record
//! counts: every number follows from the portal's size, the page sizes, the association
//! pairs the simulator defines, the learned ten-second limit and the configured daily budget,
//! computed here independently of the plan.

use std::time::Duration;

use hsync_sim::{LimitSettings, PortalSpec};
use serde_json::{json, Value};

use crate::support::cli::{explain, hsync, stdout, write_config};
use crate::support::{limited, Sim};

const OBJECTS: [&str; 3] = ["contacts", "companies", "cars"];
const DAILY_BUDGET: u64 = 25;

/// `(window + margin) / max`, rounded up to the nanosecond, in seconds: the client's spacing.
fn spacing(max: u64, window: Duration, margin: Duration) -> f64 {
    Duration::from_nanos(u64::try_from((window + margin).as_nanos().div_ceil(u128::from(max))).unwrap()).as_secs_f64()
}

fn object<'a>(plan: &'a Value, name: &str) -> &'a Value {
    plan["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["object"] == name)
        .unwrap_or_else(|| panic!("{name} in {plan}"))
}

#[tokio::test]
async fn plan_numbers_follow_from_the_portal_size() {
    let portal =
        PortalSpec { contacts: 2_450, companies: 130, cars: 70, deals: 20, tickets: 10, ..PortalSpec::default() };
    let sim = Sim::start(limited(portal.clone(), LimitSettings::default())).await;
    // Each run gets its own warehouse: the budget ledger in it carries a day's spending over.
    let config_in = |dir: &std::path::Path| {
        let sections = format!(
            "[limits]\ndaily_budget = {DAILY_BUDGET}\n\n[destination]\nurl = \"sqlite://{}\"\n\n[sync]\nobjects = [\"contacts\", \"companies\", \"cars\"]\n",
            dir.join("w.db").display()
        );
        write_config(dir, &sim.handle.base_url(), &sections)
    };
    let (json_dir, table_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let out = hsync(&config_in(json_dir.path()), &["plan", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let plan: Value =
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", explain(&out)));

    // The pairs the simulator defines, asked of its labels endpoint, canonical by config order.
    let mut pairs = Vec::new();
    for (i, from) in OBJECTS.iter().enumerate() {
        for to in &OBJECTS[i..] {
            let (status, _, body) = sim.get(&format!("/crm/v4/associations/{from}/{to}/labels")).await;
            if status.is_success() && body["results"].as_array().is_some_and(|r| !r.is_empty()) {
                pairs.push((*from, *to));
            }
        }
    }
    let shown: Vec<(String, String)> = plan["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["from"].as_str().unwrap().to_owned(), p["to"].as_str().unwrap().to_owned()))
        .collect();
    let expected_pairs: Vec<(String, String)> = pairs.iter().map(|(f, t)| ((*f).to_owned(), (*t).to_owned())).collect();
    assert_eq!(shown, expected_pairs);
    assert!(!pairs.is_empty(), "the portal has associations between these objects");

    let margins = hsync::hubspot::RateSettings::default();
    let search = spacing(5, Duration::from_secs(1), margins.search_margin);
    let general = spacing(190, Duration::from_secs(10), margins.general_margin);
    let (mut searches, mut others) = (0, 0);
    for (name, size) in [("contacts", portal.contacts), ("companies", portal.companies), ("cars", portal.cars)] {
        let live = sim.truth_ids(name).await.len() as u64;
        assert_eq!(live, size, "the generated portal holds exactly the records asked for");
        let o = object(&plan, name);
        assert_eq!(o["records"], live, "{name}: records from the search total");
        let backfill = live.div_ceil(200).max(1);
        assert_eq!(o["backfill_searches"], backfill, "{name}: pages of 200, the last one saying so");
        let from_here = pairs.iter().filter(|(f, _)| *f == name).count() as u64;
        let reads = from_here * live.div_ceil(1_000);
        assert_eq!(o["association_reads"], reads, "{name}: 1,000 records per read per pair");
        assert_eq!(o["search_calls"], backfill);
        assert_eq!(o["general_calls"], reads + 1, "{name}: association reads and one property read");
        assert_eq!(o["calls"], backfill + reads + 1);
        let seconds = backfill as f64 * search + (reads + 1) as f64 * general;
        assert!((o["seconds"].as_f64().unwrap() - seconds).abs() < 1e-6, "{name}: {} != {seconds}", o["seconds"]);
        searches += backfill;
        others += reads + 1;
    }
    let candidates = (OBJECTS.len() * (OBJECTS.len() + 1) / 2) as u64;
    assert_eq!(plan["setup"]["association_label_reads"], candidates);
    assert_eq!(plan["setup"]["schema_reads"], 1, "cars is a custom object");
    others += candidates + 1;
    let calls = searches + others;
    assert_eq!(plan["totals"]["records"], portal.contacts + portal.companies + portal.cars);
    assert_eq!(plan["totals"]["search_calls"], searches);
    assert_eq!(plan["totals"]["general_calls"], others);
    assert_eq!(plan["totals"]["calls"], calls);
    let seconds = searches as f64 * search + others as f64 * general;
    assert!((plan["totals"]["seconds"].as_f64().unwrap() - seconds).abs() < 1e-6);

    assert_eq!(plan["limits"]["general_max"], 190, "learned from the simulator's headers");
    assert_eq!(plan["limits"]["general_source"], "learned");
    assert_eq!(plan["limits"]["searches_per_second"], 5);

    // The plan's own calls: the custom object schemas, one property read (for whether the
    // names fit a list URL) and one count per object, the labels.
    let made = 1 + 2 * OBJECTS.len() as u64 + candidates;
    assert_eq!(plan["calls_made"], made);
    let budget = &plan["budget"];
    assert_eq!(budget["allowed_per_day"], DAILY_BUDGET);
    assert_eq!(budget["used_today"], made);
    assert_eq!(budget["remaining_today"], DAILY_BUDGET - made);
    assert_eq!(budget["days_needed"], calls.div_ceil(DAILY_BUDGET));
    assert!(calls.div_ceil(DAILY_BUDGET) > 1, "the budget is small enough to take days: {calls} calls");
    assert_eq!(budget["fits_in_remaining_today"], calls <= DAILY_BUDGET - made);

    let table = hsync(&config_in(table_dir.path()), &["plan"]).await;
    assert_eq!(table.status.code(), Some(0), "{}", explain(&table));
    let text = stdout(&table);
    let total = text.lines().find(|l| l.starts_with("total")).unwrap_or_else(|| panic!("{}", explain(&table)));
    assert!(total.split_whitespace().any(|w| w == calls.to_string()), "the table's total is {calls}: {total}");
    assert!(text.contains(&format!("{} days", calls.div_ceil(DAILY_BUDGET))), "{}", explain(&table));
    assert!(text.contains("assumptions:"), "{}", explain(&table));
}

/// A type HubSpot serves no search for (contracts) beside a searchable engagement type (calls):
/// the plan says which path each takes, counts the list path's calls from the ids it lists,
/// and shows each pair's sweep cost at the interval configured for the object it is read from.
#[tokio::test]
async fn plan_shows_each_types_read_path_and_the_sweep_cost_per_object() {
    let contacts = 230;
    let objects = [("calls", 420_u64), ("contracts", 270)].map(|(n, c)| (n.to_owned(), c)).into_iter().collect();
    let portal = PortalSpec { contacts, companies: 5, deals: 5, tickets: 0, cars: 0, objects, ..PortalSpec::default() };
    let sim = Sim::start(crate::support::unlimited(portal)).await;
    let dir = tempfile::tempdir().unwrap();
    let week = 7 * 86_400;
    let sections = format!(
        "[destination]\nurl = \"sqlite://{}\"\n\n[sync]\nobjects = [\"contacts\", \"calls\", \"contracts\"]\n\n\
         [sync.history]\ncontacts = [\"default\", \"firstname\"]\n\n\
         [daemon.association_sweep_interval_by_object]\ncontacts = {week}\n",
        dir.path().join("w.db").display()
    );
    let config = write_config(dir.path(), &sim.handle.base_url(), &sections);
    let out = hsync(&config, &["plan", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let plan: Value = serde_json::from_str(&stdout(&out)).unwrap();

    let calls = object(&plan, "calls");
    let live_calls = sim.truth_ids("calls").await.len() as u64;
    assert_eq!((calls["path"].as_str(), calls["records"].as_u64()), (Some("search"), Some(live_calls)));
    assert_eq!(calls["backfill_searches"], live_calls.div_ceil(200));
    assert_eq!((calls["backfill_list_calls"].as_u64(), calls["cdc_calls_per_pass"].as_u64()), (Some(0), None));

    let contracts = object(&plan, "contracts");
    let live_contracts = sim.truth_ids("contracts").await.len() as u64;
    assert_eq!((contracts["path"].as_str(), contracts["records"].as_u64()), (Some("list"), Some(live_contracts)));
    assert_eq!(contracts["backfill_searches"], 0, "no search exists for contracts");
    let (_, _, defined) = sim.get("/crm/v3/properties/contracts").await;
    let names: Vec<String> =
        defined["results"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_owned()).collect();
    let pages = live_contracts.div_ceil(100);
    let per_page = hsync::stream::listing::calls_per_page(&names);
    assert_eq!(contracts["backfill_list_calls"], pages * per_page, "{per_page} calls per 100 records");
    assert_eq!(contracts["cdc_calls_per_pass"], pages, "each CDC pass lists every contract");
    assert_eq!(contracts["search_calls"], 0);

    // Property history: on for contacts (its first load counted, 50 records a call), and
    // no default to offer for calls or contracts.
    let contacts_plan = object(&plan, "contacts");
    let history = &contacts_plan["history"];
    assert_eq!(history["on"], true, "{history}");
    assert_eq!(history["properties"], json!(["lifecyclestage", "hs_lead_status", "hubspot_owner_id", "firstname"]));
    let live_contacts = sim.truth_ids("contacts").await.len() as u64;
    assert_eq!(history["first_load_calls"], live_contacts.div_ceil(50));
    assert_eq!(history["calls_per_1000_changes"], 20);
    let other = contacts_plan["general_calls"].as_u64().unwrap() - live_contacts.div_ceil(50);
    assert_eq!(other, 1 + contacts_plan["association_reads"].as_u64().unwrap(), "property read, sweeps, history");
    assert!(calls["history"].is_null() && contracts["history"].is_null(), "no default history for them");

    let pairs = plan["pairs"].as_array().unwrap();
    let from_contacts: Vec<&Value> = pairs.iter().filter(|p| p["from"] == "contacts").collect();
    assert!(from_contacts.iter().any(|p| p["to"] == "calls"), "contacts to calls is swept: {plan}");
    for pair in pairs {
        let from = pair["from"].as_str().unwrap();
        let records = object(&plan, from)["records"].as_u64().unwrap();
        let reads = records.div_ceil(1_000);
        let interval = if from == "contacts" { week } else { 86_400 };
        assert_eq!(pair["sweep_reads"], reads, "{pair}");
        assert_eq!(pair["sweep_interval_secs"], interval, "{pair}");
        assert_eq!(pair["sweep_reads_per_day"], (reads * 86_400).div_ceil(interval), "{pair}");
    }

    let table = hsync(&config, &["plan"]).await;
    let text = stdout(&table);
    let row = |name: &str| text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}: {text}"));
    assert_eq!(row("contracts").split_whitespace().nth(1), Some("list"), "{text}");
    assert_eq!(row("calls").split_whitespace().nth(1), Some("search"), "{text}");
    assert!(text.contains("contracts: HubSpot serves no search for it"), "{text}");
    assert!(
        text.contains("contacts: history (sync.history) lifecyclestage, hs_lead_status, hubspot_owner_id, firstname"),
        "{text}"
    );
}
