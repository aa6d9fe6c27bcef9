//! The server's own dispatch-latency histogram, read from `GET /metrics`.
//!
//! Dispatch latency is defined as *request accepted → first offer persisted*. The case
//! timelines cannot show the second moment: the `offer_sent` event is stamped before the
//! transaction that writes it commits (and when the first offer is written with the case,
//! in the same commit as `created`). The server measures the interval itself, from the
//! request's arrival to the return of the commit, into the Prometheus histogram
//! `rescue_dispatch_latency_seconds`. A run reads it before and after (and, for a storm,
//! once a second) and reports quantiles of the difference, interpolated within buckets
//! as Prometheus' `histogram_quantile` does. With the server's bucket bounds at 10 ms
//! and 50 ms, whether a p99 target is met is exact.

use std::time::{Duration, Instant};

use reqwest::Method;

use crate::api::Api;

/// The histogram the server records dispatch latency in.
pub const DISPATCH_LATENCY: &str = "rescue_dispatch_latency_seconds";

/// A cumulative Prometheus histogram: counts of observations `≤` each bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Upper bounds in seconds, ascending, the last one `+Inf`.
    pub bounds: Vec<f64>,
    /// Cumulative counts, one per bound.
    pub cumulative: Vec<u64>,
}

impl Histogram {
    /// The histogram `name` in a Prometheus text exposition; `None` when it has no
    /// observations yet (the exporter leaves it out) or the text does not hold it.
    pub fn parse(text: &str, name: &str) -> Option<Histogram> {
        let prefix = format!("{name}_bucket{{");
        let mut buckets: Vec<(f64, u64)> = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(&prefix) else {
                continue;
            };
            let (labels, value) = rest.split_once("} ")?;
            let le = labels
                .split(',')
                .find_map(|label| label.trim().strip_prefix("le=\""))?
                .trim_end_matches('"');
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            buckets.push((bound, value.trim().parse::<f64>().ok()? as u64));
        }
        if buckets.is_empty() {
            return None;
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Some(Histogram {
            bounds: buckets.iter().map(|(bound, _)| *bound).collect(),
            cumulative: buckets.iter().map(|(_, count)| *count).collect(),
        })
    }

    /// Observations in all.
    pub fn count(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// The observations made since `earlier` (a reading of the same histogram); an
    /// absent earlier reading counts as empty.
    pub fn since(&self, earlier: Option<&Histogram>) -> Histogram {
        let Some(earlier) = earlier.filter(|earlier| earlier.bounds == self.bounds) else {
            return self.clone();
        };
        Histogram {
            bounds: self.bounds.clone(),
            cumulative: self
                .cumulative
                .iter()
                .zip(&earlier.cumulative)
                .map(|(now, before)| now.saturating_sub(*before))
                .collect(),
        }
    }

    /// The `q`-quantile in seconds, linearly interpolated within its bucket. Falls in
    /// the `+Inf` bucket: the highest finite bound (a lower bound of the truth).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * count as f64;
        let mut lower_bound = 0.0;
        let mut lower_count = 0u64;
        for (bound, cumulative) in self.bounds.iter().zip(&self.cumulative) {
            if *cumulative as f64 >= rank && *cumulative > lower_count {
                if bound.is_infinite() {
                    return Some(lower_bound);
                }
                let in_bucket = (*cumulative - lower_count) as f64;
                let into = (rank - lower_count as f64).max(0.0) / in_bucket;
                return Some(lower_bound + (bound - lower_bound) * into);
            }
            if bound.is_finite() {
                lower_bound = *bound;
            }
            lower_count = *cumulative;
        }
        Some(lower_bound)
    }

    /// Share of observations `≤ bound` seconds, when `bound` is one of the bucket bounds.
    pub fn share_within(&self, bound: f64) -> Option<f64> {
        let count = self.count();
        let index = self
            .bounds
            .iter()
            .position(|b| (b - bound).abs() < bound * 1e-9)?;
        (count > 0).then(|| self.cumulative[index] as f64 / count as f64)
    }
}

/// Reads the dispatch-latency histogram from the server; `None` when it has none yet or
/// cannot be read.
pub async fn read_dispatch_latency(api: &Api) -> Option<Histogram> {
    let text: String = api.text(Method::GET, "/metrics").await.ok()?;
    Histogram::parse(&text, DISPATCH_LATENCY)
}

/// Readings of the histogram taken about once a second while requests run, each with
/// the seconds since the first request was due.
#[derive(Debug, Default, Clone)]
pub struct Readings {
    /// `(seconds since start, reading)`, oldest first.
    pub readings: Vec<(f64, Option<Histogram>)>,
}

impl Readings {
    /// The observations from the last reading at or before `from_s` (else the first) to
    /// the first reading at or after `to_s` (else the last).
    pub fn between(&self, from_s: f64, to_s: f64) -> Option<Histogram> {
        let start = self
            .readings
            .iter()
            .rev()
            .find(|(t, _)| *t <= from_s)
            .or_else(|| self.readings.first())?;
        let end = self
            .readings
            .iter()
            .find(|(t, _)| *t >= to_s)
            .or_else(|| self.readings.last())?;
        Some(end.1.as_ref()?.since(start.1.as_ref()))
    }
}

/// Reads the histogram once a second until `stop` flips, from `started`.
pub async fn sample(
    api: Api,
    started: Instant,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Readings {
    let mut readings = Readings::default();
    let mut stop = stop;
    loop {
        let reading = read_dispatch_latency(&api).await;
        readings
            .readings
            .push((started.elapsed().as_secs_f64(), reading));
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {
                let reading = read_dispatch_latency(&api).await;
                readings.readings.push((started.elapsed().as_secs_f64(), reading));
                return readings;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE rescue_dispatch_latency_seconds histogram\n\
        rescue_dispatch_latency_seconds_bucket{le=\"0.001\"} 10\n\
        rescue_dispatch_latency_seconds_bucket{le=\"0.005\"} 90\n\
        rescue_dispatch_latency_seconds_bucket{le=\"0.01\"} 99\n\
        rescue_dispatch_latency_seconds_bucket{le=\"+Inf\"} 100\n\
        rescue_dispatch_latency_seconds_sum 0.4\n\
        rescue_dispatch_latency_seconds_count 100\n\
        rescue_other_seconds_bucket{le=\"0.001\"} 7\n";

    #[test]
    fn a_histogram_is_read_from_the_exposition_text() {
        let histogram = Histogram::parse(TEXT, DISPATCH_LATENCY).unwrap();
        assert_eq!(histogram.bounds, [0.001, 0.005, 0.01, f64::INFINITY]);
        assert_eq!(histogram.cumulative, [10, 90, 99, 100]);
        assert_eq!(histogram.count(), 100);
        assert!(Histogram::parse(TEXT, "rescue_missing_seconds").is_none());
    }

    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        let histogram = Histogram::parse(TEXT, DISPATCH_LATENCY).unwrap();
        // The 50th observation is 40 of the 80 in (1 ms, 5 ms]: half way.
        assert!((histogram.quantile(0.5).unwrap() - 0.003).abs() < 1e-12);
        // The 99th is the last of (5 ms, 10 ms].
        assert!((histogram.quantile(0.99).unwrap() - 0.01).abs() < 1e-12);
        // Beyond the last finite bound: that bound, a lower limit.
        assert_eq!(histogram.quantile(1.0), Some(0.01));
        assert_eq!(histogram.share_within(0.01), Some(0.99));
        assert_eq!(histogram.share_within(0.02), None);
    }

    #[test]
    fn a_run_counts_only_what_happened_since_its_first_reading() {
        let before = Histogram::parse(TEXT, DISPATCH_LATENCY).unwrap();
        let mut after = before.clone();
        after.cumulative = vec![10, 190, 199, 200];
        let run = after.since(Some(&before));
        assert_eq!(run.cumulative, [0, 100, 100, 100]);
        assert_eq!(run.share_within(0.005), Some(1.0));
        assert_eq!(after.since(None), after);
        let readings = Readings {
            readings: vec![(0.0, None), (1.0, Some(before)), (2.0, Some(after))],
        };
        assert_eq!(readings.between(1.1, 1.9).unwrap().count(), 100);
        assert_eq!(readings.between(1.0, 2.0).unwrap().count(), 100);
        assert_eq!(readings.between(0.0, f64::INFINITY).unwrap().count(), 200);
        assert_eq!(readings.between(0.0, 0.0), None);
        assert_eq!(Histogram::parse("", DISPATCH_LATENCY), None);
        assert_eq!(run.quantile(0.0), Some(0.001));
    }
}
