//! The server's public HTTP API as its clients use it: admins, providers, the app and
//! agents. Every failure is classified into a short, stable kind for the error counts.

use std::time::Duration;

use anyhow::Context;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::history::{CaseRecord, EventRecord, OfferRecord};
use crate::target::Target;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No HTTP answer: connection refused or reset, timeout, unreadable body.
    Transport(String),
    /// An HTTP answer with an error status.
    Status {
        /// The status.
        status: u16,
        /// The `error.code` of the body, when there is one.
        code: String,
        /// `Retry-After`, seconds.
        retry_after_s: Option<u64>,
        /// The body (for messages).
        body: String,
    },
}

impl CallError {
    /// A short, stable name for error counts, e.g. `transport: connect` or
    /// `http 409 illegal_transition`.
    pub fn kind(&self) -> String {
        match self {
            CallError::Transport(kind) => format!("transport: {kind}"),
            CallError::Status { status, code, .. } => format!("http {status} {code}"),
        }
    }

    /// Whether the request may be sent again as is: no answer, 429 or 503.
    pub fn is_retryable(&self) -> bool {
        match self {
            CallError::Transport(_) => true,
            CallError::Status { status, .. } => *status == 429 || *status == 503,
        }
    }

    /// The status, if there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Transport(_) => None,
            CallError::Status { status, .. } => Some(*status),
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Transport(kind) => write!(f, "no answer ({kind})"),
            CallError::Status { status, body, .. } => write!(f, "HTTP {status}: {body}"),
        }
    }
}

impl std::error::Error for CallError {}

fn transport_kind(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timeout".to_owned()
    } else if error.is_connect() {
        "connect".to_owned()
    } else if error.is_body() || error.is_decode() {
        "body".to_owned()
    } else {
        "request".to_owned()
    }
}

/// A created provider.
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedProvider {
    /// Its API key (shown once).
    pub api_key: String,
}

/// An offer as the provider sees it.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderOffer {
    /// Offer id.
    pub id: String,
    /// The case.
    pub case_id: String,
    /// The provider's own id of the vehicle.
    pub vehicle_id: String,
    /// Where the customer is.
    pub location: OfferLocation,
    /// Our ETA estimate, seconds.
    pub eta_s: u32,
}

/// The location part of an offer.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct OfferLocation {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
}

/// What became of a batch of positions.
#[derive(Debug, Clone, Deserialize)]
pub struct PositionReceipt {
    /// Fixes taken.
    pub accepted: u64,
    /// Fixes refused.
    #[serde(default)]
    pub rejected: Vec<Rejection>,
}

/// One refused fix.
#[derive(Debug, Clone, Deserialize)]
pub struct Rejection {
    /// Why.
    pub error: String,
}

/// A created case, as the app receives it.
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedCase {
    /// The case.
    pub case: CreatedCaseBody,
}

/// The part of the created case the driver uses.
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedCaseBody {
    /// Case id.
    pub id: String,
}

/// A page of `GET /v1/cases`.
#[derive(Debug, Clone, Deserialize)]
pub struct CasePage {
    /// The cases.
    pub cases: Vec<CaseRecord>,
    /// The next page's cursor.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// A client of one server.
#[derive(Debug, Clone)]
pub struct Api {
    target: Target,
    http: reqwest::Client,
}

impl Api {
    /// A client of `target` with keep-alive connections and a per-request timeout.
    pub fn new(target: Target, timeout: Duration) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            // Loopback only: never go through a proxy from the environment.
            .no_proxy()
            .build()
            .context("building the HTTP client")?;
        Ok(Api { target, http })
    }

    /// The server.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Sends a request and reads the JSON answer of a 2xx.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<T, CallError> {
        let mut request = self.http.request(method, self.target.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| CallError::Transport(transport_kind(&error)))?;
        let status = response.status();
        let retry_after_s = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        let bytes = response
            .bytes()
            .await
            .map_err(|error| CallError::Transport(transport_kind(&error)))?;
        if !status.is_success() {
            let body = String::from_utf8_lossy(&bytes).into_owned();
            let code = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|value| value["error"]["code"].as_str().map(str::to_owned))
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
            return Err(CallError::Status {
                status: status.as_u16(),
                code,
                retry_after_s,
                body,
            });
        }
        let bytes = if bytes.is_empty() && status == StatusCode::NO_CONTENT {
            bytes::Bytes::from_static(b"null")
        } else {
            bytes
        };
        serde_json::from_slice(&bytes).map_err(|_| CallError::Transport("body".to_owned()))
    }

    /// Sends a request without a body and reads the text of a 2xx answer.
    pub async fn text(&self, method: Method, path: &str) -> Result<String, CallError> {
        let response = self
            .http
            .request(method, self.target.url(path))
            .send()
            .await
            .map_err(|error| CallError::Transport(transport_kind(&error)))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|error| CallError::Transport(transport_kind(&error)))?;
        if !status.is_success() {
            return Err(CallError::Status {
                status: status.as_u16(),
                code: status.canonical_reason().unwrap_or("error").to_owned(),
                retry_after_s: None,
                body,
            });
        }
        Ok(body)
    }

    /// Whether the server answers `GET /readyz` with 200.
    pub async fn ready(&self) -> bool {
        self.call::<Value>(Method::GET, "/readyz", None, None, &[])
            .await
            .is_ok()
    }

    /// Creates a provider covering `service_area`.
    pub async fn create_provider(
        &self,
        admin_token: &str,
        name: &str,
        service_area: &Value,
    ) -> Result<CreatedProvider, CallError> {
        let body = json!({"name": name, "service_area": service_area});
        self.call(
            Method::POST,
            "/v1/admin/providers",
            Some(admin_token),
            Some(&body),
            &[],
        )
        .await
    }

    /// Creates a console user (agent) and logs them in; returns the bearer token.
    pub async fn create_agent(&self, admin_token: &str, username: &str) -> anyhow::Result<String> {
        let password = format!("load-{}", uuid::Uuid::new_v4().simple());
        self.create_user(admin_token, username, &password, "agent")
            .await
            .context("creating the agent user (is the admin token right?)")?;
        self.login(username, &password)
            .await
            .context("logging the agent in")
    }

    /// Creates a console user with a role.
    pub async fn create_user(
        &self,
        admin_token: &str,
        username: &str,
        password: &str,
        role: &str,
    ) -> Result<(), CallError> {
        let body = json!({"username": username, "password": password, "role": role});
        self.call::<Value>(
            Method::POST,
            "/v1/admin/users",
            Some(admin_token),
            Some(&body),
            &[],
        )
        .await
        .map(drop)
    }

    /// Logs a console user in; returns the bearer token.
    pub async fn login(&self, username: &str, password: &str) -> Result<String, CallError> {
        let login = json!({"username": username, "password": password});
        let session: Value = self
            .call(Method::POST, "/v1/auth/login", None, Some(&login), &[])
            .await?;
        match session["token"].as_str() {
            Some(token) => Ok(token.to_owned()),
            None => Err(CallError::Transport("body".to_owned())),
        }
    }

    /// Registers (or updates) a provider's vehicle as available, with its JT/T 808 terminal
    /// when it has one.
    pub async fn put_vehicle(
        &self,
        api_key: &str,
        vehicle_id: &str,
        capabilities: &[&str],
        plate: &str,
        jt808_phone: Option<&str>,
    ) -> Result<(), CallError> {
        let mut body = json!({"capabilities": capabilities, "state": "available", "plate": plate});
        if let Some(phone) = jt808_phone {
            body["devices"] = json!([{"protocol": "jt808", "id": phone}]);
        }
        self.call::<Value>(
            Method::PUT,
            &format!("/v1/provider/vehicles/{vehicle_id}"),
            Some(api_key),
            Some(&body),
            &[],
        )
        .await
        .map(drop)
    }

    /// Reports a batch of positions.
    pub async fn post_positions(
        &self,
        api_key: &str,
        body: &Value,
    ) -> Result<PositionReceipt, CallError> {
        self.call(
            Method::POST,
            "/v1/provider/positions",
            Some(api_key),
            Some(body),
            &[],
        )
        .await
    }

    /// The provider's pending offers.
    pub async fn offers(&self, api_key: &str) -> Result<Vec<ProviderOffer>, CallError> {
        #[derive(Deserialize)]
        struct OfferList {
            offers: Vec<ProviderOffer>,
        }
        self.call::<OfferList>(Method::GET, "/v1/provider/offers", Some(api_key), None, &[])
            .await
            .map(|list| list.offers)
    }

    /// Accepts an offer with the provider's own ETA.
    pub async fn accept(&self, api_key: &str, offer_id: &str, eta_s: u32) -> Result<(), CallError> {
        let body = json!({"eta_s": eta_s.max(1)});
        self.call::<Value>(
            Method::POST,
            &format!("/v1/provider/offers/{offer_id}/accept"),
            Some(api_key),
            Some(&body),
            &[],
        )
        .await
        .map(drop)
    }

    /// Declines an offer.
    pub async fn decline(
        &self,
        api_key: &str,
        offer_id: &str,
        reason: &str,
    ) -> Result<(), CallError> {
        let body = json!({"reason": reason});
        self.call::<Value>(
            Method::POST,
            &format!("/v1/provider/offers/{offer_id}/decline"),
            Some(api_key),
            Some(&body),
            &[],
        )
        .await
        .map(drop)
    }

    /// Reports job progress.
    pub async fn job_status(
        &self,
        api_key: &str,
        case_id: &str,
        status: &str,
    ) -> Result<(), CallError> {
        let body = json!({"status": status});
        self.call::<Value>(
            Method::POST,
            &format!("/v1/provider/jobs/{case_id}/status"),
            Some(api_key),
            Some(&body),
            &[],
        )
        .await
        .map(drop)
    }

    /// Creates a case as the app (no credentials).
    pub async fn create_case(
        &self,
        body: &Value,
        idempotency_key: &str,
    ) -> Result<CreatedCase, CallError> {
        self.call(
            Method::POST,
            "/v1/cases",
            None,
            Some(body),
            &[("Idempotency-Key", idempotency_key)],
        )
        .await
    }

    /// One page of cases created at or after `created_from`, newest first.
    pub async fn list_cases(
        &self,
        agent: &str,
        created_from: chrono::DateTime<chrono::Utc>,
        statuses: Option<&str>,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<CasePage, CallError> {
        let mut query = vec![
            (
                "created_from",
                created_from.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            ),
            ("limit", limit.to_string()),
        ];
        if let Some(statuses) = statuses {
            query.push(("status", statuses.to_owned()));
        }
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        let encoded: String = query
            .iter()
            .map(|(name, value)| format!("{name}={}", percent_encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        self.call(
            Method::GET,
            &format!("/v1/cases?{encoded}"),
            Some(agent),
            None,
            &[],
        )
        .await
    }

    /// A case.
    pub async fn case(&self, agent: &str, case_id: &str) -> Result<CaseRecord, CallError> {
        self.call(
            Method::GET,
            &format!("/v1/cases/{case_id}"),
            Some(agent),
            None,
            &[],
        )
        .await
    }

    /// A case's timeline.
    pub async fn timeline(
        &self,
        agent: &str,
        case_id: &str,
    ) -> Result<Vec<EventRecord>, CallError> {
        #[derive(Deserialize)]
        struct Timeline {
            events: Vec<EventRecord>,
        }
        self.call::<Timeline>(
            Method::GET,
            &format!("/v1/cases/{case_id}/timeline"),
            Some(agent),
            None,
            &[],
        )
        .await
        .map(|timeline| timeline.events)
    }

    /// A case's offers.
    pub async fn case_offers(
        &self,
        agent: &str,
        case_id: &str,
    ) -> Result<Vec<OfferRecord>, CallError> {
        #[derive(Deserialize)]
        struct CaseOffers {
            offers: Vec<OfferRecord>,
        }
        self.call::<CaseOffers>(
            Method::GET,
            &format!("/v1/cases/{case_id}/offers"),
            Some(agent),
            None,
            &[],
        )
        .await
        .map(|offers| offers.offers)
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
fn percent_encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b',') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_are_short_and_stable() {
        let status = CallError::Status {
            status: 503,
            code: "service_unavailable".to_owned(),
            retry_after_s: Some(1),
            body: String::new(),
        };
        assert_eq!(status.kind(), "http 503 service_unavailable");
        assert!(status.is_retryable());
        assert_eq!(
            CallError::Transport("connect".to_owned()).kind(),
            "transport: connect"
        );
        let conflict = CallError::Status {
            status: 409,
            code: "conflict".to_owned(),
            retry_after_s: None,
            body: String::new(),
        };
        assert!(!conflict.is_retryable());
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(
            percent_encode("2026-11-22T08:00:00.000000+00:00"),
            "2026-11-22T08%3A00%3A00.000000%2B00%3A00"
        );
        assert_eq!(percent_encode("new,dispatching"), "new,dispatching");
    }
}
