//! The HTTP client that sends webhooks, and nothing else.
//!
//! Built once and shared (it pools connections). What makes it fit for URLs chosen by
//! someone else:
//! - every request's URL is validated again ([`UrlPolicy::validate`]): IP literals never
//!   reach a resolver, and the policy may have changed since registration;
//! - names resolve through [`GuardedResolver`], which drops forbidden addresses;
//! - no proxy (a proxy would resolve the name itself and bypass the guard), no redirects
//!   (`redirect::Policy::none()`: a 3xx is an answer, and a failed attempt);
//! - connect and whole-request timeouts, and at most
//!   [`WebhookClientConfig::max_response_body_bytes`] of the response are read (an
//!   excerpt for the delivery log; the rest is dropped with the connection).
//!
//! TLS is rustls with the *ring* provider, installed as the process default if none is
//! installed yet (sqlx already links ring; aws-lc-rs would need cmake).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use serde::Deserialize;

use super::ssrf::{GuardedResolver, HostLookup, SystemLookup, UrlPolicy, is_forbidden_resolution};

/// The client's settings. Part of the webhook configuration; the `///` docs are the
/// user docs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookClientConfig {
    /// Time allowed for DNS and the TCP (and TLS) connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Time allowed for a whole attempt, connection included, in milliseconds. A slower
    /// answer is a failed attempt ("timed out") and is retried.
    pub request_timeout_ms: u64,
    /// At most this many bytes of a response body are read, for the delivery log.
    pub max_response_body_bytes: usize,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Let webhooks reach loopback addresses (`127.0.0.0/8`, `::1`, `localhost`), and
    /// nothing else private. Local testing only: never in production.
    pub allow_loopback: bool,
}

impl Default for WebhookClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 3_000,
            request_timeout_ms: 10_000,
            max_response_body_bytes: 2_048,
            user_agent: concat!("rescue-dispatch-webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
            allow_loopback: false,
        }
    }
}

impl WebhookClientConfig {
    /// The SSRF policy this configuration implies.
    ///
    /// ```
    /// use provider_adapters::webhook::client::WebhookClientConfig;
    /// use provider_adapters::webhook::ssrf::UrlPolicy;
    /// assert_eq!(WebhookClientConfig::default().url_policy(), UrlPolicy::STRICT);
    /// ```
    pub fn url_policy(&self) -> UrlPolicy {
        UrlPolicy {
            allow_loopback: self.allow_loopback,
        }
    }
}

/// The client could not be built (an invalid user agent, no TLS roots).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the webhook http client: {0}")]
pub struct ClientBuildError(#[from] reqwest::Error);

/// What one POST came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    /// A 2xx answer.
    Delivered {
        /// The status code.
        status: u16,
    },
    /// Any other answer, 3xx included (redirects are not followed).
    Rejected {
        /// The status code.
        status: u16,
        /// The start of the response body, lossily decoded.
        body_excerpt: String,
    },
    /// No answer: timeout, connection refused or reset, TLS failure.
    Failed {
        /// Lowercase description, safe to show to agents.
        error: String,
        /// The attempt ran out of time.
        timed_out: bool,
    },
    /// The SSRF guard refused the URL or every address it resolved to. No request was
    /// sent; retrying cannot help.
    Refused {
        /// Why, safe to show to agents and the provider.
        reason: String,
    },
}

/// A [`SendResult`] and how long it took (until the response head, or the failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    /// What happened.
    pub result: SendResult,
    /// Wall time of the attempt.
    pub latency: Duration,
}

/// The webhook HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
    policy: UrlPolicy,
    max_response_body_bytes: usize,
}

impl fmt::Debug for WebhookClient {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("WebhookClient")
            .field("policy", &self.policy)
            .field("max_response_body_bytes", &self.max_response_body_bytes)
            .finish_non_exhaustive()
    }
}

/// Installs rustls' ring provider as the process default, unless a provider is already
/// installed (then that one stays: a process has one default). Idempotent.
pub fn install_ring_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // An error means another thread installed a provider in between: also fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

impl WebhookClient {
    /// A client resolving names with the system resolver.
    ///
    /// ```
    /// use provider_adapters::webhook::client::{WebhookClient, WebhookClientConfig};
    /// let client = WebhookClient::new(&WebhookClientConfig::default())?;
    /// # Ok::<(), provider_adapters::webhook::client::ClientBuildError>(())
    /// ```
    pub fn new(config: &WebhookClientConfig) -> Result<Self, ClientBuildError> {
        Self::with_lookup(config, Arc::new(SystemLookup))
    }

    /// A client resolving names with `lookup` (tests use a fixed table to simulate a
    /// name that rebinds to loopback).
    pub fn with_lookup(
        config: &WebhookClientConfig,
        lookup: Arc<dyn HostLookup>,
    ) -> Result<Self, ClientBuildError> {
        install_ring_crypto_provider();
        let policy = config.url_policy();
        let http = reqwest::Client::builder()
            .dns_resolver(GuardedResolver::new(policy, lookup))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .timeout(Duration::from_millis(config.request_timeout_ms))
            .user_agent(config.user_agent.as_str())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(2)
            .build()?;
        Ok(Self {
            http,
            policy,
            max_response_body_bytes: config.max_response_body_bytes,
        })
    }

    /// The SSRF policy applied to every request.
    pub fn policy(&self) -> UrlPolicy {
        self.policy
    }

    /// POSTs a JSON `body` with `headers` to `url`, once. Never panics, never follows a
    /// redirect; the outcome says what happened.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use provider_adapters::webhook::client::{SendResult, WebhookClient, WebhookClientConfig};
    /// let client = WebhookClient::new(&WebhookClientConfig::default()).unwrap();
    /// let outcome = client
    ///     .post("http://169.254.169.254/latest/meta-data/", Default::default(), "{}".into())
    ///     .await;
    /// assert!(matches!(outcome.result, SendResult::Refused { .. }));
    /// # }
    /// ```
    pub async fn post(&self, url: &str, headers: HeaderMap, body: Bytes) -> SendOutcome {
        let started = Instant::now();
        let url = match self.policy.validate(url) {
            Ok(url) => url,
            Err(refused) => {
                return SendOutcome {
                    result: SendResult::Refused {
                        reason: refused.to_string(),
                    },
                    latency: started.elapsed(),
                };
            }
        };
        let sent = self
            .http
            .post(url.as_url().clone())
            .headers(headers)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let latency = started.elapsed();
        let result = match sent {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    SendResult::Delivered {
                        status: status.as_u16(),
                    }
                } else {
                    SendResult::Rejected {
                        status: status.as_u16(),
                        body_excerpt: read_capped(response, self.max_response_body_bytes).await,
                    }
                }
            }
            Err(error) => describe_failure(&error),
        };
        SendOutcome { result, latency }
    }
}

/// Reads at most `cap` bytes of the body; stops at the first error (the status is what
/// matters, the excerpt is a courtesy for the delivery log).
async fn read_capped(mut response: reqwest::Response, cap: usize) -> String {
    let mut excerpt = Vec::with_capacity(cap.min(4_096));
    while excerpt.len() < cap {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = cap - excerpt.len();
                excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&excerpt).into_owned()
}

fn describe_failure(error: &reqwest::Error) -> SendResult {
    if is_forbidden_resolution(error) {
        return SendResult::Refused {
            reason: root_cause(error),
        };
    }
    let timed_out = error.is_timeout();
    let error = if timed_out {
        "timed out".to_owned()
    } else if error.is_connect() {
        format!("connection failed: {}", root_cause(error))
    } else {
        format!("request failed: {}", root_cause(error))
    };
    SendResult::Failed { error, timed_out }
}

/// The innermost error message: the actual cause, without reqwest's wrapping (which
/// repeats the URL).
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}
