//! Position fixes and the plausibility filter every consumer of a fix stream shares.
//!
//! GPS streams from real devices repeat themselves (retries), arrive out of order (batch
//! uploads, several network paths) and now and then jump hundreds of kilometres (a cold
//! start, a multipath echo, a bad datum conversion). [`FixFilter`] decides, fix by fix,
//! which ones may move the vehicle and counts the others by reason, so that bad input is
//! visible in metrics without ever reaching the prediction or the alert rules.

use std::collections::VecDeque;

use domain::geo::LatLon;
use domain::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::units::seconds_between;

/// One position report of the assigned vehicle, already parsed at the edge: the part of a
/// [`domain::Fix`] the rules use. It is kept this small because engines are persisted with
/// their recent fixes; build it from a domain fix with `From`.
///
/// ```
/// use domain::geo::LatLon;
/// use tracking_core::Fix;
/// let fix = Fix {
///     at: "2026-11-22T03:04:05Z".parse().unwrap(),
///     position: LatLon::new(31.2304, 121.4737).unwrap(),
///     speed_kmh: Some(42.0),
/// };
/// assert_eq!(fix.position.lat(), 31.2304);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fix {
    /// When the device took the position (device time, UTC).
    pub at: Timestamp,
    /// Where the vehicle was, WGS-84.
    pub position: LatLon,
    /// The speed the device reported, if it reports one. Negative or non-finite values are
    /// treated as absent.
    pub speed_kmh: Option<f64>,
}

impl From<&domain::Fix> for Fix {
    /// ```
    /// use domain::{FixSource, LatLon};
    /// let fix = domain::Fix {
    ///     position: LatLon::new(31.2304, 121.4737).unwrap(),
    ///     ts: "2026-11-22T03:04:05Z".parse().unwrap(),
    ///     speed_kmh: Some(42.0),
    ///     heading: Some(90.0),
    ///     accuracy_m: None,
    ///     source: FixSource::Api,
    /// };
    /// let sample = tracking_core::Fix::from(&fix);
    /// assert_eq!((sample.at, sample.position, sample.speed_kmh), (fix.ts, fix.position, fix.speed_kmh));
    /// ```
    fn from(fix: &domain::Fix) -> Fix {
        Fix {
            at: fix.ts,
            position: fix.position,
            speed_kmh: fix.speed_kmh,
        }
    }
}

impl Fix {
    /// The reported speed if it is usable: finite and not negative.
    pub fn usable_speed_kmh(&self) -> Option<f64> {
        self.speed_kmh
            .filter(|speed_kmh| speed_kmh.is_finite() && *speed_kmh >= 0.0)
    }
}

/// What the filter decided about one fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FixVerdict {
    /// Plausible and newer than everything before: it moves the vehicle.
    Accepted,
    /// Plausible after all: the fixes since the last accepted one agree with each other and
    /// not with it, so the last accepted one was the outlier. The track restarts here.
    Relocated,
    /// Same time as a recently accepted fix (a retry or a double upload). Ignored.
    Duplicate,
    /// Older than the newest accepted fix. Ignored for progress (a trajectory sorts it in).
    OutOfOrder,
    /// Reaching it from the last accepted fix would need an impossible speed. Ignored.
    ImplausibleJump,
    /// Dated further in the future than the tolerated clock skew. Ignored.
    FutureDated,
}

impl FixVerdict {
    /// Whether the fix moves the vehicle.
    pub fn is_accepted(self) -> bool {
        matches!(self, FixVerdict::Accepted | FixVerdict::Relocated)
    }
}

/// How many fixes the filter saw, by verdict. Never reset; persisted with the case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixCounters {
    /// Fixes that moved the vehicle.
    pub accepted: u64,
    /// Times the filter concluded that the previous accepted fix was the outlier.
    pub relocations: u64,
    /// Repeated fixes.
    pub duplicates: u64,
    /// Fixes older than the newest accepted one.
    pub out_of_order: u64,
    /// Fixes that would need more than the maximum plausible speed.
    pub implausible_jumps: u64,
    /// Fixes dated in the future beyond the tolerated skew.
    pub future_dated: u64,
}

impl FixCounters {
    /// Every fix ignored for progress, whatever the reason.
    pub fn ignored(&self) -> u64 {
        self.duplicates + self.out_of_order + self.implausible_jumps + self.future_dated
    }

    fn count(&mut self, verdict: FixVerdict) {
        let counter = match verdict {
            FixVerdict::Accepted => &mut self.accepted,
            FixVerdict::Relocated => {
                self.accepted += 1;
                &mut self.relocations
            }
            FixVerdict::Duplicate => &mut self.duplicates,
            FixVerdict::OutOfOrder => &mut self.out_of_order,
            FixVerdict::ImplausibleJump => &mut self.implausible_jumps,
            FixVerdict::FutureDated => &mut self.future_dated,
        };
        *counter += 1;
    }
}

/// Thresholds of the plausibility filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterConfig {
    /// Faster than this between two fixes is a GPS jump, not a tow truck. Default 250 km/h.
    pub max_speed_kmh: f64,
    /// Device clocks run a little ahead; a fix dated more than this after "now" is refused.
    /// Default 120 s.
    pub future_tolerance_s: f64,
    /// After this many consecutive rejected jumps that agree with each other, the filter
    /// concludes the last accepted fix was the outlier and restarts from them. Default 3.
    pub relocate_after_fixes: usize,
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self {
            max_speed_kmh: 250.0,
            future_tolerance_s: 120.0,
            relocate_after_fixes: 3,
        }
    }
}

/// How many recently accepted fix times are remembered to recognise late duplicates.
const RECENT_TIMES: usize = 16;

/// Decides which fixes of one vehicle's stream are usable, and counts the rest.
///
/// ```
/// use domain::geo::LatLon;
/// use tracking_core::{Fix, FixFilter, FixVerdict, FilterConfig};
/// let config = FilterConfig::default();
/// let mut filter = FixFilter::default();
/// let at = |s: i64| "2026-11-22T03:00:00Z".parse::<domain::Timestamp>().unwrap()
///     + chrono::Duration::seconds(s);
/// let fix = |s, lat| Fix { at: at(s), position: LatLon::new(lat, 121.47).unwrap(), speed_kmh: None };
///
/// assert_eq!(filter.check(&fix(0, 31.2300), at(0), &config), FixVerdict::Accepted);
/// assert_eq!(filter.check(&fix(0, 31.2300), at(1), &config), FixVerdict::Duplicate);
/// // 300 km north one second later: a jump, not a truck.
/// assert_eq!(filter.check(&fix(1, 33.9300), at(1), &config), FixVerdict::ImplausibleJump);
/// assert_eq!(filter.counters().implausible_jumps, 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FixFilter {
    last_accepted: Option<Fix>,
    recent_times: VecDeque<Timestamp>,
    rejected_run: Vec<Fix>,
    counters: FixCounters,
}

impl FixFilter {
    /// Judges `fix`, received at `now`, remembers it if accepted and counts it either way.
    pub fn check(&mut self, fix: &Fix, now: Timestamp, config: &FilterConfig) -> FixVerdict {
        let verdict = self.judge(fix, now, config);
        self.counters.count(verdict);
        if verdict.is_accepted() {
            self.last_accepted = Some(*fix);
            self.rejected_run.clear();
            self.recent_times.push_back(fix.at);
            if self.recent_times.len() > RECENT_TIMES {
                self.recent_times.pop_front();
            }
        }
        verdict
    }

    /// The counters so far.
    pub fn counters(&self) -> &FixCounters {
        &self.counters
    }

    /// The newest accepted fix.
    pub fn last_accepted(&self) -> Option<&Fix> {
        self.last_accepted.as_ref()
    }

    fn judge(&mut self, fix: &Fix, now: Timestamp, config: &FilterConfig) -> FixVerdict {
        if seconds_between(now, fix.at) > config.future_tolerance_s {
            return FixVerdict::FutureDated;
        }
        let Some(last) = self.last_accepted else {
            return FixVerdict::Accepted;
        };
        if self.recent_times.contains(&fix.at) {
            return FixVerdict::Duplicate;
        }
        if fix.at < last.at {
            return FixVerdict::OutOfOrder;
        }
        if implied_speed_kmh(&last, fix) <= config.max_speed_kmh {
            return FixVerdict::Accepted;
        }
        // Too fast from the last accepted fix. Either this fix is the outlier, or the last
        // accepted one was (e.g. the very first fix of the stream). Keep a run of rejected
        // fixes that agree with each other; once it is long enough, believe the run.
        let agrees_with_run = self
            .rejected_run
            .last()
            .is_some_and(|previous| implied_speed_kmh(previous, fix) <= config.max_speed_kmh);
        if !agrees_with_run {
            self.rejected_run.clear();
        }
        self.rejected_run.push(*fix);
        if self.rejected_run.len() >= config.relocate_after_fixes.max(1) {
            return FixVerdict::Relocated;
        }
        FixVerdict::ImplausibleJump
    }
}

/// Speed needed to go from `from` to `to`, in km/h; infinite when no time passed between
/// two different positions.
fn implied_speed_kmh(from: &Fix, to: &Fix) -> f64 {
    let distance_m = from.position.distance_m(&to.position);
    let elapsed_s = seconds_between(from.at, to.at);
    if elapsed_s <= 0.0 {
        return if distance_m == 0.0 {
            0.0
        } else {
            f64::INFINITY
        };
    }
    distance_m / elapsed_s * 3.6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::test_support::{at, fix};

    fn check_all(fixes: &[Fix]) -> (FixFilter, Vec<FixVerdict>) {
        let config = FilterConfig::default();
        let mut filter = FixFilter::default();
        let verdicts = fixes
            .iter()
            .map(|each| filter.check(each, each.at, &config))
            .collect();
        (filter, verdicts)
    }

    #[test]
    fn the_first_fix_is_accepted() {
        let (_, verdicts) = check_all(&[fix(0, 31.23, 121.47)]);
        assert_eq!(verdicts, vec![FixVerdict::Accepted]);
    }

    #[test]
    fn a_repeated_fix_is_a_counted_duplicate() {
        let (filter, verdicts) = check_all(&[fix(0, 31.23, 121.47), fix(0, 31.23, 121.47)]);
        assert_eq!(verdicts[1], FixVerdict::Duplicate);
        assert_eq!(filter.counters().duplicates, 1);
    }

    #[test]
    fn a_late_copy_of_an_older_fix_is_a_duplicate_not_out_of_order() {
        let (_, verdicts) = check_all(&[
            fix(0, 31.2300, 121.47),
            fix(10, 31.2301, 121.47),
            fix(0, 31.2300, 121.47),
        ]);
        assert_eq!(verdicts[2], FixVerdict::Duplicate);
    }

    #[test]
    fn an_older_fix_is_counted_out_of_order() {
        let config = FilterConfig::default();
        let mut filter = FixFilter::default();
        filter.check(&fix(20, 31.2300, 121.47), at(20), &config);
        let verdict = filter.check(&fix(10, 31.2301, 121.47), at(21), &config);
        assert_eq!(verdict, FixVerdict::OutOfOrder);
        assert_eq!(filter.counters().out_of_order, 1);
        assert_eq!(filter.last_accepted().map(|last| last.at), Some(at(20)));
    }

    #[test]
    fn jumping_three_hundred_km_in_a_second_is_implausible() {
        let (filter, verdicts) = check_all(&[fix(0, 31.23, 121.47), fix(1, 33.93, 121.47)]);
        assert_eq!(verdicts[1], FixVerdict::ImplausibleJump);
        assert_eq!(filter.counters().implausible_jumps, 1);
    }

    #[test]
    fn a_fast_but_possible_move_is_accepted() {
        // 1 km in 20 s is 180 km/h: a motorway, not a jump.
        let (_, verdicts) = check_all(&[fix(0, 31.2300, 121.47), fix(20, 31.2390, 121.47)]);
        assert_eq!(verdicts[1], FixVerdict::Accepted);
    }

    #[test]
    fn a_fix_from_the_far_future_is_refused() {
        let config = FilterConfig::default();
        let mut filter = FixFilter::default();
        let verdict = filter.check(&fix(3_600, 31.23, 121.47), at(0), &config);
        assert_eq!(verdict, FixVerdict::FutureDated);
    }

    #[test]
    fn a_wrong_first_fix_is_abandoned_once_later_fixes_agree_with_each_other() {
        let (filter, verdicts) = check_all(&[
            fix(0, 35.00, 121.47), // a cold-start echo 400 km away
            fix(5, 31.2300, 121.47),
            fix(10, 31.2303, 121.47),
            fix(15, 31.2306, 121.47),
            fix(20, 31.2309, 121.47),
        ]);
        assert_eq!(
            verdicts,
            vec![
                FixVerdict::Accepted,
                FixVerdict::ImplausibleJump,
                FixVerdict::ImplausibleJump,
                FixVerdict::Relocated,
                FixVerdict::Accepted,
            ]
        );
        assert_eq!(filter.counters().relocations, 1);
    }

    #[test]
    fn scattered_outliers_never_relocate_the_track() {
        let (filter, _) = check_all(&[
            fix(0, 31.2300, 121.47),
            fix(5, 34.0000, 121.47),
            fix(10, 28.0000, 121.47),
            fix(15, 36.0000, 121.47),
            fix(20, 31.2303, 121.47),
        ]);
        assert_eq!(filter.counters().relocations, 0);
        assert_eq!(filter.counters().implausible_jumps, 3);
        assert_eq!(filter.last_accepted().map(|last| last.at), Some(at(20)));
    }

    #[test]
    fn negative_or_nan_reported_speeds_are_treated_as_absent() {
        let mut reported = fix(0, 31.23, 121.47);
        reported.speed_kmh = Some(-3.0);
        assert_eq!(reported.usable_speed_kmh(), None);
        reported.speed_kmh = Some(f64::NAN);
        assert_eq!(reported.usable_speed_kmh(), None);
    }
}
