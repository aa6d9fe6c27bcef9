//! The sun's elevation at a place and time: pure arithmetic, no tables, no I/O.
//!
//! This is the NOAA solar position algorithm (the one behind NOAA's solar calculator
//! spreadsheets, itself after Jean Meeus, *Astronomical Algorithms*): mean longitude and
//! anomaly of the sun in Julian centuries since J2000, equation of centre, apparent
//! longitude, obliquity of the ecliptic, declination and the equation of time, then the
//! hour angle at the observer. Its error is well under a tenth of a degree for dates
//! between 1800 and 2100, which moves a twilight boundary by well under a minute at
//! mid-latitudes.
//!
//! The elevation returned is *geometric* (the centre of the sun, no atmospheric
//! refraction): twilight is defined on the geometric position, and published sunrise and
//! sunset are the moments the geometric elevation crosses −0.833° (34′ of refraction plus
//! the sun's 16′ semi-diameter).

use chrono::{DateTime, Utc};
use domain::LatLon;

/// The geometric elevation at which published sunrise and sunset happen, in degrees.
pub const SUNRISE_ELEVATION_DEG: f64 = -0.833;

/// The elevation that ends civil twilight, in degrees.
pub const CIVIL_TWILIGHT_ELEVATION_DEG: f64 = -6.0;

const UNIX_EPOCH_JULIAN_DAY: f64 = 2_440_587.5;
const J2000_JULIAN_DAY: f64 = 2_451_545.0;
const DAYS_PER_JULIAN_CENTURY: f64 = 36_525.0;
const SECONDS_PER_DAY: f64 = 86_400.0;

/// The sun's geometric elevation above the horizon, in degrees (−90 to 90), seen from
/// `position` at `at`.
///
/// ```
/// use domain::LatLon;
/// use diagnosis_core::solar::sun_elevation_deg;
/// let shanghai = LatLon::new(31.2304, 121.4737).unwrap();
/// // Local noon (UTC+8) near the June solstice: the sun stands about 82° high.
/// let noon = sun_elevation_deg(shanghai, "2026-06-21T03:54:00Z".parse().unwrap());
/// assert!((noon - 82.2).abs() < 0.3, "{noon}");
/// // Local midnight: far below the horizon.
/// assert!(sun_elevation_deg(shanghai, "2026-06-21T16:00:00Z".parse().unwrap()) < -30.0);
/// ```
pub fn sun_elevation_deg(position: LatLon, at: DateTime<Utc>) -> f64 {
    let unix_seconds = at.timestamp() as f64 + f64::from(at.timestamp_subsec_nanos()) * 1e-9;
    let julian_day = unix_seconds / SECONDS_PER_DAY + UNIX_EPOCH_JULIAN_DAY;
    let t = (julian_day - J2000_JULIAN_DAY) / DAYS_PER_JULIAN_CENTURY;

    let mean_longitude_deg = (280.466_46 + t * (36_000.769_83 + t * 0.000_303_2)).rem_euclid(360.0);
    let mean_anomaly_deg = 357.529_11 + t * (35_999.050_29 - 0.000_153_7 * t);
    let eccentricity = 0.016_708_634 - t * (0.000_042_037 + 0.000_000_126_7 * t);
    let mean_anomaly = mean_anomaly_deg.to_radians();
    let equation_of_centre_deg = mean_anomaly.sin() * (1.914_602 - t * (0.004_817 + 0.000_014 * t))
        + (2.0 * mean_anomaly).sin() * (0.019_993 - 0.000_101 * t)
        + (3.0 * mean_anomaly).sin() * 0.000_289;
    let true_longitude_deg = mean_longitude_deg + equation_of_centre_deg;
    let omega = (125.04 - 1_934.136 * t).to_radians();
    let apparent_longitude = (true_longitude_deg - 0.005_69 - 0.004_78 * omega.sin()).to_radians();

    let mean_obliquity_deg =
        23.0 + (26.0 + (21.448 - t * (46.815 + t * (0.000_59 - t * 0.001_813))) / 60.0) / 60.0;
    let obliquity = (mean_obliquity_deg + 0.002_56 * omega.cos()).to_radians();
    let declination = (obliquity.sin() * apparent_longitude.sin()).asin();

    let y = (obliquity / 2.0).tan().powi(2);
    let mean_longitude = mean_longitude_deg.to_radians();
    let equation_of_time_min = 4.0
        * (y * (2.0 * mean_longitude).sin() - 2.0 * eccentricity * mean_anomaly.sin()
            + 4.0 * eccentricity * y * mean_anomaly.sin() * (2.0 * mean_longitude).cos()
            - 0.5 * y * y * (4.0 * mean_longitude).sin()
            - 1.25 * eccentricity * eccentricity * (2.0 * mean_anomaly).sin())
        .to_degrees();

    let minutes_since_utc_midnight = unix_seconds.rem_euclid(SECONDS_PER_DAY) / 60.0;
    let true_solar_time_min =
        (minutes_since_utc_midnight + equation_of_time_min + 4.0 * position.lon())
            .rem_euclid(1_440.0);
    let hour_angle = (true_solar_time_min / 4.0 - 180.0).to_radians();

    let latitude = position.lat().to_radians();
    let cos_zenith =
        latitude.sin() * declination.sin() + latitude.cos() * declination.cos() * hour_angle.cos();
    90.0 - cos_zenith.clamp(-1.0, 1.0).acos().to_degrees()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn place(lat: f64, lon: f64) -> LatLon {
        LatLon::new(lat, lon).expect("valid test position")
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().expect("valid test time")
    }

    /// The moment, between `from` and `to`, when the elevation crosses `threshold_deg`
    /// (bisection; the elevation must be on different sides at the two ends).
    fn crossing(position: LatLon, from: &str, to: &str, threshold_deg: f64) -> DateTime<Utc> {
        let (mut low, mut high) = (utc(from), utc(to));
        let above_at_low = sun_elevation_deg(position, low) > threshold_deg;
        assert_ne!(
            above_at_low,
            sun_elevation_deg(position, high) > threshold_deg,
            "no crossing between {from} and {to}"
        );
        while high - low > Duration::seconds(1) {
            let middle = low + (high - low) / 2;
            if (sun_elevation_deg(position, middle) > threshold_deg) == above_at_low {
                low = middle;
            } else {
                high = middle;
            }
        }
        low
    }

    fn assert_within_minutes(computed: DateTime<Utc>, published: &str, minutes: i64) {
        let published = utc(published);
        let error_s = (computed - published).num_seconds().abs();
        assert!(
            error_s <= minutes * 60,
            "computed {computed}, published {published}: off by {error_s} s"
        );
    }

    const HELSINKI: (f64, f64) = (60.1699, 24.9384);
    const SHANGHAI: (f64, f64) = (31.2304, 121.4737);

    #[test]
    fn helsinki_new_year_civil_twilight_matches_published_times() {
        // Published for 1 January 2026 (local time UTC+2): civil dawn 08:26, civil dusk
        // 16:20 — the boundaries of what the safety override calls night.
        let helsinki = place(HELSINKI.0, HELSINKI.1);
        let (night_before, noon, night_after) = (
            "2026-01-01T03:00:00Z",
            "2026-01-01T10:30:00Z",
            "2026-01-01T18:00:00Z",
        );
        let civil_dawn = crossing(helsinki, night_before, noon, CIVIL_TWILIGHT_ELEVATION_DEG);
        let civil_dusk = crossing(helsinki, noon, night_after, CIVIL_TWILIGHT_ELEVATION_DEG);
        assert_within_minutes(civil_dawn, "2026-01-01T06:26:00Z", 2);
        assert_within_minutes(civil_dusk, "2026-01-01T14:20:00Z", 2);
    }

    #[test]
    fn helsinki_winter_solstice_sunrise_and_sunset_match_published_times() {
        // Published for 21 December 2008 (local time UTC+2): sunrise 09:24, sunset 15:13.
        let helsinki = place(HELSINKI.0, HELSINKI.1);
        let noon = "2008-12-21T10:20:00Z";
        let sunrise = crossing(
            helsinki,
            "2008-12-21T04:00:00Z",
            noon,
            SUNRISE_ELEVATION_DEG,
        );
        let sunset = crossing(
            helsinki,
            noon,
            "2008-12-21T17:00:00Z",
            SUNRISE_ELEVATION_DEG,
        );
        assert_within_minutes(sunrise, "2008-12-21T07:24:00Z", 2);
        assert_within_minutes(sunset, "2008-12-21T13:13:00Z", 2);
    }

    #[test]
    fn helsinki_midsummer_sunrise_and_sunset_match_published_times() {
        // Published for 21 June 2012 (local time UTC+3): sunrise 03:54, sunset 22:50.
        // The sun crosses the horizon at a shallow angle this far north, so a minute of
        // rounding is a larger share of the error budget.
        let helsinki = place(HELSINKI.0, HELSINKI.1);
        let sunrise = crossing(
            helsinki,
            "2012-06-20T22:00:00Z",
            "2012-06-21T09:00:00Z",
            SUNRISE_ELEVATION_DEG,
        );
        let sunset = crossing(
            helsinki,
            "2012-06-21T09:00:00Z",
            "2012-06-21T23:00:00Z",
            SUNRISE_ELEVATION_DEG,
        );
        assert_within_minutes(sunrise, "2012-06-21T00:54:00Z", 3);
        assert_within_minutes(sunset, "2012-06-21T19:50:00Z", 3);
    }

    #[test]
    fn shanghai_summer_sunrise_matches_the_published_time() {
        // Published for 31 July 2012 (local time UTC+8): sunrise 05:08. Sources rounding
        // to the minute and placing "Shanghai" a few kilometres apart differ by a minute
        // or two at this latitude, hence the wider margin.
        let shanghai = place(SHANGHAI.0, SHANGHAI.1);
        let sunrise = crossing(
            shanghai,
            "2012-07-30T18:00:00Z",
            "2012-07-31T02:00:00Z",
            SUNRISE_ELEVATION_DEG,
        );
        assert_within_minutes(sunrise, "2012-07-30T21:08:00Z", 3);
    }

    #[test]
    fn the_sun_stands_overhead_at_the_equator_at_an_equinox_noon() {
        // March equinox 2026 is on 20 March; at the Greenwich meridian the sun culminates
        // near 12:07 UTC (equation of time about −7 minutes).
        let elevation = sun_elevation_deg(place(0.0, 0.0), utc("2026-03-20T12:07:00Z"));
        assert!(elevation > 89.0, "{elevation}");
    }

    #[test]
    fn the_midnight_sun_keeps_rovaniemi_light_at_midsummer_midnight() {
        // Rovaniemi (66.50° N) at local midnight (UTC+3) on 21 June.
        let elevation = sun_elevation_deg(place(66.5039, 25.7294), utc("2026-06-20T21:30:00Z"));
        assert!(elevation > CIVIL_TWILIGHT_ELEVATION_DEG, "{elevation}");
    }

    #[test]
    fn the_elevation_is_always_a_finite_angle() {
        for lat in [-90.0, -45.0, 0.0, 45.0, 90.0] {
            for lon in [-180.0, -90.0, 0.0, 90.0, 180.0] {
                for at in [
                    "1970-01-01T00:00:00Z",
                    "2026-06-21T12:00:00Z",
                    "2100-12-31T23:59:59Z",
                ] {
                    let elevation = sun_elevation_deg(place(lat, lon), utc(at));
                    assert!(elevation.is_finite() && (-90.0..=90.0).contains(&elevation));
                }
            }
        }
    }
}
