//! Frames and bodies built by the unit tests of more than one layer.

use bytes::Bytes;

use super::{OutboundMessage, ProtocolVersion, TerminalPhone, xor_checksum};

pub(super) fn build_frame(message_id: u16, phone: &[u8], serial: u16, body: &[u8]) -> Vec<u8> {
    let message = OutboundMessage {
        message_id,
        version: ProtocolVersion::V2013,
        phone: TerminalPhone::from_bcd(phone),
        serial,
        body: Bytes::copy_from_slice(body),
    };
    message.to_frame().to_vec()
}

pub(super) const PHONE: [u8; 6] = [0x01, 0x39, 0x12, 0x34, 0x56, 0x78];

pub(super) fn location_body(
    lat_micro: u32,
    lon_micro: u32,
    status: u32,
    time_bcd: [u8; 6],
) -> Vec<u8> {
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

/// A 0x5501/0x5502 frame: 2013 header with a one-byte serial.
pub(super) fn vendor_frame(
    message_id: u16,
    properties_flags: u16,
    serial: u8,
    body: &[u8],
) -> Vec<u8> {
    let mut frame = message_id.to_be_bytes().to_vec();
    frame.extend_from_slice(&(properties_flags | body.len() as u16).to_be_bytes());
    frame.extend_from_slice(&PHONE);
    frame.push(serial);
    frame.extend_from_slice(body);
    frame.push(xor_checksum(&frame));
    frame
}

/// 2021-05-08 06:30:51 UTC, 22°34.8621' N 113°55.0170' E, valid, 10 knots, 90°.
pub(super) fn vendor_location_body(flags: u8) -> Vec<u8> {
    let mut body = vec![0x08, 0x05, 0x21, 0x06, 0x30, 0x51];
    body.extend_from_slice(&[0x22, 0x34, 0x86, 0x21]);
    body.extend_from_slice(&[0x11, 0x35, 0x50, 0x17, flags]);
    body.extend_from_slice(&[0x10, 45, 30, 8]);
    body.extend_from_slice(&[0; 16]);
    body.extend_from_slice(&[0x02, 0x02, 0x00, 0x14]);
    body
}
