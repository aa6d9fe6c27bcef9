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
//!
//! # Modules
//!
//! Each layer is one private submodule — `split` (the stream splitter), `frame` (markers,
//! length and CRC), `body` (the messages), `reply` (acknowledgements) — whose public
//! items are re-exported here, so every item keeps its `gt06::codec::` path.

#[cfg(doc)]
use crate::ChecksumPolicy;

mod body;
mod frame;
mod reply;
mod split;
#[cfg(test)]
mod test_frames;

pub use body::{BodyError, Gt06Location, Gt06Message, Login, decode_body};
pub use frame::{CRC_X25, FrameError, Gt06Frame, START_EXTENDED, START_SHORT, STOP, parse_frame};
pub use reply::Gt06Reply;
pub use split::{Gt06Codec, MAX_BUFFERED, MAX_FRAME_LEN, SkipReason, SplitItem};

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
