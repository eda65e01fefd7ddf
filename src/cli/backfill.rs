//! `hsync backfill [--resume] [--object ...]`: copies every record, one committed page at a time.
//! Each object's backfill is one run in the run history (`hsync status` shows it). On a
//! terminal each object gets a progress bar with its rate and time left.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::session::{ride_out, shutdown_on_signal, Session};
use crate::hubspot::ObjectRef;
use crate::job::{Job, Report};
use crate::stream::backfill::{self, Mode};
use crate::telemetry::progress;

/// Options of `hsync backfill`.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Continue an interrupted backfill from its checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Start over even though a backfill finished or is interrupted (CDC restarts after it).
    #[arg(long, conflicts_with = "resume")]
    pub restart: bool,
    /// Only these object types (default: sync.objects).
    #[arg(long = "object")]
    pub objects: Vec<String>,
}

/// Runs the backfill of each object in turn.
pub async fn run(
    config_path: Option<&Path>,
    args: BackfillArgs,
    leasing: &super::session::Leasing,
) -> anyhow::Result<ExitCode> {
    let session = Session::open(config_path, leasing).await?;
    let shutdown = shutdown_on_signal();
    let mode = if args.resume { Mode::Resume } else { Mode::Fresh };
    let mut failures = super::ObjectFailures::default();
    for object in session.objects(&args.objects).await? {
        // A retry continues from the checkpoint the failed attempt reached.
        let outcome = ride_out(&object.table, &shutdown, |attempt| {
            let (mode, restart) = if attempt == 1 { (mode, args.restart) } else { (Mode::Resume, false) };
            backfill_object(&session, &object, mode, restart, &shutdown)
        })
        .await;
        let Some(report) = failures.take(&object.table, outcome)? else { continue };
        progress::suspend(|| {
            println!(
                "{}: {} rows in {} pages{}",
                object.table,
                report.rows,
                report.pages,
                if report.finished { ", done" } else { ", stopped" }
            )
        });
        if shutdown.is_cancelled() {
            break;
        }
    }
    failures.finish()
}

/// Backfills one object as one recorded run (then re-reads columns added meanwhile), with a
/// progress bar when stdout is a terminal; `restart` first forgets the object's backfill and
/// CDC checkpoints.
pub(super) async fn backfill_object(
    session: &Session,
    object: &ObjectRef,
    mode: Mode,
    restart: bool,
    shutdown: &CancellationToken,
) -> anyhow::Result<backfill::Report> {
    let job = Job::Backfill { object: object.clone(), mode, restart };
    match session.run(&job, shutdown).await?.report {
        Report::Backfill(report) => Ok(report),
        other => anyhow::bail!("internal error: a backfill reported {other:?}"),
    }
}
