//! Message bodies into a [`Gt06Message`]: login (IMEI, type, time zone), heartbeat, and
//! every message type that can carry a GPS fix (see the module docs of
//! [`gt06::codec`](super) for which, and when a cell-tower or Wi-Fi type counts as one).

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use domain::{Fix, FixSource, LatLon};

use super::frame::Gt06Frame;
use super::protocol_number;
use crate::position::DevicePosition;
use crate::wire::{MissingField, Reader, field, hex_digits};

/// Login (0x01).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// 15-digit IMEI (the 8 BCD bytes minus the leading padding digit).
    pub imei: String,
    /// Device type id, when sent.
    pub type_id: Option<u16>,
    /// Time zone of the device's clock in minutes east of UTC, when sent.
    pub utc_offset_minutes: Option<i32>,
}

/// A GPS fix from any GPS-bearing message, in the device's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Gt06Location {
    /// Device clock time (UTC unless the login stated a zone).
    pub device_time: NaiveDateTime,
    /// Satellites in use, when the message carries them.
    pub satellites: Option<u8>,
    /// WGS-84 position (south and west negative), refused at decoding when out of range.
    pub position: LatLon,
    /// Speed in km/h, when the message carries it.
    pub speed_kmh: Option<f64>,
    /// Course, degrees from north.
    pub heading_deg: u16,
    /// "GPS positioned" bit of the course/status word.
    pub valid: bool,
    /// Alarm from the status part of alarm messages.
    pub alarm: Option<&'static str>,
    /// The device marks the fix as a re-upload of stored data (0x22 "real-time/re-upload").
    pub reupload: bool,
    /// `device_time` is already UTC whatever the login said (the Unix timestamp of the
    /// modular message 0x70), so no zone offset applies.
    pub time_is_utc: bool,
}

impl Gt06Location {
    /// The fix as a [`DevicePosition`] of `imei`, with the device clock at
    /// `utc_offset_minutes` east of UTC.
    pub fn to_position(&self, imei: &str, utc_offset_minutes: i32) -> DevicePosition {
        let offset = if self.time_is_utc {
            0
        } else {
            i64::from(utc_offset_minutes)
        };
        let time = (self.device_time - TimeDelta::minutes(offset)).and_utc();
        DevicePosition {
            device_id: imei.to_owned(),
            fix: Fix {
                position: self.position,
                ts: time,
                speed_kmh: self.speed_kmh,
                heading: Some(f64::from(self.heading_deg)),
                accuracy_m: None,
                source: FixSource::Gt06,
            },
            valid: self.valid,
            altitude_m: None,
            satellites: self.satellites,
            alarm: self.alarm.map(str::to_owned),
        }
    }

    /// The device time read as UTC.
    pub fn time_utc(&self) -> DateTime<Utc> {
        self.device_time.and_utc()
    }
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq)]
pub enum Gt06Message {
    /// 0x01.
    Login(Login),
    /// 0x13 status or 0x23 heartbeat.
    Heartbeat,
    /// A message with a GPS fix.
    Location(Gt06Location),
    /// A GPS-bearing message type whose GPS block says there is no fix data.
    NoFix,
    /// Anything else (cell towers, Wi-Fi, command replies, information).
    Other,
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
    /// Impossible date or time in the GPS block.
    #[error("invalid date or time")]
    InvalidTime,
    /// Latitude or longitude outside WGS-84 ranges.
    #[error("coordinates out of range")]
    CoordinatesOutOfRange,
}

impl BodyError {
    /// The `reason` label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            BodyError::Truncated { .. } => "truncated_body",
            BodyError::InvalidTime => "invalid_time",
            BodyError::CoordinatesOutOfRange => "coordinates_out_of_range",
        }
    }
}

impl From<MissingField> for BodyError {
    /// A read past the end of the body: [`BodyError::Truncated`] in that field.
    fn from(MissingField(field): MissingField) -> Self {
        BodyError::Truncated { field }
    }
}

/// Standard message types whose body opens with the 18-byte GPS block.
fn has_leading_gps_block(protocol: u8) -> bool {
    matches!(
        protocol,
        0x10 | 0x11
            | 0x12
            | 0x16
            | 0x1a
            | 0x1e
            | 0x22
            | 0x26
            | 0x27
            | 0x2d
            | 0x31
            | 0x32
            | 0x37
            | 0xa0
            | 0xa3
            | 0xa4
    )
}

/// Types with an LBS block (with its own length byte) and a status part after the GPS
/// block: the alarm messages.
fn has_status(protocol: u8) -> bool {
    matches!(protocol, 0x16 | 0x26 | 0x27 | 0x32)
}

/// Decodes the body of `frame` according to its protocol number.
///
/// ```
/// use provider_adapters::ChecksumPolicy;
/// use provider_adapters::gt06::codec::{decode_body, parse_frame, Gt06Message};
/// let frame = parse_frame(&hex::decode("78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a").unwrap(), ChecksumPolicy::Ignore).unwrap();
/// let Ok(Gt06Message::Location(fix)) = decode_body(&frame) else { panic!() };
/// assert!((fix.position.lat() - 54.94535).abs() < 1e-5 && (fix.position.lon() - 24.01762).abs() < 1e-5);
/// ```
pub fn decode_body(frame: &Gt06Frame) -> Result<Gt06Message, BodyError> {
    let body = &frame.body[..];
    match (frame.extended, frame.protocol) {
        (_, protocol_number::LOGIN) => decode_login(body).map(Gt06Message::Login),
        (false, protocol_number::STATUS | protocol_number::HEARTBEAT) => Ok(Gt06Message::Heartbeat),
        (false, protocol_number::X1_GPS) => {
            let mut reader = Reader::new(body);
            field(reader.skip(4), "data_and_alarm")?;
            decode_gps_block(&mut reader, GpsBlock::Standard).map(Gt06Message::Location)
        }
        (false, protocol_number::GPS_LBS)
            if decode_gps_block(&mut Reader::new(body), GpsBlock::Standard)
                == Err(BodyError::InvalidTime)
                && imei_prefixed(body) =>
        {
            // QH302R-style firmware: the 8-byte BCD IMEI precedes the GPS block.
            let mut reader = Reader::new(body);
            field(reader.skip(IMEI_LEN), "imei")?;
            decode_gps_block(&mut reader, GpsBlock::Standard).map(Gt06Message::Location)
        }
        (false, protocol) if has_leading_gps_block(protocol) => {
            let mut reader = Reader::new(body);
            let mut fix = decode_gps_block(&mut reader, GpsBlock::Standard)?;
            if has_status(protocol) {
                fix.alarm = decode_status_alarm(&mut reader);
            } else if protocol == protocol_number::GPS_LBS_2 {
                fix.reupload = decode_reupload_flag(&mut reader);
            }
            Ok(Gt06Message::Location(fix))
        }
        (true, 0x32 | 0x33) => {
            let mut reader = Reader::new(body);
            match decode_gps_block(&mut reader, GpsBlock::WithLength) {
                Ok(fix) => Ok(Gt06Message::Location(fix)),
                Err(BodyError::Truncated { field: "no_fix" }) => Ok(Gt06Message::NoFix),
                Err(error) => Err(error),
            }
        }
        (_, STRING_INFO) => {
            Ok(decode_position_text(body).map_or(Gt06Message::Other, Gt06Message::Location))
        }
        (_, GPS_MODULAR) => decode_modular(body),
        // Types that are cell-tower or Wi-Fi lists on some firmwares and GPS, LBS and status
        // on others: a position only when a complete GPS block is there (see
        // `probe_gps_block`), never from the cell towers or access points.
        (_, 0x24 | 0x36 | 0x38 | 0xa2) => {
            Ok(probe_gps_block(body).map_or(Gt06Message::Other, Gt06Message::Location))
        }
        _ => Ok(Gt06Message::Other),
    }
}

/// Protocol number of text messages (command replies, position texts).
const STRING_INFO: u8 = 0x21;
/// Protocol number of the modular message: a list of type-length-value modules.
const GPS_MODULAR: u8 = 0x70;
/// Module of 0x70 holding the GPS fix.
const MODULE_GPS: u16 = 0x0033;
/// BCD bytes of an IMEI (15 digits behind a padding nibble).
const IMEI_LEN: usize = 8;
/// The high nibble of the byte after the date in a GPS block: the block's own length,
/// always 12 (satellites to course/status).
const GPS_INFO_LEN_NIBBLE: u8 = 0x0c;

/// Whether `body` opens with an 8-byte BCD IMEI (first nibble the zero padding) followed
/// by a GPS block.
fn imei_prefixed(body: &[u8]) -> bool {
    body.get(..IMEI_LEN).is_some_and(|imei| {
        imei[0] >> 4 == 0 && imei.iter().all(|&byte| byte >> 4 < 10 && byte & 0x0f < 10)
    }) && body.get(IMEI_LEN..).and_then(probe_gps_block).is_some()
}

/// A GPS block at the start of `body`, accepted only when it is unmistakably one: the
/// length nibble says 12, date and time are valid, the coordinates are in range and not
/// both zero. Cell-tower and Wi-Fi messages sharing these protocol numbers put an MCC
/// or a tower count right after the date and fail the first test.
fn probe_gps_block(body: &[u8]) -> Option<Gt06Location> {
    if body.get(6).map(|length_satellites| length_satellites >> 4) != Some(GPS_INFO_LEN_NIBBLE) {
        return None;
    }
    let fix = decode_gps_block(&mut Reader::new(body), GpsBlock::Standard).ok()?;
    (fix.position.lat() != 0.0 || fix.position.lon() != 0.0).then_some(fix)
}

/// 0x21 text: 4 bytes server flag, 1 byte encoding (1: ASCII), then the text. Some
/// firmwares answer a position request with `Current position!Lat:N54.739332,
/// Lon:E25.273270,Course:126.53,Speed:0.0000,DateTime:2017-05-26  10:27:47`; any other
/// text carries no fix.
fn decode_position_text(body: &[u8]) -> Option<Gt06Location> {
    let text = std::str::from_utf8(body.get(5..)?).ok()?;
    let fields = text
        .trim_end_matches('\0')
        .strip_prefix("Current position!")?;
    let mut lat = None;
    let mut lon = None;
    let mut course = None;
    let mut speed = None;
    let mut time = None;
    for item in fields.split(',') {
        let (key, value) = item.split_once(':')?;
        match key.trim() {
            "Lat" => lat = Some(signed_degrees(value, 'N', 'S')?),
            "Lon" => lon = Some(signed_degrees(value, 'E', 'W')?),
            "Course" => course = value.trim().parse::<f64>().ok(),
            "Speed" => speed = value.trim().parse::<f64>().ok(),
            "DateTime" => {
                let compact = value.split_whitespace().collect::<Vec<_>>().join(" ");
                time = NaiveDateTime::parse_from_str(&compact, "%Y-%m-%d %H:%M:%S").ok();
            }
            _ => {}
        }
    }
    let (lat, lon, device_time) = (lat?, lon?, time?);
    let position = LatLon::new(lat, lon).ok()?;
    Some(Gt06Location {
        device_time,
        satellites: None,
        position,
        speed_kmh: speed.filter(|speed| speed.is_finite() && *speed >= 0.0),
        heading_deg: course
            .filter(|course| (0.0..360.0).contains(course))
            .map_or(0, |course| course as u16),
        valid: true,
        alarm: None,
        reupload: false,
        time_is_utc: false,
    })
}

/// `N54.739332` → 54.739332; `S…`/`W…` negative.
fn signed_degrees(value: &str, positive: char, negative: char) -> Option<f64> {
    let value = value.trim();
    let sign = match value.chars().next()? {
        first if first == positive => 1.0,
        first if first == negative => -1.0,
        _ => return None,
    };
    let degrees: f64 = value.get(1..)?.parse().ok()?;
    degrees.is_finite().then_some(sign * degrees)
}

/// 0x70: modules of type (2), length (2), data. Module 0x0033 is the fix: Unix time (4),
/// satellites (1), altitude (2), latitude and longitude (4 each, 1/30000 minute), speed
/// (1), course/status (2). A zero time means the module is empty (no fix yet).
fn decode_modular(body: &[u8]) -> Result<Gt06Message, BodyError> {
    let mut reader = Reader::new(body);
    while let (Some(module), Some(len)) = (reader.u16(), reader.u16()) {
        let Some(data) = reader.take(usize::from(len)) else {
            break;
        };
        if module != MODULE_GPS {
            continue;
        }
        let mut gps = Reader::new(data);
        let seconds = field(gps.u32(), "gps_time")?;
        if seconds == 0 {
            return Ok(Gt06Message::NoFix);
        }
        let device_time = DateTime::from_timestamp(i64::from(seconds), 0)
            .ok_or(BodyError::InvalidTime)?
            .naive_utc();
        let satellites = field(gps.u8(), "satellites")?;
        let _altitude = field(gps.i16(), "altitude")?;
        let lat_units = field(gps.u32(), "latitude")?;
        let lon_units = field(gps.u32(), "longitude")?;
        let speed_kmh = field(gps.u8(), "speed")?;
        let course_status = field(gps.u16(), "course_status")?;
        let position = signed_coordinates(lat_units, lon_units, course_status)?;
        return Ok(Gt06Message::Location(Gt06Location {
            device_time,
            satellites: Some(satellites),
            position,
            speed_kmh: Some(f64::from(speed_kmh)),
            heading_deg: course_status & COURSE_MASK,
            valid: course_status & FLAG_POSITIONED != 0,
            alarm: None,
            reupload: false,
            time_is_utc: true,
        }));
    }
    Ok(Gt06Message::Other)
}

/// The position from GPS-block units and the course/status hemisphere bits.
fn signed_coordinates(
    lat_units: u32,
    lon_units: u32,
    course_status: u16,
) -> Result<LatLon, BodyError> {
    let mut lat = f64::from(lat_units) / UNITS_PER_DEGREE;
    let mut lon = f64::from(lon_units) / UNITS_PER_DEGREE;
    if course_status & FLAG_NORTH == 0 {
        lat = -lat;
    }
    if course_status & FLAG_WEST != 0 {
        lon = -lon;
    }
    LatLon::new(lat, lon).map_err(|_| BodyError::CoordinatesOutOfRange)
}

fn decode_login(body: &[u8]) -> Result<Login, BodyError> {
    let mut reader = Reader::new(body);
    let imei_bcd = field(reader.take(8), "imei")?;
    let digits = hex_digits(imei_bcd);
    // 8 BCD bytes hold 16 digits; the IMEI is the last 15.
    let imei = digits.get(1..).unwrap_or_default().to_owned();
    let type_id = reader.u16();
    let utc_offset_minutes = reader.u16().map(|extension| {
        // Bits 15–4: zone as decimal hhmm; bit 3: west of Greenwich.
        let hhmm = i32::from(extension >> 4);
        let minutes = (hhmm / 100) * 60 + hhmm % 100;
        if extension & 0x08 != 0 {
            -minutes
        } else {
            minutes
        }
    });
    Ok(Login {
        imei,
        type_id,
        utc_offset_minutes,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum GpsBlock {
    /// Date-time, length/satellites byte, lat, lon, speed, course/status.
    Standard,
    /// Extended AZ735 form: date-time, length byte (0: no fix data), satellites, lat,
    /// lon, speed, course/status.
    WithLength,
}

const COURSE_MASK: u16 = 0x03ff;
const FLAG_NORTH: u16 = 1 << 10;
const FLAG_WEST: u16 = 1 << 11;
const FLAG_POSITIONED: u16 = 1 << 12;
/// Latitude and longitude unit: 1/30000 of a minute.
const UNITS_PER_DEGREE: f64 = 30_000.0 * 60.0;

fn decode_gps_block(reader: &mut Reader<'_>, form: GpsBlock) -> Result<Gt06Location, BodyError> {
    let [year, month, day, hour, minute, second] = field(reader.array::<6>(), "date_time")?;
    let satellites = match form {
        GpsBlock::Standard => field(reader.u8(), "satellites")? & 0x0f,
        GpsBlock::WithLength => {
            if field(reader.u8(), "gps_length")? == 0 {
                return Err(BodyError::Truncated { field: "no_fix" });
            }
            field(reader.u8(), "satellites")? & 0x0f
        }
    };
    let lat_units = field(reader.u32(), "latitude")?;
    let lon_units = field(reader.u32(), "longitude")?;
    let speed_kmh = field(reader.u8(), "speed")?;
    let course_status = field(reader.u16(), "course_status")?;

    let device_time =
        NaiveDate::from_ymd_opt(2000 + i32::from(year), u32::from(month), u32::from(day))
            .and_then(|date| {
                date.and_hms_opt(u32::from(hour), u32::from(minute), u32::from(second))
            })
            .ok_or(BodyError::InvalidTime)?;
    let position = signed_coordinates(lat_units, lon_units, course_status)?;
    Ok(Gt06Location {
        device_time,
        satellites: Some(satellites),
        position,
        speed_kmh: Some(f64::from(speed_kmh)),
        heading_deg: course_status & COURSE_MASK,
        valid: course_status & FLAG_POSITIONED != 0,
        alarm: None,
        reupload: false,
        time_is_utc: false,
    })
}

/// Reads LBS (with its length byte) and the status part of an alarm message; the alarm
/// byte wins over the alarm bits of the terminal information byte. `None` when absent.
fn decode_status_alarm(reader: &mut Reader<'_>) -> Option<&'static str> {
    let lbs_len = usize::from(reader.u8()?);
    // The length counts itself; zero means "no LBS data" and nothing follows it.
    if lbs_len > 0 {
        reader.skip(lbs_len.max(9) - 1)?;
    }
    // Voltage is one byte (level 0–6) on most firmwares and two (percent or centivolts)
    // on newer ones; the latter leave exactly six bytes for the status part.
    let voltage_len = if reader.remaining() == 6 { 2 } else { 1 };
    let terminal_info = reader.u8()?;
    reader.skip(voltage_len)?;
    let _gsm_signal = reader.u8()?;
    let alarm_byte = reader.u8()?;
    alarm_name(alarm_byte).or_else(|| status_alarm_name(terminal_info))
}

/// 0x22: after the GPS block, LBS (8 bytes), ACC, upload mode and the re-upload flag.
fn decode_reupload_flag(reader: &mut Reader<'_>) -> bool {
    let flag = reader.skip(8 + 2).and_then(|()| reader.u8());
    // Only trust the flag when the body has exactly the documented tail behind it
    // (optional mileage of 4 bytes), not vendor data that happens to be there.
    matches!((flag, reader.remaining()), (Some(1), 0 | 4))
}

/// Alarm byte of the status part (Concox protocol, alarm/language field).
fn alarm_name(alarm: u8) -> Option<&'static str> {
    Some(match alarm {
        0x01 => "sos",
        0x02 => "powerCut",
        0x03 | 0x09 => "vibration",
        0x04 => "geofenceEnter",
        0x05 => "geofenceExit",
        0x06 => "overspeed",
        0x0e | 0x0f => "lowBattery",
        0x11 => "powerOff",
        0x13 => "tampering",
        0x14 => "door",
        0x23 => "fallDown",
        0x29 => "hardAcceleration",
        0x2a | 0x2b => "hardCornering",
        0x2c => "accident",
        0x30 => "hardBraking",
        _ => return None,
    })
}

/// Alarm bits 3–5 of the terminal information byte.
fn status_alarm_name(terminal_info: u8) -> Option<&'static str> {
    Some(match (terminal_info >> 3) & 0x07 {
        1 => "vibration",
        2 => "powerCut",
        3 => "lowBattery",
        4 => "sos",
        6 => "geofence",
        7 => "removing",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChecksumPolicy;
    use crate::gt06::codec::parse_frame;
    use crate::gt06::codec::test_frames::frame;

    fn gps_block(lat_deg: f64, lon_deg: f64, flags: u16) -> Vec<u8> {
        let mut block = vec![24, 11, 22, 3, 4, 5, 0xc9];
        block.extend_from_slice(&((lat_deg * UNITS_PER_DEGREE) as u32).to_be_bytes());
        block.extend_from_slice(&((lon_deg * UNITS_PER_DEGREE) as u32).to_be_bytes());
        block.push(60);
        block.extend_from_slice(&flags.to_be_bytes());
        block
    }

    #[test]
    fn a_0x12_location_decodes_north_east_with_speed_course_and_satellites() {
        let raw = frame(
            0x12,
            &gps_block(31.2304, 121.4737, FLAG_NORTH | FLAG_POSITIONED | 90),
            7,
        );
        let parsed = parse_frame(&raw, ChecksumPolicy::Verify).expect("frame");
        let Ok(Gt06Message::Location(fix)) = decode_body(&parsed) else {
            panic!("no fix")
        };
        assert!(
            (fix.position.lat() - 31.2304).abs() < 1e-5
                && (fix.position.lon() - 121.4737).abs() < 1e-5
        );
        assert_eq!(
            (fix.speed_kmh, fix.heading_deg, fix.satellites, fix.valid),
            (Some(60.0), 90, Some(9), true)
        );
        assert_eq!(fix.time_utc().to_rfc3339(), "2024-11-22T03:04:05+00:00");
    }

    #[test]
    fn south_is_a_cleared_north_bit_and_west_is_a_set_west_bit() {
        let raw = frame(0x22, &gps_block(33.8688, 151.2093, FLAG_WEST), 7);
        let Ok(Gt06Message::Location(fix)) =
            decode_body(&parse_frame(&raw, ChecksumPolicy::Verify).expect("frame"))
        else {
            panic!("no fix")
        };
        assert!(fix.position.lat() < 0.0 && fix.position.lon() < 0.0 && !fix.valid);
    }

    #[test]
    fn a_login_time_zone_shifts_device_time_to_utc() {
        let raw = frame(
            0x01,
            &[
                0x08, 0x64, 0x71, 0x70, 0x03, 0x28, 0x35, 0x81, 0x36, 0x08, 0x32, 0x02,
            ],
            1,
        );
        let Ok(Gt06Message::Login(login)) =
            decode_body(&parse_frame(&raw, ChecksumPolicy::Verify).expect("frame"))
        else {
            panic!("no login")
        };
        assert_eq!(login.imei, "864717003283581");
        assert_eq!(login.type_id, Some(0x3608));
        assert_eq!(login.utc_offset_minutes, Some(8 * 60));
        let fix = Gt06Location {
            device_time: NaiveDate::from_ymd_opt(2024, 1, 1)
                .and_then(|d| d.and_hms_opt(8, 0, 0))
                .expect("date"),
            satellites: None,
            position: LatLon::new(0.0, 0.0).expect("in range"),
            speed_kmh: None,
            heading_deg: 0,
            valid: true,
            alarm: None,
            reupload: false,
            time_is_utc: false,
        };
        assert_eq!(
            fix.to_position(&login.imei, 480).fix.ts.to_rfc3339(),
            "2024-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn an_alarm_message_names_its_alarm_byte() {
        let mut body = gps_block(10.0, 10.0, FLAG_NORTH | FLAG_POSITIONED);
        body.extend_from_slice(&[9, 0x01, 0xcc, 0x00, 0x28, 0x7d, 0x00, 0x1f, 0x71]);
        body.extend_from_slice(&[0x00, 0x04, 0x04, 0x01, 0x02]);
        let parsed = parse_frame(&frame(0x16, &body, 3), ChecksumPolicy::Verify).expect("frame");
        let Ok(Gt06Message::Location(fix)) = decode_body(&parsed) else {
            panic!("no fix")
        };
        assert_eq!(fix.alarm, Some("sos"));
    }

    fn decoded(protocol: u8, body: &[u8]) -> Gt06Message {
        let frame = parse_frame(&frame(protocol, body, 1), ChecksumPolicy::Verify).expect("frame");
        decode_body(&frame).expect("body")
    }

    #[test]
    fn a_gps_block_inside_a_cell_or_wifi_type_is_a_fix_and_a_tower_list_is_not() {
        let mut body = gps_block(3.5, 76.5, FLAG_POSITIONED | FLAG_NORTH | FLAG_WEST);
        body.extend_from_slice(&[0x02, 0xdc, 0x65, 0, 0, 0, 0, 0]);
        for protocol in [0x24, 0x36, 0x38, 0xa2] {
            let Gt06Message::Location(fix) = decoded(protocol, &body) else {
                panic!("{protocol:#04x}: no fix")
            };
            assert!(
                (fix.position.lat() - 3.5).abs() < 1e-5 && (fix.position.lon() + 76.5).abs() < 1e-5
            );
        }
        // Date, then an MCC (0x02dc): cell towers only.
        let towers = [
            24, 11, 15, 15, 29, 38, 0x02, 0xdc, 0x65, 0, 0, 0x69, 0x81, 0, 0, 0, 0, 0, 0x09, 0x56,
        ];
        assert_eq!(decoded(0xa2, &towers), Gt06Message::Other);
        // A block of zeros is no fix either.
        let mut zeros = vec![24, 11, 15, 15, 29, 38, 0xc0];
        zeros.extend_from_slice(&[0; 11]);
        assert_eq!(decoded(0x24, &zeros), Gt06Message::Other);
    }

    #[test]
    fn a_gps_message_with_a_leading_imei_decodes_after_it() {
        let mut body = vec![0x08, 0x66, 0x70, 0x30, 0x66, 0x50, 0x22, 0x97];
        body.extend_from_slice(&gps_block(13.4889, 144.82, FLAG_POSITIONED | FLAG_NORTH));
        body.extend_from_slice(&[0; 8]);
        let Gt06Message::Location(fix) = decoded(0x12, &body) else {
            panic!("no fix")
        };
        assert!(
            (fix.position.lat() - 13.4889).abs() < 1e-5
                && (fix.position.lon() - 144.82).abs() < 1e-5
        );
        // Without a GPS block behind the digits it stays an invalid time.
        let frame =
            parse_frame(&frame(0x12, &body[..20], 1), ChecksumPolicy::Verify).expect("frame");
        assert_eq!(decode_body(&frame), Err(BodyError::InvalidTime));
    }

    #[test]
    fn a_position_text_decodes_and_other_texts_carry_no_fix() {
        let mut body = vec![0, 0, 0, 0, 1];
        body.extend_from_slice(
            b"Current position!Lat:S54.739332,Lon:W25.273270,Course:126.53,Speed:3.5,DateTime:2017-05-26  10:27:47",
        );
        let Gt06Message::Location(fix) = decoded(0x21, &body) else {
            panic!("no fix")
        };
        assert!(
            (fix.position.lat() + 54.739332).abs() < 1e-9
                && (fix.position.lon() + 25.27327).abs() < 1e-9
        );
        assert_eq!(
            fix.to_position("x", 0).fix.ts.to_rfc3339(),
            "2017-05-26T10:27:47+00:00"
        );
        assert_eq!((fix.heading_deg, fix.speed_kmh), (126, Some(3.5)));

        let mut reply = vec![0, 0, 0, 0, 1];
        reply.extend_from_slice(b"Battery:5.56V,NORMAL; GPS:OFF;");
        assert_eq!(decoded(0x21, &reply), Gt06Message::Other);
        let mut bad = vec![0, 0, 0, 0, 1];
        bad.extend_from_slice(b"Current position!Lat:N95.0,Lon:E25.0,DateTime:2017-05-26 10:27:47");
        assert_eq!(decoded(0x21, &bad), Gt06Message::Other);
    }

    #[test]
    fn the_gps_module_of_a_modular_message_is_a_utc_fix() {
        let mut body = vec![0x00, 0x00, 0x00, 0x01, 0x02];
        body.extend_from_slice(&[0x00, 0x33, 0x00, 0x12]);
        body.extend_from_slice(&0x5d62_bf3au32.to_be_bytes());
        body.extend_from_slice(&[0x08, 0x00, 0xe8]);
        body.extend_from_slice(&0x04b5_9943u32.to_be_bytes());
        body.extend_from_slice(&0x0881_4a87u32.to_be_bytes());
        body.push(0);
        body.extend_from_slice(&0x1d5du16.to_be_bytes());
        let Gt06Message::Location(fix) = decoded(0x70, &body) else {
            panic!("no fix")
        };
        assert!(fix.valid && fix.position.lat() > 43.89 && fix.position.lon() < -79.27);
        // The Unix time is UTC whatever zone the login stated.
        assert_eq!(
            fix.to_position("x", 120).fix.ts.to_rfc3339(),
            "2019-08-25T17:02:50+00:00"
        );

        let mut empty = vec![0x00, 0x33, 0x00, 0x12];
        empty.extend_from_slice(&[0; 18]);
        assert_eq!(decoded(0x70, &empty), Gt06Message::NoFix);
        assert_eq!(
            decoded(0x70, &[0x00, 0x2c, 0x00, 0x01, 0x05]),
            Gt06Message::Other
        );
    }
}
