//! Layer 4: message bodies into a [`Jt808Message`]: register, authenticate, heartbeat,
//! logout, the 0x0200 location report and 0x0704 batch, and the vendor messages that
//! carry a fix (0x0210, 0x5501/0x5502, 0x0900 type 0xF0). Location times are converted
//! from GMT+8 (or the vendor layout's UTC) to UTC here.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use domain::{Fix, FixSource, LatLon};

use super::frame::{Jt808Frame, ProtocolVersion};
use super::message_id;
use crate::position::DevicePosition;
use crate::wire::{MissingField, Reader, bcd_byte, field, gbk_text};

/// Terminal registration (0x0100).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Register {
    /// Province id (GB/T 2260).
    pub province_id: u16,
    /// City or county id.
    pub city_id: u16,
    /// Manufacturer id.
    pub maker_id: String,
    /// Terminal model.
    pub model: String,
    /// Terminal id.
    pub terminal_id: String,
    /// Plate colour (JT/T 415); 0 means not registered, and then `plate` holds the VIN.
    pub plate_colour: u8,
    /// Plate, decoded from GBK.
    pub plate: String,
}

/// Terminal authentication (0x0102).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticate {
    /// The code the platform handed out at registration.
    pub auth_code: String,
    /// 2019 only: the terminal's IMEI.
    pub imei: Option<String>,
    /// 2019 only: the terminal's software version.
    pub software_version: Option<String>,
}

/// A location report: the 0x0200 body, also each item of a 0x0704 batch.
#[derive(Debug, Clone, PartialEq)]
pub struct LocationReport {
    /// Alarm flags (bit 0 SOS, bit 1 overspeed, …).
    pub alarm_flags: u32,
    /// Status flags (bit 1 fix valid, bit 2 south, bit 3 west, …).
    pub status_flags: u32,
    /// WGS-84 position (south and west negative), refused at decoding when out of range.
    pub position: LatLon,
    /// Altitude in metres.
    pub altitude_m: i16,
    /// Speed in km/h.
    pub speed_kmh: f64,
    /// Direction, degrees from north.
    pub heading_deg: u16,
    /// Fix time, UTC (converted from the GMT+8 BCD time).
    pub time: DateTime<Utc>,
    /// From additional information item 0x31 (or the vendor layout's satellite byte).
    pub satellites: Option<u8>,
    /// Whether altitude, speed and direction were reported. False for vendor reports
    /// that carry only status and coordinates (0x0900 type 0xF0): the position then has
    /// no speed rather than a made-up zero.
    pub has_motion: bool,
}

/// Status flag: the fix is valid (positioned).
pub const STATUS_FIX_VALID: u32 = 1 << 1;
/// Status flag: south latitude.
pub const STATUS_SOUTH: u32 = 1 << 2;
/// Status flag: west longitude.
pub const STATUS_WEST: u32 = 1 << 3;

/// Names of the alarm flag bits of JT/T 808-2013 table 24, in bit order (empty: reserved).
const ALARM_NAMES: [&str; 32] = [
    "sos",
    "overspeed",
    "fatigueDriving",
    "danger",
    "gnssFault",
    "gpsAntennaCut",
    "gpsAntennaShort",
    "lowBattery",
    "powerCut",
    "lcdFault",
    "ttsFault",
    "cameraFault",
    "icCardFault",
    "overspeedWarning",
    "fatigueWarning",
    "",
    "",
    "",
    "drivingTimeout",
    "parkingTimeout",
    "geofence",
    "route",
    "routeTime",
    "routeDeviation",
    "vssFault",
    "fuelLeak",
    "theft",
    "illegalIgnition",
    "movement",
    "accident",
    "rollover",
    "door",
];

impl LocationReport {
    /// Whether status bit 1 (positioned) is set.
    pub fn fix_valid(&self) -> bool {
        self.status_flags & STATUS_FIX_VALID != 0
    }

    /// The set alarm bits as names, comma-separated in bit order; `None` if no alarm.
    ///
    /// ```
    /// # use provider_adapters::jt808::codec::LocationReport;
    /// # let mut report = LocationReport { alarm_flags: 0, status_flags: 0, position: domain::LatLon::new(0.0, 0.0).unwrap(), altitude_m: 0, speed_kmh: 0.0, heading_deg: 0, time: chrono::DateTime::UNIX_EPOCH, satellites: None, has_motion: true };
    /// report.alarm_flags = 0b1_0000_0001;
    /// assert_eq!(report.alarm().as_deref(), Some("sos,powerCut"));
    /// ```
    pub fn alarm(&self) -> Option<String> {
        let names: Vec<&str> = ALARM_NAMES
            .iter()
            .enumerate()
            .filter(|(bit, name)| !name.is_empty() && self.alarm_flags & (1 << bit) != 0)
            .map(|(_, name)| *name)
            .collect();
        (!names.is_empty()).then(|| names.join(","))
    }

    /// The report as a [`DevicePosition`] of terminal `device_id`.
    pub fn to_position(&self, device_id: &str) -> DevicePosition {
        DevicePosition {
            device_id: device_id.to_owned(),
            fix: Fix {
                position: self.position,
                ts: self.time,
                speed_kmh: self.has_motion.then_some(self.speed_kmh),
                heading: self.has_motion.then(|| f64::from(self.heading_deg)),
                accuracy_m: None,
                source: FixSource::Jt808,
            },
            valid: self.fix_valid(),
            altitude_m: self.has_motion.then(|| f64::from(self.altitude_m)),
            satellites: self.satellites,
            alarm: self.alarm(),
        }
    }
}

/// A batch upload (0x0704).
#[derive(Debug, Clone, PartialEq)]
pub struct LocationBatch {
    /// Type 1: positions stored while the terminal had no network (blind area); type 0:
    /// a normal batch.
    pub blind_area: bool,
    /// The items that decoded.
    pub items: Vec<LocationReport>,
    /// Items that did not (bad time, coordinates out of range, truncated).
    pub invalid_items: usize,
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq)]
pub enum Jt808Message {
    /// 0x0100.
    Register(Register),
    /// 0x0102.
    Authenticate(Authenticate),
    /// 0x0002.
    Heartbeat,
    /// 0x0003.
    Logout,
    /// 0x0200.
    Location(LocationReport),
    /// 0x0704.
    LocationBatch(LocationBatch),
    /// 0x0001: the terminal acknowledges something the platform sent.
    TerminalResponse,
    /// Any other id: answered with 0x8001 result 3.
    Unsupported {
        /// The message id.
        message_id: u16,
    },
}

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body ends before a required field.
    #[error("body truncated in field {field}")]
    Truncated {
        /// The field.
        field: &'static str,
    },
    /// The location time is not a valid BCD date and time.
    #[error("invalid bcd time")]
    InvalidTime,
    /// Latitude or longitude outside WGS-84 ranges.
    #[error("coordinates out of range")]
    CoordinatesOutOfRange,
    /// The body is encrypted (properties bits 10–12); not supported.
    #[error("encrypted body (mode {0}) is not supported")]
    Encrypted(u8),
}

impl BodyError {
    /// The `reason` label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            BodyError::Truncated { .. } => "truncated_body",
            BodyError::InvalidTime => "invalid_time",
            BodyError::CoordinatesOutOfRange => "coordinates_out_of_range",
            BodyError::Encrypted(_) => "encrypted",
        }
    }
}

impl From<MissingField> for BodyError {
    /// A read past the end of the body: [`BodyError::Truncated`] in that field.
    fn from(MissingField(field): MissingField) -> Self {
        BodyError::Truncated { field }
    }
}

/// Decodes the body of `frame` according to its message id.
///
/// ```
/// use provider_adapters::ChecksumPolicy;
/// use provider_adapters::jt808::codec::{decode_body, parse_frame, Jt808Message};
/// let frame = parse_frame(&hex::decode("0002000004304832546500b7ca").unwrap(), ChecksumPolicy::Verify).unwrap();
/// assert_eq!(decode_body(&frame), Ok(Jt808Message::Heartbeat));
/// ```
pub fn decode_body(frame: &Jt808Frame) -> Result<Jt808Message, BodyError> {
    let header = &frame.header;
    let body = &frame.body[..];
    let known = matches!(
        header.message_id,
        message_id::REGISTER
            | message_id::AUTHENTICATE
            | message_id::LOCATION
            | message_id::LOCATION_BATCH
            | message_id::HEARTBEAT
            | message_id::LOGOUT
            | message_id::TERMINAL_RESPONSE
            | message_id::VENDOR_LOCATION_BATCH
            | message_id::TRANSPARENT
    );
    if known && header.encryption != 0 {
        return Err(BodyError::Encrypted(header.encryption));
    }
    Ok(match header.message_id {
        message_id::REGISTER => Jt808Message::Register(decode_register(body, header.version)?),
        message_id::AUTHENTICATE => {
            Jt808Message::Authenticate(decode_authenticate(body, header.version)?)
        }
        message_id::LOCATION => Jt808Message::Location(decode_location(body)?),
        message_id::LOCATION_BATCH => Jt808Message::LocationBatch(decode_batch(body)?),
        // A 7-byte 0x0210 is battery level and time only: no fix, nothing to decode.
        message_id::VENDOR_LOCATION_BATCH if body.len() > VENDOR_BATCH_STATUS_LEN => {
            Jt808Message::LocationBatch(decode_vendor_batch(body))
        }
        message_id::VENDOR_LOCATION => Jt808Message::Location(decode_vendor_location(body)?),
        // Blind-area fixes are stored ones: delivered as a (one-item) batch, never live.
        message_id::VENDOR_LOCATION_BLIND => Jt808Message::LocationBatch(LocationBatch {
            blind_area: true,
            items: vec![decode_vendor_location(body)?],
            invalid_items: 0,
        }),
        message_id::TRANSPARENT => match decode_transparent(body)? {
            Some((report, false)) => Jt808Message::Location(report),
            Some((report, true)) => Jt808Message::LocationBatch(LocationBatch {
                blind_area: true,
                items: vec![report],
                invalid_items: 0,
            }),
            None => Jt808Message::Unsupported {
                message_id: header.message_id,
            },
        },
        message_id::HEARTBEAT => Jt808Message::Heartbeat,
        message_id::LOGOUT => Jt808Message::Logout,
        message_id::TERMINAL_RESPONSE => Jt808Message::TerminalResponse,
        message_id => Jt808Message::Unsupported { message_id },
    })
}

/// Field widths of maker id, model and terminal id in the register body.
fn register_layout(body_len: usize, version: ProtocolVersion) -> (usize, usize, usize) {
    // 2019 widened all three. 2011 and 2013 share a header and differ only in the model
    // width (8 vs 20): a body too short for the 2013 fixed part is 2011.
    const FIXED_2013: usize = 2 + 2 + 5 + 20 + 7 + 1;
    match version {
        ProtocolVersion::V2019 { .. } => (11, 30, 30),
        ProtocolVersion::V2013 if body_len >= FIXED_2013 => (5, 20, 7),
        // Only 0x5501/0x5502 use the vendor header, never a register.
        ProtocolVersion::V2013 | ProtocolVersion::VendorShortSerial { .. } => (5, 8, 7),
    }
}

fn decode_register(body: &[u8], version: ProtocolVersion) -> Result<Register, BodyError> {
    let (maker_len, model_len, terminal_len) = register_layout(body.len(), version);
    let mut reader = Reader::new(body);
    Ok(Register {
        province_id: field(reader.u16(), "province_id")?,
        city_id: field(reader.u16(), "city_id")?,
        maker_id: gbk_text(field(reader.take(maker_len), "maker_id")?),
        model: gbk_text(field(reader.take(model_len), "model")?),
        terminal_id: gbk_text(field(reader.take(terminal_len), "terminal_id")?),
        plate_colour: field(reader.u8(), "plate_colour")?,
        plate: gbk_text(reader.rest()),
    })
}

fn decode_authenticate(body: &[u8], version: ProtocolVersion) -> Result<Authenticate, BodyError> {
    if let ProtocolVersion::V2013 = version {
        return Ok(Authenticate {
            auth_code: gbk_text(body),
            imei: None,
            software_version: None,
        });
    }
    let mut reader = Reader::new(body);
    let code_len = field(reader.u8(), "auth_code_len")?;
    let auth_code = gbk_text(field(reader.take(usize::from(code_len)), "auth_code")?);
    let imei = gbk_text(field(reader.take(15), "imei")?);
    let software_version = gbk_text(field(reader.take(20), "software_version")?);
    Ok(Authenticate {
        auth_code,
        imei: Some(imei),
        software_version: Some(software_version),
    })
}

/// GMT+8, the zone of JT/T 808 BCD times.
const BEIJING_OFFSET: TimeDelta = TimeDelta::hours(8);

fn bcd_time_gmt8(bcd: [u8; 6]) -> Option<DateTime<Utc>> {
    let [year, month, day, hour, minute, second] = bcd.map(bcd_byte);
    let date = NaiveDate::from_ymd_opt(2000 + i32::try_from(year?).ok()?, month?, day?)?;
    let local = date.and_hms_opt(hour?, minute?, second?)?;
    Some((local - BEIJING_OFFSET).and_utc())
}

fn decode_location(body: &[u8]) -> Result<LocationReport, BodyError> {
    let mut reader = Reader::new(body);
    let alarm_flags = field(reader.u32(), "alarm_flags")?;
    let status_flags = field(reader.u32(), "status_flags")?;
    let lat_micro = field(reader.u32(), "latitude")?;
    let lon_micro = field(reader.u32(), "longitude")?;
    let altitude_m = field(reader.i16(), "altitude")?;
    let speed_decikmh = field(reader.u16(), "speed")?;
    let heading_deg = field(reader.u16(), "direction")?;
    let time = bcd_time_gmt8(field(reader.array(), "time")?).ok_or(BodyError::InvalidTime)?;

    let mut lat = f64::from(lat_micro) / 1e6;
    let mut lon = f64::from(lon_micro) / 1e6;
    if status_flags & STATUS_SOUTH != 0 {
        lat = -lat;
    }
    if status_flags & STATUS_WEST != 0 {
        lon = -lon;
    }
    let position = LatLon::new(lat, lon).map_err(|_| BodyError::CoordinatesOutOfRange)?;

    // Additional information items: id, length, value. Vendors add their own; only the
    // satellite count (0x31) is used. A malformed tail ends the walk but keeps the fix.
    let mut satellites = None;
    while let (Some(item_id), Some(item_len)) = (reader.u8(), reader.u8()) {
        let Some(value) = reader.take(usize::from(item_len)) else {
            break;
        };
        if item_id == 0x31
            && let [count] = value
        {
            satellites = Some(*count);
        }
    }

    Ok(LocationReport {
        alarm_flags,
        status_flags,
        position,
        altitude_m,
        speed_kmh: f64::from(speed_decikmh) / 10.0,
        heading_deg,
        time,
        satellites,
        has_motion: true,
    })
}

fn decode_batch(body: &[u8]) -> Result<LocationBatch, BodyError> {
    let mut reader = Reader::new(body);
    let count = field(reader.u16(), "item_count")?;
    let kind = field(reader.u8(), "batch_type")?;
    let mut items = Vec::with_capacity(usize::from(count).min(64));
    let mut invalid_items = 0;
    for _ in 0..count {
        let Some(item_len) = reader.u16() else {
            invalid_items += 1;
            break;
        };
        let Some(item) = reader.take(usize::from(item_len)) else {
            invalid_items += 1;
            break;
        };
        match decode_location(item) {
            Ok(report) => items.push(report),
            Err(_) => invalid_items += 1,
        }
    }
    Ok(LocationBatch {
        blind_area: kind == 1,
        items,
        invalid_items,
    })
}

/// Body length of the 0x0210 variant that carries only battery level and time.
const VENDOR_BATCH_STATUS_LEN: usize = 7;

/// 0x0210: location items (0x0200 bodies), each behind a one-byte length, no count.
fn decode_vendor_batch(body: &[u8]) -> LocationBatch {
    let mut reader = Reader::new(body);
    let mut items = Vec::new();
    let mut invalid_items = 0;
    while let Some(item_len) = reader.u8() {
        let Some(item) = reader.take(usize::from(item_len)) else {
            invalid_items += 1;
            break;
        };
        match decode_location(item) {
            Ok(report) => items.push(report),
            Err(_) => invalid_items += 1,
        }
    }
    LocationBatch {
        blind_area: false,
        items,
        invalid_items,
    }
}

/// `count` BCD digits from `reader` (a trailing odd digit is the high nibble of the next
/// byte, which is consumed; its low nibble is returned as the second value).
fn bcd_digits(reader: &mut Reader<'_>, count: usize) -> Option<(u64, u8)> {
    let mut value = 0u64;
    let mut digits = 0;
    let mut low = 0;
    while digits < count {
        let byte = reader.u8()?;
        for nibble in [byte >> 4, byte & 0x0f] {
            if digits == count {
                low = nibble;
                break;
            }
            if nibble > 9 {
                return None;
            }
            value = value * 10 + u64::from(nibble);
            digits += 1;
        }
    }
    Some((value, low))
}

/// Degrees from BCD `D…DMMmmmm` (degrees, minutes with four decimals).
fn degrees_minutes(value: u64) -> f64 {
    let degrees = (value / 1_000_000) as f64;
    let minutes = (value % 1_000_000) as f64 / 10_000.0;
    degrees + minutes / 60.0
}

/// Flags nibble after the longitude of the 0x5501/0x5502 layout.
const VENDOR_FLAG_VALID: u8 = 0x1;
const VENDOR_FLAG_NORTH: u8 = 0x2;
const VENDOR_FLAG_EAST: u8 = 0x4;
/// Knots to km/h.
const KMH_PER_KNOT: f64 = 1.852;

/// 0x5501/0x5502 body (the JT600 binary location): BCD time `DDMMYYhhmmss` in UTC, BCD
/// latitude `DDMMmmmm`, BCD longitude `DDDMMmmmm` sharing its last byte with a flags
/// nibble (bit 0 fix valid, bit 1 north, bit 2 east), BCD speed (knots), course / 2,
/// signal, satellites, odometer, battery, cell, product, status, alarm, then id-length
/// items (0x02: altitude). Only the fix is kept.
fn decode_vendor_location(body: &[u8]) -> Result<LocationReport, BodyError> {
    let mut reader = Reader::new(body);
    let [day, month, year, hour, minute, second] =
        field(reader.array::<6>(), "time")?.map(bcd_byte);
    let time = (|| {
        let date = NaiveDate::from_ymd_opt(2000 + i32::try_from(year?).ok()?, month?, day?)?;
        Some(date.and_hms_opt(hour?, minute?, second?)?.and_utc())
    })()
    .ok_or(BodyError::InvalidTime)?;
    let (lat_bcd, _) = field(bcd_digits(&mut reader, 8), "latitude")?;
    let (lon_bcd, flags) = field(bcd_digits(&mut reader, 9), "longitude")?;
    let (speed_knots, _) = field(bcd_digits(&mut reader, 2), "speed")?;
    let course_half = field(reader.u8(), "course")?;
    let _signal = field(reader.u8(), "signal")?;
    let satellites = field(reader.u8(), "satellites")?;
    // Odometer (4), battery (1), cell id (4), area code (2), product (1), status (2),
    // alarm (2): vendor data this server does not carry.
    field(reader.skip(16), "status")?;
    let mut altitude_m = 0;
    while let (Some(item_id), Some(item_len)) = (reader.u8(), reader.u8()) {
        let Some(value) = reader.take(usize::from(item_len)) else {
            break;
        };
        if item_id == 0x02
            && let [high, low] = value
        {
            altitude_m = i16::from_be_bytes([*high, *low]);
        }
    }

    let mut lat = degrees_minutes(lat_bcd);
    let mut lon = degrees_minutes(lon_bcd);
    let mut status_flags = 0;
    if flags & VENDOR_FLAG_VALID != 0 {
        status_flags |= STATUS_FIX_VALID;
    }
    if flags & VENDOR_FLAG_NORTH == 0 {
        lat = -lat;
        status_flags |= STATUS_SOUTH;
    }
    if flags & VENDOR_FLAG_EAST == 0 {
        lon = -lon;
        status_flags |= STATUS_WEST;
    }
    let position = LatLon::new(lat, lon).map_err(|_| BodyError::CoordinatesOutOfRange)?;
    Ok(LocationReport {
        alarm_flags: 0,
        status_flags,
        position,
        altitude_m,
        speed_kmh: speed_knots as f64 * KMH_PER_KNOT,
        heading_deg: u16::from(course_half) * 2,
        time,
        satellites: Some(satellites),
        has_motion: true,
    })
}

/// Pass-through type of the vendor data report that ends in status and coordinates.
const TRANSPARENT_VENDOR_REPORT: u8 = 0xf0;

/// 0x0900 pass-through. Only type 0xF0 with sub-type 1 (data items), 2 (fault codes) or
/// 3 (events) carries a fix: BCD time (GMT+8), archive flag, vehicle type, sub-type, its
/// items, then the 0x0200 status word, latitude and longitude. Returns the fix and
/// whether it is archived (a stored, not a live, report); `None` for every other
/// pass-through payload (text, OBD strings, sensor data): they carry no fix.
fn decode_transparent(body: &[u8]) -> Result<Option<(LocationReport, bool)>, BodyError> {
    let mut reader = Reader::new(body);
    if reader.u8() != Some(TRANSPARENT_VENDOR_REPORT) {
        return Ok(None);
    }
    let time = bcd_time_gmt8(field(reader.array(), "time")?).ok_or(BodyError::InvalidTime)?;
    let archived = field(reader.u8(), "archive_flag")? != 0;
    let _vehicle_type = field(reader.u8(), "vehicle_type")?;
    match field(reader.u8(), "subtype")? {
        0x01 => {
            for _ in 0..field(reader.u8(), "item_count")? {
                field(reader.skip(2), "item_id")?;
                let len = field(reader.u8(), "item_len")?;
                field(reader.skip(usize::from(len)), "item")?;
            }
        }
        0x02 => {
            for _ in 0..field(reader.u16(), "system_count")? {
                field(reader.skip(4), "system_id")?;
                for _ in 0..field(reader.u16(), "code_count")? {
                    field(reader.skip(8), "code")?;
                    let len = field(reader.u16(), "code_len")?;
                    field(reader.skip(usize::from(len)), "code_text")?;
                }
            }
        }
        0x03 => {
            for _ in 0..field(reader.u8(), "event_count")? {
                field(reader.skip(1), "event_id")?;
                let len = field(reader.u8(), "event_len")?;
                field(reader.skip(usize::from(len)), "event")?;
            }
        }
        _ => return Ok(None),
    }
    let status_flags = field(reader.u32(), "status_flags")?;
    let mut lat = f64::from(field(reader.u32(), "latitude")?) / 1e6;
    let mut lon = f64::from(field(reader.u32(), "longitude")?) / 1e6;
    if status_flags & STATUS_SOUTH != 0 {
        lat = -lat;
    }
    if status_flags & STATUS_WEST != 0 {
        lon = -lon;
    }
    let position = LatLon::new(lat, lon).map_err(|_| BodyError::CoordinatesOutOfRange)?;
    let report = LocationReport {
        alarm_flags: 0,
        status_flags,
        position,
        altitude_m: 0,
        speed_kmh: 0.0,
        heading_deg: 0,
        time,
        satellites: None,
        has_motion: false,
    };
    Ok(Some((report, archived)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChecksumPolicy;
    use crate::jt808::codec::parse_frame;
    use crate::jt808::codec::test_frames::{
        PHONE, build_frame, location_body, vendor_frame, vendor_location_body,
    };

    #[test]
    fn a_2013_location_decodes_with_gmt8_time_converted_to_utc() {
        // 2026-11-22 11:04:05 in Beijing is 03:04:05 UTC.
        let body = location_body(
            31_230_400,
            121_473_700,
            STATUS_FIX_VALID,
            [0x26, 0x11, 0x22, 0x11, 0x04, 0x05],
        );
        let raw = build_frame(message_id::LOCATION, &PHONE, 9, &body);
        let frame = parse_frame(&raw, ChecksumPolicy::Verify).expect("frame");
        let Ok(Jt808Message::Location(report)) = decode_body(&frame) else {
            panic!("not a location")
        };
        let position = report.to_position(&frame.header.phone.device_id());
        assert_eq!(position.device_id, "013912345678");
        assert_eq!(position.fix.ts.to_rfc3339(), "2026-11-22T03:04:05+00:00");
        assert!((position.fix.position.lat() - 31.2304).abs() < 1e-9);
        assert!((position.fix.position.lon() - 121.4737).abs() < 1e-9);
        assert_eq!(position.fix.speed_kmh, Some(42.5));
        assert_eq!(position.fix.heading, Some(90.0));
        assert_eq!(position.altitude_m, Some(12.0));
        assert_eq!(position.satellites, Some(9));
        assert_eq!(position.alarm.as_deref(), Some("sos"));
        assert!(position.valid);
    }

    #[test]
    fn south_and_west_flags_make_coordinates_negative_and_an_unset_fix_bit_is_invalid() {
        let body = location_body(
            33_868_800,
            151_209_300,
            STATUS_SOUTH | STATUS_WEST,
            [0x26, 0x01, 0x01, 0, 0, 0],
        );
        let frame = parse_frame(
            &build_frame(0x0200, &PHONE, 1, &body),
            ChecksumPolicy::Verify,
        )
        .expect("frame");
        let Ok(Jt808Message::Location(report)) = decode_body(&frame) else {
            panic!("not a location")
        };
        assert!(report.position.lat() < 0.0 && report.position.lon() < 0.0);
        assert!(!report.fix_valid());
    }

    #[test]
    fn coordinates_beyond_wgs84_are_refused() {
        let body = location_body(91_000_000, 0, 0, [0x26, 0x01, 0x01, 0, 0, 0]);
        let frame = parse_frame(
            &build_frame(0x0200, &PHONE, 1, &body),
            ChecksumPolicy::Verify,
        )
        .expect("frame");
        assert_eq!(decode_body(&frame), Err(BodyError::CoordinatesOutOfRange));
    }

    #[test]
    fn a_non_bcd_or_impossible_time_is_refused() {
        for time in [
            [0x26, 0x13, 0x01, 0, 0, 0],
            [0x26, 0x01, 0x01, 0x0a, 0, 0],
            [0; 6],
        ] {
            let body = location_body(1, 1, 0, time);
            let frame = parse_frame(
                &build_frame(0x0200, &PHONE, 1, &body),
                ChecksumPolicy::Verify,
            )
            .expect("frame");
            assert_eq!(decode_body(&frame), Err(BodyError::InvalidTime));
        }
    }

    #[test]
    fn a_gbk_plate_in_a_2013_register_decodes() {
        let mut body = vec![0x00, 0x1f, 0x00, 0x73];
        body.extend_from_slice(b"MAKER");
        body.extend_from_slice(&[b'M'; 20]);
        body.extend_from_slice(b"T000001");
        body.push(2);
        body.extend_from_slice(&[0xbb, 0xa6, b'A', b'1', b'2', b'3', b'4', b'5']);
        let frame = parse_frame(
            &build_frame(0x0100, &PHONE, 1, &body),
            ChecksumPolicy::Verify,
        )
        .expect("frame");
        let Ok(Jt808Message::Register(register)) = decode_body(&frame) else {
            panic!("not a register")
        };
        assert_eq!(register.plate, "沪A12345");
        assert_eq!(register.terminal_id, "T000001");
        assert_eq!(register.plate_colour, 2);
    }

    #[test]
    fn a_blind_area_batch_keeps_good_items_and_counts_bad_ones() {
        let good = location_body(
            31_000_000,
            121_000_000,
            STATUS_FIX_VALID,
            [0x26, 0x01, 0x01, 0, 0, 0],
        );
        let bad = location_body(31_000_000, 121_000_000, 0, [0x26, 0x01, 0x41, 0, 0, 0]);
        let mut body = vec![0x00, 0x03, 0x01];
        for item in [&good, &bad, &good] {
            body.extend_from_slice(&(item.len() as u16).to_be_bytes());
            body.extend_from_slice(item);
        }
        let frame = parse_frame(
            &build_frame(0x0704, &PHONE, 1, &body),
            ChecksumPolicy::Verify,
        )
        .expect("frame");
        let Ok(Jt808Message::LocationBatch(batch)) = decode_body(&frame) else {
            panic!("not a batch")
        };
        assert!(batch.blind_area);
        assert_eq!(batch.items.len(), 2);
        assert_eq!(batch.invalid_items, 1);
    }

    #[test]
    fn a_vendor_5501_with_its_one_byte_serial_decodes_to_a_utc_fix() {
        let raw = vendor_frame(0x5501, 0x8c00, 0xc0, &vendor_location_body(0x07));
        let frame = parse_frame(&raw, ChecksumPolicy::Verify).expect("vendor frame");
        assert_eq!(frame.header.serial, 0xc0);
        assert_eq!(frame.header.encryption, 0);
        assert_eq!(
            frame.header.version,
            ProtocolVersion::VendorShortSerial {
                reply_requested: true
            }
        );
        let Ok(Jt808Message::Location(report)) = decode_body(&frame) else {
            panic!("not a location")
        };
        let position = report.to_position("x");
        assert_eq!(position.fix.ts.to_rfc3339(), "2021-05-08T06:30:51+00:00");
        assert!((position.fix.position.lat() - (22.0 + 34.8621 / 60.0)).abs() < 1e-9);
        assert!((position.fix.position.lon() - (113.0 + 55.0170 / 60.0)).abs() < 1e-9);
        assert!(position.valid);
        assert_eq!(position.satellites, Some(8));
        assert_eq!(position.fix.heading, Some(90.0));
        assert_eq!(position.altitude_m, Some(20.0));
        assert!((position.fix.speed_kmh.unwrap_or_default() - 18.52).abs() < 1e-9);

        // South, west, no fix: flags nibble 0.
        let raw = vendor_frame(0x5502, 0, 1, &vendor_location_body(0x00));
        let frame = parse_frame(&raw, ChecksumPolicy::Verify).expect("vendor frame");
        let Ok(Jt808Message::LocationBatch(batch)) = decode_body(&frame) else {
            panic!("not a batch")
        };
        assert!(batch.blind_area);
        assert!(batch.items[0].position.lat() < 0.0 && batch.items[0].position.lon() < 0.0);
        assert!(!batch.items[0].fix_valid());
    }

    fn transparent_body(archived: u8, status: u32) -> Vec<u8> {
        // Type 0xF0, 2023-02-23 15:02:15 GMT+8, archive flag, vehicle type, sub-type 3
        // with one event of length 0, then status, latitude, longitude.
        let mut body = vec![
            0xf0, 0x23, 0x02, 0x23, 0x15, 0x02, 0x15, archived, 0x02, 0x03,
        ];
        body.extend_from_slice(&[0x01, 0x38, 0x00]);
        body.extend_from_slice(&status.to_be_bytes());
        body.extend_from_slice(&43_894_156u32.to_be_bytes());
        body.extend_from_slice(&79_272_800u32.to_be_bytes());
        body
    }

    #[test]
    fn a_transparent_vendor_report_carries_a_fix_and_other_payloads_none() {
        let status = STATUS_FIX_VALID | STATUS_WEST;
        let frame = parse_frame(
            &build_frame(0x0900, &PHONE, 1, &transparent_body(0, status)),
            ChecksumPolicy::Verify,
        )
        .expect("frame");
        let Ok(Jt808Message::Location(report)) = decode_body(&frame) else {
            panic!("not a location")
        };
        let position = report.to_position("x");
        assert_eq!(position.fix.ts.to_rfc3339(), "2023-02-23T07:02:15+00:00");
        assert!((position.fix.position.lat() - 43.894156).abs() < 1e-9);
        assert!((position.fix.position.lon() + 79.2728).abs() < 1e-9);
        assert_eq!(position.fix.speed_kmh, None);
        assert!(position.valid);

        let frame = parse_frame(
            &build_frame(0x0900, &PHONE, 1, &transparent_body(1, status)),
            ChecksumPolicy::Verify,
        )
        .expect("frame");
        assert!(matches!(
            decode_body(&frame),
            Ok(Jt808Message::LocationBatch(LocationBatch {
                blind_area: true,
                ..
            }))
        ));

        for body in [
            &b"\x41OBD-RT,12.3"[..],
            &[0xf0, 0x23, 0x02, 0x23, 0x15, 0x02, 0x15, 0, 2, 0x04],
        ] {
            let frame = parse_frame(
                &build_frame(0x0900, &PHONE, 1, body),
                ChecksumPolicy::Verify,
            )
            .expect("frame");
            assert_eq!(
                decode_body(&frame),
                Ok(Jt808Message::Unsupported { message_id: 0x0900 })
            );
        }
    }

    #[test]
    fn a_vendor_0210_batch_has_one_byte_item_lengths_and_a_7_byte_one_no_fix() {
        let item = location_body(
            31_000_000,
            121_000_000,
            STATUS_FIX_VALID,
            [0x26, 0x01, 0x01, 0, 0, 0],
        );
        let mut body = Vec::new();
        for _ in 0..2 {
            body.push(item.len() as u8);
            body.extend_from_slice(&item);
        }
        let frame = parse_frame(
            &build_frame(0x0210, &PHONE, 1, &body),
            ChecksumPolicy::Verify,
        )
        .expect("frame");
        let Ok(Jt808Message::LocationBatch(batch)) = decode_body(&frame) else {
            panic!("not a batch")
        };
        assert_eq!((batch.items.len(), batch.invalid_items), (2, 0));

        let status_only = [0x4f, 0x26, 0x06, 0x18, 0x02, 0x29, 0x57];
        let frame = parse_frame(
            &build_frame(0x0210, &PHONE, 1, &status_only),
            ChecksumPolicy::Verify,
        )
        .expect("frame");
        assert_eq!(
            decode_body(&frame),
            Ok(Jt808Message::Unsupported { message_id: 0x0210 })
        );
    }
}
