//! The unit-sphere geometry behind the index: chords and great circles, and the 3-D box
//! that covers a latitude/longitude box.
//!
//! For two unit vectors at central angle θ the chord is `2·sin(θ/2)`, which grows strictly
//! with θ on `[0, π]`. So the R-tree can order by squared chord (what rstar computes) and
//! the result is the great-circle order; metres only need converting at the edges.

use domain::geo::EARTH_RADIUS_M;
use rstar::AABB;

/// A point on the unit sphere, `[x, y, z]`, as [`domain::LatLon::to_unit_vector`] makes it.
pub(crate) type UnitVector = [f64; 3];

/// Great-circle distance in metres between two unit vectors whose squared chord is
/// `chord_2`: `d = 2R·asin(chord / 2)`.
pub(crate) fn distance_m_from_chord_2(chord_2: f64) -> f64 {
    let half_chord = (chord_2.max(0.0).sqrt() / 2.0).min(1.0);
    2.0 * EARTH_RADIUS_M * half_chord.asin()
}

/// The squared chord of a great-circle distance, for comparing with what the R-tree
/// reports. Distances of half the circumference or more cover the whole sphere and map to
/// infinity; a negative or NaN distance covers nothing and maps to `None`.
pub(crate) fn chord_2_from_distance_m(distance_m: f64) -> Option<f64> {
    if distance_m.is_nan() || distance_m < 0.0 {
        return None;
    }
    let half_angle = distance_m / (2.0 * EARTH_RADIUS_M);
    if half_angle >= std::f64::consts::FRAC_PI_2 {
        return Some(f64::INFINITY);
    }
    let chord = 2.0 * half_angle.sin();
    Some(chord * chord)
}

/// A latitude/longitude box in degrees. `min_lon > max_lon` means the box crosses the
/// antimeridian (from `min_lon` east to 180 and on from -180 to `max_lon`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LatLonBox {
    min_lat: f64,
    min_lon: f64,
    max_lat: f64,
    max_lon: f64,
}

/// Slack added to every side of a covering envelope. Unit-vector components carry
/// rounding errors around 1e-16; 1e-9 (6 mm on the ground) is far above that and lets a
/// few more points through to the exact check, never fewer.
const ENVELOPE_SLACK: f64 = 1e-9;

impl LatLonBox {
    /// The box, with bounds clamped to the valid ranges; `None` when it is empty (any bound
    /// not finite, or `min_lat > max_lat`).
    pub(crate) fn new(min_lat: f64, min_lon: f64, max_lat: f64, max_lon: f64) -> Option<Self> {
        let bounds = [min_lat, min_lon, max_lat, max_lon];
        if bounds.iter().any(|bound| !bound.is_finite()) || min_lat > max_lat {
            return None;
        }
        Some(Self {
            min_lat: min_lat.clamp(-90.0, 90.0),
            min_lon: min_lon.clamp(-180.0, 180.0),
            max_lat: max_lat.clamp(-90.0, 90.0),
            max_lon: max_lon.clamp(-180.0, 180.0),
        })
    }

    fn crosses_antimeridian(&self) -> bool {
        self.min_lon > self.max_lon
    }

    /// Whether a position lies in the box, edges included.
    pub(crate) fn contains(&self, lat: f64, lon: f64) -> bool {
        let lat_inside = (self.min_lat..=self.max_lat).contains(&lat);
        let lon_inside = if self.crosses_antimeridian() {
            lon >= self.min_lon || lon <= self.max_lon
        } else {
            (self.min_lon..=self.max_lon).contains(&lon)
        };
        lat_inside && lon_inside
    }

    /// An axis-aligned 3-D box that holds the unit vector of every position in this box.
    ///
    /// `x = cos(lat)·cos(lon)`, `y = cos(lat)·sin(lon)`, `z = sin(lat)`: each factor's
    /// range over the box is known exactly (its values at the ends, plus its extremes when
    /// the range passes 0°, ±90° or ±180°), and because `cos(lat) ≥ 0` the extremes of a
    /// product are among the products of the factors' extremes.
    pub(crate) fn covering_envelope(&self) -> AABB<UnitVector> {
        let lon_ranges: &[(f64, f64)] = if self.crosses_antimeridian() {
            &[(self.min_lon, 180.0), (-180.0, self.max_lon)]
        } else {
            &[(self.min_lon, self.max_lon)]
        };
        let cos_lat = cos_range(self.min_lat, self.max_lat);
        let mut lower = [f64::INFINITY; 3];
        let mut upper = [f64::NEG_INFINITY; 3];
        for &(west, east) in lon_ranges {
            let ranges = [cos_range(west, east), sin_range(west, east)];
            for (axis, lon_factor) in ranges.into_iter().enumerate() {
                for lat_factor in [cos_lat.0, cos_lat.1] {
                    for lon_value in [lon_factor.0, lon_factor.1] {
                        let product = lat_factor * lon_value;
                        lower[axis] = lower[axis].min(product);
                        upper[axis] = upper[axis].max(product);
                    }
                }
            }
        }
        lower[2] = self.min_lat.to_radians().sin();
        upper[2] = self.max_lat.to_radians().sin();
        for axis in 0..3 {
            lower[axis] -= ENVELOPE_SLACK;
            upper[axis] += ENVELOPE_SLACK;
        }
        AABB::from_corners(lower, upper)
    }
}

/// `(min, max)` of `cos(angle)` for `angle` in `[from, to]` degrees, `-180 ≤ from ≤ to ≤ 180`.
fn cos_range(from_deg: f64, to_deg: f64) -> (f64, f64) {
    let ends = [from_deg.to_radians().cos(), to_deg.to_radians().cos()];
    let mut min = ends[0].min(ends[1]);
    let mut max = ends[0].max(ends[1]);
    if from_deg <= 0.0 && 0.0 <= to_deg {
        max = 1.0;
    }
    if from_deg <= -180.0 || to_deg >= 180.0 {
        min = -1.0;
    }
    (min, max)
}

/// `(min, max)` of `sin(angle)` for `angle` in `[from, to]` degrees, `-180 ≤ from ≤ to ≤ 180`.
fn sin_range(from_deg: f64, to_deg: f64) -> (f64, f64) {
    let ends = [from_deg.to_radians().sin(), to_deg.to_radians().sin()];
    let mut min = ends[0].min(ends[1]);
    let mut max = ends[0].max(ends[1]);
    if from_deg <= 90.0 && 90.0 <= to_deg {
        max = 1.0;
    }
    if from_deg <= -90.0 && -90.0 <= to_deg {
        min = -1.0;
    }
    (min, max)
}

#[cfg(test)]
mod tests {
    use domain::LatLon;
    use proptest::prelude::*;
    use rstar::Envelope;

    use super::*;

    #[test]
    fn chord_and_great_circle_distance_convert_both_ways() {
        for distance_m in [0.0, 0.001, 1.0, 850.0, 25_000.0, 1_234_567.0, 19_000_000.0] {
            let chord_2 = chord_2_from_distance_m(distance_m).unwrap();
            let back = distance_m_from_chord_2(chord_2);
            assert!(
                (back - distance_m).abs() <= 1e-6 * distance_m.max(1.0),
                "{distance_m} → {back}"
            );
        }
    }

    #[test]
    fn the_chord_of_two_nearby_points_gives_their_haversine_distance() {
        let a = LatLon::new(31.2304, 121.4737).unwrap();
        let b = LatLon::new(31.2404, 121.4837).unwrap();
        let (u, v) = (a.to_unit_vector(), b.to_unit_vector());
        let chord_2: f64 = (0..3).map(|axis| (u[axis] - v[axis]).powi(2)).sum();
        assert!((distance_m_from_chord_2(chord_2) - a.distance_m(&b)).abs() < 1e-6);
    }

    #[test]
    fn half_the_circumference_or_more_covers_everything_and_a_negative_distance_nothing() {
        let half_circumference_m = std::f64::consts::PI * EARTH_RADIUS_M;
        assert_eq!(
            chord_2_from_distance_m(half_circumference_m),
            Some(f64::INFINITY)
        );
        assert_eq!(chord_2_from_distance_m(f64::INFINITY), Some(f64::INFINITY));
        assert_eq!(chord_2_from_distance_m(-1.0), None);
        assert_eq!(chord_2_from_distance_m(f64::NAN), None);
        let antipodal_m = distance_m_from_chord_2(4.0);
        assert!((antipodal_m - half_circumference_m).abs() < 1e-6);
    }

    #[test]
    fn an_empty_or_undefined_box_is_refused() {
        assert!(LatLonBox::new(10.0, 0.0, 9.0, 1.0).is_none());
        assert!(LatLonBox::new(f64::NAN, 0.0, 9.0, 1.0).is_none());
        assert!(LatLonBox::new(0.0, 0.0, 0.0, f64::INFINITY).is_none());
    }

    #[test]
    fn a_box_across_the_antimeridian_contains_both_sides_but_not_the_middle() {
        let pacific = LatLonBox::new(-10.0, 170.0, 10.0, -170.0).unwrap();
        assert!(pacific.contains(0.0, 175.0));
        assert!(pacific.contains(0.0, -175.0));
        assert!(pacific.contains(0.0, 180.0));
        assert!(!pacific.contains(0.0, 0.0));
        assert!(!pacific.contains(11.0, 175.0));
    }

    fn any_box() -> impl Strategy<Value = LatLonBox> {
        (
            -90.0..=90.0f64,
            -90.0..=90.0f64,
            -180.0..=180.0f64,
            -180.0..=180.0f64,
        )
            .prop_map(|(lat_a, lat_b, lon_a, lon_b)| {
                LatLonBox::new(lat_a.min(lat_b), lon_a, lat_a.max(lat_b), lon_b).unwrap()
            })
    }

    proptest! {
        #[test]
        fn the_covering_envelope_holds_every_point_of_its_box(
            bbox in any_box(),
            fractions in prop::collection::vec((0.0..=1.0f64, 0.0..=1.0f64), 1..50),
        ) {
            let envelope = bbox.covering_envelope();
            let lon_span = if bbox.crosses_antimeridian() {
                bbox.max_lon + 360.0 - bbox.min_lon
            } else {
                bbox.max_lon - bbox.min_lon
            };
            let corners_and_inner = fractions
                .into_iter()
                .chain([(0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)]);
            for (lat_fraction, lon_fraction) in corners_and_inner {
                let lat = bbox.min_lat + lat_fraction * (bbox.max_lat - bbox.min_lat);
                let mut lon = bbox.min_lon + lon_fraction * lon_span;
                if lon > 180.0 {
                    lon -= 360.0;
                }
                let point = LatLon::new(lat.clamp(-90.0, 90.0), lon.clamp(-180.0, 180.0)).unwrap();
                prop_assert!(
                    envelope.contains_point(&point.to_unit_vector()),
                    "{point:?} outside the envelope of {bbox:?}"
                );
            }
        }
    }
}
