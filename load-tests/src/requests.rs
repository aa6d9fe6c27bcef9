//! The stream of rescue requests: drivers asking for help from the app (no credentials),
//! arriving as a Poisson process at a chosen rate, open loop (a slow server does not slow
//! the arrivals down), each with its own `Idempotency-Key` and retried with the same key
//! and body when no answer came back (or 429/503).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::Api;
use crate::console::Console;
use crate::invariants::Acknowledged;
use crate::mix::RequestMix;
use crate::rng::{self, SimRng, exponential};
use crate::sim::City;
use crate::stats::Recorder;

/// Metric and count names.
pub mod names {
    /// Latency of `POST /v1/cases` from the first attempt to the 201 (retries included).
    pub const CASE_REQUEST: &str = "case_request";
    /// Requests started.
    pub const CASES_SENT: &str = "cases_sent";
    /// Requests acknowledged with 201.
    pub const CASES_ACKNOWLEDGED: &str = "cases_acknowledged";
    /// Requests that failed for good.
    pub const CASES_FAILED: &str = "cases_failed";
    /// Attempts after the first.
    pub const CASE_RETRIES: &str = "case_retries";
    /// Requests naming a fault the triage rules consider solvable by phone.
    pub const CASES_PHONE_SOLVABLE: &str = "cases_phone_solvable";
}

/// Requests in flight beyond which the generator waits (and says so): a bound on memory
/// when the server stops answering.
const MAX_IN_FLIGHT: usize = 4096;

/// One step of a stepped request stream: arrivals at this mean rate for this long.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RateStep {
    /// Mean arrivals per second.
    pub rate: f64,
    /// Seconds.
    pub seconds: f64,
}

/// The request stream to send.
#[derive(Debug, Clone)]
pub struct RequestsSpec {
    /// Mean arrivals per second (of the first step, when there are steps).
    pub rate: f64,
    /// A stepped stream (a holiday storm): these rates one after the other, instead of
    /// `rate` for `duration`. Empty for a steady stream.
    pub steps: Vec<RateStep>,
    /// Stop after this long …
    pub duration: Option<Duration>,
    /// … or after this many requests, whichever comes first.
    pub count: Option<u64>,
    /// Attempts after the first, per request.
    pub max_retries: u32,
    /// Where the customers are.
    pub city: City,
    /// The run's seed.
    pub seed: u64,
    /// A tag unique to the run, in request markers.
    pub run_tag: String,
}

impl RequestsSpec {
    /// How many requests at most.
    pub fn planned(&self) -> u64 {
        let by_duration = if self.steps.is_empty() {
            self.duration
                .map(|duration| (duration.as_secs_f64() * self.rate).ceil() as u64)
        } else {
            Some(
                self.steps
                    .iter()
                    .map(|step| (step.rate * step.seconds).ceil() as u64)
                    .sum(),
            )
        };
        match (self.count, by_duration) {
            (Some(count), Some(by_duration)) => count.min(by_duration.max(1)),
            (Some(count), None) => count,
            (None, Some(by_duration)) => by_duration,
            (None, None) => 0,
        }
    }
}

/// When each request is due, seconds after the start: Poisson arrivals. Pure.
pub fn arrival_times(rate: f64, count: u64, rng: &mut SimRng) -> Vec<f64> {
    let mut at_s = 0.0;
    (0..count)
        .map(|_| {
            at_s += exponential(rng, 1.0 / rate);
            at_s
        })
        .collect()
}

/// When each request of a stepped stream is due, seconds after the start: Poisson arrivals
/// at each step's rate within the step, at most `count` of them. Pure.
pub fn stepped_arrival_times(steps: &[RateStep], count: u64, rng: &mut SimRng) -> Vec<f64> {
    let mut arrivals = Vec::new();
    let mut step_start = 0.0;
    for step in steps {
        let step_end = step_start + step.seconds;
        let mut at_s = step_start;
        loop {
            at_s += exponential(rng, 1.0 / step.rate);
            if at_s >= step_end || arrivals.len() as u64 >= count {
                break;
            }
            arrivals.push(at_s);
        }
        step_start = step_end;
    }
    arrivals
}

/// What the stream produced.
#[derive(Debug, Clone, Default)]
pub struct RequestsOutcome {
    /// Every acknowledged request.
    pub acknowledged: Vec<Acknowledged>,
    /// How long the stream ran.
    pub elapsed: Duration,
    /// When the first request was due (steps count from here).
    pub started_at: chrono::DateTime<chrono::Utc>,
}

/// Sends the stream; returns when every request has been answered or given up.
pub async fn run(
    api: &Api,
    spec: &RequestsSpec,
    recorder: &Arc<Recorder>,
    console: &Console,
    stop: &CancellationToken,
) -> anyhow::Result<RequestsOutcome> {
    anyhow::ensure!(spec.rate > 0.0, "the request rate must be positive");
    let planned = spec.planned();
    anyhow::ensure!(planned > 0, "give --count or --duration-s");
    let mut schedule_rng = rng::stream(spec.seed, "request-arrivals");
    let mut body_rng = rng::stream(spec.seed, "request-bodies");
    anyhow::ensure!(
        spec.steps
            .iter()
            .all(|step| step.rate > 0.0 && step.seconds > 0.0),
        "every step needs a positive rate and length"
    );
    let arrivals = if spec.steps.is_empty() {
        arrival_times(spec.rate, planned, &mut schedule_rng)
    } else {
        stepped_arrival_times(&spec.steps, planned, &mut schedule_rng)
    };
    let mix = RequestMix::new(spec.city, &spec.run_tag);
    let bar = console.counter(planned, "rescue requests");
    let started = tokio::time::Instant::now();
    let started_at = chrono::Utc::now();
    let deadline = spec.duration.map(|duration| started + duration);
    let mut in_flight = JoinSet::new();
    let mut acknowledged = Vec::new();
    let mut backlog_noted = false;
    for (sequence, at_s) in arrivals.into_iter().enumerate() {
        let due = started + Duration::from_secs_f64(at_s);
        if deadline.is_some_and(|deadline| due > deadline) {
            break;
        }
        // Collect finished requests while waiting for the next arrival.
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep_until(due) => break,
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if let Ok(Some(ack)) = done {
                        acknowledged.push(ack);
                    }
                }
            }
        }
        if stop.is_cancelled() {
            break;
        }
        while in_flight.len() >= MAX_IN_FLIGHT {
            if !backlog_noted {
                console.note(format!(
                    "warning: {MAX_IN_FLIGHT} requests in flight; arrivals now wait for answers"
                ));
                recorder.error("client: in-flight limit reached");
                backlog_noted = true;
            }
            if let Some(Ok(Some(ack))) = in_flight.join_next().await {
                acknowledged.push(ack);
            }
        }
        let generated = mix.generate(sequence as u64, &mut body_rng);
        if crate::mix::FAULTS[generated.fault].phone_solvable {
            recorder.count(names::CASES_PHONE_SOLVABLE, 1);
        }
        let key = rng::uuid_v4(&mut body_rng).to_string();
        let (api, recorder, bar, max_retries) =
            (api.clone(), recorder.clone(), bar.clone(), spec.max_retries);
        in_flight.spawn(async move {
            let ack = send_one(
                &api,
                &generated.body,
                &key,
                &generated.marker,
                max_retries,
                &recorder,
            )
            .await;
            bar.inc(1);
            ack
        });
    }
    while let Some(done) = in_flight.join_next().await {
        if let Ok(Some(ack)) = done {
            acknowledged.push(ack);
        }
    }
    bar.finish_and_clear();
    Ok(RequestsOutcome {
        acknowledged,
        elapsed: started.elapsed(),
        started_at,
    })
}

/// Sends one request, retrying with the same key and body; `None` when it failed for good.
async fn send_one(
    api: &Api,
    body: &serde_json::Value,
    key: &str,
    marker: &str,
    max_retries: u32,
    recorder: &Recorder,
) -> Option<Acknowledged> {
    recorder.count(names::CASES_SENT, 1);
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        match api.create_case(body, key).await {
            Ok(created) => {
                recorder.latency(names::CASE_REQUEST, started.elapsed());
                recorder.count(names::CASES_ACKNOWLEDGED, 1);
                return Some(Acknowledged {
                    idempotency_key: key.to_owned(),
                    case_id: created.case.id,
                    marker: marker.to_owned(),
                });
            }
            Err(error) => {
                recorder.error(format!("create case: {}", error.kind()));
                if !error.is_retryable() || attempt >= max_retries {
                    recorder.count(names::CASES_FAILED, 1);
                    return None;
                }
                attempt += 1;
                recorder.count(names::CASE_RETRIES, 1);
                let backoff = match &error {
                    crate::api::CallError::Status {
                        retry_after_s: Some(seconds),
                        ..
                    } => Duration::from_secs((*seconds).min(10)),
                    _ => Duration::from_millis(200 * 2u64.pow(attempt.min(5))),
                };
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrivals_come_at_the_asked_rate_in_increasing_order() {
        let mut rng = rng::stream(8, "arrivals");
        let arrivals = arrival_times(50.0, 5_000, &mut rng);
        assert!(arrivals.windows(2).all(|pair| pair[0] < pair[1]));
        let rate = 5_000.0 / arrivals.last().unwrap();
        assert!((rate - 50.0).abs() < 2.5, "{rate}/s");
    }

    #[test]
    fn the_planned_count_is_the_smaller_of_count_and_rate_times_duration() {
        let spec = RequestsSpec {
            rate: 50.0,
            steps: Vec::new(),
            duration: Some(Duration::from_secs(60)),
            count: None,
            max_retries: 3,
            city: City::default(),
            seed: 1,
            run_tag: "t".to_owned(),
        };
        assert_eq!(spec.planned(), 3_000);
        assert_eq!(
            RequestsSpec {
                count: Some(100),
                ..spec.clone()
            }
            .planned(),
            100
        );
        assert_eq!(
            RequestsSpec {
                duration: None,
                count: Some(7),
                ..spec
            }
            .planned(),
            7
        );
    }

    #[test]
    fn a_stepped_stream_keeps_each_rate_within_its_step() {
        let steps = [
            RateStep {
                rate: 20.0,
                seconds: 50.0,
            },
            RateStep {
                rate: 200.0,
                seconds: 25.0,
            },
        ];
        let spec = RequestsSpec {
            rate: 20.0,
            steps: steps.to_vec(),
            duration: Some(Duration::from_secs(75)),
            count: None,
            max_retries: 3,
            city: City::default(),
            seed: 1,
            run_tag: "t".to_owned(),
        };
        assert_eq!(spec.planned(), 1_000 + 5_000);
        let mut rng = rng::stream(8, "arrivals");
        let arrivals = stepped_arrival_times(&steps, spec.planned(), &mut rng);
        assert!(arrivals.windows(2).all(|pair| pair[0] < pair[1]));
        let first = arrivals.iter().filter(|at| **at < 50.0).count() as f64;
        let second = arrivals.iter().filter(|at| **at >= 50.0).count() as f64;
        assert!(
            (first / 50.0 - 20.0).abs() < 2.0,
            "{first} in the first step"
        );
        assert!(
            (second / 25.0 - 200.0).abs() < 12.0,
            "{second} in the second"
        );
        assert!(*arrivals.last().unwrap() < 75.0);
        // A cap stops the stream early.
        let mut rng = rng::stream(8, "arrivals");
        assert_eq!(stepped_arrival_times(&steps, 30, &mut rng).len(), 30);
    }
}
