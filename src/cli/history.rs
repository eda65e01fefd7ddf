//! `hsync history [--object ...]`: one property history pass per object that `sync.history`
//! names (see `stream::history`): every record's history the first time, then only the records
//! CDC wrote since the last pass. Each object's pass is one recorded run; a failure stops only
//! its object.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::session::{ride_out, shutdown_on_signal, Session};
use crate::job::{Job, Report};

/// Options of `hsync history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only these object types (default: every object `sync.history` names).
    #[arg(long = "object")]
    pub objects: Vec<String>,
}

/// Runs one pass per object with history.
pub async fn run(
    config_path: Option<&Path>,
    args: HistoryArgs,
    leasing: &super::session::Leasing,
) -> anyhow::Result<ExitCode> {
    let session = Session::open(config_path, leasing).await?;
    let shutdown = shutdown_on_signal();
    let mut failures = super::ObjectFailures::default();
    let mut any = false;
    for object in session.objects(&args.objects).await? {
        let Some(selection) = session.config.sync.history_for(&object) else {
            if !args.objects.is_empty() {
                println!(
                    "{}: sync.history keeps no history for it; name its properties in [sync.history]",
                    object.table
                );
            }
            continue;
        };
        any = true;
        let job = Job::History { object: object.clone(), selection };
        let outcome = ride_out(&object.table, &shutdown, |_| async {
            match session.run(&job, &shutdown).await?.report {
                Report::History(report) => Ok(report),
                other => anyhow::bail!("internal error: a history pass reported {other:?}"),
            }
        })
        .await;
        let Some(report) = failures.take(&object.table, outcome)? else { continue };
        if !report.finished {
            println!("{}: stopped after {} records; run again to continue", object.table, report.records);
            break;
        }
        println!("{}: history of {} records, {} versions written", object.table, report.records, report.versions);
        if report.rejects > 0 {
            println!("{}: {} versions left out: they are listed in _hsync_rejects", object.table, report.rejects);
        }
    }
    if !any && args.objects.is_empty() {
        println!("sync.history names no object: nothing to read (hsync plan shows what it would cost)");
    }
    failures.finish()
}
