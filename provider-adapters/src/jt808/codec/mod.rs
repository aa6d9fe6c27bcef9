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
//!
//! # Modules
//!
//! Each layer is one private submodule — `split` (1, and the escaping), `frame` (2),
//! `subpackage` (3), `body` (4), `response` (5) — whose public items are re-exported
//! here, so every item keeps its `jt808::codec::` path.

#[cfg(doc)]
use crate::ChecksumPolicy;

mod body;
mod frame;
mod response;
mod split;
mod subpackage;
#[cfg(test)]
mod test_frames;

pub use body::{
    Authenticate, BodyError, Jt808Message, LocationBatch, LocationReport, Register,
    STATUS_FIX_VALID, STATUS_SOUTH, STATUS_WEST, decode_body,
};
pub use frame::{
    FrameError, Header, Jt808Frame, MAX_BODY_LEN, MAX_FRAME_LEN, ProtocolVersion, Subpackage,
    TerminalPhone, parse_frame, xor_checksum,
};
pub use response::{
    GeneralResult, OutboundMessage, RegisterResult, general_response, register_response,
};
pub use split::{
    DELIMITER, ESCAPE, InvalidEscape, Jt808Codec, MAX_BUFFERED, MAX_ESCAPED_FRAME_LEN, SkipReason,
    SplitItem, escape_into, unescape,
};
pub use subpackage::{SubpackageAssembler, SubpackageError, SubpackageLimits, SubpackageOutcome};

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
