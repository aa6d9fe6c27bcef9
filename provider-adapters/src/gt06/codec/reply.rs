//! What the server sends back: [`Gt06Reply`], the acknowledgement that echoes a frame's
//! protocol number and serial, and the codec's `Encoder` that writes it.

use bytes::{BufMut, BytesMut};
use tokio_util::codec::Encoder;

use super::frame::{CRC_X25, Gt06Frame, START_EXTENDED, START_SHORT, STOP};
use super::split::Gt06Codec;

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

impl Encoder<Gt06Reply> for Gt06Codec {
    type Error = std::io::Error;

    fn encode(&mut self, reply: Gt06Reply, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        dst.extend_from_slice(&reply.to_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChecksumPolicy;
    use crate::gt06::codec::parse_frame;

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
}
