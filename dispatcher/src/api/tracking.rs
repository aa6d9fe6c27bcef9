//! Tracking views: the assigned truck's trajectory for agents, alert handling, and the
//! customer's tracking link (JSON and a small self-refreshing page).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use domain::ports::StoreError;
use domain::{Alert, AlertId, CaseId, CaseStatus, Service};
use serde::{Deserialize, Serialize};

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::AgentAuth;
use crate::state::AppState;

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
    if state.store.get_case(id).await?.is_none() {
        return Err(ApiError::not_found("case"));
    }
    let stored = state.store.case_fixes(id).await?;
    let vehicle = match stored.first() {
        Some(fix) => fix.vehicle_id,
        None => match state
            .store
            .case_offers(id)
            .await?
            .into_iter()
            .rev()
            .find(|o| o.state == domain::OfferState::Accepted)
        {
            Some(job) => job.vehicle_id,
            None => domain::VehicleId(uuid::Uuid::nil()),
        },
    };
    let fixes: Vec<tracker::Fix> = stored
        .iter()
        .map(|stored| tracker::Fix {
            at: stored.fix.ts,
            position: stored.fix.position,
            speed_kmh: stored.fix.speed_kmh,
        })
        .collect();
    let filter = crate::tracking::tracker_config(&state.config.settings)
        .progress
        .filter;
    let path = tracker::Trajectory::from_fixes(id, vehicle, &fixes, &filter);
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
        .store
        .acknowledge_alert(alert_id(&raw_id)?, &actor, state.clock.now())
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
        .store
        .resolve_alert(alert_id(&raw_id)?, &actor, state.clock.now())
        .await
        .map_err(alert_error)?;
    Ok(Json(alert))
}

/// The truck as the customer sees it: roughly where, never exactly.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackedVehicle {
    /// Latitude rounded to about 50 m.
    pub lat: f64,
    /// Longitude rounded to about 50 m.
    pub lon: f64,
    /// When the position was taken.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// What the customer's tracking page shows.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackingView {
    /// Where the case stands.
    pub status: CaseStatus,
    /// The service on its way.
    pub service: Service,
    /// The customer's own position (as they gave it).
    pub customer: TrackedPoint,
    /// When help was promised.
    pub promised_arrival: Option<chrono::DateTime<chrono::Utc>>,
    /// When help is now expected.
    pub predicted_arrival: Option<chrono::DateTime<chrono::Utc>>,
    /// Distance still to go, rounded to 100 m.
    pub remaining_distance_m: Option<f64>,
    /// The truck, while it is on its way (none before assignment, on scene or after).
    pub vehicle: Option<TrackedVehicle>,
    /// Messages the seat agents sent the customer, oldest first.
    pub updates: Vec<CustomerUpdate>,
}

/// A message from a seat agent to the customer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CustomerUpdate {
    /// When it was sent.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The message.
    pub message: String,
}

/// A point.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TrackedPoint {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
}

/// Rounds a position to a grid of about 50 m, so the page never reveals the driver's
/// exact whereabouts.
fn round_50m(lat: f64, lon: f64) -> (f64, f64) {
    let lat_step = 50.0 / 111_195.0;
    let lon_step = lat_step / lat.to_radians().cos().max(0.01);
    (
        (lat / lat_step).round() * lat_step,
        (lon / lon_step).round() * lon_step,
    )
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
    let case = state
        .store
        .get_case(case_id)
        .await?
        .ok_or_else(|| ApiError::not_found("tracking link"))?;
    let on_the_way = matches!(case.status, CaseStatus::Assigned | CaseStatus::EnRoute);
    let mut vehicle = None;
    let mut remaining = None;
    if on_the_way && let Some(job) = state.store.active_job(case.id).await? {
        let live = state.registry.latest_fix(job.vehicle_id);
        if let Some(fix) = live {
            let (lat, lon) = round_50m(fix.position.lat(), fix.position.lon());
            vehicle = Some(TrackedVehicle {
                lat,
                lon,
                updated_at: fix.ts,
            });
            remaining =
                Some((fix.position.distance_m(&case.location.position) / 100.0).round() * 100.0);
        }
    }
    let snapshot = state.tracking.snapshot(case.id);
    if let Some(distance) = snapshot.and_then(|s| s.remaining_distance_m) {
        remaining = Some((distance / 100.0).round() * 100.0);
    }
    let predicted = snapshot
        .and_then(|s| s.predicted_arrival)
        .or(case.predicted_arrival);
    let updates = state
        .store
        .timeline(case.id)
        .await?
        .into_iter()
        .filter(|event| event.kind == domain::EventKind::CustomerNotified)
        .filter_map(|event| {
            let message = event.data.get("message")?.as_str()?.to_owned();
            Some(CustomerUpdate {
                at: event.at,
                message,
            })
        })
        .collect();
    Ok(Json(TrackingView {
        status: case.status,
        service: case.service,
        customer: TrackedPoint {
            lat: case.location.position.lat(),
            lon: case.location.position.lon(),
        },
        promised_arrival: case.promised_arrival,
        predicted_arrival: if on_the_way { predicted } else { None },
        remaining_distance_m: if on_the_way { remaining } else { None },
        vehicle,
        updates,
    }))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_moves_a_position_by_at_most_about_35_metres() {
        let exact = domain::LatLon::new(31.230_417, 121.473_712).unwrap();
        let (lat, lon) = round_50m(exact.lat(), exact.lon());
        let rounded = domain::LatLon::new(lat, lon).unwrap();
        let moved = exact.distance_m(&rounded);
        assert!(moved <= 36.0, "{moved}");
        assert_ne!((lat, lon), (exact.lat(), exact.lon()));
    }
}
