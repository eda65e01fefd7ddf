//! `hsync schema-diff` as a real subprocess against the simulator and real SQLite and Postgres:
//! a property added and one archived in HubSpot give a plan that adds the first and reports the
//! second; `--apply` applies it and a second diff comes back clean.

use std::path::Path;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{explain, hsync, stdout, Sim, TOKEN_VAR};

fn write_config(dir: &Path, base_url: &str, destination: &str) -> std::path::PathBuf {
    let path = dir.join("hsync.toml");
    let text = format!(
        "[hubspot]\nbase_url = \"{base_url}\"\ntoken_env = \"{TOKEN_VAR}\"\n\n[destination]\n{destination}\n\n[sync]\nobjects = [\"contacts\", \"cars\"]\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `destination` is the body of the `[destination]` section.
async fn scenario(destination: &str) {
    let sim = Sim::start(crate::support::unlimited(crate::support::small_portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.handle.base_url(), destination);

    // First run: the tables do not exist; --apply creates them.
    let first = hsync(&config, &["schema-diff", "--apply"]).await;
    assert_eq!(first.status.code(), Some(0), "{}", explain(&first));
    assert!(stdout(&first).contains("create table"), "{}", explain(&first));
    let clean = hsync(&config, &["schema-diff"]).await;
    assert_eq!(clean.status.code(), Some(0), "{}", explain(&clean));

    // HubSpot changes: one property added, one archived.
    let (status, _) = sim
        .admin(
            Method::POST,
            "/_sim/properties/contacts",
            Some(
                &json!({"name": "loyalty_tier", "label": "Loyalty tier", "type": "enumeration", "fieldType": "select",
                         "options": [{"label": "Gold", "value": "gold"}]}),
            ),
        )
        .await;
    assert!(status.is_success());
    let (status, _) = sim.admin(Method::DELETE, "/_sim/properties/contacts/custom_prop_0005", None).await;
    assert!(status.is_success());

    let drift = hsync(&config, &["schema-diff", "--format", "json"]).await;
    assert_eq!(drift.status.code(), Some(3), "drift exits 3: {}", explain(&drift));
    let plans: Value = serde_json::from_str(&stdout(&drift)).unwrap();
    let contacts = plans.as_array().unwrap().iter().find(|p| p["table"] == "contacts").unwrap();
    let changes = contacts["changes"].as_array().unwrap();
    assert!(
        changes.iter().any(|c| c["change"] == "add_column" && c["column"]["name"] == "loyalty_tier"),
        "{changes:?}"
    );
    assert!(
        changes.iter().any(|c| c["change"] == "property_removed" && c["column"] == "custom_prop_0005"),
        "{changes:?}"
    );
    assert!(contacts["statements"].as_array().unwrap().iter().any(|s| s.as_str().unwrap().contains("loyalty_tier")));
    // The live view is replaced (SQLite: dropped and created again); no table or column is dropped.
    assert!(
        !contacts["statements"].as_array().unwrap().iter().any(|s| {
            let s = s.as_str().unwrap().to_lowercase();
            s.contains("drop table") || s.contains("drop column")
        }),
        "never drops data"
    );
    let cars = plans.as_array().unwrap().iter().find(|p| p["table"] == "cars").unwrap();
    assert_eq!(cars["drift"], false);

    let sql = hsync(&config, &["schema-diff", "--format", "sql"]).await;
    assert_eq!(sql.status.code(), Some(3), "{}", explain(&sql));
    assert!(stdout(&sql).contains("loyalty_tier"));
    assert!(stdout(&sql).contains("custom_prop_0005"), "the removed property is reported: {}", explain(&sql));

    let apply = hsync(&config, &["schema-diff", "--apply"]).await;
    assert_eq!(apply.status.code(), Some(0), "{}", explain(&apply));
    let again = hsync(&config, &["schema-diff", "--format", "text"]).await;
    assert_eq!(again.status.code(), Some(0), "a second diff is clean: {}", explain(&again));
    assert!(stdout(&again).contains("contacts: no drift"), "{}", explain(&again));
}

#[tokio::test]
async fn schema_diff_adds_new_reports_archived_and_applies_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&format!("url = \"sqlite://{}\"", dir.path().join("warehouse.db").display())).await;
}

#[tokio::test]
async fn schema_diff_adds_new_reports_archived_and_applies_on_postgres() {
    let Some(pg) = crate::support::FreshPostgres::create().await else { return };
    scenario(&pg.destination_keys()).await;
    pg.drop_schemas().await;
}

#[tokio::test]
async fn token_never_appears_in_the_binarys_logs_or_errors() {
    const SECRET: &str = "pat-na1-7c0ffee0-dead-beef-0000-5ecret5ecret";
    let sim = Sim::start(hsync_sim::SimConfig {
        tokens: vec![hsync_sim::TokenGrant { token: SECRET.into(), scopes: None }],
        ..crate::support::unlimited(crate::support::small_portal())
    })
    .await;
    for rule in [
        json!({"kind": "server_error", "status": 502, "html": true, "remaining": 1}),
        json!({"kind": "rate_limit", "remaining": 1}),
    ] {
        let (status, _) = sim.admin(Method::POST, "/_sim/faults", Some(&rule)).await;
        assert!(status.is_success());
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &sim.handle.base_url(),
        &format!("url = \"sqlite://{}\"", dir.path().join("w.db").display()),
    );
    let run = |token: &'static str| {
        let config = config.clone();
        async move {
            let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hsync"));
            cmd.arg("--verbose").arg("--config").arg(&config).args(["schema-diff"]).env(TOKEN_VAR, token);
            cmd.env_remove("RUST_LOG");
            cmd.output().await.unwrap()
        }
    };
    let ok = run(SECRET).await;
    let wrong = run("pat-na1-7c0ffee0-dead-beef-0000-wrongwrong").await;
    let all = format!("{}{}", explain(&ok), explain(&wrong));
    assert!(!all.contains("5ecret5ecret") && !all.contains("wrongwrong"), "a token leaked:\n{all}");
    assert!(all.contains("hubspot answered 429"), "the logs were captured:\n{all}");
    assert!(all.contains("retrying hubspot request"), "debug logs were captured:\n{all}");
    assert_eq!(wrong.status.code(), Some(77), "auth failures exit 77: {}", explain(&wrong));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains(TOKEN_VAR), "names the token's origin");
}

/// A config for SQLite at `db` with `sync` as the `[sync]` section's extra keys.
fn filtered_config(dir: &Path, base_url: &str, db: &Path, sync: &str) -> std::path::PathBuf {
    crate::support::cli::write_config(
        dir,
        base_url,
        &format!("[destination]\nurl = \"sqlite://{}\"\n\n[sync]\nobjects = [\"contacts\"]\n{sync}\n", db.display()),
    )
}

/// Issue 17: `schema-diff` planned from every property, ignoring the property filter, so a
/// finished backfill with `exclude_properties` showed drift (exit 3) on every run and `--apply`
/// would have added the excluded column.
#[tokio::test]
async fn schema_diff_plans_only_the_properties_the_filter_keeps() {
    let sim = Sim::start(crate::support::unlimited(crate::support::small_portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    for (sync, kept, dropped) in [
        ("exclude_properties = [\"email\"]", "firstname", "email"),
        ("include_properties = [\"firstname\"]", "firstname", "lastname"),
    ] {
        std::fs::remove_file(&db).ok();
        let config = filtered_config(dir.path(), &sim.handle.base_url(), &db, sync);
        let backfill = hsync(&config, &["backfill"]).await;
        assert_eq!(backfill.status.code(), Some(0), "{sync}: {}", explain(&backfill));
        let diff = hsync(&config, &["schema-diff", "--format", "text"]).await;
        assert_eq!(diff.status.code(), Some(0), "{sync}: no drift after the backfill: {}", explain(&diff));
        assert!(stdout(&diff).contains("contacts: no drift"), "{sync}: {}", explain(&diff));
        assert!(!stdout(&diff).contains(dropped), "{sync}: {}", explain(&diff));
        let apply = hsync(&config, &["schema-diff", "--apply"]).await;
        assert_eq!(apply.status.code(), Some(0), "{sync}: {}", explain(&apply));
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        let columns: Vec<String> =
            sqlx::query_scalar("select name from pragma_table_info('contacts')").fetch_all(&pool).await.unwrap();
        pool.close().await;
        assert!(columns.iter().any(|c| c == kept), "{sync}: {columns:?}");
        assert!(!columns.iter().any(|c| c == dropped), "{sync}: the filtered property got no column: {columns:?}");
    }
}

/// A column `schema-diff --apply` adds to a table with rows is re-read for those rows by the
/// next sync job, as when a sync job adds it itself.
#[tokio::test]
async fn a_column_schema_diff_applies_is_re_read_for_existing_rows() {
    let sim = Sim::start(crate::support::unlimited(crate::support::small_portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let config = filtered_config(dir.path(), &sim.handle.base_url(), &db, "");
    let backfill = hsync(&config, &["backfill"]).await;
    assert_eq!(backfill.status.code(), Some(0), "{}", explain(&backfill));
    let property = json!({"name": "loyalty_tier", "label": "Loyalty tier", "type": "string", "fieldType": "text"});
    sim.admin_ok(Method::POST, "/_sim/properties/contacts", Some(&property)).await;
    let apply = hsync(&config, &["schema-diff", "--apply"]).await;
    assert_eq!(apply.status.code(), Some(0), "{}", explain(&apply));
    let status = hsync(&config, &["status", "--json"]).await;
    let report: Value = serde_json::from_str(&stdout(&status)).expect("status --json");
    let reread = report["streams"].as_array().unwrap().iter().find(|s| s["stream"] == "reread:contacts");
    assert!(reread.is_some(), "the new column's re-read is pending: {}", explain(&status));
    let cdc = hsync(&config, &["cdc", "--once"]).await;
    assert_eq!(cdc.status.code(), Some(0), "{}", explain(&cdc));
    let status = hsync(&config, &["status", "--json"]).await;
    let report: Value = serde_json::from_str(&stdout(&status)).expect("status --json");
    assert!(
        !report["streams"].as_array().unwrap().iter().any(|s| s["stream"] == "reread:contacts"),
        "the next sync job ran the re-read: {}",
        explain(&status)
    );
}
