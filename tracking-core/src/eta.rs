//! The default travel-time model: great-circle distance × a detour factor ÷ a nominal
//! speed for the road kind, plus an allowance for getting the truck on the road.
//!
//! The same model quotes the ETA when a vehicle accepts (the promise) and serves as the
//! prior of the live prediction, so a truck that behaves exactly as the model assumes is
//! predicted to arrive exactly when it was quoted.

use domain::case::RoadKind;
use domain::geo::LatLon;
use serde::{Deserialize, Serialize};

use crate::units::mps_from_kmh;

/// Detour factor, nominal speeds and departure allowance.
///
/// ```
/// use domain::{LatLon, RoadKind};
/// use tracking_core::EtaModel;
/// let model = EtaModel::default();
/// let truck = LatLon::new(39.7000, -104.9900).unwrap();
/// let customer = LatLon::new(39.7450, -104.9900).unwrap(); // 5 km north
/// let drive_s = model.drive_s(&truck, &customer, RoadKind::Urban);
/// // 5 km × 1.3 at 30 km/h ≈ 13 minutes.
/// assert!((drive_s - 780.0).abs() < 5.0);
/// assert_eq!(model.quote_s(&truck, &customer, RoadKind::Urban), drive_s + 120.0);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EtaModel {
    /// Road distance ÷ great-circle distance. Default 1.3, the usual figure for city
    /// street grids (the replay traces measure 1.1–1.6 on direct sub-routes).
    pub detour_factor: f64,
    /// Average speed of a tow truck in town, stops at lights included. Default 30 km/h.
    pub urban_speed_kmh: f64,
    /// On country roads. Default 60 km/h.
    pub rural_speed_kmh: f64,
    /// On motorways; tow trucks are slow and must leave and rejoin. Default 80 km/h.
    pub highway_speed_kmh: f64,
    /// Time from acceptance to the truck rolling. Default 120 s.
    pub departure_allowance_s: f64,
}

impl Default for EtaModel {
    fn default() -> Self {
        Self {
            detour_factor: 1.3,
            urban_speed_kmh: 30.0,
            rural_speed_kmh: 60.0,
            highway_speed_kmh: 80.0,
            departure_allowance_s: 120.0,
        }
    }
}

impl EtaModel {
    /// The nominal speed where the customer stands.
    pub fn nominal_speed_kmh(&self, road_kind: RoadKind) -> f64 {
        match road_kind {
            RoadKind::Urban => self.urban_speed_kmh,
            RoadKind::Rural => self.rural_speed_kmh,
            RoadKind::Highway => self.highway_speed_kmh,
        }
    }

    /// Expected road distance for a great-circle distance.
    pub fn road_distance_m(&self, great_circle_m: f64) -> f64 {
        great_circle_m * self.detour_factor
    }

    /// Driving time in seconds from `from` to `to` at the nominal speed, once rolling.
    pub fn drive_s(&self, from: &LatLon, to: &LatLon, road_kind: RoadKind) -> f64 {
        let road_m = self.road_distance_m(from.distance_m(to));
        road_m / mps_from_kmh(self.nominal_speed_kmh(road_kind).max(1.0))
    }

    /// The ETA to quote when a vehicle at `from` accepts a case at `to`: departure allowance
    /// plus driving time. Promise this plus a buffer.
    pub fn quote_s(&self, from: &LatLon, to: &LatLon, road_kind: RoadKind) -> f64 {
        self.departure_allowance_s + self.drive_s(from, to, road_kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::test_support::point;

    #[test]
    fn a_highway_quote_is_shorter_than_an_urban_one_for_the_same_distance() {
        let model = EtaModel::default();
        let (from, to) = (point(39.70, -104.99), point(39.80, -104.99));
        assert!(
            model.quote_s(&from, &to, RoadKind::Highway)
                < model.quote_s(&from, &to, RoadKind::Urban)
        );
    }

    #[test]
    fn a_zero_speed_configuration_never_divides_by_zero() {
        let model = EtaModel {
            urban_speed_kmh: 0.0,
            ..EtaModel::default()
        };
        let quote_s = model.quote_s(&point(0.0, 0.0), &point(0.01, 0.0), RoadKind::Urban);
        assert!(quote_s.is_finite());
    }
}
