//! The JT/T 808 and GT06 listeners over real sockets on 127.0.0.1, against an in-test
//! gateway that records what it is given (a test double of the port; the end-to-end test
//! through the whole server lives with the server).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::{BufMut, Bytes, BytesMut};
use domain::{DeviceProtocol, VehicleId};
use futures::{SinkExt, StreamExt};
use provider_adapters::gt06::codec::{CRC_X25, Gt06Codec};
use provider_adapters::gt06::{Gt06Config, serve_gt06};
use provider_adapters::jt808::codec::{
    self as jt808, Jt808Codec, OutboundMessage, ProtocolVersion, STATUS_FIX_VALID, SplitItem,
    TerminalPhone,
};
use provider_adapters::jt808::{AuthSecret, Jt808Config, serve_jt808};
use provider_adapters::{DeviceGateway, DevicePosition, DeviceRef, GatewayError, SubmitOutcome};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::codec::Framed;

const KNOWN_PHONE: [u8; 6] = [0x01, 0x39, 0x12, 0x34, 0x56, 0x78];
const UNKNOWN_PHONE: [u8; 6] = [0x01, 0x39, 0x99, 0x99, 0x99, 0x99];
const KNOWN_IMEI: &str = "864717003283581";
const SECRET: &[u8] = b"test secret";
const PATIENCE: Duration = Duration::from_secs(5);

/// The vehicle the known JT/T 808 terminal is mounted in.
fn truck_1() -> VehicleId {
    "0197a000-0000-7000-8000-000000000001"
        .parse()
        .expect("a vehicle id")
}

/// The vehicle the known GT06 tracker is mounted in.
fn van_2() -> VehicleId {
    "0197a000-0000-7000-8000-000000000002"
        .parse()
        .expect("a vehicle id")
}

#[derive(Debug, Clone)]
struct Submission {
    device: DeviceRef,
    positions: Vec<DevicePosition>,
    live: bool,
}

/// Knows one JT/T 808 terminal and one GT06 device; records every submission.
#[derive(Default)]
struct RecordingGateway {
    submissions: Mutex<Vec<Submission>>,
}

impl RecordingGateway {
    fn submissions(&self) -> Vec<Submission> {
        self.submissions
            .lock()
            .map(|guard| guard.clone())
            .unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl DeviceGateway for RecordingGateway {
    async fn resolve_device(
        &self,
        protocol: DeviceProtocol,
        device_id: &str,
    ) -> Result<Option<DeviceRef>, GatewayError> {
        let known: HashMap<(DeviceProtocol, &str), VehicleId> = HashMap::from([
            ((DeviceProtocol::Jt808, "013912345678"), truck_1()),
            ((DeviceProtocol::Gt06, KNOWN_IMEI), van_2()),
        ]);
        Ok(known.get(&(protocol, device_id)).map(|vehicle| DeviceRef {
            vehicle_id: *vehicle,
            protocol,
            device_id: device_id.to_owned(),
        }))
    }

    async fn submit_positions(
        &self,
        device: &DeviceRef,
        positions: Vec<DevicePosition>,
        live: bool,
    ) -> Result<SubmitOutcome, GatewayError> {
        let accepted = positions.len();
        if let Ok(mut submissions) = self.submissions.lock() {
            submissions.push(Submission {
                device: device.clone(),
                positions,
                live,
            });
        }
        Ok(SubmitOutcome {
            accepted,
            rejected: 0,
        })
    }
}

struct Server {
    address: std::net::SocketAddr,
    gateway: Arc<RecordingGateway>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        timeout(PATIENCE, self.task)
            .await
            .context("listener did not shut down")??;
        Ok(())
    }
}

async fn spawn_jt808(idle_timeout: Duration) -> Result<Server> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let gateway = Arc::new(RecordingGateway::default());
    let mut config = Jt808Config::new(SECRET.to_vec());
    config.idle_timeout = idle_timeout;
    let (stop, stopped) = oneshot::channel::<()>();
    let port: Arc<dyn DeviceGateway> = gateway.clone();
    let task = tokio::spawn(serve_jt808(listener, port, config, async {
        let _ = stopped.await;
    }));
    Ok(Server {
        address,
        gateway,
        stop: Some(stop),
        task,
    })
}

async fn spawn_gt06() -> Result<Server> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let gateway = Arc::new(RecordingGateway::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let port: Arc<dyn DeviceGateway> = gateway.clone();
    let task = tokio::spawn(serve_gt06(listener, port, Gt06Config::default(), async {
        let _ = stopped.await;
    }));
    Ok(Server {
        address,
        gateway,
        stop: Some(stop),
        task,
    })
}

// ---------------------------------------------------------------------------------------
// A simulated JT/T 808 terminal
// ---------------------------------------------------------------------------------------

struct Terminal {
    framed: Framed<TcpStream, Jt808Codec>,
    phone: [u8; 6],
    serial: u16,
}

/// A reply as the terminal reads it.
#[derive(Debug)]
struct Reply {
    message_id: u16,
    body: Bytes,
}

impl Reply {
    /// (reply serial, reply id, result) of a 0x8001.
    fn general(&self) -> (u16, u16, u8) {
        assert_eq!(self.message_id, 0x8001, "not a general response: {self:?}");
        (
            u16::from_be_bytes([self.body[0], self.body[1]]),
            u16::from_be_bytes([self.body[2], self.body[3]]),
            self.body[4],
        )
    }
}

impl Terminal {
    async fn connect(server: &Server, phone: [u8; 6]) -> Result<Self> {
        let stream = TcpStream::connect(server.address).await?;
        Ok(Self {
            framed: Framed::new(stream, Jt808Codec::default()),
            phone,
            serial: 0,
        })
    }

    async fn send(&mut self, message_id: u16, body: &[u8]) -> Result<u16> {
        self.serial += 1;
        let message = OutboundMessage {
            message_id,
            version: ProtocolVersion::V2013,
            phone: TerminalPhone::from_bcd(&self.phone),
            serial: self.serial,
            body: Bytes::copy_from_slice(body),
        };
        self.framed.send(message).await?;
        Ok(self.serial)
    }

    async fn receive(&mut self) -> Result<Reply> {
        loop {
            let item = timeout(PATIENCE, self.framed.next())
                .await
                .context("no reply")?
                .context("connection closed")??;
            if let SplitItem::Frame(frame) = item {
                let parsed = jt808::parse_frame(&frame, provider_adapters::ChecksumPolicy::Verify)?;
                return Ok(Reply {
                    message_id: parsed.header.message_id,
                    body: parsed.body,
                });
            }
        }
    }

    async fn request(&mut self, message_id: u16, body: &[u8]) -> Result<Reply> {
        self.send(message_id, body).await?;
        self.receive().await
    }
}

fn register_body() -> Vec<u8> {
    provider_adapters::jt808::terminal::register_body().to_vec()
}

/// A 0x0200 body at `lat`, `lon` (micro-degrees, north-east), Beijing time `bcd_time`.
fn location_body(lat_micro: u32, lon_micro: u32, bcd_time: [u8; 6]) -> Vec<u8> {
    let mut body = BytesMut::new();
    body.put_u32(0);
    body.put_u32(STATUS_FIX_VALID);
    body.put_u32(lat_micro);
    body.put_u32(lon_micro);
    body.put_i16(4);
    body.put_u16(455);
    body.put_u16(270);
    body.put_slice(&bcd_time);
    body.put_slice(&[0x31, 0x01, 0x0b]);
    body.to_vec()
}

fn blind_area_batch(items: &[Vec<u8>]) -> Vec<u8> {
    let mut body = BytesMut::new();
    body.put_u16(items.len() as u16);
    body.put_u8(1);
    for item in items {
        body.put_u16(item.len() as u16);
        body.put_slice(item);
    }
    body.to_vec()
}

async fn wait_for_submissions(gateway: &RecordingGateway, count: usize) -> Result<Vec<Submission>> {
    timeout(PATIENCE, async {
        loop {
            let submissions = gateway.submissions();
            if submissions.len() >= count {
                return submissions;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .context("submissions never arrived")
}

#[tokio::test]
async fn a_terminal_registers_authenticates_reports_and_uploads_a_blind_area_batch() -> Result<()> {
    let server = spawn_jt808(Duration::from_secs(60)).await?;

    // Register on a first connection and keep the auth code.
    let mut terminal = Terminal::connect(&server, KNOWN_PHONE).await?;
    let register_serial = terminal.send(0x0100, &register_body()).await?;
    let reply = terminal.receive().await?;
    assert_eq!(reply.message_id, 0x8100);
    assert_eq!(
        &reply.body[..3],
        &[(register_serial >> 8) as u8, register_serial as u8, 0]
    );
    let auth_code = String::from_utf8(reply.body[3..].to_vec())?;
    assert_eq!(
        auth_code,
        AuthSecret::new(SECRET.to_vec()).auth_code("013912345678")
    );
    drop(terminal);

    // Reconnect, authenticate with the code, report, upload a blind-area batch.
    let mut terminal = Terminal::connect(&server, KNOWN_PHONE).await?;
    let reply = terminal.request(0x0102, auth_code.as_bytes()).await?;
    assert_eq!((reply.general().1, reply.general().2), (0x0102, 0));

    let reply = terminal
        .request(
            0x0200,
            &location_body(
                31_230_400,
                121_473_700,
                [0x26, 0x11, 0x22, 0x11, 0x04, 0x05],
            ),
        )
        .await?;
    assert_eq!((reply.general().1, reply.general().2), (0x0200, 0));

    let batch = blind_area_batch(&[
        location_body(
            31_200_000,
            121_400_000,
            [0x26, 0x11, 0x22, 0x10, 0x00, 0x00],
        ),
        location_body(
            31_210_000,
            121_410_000,
            [0x26, 0x11, 0x22, 0x10, 0x01, 0x00],
        ),
    ]);
    let reply = terminal.request(0x0704, &batch).await?;
    assert_eq!((reply.general().1, reply.general().2), (0x0704, 0));

    let submissions = wait_for_submissions(&server.gateway, 2).await?;
    let live = &submissions[0];
    assert!(live.live);
    assert_eq!(live.device.vehicle_id, truck_1());
    assert_eq!(live.positions.len(), 1);
    let position = &live.positions[0];
    assert!(
        (position.fix.position.lat() - 31.2304).abs() < 1e-9
            && (position.fix.position.lon() - 121.4737).abs() < 1e-9
    );
    assert_eq!(position.fix.ts.to_rfc3339(), "2026-11-22T03:04:05+00:00");
    assert_eq!(
        (
            position.fix.speed_kmh,
            position.fix.heading,
            position.satellites
        ),
        (Some(45.5), Some(270.0), Some(11))
    );
    let blind = &submissions[1];
    assert!(!blind.live);
    assert_eq!(blind.positions.len(), 2);
    assert_eq!(
        blind.positions[0].fix.ts.to_rfc3339(),
        "2026-11-22T02:00:00+00:00"
    );

    server.stop().await
}

#[tokio::test]
async fn an_unknown_terminal_gets_result_4_and_its_positions_are_refused() -> Result<()> {
    let server = spawn_jt808(Duration::from_secs(60)).await?;
    let mut terminal = Terminal::connect(&server, UNKNOWN_PHONE).await?;
    let reply = terminal.request(0x0100, &register_body()).await?;
    assert_eq!(reply.message_id, 0x8100);
    assert_eq!(reply.body[2], 4, "terminal not in database");
    let reply = terminal
        .request(0x0200, &location_body(1, 1, [0x26, 1, 1, 0, 0, 0]))
        .await?;
    assert_eq!((reply.general().1, reply.general().2), (0x0200, 1));
    assert!(server.gateway.submissions().is_empty());
    server.stop().await
}

#[tokio::test]
async fn garbage_and_an_oversize_frame_do_not_disturb_another_connection() -> Result<()> {
    let server = spawn_jt808(Duration::from_secs(60)).await?;
    let mut good = Terminal::connect(&server, KNOWN_PHONE).await?;
    assert_eq!(
        good.request(0x0100, &register_body()).await?.message_id,
        0x8100
    );

    let mut bad = TcpStream::connect(server.address).await?;
    bad.write_all(b"GET / HTTP/1.1\r\n\r\n\x00\xff\x7d\x7d")
        .await?;
    let mut oversize = vec![0x7e];
    oversize.extend(std::iter::repeat_n(0x42, 3 * jt808::MAX_ESCAPED_FRAME_LEN));
    bad.write_all(&oversize).await?;
    bad.write_all(&[0x7e, 0x7e, 0x7d, 0x03, 0x7e]).await?;

    let reply = good
        .request(
            0x0200,
            &location_body(
                31_230_400,
                121_473_700,
                [0x26, 0x11, 0x22, 0x11, 0x04, 0x05],
            ),
        )
        .await?;
    assert_eq!((reply.general().1, reply.general().2), (0x0200, 0));

    // The bad connection itself is still served once it sends a real frame.
    let mut bad = Terminal {
        framed: Framed::new(bad, Jt808Codec::default()),
        phone: UNKNOWN_PHONE,
        serial: 0,
    };
    let reply = bad.request(0x0002, &[]).await?;
    assert_eq!((reply.general().1, reply.general().2), (0x0002, 0));
    server.stop().await
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout_while_an_active_one_stays()
-> Result<()> {
    let idle_timeout = Duration::from_millis(300);
    let server = spawn_jt808(idle_timeout).await?;
    let started = tokio::time::Instant::now();
    let mut idle = TcpStream::connect(server.address).await?;
    let mut active = Terminal::connect(&server, KNOWN_PHONE).await?;
    // Garbage is not activity.
    idle.write_all(b"xxxx").await?;

    let mut byte = [0u8; 1];
    let read = timeout(PATIENCE, async {
        loop {
            // Heartbeats keep the active connection open past the idle timeout.
            let _ = active.request(0x0002, &[]).await;
            tokio::select! {
                read = idle.read(&mut byte) => return read,
                () = tokio::time::sleep(idle_timeout / 3) => {}
            }
        }
    })
    .await
    .context("idle connection was never closed")?;
    assert_eq!(read?, 0, "the server closes the idle connection");
    assert!(started.elapsed() >= idle_timeout);
    let reply = active.request(0x0002, &[]).await?;
    assert_eq!(reply.general().2, 0);
    server.stop().await
}

#[tokio::test]
async fn shutdown_closes_open_connections_and_returns() -> Result<()> {
    let server = spawn_jt808(Duration::from_secs(60)).await?;
    let mut terminal = Terminal::connect(&server, KNOWN_PHONE).await?;
    assert_eq!(terminal.request(0x0002, &[]).await?.general().2, 0);
    server.stop().await?;
    match timeout(PATIENCE, terminal.framed.next()).await? {
        None | Some(Err(_)) => Ok(()),
        Some(Ok(item)) => bail!("unexpected item after shutdown: {item:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// A simulated GT06 device
// ---------------------------------------------------------------------------------------

fn gt06_frame(protocol: u8, body: &[u8], serial: u16) -> Vec<u8> {
    let mut out = vec![0x78, 0x78, (body.len() + 5) as u8, protocol];
    out.extend_from_slice(body);
    out.extend_from_slice(&serial.to_be_bytes());
    let crc = CRC_X25.checksum(&out[2..]);
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&[0x0d, 0x0a]);
    out
}

fn gt06_login(imei: &str, serial: u16) -> Result<Vec<u8>> {
    Ok(gt06_frame(0x01, &hex::decode(format!("0{imei}"))?, serial))
}

fn gt06_location(serial: u16) -> Vec<u8> {
    // 2024-11-22 03:04:05 UTC, 9 satellites, 31.23 N 121.47 E, 60 km/h, course 90, positioned.
    let mut body = vec![24, 11, 22, 3, 4, 5, 0xc9];
    body.extend_from_slice(&((31.23 * 1_800_000.0) as u32).to_be_bytes());
    body.extend_from_slice(&((121.47 * 1_800_000.0) as u32).to_be_bytes());
    body.push(60);
    body.extend_from_slice(&(0x1400u16 | 90).to_be_bytes());
    gt06_frame(0x12, &body, serial)
}

async fn gt06_ack(stream: &mut TcpStream) -> Result<Vec<u8>> {
    let mut ack = vec![0u8; 10];
    timeout(PATIENCE, stream.read_exact(&mut ack))
        .await
        .context("no ack")??;
    Ok(ack)
}

#[tokio::test]
async fn a_gt06_device_logs_in_reports_and_heartbeats() -> Result<()> {
    let server = spawn_gt06().await?;
    let mut device = TcpStream::connect(server.address).await?;

    // A location before login is ignored: no ack, nothing submitted.
    device.write_all(&gt06_location(1)).await?;
    device.write_all(&gt06_login(KNOWN_IMEI, 2)?).await?;
    let ack = gt06_ack(&mut device).await?;
    assert_eq!(
        &ack[..6],
        &[0x78, 0x78, 0x05, 0x01, 0x00, 0x02],
        "login ack echoes its serial"
    );

    device.write_all(&gt06_location(3)).await?;
    let ack = gt06_ack(&mut device).await?;
    assert_eq!(&ack[3..6], &[0x12, 0x00, 0x03]);
    let submissions = wait_for_submissions(&server.gateway, 1).await?;
    assert_eq!(
        submissions.len(),
        1,
        "the location before login was not submitted"
    );
    assert_eq!(submissions[0].device.vehicle_id, van_2());
    let position = &submissions[0].positions[0];
    assert!(
        (position.fix.position.lat() - 31.23).abs() < 1e-5
            && (position.fix.position.lon() - 121.47).abs() < 1e-5
    );
    assert_eq!(position.fix.speed_kmh, Some(60.0));

    device
        .write_all(&gt06_frame(0x13, &[0x40, 0x04, 0x04, 0x00, 0x02], 4))
        .await?;
    let ack = gt06_ack(&mut device).await?;
    assert_eq!(&ack[3..6], &[0x13, 0x00, 0x04]);

    // Parsing our own ack proves its CRC.
    let mut codec = Framed::new(device, Gt06Codec::default());
    codec
        .get_mut()
        .write_all(&gt06_frame(0x13, &[0x40, 0x04, 0x04, 0x00, 0x02], 5))
        .await?;
    let Some(Ok(provider_adapters::gt06::codec::SplitItem::Frame(frame))) =
        timeout(PATIENCE, codec.next()).await?
    else {
        bail!("no ack frame");
    };
    provider_adapters::gt06::codec::parse_frame(&frame, provider_adapters::ChecksumPolicy::Verify)?;
    server.stop().await
}

#[tokio::test]
async fn an_unknown_gt06_device_is_disconnected_without_an_ack() -> Result<()> {
    let server = spawn_gt06().await?;
    let mut device = TcpStream::connect(server.address).await?;
    device.write_all(&gt06_login("123456789012345", 1)?).await?;
    let mut buffer = [0u8; 16];
    let read = timeout(PATIENCE, device.read(&mut buffer))
        .await
        .context("connection left open")?;
    assert_eq!(read?, 0, "closed without an ack");
    server.stop().await
}
