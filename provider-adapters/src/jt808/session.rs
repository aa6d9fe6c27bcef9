//! The JT/T 808 connection state machine. Pure: frame bytes and gateway answers in,
//! [`Step`]s out; the caller passes the time.
//!
//! Rules:
//! - A connection must register (0x0100 → 0x8100: result 0 and an auth code for a terminal
//!   the gateway maps to a vehicle, result 4 "terminal not in database" otherwise) or
//!   authenticate (0x0102 → 0x8001 success, or failure for a wrong code or an unknown
//!   terminal) before its positions count.
//! - Locations (0x0200, vendor 0x5501, 0x0900 pass-through of type 0xF0) and batches
//!   (0x0704, vendor 0x0210, blind-area 0x5502, archived 0x0900 reports) from an unauthenticated connection, or
//!   carrying another terminal's phone number, get 0x8001 failure and are not submitted.
//!   Accepted ones are answered after the gateway stored them: success, or failure when the
//!   gateway is unavailable so the terminal keeps them for a later blind-area upload.
//! - Heartbeat → 0x8001 success; logout → success and the connection is no longer
//!   authenticated; unknown ids (and pass-through data without a fix) → 0x8001 result 3;
//!   malformed frames → 0x8001 result 2. The vendor messages 0x5501/0x5502 are answered
//!   with their own 0x4401 (same results), and only when their header asks for it.
//! - The auth code is derived, not stored: the first 16 hex digits of
//!   SHA-256(secret ‖ 0x00 ‖ phone number), so any server instance sharing the secret
//!   accepts a terminal registered on another.

use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::codec::{
    FrameError, GeneralResult, Header, Jt808Frame, Jt808Message, OutboundMessage, ProtocolVersion,
    RegisterResult, SubpackageAssembler, SubpackageLimits, SubpackageOutcome, TerminalPhone,
    decode_body, general_response, parse_frame, register_response,
};
use crate::ChecksumPolicy;
use crate::gateway::{DeviceRef, GatewayError, SubmitOutcome};
use crate::session::Step;

/// The server secret from which auth codes are derived. Its `Debug` output is redacted.
#[derive(Clone)]
pub struct AuthSecret(Arc<[u8]>);

impl AuthSecret {
    /// Wraps the secret bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self(Arc::from(secret.into()))
    }

    /// The auth code handed to terminal `device_id` at registration.
    ///
    /// ```
    /// use provider_adapters::jt808::AuthSecret;
    /// let secret = AuthSecret::new(b"s3cret".to_vec());
    /// let code = secret.auth_code("013912345678");
    /// assert_eq!(code.len(), 16);
    /// assert_eq!(code, secret.auth_code("013912345678"));
    /// assert_ne!(code, secret.auth_code("013912345679"));
    /// ```
    pub fn auth_code(&self, device_id: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(&self.0);
        hasher.update([0u8]);
        hasher.update(device_id.as_bytes());
        let digest = hasher.finalize();
        hex::encode(&digest[..8])
    }
}

impl std::fmt::Debug for AuthSecret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("AuthSecret(<redacted>)")
    }
}

/// What a connection is waiting for from the gateway.
#[derive(Debug)]
enum Pending {
    Register { header: Header },
    Authenticate { header: Header },
    Submit { header: Header },
}

#[derive(Debug)]
struct Authenticated {
    phone: TerminalPhone,
    device: DeviceRef,
}

/// State of one JT/T 808 connection.
///
/// ```
/// use std::time::Instant;
/// use domain::{DeviceProtocol, VehicleId};
/// use provider_adapters::{ChecksumPolicy, DeviceRef};
/// use provider_adapters::jt808::{AuthSecret, Jt808Session};
/// use provider_adapters::session::Step;
///
/// let mut session = Jt808Session::new(AuthSecret::new(b"s".to_vec()), ChecksumPolicy::Verify, Default::default());
/// // A terminal that sends "register" (0x0100), here built with the codec's own encoder.
/// let mut body = vec![0, 31, 0, 115];
/// body.extend_from_slice(&[0; 33]); // maker, model, terminal id, plate colour
/// let register = provider_adapters::jt808::codec::OutboundMessage {
///     message_id: 0x0100,
///     version: provider_adapters::jt808::codec::ProtocolVersion::V2013,
///     phone: provider_adapters::jt808::codec::TerminalPhone::from_bcd(&[0x01, 0x33, 0x45, 0x67, 0x89, 0x06]),
///     serial: 1,
///     body: body.into(),
/// }
/// .to_frame();
/// let Step::Resolve { device_id } = session.on_frame(&register, Instant::now()) else { panic!() };
/// assert_eq!(device_id, "013345678906");
/// let vehicle_id: VehicleId = "0197a000-0000-7000-8000-000000000007".parse().unwrap();
/// let device = DeviceRef { vehicle_id, protocol: DeviceProtocol::Jt808, device_id };
/// let Step::Reply(replies) = session.resolved(Ok(Some(device))) else { panic!() };
/// assert_eq!(replies[0].message_id, 0x8100);
/// assert!(session.is_authenticated());
/// ```
#[derive(Debug)]
pub struct Jt808Session {
    secret: AuthSecret,
    checksum_policy: ChecksumPolicy,
    assembler: SubpackageAssembler,
    authenticated: Option<Authenticated>,
    pending: Option<Pending>,
    next_serial: u16,
}

impl Jt808Session {
    /// A fresh, unauthenticated connection.
    pub fn new(
        secret: AuthSecret,
        checksum_policy: ChecksumPolicy,
        subpackage_limits: SubpackageLimits,
    ) -> Self {
        Self {
            secret,
            checksum_policy,
            assembler: SubpackageAssembler::new(subpackage_limits),
            authenticated: None,
            pending: None,
            next_serial: 0,
        }
    }

    /// Whether the connection registered or authenticated.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated.is_some()
    }

    /// The device this connection authenticated as.
    pub fn device(&self) -> Option<&DeviceRef> {
        self.authenticated
            .as_ref()
            .map(|authenticated| &authenticated.device)
    }

    fn serial(&mut self) -> u16 {
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        serial
    }

    fn general(&mut self, header: &Header, result: GeneralResult) -> OutboundMessage {
        let serial = self.serial();
        general_response(header, result, serial)
    }

    /// The answer to the message with `header`: 0x8001, or for the vendor messages
    /// 0x5501/0x5502 their 0x4401, and only when the terminal asked for it.
    fn answer(&mut self, header: &Header, result: GeneralResult) -> Vec<OutboundMessage> {
        if let ProtocolVersion::VendorShortSerial {
            reply_requested: false,
        } = header.version
        {
            return Vec::new();
        }
        vec![self.general(header, result)]
    }

    fn refuse(
        &mut self,
        reason: &'static str,
        header: &Header,
        result: GeneralResult,
    ) -> Step<OutboundMessage> {
        let replies = self.answer(header, result);
        Step::Refuse { reason, replies }
    }

    /// Handles one unescaped frame (delimiters removed) received at `now`.
    pub fn on_frame(&mut self, frame: &[u8], now: Instant) -> Step<OutboundMessage> {
        let frame = match parse_frame(frame, self.checksum_policy) {
            Ok(frame) => frame,
            Err(error) => return self.refuse_frame(&error),
        };
        if frame.header.subpackage.is_none() {
            return self.on_message(frame);
        }
        let part_header = frame.header.clone();
        match self.assembler.push(frame, now) {
            Ok(SubpackageOutcome::Incomplete) => {
                Step::Reply(vec![self.general(&part_header, GeneralResult::Success)])
            }
            Ok(SubpackageOutcome::Complete(whole)) => {
                let part_ack = self.general(&part_header, GeneralResult::Success);
                match self.on_message(whole) {
                    Step::Reply(mut replies) => {
                        replies.insert(0, part_ack);
                        Step::Reply(replies)
                    }
                    Step::Refuse {
                        reason,
                        mut replies,
                    } => {
                        replies.insert(0, part_ack);
                        Step::Refuse { reason, replies }
                    }
                    // The part's own ack is implied by the answer that follows the gateway call.
                    other => other,
                }
            }
            Err(_) => self.refuse(
                "subpackage_refused",
                &part_header,
                GeneralResult::MessageError,
            ),
        }
    }

    fn refuse_frame(&mut self, error: &FrameError) -> Step<OutboundMessage> {
        match error.header() {
            Some(header) => {
                let header = header.clone();
                self.refuse(error.reason(), &header, GeneralResult::MessageError)
            }
            None => Step::Refuse {
                reason: error.reason(),
                replies: Vec::new(),
            },
        }
    }

    fn on_message(&mut self, frame: Jt808Frame) -> Step<OutboundMessage> {
        let header = frame.header.clone();
        let message = match decode_body(&frame) {
            Ok(message) => message,
            Err(error) => return self.refuse(error.reason(), &header, GeneralResult::MessageError),
        };
        match message {
            Jt808Message::Register(_) => {
                let device_id = header.phone.device_id();
                self.pending = Some(Pending::Register { header });
                Step::Resolve { device_id }
            }
            Jt808Message::Authenticate(authenticate) => {
                let device_id = header.phone.device_id();
                if authenticate.auth_code != self.secret.auth_code(&device_id) {
                    return self.refuse("auth_code_mismatch", &header, GeneralResult::Failure);
                }
                self.pending = Some(Pending::Authenticate { header });
                Step::Resolve { device_id }
            }
            Jt808Message::Heartbeat => {
                Step::Reply(vec![self.general(&header, GeneralResult::Success)])
            }
            Jt808Message::Logout => {
                if self
                    .authenticated
                    .as_ref()
                    .is_some_and(|auth| auth.phone == header.phone)
                {
                    self.authenticated = None;
                }
                Step::Reply(vec![self.general(&header, GeneralResult::Success)])
            }
            Jt808Message::TerminalResponse => Step::Reply(Vec::new()),
            Jt808Message::Location(report) => {
                let Some(device) = self.device_for(&header) else {
                    return self.refuse("not_authenticated", &header, GeneralResult::Failure);
                };
                let positions = vec![report.to_position(&device.device_id)];
                self.pending = Some(Pending::Submit { header });
                Step::Submit {
                    device,
                    positions,
                    live: true,
                }
            }
            Jt808Message::LocationBatch(batch) => {
                let Some(device) = self.device_for(&header) else {
                    return self.refuse("not_authenticated", &header, GeneralResult::Failure);
                };
                if batch.items.is_empty() {
                    return self.refuse(
                        "no_valid_batch_item",
                        &header,
                        GeneralResult::MessageError,
                    );
                }
                let positions = batch
                    .items
                    .iter()
                    .map(|item| item.to_position(&device.device_id))
                    .collect();
                self.pending = Some(Pending::Submit { header });
                // Batches are stored fixes (blind-area or buffered): they must never
                // drag the live position back in time, whatever their type byte says.
                Step::Submit {
                    device,
                    positions,
                    live: false,
                }
            }
            Jt808Message::Unsupported { .. } => {
                self.refuse("unsupported_message", &header, GeneralResult::Unsupported)
            }
        }
    }

    /// The device, if this connection authenticated as the terminal named in `header`.
    fn device_for(&self, header: &Header) -> Option<DeviceRef> {
        self.authenticated
            .as_ref()
            .filter(|authenticated| authenticated.phone == header.phone)
            .map(|authenticated| authenticated.device.clone())
    }

    /// The gateway's answer to the last [`Step::Resolve`].
    pub fn resolved(
        &mut self,
        answer: Result<Option<DeviceRef>, GatewayError>,
    ) -> Step<OutboundMessage> {
        match (self.pending.take(), answer) {
            (Some(Pending::Register { header }), Ok(Some(device))) => {
                let code = self.secret.auth_code(&header.phone.device_id());
                self.authenticated = Some(Authenticated {
                    phone: header.phone,
                    device,
                });
                let serial = self.serial();
                Step::Reply(vec![register_response(
                    &header,
                    RegisterResult::Success,
                    Some(&code),
                    serial,
                )])
            }
            (Some(Pending::Register { header }), Ok(None)) => {
                let serial = self.serial();
                let reply =
                    register_response(&header, RegisterResult::TerminalNotInDatabase, None, serial);
                Step::Refuse {
                    reason: "unknown_terminal",
                    replies: vec![reply],
                }
            }
            // 0x8100 has no "try later" code: stay silent so the terminal retries.
            (Some(Pending::Register { .. }), Err(_)) => Step::Refuse {
                reason: "gateway_unavailable",
                replies: Vec::new(),
            },
            (Some(Pending::Authenticate { header }), Ok(Some(device))) => {
                self.authenticated = Some(Authenticated {
                    phone: header.phone,
                    device,
                });
                Step::Reply(vec![self.general(&header, GeneralResult::Success)])
            }
            (Some(Pending::Authenticate { header }), Ok(None)) => {
                self.refuse("unknown_terminal", &header, GeneralResult::Failure)
            }
            (Some(Pending::Authenticate { header }), Err(_)) => {
                self.refuse("gateway_unavailable", &header, GeneralResult::Failure)
            }
            (other, _) => {
                self.pending = other;
                Step::Reply(Vec::new())
            }
        }
    }

    /// The gateway's answer to the last [`Step::Submit`].
    pub fn submitted(
        &mut self,
        answer: Result<SubmitOutcome, GatewayError>,
    ) -> Step<OutboundMessage> {
        let Some(Pending::Submit { header }) = self.pending.take() else {
            return Step::Reply(Vec::new());
        };
        match answer {
            Ok(_) => Step::Reply(self.answer(&header, GeneralResult::Success)),
            // Failure makes the terminal keep the fixes and upload them again later.
            Err(GatewayError::Unavailable) => {
                self.refuse("gateway_unavailable", &header, GeneralResult::Failure)
            }
            Err(GatewayError::Rejected(_)) => {
                self.refuse("gateway_rejected", &header, GeneralResult::Failure)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, Bytes, BytesMut};

    use super::*;
    use crate::jt808::codec::{STATUS_FIX_VALID, xor_checksum};
    use domain::{DeviceProtocol, VehicleId};

    const PHONE: [u8; 6] = [0x01, 0x39, 0x12, 0x34, 0x56, 0x78];
    const OTHER_PHONE: [u8; 6] = [0x01, 0x39, 0x00, 0x00, 0x00, 0x01];

    fn frame(message_id: u16, phone: &[u8], serial: u16, body: &[u8]) -> Vec<u8> {
        OutboundMessage {
            message_id,
            version: ProtocolVersion::V2013,
            phone: TerminalPhone::from_bcd(phone),
            serial,
            body: Bytes::copy_from_slice(body),
        }
        .to_frame()
        .to_vec()
    }

    fn location_body() -> Vec<u8> {
        let mut body = BytesMut::new();
        body.put_u32(0);
        body.put_u32(STATUS_FIX_VALID);
        body.put_u32(31_230_400);
        body.put_u32(121_473_700);
        body.put_i16(5);
        body.put_u16(300);
        body.put_u16(180);
        body.put_slice(&[0x26, 0x11, 0x22, 0x11, 0x04, 0x05]);
        body.to_vec()
    }

    fn register_body() -> Vec<u8> {
        let mut body = vec![0, 31, 0, 115];
        body.extend_from_slice(b"MAKER");
        body.extend_from_slice(&[b'M'; 20]);
        body.extend_from_slice(b"T000001");
        body.push(1);
        body.extend_from_slice(b"A12345");
        body
    }

    /// The vehicle the test terminal is mounted in.
    fn truck() -> VehicleId {
        "0197a000-0000-7000-8000-000000000007"
            .parse()
            .expect("a vehicle id")
    }

    fn device() -> DeviceRef {
        DeviceRef {
            vehicle_id: truck(),
            protocol: DeviceProtocol::Jt808,
            device_id: "013912345678".into(),
        }
    }

    fn session() -> Jt808Session {
        Jt808Session::new(
            AuthSecret::new(b"secret".to_vec()),
            ChecksumPolicy::Verify,
            SubpackageLimits::default(),
        )
    }

    fn replies(step: Step<OutboundMessage>) -> Vec<OutboundMessage> {
        match step {
            Step::Reply(replies) | Step::Refuse { replies, .. } | Step::Close { replies, .. } => {
                replies
            }
            other => panic!("expected replies, got {other:?}"),
        }
    }

    /// (reply id, result) of a general response.
    fn general_result(reply: &OutboundMessage) -> (u16, u8) {
        assert_eq!(reply.message_id, 0x8001);
        (
            u16::from_be_bytes([reply.body[2], reply.body[3]]),
            reply.body[4],
        )
    }

    fn registered_session() -> Jt808Session {
        let mut session = session();
        let step = session.on_frame(&frame(0x0100, &PHONE, 1, &register_body()), Instant::now());
        assert_eq!(
            step,
            Step::Resolve {
                device_id: "013912345678".into()
            }
        );
        replies(session.resolved(Ok(Some(device()))));
        session
    }

    #[test]
    fn a_known_terminal_registers_and_gets_the_derived_auth_code() {
        let mut session = session();
        session.on_frame(
            &frame(0x0100, &PHONE, 0x0042, &register_body()),
            Instant::now(),
        );
        let reply = replies(session.resolved(Ok(Some(device())))).remove(0);
        assert_eq!(reply.message_id, 0x8100);
        assert_eq!(&reply.body[..3], &[0x00, 0x42, 0x00]);
        let code = AuthSecret::new(b"secret".to_vec()).auth_code("013912345678");
        assert_eq!(&reply.body[3..], code.as_bytes());
        assert!(session.is_authenticated());
    }

    #[test]
    fn an_unknown_terminal_gets_result_4_and_stays_unauthenticated() {
        let mut session = session();
        session.on_frame(&frame(0x0100, &PHONE, 7, &register_body()), Instant::now());
        let step = session.resolved(Ok(None));
        let Step::Refuse {
            reason: "unknown_terminal",
            replies,
        } = step
        else {
            panic!("{step:?}")
        };
        assert_eq!(replies[0].message_id, 0x8100);
        assert_eq!(&replies[0].body[..], &[0x00, 0x07, 0x04]);
        assert!(!session.is_authenticated());
    }

    #[test]
    fn authentication_with_the_right_code_succeeds_after_the_gateway_confirms() {
        let mut session = session();
        let code = AuthSecret::new(b"secret".to_vec()).auth_code("013912345678");
        let step = session.on_frame(&frame(0x0102, &PHONE, 3, code.as_bytes()), Instant::now());
        assert_eq!(
            step,
            Step::Resolve {
                device_id: "013912345678".into()
            }
        );
        let reply = replies(session.resolved(Ok(Some(device())))).remove(0);
        assert_eq!(general_result(&reply), (0x0102, 0));
        assert!(session.is_authenticated());
    }

    #[test]
    fn authentication_with_a_wrong_code_fails_without_asking_the_gateway() {
        let mut session = session();
        let step = session.on_frame(&frame(0x0102, &PHONE, 3, b"guess"), Instant::now());
        let Step::Refuse {
            reason: "auth_code_mismatch",
            replies,
        } = step
        else {
            panic!("{step:?}")
        };
        assert_eq!(general_result(&replies[0]), (0x0102, 1));
        assert!(!session.is_authenticated());
    }

    #[test]
    fn a_location_before_authentication_is_refused_and_not_submitted() {
        let mut session = session();
        let step = session.on_frame(&frame(0x0200, &PHONE, 3, &location_body()), Instant::now());
        let Step::Refuse {
            reason: "not_authenticated",
            replies,
        } = step
        else {
            panic!("{step:?}")
        };
        assert_eq!(general_result(&replies[0]), (0x0200, 1));
    }

    #[test]
    fn a_location_for_another_terminals_phone_is_refused() {
        let mut session = registered_session();
        let step = session.on_frame(
            &frame(0x0200, &OTHER_PHONE, 3, &location_body()),
            Instant::now(),
        );
        assert!(matches!(
            step,
            Step::Refuse {
                reason: "not_authenticated",
                ..
            }
        ));
    }

    #[test]
    fn a_location_after_registration_is_submitted_live_and_acknowledged_once_stored() {
        let mut session = registered_session();
        let step = session.on_frame(&frame(0x0200, &PHONE, 9, &location_body()), Instant::now());
        let Step::Submit {
            device,
            positions,
            live: true,
        } = step
        else {
            panic!("{step:?}")
        };
        assert_eq!(device.vehicle_id, truck());
        assert_eq!(positions.len(), 1);
        let reply = replies(session.submitted(Ok(SubmitOutcome {
            accepted: 1,
            rejected: 0,
        })))
        .remove(0);
        assert_eq!(general_result(&reply), (0x0200, 0));
    }

    #[test]
    fn a_gateway_outage_answers_failure_so_the_terminal_keeps_its_fixes() {
        let mut session = registered_session();
        session.on_frame(&frame(0x0200, &PHONE, 9, &location_body()), Instant::now());
        let step = session.submitted(Err(GatewayError::Unavailable));
        let Step::Refuse {
            reason: "gateway_unavailable",
            replies,
        } = step
        else {
            panic!("{step:?}")
        };
        assert_eq!(general_result(&replies[0]), (0x0200, 1));
    }

    #[test]
    fn a_batch_is_submitted_as_not_live() {
        let mut session = registered_session();
        let item = location_body();
        let mut body = vec![0x00, 0x02, 0x01];
        for _ in 0..2 {
            body.extend_from_slice(&(item.len() as u16).to_be_bytes());
            body.extend_from_slice(&item);
        }
        let step = session.on_frame(&frame(0x0704, &PHONE, 10, &body), Instant::now());
        let Step::Submit {
            positions,
            live: false,
            ..
        } = step
        else {
            panic!("{step:?}")
        };
        assert_eq!(positions.len(), 2);
    }

    #[test]
    fn heartbeat_is_acknowledged_even_before_authentication() {
        let mut session = session();
        let reply =
            replies(session.on_frame(&frame(0x0002, &PHONE, 4, &[]), Instant::now())).remove(0);
        assert_eq!(general_result(&reply), (0x0002, 0));
    }

    #[test]
    fn an_unsupported_message_gets_result_3() {
        let mut session = registered_session();
        let step = session.on_frame(&frame(0x0900, &PHONE, 4, &[1, 2, 3]), Instant::now());
        let Step::Refuse {
            reason: "unsupported_message",
            replies,
        } = step
        else {
            panic!("{step:?}")
        };
        assert_eq!(general_result(&replies[0]), (0x0900, 3));
    }

    #[test]
    fn a_bad_check_code_gets_result_2() {
        let mut session = session();
        let mut raw = frame(0x0002, &PHONE, 4, &[]);
        let last = raw.len() - 1;
        raw[last] ^= 0x55;
        let step = session.on_frame(&raw, Instant::now());
        let Step::Refuse {
            reason: "checksum_mismatch",
            replies,
        } = step
        else {
            panic!("{step:?}")
        };
        assert_eq!(general_result(&replies[0]), (0x0002, 2));
    }

    #[test]
    fn logout_ends_the_authentication() {
        let mut session = registered_session();
        replies(session.on_frame(&frame(0x0003, &PHONE, 4, &[]), Instant::now()));
        assert!(!session.is_authenticated());
    }

    #[test]
    fn replies_use_increasing_platform_serial_numbers() {
        let mut session = session();
        let first =
            replies(session.on_frame(&frame(0x0002, &PHONE, 4, &[]), Instant::now())).remove(0);
        let second =
            replies(session.on_frame(&frame(0x0002, &PHONE, 5, &[]), Instant::now())).remove(0);
        assert_eq!(second.serial, first.serial.wrapping_add(1));
    }

    #[test]
    fn a_subpackaged_batch_is_acknowledged_part_by_part_and_submitted_whole() {
        let mut session = registered_session();
        let item = location_body();
        let mut body = vec![0x00, 0x01, 0x00];
        body.extend_from_slice(&(item.len() as u16).to_be_bytes());
        body.extend_from_slice(&item);
        let (first, second) = body.split_at(10);
        let part = |serial: u16, index: u16, chunk: &[u8]| {
            let mut raw = vec![0x07, 0x04];
            raw.extend_from_slice(&(0x2000 | chunk.len() as u16).to_be_bytes());
            raw.extend_from_slice(&PHONE);
            raw.extend_from_slice(&serial.to_be_bytes());
            raw.extend_from_slice(&[0, 2]);
            raw.extend_from_slice(&index.to_be_bytes());
            raw.extend_from_slice(chunk);
            raw.push(xor_checksum(&raw));
            raw
        };
        let now = Instant::now();
        let ack = replies(session.on_frame(&part(20, 1, first), now)).remove(0);
        assert_eq!(general_result(&ack), (0x0704, 0));
        let step = session.on_frame(&part(21, 2, second), now);
        let Step::Submit {
            positions,
            live: false,
            ..
        } = step
        else {
            panic!("{step:?}")
        };
        assert_eq!(positions.len(), 1);
    }

    fn vendor_location(reply_requested: bool) -> Vec<u8> {
        let mut body = vec![0x08, 0x05, 0x21, 0x06, 0x30, 0x51];
        body.extend_from_slice(&[0x22, 0x34, 0x86, 0x21, 0x11, 0x35, 0x50, 0x17, 0x07]);
        body.extend_from_slice(&[0; 20]);
        let flags: u16 = if reply_requested { 0x8000 } else { 0 };
        let mut raw = 0x5501u16.to_be_bytes().to_vec();
        raw.extend_from_slice(&(flags | body.len() as u16).to_be_bytes());
        raw.extend_from_slice(&PHONE);
        raw.push(7);
        raw.extend_from_slice(&body);
        raw.push(xor_checksum(&raw));
        raw
    }

    #[test]
    fn a_vendor_5501_is_submitted_live_and_answered_with_0x4401_only_when_asked() {
        for reply_requested in [true, false] {
            let mut session = registered_session();
            let step = session.on_frame(&vendor_location(reply_requested), Instant::now());
            let Step::Submit {
                positions, live, ..
            } = step
            else {
                panic!("{step:?}")
            };
            assert!(live);
            assert_eq!(positions.len(), 1);
            let answer = replies(session.submitted(Ok(SubmitOutcome {
                accepted: 1,
                rejected: 0,
            })));
            if reply_requested {
                assert_eq!(answer.len(), 1);
                assert_eq!(answer[0].message_id, 0x4401);
                assert_eq!(&answer[0].body[..], &[0x55, 0x01, 0x00]);
            } else {
                assert!(answer.is_empty());
            }
        }
    }
}
