//! The bus joins server instances: what one instance learns about the fleet (positions,
//! dispatch states, registrations, providers) reaches every other instance, so each keeps
//! its own fleet index current; case events will ride on it to the agents' streams.
//!
//! Without `REDIS_URL` the bus is in-process: a broadcast channel inside one server. With
//! it, every message is also published on a Redis channel and every instance subscribes;
//! messages carry the sending instance's id so an instance ignores its own echo.
//!
//! Delivery is best effort, like the fleet data it carries: a message lost while Redis is
//! down is superseded by the next position of that vehicle, and anything that must not be
//! lost (cases, offers, claims) lives in the database, not on the bus.

mod redis_link;

use std::sync::Arc;

use domain::{Fix, Provider, VehicleId, VehicleState};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

/// Bus messages dropped because the outbound queue was full (Redis slow or down).
pub const BUS_DROPPED: &str = "rescue_bus_dropped_total";
/// Messages received from other instances, by `kind`.
pub const BUS_RECEIVED: &str = "rescue_bus_received_total";

/// What instances tell each other.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BusMessage {
    /// Accepted live positions.
    Fixes {
        /// `(vehicle, fix)` pairs.
        fixes: Vec<(VehicleId, Fix)>,
    },
    /// A vehicle's dispatch state changed.
    VehicleState {
        /// The vehicle.
        vehicle: VehicleId,
        /// Its state now.
        state: VehicleState,
    },
    /// A vehicle was registered or its registration changed.
    VehicleRegistered {
        /// The vehicle as stored.
        vehicle: Box<domain::Vehicle>,
    },
    /// A provider was created or changed.
    ProviderChanged {
        /// The provider as stored.
        provider: Box<Provider>,
    },
}

impl BusMessage {
    /// Metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            BusMessage::Fixes { .. } => "fixes",
            BusMessage::VehicleState { .. } => "vehicle_state",
            BusMessage::VehicleRegistered { .. } => "vehicle_registered",
            BusMessage::ProviderChanged { .. } => "provider_changed",
        }
    }
}

/// A message and the instance it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending instance.
    pub origin: Uuid,
    /// The message.
    pub message: BusMessage,
}

/// The bus of one instance (see the module docs).
pub struct Bus {
    instance: Uuid,
    local: broadcast::Sender<Arc<Envelope>>,
    outbound: Option<mpsc::Sender<Envelope>>,
    backend: &'static str,
}

/// Messages buffered for Redis before new ones are dropped.
const OUTBOUND_CAPACITY: usize = 65_536;
/// Messages buffered per local subscriber before it lags.
const LOCAL_CAPACITY: usize = 16_384;

impl Bus {
    /// A bus inside this process only.
    pub fn in_process() -> Bus {
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);
        Bus {
            instance: Uuid::new_v4(),
            local,
            outbound: None,
            backend: "in_process",
        }
    }

    /// A bus over Redis at `url`. Connects once to check the URL; afterwards the link
    /// reconnects by itself.
    pub async fn redis(url: &str, channel: &str) -> anyhow::Result<Bus> {
        let (local, _) = broadcast::channel(LOCAL_CAPACITY);
        let instance = Uuid::new_v4();
        let (outbound, queue) = mpsc::channel(OUTBOUND_CAPACITY);
        redis_link::start(url, channel.to_owned(), instance, queue, local.clone()).await?;
        Ok(Bus {
            instance,
            local,
            outbound: Some(outbound),
            backend: "redis",
        })
    }

    /// This instance's id.
    pub fn instance(&self) -> Uuid {
        self.instance
    }

    /// `in_process` or `redis`.
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Sends a message to every subscriber here and on every other instance.
    pub fn publish(&self, message: BusMessage) {
        let envelope = Envelope {
            origin: self.instance,
            message,
        };
        if let Some(outbound) = &self.outbound
            && outbound.try_send(envelope.clone()).is_err()
        {
            metrics::counter!(BUS_DROPPED).increment(1);
        }
        // No local subscriber is fine.
        let _ = self.local.send(Arc::new(envelope));
    }

    /// Every message from now on, local and remote.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.local.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_in_process_bus_delivers_to_every_subscriber() {
        let bus = Bus::in_process();
        let mut first = bus.subscribe();
        let mut second = bus.subscribe();
        bus.publish(BusMessage::VehicleState {
            vehicle: VehicleId::new_v7(),
            state: VehicleState::Busy,
        });
        for receiver in [&mut first, &mut second] {
            let envelope = receiver.recv().await.unwrap();
            assert_eq!(envelope.origin, bus.instance());
            assert_eq!(envelope.message.kind(), "vehicle_state");
        }
    }

    #[test]
    fn messages_round_trip_through_json() {
        let message = BusMessage::VehicleState {
            vehicle: VehicleId::new_v7(),
            state: VehicleState::Offered,
        };
        let envelope = Envelope {
            origin: Uuid::new_v4(),
            message,
        };
        let text = serde_json::to_string(&envelope).unwrap();
        assert!(text.contains("\"kind\":\"vehicle_state\""));
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.origin, envelope.origin);
    }
}
