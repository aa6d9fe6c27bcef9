//! The contract between a protocol's pure session state machine and the socket driver.
//!
//! A session never awaits: for each incoming frame it returns a [`Step`]. When the step
//! needs the gateway ([`Step::Resolve`], [`Step::Submit`]), the driver asks the gateway and
//! hands the answer back (`resolved` / `submitted`), which yields the next step. At most one
//! gateway request is in flight per connection, so the session keeps the request's context
//! itself and the steps stay plain data that unit tests can match on.

use crate::gateway::DeviceRef;
use crate::position::DevicePosition;

/// What the driver must do next for one connection. `R` is the protocol's reply type.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<R> {
    /// Send these replies (possibly none).
    Reply(Vec<R>),
    /// The input was refused; send these replies (the protocol's negative answer, if it has
    /// one) and count and log `reason`.
    Refuse {
        /// A fixed-vocabulary label (`checksum_mismatch`, `not_authenticated`, …).
        reason: &'static str,
        /// Replies to send.
        replies: Vec<R>,
    },
    /// Ask [`crate::DeviceGateway::resolve_device`] about `device_id`, then pass the answer
    /// to the session's `resolved`.
    Resolve {
        /// The external device id.
        device_id: String,
    },
    /// Hand `positions` to [`crate::DeviceGateway::submit_positions`], then pass the outcome
    /// to the session's `submitted`.
    Submit {
        /// The device, as resolved at registration or login.
        device: DeviceRef,
        /// Decoded positions, at least one.
        positions: Vec<DevicePosition>,
        /// False for batch and blind-area uploads.
        live: bool,
    },
    /// Send these replies, then close the connection.
    Close {
        /// Why, as a fixed-vocabulary label.
        reason: &'static str,
        /// Replies to send first.
        replies: Vec<R>,
    },
}
