//! The server's use cases, one module each, each a struct built once in [`crate::app`]
//! with the ports and parts it needs passed in (the store, the clock, the fleet registry,
//! the other services it drives).
//!
//! HTTP handlers in [`crate::api`] parse, authorize, call one of these and map the result;
//! the background loops in [`crate::runtime`] drive them on a timer. No service imports
//! from `api`. The order below is the order of dependence: a service uses only services
//! listed before it.
//!
//! - [`alerts`]: the one way an alert is raised; agents acknowledge and resolve.
//! - [`fleet_ingest`]: vehicles, providers' terms, every position through one gate, and
//!   the device gateway.
//! - [`views`]: what a provider is shown of an offer (API and webhooks alike).
//! - [`cascade`]: the offer cascade: offers, answers, job progress, manual assignment,
//!   escalation, cancellation.
//! - [`diagnosis`]: triage and the phone-expert queue.
//! - [`intake`]: a request becomes a triaged case with its first offer.
//! - [`tracking`]: delay rules on every fix of an assigned truck; trajectory and the
//!   customer's tracking view.
//! - [`calls`]: masked calls between agents, experts, customers and drivers.
//! - [`cases`]: reading cases and writing what agents add to them (notes, updates).
//! - [`webhook_outbox`]: the event log turned into signed provider webhooks.

pub mod alerts;
pub mod calls;
pub mod cascade;
pub mod cases;
pub mod diagnosis;
pub mod fleet_ingest;
pub mod intake;
pub mod tracking;
pub mod views;
pub mod webhook_outbox;
