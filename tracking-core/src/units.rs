//! Small numeric helpers: seconds between instants, instants plus seconds, medians.

use chrono::Duration;
use domain::time::Timestamp;

/// The longest span an estimate may add to an instant: a week. Keeps absurd estimates
/// (a speed near zero) from overflowing time arithmetic.
const MAX_OFFSET_S: f64 = 7.0 * 24.0 * 3600.0;

/// Seconds from `earlier` to `later` (negative if `later` is before `earlier`).
pub(crate) fn seconds_between(earlier: Timestamp, later: Timestamp) -> f64 {
    (later - earlier).num_milliseconds() as f64 / 1000.0
}

/// `at` plus `seconds` (clamped to a week either way), to the millisecond.
pub(crate) fn plus_seconds(at: Timestamp, seconds: f64) -> Timestamp {
    let clamped_s = if seconds.is_finite() {
        seconds.clamp(-MAX_OFFSET_S, MAX_OFFSET_S)
    } else if seconds > 0.0 {
        MAX_OFFSET_S
    } else {
        0.0
    };
    at + Duration::milliseconds((clamped_s * 1000.0).round() as i64)
}

/// The median of `values` (mean of the middle two for an even count); `None` when empty.
pub(crate) fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        Some(values[middle])
    } else {
        Some((values[middle - 1] + values[middle]) / 2.0)
    }
}

/// km/h from m/s.
pub(crate) fn kmh_from_mps(speed_mps: f64) -> f64 {
    speed_mps * 3.6
}

/// m/s from km/h.
pub(crate) fn mps_from_kmh(speed_kmh: f64) -> f64 {
    speed_kmh / 3.6
}

#[cfg(test)]
pub(crate) mod test_support {
    use domain::geo::LatLon;
    use domain::time::Timestamp;

    use crate::fix::Fix;

    /// 2026-11-22T03:00:00Z plus `seconds`.
    pub(crate) fn at(seconds: i64) -> Timestamp {
        "2026-11-22T03:00:00Z"
            .parse::<Timestamp>()
            .expect("a valid instant")
            + chrono::Duration::seconds(seconds)
    }

    pub(crate) fn point(lat: f64, lon: f64) -> LatLon {
        LatLon::new(lat, lon).expect("a valid position")
    }

    pub(crate) fn fix(seconds: i64, lat: f64, lon: f64) -> Fix {
        Fix {
            at: at(seconds),
            position: point(lat, lon),
            speed_kmh: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(vec![5.0, 1.0, 100.0]), Some(5.0));
        assert_eq!(median(Vec::new()), None);
    }

    #[test]
    fn adding_an_infinite_estimate_is_clamped_to_a_week() {
        let start = test_support::at(0);
        assert_eq!(
            plus_seconds(start, f64::INFINITY),
            start + Duration::days(7)
        );
        assert_eq!(plus_seconds(start, f64::NAN), start);
    }
}
