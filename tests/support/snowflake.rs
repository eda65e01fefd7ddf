//! Snowflake test harness: destinations on the fakesnow emulator (`HSYNC_SF_EMULATOR_URL`), each
//! in a database of its own (`T_<hex>`), since hsync's session pool shares the emulator's
//! in-memory catalog across sessions.

use hsync::destination::snowflake::client::{ClientConfig, Credentials};
use hsync::destination::snowflake::SnowflakeDestination;
use hsync::destination::sqlite::SqliteStateStore;
use hsync::destination::Destination;
use hsync::state::StateStore;

use super::{sim_client, Sim};

/// The password the test destinations log in with (the emulator accepts any).
pub const PASSWORD: &str = "sf-test-password-5d1c";

/// The emulator's URL, or `None` (test skipped outside CI) when it is not running.
pub fn emulator() -> Option<String> {
    super::emulator_url("HSYNC_SF_EMULATOR_URL", "the Snowflake emulator (fakesnow)")
}

/// A client configuration for a fresh database on the emulator at `endpoint`.
pub fn fresh_config(endpoint: &str) -> ClientConfig {
    ClientConfig {
        endpoint: endpoint.trim_end_matches('/').to_owned(),
        account: "hsync_test".to_owned(),
        user: "hsync".to_owned(),
        database: format!("T_{:08X}", rand::random::<u32>()),
        schema: "HUBSPOT".to_owned(),
        warehouse: Some("TEST_WH".to_owned()),
        role: None,
        credentials: Credentials::Password(PASSWORD.to_owned()),
    }
}

/// A prepared destination in a fresh database on the emulator at `endpoint`.
pub async fn fresh_destination(endpoint: &str) -> SnowflakeDestination {
    let dest = SnowflakeDestination::new(fresh_config(endpoint)).expect("destination");
    dest.prepare().await.expect("prepare");
    dest
}

/// A runner syncing `sim` into a fresh Snowflake database, with hsync's state in a local SQLite
/// file under `dir` (Snowflake does not hold it).
pub async fn snowflake_runner(
    sim: &Sim,
    endpoint: &str,
    dir: &std::path::Path,
) -> hsync::stream::runner::Runner<SnowflakeDestination, SqliteStateStore> {
    let dest = fresh_destination(endpoint).await;
    let state = SqliteStateStore::open(dir.join("state.db")).await.expect("local state");
    state.migrate().await.expect("migrate local state");
    hsync::stream::runner::Runner {
        client: sim_client(sim, std::sync::Arc::new(state.clone())),
        dest,
        state,
        clock: hsync::clock::system(),
        filter: hsync::stream::runner::PropertyFilter::default(),
    }
}
