//! The sync engine end to end into BigQuery (bqemulator): backfill and CDC, associations, and
//! deletes and merges, each compared with the simulator's ground truth by the same scenarios
//! the SQLite and Postgres tests run, and the catalogue's engagement, commerce and list-only
//! types and property history through the `hsync` binary. Portals are small: every statement
//! is a DuckDB job.

use hsync_sim::PortalSpec;

use crate::support::bigquery::{bigquery_runner, FreshDataset};
use crate::support::{unlimited, Sim};

fn portal(contacts: u64) -> PortalSpec {
    PortalSpec {
        contacts,
        companies: 60,
        deals: 50,
        tickets: 25,
        cars: 20,
        custom_properties: 6,
        ..PortalSpec::default()
    }
}

#[tokio::test]
async fn sync_backfill_and_cdc_match_ground_truth_in_bigquery() {
    let Some(fresh) = FreshDataset::new() else { return };
    // The scenario touches 450 contacts after the backfill.
    let sim = Sim::start(unlimited(portal(480))).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = bigquery_runner(&sim, &fresh, dir.path()).await;
    crate::sync_engine::scenario(&sim, &runner, hsync::stream::backfill::Fetch::InTurn).await;
    fresh.drop().await;
}

#[tokio::test]
async fn associations_match_ground_truth_in_bigquery() {
    let Some(fresh) = FreshDataset::new() else { return };
    let sim = Sim::start(unlimited(PortalSpec { association_page_size: 2, ..portal(200) })).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = bigquery_runner(&sim, &fresh, dir.path()).await;
    crate::sync_associations::scenario(&sim, &runner).await;
    fresh.drop().await;
}

#[tokio::test]
async fn archive_restore_merge_and_gdpr_delete_are_reflected_in_bigquery() {
    let Some(fresh) = FreshDataset::new() else { return };
    let sim = Sim::start(unlimited(portal(150))).await;
    let dir = tempfile::tempdir().unwrap();
    let runner = bigquery_runner(&sim, &fresh, dir.path()).await;
    crate::sync_deletes::scenario(&sim, &runner).await;
    fresh.drop().await;
}

#[tokio::test]
async fn engagements_line_items_and_contracts_match_ground_truth_in_bigquery() {
    let Some(fresh) = FreshDataset::new() else { return };
    let sim = Sim::start(unlimited(crate::sync_catalogue::warehouse_portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let destination = fresh.destination_keys();
    let objects = crate::sync_catalogue::WAREHOUSE_OBJECTS;
    let config = crate::sync_catalogue::write_config(dir.path(), &sim.handle.base_url(), &destination, &objects);
    crate::sync_catalogue::scenario(&sim, &config, &fresh.connect().await, &objects).await;
    fresh.drop().await;
}

#[tokio::test]
async fn property_history_matches_ground_truth_in_bigquery() {
    let Some(fresh) = FreshDataset::new() else { return };
    let sim = Sim::start(unlimited(crate::sync_history::portal())).await;
    let dir = tempfile::tempdir().unwrap();
    let destination = fresh.destination_keys();
    let config = crate::sync_history::write_config(dir.path(), &sim, &destination);
    crate::sync_history::scenario(&sim, &config, &fresh.connect().await).await;
    fresh.drop().await;
}
