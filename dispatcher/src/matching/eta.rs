//! Estimated time of arrival. Matching ranks candidates by ETA, not by distance; the model
//! is an interface: the straight-line default, or the road network ([`RoadNetworkEta`]).

use std::sync::Arc;

use domain::{LatLon, RoadKind};

/// Where a truck is, for an ETA.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EtaOrigin {
    pub position: LatLon,
    /// Degrees clockwise from north, when the device reports it.
    pub heading_deg: Option<f64>,
}

impl EtaOrigin {
    /// A position without a heading.
    pub fn at(position: LatLon) -> Self {
        EtaOrigin {
            position,
            heading_deg: None,
        }
    }
}

/// One truck's ETA and how it was estimated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Eta {
    /// Seconds to reach the customer, the crew's setup time included.
    pub eta_s: u32,
    /// Metres of road to the customer; `None` when estimated on the straight line.
    pub road_distance_m: Option<f64>,
    /// `road` (the embedded road network) or `straight_line`.
    pub model: &'static str,
}

/// Estimates how long vehicles need to reach a customer.
pub trait EtaModel: Send + Sync + 'static {
    /// For each origin, the ETA to `to`, whose road is of kind `road_kind`: one call for
    /// all the candidates of a case, in their order.
    fn etas(&self, to: &LatLon, road_kind: RoadKind, from: &[EtaOrigin]) -> Vec<Eta>;

    /// The configured model's name, recorded with each ranking (each candidate also says
    /// which model answered for it: a road model falls back to the straight line).
    fn name(&self) -> &'static str;

    /// The ETA of one origin.
    fn eta(&self, from: &LatLon, to: &LatLon, road_kind: RoadKind) -> Eta {
        self.etas(to, road_kind, &[EtaOrigin::at(*from)])
            .pop()
            .unwrap_or(Eta {
                eta_s: u32::MAX,
                road_distance_m: None,
                model: self.name(),
            })
    }

    /// Seconds for one origin.
    fn eta_s(&self, from: &LatLon, to: &LatLon, road_kind: RoadKind) -> u32 {
        self.eta(from, to, road_kind).eta_s
    }
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

impl StraightLineEta {
    fn seconds(&self, from: &LatLon, to: &LatLon, road_kind: RoadKind) -> u32 {
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
}

impl EtaModel for StraightLineEta {
    fn etas(&self, to: &LatLon, road_kind: RoadKind, from: &[EtaOrigin]) -> Vec<Eta> {
        from.iter()
            .map(|origin| Eta {
                eta_s: self.seconds(&origin.position, to, road_kind),
                road_distance_m: None,
                model: "straight_line",
            })
            .collect()
    }

    fn name(&self) -> &'static str {
        "straight_line"
    }
}

/// ETAs on the roads of a loaded network: road time at the profile's speeds plus the
/// crew's setup time. A truck or customer off the network (farther than the snapping
/// distance from any drivable road) is estimated on the straight line instead, and its
/// ETA says so.
#[derive(Debug, Clone)]
pub struct RoadNetworkEta {
    pub network: Arc<roads::RoadNetwork>,
    /// The model for pairs the network cannot answer; its setup time applies to both.
    pub fallback: StraightLineEta,
}

impl EtaModel for RoadNetworkEta {
    fn etas(&self, to: &LatLon, road_kind: RoadKind, from: &[EtaOrigin]) -> Vec<Eta> {
        let origins: Vec<roads::Origin> = from
            .iter()
            .map(|origin| roads::Origin {
                position: origin.position,
                heading_deg: origin.heading_deg,
            })
            .collect();
        self.network
            .etas_to(*to, &origins)
            .into_iter()
            .zip(from)
            .map(|(road, origin)| match road {
                Some(road) => {
                    let total = road.time_s.round() + f64::from(self.fallback.setup_s);
                    Eta {
                        eta_s: if total >= f64::from(u32::MAX) {
                            u32::MAX
                        } else {
                            total as u32
                        },
                        road_distance_m: Some(road.distance_m),
                        model: "road",
                    }
                }
                None => Eta {
                    eta_s: self.fallback.seconds(&origin.position, to, road_kind),
                    road_distance_m: None,
                    model: "straight_line",
                },
            })
            .collect()
    }

    fn name(&self) -> &'static str {
        "road"
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
