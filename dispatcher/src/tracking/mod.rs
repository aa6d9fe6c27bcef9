//! Tracking of assigned vehicles and delay pre-warning (DESIGN §5), wiring the pure
//! `tracker` crate to the server: one rule engine per active case, fed by every fix of
//! the assigned vehicle and by a periodic tick; its alert changes become alerts and
//! timeline events; its prediction is the case's predicted arrival.
//!
//! Engines start and stop on case events read from the log (`offer_accepted`,
//! `vehicle_assigned`, `status_changed`), and fixes come from the bus, so every instance
//! tracks every active case. Alerts are deduplicated by the database (one live alert per
//! case and kind), so instances racing to raise the same alert produce one. The instance
//! that accepted a fix is the one that stores it in the trajectory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use domain::ports::{ActiveJob, AlertUpdate, CaseFix, NewAlert, Store, StoreError};
use domain::{
    AlertId, AlertKind, CaseId, CaseStatus, Clock, Event, EventKind, Fix, Timestamp, VehicleId,
};
use parking_lot::Mutex;
use tracker::{AlertChange, RuleEngine, TrackerConfig, TrackingTarget};

use crate::bus::{Bus, BusMessage};
use crate::registry::FleetRegistry;
use crate::stream::EventTail;

/// Alerts raised by the rules, by `kind`.
pub const ALERTS_RAISED: &str = "rescue_alerts_raised_total";
/// Seconds between an alert and the promised arrival it warns about.
pub const ALERT_LEAD_TIME: &str = "rescue_alert_lead_time_seconds";
/// Arrivals after the promised time, by `warned` (`true` when an alert came first).
pub const BREACHES: &str = "rescue_breaches_total";
/// Cases being tracked.
pub const TRACKED_CASES: &str = "rescue_tracked_cases";

/// How often an engine's state is saved even without alert changes.
const SAVE_EVERY: chrono::Duration = chrono::Duration::seconds(60);

struct Active {
    vehicle: VehicleId,
    engine: RuleEngine,
    warned: bool,
    saved_at: Option<Timestamp>,
    saved_prediction: Option<Timestamp>,
}

/// The tracker of this instance (see the module docs).
pub struct Tracking {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    registry: Arc<FleetRegistry>,
    config: TrackerConfig,
    instance: uuid::Uuid,
    cases: Mutex<HashMap<CaseId, Active>>,
    by_vehicle: Mutex<HashMap<VehicleId, CaseId>>,
    trajectory: Mutex<Vec<CaseFix>>,
}

impl Tracking {
    /// A tracker with these rules; call [`Tracking::resume`] to pick up active cases.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        registry: Arc<FleetRegistry>,
        config: TrackerConfig,
        bus: &Bus,
    ) -> Tracking {
        Tracking {
            store,
            clock,
            registry,
            config,
            instance: bus.instance(),
            cases: Mutex::new(HashMap::new()),
            by_vehicle: Mutex::new(HashMap::new()),
            trajectory: Mutex::new(Vec::new()),
        }
    }

    /// Loads every case with an active job: its saved engine, or a new one replayed
    /// from the stored trajectory.
    pub async fn resume(&self) -> Result<usize, StoreError> {
        let jobs = self.store.active_jobs().await?;
        let count = jobs.len();
        for job in jobs {
            let saved = self.store.load_tracking(job.case.id).await?;
            let engine = match saved.and_then(|state| serde_json::from_value(state).ok()) {
                Some(state) => RuleEngine::from_state(state, self.config.clone()),
                None => {
                    let mut engine = self.new_engine(&job);
                    for stored in self.store.case_fixes(job.case.id).await? {
                        engine.on_fix(tracker_fix(&stored.fix), stored.fix.ts);
                    }
                    engine
                }
            };
            if job.case.status == CaseStatus::OnScene || job.case.status == CaseStatus::InService {
                // Arrived already; nothing to predict.
                continue;
            }
            self.insert(job.case.id, job.job.vehicle_id, engine);
        }
        tracing::info!(cases = count, "tracking resumed");
        Ok(count)
    }

    fn new_engine(&self, job: &ActiveJob) -> RuleEngine {
        let target = TrackingTarget {
            customer: job.case.location.position,
            road_kind: job.case.location.road_kind,
            accepted_at: job.job.answered_at.unwrap_or(job.job.sent_at),
        };
        RuleEngine::new(target, job.case.promised_arrival, self.config.clone())
    }

    fn insert(&self, case_id: CaseId, vehicle: VehicleId, engine: RuleEngine) {
        self.by_vehicle.lock().insert(vehicle, case_id);
        self.cases.lock().insert(
            case_id,
            Active {
                vehicle,
                engine,
                warned: false,
                saved_at: None,
                saved_prediction: None,
            },
        );
        metrics::gauge!(TRACKED_CASES).set(self.cases.lock().len() as f64);
    }

    /// The live prediction of a tracked case.
    pub fn predicted_arrival(&self, case_id: CaseId) -> Option<Timestamp> {
        let now = self.clock.now();
        self.cases
            .lock()
            .get(&case_id)
            .and_then(|active| active.engine.snapshot(now).predicted_arrival)
    }

    /// The cases being tracked.
    pub fn snapshot_case_ids(&self) -> Vec<CaseId> {
        self.cases.lock().keys().copied().collect()
    }

    /// The live progress of a tracked case.
    pub fn snapshot(&self, case_id: CaseId) -> Option<tracker::ProgressSnapshot> {
        let now = self.clock.now();
        self.cases
            .lock()
            .get(&case_id)
            .map(|active| active.engine.snapshot(now))
    }

    /// Follows the event log (engines start and stop) and the bus (fixes).
    pub fn follow(
        self: &Arc<Self>,
        events: &EventTail,
        bus: &Bus,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks = Vec::new();
        let tracking = self.clone();
        let mut log = events.subscribe();
        tasks.push(tokio::spawn(async move {
            loop {
                match log.recv().await {
                    Ok(event) => {
                        if let Err(error) = tracking.on_event(&event).await {
                            tracing::warn!(case_id = %event.case_id, error = %error, "tracking could not follow an event");
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "tracking lagged behind the event log; resuming from storage");
                        if let Err(error) = tracking.resume().await {
                            tracing::warn!(error = %error, "tracking could not resume");
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        }));
        let tracking = self.clone();
        let mut messages = bus.subscribe();
        tasks.push(tokio::spawn(async move {
            loop {
                match messages.recv().await {
                    Ok(envelope) => {
                        if let BusMessage::Fixes { fixes } = &envelope.message {
                            let local = envelope.origin == tracking.instance;
                            let changes = tracking.on_fixes(fixes, local);
                            tracking.apply(changes).await;
                        }
                    }
                    // Missed fixes are superseded by the next ones.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        }));
        tasks
    }

    async fn on_event(&self, event: &Event) -> Result<(), StoreError> {
        match event.kind {
            EventKind::OfferAccepted | EventKind::VehicleAssigned => {
                let Some(job) = self.store.active_job(event.case_id).await? else {
                    return Ok(());
                };
                let Some(case) = self.store.get_case(event.case_id).await? else {
                    return Ok(());
                };
                let active = ActiveJob { case, job };
                let mut engine = self.new_engine(&active);
                // The vehicle's position at acceptance is the first fix.
                let now = self.clock.now();
                if let Some(fix) = self.registry.latest_fix(active.job.vehicle_id) {
                    engine.on_fix(tracker_fix(&fix), now);
                }
                self.insert(active.case.id, active.job.vehicle_id, engine);
            }
            EventKind::StatusChanged => {
                let to = event
                    .data
                    .get("to")
                    .and_then(|to| to.as_str())
                    .and_then(|to| to.parse::<CaseStatus>().ok());
                match to {
                    Some(CaseStatus::OnScene) => self.arrived(event.case_id, event.at).await,
                    Some(
                        CaseStatus::Completed | CaseStatus::Cancelled | CaseStatus::Dispatching,
                    ) => {
                        self.stop(event.case_id, "the case moved on").await;
                    }
                    _ => {}
                }
            }
            EventKind::VehicleReleased => {
                self.stop(event.case_id, "the vehicle was released").await
            }
            _ => {}
        }
        Ok(())
    }

    /// Feeds fixes to the engines of the cases their vehicles serve; returns the alert
    /// changes to apply. `local` fixes (accepted by this instance) go to the trajectory.
    fn on_fixes(&self, fixes: &[(VehicleId, Fix)], local: bool) -> Vec<(CaseId, AlertChange)> {
        let now = self.clock.now();
        let mut changes = Vec::new();
        let tracked: Vec<(CaseId, VehicleId, Fix)> = {
            let by_vehicle = self.by_vehicle.lock();
            fixes
                .iter()
                .filter_map(|(vehicle, fix)| {
                    by_vehicle
                        .get(vehicle)
                        .map(|case| (*case, *vehicle, fix.clone()))
                })
                .collect()
        };
        if tracked.is_empty() {
            return changes;
        }
        {
            let mut cases = self.cases.lock();
            for (case_id, _, fix) in &tracked {
                if let Some(active) = cases.get_mut(case_id) {
                    for change in active.engine.on_fix(tracker_fix(fix), now) {
                        changes.push((*case_id, change));
                    }
                }
            }
        }
        if local {
            let mut trajectory = self.trajectory.lock();
            trajectory.extend(
                tracked
                    .into_iter()
                    .map(|(case_id, vehicle_id, fix)| CaseFix {
                        case_id,
                        vehicle_id,
                        fix,
                        live: true,
                        received_at: now,
                    }),
            );
        }
        changes
    }

    /// Batch and blind-area fixes: history for the trajectory, not for the live rules.
    pub fn record_history(&self, vehicle: VehicleId, fixes: &[Fix]) {
        let Some(case_id) = self.by_vehicle.lock().get(&vehicle).copied() else {
            return;
        };
        let now = self.clock.now();
        self.trajectory
            .lock()
            .extend(fixes.iter().map(|fix| CaseFix {
                case_id,
                vehicle_id: vehicle,
                fix: fix.clone(),
                live: false,
                received_at: now,
            }));
    }

    /// Evaluates every engine at `now`: silence and departure rules need the clock.
    pub async fn tick(&self) {
        let now = self.clock.now();
        let changes: Vec<(CaseId, AlertChange)> = {
            let mut cases = self.cases.lock();
            cases
                .iter_mut()
                .flat_map(|(case_id, active)| {
                    active
                        .engine
                        .on_tick(now)
                        .into_iter()
                        .map(|change| (*case_id, change))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        self.apply(changes).await;
        self.save_due(now).await;
    }

    async fn arrived(&self, case_id: CaseId, at: Timestamp) {
        let changes: Vec<(CaseId, AlertChange)> = {
            let mut cases = self.cases.lock();
            let Some(active) = cases.get_mut(&case_id) else {
                return;
            };
            if let Some(promised) = active.engine.promised_arrival()
                && at > promised
            {
                let warned = if active.warned { "true" } else { "false" };
                metrics::counter!(BREACHES, "warned" => warned).increment(1);
            }
            active
                .engine
                .mark_arrived(at)
                .into_iter()
                .map(|change| (case_id, change))
                .collect()
        };
        self.apply(changes).await;
        self.stop(case_id, "the vehicle arrived").await;
    }

    async fn stop(&self, case_id: CaseId, reason: &str) {
        let Some(active) = self.cases.lock().remove(&case_id) else {
            return;
        };
        self.by_vehicle.lock().retain(|_, case| *case != case_id);
        metrics::gauge!(TRACKED_CASES).set(self.cases.lock().len() as f64);
        // Whatever the engine still had open no longer applies.
        let open: Vec<AlertKind> = active.engine.open_alerts().keys().copied().collect();
        for kind in open {
            if let Err(error) = self
                .store
                .clear_alert(case_id, kind, reason, self.clock.now())
                .await
            {
                tracing::warn!(case_id = %case_id, error = %error, "could not clear an alert");
            }
        }
        self.save(case_id, active.vehicle, &active.engine).await;
    }

    /// Turns alert changes into alerts and timeline events.
    async fn apply(&self, changes: Vec<(CaseId, AlertChange)>) {
        if changes.is_empty() {
            return;
        }
        let now = self.clock.now();
        let mut touched = Vec::new();
        for (case_id, change) in changes {
            let outcome = match &change {
                AlertChange::Raise {
                    kind,
                    severity,
                    predicted_breach,
                    reason,
                    ..
                } => {
                    let alert = NewAlert {
                        id: AlertId::new_v7(),
                        kind: *kind,
                        severity: *severity,
                        predicted_breach: *predicted_breach,
                        message: reason.clone(),
                    };
                    match self.store.raise_alert(case_id, &alert, now).await {
                        Ok(Some(raised)) => {
                            metrics::counter!(ALERTS_RAISED, "kind" => kind.as_str()).increment(1);
                            let promised = self.cases.lock().get_mut(&case_id).and_then(|active| {
                                active.warned = true;
                                active.engine.promised_arrival()
                            });
                            if let Some(promised) = promised {
                                let lead_s = (promised - raised.raised_at).num_milliseconds()
                                    as f64
                                    / 1000.0;
                                metrics::histogram!(ALERT_LEAD_TIME).record(lead_s.max(0.0));
                            }
                            tracing::info!(case_id = %case_id, kind = %kind, severity = %severity, "alert raised");
                            Ok(())
                        }
                        // Another instance raised it first.
                        Ok(None) => Ok(()),
                        Err(error) => Err(error),
                    }
                }
                AlertChange::Escalate {
                    kind,
                    severity,
                    predicted_breach,
                    reason,
                    ..
                } => {
                    let update = AlertUpdate {
                        severity: *severity,
                        predicted_breach: *predicted_breach,
                        message: reason.clone(),
                    };
                    self.store
                        .escalate_alert(case_id, *kind, &update, now)
                        .await
                        .map(|_| ())
                }
                AlertChange::Clear { kind, reason } => self
                    .store
                    .clear_alert(case_id, *kind, reason, now)
                    .await
                    .map(|_| ()),
            };
            if let Err(error) = outcome {
                tracing::warn!(case_id = %case_id, kind = %change.kind(), error = %error, "could not apply an alert change");
            }
            touched.push(case_id);
        }
        touched.sort();
        touched.dedup();
        for case_id in touched {
            let engine = self
                .cases
                .lock()
                .get(&case_id)
                .map(|active| (active.vehicle, active.engine.clone()));
            if let Some((vehicle, engine)) = engine {
                self.save(case_id, vehicle, &engine).await;
            }
        }
    }

    /// Saves engines not saved for a while, or whose prediction moved.
    async fn save_due(&self, now: Timestamp) {
        let due: Vec<(CaseId, VehicleId, RuleEngine)> = {
            let cases = self.cases.lock();
            cases
                .iter()
                .filter(|(_, active)| {
                    let prediction = active.engine.snapshot(now).predicted_arrival;
                    let moved = match (prediction, active.saved_prediction) {
                        (Some(new), Some(old)) => (new - old).num_seconds().abs() >= 60,
                        (new, old) => new.is_some() != old.is_some(),
                    };
                    moved
                        || active
                            .saved_at
                            .is_none_or(|saved| now - saved >= SAVE_EVERY)
                })
                .map(|(case_id, active)| (*case_id, active.vehicle, active.engine.clone()))
                .collect()
        };
        for (case_id, vehicle, engine) in due {
            self.save(case_id, vehicle, &engine).await;
        }
    }

    async fn save(&self, case_id: CaseId, vehicle: VehicleId, engine: &RuleEngine) {
        let now = self.clock.now();
        let prediction = engine.snapshot(now).predicted_arrival;
        let state = match serde_json::to_value(engine.state()) {
            Ok(state) => state,
            Err(error) => {
                tracing::error!(error = %error, "cannot encode a tracker state");
                return;
            }
        };
        match self
            .store
            .save_tracking(case_id, vehicle, &state, prediction, now)
            .await
        {
            Ok(()) => {
                if let Some(active) = self.cases.lock().get_mut(&case_id) {
                    active.saved_at = Some(now);
                    active.saved_prediction = prediction;
                }
            }
            Err(error) => {
                tracing::warn!(case_id = %case_id, error = %error, "could not save tracking state")
            }
        }
    }

    /// Writes the trajectory fixes received since the last flush.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let batch = std::mem::take(&mut *self.trajectory.lock());
        if batch.is_empty() {
            return Ok(0);
        }
        match self.store.insert_case_fixes(&batch).await {
            Ok(count) => Ok(count as usize),
            Err(error) => {
                // Keep them for the next try, behind anything newer.
                let mut trajectory = self.trajectory.lock();
                let newer = std::mem::take(&mut *trajectory);
                *trajectory = batch;
                trajectory.extend(newer);
                Err(error)
            }
        }
    }

    /// How often [`Tracking::tick`] should run.
    pub fn tick_period(settings: &crate::config::Settings) -> Duration {
        Duration::from_secs(settings.alert_tick_s.max(1))
    }
}

fn tracker_fix(fix: &Fix) -> tracker::Fix {
    tracker::Fix {
        at: fix.ts,
        position: fix.position,
        speed_kmh: fix.speed_kmh,
    }
}

/// The tracker configuration from the settings.
pub fn tracker_config(settings: &crate::config::Settings) -> TrackerConfig {
    let mut config = TrackerConfig::default();
    let eta = &mut config.progress.eta;
    eta.detour_factor = settings.eta_detour_factor;
    eta.urban_speed_kmh = settings.eta_speed_urban_kmh;
    eta.rural_speed_kmh = settings.eta_speed_rural_kmh;
    eta.highway_speed_kmh = settings.eta_speed_highway_kmh;
    eta.departure_allowance_s = settings.eta_setup_s as f64;
    let rules = &mut config.rules;
    rules.late_departure_s = settings.alert_late_departure_s as f64;
    rules.stalled_s = settings.alert_stalled_s as f64;
    rules.gps_lost_s = settings.alert_gps_lost_s as f64;
    rules.arrival_grace_s = settings.alert_arrival_grace_s as f64;
    rules.moving_away_min_growth_m = settings.alert_moving_away_m as f64;
    rules.critical_lead_s = settings.alert_critical_lead_s as f64;
    config
}
