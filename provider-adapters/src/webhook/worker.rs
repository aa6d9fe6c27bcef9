//! The delivery loop, over the [`WebhookOutbox`] port the server implements.
//!
//! The server never sends a webhook itself: it writes a [`Delivery`] row into its outbox
//! (in the same transaction as the offer or case change, so none is lost) and returns at
//! once. This worker claims due deliveries, sends them concurrently (bounded), signs each
//! attempt at send time, records every attempt, and then either marks the delivery
//! delivered, schedules the next try ([`RetryPolicy`]), or dead-letters it for agents to
//! see.
//!
//! Delivery is at least once: a crash between the POST and `delivered` leaves the claim
//! to expire, and the delivery is sent again with the same `Rescue-Webhook-Id`.
//!
//! Time is injected ([`Clock`]); [`WebhookWorker::run_once`] does one round at a given
//! time, for tests, and [`WebhookWorker::run`] loops until shutdown.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{FutureExt, StreamExt};
use serde::Deserialize;
use tokio::sync::Notify;

use super::client::{SendOutcome, SendResult, WebhookClient};
use super::metric_names;
use super::retry::{GiveUpReason, JitterSource, RetryDecision, RetryPolicy, SplitMix64};
use super::sign::{SignedHeaders, WebhookSecret};

/// A UTC instant.
pub type Timestamp = DateTime<Utc>;

/// One webhook to deliver to one provider, as stored in the outbox.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The delivery id: sent as `Rescue-Webhook-Id`, the same on every retry, so it must
    /// be header-safe (visible ASCII). The body should carry it too, as `id`.
    pub id: String,
    /// The provider, opaque to the worker (for logs).
    pub provider_id: String,
    /// The provider's webhook URL as registered; validated again before each attempt.
    pub url: String,
    /// Signing secrets, plain (the server unwraps them): usually one; the current and
    /// the next one while the provider rotates.
    pub secrets: Vec<WebhookSecret>,
    /// The event type, e.g. `offer.created`; sent as `Rescue-Webhook-Event`.
    pub event: String,
    /// The JSON body, exactly the bytes to send and sign.
    pub body: Bytes,
    /// Attempts already made.
    pub attempts: u32,
    /// No attempt is made, and no retry scheduled, at or after this time. For an offer,
    /// its `expires_at`.
    pub deadline: Timestamp,
}

/// How an attempt ended, as a fixed vocabulary (a column value and a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptOutcome {
    /// 2xx.
    Delivered,
    /// Any other status, 3xx included.
    HttpError,
    /// No answer in time.
    Timeout,
    /// Connection or protocol failure.
    NetworkError,
    /// Refused by the SSRF guard, or the delivery cannot be signed: nothing was sent.
    Refused,
}

impl AttemptOutcome {
    /// `delivered`, `http_error`, `timeout`, `network_error` or `refused`.
    ///
    /// ```
    /// use provider_adapters::webhook::worker::AttemptOutcome;
    /// assert_eq!(AttemptOutcome::HttpError.as_str(), "http_error");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::HttpError => "http_error",
            AttemptOutcome::Timeout => "timeout",
            AttemptOutcome::NetworkError => "network_error",
            AttemptOutcome::Refused => "refused",
        }
    }
}

/// One line of the delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When the attempt started (and was signed).
    pub started_at: Timestamp,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The HTTP status, when there was an answer.
    pub status_code: Option<u16>,
    /// What went wrong, when something did (lowercase, safe to show to agents).
    pub error: Option<String>,
    /// Time to the response head, or to the failure, in milliseconds.
    pub latency_ms: u64,
    /// The start of a non-2xx response body.
    pub response_excerpt: Option<String>,
}

/// The outbox could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboxError {
    /// Storage is down; the worker tries again on its next round.
    #[error("webhook outbox unavailable: {0}")]
    Unavailable(String),
}

/// The port the server implements over its outbox table.
///
/// # Example
///
/// An outbox that never has anything due:
///
/// ```
/// use provider_adapters::webhook::worker::{AttemptRecord, Delivery, OutboxError, Timestamp, WebhookOutbox};
///
/// struct Empty;
///
/// #[async_trait::async_trait]
/// impl WebhookOutbox for Empty {
///     async fn due(&self, _now: Timestamp, _limit: usize) -> Result<Vec<Delivery>, OutboxError> {
///         Ok(Vec::new())
///     }
///     async fn record_attempt(&self, _id: &str, _attempt: AttemptRecord, _next: Option<Timestamp>) -> Result<(), OutboxError> {
///         Ok(())
///     }
///     async fn dead_letter(&self, _id: &str, _reason: &str, _at: Timestamp) -> Result<(), OutboxError> {
///         Ok(())
///     }
///     async fn delivered(&self, _id: &str, _at: Timestamp) -> Result<(), OutboxError> {
///         Ok(())
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait WebhookOutbox: Send + Sync {
    /// Deliveries due at `now` (pending, next attempt at or before `now`), at most
    /// `limit`, claimed so that other workers and instances skip them until they are
    /// recorded or the claim expires (`FOR UPDATE SKIP LOCKED` plus a lease column).
    async fn due(&self, now: Timestamp, limit: usize) -> Result<Vec<Delivery>, OutboxError>;

    /// One attempt happened: append it to the delivery log, bump the attempt count,
    /// release the claim, and set the next try (`None`: no further try from this
    /// attempt; `delivered` or `dead_letter` follows).
    async fn record_attempt(
        &self,
        delivery_id: &str,
        attempt: AttemptRecord,
        next_attempt_at: Option<Timestamp>,
    ) -> Result<(), OutboxError>;

    /// The budget is spent or retrying cannot help: dead-letter the delivery, visible to
    /// agents with `reason`.
    async fn dead_letter(
        &self,
        delivery_id: &str,
        reason: &str,
        at: Timestamp,
    ) -> Result<(), OutboxError>;

    /// The provider answered 2xx.
    async fn delivered(&self, delivery_id: &str, at: Timestamp) -> Result<(), OutboxError>;
}

/// Where the worker gets the time.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Utc::now()
    }
}

/// Any `Fn() -> Timestamp` is a clock, e.g. a test's fixed time.
impl<F> Clock for F
where
    F: Fn() -> Timestamp + Send + Sync,
{
    fn now(&self) -> Timestamp {
        self()
    }
}

/// The worker's settings. Part of the webhook configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookWorkerConfig {
    /// Deliveries claimed per round.
    pub batch_size: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Pause between rounds when nothing was due, in milliseconds (a wake-up from
    /// [`WebhookWorker::waker`] cuts it short).
    pub poll_interval_ms: u64,
    /// Backoff and attempt budget.
    pub retry: RetryPolicy,
}

impl Default for WebhookWorkerConfig {
    fn default() -> Self {
        Self {
            batch_size: 32,
            concurrency: 8,
            poll_interval_ms: 1_000,
            retry: RetryPolicy::default(),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoundReport {
    /// Deliveries claimed.
    pub claimed: usize,
    /// Answered 2xx.
    pub delivered: usize,
    /// Failed, retry scheduled.
    pub retrying: usize,
    /// Dead-lettered.
    pub dead_lettered: usize,
    /// The outbox failed while recording the result (the claim will expire and the
    /// delivery be retried).
    pub outbox_errors: usize,
}

enum Fate {
    Delivered,
    Retrying,
    DeadLettered,
}

/// The delivery worker. Build once, then `tokio::spawn` its [`WebhookWorker::run`].
pub struct WebhookWorker {
    outbox: Arc<dyn WebhookOutbox>,
    client: WebhookClient,
    clock: Arc<dyn Clock>,
    config: WebhookWorkerConfig,
    jitter: Mutex<Box<dyn JitterSource>>,
    wake: Arc<Notify>,
}

impl WebhookWorker {
    /// A worker on the system clock with random jitter.
    ///
    /// ```no_run
    /// # async fn wire(outbox: std::sync::Arc<dyn provider_adapters::webhook::WebhookOutbox>) -> anyhow::Result<()> {
    /// use provider_adapters::webhook::{WebhookClient, WebhookClientConfig, WebhookWorker, WebhookWorkerConfig};
    /// let client = WebhookClient::new(&WebhookClientConfig::default())?;
    /// let worker = std::sync::Arc::new(WebhookWorker::new(outbox, client, WebhookWorkerConfig::default()));
    /// let wake = worker.waker(); // call wake.notify_one() after enqueueing, to skip the poll wait
    /// tokio::spawn(async move { worker.run(std::future::pending::<()>()).await });
    /// # Ok(()) }
    /// ```
    pub fn new(
        outbox: Arc<dyn WebhookOutbox>,
        client: WebhookClient,
        config: WebhookWorkerConfig,
    ) -> Self {
        Self {
            outbox,
            client,
            clock: Arc::new(SystemClock),
            config,
            jitter: Mutex::new(Box::new(SplitMix64::from_entropy())),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Replaces the clock (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces the jitter source (tests).
    pub fn with_jitter(mut self, jitter: impl JitterSource + 'static) -> Self {
        self.jitter = Mutex::new(Box::new(jitter));
        self
    }

    /// A handle the server notifies after enqueueing a delivery, so it goes out without
    /// waiting for the next poll.
    pub fn waker(&self) -> Arc<Notify> {
        Arc::clone(&self.wake)
    }

    /// Runs rounds until `shutdown` completes: a round as soon as the previous one filled
    /// its batch, otherwise after the poll interval or a wake-up. A round in progress is
    /// finished before returning (its claims are not abandoned); every attempt is bounded
    /// by the client's request timeout.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let poll_interval = Duration::from_millis(self.config.poll_interval_ms.max(1));
        loop {
            let full_batch = match self.run_once(self.clock.now()).await {
                Ok(report) => report.claimed >= self.config.batch_size.max(1),
                Err(error) => {
                    tracing::warn!(%error, "webhook round failed");
                    false
                }
            };
            if full_batch {
                // More may be due: go again at once, unless we are asked to stop.
                if (&mut shutdown).now_or_never().is_some() {
                    return;
                }
                continue;
            }
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(poll_interval) => {}
            }
        }
    }

    /// One round at `now`: claims the due deliveries and attempts each of them, at most
    /// `concurrency` at a time. Fails only when the claim itself fails.
    pub async fn run_once(&self, now: Timestamp) -> Result<RoundReport, OutboxError> {
        let deliveries = self.outbox.due(now, self.config.batch_size.max(1)).await?;
        let mut report = RoundReport {
            claimed: deliveries.len(),
            ..RoundReport::default()
        };
        let mut fates = futures::stream::iter(deliveries)
            .map(|delivery| self.attempt(delivery))
            .buffer_unordered(self.config.concurrency.max(1));
        while let Some(fate) = fates.next().await {
            match fate {
                Ok(Fate::Delivered) => report.delivered += 1,
                Ok(Fate::Retrying) => report.retrying += 1,
                Ok(Fate::DeadLettered) => report.dead_lettered += 1,
                Err(error) => {
                    tracing::warn!(%error, "webhook outcome not recorded");
                    report.outbox_errors += 1;
                }
            }
        }
        Ok(report)
    }

    #[tracing::instrument(skip_all, fields(delivery_id = %delivery.id, provider_id = %delivery.provider_id, event = %delivery.event))]
    async fn attempt(&self, delivery: Delivery) -> Result<Fate, OutboxError> {
        let attempt_number = delivery.attempts.saturating_add(1);
        let started_at = self.clock.now();
        if started_at >= delivery.deadline {
            return self
                .give_up(
                    &delivery,
                    GiveUpReason::DeadlinePassed,
                    "deadline passed before the attempt",
                    started_at,
                )
                .await;
        }
        let outcome = match self.signed_headers(&delivery, started_at) {
            Ok(headers) => {
                self.client
                    .post(&delivery.url, headers, delivery.body.clone())
                    .await
            }
            Err(reason) => SendOutcome {
                result: SendResult::Refused { reason },
                latency: Duration::ZERO,
            },
        };
        let finished_at = self.clock.now();
        let record = attempt_record(attempt_number, started_at, &outcome);
        metrics::counter!(metric_names::ATTEMPTS, "outcome" => record.outcome.as_str())
            .increment(1);
        metrics::histogram!(metric_names::ATTEMPT_DURATION, "outcome" => record.outcome.as_str())
            .record(outcome.latency.as_secs_f64());
        let summary = summarise(&record);
        match outcome.result {
            SendResult::Delivered { .. } => {
                self.outbox
                    .record_attempt(&delivery.id, record, None)
                    .await?;
                self.outbox.delivered(&delivery.id, finished_at).await?;
                tracing::debug!(attempt = attempt_number, "webhook delivered");
                Ok(Fate::Delivered)
            }
            SendResult::Refused { .. } => {
                self.outbox
                    .record_attempt(&delivery.id, record, None)
                    .await?;
                self.give_up(&delivery, GiveUpReason::Permanent, &summary, finished_at)
                    .await
            }
            SendResult::Rejected { .. } | SendResult::Failed { .. } => {
                let fraction = self.next_fraction();
                let decision = self.config.retry.decide(
                    attempt_number,
                    finished_at,
                    delivery.deadline,
                    fraction,
                );
                match decision {
                    RetryDecision::RetryAt(next_attempt_at) => {
                        self.outbox
                            .record_attempt(&delivery.id, record, Some(next_attempt_at))
                            .await?;
                        tracing::debug!(attempt = attempt_number, %next_attempt_at, failure = %summary, "webhook attempt failed, retrying");
                        Ok(Fate::Retrying)
                    }
                    RetryDecision::GiveUp(reason) => {
                        self.outbox
                            .record_attempt(&delivery.id, record, None)
                            .await?;
                        let detail = format!("{attempt_number} attempt(s), last: {summary}");
                        self.give_up(&delivery, reason, &detail, finished_at).await
                    }
                }
            }
        }
    }

    fn signed_headers(
        &self,
        delivery: &Delivery,
        signed_at: Timestamp,
    ) -> Result<http::HeaderMap, String> {
        if delivery.secrets.is_empty() {
            return Err("no signing secret for this provider".to_owned());
        }
        SignedHeaders::sign(
            &delivery.id,
            &delivery.event,
            signed_at,
            &delivery.body,
            &delivery.secrets,
        )
        .to_header_map()
        .map_err(|error| error.to_string())
    }

    async fn give_up(
        &self,
        delivery: &Delivery,
        reason: GiveUpReason,
        detail: &str,
        at: Timestamp,
    ) -> Result<Fate, OutboxError> {
        let text = format!("{}: {detail}", reason.as_str());
        metrics::counter!(metric_names::DEAD_LETTERS, "reason" => reason.as_str()).increment(1);
        tracing::info!(reason = %text, "webhook dead-lettered");
        self.outbox.dead_letter(&delivery.id, &text, at).await?;
        Ok(Fate::DeadLettered)
    }

    fn next_fraction(&self) -> f64 {
        match self.jitter.lock() {
            Ok(mut jitter) => jitter.next_fraction(),
            // A panic elsewhere poisoned the lock; the source itself is still usable.
            Err(poisoned) => poisoned.into_inner().next_fraction(),
        }
    }
}

fn attempt_record(attempt: u32, started_at: Timestamp, outcome: &SendOutcome) -> AttemptRecord {
    let latency_ms = u64::try_from(outcome.latency.as_millis()).unwrap_or(u64::MAX);
    let mut record = AttemptRecord {
        attempt,
        started_at,
        outcome: AttemptOutcome::Delivered,
        status_code: None,
        error: None,
        latency_ms,
        response_excerpt: None,
    };
    match &outcome.result {
        SendResult::Delivered { status } => record.status_code = Some(*status),
        SendResult::Rejected {
            status,
            body_excerpt,
        } => {
            record.outcome = AttemptOutcome::HttpError;
            record.status_code = Some(*status);
            record.response_excerpt = (!body_excerpt.is_empty()).then(|| body_excerpt.clone());
        }
        SendResult::Failed { error, timed_out } => {
            record.outcome = if *timed_out {
                AttemptOutcome::Timeout
            } else {
                AttemptOutcome::NetworkError
            };
            record.error = Some(error.clone());
        }
        SendResult::Refused { reason } => {
            record.outcome = AttemptOutcome::Refused;
            record.error = Some(reason.clone());
        }
    }
    record
}

/// `http 503`, `timed out`, or the refusal reason: for dead-letter reasons and logs.
fn summarise(record: &AttemptRecord) -> String {
    match (&record.status_code, &record.error) {
        (Some(status), _) => format!("http {status}"),
        (None, Some(error)) => error.clone(),
        (None, None) => record.outcome.as_str().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(result: SendResult) -> SendOutcome {
        SendOutcome {
            result,
            latency: Duration::from_millis(42),
        }
    }

    #[test]
    fn a_redirect_is_recorded_as_an_http_error_with_its_status() {
        let record = attempt_record(
            2,
            DateTime::UNIX_EPOCH,
            &outcome(SendResult::Rejected {
                status: 302,
                body_excerpt: String::new(),
            }),
        );
        assert_eq!(record.outcome, AttemptOutcome::HttpError);
        assert_eq!(record.status_code, Some(302));
        assert_eq!(record.response_excerpt, None);
        assert_eq!(record.latency_ms, 42);
        assert_eq!(record.attempt, 2);
        assert_eq!(summarise(&record), "http 302");
    }

    #[test]
    fn a_timeout_is_recorded_without_a_status() {
        let record = attempt_record(
            1,
            DateTime::UNIX_EPOCH,
            &outcome(SendResult::Failed {
                error: "timed out".to_owned(),
                timed_out: true,
            }),
        );
        assert_eq!(record.outcome, AttemptOutcome::Timeout);
        assert_eq!(record.status_code, None);
        assert_eq!(summarise(&record), "timed out");
    }

    #[test]
    fn a_refusal_keeps_its_reason() {
        let record = attempt_record(
            1,
            DateTime::UNIX_EPOCH,
            &outcome(SendResult::Refused {
                reason: "webhook address 127.0.0.1 is refused: loopback address".to_owned(),
            }),
        );
        assert_eq!(record.outcome, AttemptOutcome::Refused);
        assert!(summarise(&record).contains("loopback"));
    }
}
