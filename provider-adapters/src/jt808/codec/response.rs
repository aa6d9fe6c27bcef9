//! Layer 5: what the platform sends back. [`general_response`] (0x8001, or the vendor
//! 0x4401 to 0x5501/0x5502) and [`register_response`] (0x8100) build an
//! [`OutboundMessage`]; its header mirrors the terminal's edition, and the codec's
//! `Encoder` escapes and delimits it on the wire.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::Encoder;

use super::frame::{
    Header, MAX_BODY_LEN, PROPERTY_VERSION_FLAG, ProtocolVersion, TerminalPhone, xor_checksum,
};
use super::message_id;
use super::split::{Jt808Codec, escape_into};

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

#[cfg(test)]
mod tests {
    use tokio_util::codec::Decoder;

    use super::*;
    use crate::ChecksumPolicy;
    use crate::jt808::codec::test_frames::{
        PHONE, build_frame, location_body, vendor_frame, vendor_location_body,
    };
    use crate::jt808::codec::{DELIMITER, SplitItem, parse_frame};

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
}
