//! Live progress of one rescue: where the assigned vehicle is relative to the customer,
//! how fast it really goes, when it will arrive, and a one-word status.
//!
//! Every fix goes through the [`FixFilter`] first; only accepted fixes move the vehicle.
//! Positions are then smoothed by a component-wise median of the last few fixes, which
//! removes single outliers that were still physically possible (a 150 m multipath echo)
//! at the cost of one fix of lag. Everything derived — distance, displacement, path,
//! speeds — is computed on smoothed positions.
//!
//! # The arrival prediction
//!
//! `predicted arrival = last fix + remaining great-circle distance × detour factor ÷
//! effective speed`, where the effective speed blends the speed observed since departure
//! with the nominal speed of the road kind:
//!
//! ```text
//! weight   = observed_span_s / (observed_span_s + prior_weight_s × fraction_remaining)
//! effective = weight × observed_mean_speed + (1 − weight) × nominal_speed
//! ```
//!
//! * The observed speed is the mean over the last [`ProgressConfig::eta_speed_window_s`]
//!   (path driven ÷ time), so stops at lights and traffic count, as they will on the rest
//!   of the way; jitter does not add path because the path only grows in steps of
//!   [`ProgressConfig::path_step_m`].
//! * The nominal speed is the prior the promise was quoted with. It is worth
//!   `prior_weight_s` seconds of observation for a whole trip; a few seconds of driving
//!   (leaving a yard, a first red light) therefore barely move the prediction, while ten
//!   minutes of slow traffic dominate it.
//! * The prior's weight shrinks with the fraction of the trip still to go: near the
//!   customer the remaining road is the same neighbourhood the truck is driving through
//!   now, so what it does now is the better guide.
//!
//! Before departure the truck is assumed to leave now (or at the end of the departure
//! allowance, whichever is later) and to drive at the nominal speed, so a late departure
//! pushes the prediction back second by second.

use std::collections::VecDeque;

use domain::case::RoadKind;
use domain::geo::LatLon;
use domain::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::eta::EtaModel;
use crate::fix::{FilterConfig, Fix, FixCounters, FixFilter, FixVerdict};
use crate::units::{kmh_from_mps, median, mps_from_kmh, plus_seconds, seconds_between};

/// What is being tracked: where the customer waits, on which kind of road, and since when
/// the vehicle is committed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrackingTarget {
    /// The customer's position, WGS-84.
    pub customer: LatLon,
    /// The road kind at the customer, which picks the nominal speed.
    pub road_kind: RoadKind,
    /// When the vehicle accepted the job.
    pub accepted_at: Timestamp,
}

/// Where a rescue stands, in one word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressStatus {
    /// Accepted, but not yet moved away from where it accepted.
    AwaitingDeparture,
    /// On its way and getting closer.
    Approaching,
    /// On its way but not getting closer for a while.
    Stalled,
    /// The distance to the customer has been growing.
    MovingAway,
    /// Within the arrival radius of the customer (or declared on scene).
    Arrived,
    /// No fix for a while.
    GpsLost,
}

impl ProgressStatus {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ProgressStatus::AwaitingDeparture => "awaiting_departure",
            ProgressStatus::Approaching => "approaching",
            ProgressStatus::Stalled => "stalled",
            ProgressStatus::MovingAway => "moving_away",
            ProgressStatus::Arrived => "arrived",
            ProgressStatus::GpsLost => "gps_lost",
        }
    }
}

/// Tuning of the progress estimate. The defaults suit tow trucks reporting every 1–30 s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProgressConfig {
    /// The travel-time model, shared with the quote.
    pub eta: EtaModel,
    /// Plausibility of fixes.
    pub filter: FilterConfig,
    /// Positions are the component-wise median of this many last fixes. Default 3.
    pub smoothing_fixes: usize,
    /// … taken only from the last this many seconds. Default 60 s.
    pub smoothing_window_s: f64,
    /// Recent speed: median of the speed samples of the last this many seconds.
    /// Default 90 s.
    pub speed_window_s: f64,
    /// A speed sample spans at least this long, so metre-level jitter between close fixes
    /// does not read as speed. Default 10 s.
    pub speed_min_span_s: f64,
    /// The driven path grows only in steps of at least this much, so a parked truck's
    /// jitter adds nothing. Default 25 m.
    pub path_step_m: f64,
    /// The observed speed for the prediction is the mean over this window. Default 600 s.
    pub eta_speed_window_s: f64,
    /// How many seconds of observation the nominal speed is worth for a whole trip.
    /// Default 600 s.
    pub prior_weight_s: f64,
    /// The effective speed never drops below this, so a stopped truck has a finite (if
    /// distant) predicted arrival. Default 5 km/h.
    pub min_speed_kmh: f64,
    /// The truck has departed once it is this far from where it accepted. Default 150 m.
    pub departure_displacement_m: f64,
    /// Getting this much closer counts as progress. Default 100 m.
    pub progress_step_m: f64,
    /// Within this distance of the customer the truck has arrived. Default 100 m.
    pub arrival_radius_m: f64,
    /// Fixes older than this are dropped from memory. Default 900 s.
    pub history_s: f64,
    /// At most this many fixes are kept in memory (and persisted). Default 900.
    pub max_samples: usize,
    /// Status `gps_lost` after this long without a fix. Default 90 s.
    pub silence_status_s: f64,
    /// Status `stalled` after this long without progress. Default 90 s.
    pub stall_status_s: f64,
    /// Status `moving_away` when the distance grew by
    /// [`moving_away_status_growth_m`](Self::moving_away_status_growth_m) within this
    /// window. Default 180 s.
    pub moving_away_status_window_s: f64,
    /// See [`moving_away_status_window_s`](Self::moving_away_status_window_s).
    /// Default 300 m.
    pub moving_away_status_growth_m: f64,
}

impl Default for ProgressConfig {
    fn default() -> Self {
        Self {
            eta: EtaModel::default(),
            filter: FilterConfig::default(),
            smoothing_fixes: 3,
            smoothing_window_s: 60.0,
            speed_window_s: 90.0,
            speed_min_span_s: 10.0,
            path_step_m: 25.0,
            eta_speed_window_s: 600.0,
            prior_weight_s: 600.0,
            min_speed_kmh: 5.0,
            departure_displacement_m: 150.0,
            progress_step_m: 100.0,
            arrival_radius_m: 100.0,
            history_s: 900.0,
            max_samples: 900,
            silence_status_s: 90.0,
            stall_status_s: 90.0,
            moving_away_status_window_s: 180.0,
            moving_away_status_growth_m: 300.0,
        }
    }
}

/// One accepted fix with what was derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Sample {
    at: Timestamp,
    raw: LatLon,
    smoothed: LatLon,
    distance_m: f64,
    displacement_m: f64,
    path_m: f64,
    segment_speed_kmh: Option<f64>,
    reported_speed_kmh: Option<f64>,
}

/// The persisted part of a [`Progress`]: everything but the configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressState {
    target: TrackingTarget,
    filter: FixFilter,
    start: Option<LatLon>,
    start_distance_m: Option<f64>,
    samples: VecDeque<Sample>,
    path_m: f64,
    path_anchor: Option<LatLon>,
    departed_at: Option<Timestamp>,
    progress_reference_m: Option<f64>,
    last_progress_at: Option<Timestamp>,
    arrived_at: Option<Timestamp>,
    last_verdict: Option<FixVerdict>,
}

/// The live estimate at one instant, for the case view, the tracking page and the rules.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProgressSnapshot {
    /// The one-word status.
    pub status: ProgressStatus,
    /// Great-circle distance from the (smoothed) vehicle position to the customer; `None`
    /// before the first fix.
    pub remaining_distance_m: Option<f64>,
    /// Median speed of the last [`ProgressConfig::speed_window_s`]; `None` without samples.
    pub recent_speed_kmh: Option<f64>,
    /// Mean speed since departure over [`ProgressConfig::eta_speed_window_s`].
    pub observed_speed_kmh: Option<f64>,
    /// The speed the prediction uses (see the module docs).
    pub effective_speed_kmh: Option<f64>,
    /// Weight of the observed speed in the effective speed, 0 to 1.
    pub observed_weight: f64,
    /// Driving time still needed from the last fix, in seconds.
    pub drive_s: Option<f64>,
    /// When the vehicle is predicted to reach the customer.
    pub predicted_arrival: Option<Timestamp>,
    /// The newest accepted fix.
    pub last_fix_at: Option<Timestamp>,
    /// Seconds since the newest accepted fix (since acceptance when there is none).
    pub silence_s: f64,
    /// When the vehicle left.
    pub departed_at: Option<Timestamp>,
    /// Seconds without getting [`ProgressConfig::progress_step_m`] closer, up to the newest
    /// fix; `None` before departure.
    pub no_progress_s: Option<f64>,
    /// When the vehicle arrived.
    pub arrived_at: Option<Timestamp>,
}

/// The progress of one active case. Feed it every fix of the assigned vehicle; ask it for
/// a [`ProgressSnapshot`] whenever needed. All time comes from the arguments.
///
/// ```
/// use domain::{LatLon, RoadKind, Timestamp};
/// use tracking_core::{Fix, Progress, ProgressConfig, ProgressStatus, TrackingTarget};
///
/// let t0: Timestamp = "2026-11-22T03:00:00Z".parse().unwrap();
/// let at = |s: i64| t0 + chrono::Duration::seconds(s);
/// let customer = LatLon::new(39.7450, -104.99).unwrap();
/// let target = TrackingTarget { customer, road_kind: RoadKind::Urban, accepted_at: t0 };
/// let mut progress = Progress::new(target, ProgressConfig::default());
///
/// // The truck drives north at about 36 km/h (0.0001° latitude ≈ 11 m per second).
/// for s in (0..=300).step_by(10) {
///     let position = LatLon::new(39.7000 + 0.0001 * s as f64, -104.99).unwrap();
///     progress.ingest(&Fix { at: at(s), position, speed_kmh: None }, at(s));
/// }
/// let snapshot = progress.snapshot(at(300));
/// assert_eq!(snapshot.status, ProgressStatus::Approaching);
/// assert!((snapshot.remaining_distance_m.unwrap() - 1_670.0).abs() < 150.0);
/// assert!((snapshot.recent_speed_kmh.unwrap() - 40.0).abs() < 5.0);
/// assert!(snapshot.predicted_arrival.unwrap() > at(300));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    config: ProgressConfig,
    state: ProgressState,
}

/// Observations shorter than this do not count as an observed speed.
const MIN_OBSERVATION_S: f64 = 30.0;
/// A speed sample never spans a gap longer than this.
const MAX_SPEED_SPAN_S: f64 = 300.0;

impl Progress {
    /// Starts tracking `target`, with no fix yet. Feed the vehicle's position at
    /// acceptance as the first fix if it is known.
    pub fn new(target: TrackingTarget, config: ProgressConfig) -> Self {
        Self {
            config,
            state: ProgressState {
                target,
                filter: FixFilter::default(),
                start: None,
                start_distance_m: None,
                samples: VecDeque::new(),
                path_m: 0.0,
                path_anchor: None,
                departed_at: None,
                progress_reference_m: None,
                last_progress_at: None,
                arrived_at: None,
                last_verdict: None,
            },
        }
    }

    /// Restores a persisted progress under the current configuration.
    pub fn from_state(state: ProgressState, config: ProgressConfig) -> Self {
        Self { config, state }
    }

    /// The persisted part.
    pub fn state(&self) -> &ProgressState {
        &self.state
    }

    /// The configuration in force.
    pub fn config(&self) -> &ProgressConfig {
        &self.config
    }

    /// What is tracked.
    pub fn target(&self) -> &TrackingTarget {
        &self.state.target
    }

    /// Fix counts by verdict.
    pub fn counters(&self) -> &FixCounters {
        self.state.filter.counters()
    }

    /// The verdict on the most recent fix.
    pub fn last_verdict(&self) -> Option<FixVerdict> {
        self.state.last_verdict
    }

    /// Takes one fix received at `now`. Returns the filter's verdict; only accepted fixes
    /// change the progress.
    pub fn ingest(&mut self, fix: &Fix, now: Timestamp) -> FixVerdict {
        let verdict = self.state.filter.check(fix, now, &self.config.filter);
        self.state.last_verdict = Some(verdict);
        match verdict {
            FixVerdict::Accepted => self.record(fix),
            FixVerdict::Relocated => {
                self.restart_track();
                self.record(fix);
            }
            FixVerdict::Duplicate
            | FixVerdict::OutOfOrder
            | FixVerdict::ImplausibleJump
            | FixVerdict::FutureDated => {}
        }
        verdict
    }

    /// Declares the vehicle on scene (the provider said so), whatever the fixes say.
    pub fn mark_arrived(&mut self, at: Timestamp) {
        if self.state.arrived_at.is_none() {
            self.state.arrived_at = Some(at);
        }
    }

    /// When the vehicle departed.
    pub fn departed_at(&self) -> Option<Timestamp> {
        self.state.departed_at
    }

    /// When the vehicle arrived.
    pub fn arrived_at(&self) -> Option<Timestamp> {
        self.state.arrived_at
    }

    /// Time of the newest accepted fix.
    pub fn last_fix_at(&self) -> Option<Timestamp> {
        self.state.samples.back().map(|sample| sample.at)
    }

    /// How many accepted fixes the current track holds (a relocation restarts it).
    pub fn track_len(&self) -> usize {
        self.state.samples.len()
    }

    /// Smoothed distance to the customer at the newest fix.
    pub fn remaining_distance_m(&self) -> Option<f64> {
        self.state.samples.back().map(|sample| sample.distance_m)
    }

    /// Seconds since the newest accepted fix, or since acceptance before any fix.
    pub fn silence_s(&self, now: Timestamp) -> f64 {
        let since = self.last_fix_at().unwrap_or(self.state.target.accepted_at);
        seconds_between(since, now).max(0.0)
    }

    /// Seconds without progress towards the customer, up to the newest fix. `None` before
    /// departure.
    pub fn no_progress_s(&self) -> Option<f64> {
        let last_progress_at = self.state.last_progress_at?;
        let last_fix_at = self.last_fix_at()?;
        Some(seconds_between(last_progress_at, last_fix_at).max(0.0))
    }

    /// How much the smoothed distance to the customer grew within the last `window_s`
    /// seconds before the newest fix: its current value minus its minimum in the window.
    /// Zero when it did not grow.
    pub fn distance_growth_m(&self, window_s: f64) -> f64 {
        self.distance_range_m(window_s)
            .map_or(0.0, |range| (range.current_m - range.minimum_m).max(0.0))
    }

    /// How far the vehicle came back within the last `window_s` seconds: the maximum
    /// smoothed distance in the window minus the current one. Zero when it is at its
    /// farthest now.
    pub fn distance_retreat_m(&self, window_s: f64) -> f64 {
        self.distance_range_m(window_s)
            .map_or(0.0, |range| (range.maximum_m - range.current_m).max(0.0))
    }

    fn distance_range_m(&self, window_s: f64) -> Option<DistanceRange> {
        let last = self.state.samples.back()?;
        let window_start = plus_seconds(last.at, -window_s);
        let mut range = DistanceRange {
            minimum_m: last.distance_m,
            maximum_m: last.distance_m,
            current_m: last.distance_m,
        };
        for sample in self
            .state
            .samples
            .iter()
            .rev()
            .take_while(|sample| sample.at >= window_start)
        {
            range.minimum_m = range.minimum_m.min(sample.distance_m);
            range.maximum_m = range.maximum_m.max(sample.distance_m);
        }
        Some(range)
    }

    /// Median speed over the recent window: measured between fixes at least
    /// [`ProgressConfig::speed_min_span_s`] apart, plus what the device reported.
    pub fn recent_speed_kmh(&self) -> Option<f64> {
        let last = self.state.samples.back()?;
        let window_start = plus_seconds(last.at, -self.config.speed_window_s);
        let speeds_kmh: Vec<f64> = self
            .state
            .samples
            .iter()
            .rev()
            .take_while(|sample| sample.at >= window_start)
            .flat_map(|sample| [sample.segment_speed_kmh, sample.reported_speed_kmh])
            .flatten()
            .collect();
        median(speeds_kmh)
    }

    /// The estimate at `now`.
    pub fn snapshot(&self, now: Timestamp) -> ProgressSnapshot {
        let prediction = self.predict(now);
        ProgressSnapshot {
            status: self.status(now),
            remaining_distance_m: self.remaining_distance_m(),
            recent_speed_kmh: self.recent_speed_kmh(),
            observed_speed_kmh: prediction.and_then(|p| p.observed_speed_kmh),
            effective_speed_kmh: prediction.map(|p| p.effective_speed_kmh),
            observed_weight: prediction.map_or(0.0, |p| p.observed_weight),
            drive_s: prediction.map(|p| p.drive_s),
            predicted_arrival: prediction.map(|p| p.arrival),
            last_fix_at: self.last_fix_at(),
            silence_s: self.silence_s(now),
            departed_at: self.state.departed_at,
            no_progress_s: self.no_progress_s(),
            arrived_at: self.state.arrived_at,
        }
    }

    /// The one-word status at `now`.
    pub fn status(&self, now: Timestamp) -> ProgressStatus {
        let config = &self.config;
        if self.state.arrived_at.is_some() {
            return ProgressStatus::Arrived;
        }
        if self.silence_s(now) >= config.silence_status_s {
            return ProgressStatus::GpsLost;
        }
        if self.state.departed_at.is_none() {
            return ProgressStatus::AwaitingDeparture;
        }
        if self.distance_growth_m(config.moving_away_status_window_s)
            >= config.moving_away_status_growth_m
            && self.distance_retreat_m(config.moving_away_status_window_s) < config.progress_step_m
        {
            return ProgressStatus::MovingAway;
        }
        if self
            .no_progress_s()
            .is_some_and(|no_progress_s| no_progress_s >= config.stall_status_s)
        {
            return ProgressStatus::Stalled;
        }
        ProgressStatus::Approaching
    }

    fn predict(&self, now: Timestamp) -> Option<Prediction> {
        let last = self.state.samples.back()?;
        if let Some(arrived_at) = self.state.arrived_at {
            return Some(Prediction {
                arrival: arrived_at,
                drive_s: 0.0,
                effective_speed_kmh: 0.0,
                observed_speed_kmh: None,
                observed_weight: 0.0,
            });
        }
        let eta = &self.config.eta;
        let nominal_speed_kmh = eta.nominal_speed_kmh(self.state.target.road_kind);
        let road_m = eta.road_distance_m(last.distance_m);
        if self.state.departed_at.is_none() {
            let drive_s = road_m / mps_from_kmh(nominal_speed_kmh.max(1.0));
            let earliest_rolling_at =
                plus_seconds(self.state.target.accepted_at, eta.departure_allowance_s);
            let rolling_at = now.max(earliest_rolling_at);
            return Some(Prediction {
                arrival: plus_seconds(rolling_at, drive_s),
                drive_s,
                effective_speed_kmh: nominal_speed_kmh,
                observed_speed_kmh: None,
                observed_weight: 0.0,
            });
        }
        let observed = self.observed_speed();
        let fraction_remaining = match self.state.start_distance_m {
            Some(start_distance_m) if start_distance_m > 0.0 => {
                (last.distance_m / start_distance_m).clamp(0.0, 1.0)
            }
            _ => 0.0,
        };
        let observed_weight = match observed {
            Some((_, span_s)) => {
                let prior_s = self.config.prior_weight_s.max(0.0) * fraction_remaining;
                span_s / (span_s + prior_s)
            }
            None => 0.0,
        };
        let observed_speed_kmh = observed.map(|(speed_kmh, _)| speed_kmh);
        let blended_kmh = observed_weight * observed_speed_kmh.unwrap_or(0.0)
            + (1.0 - observed_weight) * nominal_speed_kmh;
        let effective_speed_kmh = blended_kmh.max(self.config.min_speed_kmh).max(0.1);
        let drive_s = road_m / mps_from_kmh(effective_speed_kmh);
        Some(Prediction {
            arrival: plus_seconds(last.at, drive_s).max(now),
            drive_s,
            effective_speed_kmh,
            observed_speed_kmh,
            observed_weight,
        })
    }

    /// Mean speed over the prediction window since departure, with the span it covers.
    fn observed_speed(&self) -> Option<(f64, f64)> {
        let departed_at = self.state.departed_at?;
        let samples = &self.state.samples;
        let last = samples.back()?;
        let window_start = departed_at.max(plus_seconds(last.at, -self.config.eta_speed_window_s));
        let first_index = samples.partition_point(|sample| sample.at < window_start);
        let first = samples.get(first_index)?;
        let span_s = seconds_between(first.at, last.at);
        if span_s < MIN_OBSERVATION_S {
            return None;
        }
        let speed_kmh = kmh_from_mps((last.path_m - first.path_m).max(0.0) / span_s);
        Some((speed_kmh, span_s))
    }

    /// Forgets the track after a relocation: the fixes before it were built on an outlier.
    fn restart_track(&mut self) {
        let state = &mut self.state;
        state.samples.clear();
        state.path_anchor = None;
        if state.departed_at.is_none() {
            state.start = None;
            state.start_distance_m = None;
        }
        state.progress_reference_m = None;
    }

    fn record(&mut self, fix: &Fix) {
        let smoothed = self.smoothed_position(fix);
        let config = &self.config;
        let state = &mut self.state;
        let distance_m = smoothed.distance_m(&state.target.customer);
        let start = *state.start.get_or_insert(smoothed);
        state.start_distance_m.get_or_insert(distance_m);
        let displacement_m = smoothed.distance_m(&start);

        match state.path_anchor {
            None => state.path_anchor = Some(smoothed),
            Some(anchor) => {
                let step_m = anchor.distance_m(&smoothed);
                if step_m >= config.path_step_m {
                    state.path_m += step_m;
                    state.path_anchor = Some(smoothed);
                }
            }
        }

        let segment_speed_kmh = state
            .samples
            .iter()
            .rev()
            .map(|sample| (sample, seconds_between(sample.at, fix.at)))
            .find(|(_, span_s)| *span_s >= config.speed_min_span_s)
            .filter(|(_, span_s)| *span_s <= MAX_SPEED_SPAN_S)
            .map(|(sample, span_s)| kmh_from_mps(sample.smoothed.distance_m(&smoothed) / span_s));

        state.samples.push_back(Sample {
            at: fix.at,
            raw: fix.position,
            smoothed,
            distance_m,
            displacement_m,
            path_m: state.path_m,
            segment_speed_kmh,
            reported_speed_kmh: fix.usable_speed_kmh(),
        });
        let oldest_kept = plus_seconds(fix.at, -config.history_s);
        while state.samples.len() > config.max_samples.max(2)
            || state
                .samples
                .front()
                .is_some_and(|sample| sample.at < oldest_kept)
        {
            state.samples.pop_front();
        }

        if state.departed_at.is_none() && displacement_m >= config.departure_displacement_m {
            state.departed_at = Some(fix.at);
        }
        if state.departed_at.is_some() {
            match state.progress_reference_m {
                None => {
                    state.progress_reference_m = Some(distance_m);
                    state.last_progress_at.get_or_insert(fix.at);
                }
                Some(reference_m) if distance_m <= reference_m - config.progress_step_m => {
                    state.progress_reference_m = Some(distance_m);
                    state.last_progress_at = Some(fix.at);
                }
                // Moving away raises the reference, so coming back counts as progress
                // again after one step.
                Some(reference_m) if distance_m > reference_m => {
                    state.progress_reference_m = Some(distance_m);
                }
                Some(_) => {}
            }
        }
        if state.arrived_at.is_none() && distance_m <= config.arrival_radius_m {
            state.arrived_at = Some(fix.at);
        }
    }

    /// Component-wise median of this fix and the previous few within the window.
    fn smoothed_position(&self, fix: &Fix) -> LatLon {
        let window_start = plus_seconds(fix.at, -self.config.smoothing_window_s);
        let mut positions: Vec<LatLon> = self
            .state
            .samples
            .iter()
            .rev()
            .take(self.config.smoothing_fixes.saturating_sub(1))
            .take_while(|sample| sample.at >= window_start)
            .map(|sample| sample.raw)
            .collect();
        positions.push(fix.position);
        let longitudes: Vec<f64> = positions.iter().map(LatLon::lon).collect();
        let lon_span = longitudes.iter().fold(f64::NEG_INFINITY, |a, b| a.max(*b))
            - longitudes.iter().fold(f64::INFINITY, |a, b| a.min(*b));
        if lon_span > 180.0 {
            // Straddling the antimeridian: a median of raw longitudes would be nonsense.
            return fix.position;
        }
        let latitudes: Vec<f64> = positions.iter().map(LatLon::lat).collect();
        match (median(latitudes), median(longitudes)) {
            (Some(lat), Some(lon)) => LatLon::new(lat, lon).unwrap_or(fix.position),
            _ => fix.position,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct DistanceRange {
    minimum_m: f64,
    maximum_m: f64,
    current_m: f64,
}

#[derive(Debug, Clone, Copy)]
struct Prediction {
    arrival: Timestamp,
    drive_s: f64,
    effective_speed_kmh: f64,
    observed_speed_kmh: Option<f64>,
    observed_weight: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::test_support::{at, point};

    /// The truck starts here; the customer waits 11.1 km due north.
    const START_LAT: f64 = 39.70;
    const LON: f64 = -104.99;
    const METRES_PER_DEGREE: f64 = 111_195.0;

    fn customer() -> LatLon {
        point(39.80, LON)
    }

    fn progress() -> Progress {
        let target = TrackingTarget {
            customer: customer(),
            road_kind: RoadKind::Urban,
            accepted_at: at(0),
        };
        Progress::new(target, ProgressConfig::default())
    }

    /// A fix `north_m` metres north of the start, `east_m` east.
    fn fix_at(seconds: i64, north_m: f64, east_m: f64) -> Fix {
        let lat = START_LAT + north_m / METRES_PER_DEGREE;
        let lon = LON + east_m / (METRES_PER_DEGREE * START_LAT.to_radians().cos());
        Fix {
            at: at(seconds),
            position: point(lat, lon),
            speed_kmh: None,
        }
    }

    /// Drives north at `speed_kmh` from `from_s` to `to_s`, a fix every `every_s`,
    /// starting `north_m` from the start. Returns where it ended.
    fn drive(
        progress: &mut Progress,
        from_s: i64,
        to_s: i64,
        every_s: usize,
        north_m: f64,
        speed_kmh: f64,
    ) -> f64 {
        let mut position_m = north_m;
        for seconds in (from_s..=to_s).step_by(every_s) {
            position_m = north_m + speed_kmh / 3.6 * (seconds - from_s) as f64;
            progress.ingest(&fix_at(seconds, position_m, 0.0), at(seconds));
        }
        position_m
    }

    #[test]
    fn before_any_fix_there_is_no_distance_and_no_prediction() {
        let snapshot = progress().snapshot(at(10));
        assert_eq!(snapshot.status, ProgressStatus::AwaitingDeparture);
        assert_eq!(snapshot.remaining_distance_m, None);
        assert_eq!(snapshot.predicted_arrival, None);
    }

    #[test]
    fn a_parked_truck_with_jittery_gps_neither_moves_nor_departs() {
        let mut progress = progress();
        let jitter_m = [0.0, 9.0, -7.0, 4.0, -10.0, 8.0, -3.0, 6.0];
        for seconds in 0..600_i64 {
            let north_m = jitter_m[seconds as usize % jitter_m.len()];
            let east_m = jitter_m[(seconds as usize + 3) % jitter_m.len()];
            progress.ingest(&fix_at(seconds, north_m, east_m), at(seconds));
        }
        let snapshot = progress.snapshot(at(600));
        assert_eq!(snapshot.status, ProgressStatus::AwaitingDeparture);
        assert!(snapshot.recent_speed_kmh.unwrap() < 3.0, "{snapshot:?}");
        assert_eq!(progress.state().path_m, 0.0);
    }

    #[test]
    fn before_departure_the_prediction_slides_with_time() {
        let mut progress = progress();
        progress.ingest(&fix_at(0, 0.0, 0.0), at(0));
        let early = progress.snapshot(at(60)).predicted_arrival.unwrap();
        let late = progress.snapshot(at(900)).predicted_arrival.unwrap();
        // The departure allowance (120 s) absorbs the first minutes, then every second of
        // waiting is a second later.
        assert_eq!((late - early).num_seconds(), 900 - 120);
    }

    #[test]
    fn at_acceptance_the_prediction_equals_the_quote() {
        let mut progress = progress();
        progress.ingest(&fix_at(0, 0.0, 0.0), at(0));
        let predicted = progress.snapshot(at(0)).predicted_arrival.unwrap();
        let quote_s = EtaModel::default().quote_s(
            &fix_at(0, 0.0, 0.0).position,
            &customer(),
            RoadKind::Urban,
        );
        assert!((seconds_between(at(0), predicted) - quote_s).abs() < 1.0);
    }

    #[test]
    fn a_steady_drive_is_approaching_with_its_real_speed() {
        let mut progress = progress();
        drive(&mut progress, 0, 600, 5, 0.0, 40.0);
        let snapshot = progress.snapshot(at(600));
        assert_eq!(snapshot.status, ProgressStatus::Approaching);
        assert!((snapshot.recent_speed_kmh.unwrap() - 40.0).abs() < 1.0);
        assert!((snapshot.observed_speed_kmh.unwrap() - 40.0).abs() < 2.0);
        assert!(snapshot.observed_weight > 0.5 && snapshot.observed_weight < 1.0);
        assert!(snapshot.effective_speed_kmh.unwrap() > 30.0);
    }

    #[test]
    fn the_observed_speed_weighs_more_as_the_truck_gets_closer() {
        let mut progress = progress();
        let north_m = drive(&mut progress, 0, 300, 5, 0.0, 40.0);
        let far_weight = progress.snapshot(at(300)).observed_weight;
        drive(&mut progress, 305, 900, 5, north_m, 40.0);
        let near_weight = progress.snapshot(at(900)).observed_weight;
        assert!(near_weight > far_weight, "{near_weight} <= {far_weight}");
    }

    #[test]
    fn slow_traffic_pushes_the_prediction_back() {
        let mut fast = progress();
        let mut slow = progress();
        drive(&mut fast, 0, 600, 5, 0.0, 45.0);
        let north_m = drive(&mut slow, 0, 300, 5, 0.0, 45.0);
        drive(&mut slow, 305, 900, 5, north_m, 10.0);
        let fast_eta_s =
            fast.snapshot(at(600)).drive_s.unwrap() / fast.remaining_distance_m().unwrap();
        let slow_eta_s =
            slow.snapshot(at(900)).drive_s.unwrap() / slow.remaining_distance_m().unwrap();
        assert!(
            slow_eta_s > 2.0 * fast_eta_s,
            "{slow_eta_s} vs {fast_eta_s} s per metre"
        );
    }

    #[test]
    fn a_single_possible_outlier_does_not_move_the_smoothed_position() {
        let mut progress = progress();
        let north_m = drive(&mut progress, 0, 300, 10, 0.0, 36.0);
        let before_m = progress.remaining_distance_m().unwrap();
        // A multipath echo 250 m east, reachable at 90 km/h, so the filter lets it in.
        progress.ingest(&fix_at(310, north_m + 100.0, 250.0), at(310));
        let after_m = progress.remaining_distance_m().unwrap();
        assert!(
            (before_m - after_m).abs() < 120.0,
            "{before_m} -> {after_m}"
        );
    }

    #[test]
    fn a_truck_that_stops_after_departing_is_stalled() {
        let mut progress = progress();
        let north_m = drive(&mut progress, 0, 300, 10, 0.0, 36.0);
        drive(&mut progress, 310, 500, 10, north_m, 0.0);
        let snapshot = progress.snapshot(at(500));
        assert_eq!(snapshot.status, ProgressStatus::Stalled);
        assert!(snapshot.no_progress_s.unwrap() >= 180.0);
        assert!(snapshot.recent_speed_kmh.unwrap() < 1.0);
    }

    #[test]
    fn a_truck_driving_the_wrong_way_is_moving_away() {
        let mut progress = progress();
        let north_m = drive(&mut progress, 0, 200, 10, 0.0, 36.0);
        drive(&mut progress, 210, 400, 10, north_m, -36.0);
        assert_eq!(progress.status(at(400)), ProgressStatus::MovingAway);
        assert!(progress.distance_growth_m(180.0) > 1_000.0);
    }

    #[test]
    fn silence_turns_the_status_to_gps_lost() {
        let mut progress = progress();
        drive(&mut progress, 0, 200, 10, 0.0, 36.0);
        assert_eq!(progress.status(at(250)), ProgressStatus::Approaching);
        assert_eq!(progress.status(at(300)), ProgressStatus::GpsLost);
        assert_eq!(progress.silence_s(at(300)), 100.0);
    }

    #[test]
    fn reaching_the_arrival_radius_is_arrival_and_stays_so() {
        let mut progress = progress();
        progress.ingest(&fix_at(0, 0.0, 0.0), at(0));
        // The customer is 11,120 m north; the median of the last fixes gets within 100 m
        // with the third of them.
        for (seconds, north_m) in [
            (600, 10_900.0),
            (610, 11_110.0),
            (620, 11_115.0),
            (630, 11_000.0),
        ] {
            progress.ingest(&fix_at(seconds, north_m, 0.0), at(seconds));
        }
        let snapshot = progress.snapshot(at(630));
        assert_eq!(snapshot.status, ProgressStatus::Arrived);
        assert_eq!(snapshot.arrived_at, Some(at(620)));
        assert_eq!(snapshot.predicted_arrival, Some(at(620)));
    }

    #[test]
    fn a_first_fix_hundreds_of_km_off_is_forgotten_once_the_real_track_shows() {
        let mut progress = progress();
        progress.ingest(&fix_at(0, 300_000.0, 0.0), at(0));
        drive(&mut progress, 5, 60, 5, 0.0, 0.0);
        assert_eq!(progress.counters().relocations, 1);
        let remaining_m = progress.remaining_distance_m().unwrap();
        assert!((remaining_m - 11_120.0).abs() < 50.0, "{remaining_m}");
        assert_eq!(progress.status(at(60)), ProgressStatus::AwaitingDeparture);
    }

    #[test]
    fn the_state_survives_a_json_round_trip() {
        let mut progress = progress();
        drive(&mut progress, 0, 300, 10, 0.0, 36.0);
        let json = serde_json::to_string(progress.state()).unwrap();
        let restored = Progress::from_state(
            serde_json::from_str(&json).unwrap(),
            ProgressConfig::default(),
        );
        // JSON keeps floats to the last bit or so; the estimate is the same to the
        // millisecond.
        let (before, after) = (progress.snapshot(at(310)), restored.snapshot(at(310)));
        assert_eq!(after.predicted_arrival, before.predicted_arrival);
        assert_eq!(after.status, before.status);
        assert_eq!(after.departed_at, before.departed_at);
        assert_eq!(restored.counters(), progress.counters());
    }

    #[test]
    fn memory_is_bounded_whatever_the_fix_rate() {
        let mut progress = progress();
        drive(&mut progress, 0, 3_000, 1, 0.0, 10.0);
        assert!(progress.state().samples.len() <= ProgressConfig::default().max_samples);
    }

    #[test]
    fn status_names_are_snake_case_in_json() {
        assert_eq!(
            serde_json::to_value(ProgressStatus::AwaitingDeparture).unwrap(),
            ProgressStatus::AwaitingDeparture.as_str()
        );
        assert_eq!(
            serde_json::to_value(ProgressStatus::GpsLost).unwrap(),
            "gps_lost"
        );
    }
}
