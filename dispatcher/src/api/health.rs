//! Liveness, readiness and metrics.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use domain::CaseStatus;
use serde::Serialize;

use crate::api::error::ErrorBody;
use crate::api::state::AppState;
use crate::telemetry::CASES;

/// Health answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `unavailable`.
    pub status: &'static str,
    /// The storage backend: `sqlite` or `postgres`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<&'static str>,
    /// How ETAs are estimated: `road` or `straight_line`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_model: Option<&'static str>,
    /// The loaded road network, with a road ETA model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub road_network: Option<RoadNetworkHealth>,
}

/// A loaded road network.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoadNetworkHealth {
    /// The extract's file name.
    pub file: String,
    /// Routing nodes (directed road stretches between junctions).
    pub edges: usize,
    /// Bytes of memory the network holds.
    pub memory_bytes: usize,
    /// Whether it came from the prepared cache.
    pub from_cache: bool,
    /// Milliseconds it took to load.
    pub load_ms: u64,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        storage: None,
        eta_model: None,
        road_network: None,
    })
}

/// The process can serve: storage answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "ready", body = Health),
        (status = 503, description = "storage unreachable", body = ErrorBody)))]
pub async fn readyz(
    State(state): State<AppState>,
) -> Result<Json<Health>, crate::api::error::ApiError> {
    match tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => Ok(Json(Health {
            status: "ready",
            storage: Some(state.store.backend()),
            eta_model: Some(state.cascade.eta_model().name()),
            road_network: state.road_network.as_ref().map(|network| {
                let stats = network.stats();
                RoadNetworkHealth {
                    file: stats
                        .file
                        .file_name()
                        .map(|name| name.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    edges: stats.edges,
                    memory_bytes: stats.memory_bytes,
                    from_cache: stats.from_cache,
                    load_ms: stats.load_ms,
                }
            }),
        })),
        Ok(Err(error)) => Err(crate::api::error::ApiError::unavailable(error)),
        Err(_) => Err(crate::api::error::ApiError::unavailable(anyhow::anyhow!(
            "storage ping timed out"
        ))),
    }
}

/// Prometheus text exposition: HTTP requests by route and status, cases by status, and
/// the rest of the server's metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    match tokio::time::timeout(Duration::from_secs(2), state.store.count_cases_by_status()).await {
        Ok(Ok(counts)) => {
            for status in CaseStatus::ALL {
                let count = counts
                    .iter()
                    .find(|(counted, _)| *counted == status)
                    .map_or(0, |(_, count)| *count);
                metrics::gauge!(CASES, "status" => status.as_str()).set(count as f64);
            }
        }
        Ok(Err(error)) => tracing::warn!(error = %error, "cannot count cases for /metrics"),
        Err(_) => tracing::warn!("counting cases for /metrics timed out"),
    }
    state.registry.publish_gauges();
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
