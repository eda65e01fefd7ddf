//! `hsync demo` as a real subprocess in an empty directory, with no token, no configuration
//! and no database server: the SQLite file it leaves holds the seeded portal's records, the
//! changes it made (updates and creations picked up by CDC, a merge and archives flagged, new
//! associations), and every query it suggests runs. A second run refuses to overwrite the file.

use hsync_sim::PortalSpec;
use sqlx::{Connection, Row};

use crate::support::cli::{command, explain, stdout};

async fn count(db: &mut sqlx::SqliteConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(db).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn demo_syncs_the_seeded_portal_into_sqlite_and_shows_the_changes() {
    let dir = tempfile::tempdir().unwrap();
    let demo = || {
        let mut cmd = command(None, &["demo", "--db", "demo.db"], None);
        cmd.current_dir(dir.path()).env_remove("HUBSPOT_TOKEN").env_remove("HSYNC_CONFIG");
        cmd
    };
    let out = demo().output().await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let text = stdout(&out);

    let spec = PortalSpec::demo();
    let mut db =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", dir.path().join("demo.db").display())).await.unwrap();
    let live = "_hsync_archived_at is null and _hsync_merged_into is null and _hsync_deleted_at is null";
    let created = 10;
    for (table, size) in [("companies", spec.companies), ("tickets", spec.tickets), ("cars", spec.cars)] {
        assert_eq!(count(&mut db, &format!("select count(*) from {table} where {live}")).await, size as i64, "{table}");
    }
    // Engagements and commerce objects, with their associations.
    for table in ["calls", "notes", "products", "line_items"] {
        let size = spec.objects[table];
        assert!(size > 0, "the demo portal has {table}");
        assert_eq!(count(&mut db, &format!("select count(*) from {table} where {live}")).await, size as i64, "{table}");
    }
    let edges = "select count(*) from associations where deleted_at is null and from_type = ";
    assert!(count(&mut db, &format!("{edges}'deals' and to_type = 'line_items'")).await > 0);
    assert!(count(&mut db, &format!("{edges}'contacts' and to_type = 'calls'")).await > 0);
    assert_eq!(count(&mut db, "select count(*) from contacts").await, spec.contacts as i64 + created);
    assert_eq!(
        count(&mut db, &format!("select count(*) from contacts where {live}")).await,
        spec.contacts as i64 + created - 1,
        "one contact was merged away"
    );
    assert_eq!(count(&mut db, "select count(*) from deals").await, spec.deals as i64);
    assert_eq!(count(&mut db, "select count(*) from deals where _hsync_archived_at is not null").await, 5);

    // The changes came through CDC, the association poll and the deletes reconcile.
    assert_eq!(count(&mut db, "select count(*) from contacts where firstname = 'Ada (changed by the demo)'").await, 25);
    assert_eq!(count(&mut db, "select count(*) from contacts where email like 'demo-%@example.com'").await, created);
    let merged = sqlx::query("select id, _hsync_merged_into from contacts where _hsync_merged_into is not null")
        .fetch_all(&mut db)
        .await
        .unwrap();
    assert_eq!(merged.len(), 1);
    let survivor: i64 = merged[0].get(1);
    assert_eq!(count(&mut db, &format!("select count(*) from contacts where id = {survivor} and {live}")).await, 1);
    assert_eq!(
        count(
            &mut db,
            "select count(*) from associations a join contacts c on c.id = a.from_id \
             where a.from_type = 'contacts' and a.to_type = 'companies' and a.deleted_at is null \
             and c.email like 'demo-%@example.com'"
        )
        .await,
        created,
        "each new contact's company edge"
    );
    let cdc = text.lines().skip_while(|l| !l.starts_with("4. cdc")).nth(1).unwrap_or_default();
    assert!(
        cdc.contains("contacts") && cdc.contains(" 36 changed rows"),
        "CDC picked up 25 updates, 10 creations and the merge's survivor: {cdc}\n{}",
        explain(&out)
    );

    // Every suggested query runs and finds something.
    let queries: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("sqlite3 -header demo.db \""))
        .map(|l| l.strip_suffix('"').unwrap())
        .collect();
    assert!(queries.len() >= 5, "{}", explain(&out));
    for sql in queries {
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).fetch_all(&mut db).await;
        assert!(rows.is_ok_and(|r| !r.is_empty()), "the suggested query finds rows: {sql}");
    }
    drop(db);

    let again = demo().output().await.unwrap();
    assert_eq!(again.status.code(), Some(78), "{}", explain(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--replace"), "names the way out: {}", explain(&again));
}
