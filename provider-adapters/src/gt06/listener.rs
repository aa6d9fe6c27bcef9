//! The GT06 TCP listener: one task per device connection, driving a [`Gt06Session`]
//! over a [`Gt06Codec`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use super::codec::{Gt06Codec, Gt06Reply, SplitItem};
use super::session::Gt06Session;
use crate::ChecksumPolicy;
use crate::gateway::{DeviceGateway, DeviceRef, GatewayError, SubmitOutcome};
use crate::listener::{ConnectionSession, DriverConfig, Incoming, serve};
use crate::session::Step;
use domain::DeviceProtocol;

/// Settings of the GT06 listener.
#[derive(Debug, Clone)]
pub struct Gt06Config {
    /// A connection with no valid frame for this long is closed. GT06 devices send a
    /// heartbeat every few minutes (3 by default on most firmwares), so the default is 10.
    pub idle_timeout: Duration,
    /// A device that does not take a reply within this is disconnected.
    pub write_timeout: Duration,
    /// A gateway call that takes longer counts as "gateway unavailable".
    pub gateway_timeout: Duration,
    /// Most simultaneous connections; further devices wait in the accept backlog.
    pub max_connections: usize,
    /// What to do with frames that fail their CRC.
    pub checksum_policy: ChecksumPolicy,
}

impl Default for Gt06Config {
    /// ```
    /// assert_eq!(provider_adapters::gt06::Gt06Config::default().idle_timeout.as_secs(), 600);
    /// ```
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(600),
            write_timeout: Duration::from_secs(10),
            gateway_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            checksum_policy: ChecksumPolicy::Verify,
        }
    }
}

impl ConnectionSession for Gt06Session {
    const PROTOCOL: DeviceProtocol = DeviceProtocol::Gt06;
    type Reply = Gt06Reply;
    type Codec = Gt06Codec;

    fn on_item(&mut self, item: SplitItem, _now: Instant) -> Incoming<Gt06Reply> {
        match item {
            SplitItem::Frame(frame) => Incoming::Step(self.on_frame(&frame)),
            SplitItem::Skipped { reason, bytes } => Incoming::Skipped {
                reason: reason.as_str(),
                bytes,
            },
        }
    }

    fn resolved(&mut self, answer: Result<Option<DeviceRef>, GatewayError>) -> Step<Gt06Reply> {
        Gt06Session::resolved(self, answer)
    }

    fn submitted(&mut self, answer: Result<SubmitOutcome, GatewayError>) -> Step<Gt06Reply> {
        Gt06Session::submitted(self, answer)
    }
}

/// Serves GT06 devices on `listener` until `shutdown` completes, then closes every
/// connection and returns once their tasks have finished.
pub async fn serve_gt06(
    listener: TcpListener,
    gateway: Arc<dyn DeviceGateway>,
    config: Gt06Config,
    shutdown: impl Future<Output = ()>,
) {
    let driver = DriverConfig {
        idle_timeout: config.idle_timeout,
        write_timeout: config.write_timeout,
        gateway_timeout: config.gateway_timeout,
        max_connections: config.max_connections,
    };
    let checksum_policy = config.checksum_policy;
    serve(
        listener,
        gateway,
        driver,
        move || Gt06Session::new(checksum_policy),
        shutdown,
    )
    .await;
}
