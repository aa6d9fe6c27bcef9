//! The simulated fleet: tow companies created through the admin API, their trucks
//! registered through the provider API and driving around the city, reporting positions
//! in batches; dispatchers at each company polling for offers and answering like people
//! do (after a few seconds, sometimes no, sometimes not at all), and accepted jobs driven
//! through `en_route → on_scene → completed`.
//!
//! A share of the trucks (`jt808_share`) report as JT/T 808 terminals instead: one TCP
//! connection each to the server's JT/T 808 port, registered (0x0100) at setup, then one
//! location report (0x0200) per interval, each waiting for its 0x8001 answer.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Timelike, Utc};
use futures::StreamExt;
use provider_adapters::jt808::terminal::{self as jt808, Terminal};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agents::FixLog;
use crate::api::{Api, ProviderOffer};
use crate::console::Console;
use crate::rng::{self, SimRng, log_normal_clamped, weighted_index};
use crate::sim::{City, Point, Truck};
use crate::stats::Recorder;

/// Fixes per `POST /v1/provider/positions`.
pub const BATCH_SIZE: usize = 100;

/// Registrations in flight at once during setup.
const REGISTRATION_CONCURRENCY: usize = 16;

/// JT/T 808 connections opened at once during setup.
const CONNECT_CONCURRENCY: usize = 64;

/// How long a terminal waits for the platform's answer.
const JT808_TIMEOUT: Duration = Duration::from_secs(10);

/// Location reports a terminal may have waiting before the next one is dropped.
const TERMINAL_QUEUE: usize = 2;

/// Metric and count names.
pub mod names {
    /// Latency of `POST /v1/provider/positions`.
    pub const POSITIONS_REQUEST: &str = "positions_request";
    /// Latency of a JT/T 808 location report (0x0200 sent → 0x8001 read).
    pub const JT808_REPORT: &str = "jt808_report";
    /// JT/T 808 location reports answered with success.
    pub const JT808_ACKED: &str = "jt808_reports_acked";
    /// JT/T 808 location reports not sent because the terminal was still waiting for the
    /// answers to earlier ones (the offered rate is above the answered rate).
    pub const JT808_DROPPED: &str = "jt808_reports_dropped";
    /// JT/T 808 terminals connected and registered.
    pub const JT808_TERMINALS: &str = "jt808_terminals";
    /// Position batches answered with 200.
    pub const POSITION_BATCHES: &str = "position_batches";
    /// Fixes sent.
    pub const FIXES_SENT: &str = "fixes_sent";
    /// Fixes the server accepted.
    pub const FIXES_ACCEPTED: &str = "fixes_accepted";
    /// Fixes the server refused.
    pub const FIXES_REJECTED: &str = "fixes_rejected";
    /// Offers seen by the providers.
    pub const OFFERS_SEEN: &str = "offers_seen";
    /// Offers accepted (200).
    pub const OFFERS_ACCEPTED: &str = "offers_accepted";
    /// Offers declined.
    pub const OFFERS_DECLINED: &str = "offers_declined";
    /// Offers left unanswered on purpose.
    pub const OFFERS_IGNORED: &str = "offers_ignored";
    /// Answers refused because the offer had expired or was withdrawn meanwhile (409).
    pub const ANSWERS_TOO_LATE: &str = "answers_too_late";
    /// Jobs driven to completion.
    pub const JOBS_COMPLETED: &str = "jobs_completed";
    /// Jobs abandoned because the server refused a step (e.g. the case was cancelled).
    pub const JOBS_ABORTED: &str = "jobs_aborted";
    /// Accepted jobs driven the wrong way on purpose.
    pub const JOBS_RUNAWAY: &str = "jobs_runaway";
    /// Accepted jobs where the truck stopped on the way on purpose.
    pub const JOBS_STALLED: &str = "jobs_stalled";
    /// Accepted jobs where the truck stopped reporting on purpose.
    pub const JOBS_SILENT: &str = "jobs_silent";
}

/// Trucks that misbehave after accepting a job, so that the tracker raises alerts: shares
/// of accepted jobs (the rest are driven normally).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Misbehaviour {
    /// Drive away from the customer (`moving_away`, raised on a fix).
    pub runaway: f64,
    /// Drive towards the customer, then stop and keep reporting the same place
    /// (`stalled`, raised on a fix).
    pub stall: f64,
    /// Stop reporting positions (`gps_lost` and `late_departure`, raised on the tick).
    pub silent: f64,
    /// How long the misbehaviour lasts after acceptance before the job carries on
    /// normally, seconds.
    pub hold_s: f64,
    /// A stalling truck drives this long before it stops, seconds (it must first get
    /// 150 m from where it accepted to count as departed).
    pub stall_after_s: f64,
}

impl Default for Misbehaviour {
    fn default() -> Self {
        Misbehaviour {
            runaway: 0.0,
            stall: 0.0,
            silent: 0.0,
            hold_s: 40.0,
            stall_after_s: 20.0,
        }
    }
}

impl Misbehaviour {
    /// Checks the shares and times.
    pub fn validate(&self) -> anyhow::Result<()> {
        let shares = [self.runaway, self.stall, self.silent];
        anyhow::ensure!(
            shares.iter().all(|share| (0.0..=1.0).contains(share))
                && shares.iter().sum::<f64>() <= 1.0 + 1e-9,
            "runaway, stall and silent are shares between 0 and 1 that add up to at most 1"
        );
        anyhow::ensure!(
            self.hold_s >= 0.0 && self.stall_after_s >= 0.0 && self.stall_after_s <= self.hold_s,
            "hold_s and stall_after_s must be positive, stall_after_s at most hold_s"
        );
        Ok(())
    }

    /// Whether any truck misbehaves.
    pub fn any(&self) -> bool {
        self.runaway + self.stall + self.silent > 0.0
    }

    /// Picks the behaviour of one accepted job. Pure.
    pub fn pick(&self, rng: &mut SimRng) -> JobBehaviour {
        let draw: f64 = rng.random();
        if draw < self.runaway {
            JobBehaviour::Runaway
        } else if draw < self.runaway + self.stall {
            JobBehaviour::Stall
        } else if draw < self.runaway + self.stall + self.silent {
            JobBehaviour::Silent
        } else {
            JobBehaviour::Normal
        }
    }
}

/// How a truck drives an accepted job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobBehaviour {
    /// To the customer.
    Normal,
    /// Away from the customer for a while.
    Runaway,
    /// Towards the customer, then standing still for a while.
    Stall,
    /// Silent for a while.
    Silent,
}

impl JobBehaviour {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            JobBehaviour::Normal => "normal",
            JobBehaviour::Runaway => "runaway",
            JobBehaviour::Stall => "stall",
            JobBehaviour::Silent => "silent",
        }
    }
}

/// How the providers' dispatchers behave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Behaviour {
    /// Share of offers accepted.
    pub accept: f64,
    /// Share of offers declined (the rest is never answered and expires).
    pub decline: f64,
    /// Time to answer, seconds: `[min, median, max]` of a log-normal spread.
    pub answer_delay_s: [f64; 3],
    /// Time between job steps (accepted → en route → on scene → completed), seconds:
    /// `[min, max]`, uniform.
    pub job_step_s: [f64; 2],
    /// How often each provider polls its offers, milliseconds.
    pub poll_interval_ms: u64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            accept: 0.75,
            decline: 0.15,
            answer_delay_s: [1.0, 4.0, 20.0],
            job_step_s: [2.0, 10.0],
            poll_interval_ms: 1000,
        }
    }
}

impl Behaviour {
    /// Checks the shares and ranges.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (0.0..=1.0).contains(&self.accept)
                && (0.0..=1.0).contains(&self.decline)
                && self.accept + self.decline <= 1.0 + 1e-9,
            "accept and decline are shares between 0 and 1 that add up to at most 1"
        );
        let [min, median, max] = self.answer_delay_s;
        anyhow::ensure!(
            0.0 <= min && min <= median && median <= max,
            "answer_delay_s must be [min, median, max] in increasing order"
        );
        let [step_min, step_max] = self.job_step_s;
        anyhow::ensure!(
            0.0 <= step_min && step_min <= step_max,
            "job_step_s must be [min, max] in increasing order"
        );
        anyhow::ensure!(
            self.poll_interval_ms > 0,
            "poll_interval_ms must be positive"
        );
        Ok(())
    }
}

/// What a provider's dispatcher does with an offer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    /// Accept after this many seconds.
    Accept { after_s: f64 },
    /// Decline with a reason after this many seconds.
    Decline { after_s: f64, reason: &'static str },
    /// Never answer.
    Ignore,
}

/// Decides the answer to one offer. Pure.
pub fn decide(behaviour: &Behaviour, rng: &mut SimRng) -> Answer {
    let [min, median, max] = behaviour.answer_delay_s;
    let after_s = log_normal_clamped(rng, median, 3.0, min, max);
    let draw: f64 = rng.random();
    if draw < behaviour.accept {
        Answer::Accept { after_s }
    } else if draw < behaviour.accept + behaviour.decline {
        let reasons = ["busy", "too_far", "no_equipment", "other"];
        let reason = reasons[weighted_index(rng, &[50.0, 30.0, 10.0, 10.0])];
        Answer::Decline { after_s, reason }
    } else {
        Answer::Ignore
    }
}

/// The fleet to simulate.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Trucks.
    pub vehicles: usize,
    /// Tow companies.
    pub providers: usize,
    /// Seconds between two position reports of a truck.
    pub interval_s: f64,
    /// How dispatchers answer.
    pub behaviour: Behaviour,
    /// How trucks misbehave on jobs.
    pub misbehaviour: Misbehaviour,
    /// Where.
    pub city: City,
    /// The run's seed.
    pub seed: u64,
    /// A tag unique to the run, in provider names.
    pub run_tag: String,
    /// Share of the trucks (0–1) that report as JT/T 808 terminals rather than over HTTP.
    pub jt808_share: f64,
    /// The server's JT/T 808 port (needed when `jt808_share` > 0).
    pub jt808_addr: Option<SocketAddr>,
}

/// Flatbeds tow and winch (and can jump-start); vans do the roadside jobs.
fn capabilities(rng: &mut SimRng) -> &'static [&'static str] {
    match weighted_index(rng, &[35.0, 50.0, 15.0]) {
        0 => &["tow", "winch", "jump_start"],
        1 => &["jump_start", "tyre_change", "fuel_delivery", "lockout"],
        _ => &["tow", "jump_start", "tyre_change"],
    }
}

#[derive(Debug)]
struct SimTruck {
    id: String,
    truck: Truck,
    last_ts: DateTime<Utc>,
    /// On a job: the send times of its fixes go to the fix log.
    on_job: bool,
    /// Not reporting.
    silent: bool,
    /// Reports as this JT/T 808 terminal (its phone number) instead of over HTTP.
    terminal: Option<String>,
}

/// One location report for a terminal.
#[derive(Debug, Clone)]
struct TerminalFix {
    lat: f64,
    lon: f64,
    speed_kmh: f64,
    heading_deg: f64,
    ts: DateTime<Utc>,
    /// The truck's id when it is on a job (its send time goes to the fix log).
    on_job: Option<String>,
}

/// What one round of the simulation sends: HTTP batches (each with the ids of the trucks
/// on a job in it) and one report per JT/T 808 terminal.
#[derive(Debug, Default)]
struct Round {
    batches: Vec<(Value, Vec<String>)>,
    terminal_fixes: Vec<(String, TerminalFix)>,
}

#[derive(Debug)]
struct Trucks {
    trucks: Vec<SimTruck>,
    by_id: HashMap<String, usize>,
    rng: SimRng,
    last_advance: Instant,
}

/// One simulated tow company.
#[derive(Debug)]
struct ProviderSim {
    index: usize,
    api_key: String,
    trucks: Mutex<Trucks>,
    /// Registered terminals waiting for `Fleet::start`, by truck id.
    terminals: Mutex<Vec<(String, Terminal)>>,
    /// The running terminals' queues, by truck id.
    terminal_queues: Mutex<HashMap<String, tokio::sync::mpsc::Sender<TerminalFix>>>,
}

impl ProviderSim {
    fn lock(&self) -> std::sync::MutexGuard<'_, Trucks> {
        self.trucks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Moves every truck to now and returns what to send: the HTTP position batches, each
    /// with the ids of the trucks on a job whose fixes it carries, and the terminals' fixes.
    fn position_round(&self, city: &City) -> Round {
        let now = Utc::now();
        let mut guard = self.lock();
        let trucks = &mut *guard;
        let dt_s = trucks.last_advance.elapsed().as_secs_f64();
        trucks.last_advance = Instant::now();
        let mut fixes = Vec::with_capacity(trucks.trucks.len());
        let mut on_job = Vec::with_capacity(trucks.trucks.len());
        let mut terminal_fixes = Vec::new();
        for sim in &mut trucks.trucks {
            let sample = sim.truck.advance(dt_s, city, &mut trucks.rng);
            if sim.silent {
                continue;
            }
            // Strictly newer than the truck's previous fix, whatever the clock does (JT/T 808
            // carries whole seconds).
            let step = if sim.terminal.is_some() { 1000 } else { 1 };
            let ts = now.max(sim.last_ts + chrono::Duration::milliseconds(step));
            if sim.terminal.is_some() {
                let whole = ts.with_nanosecond(0).unwrap_or(ts);
                let ts = if whole <= sim.last_ts {
                    whole + chrono::Duration::seconds(1)
                } else {
                    whole
                };
                sim.last_ts = ts;
                terminal_fixes.push((
                    sim.id.clone(),
                    TerminalFix {
                        lat: sample.position.lat,
                        lon: sample.position.lon,
                        speed_kmh: sample.speed_kmh,
                        heading_deg: sample.heading_deg,
                        ts,
                        on_job: sim.on_job.then(|| sim.id.clone()),
                    },
                ));
                continue;
            }
            on_job.push(sim.on_job.then(|| sim.id.clone()));
            sim.last_ts = ts;
            fixes.push(json!({
                "vehicle_id": sim.id,
                "lat": (sample.position.lat * 1e6).round() / 1e6,
                "lon": (sample.position.lon * 1e6).round() / 1e6,
                "ts": ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "speed_kmh": (sample.speed_kmh * 10.0).round() / 10.0,
                "heading": sample.heading_deg.round() % 360.0,
            }));
        }
        let batches = fixes
            .chunks(BATCH_SIZE)
            .zip(on_job.chunks(BATCH_SIZE))
            .map(|(chunk, on_job)| {
                (
                    json!({ "fixes": chunk }),
                    on_job.iter().flatten().cloned().collect(),
                )
            })
            .collect();
        Round {
            batches,
            terminal_fixes,
        }
    }

    fn with_truck(&self, vehicle_id: &str, apply: impl FnOnce(&mut Truck)) {
        self.with_sim(vehicle_id, |sim| apply(&mut sim.truck));
    }

    fn with_sim(&self, vehicle_id: &str, apply: impl FnOnce(&mut SimTruck)) {
        let mut trucks = self.lock();
        if let Some(index) = trucks.by_id.get(vehicle_id).copied() {
            apply(&mut trucks.trucks[index]);
        }
    }
}

/// A fleet, set up on the server and ready to run.
#[derive(Debug)]
pub struct Fleet {
    spec: FleetSpec,
    providers: Vec<Arc<ProviderSim>>,
    /// Send times of the fixes of trucks on jobs, and which truck took which case.
    pub fix_log: Arc<FixLog>,
    /// How long setup took.
    pub setup_s: f64,
}

/// Names a refused fix's reason without the vehicle id in it.
fn rejection_kind(error: &str) -> String {
    let reason = error.split('`').next().unwrap_or(error).trim();
    format!("fix rejected: {reason}")
}

/// Sends one batch, recording its latency, counts and errors, and when it was sent for
/// the trucks on jobs in it.
async fn send_batch(
    api: &Api,
    api_key: &str,
    (batch, on_job): &(Value, Vec<String>),
    recorder: &Recorder,
    fix_log: &FixLog,
) {
    let fixes = batch["fixes"].as_array().map_or(0, Vec::len) as u64;
    recorder.count(names::FIXES_SENT, fixes);
    fix_log.sent(on_job, Utc::now());
    let started = Instant::now();
    match api.post_positions(api_key, batch).await {
        Ok(receipt) => {
            recorder.latency(names::POSITIONS_REQUEST, started.elapsed());
            recorder.count(names::POSITION_BATCHES, 1);
            recorder.count(names::FIXES_ACCEPTED, receipt.accepted);
            recorder.count(names::FIXES_REJECTED, receipt.rejected.len() as u64);
            for rejection in &receipt.rejected {
                recorder.error(rejection_kind(&rejection.error));
            }
        }
        Err(error) => recorder.error(format!("positions: {}", error.kind())),
    }
}

/// Sends one location report over a terminal, recording it like a batch of one.
async fn send_terminal_fix(
    terminal: &mut Terminal,
    fix: &TerminalFix,
    recorder: &Recorder,
    fix_log: &FixLog,
) -> anyhow::Result<()> {
    recorder.count(names::FIXES_SENT, 1);
    if let Some(id) = &fix.on_job {
        fix_log.sent(std::slice::from_ref(id), Utc::now());
    }
    let started = Instant::now();
    let answer = terminal
        .report(
            fix.lat,
            fix.lon,
            fix.speed_kmh,
            fix.heading_deg,
            fix.ts,
            JT808_TIMEOUT,
        )
        .await;
    match answer {
        Ok(jt808::Answer::Accepted) => {
            recorder.latency(names::JT808_REPORT, started.elapsed());
            recorder.count(names::JT808_ACKED, 1);
            recorder.count(names::FIXES_ACCEPTED, 1);
            Ok(())
        }
        Ok(jt808::Answer::Refused(result)) => {
            recorder.latency(names::JT808_REPORT, started.elapsed());
            recorder.count(names::FIXES_REJECTED, 1);
            recorder.error(format!("jt808: report refused (result {result})"));
            Ok(())
        }
        Err(error) => {
            recorder.error("jt808: connection lost");
            Err(error.into())
        }
    }
}

/// A running terminal: sends each fix it is given until the run stops.
async fn run_terminal(
    mut terminal: Terminal,
    mut fixes: tokio::sync::mpsc::Receiver<TerminalFix>,
    recorder: Arc<Recorder>,
    fix_log: Arc<FixLog>,
    stop: CancellationToken,
) {
    loop {
        let fix = tokio::select! {
            _ = stop.cancelled() => return,
            fix = fixes.recv() => match fix {
                Some(fix) => fix,
                None => return,
            },
        };
        if send_terminal_fix(&mut terminal, &fix, &recorder, &fix_log)
            .await
            .is_err()
        {
            return;
        }
    }
}

impl Fleet {
    /// Creates the providers, registers every truck and reports a first position for each,
    /// so that the whole fleet is dispatchable when this returns.
    pub async fn setup(
        api: &Api,
        admin_token: &str,
        spec: FleetSpec,
        console: &Console,
        recorder: &Recorder,
    ) -> anyhow::Result<Fleet> {
        spec.behaviour.validate()?;
        spec.misbehaviour.validate()?;
        anyhow::ensure!(spec.providers > 0, "at least one provider");
        anyhow::ensure!(
            spec.vehicles >= spec.providers,
            "at least one vehicle per provider"
        );
        anyhow::ensure!(
            spec.interval_s > 0.0,
            "the report interval must be positive"
        );
        anyhow::ensure!(
            (0.0..=1.0).contains(&spec.jt808_share),
            "jt808_share must be between 0 and 1"
        );
        let jt808_addr = match (spec.jt808_share > 0.0, spec.jt808_addr) {
            (false, _) => None,
            (true, Some(address)) => {
                anyhow::ensure!(
                    address.ip().is_loopback(),
                    "the JT/T 808 address {address} is not a loopback address: load tests target this machine only"
                );
                Some(address)
            }
            (true, None) => anyhow::bail!("jt808_share > 0 needs the server's JT/T 808 address"),
        };
        let mut terminal_number = 0usize;
        // Device ids are unique server-wide: this run's terminals get a prefix of its own.
        let run_prefix = spec.run_tag.bytes().fold(0u64, |hash, byte| {
            hash.wrapping_mul(31).wrapping_add(u64::from(byte))
        }) % 1000;
        let started = Instant::now();
        let area = spec.city.service_area();
        let mut providers = Vec::with_capacity(spec.providers);
        let mut layout_rng = rng::stream(spec.seed, "fleet-layout");
        let mut registrations = Vec::with_capacity(spec.vehicles);
        for index in 0..spec.providers {
            let name = format!("Load {} Towing {index:03}", spec.run_tag);
            let created = api
                .create_provider(admin_token, &name, &area)
                .await
                .with_context(|| format!("creating provider {name} (is the admin token right?)"))?;
            // Each company has a depot; its trucks start around it.
            let depot = spec.city.uniform_point(&mut layout_rng);
            let count = spec.vehicles / spec.providers
                + usize::from(index < spec.vehicles % spec.providers);
            let mut trucks = Vec::with_capacity(count);
            // The first share of each company's trucks carry JT/T 808 terminals.
            let terminals = (count as f64 * spec.jt808_share).round() as usize;
            for number in 0..count {
                let id = format!("P{index:03}-T{number:05}");
                let terminal = (number < terminals).then(|| {
                    terminal_number += 1;
                    format!("0149{:03}{:05}", run_prefix, terminal_number % 100_000)
                });
                registrations.push((
                    index,
                    created.api_key.clone(),
                    id.clone(),
                    capabilities(&mut layout_rng),
                    format!("沪{}{:05}", ["A", "B", "C"][index % 3], number),
                    terminal.clone(),
                ));
                trucks.push(SimTruck {
                    id,
                    truck: Truck::new(&spec.city, depot, &mut layout_rng),
                    last_ts: DateTime::<Utc>::MIN_UTC,
                    on_job: false,
                    silent: false,
                    terminal,
                });
            }
            let by_id = trucks
                .iter()
                .enumerate()
                .map(|(position, sim)| (sim.id.clone(), position))
                .collect();
            providers.push(Arc::new(ProviderSim {
                index,
                api_key: created.api_key,
                trucks: Mutex::new(Trucks {
                    trucks,
                    by_id,
                    rng: rng::stream(spec.seed, &format!("provider-{index}")),
                    last_advance: Instant::now(),
                }),
                terminals: Mutex::new(Vec::new()),
                terminal_queues: Mutex::new(HashMap::new()),
            }));
        }

        let bar = console.counter(registrations.len() as u64, "registering trucks");
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(registrations)
            .map(|(_, api_key, id, capabilities, plate, terminal)| {
                let bar = bar.clone();
                async move {
                    let result = api
                        .put_vehicle(&api_key, &id, capabilities, &plate, terminal.as_deref())
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

        // The terminals connect and register.
        if let Some(address) = jt808_addr {
            let wanted: Vec<(usize, String, String)> = providers
                .iter()
                .enumerate()
                .flat_map(|(index, provider)| {
                    provider
                        .lock()
                        .trucks
                        .iter()
                        .filter_map(|sim| Some((index, sim.id.clone(), sim.terminal.clone()?)))
                        .collect::<Vec<_>>()
                })
                .collect();
            let bar = console.counter(wanted.len() as u64, "connecting JT/T 808 terminals");
            let connected: Vec<anyhow::Result<(usize, String, Terminal)>> =
                futures::stream::iter(wanted)
                    .map(|(index, id, phone)| {
                        let bar = bar.clone();
                        async move {
                            let terminal = Terminal::register(address, &phone, JT808_TIMEOUT)
                                .await
                                .with_context(|| {
                                    format!("JT/T 808 terminal {phone} at {address}")
                                })?;
                            bar.inc(1);
                            Ok((index, id, terminal))
                        }
                    })
                    .buffer_unordered(CONNECT_CONCURRENCY)
                    .collect()
                    .await;
            bar.finish_and_clear();
            for result in connected {
                let (index, id, terminal) = result?;
                recorder.count(names::JT808_TERMINALS, 1);
                providers[index]
                    .terminals
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push((id, terminal));
            }
        }

        // A first position for every truck: without one it is not dispatchable.
        let fix_log = Arc::new(FixLog::default());
        for provider in &providers {
            let round = provider.position_round(&spec.city);
            for batch in &round.batches {
                send_batch(api, &provider.api_key, batch, recorder, &fix_log).await;
            }
            // Out of the lock while they talk to the server, then back.
            let mut terminals = std::mem::take(
                &mut *provider
                    .terminals
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            );
            let by_id: HashMap<&str, &TerminalFix> = round
                .terminal_fixes
                .iter()
                .map(|(id, fix)| (id.as_str(), fix))
                .collect();
            for (id, terminal) in terminals.iter_mut() {
                if let Some(fix) = by_id.get(id.as_str()) {
                    send_terminal_fix(terminal, fix, recorder, &fix_log).await?;
                }
            }
            *provider
                .terminals
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = terminals;
        }
        let setup_s = started.elapsed().as_secs_f64();
        let terminals = recorder.total(names::JT808_TERMINALS);
        console.note(format!(
            "fleet ready: {} trucks of {} providers ({terminals} on JT/T 808 terminals) registered and positioned in {setup_s:.1} s",
            spec.vehicles, spec.providers
        ));
        Ok(Fleet {
            spec,
            providers,
            fix_log,
            setup_s,
        })
    }

    /// The fleet's description.
    pub fn spec(&self) -> &FleetSpec {
        &self.spec
    }

    /// Starts reporting positions and answering offers until `stop` is cancelled. Wait on
    /// the returned tracker (after cancelling) for every task to end.
    pub fn start(
        &self,
        api: &Api,
        recorder: &Arc<Recorder>,
        stop: &CancellationToken,
    ) -> TaskTracker {
        let tasks = TaskTracker::new();
        let interval = Duration::from_secs_f64(self.spec.interval_s);
        for provider in &self.providers {
            let terminals = std::mem::take(
                &mut *provider
                    .terminals
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            );
            let mut queues = provider
                .terminal_queues
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (id, terminal) in terminals {
                let (sender, receiver) = tokio::sync::mpsc::channel(TERMINAL_QUEUE);
                queues.insert(id, sender);
                tasks.spawn(run_terminal(
                    terminal,
                    receiver,
                    recorder.clone(),
                    self.fix_log.clone(),
                    stop.clone(),
                ));
            }
            drop(queues);
            // Providers report spread over the interval, not all at once.
            let offset = interval.mul_f64(provider.index as f64 / self.providers.len() as f64);
            tasks.spawn(report_positions(
                api.clone(),
                provider.clone(),
                self.spec.city,
                interval,
                offset,
                recorder.clone(),
                self.fix_log.clone(),
                stop.clone(),
            ));
            tasks.spawn(answer_offers(
                api.clone(),
                provider.clone(),
                Dispatcher {
                    behaviour: self.spec.behaviour.clone(),
                    misbehaviour: self.spec.misbehaviour.clone(),
                    fix_log: self.fix_log.clone(),
                },
                rng::stream(self.spec.seed, &format!("dispatcher-{}", provider.index)),
                recorder.clone(),
                stop.clone(),
                tasks.clone(),
            ));
        }
        tasks
    }
}

#[allow(clippy::too_many_arguments)]
async fn report_positions(
    api: Api,
    provider: Arc<ProviderSim>,
    city: City,
    interval: Duration,
    offset: Duration,
    recorder: Arc<Recorder>,
    fix_log: Arc<FixLog>,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let round = provider.position_round(&city);
        {
            let queues = provider
                .terminal_queues
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (id, fix) in round.terminal_fixes {
                if let Some(queue) = queues.get(&id)
                    && queue.try_send(fix).is_err()
                {
                    // The terminal is still waiting for earlier answers (or gone): the
                    // offered rate is above what the server answers. Counted, not an
                    // error, so that a saturation run measures the answered rate.
                    recorder.count(names::JT808_DROPPED, 1);
                }
            }
        }
        for batch in &round.batches {
            send_batch(&api, &provider.api_key, batch, &recorder, &fix_log).await;
        }
    }
}

/// How one company's dispatcher and drivers behave.
#[derive(Debug, Clone)]
struct Dispatcher {
    behaviour: Behaviour,
    misbehaviour: Misbehaviour,
    fix_log: Arc<FixLog>,
}

async fn answer_offers(
    api: Api,
    provider: Arc<ProviderSim>,
    dispatcher: Dispatcher,
    mut rng: SimRng,
    recorder: Arc<Recorder>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let mut seen: HashSet<String> = HashSet::new();
    let mut ticker =
        tokio::time::interval(Duration::from_millis(dispatcher.behaviour.poll_interval_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let offers = match api.offers(&provider.api_key).await {
            Ok(offers) => offers,
            Err(error) => {
                recorder.error(format!("poll offers: {}", error.kind()));
                continue;
            }
        };
        // An offer leaves the pending list for good once answered or expired.
        let pending: HashSet<&str> = offers.iter().map(|offer| offer.id.as_str()).collect();
        seen.retain(|id| pending.contains(id.as_str()));
        for offer in offers {
            if !seen.insert(offer.id.clone()) {
                continue;
            }
            recorder.count(names::OFFERS_SEEN, 1);
            let answer = decide(&dispatcher.behaviour, &mut rng);
            let job_seed: u64 = rng.random();
            tasks.spawn(answer_offer(
                api.clone(),
                provider.clone(),
                offer,
                answer,
                dispatcher.clone(),
                job_seed,
                recorder.clone(),
                stop.clone(),
            ));
        }
    }
}

/// Sleeps, or returns `false` if the run stops first.
async fn pause(duration: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(duration) => true,
    }
}

#[allow(clippy::too_many_arguments)]
async fn answer_offer(
    api: Api,
    provider: Arc<ProviderSim>,
    offer: ProviderOffer,
    answer: Answer,
    dispatcher: Dispatcher,
    job_seed: u64,
    recorder: Arc<Recorder>,
    stop: CancellationToken,
) {
    match answer {
        Answer::Ignore => recorder.count(names::OFFERS_IGNORED, 1),
        Answer::Decline { after_s, reason } => {
            if !pause(Duration::from_secs_f64(after_s), &stop).await {
                return;
            }
            match api.decline(&provider.api_key, &offer.id, reason).await {
                Ok(()) => recorder.count(names::OFFERS_DECLINED, 1),
                // Expired meanwhile: a slow dispatcher, not a failure.
                Err(error) if error.status() == Some(409) => {
                    recorder.count(names::ANSWERS_TOO_LATE, 1)
                }
                Err(error) => recorder.error(format!("decline: {}", error.kind())),
            }
        }
        Answer::Accept { after_s } => {
            if !pause(Duration::from_secs_f64(after_s), &stop).await {
                return;
            }
            let mut job_rng = rng::stream(job_seed, "job");
            let own_eta_s =
                (f64::from(offer.eta_s) * job_rng.random_range(0.8..1.3)).round() as u32;
            let job = dispatcher.misbehaviour.pick(&mut job_rng);
            match api.accept(&provider.api_key, &offer.id, own_eta_s).await {
                Ok(()) => {
                    recorder.count(names::OFFERS_ACCEPTED, 1);
                    dispatcher
                        .fix_log
                        .job(&offer.case_id, &offer.vehicle_id, job.name());
                    provider.with_sim(&offer.vehicle_id, |sim| sim.on_job = true);
                    drive_job(
                        &api,
                        &provider,
                        &offer,
                        (job, &dispatcher),
                        &mut job_rng,
                        &recorder,
                        &stop,
                    )
                    .await;
                    provider.with_sim(&offer.vehicle_id, |sim| {
                        sim.on_job = false;
                        sim.silent = false;
                    });
                }
                Err(error) if error.status() == Some(409) => {
                    recorder.count(names::ANSWERS_TOO_LATE, 1)
                }
                Err(error) => recorder.error(format!("accept: {}", error.kind())),
            }
        }
    }
}

async fn drive_job(
    api: &Api,
    provider: &ProviderSim,
    offer: &ProviderOffer,
    (job, dispatcher): (JobBehaviour, &Dispatcher),
    rng: &mut SimRng,
    recorder: &Recorder,
    stop: &CancellationToken,
) {
    let customer = Point {
        lat: offer.location.lat,
        lon: offer.location.lon,
    };
    let accepted = Instant::now();
    let misbehaviour = &dispatcher.misbehaviour;
    let hold = Duration::from_secs_f64(misbehaviour.hold_s);
    // Misbehaving from the acceptance on.
    match job {
        JobBehaviour::Normal => {}
        JobBehaviour::Runaway => {
            recorder.count(names::JOBS_RUNAWAY, 1);
            provider.with_truck(&offer.vehicle_id, |truck| truck.drive_away_from(customer));
        }
        JobBehaviour::Stall => {
            recorder.count(names::JOBS_STALLED, 1);
            provider.with_truck(&offer.vehicle_id, |truck| truck.drive_to_job(customer));
        }
        JobBehaviour::Silent => {
            recorder.count(names::JOBS_SILENT, 1);
            provider.with_sim(&offer.vehicle_id, |sim| sim.silent = true);
        }
    }
    let [step_min, step_max] = dispatcher.behaviour.job_step_s;
    for status in ["en_route", "on_scene", "completed"] {
        let step_s = if step_max > step_min {
            rng.random_range(step_min..step_max)
        } else {
            step_min
        };
        if !pause(Duration::from_secs_f64(step_s), stop).await {
            return;
        }
        if status == "on_scene" && job != JobBehaviour::Normal {
            // The misbehaviour lasts its time, then the truck gets there after all.
            if job == JobBehaviour::Stall {
                let drive = Duration::from_secs_f64(misbehaviour.stall_after_s);
                if !pause(drive.saturating_sub(accepted.elapsed()), stop).await {
                    return;
                }
                provider.with_truck(&offer.vehicle_id, Truck::halt);
            }
            if !pause(hold.saturating_sub(accepted.elapsed()), stop).await {
                return;
            }
            provider.with_sim(&offer.vehicle_id, |sim| {
                sim.silent = false;
                sim.truck.drive_to_job(customer);
            });
        }
        if let Err(error) = api
            .job_status(&provider.api_key, &offer.case_id, status)
            .await
        {
            recorder.count(names::JOBS_ABORTED, 1);
            if error.status() != Some(409) && error.status() != Some(404) {
                recorder.error(format!("job status: {}", error.kind()));
            }
            provider.with_truck(&offer.vehicle_id, Truck::release);
            return;
        }
        match status {
            "en_route" if job == JobBehaviour::Normal => {
                provider.with_truck(&offer.vehicle_id, |truck| truck.drive_to_job(customer))
            }
            "completed" => {
                recorder.count(names::JOBS_COMPLETED, 1);
                provider.with_truck(&offer.vehicle_id, Truck::release);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_follow_the_configured_shares_and_delays() {
        let behaviour = Behaviour::default();
        let mut rng = rng::stream(4, "answers");
        let (mut accepted, mut declined, mut ignored) = (0, 0, 0);
        for _ in 0..10_000 {
            match decide(&behaviour, &mut rng) {
                Answer::Accept { after_s } => {
                    accepted += 1;
                    assert!((1.0..=20.0).contains(&after_s));
                }
                Answer::Decline { after_s, reason } => {
                    declined += 1;
                    assert!((1.0..=20.0).contains(&after_s));
                    assert!(["busy", "too_far", "no_equipment", "other"].contains(&reason));
                }
                Answer::Ignore => ignored += 1,
            }
        }
        assert!((7_300..7_700).contains(&accepted), "{accepted}");
        assert!((1_300..1_700).contains(&declined), "{declined}");
        assert!((800..1_200).contains(&ignored), "{ignored}");
    }

    #[test]
    fn shares_that_add_up_to_more_than_everything_are_refused() {
        let behaviour = Behaviour {
            accept: 0.8,
            decline: 0.3,
            ..Behaviour::default()
        };
        assert!(behaviour.validate().is_err());
        assert!(Behaviour::default().validate().is_ok());
    }

    #[test]
    fn refusal_reasons_are_counted_without_vehicle_ids() {
        assert_eq!(
            rejection_kind("unknown vehicle `P001-T00042`"),
            "fix rejected: unknown vehicle"
        );
        assert_eq!(
            rejection_kind("not newer than the last fix"),
            "fix rejected: not newer than the last fix"
        );
    }

    #[test]
    fn position_rounds_hold_batches_of_a_hundred_and_terminal_fixes_all_strictly_newer() {
        let city = City::default();
        let mut rng = rng::stream(5, "batches");
        let trucks: Vec<SimTruck> = (0..250)
            .map(|number| SimTruck {
                id: format!("T{number}"),
                truck: Truck::new(&city, city.centre(), &mut rng),
                last_ts: DateTime::<Utc>::MIN_UTC,
                on_job: number == 120,
                silent: number == 7,
                // The last ten carry JT/T 808 terminals.
                terminal: (number >= 240).then(|| format!("01490000{number:04}")),
            })
            .collect();
        let by_id = trucks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i))
            .collect();
        let provider = ProviderSim {
            index: 0,
            api_key: "rk_test".to_owned(),
            trucks: Mutex::new(Trucks {
                trucks,
                by_id,
                rng,
                last_advance: Instant::now(),
            }),
            terminals: Mutex::new(Vec::new()),
            terminal_queues: Mutex::new(HashMap::new()),
        };
        let first_round = provider.position_round(&city);
        let second_round = provider.position_round(&city);
        // Terminals get whole seconds (JT/T 808 has no finer time), still strictly newer.
        assert_eq!(first_round.terminal_fixes.len(), 10);
        for ((id_a, a), (id_b, b)) in first_round
            .terminal_fixes
            .iter()
            .zip(&second_round.terminal_fixes)
        {
            assert_eq!(id_a, id_b);
            assert_eq!(a.ts.nanosecond(), 0);
            assert!(b.ts > a.ts, "{id_a}: {} then {}", a.ts, b.ts);
        }
        let (first, second) = (first_round.batches, second_round.batches);
        // The silent truck (7) sends nothing; the one on a job (120) is named with its batch.
        assert_eq!(
            first
                .iter()
                .map(|(b, _)| b["fixes"].as_array().unwrap().len())
                .collect::<Vec<_>>(),
            vec![100, 100, 39]
        );
        let on_job: Vec<&Vec<String>> = first.iter().map(|(_, on_job)| on_job).collect();
        assert_eq!(on_job, [&vec![], &vec!["T120".to_owned()], &vec![]]);
        assert!(
            first
                .iter()
                .flat_map(|(b, _)| b["fixes"].as_array().unwrap())
                .all(|fix| fix["vehicle_id"] != "T7")
        );
        let ts = |batches: &[(Value, Vec<String>)], index: usize| {
            batches[index / 100].0["fixes"][index % 100]["ts"]
                .as_str()
                .unwrap()
                .parse::<DateTime<Utc>>()
                .unwrap()
        };
        for index in 0..239 {
            assert!(ts(&second, index) > ts(&first, index));
        }
    }

    #[test]
    fn misbehaviour_shares_pick_behaviours_and_impossible_ones_are_refused() {
        let misbehaviour = Misbehaviour {
            runaway: 0.2,
            stall: 0.1,
            silent: 0.1,
            ..Misbehaviour::default()
        };
        assert!(misbehaviour.validate().is_ok());
        let mut rng = rng::stream(9, "misbehaviour");
        let mut counts = HashMap::new();
        for _ in 0..10_000 {
            *counts
                .entry(misbehaviour.pick(&mut rng).name())
                .or_insert(0) += 1;
        }
        assert!((1_800..2_200).contains(&counts["runaway"]), "{counts:?}");
        assert!((800..1_200).contains(&counts["stall"]), "{counts:?}");
        assert!((800..1_200).contains(&counts["silent"]), "{counts:?}");
        assert!(Misbehaviour::default().pick(&mut rng) == JobBehaviour::Normal);
        assert!(!Misbehaviour::default().any());
        let too_much = Misbehaviour {
            runaway: 0.7,
            stall: 0.4,
            ..Misbehaviour::default()
        };
        assert!(too_much.validate().is_err());
        let stall_after_hold = Misbehaviour {
            hold_s: 5.0,
            stall_after_s: 10.0,
            ..Misbehaviour::default()
        };
        assert!(stall_after_hold.validate().is_err());
    }
}
