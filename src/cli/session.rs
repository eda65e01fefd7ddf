//! What every syncing command opens: the configuration, the destination (with its state store
//! and budget ledger), the HubSpot client and the runner.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::destination::{AnyDestination, AnyStateStore, Destination};
use crate::hubspot::{self, HubSpotClient, ObjectRef};
use crate::stream::runner::{PropertyFilter, Runner};

/// An open session.
#[derive(Debug)]
pub struct Session {
    pub config: Config,
    pub runner: Runner<AnyDestination, AnyStateStore>,
}

impl Session {
    /// Loads the configuration, connects and prepares the destination, builds the client.
    pub async fn open(config_path: Option<&Path>) -> anyhow::Result<Session> {
        let config = Config::load(config_path).context("loading the configuration")?;
        let dest = AnyDestination::connect(&config.destination).await.context("connecting to the destination")?;
        dest.prepare().await.context("preparing the destination")?;
        let swept = dest.sweep_stages().await.context("removing staging tables left by a crash")?;
        if swept > 0 {
            tracing::info!(stages = swept, "removed staging tables left by an earlier crash");
        }
        let state = dest.state_store();
        let clock = crate::clock::system();
        let client = HubSpotClient::new(
            hubspot::client_config(&config),
            hubspot::token_source(&config),
            Arc::new(state.clone()),
            Arc::clone(&clock),
        )?;
        let filter = PropertyFilter {
            include: config.sync.include_properties.clone(),
            exclude: config.sync.exclude_properties.clone(),
        };
        Ok(Session { runner: Runner { client, dest, state, clock, filter }, config })
    }

    /// The configured objects, or `only` when given.
    pub async fn objects(&self, only: &[String]) -> anyhow::Result<Vec<ObjectRef>> {
        let names = if only.is_empty() { self.config.sync.objects.clone() } else { only.to_vec() };
        Ok(hubspot::resolve_objects(&self.runner.client, &names).await?)
    }
}

/// A token cancelled on SIGINT or SIGTERM, so commands finish the batch in flight and stop.
pub fn shutdown_on_signal() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        super::wait_for_signal().await;
        tracing::info!("stopping after the batch in flight");
        trigger.cancel();
    });
    token
}
