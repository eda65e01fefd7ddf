//! One-shot commands ride out what the daemon rides out (issue 16, point 6): a storm of 429s
//! longer than the client's own retries, and a destination that is down for a while when the
//! command starts. Both with the real binary, over HTTP and TCP.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::support::cli::{explain, hsync, write_config};
use crate::support::{unlimited, Sim};

fn portal() -> hsync_sim::PortalSpec {
    hsync_sim::PortalSpec {
        contacts: 450,
        companies: 5,
        deals: 5,
        tickets: 5,
        cars: 5,
        custom_properties: 2,
        ..hsync_sim::PortalSpec::default()
    }
}

async fn live_contacts(sim: &Sim) -> usize {
    sim.admin_ok(Method::GET, "/_sim/truth", None).await["objects"]["contacts"]["live"].as_array().unwrap().len()
}

async fn count(db: &std::path::Path) -> i64 {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    sqlx::query_scalar("select count(*) from contacts").fetch_one(&pool).await.unwrap()
}

#[tokio::test]
async fn a_backfill_rides_out_a_429_storm_longer_than_the_clients_retries() {
    let sim = Sim::start(unlimited(portal())).await;
    // Seven 429s in a row on search: the client gives up after six attempts, and the command
    // runs the object again after the daemon's rate-limited backoff.
    let rule = json!({"kind": "rate_limit", "target": "search", "remaining": 7, "skip": 1});
    sim.admin_ok(Method::POST, "/_sim/faults", Some(&rule)).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.db");
    let config = write_config(
        dir.path(),
        &sim.handle.base_url(),
        &format!("[destination]\nurl = \"sqlite://{}\"\n[sync]\nobjects = [\"contacts\"]\n", db.display()),
    );
    let out = hsync(&config, &["backfill"]).await;
    assert!(out.status.success(), "{}", explain(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("retrying"), "the retry is logged: {}", explain(&out));
    assert_eq!(count(&db).await, i64::try_from(live_contacts(&sim).await).unwrap());
}

#[tokio::test]
async fn a_command_waits_for_a_postgres_that_is_down_when_it_starts() {
    let Some(pg) = crate::support::FreshPostgres::create().await else { return };
    let sim = Sim::start(unlimited(portal())).await;
    // A port nothing listens on yet; after longer than the pool's 10 s wait for a connection,
    // it forwards to the real Postgres.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let target = {
        let url = reqwest::Url::parse(&pg.url).unwrap();
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
    };
    let proxy = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(13)).await;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        loop {
            let (mut inbound, _) = listener.accept().await.unwrap();
            let target = target.clone();
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    let mut url = reqwest::Url::parse(&pg.url).unwrap();
    url.set_port(Some(port)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let keys = pg.destination_keys().replace(&pg.url, url.as_str());
    let config = write_config(
        dir.path(),
        &sim.handle.base_url(),
        &format!("[destination]\n{keys}\n[sync]\nobjects = [\"contacts\"]\n"),
    );
    let out = hsync(&config, &["backfill"]).await;
    proxy.abort();
    assert!(out.status.success(), "{}", explain(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("retrying"), "{}", explain(&out));
    pg.drop_schemas().await;
}
