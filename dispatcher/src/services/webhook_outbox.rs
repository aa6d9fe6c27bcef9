//! Outgoing webhooks, wired to the server: which events become which webhooks, the
//! outbox the delivery worker reads, and the per-provider signing secrets.
//!
//! Nothing on the dispatch path sends a webhook. Every change is already an event in
//! the append-only log, so the [`WebhookRouter`] reads the log after a stored cursor and
//! turns the events providers care about into outbox rows (`offer.created`,
//! `offer.withdrawn`, `offer.expired`, `case.cancelled`, `case.updated`). Every instance
//! may run it: a delivery is unique per (event, provider, type), so a second instance
//! deriving the same one adds nothing. The delivery worker of `provider-adapters` then
//! claims due rows ([`StoreOutbox`]), signs and sends them, retries with backoff within
//! the deadline (an offer's expiry; [`WebhookSettings::case_ttl`] for case events), and
//! dead-letters what fails, which appends `webhook_dead_lettered` to the case timeline.
//!
//! Secrets are not stored: each is HMAC(server secret, provider id ‖ generation), shown
//! to the admin once when the provider is created or its secret rotated. During
//! [`WebhookSettings::rotation_grace`] after a rotation, deliveries are signed with the
//! new and the previous secret, so the provider can switch without losing a webhook.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use domain::ports::{NewWebhook, Store, StoreError, WebhookAttempt};
use domain::{Clock, Event, EventKind, OfferState, Provider, ProviderId};
use provider_adapters::webhook::worker::{
    AttemptRecord, Delivery, OutboxError, Timestamp, WebhookOutbox,
};
use provider_adapters::webhook::{
    RetryPolicy, WebhookClient, WebhookClientConfig, WebhookSecret, WebhookWorker,
    WebhookWorkerConfig,
};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::config::Settings;
use crate::security::Keys;
use crate::services::fleet_ingest::FleetRegistry;
use crate::services::views::offer_view;

/// Events read per round.
const BATCH: u32 = 500;
/// How long the router waits behind a missing event id (an uncommitted PostgreSQL
/// transaction) before treating it as rolled back.
const GAP_TIMEOUT: Duration = Duration::from_secs(2);

/// The webhook settings, from the `RESCUE_WEBHOOK_…` variables.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The HTTP client's settings (timeouts, loopback switch).
    pub client: WebhookClientConfig,
    /// The worker's settings (batch, concurrency, retry budget).
    pub worker: WebhookWorkerConfig,
    /// Deadline of a case webhook after its event.
    pub case_ttl: chrono::Duration,
    /// How long the previous secret still signs after a rotation.
    pub rotation_grace: chrono::Duration,
    /// How often the router reads the event log.
    pub router_poll: Duration,
}

impl WebhookSettings {
    /// From the resolved settings.
    pub fn from_settings(settings: &Settings) -> WebhookSettings {
        let client = WebhookClientConfig {
            connect_timeout_ms: settings.webhook_timeout_ms.clamp(1, 3_000),
            request_timeout_ms: settings.webhook_timeout_ms.max(1),
            allow_loopback: settings.webhook_allow_loopback,
            ..WebhookClientConfig::default()
        };
        let worker = WebhookWorkerConfig {
            batch_size: 32,
            concurrency: settings.webhook_concurrency.max(1),
            poll_interval_ms: settings.webhook_poll_ms.max(1),
            retry: RetryPolicy {
                base_delay_ms: settings.webhook_retry_base_ms.max(1),
                max_delay_ms: settings
                    .webhook_retry_max_ms
                    .max(settings.webhook_retry_base_ms.max(1)),
                max_attempts: settings.webhook_max_attempts.max(1),
            },
        };
        WebhookSettings {
            client,
            worker,
            case_ttl: chrono::Duration::seconds(
                i64::try_from(settings.webhook_case_ttl_s).unwrap_or(i64::MAX / 1_000_000),
            ),
            rotation_grace: chrono::Duration::hours(
                i64::try_from(settings.webhook_secret_grace_h).unwrap_or(24 * 365),
            ),
            router_poll: Duration::from_millis(settings.stream_poll_ms.max(10)),
        }
    }
}

/// The secrets a delivery to `provider` is signed with at `now`: the current one, and
/// the previous one during the grace period after a rotation.
pub fn signing_secrets(
    keys: &Keys,
    provider: &Provider,
    now: Timestamp,
    grace: chrono::Duration,
) -> Vec<String> {
    let generation = provider.webhook_secret_generation;
    let mut secrets = vec![keys.webhook_secret(provider.id, generation)];
    if let Some(rotated_at) = provider.webhook_secret_rotated_at
        && generation > 1
        && now < rotated_at + grace
    {
        secrets.push(keys.webhook_secret(provider.id, generation - 1));
    }
    secrets
}

/// Builds the delivery worker (not yet running).
pub fn build_worker(
    store: Arc<dyn Store>,
    keys: Arc<Keys>,
    clock: Arc<dyn Clock>,
    settings: &WebhookSettings,
) -> anyhow::Result<Arc<WebhookWorker>> {
    provider_adapters::webhook::client::install_ring_crypto_provider();
    let client = WebhookClient::new(&settings.client)?;
    let outbox = Arc::new(StoreOutbox {
        store,
        keys,
        clock: clock.clone(),
        rotation_grace: settings.rotation_grace,
        lease: chrono::Duration::milliseconds(
            i64::try_from(settings.client.request_timeout_ms).unwrap_or(60_000) + 30_000,
        ),
    });
    Ok(Arc::new(
        WebhookWorker::new(outbox, client, settings.worker)
            .with_clock(Arc::new(WorkerClock(clock))),
    ))
}

struct WorkerClock(Arc<dyn Clock>);

impl provider_adapters::webhook::Clock for WorkerClock {
    fn now(&self) -> Timestamp {
        self.0.now()
    }
}

/// The outbox over the store: claims, attempt log, outcome.
pub struct StoreOutbox {
    store: Arc<dyn Store>,
    keys: Arc<Keys>,
    clock: Arc<dyn Clock>,
    rotation_grace: chrono::Duration,
    lease: chrono::Duration,
}

fn unavailable(error: StoreError) -> OutboxError {
    OutboxError::Unavailable(error.to_string())
}

fn delivery_id(id: &str) -> Result<uuid::Uuid, OutboxError> {
    id.parse()
        .map_err(|_| OutboxError::Unavailable(format!("not a delivery id: {id}")))
}

#[async_trait::async_trait]
impl WebhookOutbox for StoreOutbox {
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<Delivery>, OutboxError> {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let claimed = self
            .store
            .claim_webhooks(now, limit, now + self.lease)
            .await
            .map_err(unavailable)?;
        let mut deliveries = Vec::with_capacity(claimed.len());
        for row in claimed {
            let provider = self
                .store
                .get_provider(row.provider_id)
                .await
                .map_err(unavailable)?;
            let secrets = match provider {
                Some(provider) => {
                    signing_secrets(&self.keys, &provider, self.clock.now(), self.rotation_grace)
                }
                None => Vec::new(),
            };
            let secrets = secrets
                .into_iter()
                .filter_map(|secret| WebhookSecret::new(secret.into_bytes()).ok())
                .collect();
            deliveries.push(Delivery {
                id: row.id.to_string(),
                provider_id: row.provider_id.to_string(),
                url: row.url,
                secrets,
                event: row.event,
                body: Bytes::from(row.body),
                attempts: row.attempts,
                deadline: row.deadline,
            });
        }
        Ok(deliveries)
    }

    async fn record_attempt(
        &self,
        id: &str,
        attempt: AttemptRecord,
        next_attempt_at: Option<Timestamp>,
    ) -> Result<(), OutboxError> {
        let attempt = WebhookAttempt {
            attempt: attempt.attempt,
            started_at: attempt.started_at,
            outcome: attempt.outcome.as_str().to_owned(),
            status_code: attempt.status_code,
            error: attempt.error,
            latency_ms: attempt.latency_ms,
            response_excerpt: attempt.response_excerpt,
        };
        self.store
            .record_webhook_attempt(delivery_id(id)?, &attempt, next_attempt_at)
            .await
            .map_err(unavailable)
    }

    async fn dead_letter(&self, id: &str, reason: &str, at: Timestamp) -> Result<(), OutboxError> {
        tracing::warn!(delivery_id = id, reason, "webhook dead-lettered");
        self.store
            .webhook_dead_letter(delivery_id(id)?, reason, at)
            .await
            .map_err(unavailable)
    }

    async fn delivered(&self, id: &str, at: Timestamp) -> Result<(), OutboxError> {
        self.store
            .webhook_delivered(delivery_id(id)?, at)
            .await
            .map_err(unavailable)
    }
}

/// The event kinds that can become a webhook.
fn wanted(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::OfferSent
            | EventKind::OfferWithdrawn
            | EventKind::OfferExpired
            | EventKind::StatusChanged
    )
}

/// Turns the event log into outbox rows.
pub struct WebhookRouter {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    registry: Arc<FleetRegistry>,
    settings: WebhookSettings,
    wake: Arc<Notify>,
}

impl WebhookRouter {
    /// A router over the event log in `store`; `wake` is the delivery worker's waker.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        registry: Arc<FleetRegistry>,
        settings: WebhookSettings,
        wake: Arc<Notify>,
    ) -> WebhookRouter {
        WebhookRouter {
            store,
            clock,
            registry,
            settings,
            wake,
        }
    }

    /// Reads the log every poll period until aborted.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(self.settings.router_poll);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut gap_seen_at = None;
            let mut failing = false;
            loop {
                ticker.tick().await;
                match self.round(&mut gap_seen_at).await {
                    Ok(_) if failing => {
                        failing = false;
                        tracing::info!("webhook router recovered");
                    }
                    Ok(_) => {}
                    Err(error) if !failing => {
                        failing = true;
                        tracing::warn!(%error, "webhook router failed; retrying");
                    }
                    Err(_) => {}
                }
            }
        })
    }

    /// Turns what is new in the log into deliveries; returns how many were queued.
    pub async fn round(&self, gap_seen_at: &mut Option<Instant>) -> Result<u64, StoreError> {
        let store = &self.store;
        let mut queued = 0;
        loop {
            let cursor = store.webhook_cursor().await?;
            let events = store.events_after(cursor, BATCH).await?;
            let fetched = events.len();
            let mut expected = cursor + 1;
            let mut last = cursor;
            let mut deliveries = Vec::new();
            for event in &events {
                if event.id != expected {
                    let since = *gap_seen_at.get_or_insert_with(Instant::now);
                    if since.elapsed() < GAP_TIMEOUT {
                        break;
                    }
                }
                *gap_seen_at = None;
                expected = event.id + 1;
                last = event.id;
                if wanted(event.kind) {
                    deliveries.extend(self.derive(event).await?);
                }
            }
            if !deliveries.is_empty() {
                queued += store.enqueue_webhooks(&deliveries).await?;
                self.wake.notify_one();
            }
            if last > cursor {
                store.advance_webhook_cursor(last).await?;
            }
            if fetched < BATCH as usize || last == cursor {
                return Ok(queued);
            }
        }
    }

    /// The webhooks one event gives rise to.
    async fn derive(&self, event: &Event) -> Result<Vec<NewWebhook>, StoreError> {
        let now = self.clock.now();
        match event.kind {
            EventKind::OfferSent | EventKind::OfferWithdrawn | EventKind::OfferExpired => {
                let name = match event.kind {
                    EventKind::OfferSent => "offer.created",
                    EventKind::OfferWithdrawn => "offer.withdrawn",
                    _ => "offer.expired",
                };
                let Some(offer_id) = event.data["offer_id"]
                    .as_str()
                    .and_then(|id| id.parse::<uuid::Uuid>().ok())
                else {
                    return Ok(Vec::new());
                };
                let Some(offer) = self.store.get_offer(domain::OfferId(offer_id)).await? else {
                    return Ok(Vec::new());
                };
                let Some(provider) = self.provider_with_url(offer.provider_id).await? else {
                    return Ok(Vec::new());
                };
                let mut data = match offer_view(self.store.as_ref(), &self.registry, &offer).await {
                    Ok(view) => serde_json::to_value(view).unwrap_or(Value::Null),
                    Err(_) => return Ok(Vec::new()),
                };
                if let Some(reason) = event.data.get("reason") {
                    data["reason"] = reason.clone();
                }
                // An offer webhook is useless once the offer can no longer be answered;
                // a withdrawal or expiry is worth a little longer.
                let deadline = if event.kind == EventKind::OfferSent {
                    offer.expires_at
                } else {
                    event.at.max(now) + self.settings.case_ttl
                };
                Ok(vec![self.webhook(event, &provider, name, data, deadline)])
            }
            EventKind::StatusChanged => {
                let Some(to) = event.data["to"].as_str() else {
                    return Ok(Vec::new());
                };
                let name = if to == "cancelled" {
                    "case.cancelled"
                } else {
                    "case.updated"
                };
                let offers = self.store.case_offers(event.case_id).await?;
                let mut providers: Vec<(ProviderId, domain::VehicleId)> = offers
                    .iter()
                    .filter(|offer| {
                        offer.state == OfferState::Accepted
                            && offer
                                .released_at
                                .is_none_or(|released| released >= event.at)
                    })
                    .map(|offer| (offer.provider_id, offer.vehicle_id))
                    .collect();
                let mut seen = std::collections::HashSet::new();
                providers.retain(|(provider, _)| seen.insert(*provider));
                let mut webhooks = Vec::new();
                for (provider_id, vehicle) in providers {
                    let Some(provider) = self.provider_with_url(provider_id).await? else {
                        continue;
                    };
                    let vehicle_id = match self.registry.meta(vehicle) {
                        Some(meta) => meta.external_id,
                        None => self
                            .store
                            .get_vehicle(vehicle)
                            .await?
                            .map(|vehicle| vehicle.vehicle_id)
                            .unwrap_or_default(),
                    };
                    let mut data = json!({
                        "case_id": event.case_id,
                        "vehicle_id": vehicle_id,
                        "status": to,
                        "previous_status": event.data["from"],
                        "reason": event.data["reason"],
                    });
                    if let Some(promised) = event.data.get("promised_arrival") {
                        data["promised_arrival"] = promised.clone();
                    }
                    let deadline = event.at.max(now) + self.settings.case_ttl;
                    webhooks.push(self.webhook(event, &provider, name, data, deadline));
                }
                Ok(webhooks)
            }
            _ => Ok(Vec::new()),
        }
    }

    async fn provider_with_url(&self, id: ProviderId) -> Result<Option<Provider>, StoreError> {
        Ok(self
            .store
            .get_provider(id)
            .await?
            .filter(|provider| provider.webhook_url.is_some()))
    }

    fn webhook(
        &self,
        event: &Event,
        provider: &Provider,
        name: &str,
        data: Value,
        deadline: Timestamp,
    ) -> NewWebhook {
        let id = uuid::Uuid::now_v7();
        let body = json!({
            "id": id,
            "event": name,
            "created_at": event.at,
            "data": data,
        });
        NewWebhook {
            id,
            provider_id: provider.id,
            event: name.to_owned(),
            case_id: Some(event.case_id),
            source_event_id: event.id,
            url: provider.webhook_url.clone().unwrap_or_default(),
            body: body.to_string(),
            deadline,
            created_at: self.clock.now(),
        }
    }
}
