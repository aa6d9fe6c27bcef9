//! Measurement: latency histograms (HdrHistogram), per-second time series, counters and
//! errors by kind, shared by every task of a run. Recording takes a short lock; the maths
//! that turns recordings into a report is pure.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency a histogram holds, µs (longer ones are recorded as this): 10 minutes.
const MAX_LATENCY_US: u64 = 600_000_000;

fn histogram(significant_figures: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, significant_figures)
        .expect("static histogram bounds are valid")
}

/// Percentiles of a latency distribution, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Mean.
    pub mean_ms: Option<f64>,
    /// Median.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Largest.
    pub max_ms: Option<f64>,
}

/// One point of a latency-over-time series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatencyPoint {
    /// Seconds since the start of the run (start of the bucket).
    pub t_s: f64,
    /// Samples in the bucket.
    pub count: u64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

/// One point of a rate-over-time series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatePoint {
    /// Seconds since the start of the run (start of the bucket).
    pub t_s: f64,
    /// Events per second over the bucket.
    pub per_s: f64,
}

/// A latency distribution, in total and second by second.
#[derive(Debug, Clone)]
pub struct LatencyTrack {
    total: Histogram<u64>,
    per_second: Vec<Option<Histogram<u64>>>,
}

impl Default for LatencyTrack {
    fn default() -> Self {
        LatencyTrack {
            total: histogram(3),
            per_second: Vec::new(),
        }
    }
}

fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

impl LatencyTrack {
    /// Records `latency` observed `at_s` seconds into the run.
    pub fn record(&mut self, at_s: f64, latency: Duration) {
        let value = micros(latency);
        self.total.saturating_record(value);
        let second = at_s.max(0.0) as usize;
        if self.per_second.len() <= second {
            self.per_second.resize(second + 1, None);
        }
        self.per_second[second]
            .get_or_insert_with(|| histogram(2))
            .saturating_record(value);
    }

    /// Percentiles over the whole run.
    pub fn summary(&self) -> LatencySummary {
        summarise(&self.total)
    }

    /// The latency over time in at most `max_points` buckets of whole seconds.
    pub fn series(&self, max_points: usize) -> Vec<LatencyPoint> {
        let width = bucket_width(self.per_second.len(), max_points);
        self.per_second
            .chunks(width)
            .enumerate()
            .filter_map(|(index, chunk)| {
                let mut merged = histogram(2);
                for bucket in chunk.iter().flatten() {
                    merged.add(bucket).expect("histograms of equal bounds add");
                }
                (!merged.is_empty()).then(|| LatencyPoint {
                    t_s: (index * width) as f64,
                    count: merged.len(),
                    p50_ms: ms(merged.value_at_quantile(0.50)),
                    p99_ms: ms(merged.value_at_quantile(0.99)),
                    max_ms: ms(merged.max()),
                })
            })
            .collect()
    }

    /// Samples per bucket of a log-spaced histogram: `(upper bound ms, count)` pairs.
    pub fn distribution(&self) -> Vec<(f64, u64)> {
        if self.total.is_empty() {
            return Vec::new();
        }
        // Buckets doubling from 0.05 ms: fine enough for sub-millisecond requests,
        // wide enough for seconds.
        let mut bounds_us = vec![50u64];
        while *bounds_us.last().expect("non-empty") < self.total.max() {
            let next = bounds_us.last().expect("non-empty") * 2;
            bounds_us.push(next);
        }
        let mut counts = vec![0u64; bounds_us.len()];
        for value in self.total.iter_recorded() {
            let index = bounds_us
                .iter()
                .position(|bound| value.value_iterated_to() <= *bound)
                .unwrap_or(bounds_us.len() - 1);
            counts[index] += value.count_at_value();
        }
        // From the first non-empty bucket on.
        let first = counts.iter().position(|count| *count > 0).unwrap_or(0);
        bounds_us
            .into_iter()
            .map(ms)
            .zip(counts)
            .skip(first)
            .collect()
    }
}

fn bucket_width(seconds: usize, max_points: usize) -> usize {
    seconds.div_ceil(max_points.max(1)).max(1)
}

/// The percentiles of a histogram of microseconds.
pub fn summarise(histogram: &Histogram<u64>) -> LatencySummary {
    if histogram.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        count: histogram.len(),
        mean_ms: Some(histogram.mean() / 1000.0),
        p50_ms: Some(ms(histogram.value_at_quantile(0.50))),
        p90_ms: Some(ms(histogram.value_at_quantile(0.90))),
        p99_ms: Some(ms(histogram.value_at_quantile(0.99))),
        max_ms: Some(ms(histogram.max())),
    }
}

/// A count, in total and second by second.
#[derive(Debug, Clone, Default)]
pub struct CountTrack {
    total: u64,
    per_second: Vec<u64>,
}

impl CountTrack {
    /// Adds `amount` events observed `at_s` seconds into the run.
    pub fn add(&mut self, at_s: f64, amount: u64) {
        self.total += amount;
        let second = at_s.max(0.0) as usize;
        if self.per_second.len() <= second {
            self.per_second.resize(second + 1, 0);
        }
        self.per_second[second] += amount;
    }

    /// The total.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Events from second `from_s` up to (not including) second `to_s`.
    pub fn between(&self, from_s: usize, to_s: usize) -> u64 {
        self.per_second.iter().take(to_s).skip(from_s).sum()
    }

    /// The rate over time in at most `max_points` buckets of whole seconds.
    pub fn series(&self, max_points: usize) -> Vec<RatePoint> {
        let width = bucket_width(self.per_second.len(), max_points);
        self.per_second
            .chunks(width)
            .enumerate()
            .map(|(index, chunk)| RatePoint {
                t_s: (index * width) as f64,
                per_s: chunk.iter().sum::<u64>() as f64 / chunk.len() as f64,
            })
            .collect()
    }
}

/// Everything a run measures while it runs, shared by its tasks.
#[derive(Debug)]
pub struct Recorder {
    started: Instant,
    inner: Mutex<Recordings>,
}

/// The recordings, by name.
#[derive(Debug, Default, Clone)]
pub struct Recordings {
    /// Latencies by metric name.
    pub latencies: BTreeMap<&'static str, LatencyTrack>,
    /// Counts by name.
    pub counts: BTreeMap<&'static str, CountTrack>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Recorder {
        Recorder::starting_at(Instant::now())
    }

    /// A recorder whose clock started at `started`.
    pub fn starting_at(started: Instant) -> Recorder {
        Recorder {
            started,
            inner: Mutex::new(Recordings::default()),
        }
    }

    /// When the run's clock started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Seconds since the start.
    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    fn with<T>(&self, apply: impl FnOnce(&mut Recordings) -> T) -> T {
        let mut recordings = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        apply(&mut recordings)
    }

    /// Records a latency of the metric `name`, observed now.
    pub fn latency(&self, name: &'static str, latency: Duration) {
        let at_s = self.elapsed_s();
        self.with(|r| r.latencies.entry(name).or_default().record(at_s, latency));
    }

    /// Adds to the count `name`, now.
    pub fn count(&self, name: &'static str, amount: u64) {
        let at_s = self.elapsed_s();
        self.with(|r| r.counts.entry(name).or_default().add(at_s, amount));
    }

    /// Counts an error of `kind` (e.g. `transport: connect`, `http 503 service_unavailable`).
    pub fn error(&self, kind: impl Into<String>) {
        let kind = kind.into();
        self.with(|r| *r.errors.entry(kind).or_default() += 1);
    }

    /// Counts `amount` errors of `kind` at once.
    pub fn errors(&self, kind: impl Into<String>, amount: u64) {
        let kind = kind.into();
        self.with(|r| *r.errors.entry(kind).or_default() += amount);
    }

    /// The current value of the count `name`.
    pub fn total(&self, name: &'static str) -> u64 {
        self.with(|r| r.counts.get(name).map_or(0, CountTrack::total))
    }

    /// Number of errors so far.
    pub fn error_total(&self) -> u64 {
        self.with(|r| r.errors.values().sum())
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> Recordings {
        self.with(|r| r.clone())
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: Option<f64>, expected: f64) -> bool {
        actual.is_some_and(|value| (value - expected).abs() <= expected * 0.01 + 0.001)
    }

    #[test]
    fn percentiles_of_a_uniform_spread_are_where_they_should_be() {
        let mut track = LatencyTrack::default();
        for millis in 1..=1000u64 {
            track.record(0.0, Duration::from_millis(millis));
        }
        let summary = track.summary();
        assert_eq!(summary.count, 1000);
        assert!(close(summary.p50_ms, 500.0), "{summary:?}");
        assert!(close(summary.p90_ms, 900.0), "{summary:?}");
        assert!(close(summary.p99_ms, 990.0), "{summary:?}");
        assert!(close(summary.max_ms, 1000.0), "{summary:?}");
        assert!(close(summary.mean_ms, 500.5), "{summary:?}");
    }

    #[test]
    fn an_empty_track_has_no_percentiles_rather_than_zeros() {
        let summary = LatencyTrack::default().summary();
        assert_eq!(summary.count, 0);
        assert_eq!(summary.p99_ms, None);
    }

    #[test]
    fn samples_land_in_the_second_they_were_observed() {
        let mut track = LatencyTrack::default();
        track.record(0.2, Duration::from_millis(1));
        track.record(0.9, Duration::from_millis(3));
        track.record(2.5, Duration::from_millis(40));
        let series = track.series(100);
        assert_eq!(series.len(), 2, "the empty second is left out: {series:?}");
        assert_eq!((series[0].t_s, series[0].count), (0.0, 2));
        assert_eq!((series[1].t_s, series[1].count), (2.0, 1));
        assert!(close(Some(series[1].max_ms), 40.0));
    }

    #[test]
    fn a_long_series_is_merged_into_at_most_the_points_asked_for() {
        let mut counts = CountTrack::default();
        for second in 0..1000 {
            counts.add(second as f64 + 0.5, 10);
        }
        let series = counts.series(100);
        assert_eq!(series.len(), 100);
        assert!(series.iter().all(|point| (point.per_s - 10.0).abs() < 1e-9));
        assert_eq!(series[1].t_s, 10.0);
        assert_eq!(counts.total(), 10_000);
        assert_eq!(counts.between(2, 5), 30);
    }

    #[test]
    fn the_distribution_counts_every_sample_once() {
        let mut track = LatencyTrack::default();
        for micros in [60, 70, 900, 1_500, 250_000] {
            track.record(0.0, Duration::from_micros(micros));
        }
        let distribution = track.distribution();
        assert_eq!(distribution.iter().map(|(_, count)| count).sum::<u64>(), 5);
        assert!(distribution.windows(2).all(|pair| pair[0].0 < pair[1].0));
        assert!(distribution.last().unwrap().0 >= 250.0);
    }

    #[test]
    fn the_recorder_keeps_errors_by_kind() {
        let recorder = Recorder::new();
        recorder.error("transport: connect");
        recorder.error("transport: connect");
        recorder.error("http 503 service_unavailable");
        recorder.count("fixes_accepted", 100);
        let snapshot = recorder.snapshot();
        assert_eq!(snapshot.errors["transport: connect"], 2);
        assert_eq!(recorder.error_total(), 3);
        assert_eq!(recorder.total("fixes_accepted"), 100);
    }
}
