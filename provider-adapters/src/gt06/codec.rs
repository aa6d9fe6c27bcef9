//! GT06 / Concox wire format: framing, CRC-16/X.25, login, heartbeat, GPS-bearing
//! messages and acknowledgements. Pure: no I/O, no clock, no panics.
//!
//! # Frames
//!
//! `0x78 0x78 len(1) protocol body serial(2) crc(2) 0x0d 0x0a`, or `0x79 0x79 len(2) …` for
//! the extended form. `len` counts protocol to CRC; the CRC-16/X.25 covers `len` to
//! `serial`. [`Gt06Codec`] finds frames by their start marker and declared length; as in
//! the field, some firmwares declare a wrong length (Wi-Fi messages with length 0, for
//! one), so when the declared end is not `0x0d 0x0a` the splitter cuts at the first
//! `0x0d 0x0a` instead. Bytes before a start marker are reported as garbage; a frame
//! longer than [`MAX_FRAME_LEN`] is dropped and the splitter resynchronises on the next
//! start marker. It never leaves more than [`MAX_BUFFERED`] bytes in its buffer.
//!
//! # Frames that fail their CRC
//!
//! As for JT/T 808 (see [`crate::ChecksumPolicy`]): with the default
//! [`ChecksumPolicy::Verify`], [`parse_frame`] refuses a frame whose CRC does not match
//! ([`FrameError::ChecksumMismatch`]); GT06 has no negative acknowledgement, so the
//! session simply does not ack, the device resends, and the listener counts
//! `reason="checksum_mismatch"`. Sixteen frames of the Traccar corpus fail their CRC
//! (four of them also declare a wrong length); most are hand-edited test messages. A frame
//! whose declared length disagrees with its actual length is always refused
//! ([`FrameError::LengthMismatch`]): the CRC could not be located reliably.
//!
//! # Positions
//!
//! Message types whose body opens with the standard 18-byte GPS block (0x10, 0x11, 0x12,
//! 0x16, 0x1a, 0x1e, 0x22, 0x26, 0x27, 0x2d, 0x31, 0x32, 0x37, 0xa0, 0xa3, 0xa4), the X1 GPS
//! message 0x34 (block after 4 bytes) and the extended 0x32/0x33 (block with a length
//! byte) decode to [`Gt06Location`]. So do, where the bytes carry one: a GPS block
//! behind the 8-byte IMEI some firmwares (QH302R) put first in 0x12; the text reply
//! `Current position!Lat:…,Lon:…,DateTime:…` in 0x21; the GPS module 0x0033 of the
//! modular message 0x70 (Unix time, UTC); and a complete GPS block (length nibble 12,
//! valid date, in-range non-zero coordinates) opening 0x24, 0x36, 0x38 or 0xa2, types that
//! are cell-tower or Wi-Fi lists on some firmwares and GPS + LBS + status on others.
//! Cell-tower and Wi-Fi-only messages carry no fix and decode to [`Gt06Message::Other`]:
//! the server never invents a position for them (Traccar turns them into a
//! network-location placeholder; a rescue dispatcher must not).
//! Times are the device's clock, UTC unless its login stated a time zone.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use tokio_util::codec::{Decoder, Encoder};

use crate::ChecksumPolicy;
use crate::position::{DevicePosition, Protocol, coordinates_in_range};
use crate::wire::{Reader, hex_digits};

/// Start marker of the short form (1-byte length).
pub const START_SHORT: [u8; 2] = [0x78, 0x78];
/// Start marker of the extended form (2-byte length).
pub const START_EXTENDED: [u8; 2] = [0x79, 0x79];
/// Stop marker.
pub const STOP: [u8; 2] = [0x0d, 0x0a];
/// Largest frame the splitter accepts, markers included.
pub const MAX_FRAME_LEN: usize = 2048;
/// The most bytes [`Gt06Codec`] leaves buffered after any `decode` call.
pub const MAX_BUFFERED: usize = MAX_FRAME_LEN;

/// CRC-16/X.25 (poly 0x1021 reflected, init and xorout 0xffff), as GT06 uses it.
pub const CRC_X25: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_SDLC);

/// Protocol numbers this module knows by name.
pub mod protocol_number {
    /// Login.
    pub const LOGIN: u8 = 0x01;
    /// GPS location.
    pub const GPS_LBS: u8 = 0x12;
    /// Heartbeat / status.
    pub const STATUS: u8 = 0x13;
    /// GPS, LBS and status (alarm).
    pub const GPS_LBS_STATUS: u8 = 0x16;
    /// GPS location (newer devices).
    pub const GPS_LBS_2: u8 = 0x22;
    /// Heartbeat of GK310-style devices.
    pub const HEARTBEAT: u8 = 0x23;
    /// Alarm with GPS (newer devices).
    pub const GPS_LBS_STATUS_2: u8 = 0x26;
    /// Alarm with GPS and language.
    pub const GPS_LBS_STATUS_3: u8 = 0x27;
    /// X1 GPS message: four bytes, then the GPS block.
    pub const X1_GPS: u8 = 0x34;
}

// ---------------------------------------------------------------------------------------
// Splitter
// ---------------------------------------------------------------------------------------

/// Why the splitter skipped bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// Bytes before a start marker.
    Garbage,
    /// A frame longer than [`MAX_FRAME_LEN`], or no stop marker within it.
    OversizeFrame,
    /// The stream ended inside a frame.
    Truncated,
}

impl SkipReason {
    /// The `reason` label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Garbage => "garbage",
            SkipReason::OversizeFrame => "oversize_frame",
            SkipReason::Truncated => "truncated",
        }
    }
}

/// What the splitter produced from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitItem {
    /// One whole frame, start and stop markers included.
    Frame(Bytes),
    /// Bytes that were dropped, and why.
    Skipped {
        /// Why.
        reason: SkipReason,
        /// How many bytes.
        bytes: usize,
    },
}

/// `tokio_util` codec for GT06: splits incoming frames, encodes [`Gt06Reply`]s.
///
/// ```
/// use bytes::BytesMut;
/// use provider_adapters::gt06::codec::{Gt06Codec, SplitItem};
/// use tokio_util::codec::Decoder;
///
/// let login = hex::decode("78780d01086471700328358100093f040d0a").unwrap();
/// let mut wire = BytesMut::from(&login[..]);
/// let item = Gt06Codec::default().decode(&mut wire).unwrap();
/// assert_eq!(item, Some(SplitItem::Frame(login.into())));
/// ```
#[derive(Debug, Default)]
pub struct Gt06Codec {
    /// Leading buffered bytes known to hold no stop marker, so that neither a frame
    /// trickling in nor garbage full of start markers is scanned over and over.
    stop_free: usize,
}

fn find_start(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(2)
        .position(|pair| pair == START_SHORT || pair == START_EXTENDED)
}

impl Gt06Codec {
    /// The first stop marker at or after `from`, remembering how far there was none.
    fn find_stop(&mut self, bytes: &[u8], from: usize) -> Option<usize> {
        let start = from.max(self.stop_free);
        let found = bytes
            .get(start..)?
            .windows(2)
            .position(|pair| pair == STOP)
            .map(|offset| start + offset);
        if found.is_none() {
            // The last byte may be the 0x0d of a marker completed by the next read.
            self.stop_free = bytes.len().saturating_sub(1);
        }
        found
    }

    fn skip(&mut self, src: &mut BytesMut, reason: SkipReason, bytes: usize) -> Option<SplitItem> {
        src.advance(bytes);
        self.stop_free = self.stop_free.saturating_sub(bytes);
        Some(SplitItem::Skipped { reason, bytes })
    }

    fn frame(&mut self, src: &mut BytesMut, len: usize) -> Option<SplitItem> {
        self.stop_free = 0;
        Some(SplitItem::Frame(src.split_to(len).freeze()))
    }
}

impl Decoder for Gt06Codec {
    type Item = SplitItem;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<SplitItem>, std::io::Error> {
        match find_start(src) {
            Some(0) => {}
            Some(start) => return Ok(self.skip(src, SkipReason::Garbage, start)),
            None => {
                // Keep a last byte that may be the first half of a start marker.
                let keep = usize::from(matches!(src.last(), Some(0x78 | 0x79)));
                let garbage = src.len() - keep;
                if garbage == 0 {
                    return Ok(None);
                }
                return Ok(self.skip(src, SkipReason::Garbage, garbage));
            }
        }

        let extended = src[..2] == START_EXTENDED;
        let declared_len = if extended {
            match src.get(2..4) {
                Some(&[high, low]) => usize::from(u16::from_be_bytes([high, low])),
                _ => return Ok(None),
            }
        } else {
            match src.get(2) {
                Some(&len) => usize::from(len),
                None => return Ok(None),
            }
        };
        let declared_total = declared_len + if extended { 6 } else { 5 };
        if declared_total > MAX_FRAME_LEN {
            // Drop the start marker only: the next real frame may begin inside what the
            // bogus length claimed.
            return Ok(self.skip(src, SkipReason::OversizeFrame, 2));
        }
        if src.len() >= declared_total && src[declared_total - 2..declared_total] == STOP {
            return Ok(self.frame(src, declared_total));
        }
        // The declared end is not a stop marker (or not here yet): cut at the first stop
        // marker after the protocol number, as firmwares that declare a wrong length
        // exist in the field. A frame still in transit that happens to contain 0x0d 0x0a
        // would be cut short here; it then fails its length check and only that frame is
        // lost, whereas waiting for a too-long declared length would stall a device that
        // waits for the ack of its login.
        match self.find_stop(src, 4) {
            Some(stop) if stop + 2 <= MAX_FRAME_LEN => Ok(self.frame(src, stop + 2)),
            Some(_) => Ok(self.skip(src, SkipReason::OversizeFrame, 2)),
            None if src.len() >= MAX_BUFFERED => Ok(self.skip(src, SkipReason::OversizeFrame, 2)),
            None => Ok(None),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<SplitItem>, std::io::Error> {
        if let Some(item) = self.decode(src)? {
            return Ok(Some(item));
        }
        if src.is_empty() {
            return Ok(None);
        }
        let bytes = src.len();
        src.clear();
        Ok(Some(SplitItem::Skipped {
            reason: SkipReason::Truncated,
            bytes,
        }))
    }
}

impl Encoder<Gt06Reply> for Gt06Codec {
    type Error = std::io::Error;

    fn encode(&mut self, reply: Gt06Reply, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        dst.extend_from_slice(&reply.to_bytes());
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Frame
// ---------------------------------------------------------------------------------------

/// One parsed frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gt06Frame {
    /// Extended (`0x79 0x79`, 2-byte length) form.
    pub extended: bool,
    /// Protocol number.
    pub protocol: u8,
    /// Content between the protocol number and the serial number.
    pub body: Bytes,
    /// Information serial number; acks echo it.
    pub serial: u16,
    /// Whether the CRC matched. Always true under [`ChecksumPolicy::Verify`].
    pub checksum_valid: bool,
}

/// Why a frame could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// No start marker, no stop marker, or too short to hold protocol, serial and CRC.
    #[error("not a gt06 frame ({len} bytes)")]
    Malformed {
        /// Frame length.
        len: usize,
    },
    /// The length field disagrees with the frame.
    #[error("length mismatch: frame says {declared}, carries {actual}")]
    LengthMismatch {
        /// Declared.
        declared: usize,
        /// Actual (protocol number to CRC).
        actual: usize,
    },
    /// CRC-16/X.25 mismatch.
    #[error("crc mismatch: frame says {stated:#06x}, content gives {computed:#06x}")]
    ChecksumMismatch {
        /// Protocol number, for logs.
        protocol: u8,
        /// CRC in the frame.
        stated: u16,
        /// CRC computed.
        computed: u16,
    },
}

impl FrameError {
    /// The `reason` label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::Malformed { .. } => "malformed_frame",
            FrameError::LengthMismatch { .. } => "length_mismatch",
            FrameError::ChecksumMismatch { .. } => "checksum_mismatch",
        }
    }
}

/// Parses one whole frame, markers included (as produced by [`Gt06Codec`]).
///
/// ```
/// use provider_adapters::ChecksumPolicy;
/// use provider_adapters::gt06::codec::parse_frame;
/// let frame = parse_frame(&hex::decode("78780d01086471700328358100093f040d0a").unwrap(), ChecksumPolicy::Verify).unwrap();
/// assert_eq!((frame.protocol, frame.serial), (0x01, 0x0009));
/// ```
pub fn parse_frame(frame: &[u8], policy: ChecksumPolicy) -> Result<Gt06Frame, FrameError> {
    let malformed = FrameError::Malformed { len: frame.len() };
    let extended = match frame.get(..2) {
        Some(start) if start == START_SHORT => false,
        Some(start) if start == START_EXTENDED => true,
        _ => return Err(malformed),
    };
    let len_field = if extended { 2 } else { 1 };
    // start, length, protocol, serial, crc, stop
    if frame.len() < 2 + len_field + 1 + 2 + 2 + 2 || frame[frame.len() - 2..] != STOP {
        return Err(malformed);
    }
    let mut reader = Reader::new(&frame[2..frame.len() - 2]);
    let declared = if extended {
        reader.u16().map(usize::from)
    } else {
        reader.u8().map(usize::from)
    };
    let declared = declared.ok_or(malformed)?;
    let actual = reader.remaining();
    if declared != actual {
        return Err(FrameError::LengthMismatch { declared, actual });
    }
    let content = &frame[2..frame.len() - 4];
    let stated = u16::from_be_bytes([frame[frame.len() - 4], frame[frame.len() - 3]]);
    let computed = CRC_X25.checksum(content);
    let protocol = frame[2 + len_field];
    if stated != computed && policy == ChecksumPolicy::Verify {
        return Err(FrameError::ChecksumMismatch {
            protocol,
            stated,
            computed,
        });
    }
    let body = &frame[2 + len_field + 1..frame.len() - 6];
    let serial = u16::from_be_bytes([frame[frame.len() - 6], frame[frame.len() - 5]]);
    Ok(Gt06Frame {
        extended,
        protocol,
        body: Bytes::copy_from_slice(body),
        serial,
        checksum_valid: stated == computed,
    })
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

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
    /// Latitude, degrees, south negative.
    pub lat: f64,
    /// Longitude, degrees, west negative.
    pub lon: f64,
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
            time,
            lat: self.lat,
            lon: self.lon,
            speed_kmh: self.speed_kmh,
            heading_deg: Some(f64::from(self.heading_deg)),
            altitude_m: None,
            accuracy_m: None,
            valid: self.valid,
            satellites: self.satellites,
            alarm: self.alarm.map(str::to_owned),
            source: Protocol::Gt06,
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

fn field<T>(value: Option<T>, field: &'static str) -> Result<T, BodyError> {
    value.ok_or(BodyError::Truncated { field })
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
/// assert!((fix.lat - 54.94535).abs() < 1e-5 && (fix.lon - 24.01762).abs() < 1e-5);
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
    (fix.lat != 0.0 || fix.lon != 0.0).then_some(fix)
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
    if !coordinates_in_range(lat, lon) {
        return None;
    }
    Some(Gt06Location {
        device_time,
        satellites: None,
        lat,
        lon,
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
        let (lat, lon) = signed_coordinates(lat_units, lon_units, course_status)?;
        return Ok(Gt06Message::Location(Gt06Location {
            device_time,
            satellites: Some(satellites),
            lat,
            lon,
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

/// Latitude and longitude from GPS-block units and the course/status hemisphere bits.
fn signed_coordinates(
    lat_units: u32,
    lon_units: u32,
    course_status: u16,
) -> Result<(f64, f64), BodyError> {
    let mut lat = f64::from(lat_units) / UNITS_PER_DEGREE;
    let mut lon = f64::from(lon_units) / UNITS_PER_DEGREE;
    if course_status & FLAG_NORTH == 0 {
        lat = -lat;
    }
    if course_status & FLAG_WEST != 0 {
        lon = -lon;
    }
    if !coordinates_in_range(lat, lon) {
        return Err(BodyError::CoordinatesOutOfRange);
    }
    Ok((lat, lon))
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
    let (lat, lon) = signed_coordinates(lat_units, lon_units, course_status)?;
    Ok(Gt06Location {
        device_time,
        satellites: Some(satellites),
        lat,
        lon,
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

// ---------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------

/// A server acknowledgement: the protocol number and serial echoed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gt06Reply {
    /// Reply in the extended form.
    pub extended: bool,
    /// The protocol number being acknowledged.
    pub protocol: u8,
    /// The serial number being acknowledged.
    pub serial: u16,
}

impl Gt06Reply {
    /// The standard ack of `frame`.
    pub fn ack(frame: &Gt06Frame) -> Self {
        Self {
            extended: frame.extended,
            protocol: frame.protocol,
            serial: frame.serial,
        }
    }

    /// The wire bytes, markers and CRC included.
    ///
    /// ```
    /// use provider_adapters::gt06::codec::Gt06Reply;
    /// let ack = Gt06Reply { extended: false, protocol: 0x01, serial: 0x0001 };
    /// assert_eq!(hex::encode(ack.to_bytes()), "787805010001d9dc0d0a");
    /// ```
    pub fn to_bytes(&self) -> BytesMut {
        let mut out = BytesMut::with_capacity(11);
        // Length: protocol number, serial and CRC.
        if self.extended {
            out.put_slice(&START_EXTENDED);
            out.put_u16(5);
        } else {
            out.put_slice(&START_SHORT);
            out.put_u8(5);
        }
        out.put_u8(self.protocol);
        out.put_u16(self.serial);
        let crc = CRC_X25.checksum(&out[2..]);
        out.put_u16(crc);
        out.put_slice(&STOP);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(wire: &[u8]) -> Vec<SplitItem> {
        let mut codec = Gt06Codec::default();
        let mut buffer = BytesMut::from(wire);
        let mut items = Vec::new();
        while let Ok(Some(item)) = codec.decode(&mut buffer) {
            items.push(item);
        }
        items
    }

    /// Builds a short-form frame with a correct CRC.
    fn frame(protocol: u8, body: &[u8], serial: u16) -> Vec<u8> {
        let mut out = vec![0x78, 0x78, (body.len() + 5) as u8, protocol];
        out.extend_from_slice(body);
        out.extend_from_slice(&serial.to_be_bytes());
        let crc = CRC_X25.checksum(&out[2..]);
        out.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(&STOP);
        out
    }

    fn gps_block(lat_deg: f64, lon_deg: f64, flags: u16) -> Vec<u8> {
        let mut block = vec![24, 11, 22, 3, 4, 5, 0xc9];
        block.extend_from_slice(&((lat_deg * UNITS_PER_DEGREE) as u32).to_be_bytes());
        block.extend_from_slice(&((lon_deg * UNITS_PER_DEGREE) as u32).to_be_bytes());
        block.push(60);
        block.extend_from_slice(&flags.to_be_bytes());
        block
    }

    #[test]
    fn the_x25_crc_matches_the_published_check_value() {
        assert_eq!(CRC_X25.checksum(b"123456789"), 0x906e);
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
        assert!((fix.lat - 31.2304).abs() < 1e-5 && (fix.lon - 121.4737).abs() < 1e-5);
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
        assert!(fix.lat < 0.0 && fix.lon < 0.0 && !fix.valid);
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
            lat: 0.0,
            lon: 0.0,
            speed_kmh: None,
            heading_deg: 0,
            valid: true,
            alarm: None,
            reupload: false,
            time_is_utc: false,
        };
        assert_eq!(
            fix.to_position(&login.imei, 480).time.to_rfc3339(),
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

    #[test]
    fn a_bad_crc_is_refused_under_verify_and_flagged_under_ignore() {
        let mut raw = frame(0x13, &[0x40, 0x04, 0x04, 0x00, 0x02], 3);
        let crc_at = raw.len() - 4;
        raw[crc_at] ^= 0x01;
        assert!(matches!(
            parse_frame(&raw, ChecksumPolicy::Verify),
            Err(FrameError::ChecksumMismatch { protocol: 0x13, .. })
        ));
        assert!(
            !parse_frame(&raw, ChecksumPolicy::Ignore)
                .expect("ignored")
                .checksum_valid
        );
    }

    #[test]
    fn a_declared_length_that_disagrees_with_the_frame_is_refused() {
        let mut raw = frame(0x13, &[0x40, 0x04, 0x04, 0x00, 0x02], 3);
        raw[2] += 1;
        assert!(matches!(
            parse_frame(&raw, ChecksumPolicy::Ignore),
            Err(FrameError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn garbage_between_frames_is_skipped_and_both_frames_come_out() {
        let first = frame(0x13, &[1, 2, 3, 4, 5], 1);
        let second = frame(0x23, &[1], 2);
        let mut wire = vec![0x00, 0x78, 0x11];
        wire.extend_from_slice(&first);
        wire.extend_from_slice(b"junk");
        wire.extend_from_slice(&second);
        let items = split_all(&wire);
        let frames: Vec<_> = items
            .iter()
            .filter(|item| matches!(item, SplitItem::Frame(_)))
            .collect();
        assert_eq!(
            frames,
            vec![
                &SplitItem::Frame(first.into()),
                &SplitItem::Frame(second.into())
            ]
        );
        assert_eq!(
            items[0],
            SplitItem::Skipped {
                reason: SkipReason::Garbage,
                bytes: 3
            }
        );
    }

    #[test]
    fn a_frame_arriving_in_pieces_waits_for_its_end() {
        let raw = frame(0x13, &[1, 2, 3, 4, 5], 1);
        let mut codec = Gt06Codec::default();
        let mut buffer = BytesMut::from(&raw[..7]);
        assert_eq!(codec.decode(&mut buffer).ok(), Some(None));
        buffer.extend_from_slice(&raw[7..]);
        assert_eq!(
            codec.decode(&mut buffer).ok(),
            Some(Some(SplitItem::Frame(raw.into())))
        );
    }

    #[test]
    fn an_extended_frame_claiming_more_than_the_bound_is_dropped_and_resynchronised() {
        let good = frame(0x13, &[1, 2, 3, 4, 5], 1);
        let mut wire = vec![0x79, 0x79, 0xff, 0xff, 0x01];
        wire.extend_from_slice(&good);
        let items = split_all(&wire);
        assert_eq!(
            items[0],
            SplitItem::Skipped {
                reason: SkipReason::OversizeFrame,
                bytes: 2
            }
        );
        assert!(items.contains(&SplitItem::Frame(good.into())));
    }

    #[test]
    fn a_start_marker_never_followed_by_a_stop_marker_cannot_grow_the_buffer_past_the_bound() {
        let mut codec = Gt06Codec::default();
        let mut buffer = BytesMut::from(&[0x78, 0x78, 0x00, 0x69][..]);
        for _ in 0..10 {
            buffer.extend_from_slice(&[0x55; 1000]);
            while let Ok(Some(_)) = codec.decode(&mut buffer) {}
            assert!(buffer.len() <= MAX_BUFFERED);
        }
    }

    #[test]
    fn an_ack_echoes_protocol_and_serial_with_a_valid_crc() {
        let ack = Gt06Reply {
            extended: true,
            protocol: 0x32,
            serial: 0x1234,
        }
        .to_bytes();
        let parsed = parse_frame(&ack, ChecksumPolicy::Verify).expect("ack parses");
        assert_eq!(
            (parsed.extended, parsed.protocol, parsed.serial),
            (true, 0x32, 0x1234)
        );
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
            assert!((fix.lat - 3.5).abs() < 1e-5 && (fix.lon + 76.5).abs() < 1e-5);
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
        assert!((fix.lat - 13.4889).abs() < 1e-5 && (fix.lon - 144.82).abs() < 1e-5);
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
        assert!((fix.lat + 54.739332).abs() < 1e-9 && (fix.lon + 25.27327).abs() < 1e-9);
        assert_eq!(
            fix.to_position("x", 0).time.to_rfc3339(),
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
        assert!(fix.valid && fix.lat > 43.89 && fix.lon < -79.27);
        // The Unix time is UTC whatever zone the login stated.
        assert_eq!(
            fix.to_position("x", 120).time.to_rfc3339(),
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
