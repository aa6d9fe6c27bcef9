//! Metres and bearings on the sphere, and the local plane snapping works in.

/// Mean Earth radius, metres (the one `domain::LatLon::distance_m` uses).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres between two `(lat, lon)` points in degrees.
pub fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let dphi = (lat2 - lat1).to_radians();
    let dlambda = (lon2 - lon1).to_radians();
    let a = (dphi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (dlambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

/// Initial bearing from the first point to the second, degrees clockwise from north in
/// `[0, 360)`.
pub fn bearing_deg(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let dlambda = (lon2 - lon1).to_radians();
    let y = dlambda.sin() * phi2.cos();
    let x = phi1.cos() * phi2.sin() - phi1.sin() * phi2.cos() * dlambda.cos();
    (y.atan2(x).to_degrees() + 360.0) % 360.0
}

/// The smallest angle between two bearings, degrees in `[0, 180]`.
pub fn angle_between_deg(a: f64, b: f64) -> f64 {
    let difference = (a - b).rem_euclid(360.0);
    difference.min(360.0 - difference)
}

/// An equirectangular plane around a reference latitude: `x` east and `y` north, in
/// metres. Good to a fraction of a percent over a city or a small country; snapping uses
/// it only to find candidates, and measures the distance it reports on the sphere.
#[derive(Debug, Clone, Copy)]
pub struct Plane {
    metres_per_degree_lon: f64,
}

/// Metres per degree of latitude.
const METRES_PER_DEGREE_LAT: f64 = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;

impl Plane {
    /// The plane around latitude `lat`.
    pub fn around(lat: f64) -> Self {
        Plane {
            metres_per_degree_lon: METRES_PER_DEGREE_LAT * lat.to_radians().cos().max(0.01),
        }
    }

    /// A `(lat, lon)` point on the plane.
    pub fn project(&self, lat: f64, lon: f64) -> [f64; 2] {
        [
            lon * self.metres_per_degree_lon,
            lat * METRES_PER_DEGREE_LAT,
        ]
    }

    /// A plane point back as `(lat, lon)`.
    pub fn unproject(&self, point: [f64; 2]) -> (f64, f64) {
        (
            point[1] / METRES_PER_DEGREE_LAT,
            point[0] / self.metres_per_degree_lon,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_degree_of_latitude_is_111_km() {
        let d = haversine_m(60.0, 25.0, 61.0, 25.0);
        assert!((d - 111_195.0).abs() < 10.0, "{d}");
        assert_eq!(haversine_m(1.0, 2.0, 1.0, 2.0), 0.0);
    }

    #[test]
    fn bearings_point_the_right_way() {
        assert!((bearing_deg(60.0, 25.0, 61.0, 25.0) - 0.0).abs() < 1e-6);
        assert!((bearing_deg(60.0, 25.0, 60.0, 25.1) - 90.0).abs() < 0.1);
        assert!((bearing_deg(60.0, 25.0, 59.0, 25.0) - 180.0).abs() < 1e-6);
        assert_eq!(angle_between_deg(350.0, 10.0), 20.0);
        assert_eq!(angle_between_deg(90.0, 270.0), 180.0);
    }

    #[test]
    fn the_plane_round_trips() {
        let plane = Plane::around(43.7);
        let (lat, lon) = plane.unproject(plane.project(43.73, 7.42));
        assert!((lat - 43.73).abs() < 1e-9 && (lon - 7.42).abs() < 1e-9);
    }
}
