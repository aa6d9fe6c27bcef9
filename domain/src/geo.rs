//! Positions on the WGS-84 ellipsoid, validated at construction.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::gcj02;

/// Mean Earth radius in metres (IUGG), the radius great-circle distances use.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A WGS-84 position in degrees. Latitude in `[-90, 90]`, longitude in `[-180, 180]`,
/// both finite; there is no other way to make one.
///
/// ```
/// use domain::geo::LatLon;
/// assert!(LatLon::new(31.2304, 121.4737).is_ok());
/// assert_eq!(LatLon::new(91.0, 0.0).unwrap_err().field, "lat");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LatLon {
    lat: f64,
    lon: f64,
}

impl LatLon {
    /// Validates and builds a position. The error names the field (`lat` or `lon`).
    pub fn new(lat: f64, lon: f64) -> Result<Self, FieldError> {
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            return Err(FieldError::new(
                "lat",
                format!("latitude must be a number between -90 and 90, got {lat}"),
            ));
        }
        if !lon.is_finite() || !(-180.0..=180.0).contains(&lon) {
            return Err(FieldError::new(
                "lon",
                format!("longitude must be a number between -180 and 180, got {lon}"),
            ));
        }
        Ok(Self { lat, lon })
    }

    /// Latitude in degrees.
    pub fn lat(&self) -> f64 {
        self.lat
    }

    /// Longitude in degrees.
    pub fn lon(&self) -> f64 {
        self.lon
    }

    /// Great-circle distance in metres (haversine on a sphere of [`EARTH_RADIUS_M`]).
    ///
    /// ```
    /// use domain::geo::LatLon;
    /// let shanghai = LatLon::new(31.2304, 121.4737).unwrap();
    /// let beijing = LatLon::new(39.9042, 116.4074).unwrap();
    /// let distance_km = shanghai.distance_m(&beijing) / 1000.0;
    /// assert!((distance_km - 1067.0).abs() < 5.0);
    /// ```
    pub fn distance_m(&self, other: &LatLon) -> f64 {
        let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.lon - self.lon).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }

    /// The point as a unit vector `[x, y, z]` on the sphere. Chord length between two such
    /// vectors grows monotonically with great-circle distance, so nearest-by-chord is
    /// nearest-by-great-circle, with no distortion by latitude or at the antimeridian.
    pub fn to_unit_vector(&self) -> [f64; 3] {
        let (lat, lon) = (self.lat.to_radians(), self.lon.to_radians());
        [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
    }
}

impl<'de> Deserialize<'de> for LatLon {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            lat: f64,
            lon: f64,
        }
        let raw = Raw::deserialize(deserializer)?;
        LatLon::new(raw.lat, raw.lon).map_err(serde::de::Error::custom)
    }
}

/// The coordinate reference system of incoming coordinates. Chinese map SDKs (AMap,
/// Tencent) report GCJ-02; everything inside the server is WGS-84.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Crs {
    /// WGS-84, what GPS receivers report.
    #[default]
    Wgs84,
    /// GCJ-02, the obfuscated datum mandated for maps published in mainland China.
    Gcj02,
}

impl Crs {
    /// Converts `(lat, lon)` given in this CRS to a validated WGS-84 position.
    ///
    /// ```
    /// use domain::geo::Crs;
    /// let wgs = Crs::Gcj02.to_wgs84(31.2284, 121.4781).unwrap();
    /// assert!((wgs.lon() - 121.4737).abs() < 0.001);
    /// ```
    pub fn to_wgs84(self, lat: f64, lon: f64) -> Result<LatLon, FieldError> {
        let validated = LatLon::new(lat, lon)?;
        match self {
            Crs::Wgs84 => Ok(validated),
            Crs::Gcj02 => {
                let (wgs_lat, wgs_lon) = gcj02::gcj02_to_wgs84(lat, lon);
                LatLon::new(wgs_lat, wgs_lon)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latitude_out_of_range_is_refused_naming_the_field() {
        for lat in [90.000_001, -91.0, f64::NAN, f64::INFINITY] {
            assert_eq!(LatLon::new(lat, 0.0).unwrap_err().field, "lat");
        }
    }

    #[test]
    fn longitude_out_of_range_is_refused_naming_the_field() {
        for lon in [180.5, -181.0, f64::NAN, f64::NEG_INFINITY] {
            assert_eq!(LatLon::new(0.0, lon).unwrap_err().field, "lon");
        }
    }

    #[test]
    fn the_poles_and_the_antimeridian_are_valid() {
        for (lat, lon) in [(90.0, 180.0), (-90.0, -180.0), (0.0, 180.0)] {
            assert!(LatLon::new(lat, lon).is_ok());
        }
    }

    #[test]
    fn distance_across_the_antimeridian_is_short() {
        let west = LatLon::new(0.0, 179.99).unwrap();
        let east = LatLon::new(0.0, -179.99).unwrap();
        assert!((west.distance_m(&east) - 2_223.9).abs() < 1.0);
    }

    #[test]
    fn unit_vectors_have_unit_length() {
        let point = LatLon::new(60.17, 24.94).unwrap().to_unit_vector();
        let norm = point.iter().map(|c| c * c).sum::<f64>().sqrt();
        assert!((norm - 1.0).abs() < 1e-12);
    }

    #[test]
    fn deserializing_an_invalid_position_fails() {
        let result: Result<LatLon, _> = serde_json::from_str(r#"{"lat": 91, "lon": 0}"#);
        assert!(result.unwrap_err().to_string().contains("latitude"));
    }

    #[test]
    fn gcj02_input_outside_china_is_unchanged() {
        let tokyo = Crs::Gcj02.to_wgs84(35.6812, 139.7671).unwrap();
        assert_eq!((tokyo.lat(), tokyo.lon()), (35.6812, 139.7671));
    }
}
