//! `hsync associations [--sweep] [--object ...]`: reads the association edges between the
//! configured objects into the warehouse's `associations` table (see `stream::associations`).
//! By default an incremental poll of the records changed since the last poll (the first poll
//! of an object is a full sweep); `--sweep` reads every record's associations, which also
//! catches changes on records whose last-modified time did not move.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::session::{ride_out, shutdown_on_signal, Session};
use crate::job::{self, Job};
use crate::stream::associations::{Report, Source};

/// Options of `hsync associations`.
#[derive(Debug, Args)]
pub struct AssociationsArgs {
    /// Read the associations of every record (the slower full sweep) instead of only those of
    /// records changed since the last poll.
    #[arg(long)]
    pub sweep: bool,
    /// Only the pairs stored from these objects' side; a pair is stored from the object listed
    /// first in sync.objects (default: every configured object).
    #[arg(long = "object")]
    pub objects: Vec<String>,
}

/// Polls (or sweeps) the association pairs of each selected object in turn.
pub async fn run(
    config_path: Option<&Path>,
    args: AssociationsArgs,
    leasing: &super::session::Leasing,
) -> anyhow::Result<ExitCode> {
    let session = Session::open(config_path, leasing).await?;
    let shutdown = shutdown_on_signal();
    // Pairs are canonical by the configured order, so every configured object is resolved.
    let configured = session.objects(&[]).await?;
    let only = if args.objects.is_empty() { Vec::new() } else { session.objects(&args.objects).await? };
    if let Some(stranger) = only.iter().find(|o| !configured.iter().any(|c| c.table == o.table)) {
        return Err(crate::stream::Error::Precondition(format!(
            "{} is not in sync.objects; associations are synced among the configured objects only",
            stranger.table
        ))
        .into());
    }
    let mut sources = session.jobs.association_sources(&configured).await?;
    if !only.is_empty() {
        sources.retain(|s| only.iter().any(|o| o.table == s.from.table));
    }
    if sources.is_empty() {
        println!("no association pairs to read: HubSpot defines none stored from the selected objects' side");
        return Ok(ExitCode::SUCCESS);
    }
    for source in &sources {
        let report =
            ride_out(&source.from.table, &shutdown, |_| associations_source(&session, source, args.sweep, &shutdown))
                .await?;
        for pair in &report.pairs {
            println!(
                "{} -> {}: {} records read, {} edges listed, {} written, {} tombstoned{}",
                pair.from,
                pair.to,
                pair.records,
                pair.edges,
                pair.upserted,
                pair.tombstoned,
                if pair.swept { " (full sweep)" } else { "" }
            );
        }
        if !report.finished {
            println!("{}: stopped before the end; nothing committed, run again", source.from.table);
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One pass (a sweep, or a poll of changed records) over the pairs stored from one object's
/// side, as one recorded run.
pub(super) async fn associations_source(
    session: &Session,
    source: &Source,
    sweep: bool,
    shutdown: &CancellationToken,
) -> anyhow::Result<Report> {
    let job = Job::Associations { source: source.clone(), sweep };
    match session.run(&job, shutdown).await?.report {
        job::Report::Associations(report) => Ok(report),
        other => anyhow::bail!("internal error: an association pass reported {other:?}"),
    }
}
