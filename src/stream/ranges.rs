//! Id ranges of a concurrent backfill, as pure position logic.
//!
//! A large backfill splits the ids above its start into disjoint ranges `(after_id,
//! through_id]`, the last one open (`through_id` unset, so records created during the backfill
//! are read too), and walks several at once, each by keyset search (`hs_object_id > after_id`
//! and `<= through_id`, ascending, a page at a time). The invariant, kept by committing every
//! page with the whole list of unfinished ranges: **every record whose id lies outside the
//! unfinished ranges' `(after_id, through_id]` is in the warehouse** (up to the backfill's
//! start). A finished range leaves the list. So the lowest unfinished `after_id` is a
//! contiguous prefix that only grows (the checkpoint's position), and a stop at any instant
//! costs at most the page in flight of each range.
//!
//! A range whose walker finishes early takes over half of the unfinished range with the most
//! records left (estimated from the density read so far), so one dense range does not leave the
//! other walkers idle. The split lowers the owner's `through_id`; a page the owner fetched
//! before the split is cut at the new bound when it is committed ([`advance`]).
//!
//! A range can also be walked by list pages (the general bucket, beside search's): HubSpot
//! documents the list cursor as "the Record ID of the next record", so a list walk can start at
//! any id. hsync relies on that only while each page proves it ([`list_page_keyed`]): a server
//! whose cursor is opaque or an offset is caught on its first page, before anything of it is
//! written, and the range goes back to search.

use serde::{Deserialize, Serialize};

/// A range of ids still to read: those in `(after_id, through_id]`, or above `after_id` when
/// `through_id` is unset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    pub after_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through_id: Option<i64>,
}

impl IdRange {
    /// Whether `id` is one of the range's ids.
    pub fn holds(&self, id: i64) -> bool {
        id > self.after_id && self.through_id.is_none_or(|t| id <= t)
    }

    /// The ids left, with `known_max` standing for the open end.
    pub fn span(&self, known_max: i64) -> i64 {
        self.through_id.unwrap_or(known_max).saturating_sub(self.after_id).max(0)
    }
}

/// Up to `n` ranges of equal id span over `(after_id, max_id]`, the last one open; one open
/// range when there is nothing to divide.
pub fn plan(after_id: i64, max_id: i64, n: usize) -> Vec<IdRange> {
    let span = max_id.saturating_sub(after_id);
    let n = i64::try_from(n.max(1)).unwrap_or(i64::MAX).min(span.max(1));
    let width = span / n;
    (0..n)
        .map(|i| IdRange {
            after_id: after_id + i * width,
            through_id: (i + 1 < n).then(|| after_id + (i + 1) * width),
        })
        .collect()
}

/// What a committed page does to its range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// The range left to read, or `None` when the range is finished.
    pub next: Option<IdRange>,
}

/// The step after a page of `ids` (any order) read for `range` as it stands now: `more` when
/// HubSpot said more records follow the page. Only the page's ids the range [`IdRange::holds`]
/// are written; an id beyond `through_id` (a page fetched before a split lowered it) means the
/// page holds every id up to the bound, so the range is finished.
pub fn advance(range: IdRange, ids: &[i64], more: bool) -> Step {
    let beyond = ids.iter().any(|id| range.through_id.is_some_and(|t| *id > t));
    let last = ids.iter().copied().filter(|id| range.holds(*id)).max();
    match last {
        Some(last) if more && !beyond => Step { next: Some(IdRange { after_id: last, ..range }) },
        _ => Step { next: None },
    }
}

/// The lowest `after_id` of `ranges`: every id at or below it is in the warehouse.
pub fn prefix(ranges: &[IdRange]) -> Option<i64> {
    ranges.iter().map(|r| r.after_id).min()
}

/// Where to split for an idle walker: the index of the range with the most records left,
/// estimated as its span times `density` (records read per id, per range, in `ranges` order),
/// and the id to split at (the middle of its span). `None` when no range has at least
/// `min_span` ids left.
pub fn split_point(ranges: &[IdRange], density: &[f64], known_max: i64, min_span: i64) -> Option<(usize, i64)> {
    let (index, range) =
        ranges.iter().enumerate().filter(|(_, r)| r.span(known_max) >= min_span.max(2)).max_by(|(i, a), (j, b)| {
            let left =
                |r: &IdRange, k: usize| r.span(known_max) as f64 * density.get(k).copied().unwrap_or(1.0).max(1e-9);
            left(a, *i).total_cmp(&left(b, *j))
        })?;
    Some((index, range.after_id + range.span(known_max) / 2))
}

/// Splits `ranges[index]` at `at`: it keeps `(after_id, at]`, and the returned range takes the
/// rest, with the old bound.
pub fn split(ranges: &mut [IdRange], index: usize, at: i64) -> IdRange {
    let range = &mut ranges[index];
    let rest = IdRange { after_id: at, through_id: range.through_id };
    range.through_id = Some(at);
    rest
}

/// What a list page's `paging.next.after` names, learned from a page that proved it keyed by
/// id: the next record's id (HubSpot's documented cursor) or the page's last one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListAfter {
    NextId,
    LastId,
}

/// What `next` names after a page whose last id is `last`; `None` when a page cannot tell
/// (the last page, an empty one, a cursor that is no id at or above the last).
pub fn list_after_meaning(last: Option<i64>, next: Option<&str>) -> Option<ListAfter> {
    let (last, next) = (last?, next?.parse::<i64>().ok()?);
    match next.cmp(&last) {
        std::cmp::Ordering::Greater => Some(ListAfter::NextId),
        std::cmp::Ordering::Equal => Some(ListAfter::LastId),
        std::cmp::Ordering::Less => None,
    }
}

/// The `after` that starts a list page of `range`: its first possible id when the cursor is
/// known to name the next record, else its start (whose record, already read, comes back and
/// is left out), so the page read again after a stop asks for the same cursor.
pub fn list_start(range: IdRange, known: Option<ListAfter>) -> i64 {
    match known {
        Some(ListAfter::NextId) => range.after_id.saturating_add(1),
        Some(ListAfter::LastId) | None => range.after_id,
    }
}

/// Whether a list page asked for at `from` (a record id, or `None` for the start) reads as
/// keyed by record id: `ids` (as listed) strictly ascending, none below `from`, and `next`
/// (the cursor HubSpot gave for the page after) an id at or above the last one: the next
/// record's id, as documented, or the last one's. Anything else (an opaque token, an offset
/// that lags the ids, an unreadable id) means the server does not walk by id, and starting a
/// range at an id could skip records.
pub fn list_page_keyed(from: Option<i64>, ids: &[Option<i64>], next: Option<&str>) -> bool {
    let Some(ids) = ids.iter().copied().collect::<Option<Vec<i64>>>() else { return false };
    let ascending = ids.windows(2).all(|w| w[0] < w[1]);
    let above_start = from.is_none_or(|from| ids.first().is_none_or(|first| *first >= from));
    let next_keyed = match (next, ids.last()) {
        (None, _) => true,
        (Some(next), last) => next.parse::<i64>().is_ok_and(|n| last.is_none_or(|last| n >= *last)),
    };
    ascending && above_start && next_keyed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(after_id: i64, through_id: Option<i64>) -> IdRange {
        IdRange { after_id, through_id }
    }

    #[test]
    fn a_plan_covers_every_id_once_and_leaves_the_top_open() {
        let ranges = plan(100, 1_000, 4);
        assert_eq!(ranges, [r(100, Some(325)), r(325, Some(550)), r(550, Some(775)), r(775, None)]);
        for id in 101..=2_000 {
            assert_eq!(ranges.iter().filter(|r| r.holds(id)).count(), 1, "id {id}");
        }
        assert!(ranges.iter().all(|r| !r.holds(100)));
        assert_eq!(plan(10, 10, 8), [r(10, None)], "nothing to divide");
        assert_eq!(plan(10, 5, 8), [r(10, None)]);
        assert_eq!(plan(0, 3, 8).len(), 3, "never an empty range");
        assert_eq!(plan(0, 1_000, 0), [r(0, None)]);
    }

    #[test]
    fn a_full_page_moves_the_range_to_its_last_id() {
        assert_eq!(advance(r(0, Some(100)), &[5, 3, 9], true).next, Some(r(9, Some(100))));
        assert_eq!(advance(r(0, None), &[5, 3, 9], true).next, Some(r(9, None)));
    }

    #[test]
    fn a_short_page_an_empty_page_or_one_past_the_bound_finishes_it() {
        assert_eq!(advance(r(0, Some(100)), &[5, 9], false).next, None);
        assert_eq!(advance(r(0, Some(100)), &[], true).next, None);
        // Fetched before a split lowered the bound to 7: 9 is the new range's.
        let cut = r(0, Some(7));
        assert_eq!(advance(cut, &[5, 6, 9], true).next, None);
        assert!(cut.holds(6) && !cut.holds(9));
    }

    #[test]
    fn the_prefix_is_the_lowest_unfinished_start() {
        assert_eq!(prefix(&[r(500, None), r(40, Some(100))]), Some(40));
        assert_eq!(prefix(&[]), None);
    }

    #[test]
    fn an_idle_walker_splits_the_range_with_the_most_records_left() {
        let mut ranges = vec![r(0, Some(1_000)), r(1_000, Some(1_200)), r(1_200, None)];
        // Same density: the widest span (the first, 1,000 ids) is split in the middle.
        assert_eq!(split_point(&ranges, &[1.0, 1.0, 1.0], 1_500, 10), Some((0, 500)));
        // The second range is 20 times denser: it has the most records left.
        assert_eq!(split_point(&ranges, &[0.01, 1.0, 0.01], 1_500, 10), Some((1, 1_100)));
        let rest = split(&mut ranges, 1, 1_100);
        assert_eq!((ranges[1], rest), (r(1_000, Some(1_100)), r(1_100, Some(1_200))));
        // The open range's span runs to the known maximum.
        assert_eq!(split_point(&[r(1_200, None)], &[1.0], 1_500, 10), Some((0, 1_350)));
        let mut open = vec![r(1_200, None)];
        assert_eq!(split(&mut open, 0, 1_350), r(1_350, None));
        assert_eq!(open, [r(1_200, Some(1_350))]);
    }

    #[test]
    fn ranges_too_narrow_are_not_split() {
        assert_eq!(split_point(&[r(0, Some(5))], &[1.0], 100, 10), None);
        assert_eq!(split_point(&[r(200, None)], &[1.0], 100, 10), None, "past the known maximum");
        assert_eq!(split_point(&[], &[], 100, 10), None);
    }

    #[test]
    fn a_list_page_is_keyed_by_id_only_when_it_proves_it() {
        let ids = |v: &[i64]| v.iter().map(|i| Some(*i)).collect::<Vec<_>>();
        // HubSpot's documented cursor: the next record's id; also the last one's.
        assert!(list_page_keyed(Some(100), &ids(&[100, 103, 150]), Some("151")));
        assert!(list_page_keyed(Some(100), &ids(&[101, 103, 150]), Some("150")));
        assert!(list_page_keyed(None, &ids(&[1, 2]), None), "the last page");
        assert!(list_page_keyed(Some(7), &[], None), "nothing at or above the start");
        // An opaque token, an offset behind the ids (deleted records below), a page out of
        // order or below its start, an id that does not read.
        assert!(!list_page_keyed(None, &ids(&[1, 2]), Some("NTI1Cg%3D%3D")));
        assert!(!list_page_keyed(Some(100), &ids(&[120, 180, 240]), Some("200")));
        assert!(!list_page_keyed(None, &ids(&[5, 3]), Some("9")));
        assert!(!list_page_keyed(Some(100), &ids(&[40, 120]), Some("121")));
        assert!(!list_page_keyed(None, &[Some(1), None], Some("9")));
    }

    #[test]
    fn a_list_page_tells_what_its_cursor_names_and_where_a_range_starts() {
        assert_eq!(list_after_meaning(Some(150), Some("151")), Some(ListAfter::NextId));
        assert_eq!(list_after_meaning(Some(150), Some("150")), Some(ListAfter::LastId));
        assert_eq!(list_after_meaning(Some(150), Some("90")), None);
        assert_eq!(list_after_meaning(Some(150), None), None, "the last page");
        assert_eq!(list_after_meaning(None, Some("3")), None);
        assert_eq!(list_start(r(40, Some(90)), Some(ListAfter::NextId)), 41);
        assert_eq!(list_start(r(40, Some(90)), Some(ListAfter::LastId)), 40);
        assert_eq!(list_start(r(40, None), None), 40);
    }

    #[test]
    fn ranges_round_trip_through_json() {
        let ranges = vec![r(1, Some(2)), r(2, None)];
        let json = serde_json::to_string(&ranges).unwrap();
        assert_eq!(json, r#"[{"after_id":1,"through_id":2},{"after_id":2}]"#);
        assert_eq!(serde_json::from_str::<Vec<IdRange>>(&json).unwrap(), ranges);
    }
}
