//! The application state every handler receives: a cheap clonable handle over `Arc`s.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use domain::Clock;
use domain::ports::Store;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::SecretString;

use crate::config::Config;
use crate::security::Keys;
use crate::services::alerts::Alerts;
use crate::services::calls::Calls;
use crate::services::cascade::OfferCascade;
use crate::services::cases::Cases;
use crate::services::diagnosis::DiagnosisDesk;
use crate::services::fleet_ingest::FleetRegistry;
use crate::services::fleet_ingest::devices::DeviceIntake;
use crate::services::intake::Intake;
use crate::services::tracking::Tracking;
use crate::services::webhook_outbox::WebhookSettings;
use crate::stream::EventTail;

/// Shared state of one server's HTTP API: the services handlers call, and what the HTTP
/// layer itself needs (configuration, keys, limits, the metrics renderer).
#[derive(Clone)]
pub struct AppState {
    /// Storage, for the handlers that read or write one record and nothing else (admin,
    /// login, the webhook log, health).
    pub store: Arc<dyn Store>,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// The configuration.
    pub config: Arc<Config>,
    /// The server secret.
    pub keys: Arc<Keys>,
    /// The public base URL, without a trailing slash.
    pub public_url: Arc<str>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Per-client limits.
    pub limits: Arc<Limits>,
    /// Recently seen provider API keys (by hash), so the position stream does not cost a
    /// database read per request.
    pub provider_keys: Arc<KeyCache>,
    /// Webhook settings (the URL policy checked when a provider is created, the secret
    /// rotation grace).
    pub webhooks: Arc<WebhookSettings>,
    /// The event log, for the agents' streams.
    pub events: Arc<EventTail>,
    /// Which bus joins the instances (for the logs and tests).
    pub bus: Arc<crate::bus::Bus>,
    /// Use case: a request becomes a case.
    pub intake: Arc<Intake>,
    /// Use case: offers, answers, jobs, manual assignment, cancellation.
    pub cascade: Arc<OfferCascade>,
    /// Use case: vehicles, providers, positions.
    pub registry: Arc<FleetRegistry>,
    /// Use case: where GPS devices report.
    pub devices: Arc<DeviceIntake>,
    /// Use case: tracking of assigned trucks and the customer's view.
    pub tracking: Arc<Tracking>,
    /// Use case: triage and the phone-expert queue.
    pub diagnosis: Arc<DiagnosisDesk>,
    /// Use case: alerts.
    pub alerts: Arc<Alerts>,
    /// Use case: masked calls.
    pub calls: Arc<Calls>,
    /// Use case: reading cases, notes and customer updates.
    pub cases: Arc<Cases>,
    /// The road network ETAs are estimated on, when one is configured.
    pub road_network: Option<Arc<roads::RoadNetwork>>,
}

/// A short-lived cache of authenticated providers by API-key hash.
#[derive(Default)]
pub struct KeyCache {
    entries: dashmap::DashMap<[u8; 32], (domain::Provider, std::time::Instant)>,
}

impl KeyCache {
    /// How long an entry is trusted.
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(30);
    /// Entries kept before the cache is emptied.
    const CAPACITY: usize = 10_000;

    /// The provider for a key hash, if seen within the TTL.
    pub fn get(&self, hash: &[u8; 32]) -> Option<domain::Provider> {
        let entry = self.entries.get(hash)?;
        (entry.1.elapsed() < Self::TTL).then(|| entry.0.clone())
    }

    /// Remembers a provider.
    pub fn insert(&self, hash: [u8; 32], provider: domain::Provider) {
        if self.entries.len() >= Self::CAPACITY {
            self.entries.clear();
        }
        self.entries
            .insert(hash, (provider, std::time::Instant::now()));
    }
}

impl AppState {
    /// The bootstrap admin token, if configured.
    pub fn admin_token(&self) -> Option<&SecretString> {
        self.config.admin_token.as_ref()
    }
}

/// Rate limits keyed by client address.
pub struct Limits {
    /// Case creation by unauthenticated app clients.
    pub app_cases: DefaultKeyedRateLimiter<IpAddr>,
    /// Login attempts.
    pub logins: DefaultKeyedRateLimiter<IpAddr>,
}

impl Limits {
    /// Limits as configured.
    pub fn new(config: &Config) -> Limits {
        let per_minute = |rate: u32, burst: u32| {
            let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
            Quota::per_minute(rate).allow_burst(burst)
        };
        let settings = &config.settings;
        Limits {
            app_cases: RateLimiter::keyed(per_minute(
                settings.app_rate_per_min,
                settings.app_rate_burst,
            )),
            logins: RateLimiter::keyed(per_minute(
                settings.login_rate_per_min,
                settings.login_rate_per_min,
            )),
        }
    }

    /// Forgets clients that have not been seen lately, so the maps stay small.
    pub fn forget_idle_clients(&self) {
        self.app_cases.retain_recent();
        self.logins.retain_recent();
    }
}

/// Checks a keyed limiter; on refusal, the whole seconds to wait.
pub fn check_limit(limiter: &DefaultKeyedRateLimiter<IpAddr>, client: IpAddr) -> Result<(), u64> {
    use governor::clock::Clock as _;
    limiter.check_key(&client).map_err(|not_until| {
        let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
        wait.as_secs() + 1
    })
}
