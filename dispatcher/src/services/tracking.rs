//! Tracking of assigned vehicles and delay pre-warning, wiring the pure `tracking-core` crate
//! to the server: one rule engine per active case, fed by every fix of the assigned
//! vehicle and by a periodic tick; its alert changes become alerts (through
//! [`Alerts`]) and timeline events; its prediction is the case's predicted arrival. It
//! also serves what is read of a tracked case: the agents' trajectory and the customer's
//! tracking view.
//!
//! Engines start and stop on case events read from the log (`offer_accepted`,
//! `vehicle_assigned`, `status_changed`). Every fix reaches tracking by one road, the
//! fleet registry's feed ([`FleetRegistry::subscribe_fixes`]): live fixes this instance
//! accepted, live fixes other instances accepted (through the bus), and batch or
//! blind-area uploads, which enter the trajectory but not the live rules. So every
//! instance tracks every active case. Alerts are deduplicated by the database (one live
//! alert per case and kind), so instances racing to raise the same alert produce one.
//! The instance that accepted a fix is the one that stores it in the trajectory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use domain::ports::{ActiveJob, AlertUpdate, CaseFix, Store, StoreError};
use domain::{
    AlertKind, CaseId, CaseStatus, Clock, Event, EventKind, Fix, Service, Timestamp, VehicleId,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracking_core::{AlertChange, RuleEngine, TrackerConfig, TrackingTarget};

use crate::services::alerts::Alerts;
use crate::services::fleet_ingest::{AcceptedFixes, FleetRegistry};
use crate::stream::EventTail;
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
    alerts: Arc<Alerts>,
    config: TrackerConfig,
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
        alerts: Arc<Alerts>,
        config: TrackerConfig,
    ) -> Tracking {
        Tracking {
            store,
            clock,
            registry,
            alerts,
            config,
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
                        engine.on_fix(tracking_core::Fix::from(&stored.fix), stored.fix.ts);
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
    pub fn snapshot(&self, case_id: CaseId) -> Option<tracking_core::ProgressSnapshot> {
        let now = self.clock.now();
        self.cases
            .lock()
            .get(&case_id)
            .map(|active| active.engine.snapshot(now))
    }

    /// Follows the event log (engines start and stop) and the registry's fixes.
    pub fn follow(self: &Arc<Self>, events: &EventTail) -> Vec<tokio::task::JoinHandle<()>> {
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
        let mut fixes = self.registry.subscribe_fixes();
        tasks.push(tokio::spawn(async move {
            loop {
                match fixes.recv().await {
                    Ok(accepted) => {
                        let changes = tracking.take(&accepted);
                        tracking.apply(changes).await;
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
                    engine.on_fix(tracking_core::Fix::from(&fix), now);
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

    /// Takes fixes from the registry's feed: live ones feed the rules, and the ones this
    /// instance accepted go to the trajectory. Returns the alert changes to apply.
    fn take(&self, accepted: &AcceptedFixes) -> Vec<(CaseId, AlertChange)> {
        if accepted.live {
            self.on_fixes(&accepted.fixes, accepted.local)
        } else {
            if accepted.local {
                self.record_history(&accepted.fixes);
            }
            Vec::new()
        }
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
                    for change in active.engine.on_fix(tracking_core::Fix::from(fix), now) {
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
    fn record_history(&self, fixes: &[(VehicleId, Fix)]) {
        let now = self.clock.now();
        let history: Vec<CaseFix> = {
            let by_vehicle = self.by_vehicle.lock();
            fixes
                .iter()
                .filter_map(|(vehicle, fix)| {
                    by_vehicle.get(vehicle).map(|case_id| CaseFix {
                        case_id: *case_id,
                        vehicle_id: *vehicle,
                        fix: fix.clone(),
                        live: false,
                        received_at: now,
                    })
                })
                .collect()
        };
        if !history.is_empty() {
            self.trajectory.lock().extend(history);
        }
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
            if let Err(error) = self.alerts.clear(case_id, kind, reason).await {
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
                    let alert = Alerts::draft(*kind, *severity, *predicted_breach, reason.clone());
                    let promised = self
                        .cases
                        .lock()
                        .get(&case_id)
                        .and_then(|active| active.engine.promised_arrival());
                    match self.alerts.raise(case_id, &alert, promised).await {
                        Ok(Some(_)) => {
                            if let Some(active) = self.cases.lock().get_mut(&case_id) {
                                active.warned = true;
                            }
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
                    self.alerts
                        .escalate(case_id, *kind, &update)
                        .await
                        .map(|_| ())
                }
                AlertChange::Clear { kind, reason } => {
                    self.alerts.clear(case_id, *kind, reason).await.map(|_| ())
                }
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

    /// The assigned truck's path for a case, filtered like the rules see it, as a
    /// GeoJSON feature collection; `None` when there is no such case.
    pub async fn trajectory(
        &self,
        case_id: CaseId,
    ) -> Result<Option<tracking_core::Trajectory>, StoreError> {
        if self.store.get_case(case_id).await?.is_none() {
            return Ok(None);
        }
        let stored = self.store.case_fixes(case_id).await?;
        let vehicle = match stored.first() {
            Some(fix) => fix.vehicle_id,
            None => match self
                .store
                .case_offers(case_id)
                .await?
                .into_iter()
                .rev()
                .find(|o| o.state == domain::OfferState::Accepted)
            {
                Some(job) => job.vehicle_id,
                None => VehicleId(uuid::Uuid::nil()),
            },
        };
        let fixes: Vec<tracking_core::Fix> = stored
            .iter()
            .map(|stored| tracking_core::Fix::from(&stored.fix))
            .collect();
        Ok(Some(tracking_core::Trajectory::from_fixes(
            case_id,
            vehicle,
            &fixes,
            &self.config.progress.filter,
        )))
    }

    /// What the customer's tracking page shows of a case; `None` when there is no such
    /// case. The truck's position is rounded to about 50 m and shown only while it is on
    /// its way.
    pub async fn customer_view(&self, case_id: CaseId) -> Result<Option<TrackingView>, StoreError> {
        let Some(case) = self.store.get_case(case_id).await? else {
            return Ok(None);
        };
        let on_the_way = matches!(case.status, CaseStatus::Assigned | CaseStatus::EnRoute);
        let mut vehicle = None;
        let mut remaining = None;
        if on_the_way && let Some(job) = self.store.active_job(case.id).await? {
            let live = self.registry.latest_fix(job.vehicle_id);
            if let Some(fix) = live {
                let (lat, lon) = round_50m(fix.position.lat(), fix.position.lon());
                vehicle = Some(TrackedVehicle {
                    lat,
                    lon,
                    updated_at: fix.ts,
                });
                remaining = Some(
                    (fix.position.distance_m(&case.location.position) / 100.0).round() * 100.0,
                );
            }
        }
        let snapshot = self.snapshot(case.id);
        if let Some(distance) = snapshot.and_then(|s| s.remaining_distance_m) {
            remaining = Some((distance / 100.0).round() * 100.0);
        }
        let predicted = snapshot
            .and_then(|s| s.predicted_arrival)
            .or(case.predicted_arrival);
        let updates = self
            .store
            .timeline(case.id)
            .await?
            .into_iter()
            .filter(|event| event.kind == EventKind::CustomerNotified)
            .filter_map(|event| {
                let message = event.data.get("message")?.as_str()?.to_owned();
                Some(CustomerUpdate {
                    at: event.at,
                    message,
                })
            })
            .collect();
        Ok(Some(TrackingView {
            status: case.status,
            service: case.service,
            customer: TrackedPoint {
                lat: case.location.position.lat(),
                lon: case.location.position.lon(),
            },
            promised_arrival: case.promised_arrival,
            predicted_arrival: if on_the_way { predicted } else { None },
            remaining_distance_m: if on_the_way { remaining } else { None },
            vehicle,
            updates,
        }))
    }

    /// How often [`Tracking::tick`] should run.
    pub fn tick_period(settings: &crate::config::Settings) -> Duration {
        Duration::from_secs(settings.alert_tick_s.max(1))
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

/// The truck as the customer sees it: roughly where, never exactly.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackedVehicle {
    /// Latitude rounded to about 50 m.
    pub lat: f64,
    /// Longitude rounded to about 50 m.
    pub lon: f64,
    /// When the position was taken.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// What the customer's tracking page shows.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackingView {
    /// Where the case stands.
    pub status: CaseStatus,
    /// The service on its way.
    pub service: Service,
    /// The customer's own position (as they gave it).
    pub customer: TrackedPoint,
    /// When help was promised.
    pub promised_arrival: Option<chrono::DateTime<chrono::Utc>>,
    /// When help is now expected.
    pub predicted_arrival: Option<chrono::DateTime<chrono::Utc>>,
    /// Distance still to go, rounded to 100 m.
    pub remaining_distance_m: Option<f64>,
    /// The truck, while it is on its way (none before assignment, on scene or after).
    pub vehicle: Option<TrackedVehicle>,
    /// Messages the seat agents sent the customer, oldest first.
    pub updates: Vec<CustomerUpdate>,
}

/// A message from a seat agent to the customer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CustomerUpdate {
    /// When it was sent.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The message.
    pub message: String,
}

/// A point.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackedPoint {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
}

/// Rounds a position to a grid of about 50 m, so the page never reveals the driver's
/// exact whereabouts.
fn round_50m(lat: f64, lon: f64) -> (f64, f64) {
    let lat_step = 50.0 / 111_195.0;
    let lon_step = lat_step / lat.to_radians().cos().max(0.01);
    (
        (lat / lat_step).round() * lat_step,
        (lon / lon_step).round() * lon_step,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_moves_a_position_by_at_most_about_35_metres() {
        let exact = domain::LatLon::new(31.230_417, 121.473_712).unwrap();
        let (lat, lon) = round_50m(exact.lat(), exact.lon());
        let rounded = domain::LatLon::new(lat, lon).unwrap();
        let moved = exact.distance_m(&rounded);
        assert!(moved <= 36.0, "{moved}");
        assert_ne!((lat, lon), (exact.lat(), exact.lon()));
    }
}
