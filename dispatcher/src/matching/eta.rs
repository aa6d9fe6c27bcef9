//! Estimated time of arrival. Matching ranks candidates by ETA, not by distance; the model
//! is an interface so a road-network model can replace the default.

use domain::{LatLon, RoadKind};

/// Estimates how long a vehicle needs to reach a customer.
pub trait EtaModel: Send + Sync + 'static {
    /// Seconds for a vehicle at `from` to reach `to`, whose road is of kind `road_kind`.
    fn eta_s(&self, from: &LatLon, to: &LatLon, road_kind: RoadKind) -> u32;
    /// The model's name, recorded with each ranking.
    fn name(&self) -> &'static str;
}

/// The default model: great-circle distance × a detour factor ÷ an average speed chosen by
/// the customer's road kind, plus a fixed time for the crew to get going.
///
/// ```
/// use dispatcher::matching::{EtaModel, StraightLineEta};
/// use domain::{LatLon, RoadKind};
/// let model = StraightLineEta { detour_factor: 1.3, urban_kmh: 30.0, rural_kmh: 50.0, highway_kmh: 70.0, setup_s: 60 };
/// let from = LatLon::new(31.20, 121.47).unwrap();
/// let to = LatLon::new(31.23, 121.47).unwrap(); // 3.3 km north
/// // 3.34 km × 1.3 at 30 km/h ≈ 520 s, plus 60 s.
/// assert_eq!(model.eta_s(&from, &to, RoadKind::Urban), 580);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StraightLineEta {
    /// Road distance over great-circle distance (≥ 1).
    pub detour_factor: f64,
    /// Average speed towards an urban location, km/h.
    pub urban_kmh: f64,
    /// Average speed towards a rural location, km/h.
    pub rural_kmh: f64,
    /// Average speed towards a highway location, km/h.
    pub highway_kmh: f64,
    /// Seconds added for the crew to get going.
    pub setup_s: u32,
}

impl EtaModel for StraightLineEta {
    fn eta_s(&self, from: &LatLon, to: &LatLon, road_kind: RoadKind) -> u32 {
        let speed_kmh = match road_kind {
            RoadKind::Urban => self.urban_kmh,
            RoadKind::Rural => self.rural_kmh,
            RoadKind::Highway => self.highway_kmh,
        };
        let road_m = from.distance_m(to) * self.detour_factor;
        let driving_s = road_m / (speed_kmh / 3.6);
        let total = driving_s.round() + f64::from(self.setup_s);
        // Saturate rather than wrap: a truck a continent away is just very late.
        if total >= f64::from(u32::MAX) {
            u32::MAX
        } else {
            total as u32
        }
    }

    fn name(&self) -> &'static str {
        "straight_line"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> StraightLineEta {
        StraightLineEta {
            detour_factor: 1.3,
            urban_kmh: 30.0,
            rural_kmh: 50.0,
            highway_kmh: 70.0,
            setup_s: 60,
        }
    }

    #[test]
    fn a_truck_on_the_spot_needs_only_the_setup_time() {
        let here = LatLon::new(31.0, 121.0).unwrap();
        assert_eq!(model().eta_s(&here, &here, RoadKind::Highway), 60);
    }

    #[test]
    fn faster_roads_give_shorter_etas_for_the_same_distance() {
        let from = LatLon::new(31.0, 121.0).unwrap();
        let to = LatLon::new(31.2, 121.0).unwrap();
        let urban = model().eta_s(&from, &to, RoadKind::Urban);
        let rural = model().eta_s(&from, &to, RoadKind::Rural);
        let highway = model().eta_s(&from, &to, RoadKind::Highway);
        assert!(urban > rural && rural > highway);
    }

    #[test]
    fn antipodal_distances_do_not_overflow() {
        let from = LatLon::new(0.0, 0.0).unwrap();
        let to = LatLon::new(0.0, 180.0).unwrap();
        let eta = model().eta_s(&from, &to, RoadKind::Urban);
        assert!(eta > 3_000_000 && eta < u32::MAX);
    }
}
