//! The live fleet index: where every rescue vehicle is right now, and which ones are
//! nearest to a stranded car.
//!
//! [`FleetIndex`] is pure memory, no I/O. The runtime feeds it every accepted fix and state
//! change ([`FleetIndex::apply`]), loads it from storage at start
//! ([`FleetIndex::from_vehicles`]), rebuilds it now and then ([`FleetIndex::rebuild`]), and
//! matching asks it for candidates ([`FleetIndex::nearest`]); the agents' map asks for a box
//! ([`FleetIndex::within_bbox`]).
//!
//! ```
//! use chrono::Utc;
//! use dispatcher::fleet::{CapabilitySet, FleetIndex, FleetVehicle};
//! use domain::{LatLon, ProviderId, Service, VehicleId, VehicleState};
//!
//! let index = FleetIndex::new();
//! index.upsert(FleetVehicle {
//!     id: VehicleId::new_v7(),
//!     provider: ProviderId::new_v7(),
//!     position: LatLon::new(31.2304, 121.4737).unwrap(),
//!     fix_at: Utc::now(),
//!     state: VehicleState::Available,
//!     capabilities: CapabilitySet::from_iter([Service::Tow]),
//! });
//! let stranded = LatLon::new(31.2000, 121.5000).unwrap();
//! let candidates = index.nearest(stranded, 10, 50_000.0, |vehicle| {
//!     vehicle.state == VehicleState::Available && vehicle.capabilities.contains(Service::Tow)
//! });
//! assert_eq!(candidates.len(), 1);
//! assert!((candidates[0].distance_m - 4_205.0).abs() < 1.0);
//! ```
//!
//! # Why it is built this way
//!
//! **Unit-sphere points.** Longitude/latitude degrees are not a metric space: a degree of
//! longitude is 111 km at the equator and 19 km at 80° N, and 179.9° and -179.9° are
//! neighbours. Nearest-by-degrees picks the wrong truck in about one query in eleven over
//! China. Each position is stored as its unit vector `[x, y, z]` instead; the chord between
//! two unit vectors grows strictly with the great-circle angle, so the R-tree's plain
//! Euclidean nearest-neighbour search returns exactly the great-circle order, at any
//! latitude, across the antimeridian and over the poles, and metres come back exactly as
//! `2R·asin(chord/2)`.
//!
//! **The tree holds slot numbers, not vehicles.** A vehicle's attributes live in a slot
//! beside the tree; the tree only holds `(point, slot)`. A state change (`available →
//! offered`, the most frequent write after a fix) then never touches the tree, a move is
//! one remove and one insert of a 32-byte entry, and the caller's filter reads the vehicle
//! in place, so the rejected 80 % of candidates are never copied. At load, slots are
//! numbered in the order of the tree's leaves, so that vehicles near each other on the map
//! are near each other in memory and the filter's reads share cache lines. The tree itself
//! uses nodes of 10 to 32 children rather than rstar's 3 to 6 (tuned for 2-D): in 3-D that
//! halves the bulk load and takes a quarter off queries and a third off moves.
//!
//! **One reader-writer lock, short critical sections.** Fixes arrive at hundreds of
//! thousands per second, so copy-on-write snapshots (an `ArcSwap` of the whole index) would
//! copy 100k entries per batch, and a lock-free R-tree would have to be hand-written. With
//! a `parking_lot` reader-writer lock, which is fair to both sides, a reader's wait is
//! bounded by how long a writer holds the lock without a break: a move takes about 1.5 µs,
//! a batch ([`FleetIndex::apply`]) hands the lock to waiting readers every 8 updates, and
//! it releases the lock fairly at the end, so that the writer's next batch cannot barge in
//! ahead of a reader that is waking up. A batch is collected before the lock is taken, so
//! no caller code runs under the write lock; the filter of [`FleetIndex::nearest`] does run
//! under the read lock and must stay cheap. Whether a fix is older than the stored one is
//! decided under the write lock, so two racing batches can never move a vehicle back to an
//! older position.
//!
//! **Rebuild off the lock.** Incremental inserts and removes leave the R-tree's nodes
//! overlapping more and more (measured beforehand: queries 1.3–2.4× slower after a few
//! updates per vehicle), while a bulk load packs it well but takes tens of milliseconds for
//! 100k vehicles — far too long to hold any lock. [`FleetIndex::rebuild`] therefore first
//! switches on a log of changed slots, copies the points in 4k-slot chunks, each under its
//! own short read lock, bulk-loads the new tree with no lock held, and only then takes the
//! write lock to swap it in. Every tree change made since logging began is replayed
//! against the rebuild's own copy of the points (take out what the new tree holds for that
//! slot, put in what the slot holds now): first in catch-up rounds under read locks, then
//! the short remainder under the write lock right before the swap. Replaying by comparing
//! points, rather than by remembering which slots were handled, makes a replay idempotent,
//! so it is correct for a slot copied after it changed, for a vehicle that moves again
//! after a catch-up round, is removed, or whose slot is reused by a new vehicle. The old
//! tree is freed after the lock is released. [`FleetIndex::edits_since_rebuild`] tells the
//! runtime when a rebuild is worth it.

mod capability;
mod index;
mod sphere;

pub use capability::CapabilitySet;
pub use index::{ApplyOutcome, Candidate, FleetIndex, FleetUpdate, FleetVehicle, RebuildReport};
