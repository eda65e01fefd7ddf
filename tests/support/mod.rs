//! Shared test harness: the simulator driver (the simulator crate's own test support, included
//! here so there is one copy), Postgres schemas, HubSpot clients and runners against a
//! simulator, and running the `hsync` binary.

#![allow(dead_code)]

pub mod bigquery;
pub mod cli;
pub mod parquet;
#[path = "../../crates/hsync-sim/tests/support.rs"]
mod sim_driver;
pub mod snowflake;

pub use sim_driver::*;

use hsync_sim::DEFAULT_TOKEN;
use reqwest::Method;
use serde_json::Value;

/// The address of a warehouse emulator from `var` (`HSYNC_BQ_EMULATOR_URL`,
/// `HSYNC_SF_EMULATOR_URL`; `scripts/emulators start` sets both). Unset fails the test in CI
/// and skips it, with a printed reason, elsewhere.
pub fn emulator_url(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if in_ci() => panic!("{what} is required in CI and {var} is unset; scripts/test starts it"),
        _ => {
            eprintln!(
                "skipping: {var} is unset, so {what} is unavailable; run `eval \"$(scripts/emulators start)\"` first"
            );
            None
        }
    }
}

/// Whether the tests run in CI (`CI` set and not `false`), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

/// A pair of uniquely named Postgres schemas (data and state) on the test database.
pub struct FreshPostgres {
    pub url: String,
    pub data_schema: String,
    pub state_schema: String,
}

impl FreshPostgres {
    /// The `[destination]` keys (url, schema, state_schema) that point hsync at these schemas.
    pub fn destination_keys(&self) -> String {
        format!("url = \"{}\"\nschema = \"{}\"\nstate_schema = \"{}\"", self.url, self.data_schema, self.state_schema)
    }

    /// Connects to `HSYNC_TEST_DATABASE_URL` (default: the local trust-auth `test` database).
    /// Unreachable Postgres fails the test in CI and skips it, with a printed reason, elsewhere.
    pub async fn create() -> Option<FreshPostgres> {
        let url = std::env::var("HSYNC_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let reachable = async {
            use sqlx::Connection;
            sqlx::PgConnection::connect(&url).await.map(drop)
        };
        if let Err(e) = reachable.await {
            let shown = hsync::config::DestinationUrl::new(url.clone()).redacted();
            if in_ci() {
                panic!("Postgres at {shown} is required in CI and unreachable: {e}");
            }
            eprintln!("skipping: Postgres at {shown} is unreachable ({e}); scripts/test provisions it");
            return None;
        }
        let suffix = format!("{:08x}", rand::random::<u32>());
        Some(FreshPostgres { url, data_schema: format!("t_{suffix}_data"), state_schema: format!("t_{suffix}_state") })
    }

    /// Drops both schemas.
    pub async fn drop_schemas(&self) {
        use sqlx::Connection;
        if let Ok(mut c) = sqlx::PgConnection::connect(&self.url).await {
            for s in [&self.data_schema, &self.state_schema] {
                let sql = format!("drop schema if exists \"{}\" cascade", s.replace('"', "\"\""));
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut c).await;
            }
        }
    }
}

/// A HubSpot client for `sim` with the simulator's token and no budget of its own.
pub fn sim_client(sim: &Sim, store: std::sync::Arc<dyn hsync::hubspot::BudgetStore>) -> hsync::hubspot::HubSpotClient {
    sim_client_with_retry(sim, store, hsync::hubspot::RetryPolicy::default())
}

/// [`sim_client`] with its own retry policy (one attempt makes an injected fault final).
pub fn sim_client_with_retry(
    sim: &Sim,
    store: std::sync::Arc<dyn hsync::hubspot::BudgetStore>,
    retry: hsync::hubspot::RetryPolicy,
) -> hsync::hubspot::HubSpotClient {
    sim_client_with(sim, store, retry, hsync::hubspot::BudgetSetting::Unlimited)
}

/// [`sim_client`] with its own retry policy and daily budget.
pub fn sim_client_with(
    sim: &Sim,
    store: std::sync::Arc<dyn hsync::hubspot::BudgetStore>,
    retry: hsync::hubspot::RetryPolicy,
    budget: hsync::hubspot::BudgetSetting,
) -> hsync::hubspot::HubSpotClient {
    use hsync::hubspot::{BudgetConfig, ClientConfig, HubSpotClient, Secret, TokenSource};
    HubSpotClient::new(
        ClientConfig {
            base_url: sim.handle.base_url(),
            budget: BudgetConfig { setting: budget, ..BudgetConfig::default() },
            retry,
            ..ClientConfig::default()
        },
        TokenSource::Fixed { token: Secret::new(DEFAULT_TOKEN), origin: "simulator token".into() },
        store,
        hsync::clock::system(),
    )
    .expect("client")
}

/// A runner syncing `sim` into a new SQLite file in `dir`.
pub async fn sqlite_runner(
    sim: &Sim,
    dir: &std::path::Path,
) -> hsync::stream::runner::Runner<
    hsync::destination::sqlite::SqliteDestination,
    hsync::destination::sqlite::SqliteStateStore,
> {
    use hsync::destination::Destination;
    let url = format!("sqlite://{}", dir.join("w.db").display());
    let dest = hsync::destination::sqlite::SqliteDestination::connect(&url).await.expect("sqlite");
    dest.prepare().await.expect("prepare");
    let state = dest.state_store();
    hsync::stream::runner::Runner {
        client: sim_client(sim, std::sync::Arc::new(state.clone())),
        dest,
        state,
        clock: hsync::clock::system(),
        filter: hsync::stream::runner::PropertyFilter::default(),
    }
}

/// A runner syncing `sim` into the fresh Postgres schemas `pg`.
pub async fn postgres_runner(
    sim: &Sim,
    pg: &FreshPostgres,
) -> hsync::stream::runner::Runner<
    hsync::destination::postgres::PostgresDestination,
    hsync::destination::postgres::PostgresStateStore,
> {
    use hsync::destination::Destination;
    let dest = hsync::destination::postgres::PostgresDestination::connect(&pg.url, &pg.data_schema, &pg.state_schema)
        .await
        .expect("postgres");
    dest.prepare().await.expect("prepare");
    let state = dest.state_store();
    hsync::stream::runner::Runner {
        client: sim_client(sim, std::sync::Arc::new(state.clone())),
        dest,
        state,
        clock: hsync::clock::system(),
        filter: hsync::stream::runner::PropertyFilter::default(),
    }
}

/// The environment variable the test configurations name as the token's source.
pub const TOKEN_VAR: &str = "HSYNC_TEST_SIM_TOKEN";

/// Runs the `hsync` binary with `config` and `args`, `token` in [`TOKEN_VAR`] (`None`: the
/// variable is unset), logging warnings only; waits for it to exit.
pub async fn hsync_with(config: &std::path::Path, args: &[&str], token: Option<&str>) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hsync"));
    cmd.arg("--config").arg(config).args(args).env("RUST_LOG", "warn");
    match token {
        Some(t) => cmd.env(TOKEN_VAR, t),
        None => cmd.env_remove(TOKEN_VAR),
    };
    cmd.output().await.expect("run the hsync binary")
}

/// Runs the `hsync` binary with the simulator's token.
pub async fn hsync(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    hsync_with(config, args, Some(DEFAULT_TOKEN)).await
}

/// A finished process's standard output.
pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A finished process's exit code and output, for assertion messages.
pub fn explain(o: &std::process::Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", o.status.code(), stdout(o), String::from_utf8_lossy(&o.stderr))
}

/// What page a logged search request asked for: its path and filter groups (the logged body
/// may be cut short, but the filter groups come before the property list). `None` for other
/// requests and for searches refused with an error; a search answered (200) or left unanswered
/// because its client went away (0) counts.
pub fn search_page_key(entry: &Value) -> Option<String> {
    let path = entry["path"].as_str()?;
    if !(entry["status"] == 200 || entry["status"] == 0) || !path.ends_with("/search") {
        return None;
    }
    let body = entry["body"].as_str()?;
    let start = body.find("\"filterGroups\":")? + "\"filterGroups\":".len();
    let mut depth = 0;
    for (i, c) in body[start..].char_indices() {
        match c {
            '[' | '{' => depth += 1,
            ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(format!("{path} {}", &body[start..=start + i]));
                }
            }
            _ => {}
        }
    }
    None
}

/// What page of records a logged request asked for: a search page ([`search_page_key`]) or a
/// list page of an object type (its path and `after` cursor, which a backfill's list walker
/// derives from the range's committed position, so a page read again after a stop has the same
/// key). `None` for other requests.
pub fn data_page_key(entry: &Value) -> Option<String> {
    if let Some(key) = search_page_key(entry) {
        return Some(key);
    }
    let path = entry["path"].as_str()?;
    let listing = entry["method"] == "GET"
        && (entry["status"] == 200 || entry["status"] == 0)
        && path.strip_prefix("/crm/v3/objects/").is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
    if !listing {
        return None;
    }
    let after = entry["query"].as_str()?.split('&').find_map(|pair| pair.strip_prefix("after="))?;
    Some(format!("{path} after={after}"))
}

/// The simulator's request log entries from `since` on (a `nextSeq` read earlier).
pub async fn logged_since(sim: &Sim, since: u64) -> Vec<Value> {
    let log = sim.admin_ok(Method::GET, &format!("/_sim/requests?since={since}"), None).await;
    log["entries"].as_array().expect("log entries").clone()
}

/// The sequence number the simulator's next logged request gets.
pub async fn next_seq(sim: &Sim) -> u64 {
    sim.admin_ok(Method::GET, "/_sim/requests?since=18446744073709551615", None).await["nextSeq"]
        .as_u64()
        .expect("nextSeq")
}

/// Runs a backfill of `table` to its end, never stopped, fetching as `fetch` says and with the
/// default concurrency.
pub async fn backfill_with<D: hsync::destination::Destination, S: hsync::state::StateStore>(
    runner: &hsync::stream::runner::Runner<D, S>,
    table: &hsync::stream::runner::PreparedTable,
    mode: hsync::stream::backfill::Mode,
    fetch: hsync::stream::backfill::Fetch,
) -> hsync::stream::backfill::Report {
    use hsync::stream::backfill;
    let never = tokio_util::sync::CancellationToken::new();
    backfill::run(runner, table, mode, fetch, backfill::Concurrency::default(), &never, |_| {}).await.expect("backfill")
}

/// The webhook event queue of a state store: a delivery is stored once per signature (a replay
/// stores nothing), each event once per duplicate key, pending events come back oldest first,
/// removed ones are gone, old signatures are forgotten.
pub async fn webhook_queue_round_trip<S: hsync::state::StateStore>(store: &S) {
    use hsync::state::{Enqueued, QueuedEvent};
    let event = |key: &str, id: i64| QueuedEvent {
        dedupe_key: key.to_owned(),
        object_id: id,
        occurred_at_ms: 1_000 + id,
        event: format!("{{\"object_id\":{id}}}"),
    };
    assert_eq!(store.event_backlog().await.unwrap().pending, 0);
    let first = store.enqueue_events("sig-1", 10_000, 0, &[event("a", 1), event("b", 2)]).await.unwrap();
    assert_eq!(first, Enqueued { stored: 2, duplicates: 0, replayed: false });
    let replay = store.enqueue_events("sig-1", 10_500, 0, &[event("c", 3)]).await.unwrap();
    assert!(replay.replayed && replay.stored == 0, "{replay:?}");
    let retry = store.enqueue_events("sig-2", 11_000, 0, &[event("b", 2), event("c", 3)]).await.unwrap();
    assert_eq!(retry, Enqueued { stored: 1, duplicates: 1, replayed: false });
    let pending = store.pending_events(10).await.unwrap();
    assert_eq!(
        pending.iter().map(|p| p.event.as_str()).collect::<Vec<_>>(),
        [r#"{"object_id":1}"#, r#"{"object_id":2}"#, r#"{"object_id":3}"#]
    );
    assert!(pending.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(pending[0].received_at_ms, 10_000);
    let backlog = store.event_backlog().await.unwrap();
    assert_eq!((backlog.pending, backlog.oldest_received_at_ms), (3, Some(10_000)));
    assert_eq!(store.pending_events(2).await.unwrap().len(), 2);
    store.remove_events(&[pending[0].seq, pending[2].seq]).await.unwrap();
    let left = store.pending_events(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].seq, pending[1].seq);
    store.remove_events(&[]).await.unwrap();
    // A signature older than the window is forgotten: the same one is a new delivery then.
    let later = store.enqueue_events("sig-1", 20_000, 15_000, &[event("d", 4)]).await.unwrap();
    assert_eq!(later, Enqueued { stored: 1, duplicates: 0, replayed: false });
}
