//! OsmAnd protocol parsing. Pure: the caller passes the request's query string or body
//! and the current time (used when a request carries no timestamp).
//!
//! Two forms exist:
//! - the query form (GET, or POST with the same pairs in the URL or a form body):
//!   `id`/`deviceid`, `lat`+`lon` (or `location=lat,lon`), `timestamp` (unix seconds,
//!   unix milliseconds, or ISO 8601), `speed` in **knots**, `bearing`/`heading`,
//!   `altitude`, `accuracy`, `valid`; other keys (`hdop`, `batt`, `cell`, `wifi`…) are
//!   accepted and ignored. The first occurrence of a key wins.
//! - the JSON body of newer Traccar Client apps:
//!   `{"location": {"timestamp", "coords": {"latitude", "longitude", "speed" (**m/s**),
//!   "heading", "altitude", "accuracy"}, …}, "device_id": …}`, where `location` may also
//!   be an array. Negative speed, heading or accuracy mean "unknown".
//!
//! Errors name the offending field, so the HTTP route can answer 400 with a useful message.

use chrono::{DateTime, NaiveDateTime, Utc};
use domain::{Fix, FixSource, LatLon};
use serde_json::Value;

use crate::position::{DevicePosition, KMH_PER_KNOT, KMH_PER_MPS};

/// Why a request could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OsmandError {
    /// A required field is absent.
    #[error("missing field {0}")]
    MissingField(&'static str),
    /// A field is present but unusable.
    #[error("invalid value for field {field}: {value:?}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// The value as received, cut to 64 characters.
        value: String,
    },
    /// The body is not JSON, or not the expected shape.
    #[error("invalid json body: {0}")]
    InvalidJson(String),
}

fn invalid(field: &'static str, value: &str) -> OsmandError {
    OsmandError::InvalidField {
        field,
        value: value.chars().take(64).collect(),
    }
}

fn parse_finite(field: &'static str, value: &str) -> Result<f64, OsmandError> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|number| number.is_finite())
        .ok_or_else(|| invalid(field, value))
}

/// Unix seconds, unix milliseconds (more than 10 digits), or ISO 8601 with or without a
/// zone (no zone: UTC).
fn parse_timestamp(value: &str) -> Result<DateTime<Utc>, OsmandError> {
    let value = value.trim();
    if let Ok(number) = value.parse::<i64>() {
        let time = if number > 9_999_999_999 {
            DateTime::from_timestamp_millis(number)
        } else {
            DateTime::from_timestamp(number, 0)
        };
        return time.ok_or_else(|| invalid("timestamp", value));
    }
    if let Ok(seconds) = value.parse::<f64>()
        && seconds.is_finite()
        && seconds.abs() < 1e11
    {
        return DateTime::from_timestamp_millis((seconds * 1000.0).round() as i64)
            .ok_or_else(|| invalid("timestamp", value));
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(value) {
        return Ok(time.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(value, format) {
            return Ok(naive.and_utc());
        }
    }
    Err(invalid("timestamp", value))
}

fn parse_bool(field: &'static str, value: &str) -> Result<bool, OsmandError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(invalid(field, value)),
    }
}

/// A non-negative quantity; negative values are the apps' "unknown".
fn known(value: f64) -> Option<f64> {
    (value >= 0.0).then_some(value)
}

/// Parses the query form: a query string (with or without the path and `?` before it) or
/// a form-encoded body.
///
/// ```
/// use provider_adapters::osmand::parse_query;
/// let now = chrono::Utc::now();
/// let position = parse_query("/?id=truck-7&lat=31.2304&lon=121.4737&timestamp=1764039845&speed=10", now).unwrap();
/// assert_eq!(position.device_id, "truck-7");
/// assert_eq!(position.fix.speed_kmh, Some(18.52)); // 10 knots
/// assert_eq!(position.fix.ts.timestamp(), 1764039845);
///
/// let error = parse_query("/?lat=60&lon=30", now).unwrap_err();
/// assert_eq!(error.to_string(), "missing field id");
/// ```
pub fn parse_query(query: &str, now: DateTime<Utc>) -> Result<DevicePosition, OsmandError> {
    let query = query.split_once('?').map_or(query, |(_, after)| after);
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    };

    let device_id = get("id")
        .or_else(|| get("deviceid"))
        .map(str::trim)
        .filter(|id| !id.is_empty());
    let device_id = device_id.ok_or(OsmandError::MissingField("id"))?.to_owned();

    let (lat, lon) = match (get("lat"), get("lon"), get("location")) {
        (Some(lat), Some(lon), _) => (parse_finite("lat", lat)?, parse_finite("lon", lon)?),
        (None, None, Some(location)) => {
            let (lat, lon) = location
                .split_once(',')
                .ok_or_else(|| invalid("location", location))?;
            (
                parse_finite("location", lat)?,
                parse_finite("location", lon)?,
            )
        }
        (None, _, _) => return Err(OsmandError::MissingField("lat")),
        (Some(_), None, _) => return Err(OsmandError::MissingField("lon")),
    };
    // Both are finite here; LatLon names the first one out of range, latitude first.
    let position = LatLon::new(lat, lon).map_err(|refused| {
        if refused.field == "lat" {
            invalid("lat", &lat.to_string())
        } else {
            invalid("lon", &lon.to_string())
        }
    })?;

    let time = get("timestamp")
        .map(parse_timestamp)
        .transpose()?
        .unwrap_or(now);
    let speed_knots = get("speed")
        .map(|value| parse_finite("speed", value))
        .transpose()?;
    let heading = match (get("bearing"), get("heading")) {
        (Some(value), _) => Some(parse_finite("bearing", value)?),
        (None, Some(value)) => Some(parse_finite("heading", value)?),
        (None, None) => None,
    };
    let altitude_m = get("altitude")
        .map(|value| parse_finite("altitude", value))
        .transpose()?;
    let accuracy_m = get("accuracy")
        .map(|value| parse_finite("accuracy", value))
        .transpose()?;
    let valid = get("valid")
        .map(|value| parse_bool("valid", value))
        .transpose()?
        .unwrap_or(true);

    Ok(DevicePosition {
        device_id,
        fix: Fix {
            position,
            ts: time,
            speed_kmh: speed_knots
                .and_then(known)
                .map(|knots| knots * KMH_PER_KNOT),
            heading: heading.and_then(known),
            accuracy_m: accuracy_m.and_then(known),
            source: FixSource::Osmand,
        },
        valid,
        altitude_m,
        satellites: None,
        alarm: None,
    })
}

/// Parses the JSON body form; one position per `location` (object or array).
///
/// ```
/// use provider_adapters::osmand::parse_json;
/// let body = br#"{"device_id": "truck-7", "location": {"timestamp": "2026-11-22T03:04:05Z",
///     "coords": {"latitude": 31.2304, "longitude": 121.4737, "speed": 10, "heading": 90, "accuracy": 5}}}"#;
/// let positions = parse_json(body, chrono::Utc::now()).unwrap();
/// assert_eq!(positions[0].fix.speed_kmh, Some(36.0)); // 10 m/s
/// assert_eq!(positions[0].fix.accuracy_m, Some(5.0));
/// ```
pub fn parse_json(body: &[u8], now: DateTime<Utc>) -> Result<Vec<DevicePosition>, OsmandError> {
    let root: Value = serde_json::from_slice(body)
        .map_err(|error| OsmandError::InvalidJson(error.to_string()))?;
    let device_id = match root.get("device_id") {
        Some(Value::String(id)) if !id.trim().is_empty() => id.trim().to_owned(),
        Some(Value::Number(id)) => id.to_string(),
        Some(other) => return Err(invalid("device_id", &other.to_string())),
        None => return Err(OsmandError::MissingField("device_id")),
    };
    match root.get("location") {
        Some(Value::Array(locations)) if !locations.is_empty() => locations
            .iter()
            .map(|location| parse_json_location(&device_id, location, now))
            .collect(),
        Some(location @ Value::Object(_)) => {
            Ok(vec![parse_json_location(&device_id, location, now)?])
        }
        Some(other) => Err(invalid("location", &other.to_string())),
        None => Err(OsmandError::MissingField("location")),
    }
}

fn json_number(object: &Value, key: &str, field: &'static str) -> Result<Option<f64>, OsmandError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_f64()
            .filter(|value| value.is_finite())
            .map(Some)
            .ok_or_else(|| invalid(field, &number.to_string())),
        Some(other) => Err(invalid(field, &other.to_string())),
    }
}

fn parse_json_location(
    device_id: &str,
    location: &Value,
    now: DateTime<Utc>,
) -> Result<DevicePosition, OsmandError> {
    let coords = location
        .get("coords")
        .ok_or(OsmandError::MissingField("location.coords"))?;
    let lat = json_number(coords, "latitude", "coords.latitude")?
        .ok_or(OsmandError::MissingField("coords.latitude"))?;
    let lon = json_number(coords, "longitude", "coords.longitude")?
        .ok_or(OsmandError::MissingField("coords.longitude"))?;
    // Both are finite here; LatLon names the first one out of range, latitude first.
    let position = LatLon::new(lat, lon).map_err(|refused| {
        if refused.field == "lat" {
            invalid("coords.latitude", &lat.to_string())
        } else {
            invalid("coords.longitude", &lon.to_string())
        }
    })?;
    let time = match location.get("timestamp") {
        None | Some(Value::Null) => now,
        Some(Value::String(text)) => parse_timestamp(text)?,
        Some(Value::Number(number)) => parse_timestamp(&number.to_string())?,
        Some(other) => return Err(invalid("location.timestamp", &other.to_string())),
    };
    let speed_mps = json_number(coords, "speed", "coords.speed")?.and_then(known);
    let heading = json_number(coords, "heading", "coords.heading")?.and_then(known);
    let altitude_m = json_number(coords, "altitude", "coords.altitude")?;
    let accuracy_m = json_number(coords, "accuracy", "coords.accuracy")?.and_then(known);
    Ok(DevicePosition {
        device_id: device_id.to_owned(),
        fix: Fix {
            position,
            ts: time,
            speed_kmh: speed_mps.map(|mps| mps * KMH_PER_MPS),
            heading,
            accuracy_m,
            source: FixSource::Osmand,
        },
        valid: true,
        altitude_m,
        satellites: None,
        alarm: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    #[test]
    fn query_speed_in_knots_becomes_kmh() {
        let position = parse_query("id=1&lat=1&lon=2&speed=1", now()).expect("position");
        assert_eq!(position.fix.speed_kmh, Some(1.852));
    }

    #[test]
    fn json_speed_in_metres_per_second_becomes_kmh() {
        let body =
            br#"{"device_id":"1","location":{"coords":{"latitude":1,"longitude":2,"speed":2.5}}}"#;
        assert_eq!(
            parse_json(body, now()).expect("position")[0].fix.speed_kmh,
            Some(9.0)
        );
    }

    #[test]
    fn a_missing_timestamp_means_now() {
        assert_eq!(
            parse_query("id=1&lat=1&lon=2", now())
                .expect("position")
                .fix
                .ts,
            now()
        );
    }

    #[test]
    fn timestamps_in_seconds_milliseconds_and_iso_8601_agree() {
        for stamp in [
            "1442068686",
            "1442068686000",
            "2015-09-12T14:38:06Z",
            "2015-09-12+14%3A38%3A06",
            "2015-09-12T16:38:06%2B02:00",
        ] {
            let position =
                parse_query(&format!("id=1&lat=1&lon=2&timestamp={stamp}"), now()).expect(stamp);
            assert_eq!(position.fix.ts.timestamp(), 1_442_068_686, "{stamp}");
        }
    }

    #[test]
    fn deviceid_and_location_are_accepted_as_alternatives() {
        let position = parse_query("deviceid=abc&location=60.5,30.25", now()).expect("position");
        assert_eq!(
            (
                position.device_id.as_str(),
                position.fix.position.lat(),
                position.fix.position.lon()
            ),
            ("abc", 60.5, 30.25)
        );
    }

    #[test]
    fn errors_name_the_offending_field() {
        assert_eq!(
            parse_query("id=1&lon=2", now()),
            Err(OsmandError::MissingField("lat"))
        );
        assert_eq!(
            parse_query("id=1&lat=91&lon=2", now()),
            Err(invalid("lat", "91"))
        );
        assert_eq!(
            parse_query("id=1&lat=1&lon=2&speed=fast", now()),
            Err(invalid("speed", "fast"))
        );
        assert_eq!(
            parse_query("id=1&lat=NaN&lon=2", now()),
            Err(invalid("lat", "NaN"))
        );
        assert_eq!(
            parse_query("id=1&lat=1&lon=2&timestamp=yesterday", now()),
            Err(invalid("timestamp", "yesterday"))
        );
        assert_eq!(
            parse_json(br#"{"location":{}}"#, now()),
            Err(OsmandError::MissingField("device_id"))
        );
        assert_eq!(
            parse_json(
                br#"{"device_id":"1","location":{"coords":{"longitude":2}}}"#,
                now()
            ),
            Err(OsmandError::MissingField("coords.latitude"))
        );
    }

    #[test]
    fn coordinates_out_of_range_name_the_first_offending_field() {
        assert_eq!(
            parse_query("id=1&lat=1&lon=181", now()),
            Err(invalid("lon", "181"))
        );
        assert_eq!(
            parse_query("id=1&lat=-91&lon=181", now()),
            Err(invalid("lat", "-91"))
        );
        assert_eq!(
            parse_query("id=1&location=1,-180.5", now()),
            Err(invalid("lon", "-180.5"))
        );
        assert_eq!(
            parse_json(
                br#"{"device_id":"1","location":{"coords":{"latitude":91,"longitude":181}}}"#,
                now()
            ),
            Err(invalid("coords.latitude", "91"))
        );
        assert_eq!(
            parse_json(
                br#"{"device_id":"1","location":{"coords":{"latitude":1,"longitude":-180.5}}}"#,
                now()
            ),
            Err(invalid("coords.longitude", "-180.5"))
        );
    }

    #[test]
    fn the_valid_flag_defaults_to_true_and_can_be_cleared() {
        assert!(
            parse_query("id=1&lat=1&lon=2", now())
                .expect("position")
                .valid
        );
        assert!(
            !parse_query("id=1&lat=1&lon=2&valid=false", now())
                .expect("position")
                .valid
        );
    }

    #[test]
    fn negative_speed_heading_and_accuracy_mean_unknown() {
        let body = br#"{"device_id":"1","location":{"coords":{"latitude":1,"longitude":2,"speed":-1,"heading":-1,"accuracy":-1}}}"#;
        let position = parse_json(body, now()).expect("position").remove(0);
        assert_eq!(
            (
                position.fix.speed_kmh,
                position.fix.heading,
                position.fix.accuracy_m
            ),
            (None, None, None)
        );
    }

    #[test]
    fn a_json_array_of_locations_yields_one_position_each() {
        let body = br#"{"device_id":7,"location":[{"coords":{"latitude":1,"longitude":2}},{"coords":{"latitude":3,"longitude":4}}]}"#;
        let positions = parse_json(body, now()).expect("positions");
        assert_eq!(positions.len(), 2);
        assert_eq!(positions[1].device_id, "7");
    }
}
