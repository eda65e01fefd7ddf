//! What the receiver took in, as counts: kept in memory by the daemon for `/status`, and folded
//! into the `webhooks:events` checkpoint so `hsync status` shows them after a restart and from
//! another process. Folding adds what arrived since the last fold ([`Receipts::since`]), so a
//! count is never added twice however often it is folded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Deliveries and events the receiver accepted and refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Receipts {
    /// Deliveries stored and answered 2xx.
    pub deliveries_accepted: u64,
    /// Events stored (new ones; duplicates of stored events are not).
    pub events_accepted: u64,
    /// Events HubSpot sent again (a retry or a duplicate), stored once.
    pub events_duplicate: u64,
    /// Refused deliveries by reason (`bad_signature`, `stale`, `replay`, `too_large`, ...).
    pub deliveries_rejected: BTreeMap<String, u64>,
}

impl Receipts {
    /// What arrived between `earlier` (a snapshot of the same counts) and `self`.
    pub fn since(&self, earlier: &Receipts) -> Receipts {
        let rejected = self
            .deliveries_rejected
            .iter()
            .map(|(reason, n)| {
                (reason.clone(), n.saturating_sub(earlier.deliveries_rejected.get(reason).copied().unwrap_or(0)))
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        Receipts {
            deliveries_accepted: self.deliveries_accepted.saturating_sub(earlier.deliveries_accepted),
            events_accepted: self.events_accepted.saturating_sub(earlier.events_accepted),
            events_duplicate: self.events_duplicate.saturating_sub(earlier.events_duplicate),
            deliveries_rejected: rejected,
        }
    }

    /// Adds `more` to these counts.
    pub fn add(&mut self, more: &Receipts) {
        self.deliveries_accepted += more.deliveries_accepted;
        self.events_accepted += more.events_accepted;
        self.events_duplicate += more.events_duplicate;
        for (reason, n) in &more.deliveries_rejected {
            *self.deliveries_rejected.entry(reason.clone()).or_default() += n;
        }
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        *self == Receipts::default()
    }

    /// Deliveries refused, every reason together.
    pub fn deliveries_rejected_total(&self) -> u64 {
        self.deliveries_rejected.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipts(accepted: u64, rejected: &[(&str, u64)]) -> Receipts {
        Receipts {
            deliveries_accepted: accepted,
            events_accepted: accepted * 10,
            events_duplicate: accepted,
            deliveries_rejected: rejected.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect(),
        }
    }

    #[test]
    fn folding_what_arrived_since_the_last_fold_counts_everything_once() {
        let mut persisted = receipts(5, &[("stale", 1)]);
        let first = receipts(2, &[("stale", 1)]);
        let later = receipts(3, &[("stale", 1), ("bad_signature", 4)]);
        persisted.add(&first.since(&Receipts::default()));
        persisted.add(&later.since(&first));
        assert_eq!(persisted, receipts(8, &[("stale", 2), ("bad_signature", 4)]));
        assert!(later.since(&later).is_empty(), "nothing new: nothing to fold");
        assert_eq!(persisted.deliveries_rejected_total(), 6);
    }

    #[test]
    fn a_checkpoint_from_before_the_counts_reads_as_none() {
        let read: Receipts = serde_json::from_str("{}").unwrap();
        assert!(read.is_empty());
    }
}
