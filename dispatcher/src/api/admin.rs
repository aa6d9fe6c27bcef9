//! Administration: providers and console users.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::area::ServiceArea;
use domain::{NewUserInput, Provider, ProviderId, User, UserId};
use serde::{Deserialize, Serialize};

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{AdminAuth, ApiJson};
use crate::api::state::AppState;
use crate::security::{self, API_KEY_PREFIX};

/// A provider to create.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProviderRequest {
    /// Company name, 1–200 characters.
    pub name: String,
    /// HTTPS (or HTTP) URL that receives signed webhooks.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// GeoJSON Polygon or MultiPolygon (WGS-84) where the contract lets the provider work.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub service_area: Option<serde_json::Value>,
    /// Contract priority; higher wins near-ties (default 0).
    #[serde(default)]
    pub priority: Option<i32>,
}

/// A created provider and its API key, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedProvider {
    /// Provider id.
    pub id: ProviderId,
    /// The API key (`rk_…`). Only its hash is stored: keep it now.
    pub api_key: String,
    /// The webhook signing secret (`whsec_…`), when a webhook URL was given. Keep it
    /// now: it is shown again only by rotating it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// The provider.
    pub provider: Provider,
}

/// A provider's new webhook signing secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RotatedSecret {
    /// The provider.
    pub provider_id: ProviderId,
    /// The new secret (`whsec_…`), shown this once.
    pub webhook_secret: String,
    /// Its generation (1 for the first secret).
    pub generation: u32,
    /// Until then, webhooks carry a signature with the previous secret too.
    pub previous_valid_until: chrono::DateTime<chrono::Utc>,
}

/// Creates a contracted provider and its API key.
#[utoipa::path(post, path = "/v1/admin/providers", tag = "admin",
    security(("bearer" = [])),
    request_body = NewProviderRequest,
    responses(
        (status = 201, description = "created; the API key is shown once", body = CreatedProvider),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_provider(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    body: ApiJson<NewProviderRequest>,
) -> Result<(StatusCode, Json<CreatedProvider>), ApiError> {
    let request = body.value;
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid_field(
            "name",
            "must be 1 to 200 characters",
        ));
    }
    if let Some(url) = &request.webhook_url {
        validate_webhook_url(url)?;
        // Where it may point: no loopback, private, link-local or metadata address
        // (checked again after DNS resolution at every delivery).
        state
            .webhooks
            .client
            .url_policy()
            .validate(url)
            .map_err(|refused| ApiError::invalid_field("webhook_url", refused.to_string()))?;
    }
    if let Some(area) = &request.service_area {
        ServiceArea::from_geojson(area).map_err(|error| {
            ApiError::invalid_field(format!("service_area.{}", error.field), error.message)
        })?;
    }
    let api_key = security::random_token(API_KEY_PREFIX).map_err(ApiError::internal)?;
    let provider = Provider {
        id: ProviderId::new_v7(),
        name: name.to_owned(),
        webhook_url: request.webhook_url,
        service_area: request.service_area,
        priority: request.priority.unwrap_or(0),
        webhook_secret_generation: 1,
        webhook_secret_rotated_at: None,
        created_at: domain::time::to_storage_precision(state.clock.now()),
    };
    state
        .registry
        .add_provider(&provider, &security::sha256(api_key.as_bytes()))
        .await?;
    tracing::info!(provider_id = %provider.id, "provider created");
    let webhook_secret = provider.webhook_url.as_ref().map(|_| {
        state
            .keys
            .webhook_secret(provider.id, provider.webhook_secret_generation)
    });
    Ok((
        StatusCode::CREATED,
        Json(CreatedProvider {
            id: provider.id,
            api_key,
            webhook_secret,
            provider,
        }),
    ))
}

/// Rotates a provider's webhook secret. The new secret is shown once; for the grace
/// period (`RESCUE_WEBHOOK_SECRET_GRACE_H`, 24 h by default) webhooks are signed with
/// both the new and the previous secret, so the provider can switch without a gap.
#[utoipa::path(post, path = "/v1/admin/providers/{provider_id}/webhook-secret", tag = "admin",
    security(("bearer" = [])),
    params(("provider_id" = ProviderId, Path, description = "the provider")),
    responses(
        (status = 200, description = "rotated; the new secret is shown once", body = RotatedSecret),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rotate_webhook_secret(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    Path(raw_id): Path<String>,
) -> Result<Json<RotatedSecret>, ApiError> {
    let provider_id: ProviderId = raw_id
        .parse()
        .map_err(|_| ApiError::not_found("provider"))?;
    let now = domain::time::to_storage_precision(state.clock.now());
    let provider = state
        .store
        .rotate_webhook_secret(provider_id, now)
        .await
        .map_err(|error| match error {
            domain::ports::StoreError::NotFound => ApiError::not_found("provider"),
            other => other.into(),
        })?;
    tracing::info!(provider_id = %provider.id, generation = provider.webhook_secret_generation, "webhook secret rotated");
    Ok(Json(RotatedSecret {
        provider_id: provider.id,
        webhook_secret: state
            .keys
            .webhook_secret(provider.id, provider.webhook_secret_generation),
        generation: provider.webhook_secret_generation,
        previous_valid_until: now + state.webhooks.rotation_grace,
    }))
}

/// A webhook URL must be absolute HTTP(S) without credentials. (Where it may point is
/// checked again at delivery time.)
fn validate_webhook_url(url: &str) -> Result<(), ApiError> {
    let invalid = |message: &str| ApiError::invalid_field("webhook_url", message);
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid("must be an absolute http:// or https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(invalid("must name a host"));
    }
    if authority.contains('@') {
        return Err(invalid("must not carry credentials"));
    }
    if url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("must be at most 2048 characters without spaces"));
    }
    Ok(())
}

/// Creates an agent, expert or admin.
#[utoipa::path(post, path = "/v1/admin/users", tag = "admin",
    security(("bearer" = [])),
    request_body = NewUserInput,
    responses(
        (status = 201, description = "created", body = User),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "username taken", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_user(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
    body: ApiJson<NewUserInput>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let request = body.value;
    request.validate()?;
    let password = request.password.clone();
    let password_hash = tokio::task::spawn_blocking(move || security::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let mut skills = request.skills;
    skills.sort();
    skills.dedup();
    let user = User {
        id: UserId::new_v7(),
        username: request.username,
        display_name: request
            .display_name
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty()),
        role: request.role,
        skills,
        created_at: domain::time::to_storage_precision(state.clock.now()),
    };
    state
        .store
        .insert_user(&user, &password_hash)
        .await
        .map_err(|error| match error {
            domain::ports::StoreError::Conflict(_) => ApiError::conflict("username is taken"),
            other => other.into(),
        })?;
    tracing::info!(user_id = %user.id, role = %user.role, "user created");
    Ok((StatusCode::CREATED, Json(user)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_must_be_absolute_http_without_credentials() {
        assert!(validate_webhook_url("https://tow.example/hooks/rescue").is_ok());
        assert!(validate_webhook_url("http://tow.example:8443").is_ok());
        for bad in [
            "ftp://tow.example",
            "tow.example/hook",
            "https://",
            "https://user:pw@tow.example",
            "https://a b",
        ] {
            assert!(validate_webhook_url(bad).is_err(), "{bad}");
        }
    }
}
