//! The retry policy, in one place: which HubSpot answers are retried, after how long, and which
//! are final. Pure functions of the response, so every row of the policy is unit-tested.

use std::time::Duration;

use rand::Rng;

/// Bounds on retrying one request.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    /// The first backoff step for 5xx, timeouts and connection errors.
    pub base_delay: Duration,
    /// The longest single backoff.
    pub max_delay: Duration,
    /// The longest wait the client sleeps through itself (a 429's `Retry-After`, a 477); a
    /// longer one is handed to the caller as a rate-limited error.
    pub max_wait: Duration,
    /// The rolling window to wait out after a `TEN_SECONDLY_ROLLING` 429 without `Retry-After`.
    pub window: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_wait: Duration::from_secs(120),
            window: Duration::from_secs(10),
        }
    }
}

/// Why a request is retried; also the label of the retry metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryReason {
    RateLimited,
    ServerError,
    Locked,
    Migration,
    Transport,
    Decode,
}

impl RetryReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            RetryReason::RateLimited => "rate_limited",
            RetryReason::ServerError => "server_error",
            RetryReason::Locked => "locked",
            RetryReason::Migration => "migration",
            RetryReason::Transport => "transport",
            RetryReason::Decode => "decode",
        }
    }
}

/// What to do about one failed attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Sleep, then try again.
    Retry { after: Duration, reason: RetryReason },
    /// Do not retry: a permanent error, or a wait too long to sleep through here.
    GiveUp { wait: Option<Duration> },
}

/// The rate-limit policy a 429 names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Policy {
    Daily,
    TenSecondly,
    Secondly,
    Other(String),
}

impl Policy {
    /// Reads the policy from the body's `policyName` and, for search, its message.
    pub fn from_body(policy_name: Option<&str>, message: Option<&str>) -> Policy {
        match policy_name {
            Some("DAILY") => Policy::Daily,
            Some("TEN_SECONDLY_ROLLING") => Policy::TenSecondly,
            Some("SECONDLY") => Policy::Secondly,
            _ if message.is_some_and(|m| m.contains("secondly limit")) => Policy::Secondly,
            _ if message.is_some_and(|m| m.contains("daily limit")) => Policy::Daily,
            Some(other) => Policy::Other(other.to_owned()),
            None => Policy::Other("UNKNOWN".to_owned()),
        }
    }

    /// The name used in errors and metrics.
    pub fn name(&self) -> &str {
        match self {
            Policy::Daily => "DAILY",
            Policy::TenSecondly => "TEN_SECONDLY_ROLLING",
            Policy::Secondly => "SECONDLY",
            Policy::Other(name) => name,
        }
    }
}

impl RetryPolicy {
    /// Full-jitter exponential backoff for the given attempt (1-based).
    pub fn backoff(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let cap = exp.min(self.max_delay);
        Duration::from_millis(rng.random_range(0..=cap.as_millis() as u64))
    }

    fn out_of_attempts(&self, attempt: u32) -> bool {
        attempt >= self.max_attempts
    }

    /// Decides about a 429.
    pub fn on_rate_limited(
        &self,
        policy: &Policy,
        retry_after: Option<Duration>,
        attempt: u32,
        rng: &mut impl Rng,
    ) -> Decision {
        let wait = match (policy, retry_after) {
            // The daily limit resets at the portal's midnight: never sleep through it here.
            (Policy::Daily, after) => return Decision::GiveUp { wait: after },
            (_, Some(after)) => after,
            (Policy::Secondly, None) => Duration::from_secs(1),
            (Policy::TenSecondly | Policy::Other(_), None) => self.window,
        };
        // A little jitter so several tasks do not return in lockstep.
        let wait = wait + Duration::from_millis(rng.random_range(0..=250));
        if wait > self.max_wait || self.out_of_attempts(attempt) {
            return Decision::GiveUp { wait: Some(wait) };
        }
        Decision::Retry { after: wait, reason: RetryReason::RateLimited }
    }

    /// Decides about any other non-success status.
    pub fn on_status(&self, status: u16, retry_after: Option<Duration>, attempt: u32, rng: &mut impl Rng) -> Decision {
        let (after, reason) = match status {
            423 => (self.backoff(attempt, rng).max(Duration::from_secs(2)), RetryReason::Locked),
            477 => (retry_after.unwrap_or(self.max_delay), RetryReason::Migration),
            500..=599 => (self.backoff(attempt, rng), RetryReason::ServerError),
            _ => return Decision::GiveUp { wait: None },
        };
        if after > self.max_wait || self.out_of_attempts(attempt) {
            return Decision::GiveUp { wait: Some(after) };
        }
        Decision::Retry { after, reason }
    }

    /// Decides about a transport failure or an unreadable body.
    pub fn on_failure(&self, reason: RetryReason, attempt: u32, rng: &mut impl Rng) -> Decision {
        if self.out_of_attempts(attempt) {
            return Decision::GiveUp { wait: None };
        }
        Decision::Retry { after: self.backoff(attempt, rng), reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(1)
    }

    fn retried(d: &Decision) -> Option<(Duration, RetryReason)> {
        match d {
            Decision::Retry { after, reason } => Some((*after, *reason)),
            Decision::GiveUp { .. } => None,
        }
    }

    #[test]
    fn permanent_statuses_are_never_retried() {
        let p = RetryPolicy::default();
        for status in [400, 401, 403, 404, 405, 409, 414, 422] {
            assert_eq!(p.on_status(status, None, 1, &mut rng()), Decision::GiveUp { wait: None }, "{status}");
        }
    }

    #[test]
    fn server_errors_back_off_with_full_jitter_and_bounded_attempts() {
        let p = RetryPolicy::default();
        for status in [500, 502, 503, 504, 521, 524] {
            let (after, reason) = retried(&p.on_status(status, None, 3, &mut rng())).unwrap();
            assert_eq!(reason, RetryReason::ServerError);
            assert!(after <= Duration::from_secs(2), "attempt 3 caps at base*4: {after:?}");
        }
        assert!(matches!(p.on_status(502, None, p.max_attempts, &mut rng()), Decision::GiveUp { .. }));
        let many: Vec<_> = (0..50).map(|i| p.backoff(10, &mut rand_chacha::ChaCha8Rng::seed_from_u64(i))).collect();
        assert!(many.iter().all(|d| *d <= p.max_delay));
        assert!(many.iter().any(|d| *d < p.max_delay / 2), "full jitter spreads the delays");
    }

    #[test]
    fn locked_waits_at_least_two_seconds() {
        let p = RetryPolicy::default();
        let (after, reason) = retried(&p.on_status(423, None, 1, &mut rng())).unwrap();
        assert_eq!(reason, RetryReason::Locked);
        assert!(after >= Duration::from_secs(2));
    }

    #[test]
    fn migration_honours_retry_after_in_seconds_and_hands_long_waits_back() {
        let p = RetryPolicy::default();
        let (after, _) = retried(&p.on_status(477, Some(Duration::from_secs(5)), 1, &mut rng())).unwrap();
        assert_eq!(after, Duration::from_secs(5));
        let long = p.on_status(477, Some(Duration::from_secs(3600)), 1, &mut rng());
        assert_eq!(long, Decision::GiveUp { wait: Some(Duration::from_secs(3600)) });
    }

    #[test]
    fn rate_limits_follow_the_policy_name() {
        let p = RetryPolicy::default();
        let (ten, _) = retried(&p.on_rate_limited(&Policy::TenSecondly, None, 1, &mut rng())).unwrap();
        assert!(ten >= Duration::from_secs(10) && ten <= Duration::from_millis(10_250));
        let (sec, _) = retried(&p.on_rate_limited(&Policy::Secondly, None, 1, &mut rng())).unwrap();
        assert!(sec >= Duration::from_secs(1) && sec <= Duration::from_millis(1_250));
        let (told, _) =
            retried(&p.on_rate_limited(&Policy::TenSecondly, Some(Duration::from_secs(3)), 1, &mut rng())).unwrap();
        assert!(told >= Duration::from_secs(3) && told <= Duration::from_millis(3_250), "Retry-After wins");
        assert!(matches!(p.on_rate_limited(&Policy::Daily, None, 1, &mut rng()), Decision::GiveUp { .. }));
    }

    #[test]
    fn policy_is_read_from_name_or_search_message() {
        assert_eq!(Policy::from_body(Some("DAILY"), None), Policy::Daily);
        assert_eq!(Policy::from_body(Some("TEN_SECONDLY_ROLLING"), None), Policy::TenSecondly);
        assert_eq!(Policy::from_body(None, Some("You have reached your secondly limit.")), Policy::Secondly);
    }
}
