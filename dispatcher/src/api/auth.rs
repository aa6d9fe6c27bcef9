//! Console login: a bearer token for API clients and an HttpOnly, SameSite=Strict session
//! cookie for the browser console.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use domain::User;
use domain::ports::NewSession;
use serde::{Deserialize, Serialize};

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{ApiJson, ClientIp, SESSION_COOKIE, UserAuth};
use crate::api::state::{AppState, check_limit};
use crate::security::{self, SESSION_PREFIX};
use crate::telemetry::{LOGINS, RATE_LIMITED};

/// Credentials.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Login name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// A session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoginResponse {
    /// Bearer token (`st_…`) for `Authorization: Bearer`.
    pub token: String,
    /// When the token stops working.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// Who logged in.
    pub user: User,
}

/// Logs a console user in.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "logged in; also sets the `rescue_session` cookie", body = LoginResponse),
        (status = 401, description = "wrong username or password", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    jar: CookieJar,
    body: ApiJson<LoginRequest>,
) -> Result<(CookieJar, Json<LoginResponse>), ApiError> {
    if let Err(wait_s) = check_limit(&state.limits.logins, client) {
        metrics::counter!(RATE_LIMITED, "limit" => "login").increment(1);
        return Err(ApiError::rate_limited(wait_s));
    }
    let request = body.value;
    if request.password.len() > 1024 {
        return Err(ApiError::unauthorized("wrong username or password"));
    }
    let found = state.store.user_credentials(&request.username).await?;
    let (user, stored_hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, security::decoy_password_hash().to_owned()),
    };
    let password = request.password;
    let verified =
        tokio::task::spawn_blocking(move || security::verify_password(&password, &stored_hash))
            .await
            .map_err(ApiError::internal)?;
    let Some(user) = user.filter(|_| verified) else {
        metrics::counter!(LOGINS, "outcome" => "failure").increment(1);
        return Err(ApiError::unauthorized("wrong username or password"));
    };
    let token = security::random_token(SESSION_PREFIX).map_err(ApiError::internal)?;
    let now = domain::time::to_storage_precision(state.clock.now());
    let ttl_s = state.config.settings.session_ttl_s;
    let expires_at =
        now + chrono::Duration::seconds(i64::try_from(ttl_s).unwrap_or(i64::MAX / 2_000_000));
    state
        .store
        .insert_session(&NewSession {
            token_hash: security::sha256(token.as_bytes()),
            user_id: user.id,
            created_at: now,
            expires_at,
        })
        .await?;
    metrics::counter!(LOGINS, "outcome" => "success").increment(1);
    tracing::info!(user_id = %user.id, "user logged in");
    let cookie = Cookie::build((SESSION_COOKIE, token.clone()))
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.public_url.starts_with("https://"))
        .path("/")
        .max_age(time_duration(ttl_s))
        .build();
    Ok((
        jar.add(cookie),
        Json(LoginResponse {
            token,
            expires_at,
            user,
        }),
    ))
}

fn time_duration(seconds: u64) -> cookie::time::Duration {
    cookie::time::Duration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX))
}

/// Ends the session whose token or cookie came with the request.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    security(("bearer" = [])),
    responses((status = 204, description = "logged out; the cookie is cleared"), (status = 401, body = ErrorBody)))]
pub async fn logout(
    State(state): State<AppState>,
    UserAuth(user): UserAuth,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Response, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned)
        .or_else(|| {
            jar.get(SESSION_COOKIE)
                .map(|cookie| cookie.value().to_owned())
        });
    if let Some(token) = token {
        state
            .store
            .delete_session(&security::sha256(token.as_bytes()))
            .await?;
    }
    tracing::info!(user_id = %user.id, "user logged out");
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    Ok((StatusCode::NO_CONTENT, jar).into_response())
}

/// Who am I.
#[utoipa::path(get, path = "/v1/auth/me", tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = User), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn me(UserAuth(user): UserAuth) -> Json<User> {
    Json(user)
}
