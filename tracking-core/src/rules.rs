//! Delay pre-warning rules as a pure state machine.
//!
//! [`RuleEngine`] owns the [`Progress`] of one case and the alert episodes currently open
//! for it. The server calls [`RuleEngine::on_fix`] for every fix of the assigned vehicle and
//! [`RuleEngine::on_tick`] periodically (silence is only visible on ticks); both return the
//! [`AlertChange`]s to persist and push. Each rule has a raise condition and a separate,
//! weaker clear condition (hysteresis), so an alert is raised once per episode and never
//! flaps on jitter; it clears by itself when its condition clears, and every alert clears
//! when the vehicle arrives.
//!
//! | kind | raised when | cleared when |
//! |---|---|---|
//! | `late_departure` | not departed [`late_departure_s`](RuleConfig::late_departure_s) after acceptance | departed |
//! | `gps_lost` | no accepted fix for [`gps_lost_s`](RuleConfig::gps_lost_s) | a fix arrives |
//! | `stalled` | departed, no progress step for [`stalled_s`](RuleConfig::stalled_s) (not while moving away) | progress resumes |
//! | `moving_away` | distance grew ≥ [`moving_away_min_growth_m`](RuleConfig::moving_away_min_growth_m) within [`moving_away_window_s`](RuleConfig::moving_away_window_s) | back ≥ [`moving_away_clear_return_m`](RuleConfig::moving_away_clear_return_m) from the episode's farthest point |
//! | `arrival_at_risk` | predicted arrival > promised + [`arrival_grace_s`](RuleConfig::arrival_grace_s) (for [`arrival_confirm_s`](RuleConfig::arrival_confirm_s), and resting on two fixes or more) | predicted arrival ≤ promised + grace − [`arrival_clear_margin_s`](RuleConfig::arrival_clear_margin_s) |
//!
//! Severity is `warning` and escalates to `critical` once the predicted breach is less
//! than [`critical_lead_s`](RuleConfig::critical_lead_s) away (or past). The predicted
//! breach of `arrival_at_risk` is the promised arrival; for the other kinds it is the point
//! of no return: the promised arrival minus the driving time still needed, after which the
//! promise cannot be kept even if the truck resumes at once.
//!
//! An agent acknowledging or resolving an alert does not touch the engine: the episode
//! stays open until its condition clears, so a resolved alert is not raised again for the
//! same episode.

use std::collections::BTreeMap;

use domain::fleet::{AlertKind, Severity};
use domain::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::fix::{Fix, FixCounters, FixVerdict};
use crate::progress::{
    Progress, ProgressConfig, ProgressSnapshot, ProgressState, ProgressStatus, TrackingTarget,
};
use crate::units::{plus_seconds, seconds_between};

/// Alert thresholds. Each maps to one `RESCUE_ALERT_…` setting of the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleConfig {
    /// `late_departure` when not departed this long after acceptance. Default 300 s.
    pub late_departure_s: f64,
    /// `stalled` after this long without progress towards the customer. Default 300 s.
    pub stalled_s: f64,
    /// `gps_lost` after this long without an accepted fix. Default 180 s.
    pub gps_lost_s: f64,
    /// `arrival_at_risk` when the predicted arrival is later than promised by more than
    /// this. Default 60 s.
    pub arrival_grace_s: f64,
    /// … and clears only once the prediction is back this far below the raise line.
    /// Default 180 s.
    pub arrival_clear_margin_s: f64,
    /// The prediction must stay over the raise line this long before `arrival_at_risk` is
    /// raised. Default 0 s.
    pub arrival_confirm_s: f64,
    /// `moving_away` looks at the distance growth within this window. Default 180 s.
    pub moving_away_window_s: f64,
    /// … and raises when it grew by at least this much. Default 400 m.
    pub moving_away_min_growth_m: f64,
    /// … and clears once the truck is this much closer than the farthest point of the
    /// episode. Default 200 m.
    pub moving_away_clear_return_m: f64,
    /// Severity becomes critical when the predicted breach is less than this away.
    /// Default 300 s.
    pub critical_lead_s: f64,
}

impl Default for RuleConfig {
    fn default() -> Self {
        Self {
            late_departure_s: 300.0,
            stalled_s: 300.0,
            gps_lost_s: 180.0,
            arrival_grace_s: 60.0,
            arrival_clear_margin_s: 180.0,
            arrival_confirm_s: 0.0,
            moving_away_window_s: 180.0,
            moving_away_min_growth_m: 400.0,
            moving_away_clear_return_m: 200.0,
            critical_lead_s: 300.0,
        }
    }
}

/// Everything the tracker can be tuned with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrackerConfig {
    /// The progress estimate.
    pub progress: ProgressConfig,
    /// The alert rules.
    pub rules: RuleConfig,
}

/// The kinds this engine raises, in evaluation order.
pub const TRACKED_KINDS: [AlertKind; 5] = [
    AlertKind::LateDeparture,
    AlertKind::GpsLost,
    AlertKind::MovingAway,
    AlertKind::Stalled,
    AlertKind::ArrivalAtRisk,
];

/// One change to a case's alerts, to persist in the timeline and push to agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum AlertChange {
    /// A new episode: open an alert.
    Raise {
        /// What is wrong.
        kind: AlertKind,
        /// How urgent.
        severity: Severity,
        /// When the promise will be (or becomes impossible to keep) if nothing changes;
        /// `None` without a promised arrival.
        predicted_breach: Option<Timestamp>,
        /// The current predicted arrival, if there is one.
        predicted_arrival: Option<Timestamp>,
        /// Human-readable, lowercase.
        reason: String,
    },
    /// The open alert of this kind became more urgent.
    Escalate {
        /// Which alert.
        kind: AlertKind,
        /// The new severity.
        severity: Severity,
        /// As in `Raise`.
        predicted_breach: Option<Timestamp>,
        /// As in `Raise`.
        predicted_arrival: Option<Timestamp>,
        /// Human-readable, lowercase.
        reason: String,
    },
    /// The condition cleared: resolve the open alert of this kind.
    Clear {
        /// Which alert.
        kind: AlertKind,
        /// Human-readable, lowercase.
        reason: String,
    },
}

impl AlertChange {
    /// The alert kind the change is about.
    pub fn kind(&self) -> AlertKind {
        match self {
            AlertChange::Raise { kind, .. }
            | AlertChange::Escalate { kind, .. }
            | AlertChange::Clear { kind, .. } => *kind,
        }
    }
}

/// An open alert episode.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpenAlert {
    /// When it was raised.
    pub raised_at: Timestamp,
    /// Its current severity.
    pub severity: Severity,
    /// Its latest predicted breach.
    pub predicted_breach: Option<Timestamp>,
    /// For `moving_away`: the farthest smoothed distance of the episode.
    pub farthest_m: Option<f64>,
}

/// The persisted state of a [`RuleEngine`]: serialize it after every change, restore it
/// with [`RuleEngine::from_state`] under the configuration then in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    /// Progress of the vehicle.
    pub progress: ProgressState,
    /// The promised arrival, if one was given.
    pub promised_arrival: Option<Timestamp>,
    /// Open episodes by kind.
    pub open: BTreeMap<AlertKind, OpenAlert>,
    /// Episodes raised so far by kind.
    pub raised: BTreeMap<AlertKind, u64>,
    /// Since when the predicted arrival has been over the `arrival_at_risk` raise line.
    pub over_risk_line_since: Option<Timestamp>,
}

/// The alert rules of one active case.
///
/// ```
/// use domain::{AlertKind, LatLon, RoadKind, Timestamp};
/// use tracking_core::{AlertChange, Fix, RuleEngine, TrackerConfig, TrackingTarget};
///
/// let t0: Timestamp = "2026-11-22T03:00:00Z".parse().unwrap();
/// let at = |s: i64| t0 + chrono::Duration::seconds(s);
/// let target = TrackingTarget {
///     customer: LatLon::new(39.7450, -104.99).unwrap(),
///     road_kind: RoadKind::Urban,
///     accepted_at: t0,
/// };
/// let mut engine = RuleEngine::new(target, Some(at(1_800)), TrackerConfig::default());
/// let yard = LatLon::new(39.7000, -104.99).unwrap();
/// assert!(engine.on_fix(Fix { at: at(0), position: yard, speed_kmh: Some(0.0) }, at(0)).is_empty());
///
/// // The truck never leaves the yard and then goes silent.
/// let changes = engine.on_tick(at(330));
/// let kinds: Vec<AlertKind> = changes.iter().map(AlertChange::kind).collect();
/// assert!(kinds.contains(&AlertKind::LateDeparture));
/// assert!(kinds.contains(&AlertKind::GpsLost));
/// // Raised once per episode: the next tick changes nothing.
/// assert!(engine.on_tick(at(360)).is_empty());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RuleEngine {
    rules: RuleConfig,
    progress: Progress,
    promised_arrival: Option<Timestamp>,
    open: BTreeMap<AlertKind, OpenAlert>,
    raised: BTreeMap<AlertKind, u64>,
    over_risk_line_since: Option<Timestamp>,
}

/// What one rule concludes at one instant.
struct Assessment {
    /// `Some(reason)` when the raise condition holds.
    raise: Option<String>,
    /// `Some(reason)` when the clear condition holds; never together with `raise`.
    clear: Option<String>,
    predicted_breach: Option<Timestamp>,
}

impl Assessment {
    fn quiet(clear_reason: &str) -> Self {
        Self {
            raise: None,
            clear: Some(clear_reason.to_owned()),
            predicted_breach: None,
        }
    }
}

impl RuleEngine {
    /// Starts the rules for a freshly accepted case.
    pub fn new(
        target: TrackingTarget,
        promised_arrival: Option<Timestamp>,
        config: TrackerConfig,
    ) -> Self {
        Self {
            rules: config.rules,
            progress: Progress::new(target, config.progress),
            promised_arrival,
            open: BTreeMap::new(),
            raised: BTreeMap::new(),
            over_risk_line_since: None,
        }
    }

    /// Restores a persisted engine under the configuration now in force.
    pub fn from_state(state: EngineState, config: TrackerConfig) -> Self {
        Self {
            rules: config.rules,
            progress: Progress::from_state(state.progress, config.progress),
            promised_arrival: state.promised_arrival,
            open: state.open,
            raised: state.raised,
            over_risk_line_since: state.over_risk_line_since,
        }
    }

    /// A copy of the state to persist.
    pub fn state(&self) -> EngineState {
        EngineState {
            progress: self.progress.state().clone(),
            promised_arrival: self.promised_arrival,
            open: self.open.clone(),
            raised: self.raised.clone(),
            over_risk_line_since: self.over_risk_line_since,
        }
    }

    /// One fix of the assigned vehicle, received at `now`. Bad fixes (duplicates, out of
    /// order, impossible jumps, far future) are ignored for progress and counted; the rules
    /// are evaluated either way.
    pub fn on_fix(&mut self, fix: Fix, now: Timestamp) -> Vec<AlertChange> {
        self.progress.ingest(&fix, now);
        self.evaluate(now)
    }

    /// The periodic tick: the only way silence becomes visible.
    pub fn on_tick(&mut self, now: Timestamp) -> Vec<AlertChange> {
        self.evaluate(now)
    }

    /// The vehicle is on scene (the provider said so): every open alert clears.
    pub fn mark_arrived(&mut self, at: Timestamp) -> Vec<AlertChange> {
        self.progress.mark_arrived(at);
        self.evaluate(at)
    }

    /// A new promise (an agent told the customer a new time), evaluated at once.
    pub fn set_promised_arrival(
        &mut self,
        promised_arrival: Option<Timestamp>,
        now: Timestamp,
    ) -> Vec<AlertChange> {
        self.promised_arrival = promised_arrival;
        self.evaluate(now)
    }

    /// The promised arrival.
    pub fn promised_arrival(&self) -> Option<Timestamp> {
        self.promised_arrival
    }

    /// The progress estimate.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The progress estimate at `now`.
    pub fn snapshot(&self, now: Timestamp) -> ProgressSnapshot {
        self.progress.snapshot(now)
    }

    /// Fix counts by verdict.
    pub fn fix_counters(&self) -> &FixCounters {
        self.progress.counters()
    }

    /// The verdict on the most recent fix.
    pub fn last_verdict(&self) -> Option<FixVerdict> {
        self.progress.last_verdict()
    }

    /// Open episodes by kind.
    pub fn open_alerts(&self) -> &BTreeMap<AlertKind, OpenAlert> {
        &self.open
    }

    /// Episodes raised so far by kind.
    pub fn raised_counts(&self) -> &BTreeMap<AlertKind, u64> {
        &self.raised
    }

    fn evaluate(&mut self, now: Timestamp) -> Vec<AlertChange> {
        let snapshot = self.progress.snapshot(now);
        let mut changes = Vec::new();
        if snapshot.status == ProgressStatus::Arrived {
            for kind in std::mem::take(&mut self.open).into_keys() {
                changes.push(AlertChange::Clear {
                    kind,
                    reason: "the vehicle arrived".to_owned(),
                });
            }
            return changes;
        }
        if self.over_risk_line(&snapshot) {
            self.over_risk_line_since.get_or_insert(now);
        } else {
            self.over_risk_line_since = None;
        }
        for kind in TRACKED_KINDS {
            let assessment = self.assess(kind, &snapshot, now);
            let severity = self.severity(assessment.predicted_breach, now);
            match self.open.get_mut(&kind) {
                None => {
                    if let Some(reason) = assessment.raise {
                        self.open.insert(
                            kind,
                            OpenAlert {
                                raised_at: now,
                                severity,
                                predicted_breach: assessment.predicted_breach,
                                farthest_m: (kind == AlertKind::MovingAway)
                                    .then_some(snapshot.remaining_distance_m)
                                    .flatten(),
                            },
                        );
                        *self.raised.entry(kind).or_insert(0) += 1;
                        changes.push(AlertChange::Raise {
                            kind,
                            severity,
                            predicted_breach: assessment.predicted_breach,
                            predicted_arrival: snapshot.predicted_arrival,
                            reason,
                        });
                    }
                }
                Some(open) => {
                    if let Some(reason) = assessment.clear {
                        self.open.remove(&kind);
                        changes.push(AlertChange::Clear { kind, reason });
                        continue;
                    }
                    if let (AlertKind::MovingAway, Some(distance_m)) =
                        (kind, snapshot.remaining_distance_m)
                    {
                        open.farthest_m = Some(
                            open.farthest_m
                                .map_or(distance_m, |farthest_m| farthest_m.max(distance_m)),
                        );
                    }
                    if assessment.predicted_breach.is_some() {
                        open.predicted_breach = assessment.predicted_breach;
                    }
                    if severity > open.severity {
                        open.severity = severity;
                        changes.push(AlertChange::Escalate {
                            kind,
                            severity,
                            predicted_breach: open.predicted_breach,
                            predicted_arrival: snapshot.predicted_arrival,
                            reason: escalation_reason(open.predicted_breach, now),
                        });
                    }
                }
            }
        }
        changes
    }

    /// Whether the predicted arrival is later than promised plus grace. A prediction that
    /// rests on a single fix is not trusted: the first fix of a stream may be an outlier
    /// the filter can only recognise once later fixes disagree with it.
    fn over_risk_line(&self, snapshot: &ProgressSnapshot) -> bool {
        let (Some(promised), Some(predicted)) = (self.promised_arrival, snapshot.predicted_arrival)
        else {
            return false;
        };
        self.progress.track_len() >= 2
            && seconds_between(promised, predicted) > self.rules.arrival_grace_s
    }

    fn severity(&self, predicted_breach: Option<Timestamp>, now: Timestamp) -> Severity {
        match predicted_breach {
            Some(breach) if seconds_between(now, breach) <= self.rules.critical_lead_s => {
                Severity::Critical
            }
            _ => Severity::Warning,
        }
    }

    /// Promised arrival minus the driving time still needed.
    fn point_of_no_return(&self, snapshot: &ProgressSnapshot) -> Option<Timestamp> {
        let promised = self.promised_arrival?;
        Some(plus_seconds(promised, -snapshot.drive_s.unwrap_or(0.0)))
    }

    fn assess(&self, kind: AlertKind, snapshot: &ProgressSnapshot, now: Timestamp) -> Assessment {
        let rules = &self.rules;
        let point_of_no_return = self.point_of_no_return(snapshot);
        match kind {
            AlertKind::LateDeparture => {
                if snapshot.departed_at.is_some() {
                    return Assessment::quiet("the vehicle departed");
                }
                let waited_s = seconds_between(self.progress.target().accepted_at, now);
                Assessment {
                    raise: (waited_s >= rules.late_departure_s).then(|| {
                        format!("not moving towards the customer {waited_s:.0} s after acceptance")
                    }),
                    clear: None,
                    predicted_breach: point_of_no_return,
                }
            }
            AlertKind::GpsLost => {
                let silence_s = snapshot.silence_s;
                if silence_s < rules.gps_lost_s {
                    return Assessment::quiet("fixes are coming in again");
                }
                Assessment {
                    raise: Some(format!("no position from the vehicle for {silence_s:.0} s")),
                    clear: None,
                    predicted_breach: point_of_no_return,
                }
            }
            AlertKind::MovingAway => {
                if snapshot.departed_at.is_none() {
                    return Assessment::quiet("the vehicle is not moving");
                }
                let window_s = rules.moving_away_window_s;
                let growth_m = self.progress.distance_growth_m(window_s);
                // Raised only while still at (or near) the farthest point of the window, so
                // that a truck already heading back is not raised again after clearing.
                let still_receding =
                    self.progress.distance_retreat_m(window_s) < rules.moving_away_clear_return_m;
                let distance_m = snapshot.remaining_distance_m.unwrap_or(0.0);
                let came_back = self.open.get(&kind).is_some_and(|open| {
                    open.farthest_m.is_some_and(|farthest_m| {
                        distance_m <= farthest_m - rules.moving_away_clear_return_m
                    })
                });
                Assessment {
                    raise: (growth_m >= rules.moving_away_min_growth_m && still_receding).then(|| {
                        format!(
                            "distance to the customer grew by {growth_m:.0} m within {:.0} s, now {:.1} km",
                            window_s,
                            distance_m / 1000.0
                        )
                    }),
                    clear: came_back.then(|| "heading back towards the customer".to_owned()),
                    predicted_breach: point_of_no_return,
                }
            }
            AlertKind::Stalled => {
                let Some(no_progress_s) = snapshot.no_progress_s else {
                    return Assessment::quiet("the vehicle has not departed");
                };
                if no_progress_s < rules.stalled_s {
                    return Assessment::quiet("progress towards the customer resumed");
                }
                // Driving the wrong way is the more specific alert.
                let moving_away = self.open.contains_key(&AlertKind::MovingAway);
                let distance_km = snapshot.remaining_distance_m.unwrap_or(0.0) / 1000.0;
                Assessment {
                    raise: (!moving_away).then(|| {
                        format!("no progress towards the customer for {no_progress_s:.0} s, {distance_km:.1} km to go")
                    }),
                    clear: None,
                    predicted_breach: point_of_no_return,
                }
            }
            AlertKind::ArrivalAtRisk => {
                let (Some(promised), Some(predicted)) =
                    (self.promised_arrival, snapshot.predicted_arrival)
                else {
                    return Assessment::quiet("no promise or no prediction");
                };
                let late_s = seconds_between(promised, predicted);
                let clear_line_s = rules.arrival_grace_s - rules.arrival_clear_margin_s;
                let confirmed = self
                    .over_risk_line_since
                    .is_some_and(|since| seconds_between(since, now) >= rules.arrival_confirm_s);
                Assessment {
                    raise: confirmed.then(|| {
                        format!(
                            "predicted arrival {} is {:.0} min later than promised ({})",
                            predicted.format("%H:%M:%SZ"),
                            late_s / 60.0,
                            promised.format("%H:%M:%SZ")
                        )
                    }),
                    clear: (late_s <= clear_line_s)
                        .then(|| "predicted arrival is back within the promise".to_owned()),
                    predicted_breach: Some(promised),
                }
            }
            AlertKind::NoVehicle | AlertKind::DiagnosisWait => {
                Assessment::quiet("not a tracking alert")
            }
        }
    }
}

fn escalation_reason(predicted_breach: Option<Timestamp>, now: Timestamp) -> String {
    match predicted_breach {
        Some(breach) if breach <= now => "the promised arrival can no longer be kept".to_owned(),
        Some(breach) => format!(
            "{:.0} min left before the promised arrival is lost",
            seconds_between(now, breach) / 60.0
        ),
        None => "condition persists".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use domain::case::RoadKind;
    use domain::geo::LatLon;

    use super::*;
    use crate::units::test_support::{at, point};

    /// The truck starts here; the customer waits 11.12 km due north.
    const START_LAT: f64 = 39.70;
    const LON: f64 = -104.99;
    const METRES_PER_DEGREE: f64 = 111_195.0;

    fn engine(promised_s: i64) -> RuleEngine {
        let target = TrackingTarget {
            customer: point(39.80, LON),
            road_kind: RoadKind::Urban,
            accepted_at: at(0),
        };
        RuleEngine::new(target, Some(at(promised_s)), TrackerConfig::default())
    }

    fn position(north_m: f64) -> LatLon {
        point(START_LAT + north_m / METRES_PER_DEGREE, LON)
    }

    fn fix_at(seconds: i64, north_m: f64) -> Fix {
        Fix {
            at: at(seconds),
            position: position(north_m),
            speed_kmh: None,
        }
    }

    /// Every change with the second it happened.
    type Log = Vec<(i64, AlertChange)>;

    /// Drives north at `speed_kmh` (negative: south) from `from_s` to `to_s`, a fix every
    /// 10 s and a tick every 30 s, starting `north_m` north of the start.
    fn drive(
        engine: &mut RuleEngine,
        log: &mut Log,
        from_s: i64,
        to_s: i64,
        north_m: f64,
        speed_kmh: f64,
    ) -> f64 {
        let mut position_m = north_m;
        for seconds in from_s..=to_s {
            if (seconds - from_s) % 10 == 0 {
                position_m = north_m + speed_kmh / 3.6 * (seconds - from_s) as f64;
                let changes = engine.on_fix(fix_at(seconds, position_m), at(seconds));
                log.extend(changes.into_iter().map(|change| (seconds, change)));
            }
            if seconds % 30 == 0 {
                let changes = engine.on_tick(at(seconds));
                log.extend(changes.into_iter().map(|change| (seconds, change)));
            }
        }
        position_m
    }

    fn raises(log: &Log, kind: AlertKind) -> Vec<(i64, Severity, Option<Timestamp>)> {
        log.iter()
            .filter_map(|(seconds, change)| match change {
                AlertChange::Raise {
                    kind: raised,
                    severity,
                    predicted_breach,
                    ..
                } if *raised == kind => Some((*seconds, *severity, *predicted_breach)),
                _ => None,
            })
            .collect()
    }

    fn clears(log: &Log, kind: AlertKind) -> Vec<i64> {
        log.iter()
            .filter(|(_, change)| matches!(change, AlertChange::Clear { kind: cleared, .. } if *cleared == kind))
            .map(|(seconds, _)| *seconds)
            .collect()
    }

    fn escalations(log: &Log, kind: AlertKind) -> Vec<(i64, Severity)> {
        log.iter()
            .filter_map(|(seconds, change)| match change {
                AlertChange::Escalate {
                    kind: escalated,
                    severity,
                    ..
                } if *escalated == kind => Some((*seconds, *severity)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_truck_that_does_not_leave_gets_one_late_departure_that_clears_when_it_leaves() {
        let mut engine = engine(3_000);
        let mut log = Log::new();
        drive(&mut engine, &mut log, 0, 1_000, 0.0, 0.0);
        let raised = raises(&log, AlertKind::LateDeparture);
        assert_eq!(raised.len(), 1, "{log:#?}");
        assert_eq!(raised[0].0, 300);
        assert_eq!(raised[0].1, Severity::Warning);
        // The point of no return: promised minus the nominal drive (11.12 km × 1.3 at
        // 30 km/h ≈ 1,735 s).
        let point_of_no_return = raised[0].2.unwrap();
        assert!((seconds_between(at(1_265), point_of_no_return)).abs() < 5.0);
        // Critical once the point of no return is less than 5 minutes away.
        assert_eq!(
            escalations(&log, AlertKind::LateDeparture),
            vec![(970, Severity::Critical)]
        );

        drive(&mut engine, &mut log, 1_010, 1_100, 0.0, 40.0);
        assert_eq!(clears(&log, AlertKind::LateDeparture).len(), 1);
        assert!(
            engine
                .open_alerts()
                .get(&AlertKind::LateDeparture)
                .is_none()
        );
    }

    #[test]
    fn silence_is_seen_on_ticks_and_a_fix_ends_it() {
        let mut engine = engine(4_000);
        let mut log = Log::new();
        let north_m = drive(&mut engine, &mut log, 0, 200, 0.0, 36.0);
        for seconds in [240, 270, 300, 330, 360] {
            assert!(engine.on_tick(at(seconds)).is_empty(), "at {seconds} s");
        }
        let changes = engine.on_tick(at(390));
        assert!(matches!(
            changes.as_slice(),
            [AlertChange::Raise {
                kind: AlertKind::GpsLost,
                ..
            }]
        ));
        assert!(engine.on_tick(at(420)).is_empty());
        let changes = engine.on_fix(fix_at(425, north_m + 2_250.0), at(425));
        assert!(changes.iter().any(|change| matches!(
            change,
            AlertChange::Clear {
                kind: AlertKind::GpsLost,
                ..
            }
        )));
    }

    #[test]
    fn a_stop_on_the_way_raises_stalled_once_and_clears_when_the_truck_moves_on() {
        let mut engine = engine(5_000);
        let mut log = Log::new();
        let north_m = drive(&mut engine, &mut log, 0, 300, 0.0, 36.0);
        drive(&mut engine, &mut log, 310, 900, north_m, 0.0);
        let raised = raises(&log, AlertKind::Stalled);
        assert_eq!(raised.len(), 1, "{log:#?}");
        assert!((590..=620).contains(&raised[0].0), "{raised:?}");

        drive(&mut engine, &mut log, 910, 1_000, north_m, 36.0);
        assert_eq!(clears(&log, AlertKind::Stalled).len(), 1);
        assert_eq!(raises(&log, AlertKind::Stalled).len(), 1);
    }

    #[test]
    fn driving_the_wrong_way_raises_moving_away_once_and_coming_back_clears_it() {
        let mut engine = engine(5_000);
        let mut log = Log::new();
        let north_m = drive(&mut engine, &mut log, 0, 200, 0.0, 36.0);
        let south_m = drive(&mut engine, &mut log, 210, 500, north_m, -36.0);
        assert_eq!(raises(&log, AlertKind::MovingAway).len(), 1, "{log:#?}");
        assert!(raises(&log, AlertKind::Stalled).is_empty());

        drive(&mut engine, &mut log, 510, 700, south_m, 36.0);
        assert_eq!(clears(&log, AlertKind::MovingAway).len(), 1);
        assert_eq!(raises(&log, AlertKind::MovingAway).len(), 1);
    }

    #[test]
    fn a_single_jittery_fix_backwards_is_not_moving_away() {
        let mut engine = engine(5_000);
        let mut log = Log::new();
        let north_m = drive(&mut engine, &mut log, 0, 300, 0.0, 36.0);
        // 500 m back in 10 s is 180 km/h: possible, so only the smoothing can reject it.
        let changes = engine.on_fix(fix_at(310, north_m - 500.0), at(310));
        assert!(changes.is_empty(), "{changes:?}");
        drive(&mut engine, &mut log, 320, 600, north_m + 200.0, 36.0);
        assert!(log.is_empty(), "{log:#?}");
    }

    #[test]
    fn slow_traffic_raises_arrival_at_risk_long_before_the_breach_and_escalates_near_it() {
        let promised_s = 2_155; // the default quote plus a 5-minute buffer
        let mut engine = engine(promised_s);
        let mut log = Log::new();
        drive(&mut engine, &mut log, 0, 2_400, 0.0, 12.0);
        let raised = raises(&log, AlertKind::ArrivalAtRisk);
        assert_eq!(raised.len(), 1, "{log:#?}");
        let (raised_s, severity, predicted_breach) = raised[0];
        assert!(
            promised_s - raised_s >= 900,
            "raised only {} s ahead",
            promised_s - raised_s
        );
        assert_eq!(severity, Severity::Warning);
        assert_eq!(predicted_breach, Some(at(promised_s)));
        let escalated = escalations(&log, AlertKind::ArrivalAtRisk);
        assert_eq!(escalated.len(), 1);
        assert!(escalated[0].0 >= promised_s - 300 && escalated[0].0 < promised_s - 250);
        assert!(clears(&log, AlertKind::ArrivalAtRisk).is_empty());
    }

    #[test]
    fn a_new_promise_clears_arrival_at_risk() {
        let mut engine = engine(2_155);
        let mut log = Log::new();
        drive(&mut engine, &mut log, 0, 900, 0.0, 12.0);
        assert_eq!(raises(&log, AlertKind::ArrivalAtRisk).len(), 1);
        let changes = engine.set_promised_arrival(Some(at(6_000)), at(900));
        assert!(matches!(
            changes.as_slice(),
            [AlertChange::Clear {
                kind: AlertKind::ArrivalAtRisk,
                ..
            }]
        ));
    }

    #[test]
    fn an_on_time_drive_raises_nothing() {
        let mut engine = engine(2_155);
        let mut log = Log::new();
        drive(&mut engine, &mut log, 0, 60, 0.0, 0.0);
        drive(&mut engine, &mut log, 70, 1_200, 0.0, 36.0);
        assert!(log.is_empty(), "{log:#?}");
        assert_eq!(engine.snapshot(at(1_200)).status, ProgressStatus::Arrived);
    }

    #[test]
    fn arrival_clears_every_open_alert_and_nothing_is_raised_after_it() {
        let mut engine = engine(1_000);
        let mut log = Log::new();
        drive(&mut engine, &mut log, 0, 600, 0.0, 0.0);
        assert!(engine.open_alerts().len() >= 2, "{log:#?}");
        let changes = engine.mark_arrived(at(610));
        assert_eq!(changes.len(), 2);
        assert!(
            changes
                .iter()
                .all(|change| matches!(change, AlertChange::Clear { .. }))
        );
        assert!(engine.open_alerts().is_empty());
        assert!(engine.on_tick(at(3_000)).is_empty());
    }

    #[test]
    fn without_a_promise_there_is_no_arrival_at_risk_and_no_breach_time() {
        let target = TrackingTarget {
            customer: point(39.80, LON),
            road_kind: RoadKind::Urban,
            accepted_at: at(0),
        };
        let mut engine = RuleEngine::new(target, None, TrackerConfig::default());
        let mut log = Log::new();
        drive(&mut engine, &mut log, 0, 2_000, 0.0, 0.0);
        assert!(raises(&log, AlertKind::ArrivalAtRisk).is_empty());
        assert_eq!(
            raises(&log, AlertKind::LateDeparture),
            vec![(300, Severity::Warning, None)]
        );
    }

    #[test]
    fn a_restored_engine_continues_exactly_like_the_original() {
        let mut original = engine(2_155);
        let mut log = Log::new();
        let north_m = drive(&mut original, &mut log, 0, 600, 0.0, 12.0);
        let json = serde_json::to_string(&original.state()).unwrap();
        let mut restored = RuleEngine::from_state(
            serde_json::from_str(&json).unwrap(),
            TrackerConfig::default(),
        );
        let (mut original_log, mut restored_log) = (Log::new(), Log::new());
        drive(&mut original, &mut original_log, 610, 2_400, north_m, 12.0);
        drive(&mut restored, &mut restored_log, 610, 2_400, north_m, 12.0);
        assert!(!original_log.is_empty());
        assert_eq!(original_log, restored_log);
        assert_eq!(original.open_alerts(), restored.open_alerts());
    }

    #[test]
    fn alert_changes_serialize_with_a_change_tag_and_snake_case_kinds() {
        let change = AlertChange::Clear {
            kind: AlertKind::GpsLost,
            reason: "fixes are coming in again".to_owned(),
        };
        assert_eq!(
            serde_json::to_value(&change).unwrap(),
            serde_json::json!({"change": "clear", "kind": "gps_lost", "reason": "fixes are coming in again"})
        );
    }
}
