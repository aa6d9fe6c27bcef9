//! [`FleetIndex`]: the R-tree of vehicle positions and the slots that hold the vehicles.
//! The module docs of [`crate::fleet`] explain the design.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use domain::{LatLon, ProviderId, Timestamp, VehicleId, VehicleState};
use parking_lot::{Mutex, RwLock, RwLockWriteGuard};
use rstar::primitives::GeomWithData;
use rstar::{RStarInsertionStrategy, RTree, RTreeParams};
use serde::{Deserialize, Serialize};

use super::capability::CapabilitySet;
use super::sphere::{self, LatLonBox, UnitVector};

/// A vehicle as the index knows it: who it is, where it was last seen, and what it can
/// take on.
///
/// ```
/// use chrono::Utc;
/// use dispatcher::fleet::{CapabilitySet, FleetVehicle};
/// use domain::{LatLon, ProviderId, Service, VehicleId, VehicleState};
///
/// let van = FleetVehicle {
///     id: VehicleId::new_v7(),
///     provider: ProviderId::new_v7(),
///     position: LatLon::new(39.9042, 116.4074).unwrap(),
///     fix_at: Utc::now(),
///     state: VehicleState::Available,
///     capabilities: CapabilitySet::from_iter([Service::JumpStart, Service::TyreChange]),
/// };
/// assert!(van.capabilities.contains(Service::JumpStart));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FleetVehicle {
    /// The server's id of the vehicle.
    pub id: VehicleId,
    /// The tow provider operating it.
    pub provider: ProviderId,
    /// Its last known position (WGS-84).
    pub position: LatLon,
    /// When that position was measured.
    pub fix_at: Timestamp,
    /// Where it stands for dispatch.
    pub state: VehicleState,
    /// The services it can perform.
    pub capabilities: CapabilitySet,
}

/// One change to the fleet, for [`FleetIndex::apply`].
///
/// ```
/// use chrono::Utc;
/// use dispatcher::fleet::FleetUpdate;
/// use domain::{LatLon, VehicleId, VehicleState};
///
/// let truck = VehicleId::new_v7();
/// let updates = [
///     FleetUpdate::Position { id: truck, position: LatLon::new(31.23, 121.47).unwrap(), fix_at: Utc::now() },
///     FleetUpdate::State { id: truck, state: VehicleState::Busy },
/// ];
/// # let _ = updates;
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FleetUpdate {
    /// Adds the vehicle, or replaces every attribute of the vehicle with this id.
    Upsert(FleetVehicle),
    /// A new fix of a known vehicle. Ignored (counted as stale) when older than the fix
    /// the index holds.
    Position {
        /// The vehicle.
        id: VehicleId,
        /// Where it is.
        position: LatLon,
        /// When it was there.
        fix_at: Timestamp,
    },
    /// A state change of a known vehicle; the vehicle does not move.
    State {
        /// The vehicle.
        id: VehicleId,
        /// Its new state.
        state: VehicleState,
    },
    /// The vehicle leaves the fleet.
    Remove(VehicleId),
}

/// What [`FleetIndex::apply`] did with a batch.
///
/// ```
/// use dispatcher::fleet::{ApplyOutcome, FleetIndex, FleetUpdate};
/// use domain::VehicleId;
///
/// let outcome = FleetIndex::new().apply([FleetUpdate::Remove(VehicleId::new_v7())]);
/// assert_eq!(outcome, ApplyOutcome { applied: 0, unknown_vehicle: 1, stale_fix: 0 });
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Updates that changed the index.
    pub applied: usize,
    /// Position, state and remove updates naming a vehicle the index does not hold.
    pub unknown_vehicle: usize,
    /// Position updates older than the fix the index already holds.
    pub stale_fix: usize,
}

/// A vehicle found by [`FleetIndex::nearest`], with its great-circle distance from the
/// query point.
///
/// ```
/// # use chrono::Utc;
/// # use dispatcher::fleet::{CapabilitySet, FleetIndex, FleetVehicle};
/// # use domain::{LatLon, ProviderId, VehicleId, VehicleState};
/// # let index = FleetIndex::new();
/// # index.upsert(FleetVehicle { id: VehicleId::new_v7(), provider: ProviderId::new_v7(),
/// #     position: LatLon::new(0.0, 0.0).unwrap(), fix_at: Utc::now(),
/// #     state: VehicleState::Available, capabilities: CapabilitySet::empty() });
/// let one_degree_north = LatLon::new(1.0, 0.0).unwrap();
/// let nearest = index.nearest(one_degree_north, 1, f64::INFINITY, |_| true);
/// assert!((nearest[0].distance_m - 111_195.0).abs() < 1.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The vehicle, as the index held it when queried.
    pub vehicle: FleetVehicle,
    /// Great-circle distance in metres from the query point.
    pub distance_m: f64,
}

/// How a [`FleetIndex::rebuild`] went: how long writers were held up, and how long the
/// bulk load itself took with no lock held.
///
/// ```
/// use dispatcher::fleet::FleetIndex;
/// let report = FleetIndex::new().rebuild();
/// assert_eq!(report.vehicles, 0);
/// assert!(report.snapshot + report.bulk_load + report.swap_lock_held <= report.total);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildReport {
    /// Vehicles in the snapshot the new tree was loaded from.
    pub vehicles: usize,
    /// How long copying the points took. The copy is made in chunks, each under its own
    /// short read lock, so a writer waits for one chunk at most.
    pub snapshot: Duration,
    /// How long the bulk load took, with no lock held.
    pub bulk_load: Duration,
    /// How long the final replay and swap held the write lock.
    pub swap_lock_held: Duration,
    /// Tree changes made while the rebuild ran, replayed into the new tree.
    pub moves_replayed: usize,
    /// The whole rebuild, from start to swap.
    pub total: Duration,
}

/// The index of a slot, the number the R-tree stores beside each point.
type SlotId = u32;
type TreeEntry = GeomWithData<UnitVector, SlotId>;
type FleetTree = RTree<TreeEntry, TreeParams>;

/// rstar's defaults (nodes of 3 to 6 children) are tuned for 2-D. For 100k unit-sphere
/// points over China, wider nodes win on every count; measured side by side on this
/// machine kind (medians): bulk load 30 → 16 ms, k=10 nearest with an 80 % filter 10.8 →
/// 8 µs (worn by 1M moves: 13 → 8.3 µs), a move 1.9 → 1.2 µs.
struct TreeParams;

impl RTreeParams for TreeParams {
    const MIN_SIZE: usize = 10;
    const MAX_SIZE: usize = 32;
    const REINSERTION_COUNT: usize = 6;
    type DefaultInsertionStrategy = RStarInsertionStrategy;
}

const STATE_COUNT: usize = VehicleState::ALL.len();

/// Slots a rebuild copies per read lock: 128 KiB, a few microseconds of memcpy, so a
/// writer (and the readers queued behind it) never waits long for the snapshot.
/// (Tiny in tests, so that concurrent writers get between the chunks.)
const SNAPSHOT_CHUNK_SLOTS: usize = if cfg!(test) { 16 } else { 4_096 };

/// How many catch-up rounds a rebuild replays under read locks before it takes the write
/// lock, and how many logged moves it is content to replay under the write lock (about
/// 1.5 µs each). Under a steady stream of fixes each round replays what arrived during the
/// previous one, so the remainder shrinks geometrically.
const CATCH_UP_ROUNDS: usize = 8;
const REPLAY_UNDER_WRITE_LOCK_AT_MOST: usize = 64;

/// A batch hands the write lock to waiting readers this often (about 12 µs of moves), so
/// that a batch of any size holds them up no longer than that. Without waiters a hand-off
/// check is one atomic load.
const UPDATES_BETWEEN_YIELDS: usize = 8;

/// The live fleet: every vehicle's last fix in an R-tree of unit-sphere points, and its
/// attributes beside it. Shared as `Arc<FleetIndex>`; every method takes `&self`.
///
/// ```
/// use std::sync::Arc;
/// use dispatcher::fleet::FleetIndex;
///
/// let index = Arc::new(FleetIndex::new());
/// let for_the_fix_listener = Arc::clone(&index);
/// # let _ = for_the_fix_listener;
/// assert!(index.is_empty());
/// ```
pub struct FleetIndex {
    live: RwLock<Live>,
    /// Lets one rebuild run at a time; readers and writers never take it.
    rebuild_gate: Mutex<()>,
}

/// Everything behind the lock. Invariants: `slot_by_id` names exactly the occupied slots;
/// a slot is occupied iff both `points` and `vehicles` hold `Some` there; `points[slot]` is
/// `vehicles[slot].position.to_unit_vector()`; the tree holds exactly one entry
/// `(points[slot], slot)` per occupied slot; `free_slots` lists the unoccupied ones.
struct Live {
    tree: FleetTree,
    points: Vec<Option<UnitVector>>,
    vehicles: Vec<Option<FleetVehicle>>,
    slot_by_id: HashMap<VehicleId, SlotId>,
    free_slots: Vec<SlotId>,
    state_counts: [usize; STATE_COUNT],
    /// Inserts and removes since the tree was bulk-loaded.
    tree_edits: u64,
    /// While a rebuild runs: every slot whose tree entry changed since its snapshot, in
    /// order, with repeats (see [`PendingRebuild::replay`]).
    moved_during_rebuild: Option<Vec<SlotId>>,
}

/// Result of applying one update.
enum Effect {
    Applied,
    UnknownVehicle,
    StaleFix,
}

impl ApplyOutcome {
    fn record(&mut self, effect: Effect) {
        match effect {
            Effect::Applied => self.applied += 1,
            Effect::UnknownVehicle => self.unknown_vehicle += 1,
            Effect::StaleFix => self.stale_fix += 1,
        }
    }
}

fn slot_index(slot: SlotId) -> usize {
    slot as usize
}

fn bulk_load(points: &[Option<UnitVector>]) -> FleetTree {
    let entries = points
        .iter()
        .enumerate()
        .filter_map(|(index, point)| {
            let slot = SlotId::try_from(index).expect("fewer than 2^32 vehicles");
            point.map(|point| TreeEntry::new(point, slot))
        })
        .collect();
    RTree::bulk_load_with_params(entries)
}

impl Live {
    fn empty() -> Self {
        Self {
            tree: RTree::new_with_params(),
            points: Vec::new(),
            vehicles: Vec::new(),
            slot_by_id: HashMap::new(),
            free_slots: Vec::new(),
            state_counts: [0; STATE_COUNT],
            tree_edits: 0,
            moved_during_rebuild: None,
        }
    }

    fn vehicle(&self, slot: SlotId) -> &FleetVehicle {
        self.vehicles[slot_index(slot)]
            .as_ref()
            .expect("the tree only holds occupied slots")
    }

    fn note_tree_change(&mut self, slot: SlotId) {
        if let Some(log) = &mut self.moved_during_rebuild {
            log.push(slot);
        }
    }

    fn apply(&mut self, update: FleetUpdate) -> Effect {
        match update {
            FleetUpdate::Upsert(vehicle) => {
                self.upsert(vehicle);
                Effect::Applied
            }
            FleetUpdate::Position {
                id,
                position,
                fix_at,
            } => self.move_vehicle(id, position, fix_at),
            FleetUpdate::State { id, state } => self.set_state(id, state),
            FleetUpdate::Remove(id) => match self.remove(id) {
                Some(_) => Effect::Applied,
                None => Effect::UnknownVehicle,
            },
        }
    }

    fn upsert(&mut self, vehicle: FleetVehicle) {
        let Some(&slot) = self.slot_by_id.get(&vehicle.id) else {
            self.insert_new(vehicle);
            return;
        };
        let previous = self.vehicles[slot_index(slot)]
            .replace(vehicle)
            .expect("slot_by_id only names occupied slots");
        self.state_counts[previous.state as usize] -= 1;
        self.state_counts[vehicle.state as usize] += 1;
        if previous.position != vehicle.position {
            self.move_point(slot, vehicle.position.to_unit_vector());
        }
    }

    fn insert_new(&mut self, vehicle: FleetVehicle) {
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            None => {
                let slot = SlotId::try_from(self.vehicles.len()).expect("fewer than 2^32 vehicles");
                self.points.push(None);
                self.vehicles.push(None);
                slot
            }
        };
        let point = vehicle.position.to_unit_vector();
        self.points[slot_index(slot)] = Some(point);
        self.vehicles[slot_index(slot)] = Some(vehicle);
        self.slot_by_id.insert(vehicle.id, slot);
        self.state_counts[vehicle.state as usize] += 1;
        self.tree.insert(TreeEntry::new(point, slot));
        self.tree_edits += 1;
        self.note_tree_change(slot);
    }

    fn move_vehicle(&mut self, id: VehicleId, position: LatLon, fix_at: Timestamp) -> Effect {
        let Some(&slot) = self.slot_by_id.get(&id) else {
            return Effect::UnknownVehicle;
        };
        let vehicle = self.vehicles[slot_index(slot)]
            .as_mut()
            .expect("slot_by_id only names occupied slots");
        if fix_at < vehicle.fix_at {
            return Effect::StaleFix;
        }
        let moved = vehicle.position != position;
        vehicle.position = position;
        vehicle.fix_at = fix_at;
        if moved {
            self.move_point(slot, position.to_unit_vector());
        }
        Effect::Applied
    }

    fn move_point(&mut self, slot: SlotId, to: UnitVector) {
        let from = self.points[slot_index(slot)]
            .replace(to)
            .expect("a moved slot is occupied");
        let removed = self.tree.remove(&TreeEntry::new(from, slot));
        debug_assert!(
            removed.is_some(),
            "slot {slot} was not in the tree at {from:?}"
        );
        self.tree.insert(TreeEntry::new(to, slot));
        self.tree_edits += 2;
        self.note_tree_change(slot);
    }

    fn set_state(&mut self, id: VehicleId, state: VehicleState) -> Effect {
        let Some(&slot) = self.slot_by_id.get(&id) else {
            return Effect::UnknownVehicle;
        };
        let vehicle = self.vehicles[slot_index(slot)]
            .as_mut()
            .expect("slot_by_id only names occupied slots");
        self.state_counts[vehicle.state as usize] -= 1;
        self.state_counts[state as usize] += 1;
        vehicle.state = state;
        Effect::Applied
    }

    fn remove(&mut self, id: VehicleId) -> Option<FleetVehicle> {
        let slot = self.slot_by_id.remove(&id)?;
        let vehicle = self.vehicles[slot_index(slot)]
            .take()
            .expect("slot_by_id only names occupied slots");
        let point = self.points[slot_index(slot)]
            .take()
            .expect("slot_by_id only names occupied slots");
        let removed = self.tree.remove(&TreeEntry::new(point, slot));
        debug_assert!(
            removed.is_some(),
            "slot {slot} was not in the tree at {point:?}"
        );
        self.tree_edits += 1;
        self.state_counts[vehicle.state as usize] -= 1;
        self.free_slots.push(slot);
        self.note_tree_change(slot);
        Some(vehicle)
    }
}

/// A rebuild between its snapshot and its swap: the new tree, and what it holds for each
/// slot.
struct PendingRebuild {
    tree: FleetTree,
    /// The point the new tree holds for each slot (`None`: nothing), so that a replayed
    /// change knows which entry to take out.
    points: Vec<Option<UnitVector>>,
    /// How much of the live log of moved slots the new tree has caught up with.
    replayed_upto: usize,
    moves_replayed: usize,
    /// Inserts and removes the replays made in the new tree.
    tree_edits: u64,
    vehicles: usize,
    snapshot: Duration,
    bulk_load: Duration,
}

impl PendingRebuild {
    /// Makes the new tree hold `current` for `slot`. Comparing with what the new tree holds
    /// (rather than remembering which slots were handled) keeps this idempotent, so a slot
    /// logged several times, or replayed in a catch-up round and then moved again, comes
    /// out right.
    fn replay(&mut self, slot: SlotId, current: Option<UnitVector>) {
        let index = slot_index(slot);
        if index >= self.points.len() {
            self.points.resize(index + 1, None);
        }
        let held = self.points[index];
        if held == current {
            return;
        }
        if let Some(point) = held {
            let removed = self.tree.remove(&TreeEntry::new(point, slot));
            debug_assert!(removed.is_some(), "the new tree lost slot {slot}");
            self.tree_edits += 1;
        }
        if let Some(point) = current {
            self.tree.insert(TreeEntry::new(point, slot));
            self.tree_edits += 1;
        }
        self.points[index] = current;
        self.moves_replayed += 1;
    }
}

impl FleetIndex {
    /// An empty index.
    ///
    /// ```
    /// use dispatcher::fleet::FleetIndex;
    /// assert_eq!(FleetIndex::new().len(), 0);
    /// ```
    pub fn new() -> Self {
        Self::from_live(Live::empty())
    }

    fn from_live(live: Live) -> Self {
        Self {
            live: RwLock::new(live),
            rebuild_gate: Mutex::new(()),
        }
    }

    /// An index of these vehicles, bulk-loaded (the fastest way to fill it, and the best
    /// tree for queries), as at server start. When an id repeats, the last one wins.
    ///
    /// Vehicles are laid out in memory in the order of the tree's leaves, so that
    /// neighbours on the map are neighbours in memory and the filter of a nearest query
    /// reads few cache lines.
    ///
    /// ```
    /// use chrono::Utc;
    /// use dispatcher::fleet::{CapabilitySet, FleetIndex, FleetVehicle};
    /// use domain::{LatLon, ProviderId, VehicleId, VehicleState};
    ///
    /// let provider = ProviderId::new_v7();
    /// let fleet = (0..100).map(|i| FleetVehicle {
    ///     id: VehicleId::new_v7(),
    ///     provider,
    ///     position: LatLon::new(30.0 + f64::from(i) * 0.01, 120.0).unwrap(),
    ///     fix_at: Utc::now(),
    ///     state: VehicleState::Available,
    ///     capabilities: CapabilitySet::all(),
    /// });
    /// assert_eq!(FleetIndex::from_vehicles(fleet).len(), 100);
    /// ```
    pub fn from_vehicles(vehicles: impl IntoIterator<Item = FleetVehicle>) -> Self {
        let mut unique: Vec<FleetVehicle> = Vec::new();
        let mut position_by_id: HashMap<VehicleId, usize> = HashMap::new();
        for vehicle in vehicles {
            match position_by_id.get(&vehicle.id) {
                Some(&position) => unique[position] = vehicle,
                None => {
                    position_by_id.insert(vehicle.id, unique.len());
                    unique.push(vehicle);
                }
            }
        }
        drop(position_by_id);
        let provisional: Vec<Option<UnitVector>> = unique
            .iter()
            .map(|vehicle| Some(vehicle.position.to_unit_vector()))
            .collect();
        let mut live = Live::empty();
        live.tree = bulk_load(&provisional);
        live.points.reserve_exact(unique.len());
        live.vehicles.reserve_exact(unique.len());
        live.slot_by_id.reserve(unique.len());
        // Renumber the slots in the order the tree holds its leaves (the data beside a
        // point is not part of its geometry, so it can change in place).
        for (slot, entry) in live.tree.iter_mut().enumerate() {
            let vehicle = unique[slot_index(entry.data)];
            entry.data = SlotId::try_from(slot).expect("fewer than 2^32 vehicles");
            live.points.push(Some(*entry.geom()));
            live.vehicles.push(Some(vehicle));
            live.slot_by_id.insert(vehicle.id, entry.data);
            live.state_counts[vehicle.state as usize] += 1;
        }
        Self::from_live(live)
    }

    /// Adds a vehicle, or replaces every attribute of the vehicle with the same id. The
    /// tree is only touched when the position changes.
    ///
    /// ```
    /// use chrono::Utc;
    /// use dispatcher::fleet::{CapabilitySet, FleetIndex, FleetVehicle};
    /// use domain::{LatLon, ProviderId, VehicleId, VehicleState};
    ///
    /// let index = FleetIndex::new();
    /// let mut truck = FleetVehicle {
    ///     id: VehicleId::new_v7(),
    ///     provider: ProviderId::new_v7(),
    ///     position: LatLon::new(22.5431, 114.0579).unwrap(),
    ///     fix_at: Utc::now(),
    ///     state: VehicleState::Offline,
    ///     capabilities: CapabilitySet::all(),
    /// };
    /// index.upsert(truck);
    /// truck.state = VehicleState::Available;
    /// index.upsert(truck);
    /// assert_eq!(index.get(truck.id).unwrap().state, VehicleState::Available);
    /// assert_eq!(index.len(), 1);
    /// ```
    pub fn upsert(&self, vehicle: FleetVehicle) {
        self.live.write().upsert(vehicle);
    }

    /// Removes a vehicle; returns it if the index held it.
    ///
    /// ```
    /// use dispatcher::fleet::FleetIndex;
    /// use domain::VehicleId;
    /// assert!(FleetIndex::new().remove(VehicleId::new_v7()).is_none());
    /// ```
    pub fn remove(&self, id: VehicleId) -> Option<FleetVehicle> {
        self.live.write().remove(id)
    }

    /// Applies a batch of updates in order, taking the write lock once. The batch is
    /// collected before the lock is taken, so whatever work the iterator does never holds
    /// up queries; a move then costs about 1.5 µs under the lock, and every 8 updates the
    /// lock is handed to waiting readers (if any) and taken back. A batch is therefore not
    /// atomic: a query may see part of it.
    ///
    /// A position older than the one held is ignored and counted as stale, atomically with
    /// the check, so racing batches never move a vehicle back in time. A state-only update
    /// does not touch the tree.
    ///
    /// ```
    /// use chrono::{Duration, Utc};
    /// use dispatcher::fleet::{ApplyOutcome, CapabilitySet, FleetIndex, FleetUpdate, FleetVehicle};
    /// use domain::{LatLon, ProviderId, VehicleId, VehicleState};
    ///
    /// let index = FleetIndex::new();
    /// let now = Utc::now();
    /// let truck = FleetVehicle {
    ///     id: VehicleId::new_v7(),
    ///     provider: ProviderId::new_v7(),
    ///     position: LatLon::new(31.23, 121.47).unwrap(),
    ///     fix_at: now,
    ///     state: VehicleState::Available,
    ///     capabilities: CapabilitySet::all(),
    /// };
    /// let outcome = index.apply([
    ///     FleetUpdate::Upsert(truck),
    ///     FleetUpdate::Position { id: truck.id, position: LatLon::new(31.24, 121.48).unwrap(), fix_at: now + Duration::seconds(5) },
    ///     FleetUpdate::Position { id: truck.id, position: LatLon::new(31.00, 121.00).unwrap(), fix_at: now },
    ///     FleetUpdate::State { id: truck.id, state: VehicleState::Offered },
    /// ]);
    /// assert_eq!(outcome, ApplyOutcome { applied: 3, unknown_vehicle: 0, stale_fix: 1 });
    /// let held = index.get(truck.id).unwrap();
    /// assert_eq!((held.position.lat(), held.state), (31.24, VehicleState::Offered));
    /// ```
    pub fn apply(&self, updates: impl IntoIterator<Item = FleetUpdate>) -> ApplyOutcome {
        let updates: Vec<FleetUpdate> = updates.into_iter().collect();
        let mut outcome = ApplyOutcome::default();
        let mut live = self.live.write();
        for (position, update) in updates.into_iter().enumerate() {
            if position > 0 && position % UPDATES_BETWEEN_YIELDS == 0 {
                RwLockWriteGuard::bump(&mut live);
            }
            outcome.record(live.apply(update));
        }
        // A plain unlock lets this thread's next batch barge in before a parked reader
        // wakes up; a fair one hands the lock to the reader.
        RwLockWriteGuard::unlock_fair(live);
        outcome
    }

    /// The vehicle with this id, as the index holds it now.
    ///
    /// ```
    /// use dispatcher::fleet::FleetIndex;
    /// use domain::VehicleId;
    /// assert_eq!(FleetIndex::new().get(VehicleId::new_v7()), None);
    /// ```
    pub fn get(&self, id: VehicleId) -> Option<FleetVehicle> {
        let live = self.live.read();
        let slot = *live.slot_by_id.get(&id)?;
        live.vehicles[slot_index(slot)]
    }

    /// The `k` vehicles nearest to `point` by great-circle distance that pass `filter`,
    /// nearest first, none farther than `max_distance_m` (use `f64::INFINITY` for no
    /// limit). The search walks outwards and stops as soon as it has `k` or passes the
    /// distance limit, so a selective filter costs only the extra vehicles it looks at.
    ///
    /// `filter` runs under the read lock, once per vehicle looked at, in order of distance:
    /// keep it to field comparisons (state, freshness, capability, provider area).
    ///
    /// ```
    /// use chrono::Utc;
    /// use dispatcher::fleet::{CapabilitySet, FleetIndex, FleetVehicle};
    /// use domain::{LatLon, ProviderId, Service, VehicleId, VehicleState};
    ///
    /// let provider = ProviderId::new_v7();
    /// let vehicle_at = |lat, lon, capability| FleetVehicle {
    ///     id: VehicleId::new_v7(),
    ///     provider,
    ///     position: LatLon::new(lat, lon).unwrap(),
    ///     fix_at: Utc::now(),
    ///     state: VehicleState::Available,
    ///     capabilities: CapabilitySet::from_iter([capability]),
    /// };
    /// // Three vans on both sides of the antimeridian, in Fiji.
    /// let index = FleetIndex::from_vehicles([
    ///     vehicle_at(-17.0, 179.95, Service::Tow),
    ///     vehicle_at(-17.0, -179.97, Service::JumpStart),
    ///     vehicle_at(-17.0, -179.90, Service::Tow),
    /// ]);
    /// let stranded = LatLon::new(-17.0, -179.99).unwrap();
    /// let tows = index.nearest(stranded, 2, 25_000.0, |vehicle| vehicle.capabilities.contains(Service::Tow));
    /// assert_eq!(tows.len(), 2);
    /// assert_eq!(tows[0].vehicle.position.lon(), 179.95);
    /// assert!(tows[0].distance_m < tows[1].distance_m);
    /// assert!(index.nearest(stranded, 2, 1_000.0, |_| true).is_empty());
    /// ```
    pub fn nearest(
        &self,
        point: LatLon,
        k: usize,
        max_distance_m: f64,
        mut filter: impl FnMut(&FleetVehicle) -> bool,
    ) -> Vec<Candidate> {
        let Some(max_chord_2) = sphere::chord_2_from_distance_m(max_distance_m) else {
            return Vec::new();
        };
        if k == 0 {
            return Vec::new();
        }
        let query = point.to_unit_vector();
        let mut found = Vec::with_capacity(k.min(64));
        let live = self.live.read();
        for (entry, chord_2) in live.tree.nearest_neighbor_iter_with_distance_2(query) {
            if chord_2 > max_chord_2 {
                break;
            }
            let vehicle = live.vehicle(entry.data);
            if filter(vehicle) {
                found.push(Candidate {
                    vehicle: *vehicle,
                    distance_m: sphere::distance_m_from_chord_2(chord_2),
                });
                if found.len() == k {
                    break;
                }
            }
        }
        found
    }

    /// Every vehicle inside a latitude/longitude box (degrees, edges included), in no
    /// particular order, for the agents' map. A box with `min_lon > max_lon` crosses the
    /// antimeridian. Bounds are clamped to the valid ranges; a box with
    /// `min_lat > max_lat` or a bound that is not finite is empty.
    ///
    /// ```
    /// use chrono::Utc;
    /// use dispatcher::fleet::{CapabilitySet, FleetIndex, FleetVehicle};
    /// use domain::{LatLon, ProviderId, VehicleId, VehicleState};
    ///
    /// let provider = ProviderId::new_v7();
    /// let index = FleetIndex::from_vehicles([(64.8, 177.5), (64.7, -173.2), (64.7, 0.0)].map(|(lat, lon)| {
    ///     FleetVehicle {
    ///         id: VehicleId::new_v7(),
    ///         provider,
    ///         position: LatLon::new(lat, lon).unwrap(),
    ///         fix_at: Utc::now(),
    ///         state: VehicleState::Available,
    ///         capabilities: CapabilitySet::all(),
    ///     }
    /// }));
    /// // Chukotka, across the antimeridian.
    /// assert_eq!(index.within_bbox(60.0, 170.0, 70.0, -170.0).len(), 2);
    /// assert_eq!(index.within_bbox(60.0, -10.0, 70.0, 10.0).len(), 1);
    /// ```
    pub fn within_bbox(
        &self,
        min_lat: f64,
        min_lon: f64,
        max_lat: f64,
        max_lon: f64,
    ) -> Vec<FleetVehicle> {
        let Some(bbox) = LatLonBox::new(min_lat, min_lon, max_lat, max_lon) else {
            return Vec::new();
        };
        let envelope = bbox.covering_envelope();
        let live = self.live.read();
        live.tree
            .locate_in_envelope(envelope)
            .map(|entry| live.vehicle(entry.data))
            .filter(|vehicle| bbox.contains(vehicle.position.lat(), vehicle.position.lon()))
            .copied()
            .collect()
    }

    /// How many vehicles the index holds.
    ///
    /// ```
    /// use dispatcher::fleet::FleetIndex;
    /// assert_eq!(FleetIndex::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.live.read().slot_by_id.len()
    }

    /// Whether the index holds no vehicle.
    ///
    /// ```
    /// use dispatcher::fleet::FleetIndex;
    /// assert!(FleetIndex::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many vehicles are in each state, for every state in the order of
    /// [`VehicleState::ALL`] (zeros included), for the fleet-size metric.
    ///
    /// ```
    /// use dispatcher::fleet::FleetIndex;
    /// use domain::VehicleState;
    /// let counts = FleetIndex::new().counts_by_state();
    /// assert_eq!(counts[0], (VehicleState::Offline, 0));
    /// assert_eq!(counts.len(), VehicleState::ALL.len());
    /// ```
    pub fn counts_by_state(&self) -> Vec<(VehicleState, usize)> {
        let counts = self.live.read().state_counts;
        VehicleState::ALL
            .iter()
            .map(|&state| (state, counts[state as usize]))
            .collect()
    }

    /// Inserts and removes the tree took since it was last bulk-loaded. Queries slow down
    /// as this grows past a few times [`len`](Self::len); that is when a
    /// [`rebuild`](Self::rebuild) pays.
    ///
    /// ```
    /// use dispatcher::fleet::FleetIndex;
    /// assert_eq!(FleetIndex::new().edits_since_rebuild(), 0);
    /// ```
    pub fn edits_since_rebuild(&self) -> u64 {
        self.live.read().tree_edits
    }

    /// Rebuilds the tree by bulk load, for query speed after many incremental updates.
    ///
    /// Readers are never blocked for the bulk load, and writers only for a copy of the
    /// points and the final swap (see the module docs). Updates made during the rebuild
    /// are replayed into the new tree, so none is lost. The call itself takes as long as
    /// the bulk load (tens of milliseconds for 100k vehicles): from async code, run it on
    /// a blocking thread. Concurrent calls run one after the other.
    ///
    /// ```
    /// use chrono::Utc;
    /// use dispatcher::fleet::{CapabilitySet, FleetIndex, FleetVehicle};
    /// use domain::{LatLon, ProviderId, VehicleId, VehicleState};
    ///
    /// let index = FleetIndex::new();
    /// for i in 0..1_000 {
    ///     index.upsert(FleetVehicle {
    ///         id: VehicleId::new_v7(),
    ///         provider: ProviderId::new_v7(),
    ///         position: LatLon::new(f64::from(i % 90), f64::from(i % 180)).unwrap(),
    ///         fix_at: Utc::now(),
    ///         state: VehicleState::Available,
    ///         capabilities: CapabilitySet::all(),
    ///     });
    /// }
    /// assert_eq!(index.edits_since_rebuild(), 1_000);
    /// let report = index.rebuild();
    /// assert_eq!(report.vehicles, 1_000);
    /// assert_eq!(index.edits_since_rebuild(), 0);
    /// ```
    pub fn rebuild(&self) -> RebuildReport {
        let started = Instant::now();
        let _one_at_a_time = self.rebuild_gate.lock();
        let mut pending = self.begin_rebuild();
        self.catch_up(&mut pending, REPLAY_UNDER_WRITE_LOCK_AT_MOST);
        let mut report = self.finish_rebuild(pending);
        report.total = started.elapsed();
        report
    }

    /// Starts logging tree changes, copies the points, and bulk-loads them with no lock
    /// held.
    fn begin_rebuild(&self) -> PendingRebuild {
        let copying_since = Instant::now();
        let expected_slots = {
            let mut live = self.live.write();
            // A fresh log also discards one left over by a rebuild that panicked.
            live.moved_during_rebuild = Some(Vec::new());
            live.points.len()
        };
        // Logging starts before the first chunk is copied, so every slot that changes
        // while (or after) its chunk is copied is in the log; a slot copied after it
        // changed is in the log too, and its replay finds nothing to do.
        let mut points: Vec<Option<UnitVector>> = Vec::with_capacity(expected_slots + 1_024);
        loop {
            let live = self.live.read();
            let end = (points.len() + SNAPSHOT_CHUNK_SLOTS).min(live.points.len());
            points.extend_from_slice(&live.points[points.len()..end]);
            if end == live.points.len() {
                break;
            }
        }
        let snapshot = copying_since.elapsed();

        let loading_since = Instant::now();
        let tree = bulk_load(&points);
        PendingRebuild {
            vehicles: tree.size(),
            tree,
            points,
            replayed_upto: 0,
            moves_replayed: 0,
            tree_edits: 0,
            snapshot,
            bulk_load: loading_since.elapsed(),
        }
    }

    /// Replays logged changes under short read locks until at most `pending_at_most`
    /// remain or the rounds are used up.
    fn catch_up(&self, pending: &mut PendingRebuild, pending_at_most: usize) {
        for _ in 0..CATCH_UP_ROUNDS {
            let changed: Vec<(SlotId, Option<UnitVector>)> = {
                let live = self.live.read();
                let log = live
                    .moved_during_rebuild
                    .as_ref()
                    .expect("a rebuild is logging");
                if log.len() - pending.replayed_upto <= pending_at_most {
                    return;
                }
                let changed = log[pending.replayed_upto..]
                    .iter()
                    .map(|&slot| (slot, live.points[slot_index(slot)]))
                    .collect();
                pending.replayed_upto = log.len();
                changed
            };
            for (slot, current) in changed {
                pending.replay(slot, current);
            }
        }
    }

    /// Replays the rest of the log and swaps the new tree in, under the write lock.
    fn finish_rebuild(&self, mut pending: PendingRebuild) -> RebuildReport {
        let mut live = self.live.write();
        let locked_at = Instant::now();
        let log = live
            .moved_during_rebuild
            .take()
            .expect("a rebuild is logging");
        for &slot in &log[pending.replayed_upto..] {
            pending.replay(slot, live.points[slot_index(slot)]);
        }
        let old_tree = std::mem::replace(&mut live.tree, pending.tree);
        live.tree_edits = pending.tree_edits;
        drop(live);
        let swap_lock_held = locked_at.elapsed();
        // Freeing 100k tree nodes takes a while; not under the lock.
        drop(old_tree);
        RebuildReport {
            vehicles: pending.vehicles,
            snapshot: pending.snapshot,
            bulk_load: pending.bulk_load,
            swap_lock_held,
            moves_replayed: pending.moves_replayed,
            total: Duration::ZERO,
        }
    }
}

impl Default for FleetIndex {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for FleetIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let live = self.live.read();
        f.debug_struct("FleetIndex")
            .field("vehicles", &live.slot_by_id.len())
            .field("edits_since_rebuild", &live.tree_edits)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::DateTime;
    use domain::Service;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use uuid::Uuid;

    use super::*;

    fn at(seconds: i64) -> Timestamp {
        DateTime::from_timestamp(1_790_000_000 + seconds, 0).unwrap()
    }

    fn position(lat: f64, lon: f64) -> LatLon {
        LatLon::new(lat, lon).unwrap()
    }

    fn numbered_id(number: usize) -> VehicleId {
        VehicleId::from(Uuid::from_u128(number as u128 + 1))
    }

    fn vehicle_at(number: usize, lat: f64, lon: f64) -> FleetVehicle {
        FleetVehicle {
            id: numbered_id(number),
            provider: ProviderId::from(Uuid::from_u128(7)),
            position: position(lat, lon),
            fix_at: at(0),
            state: VehicleState::Available,
            capabilities: CapabilitySet::all(),
        }
    }

    fn is_available_tow(vehicle: &FleetVehicle) -> bool {
        vehicle.state == VehicleState::Available && vehicle.capabilities.contains(Service::Tow)
    }

    impl FleetIndex {
        /// Checks every invariant of [`Live`]; panics naming the first one broken.
        fn assert_consistent(&self) {
            let live = self.live.read();
            assert_eq!(live.points.len(), live.vehicles.len());
            assert_eq!(
                live.tree.size(),
                live.slot_by_id.len(),
                "one tree entry per vehicle"
            );
            let mut recounted = [0; STATE_COUNT];
            for (id, &slot) in &live.slot_by_id {
                let vehicle = live.vehicles[slot_index(slot)].expect("occupied slot");
                assert_eq!(vehicle.id, *id);
                assert_eq!(
                    live.points[slot_index(slot)],
                    Some(vehicle.position.to_unit_vector()),
                    "the point of {id} is its position"
                );
                recounted[vehicle.state as usize] += 1;
            }
            assert_eq!(recounted, live.state_counts);
            let occupied = live.vehicles.iter().flatten().count();
            assert_eq!(occupied, live.slot_by_id.len());
            assert_eq!(live.points.iter().flatten().count(), occupied);
            assert_eq!(occupied + live.free_slots.len(), live.vehicles.len());
            for &slot in &live.free_slots {
                assert!(
                    live.vehicles[slot_index(slot)].is_none(),
                    "free slot {slot} is empty"
                );
            }
            let mut seen = HashSet::new();
            for entry in live.tree.iter() {
                assert!(
                    seen.insert(entry.data),
                    "slot {} twice in the tree",
                    entry.data
                );
                assert_eq!(live.points[slot_index(entry.data)], Some(*entry.geom()));
            }
        }
    }

    /// The reference: every vehicle that passes the filter within the distance, by
    /// haversine, nearest first, the first `k`.
    fn brute_force_nearest(
        fleet: &[FleetVehicle],
        point: LatLon,
        k: usize,
        max_distance_m: f64,
        filter: impl Fn(&FleetVehicle) -> bool,
    ) -> Vec<(f64, FleetVehicle)> {
        let mut found: Vec<(f64, FleetVehicle)> = fleet
            .iter()
            .filter(|vehicle| filter(vehicle))
            .map(|vehicle| (point.distance_m(&vehicle.position), *vehicle))
            .filter(|(distance_m, _)| *distance_m <= max_distance_m)
            .collect();
        found.sort_by(|a, b| a.0.total_cmp(&b.0));
        found.truncate(k);
        found
    }

    /// Rounding differs between the chord and the haversine formulas (most near antipodes,
    /// where asin is steep); ties may come in either order. Compares distances, not ids.
    fn tolerance_m(distance_m: f64) -> f64 {
        1e-3 + 1e-7 * distance_m
    }

    fn assert_agrees_with_brute_force(
        index: &FleetIndex,
        fleet: &[FleetVehicle],
        point: LatLon,
        k: usize,
        max_distance_m: f64,
        filter: impl Fn(&FleetVehicle) -> bool,
    ) {
        let found = index.nearest(point, k, max_distance_m, &filter);
        let slack = tolerance_m(max_distance_m.min(2.1e7));
        let at_least = brute_force_nearest(fleet, point, k, max_distance_m - slack, &filter);
        let at_most = brute_force_nearest(fleet, point, k, max_distance_m + slack, &filter);
        assert!(
            (at_least.len()..=at_most.len()).contains(&found.len()),
            "found {} vehicles, expected {}..={} around {point:?}",
            found.len(),
            at_least.len(),
            at_most.len()
        );
        let mut ids = HashSet::new();
        for (rank, candidate) in found.iter().enumerate() {
            assert!(filter(&candidate.vehicle), "rank {rank} fails the filter");
            assert!(ids.insert(candidate.vehicle.id), "rank {rank} is a repeat");
            let actual_m = point.distance_m(&candidate.vehicle.position);
            assert!(
                (candidate.distance_m - actual_m).abs() <= tolerance_m(actual_m),
                "rank {rank}: reported {} m, haversine {actual_m} m",
                candidate.distance_m
            );
            let expected_m = at_most[rank].0;
            assert!(
                (candidate.distance_m - expected_m).abs() <= tolerance_m(expected_m),
                "rank {rank}: index {} m, brute force {expected_m} m around {point:?}",
                candidate.distance_m
            );
        }
    }

    #[test]
    fn the_index_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<FleetIndex>();
    }

    #[test]
    fn states_are_counted_by_their_declaration_order() {
        for (position, state) in VehicleState::ALL.iter().enumerate() {
            assert_eq!(*state as usize, position);
        }
    }

    #[test]
    fn nearest_returns_the_closest_vehicles_nearest_first() {
        let index = FleetIndex::new();
        for (number, lat) in [31.30, 31.10, 31.25, 31.50].into_iter().enumerate() {
            index.upsert(vehicle_at(number, lat, 121.47));
        }
        let found = index.nearest(position(31.24, 121.47), 3, f64::INFINITY, |_| true);
        let lats: Vec<f64> = found.iter().map(|c| c.vehicle.position.lat()).collect();
        assert_eq!(lats, [31.25, 31.30, 31.10]);
        assert!((found[0].distance_m - 1_111.95).abs() < 0.1);
        index.assert_consistent();
    }

    #[test]
    fn nearest_skips_vehicles_the_filter_rejects_and_keeps_looking() {
        let mut fleet: Vec<FleetVehicle> = (0..50)
            .map(|number| vehicle_at(number, 30.0 + number as f64 * 0.001, 120.0))
            .collect();
        for vehicle in fleet.iter_mut().take(45) {
            vehicle.state = VehicleState::Busy;
        }
        let index = FleetIndex::from_vehicles(fleet);
        let found = index.nearest(position(30.0, 120.0), 10, f64::INFINITY, is_available_tow);
        let numbers: Vec<f64> = found
            .iter()
            .map(|c| ((c.vehicle.position.lat() - 30.0) * 1000.0).round())
            .collect();
        assert_eq!(numbers, [45.0, 46.0, 47.0, 48.0, 49.0]);
    }

    #[test]
    fn nearest_stops_at_the_maximum_distance() {
        let index = FleetIndex::from_vehicles([
            vehicle_at(0, 0.0, 0.0),
            vehicle_at(1, 0.0, 0.01),
            vehicle_at(2, 0.0, 0.02),
        ]);
        let found = index.nearest(position(0.0, 0.0), 10, 1_500.0, |_| true);
        assert_eq!(
            found.len(),
            2,
            "0.02° of longitude is 2.2 km at the equator"
        );
        assert_eq!(
            index.nearest(position(0.0, 0.0), 10, 0.0, |_| true).len(),
            1
        );
        let second_m = position(0.0, 0.0).distance_m(&position(0.0, 0.01));
        let within = |max_distance_m| {
            index
                .nearest(position(0.0, 0.0), 10, max_distance_m, |_| true)
                .len()
        };
        assert_eq!(
            within(second_m - 0.01),
            1,
            "a centimetre short of the second vehicle"
        );
        assert_eq!(
            within(second_m + 0.01),
            2,
            "a centimetre past the second vehicle"
        );
    }

    #[test]
    fn asking_for_nothing_or_within_a_negative_distance_finds_nothing() {
        let index = FleetIndex::from_vehicles([vehicle_at(0, 10.0, 10.0)]);
        assert!(
            index
                .nearest(position(10.0, 10.0), 0, 1e6, |_| true)
                .is_empty()
        );
        assert!(
            index
                .nearest(position(10.0, 10.0), 5, -1.0, |_| true)
                .is_empty()
        );
        assert!(
            index
                .nearest(position(10.0, 10.0), 5, f64::NAN, |_| true)
                .is_empty()
        );
        assert!(
            FleetIndex::new()
                .nearest(position(0.0, 0.0), 5, 1e6, |_| true)
                .is_empty()
        );
    }

    #[test]
    fn nearest_reaches_across_the_antimeridian() {
        let index = FleetIndex::from_vehicles([
            vehicle_at(0, 0.0, 179.9),
            vehicle_at(1, 0.0, -179.5),
            vehicle_at(2, 0.0, 179.0),
        ]);
        let found = index.nearest(position(0.0, -179.95), 3, f64::INFINITY, |_| true);
        let lons: Vec<f64> = found.iter().map(|c| c.vehicle.position.lon()).collect();
        assert_eq!(lons, [179.9, -179.5, 179.0]);
        assert!((found[0].distance_m - 16_679.0).abs() < 1.0);
    }

    #[test]
    fn nearest_near_the_pole_prefers_the_vehicle_across_the_pole() {
        // 0.2° of latitude apart across the pole, 1° of latitude apart on the same meridian.
        let index =
            FleetIndex::from_vehicles([vehicle_at(0, 89.9, 180.0), vehicle_at(1, 88.9, 0.0)]);
        let found = index.nearest(position(89.9, 0.0), 1, f64::INFINITY, |_| true);
        assert_eq!(found[0].vehicle.id, numbered_id(0));
        assert!((found[0].distance_m - 22_239.0).abs() < 1.0);
    }

    #[test]
    fn a_position_update_moves_the_vehicle() {
        let index =
            FleetIndex::from_vehicles([vehicle_at(0, 31.0, 121.0), vehicle_at(1, 31.5, 121.0)]);
        let outcome = index.apply([FleetUpdate::Position {
            id: numbered_id(0),
            position: position(32.0, 121.0),
            fix_at: at(10),
        }]);
        assert_eq!(outcome.applied, 1);
        let found = index.nearest(position(32.0, 121.0), 1, 10.0, |_| true);
        assert_eq!(found[0].vehicle.id, numbered_id(0));
        assert_eq!(found[0].vehicle.fix_at, at(10));
        assert!(
            index
                .nearest(position(31.0, 121.0), 1, 1_000.0, |_| true)
                .is_empty()
        );
        index.assert_consistent();
    }

    #[test]
    fn an_older_fix_never_moves_the_vehicle_back() {
        let index = FleetIndex::new();
        index.upsert(vehicle_at(0, 31.0, 121.0));
        let newer = FleetUpdate::Position {
            id: numbered_id(0),
            position: position(31.1, 121.0),
            fix_at: at(20),
        };
        let older = FleetUpdate::Position {
            id: numbered_id(0),
            position: position(31.2, 121.0),
            fix_at: at(10),
        };
        let outcome = index.apply([newer, older]);
        assert_eq!(
            outcome,
            ApplyOutcome {
                applied: 1,
                unknown_vehicle: 0,
                stale_fix: 1
            }
        );
        assert_eq!(
            index.get(numbered_id(0)).unwrap().position,
            position(31.1, 121.0)
        );
        index.assert_consistent();
    }

    #[test]
    fn a_fix_at_the_same_place_updates_its_time_without_touching_the_tree() {
        let index = FleetIndex::from_vehicles([vehicle_at(0, 31.0, 121.0)]);
        index.apply([FleetUpdate::Position {
            id: numbered_id(0),
            position: position(31.0, 121.0),
            fix_at: at(30),
        }]);
        assert_eq!(index.get(numbered_id(0)).unwrap().fix_at, at(30));
        assert_eq!(index.edits_since_rebuild(), 0);
    }

    #[test]
    fn a_state_change_does_not_touch_the_tree() {
        let index = FleetIndex::from_vehicles([vehicle_at(0, 31.0, 121.0)]);
        let outcome = index.apply([FleetUpdate::State {
            id: numbered_id(0),
            state: VehicleState::Offered,
        }]);
        assert_eq!(outcome.applied, 1);
        assert_eq!(index.edits_since_rebuild(), 0);
        assert_eq!(
            index.get(numbered_id(0)).unwrap().state,
            VehicleState::Offered
        );
        let available = index.nearest(position(31.0, 121.0), 1, 1e6, is_available_tow);
        assert!(available.is_empty(), "an offered vehicle is no candidate");
        index.assert_consistent();
    }

    #[test]
    fn updates_for_unknown_vehicles_change_nothing_and_are_counted() {
        let index = FleetIndex::from_vehicles([vehicle_at(0, 31.0, 121.0)]);
        let stranger = numbered_id(99);
        let outcome = index.apply([
            FleetUpdate::Position {
                id: stranger,
                position: position(1.0, 1.0),
                fix_at: at(1),
            },
            FleetUpdate::State {
                id: stranger,
                state: VehicleState::Busy,
            },
            FleetUpdate::Remove(stranger),
        ]);
        assert_eq!(
            outcome,
            ApplyOutcome {
                applied: 0,
                unknown_vehicle: 3,
                stale_fix: 0
            }
        );
        assert_eq!(index.len(), 1);
        index.assert_consistent();
    }

    #[test]
    fn an_upsert_replaces_every_attribute() {
        let index = FleetIndex::from_vehicles([vehicle_at(0, 31.0, 121.0)]);
        let replacement = FleetVehicle {
            provider: ProviderId::from(Uuid::from_u128(8)),
            position: position(22.0, 114.0),
            fix_at: at(5),
            state: VehicleState::Offline,
            capabilities: CapabilitySet::from_iter([Service::Lockout]),
            ..vehicle_at(0, 0.0, 0.0)
        };
        index.upsert(replacement);
        assert_eq!(index.get(numbered_id(0)), Some(replacement));
        assert_eq!(index.len(), 1);
        index.assert_consistent();
    }

    #[test]
    fn a_removed_vehicle_is_forgotten_and_its_slot_reused() {
        let index =
            FleetIndex::from_vehicles([vehicle_at(0, 31.0, 121.0), vehicle_at(1, 31.1, 121.0)]);
        assert_eq!(index.remove(numbered_id(0)).unwrap().id, numbered_id(0));
        assert_eq!(index.get(numbered_id(0)), None);
        assert_eq!(index.len(), 1);
        index.assert_consistent();
        index.upsert(vehicle_at(2, 40.0, 116.0));
        assert_eq!(
            index.live.read().vehicles.len(),
            2,
            "the free slot was reused"
        );
        let found = index.nearest(position(31.0, 121.0), 5, f64::INFINITY, |_| true);
        let ids: Vec<VehicleId> = found.iter().map(|c| c.vehicle.id).collect();
        assert_eq!(ids, [numbered_id(1), numbered_id(2)]);
        index.assert_consistent();
    }

    #[test]
    fn loading_repeated_ids_keeps_the_last() {
        let index =
            FleetIndex::from_vehicles([vehicle_at(0, 31.0, 121.0), vehicle_at(0, 40.0, 116.0)]);
        assert_eq!(index.len(), 1);
        assert_eq!(
            index.get(numbered_id(0)).unwrap().position,
            position(40.0, 116.0)
        );
        index.assert_consistent();
    }

    #[test]
    fn counts_by_state_follow_every_change() {
        let index =
            FleetIndex::from_vehicles((0..4).map(|number| vehicle_at(number, 10.0, number as f64)));
        index.apply([
            FleetUpdate::State {
                id: numbered_id(0),
                state: VehicleState::Busy,
            },
            FleetUpdate::State {
                id: numbered_id(1),
                state: VehicleState::Offered,
            },
            FleetUpdate::Remove(numbered_id(2)),
            FleetUpdate::Upsert(FleetVehicle {
                state: VehicleState::Offline,
                ..vehicle_at(9, 1.0, 1.0)
            }),
        ]);
        assert_eq!(
            index.counts_by_state(),
            [
                (VehicleState::Offline, 1),
                (VehicleState::Available, 1),
                (VehicleState::Offered, 1),
                (VehicleState::Busy, 1),
            ]
        );
    }

    #[test]
    fn a_box_across_the_antimeridian_finds_both_sides_and_nothing_else() {
        let index = FleetIndex::from_vehicles([
            vehicle_at(0, -17.0, 179.5),
            vehicle_at(1, -17.0, -179.5),
            vehicle_at(2, -17.0, 0.0),
            vehicle_at(3, -30.0, 179.5),
        ]);
        let mut found: Vec<VehicleId> = index
            .within_bbox(-20.0, 179.0, -10.0, -179.0)
            .iter()
            .map(|vehicle| vehicle.id)
            .collect();
        found.sort();
        assert_eq!(found, [numbered_id(0), numbered_id(1)]);
        assert!(index.within_bbox(-10.0, 179.0, -20.0, -179.0).is_empty());
    }

    #[test]
    fn a_box_around_a_pole_finds_every_vehicle_near_it() {
        let index = FleetIndex::from_vehicles(
            (0..36).map(|number| vehicle_at(number, 89.5, -180.0 + number as f64 * 10.0)),
        );
        assert_eq!(index.within_bbox(89.0, -180.0, 90.0, 180.0).len(), 36);
        assert_eq!(index.within_bbox(89.0, 0.0, 90.0, 45.0).len(), 5);
    }

    #[test]
    fn changes_made_during_a_rebuild_survive_the_swap() {
        let index = FleetIndex::from_vehicles(
            (0..100).map(|n| vehicle_at(n, 30.0, 100.0 + n as f64 * 0.1)),
        );
        index.remove(numbered_id(99));
        let mut pending = index.begin_rebuild();
        // Between the snapshot and the first catch-up: a move, a removal, a new vehicle
        // taking the freed slot 99, a new vehicle on a new slot, a state change.
        index.apply([
            FleetUpdate::Position {
                id: numbered_id(0),
                position: position(31.0, 100.0),
                fix_at: at(1),
            },
            FleetUpdate::Remove(numbered_id(1)),
            FleetUpdate::Upsert(vehicle_at(200, 35.0, 110.0)),
            FleetUpdate::Upsert(vehicle_at(201, 36.0, 110.0)),
            FleetUpdate::State {
                id: numbered_id(2),
                state: VehicleState::Busy,
            },
        ]);
        index.catch_up(&mut pending, 0);
        // After the catch-up: the moved vehicle moves again, the new one leaves, and a
        // third takes the slot of the removed one.
        index.apply([
            FleetUpdate::Position {
                id: numbered_id(0),
                position: position(32.0, 100.0),
                fix_at: at(2),
            },
            FleetUpdate::Remove(numbered_id(200)),
            FleetUpdate::Upsert(vehicle_at(202, 37.0, 110.0)),
        ]);
        let report = index.finish_rebuild(pending);
        assert_eq!(report.vehicles, 99);
        assert!(report.moves_replayed >= 5);
        index.assert_consistent();
        assert_eq!(index.len(), 100);
        let moved = index.nearest(position(32.0, 100.0), 1, 1.0, |_| true);
        assert_eq!(moved[0].vehicle.id, numbered_id(0));
        assert!(
            index
                .nearest(position(31.0, 100.0), 1, 1_000.0, |_| true)
                .is_empty()
        );
        assert!(index.get(numbered_id(1)).is_none());
        assert!(index.get(numbered_id(200)).is_none());
        for (number, lat) in [(201, 36.0), (202, 37.0)] {
            let found = index.nearest(position(lat, 110.0), 1, 1.0, |_| true);
            assert_eq!(found[0].vehicle.id, numbered_id(number));
        }
        assert_eq!(index.get(numbered_id(2)).unwrap().state, VehicleState::Busy);
    }

    #[test]
    fn a_rebuild_resets_the_edit_count_and_keeps_every_vehicle() {
        let index = FleetIndex::new();
        for number in 0..500 {
            index.upsert(vehicle_at(
                number,
                (number % 80) as f64,
                (number % 360) as f64 - 180.0,
            ));
        }
        assert_eq!(index.edits_since_rebuild(), 500);
        let report = index.rebuild();
        assert_eq!((report.vehicles, report.moves_replayed), (500, 0));
        assert_eq!(index.edits_since_rebuild(), 0);
        assert_eq!(index.len(), 500);
        index.assert_consistent();
    }

    struct CountDownOnDrop<'a>(&'a AtomicUsize);

    impl Drop for CountDownOnDrop<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Release);
        }
    }

    #[test]
    fn rebuilding_while_updating_from_threads_loses_no_update_and_never_serves_a_stale_position() {
        const WRITERS: usize = 3;
        const VEHICLES_PER_WRITER: usize = 300;
        const MOVES_PER_WRITER: usize = 4_000;
        let fleet = (0..WRITERS * VEHICLES_PER_WRITER).map(|number| {
            vehicle_at(
                number,
                20.0 + (number % 30) as f64,
                100.0 + (number / 30) as f64 * 0.5,
            )
        });
        let index = FleetIndex::from_vehicles(fleet);
        let writers_running = AtomicUsize::new(WRITERS);
        let writers_done = || writers_running.load(Ordering::Acquire) == 0;
        let final_positions = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..WRITERS)
                .map(|writer| {
                    let (index, writers_running) = (&index, &writers_running);
                    scope.spawn(move || {
                        // Counts down even if an assertion fails, so the other threads stop.
                        let _running = CountDownOnDrop(writers_running);
                        let mut rng = StdRng::seed_from_u64(writer as u64);
                        let mut last: HashMap<VehicleId, LatLon> = HashMap::new();
                        for step in 0..MOVES_PER_WRITER {
                            let number = writer * VEHICLES_PER_WRITER
                                + rng.random_range(0..VEHICLES_PER_WRITER);
                            let id = numbered_id(number);
                            let to = position(
                                rng.random_range(18.0..53.0),
                                rng.random_range(73.0..135.0),
                            );
                            let outcome = index.apply([FleetUpdate::Position {
                                id,
                                position: to,
                                fix_at: at(step as i64 + 1),
                            }]);
                            assert_eq!(outcome.applied, 1);
                            last.insert(id, to);
                            // The tree must already hold the new point: found within a metre.
                            let found = index.nearest(to, 1, 1.0, |vehicle| vehicle.id == id);
                            assert_eq!(found.len(), 1, "{id} not found where it just moved");
                            if step % 500 == 0 {
                                index.apply([
                                    FleetUpdate::Remove(id),
                                    FleetUpdate::Upsert(FleetVehicle {
                                        position: to,
                                        fix_at: at(step as i64 + 1),
                                        ..vehicle_at(number, 0.0, 0.0)
                                    }),
                                ]);
                            }
                        }
                        last
                    })
                })
                .collect();
            let rebuilder = scope.spawn(|| {
                let mut rebuilds = 0;
                while !writers_done() || rebuilds < 3 {
                    index.rebuild();
                    rebuilds += 1;
                }
                rebuilds
            });
            let reader = scope.spawn(|| {
                let mut rng = StdRng::seed_from_u64(99);
                let mut queries = 0;
                while !writers_done() {
                    let from =
                        position(rng.random_range(18.0..53.0), rng.random_range(73.0..135.0));
                    for candidate in index.nearest(from, 10, f64::INFINITY, |_| true) {
                        // A stale tree point would not match the vehicle's own position.
                        let actual_m = from.distance_m(&candidate.vehicle.position);
                        assert!((candidate.distance_m - actual_m).abs() < tolerance_m(actual_m));
                    }
                    queries += 1;
                }
                queries
            });
            let mut final_positions = HashMap::new();
            for writer in writers {
                final_positions.extend(writer.join().unwrap());
            }
            assert!(rebuilder.join().unwrap() >= 3);
            assert!(reader.join().unwrap() > 0);
            final_positions
        });
        index.assert_consistent();
        assert_eq!(index.len(), WRITERS * VEHICLES_PER_WRITER);
        for (id, expected) in final_positions {
            assert_eq!(
                index.get(id).unwrap().position,
                expected,
                "{id} lost an update"
            );
            let found = index.nearest(expected, 1, 1.0, |vehicle| vehicle.id == id);
            assert_eq!(found.len(), 1, "{id} is not in the tree where it is");
        }
    }

    /// Where a random fleet lives: the hard places for lon/lat geometry, and the usual one.
    #[derive(Debug, Clone, Copy)]
    enum Region {
        China,
        Antimeridian,
        HighLatitude,
        Poles,
        Anywhere,
    }

    fn any_region() -> impl Strategy<Value = Region> {
        prop_oneof![
            Just(Region::China),
            Just(Region::Antimeridian),
            Just(Region::HighLatitude),
            Just(Region::Poles),
            Just(Region::Anywhere),
        ]
    }

    fn position_in(region: Region) -> BoxedStrategy<LatLon> {
        let with_sign =
            |magnitude: f64, negative: bool| if negative { -magnitude } else { magnitude };
        match region {
            Region::China => (18.0..53.0, 73.0..135.0)
                .prop_map(|(lat, lon)| position(lat, lon))
                .boxed(),
            Region::Antimeridian => (-60.0..60.0, 179.8..=180.0, any::<bool>())
                .prop_map(move |(lat, lon, west)| position(lat, with_sign(lon, west)))
                .boxed(),
            Region::HighLatitude => (80.0..89.9, -180.0..=180.0, any::<bool>())
                .prop_map(move |(lat, lon, south)| position(with_sign(lat, south), lon))
                .boxed(),
            Region::Poles => (89.9..=90.0, -180.0..=180.0, any::<bool>())
                .prop_map(move |(lat, lon, south)| position(with_sign(lat, south), lon))
                .boxed(),
            Region::Anywhere => (-90.0..=90.0, -180.0..=180.0)
                .prop_map(|(lat, lon)| position(lat, lon))
                .boxed(),
        }
    }

    fn any_state() -> impl Strategy<Value = VehicleState> {
        prop::sample::select(VehicleState::ALL)
    }

    fn any_capabilities() -> impl Strategy<Value = CapabilitySet> {
        prop::collection::vec(prop::sample::select(Service::ALL), 0..4)
            .prop_map(|services| services.into_iter().collect())
    }

    /// A region, a fleet in it, and query points in it.
    fn fleet_and_queries() -> impl Strategy<Value = (Vec<FleetVehicle>, Vec<LatLon>)> {
        any_region().prop_flat_map(|region| {
            let vehicle = (position_in(region), any_state(), any_capabilities());
            (
                prop::collection::vec(vehicle, 0..250),
                prop::collection::vec(position_in(region), 1..6),
            )
                .prop_map(|(vehicles, queries)| {
                    let fleet = vehicles
                        .into_iter()
                        .enumerate()
                        .map(|(number, (position, state, capabilities))| FleetVehicle {
                            position,
                            state,
                            capabilities,
                            ..vehicle_at(number, 0.0, 0.0)
                        })
                        .collect();
                    (fleet, queries)
                })
        })
    }

    fn any_max_distance_m() -> impl Strategy<Value = f64> {
        prop_oneof![Just(f64::INFINITY), 100.0..50_000.0, 50_000.0..5_000_000.0]
    }

    proptest! {
        #[test]
        fn nearest_agrees_with_a_brute_force_haversine_scan(
            (fleet, queries) in fleet_and_queries(),
            k in 1usize..15,
            max_distance_m in any_max_distance_m(),
            bulk_loaded in any::<bool>(),
        ) {
            let index = if bulk_loaded {
                FleetIndex::from_vehicles(fleet.clone())
            } else {
                let index = FleetIndex::new();
                fleet.iter().for_each(|vehicle| index.upsert(*vehicle));
                index
            };
            for query in queries {
                assert_agrees_with_brute_force(&index, &fleet, query, k, max_distance_m, |_| true);
                assert_agrees_with_brute_force(
                    &index, &fleet, query, k, max_distance_m, is_available_tow,
                );
            }
        }

        #[test]
        fn within_bbox_agrees_with_a_brute_force_scan(
            (fleet, corners) in fleet_and_queries(),
            crossing in any::<bool>(),
        ) {
            let index = FleetIndex::from_vehicles(fleet.clone());
            let (a, b) = (corners[0], *corners.last().unwrap());
            let (min_lat, max_lat) = (a.lat().min(b.lat()), a.lat().max(b.lat()));
            // Ordered west to east, or east to west to cross the antimeridian.
            let (west, east) = if crossing == (a.lon() < b.lon()) {
                (b.lon(), a.lon())
            } else {
                (a.lon(), b.lon())
            };
            let bbox = LatLonBox::new(min_lat, west, max_lat, east).unwrap();
            let mut expected: Vec<VehicleId> = fleet
                .iter()
                .filter(|vehicle| bbox.contains(vehicle.position.lat(), vehicle.position.lon()))
                .map(|vehicle| vehicle.id)
                .collect();
            let mut found: Vec<VehicleId> = index
                .within_bbox(min_lat, west, max_lat, east)
                .iter()
                .map(|vehicle| vehicle.id)
                .collect();
            expected.sort();
            found.sort();
            prop_assert_eq!(found, expected);
        }
    }

    /// One step of a random history: a change to one of a few vehicles, or a phase of a
    /// rebuild.
    #[derive(Debug, Clone)]
    enum Step {
        Upsert {
            number: usize,
            position: LatLon,
            state: VehicleState,
        },
        Move {
            number: usize,
            position: LatLon,
            older: bool,
        },
        SetState {
            number: usize,
            state: VehicleState,
        },
        Remove {
            number: usize,
        },
        BeginRebuild,
        CatchUp,
        FinishRebuild,
    }

    fn any_step() -> impl Strategy<Value = Step> {
        let number = 0usize..24;
        let anywhere = position_in(Region::Anywhere);
        prop_oneof![
            3 => (number.clone(), anywhere.clone(), any_state())
                .prop_map(|(number, position, state)| Step::Upsert { number, position, state }),
            5 => (number.clone(), anywhere, prop::bool::weighted(0.2))
                .prop_map(|(number, position, older)| Step::Move { number, position, older }),
            2 => (number.clone(), any_state())
                .prop_map(|(number, state)| Step::SetState { number, state }),
            2 => number.prop_map(|number| Step::Remove { number }),
            1 => Just(Step::BeginRebuild),
            1 => Just(Step::CatchUp),
            1 => Just(Step::FinishRebuild),
        ]
    }

    proptest! {
        #[test]
        fn any_history_of_updates_and_rebuild_phases_matches_a_model(
            steps in prop::collection::vec(any_step(), 1..120),
            queries in prop::collection::vec(position_in(Region::Anywhere), 3),
        ) {
            let index = FleetIndex::new();
            let mut model: HashMap<VehicleId, FleetVehicle> = HashMap::new();
            let mut pending: Option<PendingRebuild> = None;
            let mut clock = 0;
            for step in steps {
                clock += 1;
                match step {
                    Step::Upsert { number, position, state } => {
                        let vehicle = FleetVehicle {
                            position,
                            state,
                            fix_at: at(clock),
                            ..vehicle_at(number, 0.0, 0.0)
                        };
                        index.upsert(vehicle);
                        model.insert(vehicle.id, vehicle);
                    }
                    Step::Move { number, position, older } => {
                        let id = numbered_id(number);
                        let fix_at = at(if older { clock - 1_000 } else { clock });
                        index.apply([FleetUpdate::Position { id, position, fix_at }]);
                        let known = model.get_mut(&id);
                        if let Some(vehicle) = known.filter(|vehicle| vehicle.fix_at <= fix_at) {
                            vehicle.position = position;
                            vehicle.fix_at = fix_at;
                        }
                    }
                    Step::SetState { number, state } => {
                        let id = numbered_id(number);
                        index.apply([FleetUpdate::State { id, state }]);
                        if let Some(vehicle) = model.get_mut(&id) {
                            vehicle.state = state;
                        }
                    }
                    Step::Remove { number } => {
                        let id = numbered_id(number);
                        prop_assert_eq!(index.remove(id), model.remove(&id));
                    }
                    Step::BeginRebuild => {
                        if pending.is_none() {
                            pending = Some(index.begin_rebuild());
                        }
                    }
                    Step::CatchUp => {
                        if let Some(pending) = pending.as_mut() {
                            index.catch_up(pending, 0);
                        }
                    }
                    Step::FinishRebuild => {
                        if let Some(pending) = pending.take() {
                            index.finish_rebuild(pending);
                        }
                    }
                }
                index.assert_consistent();
            }
            if let Some(pending) = pending.take() {
                index.finish_rebuild(pending);
            }
            index.assert_consistent();
            prop_assert_eq!(index.len(), model.len());
            for (id, vehicle) in &model {
                prop_assert_eq!(index.get(*id), Some(*vehicle));
            }
            let fleet: Vec<FleetVehicle> = model.values().copied().collect();
            for query in queries {
                assert_agrees_with_brute_force(&index, &fleet, query, 5, f64::INFINITY, |_| true);
            }
        }
    }
}
