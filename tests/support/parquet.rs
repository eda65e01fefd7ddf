//! The Parquet destination in tests: a runner syncing the simulator into a directory of Parquet
//! files, with hsync's state in a local SQLite file beside it, as `destination.url =
//! "parquet://…"` configures it.

use hsync::config::{DestinationConfig, DestinationUrl};
use hsync::destination::parquet::ParquetDestination;
use hsync::destination::sqlite::SqliteStateStore;
use hsync::destination::{Destination, LocalState};
use hsync::stream::runner::{PropertyFilter, Runner};

use super::{sim_client, Sim};

/// The destination directory under `dir`.
pub fn lake(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("lake")
}

/// A runner syncing `sim` into `dir/lake`, its state in `dir/hsync-state.db`.
pub async fn parquet_runner(sim: &Sim, dir: &std::path::Path) -> Runner<ParquetDestination, SqliteStateStore> {
    let config = DestinationConfig {
        url: DestinationUrl::new(format!("parquet://{}", lake(dir).display())),
        state_path: Some(dir.join("hsync-state.db")),
        ..DestinationConfig::default()
    };
    let dest = ParquetDestination::connect(config.url.expose()).expect("parquet destination");
    dest.prepare().await.expect("prepare");
    let state = LocalState::open(&config).await.expect("local state").store;
    Runner {
        client: sim_client(sim, std::sync::Arc::new(state.clone())),
        dest,
        state,
        clock: hsync::clock::system(),
        filter: PropertyFilter::default(),
    }
}
