//! Crash anywhere, resume cheaply: a real `hsync` process is killed with SIGKILL at random
//! moments during backfill and CDC, then resumed, at least ten times. Nothing may be lost or
//! doubled, and each kill may cost at most the page in flight (counted from the simulator's
//! request log). A second test injects 429 bursts, 5xx pages and dropped connections
//! throughout a sync and requires it to converge.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hsync::destination::sqlite::SqliteDestination;
use hsync::simulator::{PortalSpec, DEFAULT_TOKEN};
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::Sim;

const TOKEN_VAR: &str = "HSYNC_TEST_SIM_TOKEN";

fn write_config(dir: &Path, base_url: &str, db: &Path) -> PathBuf {
    let path = dir.join("hsync.toml");
    let text = format!(
        "[hubspot]\nbase_url = \"{base_url}\"\ntoken_env = \"{TOKEN_VAR}\"\n\n[destination]\nurl = \"sqlite://{}\"\n\n[sync]\nobjects = [\"contacts\", \"companies\", \"deals\", \"tickets\", \"cars\"]\nsettle_lag_secs = 1\n",
        db.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn command(config: &Path, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hsync"));
    cmd.arg("--quiet").arg("--config").arg(config).args(args).env(TOKEN_VAR, DEFAULT_TOKEN);
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
    cmd
}

/// Runs `args` until it exits 0, killing it with SIGKILL after a random delay while kills
/// remain. Returns how many times it was killed.
async fn run_with_kills(config: &Path, args: &[&str], kills: &mut u32, rng: &mut impl Rng) -> u32 {
    let mut killed = 0;
    for attempt in 0..60 {
        let mut child = command(config, args).spawn().unwrap();
        if *kills > 0 {
            let delay = Duration::from_millis(rng.random_range(120..900));
            tokio::select! {
                status = child.wait() => {
                    let status = status.unwrap();
                    let out = child.wait_with_output().await.unwrap();
                    assert!(status.success(), "attempt {attempt} failed: {}", String::from_utf8_lossy(&out.stderr));
                    return killed;
                }
                () = tokio::time::sleep(delay) => {
                    child.start_kill().unwrap(); // SIGKILL
                    let _ = child.wait().await;
                    *kills -= 1;
                    killed += 1;
                    continue;
                }
            }
        }
        let out = child.wait_with_output().await.unwrap();
        assert!(out.status.success(), "attempt {attempt} failed: {}", String::from_utf8_lossy(&out.stderr));
        return killed;
    }
    panic!("{args:?} never finished");
}

/// Data pages requested more than once: backfill pages are keyed by their `hs_object_id GT`
/// value, CDC pages by their whole filter.
fn repeated_pages(log: &Value) -> usize {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for entry in log["entries"].as_array().unwrap() {
        if entry["status"] != 200 || !entry["path"].as_str().unwrap().ends_with("/search") {
            continue;
        }
        let body: Value = serde_json::from_str(entry["body"].as_str().unwrap_or("{}")).unwrap_or_default();
        let key = format!("{}|{}", entry["path"], body["filterGroups"]);
        *seen.entry(key).or_default() += 1;
    }
    seen.values().map(|n| n - 1).sum()
}

#[tokio::test]
async fn sigkill_during_backfill_and_cdc_loses_nothing_and_repeats_at_most_a_page_per_kill() {
    let sim = Sim::start(crate::support::unlimited(PortalSpec {
        contacts: 30_000,
        companies: 2_000,
        deals: 2_000,
        tickets: 1_000,
        cars: 100,
        custom_properties: 30,
        ..PortalSpec::default()
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("warehouse.db");
    let config = write_config(dir.path(), &sim.handle.base_url(), &db);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x5EED);
    let mut kills_left = 7u32;
    let mut kills = 0;
    sim.admin(Method::DELETE, "/_sim/requests", None).await;
    kills += run_with_kills(&config, &["backfill", "--resume"], &mut kills_left, &mut rng).await;
    // Every object finished: a later `--resume` has nothing left to do for any of them.
    let backfill_log = sim.admin(Method::GET, "/_sim/requests", None).await.1;
    let backfill_repeats = repeated_pages(&backfill_log);
    assert!(backfill_repeats <= kills as usize, "{backfill_repeats} repeated pages for {kills} kills");

    // CDC with kills: bulk and spread updates, passes killed and rerun, until ten kills in all.
    sim.admin(Method::DELETE, "/_sim/requests", None).await;
    let mut cdc_kills = 0;
    for round in 0..12 {
        if kills + cdc_kills >= 10 && round >= 3 {
            break;
        }
        kills_left = 2;
        let body = if round == 1 { json!({"count": 4_000}) } else { json!({"count": 1_500, "spreadMs": 2_000}) };
        let (status, _) = sim.admin(Method::POST, "/_sim/objects/contacts/touch", Some(&body)).await;
        assert!(status.is_success());
        let (status, _) =
            sim.admin(Method::POST, "/_sim/objects/deals/touch", Some(&json!({"count": 300, "spreadMs": 500}))).await;
        assert!(status.is_success());
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        cdc_kills += run_with_kills(&config, &["cdc", "--once"], &mut kills_left, &mut rng).await;
    }
    kills += cdc_kills;
    assert!(kills >= 10, "at least ten kills happened: {kills}");
    // A final pass after the settle lag, without kills.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    run_with_kills(&config, &["cdc", "--once"], &mut 0, &mut rng).await;

    let dest = SqliteDestination::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let diffs = crate::sync_engine::differences(&dest, &sim).await;
    assert!(
        diffs.is_empty(),
        "{} differences after {kills} kills:\n{}",
        diffs.len(),
        diffs.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    eprintln!("chaos: {kills} kills ({cdc_kills} during CDC), {backfill_repeats} backfill pages repeated");
}

#[tokio::test]
async fn sync_converges_through_429_bursts_5xx_and_dropped_connections() {
    let sim = Sim::start(crate::support::unlimited(PortalSpec {
        contacts: 4_000,
        companies: 300,
        deals: 300,
        tickets: 100,
        cars: 30,
        custom_properties: 10,
        ..PortalSpec::default()
    }))
    .await;
    let faults = json!([
        {"kind": "rate_limit", "probability": 0.08},
        {"kind": "server_error", "status": 502, "html": true, "probability": 0.06},
        {"kind": "server_error", "status": 503, "html": false, "probability": 0.05},
        {"kind": "drop_connection", "probability": 0.05},
        {"kind": "truncated_json", "probability": 0.05}
    ]);
    let (status, _) = sim.admin(Method::PUT, "/_sim/faults", Some(&faults)).await;
    assert!(status.is_success());
    sim.admin(Method::PUT, "/_sim/limits", Some(&json!({"enabled": false, "send_retry_after": true}))).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("warehouse.db");
    let config = write_config(dir.path(), &sim.handle.base_url(), &db);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    run_with_kills(&config, &["backfill", "--resume"], &mut 0, &mut rng).await;
    let (status, _) = sim.admin(Method::POST, "/_sim/objects/contacts/touch", Some(&json!({"count": 700}))).await;
    assert!(status.is_success());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    run_with_kills(&config, &["cdc", "--once"], &mut 0, &mut rng).await;
    let injected = sim.admin(Method::GET, "/_sim/faults", None).await.1;
    let total: u64 = injected["injected"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert!(total >= 10, "faults were injected throughout: {injected}");
    assert!(injected["injected"].as_object().unwrap().len() >= 4, "most fault kinds fired: {injected}");
    let dest = SqliteDestination::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let diffs = crate::sync_engine::differences(&dest, &sim).await;
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}
