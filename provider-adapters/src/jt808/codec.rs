//! JT/T 808 wire format: framing, escaping, header, check code, sub-packages and the
//! message bodies this server needs. Pure: no I/O, no clock (time is passed in), no panics.
//!
//! # Layers
//!
//! 1. [`Jt808Codec`] splits a TCP byte stream into frames on `0x7e` delimiters and undoes
//!    the escaping (`0x7d 0x02` → `0x7e`, `0x7d 0x01` → `0x7d`). Bytes outside frames
//!    are skipped and reported as [`SkipReason::Garbage`]; a frame that grows past
//!    [`MAX_ESCAPED_FRAME_LEN`] without a closing delimiter is dropped
//!    ([`SkipReason::OversizeFrame`]) and the splitter resynchronises on the next `0x7e`.
//!    The splitter never leaves more than [`MAX_BUFFERED`] bytes in its buffer.
//! 2. [`parse_frame`] reads the header (2011/2013 with a 6-byte BCD phone, or 2019 with
//!    the version flag, a protocol version byte and a 10-byte BCD phone), checks the XOR
//!    check code and the declared body length.
//! 3. [`SubpackageAssembler`] joins sub-packaged messages, bounded in pending packages,
//!    parts per package and age.
//! 4. [`decode_body`] turns a body into a [`Jt808Message`].
//! 5. [`general_response`] and [`register_response`] build the platform's 0x8001 and 0x8100
//!    answers; the codec's `Encoder` escapes and delimits them.
//!
//! # Frames that fail their own check code
//!
//! With the default [`ChecksumPolicy::Verify`], a frame whose XOR check does not match is
//! refused with [`FrameError::ChecksumMismatch`]; the session answers it with the standard's
//! 0x8001 result 2 "message error" so the terminal resends, and the listener counts it
//! under `reason="checksum_mismatch"`. Five samples of the Traccar corpus fail their own
//! check (lines 142, 232, 328, 409, 415) and are refused this way; under
//! [`ChecksumPolicy::Ignore`] they are decoded and the mismatch is only flagged in
//! [`Jt808Frame::checksum_valid`]. A body whose length disagrees with the header's is
//! always refused ([`FrameError::BodyLengthMismatch`]): there is no safe way to guess
//! which of the two is wrong.
//!
//! One apparent mismatch is a vendor convention, not corruption: the location messages
//! 0x5501/0x5502 (JT600-style body) use a header whose serial number is one byte, and
//! properties bits 10–15 as vendor flags (bit 15: "acknowledge with 0x4401"). Read with
//! that header ([`ProtocolVersion::VendorShortSerial`]) their bodies are exactly as long
//! as declared; read with the standard one they are one byte short, and the check stays
//! as strict as for every other frame.
//!
//! # Vendor messages carrying a fix
//!
//! Besides 0x0200 and 0x0704: 0x5501 (real time) and 0x5502 (blind area), 0x0210 (items
//! behind a one-byte length) and 0x0900 pass-through of type 0xF0 with sub-types 1–3,
//! which end in the 0x0200 status word and coordinates. Any other pass-through payload
//! (driver card text, OBD strings, sensor tags), and the 7-byte 0x0210 (battery and time),
//! carries no fix and stays [`Jt808Message::Unsupported`].
//!
//! # Times
//!
//! Location times are BCD `YYMMDDhhmmss` in GMT+8 as the standard prescribes, converted
//! to UTC; terminals configured for another zone report wrong times, as they would on
//! any standard platform.

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use tokio_util::codec::{Decoder, Encoder};

use crate::ChecksumPolicy;
use crate::position::{DevicePosition, Protocol, coordinates_in_range};
use crate::wire::{Reader, bcd_byte, gbk_text, hex_digits};

/// Frame delimiter.
pub const DELIMITER: u8 = 0x7e;
/// Escape byte.
pub const ESCAPE: u8 = 0x7d;
/// Largest body the 10-bit length field can declare.
pub const MAX_BODY_LEN: usize = 0x03ff;
/// Largest unescaped frame between delimiters: 2019 header (17) + sub-package fields (4)
/// + body + check code.
pub const MAX_FRAME_LEN: usize = 17 + 4 + MAX_BODY_LEN + 1;
/// Largest escaped frame between delimiters: every byte may be escaped into two.
pub const MAX_ESCAPED_FRAME_LEN: usize = 2 * MAX_FRAME_LEN;
/// The most bytes [`Jt808Codec`] leaves buffered after any `decode` call.
pub const MAX_BUFFERED: usize = MAX_ESCAPED_FRAME_LEN + 1;

/// Message ids this module knows.
pub mod message_id {
    /// Terminal general response.
    pub const TERMINAL_RESPONSE: u16 = 0x0001;
    /// Heartbeat.
    pub const HEARTBEAT: u16 = 0x0002;
    /// Logout.
    pub const LOGOUT: u16 = 0x0003;
    /// Register.
    pub const REGISTER: u16 = 0x0100;
    /// Authenticate.
    pub const AUTHENTICATE: u16 = 0x0102;
    /// Location report.
    pub const LOCATION: u16 = 0x0200;
    /// Batch (or blind-area) location upload.
    pub const LOCATION_BATCH: u16 = 0x0704;
    /// Vendor batch upload: items with a one-byte length, no count or type.
    pub const VENDOR_LOCATION_BATCH: u16 = 0x0210;
    /// Vendor real-time location (JT600-style body, one-byte serial in the header).
    pub const VENDOR_LOCATION: u16 = 0x5501;
    /// Vendor blind-area location (same layout as 0x5501).
    pub const VENDOR_LOCATION_BLIND: u16 = 0x5502;
    /// Data uplink pass-through; some vendors wrap location reports in it.
    pub const TRANSPARENT: u16 = 0x0900;
    /// Vendor acknowledgement of 0x5501/0x5502 (message id and result).
    pub const VENDOR_RESPONSE: u16 = 0x4401;
    /// Platform general response.
    pub const PLATFORM_RESPONSE: u16 = 0x8001;
    /// Register response.
    pub const REGISTER_RESPONSE: u16 = 0x8100;
}

// ---------------------------------------------------------------------------------------
// Escaping
// ---------------------------------------------------------------------------------------

/// Appends `frame` to `out` escaped and wrapped in delimiters.
///
/// ```
/// use provider_adapters::jt808::codec::escape_into;
/// let mut wire = bytes::BytesMut::new();
/// escape_into(&[0x30, 0x7e, 0x08, 0x7d, 0x55], &mut wire);
/// assert_eq!(&wire[..], &[0x7e, 0x30, 0x7d, 0x02, 0x08, 0x7d, 0x01, 0x55, 0x7e]);
/// ```
pub fn escape_into(frame: &[u8], out: &mut BytesMut) {
    out.reserve(frame.len() + 2 + frame.len() / 8);
    out.put_u8(DELIMITER);
    for &byte in frame {
        match byte {
            DELIMITER => out.put_slice(&[ESCAPE, 0x02]),
            ESCAPE => out.put_slice(&[ESCAPE, 0x01]),
            other => out.put_u8(other),
        }
    }
    out.put_u8(DELIMITER);
}

/// A `0x7d` not followed by `0x01` or `0x02`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid escape sequence at offset {offset}")]
pub struct InvalidEscape {
    /// Offset of the `0x7d` in the escaped input.
    pub offset: usize,
}

/// Undoes the escaping of the bytes between two delimiters.
///
/// ```
/// use provider_adapters::jt808::codec::unescape;
/// assert_eq!(unescape(&[0x30, 0x7d, 0x02, 0x08, 0x7d, 0x01, 0x55]).unwrap(), vec![0x30, 0x7e, 0x08, 0x7d, 0x55]);
/// assert!(unescape(&[0x7d, 0x03]).is_err());
/// ```
pub fn unescape(escaped: &[u8]) -> Result<Vec<u8>, InvalidEscape> {
    let mut frame = Vec::with_capacity(escaped.len());
    let mut bytes = escaped.iter().enumerate();
    while let Some((offset, &byte)) = bytes.next() {
        if byte != ESCAPE {
            frame.push(byte);
            continue;
        }
        match bytes.next() {
            Some((_, 0x01)) => frame.push(ESCAPE),
            Some((_, 0x02)) => frame.push(DELIMITER),
            _ => return Err(InvalidEscape { offset }),
        }
    }
    Ok(frame)
}

// ---------------------------------------------------------------------------------------
// Splitter
// ---------------------------------------------------------------------------------------

/// Why the splitter skipped bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// Bytes outside any frame.
    Garbage,
    /// A frame longer than [`MAX_ESCAPED_FRAME_LEN`]; dropped and resynchronised.
    OversizeFrame,
    /// A frame with a `0x7d` not followed by `0x01`/`0x02`.
    InvalidEscape,
    /// The stream ended inside a frame.
    Truncated,
}

impl SkipReason {
    /// The `reason` label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Garbage => "garbage",
            SkipReason::OversizeFrame => "oversize_frame",
            SkipReason::InvalidEscape => "invalid_escape",
            SkipReason::Truncated => "truncated",
        }
    }
}

/// What the splitter produced from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitItem {
    /// One unescaped frame, delimiters removed: header, body and check code.
    Frame(Bytes),
    /// Bytes that were dropped, and why. Reported so the connection can log and count.
    Skipped {
        /// Why.
        reason: SkipReason,
        /// How many wire bytes.
        bytes: usize,
    },
}

/// `tokio_util` codec for JT/T 808: splits and unescapes incoming frames, escapes and
/// delimits outgoing [`OutboundMessage`]s.
///
/// ```
/// use bytes::BytesMut;
/// use provider_adapters::jt808::codec::{Jt808Codec, SplitItem, SkipReason};
/// use tokio_util::codec::Decoder;
///
/// let mut codec = Jt808Codec::default();
/// let mut wire = BytesMut::from(&[0x24, 0x24, 0x7e, 0x30, 0x7d, 0x02, 0x08, 0x7e][..]);
/// assert_eq!(codec.decode(&mut wire).unwrap(), Some(SplitItem::Skipped { reason: SkipReason::Garbage, bytes: 2 }));
/// assert_eq!(codec.decode(&mut wire).unwrap(), Some(SplitItem::Frame(bytes::Bytes::from_static(&[0x30, 0x7e, 0x08]))));
/// ```
#[derive(Debug, Default)]
pub struct Jt808Codec {
    /// Inside an oversize frame that was already reported: drop bytes up to the next 0x7e.
    discarding: bool,
    /// Content bytes after the opening delimiter at `src[0]` already searched for the
    /// closing one, so a frame trickling in byte by byte is scanned once, not once per read.
    scanned: usize,
}

impl Decoder for Jt808Codec {
    type Item = SplitItem;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<SplitItem>, std::io::Error> {
        loop {
            if self.discarding {
                self.scanned = 0;
                match src.iter().position(|&byte| byte == DELIMITER) {
                    Some(end) => {
                        src.advance(end);
                        self.discarding = false;
                    }
                    None => {
                        src.clear();
                        return Ok(None);
                    }
                }
            }
            match src.iter().position(|&byte| byte == DELIMITER) {
                None if src.is_empty() => return Ok(None),
                None => {
                    let bytes = src.len();
                    src.clear();
                    self.scanned = 0;
                    return Ok(Some(SplitItem::Skipped {
                        reason: SkipReason::Garbage,
                        bytes,
                    }));
                }
                Some(start) if start > 0 => {
                    src.advance(start);
                    self.scanned = 0;
                    return Ok(Some(SplitItem::Skipped {
                        reason: SkipReason::Garbage,
                        bytes: start,
                    }));
                }
                Some(_) => {}
            }
            // src[0] is a delimiter. The closing delimiter is left in the buffer as the
            // next frame's opening one: garbage between "7e…7e" pairs then costs one
            // refused frame, not the valid frame that follows it.
            let from = 1 + self.scanned.min(src.len() - 1);
            let closing = src[from..]
                .iter()
                .position(|&byte| byte == DELIMITER)
                .map(|offset| from - 1 + offset);
            match closing {
                Some(0) => {
                    src.advance(1);
                    self.scanned = 0;
                    continue;
                }
                Some(content_len) if content_len > MAX_ESCAPED_FRAME_LEN => {
                    src.advance(1 + content_len);
                    self.scanned = 0;
                    return Ok(Some(SplitItem::Skipped {
                        reason: SkipReason::OversizeFrame,
                        bytes: 1 + content_len,
                    }));
                }
                Some(content_len) => {
                    let wire = src.split_to(1 + content_len);
                    self.scanned = 0;
                    return Ok(Some(match unescape(&wire[1..]) {
                        Ok(frame) => SplitItem::Frame(Bytes::from(frame)),
                        Err(_) => SplitItem::Skipped {
                            reason: SkipReason::InvalidEscape,
                            bytes: wire.len(),
                        },
                    }));
                }
                None if src.len() > MAX_BUFFERED => {
                    let bytes = src.len();
                    src.clear();
                    self.scanned = 0;
                    self.discarding = true;
                    return Ok(Some(SplitItem::Skipped {
                        reason: SkipReason::OversizeFrame,
                        bytes,
                    }));
                }
                None => {
                    self.scanned = src.len() - 1;
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<SplitItem>, std::io::Error> {
        if let Some(item) = self.decode(src)? {
            return Ok(Some(item));
        }
        // The closing delimiter of the last frame stays buffered as a possible opening
        // one; at the end of the stream it is just that, not a truncated frame.
        if src.iter().all(|&byte| byte == DELIMITER) {
            src.clear();
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

impl Encoder<OutboundMessage> for Jt808Codec {
    type Error = std::io::Error;

    fn encode(
        &mut self,
        message: OutboundMessage,
        dst: &mut BytesMut,
    ) -> Result<(), std::io::Error> {
        escape_into(&message.to_frame(), dst);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Header and frame
// ---------------------------------------------------------------------------------------

/// Which edition of the header a terminal uses. Replies mirror it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolVersion {
    /// 2011/2013 header: 6-byte BCD phone number.
    V2013,
    /// 2019 header: version flag set, protocol version byte, 10-byte BCD phone number.
    V2019 {
        /// The protocol version byte (1 for the first 2019 revision).
        version: u8,
    },
    /// The vendor location messages 0x5501/0x5502 (JT600-style body): a 2013 header whose
    /// serial number is one byte. Properties bits 10–15 are vendor flags there, not
    /// encryption or sub-packaging; bit 15 asks for a 0x4401 acknowledgement.
    VendorShortSerial {
        /// Properties bit 15: the terminal wants a 0x4401 acknowledgement.
        reply_requested: bool,
    },
}

/// The terminal phone number from the header, as sent (6 bytes, or 10 for 2019).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TerminalPhone {
    raw: [u8; 10],
    len: u8,
}

impl TerminalPhone {
    /// From the raw BCD bytes (at most 10; longer input is cut).
    pub fn from_bcd(bytes: &[u8]) -> Self {
        let len = bytes.len().min(10);
        let mut raw = [0; 10];
        raw[..len].copy_from_slice(&bytes[..len]);
        Self {
            raw,
            len: len as u8,
        }
    }

    /// The raw bytes, as they go back into reply headers.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw[..usize::from(self.len)]
    }

    /// The device id: the BCD digits (12 for 2013, 20 for 2019). A terminal that puts
    /// non-decimal nibbles in its phone field keeps them, as lowercase hex digits.
    ///
    /// ```
    /// use provider_adapters::jt808::codec::TerminalPhone;
    /// let phone = TerminalPhone::from_bcd(&[0x01, 0x39, 0x12, 0x34, 0x56, 0x78]);
    /// assert_eq!(phone.device_id(), "013912345678");
    /// ```
    pub fn device_id(&self) -> String {
        hex_digits(self.as_bytes())
    }
}

impl std::fmt::Display for TerminalPhone {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.device_id())
    }
}

/// Sub-package fields of a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subpackage {
    /// Number of parts, at least 1.
    pub total: u16,
    /// This part, 1-based.
    pub index: u16,
}

/// A parsed message header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Message id, e.g. 0x0200.
    pub message_id: u16,
    /// Body length declared in the properties (10 bits).
    pub body_len: usize,
    /// Encryption bits 10–12 of the properties; 0 means plain.
    pub encryption: u8,
    /// Header edition.
    pub version: ProtocolVersion,
    /// Terminal phone number.
    pub phone: TerminalPhone,
    /// The terminal's message serial number.
    pub serial: u16,
    /// Present when the sub-package flag (bit 13) is set.
    pub subpackage: Option<Subpackage>,
}

impl Header {
    /// Header length in bytes on the wire (before escaping).
    pub fn wire_len(&self) -> usize {
        let base = match self.version {
            ProtocolVersion::V2013 => 12,
            ProtocolVersion::V2019 { .. } => 17,
            ProtocolVersion::VendorShortSerial { .. } => 11,
        };
        base + if self.subpackage.is_some() { 4 } else { 0 }
    }
}

/// One parsed frame: header and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jt808Frame {
    /// The header.
    pub header: Header,
    /// The body, exactly `header.body_len` bytes (longer after sub-package assembly).
    pub body: Bytes,
    /// Whether the XOR check code matched. Always true under [`ChecksumPolicy::Verify`].
    pub checksum_valid: bool,
}

/// Why a frame could not be parsed. Where the header could be read it is kept, so the
/// session can answer with 0x8001 "message error".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than a header and a check code.
    #[error("frame too short for a header: {len} bytes")]
    TooShort {
        /// Frame length.
        len: usize,
    },
    /// XOR check code mismatch.
    #[error("check code mismatch: frame says {stated:#04x}, content gives {computed:#04x}")]
    ChecksumMismatch {
        /// The header as read.
        header: Header,
        /// Check code in the frame.
        stated: u8,
        /// Check code computed over the frame.
        computed: u8,
    },
    /// The body is not as long as the header says.
    #[error("body length mismatch: header says {declared} bytes, frame carries {actual}")]
    BodyLengthMismatch {
        /// The header as read.
        header: Header,
        /// Declared in the header.
        declared: usize,
        /// Carried in the frame.
        actual: usize,
    },
    /// Sub-package fields with index 0, total 0 or index above total.
    #[error("invalid sub-package fields: part {index} of {total}")]
    InvalidSubpackage {
        /// The header as read.
        header: Header,
        /// Total parts.
        total: u16,
        /// Part index.
        index: u16,
    },
}

impl FrameError {
    /// The header, when it could be read.
    pub fn header(&self) -> Option<&Header> {
        match self {
            FrameError::TooShort { .. } => None,
            FrameError::ChecksumMismatch { header, .. }
            | FrameError::BodyLengthMismatch { header, .. }
            | FrameError::InvalidSubpackage { header, .. } => Some(header),
        }
    }

    /// The `reason` label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            FrameError::TooShort { .. } => "too_short",
            FrameError::ChecksumMismatch { .. } => "checksum_mismatch",
            FrameError::BodyLengthMismatch { .. } => "body_length_mismatch",
            FrameError::InvalidSubpackage { .. } => "invalid_subpackage",
        }
    }
}

/// XOR of all bytes: the JT/T 808 check code.
pub fn xor_checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |check, &byte| check ^ byte)
}

const PROPERTY_BODY_LEN_MASK: u16 = 0x03ff;
const PROPERTY_ENCRYPTION_SHIFT: u16 = 10;
const PROPERTY_SUBPACKAGE: u16 = 1 << 13;
const PROPERTY_VERSION_FLAG: u16 = 1 << 14;
/// 0x5501/0x5502 only: the terminal asks for a 0x4401 acknowledgement.
const PROPERTY_VENDOR_REPLY: u16 = 1 << 15;

/// Parses one unescaped frame (as produced by [`Jt808Codec`]: no delimiters).
///
/// ```
/// use provider_adapters::ChecksumPolicy;
/// use provider_adapters::jt808::codec::{parse_frame, ProtocolVersion};
/// // Heartbeat 0x0002 from terminal 043048325465, serial 0x00b7.
/// let frame = hex::decode("0002000004304832546500b7ca").unwrap();
/// let parsed = parse_frame(&frame, ChecksumPolicy::Verify).unwrap();
/// assert_eq!(parsed.header.message_id, 0x0002);
/// assert_eq!(parsed.header.phone.device_id(), "043048325465");
/// assert_eq!(parsed.header.version, ProtocolVersion::V2013);
/// ```
pub fn parse_frame(frame: &[u8], policy: ChecksumPolicy) -> Result<Jt808Frame, FrameError> {
    let too_short = FrameError::TooShort { len: frame.len() };
    let Some((&stated, content)) = frame.split_last() else {
        return Err(too_short);
    };
    let mut reader = Reader::new(content);
    let (Some(message_id), Some(properties)) = (reader.u16(), reader.u16()) else {
        return Err(too_short);
    };
    let vendor_short_serial = matches!(
        message_id,
        message_id::VENDOR_LOCATION | message_id::VENDOR_LOCATION_BLIND
    );
    let version = if vendor_short_serial {
        ProtocolVersion::VendorShortSerial {
            reply_requested: properties & PROPERTY_VENDOR_REPLY != 0,
        }
    } else if properties & PROPERTY_VERSION_FLAG != 0 {
        match reader.u8() {
            Some(version) => ProtocolVersion::V2019 { version },
            None => return Err(too_short),
        }
    } else {
        ProtocolVersion::V2013
    };
    let phone_len = match version {
        ProtocolVersion::V2013 | ProtocolVersion::VendorShortSerial { .. } => 6,
        ProtocolVersion::V2019 { .. } => 10,
    };
    let Some(phone) = reader.take(phone_len) else {
        return Err(too_short);
    };
    let serial = if vendor_short_serial {
        reader.u8().map(u16::from)
    } else {
        reader.u16()
    };
    let Some(serial) = serial else {
        return Err(too_short);
    };
    let subpackage = if properties & PROPERTY_SUBPACKAGE != 0 && !vendor_short_serial {
        match (reader.u16(), reader.u16()) {
            (Some(total), Some(index)) => Some(Subpackage { total, index }),
            _ => return Err(too_short),
        }
    } else {
        None
    };
    let header = Header {
        message_id,
        body_len: usize::from(properties & PROPERTY_BODY_LEN_MASK),
        encryption: if vendor_short_serial {
            0
        } else {
            ((properties >> PROPERTY_ENCRYPTION_SHIFT) & 0x07) as u8
        },
        version,
        phone: TerminalPhone::from_bcd(phone),
        serial,
        subpackage,
    };

    let computed = xor_checksum(content);
    let checksum_valid = computed == stated;
    if !checksum_valid && policy == ChecksumPolicy::Verify {
        return Err(FrameError::ChecksumMismatch {
            header,
            stated,
            computed,
        });
    }
    let body = reader.rest();
    if body.len() != header.body_len {
        let declared = header.body_len;
        return Err(FrameError::BodyLengthMismatch {
            header,
            declared,
            actual: body.len(),
        });
    }
    if let Some(Subpackage { total, index }) = header.subpackage
        && (total == 0 || index == 0 || index > total)
    {
        return Err(FrameError::InvalidSubpackage {
            header,
            total,
            index,
        });
    }
    Ok(Jt808Frame {
        body: Bytes::copy_from_slice(body),
        header,
        checksum_valid,
    })
}

// ---------------------------------------------------------------------------------------
// Sub-packages
// ---------------------------------------------------------------------------------------

/// Bounds for [`SubpackageAssembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubpackageLimits {
    /// Packages being assembled at once; a new one beyond this evicts the oldest.
    pub max_pending: usize,
    /// Most parts one package may announce; more is refused outright.
    pub max_parts: u16,
    /// A package not complete within this is dropped.
    pub max_age: Duration,
}

impl Default for SubpackageLimits {
    /// 4 packages of at most 16 parts (about 64 KiB per connection), 60 s each.
    fn default() -> Self {
        Self {
            max_pending: 4,
            max_parts: 16,
            max_age: Duration::from_secs(60),
        }
    }
}

/// What [`SubpackageAssembler::push`] made of a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubpackageOutcome {
    /// Stored; more parts are needed.
    Incomplete,
    /// The last missing part arrived: the whole message, with the first part's header
    /// (sub-package fields removed) and the bodies joined in order.
    Complete(Jt808Frame),
}

/// Why a part was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubpackageError {
    /// The frame has no sub-package fields.
    #[error("frame is not a sub-package")]
    NotSubpackaged,
    /// Index 0, total 0, or index above total.
    #[error("invalid sub-package fields: part {index} of {total}")]
    InvalidIndex {
        /// Total parts.
        total: u16,
        /// Part index.
        index: u16,
    },
    /// More parts than [`SubpackageLimits::max_parts`].
    #[error("package announces {total} parts, more than the limit of {limit}")]
    TooManyParts {
        /// Announced.
        total: u16,
        /// Allowed.
        limit: u16,
    },
}

#[derive(Debug)]
struct PendingPackage {
    message_id: u16,
    phone: TerminalPhone,
    first_serial: u16,
    first_header: Option<Header>,
    parts: Vec<Option<Bytes>>,
    started: Instant,
}

/// Joins sub-packaged messages. Pure: the caller passes the current time.
///
/// Parts of one message share message id, phone and total, and carry consecutive serial
/// numbers, so `serial - (index - 1)` identifies the package.
///
/// ```
/// use std::time::Instant;
/// use provider_adapters::ChecksumPolicy;
/// use provider_adapters::jt808::codec::*;
/// let mut assembler = SubpackageAssembler::new(SubpackageLimits::default());
/// let part = |serial: u16, index: u16, body: &[u8]| {
///     let mut frame = vec![0x07, 0x04, 0x20, body.len() as u8, 1, 2, 3, 4, 5, 6];
///     frame.extend_from_slice(&serial.to_be_bytes());
///     frame.extend_from_slice(&[0, 2]);
///     frame.extend_from_slice(&index.to_be_bytes());
///     frame.extend_from_slice(body);
///     frame.push(xor_checksum(&frame));
///     parse_frame(&frame, ChecksumPolicy::Verify).unwrap()
/// };
/// let now = Instant::now();
/// assert_eq!(assembler.push(part(7, 1, b"ab"), now), Ok(SubpackageOutcome::Incomplete));
/// let SubpackageOutcome::Complete(whole) = assembler.push(part(8, 2, b"cd"), now).unwrap() else { panic!() };
/// assert_eq!(&whole.body[..], b"abcd");
/// ```
#[derive(Debug)]
pub struct SubpackageAssembler {
    limits: SubpackageLimits,
    pending: Vec<PendingPackage>,
    dropped: u64,
}

impl SubpackageAssembler {
    /// An empty assembler with these bounds.
    pub fn new(limits: SubpackageLimits) -> Self {
        Self {
            limits,
            pending: Vec::new(),
            dropped: 0,
        }
    }

    /// Packages currently being assembled.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Packages dropped so far because they expired or were evicted.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Adds one part received at `now`.
    pub fn push(
        &mut self,
        frame: Jt808Frame,
        now: Instant,
    ) -> Result<SubpackageOutcome, SubpackageError> {
        let Some(Subpackage { total, index }) = frame.header.subpackage else {
            return Err(SubpackageError::NotSubpackaged);
        };
        if total == 0 || index == 0 || index > total {
            return Err(SubpackageError::InvalidIndex { total, index });
        }
        if total > self.limits.max_parts {
            return Err(SubpackageError::TooManyParts {
                total,
                limit: self.limits.max_parts,
            });
        }
        self.expire(now);

        let first_serial = frame.header.serial.wrapping_sub(index.wrapping_sub(1));
        let header = &frame.header;
        let position = self.pending.iter().position(|package| {
            package.message_id == header.message_id
                && package.phone == header.phone
                && package.first_serial == first_serial
                && package.parts.len() == usize::from(total)
        });
        let position = match position {
            Some(position) => position,
            None => {
                if self.pending.len() >= self.limits.max_pending.max(1) {
                    // Evict the oldest: a terminal that restarted a transfer must not be
                    // locked out by its own abandoned attempt.
                    self.pending.remove(0);
                    self.dropped += 1;
                }
                self.pending.push(PendingPackage {
                    message_id: header.message_id,
                    phone: header.phone,
                    first_serial,
                    first_header: None,
                    parts: vec![None; usize::from(total)],
                    started: now,
                });
                self.pending.len() - 1
            }
        };

        let package = &mut self.pending[position];
        let slot = usize::from(index) - 1;
        if slot == 0 {
            package.first_header = Some(frame.header.clone());
        }
        package.parts[slot] = Some(frame.body);
        if package.parts.iter().any(Option::is_none) {
            return Ok(SubpackageOutcome::Incomplete);
        }

        let package = self.pending.remove(position);
        let Some(mut header) = package.first_header else {
            return Ok(SubpackageOutcome::Incomplete);
        };
        let mut body = BytesMut::new();
        for part in package.parts.into_iter().flatten() {
            body.extend_from_slice(&part);
        }
        header.subpackage = None;
        header.body_len = body.len();
        Ok(SubpackageOutcome::Complete(Jt808Frame {
            header,
            body: body.freeze(),
            checksum_valid: frame.checksum_valid,
        }))
    }

    fn expire(&mut self, now: Instant) {
        let max_age = self.limits.max_age;
        let before = self.pending.len();
        self.pending
            .retain(|package| now.saturating_duration_since(package.started) <= max_age);
        self.dropped += (before - self.pending.len()) as u64;
    }
}

// ---------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------

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
    /// Latitude in degrees, south negative.
    pub lat: f64,
    /// Longitude in degrees, west negative.
    pub lon: f64,
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
    /// # let mut report = LocationReport { alarm_flags: 0, status_flags: 0, lat: 0.0, lon: 0.0, altitude_m: 0, speed_kmh: 0.0, heading_deg: 0, time: chrono::DateTime::UNIX_EPOCH, satellites: None, has_motion: true };
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
            time: self.time,
            lat: self.lat,
            lon: self.lon,
            speed_kmh: self.has_motion.then_some(self.speed_kmh),
            heading_deg: self.has_motion.then(|| f64::from(self.heading_deg)),
            altitude_m: self.has_motion.then(|| f64::from(self.altitude_m)),
            accuracy_m: None,
            valid: self.fix_valid(),
            satellites: self.satellites,
            alarm: self.alarm(),
            source: Protocol::Jt808,
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

fn field<T>(value: Option<T>, field: &'static str) -> Result<T, BodyError> {
    value.ok_or(BodyError::Truncated { field })
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
    if !coordinates_in_range(lat, lon) {
        return Err(BodyError::CoordinatesOutOfRange);
    }

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
        lat,
        lon,
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
    let truncated = |field| BodyError::Truncated { field };
    let (lat_bcd, _) = bcd_digits(&mut reader, 8).ok_or(truncated("latitude"))?;
    let (lon_bcd, flags) = bcd_digits(&mut reader, 9).ok_or(truncated("longitude"))?;
    let (speed_knots, _) = bcd_digits(&mut reader, 2).ok_or(truncated("speed"))?;
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
    if !coordinates_in_range(lat, lon) {
        return Err(BodyError::CoordinatesOutOfRange);
    }
    Ok(LocationReport {
        alarm_flags: 0,
        status_flags,
        lat,
        lon,
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
    if !coordinates_in_range(lat, lon) {
        return Err(BodyError::CoordinatesOutOfRange);
    }
    let report = LocationReport {
        alarm_flags: 0,
        status_flags,
        lat,
        lon,
        altitude_m: 0,
        speed_kmh: 0.0,
        heading_deg: 0,
        time,
        satellites: None,
        has_motion: false,
    };
    Ok(Some((report, archived)))
}

// ---------------------------------------------------------------------------------------
// Outbound
// ---------------------------------------------------------------------------------------

/// A message from the platform to a terminal, before escaping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// Message id (0x8001, 0x8100).
    pub message_id: u16,
    /// Header edition, mirrored from the terminal.
    pub version: ProtocolVersion,
    /// The terminal's phone number.
    pub phone: TerminalPhone,
    /// The platform's own serial number.
    pub serial: u16,
    /// The body.
    pub body: Bytes,
}

impl OutboundMessage {
    /// Header, body and check code, unescaped and without delimiters.
    pub fn to_frame(&self) -> BytesMut {
        let mut frame = BytesMut::with_capacity(17 + self.body.len() + 1);
        let body_len = self.body.len().min(MAX_BODY_LEN) as u16;
        frame.put_u16(self.message_id);
        match self.version {
            ProtocolVersion::V2013 | ProtocolVersion::VendorShortSerial { .. } => {
                frame.put_u16(body_len);
            }
            ProtocolVersion::V2019 { version } => {
                frame.put_u16(body_len | PROPERTY_VERSION_FLAG);
                frame.put_u8(version);
            }
        }
        // The phone field is 6 bytes (2013) or 10 (2019), right-aligned BCD.
        let width = match self.version {
            ProtocolVersion::V2013 | ProtocolVersion::VendorShortSerial { .. } => 6,
            ProtocolVersion::V2019 { .. } => 10,
        };
        let phone = self.phone.as_bytes();
        let phone = &phone[phone.len().saturating_sub(width)..];
        frame.put_bytes(0, width - phone.len());
        frame.put_slice(phone);
        match self.version {
            // The vendor header's serial is one byte: the low byte of ours.
            ProtocolVersion::VendorShortSerial { .. } => frame.put_u8(self.serial as u8),
            _ => frame.put_u16(self.serial),
        }
        frame.put_slice(&self.body[..usize::from(body_len)]);
        let check = xor_checksum(&frame);
        frame.put_u8(check);
        frame
    }
}

/// Result codes of the platform general response 0x8001.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum GeneralResult {
    /// 0: success / acknowledged.
    Success = 0,
    /// 1: failure.
    Failure = 1,
    /// 2: message error (bad check code, malformed body).
    MessageError = 2,
    /// 3: not supported.
    Unsupported = 3,
    /// 4: alarm acknowledged.
    AlarmAck = 4,
}

/// Result codes of the register response 0x8100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RegisterResult {
    /// 0: registered; the body carries the auth code.
    Success = 0,
    /// 1: the vehicle is already registered.
    VehicleAlreadyRegistered = 1,
    /// 2: no such vehicle in the database.
    VehicleNotInDatabase = 2,
    /// 3: the terminal is already registered.
    TerminalAlreadyRegistered = 3,
    /// 4: no such terminal in the database.
    TerminalNotInDatabase = 4,
}

/// The platform general response (0x8001) to the message with `reply_to` header.
///
/// ```
/// use provider_adapters::ChecksumPolicy;
/// use provider_adapters::jt808::codec::*;
/// let heartbeat = parse_frame(&hex::decode("0002000004304832546500b7ca").unwrap(), ChecksumPolicy::Verify).unwrap();
/// let reply = general_response(&heartbeat.header, GeneralResult::Success, 1);
/// assert_eq!(hex::encode(reply.to_frame()), "80010005043048325465000100b70002004f");
/// ```
///
/// To the vendor messages 0x5501/0x5502 (one-byte serial header) the answer is their own
/// acknowledgement 0x4401 instead: message id and result, in the same short header.
pub fn general_response(reply_to: &Header, result: GeneralResult, serial: u16) -> OutboundMessage {
    let mut body = BytesMut::with_capacity(5);
    let message_id = match reply_to.version {
        ProtocolVersion::VendorShortSerial { .. } => message_id::VENDOR_RESPONSE,
        _ => {
            body.put_u16(reply_to.serial);
            message_id::PLATFORM_RESPONSE
        }
    };
    body.put_u16(reply_to.message_id);
    body.put_u8(result as u8);
    OutboundMessage {
        message_id,
        version: reply_to.version,
        phone: reply_to.phone,
        serial,
        body: body.freeze(),
    }
}

/// The register response (0x8100); `auth_code` is only sent with
/// [`RegisterResult::Success`].
pub fn register_response(
    reply_to: &Header,
    result: RegisterResult,
    auth_code: Option<&str>,
    serial: u16,
) -> OutboundMessage {
    let mut body = BytesMut::with_capacity(3 + auth_code.map_or(0, str::len));
    body.put_u16(reply_to.serial);
    body.put_u8(result as u8);
    if result == RegisterResult::Success
        && let Some(code) = auth_code
    {
        body.put_slice(code.as_bytes());
    }
    OutboundMessage {
        message_id: message_id::REGISTER_RESPONSE,
        version: reply_to.version,
        phone: reply_to.phone,
        serial,
        body: body.freeze(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(codec: &mut Jt808Codec, wire: &[u8]) -> Vec<SplitItem> {
        let mut buffer = BytesMut::from(wire);
        let mut items = Vec::new();
        while let Ok(Some(item)) = codec.decode(&mut buffer) {
            items.push(item);
        }
        items
    }

    fn frames(items: &[SplitItem]) -> Vec<Vec<u8>> {
        items
            .iter()
            .filter_map(|item| match item {
                SplitItem::Frame(frame) => Some(frame.to_vec()),
                SplitItem::Skipped { .. } => None,
            })
            .collect()
    }

    fn build_frame(message_id: u16, phone: &[u8], serial: u16, body: &[u8]) -> Vec<u8> {
        let message = OutboundMessage {
            message_id,
            version: ProtocolVersion::V2013,
            phone: TerminalPhone::from_bcd(phone),
            serial,
            body: Bytes::copy_from_slice(body),
        };
        message.to_frame().to_vec()
    }

    const PHONE: [u8; 6] = [0x01, 0x39, 0x12, 0x34, 0x56, 0x78];

    fn location_body(lat_micro: u32, lon_micro: u32, status: u32, time_bcd: [u8; 6]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&1u32.to_be_bytes()); // SOS
        body.extend_from_slice(&status.to_be_bytes());
        body.extend_from_slice(&lat_micro.to_be_bytes());
        body.extend_from_slice(&lon_micro.to_be_bytes());
        body.extend_from_slice(&12i16.to_be_bytes());
        body.extend_from_slice(&425u16.to_be_bytes());
        body.extend_from_slice(&90u16.to_be_bytes());
        body.extend_from_slice(&time_bcd);
        body.extend_from_slice(&[0x31, 0x01, 0x09]);
        body
    }

    #[test]
    fn frames_split_on_delimiters_and_unescape() {
        let mut codec = Jt808Codec::default();
        let items = split_all(
            &mut codec,
            &[0x7e, 0x30, 0x7d, 0x02, 0x08, 0x7d, 0x01, 0x55, 0x7e],
        );
        assert_eq!(frames(&items), vec![vec![0x30, 0x7e, 0x08, 0x7d, 0x55]]);
    }

    #[test]
    fn back_to_back_frames_sharing_no_delimiter_both_come_out() {
        let mut codec = Jt808Codec::default();
        let items = split_all(&mut codec, &[0x7e, 0x01, 0x7e, 0x7e, 0x02, 0x7e]);
        assert_eq!(frames(&items), vec![vec![0x01], vec![0x02]]);
    }

    #[test]
    fn garbage_before_a_frame_is_skipped_and_reported() {
        let mut codec = Jt808Codec::default();
        let items = split_all(&mut codec, &[0x24, 0x24, 0x7e, 0x01, 0x7e]);
        assert_eq!(
            items[0],
            SplitItem::Skipped {
                reason: SkipReason::Garbage,
                bytes: 2
            }
        );
        assert_eq!(frames(&items), vec![vec![0x01]]);
    }

    #[test]
    fn a_frame_split_across_reads_waits_for_its_closing_delimiter() {
        let mut codec = Jt808Codec::default();
        let mut buffer = BytesMut::from(&[0x7e, 0x01, 0x02][..]);
        assert_eq!(codec.decode(&mut buffer).ok(), Some(None));
        buffer.extend_from_slice(&[0x03, 0x7e]);
        assert_eq!(
            codec.decode(&mut buffer).ok(),
            Some(Some(SplitItem::Frame(Bytes::from_static(&[1, 2, 3]))))
        );
    }

    #[test]
    fn an_oversize_frame_is_dropped_and_the_next_frame_still_decodes() {
        let mut codec = Jt808Codec::default();
        let mut buffer = BytesMut::new();
        buffer.extend_from_slice(&[0x7e]);
        buffer.extend_from_slice(&vec![0x11; MAX_BUFFERED + 10]);
        let first = codec.decode(&mut buffer).ok().flatten();
        assert!(matches!(
            first,
            Some(SplitItem::Skipped {
                reason: SkipReason::OversizeFrame,
                ..
            })
        ));
        assert!(buffer.len() <= MAX_BUFFERED);
        // The rest of the oversize frame, its end, then a good frame.
        buffer.extend_from_slice(&[0x11, 0x11, 0x7e, 0x7e, 0x05, 0x7e]);
        let mut rest = Vec::new();
        while let Ok(Some(item)) = codec.decode(&mut buffer) {
            rest.push(item);
        }
        assert_eq!(frames(&rest), vec![vec![0x05]]);
    }

    #[test]
    fn an_invalid_escape_drops_only_that_frame() {
        let mut codec = Jt808Codec::default();
        let items = split_all(&mut codec, &[0x7e, 0x7d, 0x05, 0x7e, 0x09, 0x7e]);
        assert_eq!(
            items[0],
            SplitItem::Skipped {
                reason: SkipReason::InvalidEscape,
                bytes: 3
            }
        );
        assert_eq!(frames(&items), vec![vec![0x09]]);
    }

    #[test]
    fn end_of_stream_right_after_a_frame_is_not_a_truncation() {
        let mut codec = Jt808Codec::default();
        let mut buffer = BytesMut::from(&[0x7e, 0x01, 0x7e][..]);
        assert!(matches!(
            codec.decode_eof(&mut buffer),
            Ok(Some(SplitItem::Frame(_)))
        ));
        assert_eq!(codec.decode_eof(&mut buffer).ok(), Some(None));
    }

    #[test]
    fn end_of_stream_inside_a_frame_is_reported_as_truncated() {
        let mut codec = Jt808Codec::default();
        let mut buffer = BytesMut::from(&[0x7e, 0x01][..]);
        assert_eq!(
            codec.decode_eof(&mut buffer).ok().flatten(),
            Some(SplitItem::Skipped {
                reason: SkipReason::Truncated,
                bytes: 2
            })
        );
    }

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
        assert_eq!(position.time.to_rfc3339(), "2026-11-22T03:04:05+00:00");
        assert!((position.lat - 31.2304).abs() < 1e-9);
        assert!((position.lon - 121.4737).abs() < 1e-9);
        assert_eq!(position.speed_kmh, Some(42.5));
        assert_eq!(position.heading_deg, Some(90.0));
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
        assert!(report.lat < 0.0 && report.lon < 0.0);
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
    fn a_bad_check_code_is_refused_under_verify_and_flagged_under_ignore() {
        let mut raw = build_frame(0x0002, &PHONE, 1, &[]);
        if let Some(check) = raw.last_mut() {
            *check ^= 0xff;
        }
        let refused = parse_frame(&raw, ChecksumPolicy::Verify);
        assert!(matches!(refused, Err(FrameError::ChecksumMismatch { .. })));
        assert_eq!(
            refused
                .err()
                .and_then(|error| error.header().map(|header| header.serial)),
            Some(1)
        );
        let accepted = parse_frame(&raw, ChecksumPolicy::Ignore).expect("accepted under ignore");
        assert!(!accepted.checksum_valid);
    }

    #[test]
    fn a_body_longer_or_shorter_than_declared_is_refused() {
        let mut raw = build_frame(0x0002, &PHONE, 1, &[]);
        raw.insert(12, 0xaa);
        let last = raw.len() - 1;
        raw[last] = xor_checksum(&raw[..last]);
        assert!(matches!(
            parse_frame(&raw, ChecksumPolicy::Verify),
            Err(FrameError::BodyLengthMismatch {
                declared: 0,
                actual: 1,
                ..
            })
        ));
    }

    #[test]
    fn a_2019_header_carries_a_version_byte_and_a_20_digit_phone() {
        let message = OutboundMessage {
            message_id: 0x0002,
            version: ProtocolVersion::V2019 { version: 1 },
            phone: TerminalPhone::from_bcd(&[0, 0, 0, 0, 0x01, 0x39, 0x12, 0x34, 0x56, 0x78]),
            serial: 5,
            body: Bytes::new(),
        };
        let frame = parse_frame(&message.to_frame(), ChecksumPolicy::Verify).expect("2019 frame");
        assert_eq!(frame.header.version, ProtocolVersion::V2019 { version: 1 });
        assert_eq!(frame.header.phone.device_id(), "00000000013912345678");
        assert_eq!(frame.header.wire_len(), 17);
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
    fn the_register_response_carries_the_auth_code_only_on_success() {
        let frame = parse_frame(
            &build_frame(0x0100, &PHONE, 0x0102, &[]),
            ChecksumPolicy::Verify,
        )
        .expect("frame");
        let ok = register_response(&frame.header, RegisterResult::Success, Some("abc"), 1);
        assert_eq!(&ok.body[..], &[0x01, 0x02, 0x00, b'a', b'b', b'c']);
        let unknown = register_response(
            &frame.header,
            RegisterResult::TerminalNotInDatabase,
            Some("abc"),
            2,
        );
        assert_eq!(&unknown.body[..], &[0x01, 0x02, 0x04]);
    }

    #[test]
    fn encoded_replies_escape_delimiters_inside_the_frame() {
        // Serial 0x7e7d forces both escapes into the body.
        let header = parse_frame(
            &build_frame(
                0x0200,
                &PHONE,
                0x7e7d,
                &location_body(1, 1, 0, [0x26, 1, 1, 0, 0, 0]),
            ),
            ChecksumPolicy::Ignore,
        )
        .expect("frame")
        .header;
        let mut wire = BytesMut::new();
        let mut codec = Jt808Codec::default();
        codec
            .encode(
                general_response(&header, GeneralResult::Success, 3),
                &mut wire,
            )
            .expect("encode");
        assert_eq!(wire.first(), Some(&DELIMITER));
        assert_eq!(wire.last(), Some(&DELIMITER));
        assert!(!wire[1..wire.len() - 1].contains(&DELIMITER));
        let Ok(Some(SplitItem::Frame(frame))) = codec.decode(&mut wire) else {
            panic!("no frame")
        };
        let reply = parse_frame(&frame, ChecksumPolicy::Verify).expect("reply parses");
        assert_eq!(&reply.body[..2], &[0x7e, 0x7d]);
    }

    fn subpackage_part(serial: u16, total: u16, index: u16, body: &[u8]) -> Jt808Frame {
        let mut header = parse_frame(
            &build_frame(0x0704, &PHONE, serial, &[]),
            ChecksumPolicy::Verify,
        )
        .expect("frame")
        .header;
        header.subpackage = Some(Subpackage { total, index });
        header.body_len = body.len();
        Jt808Frame {
            header,
            body: Bytes::copy_from_slice(body),
            checksum_valid: true,
        }
    }

    #[test]
    fn subpackages_arriving_out_of_order_assemble_in_index_order() {
        let mut assembler = SubpackageAssembler::new(SubpackageLimits::default());
        let now = Instant::now();
        assert_eq!(
            assembler.push(subpackage_part(12, 3, 3, b"ef"), now),
            Ok(SubpackageOutcome::Incomplete)
        );
        assert_eq!(
            assembler.push(subpackage_part(10, 3, 1, b"ab"), now),
            Ok(SubpackageOutcome::Incomplete)
        );
        let Ok(SubpackageOutcome::Complete(whole)) =
            assembler.push(subpackage_part(11, 3, 2, b"cd"), now)
        else {
            panic!("not complete")
        };
        assert_eq!(&whole.body[..], b"abcdef");
        assert_eq!(whole.header.serial, 10);
        assert_eq!(whole.header.subpackage, None);
        assert_eq!(assembler.pending(), 0);
    }

    #[test]
    fn subpackages_older_than_the_age_limit_are_dropped() {
        let limits = SubpackageLimits {
            max_age: Duration::from_secs(5),
            ..SubpackageLimits::default()
        };
        let mut assembler = SubpackageAssembler::new(limits);
        let start = Instant::now();
        assert_eq!(
            assembler.push(subpackage_part(10, 2, 1, b"ab"), start),
            Ok(SubpackageOutcome::Incomplete)
        );
        let later = start + Duration::from_secs(6);
        assert_eq!(
            assembler.push(subpackage_part(11, 2, 2, b"cd"), later),
            Ok(SubpackageOutcome::Incomplete)
        );
        assert_eq!(assembler.dropped(), 1);
        assert_eq!(assembler.pending(), 1);
    }

    #[test]
    fn pending_subpackages_are_bounded_by_evicting_the_oldest() {
        let limits = SubpackageLimits {
            max_pending: 2,
            ..SubpackageLimits::default()
        };
        let mut assembler = SubpackageAssembler::new(limits);
        let now = Instant::now();
        for first_serial in [100, 200, 300] {
            assert_eq!(
                assembler.push(subpackage_part(first_serial, 2, 1, b"x"), now),
                Ok(SubpackageOutcome::Incomplete)
            );
        }
        assert_eq!(assembler.pending(), 2);
        assert_eq!(assembler.dropped(), 1);
    }

    #[test]
    fn a_part_index_outside_its_total_is_refused_not_a_panic() {
        let mut assembler = SubpackageAssembler::new(SubpackageLimits::default());
        for (total, index) in [(2, 3), (2, 0), (0, 0)] {
            assert_eq!(
                assembler.push(subpackage_part(1, total, index, b"x"), Instant::now()),
                Err(SubpackageError::InvalidIndex { total, index })
            );
        }
    }

    #[test]
    fn a_package_announcing_too_many_parts_is_refused() {
        let mut assembler = SubpackageAssembler::new(SubpackageLimits::default());
        assert_eq!(
            assembler.push(subpackage_part(1, 1000, 1, b"x"), Instant::now()),
            Err(SubpackageError::TooManyParts {
                total: 1000,
                limit: 16
            })
        );
    }

    /// A 0x5501/0x5502 frame: 2013 header with a one-byte serial.
    fn vendor_frame(message_id: u16, properties_flags: u16, serial: u8, body: &[u8]) -> Vec<u8> {
        let mut frame = message_id.to_be_bytes().to_vec();
        frame.extend_from_slice(&(properties_flags | body.len() as u16).to_be_bytes());
        frame.extend_from_slice(&PHONE);
        frame.push(serial);
        frame.extend_from_slice(body);
        frame.push(xor_checksum(&frame));
        frame
    }

    /// 2021-05-08 06:30:51 UTC, 22°34.8621' N 113°55.0170' E, valid, 10 knots, 90°.
    fn vendor_location_body(flags: u8) -> Vec<u8> {
        let mut body = vec![0x08, 0x05, 0x21, 0x06, 0x30, 0x51];
        body.extend_from_slice(&[0x22, 0x34, 0x86, 0x21]);
        body.extend_from_slice(&[0x11, 0x35, 0x50, 0x17, flags]);
        body.extend_from_slice(&[0x10, 45, 30, 8]);
        body.extend_from_slice(&[0; 16]);
        body.extend_from_slice(&[0x02, 0x02, 0x00, 0x14]);
        body
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
        assert_eq!(position.time.to_rfc3339(), "2021-05-08T06:30:51+00:00");
        assert!((position.lat - (22.0 + 34.8621 / 60.0)).abs() < 1e-9);
        assert!((position.lon - (113.0 + 55.0170 / 60.0)).abs() < 1e-9);
        assert!(position.valid);
        assert_eq!(position.satellites, Some(8));
        assert_eq!(position.heading_deg, Some(90.0));
        assert_eq!(position.altitude_m, Some(20.0));
        assert!((position.speed_kmh.unwrap_or_default() - 18.52).abs() < 1e-9);

        // South, west, no fix: flags nibble 0.
        let raw = vendor_frame(0x5502, 0, 1, &vendor_location_body(0x00));
        let frame = parse_frame(&raw, ChecksumPolicy::Verify).expect("vendor frame");
        let Ok(Jt808Message::LocationBatch(batch)) = decode_body(&frame) else {
            panic!("not a batch")
        };
        assert!(batch.blind_area);
        assert!(batch.items[0].lat < 0.0 && batch.items[0].lon < 0.0);
        assert!(!batch.items[0].fix_valid());
    }

    #[test]
    fn a_vendor_5501_is_answered_with_0x4401_in_its_short_header() {
        let raw = vendor_frame(0x5501, 0x8000, 0xc0, &vendor_location_body(0x07));
        let header = parse_frame(&raw, ChecksumPolicy::Verify)
            .expect("vendor frame")
            .header;
        let reply = general_response(&header, GeneralResult::Success, 0x0102);
        assert_eq!(reply.message_id, message_id::VENDOR_RESPONSE);
        assert_eq!(&reply.body[..], &[0x55, 0x01, 0x00]);
        // id, properties, phone, one-byte serial (low byte of ours), body, check code.
        let wire = reply.to_frame();
        assert_eq!(wire.len(), 2 + 2 + 6 + 1 + 3 + 1);
        assert_eq!(wire[10], 0x02);
    }

    #[test]
    fn a_5501_with_a_two_byte_serial_is_still_refused_for_its_length() {
        let mut raw = build_frame(0x5501, &PHONE, 1, &vendor_location_body(0x07));
        let last = raw.len() - 1;
        raw[last] = xor_checksum(&raw[..last]);
        assert!(matches!(
            parse_frame(&raw, ChecksumPolicy::Verify),
            Err(FrameError::BodyLengthMismatch { .. })
        ));
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
        assert_eq!(position.time.to_rfc3339(), "2023-02-23T07:02:15+00:00");
        assert!((position.lat - 43.894156).abs() < 1e-9);
        assert!((position.lon + 79.2728).abs() < 1e-9);
        assert_eq!(position.speed_kmh, None);
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
