//! A concurrent walk over id ranges (the invariant is in [`ranges`]): walkers take ranges from
//! one shared list, read them page by page, and commit each page with the list of ranges left
//! under one lock, so a stop at any instant costs at most the page in flight of each walker.
//! A backfill walks every record this way ([`Scope::Backfill`]), and so does a large CDC pass,
//! over the records modified since its watermark ([`Scope::Changes`]).
//!
//! Search walkers read in the search bucket; list walkers (a backfill only: a list page cannot
//! ask for changed records) read list pages of the same ranges in the general bucket, and give
//! a range back to search whenever a page does not prove the server pages by id (see
//! [`ranges::list_page_keyed`]).

use tokio_util::sync::CancellationToken;

use super::listing;
use super::ranges::{self, IdRange};
use super::runner::{PreparedTable, Runner};
use super::state::{BackfillState, CdcState, RangedWalk};
use super::Error;
use crate::destination::Destination;
use crate::hubspot::model::{CrmObject, SearchPage};
use crate::hubspot::{Direction, Filter, FilterGroup, Operator, SearchRequest};
use crate::state::{Checkpoint, StateStore, StreamId};

/// Search page size: HubSpot's maximum.
pub const PAGE: u32 = 200;
/// Records left per range walked concurrently: ten pages a range, so a small table (or a
/// small CDC pass) costs no planning call and walks in turn.
pub const RECORDS_PER_RANGE: u64 = 10 * PAGE as u64;
/// Property values walkers may hold fetched and not yet written, together: a wide table's
/// pages are large and its writes slow, so fewer of its pages wait in memory (300 properties:
/// about six search pages), while a narrow one keeps every walker's page in flight.
const VALUES_IN_FLIGHT: usize = 400_000;
/// Ids a range must have left to be split for an idle walker.
const MIN_SPLIT_SPAN: i64 = 2 * PAGE as i64;

/// What a walk reads, and the state its checkpoints hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every record: the backfill that started at `started_at_ms`.
    Backfill { started_at_ms: i64 },
    /// The records modified at or after the watermark: a CDC pass.
    Changes(ChangesPass),
}

/// A CDC pass walked by ranges: it reads the records whose last-modified time is at or after
/// `watermark_ms`, and when every range is read moves the watermark to `pass_started_ms` less
/// the settle lag. A record modified before that instant was in HubSpot's search index when
/// its id was read (the settle lag is what the index takes); one modified after it is read by
/// the next pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangesPass {
    pub watermark_ms: i64,
    pub pass_started_ms: i64,
    pub last_pass_ms: i64,
    pub settle_ms: i64,
}

impl ChangesPass {
    /// The watermark once the pass has read everything: its start less the settle lag, never
    /// below where it began.
    pub fn watermark_when_done(&self) -> i64 {
        self.watermark_ms.max(self.pass_started_ms - self.settle_ms)
    }
}

impl Scope {
    fn stream(&self, table: &str) -> StreamId {
        match self {
            Scope::Backfill { .. } => StreamId::backfill(table),
            Scope::Changes(_) => StreamId::cdc(table),
        }
    }

    /// The search filters of `range` (AND-ed).
    fn filters(&self, range: IdRange, cursor_property: &str) -> Vec<Filter> {
        let mut filters = vec![Filter::compare("hs_object_id", Operator::Gt, range.after_id)];
        filters.extend(range.through_id.map(|through| Filter::compare("hs_object_id", Operator::Lte, through)));
        if let Scope::Changes(pass) = self {
            filters.push(Filter::compare(cursor_property, Operator::Gte, pass.watermark_ms));
        }
        filters
    }

    /// The checkpoint of `walk` (its ranges left, in id order) with `rows` read in all.
    fn checkpoint(&self, table: &str, walk: RangedWalk, rows: i64, now_ms: i64) -> Checkpoint {
        match (self, ranges::prefix(&walk.ranges)) {
            (Scope::Backfill { started_at_ms }, None) => {
                BackfillState::Done { started_at_ms: *started_at_ms, finished_at_ms: now_ms, rows }.checkpoint(table)
            }
            (Scope::Backfill { started_at_ms }, Some(after_id)) => BackfillState::Running {
                after_id,
                started_at_ms: *started_at_ms,
                rows,
                list_after: None,
                ranged: Some(walk),
            }
            .checkpoint(table),
            (Scope::Changes(pass), None) => {
                CdcState::Polling { watermark_ms: pass.watermark_when_done(), last_pass_ms: now_ms, rows }
                    .checkpoint(table)
            }
            (Scope::Changes(pass), Some(_)) => CdcState::Ranged {
                watermark_ms: pass.watermark_ms,
                pass_started_ms: pass.pass_started_ms,
                last_pass_ms: pass.last_pass_ms,
                rows,
                walk,
            }
            .checkpoint(table),
        }
    }

    /// `range` in words, for messages.
    fn describe(&self, range: IdRange) -> String {
        let ids = match range.through_id {
            Some(through) => format!("ids above {} through {through}", range.after_id),
            None => format!("ids above {}", range.after_id),
        };
        match self {
            Scope::Backfill { .. } => ids,
            Scope::Changes(pass) => {
                let from = chrono::DateTime::from_timestamp_millis(pass.watermark_ms)
                    .map_or_else(|| pass.watermark_ms.to_string(), |t| t.to_rfc3339());
                format!("records modified from {from} with {ids}")
            }
        }
    }
}

/// The walkers of a walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walkers {
    pub search: usize,
    /// List walkers; a [`Scope::Changes`] walk has none.
    pub list: usize,
}

/// What a walk did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Walked {
    pub pages: u64,
    pub rows: u64,
    /// Every range was read.
    pub finished: bool,
    /// The lowest start of the ranges left (every id up to it is read); 0 when finished.
    pub read_through: i64,
    /// The ids written, for a [`Scope::Changes`] walk (the association poll reads them).
    pub ids: Vec<String>,
}

/// The ranges to walk the `left` records above `after_id` of `scope` in, one per walker while
/// each has [`RECORDS_PER_RANGE`], or `None` when they are too few for two (one search for the
/// highest id, sorted descending, one record).
pub async fn plan<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    scope: Scope,
    after_id: i64,
    left: u64,
    walkers: usize,
) -> Result<Option<RangedWalk>, Error> {
    let n = ranges_for(left, walkers);
    if n < 2 {
        return Ok(None);
    }
    let open = IdRange { after_id, through_id: None };
    let request = SearchRequest::new(
        vec![FilterGroup(scope.filters(open, table.object.cursor_property))],
        Some(("hs_object_id".to_owned(), Direction::Descending)),
        vec!["hs_object_id".to_owned()],
        1,
        0,
    )?;
    let stream = scope.stream(&table.object.table);
    let page = runner
        .client
        .search(&table.object.api_name, &request)
        .await
        .map_err(|e| Error::from(e).at_range(&stream, || format!("the highest of the {}", scope.describe(open))))?;
    let known_max = page.results.iter().filter_map(|r| r.id.parse::<i64>().ok()).max().unwrap_or(after_id);
    let ranges = ranges::plan(after_id, known_max, n);
    Ok((ranges.len() > 1).then_some(RangedWalk { ranges, known_max, list_after: None }))
}

/// How many ranges `left` records are planned in with `walkers` walkers: one per walker while
/// each has [`RECORDS_PER_RANGE`]; under two, the stream walks in turn.
pub fn ranges_for(left: u64, walkers: usize) -> usize {
    usize::try_from(left / RECORDS_PER_RANGE).unwrap_or(usize::MAX).min(walkers)
}

/// A walk about to run: what it reads, its ranges left, the rows its stream read before, and
/// its walkers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Start {
    pub scope: Scope,
    pub walk: RangedWalk,
    pub rows: i64,
    pub walkers: Walkers,
}

/// Walks the ranges of `start` with its walkers at once, until every range is read or
/// `shutdown` fires. Ranges list walkers gave back (the server does not walk lists by id) are
/// read by search walkers after them. `on_page` hears of each page written, with its record
/// count.
pub async fn run<D: Destination, S: StateStore, F: FnMut(u64) + Send>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    start: Start,
    shutdown: &CancellationToken,
    on_page: F,
) -> Result<Walked, Error> {
    let Start { scope, walk, rows, walkers } = start;
    let walk = tokio::sync::Mutex::new(Walk::new(walk, scope, rows, on_page));
    let values = tokio::sync::Semaphore::new(VALUES_IN_FLIGHT);
    let mut list_walkers = if matches!(scope, Scope::Backfill { .. }) { walkers.list } else { 0 };
    loop {
        let searchers =
            (0..walkers.search.max(1)).map(|_| walk_ranges(runner, table, &walk, &values, Reader::Search, shutdown));
        let listers = (0..list_walkers).map(|_| walk_ranges(runner, table, &walk, &values, Reader::List, shutdown));
        futures_util::future::try_join_all(searchers.chain(listers)).await?;
        list_walkers = 0;
        // Ranges list walkers gave back after the search walkers ran out are read now.
        if walk.lock().await.slots.is_empty() || shutdown.is_cancelled() {
            break;
        }
    }
    let walk = walk.into_inner();
    let mut walked = walk.walked;
    walked.finished = walk.slots.is_empty();
    walked.read_through = walk.slots.iter().map(|s| s.range.after_id).min().unwrap_or_default();
    Ok(walked)
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
    scope: Scope,
    /// Set when a list page showed the server does not walk by id: list walkers stop and
    /// search reads the rest.
    list_refused: bool,
    /// What the server's list cursor names, once a list page showed it.
    list_after: Option<ranges::ListAfter>,
    next_key: u64,
    known_max: i64,
    rows: i64,
    walked: Walked,
    on_page: F,
}

impl<F: FnMut(u64)> Walk<F> {
    fn new(walk: RangedWalk, scope: Scope, rows: i64, on_page: F) -> Walk<F> {
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
            scope,
            list_refused: false,
            list_after: walk.list_after,
            known_max: walk.known_max,
            rows,
            walked: Walked::default(),
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

    /// The checkpoint to commit: the ranges left, or the scope's end state.
    fn checkpoint(&self, table: &str, now_ms: i64) -> Checkpoint {
        let mut ranges: Vec<IdRange> = self.slots.iter().map(|s| s.range).collect();
        ranges.sort_by_key(|r| r.after_id);
        let walk = RangedWalk { ranges, known_max: self.known_max, list_after: self.list_after };
        self.scope.checkpoint(table, walk, self.rows, now_ms)
    }
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
    let scope = walk.lock().await.scope;
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
                page = fetch_range(runner, table, scope, range, reader, list_after) => page?,
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
                    stream: scope.stream(name),
                    range: scope.describe(range),
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
            let checkpoint = held.checkpoint(name, runner.clock.now().timestamp_millis());
            if let Scope::Changes(_) = scope {
                held.walked.ids.extend(records.iter().map(|r| r.id.clone()));
            }
            if records.is_empty() {
                runner.commit(&checkpoint).await?;
            } else {
                runner.write_owned(table, records, Some(&checkpoint)).await?;
            }
            held.walked.pages += 1;
            held.walked.rows += written;
            (held.on_page)(written);
            drop(held);
            match step.next {
                Some(next) => range = next,
                None => break,
            }
        }
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
    scope: Scope,
    range: IdRange,
    reader: Reader,
    known: Option<ranges::ListAfter>,
) -> Result<Fetched, Error> {
    let id = |r: &CrmObject| r.id.parse::<i64>().ok();
    if reader == Reader::Search {
        let page = search_range(runner, table, scope, range).await?;
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
        Err(e) => return Err(Error::from(e).at_range(&scope.stream(name), || scope.describe(range))),
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

/// One search page of `range`'s records of `scope`, ascending by id.
async fn search_range<D: Destination, S: StateStore>(
    runner: &Runner<D, S>,
    table: &PreparedTable,
    scope: Scope,
    range: IdRange,
) -> Result<SearchPage, Error> {
    let request = SearchRequest::new(
        vec![FilterGroup(scope.filters(range, table.object.cursor_property))],
        Some(("hs_object_id".to_owned(), Direction::Ascending)),
        table.properties.clone(),
        PAGE,
        0,
    )?;
    runner
        .client
        .search(&table.object.api_name, &request)
        .await
        .map_err(|e| Error::from(e).at_range(&scope.stream(&table.object.table), || scope.describe(range)))
}
