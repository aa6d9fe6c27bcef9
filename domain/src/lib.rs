//! The rescue-dispatch domain: what a case, a provider, a user and a timeline event are,
//! which values are valid, and which case status changes are legal.
//!
//! Everything here is pure: no I/O, no clocks read behind your back (time comes in through
//! [`time::Clock`]), no database types. Raw input (JSON, query strings, device frames) is
//! parsed into the validated types of this crate at the edge, so the rest of the system
//! only ever sees values that make sense: a [`geo::LatLon`] with a latitude of 91 cannot
//! exist, and a [`status::CaseStatus`] only changes along the edges of the status machine.
//!
//! The [`ports`] module holds the traits the storage crate implements for SQLite and
//! PostgreSQL; the server receives them as `Arc<dyn Store>`.

#[macro_use]
mod macros;

pub mod account;
pub mod area;
pub mod case;
pub mod diagnosis;
pub mod error;
pub mod event;
pub mod fleet;
pub mod gcj02;
pub mod geo;
pub mod ids;
pub mod ports;
pub mod status;
pub mod time;

pub use account::{NewUserInput, Provider, Role, User};
pub use case::{
    Case, CaseInput, Channel, Customer, Fault, FaultCategory, Location, NewCase, PhoneNumber,
    Powertrain, RoadKind, Service, Tier,
};
pub use diagnosis::{DiagnosisTicket, SafetyReport, TicketOutcome};
pub use error::{FieldError, ValidationErrors};
pub use event::{Actor, Event, EventKind, NewEvent};
pub use fleet::{
    Alert, AlertKind, AlertState, DeclineReason, DeviceBinding, DeviceProtocol, Fix, FixSource,
    Offer, OfferState, Severity, Vehicle, VehicleRegistration, VehicleState,
};
pub use geo::{Crs, LatLon};
pub use ids::{AlertId, CaseId, OfferId, ProviderId, TicketId, UserId, VehicleId};
pub use status::{CaseStatus, IllegalTransition};
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
