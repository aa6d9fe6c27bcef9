//! The provider API: a contracted tow company registers its vehicles, reports positions,
//! answers offers and reports job progress. A provider sees and changes only its own.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::fleet::validate_external_vehicle_id;
use domain::ports::StoreError;
use domain::{
    Case, CaseId, CaseStatus, DeclineReason, Offer, OfferId, Service, Vehicle, VehicleRegistration,
};
use serde::{Deserialize, Serialize};

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{ApiJson, ProviderAuth};
use crate::api::state::AppState;
use crate::services::fleet_ingest::{FixInput, Rejection};
pub use crate::services::views::{JobLocation, OfferView};

/// Most positions in one batch.
pub const MAX_FIXES_PER_BATCH: usize = 1000;

fn external_id(raw: &str) -> Result<(), ApiError> {
    validate_external_vehicle_id(raw)
        .map_err(|error| ApiError::invalid_field(error.field, error.message))
}

/// Registers or updates one of the provider's vehicles, by the provider's own id.
#[utoipa::path(put, path = "/v1/provider/vehicles/{vehicle_id}", tag = "provider",
    security(("bearer" = [])),
    params(("vehicle_id" = String, Path, description = "the provider's own id for the vehicle")),
    request_body = VehicleRegistration,
    responses(
        (status = 201, description = "registered", body = Vehicle),
        (status = 200, description = "updated", body = Vehicle),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "a device is bound to another vehicle, or the vehicle holds an offer or a job", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn put_vehicle(
    State(state): State<AppState>,
    ProviderAuth(provider): ProviderAuth,
    Path(vehicle_id): Path<String>,
    body: ApiJson<VehicleRegistration>,
) -> Result<(StatusCode, Json<Vehicle>), ApiError> {
    external_id(&vehicle_id)?;
    let registration = body.value.validate()?;
    let registered = state
        .registry
        .register(provider.id, &vehicle_id, &registration, state.clock.now())
        .await?;
    let status = if registered.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    tracing::info!(provider_id = %provider.id, vehicle = %registered.vehicle.id, created = registered.created, "vehicle registered");
    Ok((status, Json(registered.vehicle)))
}

/// One of the provider's vehicles.
#[utoipa::path(get, path = "/v1/provider/vehicles/{vehicle_id}", tag = "provider",
    security(("bearer" = [])),
    params(("vehicle_id" = String, Path, description = "the provider's own id for the vehicle")),
    responses((status = 200, body = Vehicle), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_vehicle(
    State(state): State<AppState>,
    ProviderAuth(provider): ProviderAuth,
    Path(vehicle_id): Path<String>,
) -> Result<Json<Vehicle>, ApiError> {
    let vehicle = state
        .registry
        .provider_vehicle(provider.id, &vehicle_id)
        .await?
        .ok_or_else(|| ApiError::not_found("vehicle"))?;
    Ok(Json(vehicle))
}

/// The provider's vehicles.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VehicleList {
    /// Every vehicle of the provider.
    pub vehicles: Vec<Vehicle>,
}

/// Every vehicle of the provider.
#[utoipa::path(get, path = "/v1/provider/vehicles", tag = "provider",
    security(("bearer" = [])),
    responses((status = 200, body = VehicleList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_vehicles(
    State(state): State<AppState>,
    ProviderAuth(provider): ProviderAuth,
) -> Result<Json<VehicleList>, ApiError> {
    let vehicles = state.registry.provider_vehicles(provider.id).await?;
    Ok(Json(VehicleList { vehicles }))
}

/// A batch of positions.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PositionBatch {
    /// Up to 1000 fixes, of any of the provider's vehicles.
    pub fixes: Vec<FixInput>,
}

/// What became of a batch.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PositionReceipt {
    /// How many fixes were taken.
    pub accepted: usize,
    /// The refused ones, by index, with the reason.
    pub rejected: Vec<RejectionView>,
}

/// A refused fix.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RejectionView {
    /// Its index in `fixes`.
    pub index: usize,
    /// Why.
    pub error: String,
}

impl From<Rejection> for RejectionView {
    fn from(rejection: Rejection) -> Self {
        RejectionView {
            index: rejection.index,
            error: rejection.error,
        }
    }
}

/// Reports positions of the provider's vehicles. Each fix is checked on its own (range,
/// not in the future beyond a small skew, newer than the vehicle's last fix) and refused
/// with its reason without failing the rest.
#[utoipa::path(post, path = "/v1/provider/positions", tag = "provider",
    security(("bearer" = [])),
    request_body = PositionBatch,
    responses((status = 200, body = PositionReceipt), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn post_positions(
    State(state): State<AppState>,
    ProviderAuth(provider): ProviderAuth,
    body: ApiJson<PositionBatch>,
) -> Result<Json<PositionReceipt>, ApiError> {
    let fixes = body.value.fixes;
    if fixes.len() > MAX_FIXES_PER_BATCH {
        return Err(ApiError::invalid_field(
            "fixes",
            format!("at most {MAX_FIXES_PER_BATCH} fixes per batch"),
        ));
    }
    let (accepted, rejected) = state
        .registry
        .ingest_provider_fixes(provider.id, fixes, state.clock.now())
        .await?;
    Ok(Json(PositionReceipt {
        accepted,
        rejected: rejected.into_iter().map(Into::into).collect(),
    }))
}

/// The provider's pending offers.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OfferList {
    /// Oldest first.
    pub offers: Vec<OfferView>,
}

/// The provider's pending offers, oldest first.
#[utoipa::path(get, path = "/v1/provider/offers", tag = "provider",
    security(("bearer" = [])),
    responses((status = 200, body = OfferList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_offers(
    State(state): State<AppState>,
    ProviderAuth(provider): ProviderAuth,
) -> Result<Json<OfferList>, ApiError> {
    let offers = state.cascade.provider_offers(provider.id).await?;
    Ok(Json(OfferList { offers }))
}

/// Accepting an offer.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    /// The provider's own ETA in seconds (1 s – 12 h); the promised arrival uses it.
    #[serde(default)]
    pub eta_s: Option<u32>,
}

/// The driver as the assigned provider sees them.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobCustomer {
    /// Name.
    pub name: Option<String>,
    /// Call-back number.
    pub phone: String,
    /// Licence plate.
    pub plate: Option<String>,
    /// Make and model.
    pub vehicle_model: Option<String>,
}

/// A job: an accepted offer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobView {
    /// The case.
    pub case_id: CaseId,
    /// The case's status.
    pub status: CaseStatus,
    /// The provider's own id of the vehicle.
    pub vehicle_id: String,
    /// The job.
    pub service: Service,
    /// Where.
    pub location: JobLocation,
    /// Who.
    pub customer: JobCustomer,
    /// Fault description.
    pub fault: domain::Fault,
    /// When the vehicle was promised to be there.
    pub promised_arrival: Option<chrono::DateTime<chrono::Utc>>,
}

/// Accepts an offer: the case is assigned to the vehicle and the promised arrival set.
/// Too late (expired) or answered already: 409.
#[utoipa::path(post, path = "/v1/provider/offers/{offer_id}/accept", tag = "provider",
    security(("bearer" = [])),
    params(("offer_id" = String, Path, description = "offer id")),
    request_body(content = Option<AcceptRequest>, description = "optional own ETA"),
    responses((status = 200, body = JobView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "expired or already answered", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn accept_offer(
    State(state): State<AppState>,
    ProviderAuth(provider): ProviderAuth,
    Path(offer_id): Path<String>,
    body: Option<ApiJson<AcceptRequest>>,
) -> Result<Json<JobView>, ApiError> {
    let offer_id: OfferId = offer_id.parse().map_err(|_| ApiError::not_found("offer"))?;
    let eta_s = body.and_then(|body| body.value.eta_s);
    if eta_s.is_some_and(|eta| !(1..=12 * 3600).contains(&eta)) {
        return Err(ApiError::invalid_field(
            "eta_s",
            "must be between 1 s and 12 h",
        ));
    }
    let (offer, case) = state
        .cascade
        .accept_offer(offer_id, provider.id, eta_s)
        .await
        .map_err(|error| offer_error(error, "offer"))?;
    let vehicle_ref = state.cascade.vehicle_ref(offer.vehicle_id);
    Ok(Json(job_view(&case, vehicle_ref)))
}

fn job_view(case: &Case, vehicle_ref: String) -> JobView {
    JobView {
        case_id: case.id,
        status: case.status,
        vehicle_id: vehicle_ref,
        service: case.service,
        location: JobLocation::from(case),
        customer: JobCustomer {
            name: case.customer.name.clone(),
            phone: case.customer.phone.as_str().to_owned(),
            plate: case.customer.plate.clone(),
            vehicle_model: case.customer.vehicle_model.clone(),
        },
        fault: case.fault.clone(),
        promised_arrival: case.promised_arrival,
    }
}

/// Offers and jobs of other providers are "not found", not "forbidden": their existence
/// is not this provider's business.
fn offer_error(error: StoreError, what: &str) -> ApiError {
    match error {
        StoreError::NotFound => ApiError::not_found(what),
        other => other.into(),
    }
}

/// Declining an offer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclineRequest {
    /// `busy`, `too_far`, `no_equipment` or `other`.
    pub reason: DeclineReason,
}

/// Declines an offer; the next vehicle is offered at once.
#[utoipa::path(post, path = "/v1/provider/offers/{offer_id}/decline", tag = "provider",
    security(("bearer" = [])),
    params(("offer_id" = String, Path, description = "offer id")),
    request_body = DeclineRequest,
    responses((status = 200, body = Offer), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn decline_offer(
    State(state): State<AppState>,
    ProviderAuth(provider): ProviderAuth,
    Path(offer_id): Path<String>,
    body: ApiJson<DeclineRequest>,
) -> Result<Json<Offer>, ApiError> {
    let offer_id: OfferId = offer_id.parse().map_err(|_| ApiError::not_found("offer"))?;
    let offer = state
        .cascade
        .decline_offer(offer_id, provider.id, body.value.reason)
        .await
        .map_err(|error| offer_error(error, "offer"))?;
    Ok(Json(offer))
}

/// A job status report.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobStatusRequest {
    /// `en_route`, `on_scene`, `in_service` or `completed`.
    pub status: CaseStatus,
}

/// The case after a job status report.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobStatusReceipt {
    /// The case.
    pub case_id: CaseId,
    /// Its status now.
    pub status: CaseStatus,
}

/// Reports progress on one of the provider's jobs, along the status machine (409 for a
/// skipped or backward step); completion frees the vehicle.
#[utoipa::path(post, path = "/v1/provider/jobs/{case_id}/status", tag = "provider",
    security(("bearer" = [])),
    params(("case_id" = String, Path, description = "case id")),
    request_body = JobStatusRequest,
    responses((status = 200, body = JobStatusReceipt), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn job_status(
    State(state): State<AppState>,
    ProviderAuth(provider): ProviderAuth,
    Path(case_id): Path<String>,
    body: ApiJson<JobStatusRequest>,
) -> Result<Json<JobStatusReceipt>, ApiError> {
    let case_id: CaseId = case_id.parse().map_err(|_| ApiError::not_found("job"))?;
    let to = body.value.status;
    if !matches!(
        to,
        CaseStatus::EnRoute | CaseStatus::OnScene | CaseStatus::InService | CaseStatus::Completed
    ) {
        return Err(ApiError::invalid_field(
            "status",
            "must be en_route, on_scene, in_service or completed",
        ));
    }
    let case = state
        .cascade
        .report_job_status(case_id, provider.id, to)
        .await
        .map_err(|error| offer_error(error, "job"))?;
    Ok(Json(JobStatusReceipt {
        case_id: case.id,
        status: case.status,
    }))
}
