//! `hsync dimensions`: refreshes the owners, pipelines and pipeline_stages tables in full from
//! HubSpot's complete lists (see `stream::dimensions`), as one run in the run history.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;

use super::session::{ride_out, Session};
use crate::job::{Job, Report};

/// Options of `hsync dimensions` (none yet).
#[derive(Debug, Args)]
pub struct DimensionsArgs {}

/// Runs one refresh.
pub async fn run(
    config_path: Option<&Path>,
    _args: DimensionsArgs,
    leasing: &super::session::Leasing,
) -> anyhow::Result<ExitCode> {
    let session = Session::open(config_path, leasing).await?;
    let never = tokio_util::sync::CancellationToken::new();
    let job = Job::Dimensions(session.objects(&[]).await?);
    let report = ride_out("dimensions", &never, |_| async {
        match session.run(&job, &never).await?.report {
            Report::Dimensions(report) => Ok(report),
            other => anyhow::bail!("internal error: a dimensions refresh reported {other:?}"),
        }
    })
    .await?;
    println!(
        "owners: {} rows, pipelines: {} rows, pipeline_stages: {} rows; {} rows newly marked removed",
        report.owners, report.pipelines, report.stages, report.removed
    );
    if report.rejects > 0 {
        println!("{} values did not parse: they are NULL and listed in _hsync_rejects", report.rejects);
    }
    Ok(ExitCode::SUCCESS)
}
