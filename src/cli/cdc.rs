//! `hsync cdc [--once]`: reads what changed since the last pass, for every configured object.
//! Each object's pass is one run in the run history (`hsync status` shows it).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::session::{ride_out, shutdown_on_signal, Session};
use crate::hubspot::ObjectRef;
use crate::job::{Job, Report};
use crate::stream::cdc;

/// Options of `hsync cdc`.
#[derive(Debug, Args)]
pub struct CdcArgs {
    /// One pass over every object, then exit (for cron and systemd timers).
    #[arg(long)]
    pub once: bool,
    /// Seconds between passes when not `--once` (1 to 86,400, as daemon.cdc_interval_secs).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub interval_secs: u64,
    /// Only these object types (default: sync.objects).
    #[arg(long = "object")]
    pub objects: Vec<String>,
}

/// Runs CDC passes.
pub async fn run(
    config_path: Option<&Path>,
    args: CdcArgs,
    leasing: &super::session::Leasing,
) -> anyhow::Result<ExitCode> {
    let session = Session::open(config_path, leasing).await?;
    let shutdown = shutdown_on_signal();
    let objects = session.objects(&args.objects).await?;
    loop {
        let mut failures = super::ObjectFailures::default();
        for object in &objects {
            let outcome = ride_out(&object.table, &shutdown, |_| cdc_object(&session, object, &shutdown)).await;
            let Some(report) = failures.take(&object.table, outcome)? else { continue };
            println!(
                "{}: {} changed rows, watermark {}",
                object.table,
                report.rows,
                chrono::DateTime::from_timestamp_millis(report.watermark_ms).unwrap_or_default().to_rfc3339()
            );
            if shutdown.is_cancelled() {
                return Ok(ExitCode::SUCCESS);
            }
        }
        if args.once {
            return failures.finish();
        }
        if let Err(e) = failures.finish() {
            tracing::error!(error = %format!("{e:#}"), "a cdc pass failed for some objects; the next pass tries them again");
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(Duration::from_secs(args.interval_secs)) => {}
        }
    }
}

/// One CDC pass over one object (after re-reading columns added meanwhile), as one recorded run.
pub(super) async fn cdc_object(
    session: &Session,
    object: &ObjectRef,
    shutdown: &CancellationToken,
) -> anyhow::Result<cdc::Report> {
    match session.run(&Job::Cdc(object.clone()), shutdown).await?.report {
        Report::Cdc(report) => Ok(report),
        other => anyhow::bail!("internal error: a cdc pass reported {other:?}"),
    }
}
