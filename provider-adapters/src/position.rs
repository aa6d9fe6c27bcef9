//! The one position type every device protocol decodes into: a [`domain::Fix`] plus what
//! only a device says about it.

use domain::Fix;
use serde::{Deserialize, Serialize};

/// One fix reported by a device, already converted to WGS-84 degrees, UTC and metric units.
///
/// What the fix is — where (a validated [`domain::LatLon`]: a decoder refuses coordinates
/// outside ±90/±180 where it decodes them, so there is no other kind), when, speed,
/// heading, accuracy, and the protocol as its [`domain::FixSource`] — is the same
/// [`Fix`] the server checks and indexes. The rest is what only a device states.
/// Everything about plausibility (a fix from the future, a jump across the country) is
/// the gateway's call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevicePosition {
    /// The external device id: JT/T 808 terminal phone number (12 digits, 20 for the 2019
    /// edition), GT06 IMEI (15 digits) or the OsmAnd `id`.
    pub device_id: String,
    /// The fix: WGS-84 position, when the device took it (UTC), ground speed in km/h,
    /// course over ground in degrees clockwise from true north, horizontal accuracy
    /// radius in metres when the device states one, and the protocol that carried it.
    pub fix: Fix,
    /// The device's own "GPS fix valid" flag. An invalid fix repeats the last known
    /// coordinates (or zeros) and should not move a vehicle on the map.
    pub valid: bool,
    /// Altitude above sea level in metres.
    pub altitude_m: Option<f64>,
    /// Satellites used for the fix.
    pub satellites: Option<u8>,
    /// Alarms raised with this fix, comma-separated, in the vocabulary of the protocol
    /// module that decoded it (for example `sos` or `lowBattery,removing`).
    pub alarm: Option<String>,
}

/// Knots to km/h (the OsmAnd query form reports speed in knots).
pub(crate) const KMH_PER_KNOT: f64 = 1.852;
/// m/s to km/h (the OsmAnd JSON form reports speed in m/s).
pub(crate) const KMH_PER_MPS: f64 = 3.6;

#[cfg(test)]
mod tests {
    use domain::{DeviceProtocol, FixSource, LatLon};

    #[test]
    fn coordinates_outside_wgs84_ranges_are_refused() {
        assert!(LatLon::new(90.0, -180.0).is_ok());
        assert!(LatLon::new(90.000_001, 0.0).is_err());
        assert!(LatLon::new(0.0, 180.5).is_err());
        assert!(LatLon::new(f64::NAN, 0.0).is_err());
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

    #[test]
    fn a_device_fix_source_has_the_label_of_its_protocol() {
        for (protocol, source) in [
            (DeviceProtocol::Jt808, FixSource::Jt808),
            (DeviceProtocol::Gt06, FixSource::Gt06),
            (DeviceProtocol::Osmand, FixSource::Osmand),
        ] {
            assert_eq!(protocol.as_str(), source.as_str());
        }
    }
}
