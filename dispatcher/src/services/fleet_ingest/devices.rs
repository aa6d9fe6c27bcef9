//! GPS devices talking straight to the server: the [`DeviceGateway`] the protocol
//! adapters (JT/T 808, GT06, OsmAnd) report to. The OsmAnd HTTP route is in
//! `api::devices`.
//!
//! A device is known when a provider listed it in a vehicle's `devices`. A decoded position
//! already is a `domain::Fix` (the adapters validated its coordinates); it goes through the
//! same checks as the provider API's (`FleetRegistry::check_in_batch`): the live position
//! only moves forward in time. Batch and blind-area uploads (`live = false`) are taken too, but an old one never
//! moves the live position back; a fix the device itself marks as invalid (no GPS lock) is
//! refused and counted.

use std::collections::HashMap;
use std::sync::Arc;

use domain::{Clock, DeviceProtocol};
use provider_adapters::{DeviceGateway, DevicePosition, DeviceRef, GatewayError, SubmitOutcome};

use super::{FixRefusal, FleetRegistry, count_rejection};

/// The gateway of this server.
pub struct DeviceIntake {
    registry: Arc<FleetRegistry>,
    clock: Arc<dyn Clock>,
}

impl DeviceIntake {
    /// A gateway over the fleet registry.
    pub fn new(registry: Arc<FleetRegistry>, clock: Arc<dyn Clock>) -> DeviceIntake {
        DeviceIntake { registry, clock }
    }
}

#[async_trait::async_trait]
impl DeviceGateway for DeviceIntake {
    async fn resolve_device(
        &self,
        protocol: DeviceProtocol,
        device_id: &str,
    ) -> Result<Option<DeviceRef>, GatewayError> {
        let found = self
            .registry
            .resolve_device(protocol, device_id)
            .await
            .map_err(|_| GatewayError::Unavailable)?;
        Ok(found.map(|vehicle_id| DeviceRef {
            vehicle_id,
            protocol,
            device_id: device_id.to_owned(),
        }))
    }

    async fn submit_positions(
        &self,
        device: &DeviceRef,
        positions: Vec<DevicePosition>,
        live: bool,
    ) -> Result<SubmitOutcome, GatewayError> {
        let vehicle_id = device.vehicle_id;
        let now = self.clock.now();
        let mut outcome = SubmitOutcome::default();
        let mut fresh = Vec::with_capacity(positions.len());
        let mut history = Vec::new();
        let mut latest_in_batch = HashMap::with_capacity(1);
        for position in positions {
            let fix = position.fix;
            if !position.valid {
                count_rejection(fix.source, FixRefusal::NoGpsFix);
                outcome.rejected += 1;
                continue;
            }
            match self
                .registry
                .check_in_batch(&mut latest_in_batch, vehicle_id, &fix, now)
            {
                Ok(()) => {
                    fresh.push((vehicle_id, fix));
                    outcome.accepted += 1;
                }
                // A batch or blind-area upload is history: taken, but it does not move
                // the live position back.
                Err(FixRefusal::NotNewer) if !live => {
                    history.push((vehicle_id, fix));
                    outcome.accepted += 1;
                }
                Err(refusal) => {
                    count_rejection(fix.source, refusal);
                    outcome.rejected += 1;
                }
            }
        }
        self.registry.accept(fresh);
        self.registry.accept_history(history);
        Ok(outcome)
    }
}
