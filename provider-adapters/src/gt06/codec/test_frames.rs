//! Frames built by the unit tests of more than one layer.

use super::{CRC_X25, STOP};

/// Builds a short-form frame with a correct CRC.
pub(super) fn frame(protocol: u8, body: &[u8], serial: u16) -> Vec<u8> {
    let mut out = vec![0x78, 0x78, (body.len() + 5) as u8, protocol];
    out.extend_from_slice(body);
    out.extend_from_slice(&serial.to_be_bytes());
    let crc = CRC_X25.checksum(&out[2..]);
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&STOP);
    out
}
