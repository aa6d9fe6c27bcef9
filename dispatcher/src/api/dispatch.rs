//! What agents do with dispatch: the fleet map, manual assignment, re-dispatch of an
//! escalated case, a case's offers, and the alert list.

use axum::Json;
use axum::extract::{Path, Query, State};
use domain::ports::StoreError;
use domain::{
    Alert, AlertState, Case, CaseId, Offer, ProviderId, Service, VehicleId, VehicleState,
};
use serde::{Deserialize, Serialize};

use crate::api::case_actions::assign_error;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{AgentAuth, ApiJson};
use crate::api::state::AppState;

/// Most vehicles one map query returns.
const MAX_MAP_VEHICLES: usize = 20_000;

/// The map query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FleetQuery {
    /// `min_lon,min_lat,max_lon,max_lat` (GeoJSON order); `min_lon > max_lon` crosses the
    /// antimeridian.
    pub bbox: String,
    /// Only vehicles in this state.
    pub state: Option<VehicleState>,
}

/// A vehicle on the map.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MapVehicle {
    /// The server's id.
    pub id: VehicleId,
    /// Its provider.
    pub provider_id: ProviderId,
    /// The provider's own id for it.
    pub vehicle_id: String,
    /// Dispatch state.
    pub state: VehicleState,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
    /// Time of the position.
    pub fix_at: chrono::DateTime<chrono::Utc>,
    /// What it can do.
    pub capabilities: Vec<Service>,
}

/// Vehicles in a box.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FleetMap {
    /// The vehicles (at most 20,000).
    pub vehicles: Vec<MapVehicle>,
    /// True when the box held more.
    pub truncated: bool,
}

fn parse_bbox(text: &str) -> Result<[f64; 4], ApiError> {
    let parts: Vec<f64> = text
        .split(',')
        .map(|part| part.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            ApiError::bad_request("bbox must be four numbers: min_lon,min_lat,max_lon,max_lat")
        })?;
    let [min_lon, min_lat, max_lon, max_lat]: [f64; 4] = parts.try_into().map_err(|_| {
        ApiError::bad_request("bbox must be four numbers: min_lon,min_lat,max_lon,max_lat")
    })?;
    let lon_ok = |lon: f64| (-180.0..=180.0).contains(&lon);
    let lat_ok = |lat: f64| (-90.0..=90.0).contains(&lat);
    if !(lon_ok(min_lon) && lon_ok(max_lon) && lat_ok(min_lat) && lat_ok(max_lat))
        || min_lat > max_lat
    {
        return Err(ApiError::bad_request(
            "bbox out of range (lon -180..180, lat -90..90, min_lat ≤ max_lat)",
        ));
    }
    Ok([min_lon, min_lat, max_lon, max_lat])
}

/// Vehicles with a position inside a box, for the agents' map.
#[utoipa::path(get, path = "/v1/fleet", tag = "dispatch",
    security(("bearer" = [])),
    params(FleetQuery),
    responses((status = 200, body = FleetMap), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn fleet(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
    query: Result<Query<FleetQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<FleetMap>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let [min_lon, min_lat, max_lon, max_lat] = parse_bbox(&query.bbox)?;
    let found = state
        .registry
        .index()
        .within_bbox(min_lat, min_lon, max_lat, max_lon);
    let mut vehicles = Vec::with_capacity(found.len().min(MAX_MAP_VEHICLES));
    let mut truncated = false;
    for vehicle in found {
        if query.state.is_some_and(|wanted| wanted != vehicle.state) {
            continue;
        }
        if vehicles.len() == MAX_MAP_VEHICLES {
            truncated = true;
            break;
        }
        vehicles.push(MapVehicle {
            id: vehicle.id,
            provider_id: vehicle.provider,
            vehicle_id: state
                .registry
                .meta(vehicle.id)
                .map(|meta| meta.external_id)
                .unwrap_or_default(),
            state: vehicle.state,
            lat: vehicle.position.lat(),
            lon: vehicle.position.lon(),
            fix_at: vehicle.fix_at,
            capabilities: vehicle.capabilities.iter().collect(),
        });
    }
    Ok(Json(FleetMap {
        vehicles,
        truncated,
    }))
}

fn case_id(raw: &str) -> Result<CaseId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("case"))
}

/// A manual assignment.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// The server's id of an `available` vehicle.
    pub vehicle_id: VehicleId,
}

/// Assigns an available vehicle to a dispatching or escalated case; any pending offer of
/// the case is withdrawn. The promised arrival comes from the ETA model.
#[utoipa::path(post, path = "/v1/cases/{case_id}/assign", tag = "dispatch",
    security(("bearer" = [])),
    params(("case_id" = String, Path, description = "case id")),
    request_body = AssignRequest,
    responses((status = 200, body = Case), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "vehicle not available or case not assignable", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn assign(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    Path(raw_id): Path<String>,
    body: ApiJson<AssignRequest>,
) -> Result<Json<Case>, ApiError> {
    let id = case_id(&raw_id)?;
    let actor = domain::Actor::User {
        role: agent.role,
        id: agent.id,
    };
    let case = state
        .cascade
        .assign_manually(id, body.value.vehicle_id, &actor)
        .await
        .map_err(assign_error)?;
    Ok(Json(case))
}

/// Sends an escalated case back to dispatching with a fresh attempt budget.
#[utoipa::path(post, path = "/v1/cases/{case_id}/dispatch", tag = "dispatch",
    security(("bearer" = [])),
    params(("case_id" = String, Path, description = "case id")),
    responses((status = 200, body = Case), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "the case is not escalated", body = ErrorBody)))]
pub async fn redispatch(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    Path(raw_id): Path<String>,
) -> Result<Json<Case>, ApiError> {
    let id = case_id(&raw_id)?;
    let actor = domain::Actor::User {
        role: agent.role,
        id: agent.id,
    };
    let case = state
        .cascade
        .redispatch(id, &actor)
        .await
        .map_err(|error| match error {
            StoreError::NotFound => ApiError::not_found("case"),
            other => other.into(),
        })?;
    Ok(Json(case))
}

/// A case's offers.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CaseOffers {
    /// Every offer and job of the case, in order.
    pub offers: Vec<Offer>,
}

/// Every offer of a case, in order (with the job, if any).
#[utoipa::path(get, path = "/v1/cases/{case_id}/offers", tag = "dispatch",
    security(("bearer" = [])),
    params(("case_id" = String, Path, description = "case id")),
    responses((status = 200, body = CaseOffers), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn case_offers(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
    Path(raw_id): Path<String>,
) -> Result<Json<CaseOffers>, ApiError> {
    let id = case_id(&raw_id)?;
    let offers = state
        .cascade
        .case_offers(id)
        .await?
        .ok_or_else(|| ApiError::not_found("case"))?;
    Ok(Json(CaseOffers { offers }))
}

/// Which alerts.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `open`, `acknowledged` or `resolved`; all when absent.
    pub state: Option<AlertState>,
    /// At most this many, newest first (default 100, at most 1000).
    pub limit: Option<u32>,
}

/// Alerts, newest first.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertList {
    /// The alerts.
    pub alerts: Vec<Alert>,
}

/// Alerts, newest first.
#[utoipa::path(get, path = "/v1/alerts", tag = "dispatch",
    security(("bearer" = [])),
    params(AlertQuery),
    responses((status = 200, body = AlertList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn alerts(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
    query: Result<Query<AlertQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AlertList>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    Ok(Json(AlertList {
        alerts: state.alerts.list(query.state, limit).await?,
    }))
}
