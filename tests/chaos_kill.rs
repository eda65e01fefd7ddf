//! Crash anywhere, resume cheaply: a real `hsync` process is killed with SIGKILL at random
//! moments during backfill and during CDC passes, then resumed, at least ten times, into SQLite
//! and into Postgres (one scenario for both). Nothing may be lost or doubled, and each kill may
//! cost at most the page in flight (of each range the backfill walks concurrently): the search
//! pages requested more than once (counted from the simulator's request log) are at most the
//! kills (times the ranges, in the backfill), in the backfill and in every CDC round. A
//! second test injects 429 bursts, 5xx pages and dropped connections throughout a sync and
//! requires it to converge.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hsync::destination::postgres::PostgresDestination;
use hsync::destination::sqlite::SqliteDestination;
use hsync::state::{Checkpoint, StateStore};
use hsync_sim::{PortalSpec, DEFAULT_TOKEN};
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::json;

use crate::support::{data_page_key, logged_since, next_seq, FreshPostgres, Sim, TOKEN_VAR};

/// The warehouse a chaos run writes to.
enum Warehouse {
    Sqlite(PathBuf),
    Postgres(FreshPostgres),
}

impl Warehouse {
    /// The body of the configuration's `[destination]` section.
    fn destination_toml(&self) -> String {
        match self {
            Warehouse::Sqlite(db) => format!("url = \"sqlite://{}\"", db.display()),
            Warehouse::Postgres(pg) => pg.destination_keys(),
        }
    }

    /// Every difference between the warehouse and the simulator's ground truth.
    async fn differences(&self, sim: &Sim) -> Vec<String> {
        match self {
            Warehouse::Sqlite(db) => {
                let dest = SqliteDestination::connect(&format!("sqlite://{}", db.display())).await.unwrap();
                crate::sync_engine::differences(&dest, sim).await
            }
            Warehouse::Postgres(pg) => {
                let dest = PostgresDestination::connect(&pg.url, &pg.data_schema, &pg.state_schema).await.unwrap();
                crate::sync_engine::differences(&dest, sim).await
            }
        }
    }

    /// Every stored checkpoint.
    async fn checkpoints(&self) -> Vec<Checkpoint> {
        match self {
            Warehouse::Sqlite(db) => {
                let dest = SqliteDestination::connect(&format!("sqlite://{}", db.display())).await.unwrap();
                dest.state_store().checkpoints().await.unwrap()
            }
            Warehouse::Postgres(pg) => {
                let dest = PostgresDestination::connect(&pg.url, &pg.data_schema, &pg.state_schema).await.unwrap();
                dest.state_store().checkpoints().await.unwrap()
            }
        }
    }
}

fn write_config(dir: &Path, base_url: &str, destination: &str) -> PathBuf {
    let path = dir.join("hsync.toml");
    let text = format!(
        "[hubspot]\nbase_url = \"{base_url}\"\ntoken_env = \"{TOKEN_VAR}\"\n\n[destination]\n{destination}\n\n[sync]\nobjects = [\"contacts\", \"companies\", \"deals\", \"tickets\", \"cars\"]\nsettle_lag_secs = 1\n"
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

/// What one phase of kills and resumes did.
#[derive(Debug, Default)]
struct Killed {
    kills: u32,
    /// Kills after which a CDC pass was left part-way (its checkpoint says `paging`, or
    /// `ranged` for a pass walking ranges).
    mid_pass: u32,
}

/// Runs `args` until it exits 0, killing it with SIGKILL after a random delay while kills
/// remain (each next attempt is the resume).
async fn run_with_kills(
    config: &Path,
    warehouse: &Warehouse,
    args: &[&str],
    kills: &mut u32,
    rng: &mut impl Rng,
) -> Killed {
    let mut killed = Killed::default();
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
                    killed.kills += 1;
                    let paging = warehouse.checkpoints().await.iter().any(|c| {
                        c.stream.kind() == hsync::state::StreamKind::Cdc
                            && (c.state["phase"] == "paging" || c.state["phase"] == "ranged")
                    });
                    killed.mid_pass += u32::from(paging);
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

/// Search pages requested more than once since `since` (a page is its path and filters).
async fn repeated_pages(sim: &Sim, since: u64) -> u32 {
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for key in logged_since(sim, since).await.iter().filter_map(data_page_key) {
        *seen.entry(key).or_default() += 1;
    }
    seen.values().map(|n| n - 1).sum()
}

async fn touch(sim: &Sim, object: &str, body: serde_json::Value) {
    let (status, reply) = sim.admin(Method::POST, &format!("/_sim/objects/{object}/touch"), Some(&body)).await;
    assert!(status.is_success(), "{reply}");
}

/// Backfill with seven kills, then CDC rounds with up to two kills each until at least ten
/// kills in all, at least three of them leaving a CDC pass part-way; then the warehouse must
/// equal the ground truth.
async fn kills_during_backfill_and_cdc(warehouse: &Warehouse, seed: u64) {
    let sim = Sim::start(crate::support::unlimited(PortalSpec {
        contacts: 30_000,
        companies: 2_000,
        deals: 2_000,
        tickets: 1_000,
        cars: 100,
        custom_properties: 30,
        // About kills and record counts; the width of a real catalogue is covered elsewhere.
        hubspot_catalogue: false,
        ..PortalSpec::default()
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.handle.base_url(), &warehouse.destination_toml());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);

    let since = next_seq(&sim).await;
    let backfill = run_with_kills(&config, warehouse, &["backfill", "--resume"], &mut 7, &mut rng).await;
    let repeats = repeated_pages(&sim, since).await;
    // The backfill walks ranges concurrently, by search and by list pages: a kill costs at most
    // the page in flight of each range.
    let walkers = hsync::stream::backfill::DEFAULT_CONCURRENCY;
    let bound = backfill.kills * (walkers + hsync::stream::readers::list_walkers(walkers, 1)) as u32;
    assert!(repeats <= bound, "backfill: {repeats} pages repeated for {} kills", backfill.kills);

    // CDC rounds: changes (a bulk millisecond in the first round, a month-end update of a
    // third of the contacts in the second, which the pass walks by ranges, spread updates
    // after), then `cdc --once` killed and resumed. Each round starts after its changes have
    // left the settle lag, so a pass that completed before a kill reads nothing again when
    // rerun: every page requested twice in a round is one a kill cost, one per range walked.
    let (mut cdc_kills, mut mid_pass, mut cdc_repeats) = (0, 0, 0);
    for round in 0..20 {
        if backfill.kills + cdc_kills >= 10 && mid_pass >= 3 && round >= 3 {
            break;
        }
        let mut readers = 1;
        match round {
            // Under two ranges' worth: one pass in turn, through a millisecond of 3,000.
            0 => touch(&sim, "contacts", json!({"count": 3_000})).await,
            1 => {
                touch(&sim, "contacts", json!({"count": 10_000, "spreadMs": 1_000})).await;
                readers = walkers;
            }
            _ => touch(&sim, "contacts", json!({"count": 1_500, "spreadMs": 1_000})).await,
        }
        touch(&sim, "deals", json!({"count": 300, "spreadMs": 500})).await;
        // The spread (1 s) plus the settle lag (1 s), with a margin.
        tokio::time::sleep(Duration::from_millis(2_300)).await;
        let since = next_seq(&sim).await;
        let round_kills = run_with_kills(&config, warehouse, &["cdc", "--once"], &mut 2, &mut rng).await;
        let repeats = repeated_pages(&sim, since).await;
        let bound = round_kills.kills * readers as u32;
        assert!(repeats <= bound, "cdc round {round}: {repeats} pages repeated for {round_kills:?}");
        cdc_kills += round_kills.kills;
        mid_pass += round_kills.mid_pass;
        cdc_repeats += repeats;
    }
    let kills = backfill.kills + cdc_kills;
    assert!(kills >= 10, "at least ten kills happened: {kills}");
    assert!(mid_pass >= 3, "kills left a CDC pass part-way at least three times: {mid_pass}");
    // A final pass after the settle lag, without kills.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    run_with_kills(&config, warehouse, &["cdc", "--once"], &mut 0, &mut rng).await;

    let diffs = warehouse.differences(&sim).await;
    assert!(
        diffs.is_empty(),
        "{} differences after {kills} kills:\n{}",
        diffs.len(),
        diffs.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    eprintln!(
        "chaos: {kills} kills ({cdc_kills} during CDC, {mid_pass} mid-pass); pages repeated: {repeats} in the \
         backfill, {cdc_repeats} in CDC"
    );
}

#[tokio::test]
async fn sigkill_during_backfill_and_cdc_loses_nothing_and_repeats_at_most_a_page_per_kill_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    kills_during_backfill_and_cdc(&Warehouse::Sqlite(dir.path().join("warehouse.db")), 0x5EED).await;
}

#[tokio::test]
async fn sigkill_during_backfill_and_cdc_loses_nothing_and_repeats_at_most_a_page_per_kill_in_postgres() {
    let Some(pg) = FreshPostgres::create().await else { return };
    let warehouse = Warehouse::Postgres(pg);
    kills_during_backfill_and_cdc(&warehouse, 0xFEED).await;
    if let Warehouse::Postgres(pg) = warehouse {
        pg.drop_schemas().await;
    }
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
    let warehouse = Warehouse::Sqlite(dir.path().join("warehouse.db"));
    let config = write_config(dir.path(), &sim.handle.base_url(), &warehouse.destination_toml());
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    run_with_kills(&config, &warehouse, &["backfill", "--resume"], &mut 0, &mut rng).await;
    let (status, _) = sim.admin(Method::POST, "/_sim/objects/contacts/touch", Some(&json!({"count": 700}))).await;
    assert!(status.is_success());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    run_with_kills(&config, &warehouse, &["cdc", "--once"], &mut 0, &mut rng).await;
    let injected = sim.admin(Method::GET, "/_sim/faults", None).await.1;
    let total: u64 = injected["injected"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert!(total >= 10, "faults were injected throughout: {injected}");
    assert!(injected["injected"].as_object().unwrap().len() >= 4, "most fault kinds fired: {injected}");
    let diffs = warehouse.differences(&sim).await;
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}
