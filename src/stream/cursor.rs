//! CDC cursor arithmetic, as pure functions.
//!
//! A CDC pass reads records in ascending last-modified order without ever paging by offset:
//! every query starts at the front of what is left (`cursor >= c`), so HubSpot's 10,000-result
//! cap cannot be reached and records modified while paging cannot shift an offset past unseen
//! rows. When a whole page shares one millisecond (a bulk update), that millisecond is walked by
//! `hs_object_id` (`cursor = c and id > last`) before moving on (`cursor > c`). The durable
//! watermark never passes `pass start - settle_lag`, so rows HubSpot's search index had not
//! caught up with are read again on the next pass; bounding it by when the pass started, not
//! by the time of each page, keeps that true for a pass continued long after a crash.

use serde::{Deserialize, Serialize};

/// Where the next CDC query starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum CdcPosition {
    /// Records with `cursor >= from_ms` (in cursor order).
    From { from_ms: i64 },
    /// Records with `cursor > after_ms`, after a tie walk finished that millisecond.
    After { after_ms: i64 },
    /// Records with `cursor == at_ms` and `hs_object_id > after_id` (in id order).
    Tie { at_ms: i64, after_id: i64 },
}

/// What one page said: its records' `(cursor, id)` in the order HubSpot returned them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageSummary {
    pub keys: Vec<(i64, i64)>,
    /// Whether the page was full (`limit` records), i.e. more may follow.
    pub full: bool,
}

/// The position after a page, or `None` when the pass has read everything.
pub fn next_position(position: CdcPosition, page: &PageSummary) -> Option<CdcPosition> {
    match position {
        CdcPosition::Tie { at_ms, after_id } => {
            if page.full {
                let last = page.keys.iter().map(|k| k.1).max().unwrap_or(after_id).max(after_id);
                Some(CdcPosition::Tie { at_ms, after_id: last })
            } else {
                Some(CdcPosition::After { after_ms: at_ms })
            }
        }
        CdcPosition::From { .. } | CdcPosition::After { .. } => {
            if !page.full {
                return None;
            }
            let min = page.keys.iter().map(|k| k.0).min()?;
            let max = page.keys.iter().map(|k| k.0).max()?;
            if min == max {
                // A full page on one millisecond: walk it by id from the start.
                Some(CdcPosition::Tie { at_ms: max, after_id: 0 })
            } else {
                // Re-read `max` itself: more records may share it.
                Some(CdcPosition::From { from_ms: max })
            }
        }
    }
}

/// The watermark to persist: everything strictly before it has been read. It never passes
/// `pass_started_ms - settle_lag` (a record modified before that was in the search index for
/// every query of the pass, even one continued after a crash; later ones may not have been),
/// and never moves backwards.
pub fn durable_watermark(
    previous_ms: i64,
    position: Option<CdcPosition>,
    read_through_ms: i64,
    pass_started_ms: i64,
    settle_lag_ms: i64,
) -> i64 {
    let reached = match position {
        Some(CdcPosition::From { from_ms }) => from_ms,
        // The tie millisecond is only partly read: restart from it.
        Some(CdcPosition::Tie { at_ms, .. }) => at_ms,
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
        assert_eq!(next_position(CdcPosition::From { from_ms: 0 }, &page(&[(5, 1)], false)), None);
    }

    #[test]
    fn a_full_page_restarts_at_its_last_millisecond() {
        let next = next_position(CdcPosition::From { from_ms: 0 }, &page(&[(5, 1), (7, 9), (7, 2)], true));
        assert_eq!(next, Some(CdcPosition::From { from_ms: 7 }));
    }

    #[test]
    fn a_full_page_on_one_millisecond_is_walked_by_id_then_left() {
        let start = next_position(CdcPosition::From { from_ms: 0 }, &page(&[(7, 9), (7, 2)], true));
        assert_eq!(start, Some(CdcPosition::Tie { at_ms: 7, after_id: 0 }));
        let walking = next_position(start.unwrap(), &page(&[(7, 2), (7, 9)], true));
        assert_eq!(walking, Some(CdcPosition::Tie { at_ms: 7, after_id: 9 }));
        let done = next_position(walking.unwrap(), &page(&[(7, 11)], false));
        assert_eq!(done, Some(CdcPosition::After { after_ms: 7 }));
    }

    #[test]
    fn watermark_respects_the_settle_lag_and_never_moves_back() {
        let now = 1_000_000;
        assert_eq!(durable_watermark(0, None, 999_999, now, 60_000), 940_000);
        assert_eq!(durable_watermark(0, Some(CdcPosition::From { from_ms: 500 }), 0, now, 60_000), 500);
        assert_eq!(durable_watermark(0, Some(CdcPosition::After { after_ms: 500 }), 0, now, 60_000), 501);
        assert_eq!(durable_watermark(700, Some(CdcPosition::Tie { at_ms: 500, after_id: 3 }), 0, now, 60_000), 700);
    }

    #[test]
    fn a_pass_continued_later_stays_behind_its_own_start() {
        // The pass began at 1,000,000 and is continued an hour later: what its first pages could
        // not see yet (modified after 940,000) must still be re-read by the next pass.
        let started = 1_000_000;
        let continued_far_ahead = Some(CdcPosition::From { from_ms: started + 3_600_000 });
        assert_eq!(durable_watermark(0, continued_far_ahead, 0, started, 60_000), 940_000);
        assert_eq!(durable_watermark(0, None, started + 3_600_000, started, 60_000), 940_000);
    }
}
