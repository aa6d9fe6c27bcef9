//! The queries behind the domain's store ports, written once for both backends: ordinary
//! generic code over [`Backend`](crate::backend::Backend), implementing each port for
//! [`SqlStore<B>`](crate::backend::SqlStore).
//!
//! The SQL uses what SQLite and PostgreSQL share (`$1` placeholders, `RETURNING`, `ON
//! CONFLICT`, partial indexes, CTEs). Where a backend needs a statement of its own, the
//! query takes it from the backend (`B::APPEND_EVENT_SQL`, `B::DUE_OFFERS_SQL`, …); a
//! statement is a [`Query`](crate::sql::Query), run on the backend's reader pool or write
//! transaction through [`Conn`](crate::sql::Conn).
//!
//! - `cases`: accounts, cases, idempotency keys, the timeline, maintenance;
//! - `dispatch`: the fleet, offers and the dispatch state machine;
//! - `diagnosis`: triage, the phone-expert queue, masked-call bindings, reports;
//! - `tracking`: trajectories, tracking state, alerts, the event stream;
//! - `webhooks`: the webhook outbox.

mod cases;
mod diagnosis;
mod dispatch;
mod tracking;
mod webhooks;
