//! `hsync deletes [--object ...]`: reconciles archived, merged and hard-deleted records into
//! the warehouse's flags, for every configured object (see `stream::deletes`).

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::session::{ride_out, shutdown_on_signal, Session};
use crate::hubspot::ObjectRef;
use crate::job::{Job, Report};
use crate::stream::deletes;

/// Options of `hsync deletes`.
#[derive(Debug, Args)]
pub struct DeletesArgs {
    /// Only these object types (default: sync.objects).
    #[arg(long = "object")]
    pub objects: Vec<String>,
}

/// Runs one reconcile per object.
pub async fn run(
    config_path: Option<&Path>,
    args: DeletesArgs,
    leasing: &super::session::Leasing,
) -> anyhow::Result<ExitCode> {
    let session = Session::open(config_path, leasing).await?;
    let shutdown = shutdown_on_signal();
    let mut failures = super::ObjectFailures::default();
    for object in session.objects(&args.objects).await? {
        let outcome = ride_out(&object.table, &shutdown, |_| deletes_object(&session, &object, &shutdown)).await;
        let Some(report) = failures.take(&object.table, outcome)? else { continue };
        if !report.finished {
            println!("{}: stopped before writing; run again", object.table);
            break;
        }
        println!(
            "{}: {} live, {} archived, {} merged away, {} newly deleted, {} restored; {} rows flagged",
            object.table, report.live, report.archived, report.merged, report.deleted, report.restored, report.written
        );
    }
    failures.finish()
}

/// One reconcile of one object, as one recorded run.
pub(super) async fn deletes_object(
    session: &Session,
    object: &ObjectRef,
    shutdown: &CancellationToken,
) -> anyhow::Result<deletes::Report> {
    match session.run(&Job::Deletes(object.clone()), shutdown).await?.report {
        Report::Deletes(report) => Ok(report),
        other => anyhow::bail!("internal error: a deletes reconcile reported {other:?}"),
    }
}
