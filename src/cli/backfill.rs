//! `hsync backfill [--resume] [--object ...]`: copies every record, one committed page at a time.
//! Each object's backfill is one run in the run history (`hsync status` shows it).

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::session::{recorded, shutdown_on_signal, Session};
use crate::stream::backfill::{self, Mode};
use crate::stream::reread;

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
pub async fn run(config_path: Option<&Path>, args: BackfillArgs) -> anyhow::Result<ExitCode> {
    let session = Session::open(config_path).await?;
    let shutdown = shutdown_on_signal();
    let mode = if args.resume { Mode::Resume } else { Mode::Fresh };
    for object in session.objects(&args.objects).await? {
        let stream = crate::stream::state::backfill_stream(&object.table);
        let work = async {
            let table = session.runner.prepare(&object).await?;
            if args.restart {
                use crate::state::StateStore;
                use crate::stream::state::cdc_stream;
                session.runner.state.reset_checkpoint(&stream).await?;
                session.runner.state.reset_checkpoint(&cdc_stream(&object.table)).await?;
                tracing::info!(table = %object.table, "backfill restarted from the first id");
            }
            reread::schedule(&session.runner, &table).await?;
            let report = backfill::run(&session.runner, &table, mode, &shutdown, |_| {}).await?;
            if report.finished {
                reread::run(&session.runner, &table, &shutdown).await?;
            }
            anyhow::Ok(report)
        };
        let report = recorded(&session.runner, &stream, |r: &backfill::Report| r.rows, work).await?;
        println!(
            "{}: {} rows in {} pages{}",
            object.table,
            report.rows,
            report.pages,
            if report.finished { ", done" } else { ", stopped" }
        );
        if shutdown.is_cancelled() {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}
