//! Tracking of a rescue from acceptance to arrival: which GPS fixes of the assigned
//! vehicle are believable, how far it still is and how fast it really goes, when it will
//! arrive, and which delay alerts an agent must see — early enough to act.
//!
//! This crate owns the pure logic of DESIGN §5; it does no I/O and never reads a clock
//! (every instant comes in as an argument). The server owns storage, the fix stream,
//! timers and the agent stream, and wires them to this API:
//!
//! * [`fix`] — the [`Fix`] and the plausibility [`FixFilter`] (duplicates, out-of-order,
//!   impossible jumps and future-dated fixes are ignored and counted);
//! * [`eta`] — the default travel-time [`EtaModel`], used both to quote and to predict;
//! * [`progress`] — [`Progress`]: remaining distance, robust recent speed, predicted
//!   arrival and a [`ProgressStatus`];
//! * [`rules`] — [`RuleEngine`]: the alert rules as a persisted state machine returning
//!   [`AlertChange`]s on every fix and tick;
//! * [`trajectory`] — the vehicle's path as GeoJSON ([`Trajectory`]);
//! * [`replay`] — the measurement harness that drives simulated trucks along real GPS
//!   traces and reports how early late arrivals were warned.

pub mod eta;
pub mod fix;
pub mod progress;
pub mod replay;
pub mod rules;
pub mod trajectory;
mod units;

pub use eta::EtaModel;
pub use fix::{FilterConfig, Fix, FixCounters, FixFilter, FixVerdict};
pub use progress::{
    Progress, ProgressConfig, ProgressSnapshot, ProgressState, ProgressStatus, TrackingTarget,
};
pub use rules::{
    AlertChange, EngineState, OpenAlert, RuleConfig, RuleEngine, TRACKED_KINDS, TrackerConfig,
};
pub use trajectory::Trajectory;
