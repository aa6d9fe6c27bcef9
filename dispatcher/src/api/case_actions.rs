//! What a seat agent does on a case besides dispatch: see the nearest candidates to
//! assign by hand, write a note, send the customer an update, call the customer or the
//! driver through a masked number; and the providers' service areas for the map.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::{Actor, CaseId, Event, PhoneNumber, ProviderId, VehicleId};
use serde::{Deserialize, Serialize};

use crate::api::diagnosis::{CallBinding, call_error};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{AgentAuth, ApiJson};
use crate::api::state::AppState;
use crate::services::calls::Callee;
use crate::services::cascade::AssignError;
use crate::services::cases::AddError;

/// Longest note or customer update, in characters.
const MAX_TEXT_CHARS: usize = 2000;

fn case_id(raw: &str) -> Result<CaseId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("case"))
}

fn agent_actor(agent: &domain::User) -> Actor {
    Actor::User {
        role: agent.role,
        id: agent.id,
    }
}

/// A vehicle an agent may assign, as the matcher ranks it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Candidate {
    /// The server's id (what `POST /v1/cases/{case_id}/assign` takes).
    pub vehicle_id: VehicleId,
    /// The provider's own id for it.
    pub vehicle_ref: String,
    /// Licence plate.
    pub plate: Option<String>,
    /// Its provider.
    pub provider_id: ProviderId,
    /// The provider's name.
    pub provider_name: String,
    /// Great-circle distance to the customer, metres.
    pub distance_m: f64,
    /// Estimated time of arrival by the ETA model, seconds.
    pub eta_s: u32,
    /// What estimated it: `road` (the road network) or `straight_line` (no network, or
    /// this truck or the customer is off it).
    pub eta_model: String,
    /// Metres of road to the customer; null on the straight line.
    pub road_distance_m: Option<f64>,
    /// The provider's acceptance rate (0–1).
    pub acceptance_rate: f64,
    /// The provider's on-time rate (0–1).
    pub on_time_rate: f64,
    /// Within the tie window of the fastest (the record decided among these).
    pub near_tie: bool,
}

/// The nearest candidates of a case.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CandidateList {
    /// Best first, as the matcher would offer them.
    pub candidates: Vec<Candidate>,
    /// The radius step they were found in, metres; absent when nobody qualifies.
    pub radius_m: Option<f64>,
}

/// The vehicles that could take a dispatching or escalated case now: available, fresh,
/// capable and covering the location, ranked by ETA and provider record as the matcher
/// ranks them. Empty when nobody qualifies even at the widest radius; 409 for a case in
/// another status (it cannot be assigned).
#[utoipa::path(get, path = "/v1/cases/{case_id}/candidates", tag = "dispatch",
    security(("bearer" = [])),
    params(("case_id" = String, Path, description = "case id")),
    responses((status = 200, body = CandidateList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "the case is not dispatching or escalated", body = ErrorBody)))]
pub async fn candidates(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
    Path(raw_id): Path<String>,
) -> Result<Json<CandidateList>, ApiError> {
    let id = case_id(&raw_id)?;
    let assignable = state.cascade.assignable(id).await.map_err(assign_error)?;
    let candidates = assignable
        .candidates
        .into_iter()
        .map(|found| {
            let candidate = found.candidate;
            Candidate {
                vehicle_id: candidate.vehicle_id,
                vehicle_ref: found
                    .vehicle
                    .as_ref()
                    .map(|v| v.vehicle_id.clone())
                    .unwrap_or_default(),
                plate: found.vehicle.and_then(|v| v.plate),
                provider_id: candidate.provider_id,
                provider_name: found.provider_name,
                distance_m: candidate.distance_m.round(),
                eta_s: candidate.eta_s,
                eta_model: candidate.eta_model.to_owned(),
                road_distance_m: candidate.road_distance_m,
                acceptance_rate: (candidate.score.acceptance_rate * 1000.0).round() / 1000.0,
                on_time_rate: (candidate.score.on_time_rate * 1000.0).round() / 1000.0,
                near_tie: candidate.near_tie,
            }
        })
        .collect();
    Ok(Json(CandidateList {
        candidates,
        radius_m: assignable.radius_m,
    }))
}

/// How a refused assignment (or candidate list) reads over HTTP.
pub(crate) fn assign_error(error: AssignError) -> ApiError {
    match error {
        AssignError::CaseNotFound => ApiError::not_found("case"),
        AssignError::NoSuchVehicle => ApiError::invalid_field("vehicle_id", "no such vehicle"),
        AssignError::Incapable(_) => ApiError::invalid_field("vehicle_id", error.to_string()),
        AssignError::NotAssignable(_) => ApiError::conflict(error.to_string()),
        AssignError::Store(cause) => cause.into(),
    }
}

fn add_error(error: AddError) -> ApiError {
    match error {
        AddError::NotFound => ApiError::not_found("case"),
        AddError::Closed(_) => ApiError::conflict(error.to_string()),
        AddError::Store(cause) => cause.into(),
    }
}

fn checked_text(field: &str, raw: &str) -> Result<String, ApiError> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(ApiError::invalid_field(field, "must not be empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(ApiError::invalid_field(
            field,
            format!("must be at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(text.to_owned())
}

/// An agent's note.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// The note, 1 to 2000 characters.
    pub text: String,
}

/// Adds an agent's note to the case timeline (also on a closed case: notes are how a
/// dispute is annotated). The note is the timeline event that comes back.
#[utoipa::path(post, path = "/v1/cases/{case_id}/notes", tag = "cases",
    security(("bearer" = [])),
    params(("case_id" = String, Path, description = "case id")),
    request_body = NoteRequest,
    responses((status = 201, body = Event), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_note(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    Path(raw_id): Path<String>,
    body: ApiJson<NoteRequest>,
) -> Result<(StatusCode, Json<Event>), ApiError> {
    let id = case_id(&raw_id)?;
    let text = checked_text("text", &body.value.text)?;
    let event = state
        .cases
        .add_note(id, agent_actor(&agent), &text)
        .await
        .map_err(add_error)?;
    Ok((StatusCode::CREATED, Json(event)))
}

/// An update for the customer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyRequest {
    /// What the customer reads, 1 to 2000 characters.
    pub message: String,
}

/// Sends the customer an update: it lands in the timeline and shows on the customer's
/// tracking page and in `GET /v1/track/{customer_token}` (`updates`). 409 once the case
/// is closed.
#[utoipa::path(post, path = "/v1/cases/{case_id}/notify", tag = "cases",
    security(("bearer" = [])),
    params(("case_id" = String, Path, description = "case id")),
    request_body = NotifyRequest,
    responses((status = 201, body = Event), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "the case is closed", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn notify_customer(
    State(state): State<AppState>,
    AgentAuth(agent): AgentAuth,
    Path(raw_id): Path<String>,
    body: ApiJson<NotifyRequest>,
) -> Result<(StatusCode, Json<Event>), ApiError> {
    let id = case_id(&raw_id)?;
    let message = checked_text("message", &body.value.message)?;
    let event = state
        .cases
        .notify_customer(id, agent_actor(&agent), &message)
        .await
        .map_err(add_error)?;
    Ok((StatusCode::CREATED, Json(event)))
}

/// Whom the agent calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallParty {
    /// The customer who asked for help.
    Customer,
    /// The driver of the truck assigned to the case.
    Driver,
}

/// A masked call by an agent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentCallRequest {
    /// `customer` or `driver`.
    pub party: CallParty,
    /// The agent's own line (desk phone or headset), e.g. `+861088880002`.
    pub agent_phone: String,
}

/// Binds the case's virtual number (`RESCUE_PHONE_POOL`) to the agent's line and the
/// customer, or the driver of the assigned truck, without showing either number to the
/// other. The case keeps one number until it closes; a new call replaces the parties.
/// 409 when the case is closed, or for `driver` when no truck is assigned or its provider
/// registered no driver phone; 503 `phone_pool_exhausted` when no number is free.
#[utoipa::path(post, path = "/v1/cases/{case_id}/call", tag = "cases",
    security(("bearer" = [])),
    params(("case_id" = String, Path, description = "case id")),
    request_body = AgentCallRequest,
    responses((status = 200, body = CallBinding), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "closed, or no driver to call", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 503, description = "no virtual number free", body = ErrorBody)))]
pub async fn call(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
    Path(raw_id): Path<String>,
    body: ApiJson<AgentCallRequest>,
) -> Result<Json<CallBinding>, ApiError> {
    let id = case_id(&raw_id)?;
    let agent_phone = PhoneNumber::parse(&body.value.agent_phone)
        .map_err(|error| ApiError::invalid_field("agent_phone", error.message))?;
    let callee = match body.value.party {
        CallParty::Customer => Callee::Customer,
        CallParty::Driver => Callee::Driver,
    };
    let (case, binding) = state
        .calls
        .agent_call(id, callee, &agent_phone)
        .await
        .map_err(|error| {
            call_error(
                error,
                "agent_phone",
                "is the number of the party being called",
            )
        })?;
    Ok(Json(CallBinding {
        case_id: case.id,
        virtual_number: binding.virtual_number.as_str().to_owned(),
        expires_at: binding.expires_at,
    }))
}

/// A provider on the agents' map.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProviderSummary {
    /// The provider.
    pub id: ProviderId,
    /// Its name.
    pub name: String,
    /// Where it is contracted to work (GeoJSON Polygon or MultiPolygon); absent: anywhere.
    #[schema(value_type = Option<Object>)]
    pub service_area: Option<serde_json::Value>,
    /// Contract priority (higher is preferred among near-ties).
    pub priority: i32,
}

/// The providers.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProviderList {
    /// Every contracted provider, by name.
    pub providers: Vec<ProviderSummary>,
}

/// The contracted providers with their service areas, for the agents' map (no webhook
/// settings or secrets).
#[utoipa::path(get, path = "/v1/providers", tag = "dispatch",
    security(("bearer" = [])),
    responses((status = 200, body = ProviderList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn providers(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
) -> Result<Json<ProviderList>, ApiError> {
    let mut providers: Vec<ProviderSummary> = state
        .registry
        .providers()
        .await?
        .into_iter()
        .map(|provider| ProviderSummary {
            id: provider.id,
            name: provider.name,
            service_area: provider.service_area,
            priority: provider.priority,
        })
        .collect();
    providers.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.0.cmp(&b.id.0)));
    Ok(Json(ProviderList { providers }))
}
