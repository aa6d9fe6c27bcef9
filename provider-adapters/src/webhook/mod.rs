//! Outgoing webhooks to providers: `offer.created`, `offer.withdrawn`, `offer.expired`,
//! `case.cancelled`, `case.updated`, POSTed as JSON to each provider's `webhook_url`.
//!
//! One folder, the same split as the device adapters — pure logic apart from I/O, the
//! storage behind a port:
//! - [`sign`] (pure): the `Rescue-Webhook-*` headers, HMAC-SHA256 over
//!   `"<timestamp>.<body>"`, [`sign::verify`] for receivers, and the Python and
//!   Node.js verification snippets for the README;
//! - [`ssrf`] (pure, plus a resolver): webhook URL validation at registration, and the
//!   same address check after DNS resolution at connect time;
//! - [`retry`] (pure): exponential backoff with full jitter, bounded by attempts and by
//!   the delivery's deadline;
//! - [`client`] (I/O): the `reqwest` client — guarded resolver, no proxy, no redirects,
//!   timeouts, a capped response read, rustls with ring;
//! - [`worker`] (I/O): the delivery loop over the [`WebhookOutbox`] port the server
//!   implements.
//!
//! Dispatch never waits for a provider: the server writes a [`Delivery`] into its outbox
//! and returns; the worker does the rest in its own task.
//!
//! ```no_run
//! # async fn wire(outbox: std::sync::Arc<dyn provider_adapters::webhook::WebhookOutbox>) -> anyhow::Result<()> {
//! use provider_adapters::webhook::{
//!     UrlPolicy, WebhookClient, WebhookClientConfig, WebhookWorker, WebhookWorkerConfig,
//! };
//! // At registration (the provider API): refuse unsafe URLs with a 422 and the message.
//! let url = UrlPolicy::STRICT.validate("https://dispatch.towco.example.com/rescue-hooks")?;
//!
//! // At startup: one worker task.
//! let client = WebhookClient::new(&WebhookClientConfig::default())?;
//! let worker = std::sync::Arc::new(WebhookWorker::new(outbox, client, WebhookWorkerConfig::default()));
//! tokio::spawn(async move { worker.run(std::future::pending::<()>()).await });
//! # Ok(()) }
//! ```

pub mod client;
pub mod retry;
pub mod sign;
pub mod ssrf;
pub mod worker;

pub use client::{SendOutcome, SendResult, WebhookClient, WebhookClientConfig};
pub use retry::{GiveUpReason, RetryDecision, RetryPolicy};
pub use sign::{
    HEADER_EVENT, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, SignedHeaders, VerifyError,
    WebhookSecret, verify,
};
pub use ssrf::{AddressClass, GuardedResolver, UrlPolicy, UrlRefused, WebhookUrl};
pub use worker::{
    AttemptOutcome, AttemptRecord, Clock, Delivery, OutboxError, RoundReport, SystemClock,
    Timestamp, WebhookOutbox, WebhookWorker, WebhookWorkerConfig,
};

/// Metric names. Labels come from fixed vocabularies, never a provider or delivery id.
pub mod metric_names {
    /// Counter: webhook attempts, label `outcome` ([`AttemptOutcome::as_str`](super::AttemptOutcome::as_str)).
    pub const ATTEMPTS: &str = "webhook_attempts_total";
    /// Histogram: attempt duration in seconds, label `outcome`.
    pub const ATTEMPT_DURATION: &str = "webhook_attempt_duration_seconds";
    /// Counter: dead-lettered deliveries, label `reason`
    /// ([`GiveUpReason::as_str`](super::GiveUpReason::as_str)).
    pub const DEAD_LETTERS: &str = "webhook_dead_letters_total";
}
