//! Calculated-property refresh. HubSpot computes some properties itself (association rollups
//! such as `num_associated_deals`, formulas, scores, `hs_time_in_*`), and they can change
//! without moving the record's last-modified time (estuary/connectors #3515), so CDC never sees
//! the new value. This module owns which properties that is ([`refreshed_properties`], pure)
//! and the two ways their columns are re-read. Both write only those columns, with the cursor
//! read alongside (the merge's cursor guard holds: it is the record's current one).
//!
//! - **Around changes** ([`refresh_records`]): the association pass hands over the records at
//!   both ends of the edges it read for changed records, and of every batch whose stored edges
//!   changed (a deal linked to a company changes the company's `num_associated_deals`). They
//!   are re-read by batch read, 100 ids per call, before the pass commits its watermark (a
//!   crash repeats it). The targets of edges that disappeared come from the warehouse.
//! - **Sweep** ([`sweep`]): every record, by the id keyset over search (200 per call, only the
//!   calculated properties), checkpointed as `calculated:<table>`; a type without search is
//!   listed in full instead. The daemon runs it every `daemon.calculated_interval_secs` (daily
//!   by default) and `hsync refresh-calculated` on demand. It pauses while less than
//!   `daemon.calculated_budget_reserve_percent` of the day's call budget is left, and the next
//!   run continues where it stopped.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::reread::{column_page, property_columns, reread_listed, with_cursor};
use super::runner::{PreparedTable, Runner};
use super::Error;
use crate::destination::Destination;
use crate::hubspot::model::PropertyDefinition;
use crate::hubspot::{BudgetStatus, ObjectRef, ReadPath, BATCH_READ_MAX};
use crate::state::{Checkpoint, StateStore, StreamId};

/// HubSpot's own read-only properties that CDC already follows: they never change, or they
/// change only together with the last-modified time.
const FOLLOWED_BY_CDC: &[&str] =
    &["hs_object_id", "createdate", "hs_createdate", "lastmodifieddate", "hs_lastmodifieddate", "hs_merged_object_ids"];

/// The properties of `definitions` (those synced) that a refresh re-reads: the calculated ones
/// (see [`PropertyDefinition::is_calculated`]) except those CDC already follows, in
/// definition order.
pub fn refreshed_properties(object: &ObjectRef, definitions: &[PropertyDefinition]) -> Vec<String> {
    definitions
        .iter()
        .filter(|p| {
            p.is_calculated() && p.name != object.cursor_property && !FOLLOWED_BY_CDC.contains(&p.name.as_str())
        })
        .map(|p| p.name.clone())
        .collect()
}

/// Whether a sweep may spend calls now: at least `reserve_percent` of the day's budget is left
/// (always, without a budget).
pub fn budget_allows(status: &BudgetStatus, reserve_percent: u8) -> bool {
    match status.allowed {
        None => true,
        Some(allowed) => {
            let keep = allowed.saturating_mul(u64::from(reserve_percent)) / 100;
            status.used.saturating_add(keep) < allowed
        }
    }
}

/// Where the sweep of one table stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum CalculatedState {
    /// A sweep under way: the highest id read, when it began, rows written so far.
    Sweeping { after_id: i64, started_at_ms: i64, rows: u64 },
    /// The last sweep read every record; it ended at `finished_at_ms`.
    Swept { finished_at_ms: i64, rows: u64 },
}

impl CalculatedState {
    fn checkpoint(&self, table: &str) -> Checkpoint {
        let position = match self {
            CalculatedState::Sweeping { after_id, .. } => *after_id,
            CalculatedState::Swept { finished_at_ms, .. } => *finished_at_ms,
        };
        Checkpoint {
            stream: StreamId::calculated(table),
            position,
            state: serde_json::to_value(self).expect("invariant: stream state serializes"),
        }
    }
}

/// What a sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Rows whose calculated columns were written.
    pub rows: u64,
    /// The properties re-read.
    pub properties: usize,
    /// Whether the sweep reached the last record.
    pub finished: bool,
    /// Whether it paused because the day's budget is down to the reserve.
    pub held_for_budget: bool,
    /// Whether it did not run because the last sweep ended less than the interval ago.
    pub not_due: bool,
}

/// Re-reads the calculated columns of the records `ids` of `table` (those HubSpot still has)
/// by batch read, and writes them. Returns the rows written.
pub async fn refresh_records<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    ids: &BTreeSet<i64>,
) -> Result<u64, Error> {
    let (wanted, columns) = property_columns(table, &table.calculated);
    if wanted.is_empty() || ids.is_empty() {
        return Ok(0);
    }
    let request = with_cursor(table, &wanted);
    let column_refs: Vec<&str> = columns.iter().map(String::as_str).collect();
    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
    let mut rows = 0u64;
    for chunk in ids.chunks(BATCH_READ_MAX) {
        let read = runner.client.batch_read(&table.object.api_name, chunk, &request, false).await?;
        if !read.found.is_empty() {
            runner.write_columns(table, &read.found, &column_refs, None).await?;
        }
        rows += read.found.len() as u64;
    }
    if rows > 0 {
        tracing::debug!(table = %table.object.table, rows, "calculated properties re-read around changes");
    }
    Ok(rows)
}

/// Sweeps the calculated columns of every record of `table` (see the module docs), or
/// continues the sweep in progress. With `min_age_ms`, a table swept less than that long ago
/// is left alone. Stops between pages when `shutdown` fires or the budget is down to
/// `reserve_percent`.
pub async fn sweep<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    min_age_ms: Option<i64>,
    reserve_percent: u8,
    shutdown: &CancellationToken,
) -> Result<Report, Error> {
    let name = &table.object.table;
    let now = runner.clock.now().timestamp_millis();
    let (wanted, columns) = property_columns(table, &table.calculated);
    let mut report = Report { properties: wanted.len(), ..Report::default() };
    let saved = super::state::load::<CalculatedState>(&runner.state, &StreamId::calculated(name)).await?;
    let (mut after_id, started_at_ms, mut rows) = match saved {
        Some(CalculatedState::Sweeping { after_id, started_at_ms, rows }) => (after_id, started_at_ms, rows),
        Some(CalculatedState::Swept { finished_at_ms, .. })
            if min_age_ms.is_some_and(|age| now - finished_at_ms < age) =>
        {
            report.not_due = true;
            report.finished = true;
            return Ok(report);
        }
        _ => (0, now, 0),
    };
    let column_refs: Vec<&str> = columns.iter().map(String::as_str).collect();
    if !wanted.is_empty() && table.object.read_path() == ReadPath::List {
        if !budget_allows(&runner.client.budget_status().await, reserve_percent) {
            report.held_for_budget = true;
            return Ok(report);
        }
        rows = reread_listed(runner, table, &with_cursor(table, &wanted), &column_refs, shutdown).await?;
        if shutdown.is_cancelled() {
            return Ok(report);
        }
    }
    while !wanted.is_empty() && table.object.read_path() == ReadPath::Search {
        if shutdown.is_cancelled() {
            report.rows = rows;
            return Ok(report);
        }
        if !budget_allows(&runner.client.budget_status().await, reserve_percent) {
            tracing::info!(table = %name, after_id, "calculated-property sweep paused: the day's budget is down to the reserve");
            report.rows = rows;
            report.held_for_budget = true;
            return Ok(report);
        }
        let Some((records, last)) = column_page(runner, table, &wanted, after_id).await? else { break };
        rows += records.len() as u64;
        let state = CalculatedState::Sweeping { after_id: last, started_at_ms, rows };
        runner.write_columns(table, &records, &column_refs, Some(&state.checkpoint(name))).await?;
        after_id = last;
    }
    let finished_at_ms = runner.clock.now().timestamp_millis();
    runner.commit(&CalculatedState::Swept { finished_at_ms, rows }.checkpoint(name)).await?;
    tracing::info!(table = %name, rows, properties = wanted.len(), "calculated-property sweep finished");
    report.rows = rows;
    report.finished = true;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use serde_json::json;

    use super::*;
    use crate::hubspot::catalogue;

    fn definition(value: serde_json::Value) -> PropertyDefinition {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn rollups_are_refreshed_by_their_marks_not_by_the_calculated_flag() {
        let companies = ObjectRef::of(catalogue::find("companies").unwrap());
        let defs = [
            // Captured: a rollup that says `calculated: false`, read-only value.
            definition(json!({"name": "num_associated_contacts", "type": "number", "fieldType": "calculation_rollup",
                "calculated": false, "modificationMetadata": {"readOnlyValue": true}})),
            definition(json!({"name": "hs_num_open_deals", "type": "number", "fieldType": "number",
                "modificationMetadata": {"readOnlyValue": true}})),
            definition(json!({"name": "hs_time_in_lead", "type": "number", "fieldType": "calculation_read_time"})),
            definition(json!({"name": "days_to_close", "type": "number", "calculated": true})),
            definition(json!({"name": "name", "type": "string", "fieldType": "text",
                "modificationMetadata": {"readOnlyValue": false}})),
            // Followed by CDC already.
            definition(
                json!({"name": "hs_lastmodifieddate", "type": "datetime", "modificationMetadata": {"readOnlyValue": true}}),
            ),
            definition(
                json!({"name": "hs_object_id", "type": "number", "modificationMetadata": {"readOnlyValue": true}}),
            ),
            definition(
                json!({"name": "createdate", "type": "datetime", "modificationMetadata": {"readOnlyValue": true}}),
            ),
        ];
        assert_eq!(
            refreshed_properties(&companies, &defs),
            ["num_associated_contacts", "hs_num_open_deals", "hs_time_in_lead", "days_to_close"]
        );
    }

    #[test]
    fn the_sweep_keeps_the_reserve_of_the_budget() {
        let status = |used, allowed| BudgetStatus { used, allowed, resets_at: Utc::now() };
        assert!(budget_allows(&status(1_000_000, None), 30), "no budget, no limit");
        assert!(budget_allows(&status(69_999, Some(100_000)), 30));
        assert!(!budget_allows(&status(70_000, Some(100_000)), 30), "30% left is the reserve");
        assert!(!budget_allows(&status(100_000, Some(100_000)), 0), "a spent budget allows nothing");
        assert!(budget_allows(&status(99_999, Some(100_000)), 0));
    }

    #[test]
    fn the_checkpoint_names_the_stream_and_its_position() {
        let sweeping = CalculatedState::Sweeping { after_id: 41, started_at_ms: 7, rows: 3 }.checkpoint("deals");
        assert_eq!(sweeping.stream, StreamId::calculated("deals"));
        assert_eq!(sweeping.position, 41);
        let back: CalculatedState = serde_json::from_value(sweeping.state).unwrap();
        assert_eq!(back, CalculatedState::Sweeping { after_id: 41, started_at_ms: 7, rows: 3 });
    }
}
