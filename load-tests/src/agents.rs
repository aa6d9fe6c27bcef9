//! Agents watching the live feed: K console users (role `agent`) created through the admin
//! API, each logged in and subscribed to `GET /v1/stream` (Server-Sent Events) for the
//! whole run, reconnecting with `Last-Event-ID` when the connection drops.
//!
//! What is measured, per event and subscriber:
//!
//! - **SSE event latency** = the wall-clock time the event's bytes were read from the
//!   socket − the event's server timestamp `at` (the instant the server recorded the change,
//!   before writing it to the log). Server and load generator share one machine and one
//!   clock, so no clock offset enters. It covers the event log write, the stream's log poll
//!   (`RESCUE_STREAM_POLL_MS`), serialisation and delivery. Split by kind: `alert_raised` and
//!   everything else, and alerts by alert kind.
//! - **Fix → alert on the stream** (for the alert kinds whose condition changes only when a
//!   fix comes in: `moving_away` and `stalled`) = receive time − the send time of the last
//!   position batch, carrying a fix of the case's vehicle, whose request started before the
//!   alert's `at`. The alert event does not say which fix raised it; the tracker evaluates
//!   the rules on every fix and stamps the alert when it applies them, so the last fix sent
//!   before that stamp is the one that raised it as long as the server needs less than one
//!   report interval from fix to alert (the report shows that part separately). Alerts of
//!   the other kinds (`gps_lost` and `late_departure` on the periodic tick or any fix,
//!   `arrival_at_risk` also on time passing, `no_vehicle` on escalation) are reported by
//!   kind with the SSE event latency only.
//! - **Completeness**: every event of the run recorded with an `at` between a subscriber's
//!   first connection and shortly before the subscribers stop (the run's timelines read
//!   back, and every event any subscriber saw) must have reached that subscriber exactly
//!   once; a missed event or a subscriber that never connected is a violation. Gaps in the
//!   ids of one stream are counted (PostgreSQL skips ids of rolled-back transactions; only
//!   a gap hiding a recorded event is a miss), as are repeats and reconnects.
//!
//! The parsing and bookkeeping are pure; [`run_subscriber`] does the I/O.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::api::{Api, CallError};
use crate::console::Console;
use crate::invariants::Verdict;
use crate::sse::{SseMessage, SseParser};
use crate::stats::{LatencyPoint, LatencySummary, LatencyTrack};

/// Alert kinds raised only when a fix of the assigned vehicle comes in.
pub const FIX_TRIGGERED: &[&str] = &["moving_away", "stalled"];

/// Events recorded at most this long before the subscribers stop need not have arrived.
pub const DELIVERY_GRACE: Duration = Duration::from_secs(3);

/// User creations and logins in flight at once during setup.
const SETUP_CONCURRENCY: usize = 4;

/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Most points of a chart line.
const MAX_POINTS: usize = 300;

/// The target of the issue.
pub const TARGET_P99_MS: f64 = 1000.0;

/// Send times of the position batches carrying a fix of a vehicle on a job, and which
/// vehicle serves which case: what links an alert to the fix that raised it. The fleet
/// writes it, the report reads it.
#[derive(Debug, Default)]
pub struct FixLog {
    inner: Mutex<FixLogInner>,
}

#[derive(Debug, Default)]
struct FixLogInner {
    jobs: HashMap<String, JobRecord>,
    sends: HashMap<String, Vec<DateTime<Utc>>>,
}

/// A job taken by a simulated truck.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// The provider's id of the vehicle.
    pub vehicle_id: String,
    /// `normal`, `runaway`, `stall` or `silent`.
    pub behaviour: &'static str,
}

impl FixLog {
    fn with<T>(&self, apply: impl FnOnce(&mut FixLogInner) -> T) -> T {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        apply(&mut inner)
    }

    /// A truck accepted a case.
    pub fn job(&self, case_id: &str, vehicle_id: &str, behaviour: &'static str) {
        self.with(|inner| {
            inner.jobs.insert(
                case_id.to_owned(),
                JobRecord {
                    vehicle_id: vehicle_id.to_owned(),
                    behaviour,
                },
            )
        });
    }

    /// A batch with fixes of these vehicles is being sent now.
    pub fn sent(&self, vehicles: &[String], at: DateTime<Utc>) {
        if vehicles.is_empty() {
            return;
        }
        self.with(|inner| {
            for vehicle in vehicles {
                inner.sends.entry(vehicle.clone()).or_default().push(at);
            }
        });
    }

    /// The job of a case, if a simulated truck took it.
    pub fn job_of(&self, case_id: &str) -> Option<JobRecord> {
        self.with(|inner| inner.jobs.get(case_id).cloned())
    }

    /// When batches with fixes of the vehicle were sent, in order.
    pub fn sends_of(&self, vehicle_id: &str) -> Vec<DateTime<Utc>> {
        self.with(|inner| inner.sends.get(vehicle_id).cloned().unwrap_or_default())
    }

    /// Jobs taken, by behaviour.
    pub fn jobs_by_behaviour(&self) -> BTreeMap<String, u64> {
        self.with(|inner| {
            let mut counts = BTreeMap::new();
            for job in inner.jobs.values() {
                *counts.entry(job.behaviour.to_owned()).or_default() += 1;
            }
            counts
        })
    }
}

/// The latest send at or before `alert_at` (sends in increasing order). Pure.
pub fn link_fix(sends: &[DateTime<Utc>], alert_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let after = sends.partition_point(|sent| *sent <= alert_at);
    after.checked_sub(1).map(|index| sends[index])
}

/// `later − earlier`, zero when negative (clock resolution). Pure.
pub fn elapsed(earlier: DateTime<Utc>, later: DateTime<Utc>) -> Duration {
    (later - earlier).to_std().unwrap_or_default()
}

/// One event as the stream carries it (the fields measured).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    /// Global id (the SSE id).
    pub id: i64,
    /// Event kind (`alert_raised`, `status_changed` …).
    pub kind: String,
    /// The case.
    pub case_id: String,
    /// The server's timestamp.
    pub at: DateTime<Utc>,
    /// For alerts: the alert kind.
    pub alert_kind: Option<String>,
}

#[derive(Deserialize)]
struct EventData {
    id: i64,
    case_id: String,
    at: DateTime<Utc>,
    kind: String,
    #[serde(default)]
    data: EventDetails,
}

#[derive(Deserialize, Default)]
struct EventDetails {
    #[serde(default)]
    kind: Option<String>,
}

/// Reads an SSE message of `/v1/stream`: the SSE id must agree with the event's own. Pure.
pub fn parse_event(message: &SseMessage) -> Result<StreamEvent, String> {
    let data: EventData =
        serde_json::from_str(&message.data).map_err(|error| format!("data: {error}"))?;
    let sse_id: i64 = message
        .id
        .as_deref()
        .and_then(|id| id.trim().parse().ok())
        .ok_or_else(|| format!("no usable SSE id: {:?}", message.id))?;
    if sse_id != data.id {
        return Err(format!("SSE id {sse_id} but event id {}", data.id));
    }
    let alert_kind = (data.kind == "alert_raised")
        .then_some(data.data.kind)
        .flatten();
    Ok(StreamEvent {
        id: data.id,
        kind: data.kind,
        case_id: data.case_id,
        at: data.at,
        alert_kind,
    })
}

/// What one subscriber saw, without the latencies (kept once for all, in [`StreamStats`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SubscriberLog {
    /// Which agent.
    pub index: usize,
    /// When the first connection was answered.
    pub connected_at: Option<DateTime<Utc>>,
    /// Connections after the first.
    pub reconnects: u64,
    /// Attempts that got no stream (transport error or non-200).
    pub connect_failures: u64,
    /// Connections that ended while the run still wanted them.
    pub disconnects: u64,
    /// The last id received.
    pub last_id: Option<i64>,
    /// Ids received, in order.
    #[serde(skip)]
    pub ids: Vec<i64>,
    /// Times the next id was not the previous one + 1.
    pub gaps: u64,
    /// Ids skipped over by those gaps.
    pub gap_ids: u64,
    /// Events whose id was not above the last one (repeats, disorder): dropped.
    pub repeats: u64,
    /// Messages that could not be read as events.
    pub malformed: u64,
    /// Comment lines (keep-alives).
    pub comments: u64,
}

/// How an event fits a subscriber's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next event (perhaps after a gap in the ids).
    New,
    /// Not above the last id: a repeat or out of order.
    Repeat,
}

impl SubscriberLog {
    /// A log for agent `index`.
    pub fn new(index: usize) -> SubscriberLog {
        SubscriberLog {
            index,
            ..SubscriberLog::default()
        }
    }

    /// Files an event's id. Pure.
    pub fn arrive(&mut self, id: i64) -> Arrival {
        if let Some(last) = self.last_id {
            if id <= last {
                self.repeats += 1;
                return Arrival::Repeat;
            }
            if id != last + 1 {
                self.gaps += 1;
                self.gap_ids += u64::try_from(id - last - 1).unwrap_or(0);
            }
        }
        self.last_id = Some(id);
        self.ids.push(id);
        Arrival::New
    }
}

/// One receipt of an alert by one subscriber.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertReceipt {
    /// The event id.
    pub event_id: i64,
    /// The case.
    pub case_id: String,
    /// The alert kind.
    pub kind: String,
    /// The server's timestamp.
    pub at: DateTime<Utc>,
    /// When the subscriber read it.
    pub received_at: DateTime<Utc>,
}

/// Latencies of every subscriber, shared.
#[derive(Debug)]
pub struct StreamStats {
    origin: DateTime<Utc>,
    inner: Mutex<StreamRecordings>,
}

/// What [`StreamStats`] holds.
#[derive(Debug, Default, Clone)]
pub struct StreamRecordings {
    /// Every event.
    pub all: LatencyTrack,
    /// `alert_raised`.
    pub alerts: LatencyTrack,
    /// Every other kind.
    pub other: LatencyTrack,
    /// `alert_raised` by alert kind.
    pub by_alert_kind: BTreeMap<String, LatencyTrack>,
    /// Receipts by event kind.
    pub receipts_by_kind: BTreeMap<String, u64>,
    /// Every distinct event seen: id → (`at`, kind).
    pub events: HashMap<i64, (DateTime<Utc>, String)>,
    /// Every receipt of an alert.
    pub alert_receipts: Vec<AlertReceipt>,
}

impl StreamStats {
    /// Stats whose time series start at `origin` (the run's start).
    pub fn new(origin: DateTime<Utc>) -> StreamStats {
        StreamStats {
            origin,
            inner: Mutex::new(StreamRecordings::default()),
        }
    }

    /// Records events read together at `received_at`.
    pub fn record(&self, events: &[StreamEvent], received_at: DateTime<Utc>) {
        if events.is_empty() {
            return;
        }
        let at_s = (received_at - self.origin).num_milliseconds() as f64 / 1000.0;
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for event in events {
            let latency = elapsed(event.at, received_at);
            inner.all.record(at_s, latency);
            *inner
                .receipts_by_kind
                .entry(event.kind.clone())
                .or_default() += 1;
            inner
                .events
                .entry(event.id)
                .or_insert_with(|| (event.at, event.kind.clone()));
            if event.kind == "alert_raised" {
                inner.alerts.record(at_s, latency);
                let kind = event
                    .alert_kind
                    .clone()
                    .unwrap_or_else(|| "unknown".to_owned());
                inner
                    .by_alert_kind
                    .entry(kind.clone())
                    .or_default()
                    .record(at_s, latency);
                inner.alert_receipts.push(AlertReceipt {
                    event_id: event.id,
                    case_id: event.case_id.clone(),
                    kind,
                    at: event.at,
                    received_at,
                });
            } else {
                inner.other.record(at_s, latency);
            }
        }
    }

    /// A copy of the recordings.
    pub fn snapshot(&self) -> StreamRecordings {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The series' origin.
    pub fn origin(&self) -> DateTime<Utc> {
        self.origin
    }
}

/// Per alert kind.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertKindFigures {
    /// Distinct alerts.
    pub alerts: u64,
    /// Receipts (alerts × subscribers that got them).
    pub receipts: u64,
    /// Whether a fix raises it (then it is in the fix → alert figures).
    pub fix_triggered: bool,
    /// SSE event latency of its receipts.
    pub latency: LatencySummary,
}

/// What the fix → alert figures are made of.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FixToAlert {
    /// Alerts of fix-triggered kinds.
    pub alerts: u64,
    /// Of those, linked to the fix that raised them.
    pub linked_alerts: u64,
    /// Alerts of fix-triggered kinds with no send of their vehicle before them (a case
    /// not served by a simulated truck).
    pub unlinked_alerts: u64,
    /// Receipts measured (linked alerts × subscribers).
    pub receipts: u64,
    /// Fix batch sent → alert received on the stream, per receipt.
    pub latency: LatencySummary,
    /// Fix batch sent → alert recorded by the server (`at`), per alert.
    pub to_recorded: LatencySummary,
    /// Alert recorded → received on the stream, per receipt.
    pub recorded_to_received: LatencySummary,
    /// Over time (by receive time).
    pub series: Vec<LatencyPoint>,
}

/// The `agents` section of the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AgentsReport {
    /// Subscribers.
    pub agents: usize,
    /// Seconds it took to create the agents and log them in.
    pub setup_s: f64,
    /// Of those, connected at least once.
    pub connected: usize,
    /// What exactly the figures measure.
    pub measured: String,
    /// Distinct events seen by any subscriber.
    pub events: usize,
    /// Receipts (events × subscribers).
    pub receipts: u64,
    /// Receipts per subscriber: least, mean, most.
    pub events_per_subscriber: [f64; 3],
    /// Receipts by event kind.
    pub receipts_by_kind: BTreeMap<String, u64>,
    /// Events each subscriber had to see (at the least connected one …).
    pub expected_per_subscriber: [u64; 2],
    /// Expected events missed, over all subscribers.
    pub missed_events: u64,
    /// Subscribers that missed at least one.
    pub subscribers_missing: usize,
    /// Whether every subscriber saw every event it had to.
    pub complete: bool,
    /// Reconnects, over all subscribers.
    pub reconnects: u64,
    /// Connection attempts without a stream.
    pub connect_failures: u64,
    /// Gaps in the ids of a stream (and ids skipped over).
    pub gaps: u64,
    /// Ids skipped over by the gaps.
    pub gap_ids: u64,
    /// Repeated or out-of-order events.
    pub repeats: u64,
    /// Unreadable messages.
    pub malformed: u64,
    /// SSE event latency of every receipt.
    pub latency: LatencySummary,
    /// … of `alert_raised`.
    pub latency_alerts: LatencySummary,
    /// … of every other kind.
    pub latency_other: LatencySummary,
    /// Alerts by kind.
    pub alerts_by_kind: BTreeMap<String, AlertKindFigures>,
    /// Fix → alert on the stream.
    pub fix_to_alert: FixToAlert,
    /// Jobs of the simulated trucks by behaviour.
    pub jobs_by_behaviour: BTreeMap<String, u64>,
    /// SSE event latency over time (by receive time).
    pub latency_series: Vec<LatencyPoint>,
    /// … of alerts.
    pub alert_latency_series: Vec<LatencyPoint>,
    /// SSE event latency histogram: `(upper bound ms, receipts)`.
    pub latency_distribution: Vec<(f64, u64)>,
}

/// The measurement, in words, for the report.
pub const MEASURED: &str = "SSE event latency = time the event was read from the socket by the subscriber \
− the event's server timestamp `at` (one machine, one clock), for every event and subscriber. \
Fix → alert = time the alert_raised event was read − send time of the last position batch \
carrying a fix of the case's vehicle sent before the alert's `at`, for moving_away and stalled \
(raised only on a fix); the link assumes the server needs less than one report interval from \
a fix to its alert (the \"fix sent → alert recorded\" row shows that part). Other alert kinds \
(gps_lost and late_departure, raised by time passing on the periodic tick or any fix; \
arrival_at_risk; no_vehicle on escalation) are reported with the SSE event latency only.";

/// Which events each subscriber missed: every event recorded (`truth`: id → `at`) at or
/// after its first connection and at or before `window_end` that it did not receive.
/// Returns `(expected, missed ids)` per subscriber, in the order of `logs`. Pure.
pub fn missed_events(
    logs: &[SubscriberLog],
    truth: &BTreeMap<i64, DateTime<Utc>>,
    window_end: DateTime<Utc>,
) -> Vec<(u64, Vec<i64>)> {
    logs.iter()
        .map(|log| {
            let Some(connected_at) = log.connected_at else {
                let expected: Vec<i64> = truth
                    .iter()
                    .filter(|(_, at)| **at <= window_end)
                    .map(|(id, _)| *id)
                    .collect();
                return (expected.len() as u64, expected);
            };
            // Stored timestamps are truncated to microseconds: allow a millisecond.
            let from = connected_at + chrono::Duration::milliseconds(1);
            let seen: HashSet<i64> = log.ids.iter().copied().collect();
            let mut expected = 0;
            let mut missed = Vec::new();
            for (id, at) in truth {
                if *at < from || *at > window_end {
                    continue;
                }
                expected += 1;
                if !seen.contains(id) {
                    missed.push(*id);
                }
            }
            (expected, missed)
        })
        .collect()
}

/// Everything the subscribers measured, as a report section and an invariant. Pure.
pub fn build_report(
    logs: &[SubscriberLog],
    recordings: &StreamRecordings,
    timeline_events: &[(i64, DateTime<Utc>)],
    window_end: DateTime<Utc>,
    fix_log: Option<&FixLog>,
    origin: DateTime<Utc>,
) -> (AgentsReport, Verdict) {
    let mut truth: BTreeMap<i64, DateTime<Utc>> = timeline_events.iter().copied().collect();
    for (id, (at, _)) in &recordings.events {
        truth.entry(*id).or_insert(*at);
    }
    let missed = missed_events(logs, &truth, window_end);
    let mut verdict = Verdict::new(
        "agents_saw_every_event",
        "every agent stream connected and delivered every event recorded while it was open, once, in order",
    );
    verdict.checked = logs.len();
    let mut report = AgentsReport {
        agents: logs.len(),
        measured: MEASURED.to_owned(),
        events: recordings.events.len(),
        receipts: recordings.all.summary().count,
        receipts_by_kind: recordings.receipts_by_kind.clone(),
        latency: recordings.all.summary(),
        latency_alerts: recordings.alerts.summary(),
        latency_other: recordings.other.summary(),
        latency_series: recordings.all.series(MAX_POINTS),
        alert_latency_series: recordings.alerts.series(MAX_POINTS),
        latency_distribution: recordings.all.distribution(),
        ..AgentsReport::default()
    };
    let mut expected_range = [u64::MAX, 0];
    let mut per_subscriber = Vec::with_capacity(logs.len());
    for (log, (expected, missed_ids)) in logs.iter().zip(&missed) {
        report.connected += usize::from(log.connected_at.is_some());
        report.reconnects += log.reconnects;
        report.connect_failures += log.connect_failures;
        report.gaps += log.gaps;
        report.gap_ids += log.gap_ids;
        report.repeats += log.repeats;
        report.malformed += log.malformed;
        per_subscriber.push(log.ids.len() as f64);
        expected_range[0] = expected_range[0].min(*expected);
        expected_range[1] = expected_range[1].max(*expected);
        report.missed_events += missed_ids.len() as u64;
        if log.connected_at.is_none() {
            report.subscribers_missing += 1;
            verdict.violation(format!(
                "agent {} never got a stream ({} attempts failed)",
                log.index, log.connect_failures
            ));
        } else if !missed_ids.is_empty() {
            report.subscribers_missing += 1;
            let shown: Vec<String> = missed_ids.iter().take(10).map(i64::to_string).collect();
            verdict.violation(format!(
                "agent {} missed {} of {expected} events (ids {}{})",
                log.index,
                missed_ids.len(),
                shown.join(", "),
                if missed_ids.len() > 10 { " …" } else { "" }
            ));
        }
        if log.repeats > 0 || log.malformed > 0 {
            verdict.violation(format!(
                "agent {} got {} repeated or out-of-order and {} unreadable events",
                log.index, log.repeats, log.malformed
            ));
        }
    }
    if logs.is_empty() {
        expected_range = [0, 0];
    }
    report.expected_per_subscriber = expected_range;
    report.complete = verdict.holds();
    if !per_subscriber.is_empty() {
        let least = per_subscriber.iter().copied().fold(f64::INFINITY, f64::min);
        let most = per_subscriber.iter().copied().fold(0.0, f64::max);
        let mean = per_subscriber.iter().sum::<f64>() / per_subscriber.len() as f64;
        report.events_per_subscriber = [least, mean, most];
    }

    let mut distinct: BTreeMap<String, HashSet<i64>> = BTreeMap::new();
    for receipt in &recordings.alert_receipts {
        distinct
            .entry(receipt.kind.clone())
            .or_default()
            .insert(receipt.event_id);
    }
    for (kind, track) in &recordings.by_alert_kind {
        let summary = track.summary();
        report.alerts_by_kind.insert(
            kind.clone(),
            AlertKindFigures {
                alerts: distinct.get(kind).map_or(0, |ids| ids.len() as u64),
                receipts: summary.count,
                fix_triggered: FIX_TRIGGERED.contains(&kind.as_str()),
                latency: summary,
            },
        );
    }
    report.fix_to_alert = fix_to_alert(&recordings.alert_receipts, fix_log, origin);
    if let Some(fix_log) = fix_log {
        report.jobs_by_behaviour = fix_log.jobs_by_behaviour();
    }
    (report, verdict)
}

/// The fix → alert figures from the alert receipts and the fix log. Pure but for reading
/// the log.
fn fix_to_alert(
    receipts: &[AlertReceipt],
    fix_log: Option<&FixLog>,
    origin: DateTime<Utc>,
) -> FixToAlert {
    let mut figures = FixToAlert::default();
    let mut latency = LatencyTrack::default();
    let mut to_recorded = LatencyTrack::default();
    let mut recorded_to_received = LatencyTrack::default();
    // Per distinct alert: the linked send (looked up once).
    let mut linked: HashMap<i64, Option<DateTime<Utc>>> = HashMap::new();
    for receipt in receipts {
        if !FIX_TRIGGERED.contains(&receipt.kind.as_str()) {
            continue;
        }
        let send = *linked.entry(receipt.event_id).or_insert_with(|| {
            let sends = fix_log
                .and_then(|log| {
                    log.job_of(&receipt.case_id)
                        .map(|job| log.sends_of(&job.vehicle_id))
                })
                .unwrap_or_default();
            let send = link_fix(&sends, receipt.at);
            if let Some(send) = send {
                to_recorded.record(
                    (receipt.at - origin).num_milliseconds() as f64 / 1000.0,
                    elapsed(send, receipt.at),
                );
            }
            send
        });
        let Some(send) = send else {
            continue;
        };
        let at_s = (receipt.received_at - origin).num_milliseconds() as f64 / 1000.0;
        latency.record(at_s, elapsed(send, receipt.received_at));
        recorded_to_received.record(at_s, elapsed(receipt.at, receipt.received_at));
    }
    figures.alerts = linked.len() as u64;
    figures.linked_alerts = linked.values().filter(|send| send.is_some()).count() as u64;
    figures.unlinked_alerts = figures.alerts - figures.linked_alerts;
    figures.latency = latency.summary();
    figures.receipts = figures.latency.count;
    figures.to_recorded = to_recorded.summary();
    figures.recorded_to_received = recorded_to_received.summary();
    figures.series = latency.series(MAX_POINTS);
    figures
}

/// The agents, created and logged in.
#[derive(Debug)]
pub struct Agents {
    tokens: Vec<String>,
    /// How long creating and logging them in took.
    pub setup_s: f64,
}

/// Logs in, waiting out the login rate limit (429 with `Retry-After`).
async fn login_patiently(api: &Api, username: &str, password: &str) -> anyhow::Result<String> {
    let mut attempt = 0u32;
    loop {
        match api.login(username, password).await {
            Ok(token) => return Ok(token),
            Err(error) if error.is_retryable() && attempt < 30 => {
                attempt += 1;
                let wait_s = match &error {
                    CallError::Status { retry_after_s, .. } => retry_after_s.unwrap_or(1),
                    CallError::Transport(_) => 1,
                };
                tokio::time::sleep(Duration::from_secs(wait_s.clamp(1, 10))).await;
            }
            Err(error) => {
                return Err(error).with_context(|| format!("logging agent {username} in"));
            }
        }
    }
}

impl Agents {
    /// Creates `count` agent users through the admin API and logs each in.
    pub async fn setup(
        api: &Api,
        admin_token: &str,
        count: usize,
        run_tag: &str,
        console: &Console,
    ) -> anyhow::Result<Agents> {
        let started = std::time::Instant::now();
        let bar = console.counter(count as u64, "creating agents");
        let results: Vec<anyhow::Result<String>> = futures::stream::iter(0..count)
            .map(|index| {
                let bar = bar.clone();
                async move {
                    let username = format!("load-watch-{run_tag}-{index:04}");
                    let password = format!("load-{}", uuid::Uuid::new_v4().simple());
                    api.create_user(admin_token, &username, &password, "agent")
                        .await
                        .with_context(|| format!("creating agent user {username}"))?;
                    let token = login_patiently(api, &username, &password).await?;
                    bar.inc(1);
                    Ok(token)
                }
            })
            .buffered(SETUP_CONCURRENCY)
            .collect()
            .await;
        bar.finish_and_clear();
        let tokens = results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
        let setup_s = started.elapsed().as_secs_f64();
        console.note(format!(
            "{count} agents created and logged in in {setup_s:.1} s"
        ));
        Ok(Agents { tokens, setup_s })
    }

    /// How many.
    pub fn count(&self) -> usize {
        self.tokens.len()
    }

    /// Subscribes every agent to the stream until `stop` is cancelled.
    pub fn start(
        &self,
        api: &Api,
        stats: &Arc<StreamStats>,
        recorder: &Arc<crate::stats::Recorder>,
        stop: &CancellationToken,
    ) -> anyhow::Result<Subscribers> {
        // No overall timeout: a stream lasts the run. Keep-alives come every 15 s.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(40))
            .tcp_nodelay(true)
            .no_proxy()
            .build()
            .context("building the stream client")?;
        let url = api.target().url("/v1/stream");
        let connected = Arc::new(AtomicUsize::new(0));
        let handles = self
            .tokens
            .iter()
            .enumerate()
            .map(|(index, token)| {
                tokio::spawn(run_subscriber(
                    Subscription {
                        index,
                        http: http.clone(),
                        url: url.clone(),
                        token: token.clone(),
                    },
                    stats.clone(),
                    recorder.clone(),
                    connected.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        Ok(Subscribers {
            handles,
            connected,
            stop: stop.clone(),
        })
    }
}

/// Running subscribers.
#[derive(Debug)]
pub struct Subscribers {
    handles: Vec<tokio::task::JoinHandle<SubscriberLog>>,
    connected: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl Subscribers {
    /// Waits until every subscriber has a stream, or `limit`; returns how many do.
    pub async fn wait_connected(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let connected = self.connected.load(Ordering::Acquire);
            if connected >= self.handles.len() || tokio::time::Instant::now() >= deadline {
                return connected;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Subscribers with a stream now.
    pub fn connected(&self) -> usize {
        self.connected.load(Ordering::Acquire)
    }

    /// Stops every subscriber; returns their logs and when they were told to stop.
    pub async fn stop(self) -> (Vec<SubscriberLog>, DateTime<Utc>) {
        let stopped_at = Utc::now();
        self.stop.cancel();
        let mut logs = Vec::with_capacity(self.handles.len());
        for (index, handle) in self.handles.into_iter().enumerate() {
            logs.push(handle.await.unwrap_or_else(|_| SubscriberLog::new(index)));
        }
        (logs, stopped_at)
    }
}

struct Subscription {
    index: usize,
    http: reqwest::Client,
    url: String,
    token: String,
}

/// One agent's stream for the run: connect, read, reconnect with `Last-Event-ID`.
async fn run_subscriber(
    subscription: Subscription,
    stats: Arc<StreamStats>,
    recorder: Arc<crate::stats::Recorder>,
    connected: Arc<AtomicUsize>,
    stop: CancellationToken,
) -> SubscriberLog {
    let mut log = SubscriberLog::new(subscription.index);
    let mut parser = SseParser::new();
    let mut backoff = Duration::from_millis(100);
    let mut live = false;
    while !stop.is_cancelled() {
        let mut request = subscription
            .http
            .get(&subscription.url)
            .bearer_auth(&subscription.token)
            .header("Accept", "text/event-stream");
        if let Some(last) = log.last_id {
            request = request.header("Last-Event-ID", last.to_string());
        }
        let answer = tokio::select! {
            _ = stop.cancelled() => break,
            answer = request.send() => answer,
        };
        let mut response = match answer {
            Ok(response) if response.status() == reqwest::StatusCode::OK => response,
            Ok(response) => {
                log.connect_failures += 1;
                recorder.error(format!(
                    "stream: connect: http {}",
                    response.status().as_u16()
                ));
                pause(&stop, &mut backoff, parser.retry_ms()).await;
                continue;
            }
            Err(error) => {
                log.connect_failures += 1;
                recorder.error(format!(
                    "stream: connect: {}",
                    if error.is_timeout() {
                        "timeout"
                    } else if error.is_connect() {
                        "connect"
                    } else {
                        "request"
                    }
                ));
                pause(&stop, &mut backoff, parser.retry_ms()).await;
                continue;
            }
        };
        if log.connected_at.is_none() {
            log.connected_at = Some(Utc::now());
        } else {
            log.reconnects += 1;
        }
        if !live {
            live = true;
            connected.fetch_add(1, Ordering::AcqRel);
        }
        backoff = Duration::from_millis(100);
        parser.reset_connection();
        loop {
            let chunk = tokio::select! {
                _ = stop.cancelled() => break,
                chunk = response.chunk() => chunk,
            };
            match chunk {
                Ok(Some(bytes)) => {
                    let received_at = Utc::now();
                    let mut events = Vec::new();
                    for message in parser.push(&bytes) {
                        match parse_event(&message) {
                            Ok(event) => {
                                if log.arrive(event.id) == Arrival::New {
                                    events.push(event);
                                }
                            }
                            Err(_) => log.malformed += 1,
                        }
                    }
                    stats.record(&events, received_at);
                }
                Ok(None) | Err(_) => {
                    if !stop.is_cancelled() {
                        log.disconnects += 1;
                        recorder.error("stream: disconnected (reconnected)");
                    }
                    break;
                }
            }
        }
        log.comments = parser.comments();
    }
    log.comments = parser.comments();
    log
}

async fn pause(stop: &CancellationToken, backoff: &mut Duration, retry_ms: Option<u64>) {
    let wait = retry_ms
        .map_or(*backoff, Duration::from_millis)
        .min(MAX_BACKOFF);
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(wait) => {}
    }
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        "2026-12-02T06:00:00Z".parse::<DateTime<Utc>>().unwrap()
            + chrono::Duration::milliseconds(ms)
    }

    fn message(id: i64, kind: &str, at_ms: i64, alert: Option<&str>) -> SseMessage {
        let data = match alert {
            Some(alert) => serde_json::json!({"kind": alert, "severity": "warning"}),
            None => serde_json::json!({}),
        };
        SseMessage {
            id: Some(id.to_string()),
            event: kind.to_owned(),
            data: serde_json::json!({
                "id": id, "case_id": "c1", "seq": 3, "at": at(at_ms), "kind": kind,
                "actor": "system", "data": data,
            })
            .to_string(),
        }
    }

    #[test]
    fn events_are_read_from_the_servers_json_and_ids_must_agree() {
        let event = parse_event(&message(12, "alert_raised", 250, Some("moving_away"))).unwrap();
        assert_eq!(event.id, 12);
        assert_eq!(event.alert_kind.as_deref(), Some("moving_away"));
        assert_eq!(event.at, at(250));
        let other = parse_event(&message(13, "status_changed", 0, None)).unwrap();
        assert_eq!(other.alert_kind, None);
        let mut wrong = message(14, "created", 0, None);
        wrong.id = Some("15".to_owned());
        assert!(parse_event(&wrong).is_err());
        wrong.id = None;
        assert!(parse_event(&wrong).is_err());
        wrong.data = "{not json".to_owned();
        assert!(parse_event(&wrong).is_err());
    }

    #[test]
    fn gaps_and_repeats_are_counted_and_repeats_dropped() {
        let mut log = SubscriberLog::new(0);
        assert_eq!(log.arrive(5), Arrival::New);
        assert_eq!(log.arrive(6), Arrival::New);
        assert_eq!(log.arrive(9), Arrival::New);
        assert_eq!(log.arrive(9), Arrival::Repeat);
        assert_eq!(log.arrive(7), Arrival::Repeat);
        assert_eq!(log.arrive(10), Arrival::New);
        assert_eq!((log.gaps, log.gap_ids, log.repeats), (1, 2, 2));
        assert_eq!(log.ids, vec![5, 6, 9, 10]);
        assert_eq!(log.last_id, Some(10));
    }

    #[test]
    fn latency_is_receive_time_minus_the_server_timestamp_split_by_kind() {
        let stats = StreamStats::new(at(0));
        let events = [
            parse_event(&message(1, "created", 1_000, None)).unwrap(),
            parse_event(&message(2, "alert_raised", 1_100, Some("gps_lost"))).unwrap(),
            // A timestamp after the receipt (clock resolution) counts as no latency.
            parse_event(&message(3, "status_changed", 1_500, None)).unwrap(),
        ];
        stats.record(&events, at(1_400));
        stats.record(&events[1..2], at(1_900));
        let recorded = stats.snapshot();
        assert_eq!(recorded.all.summary().count, 4);
        assert_eq!(recorded.events.len(), 3);
        assert_eq!(recorded.receipts_by_kind["alert_raised"], 2);
        let alerts = recorded.by_alert_kind["gps_lost"].summary();
        assert_eq!(alerts.count, 2);
        assert!((alerts.max_ms.unwrap() - 800.0).abs() < 1.0, "{alerts:?}");
        assert!((alerts.p50_ms.unwrap() - 300.0).abs() < 1.0, "{alerts:?}");
        let other = recorded.other.summary();
        assert!((other.max_ms.unwrap() - 400.0).abs() < 1.0, "{other:?}");
        assert!(other.p50_ms.unwrap() < 0.01, "{other:?}");
        assert_eq!(recorded.alert_receipts.len(), 2);
    }

    #[test]
    fn an_alert_is_linked_to_the_last_fix_sent_before_it_was_recorded() {
        let sends = [at(0), at(1_000), at(2_000), at(3_000)];
        assert_eq!(link_fix(&sends, at(2_400)), Some(at(2_000)));
        assert_eq!(link_fix(&sends, at(2_000)), Some(at(2_000)));
        assert_eq!(link_fix(&sends, at(-1)), None);
        assert_eq!(link_fix(&[], at(5)), None);
        assert_eq!(link_fix(&sends, at(9_000)), Some(at(3_000)));
    }

    #[test]
    fn fix_to_alert_uses_fix_triggered_kinds_and_the_cases_vehicle() {
        let log = FixLog::default();
        log.job("c1", "P000-T00001", "runaway");
        log.job("c2", "P000-T00002", "silent");
        log.sent(&["P000-T00001".to_owned()], at(0));
        log.sent(
            &["P000-T00001".to_owned(), "P000-T00002".to_owned()],
            at(1_000),
        );
        let receipt = |id, case: &str, kind: &str, at_ms, received_ms| AlertReceipt {
            event_id: id,
            case_id: case.to_owned(),
            kind: kind.to_owned(),
            at: at(at_ms),
            received_at: at(received_ms),
        };
        let receipts = [
            // Raised 150 ms after the second batch was sent, received by two agents.
            receipt(7, "c1", "moving_away", 1_150, 1_300),
            receipt(7, "c1", "moving_away", 1_150, 1_500),
            // gps_lost comes from the tick: not linked.
            receipt(8, "c2", "gps_lost", 5_000, 5_100),
            // A case no simulated truck took.
            receipt(9, "c9", "stalled", 2_000, 2_100),
        ];
        let figures = fix_to_alert(&receipts, Some(&log), at(0));
        assert_eq!(
            (
                figures.alerts,
                figures.linked_alerts,
                figures.unlinked_alerts
            ),
            (2, 1, 1)
        );
        assert_eq!(figures.receipts, 2);
        assert!((figures.latency.p50_ms.unwrap() - 300.0).abs() < 1.0);
        assert!((figures.latency.max_ms.unwrap() - 500.0).abs() < 1.0);
        assert_eq!(figures.to_recorded.count, 1);
        assert!((figures.to_recorded.max_ms.unwrap() - 150.0).abs() < 1.0);
        assert!((figures.recorded_to_received.max_ms.unwrap() - 350.0).abs() < 1.0);
        assert_eq!(log.jobs_by_behaviour()["runaway"], 1);
    }

    #[test]
    fn a_subscriber_must_see_every_event_recorded_while_it_was_connected() {
        let mut early = SubscriberLog::new(0);
        early.connected_at = Some(at(0));
        for id in [1, 2, 4] {
            early.arrive(id);
        }
        let mut late = SubscriberLog::new(1);
        late.connected_at = Some(at(1_500));
        late.arrive(3);
        late.arrive(4);
        let never = SubscriberLog::new(2);
        let truth: BTreeMap<i64, DateTime<Utc>> = [
            (1, at(500)),
            (2, at(1_000)),
            (3, at(2_000)),
            (4, at(3_000)),
            // After the window: nobody had to see it yet.
            (5, at(9_000)),
        ]
        .into_iter()
        .collect();
        let missed = missed_events(&[early, late, never], &truth, at(5_000));
        assert_eq!(missed[0], (4, vec![3]));
        assert_eq!(missed[1], (2, vec![]));
        assert_eq!(missed[2], (4, vec![1, 2, 3, 4]));
    }

    #[test]
    fn the_report_fails_the_invariant_on_a_miss_or_a_stream_that_never_connected() {
        let stats = StreamStats::new(at(0));
        let events: Vec<StreamEvent> = (1..=3)
            .map(|id| parse_event(&message(id, "created", id * 100, None)).unwrap())
            .collect();
        stats.record(&events, at(400));
        let mut full = SubscriberLog::new(0);
        full.connected_at = Some(at(0));
        for id in 1..=3 {
            full.arrive(id);
        }
        let (report, verdict) = build_report(
            std::slice::from_ref(&full),
            &stats.snapshot(),
            &[(1, at(100)), (2, at(200)), (3, at(300))],
            at(5_000),
            None,
            at(0),
        );
        assert!(verdict.holds(), "{verdict:?}");
        assert!(report.complete);
        assert_eq!((report.events, report.receipts), (3, 3));
        assert_eq!(report.events_per_subscriber, [3.0, 3.0, 3.0]);

        let mut partial = SubscriberLog::new(1);
        partial.connected_at = Some(at(0));
        partial.arrive(1);
        partial.arrive(3);
        let (report, verdict) = build_report(
            &[full, partial, SubscriberLog::new(2)],
            &stats.snapshot(),
            // An event only the read-back knows about counts too.
            &[(4, at(350))],
            at(5_000),
            None,
            at(0),
        );
        assert!(!verdict.holds());
        assert!(!report.complete);
        assert_eq!(report.connected, 2);
        assert_eq!(report.subscribers_missing, 3);
        assert_eq!(report.missed_events, 1 + 2 + 4);
        assert!(
            verdict
                .violations
                .iter()
                .any(|v| v.contains("never got a stream"))
        );
        assert_eq!(report.gaps, 1);
    }
}
