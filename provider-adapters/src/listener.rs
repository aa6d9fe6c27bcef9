//! The socket driver shared by the TCP device protocols: accept loop, one task per
//! connection, idle timeout, write and gateway timeouts, connection limit, graceful
//! shutdown. Everything protocol-specific sits behind [`ConnectionSession`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_util::codec::{Decoder, Encoder, Framed};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::gateway::{DeviceGateway, GatewayError};
use crate::metric_names;
use crate::session::Step;
use domain::DeviceProtocol;

/// What a session made of one item from its splitter.
pub(crate) enum Incoming<R> {
    /// The splitter dropped bytes; count and log, but it is not activity.
    Skipped { reason: &'static str, bytes: usize },
    /// A frame was handled.
    Step(Step<R>),
}

/// A protocol's per-connection state, as the driver sees it.
pub(crate) trait ConnectionSession: Send + 'static {
    const PROTOCOL: DeviceProtocol;
    type Reply: Send + 'static;
    type Codec: Decoder<Item: Send, Error = std::io::Error>
        + Encoder<Self::Reply, Error = std::io::Error>
        + Default
        + Send
        + Unpin;

    fn on_item(
        &mut self,
        item: <Self::Codec as Decoder>::Item,
        now: std::time::Instant,
    ) -> Incoming<Self::Reply>;
    fn resolved(
        &mut self,
        answer: Result<Option<crate::DeviceRef>, GatewayError>,
    ) -> Step<Self::Reply>;
    fn submitted(
        &mut self,
        answer: Result<crate::SubmitOutcome, GatewayError>,
    ) -> Step<Self::Reply>;
}

/// Socket-level limits, common to all TCP protocols.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DriverConfig {
    pub(crate) idle_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) gateway_timeout: Duration,
    pub(crate) max_connections: usize,
}

pub(crate) async fn serve<S, F>(
    listener: TcpListener,
    gateway: Arc<dyn DeviceGateway>,
    config: DriverConfig,
    new_session: F,
    shutdown: impl Future<Output = ()>,
) where
    S: ConnectionSession,
    F: Fn() -> S,
{
    let protocol = S::PROTOCOL.as_str();
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut shutdown = std::pin::pin!(shutdown);
    if let Ok(address) = listener.local_addr() {
        info!(protocol, %address, "device listener started");
    }

    loop {
        // Wait for a free slot before accepting, so excess devices queue in the kernel's
        // backlog instead of each costing a task and a buffer here.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Typically out of file descriptors: back off instead of spinning.
                warn!(protocol, %error, "accept failed");
                tokio::select! {
                    () = &mut shutdown => break,
                    () = sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let span =
            info_span!("device_connection", protocol, %peer, device_id = tracing::field::Empty);
        let connection = Connection {
            framed: Framed::new(stream, S::Codec::default()),
            session: new_session(),
            gateway: Arc::clone(&gateway),
            config,
            peer,
        };
        let stop = stop.clone();
        connections.spawn(
            async move {
                connection.run(stop).await;
                drop(permit);
            }
            .instrument(span),
        );
    }

    info!(
        protocol,
        open = connections.len(),
        "device listener stopping"
    );
    stop.cancel();
    connections.close();
    connections.wait().await;
}

struct Connection<S: ConnectionSession> {
    framed: Framed<TcpStream, S::Codec>,
    session: S,
    gateway: Arc<dyn DeviceGateway>,
    config: DriverConfig,
    peer: SocketAddr,
}

/// Whether the connection goes on after a step.
enum Flow {
    Continue,
    Close,
}

impl<S: ConnectionSession> Connection<S> {
    async fn run(mut self, stop: CancellationToken) {
        let protocol = S::PROTOCOL.as_str();
        metrics::gauge!(metric_names::CONNECTIONS_OPEN, "protocol" => protocol).increment(1.0);
        debug!("device connected");
        let mut idle_deadline = Instant::now() + self.config.idle_timeout;
        loop {
            let item = tokio::select! {
                () = stop.cancelled() => {
                    debug!("closing device connection for shutdown");
                    break;
                }
                () = sleep_until(idle_deadline) => {
                    info!(idle_timeout_s = self.config.idle_timeout.as_secs_f64(), "closing idle device connection");
                    break;
                }
                item = self.framed.next() => item,
            };
            let item = match item {
                None => {
                    debug!("device closed the connection");
                    break;
                }
                Some(Err(error)) => {
                    debug!(%error, "device connection read failed");
                    break;
                }
                Some(Ok(item)) => item,
            };
            match self.session.on_item(item, Instant::now().into_std()) {
                Incoming::Skipped { reason, bytes } => {
                    metrics::counter!(metric_names::FRAMES_REFUSED, "protocol" => protocol, "reason" => reason).increment(1);
                    debug!(reason, bytes, "skipped bytes from device");
                }
                Incoming::Step(step) => {
                    // Only real frames count as activity: a peer trickling garbage is idle.
                    idle_deadline = Instant::now() + self.config.idle_timeout;
                    metrics::counter!(metric_names::FRAMES_RECEIVED, "protocol" => protocol)
                        .increment(1);
                    if let Flow::Close = self.execute(step).await {
                        break;
                    }
                }
            }
        }
        metrics::gauge!(metric_names::CONNECTIONS_OPEN, "protocol" => protocol).decrement(1.0);
        debug!(peer = %self.peer, "device connection closed");
    }

    async fn execute(&mut self, mut step: Step<S::Reply>) -> Flow {
        let protocol = S::PROTOCOL.as_str();
        loop {
            step = match step {
                Step::Reply(replies) => return self.send(replies).await,
                Step::Refuse { reason, replies } => {
                    metrics::counter!(metric_names::FRAMES_REFUSED, "protocol" => protocol, "reason" => reason).increment(1);
                    debug!(reason, "refused device frame");
                    return self.send(replies).await;
                }
                Step::Close { reason, replies } => {
                    let _ = self.send(replies).await;
                    info!(reason, "closing device connection");
                    return Flow::Close;
                }
                Step::Resolve { device_id } => {
                    let answer = timeout(
                        self.config.gateway_timeout,
                        self.gateway.resolve_device(S::PROTOCOL, &device_id),
                    )
                    .await
                    .unwrap_or(Err(GatewayError::Unavailable));
                    match &answer {
                        Ok(Some(_)) => {
                            tracing::Span::current().record("device_id", device_id.as_str());
                            info!(device_id, "device authenticated");
                        }
                        Ok(None) => info!(device_id, "unknown device refused"),
                        Err(error) => warn!(device_id, %error, "device lookup failed"),
                    }
                    self.session.resolved(answer)
                }
                Step::Submit {
                    device,
                    positions,
                    live,
                } => {
                    let count = positions.len();
                    let answer = timeout(
                        self.config.gateway_timeout,
                        self.gateway.submit_positions(&device, positions, live),
                    )
                    .await
                    .unwrap_or(Err(GatewayError::Unavailable));
                    match &answer {
                        Ok(outcome) => {
                            metrics::counter!(metric_names::POSITIONS_SUBMITTED, "protocol" => protocol, "live" => if live { "true" } else { "false" })
                                .increment(count as u64);
                            debug!(
                                count,
                                live,
                                accepted = outcome.accepted,
                                rejected = outcome.rejected,
                                "positions submitted"
                            );
                        }
                        Err(error) => warn!(count, live, %error, "position submission failed"),
                    }
                    self.session.submitted(answer)
                }
            };
        }
    }

    async fn send(&mut self, replies: Vec<S::Reply>) -> Flow {
        if replies.is_empty() {
            return Flow::Continue;
        }
        let framed = &mut self.framed;
        let write = async {
            for reply in replies {
                framed.feed(reply).await?;
            }
            framed.flush().await
        };
        match timeout(self.config.write_timeout, write).await {
            Ok(Ok(())) => Flow::Continue,
            Ok(Err(error)) => {
                debug!(%error, "write to device failed");
                Flow::Close
            }
            Err(_) => {
                info!("device stopped reading; closing");
                Flow::Close
            }
        }
    }
}
