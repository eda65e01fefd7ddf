//! When a job runs next: intervals stretched by jitter, and backoff after a failure chosen by
//! the error's class. Pure arithmetic, so the policy is tested without a clock.

use std::time::Duration;

use rand::Rng;

use crate::error::ErrorClass;

/// `interval` stretched or shrunk at random by up to `percent` percent, so daemons and streams
/// sharing a portal do not fire in lockstep.
pub fn jittered(interval: Duration, percent: u8, rng: &mut impl Rng) -> Duration {
    if percent == 0 || interval.is_zero() {
        return interval;
    }
    let spread = f64::from(percent.min(99)) / 100.0;
    interval.mul_f64(rng.random_range(1.0 - spread..=1.0 + spread))
}

/// How long a job waits after its `failures`-th failure in a row (1 for the first) of `class`.
///
/// - transient (network, 5xx): 5 s doubling to 5 min, the fault is usually gone by then;
/// - rate-limited (HubSpot's 429s after the client's own retries): 30 s doubling to 15 min;
/// - auth and config: 1 min doubling to 30 min, an operator has to act and retrying sooner only
///   fills the log;
/// - data and bug: 5 min doubling to 6 h, rerunning seldom helps but must never stop for good.
///
/// A spent daily budget is not a failure: the scheduler pauses until the reset instead.
pub fn backoff(class: ErrorClass, failures: u32) -> Duration {
    let (base, cap) = match class {
        ErrorClass::Transient => (5, 300),
        ErrorClass::RateLimited => (30, 900),
        ErrorClass::Auth | ErrorClass::Config => (60, 1_800),
        ErrorClass::Data | ErrorClass::Bug => (300, 21_600),
    };
    let doublings = failures.saturating_sub(1).min(20);
    Duration::from_secs((base << doublings).min(cap))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn backoff_doubles_from_the_class_base_up_to_its_cap() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(ErrorClass::Transient, n).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(ErrorClass::RateLimited, 1).as_secs(), 30);
        assert_eq!(backoff(ErrorClass::Auth, 1).as_secs(), 60);
        assert_eq!(backoff(ErrorClass::Config, 100).as_secs(), 1_800);
        assert_eq!(backoff(ErrorClass::Bug, 3).as_secs(), 1_200);
        assert_eq!(backoff(ErrorClass::Data, u32::MAX).as_secs(), 21_600);
    }

    #[test]
    fn operator_problems_wait_longer_than_blips() {
        for n in 1..10 {
            assert!(backoff(ErrorClass::Transient, n) <= backoff(ErrorClass::Auth, n));
            assert!(backoff(ErrorClass::Auth, n) <= backoff(ErrorClass::Bug, n));
        }
    }

    #[test]
    fn jitter_stays_within_its_share_and_varies() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let base = Duration::from_secs(100);
        let seen: Vec<Duration> = (0..200).map(|_| jittered(base, 10, &mut rng)).collect();
        assert!(seen.iter().all(|d| *d >= Duration::from_secs(90) && *d <= Duration::from_secs(110)));
        assert!(
            seen.iter().any(|d| *d < Duration::from_secs(98)) && seen.iter().any(|d| *d > Duration::from_secs(102))
        );
        assert_eq!(jittered(base, 0, &mut rng), base);
    }
}
