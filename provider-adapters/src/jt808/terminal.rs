//! A simulated JT/T 808 terminal, the other side of [`Jt808Session`](super::Jt808Session):
//! what the load generator and the TCP benchmark speak to the server. A terminal connects,
//! registers its phone number (0x0100, answered by 0x8100), then sends location reports
//! (0x0200), each answered by a general response (0x8001).
//!
//! ```
//! use provider_adapters::jt808::terminal;
//! let phone = terminal::phone_digits(7);
//! assert_eq!(phone, "013900000007");
//! let at = "2026-12-02T03:04:05Z".parse().unwrap();
//! let body = terminal::location_body(31.2304, 121.4737, 36.0, 90.0, at);
//! assert_eq!(body.len(), 28);
//! // 31.2304° as millionths, big-endian, after the alarm and status words.
//! assert_eq!(&body[8..12], &31_230_400u32.to_be_bytes());
//! // Beijing time (UTC+8) in BCD: 26-12-02 11:04:05.
//! assert_eq!(&body[22..28], &[0x26, 0x12, 0x02, 0x11, 0x04, 0x05]);
//! ```

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Datelike, Timelike, Utc};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use super::codec::{
    self, Jt808Codec, OutboundMessage, ProtocolVersion, STATUS_FIX_VALID, SplitItem, TerminalPhone,
};
use crate::ChecksumPolicy;

/// Registration (terminal → platform).
pub const REGISTER: u16 = 0x0100;
/// Location report (terminal → platform).
pub const LOCATION: u16 = 0x0200;
/// Registration answer (platform → terminal).
pub const REGISTER_ANSWER: u16 = 0x8100;
/// General response (platform → terminal).
pub const GENERAL_RESPONSE: u16 = 0x8001;

fn bcd(value: u32) -> u8 {
    (((value / 10) << 4) | (value % 10)) as u8
}

/// A time as JT/T 808 writes it: Beijing time (UTC+8), `YYMMDDhhmmss` in BCD.
pub fn beijing_bcd(at: DateTime<Utc>) -> [u8; 6] {
    let local = at + chrono::Duration::hours(8);
    [
        bcd((local.year() % 100) as u32),
        bcd(local.month()),
        bcd(local.day()),
        bcd(local.hour()),
        bcd(local.minute()),
        bcd(local.second()),
    ]
}

/// The 0x0200 body of a valid fix: no alarm, positioned, WGS-84 millionths of a degree
/// (northern and eastern hemispheres), altitude 4 m, speed in 0.1 km/h, heading in degrees.
pub fn location_body(
    lat: f64,
    lon: f64,
    speed_kmh: f64,
    heading_deg: f64,
    at: DateTime<Utc>,
) -> Bytes {
    let mut body = BytesMut::with_capacity(28);
    body.put_u32(0);
    body.put_u32(STATUS_FIX_VALID);
    body.put_u32((lat.abs() * 1e6).round() as u32);
    body.put_u32((lon.abs() * 1e6).round() as u32);
    body.put_i16(4);
    body.put_u16((speed_kmh * 10.0).round().clamp(0.0, f64::from(u16::MAX)) as u16);
    body.put_u16((heading_deg.rem_euclid(360.0)).round() as u16 % 360);
    body.put_slice(&beijing_bcd(at));
    body.freeze()
}

/// A 2013-edition registration body: province, city, maker, model, terminal id, plate
/// colour and plate.
pub fn register_body() -> Bytes {
    let mut body = vec![0x00, 0x1f, 0x00, 0x73];
    body.extend_from_slice(b"MAKER");
    body.extend_from_slice(&[b'M'; 20]);
    body.extend_from_slice(b"T000001");
    body.push(2);
    body.extend_from_slice(&[0xbb, 0xa6, b'A', b'1', b'2', b'3', b'4', b'5']);
    Bytes::from(body)
}

/// A terminal phone number for simulated terminal `index`: `0139` and eight digits. It is
/// also the device id a vehicle registers (`{"protocol": "jt808", "id": …}`).
pub fn phone_digits(index: usize) -> String {
    format!("0139{:08}", index % 100_000_000)
}

/// Twelve digits as the six BCD bytes of the header.
pub fn phone_from_digits(digits: &str) -> TerminalPhone {
    let mut out = [0u8; 6];
    for (slot, pair) in out.iter_mut().zip(digits.as_bytes().chunks(2)) {
        let high = pair[0].wrapping_sub(b'0') & 0x0f;
        let low = pair
            .get(1)
            .map_or(0, |digit| digit.wrapping_sub(b'0') & 0x0f);
        *slot = (high << 4) | low;
    }
    TerminalPhone::from_bcd(&out)
}

/// Why a terminal's exchange with the platform failed.
#[derive(Debug)]
pub enum TerminalError {
    /// The socket failed.
    Io(std::io::Error),
    /// No answer in time.
    Timeout,
    /// The platform closed the connection.
    Closed,
    /// The answer was not a valid frame.
    BadReply(String),
    /// Registration was answered with something other than success.
    NotRegistered {
        /// The answer's message id.
        message_id: u16,
        /// Its result code, if it had one.
        result: Option<u8>,
    },
}

impl std::fmt::Display for TerminalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TerminalError::Io(error) => write!(f, "socket: {error}"),
            TerminalError::Timeout => write!(f, "no answer in time"),
            TerminalError::Closed => write!(f, "connection closed by the platform"),
            TerminalError::BadReply(why) => write!(f, "bad reply: {why}"),
            TerminalError::NotRegistered { message_id, result } => write!(
                f,
                "not registered (answer {message_id:#06x}, result {result:?})"
            ),
        }
    }
}

impl std::error::Error for TerminalError {}

impl From<std::io::Error> for TerminalError {
    fn from(error: std::io::Error) -> Self {
        TerminalError::Io(error)
    }
}

impl From<tokio::time::error::Elapsed> for TerminalError {
    fn from(_: tokio::time::error::Elapsed) -> Self {
        TerminalError::Timeout
    }
}

/// A connected terminal.
pub struct Terminal {
    framed: Framed<TcpStream, Jt808Codec>,
    phone: TerminalPhone,
    serial: u16,
}

/// How the platform answered a location report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 0x8001 with result 0.
    Accepted,
    /// 0x8001 with another result (1 failure, 2 bad message, 3 unsupported), or another
    /// message.
    Refused(u8),
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal")
            .field("device_id", &self.phone.device_id())
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

impl Terminal {
    /// Connects and registers `digits`; fails unless the platform answers 0x8100 with
    /// result 0 within `timeout`.
    pub async fn register(
        address: std::net::SocketAddr,
        digits: &str,
        timeout: Duration,
    ) -> Result<Terminal, TerminalError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address)).await??;
        stream.set_nodelay(true)?;
        let mut terminal = Terminal {
            framed: Framed::new(stream, Jt808Codec::default()),
            phone: phone_from_digits(digits),
            serial: 0,
        };
        terminal.send(REGISTER, register_body()).await?;
        let (id, body) = terminal.reply(timeout).await?;
        if id != REGISTER_ANSWER || body.get(2) != Some(&0) {
            return Err(TerminalError::NotRegistered {
                message_id: id,
                result: body.get(2).copied(),
            });
        }
        Ok(terminal)
    }

    fn message(&mut self, message_id: u16, body: Bytes) -> OutboundMessage {
        self.serial = self.serial.wrapping_add(1);
        OutboundMessage {
            message_id,
            version: ProtocolVersion::V2013,
            phone: self.phone,
            serial: self.serial,
            body,
        }
    }

    /// Sends one message and flushes it.
    pub async fn send(&mut self, message_id: u16, body: Bytes) -> std::io::Result<()> {
        let message = self.message(message_id, body);
        self.framed.send(message).await
    }

    /// Queues one message without flushing (see [`Terminal::flush`]).
    pub async fn feed(&mut self, message_id: u16, body: Bytes) -> std::io::Result<()> {
        let message = self.message(message_id, body);
        self.framed.feed(message).await
    }

    /// Flushes queued messages.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        self.framed.flush().await
    }

    /// The platform's next message: (message id, body).
    pub async fn reply(&mut self, timeout: Duration) -> Result<(u16, Bytes), TerminalError> {
        loop {
            let item = tokio::time::timeout(timeout, self.framed.next())
                .await?
                .ok_or(TerminalError::Closed)?
                .map_err(|error| TerminalError::BadReply(format!("{error:?}")))?;
            if let SplitItem::Frame(frame) = item {
                let parsed = codec::parse_frame(&frame, ChecksumPolicy::Verify)
                    .map_err(|error| TerminalError::BadReply(format!("{error:?}")))?;
                return Ok((parsed.header.message_id, parsed.body));
            }
        }
    }

    /// Reads the answer to a location report.
    pub async fn answer(&mut self, timeout: Duration) -> Result<Answer, TerminalError> {
        let (id, body) = self.reply(timeout).await?;
        Ok(match (id, body.get(4)) {
            (GENERAL_RESPONSE, Some(0)) => Answer::Accepted,
            (GENERAL_RESPONSE, Some(result)) => Answer::Refused(*result),
            _ => Answer::Refused(u8::MAX),
        })
    }

    /// Sends one location report and waits for its answer.
    pub async fn report(
        &mut self,
        lat: f64,
        lon: f64,
        speed_kmh: f64,
        heading_deg: f64,
        at: DateTime<Utc>,
        timeout: Duration,
    ) -> Result<Answer, TerminalError> {
        self.send(
            LOCATION,
            location_body(lat, lon, speed_kmh, heading_deg, at),
        )
        .await?;
        self.answer(timeout).await
    }
}
