//! The end-to-end sync scenarios of `sync_engine`, `sync_associations` and `sync_deletes`,
//! run into Snowflake (the fakesnow emulator) with hsync's state in a local SQLite file, and
//! compared with the simulator's ground truth; and the catalogue's engagement, commerce and
//! list-only types and property history through the `hsync` binary (`sync_catalogue`,
//! `sync_history`). Portals are kept small: the emulator runs an
//! array-bound insert row by row.

use hsync_sim::PortalSpec;

use hsync::destination::snowflake::SnowflakeDestination;

use crate::support::snowflake::{emulator, fresh_config, snowflake_runner, PASSWORD};
use crate::support::Sim;

#[tokio::test]
async fn sync_backfill_and_cdc_match_ground_truth_in_snowflake() {
    let Some(endpoint) = emulator() else { return };
    // The scenario touches 450 contacts and 40 deals.
    let portal = PortalSpec {
        contacts: 480,
        companies: 40,
        deals: 50,
        tickets: 20,
        cars: 15,
        custom_properties: 6,
        // fakesnow translates every statement, and each column slows it: the width of a real
        // portal's catalogue is held to ground truth on the other destinations.
        hubspot_catalogue: false,
        ..PortalSpec::default()
    };
    let sim = Sim::start(crate::support::unlimited(portal)).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = snowflake_runner(&sim, &endpoint, dir.path()).await;
    crate::sync_engine::scenario(&sim, &runner, hsync::stream::backfill::Fetch::InTurn).await;
}

#[tokio::test]
async fn associations_match_ground_truth_in_snowflake() {
    let Some(endpoint) = emulator() else { return };
    let portal = PortalSpec {
        contacts: 150,
        companies: 40,
        deals: 50,
        tickets: 20,
        cars: 15,
        custom_properties: 2,
        // Small pages, so records with many associations follow their own paging tokens.
        association_page_size: 2,
        // fakesnow translates every statement, and each column slows it: the width of a real
        // portal's catalogue is held to ground truth on the other destinations.
        hubspot_catalogue: false,
        ..PortalSpec::default()
    };
    let sim = Sim::start(crate::support::unlimited(portal)).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = snowflake_runner(&sim, &endpoint, dir.path()).await;
    crate::sync_associations::scenario(&sim, &runner).await;
}

#[tokio::test]
async fn archive_restore_merge_and_gdpr_delete_are_reflected_in_snowflake() {
    let Some(endpoint) = emulator() else { return };
    let portal = PortalSpec {
        contacts: 120,
        companies: 30,
        deals: 30,
        tickets: 15,
        cars: 12,
        custom_properties: 3,
        // fakesnow translates every statement, and each column slows it: the width of a real
        // portal's catalogue is held to ground truth on the other destinations.
        hubspot_catalogue: false,
        ..PortalSpec::default()
    };
    let sim = Sim::start(crate::support::unlimited(portal)).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = snowflake_runner(&sim, &endpoint, dir.path()).await;
    crate::sync_deletes::scenario(&sim, &runner).await;
}

/// The `[destination]` keys of a configuration for the `hsync` binary on `client`'s database.
fn destination_keys(client: &hsync::destination::snowflake::client::ClientConfig) -> String {
    format!(
        "url = \"snowflake://{}:{PASSWORD}@{}/{}/{}?warehouse=TEST_WH\"\n\n[destination.snowflake]\nendpoint = \"{}\"",
        client.user, client.account, client.database, client.schema, client.endpoint
    )
}

#[tokio::test]
async fn engagements_line_items_and_contracts_match_ground_truth_in_snowflake() {
    let Some(endpoint) = emulator() else { return };
    let portal = PortalSpec { hubspot_catalogue: false, ..crate::sync_catalogue::warehouse_portal() };
    let sim = Sim::start(crate::support::unlimited(portal)).await;
    let dir = tempfile::tempdir().unwrap();
    let client = fresh_config(&endpoint);
    let destination = destination_keys(&client);
    let objects = crate::sync_catalogue::WAREHOUSE_OBJECTS;
    let config = crate::sync_catalogue::write_config(dir.path(), &sim.handle.base_url(), &destination, &objects);
    let dest = SnowflakeDestination::new(client).expect("destination");
    crate::sync_catalogue::scenario(&sim, &config, &dest, &objects).await;
}

#[tokio::test]
async fn property_history_matches_ground_truth_in_snowflake() {
    let Some(endpoint) = emulator() else { return };
    let portal = PortalSpec { hubspot_catalogue: false, ..crate::sync_history::portal() };
    let sim = Sim::start(crate::support::unlimited(portal)).await;
    let dir = tempfile::tempdir().unwrap();
    let client = fresh_config(&endpoint);
    let destination = destination_keys(&client);
    let config = crate::sync_history::write_config(dir.path(), &sim, &destination);
    let dest = SnowflakeDestination::new(client).expect("destination");
    crate::sync_history::scenario(&sim, &config, &dest).await;
}
