//! The associations stream end to end: backfill, then association sweeps and polls from the
//! simulator over HTTP into real SQLite and real Postgres, every stored edge compared with the
//! simulator's ground truth (zero differences required). Associations added, removed and
//! relabelled on records whose last-modified cursor does not move are caught by the sweep
//! (removed edges tombstoned, labels and type ids kept); the incremental poll picks up the
//! edges of records CDC saw change, from either side of a pair.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hsync::destination::conformance::{EdgeRow, Inspect};
use hsync::destination::sqlite::SqliteDestination;
use hsync::destination::Destination;
use hsync::hubspot::resolve_objects;
use hsync::state::StateStore;
use hsync::state::StreamId;
use hsync::stream::associations::{self, Report, Source};
use hsync::stream::runner::Runner;
use hsync::stream::{backfill, cdc};
use hsync_sim::PortalSpec;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::support::{explain, hsync, Sim, TOKEN_VAR};

/// The configured order: each pair is stored from the object listed first.
const OBJECTS: [&str; 5] = ["contacts", "companies", "deals", "tickets", "cars"];
const SETTLE: Duration = Duration::from_secs(1);

fn portal() -> PortalSpec {
    PortalSpec {
        contacts: 1_200,
        companies: 150,
        deals: 250,
        tickets: 80,
        cars: 40,
        custom_properties: 4,
        // Small pages, so records with many associations follow their own paging tokens.
        association_page_size: 2,
        ..PortalSpec::default()
    }
}

async fn backfill_all<D: Destination, S: StateStore>(runner: &Runner<D, S>) {
    let names: Vec<String> = OBJECTS.iter().map(|s| (*s).to_owned()).collect();
    for object in resolve_objects(&runner.client, &names).await.unwrap() {
        let table = runner.prepare(&object).await.unwrap();
        assert!(
            crate::support::backfill_with(runner, &table, backfill::Mode::Fresh, backfill::Fetch::InTurn)
                .await
                .finished
        );
    }
}

async fn cdc_all<D: Destination, S: StateStore>(runner: &Runner<D, S>) -> Vec<String> {
    let names: Vec<String> = OBJECTS.iter().map(|s| (*s).to_owned()).collect();
    let never = CancellationToken::new();
    let mut changed = Vec::new();
    for object in resolve_objects(&runner.client, &names).await.unwrap() {
        let table = runner.prepare(&object).await.unwrap();
        let report = cdc::pass(runner, &table, SETTLE, backfill::DEFAULT_CONCURRENCY, &never).await.unwrap();
        changed.extend(report.changed_ids.into_iter().map(|id| format!("{} {id}", object.table)));
    }
    changed
}

async fn sources<D: Destination, S: StateStore>(runner: &Runner<D, S>) -> Vec<Source> {
    let names: Vec<String> = OBJECTS.iter().map(|s| (*s).to_owned()).collect();
    let objects = resolve_objects(&runner.client, &names).await.unwrap();
    associations::sources(&associations::defined_pairs(&runner.client, &objects).await.unwrap())
}

/// Runs `pass` (an incremental poll, or a sweep) over every source, re-reading the calculated
/// properties around the edges as the daemon does; returns the reports.
async fn each_source<D: Destination, S: StateStore>(runner: &Runner<D, S>, sweep: bool) -> Vec<Report> {
    let never = CancellationToken::new();
    let names: Vec<String> = OBJECTS.iter().map(|s| (*s).to_owned()).collect();
    let mut tables = Vec::new();
    for object in resolve_objects(&runner.client, &names).await.unwrap() {
        tables.push(runner.prepare(&object).await.unwrap());
    }
    let around = associations::Around { tables: &tables, every_batch: false };
    let mut reports = Vec::new();
    for source in sources(runner).await {
        let report = if sweep {
            associations::sweep_all(runner, &source, SETTLE, around, &never).await.unwrap()
        } else {
            associations::poll_changes(runner, &source, SETTLE, around, &never).await.unwrap()
        };
        assert!(report.finished, "{report:?}");
        reports.push(report);
    }
    reports
}

fn records_read(reports: &[Report]) -> u64 {
    reports.iter().flat_map(|r| &r.pairs).map(|p| p.records).sum()
}

/// Where `object` is in the configured order `objects`.
fn rank_in(objects: &[&str], object: &str) -> Option<usize> {
    objects.iter().position(|o| *o == object)
}

pub(crate) type EdgeKey = (String, i64, String, i64, i32);

fn key(row: &EdgeRow) -> EdgeKey {
    (row.from_type.clone(), row.from_id, row.to_type.clone(), row.to_id, row.type_id)
}

fn id(v: &Value) -> i64 {
    v.as_str().unwrap().parse().unwrap()
}

/// The edges HubSpot holds, in the stored (canonical) direction, from live records: key to
/// (category, label).
pub(crate) async fn truth_edges(sim: &Sim) -> BTreeMap<EdgeKey, (String, Option<String>)> {
    truth_edges_in(sim, &OBJECTS).await
}

/// [`truth_edges`] among `objects`, in that configured order.
pub(crate) async fn truth_edges_in(sim: &Sim, objects: &[&str]) -> BTreeMap<EdgeKey, (String, Option<String>)> {
    let truth = sim.admin(Method::GET, "/_sim/truth?values=false", None).await.1;
    let live: BTreeSet<(String, i64)> = objects
        .iter()
        .flat_map(|o| truth["objects"][o]["live"].as_array().unwrap().iter().map(|r| ((*o).to_owned(), id(&r["id"]))))
        .collect();
    let mut out = BTreeMap::new();
    for edge in truth["associations"].as_array().unwrap() {
        let (from, to) = (edge["fromType"].as_str().unwrap(), edge["toType"].as_str().unwrap());
        let from_id = id(&edge["fromId"]);
        let (Some(from_rank), Some(to_rank)) = (rank_in(objects, from), rank_in(objects, to)) else { continue };
        if from_rank > to_rank || !live.contains(&(from.to_owned(), from_id)) {
            continue;
        }
        for t in edge["types"].as_array().unwrap() {
            let type_id = i32::try_from(t["typeId"].as_i64().unwrap()).unwrap();
            out.insert(
                (from.to_owned(), from_id, to.to_owned(), id(&edge["toId"]), type_id),
                (t["category"].as_str().unwrap().to_owned(), t["label"].as_str().map(str::to_owned)),
            );
        }
    }
    out
}

/// Every difference between the stored edges and HubSpot's, as readable lines.
async fn edge_differences<D: Inspect>(dest: &D, sim: &Sim) -> Vec<String> {
    edge_differences_in(dest, sim, &OBJECTS).await
}

/// [`edge_differences`] among `objects`, in that configured order.
pub(crate) async fn edge_differences_in<D: Inspect>(dest: &D, sim: &Sim, objects: &[&str]) -> Vec<String> {
    let expected = truth_edges_in(sim, objects).await;
    let rows = dest.read_edges().await.unwrap();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for row in &rows {
        if !seen.insert(key(row)) {
            out.push(format!("{:?}: stored twice", key(row)));
        }
        if rank_in(objects, &row.from_type) > rank_in(objects, &row.to_type) {
            out.push(format!("{:?}: stored from the non-canonical side", key(row)));
        }
    }
    let live: BTreeMap<EdgeKey, &EdgeRow> =
        rows.iter().filter(|r| r.deleted_at_ms.is_none()).map(|r| (key(r), r)).collect();
    let tombstoned: BTreeSet<EdgeKey> = rows.iter().filter(|r| r.deleted_at_ms.is_some()).map(key).collect();
    for (k, (category, label)) in &expected {
        match live.get(k) {
            None if tombstoned.contains(k) => out.push(format!("{k:?}: in HubSpot but tombstoned")),
            None => out.push(format!("{k:?}: missing")),
            Some(row) if (&row.category, &row.label) != (category, label) => {
                out.push(format!("{k:?}: expected {category} {label:?}, found {} {:?}", row.category, row.label))
            }
            Some(_) => {}
        }
    }
    for k in live.keys().filter(|k| !expected.contains_key(*k)) {
        out.push(format!("{k:?}: live in the warehouse but gone from HubSpot"));
    }
    out
}

fn assert_no_differences(diffs: &[String]) {
    assert!(
        diffs.is_empty(),
        "{} differences, first ones:\n{}",
        diffs.len(),
        diffs.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

async fn associate(sim: &Sim, method: Method, from: &str, from_id: i64, to: &str, to_id: i64, type_ids: &[u32]) {
    let body = json!({"from": from, "fromId": from_id, "to": to, "toId": to_id, "typeIds": type_ids});
    sim.admin_ok(method, "/_sim/associations", Some(&body)).await;
}

/// The last-modified times of the given records, from ground truth.
async fn cursors(sim: &Sim, records: &[(&str, i64)]) -> Vec<i64> {
    let truth = sim.admin(Method::GET, "/_sim/truth?values=false", None).await.1;
    records
        .iter()
        .map(|(object, rid)| {
            let live = truth["objects"][object]["live"].as_array().unwrap();
            let rec = live.iter().find(|r| id(&r["id"]) == *rid).unwrap_or_else(|| panic!("{object} {rid} not live"));
            rec["updatedAtMs"].as_i64().unwrap()
        })
        .collect()
}

fn stored<'a>(rows: &'a [EdgeRow], k: (&str, i64, &str, i64, i32)) -> Option<&'a EdgeRow> {
    rows.iter().find(|r| key(r) == (k.0.to_owned(), k.1, k.2.to_owned(), k.3, k.4))
}

/// A contact → company edge carrying the Primary label (type 1), and a company the same
/// contact is not associated with.
fn primary_edge(truth: &BTreeMap<EdgeKey, (String, Option<String>)>) -> (i64, i64) {
    truth
        .keys()
        .find(|(f, _, t, _, type_id)| f == "contacts" && t == "companies" && *type_id == 1)
        .map(|(_, c, _, company, _)| (*c, *company))
        .expect("a contact with a primary company")
}

pub(crate) async fn scenario<D: Inspect, S: StateStore>(sim: &Sim, runner: &Runner<D, S>) {
    backfill_all(runner).await;

    // Pairs: every pair the portal defines among the objects, from the side listed first.
    let pairs: Vec<(String, Vec<String>)> = sources(runner)
        .await
        .into_iter()
        .map(|s| (s.from.table, s.targets.into_iter().map(|t| t.table).collect()))
        .collect();
    let expected_pairs = [
        ("contacts", vec!["companies", "deals", "tickets", "cars"]),
        ("companies", vec!["deals", "tickets"]),
        ("deals", vec!["tickets"]),
    ];
    assert_eq!(pairs, expected_pairs.map(|(f, t)| (f.to_owned(), t.into_iter().map(str::to_owned).collect())));

    // The first poll of each stream sweeps every record.
    let first = each_source(runner, false).await;
    assert!(first.iter().all(|r| r.swept), "the first poll is a sweep");
    assert_no_differences(&edge_differences(&runner.dest, sim).await);
    let baseline = truth_edges(sim).await;
    assert!(baseline.values().any(|(_, label)| label.as_deref() == Some("Billing contact")), "labeled edges exist");
    assert!(
        runner.dest.read_edges().await.unwrap().iter().any(|e| e.from_type == "contacts" && e.to_type == "cars"),
        "custom object edges are stored"
    );

    // Associations added, removed and relabelled; no record's cursor moves.
    let (relabel_contact, relabel_company) = primary_edge(&baseline);
    let (remove_contact, remove_company) = baseline
        .keys()
        .find(|(f, c, t, _, _)| f == "contacts" && t == "companies" && *c != relabel_contact)
        .map(|(_, c, _, company, _)| (*c, *company))
        .unwrap();
    let contacts = sim.truth_ids("contacts").await;
    let add_contact =
        contacts.iter().map(|c| *c as i64).find(|c| ![relabel_contact, remove_contact].contains(c)).unwrap();
    let add_company = sim
        .truth_ids("companies")
        .await
        .into_iter()
        .map(|c| c as i64)
        .find(|company| !baseline.contains_key(&("contacts".into(), add_contact, "companies".into(), *company, 279)))
        .unwrap();
    let (deal, ticket) = baseline
        .keys()
        .find(|(f, _, t, _, _)| f == "deals" && t == "tickets")
        .map(|(_, d, _, t, _)| (*d, *t))
        .unwrap_or((0, 0));
    let (decider_contact, decider_deal) = baseline
        .keys()
        .find(|(f, _, t, _, type_id)| f == "contacts" && t == "deals" && *type_id == 4)
        .map(|(_, c, _, d, _)| (*c, *d))
        .unwrap();
    let touched = [
        ("contacts", relabel_contact),
        ("companies", relabel_company),
        ("contacts", remove_contact),
        ("companies", remove_company),
        ("contacts", add_contact),
        ("companies", add_company),
        ("contacts", decider_contact),
        ("deals", decider_deal),
    ];
    let before = cursors(sim, &touched).await;
    // Relabel: Primary becomes Billing contact.
    associate(sim, Method::DELETE, "contacts", relabel_contact, "companies", relabel_company, &[1]).await;
    associate(sim, Method::POST, "contacts", relabel_contact, "companies", relabel_company, &[28]).await;
    // Remove a whole association, and add a labeled one.
    associate(sim, Method::DELETE, "contacts", remove_contact, "companies", remove_company, &[]).await;
    associate(sim, Method::POST, "contacts", add_contact, "companies", add_company, &[28]).await;
    // A label written from the other side (deal → contact) lands in the stored direction.
    associate(sim, Method::POST, "deals", decider_deal, "contacts", decider_contact, &[31]).await;
    if deal != 0 {
        associate(sim, Method::DELETE, "deals", deal, "tickets", ticket, &[]).await;
    }
    assert_eq!(cursors(sim, &touched).await, before, "association changes move no cursor");

    // The incremental poll cannot see them: no record changed.
    let blind = each_source(runner, false).await;
    assert_eq!(records_read(&blind), 0, "{blind:?}");
    assert!(!edge_differences(&runner.dest, sim).await.is_empty(), "the changes are not seen without a sweep");

    // The sweep catches them all.
    let swept = each_source(runner, true).await;
    assert!(swept.iter().all(|r| r.swept));
    assert!(swept.iter().flat_map(|r| &r.pairs).map(|p| p.tombstoned).sum::<u64>() >= 3, "{swept:?}");
    assert_no_differences(&edge_differences(&runner.dest, sim).await);
    // And re-reads the rollups at both ends of what changed, the company that lost its contact
    // (listed by HubSpot nowhere now) included.
    assert!(swept.iter().flat_map(|r| &r.pairs).map(|p| p.refreshed).sum::<u64>() > 0, "{swept:?}");
    assert_no_differences(&crate::sync_engine::differences_in(&runner.dest, sim, &OBJECTS).await);
    let rows = runner.dest.read_edges().await.unwrap();
    let primary = stored(&rows, ("contacts", relabel_contact, "companies", relabel_company, 1)).unwrap();
    assert!(primary.deleted_at_ms.is_some(), "the removed label is tombstoned: {primary:?}");
    assert_eq!(primary.label.as_deref(), Some("Primary"), "a tombstone keeps its label");
    let billing = stored(&rows, ("contacts", relabel_contact, "companies", relabel_company, 28)).unwrap();
    assert_eq!(
        (billing.category.as_str(), billing.label.as_deref(), billing.deleted_at_ms),
        ("USER_DEFINED", Some("Billing contact"), None)
    );
    let removed = stored(&rows, ("contacts", remove_contact, "companies", remove_company, 279)).unwrap();
    assert!(removed.deleted_at_ms.is_some(), "a removed edge is tombstoned, not deleted");
    let decider = stored(&rows, ("contacts", decider_contact, "deals", decider_deal, 30)).unwrap();
    assert_eq!((decider.category.as_str(), decider.label.as_deref()), ("USER_DEFINED", Some("Decision maker")));
    assert!(stored(&rows, ("deals", decider_deal, "contacts", decider_contact, 31)).is_none(), "one side only");

    // A sweep with nothing new writes nothing.
    let again = each_source(runner, true).await;
    let written: u64 = again.iter().flat_map(|r| &r.pairs).map(|p| p.upserted + p.tombstoned).sum();
    assert_eq!(written, 0, "{again:?}");

    // Records CDC sees change: the incremental poll reads their edges, from either side.
    let (status, _) = sim
        .admin(
            Method::PATCH,
            &format!("/_sim/objects/contacts/{add_contact}"),
            Some(&json!({"properties": {"city": "Zürich"}})),
        )
        .await;
    assert!(status.is_success());
    associate(sim, Method::DELETE, "contacts", add_contact, "companies", add_company, &[]).await;
    let deal_id = sim.admin_create("deals", json!({"dealname": "Fresh deal"})).await as i64;
    // The new deal's contact is stored from the contact's side; the contact does not change.
    associate(sim, Method::POST, "deals", deal_id, "contacts", relabel_contact, &[31]).await;
    associate(sim, Method::POST, "deals", deal_id, "companies", relabel_company, &[]).await;
    let company = sim.admin_create("companies", json!({"name": "Fresh company"})).await as i64;
    associate(sim, Method::POST, "contacts", remove_contact, "companies", company, &[1]).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let changed = cdc_all(runner).await;
    assert!(changed.contains(&format!("contacts {add_contact}")) && changed.contains(&format!("deals {deal_id}")));
    let polled = each_source(runner, false).await;
    assert!(polled.iter().all(|r| !r.swept));
    assert!(records_read(&polled) < 100, "only the changed records and their far ends are read: {polled:?}");
    assert_no_differences(&edge_differences(&runner.dest, sim).await);
    let rows = runner.dest.read_edges().await.unwrap();
    assert!(stored(&rows, ("contacts", add_contact, "companies", add_company, 28)).unwrap().deleted_at_ms.is_some());
    assert!(
        stored(&rows, ("contacts", relabel_contact, "deals", deal_id, 30)).is_some_and(|e| e.deleted_at_ms.is_none())
    );
    assert!(
        stored(&rows, ("companies", relabel_company, "deals", deal_id, 342)).is_some_and(|e| e.deleted_at_ms.is_none())
    );
    assert!(
        stored(&rows, ("contacts", remove_contact, "companies", company, 1)).is_some_and(|e| e.deleted_at_ms.is_none())
    );

    // The checkpoints hold the watermark and when the last sweep ran.
    let checkpoint = runner.state.load_checkpoint(&StreamId::associations("contacts")).await.unwrap().unwrap();
    assert!(checkpoint.state["last_sweep_ms"].is_i64() && checkpoint.state["last_poll_ms"].is_i64(), "{checkpoint:?}");
}

#[tokio::test]
async fn associations_match_ground_truth_in_sqlite() {
    let sim = Sim::start(crate::support::unlimited(portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = crate::support::sqlite_runner(&sim, dir.path()).await;
    scenario(&sim, &runner).await;
}

#[tokio::test]
async fn associations_match_ground_truth_in_postgres() {
    let Some(pg) = crate::support::FreshPostgres::create().await else { return };
    let sim = Sim::start(crate::support::unlimited(portal())).await;
    let runner = crate::support::postgres_runner(&sim, &pg).await;
    scenario(&sim, &runner).await;
    pg.drop_schemas().await;
}

/// `hsync associations` as a subprocess: refused before a backfill, a sweep on the first run,
/// `--sweep` catching a relabel, `--object` limiting the pairs.
#[tokio::test]
async fn associations_command_polls_and_sweeps() {
    let sim = Sim::start(crate::support::unlimited(crate::support::small_portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let config = dir.path().join("hsync.toml");
    std::fs::write(
        &config,
        format!(
            "[hubspot]\nbase_url = \"{}\"\ntoken_env = \"{TOKEN_VAR}\"\n\n[destination]\nurl = \"sqlite://{}\"\n\n[sync]\nobjects = [\"contacts\", \"companies\"]\nsettle_lag_secs = 1\n",
            sim.handle.base_url(),
            db.display()
        ),
    )
    .unwrap();

    let early = hsync(&config, &["associations"]).await;
    assert_ne!(early.status.code(), Some(0), "no backfill yet: {}", explain(&early));
    assert!(String::from_utf8_lossy(&early.stderr).contains("hsync backfill"), "{}", explain(&early));

    let backfilled = hsync(&config, &["backfill"]).await;
    assert_eq!(backfilled.status.code(), Some(0), "{}", explain(&backfilled));
    let first = hsync(&config, &["associations"]).await;
    assert_eq!(first.status.code(), Some(0), "{}", explain(&first));
    assert!(String::from_utf8_lossy(&first.stdout).contains("contacts -> companies"), "{}", explain(&first));
    assert!(String::from_utf8_lossy(&first.stdout).contains("(full sweep)"), "{}", explain(&first));

    let dest = SqliteDestination::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let baseline = truth_edges(&sim).await;
    let only_pair = |rows: Vec<EdgeRow>| -> BTreeSet<EdgeKey> {
        rows.iter().filter(|r| r.deleted_at_ms.is_none()).map(key).collect()
    };
    let expected = |truth: &BTreeMap<EdgeKey, (String, Option<String>)>| -> BTreeSet<EdgeKey> {
        truth.keys().filter(|k| k.0 == "contacts" && k.2 == "companies").cloned().collect()
    };
    assert_eq!(only_pair(dest.read_edges().await.unwrap()), expected(&baseline));

    let (contact, company) = primary_edge(&baseline);
    associate(&sim, Method::DELETE, "contacts", contact, "companies", company, &[1]).await;
    let polled = hsync(&config, &["associations", "--object", "contacts"]).await;
    assert_eq!(polled.status.code(), Some(0), "{}", explain(&polled));
    assert!(!String::from_utf8_lossy(&polled.stdout).contains("(full sweep)"), "{}", explain(&polled));
    let swept = hsync(&config, &["associations", "--sweep"]).await;
    assert_eq!(swept.status.code(), Some(0), "{}", explain(&swept));
    assert_eq!(only_pair(dest.read_edges().await.unwrap()), expected(&truth_edges(&sim).await));

    let stranger = hsync(&config, &["associations", "--object", "deals"]).await;
    assert_ne!(stranger.status.code(), Some(0), "deals are not configured: {}", explain(&stranger));

    // Deals join sync.objects: once backfilled, the next incremental poll sweeps the new pairs.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("[\"contacts\", \"companies\"]", "[\"contacts\", \"companies\", \"deals\"]"))
        .unwrap();
    let backfilled = hsync(&config, &["backfill", "--object", "deals"]).await;
    assert_eq!(backfilled.status.code(), Some(0), "{}", explain(&backfilled));
    let widened = hsync(&config, &["associations"]).await;
    assert_eq!(widened.status.code(), Some(0), "{}", explain(&widened));
    let out = String::from_utf8_lossy(&widened.stdout).into_owned();
    assert!(out.contains("contacts -> deals") && out.contains("companies -> deals"), "{}", explain(&widened));
    assert!(!out.lines().any(|l| l.starts_with("contacts -> companies") && l.contains("(full sweep)")), "{out}");
    let truth = truth_edges(&sim).await;
    let stored: BTreeSet<EdgeKey> =
        dest.read_edges().await.unwrap().iter().filter(|r| r.deleted_at_ms.is_none()).map(key).collect();
    for pair in [("contacts", "deals"), ("companies", "deals")] {
        let want: BTreeSet<&EdgeKey> = truth.keys().filter(|k| (k.0.as_str(), k.2.as_str()) == pair).collect();
        let got: BTreeSet<&EdgeKey> = stored.iter().filter(|k| (k.0.as_str(), k.2.as_str()) == pair).collect();
        assert!(!want.is_empty());
        assert_eq!(got, want, "{pair:?}");
    }
    dest.close().await;
}
