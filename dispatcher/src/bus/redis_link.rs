//! The Redis side of the bus: one task publishes this instance's messages (batched, on a
//! reconnecting connection), one task subscribes on a dedicated connection and forwards
//! other instances' messages to the local subscribers, resubscribing after a failure.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use super::{BUS_RECEIVED, Envelope};

/// Most envelopes sent in one PUBLISH pipeline.
const BATCH: usize = 256;

pub(super) async fn start(
    url: &str,
    channel: String,
    instance: Uuid,
    queue: mpsc::Receiver<Envelope>,
    local: broadcast::Sender<Arc<Envelope>>,
) -> anyhow::Result<()> {
    let client = redis::Client::open(url).map_err(|error| anyhow::anyhow!("REDIS_URL: {error}"))?;
    let publisher = redis::aio::ConnectionManager::new(client.clone())
        .await
        .map_err(|error| anyhow::anyhow!("connecting to Redis: {error}"))?;
    tokio::spawn(publish_loop(publisher, channel.clone(), queue));
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    tokio::spawn(subscribe_loop(
        client,
        channel,
        instance,
        local,
        subscribed_tx,
    ));
    // Serve only once this instance hears the others.
    tokio::time::timeout(Duration::from_secs(10), subscribed)
        .await
        .map_err(|_| anyhow::anyhow!("subscribing to the Redis bus timed out"))?
        .map_err(|_| anyhow::anyhow!("the Redis bus subscriber stopped"))?;
    Ok(())
}

async fn publish_loop(
    mut connection: redis::aio::ConnectionManager,
    channel: String,
    mut queue: mpsc::Receiver<Envelope>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if queue.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        let mut pipeline = redis::pipe();
        for envelope in batch.drain(..) {
            match serde_json::to_string(&envelope) {
                Ok(text) => {
                    pipeline.cmd("PUBLISH").arg(&channel).arg(text).ignore();
                }
                Err(error) => tracing::error!(error = %error, "cannot encode a bus message"),
            }
        }
        if let Err(error) = pipeline.query_async::<()>(&mut connection).await {
            // The manager reconnects; these positions are superseded by the next ones.
            tracing::warn!(error = %error, "publishing to Redis failed");
            metrics::counter!(super::BUS_DROPPED).increment(1);
        }
    }
}

async fn subscribe_loop(
    client: redis::Client,
    channel: String,
    instance: Uuid,
    local: broadcast::Sender<Arc<Envelope>>,
    subscribed: tokio::sync::oneshot::Sender<()>,
) {
    let mut subscribed = Some(subscribed);
    let mut backoff = Duration::from_millis(100);
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    tracing::info!(channel = %channel, "subscribed to the Redis bus");
                    if let Some(subscribed) = subscribed.take() {
                        let _ = subscribed.send(());
                    }
                    let mut messages = pubsub.into_on_message();
                    while let Some(message) = messages.next().await {
                        let Ok(payload) = message.get_payload::<String>() else {
                            continue;
                        };
                        match serde_json::from_str::<Envelope>(&payload) {
                            Ok(envelope) if envelope.origin == instance => {}
                            Ok(envelope) => {
                                metrics::counter!(BUS_RECEIVED, "kind" => envelope.message.kind())
                                    .increment(1);
                                let _ = local.send(Arc::new(envelope));
                            }
                            Err(error) => {
                                tracing::warn!(error = %error, "undecodable bus message ignored")
                            }
                        }
                    }
                    tracing::warn!("the Redis bus subscription ended; resubscribing");
                }
                Err(error) => tracing::warn!(error = %error, "subscribing to the Redis bus failed"),
            },
            Err(error) => tracing::warn!(error = %error, "connecting to the Redis bus failed"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
