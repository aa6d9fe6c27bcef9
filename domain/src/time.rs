//! Time as the domain sees it: UTC instants, read through a [`Clock`] so that every timing
//! rule can be driven by injected time in tests.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// An instant in UTC. Serialized as RFC 3339 outside.
pub type Timestamp = DateTime<Utc>;

/// Where "now" comes from. The server uses [`SystemClock`]; tests use [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Utc::now()
    }
}

/// A clock that only moves when told to.
///
/// ```
/// use domain::time::{Clock, ManualClock};
/// let clock = ManualClock::new("2026-11-22T03:00:00Z".parse().unwrap());
/// clock.advance(chrono::Duration::seconds(45));
/// assert_eq!(clock.now().to_rfc3339(), "2026-11-22T03:00:45+00:00");
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward (or backward, with a negative duration).
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: Timestamp) {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Truncates an instant to whole microseconds, the precision both databases keep, so that
/// a value read back compares equal to the value written.
pub fn to_storage_precision(at: Timestamp) -> Timestamp {
    use chrono::SubsecRound;
    at.trunc_subsecs(6)
}
