//! The GT06 connection state machine. Pure: frame bytes and gateway answers in,
//! [`Step`]s out.
//!
//! Rules:
//! - The first thing on a connection is a login (0x01): an IMEI the gateway maps to a
//!   vehicle is acknowledged; an unknown one (or a gateway that cannot answer) closes the
//!   connection, and the device reconnects and tries again later.
//! - Anything but a login before a successful login is ignored: no ack, no submission,
//!   counted as `not_logged_in`.
//! - Heartbeats (0x13, 0x23) are acknowledged. GPS-bearing messages are submitted and
//!   acknowledged once the gateway stored them; a fix the device marks as a re-upload of
//!   stored data is submitted as not live. Without an ack, devices resend alarms.
//! - Other message types (cell towers, Wi-Fi, information) carry no fix: ignored silently.

use super::codec::{Gt06Message, Gt06Reply, decode_body, parse_frame};
use crate::ChecksumPolicy;
use crate::gateway::{DeviceRef, GatewayError, SubmitOutcome};
use crate::session::Step;

#[derive(Debug)]
struct LoggedIn {
    device: DeviceRef,
    utc_offset_minutes: i32,
}

#[derive(Debug)]
enum Pending {
    Login {
        ack: Gt06Reply,
        utc_offset_minutes: i32,
    },
    Submit {
        ack: Gt06Reply,
    },
}

/// State of one GT06 connection.
///
/// ```
/// use domain::DeviceProtocol;
/// use provider_adapters::{ChecksumPolicy, DeviceRef};
/// use provider_adapters::gt06::Gt06Session;
/// use provider_adapters::session::Step;
///
/// let mut session = Gt06Session::new(ChecksumPolicy::Verify);
/// let login = hex::decode("78780d01086471700328358100093f040d0a").unwrap();
/// let Step::Resolve { device_id } = session.on_frame(&login) else { panic!() };
/// assert_eq!(device_id, "864717003283581");
/// let step = session.resolved(Ok(None));
/// assert!(matches!(step, Step::Close { reason: "unknown_device", .. }));
/// ```
#[derive(Debug)]
pub struct Gt06Session {
    checksum_policy: ChecksumPolicy,
    logged_in: Option<LoggedIn>,
    pending: Option<Pending>,
}

impl Gt06Session {
    /// A fresh connection, not logged in.
    pub fn new(checksum_policy: ChecksumPolicy) -> Self {
        Self {
            checksum_policy,
            logged_in: None,
            pending: None,
        }
    }

    /// The device this connection logged in as.
    pub fn device(&self) -> Option<&DeviceRef> {
        self.logged_in.as_ref().map(|logged_in| &logged_in.device)
    }

    /// Handles one whole frame (markers included).
    pub fn on_frame(&mut self, frame: &[u8]) -> Step<Gt06Reply> {
        let frame = match parse_frame(frame, self.checksum_policy) {
            Ok(frame) => frame,
            Err(error) => {
                return Step::Refuse {
                    reason: error.reason(),
                    replies: Vec::new(),
                };
            }
        };
        let message = match decode_body(&frame) {
            Ok(message) => message,
            Err(error) => {
                return Step::Refuse {
                    reason: error.reason(),
                    replies: Vec::new(),
                };
            }
        };
        let ack = Gt06Reply::ack(&frame);
        if let Gt06Message::Login(login) = message {
            self.pending = Some(Pending::Login {
                ack,
                utc_offset_minutes: login.utc_offset_minutes.unwrap_or(0),
            });
            return Step::Resolve {
                device_id: login.imei,
            };
        }
        let Some(logged_in) = &self.logged_in else {
            return Step::Refuse {
                reason: "not_logged_in",
                replies: Vec::new(),
            };
        };
        match message {
            Gt06Message::Heartbeat => Step::Reply(vec![ack]),
            Gt06Message::Location(fix) => {
                let device = logged_in.device.clone();
                let positions =
                    vec![fix.to_position(&device.device_id, logged_in.utc_offset_minutes)];
                self.pending = Some(Pending::Submit { ack });
                Step::Submit {
                    device,
                    positions,
                    live: !fix.reupload,
                }
            }
            Gt06Message::NoFix => Step::Reply(vec![ack]),
            Gt06Message::Login(_) | Gt06Message::Other => Step::Reply(Vec::new()),
        }
    }

    /// The gateway's answer to the last [`Step::Resolve`].
    pub fn resolved(&mut self, answer: Result<Option<DeviceRef>, GatewayError>) -> Step<Gt06Reply> {
        let Some(Pending::Login {
            ack,
            utc_offset_minutes,
        }) = self.pending.take()
        else {
            return Step::Reply(Vec::new());
        };
        match answer {
            Ok(Some(device)) => {
                self.logged_in = Some(LoggedIn {
                    device,
                    utc_offset_minutes,
                });
                Step::Reply(vec![ack])
            }
            Ok(None) => Step::Close {
                reason: "unknown_device",
                replies: Vec::new(),
            },
            Err(_) => Step::Close {
                reason: "gateway_unavailable",
                replies: Vec::new(),
            },
        }
    }

    /// The gateway's answer to the last [`Step::Submit`].
    pub fn submitted(&mut self, answer: Result<SubmitOutcome, GatewayError>) -> Step<Gt06Reply> {
        let Some(Pending::Submit { ack }) = self.pending.take() else {
            return Step::Reply(Vec::new());
        };
        match answer {
            Ok(_) => Step::Reply(vec![ack]),
            // No ack: the device resends what it considers important.
            Err(GatewayError::Unavailable) => Step::Refuse {
                reason: "gateway_unavailable",
                replies: Vec::new(),
            },
            Err(GatewayError::Rejected(_)) => Step::Refuse {
                reason: "gateway_rejected",
                replies: Vec::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gt06::codec::CRC_X25;
    use domain::{DeviceProtocol, VehicleId};

    const LOGIN: &str = "78780d01086471700328358100093f040d0a";

    fn frame(protocol: u8, body: &[u8], serial: u16) -> Vec<u8> {
        let mut out = vec![0x78, 0x78, (body.len() + 5) as u8, protocol];
        out.extend_from_slice(body);
        out.extend_from_slice(&serial.to_be_bytes());
        let crc = CRC_X25.checksum(&out[2..]);
        out.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(&[0x0d, 0x0a]);
        out
    }

    fn location() -> Vec<u8> {
        // 2024-11-22 03:04:05, 9 satellites, 31.23 N 121.47 E, 60 km/h, course 90, positioned.
        let mut body = vec![24, 11, 22, 3, 4, 5, 0xc9];
        body.extend_from_slice(&((31.23 * 1_800_000.0) as u32).to_be_bytes());
        body.extend_from_slice(&((121.47 * 1_800_000.0) as u32).to_be_bytes());
        body.push(60);
        body.extend_from_slice(&(0x1400u16 | 90).to_be_bytes());
        frame(0x12, &body, 0x0042)
    }

    /// The vehicle the test tracker is mounted in.
    fn van() -> VehicleId {
        "0197a000-0000-7000-8000-000000000009"
            .parse()
            .expect("a vehicle id")
    }

    fn device() -> DeviceRef {
        DeviceRef {
            vehicle_id: van(),
            protocol: DeviceProtocol::Gt06,
            device_id: "864717003283581".into(),
        }
    }

    fn logged_in() -> Gt06Session {
        let mut session = Gt06Session::new(ChecksumPolicy::Verify);
        let login = hex::decode(LOGIN).expect("hex");
        assert!(matches!(session.on_frame(&login), Step::Resolve { .. }));
        assert_eq!(
            session.resolved(Ok(Some(device()))),
            Step::Reply(vec![Gt06Reply {
                extended: false,
                protocol: 1,
                serial: 9
            }])
        );
        session
    }

    #[test]
    fn a_known_imei_is_acknowledged() {
        assert!(logged_in().device().is_some());
    }

    #[test]
    fn an_unknown_imei_closes_the_connection_without_an_ack() {
        let mut session = Gt06Session::new(ChecksumPolicy::Verify);
        session.on_frame(&hex::decode(LOGIN).expect("hex"));
        assert_eq!(
            session.resolved(Ok(None)),
            Step::Close {
                reason: "unknown_device",
                replies: vec![]
            }
        );
    }

    #[test]
    fn a_location_before_login_is_ignored() {
        let mut session = Gt06Session::new(ChecksumPolicy::Verify);
        assert_eq!(
            session.on_frame(&location()),
            Step::Refuse {
                reason: "not_logged_in",
                replies: vec![]
            }
        );
    }

    #[test]
    fn a_location_after_login_is_submitted_live_and_acked_once_stored() {
        let mut session = logged_in();
        let Step::Submit {
            device,
            positions,
            live: true,
        } = session.on_frame(&location())
        else {
            panic!("no submit")
        };
        assert_eq!(device.vehicle_id, van());
        assert_eq!(positions[0].device_id, "864717003283581");
        assert_eq!(
            positions[0].fix.ts.to_rfc3339(),
            "2024-11-22T03:04:05+00:00"
        );
        let step = session.submitted(Ok(SubmitOutcome {
            accepted: 1,
            rejected: 0,
        }));
        assert_eq!(
            step,
            Step::Reply(vec![Gt06Reply {
                extended: false,
                protocol: 0x12,
                serial: 0x0042
            }])
        );
    }

    #[test]
    fn a_gateway_outage_withholds_the_ack() {
        let mut session = logged_in();
        session.on_frame(&location());
        assert!(
            matches!(session.submitted(Err(GatewayError::Unavailable)), Step::Refuse { replies, .. } if replies.is_empty())
        );
    }

    #[test]
    fn a_heartbeat_is_acknowledged() {
        let mut session = logged_in();
        let step = session.on_frame(&frame(0x13, &[0x40, 0x04, 0x04, 0x00, 0x02], 5));
        assert_eq!(
            step,
            Step::Reply(vec![Gt06Reply {
                extended: false,
                protocol: 0x13,
                serial: 5
            }])
        );
    }

    #[test]
    fn a_frame_with_a_bad_crc_is_refused_without_an_ack() {
        let mut session = logged_in();
        let mut raw = frame(0x13, &[0x40, 0x04, 0x04, 0x00, 0x02], 5);
        let at = raw.len() - 3;
        raw[at] ^= 0xff;
        assert_eq!(
            session.on_frame(&raw),
            Step::Refuse {
                reason: "checksum_mismatch",
                replies: vec![]
            }
        );
    }

    #[test]
    fn a_cell_tower_only_message_is_ignored_without_a_position() {
        let mut session = logged_in();
        assert_eq!(
            session.on_frame(&frame(0x28, &[0; 20], 5)),
            Step::Reply(vec![])
        );
    }

    #[test]
    fn a_wifi_type_carrying_a_gps_block_is_submitted_and_one_listing_towers_is_not() {
        let mut session = logged_in();
        let mut with_fix = location()[4..22].to_vec();
        with_fix.extend_from_slice(&[0x01, 0xcc, 0x00, 0x25, 0xef, 0x05, 0x40, 0xe8]);
        let Step::Submit { positions, .. } = session.on_frame(&frame(0xa2, &with_fix, 6)) else {
            panic!("no submit")
        };
        assert!((positions[0].fix.position.lat() - 31.23).abs() < 1e-5);
        let step = session.submitted(Ok(SubmitOutcome {
            accepted: 1,
            rejected: 0,
        }));
        assert!(matches!(step, Step::Reply(replies) if replies.len() == 1));
        // Date, then MCC 460 and towers: no fix, no position, no answer.
        let towers = [
            24, 11, 22, 3, 4, 5, 0x01, 0xcc, 0x00, 0x25, 0xef, 0x05, 0x40, 0xe8, 0x30,
        ];
        assert_eq!(
            session.on_frame(&frame(0xa2, &towers, 7)),
            Step::Reply(vec![])
        );
    }
}
