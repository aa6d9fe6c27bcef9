//! Fleet ingest: what the server knows about every vehicle besides its position
//! (provider, the provider's own id, capabilities, dispatch state), the providers' service
//! areas, and the intake of positions from every source (REST API, device protocols in
//! [`devices`], demo) through one plausibility gate ([`FleetRegistry::check`], applied to
//! a batch by [`FleetRegistry::check_in_batch`]).
//!
//! Accepted positions go to the live [`FleetIndex`] at once and to storage in batches
//! (every `RESCUE_FIX_FLUSH_MS`): a crash loses at most that much of the live position,
//! never a case or an offer, which are written synchronously. Every accepted fix, live or
//! history, this instance's or another's, is then handed on by one road, the feed of
//! [`FleetRegistry::subscribe_fixes`], which tracking follows.

pub mod devices;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use dashmap::DashMap;
use domain::area::ServiceArea;
use domain::ports::{Registered, Store, StoreError};
use domain::{
    DeviceProtocol, Fix, FixSource, LatLon, Provider, ProviderId, Timestamp, Vehicle, VehicleId,
    VehicleRegistration, VehicleState,
};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::bus::{Bus, BusMessage};
use crate::fleet::{CapabilitySet, FleetIndex, FleetUpdate, FleetVehicle};

/// Positions accepted, by `source`.
pub const FIXES_ACCEPTED: &str = "rescue_fixes_accepted_total";
/// Positions rejected, by `source` and `reason`.
pub const FIXES_REJECTED: &str = "rescue_fixes_rejected_total";
/// Vehicles by `state`.
pub const FLEET_VEHICLES: &str = "rescue_fleet_vehicles";

/// Accepted fixes, as the registry hands them on ([`FleetRegistry::subscribe_fixes`]).
#[derive(Debug, Clone)]
pub struct AcceptedFixes {
    /// `(vehicle, fix)` pairs, oldest first per vehicle.
    pub fixes: Arc<Vec<(VehicleId, Fix)>>,
    /// Live fixes moved their vehicle; the others are a batch or blind-area upload, older
    /// than the live position: trajectory history only.
    pub live: bool,
    /// Accepted by this instance (which stores them in the trajectory), not learnt from
    /// another over the bus.
    pub local: bool,
}

/// Batches of accepted fixes a slow subscriber may fall behind by before it misses some.
const FIX_FEED_CAPACITY: usize = 4096;

/// What the registry holds per vehicle.
#[derive(Debug, Clone)]
pub struct VehicleMeta {
    /// The provider.
    pub provider: ProviderId,
    /// The provider's own id for it.
    pub external_id: String,
    /// What it can do.
    pub capabilities: CapabilitySet,
    /// Dispatch state.
    pub state: VehicleState,
    /// Time of the last accepted live fix.
    pub last_fix_at: Option<Timestamp>,
}

/// What a provider's contract says about where and how it is preferred.
#[derive(Debug, Clone)]
struct ProviderTerms {
    area: Option<Arc<ServiceArea>>,
    priority: i32,
}

/// A position as a provider sends it (`POST /v1/provider/positions`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FixInput {
    /// The provider's own vehicle id.
    pub vehicle_id: String,
    /// Latitude, degrees (WGS-84).
    pub lat: f64,
    /// Longitude, degrees (WGS-84).
    pub lon: f64,
    /// When the position was measured (RFC 3339).
    pub ts: chrono::DateTime<chrono::Utc>,
    /// Ground speed, km/h.
    #[serde(default)]
    pub speed_kmh: Option<f64>,
    /// Course over ground, degrees clockwise from north.
    #[serde(default)]
    pub heading: Option<f64>,
    /// Horizontal accuracy, metres.
    #[serde(default)]
    pub accuracy_m: Option<f64>,
}

/// One refused position of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Rejection {
    /// Its index in the batch.
    pub index: usize,
    /// Why.
    pub error: String,
}

/// Why a single fix is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixRefusal {
    /// No such vehicle (for this provider).
    UnknownVehicle,
    /// Latitude or longitude out of range.
    OutOfRange,
    /// Dated in the future beyond the allowed skew.
    InTheFuture,
    /// Not newer than the vehicle's last fix.
    NotNewer,
    /// Speed or heading out of range.
    BadMotion,
    /// The device says it has no GPS fix.
    NoGpsFix,
}

impl FixRefusal {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            FixRefusal::UnknownVehicle => "unknown_vehicle",
            FixRefusal::OutOfRange => "out_of_range",
            FixRefusal::InTheFuture => "in_the_future",
            FixRefusal::NotNewer => "not_newer",
            FixRefusal::BadMotion => "bad_motion",
            FixRefusal::NoGpsFix => "no_gps_fix",
        }
    }
}

/// The fleet registry (see the module docs).
pub struct FleetRegistry {
    store: Arc<dyn Store>,
    index: Arc<FleetIndex>,
    vehicles: DashMap<VehicleId, VehicleMeta>,
    by_external: DashMap<(ProviderId, String), VehicleId>,
    terms: RwLock<HashMap<ProviderId, ProviderTerms>>,
    latest: DashMap<VehicleId, Fix>,
    devices: DashMap<(DeviceProtocol, String), VehicleId>,
    unsaved: Mutex<HashSet<VehicleId>>,
    max_future: chrono::Duration,
    bus: Arc<Bus>,
    feed: broadcast::Sender<AcceptedFixes>,
}

impl FleetRegistry {
    /// Loads every vehicle and provider from storage and fills the index with every
    /// vehicle that has a position.
    pub async fn load(
        store: Arc<dyn Store>,
        max_future_s: u64,
        bus: Arc<Bus>,
    ) -> Result<FleetRegistry, StoreError> {
        let vehicles = store.list_vehicles().await?;
        let providers = store.list_providers().await?;
        let index = FleetIndex::from_vehicles(vehicles.iter().filter_map(fleet_vehicle));
        let registry = FleetRegistry {
            store,
            index: Arc::new(index),
            vehicles: DashMap::new(),
            by_external: DashMap::new(),
            terms: RwLock::new(HashMap::new()),
            latest: DashMap::new(),
            devices: DashMap::new(),
            unsaved: Mutex::new(HashSet::new()),
            max_future: chrono::Duration::seconds(i64::try_from(max_future_s).unwrap_or(3600)),
            bus,
            feed: broadcast::channel(FIX_FEED_CAPACITY).0,
        };
        for vehicle in &vehicles {
            registry.remember(vehicle);
        }
        for provider in &providers {
            registry.remember_provider(provider);
        }
        tracing::info!(
            vehicles = vehicles.len(),
            providers = providers.len(),
            "fleet loaded"
        );
        Ok(registry)
    }

    /// The live index.
    pub fn index(&self) -> &Arc<FleetIndex> {
        &self.index
    }

    fn remember(&self, vehicle: &Vehicle) {
        // A registration replaces the device list.
        self.devices.retain(|_, bound| *bound != vehicle.id);
        for device in &vehicle.devices {
            self.devices
                .insert((device.protocol, device.id.clone()), vehicle.id);
        }
        if let Some(fix) = &vehicle.last_fix {
            let newer = self
                .latest
                .get(&vehicle.id)
                .is_none_or(|known| known.ts < fix.ts);
            if newer {
                self.latest.insert(vehicle.id, fix.clone());
            }
        }
        self.by_external.insert(
            (vehicle.provider_id, vehicle.vehicle_id.clone()),
            vehicle.id,
        );
        self.vehicles.insert(
            vehicle.id,
            VehicleMeta {
                provider: vehicle.provider_id,
                external_id: vehicle.vehicle_id.clone(),
                capabilities: vehicle.capabilities.iter().copied().collect(),
                state: vehicle.state,
                last_fix_at: vehicle.last_fix.as_ref().map(|fix| fix.ts),
            },
        );
    }

    /// Stores a new provider with the hash of its API key and makes it known here and on
    /// every other instance.
    pub async fn add_provider(
        &self,
        provider: &Provider,
        api_key_hash: &[u8; 32],
    ) -> Result<(), StoreError> {
        self.store.insert_provider(provider, api_key_hash).await?;
        self.announce_provider(provider);
        Ok(())
    }

    /// Every provider, as stored.
    pub async fn providers(&self) -> Result<Vec<Provider>, StoreError> {
        self.store.list_providers().await
    }

    /// Takes note of a new or changed provider here and on every other instance.
    pub fn announce_provider(&self, provider: &Provider) {
        self.remember_provider(provider);
        self.bus.publish(BusMessage::ProviderChanged {
            provider: Box::new(provider.clone()),
        });
    }

    /// Takes note of a provider's service area (none: the contract is not limited by area).
    pub fn remember_provider(&self, provider: &Provider) {
        let area = provider.service_area.as_ref().and_then(|geometry| match ServiceArea::from_geojson(geometry) {
            Ok(area) => Some(Arc::new(area)),
            Err(error) => {
                tracing::error!(provider_id = %provider.id, error = %error, "stored service area is invalid; ignoring it");
                None
            }
        });
        self.terms.write().insert(
            provider.id,
            ProviderTerms {
                area,
                priority: provider.priority,
            },
        );
    }

    /// A provider's contract priority (0 when unknown).
    pub fn priority(&self, provider: ProviderId) -> i32 {
        self.terms
            .read()
            .get(&provider)
            .map_or(0, |terms| terms.priority)
    }

    /// Loads a provider's terms if this instance does not know them yet (it may have been
    /// created on another instance).
    pub async fn ensure_provider(&self, provider: ProviderId) -> Result<(), StoreError> {
        if self.terms.read().contains_key(&provider) {
            return Ok(());
        }
        if let Some(found) = self.store.get_provider(provider).await? {
            self.remember_provider(&found);
        }
        Ok(())
    }

    /// Whether the provider's contract covers `point`. An unknown provider covers nothing.
    pub fn covers(&self, provider: ProviderId, point: &LatLon) -> bool {
        match self.terms.read().get(&provider) {
            Some(ProviderTerms {
                area: Some(area), ..
            }) => area.contains(point),
            Some(ProviderTerms { area: None, .. }) => true,
            None => false,
        }
    }

    /// Registers or updates a vehicle, in storage and in memory.
    pub async fn register(
        &self,
        provider: ProviderId,
        external_id: &str,
        registration: &VehicleRegistration,
        at: Timestamp,
    ) -> Result<Registered, StoreError> {
        self.ensure_provider(provider).await?;
        let registered = self
            .store
            .register_vehicle(provider, external_id, registration, at)
            .await?;
        self.learn_vehicle(&registered.vehicle);
        self.bus.publish(BusMessage::VehicleRegistered {
            vehicle: Box::new(registered.vehicle.clone()),
        });
        Ok(registered)
    }

    fn learn_vehicle(&self, vehicle: &Vehicle) {
        self.remember(vehicle);
        match fleet_vehicle(vehicle) {
            Some(entry) => {
                // The registry's newest fix may be ahead of storage.
                let entry = match self.latest_fix(vehicle.id) {
                    Some(fix) if fix.ts > entry.fix_at => FleetVehicle {
                        position: fix.position,
                        fix_at: fix.ts,
                        ..entry
                    },
                    _ => entry,
                };
                self.index.upsert(entry);
            }
            None => {
                if let Some(mut existing) = self.index.get(vehicle.id) {
                    existing.state = vehicle.state;
                    existing.capabilities = vehicle.capabilities.iter().copied().collect();
                    self.index.upsert(existing);
                }
            }
        }
    }

    /// The server id of a provider's vehicle (from memory, else from storage: another
    /// instance may have registered it).
    pub async fn resolve(
        &self,
        provider: ProviderId,
        external_id: &str,
    ) -> Result<Option<VehicleId>, StoreError> {
        if let Some(id) = self.by_external.get(&(provider, external_id.to_owned())) {
            return Ok(Some(*id));
        }
        match self.store.find_vehicle(provider, external_id).await? {
            Some(vehicle) => {
                self.ensure_provider(provider).await?;
                self.remember(&vehicle);
                Ok(Some(vehicle.id))
            }
            None => Ok(None),
        }
    }

    /// The vehicle a GPS device reports for (from memory, else from storage).
    pub async fn resolve_device(
        &self,
        protocol: DeviceProtocol,
        device_id: &str,
    ) -> Result<Option<VehicleId>, StoreError> {
        if let Some(id) = self.devices.get(&(protocol, device_id.to_owned())) {
            return Ok(Some(*id));
        }
        match self.store.vehicle_by_device(protocol, device_id).await? {
            Some(vehicle) => {
                self.ensure_provider(vehicle.provider_id).await?;
                self.remember(&vehicle);
                Ok(Some(vehicle.id))
            }
            None => Ok(None),
        }
    }

    /// What the registry holds about a vehicle.
    pub fn meta(&self, id: VehicleId) -> Option<VehicleMeta> {
        self.vehicles.get(&id).map(|meta| meta.clone())
    }

    /// Records a dispatch state change made in storage, here and on every other instance.
    pub fn set_state(&self, id: VehicleId, state: VehicleState) {
        self.apply_state(id, state);
        self.bus
            .publish(BusMessage::VehicleState { vehicle: id, state });
    }

    fn apply_state(&self, id: VehicleId, state: VehicleState) {
        if let Some(mut meta) = self.vehicles.get_mut(&id) {
            meta.state = state;
        }
        self.index.apply([FleetUpdate::State { id, state }]);
    }

    /// Validates and takes a batch of positions from a provider; returns how many were
    /// accepted and why the others were not.
    pub async fn ingest_provider_fixes(
        &self,
        provider: ProviderId,
        fixes: Vec<FixInput>,
        now: Timestamp,
    ) -> Result<(usize, Vec<Rejection>), StoreError> {
        let mut rejected = Vec::new();
        let mut accepted = Vec::with_capacity(fixes.len());
        // Several fixes of one vehicle in a batch must each be newer than the one before.
        let mut latest_in_batch: HashMap<VehicleId, Timestamp> = HashMap::new();
        for (index, input) in fixes.into_iter().enumerate() {
            let Some(vehicle_id) = self.resolve(provider, &input.vehicle_id).await? else {
                count_rejection(FixSource::Api, FixRefusal::UnknownVehicle);
                rejected.push(Rejection {
                    index,
                    error: format!("unknown vehicle `{}`", input.vehicle_id),
                });
                continue;
            };
            let position = match LatLon::new(input.lat, input.lon) {
                Ok(position) => position,
                Err(error) => {
                    count_rejection(FixSource::Api, FixRefusal::OutOfRange);
                    rejected.push(Rejection {
                        index,
                        error: error.to_string(),
                    });
                    continue;
                }
            };
            let fix = Fix {
                position,
                ts: input.ts,
                speed_kmh: input.speed_kmh,
                heading: input.heading,
                accuracy_m: input.accuracy_m,
                source: FixSource::Api,
            };
            match self.check_in_batch(&mut latest_in_batch, vehicle_id, &fix, now) {
                Ok(()) => accepted.push((vehicle_id, fix)),
                Err(refusal) => {
                    count_rejection(FixSource::Api, refusal);
                    rejected.push(Rejection {
                        index,
                        error: refusal_message(refusal).to_owned(),
                    });
                }
            }
        }
        let count = accepted.len();
        // A fix that loses a race with a concurrent newer one is superseded, not refused.
        self.accept(accepted);
        Ok((count, rejected))
    }

    /// [`FleetRegistry::check`] for one fix of a batch: it must also be newer than the
    /// fixes of its vehicle accepted before it in the batch (`latest_in_batch`, which a
    /// passing fix updates).
    pub fn check_in_batch(
        &self,
        latest_in_batch: &mut HashMap<VehicleId, Timestamp>,
        vehicle_id: VehicleId,
        fix: &Fix,
        now: Timestamp,
    ) -> Result<(), FixRefusal> {
        if latest_in_batch
            .get(&vehicle_id)
            .is_some_and(|latest| fix.ts <= *latest)
        {
            return Err(FixRefusal::NotNewer);
        }
        self.check(vehicle_id, fix, now)?;
        latest_in_batch.insert(vehicle_id, fix.ts);
        Ok(())
    }

    /// The plausibility gate: checks a fix of a known vehicle against the rules of the
    /// live position.
    pub fn check(
        &self,
        vehicle_id: VehicleId,
        fix: &Fix,
        now: Timestamp,
    ) -> Result<(), FixRefusal> {
        let Some(meta) = self.vehicles.get(&vehicle_id) else {
            return Err(FixRefusal::UnknownVehicle);
        };
        if fix.ts > now + self.max_future {
            return Err(FixRefusal::InTheFuture);
        }
        if meta.last_fix_at.is_some_and(|last| fix.ts <= last) {
            return Err(FixRefusal::NotNewer);
        }
        let speed_ok = fix
            .speed_kmh
            .is_none_or(|speed| speed.is_finite() && (0.0..=400.0).contains(&speed));
        let heading_ok = fix
            .heading
            .is_none_or(|heading| heading.is_finite() && (0.0..=360.0).contains(&heading));
        let accuracy_ok = fix
            .accuracy_m
            .is_none_or(|accuracy| accuracy.is_finite() && accuracy >= 0.0);
        if !(speed_ok && heading_ok && accuracy_ok) {
            return Err(FixRefusal::BadMotion);
        }
        Ok(())
    }

    /// Applies checked live fixes: the index now, storage at the next flush. Returns the
    /// fixes that moved their vehicle (a concurrent newer fix wins).
    pub fn accept(&self, fixes: Vec<(VehicleId, Fix)>) -> Vec<(VehicleId, Fix)> {
        let moved = self.apply_fixes(fixes);
        self.unsaved
            .lock()
            .extend(moved.iter().map(|(vehicle_id, _)| *vehicle_id));
        if !moved.is_empty() {
            self.bus.publish(BusMessage::Fixes {
                fixes: moved.clone(),
            });
            self.hand_on(moved.clone(), true, true);
        }
        moved
    }

    /// Takes batch or blind-area fixes that are older than their vehicle's live position
    /// (checked otherwise): they go to the trajectory of the case the vehicle serves, and
    /// never move the live position.
    pub fn accept_history(&self, fixes: Vec<(VehicleId, Fix)>) {
        if !fixes.is_empty() {
            self.hand_on(fixes, false, true);
        }
    }

    /// Every accepted fix, live or history, this instance's or another's (see the module
    /// docs).
    pub fn subscribe_fixes(&self) -> broadcast::Receiver<AcceptedFixes> {
        self.feed.subscribe()
    }

    fn hand_on(&self, fixes: Vec<(VehicleId, Fix)>, live: bool, local: bool) {
        // No subscriber (nothing tracks yet): nothing to hand on.
        let _ = self.feed.send(AcceptedFixes {
            fixes: Arc::new(fixes),
            live,
            local,
        });
    }

    /// Moves vehicles in memory (not storage: the instance that accepted a fix writes it).
    fn apply_fixes(&self, fixes: Vec<(VehicleId, Fix)>) -> Vec<(VehicleId, Fix)> {
        let mut moved = Vec::with_capacity(fixes.len());
        let mut updates = Vec::with_capacity(fixes.len());
        for (vehicle_id, fix) in fixes {
            let Some(mut meta) = self.vehicles.get_mut(&vehicle_id) else {
                continue;
            };
            if meta.last_fix_at.is_some_and(|last| fix.ts <= last) {
                continue;
            }
            meta.last_fix_at = Some(fix.ts);
            if self.index.get(vehicle_id).is_some() {
                updates.push(FleetUpdate::Position {
                    id: vehicle_id,
                    position: fix.position,
                    fix_at: fix.ts,
                });
            } else {
                updates.push(FleetUpdate::Upsert(FleetVehicle {
                    id: vehicle_id,
                    provider: meta.provider,
                    position: fix.position,
                    fix_at: fix.ts,
                    state: meta.state,
                    capabilities: meta.capabilities,
                }));
            }
            moved.push((vehicle_id, fix));
        }
        self.index.apply(updates);
        // One counter update per source and batch, not per fix: this is the hot path.
        let mut per_source: [u64; FixSource::ALL.len()] = [0; FixSource::ALL.len()];
        for (_, fix) in &moved {
            if let Some(slot) = FixSource::ALL
                .iter()
                .position(|source| *source == fix.source)
            {
                per_source[slot] += 1;
            }
        }
        for (slot, count) in per_source.iter().enumerate() {
            if *count > 0 {
                metrics::counter!(FIXES_ACCEPTED, "source" => FixSource::ALL[slot].as_str())
                    .increment(*count);
            }
        }
        for (vehicle_id, fix) in &moved {
            self.latest.insert(*vehicle_id, fix.clone());
        }
        moved
    }

    /// Follows the other instances: applies what they publish on the bus.
    pub fn follow(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let registry = self.clone();
        let mut messages = self.bus.subscribe();
        let own = self.bus.instance();
        tokio::spawn(async move {
            loop {
                let envelope = match messages.recv().await {
                    Ok(envelope) => envelope,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        // Positions are superseded by the next ones; a missed state change
                        // heals at the next claim, which the database arbitrates.
                        tracing::warn!(missed, "fleet follower lagged behind the bus");
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                if envelope.origin == own {
                    continue;
                }
                match &envelope.message {
                    BusMessage::Fixes { fixes } => {
                        let known: Vec<_> = fixes
                            .iter()
                            .filter(|(vehicle_id, _)| registry.vehicles.contains_key(vehicle_id))
                            .cloned()
                            .collect();
                        let moved = registry.apply_fixes(known);
                        if !moved.is_empty() {
                            registry.hand_on(moved, true, false);
                        }
                    }
                    BusMessage::VehicleState { vehicle, state } => {
                        registry.apply_state(*vehicle, *state)
                    }
                    BusMessage::VehicleRegistered { vehicle } => registry.learn_vehicle(vehicle),
                    BusMessage::ProviderChanged { provider } => {
                        registry.remember_provider(provider)
                    }
                }
            }
        })
    }

    /// The latest accepted position of a vehicle (possibly not yet written to storage).
    pub fn latest_fix(&self, id: VehicleId) -> Option<Fix> {
        self.latest.get(&id).map(|fix| fix.clone())
    }

    /// A stored vehicle with its live state and position from memory, which may be ahead
    /// of storage by up to one flush interval.
    pub fn live_view(&self, mut vehicle: Vehicle) -> Vehicle {
        if let Some(fix) = self.latest_fix(vehicle.id)
            && vehicle
                .last_fix
                .as_ref()
                .is_none_or(|stored| stored.ts < fix.ts)
        {
            vehicle.last_fix = Some(fix);
        }
        vehicle
    }

    /// One of a provider's vehicles by the provider's own id, with its live state.
    pub async fn provider_vehicle(
        &self,
        provider: ProviderId,
        external_id: &str,
    ) -> Result<Option<Vehicle>, StoreError> {
        let found = self.store.find_vehicle(provider, external_id).await?;
        Ok(found.map(|vehicle| self.live_view(vehicle)))
    }

    /// Every vehicle of a provider, with its live state.
    pub async fn provider_vehicles(
        &self,
        provider: ProviderId,
    ) -> Result<Vec<Vehicle>, StoreError> {
        let vehicles = self.store.list_provider_vehicles(provider).await?;
        Ok(vehicles
            .into_iter()
            .map(|vehicle| self.live_view(vehicle))
            .collect())
    }

    /// Writes the positions accepted since the last flush. On failure they are kept for
    /// the next attempt (newer ones win).
    pub async fn flush(&self) -> Result<usize, StoreError> {
        let dirty: Vec<VehicleId> = {
            let mut unsaved = self.unsaved.lock();
            if unsaved.is_empty() {
                return Ok(0);
            }
            unsaved.drain().collect()
        };
        let batch: Vec<(VehicleId, Fix)> = dirty
            .iter()
            .filter_map(|vehicle_id| self.latest_fix(*vehicle_id).map(|fix| (*vehicle_id, fix)))
            .collect();
        let count = batch.len();
        if let Err(error) = self.store.save_last_fixes(&batch).await {
            // Keep them for the next attempt; storage never moves a position back.
            self.unsaved.lock().extend(dirty);
            return Err(error);
        }
        Ok(count)
    }

    /// Vehicles by state, for the gauge.
    pub fn publish_gauges(&self) {
        let mut counts: HashMap<VehicleState, usize> = HashMap::new();
        for meta in self.vehicles.iter() {
            *counts.entry(meta.state).or_default() += 1;
        }
        for state in VehicleState::ALL {
            metrics::gauge!(FLEET_VEHICLES, "state" => state.as_str())
                .set(counts.get(state).copied().unwrap_or(0) as f64);
        }
    }
}

/// Counts a refused fix.
pub fn count_rejection(source: FixSource, refusal: FixRefusal) {
    metrics::counter!(FIXES_REJECTED, "source" => source.as_str(), "reason" => refusal.as_str())
        .increment(1);
}

fn refusal_message(refusal: FixRefusal) -> &'static str {
    match refusal {
        FixRefusal::UnknownVehicle => "unknown vehicle",
        FixRefusal::OutOfRange => "position out of range",
        FixRefusal::InTheFuture => "timestamp is in the future",
        FixRefusal::NotNewer => "not newer than the vehicle's last fix",
        FixRefusal::BadMotion => "speed_kmh must be 0–400, heading 0–360, accuracy_m non-negative",
        FixRefusal::NoGpsFix => "the device reports no GPS fix",
    }
}

/// The index entry of a stored vehicle, if it has a position.
pub fn fleet_vehicle(vehicle: &Vehicle) -> Option<FleetVehicle> {
    let fix = vehicle.last_fix.as_ref()?;
    Some(FleetVehicle {
        id: vehicle.id,
        provider: vehicle.provider_id,
        position: fix.position,
        fix_at: fix.ts,
        state: vehicle.state,
        capabilities: vehicle.capabilities.iter().copied().collect(),
    })
}
