//! The path of the assigned vehicle as GeoJSON, for `GET /v1/cases/{id}/trajectory`.
//!
//! The shape is a `FeatureCollection` (RFC 7946, coordinates `[lon, lat]`, WGS-84):
//!
//! * the first feature is the path: a `LineString` through every usable fix in time order,
//!   with `properties.times` (RFC 3339, one per coordinate), `properties.speeds_kmh` (the
//!   reported speed or `null`, one per coordinate), the driven `distance_m`, the first and
//!   last time, and `ignored`: how many stored fixes were left out as `duplicates` or
//!   `implausible_jumps`. With fewer
//!   than two usable fixes its `geometry` is `null`;
//! * then one `Point` feature per usable fix with `properties.time`, `properties.speed_kmh`
//!   and `properties.seq` (its index in the path), for a map that shows timed markers.
//!
//! Stored fixes are sorted by time first (a late batch upload belongs where it happened),
//! then run through the same [`FixFilter`] as the live progress: repeats and impossible
//! jumps are left out and counted.

use domain::ids::{CaseId, VehicleId};
use domain::time::Timestamp;
use serde::Serialize;

use crate::fix::{FilterConfig, Fix, FixFilter, FixVerdict};
use crate::units::seconds_between;

/// A GeoJSON `FeatureCollection` holding a trajectory. Serialize it as the response body.
///
/// ```
/// use domain::{CaseId, LatLon, Timestamp, VehicleId};
/// use tracking_core::{FilterConfig, Fix, Trajectory};
/// let t0: Timestamp = "2026-11-22T03:00:00Z".parse().unwrap();
/// let fix = |s: i64, lat: f64| Fix {
///     at: t0 + chrono::Duration::seconds(s),
///     position: LatLon::new(lat, -104.99).unwrap(),
///     speed_kmh: None,
/// };
/// let case_id: CaseId = "01936f5e-0000-7000-8000-000000000001".parse().unwrap();
/// let vehicle_id: VehicleId = "01936f5e-0000-7000-8000-000000000002".parse().unwrap();
/// let fixes = [fix(10, 39.7010), fix(0, 39.7000), fix(0, 39.7000)];
/// let trajectory = Trajectory::from_fixes(case_id, vehicle_id, &fixes, &FilterConfig::default());
/// let json = serde_json::to_value(&trajectory).unwrap();
/// assert_eq!(json["type"], "FeatureCollection");
/// let path = &json["features"][0];
/// assert_eq!(path["geometry"]["type"], "LineString");
/// assert_eq!(path["geometry"]["coordinates"][0], serde_json::json!([-104.99, 39.7]));
/// assert_eq!(path["properties"]["times"][1], "2026-11-22T03:00:10Z");
/// assert_eq!(path["properties"]["ignored"]["duplicates"], 1);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trajectory {
    #[serde(rename = "type")]
    kind: &'static str,
    features: Vec<Feature>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Feature {
    #[serde(rename = "type")]
    kind: &'static str,
    geometry: Option<Geometry>,
    properties: Properties,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
enum Geometry {
    LineString { coordinates: Vec<[f64; 2]> },
    Point { coordinates: [f64; 2] },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Properties {
    Path {
        case_id: CaseId,
        vehicle_id: VehicleId,
        #[serde(with = "rfc3339_list")]
        times: Vec<Timestamp>,
        speeds_kmh: Vec<Option<f64>>,
        distance_m: f64,
        #[serde(with = "rfc3339_option")]
        started_at: Option<Timestamp>,
        #[serde(with = "rfc3339_option")]
        ended_at: Option<Timestamp>,
        ignored: Ignored,
    },
    Fix {
        seq: usize,
        #[serde(with = "rfc3339")]
        time: Timestamp,
        speed_kmh: Option<f64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Ignored {
    /// Repeats of a fix already in the path.
    duplicates: u64,
    /// Outliers left out of the path.
    implausible_jumps: u64,
}

impl Trajectory {
    /// Builds the trajectory of `vehicle_id` for `case_id` from its stored fixes, in any
    /// order. Nothing is dated in the future here: the fixes are history.
    pub fn from_fixes(
        case_id: CaseId,
        vehicle_id: VehicleId,
        fixes: &[Fix],
        filter_config: &FilterConfig,
    ) -> Self {
        let mut sorted: Vec<Fix> = fixes.to_vec();
        sorted.sort_by_key(|fix| fix.at);
        let mut filter = FixFilter::default();
        let mut kept: Vec<Fix> = Vec::with_capacity(sorted.len());
        let mut rejected_since_kept: Vec<Fix> = Vec::new();
        for fix in &sorted {
            match filter.check(fix, fix.at, filter_config) {
                FixVerdict::Accepted => {
                    kept.push(*fix);
                    rejected_since_kept.clear();
                }
                FixVerdict::Relocated => {
                    // The fixes before were built on an outlier: keep the run of rejected
                    // fixes that agrees with this one, and drop the kept fixes it cannot be
                    // reached from.
                    let run = trailing_consistent_run(&rejected_since_kept, fix, filter_config);
                    let run_start = run.first().copied().unwrap_or(*fix);
                    while kept
                        .last()
                        .is_some_and(|last| !plausible(last, &run_start, filter_config))
                    {
                        kept.pop();
                    }
                    kept.extend(run);
                    kept.push(*fix);
                    rejected_since_kept.clear();
                }
                FixVerdict::ImplausibleJump => rejected_since_kept.push(*fix),
                FixVerdict::Duplicate | FixVerdict::OutOfOrder | FixVerdict::FutureDated => {}
            }
        }
        let duplicates = filter.counters().duplicates;
        let implausible_jumps =
            (sorted.len() as u64).saturating_sub(kept.len() as u64 + duplicates);
        let coordinates: Vec<[f64; 2]> = kept
            .iter()
            .map(|fix| [fix.position.lon(), fix.position.lat()])
            .collect();
        let distance_m = kept
            .windows(2)
            .map(|pair| pair[0].position.distance_m(&pair[1].position))
            .sum();
        let path = Feature {
            kind: "Feature",
            geometry: (coordinates.len() >= 2).then(|| Geometry::LineString {
                coordinates: coordinates.clone(),
            }),
            properties: Properties::Path {
                case_id,
                vehicle_id,
                times: kept.iter().map(|fix| fix.at).collect(),
                speeds_kmh: kept.iter().map(Fix::usable_speed_kmh).collect(),
                distance_m,
                started_at: kept.first().map(|fix| fix.at),
                ended_at: kept.last().map(|fix| fix.at),
                ignored: Ignored {
                    duplicates,
                    implausible_jumps,
                },
            },
        };
        let points = kept.iter().enumerate().map(|(seq, fix)| Feature {
            kind: "Feature",
            geometry: Some(Geometry::Point {
                coordinates: [fix.position.lon(), fix.position.lat()],
            }),
            properties: Properties::Fix {
                seq,
                time: fix.at,
                speed_kmh: fix.usable_speed_kmh(),
            },
        });
        Self {
            kind: "FeatureCollection",
            features: std::iter::once(path).chain(points).collect(),
        }
    }

    /// Number of positions in the path.
    pub fn len(&self) -> usize {
        self.features.len().saturating_sub(1)
    }

    /// Whether the path has no position at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The rejected fixes just before `relocated` that agree with each other and with it.
fn trailing_consistent_run(rejected: &[Fix], relocated: &Fix, config: &FilterConfig) -> Vec<Fix> {
    let mut run: Vec<Fix> = Vec::new();
    let mut next = *relocated;
    for fix in rejected.iter().rev() {
        if !plausible(fix, &next, config) {
            break;
        }
        run.push(*fix);
        next = *fix;
    }
    run.reverse();
    run
}

/// Whether `to` is reachable from `from` at a plausible speed.
fn plausible(from: &Fix, to: &Fix, config: &FilterConfig) -> bool {
    let elapsed_s = seconds_between(from.at, to.at);
    let distance_m = from.position.distance_m(&to.position);
    if elapsed_s <= 0.0 {
        return distance_m == 0.0;
    }
    distance_m / elapsed_s * 3.6 <= config.max_speed_kmh
}

mod rfc3339 {
    use domain::time::Timestamp;
    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(
        at: &Timestamp,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }
}

mod rfc3339_option {
    use domain::time::Timestamp;
    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(
        at: &Option<Timestamp>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => super::rfc3339::serialize(at, serializer),
            None => serializer.serialize_none(),
        }
    }
}

mod rfc3339_list {
    use domain::time::Timestamp;
    use serde::Serializer;
    use serde::ser::SerializeSeq;

    pub(super) fn serialize<S: Serializer>(
        times: &[Timestamp],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(times.len()))?;
        for at in times {
            seq.serialize_element(&at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::units::test_support::fix;

    fn ids() -> (CaseId, VehicleId) {
        (
            "01936f5e-0000-7000-8000-000000000001".parse().unwrap(),
            "01936f5e-0000-7000-8000-000000000002".parse().unwrap(),
        )
    }

    fn geojson(fixes: &[Fix]) -> Value {
        let (case_id, vehicle_id) = ids();
        let trajectory =
            Trajectory::from_fixes(case_id, vehicle_id, fixes, &FilterConfig::default());
        serde_json::to_value(&trajectory).unwrap()
    }

    #[test]
    fn the_path_is_in_time_order_with_one_time_per_coordinate() {
        let json = geojson(&[
            fix(20, 39.7020, -104.99),
            fix(0, 39.7000, -104.99),
            fix(10, 39.7010, -104.99),
        ]);
        let path = &json["features"][0];
        assert_eq!(
            path["geometry"]["coordinates"],
            json!([[-104.99, 39.70], [-104.99, 39.701], [-104.99, 39.702]])
        );
        assert_eq!(
            path["properties"]["times"],
            json!([
                "2026-11-22T03:00:00Z",
                "2026-11-22T03:00:10Z",
                "2026-11-22T03:00:20Z"
            ])
        );
        assert_eq!(path["properties"]["kind"], "path");
        assert_eq!(path["properties"]["started_at"], "2026-11-22T03:00:00Z");
        assert_eq!(path["properties"]["ended_at"], "2026-11-22T03:00:20Z");
        let distance_m = path["properties"]["distance_m"].as_f64().unwrap();
        assert!((distance_m - 222.4).abs() < 1.0, "{distance_m}");
    }

    #[test]
    fn every_fix_is_also_a_timed_point() {
        let json = geojson(&[fix(0, 39.7000, -104.99), fix(10, 39.7010, -104.99)]);
        let features = json["features"].as_array().unwrap();
        assert_eq!(features.len(), 3);
        assert_eq!(
            features[2],
            json!({
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [-104.99, 39.701]},
                "properties": {"kind": "fix", "seq": 1, "time": "2026-11-22T03:00:10Z", "speed_kmh": null}
            })
        );
    }

    #[test]
    fn jumps_and_repeats_are_left_out_and_counted() {
        let json = geojson(&[
            fix(0, 39.7000, -104.99),
            fix(0, 39.7000, -104.99),
            fix(1, 42.4000, -104.99), // 300 km in a second
            fix(10, 39.7010, -104.99),
        ]);
        let path = &json["features"][0];
        assert_eq!(path["geometry"]["coordinates"].as_array().unwrap().len(), 2);
        assert_eq!(
            path["properties"]["ignored"],
            json!({"duplicates": 1, "implausible_jumps": 1})
        );
    }

    #[test]
    fn a_wrong_first_fix_is_dropped_and_the_real_track_kept() {
        let json = geojson(&[
            fix(0, 42.4000, -104.99),
            fix(5, 39.7000, -104.99),
            fix(10, 39.7003, -104.99),
            fix(15, 39.7006, -104.99),
            fix(20, 39.7009, -104.99),
        ]);
        let path = &json["features"][0];
        let latitudes: Vec<f64> = path["geometry"]["coordinates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| pair[1].as_f64().unwrap())
            .collect();
        assert_eq!(latitudes, vec![39.7000, 39.7003, 39.7006, 39.7009]);
        assert_eq!(path["properties"]["ignored"]["implausible_jumps"], 1);
    }

    #[test]
    fn fewer_than_two_fixes_give_a_path_without_geometry() {
        for fixes in [vec![], vec![fix(0, 39.70, -104.99)]] {
            let json = geojson(&fixes);
            assert_eq!(json["type"], "FeatureCollection");
            assert_eq!(json["features"][0]["geometry"], Value::Null);
            assert_eq!(json["features"].as_array().unwrap().len(), 1 + fixes.len());
        }
    }
}
