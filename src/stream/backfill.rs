//! The backfill: search sorted by `hs_object_id` ascending with `hs_object_id > last id`, 200 per
//! page, properties in the body. The 10,000-result cap can never be reached and the checkpoint is
//! the last id, committed with each page's data. The start time is recorded: CDC begins there
//! (minus the settle lag), which catches records modified during the backfill. A type without
//! search walks the list endpoint instead (see `listing`), its checkpoint the list's cursor.
//!
//! A large backfill walks id ranges concurrently (see [`ranges`]): search walkers in the search
//! bucket and, where [`readers::choose`] allows, list walkers in the general bucket, each
//! reading whole ranges, so the two buckets fill at once.
//!
//! With [`Fetch::Ahead`] (the `sync.backfill_fetch_ahead` setting) the next page is fetched while
//! the current one is written, so HubSpot and the destination overlap. The price is in the
//! contract's currency: a kill while a page is written then also loses the page fetched ahead, so
//! a resume repeats two search calls instead of one. [`Fetch::InTurn`], the default, keeps the
//! contract's bound of one page.

use tokio_util::sync::CancellationToken;

use super::listing;
use super::ranges::{self, IdRange};
use super::readers;
use super::runner::{PreparedTable, Runner};
use super::state::{BackfillState, RangedWalk};
use super::Error;
use crate::destination::Destination;
use crate::hubspot::model::{CrmObject, SearchPage};
use crate::hubspot::{Bucket, Direction, Filter, FilterGroup, Operator, ReadPath, SearchRequest};
use crate::state::StateStore;
use crate::state::StreamId;

/// Search page size: HubSpot's maximum.
pub const PAGE: u32 = 200;
/// Records left after the first page per range walked concurrently: ten pages a range, so a
/// small table costs no planning call and walks in turn.
pub const RECORDS_PER_RANGE: u64 = 10 * PAGE as u64;
/// Ranges walked at once unless `sync.backfill_concurrency` says otherwise: enough requests in
/// flight to fill the search bucket (5 a second) at up to about a second of latency a page.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// Property values walkers may hold fetched and not yet written, together: a wide table's
/// pages are large and its writes slow, so fewer of its pages wait in memory (300 properties:
/// about six search pages), while a narrow one keeps every walker's page in flight.
const VALUES_IN_FLIGHT: usize = 400_000;

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

/// Ids a range must have left to be split for an idle walker.
const MIN_SPLIT_SPAN: i64 = 2 * PAGE as i64;

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
/// [`readers::choose`] give (see [`ranges`]), and a stop costs at most the page in flight of
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
        let walk = Walk::new(walk, started_at_ms, rows, report, on_page);
        return run_ranged(runner, table, walk, choice, shutdown).await;
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
            if let Some(walk) =
                plan_walk(runner, table, last, left, choice.search_walkers + choice.list_walkers).await?
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
                let walk = Walk::new(walk, started_at_ms, rows, report, on_page);
                return run_ranged(runner, table, walk, choice, shutdown).await;
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

/// How many ranges `left` records are planned in with `walkers` walkers: one per walker while
/// each has [`RECORDS_PER_RANGE`]; under two, the backfill walks in turn.
pub fn ranges_for(left: u64, walkers: usize) -> usize {
    usize::try_from(left / RECORDS_PER_RANGE).unwrap_or(usize::MAX).min(walkers)
}

/// The ranges to walk the `left` records above `after_id` in, one per walker while each has
/// [`RECORDS_PER_RANGE`], or `None` when they are too few for two (one search for the highest
/// id, sorted descending, one record).
async fn plan_walk<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    after_id: i64,
    left: u64,
    walkers: usize,
) -> Result<Option<RangedWalk>, Error> {
    let n = ranges_for(left, walkers);
    if n < 2 {
        return Ok(None);
    }
    let request = SearchRequest::new(
        vec![FilterGroup(vec![Filter::compare("hs_object_id", Operator::Gt, after_id)])],
        Some(("hs_object_id".to_owned(), Direction::Descending)),
        vec!["hs_object_id".to_owned()],
        1,
        0,
    )?;
    let stream = StreamId::backfill(&table.object.table);
    let page = runner
        .client
        .search(&table.object.api_name, &request)
        .await
        .map_err(|e| Error::from(e).at_range(&stream, || format!("the highest id above {after_id}")))?;
    let known_max = page.results.iter().filter_map(|r| r.id.parse::<i64>().ok()).max().unwrap_or(after_id);
    let ranges = ranges::plan(after_id, known_max, n);
    Ok((ranges.len() > 1).then_some(RangedWalk { ranges, known_max, list_after: None }))
}

/// One range a walker holds: its key, where it started (for its density) and the records read.
#[derive(Debug)]
struct Slot {
    key: u64,
    range: IdRange,
    origin: i64,
    read: u64,
    taken: bool,
    /// A list page could not prove this range's end: only search reads it.
    search_only: bool,
}

/// The shared progress of a concurrent walk. Walkers change it, and write their pages, only
/// while holding its lock, so each checkpoint lists exactly the ranges left after every
/// committed page (the invariant in [`ranges`]).
struct Walk<F> {
    slots: Vec<Slot>,
    /// Set when a list page showed the server does not walk by id: list walkers stop and
    /// search reads the rest.
    list_refused: bool,
    /// What the server's list cursor names, once a list page showed it.
    list_after: Option<ranges::ListAfter>,
    next_key: u64,
    known_max: i64,
    started_at_ms: i64,
    rows: i64,
    report: Report,
    on_page: F,
}

impl<F: FnMut(u64)> Walk<F> {
    fn new(walk: RangedWalk, started_at_ms: i64, rows: i64, report: Report, on_page: F) -> Walk<F> {
        let slots: Vec<Slot> = walk
            .ranges
            .into_iter()
            .enumerate()
            .map(|(i, range)| Slot {
                key: i as u64,
                range,
                origin: range.after_id,
                read: 0,
                taken: false,
                search_only: false,
            })
            .collect();
        Walk {
            next_key: slots.len() as u64,
            slots,
            list_refused: false,
            list_after: walk.list_after,
            known_max: walk.known_max,
            started_at_ms,
            rows,
            report,
            on_page,
        }
    }

    /// Gives range `key` back untouched, for a search walker to take.
    fn release_to_search(&mut self, key: u64) {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.key == key) {
            slot.taken = false;
            slot.search_only = true;
        }
    }

    /// A range for an idle walker: the lowest one nobody walks, else half of the range with
    /// the most records left (see [`ranges::split_point`]).
    fn take(&mut self, reader: Reader) -> Option<(u64, IdRange)> {
        let readable = |s: &Slot| reader == Reader::Search || !s.search_only;
        if let Some(slot) = self.slots.iter_mut().filter(|s| !s.taken && readable(s)).min_by_key(|s| s.range.after_id) {
            slot.taken = true;
            return Some((slot.key, slot.range));
        }
        let mut ranges: Vec<IdRange> = self.slots.iter().map(|s| s.range).collect();
        let density: Vec<f64> = self
            .slots
            .iter()
            .map(|s| match s.range.after_id - s.origin {
                covered if covered > 0 => s.read as f64 / covered as f64,
                _ => 1.0,
            })
            .collect();
        let (index, at) = ranges::split_point(&ranges, &density, self.known_max, MIN_SPLIT_SPAN)?;
        if !readable(&self.slots[index]) {
            return None;
        }
        let rest = ranges::split(&mut ranges, index, at);
        self.slots[index].range = ranges[index];
        let key = self.next_key;
        self.next_key += 1;
        self.slots.push(Slot { key, range: rest, origin: rest.after_id, read: 0, taken: true, search_only: false });
        Some((key, rest))
    }

    fn range(&self, key: u64) -> Option<IdRange> {
        self.slots.iter().find(|s| s.key == key).map(|s| s.range)
    }

    /// Records a page of `records` read for range `key`: the range moves on or leaves.
    fn advance(&mut self, key: u64, next: Option<IdRange>, records: usize) {
        self.rows += records as i64;
        match next {
            Some(range) => {
                if let Some(slot) = self.slots.iter_mut().find(|s| s.key == key) {
                    slot.range = range;
                    slot.read += records as u64;
                }
            }
            None => self.slots.retain(|s| s.key != key),
        }
    }

    /// The state to commit: the ranges left, or done.
    fn state(&self, now_ms: i64) -> BackfillState {
        let mut ranges: Vec<IdRange> = self.slots.iter().map(|s| s.range).collect();
        ranges.sort_by_key(|r| r.after_id);
        match ranges::prefix(&ranges) {
            None => BackfillState::Done { started_at_ms: self.started_at_ms, finished_at_ms: now_ms, rows: self.rows },
            Some(after_id) => BackfillState::Running {
                after_id,
                started_at_ms: self.started_at_ms,
                rows: self.rows,
                list_after: None,
                ranged: Some(RangedWalk { ranges, known_max: self.known_max, list_after: self.list_after }),
            },
        }
    }
}

/// Walks the ranges of `walk` with the walkers of `choice` at once, until every range is read
/// or `shutdown` fires. Ranges list walkers gave back (the server does not walk lists by id)
/// are read by search walkers after them.
async fn run_ranged<D: Destination, S: StateStore, F: FnMut(u64) + Send>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    walk: Walk<F>,
    choice: readers::Choice,
    shutdown: &CancellationToken,
) -> Result<Report, Error> {
    let walk = tokio::sync::Mutex::new(walk);
    let values = tokio::sync::Semaphore::new(VALUES_IN_FLIGHT);
    let mut list_walkers = choice.list_walkers;
    loop {
        let searchers = (0..choice.search_walkers.max(1))
            .map(|_| walk_ranges(runner, table, &walk, &values, Reader::Search, shutdown));
        let listers = (0..list_walkers).map(|_| walk_ranges(runner, table, &walk, &values, Reader::List, shutdown));
        futures_util::future::try_join_all(searchers.chain(listers)).await?;
        list_walkers = 0;
        // Ranges list walkers gave back after the search walkers ran out are read now.
        if walk.lock().await.slots.is_empty() || shutdown.is_cancelled() {
            break;
        }
    }
    let walk = walk.into_inner();
    let name = &table.object.table;
    let mut report = walk.report;
    if walk.slots.is_empty() {
        tracing::info!(table = %name, rows = walk.rows, "backfill finished");
        report.finished = true;
    } else {
        let after_id = walk.slots.iter().map(|s| s.range.after_id).min().unwrap_or_default();
        report = stopped(name, after_id, report);
    }
    Ok(report)
}

/// How a walker reads its ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reader {
    /// Keyset search pages of 200, in the search bucket.
    Search,
    /// List pages of 100 from the range's start id, in the general bucket.
    List,
}

/// What a walker's fetch came back with.
enum Fetched {
    Page(RangePage),
    /// The list page cannot prove where the range ends (HubSpot's last list page, which has
    /// no cursor to check): search reads the range.
    ToSearch,
    /// The server does not page lists by id: search reads every range left.
    Refused,
}

/// A page of a range, as either reader fetched it.
struct RangePage {
    records: Vec<CrmObject>,
    /// The ids the page covers, in the server's order (a list page's ids include records
    /// gone before their batch read).
    ids: Vec<Option<i64>>,
    more: bool,
    /// What the list cursor names, when the page showed it.
    list_after: Option<ranges::ListAfter>,
}

/// One walker: takes a range, reads it page by page (each committed with the walk's state
/// under its lock), then takes another, until none is left or `shutdown` fires. A list walker
/// whose page does not prove the server walks by id gives its range back and stops. A page's
/// property values are taken from `values` before it is fetched and given back once it is
/// written (see [`VALUES_IN_FLIGHT`]).
async fn walk_ranges<D: Destination, S: StateStore, F: FnMut(u64) + Send>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    walk: &tokio::sync::Mutex<Walk<F>>,
    values: &tokio::sync::Semaphore,
    reader: Reader,
    shutdown: &CancellationToken,
) -> Result<(), Error> {
    let name = &table.object.table;
    let page_records = match reader {
        Reader::Search => PAGE as usize,
        Reader::List => listing::PAGE as usize,
    };
    let page_values = u32::try_from((page_records * table.properties.len().max(1)).min(VALUES_IN_FLIGHT))
        .expect("invariant: VALUES_IN_FLIGHT fits in u32");
    loop {
        let Some((key, mut range)) = ({
            let mut held = walk.lock().await;
            if reader == Reader::List && held.list_refused {
                return Ok(());
            }
            held.take(reader)
        }) else {
            return Ok(());
        };
        let mut list_after = walk.lock().await.list_after;
        loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            let _held_values = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                permit = values.acquire_many(page_values) => {
                    permit.map_err(|_| Error::Bug("the walk's value budget closed".to_owned()))?
                }
            };
            let fetched = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                page = fetch_range(runner, table, range, reader, list_after) => page?,
            };
            let page = match fetched {
                Fetched::Page(page)
                    if page.list_after.is_none() || list_after.is_none() || page.list_after == list_after =>
                {
                    page
                }
                Fetched::ToSearch => {
                    walk.lock().await.release_to_search(key);
                    break;
                }
                refused => {
                    if matches!(refused, Fetched::Page(_)) {
                        tracing::warn!(table = %name, "the list cursor changed meaning between pages; search reads the rest of the backfill");
                    }
                    let mut held = walk.lock().await;
                    held.list_refused = true;
                    held.release_to_search(key);
                    return Ok(());
                }
            };
            if page.ids.iter().all(Option::is_none) && !page.ids.is_empty() {
                return Err(Error::Unreadable {
                    stream: StreamId::backfill(name),
                    range: describe(range),
                    detail: format!("none of the {} records of the page has a readable id", page.ids.len()),
                });
            }
            let ids: Vec<i64> = page.ids.iter().flatten().copied().collect();
            let mut held = walk.lock().await;
            // A split may have lowered the bound since the page was fetched.
            let Some(now) = held.range(key) else {
                return Err(Error::Bug(format!("a walker of {name} lost its range")));
            };
            let step = ranges::advance(now, &ids, page.more);
            // Records without a readable id go on to the batch builder, which rejects them.
            let records: Vec<CrmObject> =
                page.records.into_iter().filter(|r| r.id.parse::<i64>().map_or(true, |id| now.holds(id))).collect();
            let written = records.len() as u64;
            held.advance(key, step.next, records.len());
            held.list_after = held.list_after.or(page.list_after);
            list_after = held.list_after;
            let checkpoint = held.state(runner.clock.now().timestamp_millis()).checkpoint(name);
            if records.is_empty() {
                runner.commit(&checkpoint).await?;
            } else {
                runner.write_owned(table, records, Some(&checkpoint)).await?;
            }
            count_page(&mut held.report, name, written);
            (held.on_page)(written);
            drop(held);
            match step.next {
                Some(next) => range = next,
                None => break,
            }
        }
    }
}

fn describe(range: IdRange) -> String {
    match range.through_id {
        Some(through) => format!("ids above {} through {through}", range.after_id),
        None => format!("ids above {}", range.after_id),
    }
}

/// The next page of `range` by `reader`; a list page starts where [`ranges::list_start`] says
/// for what the cursor is known to name. A list page is only used when it proves the server
/// walks by id ([`ranges::list_page_keyed`], with a cursor to check): otherwise nothing of it
/// is written, and search reads the range (or, when the server does not page by id at all,
/// every range left).
async fn fetch_range<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    range: IdRange,
    reader: Reader,
    known: Option<ranges::ListAfter>,
) -> Result<Fetched, Error> {
    let id = |r: &CrmObject| r.id.parse::<i64>().ok();
    if reader == Reader::Search {
        let page = search_range(runner, table, range).await?;
        let more = page.paging.is_some() || page.total > page.results.len() as u64;
        let ids = page.results.iter().map(id).collect();
        return Ok(Fetched::Page(RangePage { records: page.results, ids, more, list_after: None }));
    }
    let from = ranges::list_start(range, known);
    let name = &table.object.table;
    let page = match listing::page(&runner.client, &table.object, Some(&from.to_string()), &table.properties).await {
        Ok(page) => page,
        // The list walkers only add to search: a list request refused for good (a record id
        // as the cursor, or anything else a server will not list this way) leaves the ranges
        // to search instead of stopping the backfill.
        Err(crate::hubspot::Error::Rejected { status, .. }) => {
            tracing::warn!(table = %name, status, "HubSpot refused a list page; search reads the rest of the backfill");
            return Ok(Fetched::Refused);
        }
        Err(e) => return Err(Error::from(e).at_range(&StreamId::backfill(name), || describe(range))),
    };
    let ids: Vec<Option<i64>> = page.listed.iter().map(|i| i.parse::<i64>().ok()).collect();
    let next = page.next.as_deref();
    // A page of ids at or below the range's start only, with more to come, would not move it.
    let moves = next.is_none() || ids.iter().flatten().any(|i| *i > range.after_id);
    let keyed = ranges::list_page_keyed(Some(from), &ids, next) && moves;
    if !keyed {
        tracing::warn!(table = %name, "the list endpoint does not page by record id as HubSpot documents; search reads the rest of the backfill");
        return Ok(Fetched::Refused);
    }
    if next.is_none() {
        // Nothing after it to check it by: an offset or a token the server ran past would
        // read as the end, so search confirms the range's end.
        return Ok(Fetched::ToSearch);
    }
    let list_after = ranges::list_after_meaning(ids.iter().flatten().copied().max(), next);
    Ok(Fetched::Page(RangePage { records: page.records, ids, more: true, list_after }))
}

/// One search page of `range`'s records, ascending by id.
async fn search_range<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    range: IdRange,
) -> Result<SearchPage, Error> {
    let mut filters = vec![Filter::compare("hs_object_id", Operator::Gt, range.after_id)];
    filters.extend(range.through_id.map(|through| Filter::compare("hs_object_id", Operator::Lte, through)));
    let request = SearchRequest::new(
        vec![FilterGroup(filters)],
        Some(("hs_object_id".to_owned(), Direction::Ascending)),
        table.properties.clone(),
        PAGE,
        0,
    )?;
    runner
        .client
        .search(&table.object.api_name, &request)
        .await
        .map_err(|e| Error::from(e).at_range(&StreamId::backfill(&table.object.table), || describe(range)))
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
