//! Deletes and merges reconciliation end to end: records archived, restored, merged (chains
//! included) and GDPR-deleted in the simulator, then CDC and the reconcile into real SQLite and
//! real Postgres, compared with the simulator's ground truth (zero differences required), and
//! `hsync deletes` as a real subprocess.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hsync::destination::conformance::{Cell, Inspect};
use hsync::destination::sqlite::SqliteDestination;
use hsync::destination::Destination;
use hsync::hubspot::resolve_objects;
use hsync::schema::{column_name, parse_instant_ms, ColumnType};
use hsync::state::StateStore;
use hsync::state::StreamId;
use hsync::stream::deletes::{self, Report};
use hsync::stream::runner::Runner;
use hsync::stream::state::DeletesState;
use hsync::stream::{backfill, calculated, cdc};
use hsync_sim::{PortalSpec, DEFAULT_TOKEN};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::support::Sim;
use crate::sync_engine::expected_cell;

const OBJECTS: [&str; 5] = ["contacts", "companies", "deals", "tickets", "cars"];
const FLAGS: [&str; 3] = ["_hsync_archived_at", "_hsync_merged_into", "_hsync_deleted_at"];

fn portal() -> PortalSpec {
    PortalSpec {
        contacts: 450,
        companies: 90,
        deals: 80,
        tickets: 30,
        cars: 25,
        custom_properties: 6,
        ..PortalSpec::default()
    }
}

fn names() -> Vec<String> {
    OBJECTS.iter().map(|s| (*s).to_owned()).collect()
}

async fn backfill_all<D: Destination, S: StateStore>(runner: &Runner<D, S>) {
    for object in resolve_objects(&runner.client, &names()).await.unwrap() {
        let table = runner.prepare(&object).await.unwrap();
        assert!(
            crate::support::backfill_with(runner, &table, backfill::Mode::Fresh, backfill::Fetch::InTurn)
                .await
                .finished
        );
    }
}

async fn cdc_all<D: Destination, S: StateStore>(runner: &Runner<D, S>) {
    // Past the instant of the last change, so the pass reads it.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let never = CancellationToken::new();
    for object in resolve_objects(&runner.client, &names()).await.unwrap() {
        let table = runner.prepare(&object).await.unwrap();
        cdc::pass(runner, &table, Duration::from_secs(1), backfill::DEFAULT_CONCURRENCY, &never).await.unwrap();
    }
}

async fn reconcile_all<D: Destination, S: StateStore>(runner: &Runner<D, S>) -> BTreeMap<String, Report> {
    let never = CancellationToken::new();
    let mut out = BTreeMap::new();
    for object in resolve_objects(&runner.client, &names()).await.unwrap() {
        let table = runner.prepare(&object).await.unwrap();
        let report = deletes::reconcile(runner, &table, &never).await.unwrap();
        assert!(report.finished);
        out.insert(object.table, report);
    }
    out
}

/// Archiving, merging and deleting records changes the rollups of the records around them
/// (`num_associated_deals`) without moving their last-modified time: the calculated-property
/// sweep brings them back, as the daemon's would.
async fn sweep_calculated<D: Destination, S: StateStore>(runner: &Runner<D, S>) {
    let never = CancellationToken::new();
    for object in resolve_objects(&runner.client, &names()).await.unwrap() {
        let table = runner.prepare(&object).await.unwrap();
        assert!(calculated::sweep(runner, &table, None, 0, &never).await.unwrap().finished);
    }
}

fn id(v: &Value) -> i64 {
    v.as_str().unwrap().parse().unwrap()
}

fn flags_of(row: &BTreeMap<String, Cell>) -> [Cell; 3] {
    FLAGS.map(|f| row.get(f).cloned().unwrap_or(Cell::Null))
}

/// Every difference between the warehouse and the simulator's ground truth: each live record
/// present, equal and unflagged; each archived one flagged with its archive time; each
/// merged-away id flagged merged into its survivor; each GDPR-deleted row flagged deleted; no
/// other row.
async fn differences<D: Inspect>(dest: &D, sim: &Sim) -> Vec<String> {
    let truth = sim.admin(Method::GET, "/_sim/truth", None).await.1;
    let mut out = Vec::new();
    for object in OBJECTS {
        let columns = dest.describe(object).await.unwrap().unwrap();
        let types: BTreeMap<String, ColumnType> = columns.iter().map(|c| (c.name.clone(), c.ty)).collect();
        let rows = dest.read_table(object).await.unwrap();
        let by_id: BTreeMap<i64, &BTreeMap<String, Cell>> = rows
            .iter()
            .map(|r| match r.get("id") {
                Some(Cell::Int(id)) => (*id, r),
                other => panic!("row without an id: {other:?}"),
            })
            .collect();
        let t = &truth["objects"][object];
        let mut known = BTreeSet::new();
        for rec in t["live"].as_array().unwrap() {
            let id = id(&rec["id"]);
            known.insert(id);
            let Some(row) = by_id.get(&id) else {
                out.push(format!("{object} {id}: live record missing"));
                continue;
            };
            let props = rec["properties"].as_object().unwrap();
            for (column, ty) in types.iter().filter(|(c, _)| !c.starts_with("_hsync_") && *c != "id") {
                let raw = props.keys().find(|p| column_name(p) == *column).and_then(|p| props[p].as_str());
                let (expected, actual) = (expected_cell(*ty, raw), row.get(column).cloned().unwrap_or(Cell::Null));
                if expected != actual {
                    out.push(format!("{object} {id} {column}: expected {expected:?}, found {actual:?}"));
                }
            }
            if flags_of(row) != [Cell::Null, Cell::Null, Cell::Null] {
                out.push(format!("{object} {id}: live but flagged {:?}", flags_of(row)));
            }
        }
        for rec in t["archived"].as_array().unwrap() {
            let id = id(&rec["id"]);
            known.insert(id);
            let at = parse_instant_ms(rec["archivedAt"].as_str().unwrap()).unwrap();
            match by_id.get(&id) {
                None => out.push(format!("{object} {id}: archived record has no row")),
                Some(row) if flags_of(row) != [Cell::TimestampMs(at), Cell::Null, Cell::Null] => {
                    out.push(format!("{object} {id}: archived at {at}, flags {:?}", flags_of(row)))
                }
                Some(_) => {}
            }
        }
        for (absorbed, survivor) in t["mergedInto"].as_object().unwrap() {
            let (absorbed, survivor) = (absorbed.parse::<i64>().unwrap(), id(survivor));
            known.insert(absorbed);
            match by_id.get(&absorbed) {
                None => out.push(format!("{object} {absorbed}: merged-away id has no row")),
                Some(row) if flags_of(row) != [Cell::Null, Cell::Int(survivor), Cell::Null] => {
                    out.push(format!("{object} {absorbed}: merged into {survivor}, flags {:?}", flags_of(row)))
                }
                Some(_) => {}
            }
        }
        for purged in t["gdprDeleted"].as_array().unwrap() {
            let purged = id(purged);
            known.insert(purged);
            if let Some(row) = by_id.get(&purged) {
                if row.get("_hsync_deleted_at").is_none_or(|c| matches!(c, Cell::Null)) {
                    out.push(format!("{object} {purged}: GDPR-deleted but not flagged deleted"));
                }
            }
        }
        for id in by_id.keys().filter(|id| !known.contains(id)) {
            out.push(format!("{object} {id}: a row HubSpot knows nothing about"));
        }
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

async fn live_ids(sim: &Sim, object: &str) -> Vec<u64> {
    sim.truth_ids(object).await.into_iter().collect()
}

async fn act(sim: &Sim, object: &str, id: u64, action: &str) {
    sim.admin_ok(Method::POST, &format!("/_sim/objects/{object}/{id}/{action}"), None).await;
}

async fn merge(sim: &Sim, object: &str, primary: u64, absorbed: u64) {
    sim.admin_ok(
        Method::POST,
        &format!("/_sim/objects/{object}/merge"),
        Some(&json!({ "primary": primary, "absorbed": absorbed })),
    )
    .await;
}

async fn row_flags<D: Destination>(dest: &D, table: &str, id: u64) -> Option<hsync::destination::IdFlags> {
    dest.id_flags(table).await.unwrap().into_iter().find(|f| f.id == id as i64)
}

pub(crate) async fn scenario<D: Inspect, S: StateStore>(sim: &Sim, runner: &Runner<D, S>) {
    backfill_all(runner).await;
    let contacts = live_ids(sim, "contacts").await;
    let companies = live_ids(sim, "companies").await;
    let deals = live_ids(sim, "deals").await;
    let cars = live_ids(sim, "cars").await;

    // Round 1: archives (one of a record hsync never saw), a merge, a GDPR delete.
    for c in &contacts[0..3] {
        act(sim, "contacts", *c, "archive").await;
    }
    act(sim, "companies", companies[0], "archive").await;
    act(sim, "deals", deals[0], "archive").await;
    act(sim, "deals", deals[1], "archive").await;
    act(sim, "cars", cars[0], "archive").await;
    let unseen = sim.admin_create("contacts", json!({ "email": "unseen@example.com" })).await;
    act(sim, "contacts", unseen, "archive").await;
    merge(sim, "contacts", contacts[10], contacts[11]).await;
    act(sim, "contacts", contacts[20], "gdpr-delete").await;
    cdc_all(runner).await;
    let first = reconcile_all(runner).await;
    assert_eq!(first["contacts"].archived, 4, "{first:?}");
    assert_eq!((first["contacts"].merged, first["contacts"].deleted), (1, 1), "{first:?}");
    sweep_calculated(runner).await;
    assert_no_differences(&differences(&runner.dest, sim).await);

    // Round 2: restores, a merge chain (the survivor of round 1 absorbed in turn), merges of
    // other types and of a record hsync never saw, GDPR deletes (one from the recycle bin).
    act(sim, "contacts", contacts[2], "restore").await;
    act(sim, "deals", deals[1], "restore").await;
    merge(sim, "contacts", contacts[12], contacts[10]).await;
    merge(sim, "companies", companies[5], companies[6]).await;
    merge(sim, "cars", cars[3], cars[4]).await;
    let newcomer = sim.admin_create("contacts", json!({ "email": "newcomer@example.com" })).await;
    merge(sim, "contacts", contacts[13], newcomer).await;
    act(sim, "contacts", contacts[21], "gdpr-delete").await;
    act(sim, "contacts", contacts[1], "gdpr-delete").await;
    cdc_all(runner).await;
    // CDC alone brings a restored record back: its full-row merge clears the archived flag.
    for (table, id) in [("contacts", contacts[2]), ("deals", deals[1])] {
        let row = row_flags(&runner.dest, table, id).await.unwrap();
        assert!(!row.flagged(), "{table} {id} restored, CDC cleared its flags: {row:?}");
    }
    let second = reconcile_all(runner).await;
    assert_eq!(second["contacts"].deleted, 2, "{second:?}");
    sweep_calculated(runner).await;
    assert_no_differences(&differences(&runner.dest, sim).await);
    let chained = row_flags(&runner.dest, "contacts", contacts[11]).await.unwrap();
    assert_eq!(chained.merged_into, Some(contacts[12] as i64), "a chain ends at the last survivor");
    let purged = row_flags(&runner.dest, "contacts", contacts[1]).await.unwrap();
    assert!(purged.archived_at.is_some() && purged.deleted_at.is_some(), "archived, then purged: {purged:?}");

    // Nothing new: a reconcile writes nothing, the flags keep their times, and each object's
    // checkpoint records the run.
    let before: Vec<_> =
        [runner.dest.id_flags("contacts").await.unwrap(), runner.dest.id_flags("deals").await.unwrap()].concat();
    let third = reconcile_all(runner).await;
    assert!(third.values().all(|r| r.written == 0 && r.deleted == 0), "{third:?}");
    let after: Vec<_> =
        [runner.dest.id_flags("contacts").await.unwrap(), runner.dest.id_flags("deals").await.unwrap()].concat();
    assert_eq!(before, after);
    assert_no_differences(&differences(&runner.dest, sim).await);
    for object in OBJECTS {
        let checkpoint = runner.state.load_checkpoint(&StreamId::deletes(object)).await.unwrap().unwrap();
        let Some(DeletesState::Reconciled { live, .. }) = DeletesState::from_checkpoint(&checkpoint).ok() else {
            panic!("{object}: unreadable checkpoint {checkpoint:?}");
        };
        assert_eq!(live as u64, third[object].live);
    }
}

#[tokio::test]
async fn archive_restore_merge_and_gdpr_delete_are_reflected_in_sqlite() {
    let sim = Sim::start(crate::support::unlimited(portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = crate::support::sqlite_runner(&sim, dir.path()).await;
    scenario(&sim, &runner).await;
}

#[tokio::test]
async fn archive_restore_merge_and_gdpr_delete_are_reflected_in_postgres() {
    let Some(pg) = crate::support::FreshPostgres::create().await else { return };
    let sim = Sim::start(crate::support::unlimited(portal())).await;
    let runner = crate::support::postgres_runner(&sim, &pg).await;
    scenario(&sim, &runner).await;
    pg.drop_schemas().await;
}

/// Search answers from an index that lags the records. A record restored from the recycle bin
/// is live but missing from search for a while: read back by id, it is un-flagged, never
/// flagged deleted. A GDPR-deleted record still in the index is flagged once the index drops it.
#[tokio::test]
async fn an_index_lag_never_flags_a_live_record_deleted() {
    let sim = Sim::start(crate::support::unlimited(portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = crate::support::sqlite_runner(&sim, dir.path()).await;
    backfill_all(&runner).await;
    let contacts = live_ids(&sim, "contacts").await;
    sim.admin_ok(Method::PUT, "/_sim/index", Some(&json!({"lagMs": 30_000}))).await;
    act(&sim, "contacts", contacts[5], "archive").await;
    act(&sim, "contacts", contacts[6], "gdpr-delete").await;
    let lagging = reconcile_all(&runner).await;
    assert_eq!(lagging["contacts"].archived, 1, "the recycle bin is read from the records: {lagging:?}");
    assert_eq!(lagging["contacts"].deleted, 0, "still in the index: not yet known deleted: {lagging:?}");
    assert!(row_flags(&runner.dest, "contacts", contacts[5]).await.unwrap().archived_at.is_some());

    sim.admin_ok(Method::POST, "/_sim/clock", Some(&json!({"advanceMs": 31_000}))).await;
    let caught_up = reconcile_all(&runner).await;
    assert_eq!(caught_up["contacts"].deleted, 1, "{caught_up:?}");
    assert!(row_flags(&runner.dest, "contacts", contacts[6]).await.unwrap().deleted_at.is_some());

    // Restored: live, but not in the index for 30 seconds.
    act(&sim, "contacts", contacts[5], "restore").await;
    let restored = reconcile_all(&runner).await;
    assert_eq!((restored["contacts"].deleted, restored["contacts"].restored), (0, 1), "{restored:?}");
    let row = row_flags(&runner.dest, "contacts", contacts[5]).await.unwrap();
    assert!(!row.flagged(), "read back by id, it is live: {row:?}");
    sim.admin_ok(Method::POST, "/_sim/clock", Some(&json!({"advanceMs": 31_000}))).await;
    let settled = reconcile_all(&runner).await;
    assert!(settled.values().all(|r| r.written == 0), "{settled:?}");
}

const TOKEN_VAR: &str = "HSYNC_TEST_SIM_TOKEN";

async fn hsync_cli(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hsync"));
    cmd.arg("--config").arg(config).args(args).env(TOKEN_VAR, DEFAULT_TOKEN).env("RUST_LOG", "warn");
    cmd.output().await.unwrap()
}

#[tokio::test]
async fn hsync_deletes_flags_what_it_finds() {
    let sim = Sim::start(crate::support::unlimited(crate::support::small_portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let config = dir.path().join("hsync.toml");
    let text = format!(
        "[hubspot]\nbase_url = \"{}\"\ntoken_env = \"{TOKEN_VAR}\"\n\n[destination]\nurl = \"sqlite://{}\"\n\n[sync]\nobjects = [\"contacts\", \"cars\"]\n",
        sim.handle.base_url(),
        db.display()
    );
    std::fs::write(&config, text).unwrap();
    let backfill = hsync_cli(&config, &["backfill"]).await;
    assert!(backfill.status.success(), "{}", String::from_utf8_lossy(&backfill.stderr));
    let contacts = live_ids(&sim, "contacts").await;
    act(&sim, "contacts", contacts[0], "archive").await;
    act(&sim, "contacts", contacts[1], "gdpr-delete").await;
    let run = hsync_cli(&config, &["deletes", "--object", "contacts"]).await;
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("1 archived") && stdout.contains("1 newly deleted"), "{stdout}");
    assert!(!stdout.contains("cars"), "only the object asked for: {stdout}");
    let dest = SqliteDestination::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let archived = row_flags(&dest, "contacts", contacts[0]).await.unwrap();
    let deleted = row_flags(&dest, "contacts", contacts[1]).await.unwrap();
    assert!(archived.archived_at.is_some() && deleted.deleted_at.is_some(), "{archived:?} {deleted:?}");
}
