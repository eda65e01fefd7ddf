//! What `hsync status` (and later the daemon's `/status`) reports, as typed data: every stream
//! the state store holds a checkpoint for, read through the stream's versioned state and joined
//! with its latest runs, and the day's API budget as the persisted ledger records it.
//!
//! This module owns the status model ([`StatusReport`] and its parts, whose serde field names are
//! the stable JSON contract) and [`collect`]. It never calls HubSpot: it reads the state store
//! only, so it answers when the token is missing or the budget is spent.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::state::{BackfillState, CdcState};
use super::webhooks::WebhooksState;
use super::Error;
use crate::clock::Clock;
use crate::hubspot::{BudgetConfig, BudgetStore, DailyBudget};
use crate::state::{Checkpoint, EventBacklog, RunRecord, RunStatus, StateStore, StreamId, StreamKind};
use crate::webhooks::Receipts;

/// How many recent runs are read to find each stream's latest run and latest failure.
pub const RUN_WINDOW: i64 = 1_000;

/// Everything `hsync status` shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusReport {
    /// When the report was made (UTC).
    pub generated_at: DateTime<Utc>,
    /// One entry per checkpointed stream, by object, backfill before CDC.
    pub streams: Vec<StreamStatus>,
    pub budget: BudgetReport,
    /// Webhooks, once the receiver counted or stored anything.
    pub webhooks: Option<WebhooksStatus>,
}

/// What the webhook receiver took in and what became of it, from the `webhooks:events`
/// checkpoint (counts folded in by the daemon every few seconds) and the event queue.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WebhooksStatus {
    /// Deliveries and events accepted, and deliveries refused by reason.
    #[serde(flatten)]
    pub received: Receipts,
    /// Events applied (records read back and merged).
    pub events_applied: i64,
    /// Applied events that needed no read of their own.
    pub events_coalesced: i64,
    /// From the latest applied event's `occurredAt` to its merge.
    pub lag_seconds: Option<i64>,
    /// Events stored and not applied yet.
    pub events_waiting: u64,
    /// Since the oldest waiting event arrived.
    pub oldest_waiting_seconds: Option<i64>,
}

/// One stream's progress and health.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StreamStatus {
    /// The checkpoint's stream, `backfill:contacts`.
    pub stream: StreamId,
    /// `backfill`, `cdc`, `associations`, `deletes`, ...
    pub kind: StreamKind,
    /// The object table, `contacts`.
    pub object: String,
    /// `running` or `done` for a backfill, `polling` for CDC; other streams report their
    /// state's own `phase`, or `unknown`; `unreadable` when the checkpoint does not decode.
    pub phase: String,
    /// Every change before this instant is in the warehouse (CDC and streams with a watermark).
    pub watermark: Option<DateTime<Utc>>,
    /// Seconds from the watermark to `generated_at`; for `webhooks:events`, from the latest
    /// applied event's `occurredAt` to its merge.
    pub lag_seconds: Option<i64>,
    /// Rows the stream has read so far, as its state counts them.
    pub rows: Option<i64>,
    /// A running backfill's position: every id up to this one is in the warehouse.
    pub after_id: Option<i64>,
    /// When a backfill started.
    pub started_at: Option<DateTime<Utc>>,
    /// When a backfill finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// When a CDC pass last committed.
    pub last_pass_at: Option<DateTime<Utc>>,
    /// The stream's latest recorded run.
    pub last_run: Option<LastRun>,
    /// The latest failed run among the recent ones (it may be older than `last_run`).
    pub last_error: Option<RunFailure>,
}

/// One recorded run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LastRun {
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// A run still `running` whose process died stays so.
    pub status: RunStatus,
    pub rows: i64,
    pub error: Option<String>,
}

/// The latest failure of a stream.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunFailure {
    /// When the failed run ended (or started, when it never recorded an end).
    pub at: DateTime<Utc>,
    /// The error's message (hsync's errors carry no row values).
    pub message: String,
}

/// The day's API budget, from the persisted ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct BudgetReport {
    /// The portal's day (in its time zone) the figures count.
    pub day: NaiveDate,
    /// Calls used today as the ledger records them (reserved in blocks, so at most one block
    /// above the calls actually made).
    pub used: u64,
    /// The configured budget for today; `None` when unlimited. A running process may have
    /// tightened it further from HubSpot's headers.
    pub allowed: Option<u64>,
    /// `allowed - used`; `None` when unlimited.
    pub left: Option<u64>,
    /// Whether the budget is spent (streams wait for the reset).
    pub exhausted: bool,
    /// The portal's next midnight, in UTC.
    pub resets_at: DateTime<Utc>,
}

/// Reads every checkpoint, the recent runs and the budget ledger, and builds the report.
pub async fn collect<S: StateStore>(
    state: &S,
    budget_store: Arc<dyn BudgetStore>,
    budget: BudgetConfig,
    clock: Arc<dyn Clock>,
) -> Result<StatusReport, Error> {
    let now = clock.now();
    let checkpoints = state.checkpoints().await?;
    let runs = state.recent_runs(RUN_WINDOW).await?;
    let ledger = DailyBudget::new(budget, clock, budget_store);
    let budget = ledger.ledger_status().await?;
    let mut streams: Vec<StreamStatus> = checkpoints.iter().map(|c| stream_status(c, &runs, now)).collect();
    let applied = checkpoints.iter().find(|c| c.stream.kind() == StreamKind::Webhooks);
    let webhooks = webhooks_status(applied, state.event_backlog().await?, now);
    // By object, then backfill, CDC and the others (the kinds' order).
    streams.sort_by(|a, b| (&a.object, a.kind).cmp(&(&b.object, b.kind)));
    Ok(StatusReport {
        generated_at: now,
        streams,
        budget: BudgetReport {
            day: ledger.day(),
            used: budget.used,
            allowed: budget.allowed,
            left: budget.allowed.map(|a| a.saturating_sub(budget.used)),
            exhausted: budget.allowed.is_some_and(|a| budget.used >= a),
            resets_at: budget.resets_at,
        },
        webhooks,
    })
}

/// The webhooks' part of the report, when there is anything to say (an unreadable checkpoint
/// reads as nothing applied; its stream shows as `unreadable`).
pub fn webhooks_status(
    applied: Option<&Checkpoint>,
    backlog: EventBacklog,
    now: DateTime<Utc>,
) -> Option<WebhooksStatus> {
    if applied.is_none() && backlog.pending == 0 {
        return None;
    }
    let state: WebhooksState = applied.and_then(|c| serde_json::from_value(c.state.clone()).ok()).unwrap_or_default();
    Some(WebhooksStatus {
        received: state.received,
        events_applied: state.rows,
        events_coalesced: state.coalesced,
        lag_seconds: (state.latest_event_ms > 0).then_some(state.lag_ms / 1_000),
        events_waiting: backlog.pending,
        oldest_waiting_seconds: backlog.oldest_received_at_ms.map(|ms| (now.timestamp_millis() - ms).max(0) / 1_000),
    })
}

fn instant(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}

fn lag_seconds(watermark: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<i64> {
    watermark.map(|w| (now - w).num_seconds())
}

/// One stream's status from its checkpoint and the recent runs (newest first).
pub fn stream_status(checkpoint: &Checkpoint, runs: &[RunRecord], now: DateTime<Utc>) -> StreamStatus {
    let kind = checkpoint.stream.kind();
    let mut status = StreamStatus {
        stream: checkpoint.stream.clone(),
        kind,
        object: checkpoint.stream.table().to_owned(),
        phase: "unknown".to_owned(),
        watermark: None,
        lag_seconds: None,
        rows: None,
        after_id: None,
        started_at: None,
        finished_at: None,
        last_pass_at: None,
        last_run: None,
        last_error: None,
    };
    match kind {
        StreamKind::Backfill => match BackfillState::from_checkpoint(checkpoint) {
            Ok(BackfillState::Running { after_id, started_at_ms, rows, .. }) => {
                status.phase = "running".to_owned();
                status.after_id = Some(after_id);
                status.started_at = instant(started_at_ms);
                status.rows = Some(rows);
            }
            Ok(BackfillState::Done { started_at_ms, finished_at_ms, rows }) => {
                status.phase = "done".to_owned();
                status.started_at = instant(started_at_ms);
                status.finished_at = instant(finished_at_ms);
                status.rows = Some(rows);
            }
            Err(_) => "unreadable".clone_into(&mut status.phase),
        },
        StreamKind::Cdc => match CdcState::from_checkpoint(checkpoint) {
            Ok(CdcState::Polling { watermark_ms, last_pass_ms, rows }) => {
                status.phase = "polling".to_owned();
                status.watermark = instant(watermark_ms);
                status.last_pass_at = instant(last_pass_ms);
                status.rows = Some(rows);
            }
            // A pass stopped part-way; the next run continues it.
            Ok(
                CdcState::Paging { watermark_ms, pass_started_ms, last_pass_ms, rows, .. }
                | CdcState::Ranged { watermark_ms, pass_started_ms, last_pass_ms, rows, .. },
            ) => {
                status.phase = "paging".to_owned();
                status.watermark = instant(watermark_ms);
                status.started_at = instant(pass_started_ms);
                status.last_pass_at = (last_pass_ms > 0).then(|| instant(last_pass_ms)).flatten();
                status.rows = Some(rows);
            }
            Err(_) => "unreadable".clone_into(&mut status.phase),
        },
        // Streams this module does not know read through the fields every state shares by
        // convention: a `phase` tag, and `watermark_ms`, `rows`, `started_at_ms` and
        // `finished_at_ms` where they apply.
        _ => {
            let state = &checkpoint.state;
            if let Some(phase) = state.get("phase").and_then(|p| p.as_str()) {
                phase.clone_into(&mut status.phase);
            }
            status.watermark = state.get("watermark_ms").and_then(serde_json::Value::as_i64).and_then(instant);
            status.rows = state.get("rows").and_then(serde_json::Value::as_i64);
            status.started_at = state.get("started_at_ms").and_then(serde_json::Value::as_i64).and_then(instant);
            status.finished_at = state.get("finished_at_ms").and_then(serde_json::Value::as_i64).and_then(instant);
        }
    }
    status.lag_seconds = match kind {
        // Events come when records change: the time since the last one is not lag.
        StreamKind::Webhooks => checkpoint.state.get("lag_ms").and_then(serde_json::Value::as_i64).map(|ms| ms / 1_000),
        _ => lag_seconds(status.watermark, now),
    };
    status.last_run = runs.iter().find(|r| r.stream == checkpoint.stream).map(|r| LastRun {
        started_at: r.started_at,
        finished_at: r.finished_at,
        status: r.status,
        rows: r.rows,
        error: r.error.clone(),
    });
    status.last_error =
        runs.iter().find(|r| r.stream == checkpoint.stream && r.status == RunStatus::Failed).map(|r| RunFailure {
            at: r.finished_at.unwrap_or(r.started_at),
            message: r.error.clone().unwrap_or_else(|| "failed without a message".to_owned()),
        });
    status
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn run(stream: &str, started: &str, status: &str, error: Option<&str>) -> RunRecord {
        RunRecord {
            stream: stream.parse().unwrap(),
            started_at: at(started),
            finished_at: Some(at(started) + chrono::Duration::seconds(5)),
            status: status.parse().unwrap(),
            rows: 7,
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn cdc_reports_watermark_lag_and_the_latest_runs() {
        let now = at("2026-01-01T12:00:00Z");
        let watermark = at("2026-01-01T11:58:20Z").timestamp_millis();
        let checkpoint = CdcState::Polling { watermark_ms: watermark, last_pass_ms: now.timestamp_millis(), rows: 42 }
            .checkpoint("contacts");
        let runs = vec![
            run("cdc:contacts", "2026-01-01T11:59:00Z", "ok", None),
            run("cdc:deals", "2026-01-01T11:58:00Z", "failed", Some("other stream")),
            run("cdc:contacts", "2026-01-01T11:50:00Z", "failed", Some("HubSpot kept failing on search")),
        ];
        let status = stream_status(&checkpoint, &runs, now);
        assert_eq!(
            (status.kind.as_str(), status.object.as_str(), status.phase.as_str()),
            ("cdc", "contacts", "polling")
        );
        assert_eq!(status.watermark, instant(watermark));
        assert_eq!(status.lag_seconds, Some(100));
        assert_eq!(status.rows, Some(42));
        assert_eq!(status.last_run.as_ref().map(|r| r.status.as_str()), Some("ok"));
        let failure = status.last_error.expect("the older failure is kept");
        assert_eq!(failure.message, "HubSpot kept failing on search");
        assert_eq!(failure.at, at("2026-01-01T11:50:05Z"));
    }

    #[test]
    fn an_interrupted_cdc_pass_shows_as_paging() {
        let now = at("2026-01-01T12:00:00Z");
        let watermark = at("2026-01-01T11:50:00Z").timestamp_millis();
        let started = at("2026-01-01T11:59:00Z");
        let checkpoint = CdcState::Paging {
            watermark_ms: watermark,
            position: crate::stream::cursor::CdcPosition::From { from_ms: watermark + 5 },
            pass_started_ms: started.timestamp_millis(),
            last_pass_ms: 0,
            rows: 7,
        }
        .checkpoint("deals");
        let status = stream_status(&checkpoint, &[], now);
        assert_eq!((status.phase.as_str(), status.rows, status.lag_seconds), ("paging", Some(7), Some(600)));
        assert_eq!((status.started_at, status.last_pass_at), (Some(started), None));
    }

    #[test]
    fn backfill_phases_and_unknown_streams() {
        let now = at("2026-01-01T12:00:00Z");
        let running =
            BackfillState::Running { after_id: 900, started_at_ms: 1_000, rows: 200, list_after: None, ranged: None }
                .checkpoint("deals");
        let status = stream_status(&running, &[], now);
        assert_eq!((status.phase.as_str(), status.after_id, status.rows), ("running", Some(900), Some(200)));
        assert_eq!(status.watermark, None);
        assert_eq!(status.last_run, None);
        let done = BackfillState::Done { started_at_ms: 1_000, finished_at_ms: 2_000, rows: 5 }.checkpoint("deals");
        let status = stream_status(&done, &[], now);
        assert_eq!((status.phase.as_str(), status.finished_at), ("done", instant(2_000)));
        let other = Checkpoint {
            stream: StreamId::deletes("deals"),
            position: 3,
            state: json!({"phase": "sweeping", "watermark_ms": now.timestamp_millis() - 60_000, "rows": 3,
                          "finished_at_ms": 2_000}),
        };
        let status = stream_status(&other, &[], now);
        assert_eq!(status.finished_at, instant(2_000));
        assert_eq!(
            (status.kind.as_str(), status.phase.as_str(), status.lag_seconds),
            ("deletes", "sweeping", Some(60))
        );
        let garbled = Checkpoint { stream: StreamId::cdc("deals"), position: 0, state: json!({"phase": "polling"}) };
        assert_eq!(stream_status(&garbled, &[], now).phase, "unreadable");
    }

    #[test]
    fn json_field_names_are_stable() {
        let now = at("2026-01-01T12:00:00Z");
        let report = StatusReport {
            generated_at: now,
            streams: vec![stream_status(
                &CdcState::Polling { watermark_ms: now.timestamp_millis(), last_pass_ms: 0, rows: 1 }
                    .checkpoint("contacts"),
                &[],
                now,
            )],
            budget: BudgetReport {
                day: now.date_naive(),
                used: 10,
                allowed: Some(100),
                left: Some(90),
                exhausted: false,
                resets_at: now,
            },
            webhooks: None,
        };
        let value = serde_json::to_value(&report).unwrap();
        let stream = &value["streams"][0];
        for field in [
            "stream",
            "kind",
            "object",
            "phase",
            "watermark",
            "lag_seconds",
            "rows",
            "after_id",
            "started_at",
            "finished_at",
            "last_pass_at",
            "last_run",
            "last_error",
        ] {
            assert!(stream.get(field).is_some(), "streams[].{field}");
        }
        assert_eq!(stream["watermark"], "2026-01-01T12:00:00Z");
        assert_eq!(value["budget"]["day"], "2026-01-01");
        assert_eq!(value["budget"]["left"], 90);
        assert_eq!(value["generated_at"], "2026-01-01T12:00:00Z");
    }

    #[test]
    fn the_webhook_stream_reports_the_lag_of_its_last_events_not_the_time_since() {
        let now = at("2026-01-01T12:00:00Z");
        let checkpoint = Checkpoint {
            stream: StreamId::webhooks(),
            position: 40,
            state: json!({"phase": "applying", "latest_event_ms": at("2026-01-01T09:00:00Z").timestamp_millis(),
                "lag_ms": 1_500, "rows": 40, "coalesced": 12, "finished_at_ms": at("2026-01-01T09:00:01Z").timestamp_millis()}),
        };
        let status = stream_status(&checkpoint, &[], now);
        assert_eq!((status.phase.as_str(), status.rows, status.lag_seconds), ("applying", Some(40), Some(1)));
        assert_eq!(status.stream.to_string(), "webhooks:events");
    }

    #[test]
    fn webhooks_show_what_was_received_applied_and_waits() {
        let now = at("2026-01-01T12:00:00Z");
        let none = EventBacklog { pending: 0, oldest_received_at_ms: None };
        assert_eq!(webhooks_status(None, none, now), None, "no webhooks: no section");
        let checkpoint = Checkpoint {
            stream: StreamId::webhooks(),
            position: 40,
            state: json!({"phase": "applying", "latest_event_ms": 5, "lag_ms": 2_500, "rows": 40, "coalesced": 12,
                "finished_at_ms": 6, "received": {"deliveries_accepted": 3, "events_accepted": 41,
                "events_duplicate": 2, "deliveries_rejected": {"stale": 1}}}),
        };
        let waiting = EventBacklog { pending: 1, oldest_received_at_ms: Some(now.timestamp_millis() - 4_000) };
        let status = webhooks_status(Some(&checkpoint), waiting, now).unwrap();
        assert_eq!((status.events_applied, status.events_coalesced, status.lag_seconds), (40, 12, Some(2)));
        assert_eq!((status.events_waiting, status.oldest_waiting_seconds), (1, Some(4)));
        assert_eq!((status.received.events_accepted, status.received.deliveries_rejected_total()), (41, 1));
        let value = serde_json::to_value(&status).unwrap();
        for field in [
            "deliveries_accepted",
            "events_accepted",
            "events_duplicate",
            "deliveries_rejected",
            "events_applied",
            "events_coalesced",
            "lag_seconds",
            "events_waiting",
            "oldest_waiting_seconds",
        ] {
            assert!(value.get(field).is_some(), "webhooks.{field}");
        }
        let queued_only = webhooks_status(None, waiting, now).unwrap();
        assert_eq!((queued_only.events_applied, queued_only.lag_seconds, queued_only.events_waiting), (0, None, 1));
    }
}
