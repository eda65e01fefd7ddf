//! The request-rate buckets every task shares: **search** (HubSpot's per-second search limit),
//! **general** (the tier's rolling ten-second window) and **associations** (the associations
//! v4 batch and label endpoints' own ten-second window), as governor GCRA limiters. The two
//! windows are learned from the `X-HubSpot-RateLimit-*` headers of their own responses.
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
    /// The associations v4 batch reads and labels (`/crm/v4/associations/...`), which HubSpot
    /// limits apart from the general window.
    Associations,
    /// Everything else.
    General,
}

impl Bucket {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Bucket::Search => "search",
            Bucket::Associations => "associations",
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
    /// The Free/Starter tier's association limit (100 per 10 s; 150 on Professional and
    /// Enterprise), assumed until learned from an association response.
    pub const ASSOCIATIONS_STARTER: WindowLimit = WindowLimit { max: 100, window: Duration::from_secs(10) };

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
            // 50 ms let a search through into a second already holding five when a loaded
            // host delayed one request more than the next (a 429 in a test under CI load);
            // real networks jitter more than loopback.
            search_margin: Duration::from_millis(100),
            general_margin: Duration::from_millis(200),
        }
    }
}

/// A rolling-window bucket whose limit is configured or learned from HubSpot's headers.
#[derive(Debug)]
struct WindowBucket {
    configured: bool,
    margin: Duration,
    current: RwLock<(WindowLimit, Arc<DefaultDirectRateLimiter>)>,
}

impl WindowBucket {
    fn new(configured: Option<WindowLimit>, assumed: WindowLimit, margin: Duration) -> WindowBucket {
        let limit = configured.unwrap_or(assumed);
        WindowBucket {
            configured: configured.is_some(),
            margin,
            current: RwLock::new((limit, Arc::new(RateLimiter::direct(limit.quota(margin))))),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, (WindowLimit, Arc<DefaultDirectRateLimiter>)> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn acquire(&self) {
        let limiter = Arc::clone(&self.read().1);
        limiter.until_ready().await;
    }

    /// Adopts `limit` unless one was configured; returns whether it changed.
    fn learn(&self, limit: WindowLimit) -> bool {
        if self.configured || limit.max == 0 || limit.window.is_zero() || self.read().0 == limit {
            return false;
        }
        let mut current = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.0 == limit {
            return false;
        }
        *current = (limit, Arc::new(RateLimiter::direct(limit.quota(self.margin))));
        true
    }
}

/// The shared buckets.
#[derive(Debug)]
pub struct RateLimits {
    search: DefaultDirectRateLimiter,
    search_spacing: Duration,
    general: WindowBucket,
    associations: WindowBucket,
}

impl RateLimits {
    pub fn new(settings: RateSettings) -> RateLimits {
        RateLimits {
            search: RateLimiter::direct(settings.search.quota(settings.search_margin)),
            search_spacing: settings.search.spacing(settings.search_margin),
            general: WindowBucket::new(settings.general, WindowLimit::STARTER, settings.general_margin),
            associations: WindowBucket::new(None, WindowLimit::ASSOCIATIONS_STARTER, settings.general_margin),
        }
    }

    /// Waits until the bucket admits one request.
    pub async fn acquire(&self, bucket: Bucket) {
        match bucket {
            Bucket::Search => self.search.until_ready().await,
            Bucket::Associations => self.associations.acquire().await,
            Bucket::General => self.general.acquire().await,
        }
    }

    /// The general limit in force.
    pub fn general_limit(&self) -> WindowLimit {
        self.general.read().0
    }

    /// The time between two requests `bucket` admits, with the limit in force.
    pub fn spacing(&self, bucket: Bucket) -> Duration {
        match bucket {
            Bucket::Search => self.search_spacing,
            Bucket::Associations => self.associations.read().0.spacing(self.associations.margin),
            Bucket::General => self.general.read().0.spacing(self.general.margin),
        }
    }

    /// The association limit in force.
    pub fn association_limit(&self) -> WindowLimit {
        self.associations.read().0
    }

    /// Adopts the window HubSpot reports on a response of `bucket`, unless the operator
    /// configured the general one. Search responses carry no such headers.
    pub fn learn(&self, bucket: Bucket, max: u32, interval: Duration) {
        let limit = WindowLimit { max, window: interval };
        let learned = match bucket {
            Bucket::Search => false,
            Bucket::Associations => self.associations.learn(limit),
            Bucket::General => self.general.learn(limit),
        };
        if learned {
            let bucket = bucket.label();
            tracing::info!(bucket, max, interval_ms = interval.as_millis() as u64, "learned the portal's rate limit");
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
        learned.learn(Bucket::General, 190, Duration::from_secs(10));
        assert_eq!(learned.general_limit().max, 190);
        let fixed = WindowLimit { max: 50, window: Duration::from_secs(10) };
        let configured = RateLimits::new(RateSettings { general: Some(fixed), ..RateSettings::default() });
        configured.learn(Bucket::General, 190, Duration::from_secs(10));
        assert_eq!(configured.general_limit(), fixed);
    }

    #[test]
    fn each_window_learns_from_its_own_responses_only() {
        let limits = RateLimits::new(RateSettings::default());
        assert_eq!(limits.association_limit(), WindowLimit::ASSOCIATIONS_STARTER);
        limits.learn(Bucket::Associations, 150, Duration::from_secs(10));
        assert_eq!((limits.association_limit().max, limits.general_limit()), (150, WindowLimit::STARTER));
        limits.learn(Bucket::General, 190, Duration::from_secs(10));
        assert_eq!((limits.association_limit().max, limits.general_limit().max), (150, 190));
        limits.learn(Bucket::Search, 7, Duration::from_secs(1));
        limits.learn(Bucket::Associations, 0, Duration::from_secs(10));
        assert_eq!((limits.association_limit().max, limits.general_limit().max), (150, 190), "nothing else moves");
    }
}
