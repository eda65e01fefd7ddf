//! `hsync run`: starts the daemon (see [`crate::daemon`]) and maps its end to an exit code.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::session::shutdown_on_signal;
use crate::config::Config;

/// Options of `hsync run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Serve the endpoints here instead of daemon.listen (e.g. 127.0.0.1:0 for any free port).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
}

/// Runs until SIGTERM or SIGINT, then exits 0 once the batch in flight committed.
pub async fn run(config_path: Option<&Path>, args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(config_path).context("loading the configuration")?;
    if let Some(listen) = args.listen {
        config.daemon.listen = listen.to_string();
    }
    crate::daemon::run(config, shutdown_on_signal()).await.context("running the daemon")?;
    Ok(ExitCode::SUCCESS)
}
