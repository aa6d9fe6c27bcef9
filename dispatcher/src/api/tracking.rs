//! Tracking views: the assigned truck's trajectory for agents, alert handling, and the
//! customer's tracking link (JSON and a small self-refreshing page).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use domain::ports::StoreError;
use domain::{Alert, AlertId, CaseId};

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::AgentAuth;
use crate::api::state::AppState;
pub use crate::services::tracking::{CustomerUpdate, TrackedPoint, TrackedVehicle, TrackingView};

fn case_id(raw: &str) -> Result<CaseId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("case"))
}

/// The assigned truck's path for a case as GeoJSON: a FeatureCollection whose first
/// feature is the LineString (`[lon, lat]`, with `properties.times`) and then one timed
/// Point per fix. Implausible and duplicate fixes are left out and counted.
#[utoipa::path(get, path = "/v1/cases/{case_id}/trajectory", tag = "tracking",
    security(("bearer" = [])),
    params(("case_id" = String, Path, description = "case id")),
    responses((status = 200, description = "GeoJSON FeatureCollection", body = Object),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn trajectory(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
    Path(raw_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id = case_id(&raw_id)?;
    let path = state
        .tracking
        .trajectory(id)
        .await?
        .ok_or_else(|| ApiError::not_found("case"))?;
    let document = serde_json::to_value(&path).map_err(ApiError::internal)?;
    Ok(Json(document))
}

fn alert_id(raw: &str) -> Result<AlertId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("alert"))
}

fn alert_error(error: StoreError) -> ApiError {
    match error {
        StoreError::NotFound => ApiError::not_found("alert"),
        other => other.into(),
    }
}

/// An agent takes an open alert ("I am on it"); the timeline records who and when.
#[utoipa::path(post, path = "/v1/alerts/{alert_id}/ack", tag = "tracking",
    security(("bearer" = [])),
    params(("alert_id" = String, Path, description = "alert id")),
    responses((status = 200, body = Alert), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "not open", body = ErrorBody)))]
pub async fn acknowledge(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    Path(raw_id): Path<String>,
) -> Result<Json<Alert>, ApiError> {
    let actor = domain::Actor::User {
        role: agent.role,
        id: agent.id,
    };
    let alert = state
        .alerts
        .acknowledge(alert_id(&raw_id)?, &actor)
        .await
        .map_err(alert_error)?;
    Ok(Json(alert))
}

/// An agent closes an alert; the timeline records who and when.
#[utoipa::path(post, path = "/v1/alerts/{alert_id}/resolve", tag = "tracking",
    security(("bearer" = [])),
    params(("alert_id" = String, Path, description = "alert id")),
    responses((status = 200, body = Alert), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "already resolved", body = ErrorBody)))]
pub async fn resolve(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    Path(raw_id): Path<String>,
) -> Result<Json<Alert>, ApiError> {
    let actor = domain::Actor::User {
        role: agent.role,
        id: agent.id,
    };
    let alert = state
        .alerts
        .resolve(alert_id(&raw_id)?, &actor)
        .await
        .map_err(alert_error)?;
    Ok(Json(alert))
}

/// The customer's tracking data, by the token of their case (from `tracking_url`). An
/// unknown or tampered token is 404.
#[utoipa::path(get, path = "/v1/track/{customer_token}", tag = "tracking",
    params(("customer_token" = String, Path, description = "the customer token of the case")),
    responses((status = 200, body = TrackingView), (status = 404, body = ErrorBody)))]
pub async fn track(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<TrackingView>, ApiError> {
    let case_id = state
        .keys
        .verify_customer_token(&token)
        .ok_or_else(|| ApiError::not_found("tracking link"))?;
    let view = state
        .tracking
        .customer_view(case_id)
        .await?
        .ok_or_else(|| ApiError::not_found("tracking link"))?;
    Ok(Json(view))
}

/// The customer's tracking page (HTML; it reads `/v1/track/{token}` and refreshes itself).
#[utoipa::path(get, path = "/track/{customer_token}", tag = "tracking",
    params(("customer_token" = String, Path, description = "the customer token of the case")),
    responses((status = 200, description = "the tracking page", content_type = "text/html", body = String),
        (status = 404, body = ErrorBody)))]
pub async fn page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    if state.keys.verify_customer_token(&token).is_none() {
        return ApiError::not_found("tracking link").into_response();
    }
    let mut response = Html(include_str!("track.html")).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
