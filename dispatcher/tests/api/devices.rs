//! GPS devices talking to the real server over real sockets: a JT/T 808 terminal, a GT06
//! tracker and the OsmAnd protocol of the Traccar Client apps. The vehicle's last fix in
//! the provider API must match what the device sent.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, Datelike, Timelike, Utc};
use futures::{SinkExt, StreamExt};
use provider_adapters::gt06::codec::CRC_X25;
use provider_adapters::jt808::codec::{
    self as jt808, Jt808Codec, OutboundMessage, ProtocolVersion, SplitItem, TerminalPhone,
};
use provider_adapters::jt808::terminal;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use crate::api_test;
use crate::helpers::*;

const PHONE: [u8; 6] = [0x01, 0x39, 0x12, 0x34, 0x56, 0x78];
const IMEI: &str = "864717003283581";

async fn register_tracked_vehicle(app: &TestApp) -> String {
    let (_, provider) = app.create_provider("Device Towing").await;
    let reply = app
        .request(
            Method::PUT,
            "/v1/provider/vehicles/T7",
            Some(&provider),
            Some(&json!({
                "capabilities": ["tow"], "state": "available",
                "devices": [
                    {"protocol": "jt808", "id": "013912345678"},
                    {"protocol": "gt06", "id": IMEI},
                    {"protocol": "osmand", "id": "truck-7"}
                ]
            })),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    provider
}

async fn last_fix(app: &TestApp, provider: &str) -> serde_json::Value {
    app.get("/v1/provider/vehicles/T7", Some(provider))
        .await
        .body["last_fix"]
        .clone()
}

async fn wait_for_fix(app: &TestApp, provider: &str, lat: f64) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let fix = last_fix(app, provider).await;
        if fix["lat"]
            .as_f64()
            .is_some_and(|got| (got - lat).abs() < 1e-6)
        {
            return fix;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "last fix never became lat {lat}: {fix}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A 0x0200 body of a valid fix, as the simulated terminal writes it (45.5 km/h, 270°).
fn location_body(lat_micro: u32, lon_micro: u32, at: DateTime<Utc>) -> Vec<u8> {
    terminal::location_body(
        f64::from(lat_micro) / 1e6,
        f64::from(lon_micro) / 1e6,
        45.5,
        270.0,
        at,
    )
    .to_vec()
}

struct Terminal {
    framed: Framed<TcpStream, Jt808Codec>,
    serial: u16,
}

impl Terminal {
    async fn connect(address: std::net::SocketAddr) -> Terminal {
        let stream = TcpStream::connect(address).await.unwrap();
        Terminal {
            framed: Framed::new(stream, Jt808Codec::default()),
            serial: 0,
        }
    }

    /// Sends a message and returns the platform's reply: (message id, body).
    async fn request(&mut self, message_id: u16, body: &[u8]) -> (u16, Bytes) {
        self.serial += 1;
        let message = OutboundMessage {
            message_id,
            version: ProtocolVersion::V2013,
            phone: TerminalPhone::from_bcd(&PHONE),
            serial: self.serial,
            body: Bytes::copy_from_slice(body),
        };
        self.framed.send(message).await.unwrap();
        loop {
            let item = tokio::time::timeout(Duration::from_secs(5), self.framed.next())
                .await
                .expect("a reply")
                .expect("connection open")
                .unwrap();
            if let SplitItem::Frame(frame) = item {
                let parsed =
                    jt808::parse_frame(&frame, provider_adapters::ChecksumPolicy::Verify).unwrap();
                return (parsed.header.message_id, parsed.body);
            }
        }
    }
}

fn register_body() -> Vec<u8> {
    terminal::register_body().to_vec()
}

api_test!(
    a_jt808_terminal_registers_authenticates_and_reports,
    |app| async move {
        let provider = register_tracked_vehicle(&app).await;
        let address = app.jt808.expect("JT/T 808 listener on");
        let mut terminal = Terminal::connect(address).await;
        let (id, body) = terminal.request(0x0100, &register_body()).await;
        assert_eq!((id, body[2]), (0x8100, 0), "registration accepted");
        let auth_code = String::from_utf8(body[3..].to_vec()).unwrap();

        let mut terminal = Terminal::connect(address).await;
        let (id, body) = terminal.request(0x0102, auth_code.as_bytes()).await;
        assert_eq!((id, body[4]), (0x8001, 0), "authenticated");

        let now = Utc::now().with_nanosecond(0).unwrap();
        let (id, body) = terminal
            .request(0x0200, &location_body(31_230_400, 121_473_700, now))
            .await;
        assert_eq!((id, body[4]), (0x8001, 0), "location acknowledged");
        let fix = wait_for_fix(&app, &provider, 31.2304).await;
        assert_eq!(fix["lon"].as_f64(), Some(121.4737));
        assert_eq!(fix["speed_kmh"].as_f64(), Some(45.5));
        assert_eq!(fix["source"], "jt808");
        assert_eq!(
            fix["ts"]
                .as_str()
                .map(|ts| ts.parse::<DateTime<Utc>>().unwrap()),
            Some(now)
        );

        // A blind-area batch of older fixes is taken but does not move the live position back.
        let mut batch = BytesMut::new();
        batch.put_u16(2);
        batch.put_u8(1);
        for (lat, minutes) in [(31_200_000u32, 30), (31_210_000, 20)] {
            let item = location_body(lat, 121_400_000, now - chrono::Duration::minutes(minutes));
            batch.put_u16(item.len() as u16);
            batch.put_slice(&item);
        }
        let (id, body) = terminal.request(0x0704, &batch).await;
        assert_eq!((id, body[4]), (0x8001, 0), "batch acknowledged");
        // The batch was taken before the acknowledgement; the position flush runs here,
        // so storage has whatever the batch left as the live position.
        app.state.registry.flush().await.unwrap();
        assert_eq!(
            last_fix(&app, &provider).await["lat"].as_f64(),
            Some(31.2304)
        );
        let vehicle_id: domain::VehicleId = app
            .get("/v1/provider/vehicles/T7", Some(&provider))
            .await
            .body["id"]
            .as_str()
            .expect("the vehicle's id")
            .parse()
            .unwrap();
        let stored = app
            .db
            .store
            .get_vehicle(vehicle_id)
            .await
            .unwrap()
            .expect("the vehicle is stored")
            .last_fix
            .expect("its live fix is stored");
        assert_eq!(stored.position.lat(), 31.2304);

        // An unknown terminal gets result 4, "terminal not in database".
        let mut stranger = Terminal::connect(address).await;
        stranger.framed.get_mut();
        let message = OutboundMessage {
            message_id: 0x0100,
            version: ProtocolVersion::V2013,
            phone: TerminalPhone::from_bcd(&[0x01, 0x39, 0x99, 0x99, 0x99, 0x99]),
            serial: 1,
            body: Bytes::from(register_body()),
        };
        stranger.framed.send(message).await.unwrap();
        let reply = loop {
            match stranger.framed.next().await.unwrap().unwrap() {
                SplitItem::Frame(frame) => {
                    break jt808::parse_frame(&frame, provider_adapters::ChecksumPolicy::Verify)
                        .unwrap();
                }
                SplitItem::Skipped { .. } => continue,
            }
        };
        assert_eq!((reply.header.message_id, reply.body[2]), (0x8100, 4));
        app
    }
);

fn gt06_frame(protocol: u8, body: &[u8], serial: u16) -> Vec<u8> {
    let mut out = vec![0x78, 0x78, (body.len() + 5) as u8, protocol];
    out.extend_from_slice(body);
    out.extend_from_slice(&serial.to_be_bytes());
    let crc = CRC_X25.checksum(&out[2..]);
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(&[0x0d, 0x0a]);
    out
}

api_test!(a_gt06_tracker_logs_in_and_reports, |app| async move {
    let provider = register_tracked_vehicle(&app).await;
    let mut stream = TcpStream::connect(app.gt06.expect("GT06 listener on"))
        .await
        .unwrap();
    stream
        .write_all(&gt06_frame(
            0x01,
            &hex::decode(format!("0{IMEI}")).unwrap(),
            1,
        ))
        .await
        .unwrap();
    let mut ack = [0u8; 10];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut ack))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ack[3], 0x01, "login acknowledged");

    let now = Utc::now().with_nanosecond(0).unwrap();
    let mut body = vec![
        (now.year() % 100) as u8,
        now.month() as u8,
        now.day() as u8,
        now.hour() as u8,
        now.minute() as u8,
        now.second() as u8,
        0xc9,
    ];
    body.extend_from_slice(&((31.2404 * 1_800_000.0_f64).round() as u32).to_be_bytes());
    body.extend_from_slice(&((121.4837 * 1_800_000.0_f64).round() as u32).to_be_bytes());
    body.push(60);
    body.extend_from_slice(&(0x1400u16 | 90).to_be_bytes());
    stream.write_all(&gt06_frame(0x12, &body, 2)).await.unwrap();
    let fix = wait_for_fix(&app, &provider, 31.2404).await;
    assert!((fix["lon"].as_f64().unwrap() - 121.4837).abs() < 1e-6);
    assert_eq!(
        (fix["speed_kmh"].as_f64(), fix["heading"].as_f64()),
        (Some(60.0), Some(90.0))
    );
    assert_eq!(fix["source"], "gt06");
    app
});

api_test!(
    the_osmand_protocol_takes_the_query_and_the_json_forms,
    |app| async move {
        let provider = register_tracked_vehicle(&app).await;
        let now = Utc::now().timestamp();
        // Query form: speed in knots.
        let url = app.url(&format!("/osmand?id=truck-7&lat=31.2504&lon=121.4937&timestamp={now}&speed=10&bearing=45&accuracy=5"));
        let reply = app.client.get(&url).send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
        let fix = wait_for_fix(&app, &provider, 31.2504).await;
        assert!(
            (fix["speed_kmh"].as_f64().unwrap() - 18.52).abs() < 0.01,
            "{fix}"
        );
        assert_eq!(fix["source"], "osmand");

        // JSON form of the newer apps: speed in m/s.
        let body = json!({
            "device_id": "truck-7",
            "location": {
                "timestamp": (Utc::now() + chrono::Duration::seconds(1)).to_rfc3339(),
                "coords": {"latitude": 31.2604, "longitude": 121.5037, "speed": 10.0, "heading": 90.0, "accuracy": 4.0},
                "is_moving": true
            }
        });
        let reply = app
            .client
            .post(app.url("/osmand"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
        let fix = wait_for_fix(&app, &provider, 31.2604).await;
        assert!(
            (fix["speed_kmh"].as_f64().unwrap() - 36.0).abs() < 0.01,
            "{fix}"
        );

        // Unknown device, malformed report.
        let unknown = app
            .client
            .get(app.url("/osmand?id=nobody&lat=31.2&lon=121.4"))
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        let malformed = app
            .client
            .get(app.url("/osmand?id=truck-7&lat=north&lon=121.4"))
            .send()
            .await
            .unwrap();
        assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
        app
    }
);

api_test!(
    the_osmand_protocol_takes_a_form_post_on_the_main_and_on_its_own_port,
    |app| async move {
        let provider = register_tracked_vehicle(&app).await;
        // Form-encoded POST, as the Traccar Client apps send it: speed in knots.
        let now = Utc::now().timestamp();
        let form = format!(
            "id=truck-7&lat=31.2514&lon=121.4947&timestamp={now}&speed=10&bearing=45&accuracy=5"
        );
        let reply = app
            .client
            .post(app.url("/osmand"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
        let fix = wait_for_fix(&app, &provider, 31.2514).await;
        assert!(
            (fix["lon"].as_f64().unwrap() - 121.4947).abs() < 1e-6,
            "{fix}"
        );
        assert!(
            (fix["speed_kmh"].as_f64().unwrap() - 18.52).abs() < 0.01,
            "{fix}"
        );
        assert_eq!(fix["heading"], 45.0);
        assert_eq!(fix["source"], "osmand");

        // The separate port (RESCUE_OSMAND_ADDR) takes the same forms at `/` and `/osmand`,
        // and serves nothing else.
        let port = format!("http://{}", app.osmand.expect("the OsmAnd port is on"));
        let form = format!("id=truck-7&lat=31.2524&lon=121.4957&timestamp={}", now + 1);
        let reply = app
            .client
            .post(format!("{port}/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
        wait_for_fix(&app, &provider, 31.2524).await;
        let reply = app
            .client
            .get(format!(
                "{port}/osmand?id=truck-7&lat=31.2534&lon=121.4967&timestamp={}",
                now + 2
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::OK);
        let fix = wait_for_fix(&app, &provider, 31.2534).await;
        assert_eq!(fix["source"], "osmand");
        let unknown = app
            .client
            .post(format!("{port}/"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("id=nobody&lat=31.2&lon=121.4")
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        let api = app
            .client
            .get(format!("{port}/v1/provider/vehicles/T7"))
            .bearer_auth(&provider)
            .send()
            .await
            .unwrap();
        assert_eq!(
            api.status(),
            StatusCode::NOT_FOUND,
            "the API is not on this port"
        );
        app
    }
);

/// A terminal back from a dead zone sends what it stored as one 0x0704 batch: those fixes
/// belong to the job's path even though they are older than the live position, which
/// they must not move back.
async fn a_jt808_blind_area_batch_enters_the_trajectory_of_the_job(
    backend: storage::testing::Backend,
) {
    storage::testing::run_on(backend, |db| async move {
        let start = Utc::now().with_nanosecond(0).unwrap();
        let clock = std::sync::Arc::new(domain::ManualClock::new(start));
        let app = spawn_app_with(db, |_| {}, clock.clone()).await;
        let (_, agent) = app.create_user("ann", "agent").await;
        let provider = register_tracked_vehicle(&app).await;
        let address = app.jt808.expect("JT/T 808 listener on");
        let mut terminal = Terminal::connect(address).await;
        let (_, body) = terminal.request(0x0100, &register_body()).await;
        let auth_code = String::from_utf8(body[3..].to_vec()).unwrap();
        let mut terminal = Terminal::connect(address).await;
        let (id, body) = terminal.request(0x0102, auth_code.as_bytes()).await;
        assert_eq!((id, body[4]), (0x8001, 0), "authenticated");
        // 3 km north of the customer, then assigned to the case.
        let (id, _) = terminal
            .request(0x0200, &location_body(31_257_400, 121_473_700, start))
            .await;
        assert_eq!(id, 0x8001);
        wait_for_fix(&app, &provider, 31.2574).await;
        let mut body = case_body();
        body["service"] = json!("tow");
        let case_id = app.create_case(&body).await["case"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let offer_id = app.wait_for_offer(&provider, &case_id).await;
        let accepted = app
            .post(
                &format!("/v1/provider/offers/{offer_id}/accept"),
                Some(&provider),
                &json!({}),
            )
            .await;
        assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text);
        // Wait until the tracker has picked the job up.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while app
            .state
            .tracking
            .snapshot(case_id.parse().unwrap())
            .is_none()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "tracking never started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // Ten minutes on: the live report, then the batch of what the dead zone held.
        clock.advance(chrono::Duration::minutes(10));
        let live_at = start + chrono::Duration::minutes(10);
        let (id, body) = terminal
            .request(0x0200, &location_body(31_240_400, 121_473_700, live_at))
            .await;
        assert_eq!((id, body[4]), (0x8001, 0), "location acknowledged");
        wait_for_fix(&app, &provider, 31.2404).await;
        let mut batch = BytesMut::new();
        batch.put_u16(2);
        batch.put_u8(1);
        for (lat, minutes) in [(31_252_400u32, 4), (31_246_400, 7)] {
            let item = location_body(lat, 121_473_700, start + chrono::Duration::minutes(minutes));
            batch.put_u16(item.len() as u16);
            batch.put_slice(&item);
        }
        let (id, body) = terminal.request(0x0704, &batch).await;
        assert_eq!((id, body[4]), (0x8001, 0), "batch acknowledged");

        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let latitudes = loop {
            let path = app
                .get(&format!("/v1/cases/{case_id}/trajectory"), Some(&agent))
                .await;
            assert_eq!(path.status, StatusCode::OK, "{}", path.text);
            let latitudes: Vec<f64> = path.body["features"][0]["geometry"]["coordinates"]
                .as_array()
                .map(|coordinates| coordinates.iter().filter_map(|c| c[1].as_f64()).collect())
                .unwrap_or_default();
            let has = |lat: f64| latitudes.iter().any(|got| (got - lat).abs() < 1e-6);
            if has(31.2524) && has(31.2464) && has(31.2404) {
                break latitudes;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the batch is not in the trajectory: {}",
                path.text
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // In time order: the batch's fixes come before the live one.
        let position = |lat: f64| latitudes.iter().position(|got| (got - lat).abs() < 1e-6);
        assert!(
            position(31.2524) < position(31.2464) && position(31.2464) < position(31.2404),
            "{latitudes:?}"
        );
        // The live position stayed where the live report put it.
        let fix = last_fix(&app, &provider).await;
        assert_eq!(fix["lat"].as_f64(), Some(31.2404), "{fix}");
        assert_eq!(
            fix["ts"]
                .as_str()
                .map(|ts| ts.parse::<DateTime<Utc>>().unwrap()),
            Some(live_at)
        );
        app.stop().await;
    })
    .await;
}

storage::backend_test!(a_jt808_blind_area_batch_enters_the_trajectory_of_the_job);
