//! Property history end to end through the `hsync` binary: `backfill`, then `history` (the
//! first load, every live record), then 1,000 changes in HubSpot (records touched in several
//! rounds, one deal changed twice within one millisecond), `cdc --once` and `history` again
//! (only the records CDC wrote, 50 a call). Every stored version is compared with the simulator's ground truth:
//! each version exactly once, nothing extra. A `kill -9` during a slowed first load, then a
//! rerun: the load resumes from its last chunk and the result is again exact, in SQLite and in
//! Postgres. BigQuery, Snowflake and Parquet run the same scenario from their own test files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hsync::destination::conformance::{Cell, Inspect};
use hsync::schema::parse_instant_ms;
use hsync::state::StreamId;
use hsync::stream::history;
use hsync_sim::PortalSpec;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{logged_since, next_seq, FreshPostgres, Sim, TOKEN_VAR};
use crate::sync_catalogue::run_ok;

/// What each object keeps: the deals' defaults and two contact properties.
const HISTORY: [(&str, &[&str]); 2] = [
    ("deals", &["dealstage", "amount", "closedate", "hubspot_owner_id", "pipeline"]),
    ("contacts", &["lifecyclestage", "firstname"]),
];

pub(crate) fn portal() -> PortalSpec {
    PortalSpec { contacts: 450, companies: 10, deals: 120, tickets: 0, cars: 0, ..PortalSpec::default() }
}

pub(crate) fn write_config(dir: &Path, sim: &Sim, destination: &str) -> PathBuf {
    let path = dir.join("hsync.toml");
    let text = format!(
        "[hubspot]\nbase_url = \"{}\"\ntoken_env = \"{TOKEN_VAR}\"\n\n[destination]\n{destination}\n\n\
         [sync]\nobjects = [\"contacts\", \"deals\"]\nsettle_lag_secs = 1\n\n\
         [sync.history]\ndeals = [\"default\"]\ncontacts = [\"lifecyclestage\", \"firstname\"]\n",
        sim.handle.base_url()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// One version as the comparison sees it: object, record, property, time, value, source
/// type, source id, source label, user.
type Version = (String, i64, String, i64, Option<String>, Option<String>, Option<String>, Option<String>, Option<i64>);

/// Every version of the live records' histories in the simulator, with how often each occurs.
async fn truth_versions(sim: &Sim) -> BTreeMap<Version, usize> {
    let mut out = BTreeMap::new();
    for (object, properties) in HISTORY {
        let path = format!("/_sim/truth?objects={object}&values=false&history={}", properties.join(","));
        let truth = sim.admin_ok(Method::GET, &path, None).await;
        for rec in truth["objects"][object]["live"].as_array().unwrap() {
            let id: i64 = rec["id"].as_str().unwrap().parse().unwrap();
            for (property, versions) in rec["history"].as_object().into_iter().flatten() {
                for v in versions.as_array().unwrap() {
                    let text = |k: &str| v[k].as_str().map(str::to_owned);
                    let at = parse_instant_ms(v["timestamp"].as_str().unwrap()).unwrap();
                    let version = (
                        object.to_owned(),
                        id,
                        property.clone(),
                        at,
                        text("value"),
                        text("sourceType"),
                        text("sourceId"),
                        text("sourceLabel"),
                        v["updatedByUserId"].as_i64(),
                    );
                    *out.entry(version).or_default() += 1;
                }
            }
        }
    }
    out
}

/// Every stored version, with how often each occurs.
async fn stored_versions<D: Inspect>(dest: &D) -> BTreeMap<Version, usize> {
    let text = |c: Option<&Cell>| match c {
        Some(Cell::Text(s)) => Some(s.clone()),
        _ => None,
    };
    let int = |c: Option<&Cell>| match c {
        Some(Cell::Int(v)) => Some(*v),
        _ => None,
    };
    let mut out = BTreeMap::new();
    for row in dest.read_table("property_history").await.unwrap() {
        let at = match row.get("changed_at") {
            Some(Cell::TimestampMs(ms)) => *ms,
            other => panic!("changed_at is a timestamp: {other:?}"),
        };
        assert!(matches!(row.get("_hsync_synced_at"), Some(Cell::TimestampMs(_))), "{row:?}");
        let version = (
            text(row.get("object_type")).unwrap(),
            int(row.get("record_id")).unwrap(),
            text(row.get("property")).unwrap(),
            at,
            text(row.get("value")),
            text(row.get("source_type")),
            text(row.get("source_id")),
            text(row.get("source_label")),
            int(row.get("updated_by_user_id")),
        );
        *out.entry(version).or_default() += 1;
    }
    out
}

async fn assert_history_exact<D: Inspect>(what: &str, dest: &D, sim: &Sim) {
    let (expected, stored) = (truth_versions(sim).await, stored_versions(dest).await);
    let missing: Vec<_> = expected.iter().filter(|(v, n)| stored.get(*v) != Some(*n)).take(10).collect();
    let extra: Vec<_> = stored.iter().filter(|(v, _)| !expected.contains_key(*v)).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} versions expected, {} stored\nmissing or miscounted: {missing:#?}\nextra: {extra:#?}",
        expected.values().sum::<usize>(),
        stored.values().sum::<usize>()
    );
    assert!(expected.len() > 1_000, "{what}: the portal has a real history ({} versions)", expected.len());
}

/// History batch reads in the log since `since`, and the records they asked for.
async fn history_reads(sim: &Sim, since: u64) -> (usize, usize) {
    let entries = logged_since(sim, since).await;
    let reads: Vec<&Value> = entries
        .iter()
        .filter(|e| e["path"].as_str().is_some_and(|p| p.ends_with("/batch/read")))
        .filter(|e| e["body"].as_str().is_some_and(|b| b.contains("propertiesWithHistory")))
        .collect();
    let records = reads
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(e["body"].as_str().unwrap())
                .map_or(0, |b| b["inputs"].as_array().map_or(0, Vec::len))
        })
        .sum();
    (reads.len(), records)
}

/// The scenario of the module docs (without the kill) against `dest`.
pub(crate) async fn scenario<D: Inspect>(sim: &Sim, config: &Path, dest: &D) {
    run_ok(config, &["backfill"]).await;
    let before = next_seq(sim).await;
    let printed = run_ok(config, &["history"]).await;
    assert!(printed.contains("deals: history of 120 records"), "{printed}");
    let (calls, records) = history_reads(sim, before).await;
    assert_eq!(records, 120 + 450, "the first load reads every live record once");
    assert_eq!(calls, 120usize.div_ceil(50) + 450usize.div_ceil(50), "50 records a call");
    assert_history_exact("after the first load", dest, sim).await;

    // 1,000 changes: five rounds of 100 deals' stages and 100 contacts' first names (a record
    // may change in several rounds), then one deal's stage set twice in one millisecond.
    let mut touched = std::collections::BTreeSet::new();
    for round in 0..5u64 {
        for (object, property) in [("deals", "dealstage"), ("contacts", "firstname")] {
            let body = json!({"count": 100, "property": property, "seed": round, "spreadMs": 20});
            let done = sim.admin_ok(Method::POST, &format!("/_sim/objects/{object}/touch"), Some(&body)).await;
            let records = done["records"].as_array().unwrap();
            assert_eq!(records.len(), 100);
            touched.extend(records.iter().map(|r| (object, r["id"].as_str().unwrap().to_owned())));
        }
    }
    let deal = *sim.truth_ids("deals").await.iter().next().unwrap();
    touched.insert(("deals", deal.to_string()));
    sim.admin_ok(Method::POST, "/_sim/clock", Some(&json!({"frozen": true}))).await;
    for stage in ["qualifiedtobuy", "closedwon"] {
        let body = json!({"properties": {"dealstage": stage}});
        sim.admin_ok(Method::PATCH, &format!("/_sim/objects/deals/{deal}"), Some(&body)).await;
    }
    sim.admin_ok(Method::POST, "/_sim/clock", Some(&json!({"frozen": false}))).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    run_ok(config, &["cdc", "--once"]).await;
    let before = next_seq(sim).await;
    run_ok(config, &["history"]).await;
    let (calls, records) = history_reads(sim, before).await;
    // The touched records (and any seeded one last modified within the settle lag of the
    // backfill's start), not the table.
    let changed = touched.len();
    assert!(
        records >= changed && records <= changed + 10,
        "only the records CDC wrote are read again: {records} for {changed} changed"
    );
    assert!(calls <= records.div_ceil(50) + 1, "50 records a call (per object): {records} in {calls}");
    assert_history_exact("after the changes", dest, sim).await;

    // A replay adds nothing.
    let stored = stored_versions(dest).await.values().sum::<usize>();
    run_ok(config, &["reset", "history:deals"]).await;
    run_ok(config, &["history", "--object", "deals"]).await;
    assert_eq!(stored_versions(dest).await.values().sum::<usize>(), stored, "a full re-read doubles nothing");
    assert_history_exact("after a re-read", dest, sim).await;

    // `verify` compares the history too: every record with a large sample, 50 by default.
    let report = verify_json(config, &["--history-sample", "1000"]).await;
    for (object, records) in [("deals", 120), ("contacts", 450)] {
        let history = &history_of(&report, object);
        assert_eq!(history["matches"], true, "{object}: {history:#}");
        assert_eq!(history["records_sampled"], records, "{object}: {history:#}");
        assert!(history["pairs_compared"].as_u64() > Some(records), "{object}: {history:#}");
    }
    let report = verify_json(config, &[]).await;
    assert_eq!(history_of(&report, "contacts")["records_sampled"], 50, "one batch read by default");
}

/// `hsync verify --json` with `extra` arguments; asserts it exits 0 (matches).
async fn verify_json(config: &Path, extra: &[&str]) -> Value {
    let args: Vec<&str> = ["verify", "--json"].into_iter().chain(extra.iter().copied()).collect();
    serde_json::from_str(&run_ok(config, &args).await).unwrap()
}

fn history_of(report: &Value, object: &str) -> Value {
    let objects = report["objects"].as_array().unwrap();
    objects.iter().find(|o| o["object"] == object).unwrap()["history"].clone()
}

/// What `property_history_spans` should say of the deal stages: one span per stored version,
/// one current span per deal with a stage history, never a negative duration.
async fn expected_stage_spans(sim: &Sim) -> (i64, i64) {
    let truth = truth_versions(sim).await;
    let stages = truth.iter().filter(|(v, _)| v.0 == "deals" && v.2 == "dealstage");
    let spans: usize = stages.clone().map(|(_, n)| n).sum();
    let deals: std::collections::BTreeSet<i64> = stages.map(|(v, _)| v.1).collect();
    (spans as i64, deals.len() as i64)
}

const SPANS_SQL: &str = "select count(*), sum(case when is_current then 1 else 0 end), \
     min(coalesce(seconds_in_value, 0)) >= 0, \
     sum(case when not is_current and exited_at is null then 1 else 0 end) \
     from property_history_spans where object_type = 'deals' and property = 'dealstage'";

#[tokio::test]
async fn history_matches_ground_truth_in_sqlite() {
    let sim = Sim::start(crate::support::unlimited(portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let config = write_config(dir.path(), &sim, &format!("url = \"{url}\""));
    let dest = hsync::destination::sqlite::SqliteDestination::connect(&url).await.unwrap();
    scenario(&sim, &config, &dest).await;
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (spans, current, non_negative, open): (i64, i64, bool, i64) =
        sqlx::query_as(SPANS_SQL).fetch_one(&mut conn).await.unwrap();
    let (expected_spans, deals) = expected_stage_spans(&sim).await;
    assert_eq!((spans, current, non_negative, open), (expected_spans, deals, true, 0));

    // Broken behind hsync's back: an old deal-stage version deleted, and a contact's latest
    // lifecycle stage rewritten. `verify` names both, and exits 5.
    let (deal, version): (i64, String) = sqlx::query_as(
        "select record_id, version_id from property_history where object_type = 'deals' \
         and property = 'dealstage' and changed_at < (select max(changed_at) from property_history p \
         where p.object_type = 'deals' and p.property = 'dealstage' and p.record_id = property_history.record_id) \
         order by record_id limit 1",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    sqlx::query("delete from property_history where object_type = 'deals' and version_id = ?1")
        .bind(&version)
        .execute(&mut conn)
        .await
        .unwrap();
    let (contact,): (i64,) = sqlx::query_as(
        "select min(record_id) from property_history where object_type = 'contacts' and property = 'lifecyclestage'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    sqlx::query("update property_history set value = 'not-a-stage' where object_type = 'contacts' and record_id = ?1 and property = 'lifecyclestage'")
        .bind(contact)
        .execute(&mut conn)
        .await
        .unwrap();
    let broken = crate::support::hsync(&config, &["verify", "--json", "--history-sample", "1000"]).await;
    assert_eq!(broken.status.code(), Some(5), "{}", crate::support::explain(&broken));
    let report: Value = serde_json::from_str(&crate::support::stdout(&broken)).unwrap();
    let deals = history_of(&report, "deals");
    assert_eq!(deals["versions_differ"]["examples"], json!([format!("{deal}/dealstage")]), "{deals:#}");
    assert_eq!((deals["versions_missing"].as_u64(), deals["versions_extra"].as_u64()), (Some(1), Some(0)));
    assert_eq!(deals["latest_differs"]["count"], 0, "an old version went missing, not the latest: {deals:#}");
    let contacts = history_of(&report, "contacts");
    assert_eq!(contacts["latest_differs"]["examples"], json!([format!("{contact}/lifecyclestage")]), "{contacts:#}");
    assert_eq!(contacts["versions_differ"]["count"], 0, "{contacts:#}");
    let text = crate::support::stdout(&crate::support::hsync(&config, &["verify", "--history-sample", "1000"]).await);
    assert!(text.contains("deals: 1 record properties whose stored history differs"), "{text}");

    // A full re-read repairs both.
    run_ok(&config, &["reset", "history:deals"]).await;
    run_ok(&config, &["reset", "history:contacts"]).await;
    run_ok(&config, &["history"]).await;
    verify_json(&config, &["--history-sample", "1000"]).await;
}

#[tokio::test]
async fn history_matches_ground_truth_in_postgres() {
    let Some(pg) = FreshPostgres::create().await else { return };
    let sim = Sim::start(crate::support::unlimited(portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim, &pg.destination_keys());
    let dest = hsync::destination::postgres::PostgresDestination::connect(&pg.url, &pg.data_schema, &pg.state_schema)
        .await
        .unwrap();
    scenario(&sim, &config, &dest).await;
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&pg.url).await.unwrap();
    let sql = SPANS_SQL
        .replace("from property_history_spans", &format!("from \"{}\".property_history_spans", pg.data_schema));
    let (spans, current, non_negative, open): (i64, i64, bool, i64) =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(&mut conn).await.unwrap();
    let (expected_spans, deals) = expected_stage_spans(&sim).await;
    assert_eq!((spans, current, non_negative, open), (expected_spans, deals, true, 0));
    pg.drop_schemas().await;
}

/// `kill -9` in the middle of a slowed first load, then a rerun: at most the chunks in flight
/// are read again, and the history is exact.
async fn killed_load_resumes<D: Inspect>(sim: &Sim, config: &Path, dest: &D) {
    run_ok(config, &["backfill"]).await;
    // Slow enough that the last chunk takes a second: the poll below must see the load between
    // its second chunk and its end.
    let rule = json!({"kind": "slow", "delay_ms": 1000, "target": "general"});
    sim.admin_ok(Method::POST, "/_sim/faults", Some(&rule)).await;
    let before = next_seq(sim).await;
    let mut child = crate::support::cli::command(
        Some(config),
        &["history", "--object", "contacts"],
        Some(hsync_sim::DEFAULT_TOKEN),
    )
    .spawn()
    .unwrap();
    // Kill once the load has committed its second chunk of 200 (of five).
    let ids: Vec<u64> = sim.truth_ids("contacts").await.into_iter().collect();
    let second_chunk_done = ids[399] as i64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let at = dest.checkpoint(&StreamId::history("contacts")).await.unwrap().map(|c| c.state);
        if at.is_some_and(|s| s["phase"] == "reading" && s["after_id"].as_i64() >= Some(second_chunk_done)) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the load never committed two chunks");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "killed mid-load");
    sim.admin_ok(Method::PUT, "/_sim/faults", Some(&json!([]))).await;

    let out = run_ok(config, &["history", "--object", "contacts"]).await;
    assert!(out.contains("contacts: history of"), "{out}");
    let (_, records) = history_reads(sim, before).await;
    assert!(
        records <= 1_000 + history::CHUNK * history::CHUNKS_IN_FLIGHT,
        "the rerun resumed: {records} records read in all, at most the chunks in flight twice"
    );
    let (expected, stored) = (truth_versions(sim).await, stored_versions(dest).await);
    let contacts = |m: &BTreeMap<Version, usize>| -> BTreeMap<Version, usize> {
        m.iter().filter(|(v, _)| v.0 == "contacts").map(|(v, n)| (v.clone(), *n)).collect()
    };
    assert_eq!(contacts(&stored), contacts(&expected), "every contact version once");
}

fn kill_portal() -> PortalSpec {
    PortalSpec { contacts: 1_000, companies: 5, deals: 10, tickets: 0, cars: 0, ..PortalSpec::default() }
}

#[tokio::test]
async fn a_killed_history_load_resumes_from_its_last_chunk_in_sqlite() {
    let sim = Sim::start(crate::support::unlimited(kill_portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("w.db").display());
    let config = write_config(dir.path(), &sim, &format!("url = \"{url}\""));
    let dest = hsync::destination::sqlite::SqliteDestination::connect(&url).await.unwrap();
    killed_load_resumes(&sim, &config, &dest).await;
}

#[tokio::test]
async fn a_killed_history_load_resumes_from_its_last_chunk_in_postgres() {
    let Some(pg) = FreshPostgres::create().await else { return };
    let sim = Sim::start(crate::support::unlimited(kill_portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim, &pg.destination_keys());
    let dest = hsync::destination::postgres::PostgresDestination::connect(&pg.url, &pg.data_schema, &pg.state_schema)
        .await
        .unwrap();
    killed_load_resumes(&sim, &config, &dest).await;
    pg.drop_schemas().await;
}
