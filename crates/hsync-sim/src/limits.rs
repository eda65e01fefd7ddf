//! HubSpot's rate limits as the simulator enforces them: a rolling ten-second window per tier,
//! a daily limit that resets at the portal's midnight, the search API's own per-second limit
//! (whose responses carry no rate-limit headers), and the associations v4 API's own rolling
//! window and daily limit.

use std::collections::VecDeque;

use chrono::{NaiveDate, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::portal::Millis;

/// A HubSpot subscription tier, which sets the default limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Free and Starter: 100 per 10 s, 250,000 a day; associations 100 per 10 s.
    Starter,
    /// Professional: 190 per 10 s, 625,000 a day; associations 150 per 10 s, 500,000 a day.
    Professional,
    /// Enterprise: 190 per 10 s, 1,000,000 a day; associations 150 per 10 s, 500,000 a day.
    Enterprise,
}

/// The limits in force; every field can be changed at runtime through the admin API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// `false` serves every request without limits (for benchmarks).
    pub enabled: bool,
    pub tier: Tier,
    /// Requests per rolling window (the `X-HubSpot-RateLimit-Max` header).
    pub window_max: u32,
    pub window_ms: u32,
    pub daily_limit: u64,
    /// Search requests per second for the portal.
    pub search_per_second: u32,
    /// Whether search calls count against the daily limit (HubSpot does not document it).
    pub search_counts_daily: bool,
    /// Send `Retry-After` (seconds) on 429 responses; HubSpot does not document one.
    pub send_retry_after: bool,
    /// The portal's time zone, which decides when the daily limit resets.
    pub timezone: String,
    /// Associations v4 requests (`/crm/v4/associations/...`) per rolling window of their own;
    /// they do not use the general window.
    pub associations_window_max: u32,
    pub associations_window_ms: u32,
    /// The associations v4 API's own daily limit (HubSpot documents one for Professional and
    /// Enterprise only); association calls also count against `daily_limit`.
    pub associations_daily_limit: Option<u64>,
}

impl LimitSettings {
    /// The documented limits of a tier.
    pub fn for_tier(tier: Tier) -> LimitSettings {
        let (window_max, daily_limit) = match tier {
            Tier::Starter => (100, 250_000),
            Tier::Professional => (190, 625_000),
            Tier::Enterprise => (190, 1_000_000),
        };
        // The associations v4 guide's "Limits" section.
        let (associations_window_max, associations_daily_limit) = match tier {
            Tier::Starter => (100, None),
            Tier::Professional | Tier::Enterprise => (150, Some(500_000)),
        };
        LimitSettings {
            enabled: true,
            tier,
            window_max,
            window_ms: 10_000,
            daily_limit,
            search_per_second: 5,
            search_counts_daily: true,
            send_retry_after: false,
            timezone: "UTC".to_owned(),
            associations_window_max,
            associations_window_ms: 10_000,
            associations_daily_limit,
        }
    }

    fn tz(&self) -> Tz {
        self.timezone.parse().unwrap_or(Tz::UTC)
    }
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings::for_tier(Tier::Professional)
    }
}

/// Which limit a request counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    General,
    Search,
    /// The associations v4 API (`/crm/v4/associations/...` and its dated alias).
    Associations,
}

impl Bucket {
    /// The name in the request log.
    pub fn name(self) -> &'static str {
        match self {
            Bucket::General => "general",
            Bucket::Search => "search",
            Bucket::Associations => "associations",
        }
    }
}

/// Which limit refused a request; decides the 429 body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Policy {
    #[serde(rename = "DAILY")]
    Daily,
    #[serde(rename = "TEN_SECONDLY_ROLLING")]
    TenSecondlyRolling,
    #[serde(rename = "SECONDLY")]
    Secondly,
    /// The associations v4 window; HubSpot's name for it is not documented.
    #[serde(rename = "ASSOCIATIONS_TEN_SECONDLY_ROLLING")]
    AssociationsTenSecondlyRolling,
    /// The associations v4 daily limit; HubSpot's name for it is not documented.
    #[serde(rename = "ASSOCIATIONS_DAILY")]
    AssociationsDaily,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::Daily => "DAILY",
            Policy::TenSecondlyRolling => "TEN_SECONDLY_ROLLING",
            Policy::Secondly => "SECONDLY",
            Policy::AssociationsTenSecondlyRolling => "ASSOCIATIONS_TEN_SECONDLY_ROLLING",
            Policy::AssociationsDaily => "ASSOCIATIONS_DAILY",
        }
    }

    /// HubSpot's message for this policy.
    pub fn message(self) -> &'static str {
        match self {
            Policy::Daily => "You have reached your daily limit.",
            Policy::TenSecondlyRolling => "You have reached your ten_secondly_rolling limit.",
            Policy::Secondly => "You have reached your secondly limit.",
            Policy::AssociationsTenSecondlyRolling => "You have reached your associations ten_secondly_rolling limit.",
            Policy::AssociationsDaily => "You have reached your associations daily limit.",
        }
    }
}

/// A refused request: the policy, and when a retry would succeed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Refusal {
    pub policy: Policy,
    pub retry_after_ms: Millis,
}

/// The rate-limit headers of an admitted general request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LimitHeaders {
    pub pairs: Vec<(&'static str, String)>,
}

/// Counters behind the limits.
#[derive(Debug)]
pub struct LimitState {
    pub settings: LimitSettings,
    window: VecDeque<Millis>,
    search_window: VecDeque<Millis>,
    associations_window: VecDeque<Millis>,
    day: NaiveDate,
    pub daily_used: u64,
    pub associations_daily_used: u64,
}

impl LimitState {
    pub fn new(settings: LimitSettings, now: Millis) -> LimitState {
        let day = local_day(&settings, now);
        LimitState {
            settings,
            window: VecDeque::new(),
            search_window: VecDeque::new(),
            associations_window: VecDeque::new(),
            day,
            daily_used: 0,
            associations_daily_used: 0,
        }
    }

    /// Milliseconds until the next local midnight of the portal.
    pub fn ms_until_reset(&self, now: Millis) -> Millis {
        let tz = self.settings.tz();
        let next = self.day.succ_opt().and_then(|d| d.and_hms_opt(0, 0, 0));
        let next_ms = next
            .and_then(|n| tz.from_local_datetime(&n).earliest())
            .map_or(now + 86_400_000, |dt| dt.timestamp_millis());
        (next_ms - now).max(0)
    }

    /// Starts a new day's count once the portal's midnight has passed.
    pub fn roll_day(&mut self, now: Millis) {
        let today = local_day(&self.settings, now);
        if today != self.day {
            self.day = today;
            self.daily_used = 0;
            self.associations_daily_used = 0;
        }
    }

    /// Admits a request or says which limit refuses it. Refused requests are not counted.
    pub fn admit(&mut self, bucket: Bucket, now: Millis) -> Result<LimitHeaders, Refusal> {
        self.roll_day(now);
        if !self.settings.enabled {
            return Ok(LimitHeaders::default());
        }
        let counts_daily = bucket != Bucket::Search || self.settings.search_counts_daily;
        if counts_daily && self.daily_used >= self.settings.daily_limit {
            return Err(Refusal { policy: Policy::Daily, retry_after_ms: self.ms_until_reset(now) });
        }
        match bucket {
            Bucket::Search => {
                let per_second = self.settings.search_per_second;
                take_slot(&mut self.search_window, per_second, 1000, now, Policy::Secondly)?;
            }
            Bucket::General => {
                let (max, ms) = (self.settings.window_max, self.settings.window_ms);
                take_slot(&mut self.window, max, ms, now, Policy::TenSecondlyRolling)?;
            }
            Bucket::Associations => {
                if self.settings.associations_daily_limit.is_some_and(|limit| self.associations_daily_used >= limit) {
                    return Err(Refusal {
                        policy: Policy::AssociationsDaily,
                        retry_after_ms: self.ms_until_reset(now),
                    });
                }
                let (max, ms) = (self.settings.associations_window_max, self.settings.associations_window_ms);
                take_slot(&mut self.associations_window, max, ms, now, Policy::AssociationsTenSecondlyRolling)?;
                self.associations_daily_used += 1;
            }
        }
        if counts_daily {
            self.daily_used += 1;
        }
        let (window, max, window_ms) = match bucket {
            // "Responses from the search API endpoints will not include any of the rate limit headers."
            Bucket::Search => return Ok(LimitHeaders::default()),
            Bucket::General => (&self.window, self.settings.window_max, self.settings.window_ms),
            // Association answers report their own window (an assumption: HubSpot does not say).
            Bucket::Associations => {
                (&self.associations_window, self.settings.associations_window_max, self.settings.associations_window_ms)
            }
        };
        let remaining = max.saturating_sub(window.len() as u32);
        let recent = window.iter().rev().take_while(|&&t| t > now - 1000).count() as u32;
        Ok(LimitHeaders {
            pairs: vec![
                ("X-HubSpot-RateLimit-Daily", self.settings.daily_limit.to_string()),
                (
                    "X-HubSpot-RateLimit-Daily-Remaining",
                    self.settings.daily_limit.saturating_sub(self.daily_used).to_string(),
                ),
                ("X-HubSpot-RateLimit-Interval-Milliseconds", window_ms.to_string()),
                ("X-HubSpot-RateLimit-Max", max.to_string()),
                ("X-HubSpot-RateLimit-Remaining", remaining.to_string()),
                ("X-HubSpot-RateLimit-Secondly", (max / 10).to_string()),
                ("X-HubSpot-RateLimit-Secondly-Remaining", (max / 10).saturating_sub(recent).to_string()),
            ],
        })
    }

    /// Marks the day's allowance as spent (the admin API's "daily limit exhaustion" fault).
    pub fn exhaust_daily(&mut self, now: Millis) {
        self.roll_day(now);
        self.daily_used = self.settings.daily_limit;
    }

    /// Replaces the settings, keeping the counters.
    pub fn configure(&mut self, settings: LimitSettings, now: Millis) {
        self.settings = settings;
        self.day = local_day(&self.settings, now);
    }
}

/// Takes a slot in a rolling window of `max` requests per `window_ms`, or refuses with `policy`
/// and the time until the oldest request in it leaves.
fn take_slot(
    window: &mut VecDeque<Millis>,
    max: u32,
    window_ms: u32,
    now: Millis,
    policy: Policy,
) -> Result<(), Refusal> {
    let window_ms = Millis::from(window_ms);
    prune(window, now - window_ms);
    if window.len() >= max as usize {
        let oldest = window.front().copied().unwrap_or(now);
        return Err(Refusal { policy, retry_after_ms: oldest + window_ms - now });
    }
    window.push_back(now);
    Ok(())
}

fn prune(window: &mut VecDeque<Millis>, older_than: Millis) {
    while window.front().is_some_and(|&t| t <= older_than) {
        window.pop_front();
    }
}

fn local_day(settings: &LimitSettings, now: Millis) -> NaiveDate {
    let tz = settings.tz();
    chrono::DateTime::from_timestamp_millis(now).unwrap_or_default().with_timezone(&tz).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_767_225_600_000; // midnight UTC

    #[test]
    fn rolling_window_refuses_the_191st_call_and_frees_up_after_the_window() {
        let mut s = LimitState::new(LimitSettings::for_tier(Tier::Professional), T0);
        for i in 0..190 {
            s.admit(Bucket::General, T0 + i).unwrap();
        }
        let refusal = s.admit(Bucket::General, T0 + 500).unwrap_err();
        assert_eq!(refusal.policy, Policy::TenSecondlyRolling);
        assert_eq!(refusal.retry_after_ms, 9_500);
        assert!(s.admit(Bucket::General, T0 + 10_001).is_ok());
    }

    #[test]
    fn search_has_no_headers_and_its_own_per_second_limit() {
        let mut s = LimitState::new(LimitSettings::default(), T0);
        for _ in 0..5 {
            assert!(s.admit(Bucket::Search, T0).unwrap().pairs.is_empty());
        }
        assert_eq!(s.admit(Bucket::Search, T0 + 999).unwrap_err().policy, Policy::Secondly);
        assert!(s.admit(Bucket::General, T0 + 999).is_ok(), "search does not use the general window");
        assert!(s.admit(Bucket::Search, T0 + 1000).is_ok());
    }

    #[test]
    fn associations_have_their_own_window_and_daily_limit_and_count_in_the_daily_total() {
        let settings = LimitSettings {
            associations_window_max: 3,
            associations_daily_limit: Some(4),
            ..LimitSettings::for_tier(Tier::Professional)
        };
        let mut s = LimitState::new(settings, T0);
        for i in 0..3 {
            let headers = s.admit(Bucket::Associations, T0 + i).unwrap();
            let max = headers.pairs.iter().find(|(n, _)| *n == "X-HubSpot-RateLimit-Max").unwrap();
            assert_eq!(max.1, "3", "association answers report their own window");
        }
        let refusal = s.admit(Bucket::Associations, T0 + 10).unwrap_err();
        assert_eq!(refusal.policy, Policy::AssociationsTenSecondlyRolling);
        assert_eq!(refusal.retry_after_ms, 9_990);
        assert!(s.admit(Bucket::General, T0 + 10).is_ok(), "the general window is untouched");
        assert_eq!(s.daily_used, 4, "association calls count in the daily total");
        assert!(s.admit(Bucket::Associations, T0 + 10_001).is_ok());
        let refusal = s.admit(Bucket::Associations, T0 + 20_002).unwrap_err();
        assert_eq!(refusal.policy, Policy::AssociationsDaily);
        assert!(s.admit(Bucket::General, T0 + 20_002).is_ok());
    }

    #[test]
    fn tiers_set_the_documented_association_limits() {
        let starter = LimitSettings::for_tier(Tier::Starter);
        assert_eq!((starter.associations_window_max, starter.associations_daily_limit), (100, None));
        for tier in [Tier::Professional, Tier::Enterprise] {
            let s = LimitSettings::for_tier(tier);
            assert_eq!((s.associations_window_max, s.associations_daily_limit), (150, Some(500_000)));
        }
    }

    #[test]
    fn daily_limit_resets_at_local_midnight() {
        let settings =
            LimitSettings { daily_limit: 3, timezone: "America/New_York".into(), ..LimitSettings::default() };
        let mut s = LimitState::new(settings, T0);
        for i in 0..3 {
            s.admit(Bucket::General, T0 + i).unwrap();
        }
        let refusal = s.admit(Bucket::General, T0 + 20_000).unwrap_err();
        assert_eq!(refusal.policy, Policy::Daily);
        // Midnight UTC is 19:00 in New York; the reset is five hours later.
        assert_eq!(refusal.retry_after_ms, 5 * 3_600_000 - 20_000);
        assert!(s.admit(Bucket::General, T0 + 5 * 3_600_000).is_ok());
    }
}
