//! The port every device adapter talks to. The dispatcher implements it; adapters never
//! see a vehicle, a store or a bus, only this (and a vehicle's id, which they hand back).

use domain::{DeviceProtocol, VehicleId};

use crate::position::DevicePosition;

/// A device the gateway knows, as handed back by [`DeviceGateway::resolve_device`].
///
/// Adapters keep it for the life of a connection and pass it back with every submission;
/// `vehicle_id` is opaque to them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeviceRef {
    /// The vehicle the device is mounted in.
    pub vehicle_id: VehicleId,
    /// The protocol the device speaks.
    pub protocol: DeviceProtocol,
    /// The external device id, as the protocol states it.
    pub device_id: String,
}

/// What the gateway did with a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubmitOutcome {
    /// Positions stored (trajectory and, for live ones, the live index).
    pub accepted: usize,
    /// Positions refused (implausible, out of order, duplicate…).
    pub rejected: usize,
}

/// Why the gateway could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// Storage or the bus is down; the device should keep its data and retry.
    #[error("gateway unavailable")]
    Unavailable,
    /// The request itself was refused; retrying the same data will not help.
    #[error("gateway rejected the request: {0}")]
    Rejected(String),
}

/// The one interface device adapters use to reach the rest of the server.
///
/// # Example
///
/// A gateway that knows one OsmAnd device and accepts everything:
///
/// ```
/// use domain::{DeviceProtocol, VehicleId};
/// use provider_adapters::{DeviceGateway, DevicePosition, DeviceRef, GatewayError, SubmitOutcome};
///
/// struct OneDevice;
///
/// #[async_trait::async_trait]
/// impl DeviceGateway for OneDevice {
///     async fn resolve_device(&self, protocol: DeviceProtocol, device_id: &str) -> Result<Option<DeviceRef>, GatewayError> {
///         Ok((protocol == DeviceProtocol::Osmand && device_id == "truck-7").then(|| DeviceRef {
///             vehicle_id: "0197a000-0000-7000-8000-000000000007".parse::<VehicleId>().unwrap(),
///             protocol,
///             device_id: device_id.to_owned(),
///         }))
///     }
///
///     async fn submit_positions(&self, _device: &DeviceRef, positions: Vec<DevicePosition>, _live: bool) -> Result<SubmitOutcome, GatewayError> {
///         Ok(SubmitOutcome { accepted: positions.len(), rejected: 0 })
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait DeviceGateway: Send + Sync + 'static {
    /// Is this external device id (JT/T 808 terminal phone number as a 12-digit string, 20
    /// digits for the 2019 edition; GT06 IMEI; OsmAnd id) mapped to a vehicle?
    async fn resolve_device(
        &self,
        protocol: DeviceProtocol,
        device_id: &str,
    ) -> Result<Option<DeviceRef>, GatewayError>;

    /// Positions from a device. `live` is false for batch and blind-area uploads: they
    /// enter the trajectory but must never move the live position backwards in time.
    async fn submit_positions(
        &self,
        device: &DeviceRef,
        positions: Vec<DevicePosition>,
        live: bool,
    ) -> Result<SubmitOutcome, GatewayError>;
}
