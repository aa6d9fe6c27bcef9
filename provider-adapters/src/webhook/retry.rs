//! When to try a failed delivery again: exponential backoff with full jitter, capped per
//! attempt, bounded by an attempt count and by the delivery's deadline.
//!
//! Pure functions of the attempt count, the current time and a random fraction, so every
//! schedule is testable without a clock or a network. Full jitter (a uniform delay in
//! `[0, min(cap, base · 2^(n-1))]`) spreads retries from many deliveries that failed
//! together — a provider's endpoint coming back after an outage is not hit by all of
//! them in the same second.
//!
//! The deadline matters more than the count for offers: a webhook about an offer is
//! useless once the offer has expired, so its delivery's deadline is the offer's
//! `expires_at` and no retry is scheduled past it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// The retry budget. Part of the webhook configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Ceiling of the first retry delay, in milliseconds; doubles with each attempt.
    pub base_delay_ms: u64,
    /// No single delay is longer than this, in milliseconds.
    pub max_delay_ms: u64,
    /// Attempts in all, the first one included; the delivery is dead-lettered after the
    /// last one fails.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    /// 1 s doubling to at most 60 s, 12 attempts (about 8 minutes of retries on average
    /// when the deadline does not end them sooner).
    fn default() -> Self {
        Self {
            base_delay_ms: 1_000,
            max_delay_ms: 60_000,
            max_attempts: 12,
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// Stop: dead-letter the delivery.
    GiveUp(GiveUpReason),
}

/// Why a delivery is dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GiveUpReason {
    /// [`RetryPolicy::max_attempts`] attempts failed.
    AttemptsExhausted,
    /// The next try would come after the delivery's deadline.
    DeadlinePassed,
    /// Retrying cannot help (the URL is refused by the SSRF guard, the delivery is
    /// malformed).
    Permanent,
}

impl GiveUpReason {
    /// A short lowercase label, for dead-letter reasons and metrics.
    ///
    /// ```
    /// use provider_adapters::webhook::retry::GiveUpReason;
    /// assert_eq!(GiveUpReason::DeadlinePassed.as_str(), "deadline passed");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            GiveUpReason::AttemptsExhausted => "attempts exhausted",
            GiveUpReason::DeadlinePassed => "deadline passed",
            GiveUpReason::Permanent => "permanent failure",
        }
    }
}

impl RetryPolicy {
    /// The jitter ceiling before retry number `failed_attempts` (1 after the first
    /// failure): `min(max_delay, base_delay · 2^(failed_attempts - 1))`, never overflowing.
    ///
    /// ```
    /// use provider_adapters::webhook::retry::RetryPolicy;
    /// use std::time::Duration;
    /// let policy = RetryPolicy { base_delay_ms: 1_000, max_delay_ms: 10_000, max_attempts: 10 };
    /// assert_eq!(policy.ceiling(1), Duration::from_secs(1));
    /// assert_eq!(policy.ceiling(3), Duration::from_secs(4));
    /// assert_eq!(policy.ceiling(9), Duration::from_secs(10));
    /// ```
    pub fn ceiling(&self, failed_attempts: u32) -> Duration {
        let exponent = failed_attempts.saturating_sub(1).min(63);
        let uncapped_ms = self.base_delay_ms.saturating_mul(1_u64 << exponent);
        Duration::from_millis(uncapped_ms.min(self.max_delay_ms))
    }

    /// A full-jitter delay: `fraction` (in `[0, 1)`) of [`RetryPolicy::ceiling`].
    ///
    /// ```
    /// use provider_adapters::webhook::retry::RetryPolicy;
    /// use std::time::Duration;
    /// let policy = RetryPolicy::default();
    /// assert_eq!(policy.jittered_delay(2, 0.5), Duration::from_secs(1));
    /// ```
    pub fn jittered_delay(&self, failed_attempts: u32, fraction: f64) -> Duration {
        let fraction = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self.ceiling(failed_attempts).mul_f64(fraction)
    }

    /// After attempt number `failed_attempts` failed at `now`: retry at a jittered time,
    /// or give up when the attempts are spent or the retry would land after `deadline`.
    ///
    /// ```
    /// use chrono::{Duration, TimeZone, Utc};
    /// use provider_adapters::webhook::retry::{GiveUpReason, RetryDecision, RetryPolicy};
    /// let policy = RetryPolicy { base_delay_ms: 1_000, max_delay_ms: 60_000, max_attempts: 3 };
    /// let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
    /// let deadline = now + Duration::seconds(90);
    /// assert_eq!(
    ///     policy.decide(1, now, deadline, 0.5),
    ///     RetryDecision::RetryAt(now + Duration::milliseconds(500))
    /// );
    /// assert_eq!(
    ///     policy.decide(3, now, deadline, 0.5),
    ///     RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted)
    /// );
    /// ```
    pub fn decide(
        &self,
        failed_attempts: u32,
        now: DateTime<Utc>,
        deadline: DateTime<Utc>,
        fraction: f64,
    ) -> RetryDecision {
        if failed_attempts >= self.max_attempts {
            return RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted);
        }
        let delay = self.jittered_delay(failed_attempts, fraction);
        let next = chrono::Duration::from_std(delay)
            .ok()
            .and_then(|delay| now.checked_add_signed(delay));
        match next {
            Some(next) if next < deadline => RetryDecision::RetryAt(next),
            _ => RetryDecision::GiveUp(GiveUpReason::DeadlinePassed),
        }
    }
}

/// Where jitter comes from: a fraction in `[0, 1)` per call. Injected so tests can fix
/// the schedule.
pub trait JitterSource: Send {
    /// The next fraction, in `[0, 1)`.
    fn next_fraction(&mut self) -> f64;
}

/// SplitMix64: tiny, fast, statistically fine for spreading retries (not for secrets).
///
/// ```
/// use provider_adapters::webhook::retry::{JitterSource, SplitMix64};
/// let mut a = SplitMix64::seeded(7);
/// let mut b = SplitMix64::seeded(7);
/// assert_eq!(a.next_fraction(), b.next_fraction());
/// ```
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A reproducible sequence, for tests.
    pub fn seeded(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Seeded from the process's random hasher keys, so instances do not retry in step.
    pub fn from_entropy() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(0x5eed);
        Self::seeded(hasher.finish())
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }
}

impl JitterSource for SplitMix64 {
    fn next_fraction(&mut self) -> f64 {
        // The top 53 bits make a uniform double in [0, 1).
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }
}

/// Always the same fraction: for tests that want exact times (`1.0` is the ceiling
/// itself, the slowest schedule; `0.0` retries at once).
#[derive(Debug, Clone, Copy)]
pub struct FixedJitter(pub f64);

impl JitterSource for FixedJitter {
    fn next_fraction(&mut self) -> f64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000, 0)
            .single()
            .unwrap_or(DateTime::UNIX_EPOCH)
    }

    #[test]
    fn the_ceiling_doubles_and_stops_at_the_cap() {
        let policy = RetryPolicy {
            base_delay_ms: 500,
            max_delay_ms: 30_000,
            max_attempts: 100,
        };
        let ceilings: Vec<u64> = (1..=8)
            .map(|attempt| policy.ceiling(attempt).as_millis() as u64)
            .collect();
        assert_eq!(
            ceilings,
            [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]
        );
    }

    #[test]
    fn a_huge_attempt_count_never_overflows() {
        let policy = RetryPolicy {
            base_delay_ms: u64::MAX / 3,
            max_delay_ms: u64::MAX,
            max_attempts: u32::MAX,
        };
        assert_eq!(policy.ceiling(u32::MAX), Duration::from_millis(u64::MAX));
        let far = policy.decide(u32::MAX - 1, now(), now() + chrono::Duration::days(1), 1.0);
        assert_eq!(far, RetryDecision::GiveUp(GiveUpReason::DeadlinePassed));
    }

    #[test]
    fn jitter_stays_within_zero_and_the_ceiling() {
        let policy = RetryPolicy::default();
        let mut jitter = SplitMix64::seeded(42);
        for attempt in 1..=20 {
            for _ in 0..100 {
                let fraction = jitter.next_fraction();
                assert!((0.0..1.0).contains(&fraction));
                let delay = policy.jittered_delay(attempt, fraction);
                assert!(delay <= policy.ceiling(attempt));
            }
        }
        assert_eq!(policy.jittered_delay(3, f64::NAN), Duration::ZERO);
        assert_eq!(policy.jittered_delay(3, 7.0), policy.ceiling(3));
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let policy = RetryPolicy::default();
        let deadline = now() + chrono::Duration::hours(1);
        let schedule = |seed| {
            let mut jitter = SplitMix64::seeded(seed);
            (1..6)
                .map(|attempt| policy.decide(attempt, now(), deadline, jitter.next_fraction()))
                .collect::<Vec<_>>()
        };
        assert_eq!(schedule(9), schedule(9));
        assert_ne!(schedule(9), schedule(10));
    }

    #[test]
    fn no_retry_is_scheduled_at_or_after_the_deadline() {
        let policy = RetryPolicy::default();
        let deadline = now() + chrono::Duration::seconds(3);
        // Ceiling after the third failure is 4 s; the whole of it lands past the deadline.
        assert_eq!(
            policy.decide(3, now(), deadline, 1.0),
            RetryDecision::GiveUp(GiveUpReason::DeadlinePassed)
        );
        assert_eq!(
            policy.decide(3, now(), deadline, 0.5),
            RetryDecision::RetryAt(now() + chrono::Duration::seconds(2))
        );
        assert_eq!(
            policy.decide(1, deadline, deadline, 0.0),
            RetryDecision::GiveUp(GiveUpReason::DeadlinePassed)
        );
    }

    #[test]
    fn the_last_allowed_attempt_failing_gives_up() {
        let policy = RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        };
        let deadline = now() + chrono::Duration::hours(1);
        assert!(matches!(
            policy.decide(1, now(), deadline, 0.3),
            RetryDecision::RetryAt(_)
        ));
        assert_eq!(
            policy.decide(2, now(), deadline, 0.3),
            RetryDecision::GiveUp(GiveUpReason::AttemptsExhausted)
        );
    }
}
