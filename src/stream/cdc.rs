//! CDC: one pass reads every record modified since the watermark, in last-modified order,
//! without offsets (see `cursor`), merges it, and commits with each page the watermark and the
//! position the pass goes on from, so a pass interrupted at any instant is continued, not
//! restarted. The watermark never passes the pass's start minus the settle lag, so what
//! HubSpot's search index had not caught up with is read again next time; the guarded merge
//! makes the re-read harmless.
//!
//! A large pass (more than two ranges' worth of changes, see [`walk::ranges_for`], found from
//! its first page's `total`) is walked like a large backfill instead: id ranges at once, each
//! by search for the records modified since the watermark ([`walk::Scope::Changes`]), so a
//! month-end update of every record fills the search bucket whatever HubSpot's latency. Its
//! first page is written with the planned ranges (which read those records again), and the
//! watermark moves once every range is read; a stop costs at most the page in flight of each
//! range.
//!
//! A type without search ([`ReadPath::List`]) cannot ask for changed records: its pass lists
//! every record's id and cursor and batch-reads the ones at or after the watermark
//! ([`pass_listed`]). Such a pass commits only at its end; a stop costs the listing so far.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::cursor::{durable_watermark, next_position, CdcPosition, PageSummary};
use super::listing;
use super::runner::{PreparedTable, Runner};
use super::state::{BackfillState, CdcState, RangedWalk};
use super::walk::{self, ChangesPass, Scope};
use super::{record_cursor_ms, Error};
use crate::destination::Destination;
use crate::hubspot::{Direction, Filter, FilterGroup, Operator, ReadPath, SearchRequest};
use crate::state::StateStore;
use crate::state::StreamId;

/// Search page size: HubSpot's maximum.
pub const PAGE: u32 = 200;

/// What a pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub pages: u64,
    pub rows: u64,
    /// The watermark committed at the end.
    pub watermark_ms: i64,
    /// IDs of the records read, for the association poll.
    pub changed_ids: Vec<String>,
}

fn request(table: &PreparedTable, position: &CdcPosition) -> Result<SearchRequest, crate::hubspot::Error> {
    let cursor = table.object.cursor_property;
    let (groups, sort) = match position {
        CdcPosition::From { from_ms } => {
            (vec![FilterGroup(vec![Filter::compare(cursor, Operator::Gte, from_ms)])], cursor)
        }
        CdcPosition::Past { at_ms, seen } => (
            vec![
                FilterGroup(vec![Filter::compare(cursor, Operator::Gt, at_ms)]),
                FilterGroup(vec![
                    Filter::compare(cursor, Operator::Eq, at_ms),
                    Filter::one_of("hs_object_id", Operator::NotIn, seen.iter().map(i64::to_string).collect()),
                ]),
            ],
            cursor,
        ),
        CdcPosition::After { after_ms } => {
            (vec![FilterGroup(vec![Filter::compare(cursor, Operator::Gt, after_ms)])], cursor)
        }
        CdcPosition::Tie { at_ms, after_id } => (
            vec![FilterGroup(vec![
                Filter::compare(cursor, Operator::Eq, at_ms),
                Filter::compare("hs_object_id", Operator::Gt, after_id),
            ])],
            "hs_object_id",
        ),
    };
    SearchRequest::new(groups, Some((sort.to_owned(), Direction::Ascending)), table.properties.clone(), PAGE, 0)
}

/// Runs one CDC pass for one object, or continues the pass a stop or crash interrupted: each
/// page is committed with the position after it, so an interruption costs at most the page in
/// flight (of each of up to `walkers` ranges, when the pass is large enough to walk ranges).
pub async fn pass<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    settle_lag: Duration,
    walkers: usize,
    shutdown: &CancellationToken,
) -> Result<Report, Error> {
    let name = &table.object.table;
    let settle_ms = settle_lag.as_millis() as i64;
    let previous = super::state::load::<CdcState>(&runner.state, &StreamId::cdc(name)).await?;
    let now = runner.clock.now().timestamp_millis();
    // (watermark, where to read next, when the pass began, last complete pass, rows so far)
    let (start_ms, first, pass_started_ms, last_pass_ms, mut rows_total) = match previous {
        Some(CdcState::Polling { watermark_ms, last_pass_ms, rows }) => {
            (watermark_ms, CdcPosition::From { from_ms: watermark_ms }, now, last_pass_ms, rows)
        }
        Some(CdcState::Paging { watermark_ms, position, pass_started_ms, last_pass_ms, rows }) => {
            tracing::info!(table = %name, "continuing an interrupted cdc pass");
            (watermark_ms, position, pass_started_ms, last_pass_ms, rows)
        }
        Some(CdcState::Ranged { watermark_ms, pass_started_ms, last_pass_ms, rows, walk }) => {
            tracing::info!(table = %name, ranges = walk.ranges.len(), "continuing an interrupted cdc pass over ranges");
            let pass = ChangesPass { watermark_ms, pass_started_ms, last_pass_ms, settle_ms };
            return walk_ranges(runner, table, pass, walk, rows, walkers, shutdown).await;
        }
        None => {
            let backfill = super::state::load::<BackfillState>(&runner.state, &StreamId::backfill(name)).await?;
            match backfill {
                Some(BackfillState::Done { started_at_ms, .. }) => {
                    let from_ms = started_at_ms - settle_ms;
                    (from_ms, CdcPosition::From { from_ms }, now, 0, 0)
                }
                _ => {
                    return Err(Error::Precondition(format!(
                        "{name} has no finished backfill yet; run `hsync backfill --object {name}` first"
                    )))
                }
            }
        }
    };
    if table.object.read_path() == ReadPath::List {
        let pass = ChangesPass { watermark_ms: start_ms, pass_started_ms, last_pass_ms, settle_ms };
        let start = ListedPass { pass, rows: rows_total };
        return pass_listed(runner, table, start, shutdown).await;
    }
    let mut report = Report { watermark_ms: start_ms, ..Report::default() };
    let mut watermark = start_ms;
    // Only a pass that starts afresh may turn into a walk over ranges.
    let mut may_walk = walkers > 1 && matches!(first, CdcPosition::From { .. });
    let mut position = Some(first);
    while let Some(current) = position {
        if shutdown.is_cancelled() {
            return Ok(report);
        }
        let range = || current.describe();
        let page = runner
            .client
            .search(&table.object.api_name, &request(table, &current)?)
            .await
            .map_err(|e| Error::from(e).at_range(&StreamId::cdc(name), range))?;
        if std::mem::take(&mut may_walk) && walk::ranges_for(page.total, walkers) >= 2 {
            let pass = ChangesPass { watermark_ms: start_ms, pass_started_ms, last_pass_ms, settle_ms };
            if let Some(walk) = walk::plan(runner, table, Scope::Changes(pass), 0, page.total, walkers).await? {
                // The page is written with the walk's start; the ranges read its records again.
                let written = page.results.len();
                rows_total += written as i64;
                let state = CdcState::Ranged {
                    watermark_ms: start_ms,
                    pass_started_ms,
                    last_pass_ms,
                    rows: rows_total,
                    walk: walk.clone(),
                };
                runner.write_owned(table, page.results, Some(&state.checkpoint(name))).await?;
                tracing::info!(table = %name, changes = page.total, ranges = walk.ranges.len(), "cdc pass walks ranges concurrently");
                let mut walked = walk_ranges(runner, table, pass, walk, rows_total, walkers, shutdown).await?;
                walked.pages += 1;
                walked.rows += written as u64;
                return Ok(walked);
            }
        }
        let keys: Vec<(i64, i64)> = page
            .results
            .iter()
            .filter_map(|r| Some((record_cursor_ms(r, table.object.cursor_property)?, r.id.parse().ok()?)))
            .collect();
        // A full page that holds every remaining match (no next page, the total within it)
        // ends the pass like a partial one, saving the empty search that would only confirm it.
        let holds_the_rest = page.paging.is_none() && page.total <= page.results.len() as u64;
        let full = page.results.len() as u32 == PAGE && !holds_the_rest;
        if full && keys.is_empty() {
            // No position to move past them: ending the pass here would skip what follows.
            return Err(Error::Unreadable {
                stream: StreamId::cdc(name),
                range: range(),
                detail: format!(
                    "none of the {} records of a full page has a readable id and last-modified time",
                    page.results.len()
                ),
            });
        }
        position = next_position(&current, &PageSummary { keys, full });
        let now = runner.clock.now().timestamp_millis();
        watermark = durable_watermark(watermark, position.as_ref(), now, pass_started_ms, settle_ms);
        rows_total += page.results.len() as i64;
        let state = match position.clone() {
            Some(next) => CdcState::Paging {
                watermark_ms: watermark,
                position: next,
                pass_started_ms,
                last_pass_ms,
                rows: rows_total,
            },
            None => CdcState::Polling { watermark_ms: watermark, last_pass_ms: now, rows: rows_total },
        };
        if page.results.is_empty() {
            runner.commit(&state.checkpoint(name)).await?;
        } else {
            runner.write(table, &page.results, Some(&state.checkpoint(name))).await?;
        }
        report.pages += 1;
        report.rows += page.results.len() as u64;
        report.changed_ids.extend(page.results.into_iter().map(|r| r.id));
    }
    report.watermark_ms = watermark;
    let lag_s = (runner.clock.now().timestamp_millis() - watermark) as f64 / 1000.0;
    metrics::gauge!("hsync_stream_lag_seconds", "object" => name.clone()).set(lag_s);
    tracing::info!(table = %name, rows = report.rows, pages = report.pages, watermark_ms = watermark, "cdc pass finished");
    Ok(report)
}

/// Walks the ranges of a large pass (see the module docs) with `walkers` search walkers.
async fn walk_ranges<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    pass: ChangesPass,
    ranges: RangedWalk,
    rows: i64,
    walkers: usize,
    shutdown: &CancellationToken,
) -> Result<Report, Error> {
    let name = &table.object.table;
    let walkers = walk::Walkers { search: walkers, list: 0 };
    let start = walk::Start { scope: Scope::Changes(pass), walk: ranges, rows, walkers };
    let walked = walk::run(runner, table, start, shutdown, |_| {}).await?;
    let mut report =
        Report { pages: walked.pages, rows: walked.rows, watermark_ms: pass.watermark_ms, changed_ids: walked.ids };
    if !walked.finished {
        tracing::info!(table = %name, rows = report.rows, "cdc pass over ranges stopped; the next pass continues it");
        return Ok(report);
    }
    report.watermark_ms = pass.watermark_when_done();
    let lag_s = (runner.clock.now().timestamp_millis() - report.watermark_ms) as f64 / 1000.0;
    metrics::gauge!("hsync_stream_lag_seconds", "object" => name.clone()).set(lag_s);
    tracing::info!(table = %name, rows = report.rows, pages = report.pages, watermark_ms = report.watermark_ms, "cdc pass finished");
    Ok(report)
}

/// Where a list-path pass starts (see [`pass_listed`]).
struct ListedPass {
    pass: ChangesPass,
    rows: i64,
}

/// A pass over a type without search: lists every live record's id and cursor, reads back
/// (100 per call) those modified at or after the watermark (or whose cursor does not parse),
/// and writes them; then moves the watermark to the pass's start minus the settle lag.
async fn pass_listed<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    start: ListedPass,
    shutdown: &CancellationToken,
) -> Result<Report, Error> {
    let name = &table.object.table;
    let stream = StreamId::cdc(name);
    let cursor = table.object.cursor_property;
    let probe = vec!["hs_object_id".to_owned(), cursor.to_owned()];
    let mut report = Report { watermark_ms: start.pass.watermark_ms, ..Report::default() };
    let mut rows = start.rows;
    let mut after: Option<String> = None;
    loop {
        if shutdown.is_cancelled() {
            return Ok(report);
        }
        let range = || format!("the list page at {}", after.as_deref().unwrap_or("the start"));
        let page = listing::page(&runner.client, &table.object, after.as_deref(), &probe)
            .await
            .map_err(|e| Error::from(e).at_range(&stream, range))?;
        let changed: Vec<String> = page
            .records
            .iter()
            .filter(|r| record_cursor_ms(r, cursor).is_none_or(|ms| ms >= start.pass.watermark_ms))
            .map(|r| r.id.clone())
            .collect();
        let records = listing::read(&runner.client, &table.object, &changed, &table.properties)
            .await
            .map_err(|e| Error::from(e).at_range(&stream, range))?;
        if !records.is_empty() {
            runner.write(table, &records, None).await?;
        }
        report.pages += 1;
        report.rows += records.len() as u64;
        rows += records.len() as i64;
        report.changed_ids.extend(records.into_iter().map(|r| r.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let now = runner.clock.now().timestamp_millis();
    let watermark = start.pass.watermark_when_done();
    runner.commit(&CdcState::Polling { watermark_ms: watermark, last_pass_ms: now, rows }.checkpoint(name)).await?;
    report.watermark_ms = watermark;
    let lag_s = (now - watermark) as f64 / 1000.0;
    metrics::gauge!("hsync_stream_lag_seconds", "object" => name.clone()).set(lag_s);
    tracing::info!(table = %name, rows = report.rows, pages = report.pages, watermark_ms = watermark, path = "list", "cdc pass finished");
    Ok(report)
}
