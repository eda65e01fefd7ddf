//! `hsync status [--json]`: each stream's phase, watermark, lag, rows and last error, and the
//! day's API budget, read from the state store alone (no HubSpot call, so it works without a
//! token and with the budget spent). The model and its JSON live in [`crate::stream::status`];
//! this file prints it.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;

use super::session::Warehouse;
use crate::stream::status::{self, StatusReport, StreamStatus, WebhooksStatus};

/// Options of `hsync status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON (the same document the daemon's `/status` serves) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Errors longer than this are cut in the table (`--json` has them whole).
const ERROR_WIDTH: usize = 80;

/// Prints the status.
pub async fn run(config_path: Option<&Path>, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let warehouse = Warehouse::open(config_path).await?;
    let report = status::collect(
        &warehouse.state,
        Arc::new(warehouse.state.clone()),
        warehouse.config.hubspot_client_config().budget,
        Arc::clone(&warehouse.clock),
    )
    .await
    .context("reading the state store")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).context("encoding the status as JSON")?);
    } else {
        print!("{}", render_table(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn cut(text: &str, width: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= width && !text.contains('\n') {
        return line.to_owned();
    }
    let kept: String = line.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}

fn row(s: &StreamStatus) -> Vec<String> {
    let dash = || "-".to_owned();
    let phase = format!("{} {}", s.kind, s.phase);
    let watermark = match (s.watermark, s.after_id) {
        (Some(w), _) => iso(w),
        (None, Some(id)) => format!("after id {id}"),
        (None, None) => dash(),
    };
    let lag = s.lag_seconds.map_or_else(dash, |l| format!("{l}s"));
    let rows = s.rows.map_or_else(dash, |r| r.to_string());
    let last_run = s.last_run.as_ref().map_or_else(dash, |r| format!("{} {}", r.status, iso(r.started_at)));
    let error = match (&s.last_run, &s.last_error) {
        // The latest run failed: its error is the stream's current problem.
        (Some(run), _) if run.status == crate::state::RunStatus::Failed => {
            cut(run.error.as_deref().unwrap_or("failed without a message"), ERROR_WIDTH)
        }
        (_, Some(failure)) => cut(&format!("(earlier, {}) {}", iso(failure.at), failure.message), ERROR_WIDTH),
        _ => dash(),
    };
    vec![s.stream.to_string(), phase, watermark, lag, rows, last_run, error]
}

/// The human table: aligned columns, then the budget line.
pub fn render_table(report: &StatusReport) -> String {
    let mut out = String::new();
    if report.streams.is_empty() {
        out.push_str("no stream has a checkpoint yet; start with `hsync backfill`\n");
    } else {
        let header: Vec<String> =
            ["STREAM", "PHASE", "WATERMARK", "LAG", "ROWS", "LAST RUN", "ERROR"].map(str::to_owned).into();
        let rows: Vec<Vec<String>> = std::iter::once(header).chain(report.streams.iter().map(row)).collect();
        let widths: Vec<usize> =
            (0..rows[0].len()).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
        for r in &rows {
            let cells: Vec<String> = r.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
    }
    if let Some(w) = &report.webhooks {
        out.push('\n');
        out.push_str(&webhooks_line(w));
        out.push('\n');
    }
    let b = &report.budget;
    let budget = match (b.allowed, b.left) {
        (Some(allowed), Some(left)) => format!(
            "budget {}: {} of {allowed} calls used, {left} left{}, resets {}",
            b.day,
            b.used,
            if b.exhausted { " (spent: streams wait for the reset)" } else { "" },
            iso(b.resets_at)
        ),
        _ => format!("budget {}: {} calls used, no daily budget of hsync's own", b.day, b.used),
    };
    out.push('\n');
    out.push_str(&budget);
    out.push('\n');
    out
}

/// One line on webhooks: received, refused, applied, waiting.
fn webhooks_line(w: &WebhooksStatus) -> String {
    let r = &w.received;
    let mut line = format!(
        "webhooks: {} events accepted in {} deliveries ({} duplicates)",
        r.events_accepted, r.deliveries_accepted, r.events_duplicate
    );
    let refused = r.deliveries_rejected_total();
    if refused > 0 {
        let reasons: Vec<String> = r.deliveries_rejected.iter().map(|(reason, n)| format!("{reason} {n}")).collect();
        line.push_str(&format!(", {refused} deliveries refused ({})", reasons.join(", ")));
    } else {
        line.push_str(", none refused");
    }
    line.push_str(&format!("; {} applied ({} coalesced)", w.events_applied, w.events_coalesced));
    if let Some(lag) = w.lag_seconds {
        line.push_str(&format!(", lag {lag}s"));
    }
    line.push_str(&format!("; {} waiting", w.events_waiting));
    if let Some(age) = w.oldest_waiting_seconds {
        line.push_str(&format!(" (oldest {age}s)"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::RunRecord;
    use crate::stream::state::{BackfillState, CdcState};
    use crate::stream::status::{stream_status, BudgetReport};

    #[test]
    fn table_aligns_columns_and_shows_the_failing_runs_error() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z").unwrap().with_timezone(&Utc);
        let runs = vec![RunRecord {
            stream: crate::state::StreamId::cdc("contacts"),
            started_at: now,
            finished_at: Some(now),
            status: crate::state::RunStatus::Failed,
            rows: 0,
            error: Some("HubSpot kept failing on search (last status 502) after 6 attempts".into()),
        }];
        let streams = vec![
            stream_status(
                &BackfillState::Done { started_at_ms: 0, finished_at_ms: 1, rows: 250 }.checkpoint("contacts"),
                &runs,
                now,
            ),
            stream_status(
                &CdcState::Polling { watermark_ms: now.timestamp_millis() - 90_000, last_pass_ms: 0, rows: 3 }
                    .checkpoint("contacts"),
                &runs,
                now,
            ),
        ];
        let report = StatusReport {
            generated_at: now,
            streams,
            budget: BudgetReport {
                day: now.date_naive(),
                used: 120,
                allowed: Some(1_000),
                left: Some(880),
                exhausted: false,
                resets_at: now,
            },
            webhooks: None,
        };
        let table = render_table(&report);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("STREAM "), "{table}");
        let column = |line: &str, word: &str| line.find(word).unwrap();
        assert_eq!(column(lines[0], "PHASE"), column(lines[1], "backfill done"), "{table}");
        assert_eq!(column(lines[0], "PHASE"), column(lines[2], "cdc polling"), "{table}");
        assert!(lines[2].contains("90s") && lines[2].contains("last status 502"), "{table}");
        assert!(table.contains("120 of 1000 calls used, 880 left"), "{table}");
    }

    #[test]
    fn the_webhooks_line_says_what_was_received_refused_applied_and_waits() {
        let received = crate::webhooks::Receipts {
            deliveries_accepted: 3,
            events_accepted: 41,
            events_duplicate: 2,
            deliveries_rejected: [("bad_signature".to_owned(), 2), ("stale".to_owned(), 1)].into(),
        };
        let w = WebhooksStatus {
            received,
            events_applied: 40,
            events_coalesced: 12,
            lag_seconds: Some(1),
            events_waiting: 1,
            oldest_waiting_seconds: Some(4),
        };
        assert_eq!(
            webhooks_line(&w),
            "webhooks: 41 events accepted in 3 deliveries (2 duplicates), 3 deliveries refused \
             (bad_signature 2, stale 1); 40 applied (12 coalesced), lag 1s; 1 waiting (oldest 4s)"
        );
    }

    #[test]
    fn long_errors_are_cut() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("0123456789abc", 10), "012345678…");
        assert_eq!(cut("first\nsecond", 80), "first…");
    }
}
