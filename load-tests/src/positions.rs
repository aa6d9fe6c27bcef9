//! Maximum-rate position ingest: how many fixes per second `POST /v1/provider/positions`
//! accepts. Bodies of 100 fixes are generated before the clock starts (positions along
//! simulated paths; only the timestamps are filled in at send time, so that each vehicle's
//! fixes are strictly newer than its last), then sent back to back over a fixed number of
//! keep-alive HTTP/1.1 connections. Each connection owns its vehicles, so their fixes
//! arrive in order.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::api::{Api, PositionReceipt};
use crate::console::Console;
use crate::fleet::names;
use crate::rng;
use crate::sim::{City, Truck};
use crate::stats::Recorder;
use crate::target::Target;

/// Length of a timestamp as written: `2026-11-22T08:00:00.000000Z`.
const TS_LEN: usize = 27;

/// Registrations in flight at once during setup.
const REGISTRATION_CONCURRENCY: usize = 16;

/// The ingest run.
#[derive(Debug, Clone)]
pub struct PositionsSpec {
    /// Vehicles.
    pub vehicles: usize,
    /// Providers owning them.
    pub providers: usize,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Fixes per request.
    pub batch_size: usize,
    /// How long to send.
    pub duration: Duration,
    /// Left out of the headline figures at the start.
    pub warmup: Duration,
    /// Where.
    pub city: City,
    /// The run's seed.
    pub seed: u64,
    /// A tag unique to the run.
    pub run_tag: String,
}

/// Rounds of positions generated per batch of vehicles (then repeated, newer times).
const ROUNDS: usize = 8;

/// One pre-generated body with holes for the timestamps.
#[derive(Debug, Clone)]
pub struct Template {
    bytes: Vec<u8>,
    ts_offsets: Vec<usize>,
}

impl Template {
    /// Builds the JSON body of `fixes`: `(vehicle id, lat, lon, speed km/h, heading)`.
    pub fn new(fixes: &[(String, f64, f64, f64, f64)]) -> Template {
        let mut bytes = Vec::with_capacity(fixes.len() * 130 + 16);
        let mut ts_offsets = Vec::with_capacity(fixes.len());
        bytes.extend_from_slice(br#"{"fixes":["#);
        for (index, (id, lat, lon, speed_kmh, heading)) in fixes.iter().enumerate() {
            if index > 0 {
                bytes.push(b',');
            }
            bytes.extend_from_slice(
                format!(r#"{{"vehicle_id":"{id}","lat":{lat:.6},"lon":{lon:.6},"ts":""#).as_bytes(),
            );
            ts_offsets.push(bytes.len());
            bytes.extend_from_slice(&[b'0'; TS_LEN]);
            bytes.extend_from_slice(
                format!(r#"","speed_kmh":{speed_kmh:.1},"heading":{heading:.0}}}"#).as_bytes(),
            );
        }
        bytes.extend_from_slice(b"]}");
        Template { bytes, ts_offsets }
    }

    /// The body with every fix dated `ts_micros` (µs since the epoch).
    pub fn render(&self, ts_micros: i64) -> Bytes {
        let ts = chrono::DateTime::from_timestamp_micros(ts_micros)
            .unwrap_or_default()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        debug_assert_eq!(ts.len(), TS_LEN);
        let mut body = BytesMut::from(self.bytes.as_slice());
        for offset in &self.ts_offsets {
            body[*offset..*offset + TS_LEN].copy_from_slice(ts.as_bytes());
        }
        body.freeze()
    }

    /// Fixes in the body.
    pub fn fixes(&self) -> usize {
        self.ts_offsets.len()
    }
}

/// The batches of one group of vehicles (one provider's, at most `batch_size`).
#[derive(Debug, Clone)]
struct Group {
    authorization: String,
    rounds: Vec<Template>,
}

/// What the ingest run found.
#[derive(Debug, Clone, Serialize)]
pub struct PositionsOutcome {
    /// Vehicles.
    pub vehicles: usize,
    /// Connections.
    pub connections: usize,
    /// Fixes per request.
    pub batch_size: usize,
    /// Seconds sent (including warm-up).
    pub duration_s: f64,
    /// Seconds left out at the start.
    pub warmup_s: f64,
    /// Fixes accepted per second after the warm-up.
    pub accepted_fixes_per_s: f64,
    /// Requests per second after the warm-up.
    pub requests_per_s: f64,
    /// Seconds setup took (providers, vehicle registration, bodies).
    pub setup_s: f64,
}

/// Strictly increasing timestamps, as close to the wall clock as that allows.
#[derive(Debug, Default)]
pub struct Dater {
    last_micros: i64,
}

impl Dater {
    /// The next timestamp (µs): now, or 1 µs after the previous one if the clock has not
    /// moved on.
    pub fn next(&mut self, now_micros: i64) -> i64 {
        self.last_micros = now_micros.max(self.last_micros + 1);
        self.last_micros
    }
}

/// Registers the vehicles, builds the bodies, then sends for `spec.duration`.
pub async fn run(
    api: &Api,
    admin_token: &str,
    spec: &PositionsSpec,
    recorder: &Arc<Recorder>,
    console: &Console,
    stop: &CancellationToken,
) -> anyhow::Result<PositionsOutcome> {
    anyhow::ensure!(
        spec.providers > 0 && spec.vehicles >= spec.providers,
        "at least one vehicle per provider"
    );
    anyhow::ensure!(
        (1..=1000).contains(&spec.batch_size),
        "the batch size is 1 to 1000 fixes"
    );
    anyhow::ensure!(spec.connections > 0, "at least one connection");
    let setup_started = Instant::now();
    let area = spec.city.service_area();
    let mut layout_rng = rng::stream(spec.seed, "positions-layout");
    let mut groups = Vec::new();
    let mut registrations = Vec::new();
    for index in 0..spec.providers {
        let name = format!("Load {} Ingest {index:03}", spec.run_tag);
        let created = api
            .create_provider(admin_token, &name, &area)
            .await
            .with_context(|| format!("creating provider {name} (is the admin token right?)"))?;
        let count =
            spec.vehicles / spec.providers + usize::from(index < spec.vehicles % spec.providers);
        let depot = spec.city.uniform_point(&mut layout_rng);
        let mut trucks: Vec<(String, Truck)> = (0..count)
            .map(|number| {
                let id = format!("I{index:03}-{number:05}");
                registrations.push((created.api_key.clone(), id.clone()));
                (id, Truck::new(&spec.city, depot, &mut layout_rng))
            })
            .collect();
        for chunk in trucks.chunks_mut(spec.batch_size) {
            let rounds = (0..ROUNDS)
                .map(|_| {
                    let fixes: Vec<_> = chunk
                        .iter_mut()
                        .map(|(id, truck)| {
                            let sample = truck.advance(1.0, &spec.city, &mut layout_rng);
                            (
                                id.clone(),
                                sample.position.lat,
                                sample.position.lon,
                                sample.speed_kmh,
                                sample.heading_deg,
                            )
                        })
                        .collect();
                    Template::new(&fixes)
                })
                .collect();
            groups.push(Group {
                authorization: format!("Bearer {}", created.api_key),
                rounds,
            });
        }
    }
    let bar = console.counter(registrations.len() as u64, "registering trucks");
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(registrations)
        .map(|(api_key, id)| {
            let bar = bar.clone();
            async move {
                let result = api
                    .put_vehicle(&api_key, &id, &["tow", "jump_start"], "", None)
                    .await
                    .with_context(|| format!("registering vehicle {id}"));
                bar.inc(1);
                result
            }
        })
        .buffer_unordered(REGISTRATION_CONCURRENCY)
        .collect()
        .await;
    bar.finish_and_clear();
    for result in results {
        result?;
    }
    let setup_s = setup_started.elapsed().as_secs_f64();
    let connections = spec.connections.min(groups.len());
    if connections < spec.connections {
        console.note(format!(
            "only {} batches of vehicles: using {connections} connections instead of {}",
            groups.len(),
            spec.connections
        ));
    }
    // Each connection owns its groups: their fixes then reach the server in order.
    let mut owned: Vec<Vec<Group>> = vec![Vec::new(); connections];
    for (index, group) in groups.into_iter().enumerate() {
        owned[index % connections].push(group);
    }
    console.note(format!(
        "{} vehicles registered in {setup_s:.1} s; sending {}-fix batches on {connections} connections for {} s",
        spec.vehicles,
        spec.batch_size,
        spec.duration.as_secs()
    ));

    let send_started = Instant::now();
    let deadline = send_started + spec.duration;
    let bar = console.timer(spec.duration, "positions");
    let ticker = {
        let (bar, recorder, stop) = (bar.clone(), recorder.clone(), stop.clone());
        tokio::spawn(async move {
            let mut last_accepted = recorder.total(names::FIXES_ACCEPTED);
            let mut interval = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = interval.tick() => {}
                }
                let accepted = recorder.total(names::FIXES_ACCEPTED);
                bar.set_position(send_started.elapsed().as_secs());
                bar.set_message(format!("{} fixes/s", accepted - last_accepted));
                last_accepted = accepted;
            }
        })
    };
    let workers: Vec<_> = owned
        .into_iter()
        .map(|groups| {
            tokio::spawn(send_loop(
                api.target().clone(),
                groups,
                deadline,
                recorder.clone(),
                stop.clone(),
            ))
        })
        .collect();
    for worker in workers {
        worker.await.context("a sender task failed")?;
    }
    ticker.abort();
    bar.finish_and_clear();

    let measured_s = (spec.duration.saturating_sub(spec.warmup))
        .as_secs_f64()
        .max(1e-9);
    let warmup_start_s =
        (send_started - recorder.started()).as_secs_f64() + spec.warmup.as_secs_f64();
    let window = (
        warmup_start_s.ceil() as usize,
        (warmup_start_s + measured_s).floor() as usize,
    );
    let snapshot = recorder.snapshot();
    let accepted = snapshot
        .counts
        .get(names::FIXES_ACCEPTED)
        .map_or(0, |track| track.between(window.0, window.1));
    let requests = snapshot
        .counts
        .get(names::POSITION_BATCHES)
        .map_or(0, |track| track.between(window.0, window.1));
    let window_s = (window.1.saturating_sub(window.0)).max(1) as f64;
    Ok(PositionsOutcome {
        vehicles: spec.vehicles,
        connections,
        batch_size: spec.batch_size,
        duration_s: spec.duration.as_secs_f64(),
        warmup_s: spec.warmup.as_secs_f64(),
        accepted_fixes_per_s: accepted as f64 / window_s,
        requests_per_s: requests as f64 / window_s,
        setup_s,
    })
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(target: &Target) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(target.address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes the connection.
        let _ = connection.await;
    });
    Ok(sender)
}

async fn send_loop(
    target: Target,
    groups: Vec<Group>,
    deadline: Instant,
    recorder: Arc<Recorder>,
    stop: CancellationToken,
) {
    let mut sender: Option<Sender> = None;
    let mut dater = Dater::default();
    let mut turn = 0usize;
    while Instant::now() < deadline && !stop.is_cancelled() {
        let group = &groups[turn % groups.len()];
        let template = &group.rounds[(turn / groups.len()) % group.rounds.len()];
        turn += 1;
        let now_micros = chrono::Utc::now().timestamp_micros();
        let body = template.render(dater.next(now_micros));
        let fixes = template.fixes() as u64;
        let mut connection = match sender.take() {
            Some(connection) if !connection.is_closed() => connection,
            _ => match connect(&target).await {
                Ok(connection) => connection,
                Err(error) => {
                    recorder.error(format!("positions: transport: connect ({error})"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let request = http::Request::post("/v1/provider/positions")
            .header(http::header::HOST, &target.host_header)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::AUTHORIZATION, &group.authorization)
            .body(Full::new(body))
            .expect("a valid request");
        recorder.count(names::FIXES_SENT, fixes);
        let started = Instant::now();
        let response = async {
            connection.ready().await?;
            let response = connection.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        }
        .await;
        match response {
            Ok((status, body)) if status.is_success() => {
                recorder.latency(names::POSITIONS_REQUEST, started.elapsed());
                recorder.count(names::POSITION_BATCHES, 1);
                match serde_json::from_slice::<PositionReceipt>(&body) {
                    Ok(receipt) => {
                        recorder.count(names::FIXES_ACCEPTED, receipt.accepted);
                        recorder.count(names::FIXES_REJECTED, receipt.rejected.len() as u64);
                        if let Some(first) = receipt.rejected.first() {
                            let reason = first
                                .error
                                .split('`')
                                .next()
                                .unwrap_or_default()
                                .trim()
                                .to_owned();
                            recorder.error(format!("fix rejected: {reason}"));
                        }
                    }
                    Err(_) => recorder.error("positions: unreadable answer"),
                }
                sender = Some(connection);
            }
            Ok((status, body)) => {
                let code = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|value| value["error"]["code"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                recorder.error(format!("positions: http {} {code}", status.as_u16()));
                sender = Some(connection);
            }
            Err(error) => {
                let kind = if error.is_closed() || error.is_incomplete_message() {
                    "closed"
                } else {
                    "request"
                };
                recorder.error(format!("positions: transport: {kind}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rendered_template_is_the_json_the_api_expects_with_every_timestamp_filled_in() {
        let template = Template::new(&[
            ("V1".to_owned(), 31.2, 121.4, 42.04, 90.0),
            ("V2".to_owned(), 31.3, 121.5, 0.0, 359.6),
        ]);
        let micros = 1_795_334_400_123_456; // 2026-11-22T08:00:00.123456Z
        let body: serde_json::Value = serde_json::from_slice(&template.render(micros)).unwrap();
        let fixes = body["fixes"].as_array().unwrap();
        assert_eq!(fixes.len(), 2);
        assert_eq!(fixes[0]["vehicle_id"], "V1");
        assert_eq!(fixes[0]["ts"], "2026-11-22T08:00:00.123456Z");
        assert_eq!(fixes[1]["ts"], "2026-11-22T08:00:00.123456Z");
        assert_eq!(fixes[0]["speed_kmh"], 42.0);
        assert_eq!(fixes[1]["lat"], 31.3);
        assert_eq!(template.fixes(), 2);
    }

    #[test]
    fn timestamps_are_strictly_increasing_even_when_the_clock_stands_still_or_goes_back() {
        let mut dater = Dater::default();
        assert_eq!(dater.next(1_000), 1_000);
        assert_eq!(dater.next(1_000), 1_001);
        assert_eq!(dater.next(900), 1_002);
        assert_eq!(dater.next(5_000), 5_000);
    }
}
