//! GCJ-02 ("Mars coordinates") ↔ WGS-84 conversion.
//!
//! GNSS receivers in the field report WGS-84, but the Chinese map SDKs
//! (AMap/Gaode, Tencent, Google Maps China) both expect and return GCJ-02.
//! Mixing the two shows a stranded vehicle a few hundred metres from where it
//! really is, so every coordinate crossing that boundary goes through here.
//!
//! All functions take and return **degrees**, in the order
//! **latitude, then longitude**. Beware that many JavaScript and Python
//! libraries (and GeoJSON) use `[longitude, latitude]` instead.
//!
//! GCJ-02 is only applied inside a rectangle roughly enclosing China (see
//! [`is_outside_china`]); outside it both conversions are the identity, which
//! is what the map SDKs themselves do.

use std::f64::consts::PI;

/// Semi-major axis (m) of the Krasovsky 1940 ellipsoid. The published
/// algorithm uses it rather than WGS-84's, and using anything else would put
/// us metres away from every other implementation.
const KRASOVSKY_A: f64 = 6_378_245.0;

/// First eccentricity squared of the Krasovsky ellipsoid.
#[expect(
    clippy::excessive_precision,
    reason = "kept digit-for-digit as published so it can be checked against other implementations"
)]
const KRASOVSKY_EE: f64 = 0.00669342162296594323;

// The bounding rectangle every widely used implementation tests against.
// It is deliberately coarse (it includes e.g. Mongolia and parts of
// Southeast Asia) because that is what the SDKs do; a tighter polygon would
// disagree with them near the borders.
const LON_MIN: f64 = 72.004;
const LON_MAX: f64 = 137.8347;
const LAT_MIN: f64 = 0.8293;
const LAT_MAX: f64 = 55.8271;

/// About 0.1 mm on the ground: far below GNSS noise, yet reachable in a
/// handful of iterations.
const INVERSE_TOLERANCE_DEG: f64 = 1e-9;
const INVERSE_MAX_ITERATIONS: usize = 10;

/// Returns `true` when the point lies outside the rectangle where GCJ-02
/// offsets are applied (longitude 72.004..=137.8347, latitude
/// 0.8293..=55.8271), in which case both [`wgs84_to_gcj02`] and
/// [`gcj02_to_wgs84`] return their input unchanged.
///
/// Arguments are in degrees, latitude first, then longitude. NaN inputs count
/// as outside, so they pass through the conversions untouched.
///
/// # Examples
///
/// ```
/// use domain::gcj02::is_outside_china;
///
/// // Tokyo
/// assert!(is_outside_china(35.6762, 139.6503));
/// // Beijing
/// assert!(!is_outside_china(39.9042, 116.4074));
/// ```
#[must_use]
pub fn is_outside_china(lat_deg: f64, lon_deg: f64) -> bool {
    !((LON_MIN..=LON_MAX).contains(&lon_deg) && (LAT_MIN..=LAT_MAX).contains(&lat_deg))
}

/// Converts a WGS-84 position (e.g. from a GNSS receiver) to GCJ-02, as
/// expected by Chinese map SDKs.
///
/// Arguments and result are in degrees, as `(latitude, longitude)`. This is
/// the published forward formula on the Krasovsky ellipsoid; points for which
/// [`is_outside_china`] holds are returned unchanged.
///
/// # Examples
///
/// ```
/// use domain::gcj02::wgs84_to_gcj02;
///
/// // Beijing, from the test suite of googollee/eviltransform.
/// let (lat, lon) = wgs84_to_gcj02(39.911954, 116.377817);
/// assert!((lat - 39.913_345_455).abs() < 1e-8);
/// assert!((lon - 116.384_047_225).abs() < 1e-8);
///
/// // London is outside the GCJ-02 area, so nothing changes.
/// assert_eq!(wgs84_to_gcj02(51.5074, -0.1278), (51.5074, -0.1278));
/// ```
#[must_use]
pub fn wgs84_to_gcj02(lat_deg: f64, lon_deg: f64) -> (f64, f64) {
    if is_outside_china(lat_deg, lon_deg) {
        return (lat_deg, lon_deg);
    }
    let (d_lat, d_lon) = offset_deg(lat_deg, lon_deg);
    (lat_deg + d_lat, lon_deg + d_lon)
}

/// Converts a GCJ-02 position (e.g. a point picked on an AMap/Tencent map) back
/// to WGS-84.
///
/// Arguments and result are in degrees, as `(latitude, longitude)`. GCJ-02 has
/// no closed-form inverse, and the common one-step shortcut (subtracting the
/// offset evaluated at the GCJ-02 point) is typically off by 1–2 m, and by up
/// to about 5 m in places. This function instead iterates until the forward
/// transform of its result matches the input to within 1e-9 degrees (at most
/// 10 iterations), leaving an error well below a millimetre. Points for which
/// [`is_outside_china`] holds are returned unchanged.
///
/// # Examples
///
/// ```
/// use domain::gcj02::{gcj02_to_wgs84, wgs84_to_gcj02};
///
/// let wgs = (31.1774276, 121.5272106); // Shanghai
/// let gcj = wgs84_to_gcj02(wgs.0, wgs.1);
/// let back = gcj02_to_wgs84(gcj.0, gcj.1);
/// assert!((back.0 - wgs.0).abs() < 1e-8);
/// assert!((back.1 - wgs.1).abs() < 1e-8);
///
/// // Sydney is outside the GCJ-02 area, so nothing changes.
/// assert_eq!(gcj02_to_wgs84(-33.8688, 151.2093), (-33.8688, 151.2093));
/// ```
#[must_use]
pub fn gcj02_to_wgs84(lat_deg: f64, lon_deg: f64) -> (f64, f64) {
    if is_outside_china(lat_deg, lon_deg) {
        return (lat_deg, lon_deg);
    }
    // Fixed-point iteration rather than Newton: the offset changes by about
    // 1 % or less over the few hundred metres it shifts a point, so the
    // iteration is a strong contraction (each step gains two to three
    // decimal digits; four corrections suffice anywhere in the rectangle) and
    // no Jacobian is needed. The first step is exactly the usual one-step
    // inverse.
    //
    // The raw offset is used, without the rectangle test, so that the map
    // stays smooth for GCJ-02 points whose WGS-84 pre-image would fall just
    // across the rectangle edge (which runs almost entirely outside China).
    let (mut lat, mut lon) = (lat_deg, lon_deg);
    for _ in 0..INVERSE_MAX_ITERATIONS {
        let (d_lat, d_lon) = offset_deg(lat, lon);
        let err_lat = lat + d_lat - lat_deg;
        let err_lon = lon + d_lon - lon_deg;
        if err_lat.abs() < INVERSE_TOLERANCE_DEG && err_lon.abs() < INVERSE_TOLERANCE_DEG {
            break;
        }
        lat -= err_lat;
        lon -= err_lon;
    }
    (lat, lon)
}

/// The GCJ-02 shift, in degrees, to add to a WGS-84 point.
fn offset_deg(lat_deg: f64, lon_deg: f64) -> (f64, f64) {
    // The published polynomials are centred on (35° N, 105° E).
    let x = lon_deg - 105.0;
    let y = lat_deg - 35.0;
    let shift_lat_m = lat_shift_m(x, y);
    let shift_lon_m = lon_shift_m(x, y);

    // The shifts are lengths on the Krasovsky ellipsoid; turning them into
    // angles needs the meridian (M) and prime-vertical (N) radii of curvature
    // at this latitude.
    let lat_rad = lat_deg.to_radians();
    let sin_lat = lat_rad.sin();
    let w_sq = 1.0 - KRASOVSKY_EE * sin_lat * sin_lat;
    let w = w_sq.sqrt();
    let meridian_radius = KRASOVSKY_A * (1.0 - KRASOVSKY_EE) / (w_sq * w);
    let parallel_radius = KRASOVSKY_A / w * lat_rad.cos();

    (
        (shift_lat_m / meridian_radius).to_degrees(),
        (shift_lon_m / parallel_radius).to_degrees(),
    )
}

// The two shift functions below are the reverse-engineered GCJ-02 obfuscation,
// kept term for term in the published order (polynomial, then three pairs of
// sinusoids) so they can be compared line by line with other implementations.
// The coefficients have no physical meaning.

fn lat_shift_m(x: f64, y: f64) -> f64 {
    let mut shift = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    shift += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    shift += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    shift += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    shift
}

fn lon_shift_m(x: f64, y: f64) -> f64 {
    let mut shift = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    shift += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    shift += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    shift += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    shift
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ONE_CENTIMETRE_M: f64 = 0.01;
    const ONE_METRE_M: f64 = 1.0;

    /// Great-circle distance in metres; a sphere is plenty accurate for
    /// distances of a few metres.
    fn haversine_m(a: (f64, f64), b: (f64, f64)) -> f64 {
        const EARTH_MEAN_RADIUS_M: f64 = 6_371_008.8;
        let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
        let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
        let h = ((lat2 - lat1) / 2.0).sin().powi(2)
            + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
        2.0 * EARTH_MEAN_RADIUS_M * h.sqrt().asin()
    }

    struct ReferencePair {
        place: &'static str,
        /// (latitude, longitude) in degrees.
        wgs84: (f64, f64),
        /// (latitude, longitude) in degrees.
        gcj02: (f64, f64),
    }

    /// Pairs published by other implementations of the same formula, so they
    /// must agree with ours up to the rounding of the published digits.
    const FORMULA_PAIRS: &[ReferencePair] = &[
        // googollee/eviltransform, go/transform_test.go (same table in
        // javascript/test.js, python/test.py and csharp/EvilTransformUnitTest.cs).
        ReferencePair {
            place: "Beijing",
            wgs84: (39.911954, 116.377817),
            gcj02: (39.91334545536069, 116.38404722455657),
        },
        // googollee/eviltransform, go/transform_test.go.
        ReferencePair {
            place: "Shanghai",
            wgs84: (31.1774276, 121.5272106),
            gcj02: (31.17530398364597, 121.531541859215),
        },
        // googollee/eviltransform, go/transform_test.go.
        ReferencePair {
            place: "Shenzhen",
            wgs84: (22.543847, 113.912316),
            gcj02: (22.540796131694766, 113.9171764808363),
        },
        // wandergis/coordtransform, test/app.js: `wgs84togcj02(116.404, 39.915)`.
        ReferencePair {
            place: "Beijing, Tiananmen",
            wgs84: (39.915, 116.404),
            gcj02: (39.91640428150164, 116.41024449916938),
        },
        // hujiulong/gcoord, test/unit/crs/WGS84.spec.ts ("WGS84 to GCJ02",
        // written there as [lon, lat]).
        ReferencePair {
            place: "Jilin, near Baicheng",
            wgs84: (45.0, 123.0),
            gcj02: (45.00197815, 123.00607541),
        },
    ];

    /// hujiulong/gcoord, test/fixtures/china-cities.json, swapped from its
    /// `[lon, lat]` order. Its GCJ-02 column was evidently not produced by the
    /// published formula (gcoord's own code, the same formula, disagrees with
    /// it exactly as we do), presumably captured from a live provider service:
    /// it sits a near-constant ~0.5 m north and ~0.5 m east (0.65–0.75 m in
    /// all) of the formula. That makes it an independent check, held to the
    /// 1 m contract only.
    const CITY_FIXTURE_PAIRS: &[ReferencePair] = &[
        // 北京市 东城区
        ReferencePair {
            place: "Beijing, Dongcheng",
            wgs84: (39.9028057, 116.4011517),
            gcj02: (39.9042136, 116.4074002),
        },
        // 上海市 黄浦区
        ReferencePair {
            place: "Shanghai, Huangpu",
            wgs84: (31.2323443, 121.4691633),
            gcj02: (31.2304194, 121.4737061),
        },
        // 广州市 越秀区
        ReferencePair {
            place: "Guangzhou",
            wgs84: (23.131788, 113.2590543),
            gcj02: (23.1291146, 113.2643859),
        },
        // 成都市 武侯区
        ReferencePair {
            place: "Chengdu",
            wgs84: (30.5747262, 104.0640437),
            gcj02: (30.5722732, 104.0665489),
        },
        // 哈尔滨市 松北区
        ReferencePair {
            place: "Harbin",
            wgs84: (45.8017783, 126.528903),
            gcj02: (45.8037804, 126.5349726),
        },
        // 乌鲁木齐市 水磨沟区
        ReferencePair {
            place: "Urumqi",
            wgs84: (43.824388, 87.6140048),
            gcj02: (43.8255962, 87.6168579),
        },
        // 拉萨市 城关区
        ReferencePair {
            place: "Lhasa",
            wgs84: (29.655277, 91.1706414),
            gcj02: (29.6524954, 91.1721167),
        },
        // 克孜勒苏柯尔克孜自治州 阿图什市, the westernmost city in the fixture.
        ReferencePair {
            place: "Artux",
            wgs84: (39.7141079, 76.1647682),
            gcj02: (39.7145315, 76.1678223),
        },
        // 大兴安岭地区 塔河县, the northernmost.
        ReferencePair {
            place: "Tahe, Greater Khingan",
            wgs84: (52.3338635, 124.7038236),
            gcj02: (52.3352664, 124.7115324),
        },
        // 三亚市
        ReferencePair {
            place: "Sanya",
            wgs84: (18.2545417, 109.507813),
            gcj02: (18.2528524, 109.5119135),
        },
        // 三沙市 西沙群岛, the southernmost.
        ReferencePair {
            place: "Xisha Islands",
            wgs84: (16.8334801, 112.3337959),
            gcj02: (16.8318454, 112.3387036),
        },
    ];

    fn all_reference_pairs() -> impl Iterator<Item = &'static ReferencePair> {
        FORMULA_PAIRS.iter().chain(CITY_FIXTURE_PAIRS)
    }

    /// Kept half a degree inside the rectangle, so that neither a point nor
    /// its image crosses the edge where the transform is, by design,
    /// discontinuous.
    fn rectangle_grid() -> impl Iterator<Item = (f64, f64)> {
        (0..=109).flat_map(|i| {
            let lat = 1.0 + 0.5 * f64::from(i);
            (0..=130).map(move |j| (lat, 72.5 + 0.5 * f64::from(j)))
        })
    }

    fn assert_pairs_within(pairs: &[&ReferencePair], tolerance_m: f64) {
        for pair in pairs {
            let forward = wgs84_to_gcj02(pair.wgs84.0, pair.wgs84.1);
            let inverse = gcj02_to_wgs84(pair.gcj02.0, pair.gcj02.1);
            let forward_m = haversine_m(forward, pair.gcj02);
            let inverse_m = haversine_m(inverse, pair.wgs84);
            assert!(
                forward_m < tolerance_m,
                "{}: WGS-84 → GCJ-02 gave {forward:?}, published {:?}, {forward_m:.4} m apart",
                pair.place,
                pair.gcj02
            );
            assert!(
                inverse_m < tolerance_m,
                "{}: GCJ-02 → WGS-84 gave {inverse:?}, published {:?}, {inverse_m:.4} m apart",
                pair.place,
                pair.wgs84
            );
        }
    }

    #[test]
    fn converts_every_published_pair_within_one_metre_in_both_directions() {
        let pairs: Vec<_> = all_reference_pairs().collect();
        assert_pairs_within(&pairs, ONE_METRE_M);
    }

    #[test]
    fn reproduces_pairs_from_other_formula_implementations_to_the_centimetre() {
        let pairs: Vec<_> = FORMULA_PAIRS.iter().collect();
        assert_pairs_within(&pairs, ONE_CENTIMETRE_M);
    }

    #[test]
    fn leaves_tokyo_london_sydney_and_new_york_unchanged() {
        let outside = [
            ("Tokyo", (35.6762, 139.6503)),
            ("London", (51.5074, -0.1278)),
            ("Sydney", (-33.8688, 151.2093)),
            ("New York", (40.7128, -74.0060)),
        ];
        for (place, (lat, lon)) in outside {
            assert!(is_outside_china(lat, lon), "{place} should be outside");
            assert_eq!(wgs84_to_gcj02(lat, lon), (lat, lon), "{place}, forward");
            assert_eq!(gcj02_to_wgs84(lat, lon), (lat, lon), "{place}, inverse");
        }
    }

    #[test]
    fn treats_every_reference_city_as_inside_china() {
        for pair in all_reference_pairs() {
            assert!(
                !is_outside_china(pair.wgs84.0, pair.wgs84.1),
                "{}",
                pair.place
            );
            assert!(
                !is_outside_china(pair.gcj02.0, pair.gcj02.1),
                "{}",
                pair.place
            );
        }
    }

    #[test]
    fn passes_nan_through_unchanged() {
        let (lat, lon) = wgs84_to_gcj02(f64::NAN, 116.4);
        assert!(lat.is_nan());
        assert_eq!(lon, 116.4);
        let (lat, lon) = gcj02_to_wgs84(39.9, f64::NAN);
        assert_eq!(lat, 39.9);
        assert!(lon.is_nan());
    }

    #[test]
    fn round_trips_a_grid_over_china_within_one_centimetre() {
        let mut worst_m: f64 = 0.0;
        for wgs in rectangle_grid() {
            let gcj = wgs84_to_gcj02(wgs.0, wgs.1);
            let back = gcj02_to_wgs84(gcj.0, gcj.1);
            worst_m = worst_m.max(haversine_m(wgs, back));
        }
        assert!(
            worst_m < ONE_CENTIMETRE_M,
            "worst round-trip error {worst_m} m"
        );
    }

    #[test]
    fn inverse_maps_back_onto_its_input_to_within_a_nanodegree() {
        for gcj in rectangle_grid() {
            let wgs = gcj02_to_wgs84(gcj.0, gcj.1);
            let again = wgs84_to_gcj02(wgs.0, wgs.1);
            assert!(
                (again.0 - gcj.0).abs() < 1e-9 && (again.1 - gcj.1).abs() < 1e-9,
                "{gcj:?} -> {wgs:?} -> {again:?}"
            );
        }
    }

    #[test]
    fn iterating_is_needed_because_the_one_step_inverse_is_metres_off() {
        // Guards against the loop silently degenerating to the shortcut.
        let mut worst_one_step_m: f64 = 0.0;
        for wgs in rectangle_grid() {
            let gcj = wgs84_to_gcj02(wgs.0, wgs.1);
            let (d_lat, d_lon) = offset_deg(gcj.0, gcj.1);
            worst_one_step_m =
                worst_one_step_m.max(haversine_m(wgs, (gcj.0 - d_lat, gcj.1 - d_lon)));
        }
        assert!(
            worst_one_step_m > ONE_METRE_M,
            "one-step inverse unexpectedly good: {worst_one_step_m} m"
        );
    }

    #[test]
    fn shifts_reference_cities_by_one_to_seven_hundred_metres() {
        // Cities only: the offset field is not bounded below everywhere in
        // China (it dips to about 18 m near 37.1° N 96.6° E in Qinghai), so a
        // grid would wrongly fail the lower bound.
        for pair in all_reference_pairs() {
            let shift_m = haversine_m(pair.wgs84, wgs84_to_gcj02(pair.wgs84.0, pair.wgs84.1));
            assert!(
                (100.0..=700.0).contains(&shift_m),
                "{} shifted by {shift_m} m",
                pair.place
            );
        }
    }

    #[test]
    fn never_shifts_a_point_by_more_than_750_metres() {
        // Catches unit slips (radians vs degrees, metres vs degrees), which
        // produce shifts of kilometres or more.
        for wgs in rectangle_grid() {
            let shift_m = haversine_m(wgs, wgs84_to_gcj02(wgs.0, wgs.1));
            assert!(shift_m < 750.0, "{wgs:?} shifted by {shift_m} m");
        }
    }

    proptest! {
        #[test]
        fn round_trips_any_point_inside_china_within_one_centimetre(
            lat in 1.0..55.5_f64,
            lon in 72.5..137.5_f64,
        ) {
            let gcj = wgs84_to_gcj02(lat, lon);
            let back = gcj02_to_wgs84(gcj.0, gcj.1);
            prop_assert!(haversine_m((lat, lon), back) < ONE_CENTIMETRE_M);
        }

        #[test]
        fn leaves_any_point_outside_the_rectangle_unchanged(
            lat in -90.0..90.0_f64,
            lon in -180.0..180.0_f64,
        ) {
            prop_assume!(is_outside_china(lat, lon));
            prop_assert_eq!(wgs84_to_gcj02(lat, lon), (lat, lon));
            prop_assert_eq!(gcj02_to_wgs84(lat, lon), (lat, lon));
        }
    }
}
