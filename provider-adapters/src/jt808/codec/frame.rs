//! Layer 2: one unescaped frame into header and body. Owns the three header editions
//! ([`ProtocolVersion`]: 2011/2013, 2019, and the vendor short-serial header of
//! 0x5501/0x5502), the terminal phone number, the XOR check code under the listener's
//! [`ChecksumPolicy`], and the declared body length.

use bytes::Bytes;

use super::message_id;
use crate::ChecksumPolicy;
use crate::wire::{Reader, hex_digits};

/// Largest body the 10-bit length field can declare.
pub const MAX_BODY_LEN: usize = 0x03ff;
/// Largest unescaped frame between delimiters: 2019 header (17) + sub-package fields (4)
/// + body + check code.
pub const MAX_FRAME_LEN: usize = 17 + 4 + MAX_BODY_LEN + 1;

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
pub(super) const PROPERTY_VERSION_FLAG: u16 = 1 << 14;
/// 0x5501/0x5502 only: the terminal asks for a 0x4401 acknowledgement.
const PROPERTY_VENDOR_REPLY: u16 = 1 << 15;

/// Parses one unescaped frame (as produced by [`Jt808Codec`](super::Jt808Codec): no delimiters).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jt808::codec::OutboundMessage;
    use crate::jt808::codec::test_frames::{PHONE, build_frame, vendor_location_body};

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
    fn a_5501_with_a_two_byte_serial_is_still_refused_for_its_length() {
        let mut raw = build_frame(0x5501, &PHONE, 1, &vendor_location_body(0x07));
        let last = raw.len() - 1;
        raw[last] = xor_checksum(&raw[..last]);
        assert!(matches!(
            parse_frame(&raw, ChecksumPolicy::Verify),
            Err(FrameError::BodyLengthMismatch { .. })
        ));
    }
}
