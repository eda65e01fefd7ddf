//! `hsync push` against the simulator: rows from a query on a real SQLite file or from a CSV
//! file, checked before the API, written once, each row's outcome in `push_results`, and a
//! killed push resumed without writing any record twice.

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::cli::{command, explain, hsync, stdout, write_config};
use crate::support::{logged_since, next_seq, unlimited, Sim};

/// A contacts property the tests push numbers into.
async fn add_lead_score(sim: &Sim) {
    let property = json!({"name": "lead_score", "label": "Lead score", "type": "number", "fieldType": "number"});
    sim.admin_ok(Method::POST, "/_sim/properties/contacts", Some(&property)).await;
}

/// The simulator's live contacts with `email` (any case), from ground truth.
async fn contacts_with_email(sim: &Sim, email: &str) -> Vec<Value> {
    let truth = sim.truth("contacts").await;
    truth["objects"]["contacts"]["live"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["properties"]["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email)))
        .cloned()
        .collect()
}

async fn sqlite(db: &Path) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", db.display())).await.unwrap()
}

/// `(row_number, outcome, reason)` of every recorded row of the push's latest run.
async fn results(db: &Path, run_id: &str) -> Vec<(i64, String, Option<String>)> {
    sqlx::query_as("select row_number, outcome, reason from push_results where run_id = ?1 order by row_number")
        .bind(run_id)
        .fetch_all(&mut sqlite(db).await)
        .await
        .unwrap()
}

fn run_id(out: &str) -> String {
    let start = out.find("(run ").expect("the summary names the run") + 5;
    out[start..].split(')').next().unwrap().to_owned()
}

/// The batch writes the simulator answered since `since`: (status, body).
async fn writes_since(sim: &Sim, since: u64) -> Vec<(u64, String)> {
    logged_since(sim, since)
        .await
        .into_iter()
        .filter(|e| e["path"].as_str().is_some_and(|p| p.contains("/batch/upsert") || p.contains("/batch/update")))
        .map(|e| (e["status"].as_u64().unwrap(), e["body"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// A table of valid rows, bad emails, a bad phone, an unknown option, a bad number and a
/// duplicate: valid rows land once (one update, two creations), every other row is reported
/// with its reason and was never sent, and HubSpot answered no write with an error. Running it
/// again writes the same three records and creates none; `--dry-run` writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_from_a_query_writes_valid_rows_once_and_reports_every_other_row() {
    let sim = Sim::start(unlimited(hsync_sim::PortalSpec { contacts: 20, ..Default::default() })).await;
    add_lead_score(&sim).await;
    let existing = sim.truth("contacts").await["objects"]["contacts"]["live"][0]["properties"]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("warehouse.db");
    {
        let mut conn = sqlite(&db).await;
        sqlx::query("create table scores (email text, firstname text, phone text, stage text, lead_score text)")
            .execute(&mut conn)
            .await
            .unwrap();
        let rows = [
            (existing.as_str(), "Updated", "+1 415 555 2671", "customer", "10"),
            ("new.one@example.com", "Created", "(415) 555-2672", "lead", "20.5"),
            ("not-an-email", "Bad", "", "lead", "1"),
            ("bad.phone@example.com", "Bad", "12", "lead", "1"),
            ("bad.stage@example.com", "Bad", "", "platinum", "1"),
            ("NEW.ONE@example.com", "Duplicate", "", "lead", "1"),
            ("bad.number@example.com", "Bad", "", "lead", "1e5"),
            ("new.two@example.com", "Created", "+44 20 7946 0958", "", ""),
        ];
        for (email, first, phone, stage, score) in rows {
            sqlx::query("insert into scores values (?1, ?2, nullif(?3, ''), nullif(?4, ''), nullif(?5, ''))")
                .bind(email)
                .bind(first)
                .bind(phone)
                .bind(stage)
                .bind(score)
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
    let config = write_config(
        dir.path(),
        &sim.handle.base_url(),
        &format!(
            "[destination]\nurl = \"sqlite://{}\"\n\n[sync]\nobjects = [\"contacts\"]\n\n\
             [push.scores]\nobject = \"contacts\"\nid_property = \"email\"\ndefault_region = \"US\"\n\
             query = \"select email, firstname, phone, stage, lead_score from scores order by rowid\"\n\
             [push.scores.columns]\nstage = \"lifecyclestage\"\n",
            db.display()
        ),
    );

    let before = next_seq(&sim).await;
    let dry = hsync(&config, &["push", "scores", "--dry-run"]).await;
    assert_eq!(dry.status.code(), Some(5), "{}", explain(&dry));
    assert!(stdout(&dry).contains("3 would be sent, 5 rejected"), "{}", explain(&dry));
    assert!(writes_since(&sim, before).await.is_empty(), "a dry run writes nothing to HubSpot");

    let first = hsync(&config, &["push", "scores"]).await;
    assert_eq!(first.status.code(), Some(5), "rows were rejected: {}", explain(&first));
    let out = stdout(&first);
    assert!(
        out.contains("8 rows: 2 created, 1 updated, 0 unchanged, 5 rejected, 0 failed; 2 calls"),
        "one read of the batch's records, one write: {}",
        explain(&first)
    );
    assert!(!out.contains("platinum") && !out.contains("1e5"), "reasons never carry values: {out}");
    let writes = writes_since(&sim, before).await;
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].0, 200, "no write was refused for its data: {writes:?}");
    for never_sent in ["not-an-email", "bad.phone@", "bad.stage@", "bad.number@", "NEW.ONE@"] {
        assert!(!writes[0].1.contains(never_sent), "{never_sent} was sent: {}", writes[0].1);
    }

    let updated = contacts_with_email(&sim, &existing).await;
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0]["properties"]["firstname"], "Updated");
    assert_eq!(updated[0]["properties"]["phone"], "+14155552671");
    assert_eq!(updated[0]["properties"]["lifecyclestage"], "customer");
    assert_eq!(updated[0]["properties"]["lead_score"], "10");
    let created = contacts_with_email(&sim, "new.one@example.com").await;
    assert_eq!(created.len(), 1, "created once; the duplicate row was not sent");
    assert_eq!(created[0]["properties"]["firstname"], "Created");
    assert_eq!(contacts_with_email(&sim, "new.two@example.com").await[0]["properties"]["phone"], "+442079460958");
    for refused in ["bad.phone@example.com", "bad.stage@example.com", "bad.number@example.com"] {
        assert!(contacts_with_email(&sim, refused).await.is_empty(), "{refused} never reached HubSpot");
    }

    let recorded = results(&db, &run_id(&out)).await;
    let outcomes: Vec<&str> = recorded.iter().map(|(_, o, _)| o.as_str()).collect();
    assert_eq!(
        outcomes,
        ["updated", "created", "rejected", "rejected", "rejected", "rejected", "rejected", "created"],
        "{recorded:?}"
    );
    let reason = |row: usize| recorded[row].2.clone().unwrap_or_default();
    assert!(reason(2).starts_with("email: not an email address"), "{recorded:?}");
    assert!(reason(3).starts_with("phone: "), "{recorded:?}");
    assert!(reason(4).starts_with("lifecyclestage: not one of"), "{recorded:?}");
    assert!(reason(5).contains("as row 2"), "{recorded:?}");
    assert!(reason(6).starts_with("lead_score: not a number"), "{recorded:?}");

    let before_again = next_seq(&sim).await;
    let again = hsync(&config, &["push", "scores"]).await;
    let out = stdout(&again);
    assert!(out.contains("0 created, 0 updated, 3 unchanged, 5 rejected"), "{}", explain(&again));
    assert!(writes_since(&sim, before_again).await.is_empty(), "records HubSpot holds as they are are not written");
    assert_eq!(contacts_with_email(&sim, "new.one@example.com").await.len(), 1, "no duplicate on a rerun");
    let status = hsync(&config, &["status", "--json"]).await;
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    let push = status["streams"].as_array().unwrap().iter().find(|s| s["stream"] == "push:scores").cloned();
    assert_eq!(push.as_ref().map(|p| p["phase"].clone()), Some(json!("done")), "{status:#}");
}

/// A push of 1,000 rows from a CSV file killed mid-way: the rerun resumes after the last
/// recorded batch, every row ends with one outcome, and every email is one record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_push_resumes_after_its_last_recorded_batch_and_writes_each_record_once() {
    let sim = Sim::start(unlimited(hsync_sim::PortalSpec { contacts: 5, ..Default::default() })).await;
    add_lead_score(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("warehouse.db");
    let csv = dir.path().join("scores.csv");
    let mut text = "email,lead_score\n".to_owned();
    for i in 0..1_000 {
        text.push_str(&format!("user{i:04}@example.com,{i}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let config = write_config(
        dir.path(),
        &sim.handle.base_url(),
        &format!(
            "[destination]\nurl = \"sqlite://{}\"\n\n[sync]\nobjects = [\"contacts\"]\n\n\
             [push.bulk]\nobject = \"contacts\"\nid_property = \"email\"\nfile = \"{}\"\n",
            db.display(),
            csv.display()
        ),
    );
    // Each write takes 400 ms: the kill lands between batches or inside one.
    let slow = json!([{"kind": "slow", "delay_ms": 400, "target": "general"}]);
    sim.admin_ok(Method::PUT, "/_sim/faults", Some(&slow)).await;
    let mut child = command(Some(&config), &["push", "bulk"], Some(hsync_sim::DEFAULT_TOKEN)).spawn().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let done: Option<i64> = sqlx::query_scalar(
            "select cast(json_extract(state, '$.rows') as integer) from _hsync_checkpoints where stream = 'push:bulk'",
        )
        .fetch_optional(&mut sqlite(&db).await)
        .await
        .ok()
        .flatten();
        if done.is_some_and(|d| d >= 300) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the push never recorded three batches");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    sim.admin_ok(Method::PUT, "/_sim/faults", Some(&json!([]))).await;

    let rerun = hsync(&config, &["push", "bulk"]).await;
    assert_eq!(rerun.status.code(), Some(0), "{}", explain(&rerun));
    let out = stdout(&rerun);
    assert!(out.contains("resumed after row "), "{out}");
    let run = run_id(&out);
    let recorded = results(&db, &run).await;
    assert_eq!(recorded.len(), 1_000, "every row has one outcome");
    // A batch HubSpot wrote before the kill and hsync never recorded is read back unchanged.
    assert!(recorded.iter().all(|(_, o, _)| ["created", "updated", "unchanged"].contains(&o.as_str())), "{recorded:?}");
    let truth = sim.truth("contacts").await;
    let emails: Vec<String> = truth["objects"]["contacts"]["live"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["properties"]["email"].as_str())
        .filter(|e| e.starts_with("user"))
        .map(str::to_owned)
        .collect();
    let unique: std::collections::BTreeSet<&String> = emails.iter().collect();
    assert_eq!((emails.len(), unique.len()), (1_000, 1_000), "each email is one record");
}

/// A push while the daemon syncs the same Postgres warehouse, under a daily budget of 25
/// calls: they share the persisted ledger, so HubSpot sees at most 25 calls however the two
/// interleave, and the push stops with the budget spent (exit 75) rather than going over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_beside_a_running_daemon_stays_within_the_shared_daily_budget() {
    let Some(pg) = crate::support::FreshPostgres::create().await else { return };
    let sim = Sim::start(unlimited(hsync_sim::PortalSpec { contacts: 6_000, ..Default::default() })).await;
    add_lead_score(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("scores.csv");
    let mut text = "email,lead_score\n".to_owned();
    for i in 0..3_000 {
        text.push_str(&format!("budget{i:04}@example.com,{i}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let config = write_config(
        dir.path(),
        &sim.handle.base_url(),
        &format!(
            "[destination]\n{}\n\n[limits]\ndaily_budget = 25\n\n[sync]\nobjects = [\"contacts\"]\n\n\
             [daemon]\nlisten = \"127.0.0.1:0\"\n\n\
             [push.bulk]\nobject = \"contacts\"\nid_property = \"email\"\nfile = \"{}\"\n",
            pg.destination_keys(),
            csv.display()
        ),
    );
    let before = next_seq(&sim).await;
    let mut daemon = command(Some(&config), &["run"], Some(hsync_sim::DEFAULT_TOKEN)).spawn().unwrap();
    // The daemon's backfill is under way before the push starts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !logged_since(&sim, before).await.iter().any(|e| e["path"].as_str().is_some_and(|p| p.ends_with("/search"))) {
        assert!(tokio::time::Instant::now() < deadline, "the daemon never searched");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let push = hsync(&config, &["push", "bulk"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    daemon.start_kill().unwrap();
    daemon.wait().await.unwrap();
    let logged = logged_since(&sim, before).await;
    // The push's calls: each batch's read of the records it holds, and its upsert.
    let pushed = logged
        .iter()
        .filter(|e| e["path"].as_str().is_some_and(|p| p.ends_with("/batch/upsert") || p.ends_with("/batch/read")))
        .count();
    assert!(logged.len() <= 25, "{} calls for a budget of 25: {}", logged.len(), explain(&push));
    assert!(pushed > 0 && pushed < logged.len(), "both spent the budget: {pushed} push calls of {}", logged.len());
    assert_eq!(push.status.code(), Some(75), "the push stops with the budget spent: {}", explain(&push));
    assert!(String::from_utf8_lossy(&push.stderr).contains("budget spent"), "{}", explain(&push));
    pg.drop_schemas().await;
}

/// The push query runs on Postgres with hsync's data schema first on the search path (tables
/// unqualified) in a read-only transaction, and on SQLite with writes refused: a query that
/// would change the warehouse fails as a configuration problem (exit 78) and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_query_reads_unqualified_tables_and_can_never_write() {
    let Some(pg) = crate::support::FreshPostgres::create().await else { return };
    let sim = Sim::start(unlimited(hsync_sim::PortalSpec { contacts: 3, ..Default::default() })).await;
    add_lead_score(&sim).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("warehouse.db");
    {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&pg.url).await.unwrap();
        for sql in [
            format!("create schema \"{}\"", pg.data_schema),
            format!("create table \"{}\".scores (email text, score numeric, seen timestamptz)", pg.data_schema),
            format!(
                "insert into \"{}\".scores values ('pg.one@example.com', 12.5, '2026-03-01 10:00:00+00')",
                pg.data_schema
            ),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
        }
        let mut lite = sqlite(&db).await;
        sqlx::query("create table scores (email text, lead_score real)").execute(&mut lite).await.unwrap();
        sqlx::query("insert into scores values ('lite.one@example.com', 7)").execute(&mut lite).await.unwrap();
    }
    let push = |destination: String, query: &str| {
        format!(
            "[destination]\n{destination}\n\n[sync]\nobjects = [\"contacts\"]\n\n\
             [push.p]\nobject = \"contacts\"\nid_property = \"email\"\nquery = \"{query}\"\n"
        )
    };
    let pg_dir = tempfile::tempdir().unwrap();
    let pg_config = write_config(
        pg_dir.path(),
        &sim.handle.base_url(),
        &push(pg.destination_keys(), "select email, score as lead_score from scores;"),
    );
    let out = hsync(&pg_config, &["push", "p"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert_eq!(contacts_with_email(&sim, "pg.one@example.com").await[0]["properties"]["lead_score"], "12.5");
    let lite_config = write_config(
        dir.path(),
        &sim.handle.base_url(),
        &push(format!("url = \"sqlite://{}\"", db.display()), "select email, lead_score from scores"),
    );
    let out = hsync(&lite_config, &["push", "p"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    assert_eq!(contacts_with_email(&sim, "lite.one@example.com").await[0]["properties"]["lead_score"], "7");

    for (config, query) in
        [(&pg_config, "delete from scores returning email"), (&lite_config, "delete from scores returning email")]
    {
        let text = std::fs::read_to_string(config).unwrap();
        let text =
            text.replace(text.lines().find(|l| l.starts_with("query = ")).unwrap(), &format!("query = \"{query}\""));
        std::fs::write(config, text).unwrap();
        let out = hsync(config, &["push", "p"]).await;
        assert_eq!(out.status.code(), Some(78), "{}", explain(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("push query"), "{}", explain(&out));
    }
    let kept: i64 = sqlx::query_scalar("select count(*) from scores").fetch_one(&mut sqlite(&db).await).await.unwrap();
    assert_eq!(kept, 1, "the SQLite rows are still there");
    let kept: i64 = {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&pg.url).await.unwrap();
        let sql = format!("select count(*) from \"{}\".scores", pg.data_schema);
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut conn).await.unwrap()
    };
    assert_eq!(kept, 1, "the Postgres rows are still there");
    pg.drop_schemas().await;
}

/// A unique text property on `object`, so a push can upsert its records by it (tasks and
/// tickets have none of their own).
async fn add_unique_key(sim: &Sim, object: &str, name: &str) {
    let property = json!({"name": name, "label": name, "type": "string", "fieldType": "text", "hasUniqueValue": true});
    sim.admin_ok(Method::POST, &format!("/_sim/properties/{object}"), Some(&property)).await;
}

/// The ids of the `to_type` records the simulator's `from_type` record `from_id` is associated with.
fn associated(truth: &Value, from_type: &str, from_id: &str, to_type: &str) -> Vec<String> {
    truth["associations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["fromType"] == from_type && e["fromId"] == from_id && e["toType"] == to_type)
        .map(|e| e["toId"].as_str().unwrap().to_owned())
        .collect()
}

/// The live records of `object` whose `property` is `value`, from ground truth.
fn live_with(truth: &Value, object: &str, property: &str, value: &str) -> Vec<Value> {
    truth["objects"][object]["live"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["properties"][property].as_str().is_some_and(|v| v.eq_ignore_ascii_case(value)))
        .cloned()
        .collect()
}

/// Associations from columns and engagements from rows: contacts associated with the company
/// of their domain (found by search; a company that does not exist yet, or a domain two
/// companies share, is reported and associated on a later run once it exists); tasks upserted
/// by a unique key, attached to their company and given its owner, never created without it;
/// tickets attached to the contact whose email address or phone number is in their text, never
/// created without one. A run that writes everything again (`--restart`, as after a crash that
/// lost the checkpoint) creates nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn associations_tasks_and_tickets_follow_their_rows_and_reruns_create_nothing() {
    let sim = Sim::start(unlimited(hsync_sim::PortalSpec {
        contacts: 3,
        companies: 3,
        deals: 0,
        tickets: 0,
        ..Default::default()
    }))
    .await;
    let truth = sim.truth("companies").await;
    let owner = truth["owners"][0]["id"].as_str().map_or_else(|| truth["owners"][0]["id"].to_string(), str::to_owned);
    let acme =
        sim.admin_create("companies", json!({"name": "Acme", "domain": "acme.io", "hubspot_owner_id": owner})).await;
    sim.admin_create("companies", json!({"name": "Twin A", "domain": "twin.io"})).await;
    sim.admin_create("companies", json!({"name": "Twin B", "domain": "twin.io"})).await;
    let caller = sim.admin_create("contacts", json!({"email": "caller@example.com", "phone": "+1 415 555 0100"})).await;
    add_unique_key(&sim, "tasks", "alert_key").await;
    add_unique_key(&sim, "tickets", "ext_id").await;
    // Search is eventually consistent: let the index take the new records in first.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while sim.truth("companies,contacts").await["objects"]
        .as_object()
        .unwrap()
        .values()
        .any(|o| o["pendingIndexWrites"] == true)
    {
        assert!(tokio::time::Instant::now() < deadline, "the search index never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("warehouse.db");
    {
        let mut conn = sqlite(&db).await;
        for statement in [
            "create table people (email text, firstname text, company_domain text)",
            "insert into people values ('ada@example.com', 'Ada', 'acme.io'), ('bob@example.com', 'Bob', 'new.io'), \
             ('cy@example.com', 'Cy', 'twin.io')",
            "create table alerts (alert_key text, due text, subject text, company_domain text)",
            "insert into alerts values ('k1', '2026-12-09T09:00:00Z', 'Renewal risk', 'acme.io'), \
             ('k2', '2026-12-09T09:00:00Z', 'Churn risk', 'nowhere.io')",
            "create table issues (ext_id text, subject text, body text)",
            "insert into issues values ('t1', 'Login', 'Customer Ada@Example.com cannot log in'), \
             ('t2', 'Callback', 'Please call back on (415) 555-0100 today'), ('t3', 'Orphan', 'no contact details')",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut conn).await.unwrap();
        }
    }
    let config = write_config(
        dir.path(),
        &sim.handle.base_url(),
        &format!(
            "[destination]\nurl = \"sqlite://{}\"\n\n[sync]\nobjects = [\"contacts\"]\n\n\
             [push.people]\nobject = \"contacts\"\nid_property = \"email\"\n\
             query = \"select email, firstname, company_domain from people order by email\"\n\
             [push.people.associations.company]\ncolumn = \"company_domain\"\nto = \"companies\"\nby = \"domain\"\n\n\
             [push.alerts]\nobject = \"tasks\"\nid_property = \"alert_key\"\nskip_unchanged = false\n\
             query = \"select alert_key, due as hs_timestamp, subject as hs_task_subject, company_domain from alerts order by alert_key\"\n\
             [push.alerts.associations.company]\ncolumn = \"company_domain\"\nto = \"companies\"\nby = \"domain\"\n\
             required = true\nowner = true\n\n\
             [push.issues]\nobject = \"tickets\"\nid_property = \"ext_id\"\ndefault_region = \"US\"\n\
             query = \"select ext_id, subject, body as content, body as contact_text from issues order by ext_id\"\n\
             [push.issues.associations.by_email]\ncolumn = \"contact_text\"\nto = \"contacts\"\nfind = \"email\"\nrequired = true\n\
             [push.issues.associations.by_phone]\ncolumn = \"contact_text\"\nto = \"contacts\"\nfind = \"phone\"\nrequired = true\n",
            db.display()
        ),
    );

    // Contacts and their companies.
    let start = next_seq(&sim).await;
    let people = hsync(&config, &["push", "people"]).await;
    assert_eq!(people.status.code(), Some(5), "two rows lack their company: {}", explain(&people));
    let out = stdout(&people);
    assert!(out.contains("3 rows: 3 created, 0 updated, 0 unchanged, 0 rejected"), "{}", explain(&people));
    assert!(out.contains("2 written rows lack an association"), "{out}");
    let recorded = results(&db, &run_id(&out)).await;
    let reason = |row: usize| recorded[row].2.clone().unwrap_or_default();
    assert!(reason(1).contains("company: no companies record has this domain"), "{recorded:?}");
    assert!(reason(2).contains("2 companies records have this domain"), "{recorded:?}");
    assert!(!out.contains("new.io") && !out.contains("twin.io"), "reasons never carry values: {out}");
    let truth = sim.truth("contacts,companies").await;
    let ada = live_with(&truth, "contacts", "email", "ada@example.com")[0]["id"].as_str().unwrap().to_owned();
    let bob = live_with(&truth, "contacts", "email", "bob@example.com")[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(associated(&truth, "contacts", &ada, "companies"), [acme.to_string()]);
    assert!(associated(&truth, "contacts", &bob, "companies").is_empty());

    // The company turns up; the next run associates Bob and writes nothing else.
    let new_co = sim.admin_create("companies", json!({"name": "New", "domain": "new.io"})).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while sim.truth("companies").await["objects"]["companies"]["pendingIndexWrites"] == true {
        assert!(tokio::time::Instant::now() < deadline, "the search index never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = next_seq(&sim).await;
    let again = hsync(&config, &["push", "people"]).await;
    assert!(stdout(&again).contains("0 created, 0 updated, 3 unchanged"), "{}", explain(&again));
    assert!(writes_since(&sim, before).await.is_empty(), "unchanged records are not written");
    let truth = sim.truth("contacts,companies").await;
    assert_eq!(associated(&truth, "contacts", &bob, "companies"), [new_co.to_string()]);
    assert_eq!(associated(&truth, "contacts", &ada, "companies"), [acme.to_string()], "associated once");
    assert_eq!(live_with(&truth, "contacts", "email", "bob@example.com").len(), 1);

    // Tasks for the company's owner, keyed so a rerun never creates one twice.
    let alerts = hsync(&config, &["push", "alerts"]).await;
    assert_eq!(alerts.status.code(), Some(5), "{}", explain(&alerts));
    let out = stdout(&alerts);
    assert!(out.contains("2 rows: 1 created, 0 updated, 0 unchanged, 1 rejected"), "{}", explain(&alerts));
    assert!(out.contains("the record is not written without it"), "{out}");
    for _ in 0..2 {
        let rerun = hsync(&config, &["push", "alerts", "--restart"]).await;
        assert!(stdout(&rerun).contains("0 created, 1 updated"), "{}", explain(&rerun));
    }
    let truth = sim.truth("tasks,companies").await;
    let tasks = live_with(&truth, "tasks", "alert_key", "k1");
    assert_eq!(tasks.len(), 1, "one task for k1 after three runs");
    assert_eq!(tasks[0]["properties"]["hubspot_owner_id"].as_str(), Some(owner.as_str()), "the company's owner");
    assert_eq!(tasks[0]["properties"]["hs_task_subject"], "Renewal risk");
    let task = tasks[0]["id"].as_str().unwrap();
    assert_eq!(associated(&truth, "tasks", task, "companies"), [acme.to_string()]);
    assert!(live_with(&truth, "tasks", "alert_key", "k2").is_empty(), "never created without its company");

    // Tickets with the contact whose email or phone number is in their text.
    let issues = hsync(&config, &["push", "issues"]).await;
    assert_eq!(issues.status.code(), Some(5), "{}", explain(&issues));
    assert!(stdout(&issues).contains("3 rows: 2 created, 0 updated, 0 unchanged, 1 rejected"), "{}", explain(&issues));
    let truth = sim.truth("tickets,contacts").await;
    let ticket =
        |key: &str| live_with(&truth, "tickets", "ext_id", key).first().map(|t| t["id"].as_str().unwrap().to_owned());
    assert_eq!(associated(&truth, "tickets", &ticket("t1").unwrap(), "contacts"), [ada], "by email");
    assert_eq!(associated(&truth, "tickets", &ticket("t2").unwrap(), "contacts"), [caller.to_string()], "by phone");
    assert!(ticket("t3").is_none(), "no ticket without its contact");
    let refused: Vec<Value> =
        logged_since(&sim, start).await.into_iter().filter(|e| e["status"].as_u64() >= Some(400)).collect();
    assert!(refused.is_empty(), "HubSpot refused no call of any push: {refused:?}");
}
