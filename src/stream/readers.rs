//! Which of HubSpot's buckets a large backfill reads its ranges with, as a plain decision:
//! search alone, or search and list pages at once. Search (5 requests a second of 200
//! records) and the general ten-second window (list pages of 100) are limited apart, so on
//! Professional the two together read about three times what search reads alone, for more
//! calls per record (a list page costs one call per 100 records, two when the property names
//! do not fit in its URL). The backfill and `hsync plan` both decide through [`choose`], so the
//! plan shows what the backfill does.

use std::time::Duration;

/// Records per search page and per list page (HubSpot's maxima).
const SEARCH_PAGE: f64 = 200.0;
const LIST_PAGE: f64 = 100.0;
/// Walkers of any kind at most.
const WALKERS_MAX: usize = 64;

/// What the decision is made from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Inputs {
    /// Records the walk has left to read.
    pub records: u64,
    /// Calls a list page costs: 1, or 2 when the property names do not fit in the list URL.
    pub list_calls_per_page: u64,
    /// The time between two requests of each bucket as hsync spaces them.
    pub search_spacing: Duration,
    pub general_spacing: Duration,
    /// Calls the daily budget has left today; `None` when it is unlimited.
    pub budget_left: Option<u64>,
    /// Search walkers (`sync.backfill_concurrency`).
    pub walkers: usize,
    /// Whether the configuration lets the backfill use the general bucket
    /// (`sync.backfill_list`).
    pub list_allowed: bool,
}

/// Why a backfill reads with search alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchAlone {
    /// `sync.backfill_list` is off.
    Configured,
    /// Both buckets would need more calls than the daily budget has left today, and search
    /// alone, at half the calls per record, needs fewer.
    Budget { both: u64, search: u64, left: u64 },
}

/// The readers of a walk and what they are expected to do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    pub search_walkers: usize,
    /// Walkers reading list pages; 0 with search alone.
    pub list_walkers: usize,
    /// `Some` when the walk reads with search alone, and why.
    pub search_alone: Option<SearchAlone>,
    /// Records a second the buckets read allow (HubSpot answering at once).
    pub records_per_second: f64,
    /// The searches and list calls the walk takes.
    pub search_calls: u64,
    pub list_calls: u64,
}

impl Choice {
    /// `search + list` or `search`, for logs and `hsync plan`.
    pub fn label(&self) -> &'static str {
        if self.list_walkers > 0 {
            "search+list"
        } else {
            "search"
        }
    }

    /// Why search alone, in words; `None` when both buckets read.
    pub fn reason(&self) -> Option<String> {
        self.search_alone.map(|why| match why {
            SearchAlone::Configured => "sync.backfill_list is off".to_owned(),
            SearchAlone::Budget { both, search, left } => format!(
                "both buckets would take {both} calls and the daily budget has {left} left today; search alone takes {search}"
            ),
        })
    }
}

/// The list walkers beside `search_walkers`: as many, and twice as many when a list page takes
/// two calls (it then takes twice as long, and twice the walkers keep the bucket full).
pub fn list_walkers(search_walkers: usize, list_calls_per_page: u64) -> usize {
    (search_walkers.clamp(1, WALKERS_MAX) * list_calls_per_page.clamp(1, 2) as usize).min(WALKERS_MAX)
}

fn per_second(spacing: Duration) -> f64 {
    1.0 / spacing.as_secs_f64().max(1e-6)
}

/// The readers for `inputs`: both buckets, each filled, unless the configuration or today's
/// budget says otherwise. The list walkers' share of the records is what their bucket reads
/// of the total, since every walker takes a new range as soon as it finishes one.
pub fn choose(inputs: Inputs) -> Choice {
    let search_walkers = inputs.walkers.clamp(1, WALKERS_MAX);
    let records = inputs.records as f64;
    let cpp = inputs.list_calls_per_page.max(1);
    let search_rate = per_second(inputs.search_spacing) * SEARCH_PAGE;
    let list_rate = per_second(inputs.general_spacing) * LIST_PAGE / cpp as f64;
    let search_alone_calls = (records / SEARCH_PAGE).ceil() as u64;
    let list_share = list_rate / (search_rate + list_rate);
    let search_calls = (records * (1.0 - list_share) / SEARCH_PAGE).ceil() as u64;
    let list_calls = (records * list_share / LIST_PAGE).ceil() as u64 * cpp;
    let alone = |why| Choice {
        search_walkers,
        list_walkers: 0,
        search_alone: Some(why),
        records_per_second: search_rate,
        search_calls: search_alone_calls,
        list_calls: 0,
    };
    if !inputs.list_allowed {
        return alone(SearchAlone::Configured);
    }
    let both = search_calls + list_calls;
    if let Some(left) = inputs.budget_left.filter(|left| both > *left) {
        return alone(SearchAlone::Budget { both, search: search_alone_calls, left });
    }
    let list_walkers = list_walkers(search_walkers, cpp);
    Choice {
        search_walkers,
        list_walkers,
        search_alone: None,
        records_per_second: search_rate + list_rate,
        search_calls,
        list_calls,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Professional: searches 210 ms apart, general calls 10.2 s / 190 apart.
    fn professional(records: u64, cpp: u64, budget_left: Option<u64>) -> Inputs {
        Inputs {
            records,
            list_calls_per_page: cpp,
            search_spacing: Duration::from_millis(210),
            general_spacing: Duration::from_nanos(10_200_000_000 / 190),
            budget_left,
            walkers: 8,
            list_allowed: true,
        }
    }

    #[test]
    fn both_buckets_read_when_allowed_and_the_budget_holds() {
        let choice = choose(professional(1_000_000, 1, None));
        assert_eq!((choice.label(), choice.search_walkers, choice.list_walkers), ("search+list", 8, 8));
        assert!(choice.reason().is_none());
        // 952 records a second from search and 1,863 from list pages.
        assert_eq!(choice.records_per_second.round(), 2_815.0);
        // A third of the records by search at 200 a call, two thirds by list at 100 a call.
        assert_eq!((choice.search_calls, choice.list_calls), (1_692, 6_617));
    }

    #[test]
    fn wide_properties_double_the_list_walkers_and_halve_their_rate() {
        let choice = choose(professional(1_000_000, 2, None));
        assert_eq!(choice.list_walkers, 16);
        assert_eq!(choice.records_per_second.round(), 1_884.0);
        assert_eq!((choice.search_calls, choice.list_calls), (2_528, 9_890));
    }

    #[test]
    fn a_tight_budget_falls_back_to_search_alone_and_says_why() {
        let choice = choose(professional(1_000_000, 1, Some(6_000)));
        assert_eq!(
            (choice.label(), choice.list_walkers, choice.search_calls, choice.list_calls),
            ("search", 0, 5_000, 0)
        );
        assert_eq!(choice.search_alone, Some(SearchAlone::Budget { both: 8_309, search: 5_000, left: 6_000 }));
        assert!(choice.reason().unwrap().contains("has 6000 left today"));
        assert_eq!(choose(professional(1_000_000, 1, Some(8_309))).list_walkers, 8, "exactly enough");
    }

    #[test]
    fn the_configuration_can_keep_the_general_bucket_free() {
        let choice = choose(Inputs { list_allowed: false, ..professional(10, 1, None) });
        assert_eq!((choice.list_walkers, choice.search_alone), (0, Some(SearchAlone::Configured)));
        assert_eq!(choice.reason().unwrap(), "sync.backfill_list is off");
        assert_eq!(choice.records_per_second.round(), 952.0);
    }
}
