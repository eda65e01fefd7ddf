//! CDC cursor arithmetic, as pure functions.
//!
//! A CDC pass reads records in ascending last-modified order without ever paging by offset:
//! every query starts at the front of what is left (`cursor >= c`), so HubSpot's 10,000-result
//! cap cannot be reached and records modified while paging cannot shift an offset past unseen
//! rows. A full page goes on past its last millisecond `c` while leaving out the records of `c`
//! it already read (`cursor > c`, or `cursor = c and id not in those`), so a page boundary
//! inside a busy millisecond re-reads nothing. When a whole page shares one millisecond (a bulk
//! update), that millisecond is walked by `hs_object_id` (`cursor = c and id > last`) before
//! moving on (`cursor > c`). The durable
//! watermark never passes `pass start - settle_lag`, so rows HubSpot's search index had not
//! caught up with are read again on the next pass; bounding it by when the pass started, not
//! by the time of each page, keeps that true for a pass continued long after a crash.

use serde::{Deserialize, Serialize};

/// The most ids of one millisecond a query leaves out with `NOT_IN`. HubSpot documents no limit
/// on the values of `IN`/`NOT_IN`; this keeps the request small. A page boundary inside a
/// millisecond holding more read records than this re-reads that millisecond instead.
pub const MAX_SEEN: usize = 100;

/// Where the next CDC query starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum CdcPosition {
    /// Records with `cursor >= from_ms` (in cursor order).
    From { from_ms: i64 },
    /// Records with `cursor > at_ms`, or `cursor == at_ms` and an id not in `seen` (the records
    /// of `at_ms` already read), in cursor order.
    Past { at_ms: i64, seen: Vec<i64> },
    /// Records with `cursor > after_ms`, after a tie walk finished that millisecond.
    After { after_ms: i64 },
    /// Records with `cursor == at_ms` and `hs_object_id > after_id` (in id order).
    Tie { at_ms: i64, after_id: i64 },
}

impl CdcPosition {
    /// The records this position reads, in words for messages.
    pub fn describe(&self) -> String {
        let at =
            |ms: i64| chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.to_rfc3339());
        match self {
            CdcPosition::From { from_ms } => format!("records modified from {}", at(*from_ms)),
            CdcPosition::Past { at_ms, seen } => {
                format!("records modified from {} (past {} already read)", at(*at_ms), seen.len())
            }
            CdcPosition::After { after_ms } => format!("records modified after {}", at(*after_ms)),
            CdcPosition::Tie { at_ms, after_id } => {
                format!("records modified at {} with ids above {after_id}", at(*at_ms))
            }
        }
    }
}

/// What one page said: its records' `(cursor, id)` in the order HubSpot returned them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageSummary {
    pub keys: Vec<(i64, i64)>,
    /// Whether the page was full (`limit` records), i.e. more may follow.
    pub full: bool,
}

/// The position after a page, or `None` when the pass has read everything.
pub fn next_position(position: &CdcPosition, page: &PageSummary) -> Option<CdcPosition> {
    match *position {
        CdcPosition::Tie { at_ms, after_id } => {
            if page.full {
                let last = page.keys.iter().map(|k| k.1).max().unwrap_or(after_id).max(after_id);
                Some(CdcPosition::Tie { at_ms, after_id: last })
            } else {
                Some(CdcPosition::After { after_ms: at_ms })
            }
        }
        CdcPosition::From { .. } | CdcPosition::Past { .. } | CdcPosition::After { .. } => {
            if !page.full {
                return None;
            }
            let min = page.keys.iter().map(|k| k.0).min()?;
            let max = page.keys.iter().map(|k| k.0).max()?;
            if min == max {
                // A full page on one millisecond: walk it by id from the start.
                return Some(CdcPosition::Tie { at_ms: max, after_id: 0 });
            }
            // More records may share `max`: go on past the ones this page read.
            let mut seen: Vec<i64> = page.keys.iter().filter(|k| k.0 == max).map(|k| k.1).collect();
            if seen.len() > MAX_SEEN {
                return Some(CdcPosition::From { from_ms: max });
            }
            seen.sort_unstable();
            seen.dedup();
            Some(CdcPosition::Past { at_ms: max, seen })
        }
    }
}

/// The watermark to persist: everything strictly before it has been read. It never passes
/// `pass_started_ms - settle_lag` (a record modified before that was in the search index for
/// every query of the pass, even one continued after a crash; later ones may not have been),
/// and never moves backwards.
pub fn durable_watermark(
    previous_ms: i64,
    position: Option<&CdcPosition>,
    read_through_ms: i64,
    pass_started_ms: i64,
    settle_lag_ms: i64,
) -> i64 {
    let reached = match position {
        Some(CdcPosition::From { from_ms }) => *from_ms,
        // A millisecond only partly read: restart from it.
        Some(CdcPosition::Tie { at_ms, .. } | CdcPosition::Past { at_ms, .. }) => *at_ms,
        Some(CdcPosition::After { after_ms }) => after_ms + 1,
        None => read_through_ms,
    };
    reached.min(pass_started_ms - settle_lag_ms).max(previous_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(keys: &[(i64, i64)], full: bool) -> PageSummary {
        PageSummary { keys: keys.to_vec(), full }
    }

    #[test]
    fn a_partial_page_ends_the_pass() {
        assert_eq!(next_position(&CdcPosition::From { from_ms: 0 }, &page(&[(5, 1)], false)), None);
        let past = CdcPosition::Past { at_ms: 5, seen: vec![1] };
        assert_eq!(next_position(&past, &page(&[(6, 3)], false)), None);
    }

    #[test]
    fn a_full_page_goes_on_past_the_records_of_its_last_millisecond_it_read() {
        let next = next_position(&CdcPosition::From { from_ms: 0 }, &page(&[(5, 1), (7, 9), (7, 2)], true));
        assert_eq!(next, Some(CdcPosition::Past { at_ms: 7, seen: vec![2, 9] }));
        let after = next_position(&next.unwrap(), &page(&[(7, 4), (8, 1)], true));
        assert_eq!(after, Some(CdcPosition::Past { at_ms: 8, seen: vec![1] }), "only the new last millisecond's ids");
    }

    #[test]
    fn a_millisecond_with_more_read_records_than_not_in_takes_is_read_again() {
        let keys: Vec<(i64, i64)> =
            std::iter::once((5, 1)).chain((0..=MAX_SEEN as i64).map(|i| (7, 100 + i))).collect();
        assert_eq!(
            next_position(&CdcPosition::From { from_ms: 0 }, &page(&keys, true)),
            Some(CdcPosition::From { from_ms: 7 })
        );
    }

    #[test]
    fn a_full_page_on_one_millisecond_is_walked_by_id_then_left() {
        let start = next_position(&CdcPosition::From { from_ms: 0 }, &page(&[(7, 9), (7, 2)], true));
        assert_eq!(start, Some(CdcPosition::Tie { at_ms: 7, after_id: 0 }));
        let walking = next_position(start.as_ref().unwrap(), &page(&[(7, 2), (7, 9)], true));
        assert_eq!(walking, Some(CdcPosition::Tie { at_ms: 7, after_id: 9 }));
        let done = next_position(walking.as_ref().unwrap(), &page(&[(7, 11)], false));
        assert_eq!(done, Some(CdcPosition::After { after_ms: 7 }));
        // The rest of a busy millisecond, past the records already read, is walked the same way.
        let rest = next_position(&CdcPosition::Past { at_ms: 7, seen: vec![2] }, &page(&[(7, 9), (7, 3)], true));
        assert_eq!(rest, Some(CdcPosition::Tie { at_ms: 7, after_id: 0 }));
    }

    #[test]
    fn watermark_respects_the_settle_lag_and_never_moves_back() {
        let now = 1_000_000;
        assert_eq!(durable_watermark(0, None, 999_999, now, 60_000), 940_000);
        assert_eq!(durable_watermark(0, Some(&CdcPosition::From { from_ms: 500 }), 0, now, 60_000), 500);
        assert_eq!(durable_watermark(0, Some(&CdcPosition::Past { at_ms: 500, seen: vec![1] }), 0, now, 60_000), 500);
        assert_eq!(durable_watermark(0, Some(&CdcPosition::After { after_ms: 500 }), 0, now, 60_000), 501);
        assert_eq!(durable_watermark(700, Some(&CdcPosition::Tie { at_ms: 500, after_id: 3 }), 0, now, 60_000), 700);
    }

    #[test]
    fn a_pass_continued_later_stays_behind_its_own_start() {
        // The pass began at 1,000,000 and is continued an hour later: what its first pages could
        // not see yet (modified after 940,000) must still be re-read by the next pass.
        let started = 1_000_000;
        let continued_far_ahead = CdcPosition::From { from_ms: started + 3_600_000 };
        assert_eq!(durable_watermark(0, Some(&continued_far_ahead), 0, started, 60_000), 940_000);
        assert_eq!(durable_watermark(0, None, started + 3_600_000, started, 60_000), 940_000);
    }
}
