//! Extractors: JSON bodies parsed at the edge with errors that name the field, the caller's
//! principal, and role guards.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use domain::{Actor, CaseId, Provider, Role, User};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;

use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::security::{self, API_KEY_PREFIX, CUSTOMER_PREFIX, SESSION_PREFIX};

/// Name of the console session cookie.
pub const SESSION_COOKIE: &str = "rescue_session";

/// A JSON body, parsed into `T`. Malformed JSON is 400, a body of the wrong shape (missing,
/// unknown or mistyped field) is 422 naming the field, a non-JSON content type is 415, an
/// over-long body is 413.
pub struct ApiJson<T> {
    /// The parsed value.
    pub value: T,
    /// SHA-256 of the canonical form of the body (keys sorted, no whitespace), so that
    /// two requests with the same content hash alike.
    pub canonical_sha256: [u8; 32],
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a JSON body with content-type application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                let status = rejection.status();
                let code = crate::api::error::code_for_status(status);
                let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "request body is too large".to_owned()
                } else {
                    rejection.body_text()
                };
                ApiError::new(status, code, message)
            })?;
        parse_json(&bytes)
    }
}

/// An optional JSON body: an empty body is `None`; anything else must be valid JSON.
impl<T, S> axum::extract::OptionalFromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let has_json_type = is_json(request.headers());
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                ApiError::new(
                    rejection.status(),
                    crate::api::error::code_for_status(rejection.status()),
                    rejection.body_text(),
                )
            })?;
        if bytes.is_empty() {
            return Ok(None);
        }
        if !has_json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a JSON body with content-type application/json",
            ));
        }
        parse_json(&bytes).map(Some)
    }
}

/// Parses a JSON document into `T` (see [`ApiJson`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<ApiJson<T>, ApiError> {
    let document: serde_json::Value = serde_json::from_slice(bytes).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("malformed JSON: {error}"),
        )
    })?;
    // serde_json's map is ordered by key, so this is the canonical form.
    let canonical = serde_json::to_vec(&document).map_err(ApiError::internal)?;
    let value = serde_path_to_error::deserialize(document).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        let parent = if path == "." { "" } else { path.as_str() };
        // A missing or unknown field is reported at its parent; name the field itself.
        let field = match named_field(&message) {
            Some(name) if parent.is_empty() => name.to_owned(),
            Some(name) => format!("{parent}.{name}"),
            None => parent.to_owned(),
        };
        if field.is_empty() {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                message,
            )
        } else {
            ApiError::invalid_field(field, message)
        }
    })?;
    Ok(ApiJson {
        value,
        canonical_sha256: security::sha256(&canonical),
    })
}

/// The field serde names in "missing field `x`" or "unknown field `x`, expected …".
fn named_field(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split('`').next()
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// No credentials.
    Anonymous,
    /// The bootstrap admin token.
    BootstrapAdmin,
    /// A console user, by session token or cookie.
    User(User),
    /// A provider, by API key.
    Provider(Provider),
    /// A customer, by the token of their case.
    Customer(CaseId),
}

impl Principal {
    /// The actor recorded in the timeline for this principal.
    pub fn actor(&self) -> Actor {
        match self {
            Principal::Anonymous => Actor::App,
            Principal::BootstrapAdmin => Actor::BootstrapAdmin,
            Principal::User(user) => Actor::User {
                role: user.role,
                id: user.id,
            },
            Principal::Provider(provider) => Actor::Provider(provider.id),
            Principal::Customer(_) => Actor::Customer,
        }
    }

    /// The refusal for a principal that may not use a route: 401 without credentials,
    /// 403 with the wrong ones.
    pub fn refusal(&self, needed: &str) -> ApiError {
        match self {
            Principal::Anonymous => {
                ApiError::unauthorized(format!("{needed} credentials required"))
            }
            _ => ApiError::forbidden(format!("only {needed} may do this")),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("authentication layer missing")))
    }
}

/// An administrator: the bootstrap token or a user with role `admin`.
pub struct AdminAuth(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        match &principal {
            Principal::BootstrapAdmin => Ok(AdminAuth(principal)),
            Principal::User(user) if user.role == Role::Admin => Ok(AdminAuth(principal)),
            other => Err(other.refusal("admins")),
        }
    }
}

/// A seat agent.
pub struct AgentAuth(pub User);

impl<S: Send + Sync> FromRequestParts<S> for AgentAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Principal::from_request_parts(parts, state).await? {
            Principal::User(user) if user.role == Role::Agent => Ok(AgentAuth(user)),
            other => Err(other.refusal("agents")),
        }
    }
}

/// Any logged-in console user.
pub struct UserAuth(pub User);

impl<S: Send + Sync> FromRequestParts<S> for UserAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Principal::from_request_parts(parts, state).await? {
            Principal::User(user) => Ok(UserAuth(user)),
            other => Err(other.refusal("console users")),
        }
    }
}

/// A provider, by its API key.
pub struct ProviderAuth(pub Provider);

impl<S: Send + Sync> FromRequestParts<S> for ProviderAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Principal::from_request_parts(parts, state).await? {
            Principal::Provider(provider) => Ok(ProviderAuth(provider)),
            other => Err(other.refusal("providers")),
        }
    }
}

/// The client's IP address: the peer address, or the first X-Forwarded-For hop when
/// `RESCUE_TRUST_FORWARDED_FOR` is on.
pub fn client_ip(
    parts_headers: &HeaderMap,
    connect_info: Option<&ConnectInfo<SocketAddr>>,
    trust_forwarded: bool,
) -> IpAddr {
    if trust_forwarded
        && let Some(forwarded) = parts_headers
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .and_then(|first| first.trim().parse::<IpAddr>().ok())
    {
        return forwarded;
    }
    connect_info
        .map(|ConnectInfo(address)| address.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// The client address of a request, as [`client_ip`] finds it.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let connect_info = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(ClientIp(client_ip(
            &parts.headers,
            connect_info,
            state.config.settings.trust_forwarded_for,
        )))
    }
}

/// Where a credential came from; a cookie needs the CSRF check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CredentialSource {
    Header,
    Cookie,
}

fn credential(headers: &HeaderMap) -> Result<Option<(String, CredentialSource)>, ApiError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("malformed authorization header"))?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .ok_or_else(|| ApiError::unauthorized("expected `Authorization: Bearer <token>`"))?
            .trim();
        if token.is_empty() {
            return Err(ApiError::unauthorized("empty bearer token"));
        }
        return Ok(Some((token.to_owned(), CredentialSource::Header)));
    }
    let jar = CookieJar::from_headers(headers);
    Ok(jar
        .get(SESSION_COOKIE)
        .map(|cookie| (cookie.value().to_owned(), CredentialSource::Cookie)))
}

/// A state-changing request authenticated by cookie must come from our own origin:
/// SameSite=Strict already keeps other sites' requests from carrying the cookie; this
/// refuses the rest (e.g. an older browser).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
    else {
        return true;
    };
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, origin_host)| origin_host.trim_end_matches('/') == host)
}

/// Resolves the caller's credentials into a [`Principal`] for the handlers. Credentials
/// that are present but wrong are refused here (401), even on routes open to anyone.
pub async fn authenticate(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match resolve_principal(&state, request.headers(), request.method()).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

async fn resolve_principal(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Principal, ApiError> {
    let Some((token, source)) = credential(headers)? else {
        return Ok(Principal::Anonymous);
    };
    if source == CredentialSource::Cookie && !method.is_safe() && !same_origin(headers) {
        return Err(ApiError::forbidden("cross-origin request refused"));
    }
    if token.starts_with(SESSION_PREFIX) {
        let hash = security::sha256(token.as_bytes());
        return match state.store.session_user(&hash, state.clock.now()).await? {
            Some(user) => Ok(Principal::User(user)),
            None => Err(ApiError::unauthorized(
                "session expired or unknown; log in again",
            )),
        };
    }
    if source == CredentialSource::Cookie {
        return Err(ApiError::unauthorized("invalid session cookie"));
    }
    if token.starts_with(API_KEY_PREFIX) {
        let hash = security::sha256(token.as_bytes());
        if let Some(provider) = state.provider_keys.get(&hash) {
            return Ok(Principal::Provider(provider));
        }
        return match state.store.provider_by_api_key_hash(&hash).await? {
            Some(provider) => {
                state.provider_keys.insert(hash, provider.clone());
                Ok(Principal::Provider(provider))
            }
            None => Err(ApiError::unauthorized("unknown API key")),
        };
    }
    if token.starts_with(CUSTOMER_PREFIX) {
        return match state.keys.verify_customer_token(&token) {
            Some(case_id) => Ok(Principal::Customer(case_id)),
            None => Err(ApiError::unauthorized("invalid customer token")),
        };
    }
    match state.admin_token() {
        Some(admin) if security::secrets_equal(&token, admin.expose_secret()) => {
            Ok(Principal::BootstrapAdmin)
        }
        _ => Err(ApiError::unauthorized("invalid bearer token")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    #[test]
    fn malformed_json_is_a_400() {
        let error = parse_json::<Outer>(b"{\"inner\": ").err().unwrap();
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_mistyped_field_is_a_422_naming_its_path() {
        let error = parse_json::<Outer>(br#"{"inner": {"count": "three"}}"#)
            .err()
            .unwrap();
        assert_eq!(error.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(format!("{error:?}").contains("inner.count"));
    }

    #[test]
    fn the_canonical_hash_ignores_whitespace_and_key_order() {
        let a = parse_json::<serde_json::Value>(br#"{"a": 1, "b": [1, 2]}"#).unwrap();
        let b = parse_json::<serde_json::Value>(b"{\"b\":[1,2],\n \"a\":1}").unwrap();
        let c = parse_json::<serde_json::Value>(br#"{"a": 2, "b": [1, 2]}"#).unwrap();
        assert_eq!(a.canonical_sha256, b.canonical_sha256);
        assert_ne!(a.canonical_sha256, c.canonical_sha256);
    }

    #[test]
    fn cookie_requests_from_another_origin_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "rescue.example:8080".parse().unwrap());
        assert!(
            same_origin(&headers),
            "no Origin header: a same-origin navigation"
        );
        headers.insert(
            header::ORIGIN,
            "https://rescue.example:8080".parse().unwrap(),
        );
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&headers));
    }
}
