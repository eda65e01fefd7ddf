//! The backfill: search sorted by `hs_object_id` ascending with `hs_object_id > last id`, 200 per
//! page, properties in the body. The 10,000-result cap can never be reached and the checkpoint is
//! the last id, committed with each page's data. The start time is recorded: CDC begins there
//! (minus the settle lag), which catches records modified during the backfill. A type without
//! search walks the list endpoint instead (see `listing`), its checkpoint the list's cursor.
//!
//! A large backfill walks id ranges concurrently (see [`walk`] and [`super::ranges`]): search
//! walkers in the search bucket and, where [`readers::choose`] allows, list walkers in the
//! general bucket, each reading whole ranges, so the two buckets fill at once.
//!
//! With [`Fetch::Ahead`] (the `sync.backfill_fetch_ahead` setting) the next page is fetched while
//! the current one is written, so HubSpot and the destination overlap. The price is in the
//! contract's currency: a kill while a page is written then also loses the page fetched ahead, so
//! a resume repeats two search calls instead of one. [`Fetch::InTurn`], the default, keeps the
//! contract's bound of one page.

use tokio_util::sync::CancellationToken;

use super::listing;
use super::readers;
use super::runner::{PreparedTable, Runner};
use super::state::{BackfillState, RangedWalk};
use super::walk::{self, Scope};
use super::Error;
use crate::destination::Destination;
use crate::hubspot::model::SearchPage;
use crate::hubspot::{Bucket, Direction, Filter, FilterGroup, Operator, ReadPath, SearchRequest};
use crate::state::StateStore;
use crate::state::StreamId;

pub use super::walk::{ranges_for, PAGE, RECORDS_PER_RANGE};
/// Ranges walked at once unless `sync.backfill_concurrency` says otherwise: enough requests in
/// flight to fill the search bucket (5 a second) at up to about a second of latency a page.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// How a large backfill may read at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Concurrency {
    /// Search walkers (`sync.backfill_concurrency`); 1 walks in turn.
    pub walkers: usize,
    /// Whether list walkers may read in the general bucket beside them (`sync.backfill_list`).
    pub list: bool,
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency { walkers: DEFAULT_CONCURRENCY, list: true }
    }
}

/// How to treat an existing checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Start only if no backfill ever ran.
    #[default]
    Fresh,
    /// Continue an interrupted backfill (or start one).
    Resume,
}

/// When the next page is requested.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fetch {
    /// After the current page is committed: a kill costs at most that one page.
    #[default]
    InTurn,
    /// While the current page is written: faster on wide portals, and a kill may cost the page
    /// fetched ahead as well.
    Ahead,
}

impl Fetch {
    /// [`Fetch::Ahead`] when `ahead` (the `sync.backfill_fetch_ahead` setting), else the default.
    pub fn ahead_if(ahead: bool) -> Self {
        if ahead {
            Fetch::Ahead
        } else {
            Fetch::InTurn
        }
    }
}

/// What a backfill run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub pages: u64,
    pub rows: u64,
    pub finished: bool,
}

/// Runs (or resumes) the backfill of one object until done or `shutdown` fires; every page is
/// committed with its data, so a stop at any instant costs at most the page in flight (and, with
/// [`Fetch::Ahead`], the page fetched ahead of it). When more than [`RECORDS_PER_RANGE`] records
/// are left after the first page, ranges are walked at once by the walkers `concurrency` and
/// [`readers::choose`] give (see [`walk`]), and a stop costs at most the page in flight of
/// each.
pub async fn run<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    mode: Mode,
    fetch: Fetch,
    concurrency: Concurrency,
    shutdown: &CancellationToken,
    mut on_page: impl FnMut(u64) + Send,
) -> Result<Report, Error> {
    let name = &table.object.table;
    let stream = StreamId::backfill(name);
    let previous = super::state::load::<BackfillState>(&runner.state, &stream).await?;
    let (mut after_id, list_after, started_at_ms, mut rows, ranged) = match (previous, mode) {
        (Some(BackfillState::Done { .. }), Mode::Resume) => {
            tracing::info!(table = %name, "backfill already finished");
            return Ok(Report { finished: true, ..Report::default() });
        }
        (Some(BackfillState::Done { finished_at_ms, .. }), Mode::Fresh) => {
            return Err(Error::Precondition(format!(
                "the backfill of {name} finished at {}; CDC keeps it current. To copy everything again, run `hsync backfill --restart --object {name}`",
                chrono::DateTime::from_timestamp_millis(finished_at_ms).unwrap_or_default()
            )))
        }
        (Some(BackfillState::Running { after_id, started_at_ms, rows, list_after, ranged }), Mode::Resume) => {
            (after_id, list_after, started_at_ms, rows, ranged)
        }
        (Some(BackfillState::Running { after_id, .. }), Mode::Fresh) => {
            return Err(Error::Precondition(format!(
                "a backfill of {name} was interrupted after id {after_id}; continue it with `hsync backfill --resume`"
            )))
        }
        (None, _) => (0, None, runner.clock.now().timestamp_millis(), 0, None),
    };
    if table.object.read_path() == ReadPath::List {
        let start = Listed { after_id, list_after, started_at_ms, rows };
        return run_listed(runner, table, start, shutdown, on_page).await;
    }
    let mut report = Report::default();
    if let Some(walk) = ranged {
        let choice = choose_readers(runner, table, None, rows, concurrency).await;
        tracing::info!(table = %name, ranges = walk.ranges.len(), readers = choice.label(), "backfill resumed over ranges");
        // Walkers beyond the ranges left take halves of the largest ones.
        return run_ranged(runner, table, Walking { walk, started_at_ms, rows, report, choice }, shutdown, on_page)
            .await;
    }
    let mut may_plan = concurrency.walkers > 1;
    tracing::info!(table = %name, after_id, "backfill started");
    if shutdown.is_cancelled() {
        return Ok(stopped(name, after_id, report));
    }
    let mut page = tokio::select! {
        _ = shutdown.cancelled() => return Ok(stopped(name, after_id, report)),
        first = search_after(runner, table, after_id) => first?,
    };
    loop {
        let Some(last) = page.results.iter().filter_map(|r| r.id.parse::<i64>().ok()).max() else {
            if !page.results.is_empty() {
                // Records without a readable id cannot be stepped over: ending here would drop
                // every record after them.
                return Err(Error::Unreadable {
                    stream: stream.clone(),
                    range: format!("ids above {after_id}"),
                    detail: format!("none of the {} records of the page has a readable id", page.results.len()),
                });
            }
            let done =
                BackfillState::Done { started_at_ms, finished_at_ms: runner.clock.now().timestamp_millis(), rows };
            runner.commit(&done.checkpoint(name)).await?;
            tracing::info!(table = %name, rows, "backfill finished");
            report.finished = true;
            return Ok(report);
        };
        if last <= after_id {
            return Err(Error::Bug(format!("search for ids above {after_id} returned nothing above it")));
        }
        rows += page.results.len() as i64;
        // A page that holds every remaining match (no next page, the total within it) ends the
        // backfill with its own write, saving the empty search that would only confirm it.
        let last_page = page.paging.is_none() && page.total <= page.results.len() as u64;
        let state = if last_page {
            BackfillState::Done { started_at_ms, finished_at_ms: runner.clock.now().timestamp_millis(), rows }
        } else {
            BackfillState::Running { after_id: last, started_at_ms, rows, list_after: None, ranged: None }
        };
        let checkpoint = state.checkpoint(name);
        let written = page.results.len() as u64;
        if last_page {
            runner.write_owned(table, page.results, Some(&checkpoint)).await?;
            count_page(&mut report, name, written);
            on_page(written);
            tracing::info!(table = %name, rows, "backfill finished");
            report.finished = true;
            return Ok(report);
        }
        if std::mem::take(&mut may_plan) {
            let left = page.total.saturating_sub(written);
            let choice = choose_readers(runner, table, Some(left), rows, concurrency).await;
            let scope = Scope::Backfill { started_at_ms };
            if let Some(walk) =
                walk::plan(runner, table, scope, last, left, choice.search_walkers + choice.list_walkers).await?
            {
                let state = BackfillState::Running {
                    after_id: last,
                    started_at_ms,
                    rows,
                    list_after: None,
                    ranged: Some(walk.clone()),
                };
                runner.write_owned(table, page.results, Some(&state.checkpoint(name))).await?;
                count_page(&mut report, name, written);
                on_page(written);
                let reason = choice.reason().unwrap_or_default();
                tracing::info!(table = %name, ranges = walk.ranges.len(), left, readers = choice.label(), reason, "backfill walks ranges concurrently");
                let walking = Walking { walk, started_at_ms, rows, report, choice };
                return run_ranged(runner, table, walking, shutdown, on_page).await;
            }
        }
        let next = match fetch {
            Fetch::InTurn => {
                runner.write_owned(table, page.results, Some(&checkpoint)).await?;
                after_id = last;
                count_page(&mut report, name, written);
                on_page(written);
                if shutdown.is_cancelled() {
                    return Ok(stopped(name, after_id, report));
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(stopped(name, after_id, report)),
                    next = search_after(runner, table, after_id) => next,
                }
            }
            Fetch::Ahead => {
                // The next page depends only on this page's last id, so it is fetched while this
                // one is written. The checkpoint still moves only with written data; a stop drops
                // the fetched page, which a resume reads again.
                let mut ahead = Box::pin(search_after(runner, table, last));
                let mut fetched = None;
                {
                    let write = runner.write_owned(table, page.results, Some(&checkpoint));
                    tokio::pin!(write);
                    loop {
                        tokio::select! {
                            outcome = &mut write => {
                                outcome?;
                                break;
                            }
                            next = &mut ahead, if fetched.is_none() => fetched = Some(next),
                        }
                    }
                }
                after_id = last;
                count_page(&mut report, name, written);
                on_page(written);
                match fetched {
                    Some(next) => next,
                    None => tokio::select! {
                        // Nothing of the fetch is kept yet, so a stop need not wait for it.
                        _ = shutdown.cancelled() => return Ok(stopped(name, after_id, report)),
                        next = &mut ahead => next,
                    },
                }
            }
        };
        if shutdown.is_cancelled() {
            return Ok(stopped(name, after_id, report));
        }
        page = next?;
    }
}

fn count_page(report: &mut Report, name: &str, rows: u64) {
    report.pages += 1;
    report.rows += rows;
    metrics::counter!("hsync_backfill_rows_total", "object" => name.to_owned()).increment(rows);
}

/// One search page of the records after `after_id`, ascending by id.
async fn search_after<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    after_id: i64,
) -> Result<SearchPage, Error> {
    let request = SearchRequest::new(
        vec![FilterGroup(vec![Filter::compare("hs_object_id", Operator::Gt, after_id)])],
        Some(("hs_object_id".to_owned(), Direction::Ascending)),
        table.properties.clone(),
        PAGE,
        0,
    )?;
    runner.client.search(&table.object.api_name, &request).await.map_err(|e| {
        Error::from(e).at_range(&StreamId::backfill(&table.object.table), || format!("ids above {after_id}"))
    })
}

/// The readers of a walk with `left` records to read (`None` on a resume, which counts them
/// only when the daily budget is limited, from search's total less the `rows` read): the
/// buckets' spacing, the property names' fit in a list URL and today's budget decide (see
/// [`readers::choose`]).
async fn choose_readers<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    left: Option<u64>,
    rows: i64,
    concurrency: Concurrency,
) -> readers::Choice {
    let client = &runner.client;
    let budget = client.budget_status().await;
    let budget_left = budget.allowed.map(|allowed| allowed.saturating_sub(budget.used));
    let records = match left {
        Some(left) => left,
        // A failed count only costs the estimate: the walk goes on with what it knows.
        None if budget_left.is_some() => client
            .count(&table.object.api_name)
            .await
            .map(|total| total.saturating_sub(u64::try_from(rows).unwrap_or(0)))
            .unwrap_or(0),
        None => 0,
    };
    readers::choose(readers::Inputs {
        records,
        list_calls_per_page: listing::calls_per_page(&table.properties),
        search_spacing: client.spacing(Bucket::Search),
        general_spacing: client.spacing(Bucket::General),
        budget_left,
        walkers: concurrency.walkers,
        list_allowed: concurrency.list && table.object.facts.endpoints.list,
    })
}

/// A backfill that walks ranges: the walk, where the backfill stands and its readers.
struct Walking {
    walk: RangedWalk,
    started_at_ms: i64,
    rows: i64,
    report: Report,
    choice: readers::Choice,
}

/// Walks the ranges of `walking` (see [`walk::run`]) and reports the backfill.
async fn run_ranged<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    walking: Walking,
    shutdown: &CancellationToken,
    mut on_page: impl FnMut(u64) + Send,
) -> Result<Report, Error> {
    let name = &table.object.table;
    let Walking { walk, started_at_ms, rows, mut report, choice } = walking;
    let walkers = walk::Walkers { search: choice.search_walkers, list: choice.list_walkers };
    let start = walk::Start { scope: Scope::Backfill { started_at_ms }, walk, rows, walkers };
    let walked = walk::run(runner, table, start, shutdown, |written| {
        metrics::counter!("hsync_backfill_rows_total", "object" => name.to_owned()).increment(written);
        on_page(written);
    })
    .await?;
    report.pages += walked.pages;
    report.rows += walked.rows;
    if walked.finished {
        tracing::info!(table = %name, rows = rows + walked.rows as i64, "backfill finished");
        report.finished = true;
        Ok(report)
    } else {
        Ok(stopped(name, walked.read_through, report))
    }
}

/// Where a list-path backfill starts (see [`run_listed`]).
struct Listed {
    after_id: i64,
    list_after: Option<String>,
    started_at_ms: i64,
    rows: i64,
}

/// The backfill of a type without search: list pages in HubSpot's order, each committed with
/// the list cursor after it, so a stop costs at most the page in flight.
async fn run_listed<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    start: Listed,
    shutdown: &CancellationToken,
    mut on_page: impl FnMut(u64),
) -> Result<Report, Error> {
    let name = &table.object.table;
    let stream = StreamId::backfill(name);
    let Listed { mut after_id, mut list_after, started_at_ms, mut rows } = start;
    let mut report = Report::default();
    tracing::info!(table = %name, path = "list", "backfill started");
    loop {
        if shutdown.is_cancelled() {
            return Ok(stopped(name, after_id, report));
        }
        let page = tokio::select! {
            _ = shutdown.cancelled() => return Ok(stopped(name, after_id, report)),
            page = listing::page(&runner.client, &table.object, list_after.as_deref(), &table.properties) => page,
        }
        .map_err(|e| {
            let at = list_after.clone().unwrap_or_else(|| "the start".to_owned());
            Error::from(e).at_range(&stream, || format!("the list page at {at}"))
        })?;
        rows += page.records.len() as i64;
        after_id = page.records.iter().filter_map(|r| r.id.parse::<i64>().ok()).fold(after_id, i64::max);
        let state = match &page.next {
            Some(next) => {
                BackfillState::Running { after_id, started_at_ms, rows, list_after: Some(next.clone()), ranged: None }
            }
            None => BackfillState::Done { started_at_ms, finished_at_ms: runner.clock.now().timestamp_millis(), rows },
        };
        let written = page.records.len() as u64;
        if page.records.is_empty() {
            runner.commit(&state.checkpoint(name)).await?;
        } else {
            runner.write_owned(table, page.records, Some(&state.checkpoint(name))).await?;
            count_page(&mut report, name, written);
            on_page(written);
        }
        match page.next {
            Some(next) => list_after = Some(next),
            None => {
                tracing::info!(table = %name, rows, "backfill finished");
                report.finished = true;
                return Ok(report);
            }
        }
    }
}

fn stopped(name: &str, after_id: i64, report: Report) -> Report {
    tracing::info!(table = %name, after_id, "backfill stopped; resume with --resume");
    report
}
