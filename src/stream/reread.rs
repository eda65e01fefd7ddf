//! Targeted re-reads: when a property becomes a column of a table that already has rows (a
//! property newly included in the configuration, or added in HubSpot), its values for the
//! existing rows are read by an id keyset sweep that requests only that property, not a full
//! re-sync. The sweep is checkpointed like a backfill, so an interruption resumes it; over the
//! list path (a type without search) it is not, and a stop starts it over.

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::runner::{PreparedTable, Runner};
use super::Error;
use crate::destination::Destination;
use crate::hubspot::model::CrmObject;
use crate::hubspot::{Direction, Filter, FilterGroup, Operator, ReadPath, SearchRequest};
use crate::schema::hsync_columns;
use crate::state::{Checkpoint, StateStore, StreamId};

/// A re-read in progress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum RereadState {
    Running { properties: Vec<String>, after_id: i64 },
}

fn checkpoint(table: &str, state: &RereadState) -> Checkpoint {
    let RereadState::Running { after_id, .. } = state;
    Checkpoint {
        stream: StreamId::reread(table),
        position: *after_id,
        state: serde_json::to_value(state).expect("invariant: stream state serializes"),
    }
}

/// Schedules a re-read of `table.added` (merged with one already pending).
pub async fn schedule<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
) -> Result<(), Error> {
    if table.added.is_empty() {
        return Ok(());
    }
    let name = &table.object.table;
    let stream = StreamId::reread(name);
    let mut properties = match super::state::load::<RereadState>(&runner.state, &stream).await? {
        Some(RereadState::Running { properties, .. }) => properties,
        None => Vec::new(),
    };
    properties.extend(table.added.iter().cloned());
    properties.sort();
    properties.dedup();
    runner.state.reset_checkpoint(&stream).await?;
    runner.commit(&checkpoint(name, &RereadState::Running { properties, after_id: 0 })).await?;
    tracing::info!(table = %name, properties = table.added.len(), "scheduled a re-read of new columns");
    Ok(())
}

/// Runs the pending re-read of `table`, if any, to the end (or until `shutdown`).
pub async fn run<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    shutdown: &CancellationToken,
) -> Result<u64, Error> {
    let name = &table.object.table;
    let stream = StreamId::reread(name);
    let Some(RereadState::Running { properties, mut after_id }) = super::state::load(&runner.state, &stream).await?
    else {
        return Ok(0);
    };
    let (wanted, columns) = property_columns(table, &properties);
    let column_refs: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut rows = 0u64;
    if table.object.read_path() == ReadPath::List && !wanted.is_empty() {
        rows = reread_listed(runner, table, &with_cursor(table, &wanted), &column_refs, shutdown).await?;
        if shutdown.is_cancelled() {
            return Ok(rows);
        }
    }
    while table.object.read_path() == ReadPath::Search && !wanted.is_empty() {
        if shutdown.is_cancelled() {
            return Ok(rows);
        }
        let Some((records, last)) = column_page(runner, table, &wanted, after_id).await? else { break };
        let state = RereadState::Running { properties: properties.clone(), after_id: last };
        runner.write_columns(table, &records, &column_refs, Some(&checkpoint(name, &state))).await?;
        after_id = last;
        rows += records.len() as u64;
    }
    runner.state.reset_checkpoint(&stream).await?;
    tracing::info!(table = %name, rows, "re-read of new columns finished");
    Ok(rows)
}

/// Of `properties`, those with a column in `table`, and the columns a write of only them
/// carries: the id, cursor and sync time, then each property's column.
pub(super) fn property_columns(table: &PreparedTable, properties: &[String]) -> (Vec<String>, Vec<String>) {
    let mut wanted = Vec::new();
    let mut columns: Vec<String> =
        vec![hsync_columns::ID.into(), hsync_columns::CURSOR.into(), hsync_columns::SYNCED_AT.into()];
    for p in properties {
        if let Some(column) = table.schema.columns.iter().find(|c| c.property.as_deref() == Some(p.as_str())) {
            wanted.push(p.clone());
            columns.push(column.name.clone());
        }
    }
    (wanted, columns)
}

/// `properties` and the table's cursor property: what a partial read requests, so the
/// write's cursor guard holds.
pub(super) fn with_cursor(table: &PreparedTable, properties: &[String]) -> Vec<String> {
    let mut request = properties.to_vec();
    request.push(table.object.cursor_property.to_owned());
    request
}

/// One page of an id keyset sweep over search that reads only `properties` (and the cursor):
/// the records above `after_id` and the highest id among them, or `None` past the last record.
pub(super) async fn column_page<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    properties: &[String],
    after_id: i64,
) -> Result<Option<(Vec<CrmObject>, i64)>, Error> {
    let request = SearchRequest::new(
        vec![FilterGroup(vec![Filter::compare("hs_object_id", Operator::Gt, after_id)])],
        Some(("hs_object_id".to_owned(), Direction::Ascending)),
        with_cursor(table, properties),
        super::backfill::PAGE,
        0,
    )?;
    let page = runner.client.search(&table.object.api_name, &request).await?;
    Ok(page.results.iter().filter_map(|r| r.id.parse::<i64>().ok()).max().map(|last| (page.results, last)))
}

/// The re-read of a type without search: lists its records with `properties` and writes those
/// columns, committing nothing until it ends (the caller then drops the re-read).
pub(super) async fn reread_listed<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    properties: &[String],
    columns: &[&str],
    shutdown: &CancellationToken,
) -> Result<u64, Error> {
    let mut rows = 0u64;
    let mut after: Option<String> = None;
    loop {
        if shutdown.is_cancelled() {
            return Ok(rows);
        }
        let page = super::listing::page(&runner.client, &table.object, after.as_deref(), properties).await?;
        if !page.records.is_empty() {
            runner.write_columns(table, &page.records, columns, None).await?;
        }
        rows += page.records.len() as u64;
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(rows),
        }
    }
}
