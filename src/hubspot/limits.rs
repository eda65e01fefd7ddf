//! The two request-rate buckets every task shares: **search** (HubSpot's per-second search
//! limit) and **general** (the tier's rolling ten-second window), as governor GCRA limiters.
//!
//! HubSpot counts a rolling window at its own clock, so the limiters space requests evenly with a
//! margin for network jitter instead of allowing bursts: with spacing `(window + margin) / max`,
//! no window HubSpot can observe holds more than `max` requests.

use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Which bucket a request draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// `POST .../search`.
    Search,
    /// Everything else.
    General,
}

impl Bucket {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Bucket::Search => "search",
            Bucket::General => "general",
        }
    }
}

/// A limit of `max` requests per rolling `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowLimit {
    pub max: u32,
    pub window: Duration,
}

impl WindowLimit {
    /// HubSpot's search limit: 5 requests per second per portal.
    pub const SEARCH: WindowLimit = WindowLimit { max: 5, window: Duration::from_secs(1) };
    /// The Free/Starter tier's ten-second limit, assumed until the tier is configured or learned.
    pub const STARTER: WindowLimit = WindowLimit { max: 100, window: Duration::from_secs(10) };

    /// The time between two requests of this bucket, given `margin` of timing jitter:
    /// `(window + margin) / max`, rounded up (rounding down would let one extra request into a
    /// window). `hsync plan` estimates durations with it.
    pub fn spacing(self, margin: Duration) -> Duration {
        let nanos = (self.window + margin).as_nanos().div_ceil(u128::from(self.max.max(1)));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The GCRA quota that keeps every observed window at or under `max`, given `margin` of
    /// timing jitter between our clock and HubSpot's.
    pub fn quota(self, margin: Duration) -> Quota {
        Quota::with_period(self.spacing(margin).max(Duration::from_micros(1)))
            .expect("invariant: period is positive")
            .allow_burst(NonZeroU32::MIN)
    }
}

/// Settings of the two buckets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateSettings {
    pub search: WindowLimit,
    /// `None` learns the limit from `X-HubSpot-RateLimit-Max` and `-Interval-Milliseconds`.
    pub general: Option<WindowLimit>,
    pub search_margin: Duration,
    pub general_margin: Duration,
}

impl Default for RateSettings {
    fn default() -> Self {
        RateSettings {
            search: WindowLimit::SEARCH,
            general: None,
            search_margin: Duration::from_millis(50),
            general_margin: Duration::from_millis(200),
        }
    }
}

/// The shared buckets.
#[derive(Debug)]
pub struct RateLimits {
    settings: RateSettings,
    search: DefaultDirectRateLimiter,
    general: RwLock<(WindowLimit, Arc<DefaultDirectRateLimiter>)>,
}

impl RateLimits {
    pub fn new(settings: RateSettings) -> RateLimits {
        let general = settings.general.unwrap_or(WindowLimit::STARTER);
        RateLimits {
            search: RateLimiter::direct(settings.search.quota(settings.search_margin)),
            general: RwLock::new((general, Arc::new(RateLimiter::direct(general.quota(settings.general_margin))))),
            settings,
        }
    }

    /// Waits until the bucket admits one request.
    pub async fn acquire(&self, bucket: Bucket) {
        match bucket {
            Bucket::Search => self.search.until_ready().await,
            Bucket::General => {
                let limiter = Arc::clone(&self.read().1);
                limiter.until_ready().await;
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, (WindowLimit, Arc<DefaultDirectRateLimiter>)> {
        self.general.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The general limit in force.
    pub fn general_limit(&self) -> WindowLimit {
        self.read().0
    }

    /// Adopts the tier HubSpot reports, unless the operator configured one.
    pub fn learn(&self, max: u32, interval: Duration) {
        if self.settings.general.is_some() || max == 0 || interval.is_zero() {
            return;
        }
        let limit = WindowLimit { max, window: interval };
        if self.read().0 == limit {
            return;
        }
        let mut general = self.general.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if general.0 != limit {
            tracing::info!(max, interval_ms = interval.as_millis() as u64, "learned the portal's rate limit");
            *general = (limit, Arc::new(RateLimiter::direct(limit.quota(self.settings.general_margin))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_keeps_every_window_at_or_under_the_limit() {
        let q = WindowLimit { max: 190, window: Duration::from_secs(10) }.quota(Duration::from_millis(200));
        assert_eq!(q.burst_size().get(), 1);
        let period = q.replenish_interval();
        // Evenly spaced requests: any half-open window of `window + margin` holds at most `max`.
        let per_window = (Duration::from_millis(10_200).as_nanos()).div_ceil(period.as_nanos());
        assert!(per_window <= 190, "{per_window}");
        let s = WindowLimit::SEARCH.quota(Duration::from_millis(50));
        assert_eq!(s.replenish_interval(), Duration::from_millis(210));
    }

    #[test]
    fn learning_replaces_the_assumed_tier_but_not_a_configured_one() {
        let learned = RateLimits::new(RateSettings::default());
        assert_eq!(learned.general_limit(), WindowLimit::STARTER);
        learned.learn(190, Duration::from_secs(10));
        assert_eq!(learned.general_limit().max, 190);
        let fixed = WindowLimit { max: 50, window: Duration::from_secs(10) };
        let configured = RateLimits::new(RateSettings { general: Some(fixed), ..RateSettings::default() });
        configured.learn(190, Duration::from_secs(10));
        assert_eq!(configured.general_limit(), fixed);
    }
}
