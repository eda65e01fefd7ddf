//! `hsync status` and `hsync verify` as real subprocesses against the simulator and real SQLite
//! and Postgres: after a backfill and a CDC pass, `status --json` shows every stream's phase,
//! watermark and rows and the budget used (without a single HubSpot call, and without a token);
//! `verify` matches; then the warehouse is broken behind hsync's back (a row deleted, a fake row
//! inserted, a cursor set far in the past) and HubSpot changes without a CDC pass, and `verify`
//! exits 5 naming the missing, extra and stale ids. A rollup HubSpot changes without moving
//! last-modified is a stale calculated value to `verify` until `hsync refresh-calculated` runs.
//! A failing run shows up as the stream's last error.

use std::path::{Path, PathBuf};
use std::process::Output;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{explain, hsync, hsync_with, stdout, FreshPostgres, Sim, TOKEN_VAR};

const BUDGET: u64 = 50_000;
/// An id far above anything the simulator hands out.
const FAKE_ID: i64 = 987_654_321_012;

fn write_config(dir: &Path, base_url: &str, destination: &str) -> PathBuf {
    let path = dir.join("hsync.toml");
    let text = format!(
        "[hubspot]\nbase_url = \"{base_url}\"\ntoken_env = \"{TOKEN_VAR}\"\n\n[limits]\ndaily_budget = {BUDGET}\n\n\
         [destination]\n{destination}\n\n[sync]\nobjects = [\"contacts\", \"cars\"]\nsettle_lag_secs = 2\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn json_of(o: &Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("not JSON ({e}): {}", explain(o)))
}

fn stream<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == name)
        .unwrap_or_else(|| panic!("no stream {name} in {status}"))
}

fn object<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["object"] == name)
        .unwrap_or_else(|| panic!("no object {name} in {report}"))
}

fn examples(report: &Value, object_name: &str, kind: &str) -> Vec<i64> {
    object(report, object_name)[kind]["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().parse().unwrap())
        .collect()
}

async fn request_count(sim: &Sim) -> u64 {
    sim.admin(Method::GET, "/_sim/requests", None).await.1["count"].as_u64().unwrap()
}

/// Direct access to the warehouse, behind hsync's back.
enum Warehouse {
    Sqlite(PathBuf),
    Postgres { url: String, schema: String },
}

impl Warehouse {
    fn table(&self, table: &str) -> String {
        match self {
            Warehouse::Sqlite(_) => format!("\"{table}\""),
            Warehouse::Postgres { schema, .. } => format!("\"{schema}\".\"{table}\""),
        }
    }

    /// Deletes a row, inserts a fake live row and moves a row's cursor to 2001.
    async fn break_behind_hsyncs_back(&self, table: &str, delete: i64, stale: i64) {
        use sqlx::{AssertSqlSafe, Connection};
        let t = self.table(table);
        let delete_sql = format!("delete from {t} where id = $1");
        let insert_sql = format!("insert into {t} (id, _hsync_cursor, _hsync_synced_at) values ($1, $2, $2)");
        let stale_sql = format!("update {t} set _hsync_cursor = $1 where id = $2");
        let past = chrono::DateTime::parse_from_rfc3339("2001-01-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
        match self {
            Warehouse::Sqlite(path) => {
                let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
                let past = "2001-01-01T00:00:00.000Z";
                let now = "2026-01-01T00:00:00.000Z";
                let done = sqlx::query(AssertSqlSafe(delete_sql)).bind(delete).execute(&mut c).await.unwrap();
                assert_eq!(done.rows_affected(), 1);
                sqlx::query(AssertSqlSafe(insert_sql)).bind(FAKE_ID).bind(now).execute(&mut c).await.unwrap();
                let done = sqlx::query(AssertSqlSafe(stale_sql)).bind(past).bind(stale).execute(&mut c).await.unwrap();
                assert_eq!(done.rows_affected(), 1);
                c.close().await.unwrap();
            }
            Warehouse::Postgres { url, .. } => {
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                let now = chrono::Utc::now();
                let done = sqlx::query(AssertSqlSafe(delete_sql)).bind(delete).execute(&mut c).await.unwrap();
                assert_eq!(done.rows_affected(), 1);
                sqlx::query(AssertSqlSafe(insert_sql)).bind(FAKE_ID).bind(now).execute(&mut c).await.unwrap();
                let done = sqlx::query(AssertSqlSafe(stale_sql)).bind(past).bind(stale).execute(&mut c).await.unwrap();
                assert_eq!(done.rows_affected(), 1);
                c.close().await.unwrap();
            }
        }
    }
}

/// `destination` is the body of the `[destination]` section.
async fn scenario(destination: &str, warehouse: Warehouse) {
    let sim = Sim::start(crate::support::unlimited(crate::support::small_portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.handle.base_url(), destination);

    // Before anything ran, status says so (and works).
    let empty = hsync(&config, &["status"]).await;
    assert_eq!(empty.status.code(), Some(0), "{}", explain(&empty));
    assert!(stdout(&empty).contains("no stream has a checkpoint yet"), "{}", explain(&empty));

    let backfill = hsync(&config, &["backfill"]).await;
    assert_eq!(backfill.status.code(), Some(0), "{}", explain(&backfill));
    let cdc = hsync(&config, &["cdc", "--once"]).await;
    assert_eq!(cdc.status.code(), Some(0), "{}", explain(&cdc));
    let contacts = sim.truth_ids("contacts").await;
    let cars = sim.truth_ids("cars").await;

    // Status: read from the state store only, with no token at all.
    let before = request_count(&sim).await;
    let status_run = hsync_with(&config, &["status", "--json"], None).await;
    assert_eq!(status_run.status.code(), Some(0), "{}", explain(&status_run));
    assert_eq!(request_count(&sim).await, before, "status made no HubSpot call");
    let status = json_of(&status_run);
    for (table, count) in [("contacts", contacts.len()), ("cars", cars.len())] {
        let backfill = stream(&status, &format!("backfill:{table}"));
        assert_eq!(backfill["kind"], "backfill");
        assert_eq!(backfill["object"], table);
        assert_eq!(backfill["phase"], "done", "{backfill}");
        assert_eq!(backfill["rows"], json!(count), "{backfill}");
        assert_eq!(backfill["last_run"]["status"], "ok", "{backfill}");
        assert_eq!(backfill["last_run"]["rows"], json!(count), "{backfill}");
        assert_eq!(backfill["last_error"], Value::Null);
        let cdc = stream(&status, &format!("cdc:{table}"));
        assert_eq!(cdc["phase"], "polling", "{cdc}");
        let watermark = cdc["watermark"].as_str().expect("an ISO watermark");
        chrono::DateTime::parse_from_rfc3339(watermark).expect("the watermark is RFC 3339");
        assert!(cdc["lag_seconds"].as_i64().is_some_and(|l| l >= 0), "{cdc}");
        assert_eq!(cdc["last_run"]["status"], "ok", "{cdc}");
    }
    let budget = &status["budget"];
    let used = budget["used"].as_u64().unwrap();
    assert!(used > 0, "the ledger counted the calls: {budget}");
    assert_eq!(budget["allowed"], json!(BUDGET));
    assert_eq!(budget["left"], json!(BUDGET - used));
    assert_eq!(budget["exhausted"], false);

    let table = hsync(&config, &["status"]).await;
    assert_eq!(table.status.code(), Some(0), "{}", explain(&table));
    let text = stdout(&table);
    assert!(text.contains("backfill:contacts") && text.contains("backfill done"), "{text}");
    assert!(text.contains("cdc polling") && text.contains(&format!("of {BUDGET} calls used")), "{text}");

    // The warehouse matches HubSpot.
    let clean = hsync(&config, &["verify"]).await;
    assert_eq!(clean.status.code(), Some(0), "{}", explain(&clean));
    assert!(stdout(&clean).contains("matches"), "{}", explain(&clean));
    let clean = json_of(&hsync(&config, &["verify", "--json"]).await);
    assert_eq!(clean["matches"], true, "{clean}");
    assert_eq!(object(&clean, "contacts")["hubspot_total"], json!(contacts.len()));
    assert_eq!(object(&clean, "contacts")["warehouse_live"], json!(contacts.len()));
    assert_eq!(object(&clean, "contacts")["hubspot_swept"], json!(contacts.len()));

    let calculated = &object(&clean, "contacts")["calculated"];
    assert!(calculated["values_compared"].as_u64().is_some_and(|n| n > 0), "{clean}");
    assert!(calculated["properties"].as_array().unwrap().contains(&json!("num_associated_deals")), "{clean}");

    // A rollup moves without last-modified (a deal linked to a contact): CDC cannot see it, the
    // calculated sample of verify can, and `hsync refresh-calculated` brings it back.
    let contact = contacts.iter().nth(5).copied().unwrap();
    let deal = sim.truth_ids("deals").await.into_iter().next().unwrap();
    let link = json!({"from": "deals", "fromId": deal, "to": "contacts", "toId": contact});
    let (status, body) = sim.admin(Method::POST, "/_sim/associations", Some(&link)).await;
    assert!(status.is_success(), "{body}");
    let every = ["verify", "--json", "--object", "contacts", "--calculated-sample", "1000"];
    let moved = hsync(&config, &every).await;
    assert_eq!(moved.status.code(), Some(5), "a stale rollup differs: {}", explain(&moved));
    let report = json_of(&moved);
    let contacts_report = object(&report, "contacts");
    assert_eq!(contacts_report["calculated"]["stale"]["examples"], json!([format!("{contact}/num_associated_deals")]));
    assert_eq!(contacts_report["calculated"]["records_sampled"], json!(contacts.len()), "{report}");
    for kind in ["missing", "extra", "stale"] {
        assert_eq!(contacts_report[kind]["count"], 0, "the row's last-modified did not move: {report}");
    }
    let text = stdout(&hsync(&config, &["verify", "--object", "contacts", "--calculated-sample", "1000"]).await);
    assert!(text.contains(&format!("(ids {contact}/num_associated_deals)")), "{text}");
    let refresh = hsync(&config, &["refresh-calculated", "--object", "contacts"]).await;
    assert_eq!(refresh.status.code(), Some(0), "{}", explain(&refresh));
    let fresh = json_of(&hsync(&config, &every).await);
    assert_eq!(fresh["matches"], true, "{fresh}");

    // Break the warehouse behind hsync's back.
    let mut ids = contacts.iter().map(|id| i64::try_from(*id).unwrap());
    let (deleted, stale) = (ids.next().unwrap(), ids.nth(10).unwrap());
    warehouse.break_behind_hsyncs_back("contacts", deleted, stale).await;
    let broken = hsync(&config, &["verify", "--json"]).await;
    assert_eq!(broken.status.code(), Some(5), "differences exit 5: {}", explain(&broken));
    let report = json_of(&broken);
    assert_eq!(report["matches"], false);
    assert_eq!(examples(&report, "contacts", "missing"), [deleted], "{report}");
    assert_eq!(examples(&report, "contacts", "extra"), [FAKE_ID], "{report}");
    assert_eq!(examples(&report, "contacts", "stale"), [stale], "{report}");
    assert_eq!(object(&report, "contacts")["warehouse_live"], json!(contacts.len()));
    assert_eq!(object(&report, "cars")["matches"], true, "{report}");

    // HubSpot changes and no CDC pass runs.
    let created = sim.admin_create("contacts", json!({"email": "verify@example.com"})).await;
    let text = hsync(&config, &["verify", "--object", "contacts"]).await;
    assert_eq!(text.status.code(), Some(5), "{}", explain(&text));
    let out = stdout(&text);
    assert!(out.contains(&format!("contacts: 2 missing from the warehouse (ids {deleted}, {created})")), "{out}");
    assert!(out.contains(&format!("(ids {FAKE_ID})")) && out.contains(&format!("(ids {stale})")), "{out}");
    assert!(!out.contains("cars"), "only the object asked for: {out}");
    let counts = json_of(&hsync(&config, &["verify", "--counts-only", "--json", "--object", "contacts"]).await);
    let contacts_report = object(&counts, "contacts");
    assert_eq!(contacts_report["hubspot_total"], json!(contacts.len() + 1), "{counts}");
    assert_eq!(contacts_report["ids_compared"], false);
    assert_eq!(contacts_report["matches"], false);

    // A failing run is the stream's last error; the token never shows.
    const WRONG: &str = "pat-na1-00000000-0000-0000-0000-wrongwrongwr";
    let failed = hsync_with(&config, &["cdc", "--once", "--object", "contacts"], Some(WRONG)).await;
    assert_eq!(failed.status.code(), Some(77), "{}", explain(&failed));
    let status = json_of(&hsync(&config, &["status", "--json"]).await);
    let cdc = stream(&status, "cdc:contacts");
    assert_eq!(cdc["last_run"]["status"], "failed", "{cdc}");
    let message = cdc["last_error"]["message"].as_str().expect("the failure's message");
    assert!(message.contains(TOKEN_VAR), "names the token's origin: {message}");
    assert!(!status.to_string().contains("wrongwrongwr"), "the token leaked: {status}");
    assert_eq!(stream(&status, "cdc:cars")["last_error"], Value::Null, "other streams are unaffected");
    let table = stdout(&hsync(&config, &["status"]).await);
    let line = table.lines().find(|l| l.starts_with("cdc:contacts")).unwrap();
    assert!(line.contains("failed") && line.contains("401"), "{table}");
}

#[tokio::test]
async fn status_and_verify_against_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("warehouse.db");
    scenario(&format!("url = \"sqlite://{}\"", db.display()), Warehouse::Sqlite(db.clone())).await;
}

#[tokio::test]
async fn status_and_verify_against_postgres() {
    let Some(pg) = FreshPostgres::create().await else { return };
    scenario(&pg.destination_keys(), Warehouse::Postgres { url: pg.url.clone(), schema: pg.data_schema.clone() }).await;
    pg.drop_schemas().await;
}
