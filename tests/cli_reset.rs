//! A checkpoint hsync cannot decode stops its stream with an error naming the stream and the
//! way out (`hsync reset`), never a silent restart; the other objects go on; `hsync status`
//! still answers; `hsync reset` forgets the checkpoint and the stream starts over.

use serde_json::Value;

use crate::support::cli::{explain, hsync, stdout, write_config};
use crate::support::Sim;

#[tokio::test]
async fn a_corrupt_checkpoint_stops_its_stream_with_a_clear_error_and_reset_recovers() {
    let sim = Sim::start(crate::support::unlimited(crate::support::small_portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let config = write_config(
        dir.path(),
        &sim.handle.base_url(),
        &format!(
            "[destination]\nurl = \"sqlite://{}\"\n\n[sync]\nobjects = [\"contacts\", \"deals\"]\nsettle_lag_secs = 0\n",
            db.display()
        ),
    );
    let backfill = hsync(&config, &["backfill"]).await;
    assert_eq!(backfill.status.code(), Some(0), "{}", explain(&backfill));
    let cdc = hsync(&config, &["cdc", "--once"]).await;
    assert_eq!(cdc.status.code(), Some(0), "{}", explain(&cdc));

    // The CDC checkpoint of contacts no longer decodes (a watermark that is not a number).
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let garbled = r#"{"phase":"polling","watermark_ms":"yesterday","last_pass_ms":0,"rows":0}"#;
    let changed = sqlx::query("update _hsync_checkpoints set state = ?1 where stream = 'cdc:contacts'")
        .bind(garbled)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 1);
    pool.close().await;

    let stopped = hsync(&config, &["cdc", "--once"]).await;
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert_eq!(stopped.status.code(), Some(65), "bad data exits 65: {}", explain(&stopped));
    assert!(
        stderr.contains("cdc:contacts") && stderr.contains("hsync reset cdc:contacts"),
        "names the stream and the way out: {}",
        explain(&stopped)
    );
    assert!(stdout(&stopped).contains("deals:"), "the other object went on: {}", explain(&stopped));

    let status = hsync(&config, &["status", "--json"]).await;
    assert_eq!(status.status.code(), Some(0), "status still answers: {}", explain(&status));
    let report: Value = serde_json::from_str(&stdout(&status)).expect("status --json");
    let cdc = report["streams"].as_array().unwrap().iter().find(|s| s["stream"] == "cdc:contacts").unwrap();
    assert_eq!(cdc["phase"], "unreadable", "{cdc}");
    assert!(cdc["last_error"]["message"].as_str().unwrap().contains("cannot be read"), "{cdc}");

    let refused = hsync(&config, &["reset", "reread:contacts"]).await;
    assert_eq!(refused.status.code(), Some(2), "a re-read is not reset alone: {}", explain(&refused));
    let unknown = hsync(&config, &["reset", "sync:contacts"]).await;
    assert_eq!(unknown.status.code(), Some(2), "{}", explain(&unknown));

    let reset = hsync(&config, &["reset", "cdc:contacts"]).await;
    assert_eq!(reset.status.code(), Some(0), "{}", explain(&reset));
    assert!(stdout(&reset).contains("cdc:contacts: checkpoint forgotten"), "{}", explain(&reset));
    let again = hsync(&config, &["reset", "cdc:contacts"]).await;
    assert!(stdout(&again).contains("no checkpoint"), "{}", explain(&again));

    let recovered = hsync(&config, &["cdc", "--once"]).await;
    assert_eq!(recovered.status.code(), Some(0), "{}", explain(&recovered));
    let status = hsync(&config, &["status", "--json"]).await;
    let report: Value = serde_json::from_str(&stdout(&status)).expect("status --json");
    let cdc = report["streams"].as_array().unwrap().iter().find(|s| s["stream"] == "cdc:contacts").unwrap();
    assert_eq!(cdc["phase"], "polling", "{cdc}");
}
