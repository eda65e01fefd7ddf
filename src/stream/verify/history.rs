//! The history part of `hsync verify`: for a sample of an object's live records, the versions
//! `property_history` holds are compared with the versions HubSpot lists now
//! (`propertiesWithHistory` through batch read, 50 records a call), and each property's latest
//! stored version with HubSpot's current value.
//!
//! HubSpot's versions are keyed exactly as the history pass keys them ([`version_rows`]), so a
//! record's property matches when the warehouse holds HubSpot's versions and no other: the same
//! number of versions, none missing, none extra. The latest stored version is the one with the
//! latest `changed_at`; when several share that millisecond (their order within it is not
//! stored), any of them holding the current value passes. HubSpot's current value is what the
//! record's column holds whenever the id comparison finds the row current (not stale), so the
//! two checks together say that the history ends where the table stands.
//!
//! The sample is spread evenly over the live ids from an offset that moves with the time of the
//! check, so repeated runs cover different records; it costs one call per 50 records. Records
//! HubSpot no longer returns are left out (the id comparison reports them), as are stored
//! versions of properties `sync.history` no longer names.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::Difference;
use crate::destination::StoredVersion;
use crate::hubspot::model::CrmObject;
use crate::schema::dimension::PROPERTY_HISTORY;
use crate::schema::history::version_rows;
use crate::schema::parse_instant_ms;

/// Records sampled per object unless asked otherwise: one batch read.
pub const DEFAULT_SAMPLE: usize = 50;

/// The history comparison of one object's sample.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HistoryReport {
    /// Live records sampled that HubSpot returned.
    pub records_sampled: u64,
    /// Record and property pairs with versions on either side.
    pub pairs_compared: u64,
    /// Pairs whose stored versions are not exactly HubSpot's (their number or which ones);
    /// examples are `record/property`.
    pub versions_differ: Difference,
    /// Versions HubSpot lists that the warehouse lacks, over every pair.
    pub versions_missing: u64,
    /// Stored versions HubSpot does not list, over every pair.
    pub versions_extra: u64,
    /// Pairs whose latest stored version does not hold HubSpot's current value.
    pub latest_differs: Difference,
    /// No pair differs.
    pub matches: bool,
}

/// Which of `live` (ascending ids) to sample: every one when there are at most `n`, else `n`
/// spread evenly, from an offset `seed` picks within the first stride.
pub fn sample(live: &[i64], n: usize, seed: u64) -> Vec<i64> {
    if live.len() <= n {
        return live.to_vec();
    }
    if n == 0 {
        return Vec::new();
    }
    let stride = live.len() / n;
    let offset = (seed % stride as u64) as usize;
    (0..n).map(|i| live[offset + i * stride]).collect()
}

/// HubSpot's versions of `records` (records of `table`), as the history pass would store them.
pub fn expected_versions(table: &str, records: &[CrmObject]) -> Vec<StoredVersion> {
    let at = |name: &str| PROPERTY_HISTORY.columns.iter().position(|(c, _)| *c == name);
    let [record, property, version, value, changed] =
        ["record_id", "property", "version_id", "value", "changed_at"].map(at);
    let (rows, _) = version_rows(table, records);
    rows.into_iter()
        .filter_map(|mut row| {
            let mut text = |i: Option<usize>| i.and_then(|i| row.get_mut(i)).and_then(Option::take);
            Some(StoredVersion {
                record_id: text(record)?.parse().ok()?,
                property: text(property)?,
                version_id: text(version)?,
                value: text(value),
                changed_at_ms: text(changed).as_deref().and_then(parse_instant_ms),
            })
        })
        .collect()
}

type Pair = (i64, String);

fn by_pair(versions: &[StoredVersion]) -> BTreeMap<Pair, Vec<&StoredVersion>> {
    let mut out: BTreeMap<Pair, Vec<&StoredVersion>> = BTreeMap::new();
    for v in versions {
        out.entry((v.record_id, v.property.clone())).or_default().push(v);
    }
    out
}

/// Whether two raw values say the same: equal text, empty and absent alike, or the same
/// number or instant written differently.
fn same_value(a: Option<&str>, b: Option<&str>) -> bool {
    let (a, b) = (a.map(str::trim).unwrap_or_default(), b.map(str::trim).unwrap_or_default());
    if a == b {
        return true;
    }
    if let (Ok(x), Ok(y)) = (a.parse::<f64>(), b.parse::<f64>()) {
        return x == y;
    }
    matches!((parse_instant_ms(a), parse_instant_ms(b)), (Some(x), Some(y)) if x == y)
}

/// Compares the stored versions of the sampled records with HubSpot's (`expected`) and the
/// latest stored value with `current` (HubSpot's current value per record and property, for
/// the pairs it gave one). Only pairs of records in `records` and properties in `properties`
/// count.
pub fn compare(
    expected: &[StoredVersion],
    stored: &[StoredVersion],
    current: &BTreeMap<Pair, Option<String>>,
    records: &BTreeSet<i64>,
    properties: &BTreeSet<String>,
    examples: usize,
) -> HistoryReport {
    let counted = |(id, property): &Pair| records.contains(id) && properties.contains(property);
    let (expected, stored) = (by_pair(expected), by_pair(stored));
    let pairs: BTreeSet<&Pair> = expected.keys().chain(stored.keys()).filter(|p| counted(p)).collect();
    let mut report = HistoryReport { records_sampled: records.len() as u64, ..HistoryReport::default() };
    for pair in pairs {
        report.pairs_compared += 1;
        let ids = |side: &BTreeMap<Pair, Vec<&StoredVersion>>| -> BTreeSet<String> {
            side.get(pair).into_iter().flatten().map(|v| v.version_id.clone()).collect()
        };
        let (theirs, ours) = (ids(&expected), ids(&stored));
        let (missing, extra) = (theirs.difference(&ours).count() as u64, ours.difference(&theirs).count() as u64);
        let label = format!("{}/{}", pair.0, pair.1);
        if missing + extra > 0 {
            report.versions_missing += missing;
            report.versions_extra += extra;
            report.versions_differ.record_example(label.clone(), examples);
        }
        let Some(now) = current.get(pair) else { continue };
        let ours = stored.get(pair).map(Vec::as_slice).unwrap_or_default();
        let latest_at = ours.iter().map(|v| v.changed_at_ms).max();
        let holds = ours
            .iter()
            .filter(|v| Some(v.changed_at_ms) == latest_at)
            .any(|v| same_value(v.value.as_deref(), now.as_deref()));
        // A property HubSpot never set has no versions and no value: nothing to hold.
        let never_set = ours.is_empty() && same_value(None, now.as_deref());
        if !(holds || never_set) {
            report.latest_differs.record_example(label, examples);
        }
    }
    report.matches = report.versions_differ.count == 0 && report.latest_differs.count == 0;
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(record: i64, property: &str, id: &str, value: &str, at: i64) -> StoredVersion {
        StoredVersion {
            record_id: record,
            property: property.to_owned(),
            version_id: id.to_owned(),
            value: Some(value.to_owned()),
            changed_at_ms: Some(at),
        }
    }

    fn set<T: Ord + Clone>(items: &[T]) -> BTreeSet<T> {
        items.iter().cloned().collect()
    }

    #[test]
    fn the_sample_spreads_over_the_ids_and_moves_with_the_seed() {
        let live: Vec<i64> = (1..=10).collect();
        assert_eq!(sample(&live, 20, 7), live, "at most n ids: all of them");
        assert_eq!(sample(&live, 3, 0), [1, 4, 7]);
        assert_eq!(sample(&live, 3, 2), [3, 6, 9]);
        assert_eq!(sample(&live, 3, 5), [3, 6, 9], "the offset stays within the first stride");
        assert_eq!(sample(&live, 0, 1), Vec::<i64>::new());
        let wide: Vec<i64> = (0..1_000).collect();
        for seed in [0, 13, u64::MAX] {
            let picked = sample(&wide, 50, seed);
            assert_eq!(picked.len(), 50);
            assert!(picked.windows(2).all(|w| w[0] < w[1]), "distinct and ascending");
        }
    }

    #[test]
    fn equal_histories_match() {
        let versions = [v(1, "dealstage", "a", "won", 20), v(1, "dealstage", "b", "open", 10)];
        let current = BTreeMap::from([((1, "dealstage".to_owned()), Some("won".to_owned()))]);
        let report = compare(&versions, &versions, &current, &set(&[1]), &set(&["dealstage".to_owned()]), 10);
        assert!(report.matches, "{report:?}");
        assert_eq!((report.records_sampled, report.pairs_compared), (1, 1));
    }

    #[test]
    fn missing_extra_and_miscounted_versions_differ() {
        let hubspot = [v(1, "p", "a", "x", 1), v(1, "p", "b", "y", 2), v(2, "p", "c", "z", 1)];
        let stored = [v(1, "p", "a", "x", 1), v(2, "p", "c", "z", 1), v(2, "p", "d", "w", 0)];
        let report = compare(&hubspot, &stored, &BTreeMap::new(), &set(&[1, 2]), &set(&["p".to_owned()]), 10);
        assert_eq!(report.versions_differ.examples, ["1/p", "2/p"]);
        assert_eq!((report.versions_missing, report.versions_extra), (1, 1));
        assert!(!report.matches);
    }

    #[test]
    fn the_latest_stored_version_must_hold_the_current_value() {
        let p = || "p".to_owned();
        let stored =
            [v(1, "p", "a", "old", 1), v(1, "p", "b", "new", 2), v(2, "p", "c", "x", 5), v(2, "p", "d", "y", 5)];
        let current = BTreeMap::from([
            ((1, p()), Some("old".to_owned())),
            ((2, p()), Some("y".to_owned())),
            ((3, p()), None),
            ((4, p()), Some("set".to_owned())),
        ]);
        let report = compare(&stored, &stored, &current, &set(&[1, 2, 3, 4]), &set(&[p()]), 10);
        assert_eq!(report.latest_differs.examples, ["1/p"], "older value current; same-ms tie passes; {report:?}");
        assert_eq!(report.versions_differ.count, 0);
        // A value HubSpot holds without any stored version is a difference; none on either side is not.
        let expected = [v(4, "p", "e", "set", 1)];
        let report = compare(&expected, &[], &current, &set(&[3, 4]), &set(&[p()]), 10);
        assert_eq!(
            (report.versions_differ.examples.clone(), report.latest_differs.examples),
            (vec!["4/p".to_owned()], vec!["4/p".to_owned()])
        );
    }

    #[test]
    fn only_sampled_records_and_named_properties_count() {
        let stored = [v(1, "p", "a", "x", 1), v(1, "gone", "b", "x", 1), v(9, "p", "c", "x", 1)];
        let expected = [v(1, "p", "a", "x", 1)];
        let report = compare(&expected, &stored, &BTreeMap::new(), &set(&[1]), &set(&["p".to_owned()]), 10);
        assert!(report.matches, "{report:?}");
        assert_eq!(report.pairs_compared, 1);
    }

    #[test]
    fn values_compare_as_numbers_and_instants() {
        assert!(same_value(Some("1000"), Some("1000.0")));
        assert!(same_value(Some("2026-01-02T00:00:00Z"), Some("2026-01-02T00:00:00.000Z")));
        assert!(same_value(None, Some("")));
        assert!(!same_value(Some("won"), Some("lost")));
        assert!(!same_value(Some("1"), Some("2")));
    }

    #[test]
    fn expected_versions_carry_the_pass_keys() {
        let record: CrmObject = serde_json::from_str(
            r#"{"id":"7","properties":{},"propertiesWithHistory":{"dealstage":[
                {"value":"won","timestamp":"2026-01-02T03:04:05.678Z","sourceType":"CRM_UI"},
                {"value":"won","timestamp":"2026-01-02T03:04:05.678Z","sourceType":"CRM_UI"}]}}"#,
        )
        .unwrap();
        let versions = expected_versions("deals", &[record]);
        assert_eq!(versions.len(), 2);
        assert_eq!(versions[0].record_id, 7);
        assert_eq!(versions[0].changed_at_ms, parse_instant_ms("2026-01-02T03:04:05.678Z"));
        assert_eq!(versions[1].version_id, format!("{}/2", versions[0].version_id), "repeats numbered as stored");
    }
}
