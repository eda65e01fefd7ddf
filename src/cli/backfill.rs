//! `hsync backfill [--resume] [--object ...]`: copies every record, one committed page at a time.
//! Each object's backfill is one run in the run history (`hsync status` shows it). On a
//! terminal each object gets a progress bar with its rate and time left.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use indicatif::ProgressBar;
use tokio_util::sync::CancellationToken;

use super::session::{recorded, ride_out, shutdown_on_signal, Session};
use crate::hubspot::ObjectRef;
use crate::state::StateStore;
use crate::stream::backfill::{self, Mode};
use crate::stream::reread;
use crate::stream::state::{cdc_stream, BackfillState};
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
    let stream = crate::stream::state::backfill_stream(&object.table);
    let work = async {
        let table = session.runner.prepare(object).await?;
        if restart {
            session.runner.state.reset_checkpoint(&stream).await?;
            session.runner.state.reset_checkpoint(&cdc_stream(&object.table)).await?;
            tracing::info!(table = %object.table, "backfill restarted from the first id");
        }
        reread::schedule(&session.runner, &table).await?;
        let bar = records_bar(session, object, mode).await?;
        let fetch = backfill::Fetch::ahead_if(session.config.sync.backfill_fetch_ahead);
        let report = backfill::run(&session.runner, &table, mode, fetch, shutdown, |rows| {
            if let Some(bar) = &bar {
                bar.inc(rows);
            }
        })
        .await;
        if let Some(bar) = &bar {
            progress::finish(bar);
        }
        let report = report?;
        if report.finished {
            reread::run(&session.runner, &table, shutdown).await?;
        }
        anyhow::Ok(report)
    };
    recorded(&session.runner, &stream, |r: &backfill::Report| r.rows, work).await
}

/// A bar sized by HubSpot's record count (one search), starting at the rows a resumed
/// backfill already copied; none when bars are not shown or the backfill will not run.
async fn records_bar(session: &Session, object: &ObjectRef, mode: Mode) -> anyhow::Result<Option<ProgressBar>> {
    if !progress::shown() {
        return Ok(None);
    }
    let stream = crate::stream::state::backfill_stream(&object.table);
    let state = session.runner.state.load_checkpoint(&stream).await?.and_then(|c| BackfillState::from_checkpoint(&c));
    let done = match (state, mode) {
        (None, _) => 0,
        (Some(BackfillState::Running { rows, .. }), Mode::Resume) => u64::try_from(rows).unwrap_or(0),
        _ => return Ok(None),
    };
    let total = session.runner.client.count(&object.api_name).await?;
    Ok(Some(progress::records_bar(&object.table, total.max(done), done)))
}
