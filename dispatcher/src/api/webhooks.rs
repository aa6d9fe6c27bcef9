//! The webhook delivery log: agents see every provider's deliveries (dead letters
//! first of all), a provider sees its own.

use axum::Json;
use axum::extract::{Query, State};
use domain::ProviderId;
use domain::ports::{WebhookAttempt, WebhookDelivery};
use serde::{Deserialize, Serialize};

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{AgentAuth, ProviderAuth};
use crate::api::state::AppState;

/// Filters of the delivery log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WebhookQuery {
    /// `pending`, `delivered` or `dead`.
    pub status: Option<String>,
    /// Only this provider's deliveries (agents only).
    pub provider_id: Option<ProviderId>,
    /// At most this many, newest first (1–500, default 100).
    pub limit: Option<u32>,
}

/// A delivery and its attempts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookEntry {
    /// The delivery.
    #[serde(flatten)]
    pub delivery: WebhookDelivery,
    /// Every attempt, in order.
    pub attempt_log: Vec<WebhookAttempt>,
}

/// Deliveries, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookList {
    /// The deliveries.
    pub webhooks: Vec<WebhookEntry>,
}

fn checked(query: &WebhookQuery) -> Result<u32, ApiError> {
    if let Some(status) = &query.status
        && !["pending", "delivered", "dead"].contains(&status.as_str())
    {
        return Err(ApiError::invalid_field(
            "status",
            "must be pending, delivered or dead",
        ));
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 500"));
    }
    Ok(limit)
}

async fn entries(
    state: &AppState,
    provider: Option<ProviderId>,
    status: Option<&str>,
    limit: u32,
) -> Result<WebhookList, ApiError> {
    let deliveries = state.store.list_webhooks(provider, status, limit).await?;
    let mut webhooks = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let attempt_log = state.store.webhook_attempts(delivery.id).await?;
        webhooks.push(WebhookEntry {
            delivery,
            attempt_log,
        });
    }
    Ok(WebhookList { webhooks })
}

/// Every provider's webhook deliveries, for agents: `?status=dead` lists the dead
/// letters, each with its attempts (status code, error, latency).
#[utoipa::path(get, path = "/v1/webhooks", tag = "dispatch",
    security(("bearer" = [])),
    params(WebhookQuery),
    responses((status = 200, body = WebhookList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
    query: Result<Query<WebhookQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<WebhookList>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let limit = checked(&query)?;
    Ok(Json(
        entries(&state, query.provider_id, query.status.as_deref(), limit).await?,
    ))
}

/// The calling provider's own webhook deliveries and their attempts.
#[utoipa::path(get, path = "/v1/provider/webhooks", tag = "provider",
    security(("bearer" = [])),
    params(WebhookQuery),
    responses((status = 200, body = WebhookList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn provider_webhooks(
    State(state): State<AppState>,
    ProviderAuth(provider): ProviderAuth,
    query: Result<Query<WebhookQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<WebhookList>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let limit = checked(&query)?;
    if query.provider_id.is_some_and(|id| id != provider.id) {
        return Err(ApiError::invalid_field(
            "provider_id",
            "a provider sees only its own deliveries",
        ));
    }
    Ok(Json(
        entries(&state, Some(provider.id), query.status.as_deref(), limit).await?,
    ))
}
