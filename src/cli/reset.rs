//! `hsync reset STREAM...`: forgets streams' checkpoints, the way out of a checkpoint hsync
//! cannot read (it stops that stream and names this command). Each stream then starts over:
//! CDC from the backfill's start, a backfill from the first id, an association poll with a full
//! sweep; rows are updated in place, so nothing is lost, only HubSpot calls are spent.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::session::Session;
use crate::state::{StateStore, StreamId, StreamKind};

/// Options of `hsync reset`.
#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The streams, as `hsync status` names them (`cdc:contacts`, `associations:deals`, ...).
    #[arg(required = true, value_name = "STREAM", value_parser = parse_stream)]
    pub streams: Vec<StreamId>,
}

fn parse_stream(text: &str) -> Result<StreamId, String> {
    let stream: StreamId = text.parse().map_err(|e: crate::state::UnknownStream| e.to_string())?;
    if stream.kind() == StreamKind::Reread {
        // Forgetting a pending re-read would leave its columns empty on the rows copied before.
        return Err(format!(
            "a re-read is not reset on its own (the new columns would stay empty on existing rows); run `hsync backfill --restart --object {}`",
            stream.table()
        ));
    }
    Ok(stream)
}

/// Forgets each stream's checkpoint.
pub async fn run(
    config_path: Option<&Path>,
    args: ResetArgs,
    leasing: &super::session::Leasing,
) -> anyhow::Result<ExitCode> {
    let session = Session::open(config_path, leasing).await?;
    let state = &session.jobs.runner.state;
    for stream in &args.streams {
        if state.load_checkpoint(stream).await.is_ok_and(|c| c.is_none()) {
            println!("{stream}: no checkpoint; nothing to forget");
            continue;
        }
        state.reset_checkpoint(stream).await?;
        println!("{stream}: checkpoint forgotten; {}", next_run(stream));
    }
    Ok(ExitCode::SUCCESS)
}

/// What the stream's next run does without its checkpoint.
fn next_run(stream: &StreamId) -> &'static str {
    match stream.kind() {
        StreamKind::Backfill => "the next `hsync backfill` starts from the first id",
        StreamKind::Cdc => "the next pass reads from the backfill's start",
        StreamKind::Associations => "the next poll sweeps every record's associations",
        StreamKind::History => {
            "the next pass reads the history of every record again (stored versions are not doubled)"
        }
        StreamKind::Calculated => "the next sweep reads every record's calculated properties from the first id",
        StreamKind::Webhooks => "the counts start again from zero; pending events stay queued",
        StreamKind::Push => {
            "the next `hsync push` starts a new run from the first row (upserts write the same records)"
        }
        StreamKind::Deletes | StreamKind::Dimensions | StreamKind::Schema | StreamKind::Reread => {
            "the next run starts afresh"
        }
    }
}
