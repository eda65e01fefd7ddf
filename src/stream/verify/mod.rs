//! `hsync verify`: compares the warehouse with HubSpot, object by object, without writing
//! anything.
//!
//! This module owns the comparison and its report ([`VerifyReport`], whose serde field names are
//! the stable JSON contract). Per object it checks:
//! - **counts**: HubSpot's search `total` (one search, limit 1, no filter) against the
//!   warehouse's live rows (not flagged archived, merged away or deleted);
//! - **ids**: a cheap id-only keyset sweep over search (`hs_object_id > last`, ascending, 200 per
//!   page, properties `hs_object_id` and the cursor property) merged with the warehouse's live
//!   ids: ids HubSpot holds that the warehouse lacks are *missing*, live warehouse ids HubSpot
//!   does not hold are *extra*;
//! - **staleness**: rows whose stored `_hsync_cursor` is older than HubSpot's last-modified
//!   time are *stale*;
//! - **history**, for an object `sync.history` names: a sample of live records' stored
//!   versions against HubSpot's, and their latest value against HubSpot's current one
//!   ([`history`]);
//! - **calculated values**: a sample of live records' stored calculated properties (rollups,
//!   formulas, scores) against HubSpot's current values, which can change without moving
//!   last-modified and so escape the staleness check ([`calculated`]).
//!
//! The sweep costs one search call per 200 records (the search bucket's 5 per second bounds
//! it). A type without search is counted and swept by listing its ids (one call per 100). The comparison is a point in time: a record changed after the last CDC pass shows as
//! missing or stale until the next pass, which is what an operator checking the warehouse
//! wants to see. Reports carry ids, never row values.

pub mod calculated;
pub mod history;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use self::calculated::CalculatedColumn;
pub use self::calculated::CalculatedReport;
pub use self::history::HistoryReport;
use super::{record_cursor_ms, Error};
use crate::config::HistorySelection;
use crate::destination::Destination;
use crate::hubspot::{Direction, Filter, FilterGroup, HubSpotClient, ObjectRef, Operator, ReadPath, SearchRequest};
use crate::schema::hsync_columns;
use crate::state::ColumnMap;

/// Search page size of the id sweep: HubSpot's maximum.
pub const PAGE: u32 = 200;
/// Example ids per category unless asked otherwise.
pub const DEFAULT_EXAMPLES: usize = 10;

/// How thorough a verification is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Example ids kept per category.
    pub examples: usize,
    /// Compare counts only (one search call per object), skipping the id sweep and history.
    pub counts_only: bool,
    /// Live records whose history is compared, per object with `sync.history` (0: none).
    pub history_sample: usize,
    /// Live records whose calculated properties are compared, per object (0: none).
    pub calculated_sample: usize,
    /// Picks which records the history and calculated samples take (see [`history::sample`]).
    pub sample_seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            examples: DEFAULT_EXAMPLES,
            counts_only: false,
            history_sample: history::DEFAULT_SAMPLE,
            calculated_sample: calculated::DEFAULT_SAMPLE,
            sample_seed: 0,
        }
    }
}

/// One category of differences: how many, and the first ids (ascending).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub count: u64,
    /// Up to `Options::examples` ids, as HubSpot writes them (strings).
    pub examples: Vec<String>,
}

impl Difference {
    fn record(&mut self, id: i64, keep: usize) {
        self.record_example(id.to_string(), keep);
    }

    fn record_example(&mut self, example: String, keep: usize) {
        self.count += 1;
        if self.examples.len() < keep {
            self.examples.push(example);
        }
    }
}

/// The verification of one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectReport {
    /// The warehouse table.
    pub object: String,
    /// HubSpot's search `total`: its live records.
    pub hubspot_total: u64,
    /// The warehouse's live rows.
    pub warehouse_live: u64,
    /// Whether ids were compared (not with `--counts-only`).
    pub ids_compared: bool,
    /// Ids the sweep read from HubSpot, when ids were compared.
    pub hubspot_swept: Option<u64>,
    /// In HubSpot, not live in the warehouse.
    pub missing: Difference,
    /// Live in the warehouse, not in HubSpot.
    pub extra: Difference,
    /// In both, the warehouse's version older than HubSpot's.
    pub stale: Difference,
    /// The history comparison of a sample, for an object with `sync.history`.
    pub history: Option<HistoryReport>,
    /// The calculated-value comparison of a sample, when ids were compared and the object has
    /// calculated properties with columns.
    pub calculated: Option<CalculatedReport>,
    /// Counts equal, no id differs, and the sampled history and calculated values match.
    pub matches: bool,
}

/// The verification of every requested object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub checked_at: DateTime<Utc>,
    pub objects: Vec<ObjectReport>,
    /// Every object matches.
    pub matches: bool,
}

impl VerifyReport {
    pub fn new(checked_at: DateTime<Utc>, objects: Vec<ObjectReport>) -> VerifyReport {
        let matches = objects.iter().all(|o| o.matches);
        VerifyReport { checked_at, objects, matches }
    }
}

/// A record's id and last-modified time (epoch ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub id: i64,
    pub cursor_ms: Option<i64>,
}

/// Merges HubSpot's ids, fed in ascending pages, with the warehouse's live ids.
#[derive(Debug)]
pub struct IdComparison {
    warehouse: Vec<Key>,
    next: usize,
    keep: usize,
    swept: u64,
    missing: Difference,
    extra: Difference,
    stale: Difference,
}

impl IdComparison {
    /// Starts a comparison against the warehouse's live keys (any order; one per id).
    pub fn new(mut warehouse: Vec<Key>, examples: usize) -> IdComparison {
        warehouse.sort_by_key(|k| k.id);
        warehouse.dedup_by_key(|k| k.id);
        IdComparison {
            warehouse,
            next: 0,
            keep: examples,
            swept: 0,
            missing: Difference::default(),
            extra: Difference::default(),
            stale: Difference::default(),
        }
    }

    /// Feeds HubSpot keys: ascending, and above every id fed before.
    pub fn feed(&mut self, hubspot: &[Key]) {
        for h in hubspot {
            self.swept += 1;
            while let Some(w) = self.warehouse.get(self.next).filter(|w| w.id < h.id) {
                self.extra.record(w.id, self.keep);
                self.next += 1;
            }
            match self.warehouse.get(self.next) {
                Some(w) if w.id == h.id => {
                    if let Some(theirs) = h.cursor_ms {
                        if w.cursor_ms.is_none_or(|ours| ours < theirs) {
                            self.stale.record(h.id, self.keep);
                        }
                    }
                    self.next += 1;
                }
                _ => self.missing.record(h.id, self.keep),
            }
        }
    }

    /// Ends the sweep: warehouse ids HubSpot never listed are extra. Returns (ids swept,
    /// missing, extra, stale).
    pub fn finish(mut self) -> (u64, Difference, Difference, Difference) {
        for w in &self.warehouse[self.next.min(self.warehouse.len())..] {
            self.extra.record(w.id, self.keep);
        }
        (self.swept, self.missing, self.extra, self.stale)
    }
}

/// Verifies one object (see the module docs), its history when `history_kept` names what
/// `sync.history` keeps of it, and its calculated values in the columns `column_map` gives
/// properties.
pub async fn object<D: Destination>(
    client: &HubSpotClient,
    dest: &D,
    object: &ObjectRef,
    history_kept: Option<&HistorySelection>,
    column_map: &ColumnMap,
    options: &Options,
) -> Result<ObjectReport, Error> {
    let cursor = object.cursor_property;
    let warehouse: Vec<Key> = dest
        .id_flags(&object.table)
        .await?
        .into_iter()
        .filter(|row| !row.flagged())
        .map(|row| Key { id: row.id, cursor_ms: row.cursor })
        .collect();
    let warehouse_live = warehouse.len() as u64;
    // A type without search has no count: its whole list of ids is read for it.
    let listed = match object.read_path() {
        ReadPath::Search => None,
        ReadPath::List => Some(listed_keys(client, object).await?),
    };
    let hubspot_total = match &listed {
        Some(keys) => keys.len() as u64,
        None => {
            let count = SearchRequest::new(Vec::new(), None, vec!["hs_object_id".to_owned()], 1, 0)?;
            client.search(&object.api_name, &count).await?.total
        }
    };
    let mut report = ObjectReport {
        object: object.table.clone(),
        hubspot_total,
        warehouse_live,
        ids_compared: false,
        hubspot_swept: None,
        missing: Difference::default(),
        extra: Difference::default(),
        stale: Difference::default(),
        history: None,
        calculated: None,
        matches: hubspot_total == warehouse_live,
    };
    if options.counts_only {
        return Ok(report);
    }
    let live: Vec<i64> = {
        let mut ids: Vec<i64> = warehouse.iter().map(|k| k.id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let mut comparison = IdComparison::new(warehouse, options.examples);
    let mut after_id: i64 = 0;
    if let Some(keys) = listed {
        comparison.feed(&keys);
    }
    while object.read_path() == ReadPath::Search {
        let request = SearchRequest::new(
            vec![FilterGroup(vec![Filter::compare("hs_object_id", Operator::Gt, after_id)])],
            Some(("hs_object_id".to_owned(), Direction::Ascending)),
            vec!["hs_object_id".to_owned(), cursor.to_owned()],
            PAGE,
            0,
        )?;
        let page = client.search(&object.api_name, &request).await?;
        let mut keys: Vec<Key> = page
            .results
            .iter()
            .filter_map(|r| Some(Key { id: r.id.parse().ok()?, cursor_ms: record_cursor_ms(r, cursor) }))
            .filter(|k| k.id > after_id)
            .collect();
        keys.sort_by_key(|k| k.id);
        keys.dedup_by_key(|k| k.id);
        let Some(last) = keys.last().map(|k| k.id) else {
            if page.results.is_empty() {
                break;
            }
            return Err(Error::Bug(format!(
                "the id sweep of {} asked for ids above {after_id} and got none above it",
                object.table
            )));
        };
        comparison.feed(&keys);
        after_id = last;
        if page.results.len() < PAGE as usize && page.next_after().is_none() {
            break;
        }
    }
    let (swept, missing, extra, stale) = comparison.finish();
    report.ids_compared = true;
    report.hubspot_swept = Some(swept);
    report.matches = report.matches && missing.count == 0 && extra.count == 0 && stale.count == 0;
    report.missing = missing;
    report.extra = extra;
    report.stale = stale;
    if let Some(selection) = history_kept.filter(|_| options.history_sample > 0) {
        let sampled = history::sample(&live, options.history_sample, options.sample_seed);
        let compared = compare_history(client, dest, object, selection, &sampled, options.examples).await?;
        report.matches = report.matches && compared.matches;
        report.history = Some(compared);
    }
    if options.calculated_sample > 0 {
        let sampled = history::sample(&live, options.calculated_sample, options.sample_seed);
        let compared = compare_calculated(client, dest, object, column_map, &sampled, options.examples).await?;
        if let Some(compared) = compared {
            report.matches = report.matches && compared.matches;
            report.calculated = Some(compared);
        }
    }
    tracing::info!(
        table = %object.table,
        hubspot = hubspot_total,
        warehouse = warehouse_live,
        missing = report.missing.count,
        extra = report.extra.count,
        stale = report.stale.count,
        "verified"
    );
    Ok(report)
}

/// Reads the history of `sampled` from HubSpot and from the warehouse and compares them (see
/// [`history`]).
async fn compare_history<D: Destination>(
    client: &HubSpotClient,
    dest: &D,
    object: &ObjectRef,
    selection: &HistorySelection,
    sampled: &[i64],
    examples: usize,
) -> Result<HistoryReport, Error> {
    let properties = super::history::selected_properties(client, object, selection).await?;
    let asked: Vec<String> = sampled.iter().map(i64::to_string).collect();
    let read = client.batch_read_history(&object.api_name, &asked, &properties).await?;
    let records: BTreeSet<i64> = read.found.iter().filter_map(|r| r.id.trim().parse().ok()).collect();
    let named: BTreeSet<String> = properties.into_iter().collect();
    let current: BTreeMap<(i64, String), Option<String>> = read
        .found
        .iter()
        .filter_map(|r| Some((r.id.trim().parse::<i64>().ok()?, r)))
        .flat_map(|(id, r)| named.iter().filter_map(move |p| Some(((id, p.clone()), r.properties.get(p)?.clone()))))
        .collect();
    let expected = history::expected_versions(&object.table, &read.found);
    let ids: Vec<i64> = records.iter().copied().collect();
    let stored = dest.history_versions(&object.table, &ids).await?;
    let report = history::compare(&expected, &stored, &current, &records, &named, examples);
    tracing::info!(
        table = %object.table,
        records = report.records_sampled,
        pairs = report.pairs_compared,
        differ = report.versions_differ.count,
        latest_differs = report.latest_differs.count,
        "history verified"
    );
    Ok(report)
}

/// Reads the calculated properties of `sampled` from HubSpot and from the warehouse and
/// compares them (see [`calculated`]); `None` when the object has no calculated property with a
/// column.
async fn compare_calculated<D: Destination>(
    client: &HubSpotClient,
    dest: &D,
    object: &ObjectRef,
    column_map: &ColumnMap,
    sampled: &[i64],
    examples: usize,
) -> Result<Option<CalculatedReport>, Error> {
    let Some(described) = dest.describe(&object.table).await? else { return Ok(None) };
    let definitions = client.properties(&object.api_name, false).await?;
    let columns: Vec<CalculatedColumn> = super::calculated::refreshed_properties(object, &definitions)
        .into_iter()
        .filter_map(|property| {
            let name = column_map.columns.get(&property)?;
            let column = described.iter().find(|c| &c.name == name)?.clone();
            Some(CalculatedColumn { property, column })
        })
        .collect();
    if columns.is_empty() {
        return Ok(None);
    }
    let mut wanted: Vec<String> = columns.iter().map(|c| c.property.clone()).collect();
    wanted.push(object.cursor_property.to_owned());
    let asked: Vec<String> = sampled.iter().map(i64::to_string).collect();
    let read = client.batch_read(&object.api_name, &asked, &wanted, false).await?;
    let mut stored_columns = vec![hsync_columns::ID.to_owned(), hsync_columns::CURSOR.to_owned()];
    stored_columns.extend(columns.iter().map(|c| c.column.name.clone()));
    let stored = dest.read_cells(&object.table, &stored_columns, sampled).await?;
    let report = calculated::compare(&columns, object.cursor_property, &read.found, &stored, examples);
    tracing::info!(
        table = %object.table,
        records = report.records_sampled,
        values = report.values_compared,
        stale = report.stale.count,
        "calculated values verified"
    );
    Ok(Some(report))
}

/// Every live record's id and cursor of a type without search, by listing it, in id order
/// without repeats (what [`IdComparison::feed`] takes).
async fn listed_keys(client: &HubSpotClient, object: &ObjectRef) -> Result<Vec<Key>, Error> {
    let wanted = vec!["hs_object_id".to_owned(), object.cursor_property.to_owned()];
    let mut keys = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = super::listing::page(client, object, after.as_deref(), &wanted).await?;
        keys.extend(page.records.iter().filter_map(|r| {
            Some(Key { id: r.id.parse().ok()?, cursor_ms: record_cursor_ms(r, object.cursor_property) })
        }));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    keys.sort_by_key(|k| k.id);
    keys.dedup_by_key(|k| k.id);
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: i64, cursor: i64) -> Key {
        Key { id, cursor_ms: Some(cursor) }
    }

    fn ids(d: &Difference) -> Vec<&str> {
        d.examples.iter().map(String::as_str).collect()
    }

    #[test]
    fn sweep_pages_merge_into_missing_extra_and_stale() {
        // Warehouse: 1..=6 and 9, unsorted; HubSpot: 2..=8 in two pages.
        let warehouse = vec![key(9, 5), key(3, 5), key(1, 5), key(2, 5), key(4, 1), key(5, 5), key(6, 9)];
        let mut cmp = IdComparison::new(warehouse, 10);
        cmp.feed(&[key(2, 5), key(3, 5), key(4, 5)]);
        cmp.feed(&[key(5, 5), key(6, 5), key(7, 5), key(8, 5)]);
        let (swept, missing, extra, stale) = cmp.finish();
        assert_eq!(swept, 7);
        assert_eq!(ids(&missing), ["7", "8"]);
        assert_eq!(ids(&extra), ["1", "9"]);
        assert_eq!(ids(&stale), ["4"], "older stored cursor is stale; newer (6) is not");
    }

    #[test]
    fn empty_sides_and_example_limit() {
        let (_, missing, extra, stale) = {
            let mut cmp = IdComparison::new(Vec::new(), 2);
            cmp.feed(&[key(1, 1), key(2, 1), key(3, 1)]);
            cmp.finish()
        };
        assert_eq!((missing.count, ids(&missing)), (3, vec!["1", "2"]));
        assert_eq!((extra.count, stale.count), (0, 0));
        let (swept, missing, extra, _) = IdComparison::new(vec![key(5, 1), key(6, 1)], 10).finish();
        assert_eq!((swept, missing.count), (0, 0));
        assert_eq!(ids(&extra), ["5", "6"]);
    }

    #[test]
    fn unknown_cursors() {
        let mut cmp = IdComparison::new(vec![Key { id: 1, cursor_ms: None }, key(2, 1)], 10);
        cmp.feed(&[key(1, 1), Key { id: 2, cursor_ms: None }]);
        let (_, _, _, stale) = cmp.finish();
        assert_eq!(ids(&stale), ["1"], "a row without a stored cursor is stale; no HubSpot time, no verdict");
    }

    #[test]
    fn report_matches_only_when_every_object_does() {
        let object = |matches| ObjectReport {
            object: "contacts".into(),
            hubspot_total: 1,
            warehouse_live: 1,
            ids_compared: true,
            hubspot_swept: Some(1),
            missing: Difference::default(),
            extra: Difference::default(),
            stale: Difference::default(),
            history: None,
            calculated: None,
            matches,
        };
        let now = Utc::now();
        assert!(VerifyReport::new(now, vec![object(true), object(true)]).matches);
        assert!(!VerifyReport::new(now, vec![object(true), object(false)]).matches);
        let json = serde_json::to_value(VerifyReport::new(now, vec![object(true)])).unwrap();
        for field in [
            "object",
            "hubspot_total",
            "warehouse_live",
            "ids_compared",
            "hubspot_swept",
            "missing",
            "extra",
            "stale",
            "history",
            "calculated",
            "matches",
        ] {
            assert!(json["objects"][0].get(field).is_some(), "objects[].{field}");
        }
        assert!(json["objects"][0]["missing"].get("examples").is_some());
    }
}
