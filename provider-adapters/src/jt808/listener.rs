//! The JT/T 808 TCP listener: one task per terminal connection, driving a
//! [`Jt808Session`] over a [`Jt808Codec`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use super::codec::{Jt808Codec, OutboundMessage, SplitItem, SubpackageLimits};
use super::session::{AuthSecret, Jt808Session};
use crate::ChecksumPolicy;
use crate::gateway::{DeviceGateway, DeviceRef, GatewayError, SubmitOutcome};
use crate::listener::{ConnectionSession, DriverConfig, Incoming, serve};
use crate::session::Step;
use domain::DeviceProtocol;

/// Settings of the JT/T 808 listener.
#[derive(Debug, Clone)]
pub struct Jt808Config {
    /// Secret from which registration auth codes are derived. Keep it stable: changing it
    /// makes every terminal register again.
    pub auth_secret: AuthSecret,
    /// A connection with no valid frame for this long is closed. Terminals send a
    /// heartbeat every 60 s by default, so the default is 3 minutes.
    pub idle_timeout: Duration,
    /// A terminal that does not take a reply within this is disconnected.
    pub write_timeout: Duration,
    /// A gateway call that takes longer counts as "gateway unavailable".
    pub gateway_timeout: Duration,
    /// Most simultaneous connections; further terminals wait in the accept backlog.
    pub max_connections: usize,
    /// What to do with frames that fail their XOR check code.
    pub checksum_policy: ChecksumPolicy,
    /// Bounds on sub-package reassembly per connection.
    pub subpackage_limits: SubpackageLimits,
}

impl Jt808Config {
    /// Defaults with this auth secret.
    ///
    /// ```
    /// let config = provider_adapters::jt808::Jt808Config::new(b"secret".to_vec());
    /// assert_eq!(config.idle_timeout.as_secs(), 180);
    /// ```
    pub fn new(auth_secret: impl Into<Vec<u8>>) -> Self {
        Self {
            auth_secret: AuthSecret::new(auth_secret),
            idle_timeout: Duration::from_secs(180),
            write_timeout: Duration::from_secs(10),
            gateway_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            checksum_policy: ChecksumPolicy::Verify,
            subpackage_limits: SubpackageLimits::default(),
        }
    }
}

impl ConnectionSession for Jt808Session {
    const PROTOCOL: DeviceProtocol = DeviceProtocol::Jt808;
    type Reply = OutboundMessage;
    type Codec = Jt808Codec;

    fn on_item(&mut self, item: SplitItem, now: Instant) -> Incoming<OutboundMessage> {
        match item {
            SplitItem::Frame(frame) => Incoming::Step(self.on_frame(&frame, now)),
            SplitItem::Skipped { reason, bytes } => Incoming::Skipped {
                reason: reason.as_str(),
                bytes,
            },
        }
    }

    fn resolved(
        &mut self,
        answer: Result<Option<DeviceRef>, GatewayError>,
    ) -> Step<OutboundMessage> {
        Jt808Session::resolved(self, answer)
    }

    fn submitted(&mut self, answer: Result<SubmitOutcome, GatewayError>) -> Step<OutboundMessage> {
        Jt808Session::submitted(self, answer)
    }
}

/// Serves JT/T 808 terminals on `listener` until `shutdown` completes, then closes every
/// connection and returns once their tasks have finished.
///
/// A bad frame gets the protocol's negative answer and is counted; it never closes the
/// connection, let alone another one.
pub async fn serve_jt808(
    listener: TcpListener,
    gateway: Arc<dyn DeviceGateway>,
    config: Jt808Config,
    shutdown: impl Future<Output = ()>,
) {
    let driver = DriverConfig {
        idle_timeout: config.idle_timeout,
        write_timeout: config.write_timeout,
        gateway_timeout: config.gateway_timeout,
        max_connections: config.max_connections,
    };
    let new_session = move || {
        Jt808Session::new(
            config.auth_secret.clone(),
            config.checksum_policy,
            config.subpackage_limits,
        )
    };
    serve(listener, gateway, driver, new_session, shutdown).await;
}
