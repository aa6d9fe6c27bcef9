//! One whole frame, markers included, into its parts: the short (`0x78 0x78`, 1-byte
//! length) and extended (`0x79 0x79`, 2-byte length) forms, the declared length, and the
//! CRC-16/X.25 under the listener's [`ChecksumPolicy`].

use bytes::Bytes;

use crate::ChecksumPolicy;
use crate::wire::Reader;

/// Start marker of the short form (1-byte length).
pub const START_SHORT: [u8; 2] = [0x78, 0x78];
/// Start marker of the extended form (2-byte length).
pub const START_EXTENDED: [u8; 2] = [0x79, 0x79];
/// Stop marker.
pub const STOP: [u8; 2] = [0x0d, 0x0a];

/// CRC-16/X.25 (poly 0x1021 reflected, init and xorout 0xffff), as GT06 uses it.
pub const CRC_X25: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_SDLC);

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

/// Parses one whole frame, markers included (as produced by [`Gt06Codec`](super::Gt06Codec)).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gt06::codec::test_frames::frame;

    #[test]
    fn the_x25_crc_matches_the_published_check_value() {
        assert_eq!(CRC_X25.checksum(b"123456789"), 0x906e);
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
}
