//! The persisted state of each stream, versioned and serde-tagged. A variant is added, never
//! changed in meaning, and the oldest format stays readable (tested below).

use serde::{Deserialize, Serialize};

use crate::state::Checkpoint;

/// The stream names a checkpoint is stored under.
pub fn backfill_stream(table: &str) -> String {
    format!("backfill:{table}")
}

pub fn cdc_stream(table: &str) -> String {
    format!("cdc:{table}")
}

pub fn associations_stream(table: &str) -> String {
    format!("associations:{table}")
}

pub fn deletes_stream(table: &str) -> String {
    format!("deletes:{table}")
}

/// A backfill's progress: keyset pagination over `hs_object_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum BackfillState {
    /// Every record with an id up to `after_id` is in the warehouse.
    Running { after_id: i64, started_at_ms: i64, rows: i64 },
    /// Finished; CDC takes over from `started_at_ms` minus the settle lag.
    Done { started_at_ms: i64, finished_at_ms: i64, rows: i64 },
}

impl BackfillState {
    /// The checkpoint for this state. Positions only grow: `after_id` while running, then
    /// `i64::MAX` once done.
    pub fn checkpoint(&self, table: &str) -> Checkpoint {
        let position = match self {
            BackfillState::Running { after_id, .. } => *after_id,
            BackfillState::Done { .. } => i64::MAX,
        };
        Checkpoint {
            stream: backfill_stream(table),
            position,
            state: serde_json::to_value(self).expect("invariant: stream state serializes"),
        }
    }

    /// Reads the state back from a checkpoint.
    pub fn from_checkpoint(c: &Checkpoint) -> Option<BackfillState> {
        serde_json::from_value(c.state.clone()).ok()
    }

    pub fn started_at_ms(&self) -> i64 {
        match self {
            BackfillState::Running { started_at_ms, .. } | BackfillState::Done { started_at_ms, .. } => *started_at_ms,
        }
    }
}

/// CDC's progress: every change before `watermark_ms` is in the warehouse.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum CdcState {
    Polling { watermark_ms: i64, last_pass_ms: i64, rows: i64 },
}

impl CdcState {
    pub fn checkpoint(&self, table: &str) -> Checkpoint {
        let CdcState::Polling { watermark_ms, .. } = self;
        Checkpoint {
            stream: cdc_stream(table),
            position: *watermark_ms,
            state: serde_json::to_value(self).expect("invariant: stream state serializes"),
        }
    }

    pub fn from_checkpoint(c: &Checkpoint) -> Option<CdcState> {
        serde_json::from_value(c.state.clone()).ok()
    }

    pub fn watermark_ms(&self) -> i64 {
        let CdcState::Polling { watermark_ms, .. } = self;
        *watermark_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_format_stays_readable() {
        let running: Checkpoint = Checkpoint {
            stream: "backfill:contacts".into(),
            position: 41,
            state: serde_json::json!({"phase": "running", "after_id": 41, "started_at_ms": 5, "rows": 12}),
        };
        assert_eq!(
            BackfillState::from_checkpoint(&running),
            Some(BackfillState::Running { after_id: 41, started_at_ms: 5, rows: 12 })
        );
        let cdc = Checkpoint {
            stream: "cdc:contacts".into(),
            position: 9,
            state: serde_json::json!({"phase": "polling", "watermark_ms": 9, "last_pass_ms": 10, "rows": 0}),
        };
        assert_eq!(CdcState::from_checkpoint(&cdc).map(|s| s.watermark_ms()), Some(9));
    }

    #[test]
    fn positions_only_grow_through_a_backfill() {
        let running = BackfillState::Running { after_id: 100, started_at_ms: 1, rows: 1 }.checkpoint("contacts");
        let done = BackfillState::Done { started_at_ms: 1, finished_at_ms: 2, rows: 1 }.checkpoint("contacts");
        assert!(done.position > running.position);
    }
}
