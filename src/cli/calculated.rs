//! `hsync refresh-calculated [--object ...]`: re-reads the calculated properties (rollups,
//! formulas, scores) of every record of the configured objects, which change in HubSpot without
//! moving last-modified (see `stream::calculated`); continues a sweep that stopped.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::session::{ride_out, shutdown_on_signal, Session};
use crate::hubspot::ObjectRef;
use crate::job::{Job, Report};
use crate::stream::calculated;

/// Options of `hsync refresh-calculated`.
#[derive(Debug, Args)]
pub struct RefreshCalculatedArgs {
    /// Only these object types (default: sync.objects).
    #[arg(long = "object")]
    pub objects: Vec<String>,
}

/// Runs one sweep per object.
pub async fn run(
    config_path: Option<&Path>,
    args: RefreshCalculatedArgs,
    leasing: &super::session::Leasing,
) -> anyhow::Result<ExitCode> {
    let session = Session::open(config_path, leasing).await?;
    let shutdown = shutdown_on_signal();
    let mut failures = super::ObjectFailures::default();
    for object in session.objects(&args.objects).await? {
        let outcome = ride_out(&object.table, &shutdown, |_| sweep_object(&session, &object, &shutdown)).await;
        let Some(report) = failures.take(&object.table, outcome)? else { continue };
        let table = &object.table;
        match report {
            calculated::Report { properties: 0, .. } => println!("{table}: no calculated properties"),
            calculated::Report { held_for_budget: true, rows, .. } => println!(
                "{table}: paused after {rows} rows: the day's API budget is down to the reserve \
                 (daemon.calculated_budget_reserve_percent); run again after the budget resets"
            ),
            calculated::Report { finished: false, rows, .. } => {
                println!("{table}: stopped after {rows} rows; run again to continue");
                break;
            }
            calculated::Report { rows, properties, .. } => {
                println!("{table}: {properties} calculated properties re-read on {rows} rows")
            }
        }
    }
    failures.finish()
}

/// One sweep of one object, as one recorded run.
async fn sweep_object(
    session: &Session,
    object: &ObjectRef,
    shutdown: &CancellationToken,
) -> anyhow::Result<calculated::Report> {
    match session.run(&Job::Calculated { object: object.clone(), min_age: None }, shutdown).await?.report {
        Report::Calculated(report) => Ok(report),
        other => anyhow::bail!("internal error: a calculated-property sweep reported {other:?}"),
    }
}
