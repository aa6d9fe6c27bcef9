//! The one position type every device protocol decodes into.

use chrono::{DateTime, Utc};
use domain::DeviceProtocol;
use serde::{Deserialize, Serialize};

/// One fix reported by a device, already converted to WGS-84 degrees, UTC and metric units.
///
/// Decoders only build values whose `lat` is within ±90 and `lon` within ±180; everything
/// else about plausibility (a fix from the future, a jump across the country) is the
/// gateway's call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevicePosition {
    /// The external device id: JT/T 808 terminal phone number (12 digits, 20 for the 2019
    /// edition), GT06 IMEI (15 digits) or the OsmAnd `id`.
    pub device_id: String,
    /// When the device took the fix, in UTC.
    pub time: DateTime<Utc>,
    /// WGS-84 latitude in degrees, south negative.
    pub lat: f64,
    /// WGS-84 longitude in degrees, west negative.
    pub lon: f64,
    /// Ground speed in km/h.
    pub speed_kmh: Option<f64>,
    /// Course over ground in degrees clockwise from true north.
    pub heading_deg: Option<f64>,
    /// Altitude above sea level in metres.
    pub altitude_m: Option<f64>,
    /// Horizontal accuracy radius in metres, when the device states one.
    pub accuracy_m: Option<f64>,
    /// The device's own "GPS fix valid" flag. An invalid fix repeats the last known
    /// coordinates (or zeros) and should not move a vehicle on the map.
    pub valid: bool,
    /// Satellites used for the fix.
    pub satellites: Option<u8>,
    /// Alarms raised with this fix, comma-separated, in the vocabulary of the protocol
    /// module that decoded it (for example `sos` or `lowBattery,removing`).
    pub alarm: Option<String>,
    /// The protocol that carried the fix.
    pub source: DeviceProtocol,
}

/// Whether `lat`/`lon` are finite WGS-84 degrees.
pub(crate) fn coordinates_in_range(lat: f64, lon: f64) -> bool {
    lat.is_finite()
        && lon.is_finite()
        && (-90.0..=90.0).contains(&lat)
        && (-180.0..=180.0).contains(&lon)
}

/// Knots to km/h (the OsmAnd query form reports speed in knots).
pub(crate) const KMH_PER_KNOT: f64 = 1.852;
/// m/s to km/h (the OsmAnd JSON form reports speed in m/s).
pub(crate) const KMH_PER_MPS: f64 = 3.6;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinates_outside_wgs84_ranges_are_refused() {
        assert!(coordinates_in_range(90.0, -180.0));
        assert!(!coordinates_in_range(90.000_001, 0.0));
        assert!(!coordinates_in_range(0.0, 180.5));
        assert!(!coordinates_in_range(f64::NAN, 0.0));
    }

    #[test]
    fn protocol_names_are_the_lowercase_labels_used_in_the_devices_list() {
        assert_eq!(DeviceProtocol::Jt808.as_str(), "jt808");
        assert_eq!(DeviceProtocol::Gt06.as_str(), "gt06");
        assert_eq!(DeviceProtocol::Osmand.as_str(), "osmand");
        assert_eq!(DeviceProtocol::Gt06.to_string(), "gt06");
        assert_eq!(
            serde_json::to_string(&DeviceProtocol::Osmand)
                .ok()
                .as_deref(),
            Some("\"osmand\"")
        );
    }
}
