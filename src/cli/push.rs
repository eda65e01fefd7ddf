//! `hsync push <name> [--dry-run] [--restart]`: runs the push job `[push.<name>]` (see
//! [`crate::push`]) as one recorded run, beside a syncing daemon if one runs, and prints what
//! happened to the rows: counts by outcome, the first refused and failed rows with their
//! reasons, and where every row's outcome is kept. Exit 5 when rows were rejected or failed,
//! or written without an association they name.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::session::{shutdown_on_signal, Session};
use crate::job::{Job, Report};
use crate::push::{Options, Summary};
use crate::telemetry::progress;

/// Exit code when some rows were rejected, failed or lack an association (the others were
/// written).
pub const ROWS_REFUSED: u8 = 5;

/// Options of `hsync push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The push job: a `[push.<name>]` table of the configuration.
    pub name: String,
    /// Check and plan every row without writing to HubSpot or the destination.
    #[arg(long)]
    pub dry_run: bool,
    /// Start a new run even when the last one did not finish (it resumes otherwise).
    #[arg(long)]
    pub restart: bool,
}

/// Runs the push and prints its summary.
pub async fn run(config_path: Option<&Path>, args: PushArgs) -> anyhow::Result<ExitCode> {
    let session = Session::open_beside_sync(config_path).await?;
    let Some(push) = session.config.push.get(&args.name).cloned() else {
        let known: Vec<&str> = session.config.push.keys().map(String::as_str).collect();
        return Err(crate::push::Error::Unknown {
            name: args.name.clone(),
            known: if known.is_empty() { "none".to_owned() } else { known.join(", ") },
        }
        .into());
    };
    let options = Options { dry_run: args.dry_run, restart: args.restart };
    let job = Job::Push { name: args.name.clone(), push, options };
    let stop = shutdown_on_signal();
    let outcome = session.run(&job, &stop).await.with_context(|| format!("push {}", args.name))?;
    let Report::Push(summary) = outcome.report else {
        anyhow::bail!("internal error: a push reported {:?}", outcome.report);
    };
    let text = render(&args.name, &summary);
    progress::suspend(|| print!("{text}"));
    let count = |o: &str| summary.outcomes.get(o).copied().unwrap_or(0);
    let refused = count("rejected") + count("failed") + count(crate::push::UNASSOCIATED);
    Ok(if refused > 0 { ExitCode::from(ROWS_REFUSED) } else { ExitCode::SUCCESS })
}

/// The terminal summary.
pub fn render(name: &str, s: &Summary) -> String {
    let mut out = String::new();
    let count = |o: &str| s.outcomes.get(o).copied().unwrap_or(0);
    if s.rows == 0 {
        out.push_str(&format!("push {name}: the source has no rows; nothing to do\n"));
        return out;
    }
    if s.dry_run {
        out.push_str(&format!(
            "push {name} (dry run) to {}: {} rows: {} would be sent, {} rejected; nothing was written\n",
            s.object,
            s.rows,
            count("to_send"),
            count("rejected")
        ));
    } else {
        out.push_str(&format!(
            "push {name} to {} (run {}): {} rows: {} created, {} updated, {} unchanged, {} rejected, {} failed; {} calls\n",
            s.object,
            s.run_id,
            s.rows,
            count("created"),
            count("updated"),
            count("unchanged"),
            count("rejected"),
            count("failed"),
            s.calls
        ));
        let unassociated = count(crate::push::UNASSOCIATED);
        if unassociated > 0 {
            out.push_str(&format!(
                "  {unassociated} written rows lack an association (shown below; rerun once the records exist)\n"
            ));
        }
        if s.resumed_after > 0 {
            out.push_str(&format!("  resumed after row {} of an unfinished run\n", s.resumed_after));
        }
    }
    for (row, outcome, reason) in &s.examples {
        out.push_str(&format!("  row {row}: {outcome}: {reason}\n"));
    }
    if !s.dry_run {
        out.push_str(&format!(
            "every row's outcome: select * from push_results where push = '{name}' and run_id = '{}'\n",
            s.run_id
        ));
    }
    if s.stopped {
        out.push_str("stopped before the end; run the same command again to continue\n");
    }
    out
}
