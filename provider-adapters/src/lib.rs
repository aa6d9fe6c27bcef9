//! Device protocols for rescue vehicles: GPS terminals and phone apps that report
//! positions straight to the server. This crate owns the wire formats and nothing else —
//! JT/T 808 and GT06 over TCP, and the OsmAnd HTTP protocol of the Traccar Client apps —
//! and turns every message into the same [`DevicePosition`], handed to the rest of the
//! server through the one [`DeviceGateway`] port. It speaks the domain's types: a
//! `DevicePosition` is a [`domain::Fix`] (a validated [`domain::LatLon`], UTC time, km/h,
//! the protocol's [`domain::FixSource`]) plus what only a device says (its id, the valid
//! flag, altitude, satellites, alarms), so a decoded fix is the server's fix from the
//! socket to the fleet index; devices are named by [`domain::DeviceProtocol`] and the
//! gateway hands back the [`domain::VehicleId`] a device is mounted in.
//!
//! Each protocol is one folder with the same file set: a pure, fuzzable `codec`
//! (bytes in, typed messages out, never a panic, bounded memory), a pure `session` state
//! machine (typed message + gateway answer in, replies out), and a `listener` that owns
//! the sockets. OsmAnd is HTTP, so its folder only has the pure `parse`; the HTTP route
//! lives with the server. The two binary codecs share what their splitters hand on
//! ([`framing::SplitItem`]) and the bounds-checked reading of bodies.
//!
//! Wiring it into the server takes one line per listener:
//!
//! ```no_run
//! # async fn wire(gateway: std::sync::Arc<dyn provider_adapters::DeviceGateway>) -> std::io::Result<()> {
//! use provider_adapters::jt808::{serve_jt808, Jt808Config};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:6808").await?;
//! let config = Jt808Config::new(b"a server secret".to_vec());
//! serve_jt808(listener, gateway, config, std::future::pending::<()>()).await;
//! # Ok(()) }
//! ```

pub mod framing;
pub mod gateway;
pub mod gt06;
pub mod jt808;
mod listener;
pub mod osmand;
pub mod position;
pub mod session;
pub mod webhook;
mod wire;

pub use gateway::{DeviceGateway, DeviceRef, GatewayError, SubmitOutcome};
pub use position::DevicePosition;

/// What a decoder does with a frame whose checksum (JT/T 808 XOR, GT06 CRC-16/X.25) does
/// not match its content.
///
/// The default, [`ChecksumPolicy::Verify`], refuses such a frame: TCP already protects
/// the bytes in transit, so a mismatch means a device whose firmware computes the check
/// wrongly or a frame mangled by a middlebox, and in either case we would rather ask the
/// device to resend (JT/T 808 answers "message error") than move a rescue truck on the
/// map by a corrupted fix. [`ChecksumPolicy::Ignore`] exists for one known firmware family
/// that gets the check wrong on every frame: an operator can switch it on for a listener,
/// and every mismatch is still counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumPolicy {
    /// Refuse frames that fail their check (the default).
    #[default]
    Verify,
    /// Decode frames that fail their check, still counting the mismatch.
    Ignore,
}

/// Metric names, shared by the listeners. Labels come from fixed vocabularies
/// (`protocol`, `reason`), never a device id.
pub mod metric_names {
    /// Counter: frames split from the stream and handled, label `protocol`; the refused
    /// ones among them are also counted in [`FRAMES_REFUSED`].
    pub const FRAMES_RECEIVED: &str = "device_frames_received_total";
    /// Counter: frames or bytes refused, labels `protocol` and `reason`.
    pub const FRAMES_REFUSED: &str = "device_frames_refused_total";
    /// Counter: positions handed to the gateway, labels `protocol` and `live`.
    pub const POSITIONS_SUBMITTED: &str = "device_positions_submitted_total";
    /// Gauge: open device connections, label `protocol`.
    pub const CONNECTIONS_OPEN: &str = "device_connections_open";
}
