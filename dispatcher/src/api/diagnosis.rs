//! Remote diagnosis over HTTP: the triage rules (admin), the phone-expert queue (experts:
//! claim, solve, escalate, masked call) and the phone-resolution report (agents, admins).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use diagnosis_core::{BridgeError, DiagnosisReport, RulesDocument};
use domain::{Case, DiagnosisTicket, PhoneNumber, Role, TicketId, TicketOutcome, User};
use serde::{Deserialize, Serialize};

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{AdminAuth, ApiJson, Principal};
use crate::api::state::AppState;
use crate::services::calls::CallError;

/// A phone expert (a console user with role `expert`); their skills come from their user
/// record.
pub struct ExpertAuth(pub User);

impl<S: Send + Sync> FromRequestParts<S> for ExpertAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Principal::from_request_parts(parts, state).await? {
            Principal::User(user) if user.role == Role::Expert => Ok(ExpertAuth(user)),
            other => Err(other.refusal("phone experts")),
        }
    }
}

fn ticket_id(raw: &str) -> Result<TicketId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("ticket"))
}

/// The active triage rules.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TriageRulesView {
    /// Stored version; 0 for the rules shipped with the server.
    pub version: i64,
    /// The document exactly as stored (TOML or JSON); the shipped defaults are TOML.
    pub document: String,
    /// The rules in their wire form (the JSON `PUT` accepts).
    pub rules: RulesDocument,
}

fn rules_view(state: &AppState) -> TriageRulesView {
    let active = state.diagnosis.active_rules();
    TriageRulesView {
        version: active.version,
        document: active.text,
        rules: active.rules.to_document(),
    }
}

/// The active triage rules: the document as stored and its parsed form.
#[utoipa::path(get, path = "/v1/admin/triage-rules", tag = "diagnosis",
    security(("bearer" = [])),
    responses((status = 200, body = TriageRulesView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn get_triage_rules(
    State(state): State<AppState>,
    AdminAuth(_admin): AdminAuth,
) -> Result<Json<TriageRulesView>, ApiError> {
    Ok(Json(rules_view(&state)))
}

/// Replaces the triage rules. The body is the whole document: JSON with
/// `Content-Type: application/json`, TOML otherwise (`application/toml`, `text/plain`).
/// A document with any error is refused with 422 naming the line, column and field of
/// each problem, and the active rules stay as they were.
#[utoipa::path(put, path = "/v1/admin/triage-rules", tag = "diagnosis",
    security(("bearer" = [])),
    request_body(content = String, description = "the rules document (TOML, or JSON with Content-Type application/json)",
        content_type = "application/toml"),
    responses((status = 200, description = "stored and active", body = TriageRulesView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "refused; the message names line and field", body = ErrorBody)))]
pub async fn put_triage_rules(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<TriageRulesView>, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the rules document must be UTF-8 text"))?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let mime = value.split(';').next().unwrap_or("").trim();
            mime.eq_ignore_ascii_case("application/json")
        });
    match state
        .diagnosis
        .replace_rules(text, json, &admin.actor())
        .await?
    {
        Ok(_) => Ok(Json(rules_view(&state))),
        Err(error) => Err(ApiError::invalid_rules(error)),
    }
}

/// A ticket with its case.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TicketWithCase {
    /// The ticket.
    pub ticket: DiagnosisTicket,
    /// Its case.
    pub case: Case,
}

/// The queue.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueView {
    /// Open tickets in queue order (priority, then waiting time), claimed ones included.
    pub tickets: Vec<DiagnosisTicket>,
    /// How many of them wait for an expert (not under a live claim).
    pub waiting: usize,
}

/// The phone-expert queue: open tickets in queue order (priority first, then the longest
/// wait), with who holds each claim.
#[utoipa::path(get, path = "/v1/diagnosis/queue", tag = "diagnosis",
    security(("bearer" = [])),
    responses((status = 200, body = QueueView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn queue(
    State(state): State<AppState>,
    ExpertAuth(_expert): ExpertAuth,
) -> Result<Json<QueueView>, ApiError> {
    let (tickets, waiting) = state.diagnosis.queue().await?;
    Ok(Json(QueueView { tickets, waiting }))
}

/// Claims the next ticket the expert is skilled for (highest priority, then longest
/// wait). Each ticket goes to exactly one expert however many claim at once. 200 with the
/// ticket and its case; **204 No Content** when nothing waits for the expert's skills.
#[utoipa::path(post, path = "/v1/diagnosis/claim", tag = "diagnosis",
    security(("bearer" = [])),
    responses((status = 200, description = "claimed", body = TicketWithCase),
        (status = 204, description = "nothing to claim"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn claim(
    State(state): State<AppState>,
    ExpertAuth(expert): ExpertAuth,
) -> Result<Response, ApiError> {
    let Some((ticket, case)) = state.diagnosis.claim(&expert).await? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    Ok(Json(TicketWithCase { ticket, case }).into_response())
}

/// What the expert says on closing a ticket.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// What was done or found, up to 2000 characters.
    #[serde(default)]
    pub notes: Option<String>,
}

fn notes(body: Option<ApiJson<ReportRequest>>) -> Result<Option<String>, ApiError> {
    let notes = body
        .and_then(|body| body.value.notes)
        .map(|notes| notes.trim().to_owned())
        .filter(|notes| !notes.is_empty());
    if notes
        .as_ref()
        .is_some_and(|notes| notes.chars().count() > 2000)
    {
        return Err(ApiError::invalid_field(
            "notes",
            "must be at most 2000 characters",
        ));
    }
    Ok(notes)
}

async fn report(
    state: &AppState,
    expert: &User,
    raw_id: &str,
    outcome: TicketOutcome,
    notes: Option<String>,
) -> Result<(DiagnosisTicket, Case), ApiError> {
    let id = ticket_id(raw_id)?;
    state
        .diagnosis
        .report(id, expert, outcome, notes)
        .await
        .map_err(|error| match error {
            domain::ports::StoreError::NotFound => ApiError::not_found("ticket"),
            other => other.into(),
        })
}

/// The expert solved it on the phone: the case closes as `resolved_remotely`, no truck
/// moves, and the case's virtual number is released. 409 unless the expert holds the
/// claim on an open ticket.
#[utoipa::path(post, path = "/v1/diagnosis/{ticket_id}/solve", tag = "diagnosis",
    security(("bearer" = [])),
    params(("ticket_id" = String, Path, description = "ticket id")),
    request_body(content = Option<ReportRequest>, description = "optional notes"),
    responses((status = 200, body = TicketWithCase), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "not held by this expert, or closed", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn solve(
    State(state): State<AppState>,
    ExpertAuth(expert): ExpertAuth,
    Path(raw_id): Path<String>,
    body: Option<ApiJson<ReportRequest>>,
) -> Result<Json<TicketWithCase>, ApiError> {
    let notes = notes(body)?;
    let (ticket, case) = report(&state, &expert, &raw_id, TicketOutcome::Solved, notes).await?;
    Ok(Json(TicketWithCase { ticket, case }))
}

/// The expert could not fix it: the case goes to `dispatching` at once (the ticket's
/// priority raised) and the matcher offers it to the nearest capable truck. 409 unless
/// the expert holds the claim on an open ticket.
#[utoipa::path(post, path = "/v1/diagnosis/{ticket_id}/escalate", tag = "diagnosis",
    security(("bearer" = [])),
    params(("ticket_id" = String, Path, description = "ticket id")),
    request_body(content = Option<ReportRequest>, description = "optional notes"),
    responses((status = 200, body = TicketWithCase), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "not held by this expert, or closed", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn escalate(
    State(state): State<AppState>,
    ExpertAuth(expert): ExpertAuth,
    Path(raw_id): Path<String>,
    body: Option<ApiJson<ReportRequest>>,
) -> Result<Json<TicketWithCase>, ApiError> {
    let notes = notes(body)?;
    let (ticket, case) = report(&state, &expert, &raw_id, TicketOutcome::Escalated, notes).await?;
    Ok(Json(TicketWithCase { ticket, case }))
}

/// A masked call: whom the expert calls from.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallRequest {
    /// The expert's own line (desk phone or headset), e.g. `+861088880001`.
    pub expert_phone: String,
}

/// The virtual number of a masked call.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallBinding {
    /// The case.
    pub case_id: domain::CaseId,
    /// Dial this; it connects the expert's line and the customer without showing either
    /// number to the other.
    pub virtual_number: String,
    /// Until when the number routes calls unless bound again.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// The answer to a failed masked-call binding: 503 `phone_pool_exhausted` (retry in 30 s)
/// when every number is taken, 422 on `field` when the caller would call themselves.
pub(crate) fn call_error(error: CallError, field: &str, same_party: &str) -> ApiError {
    match error {
        CallError::NotFound(what) => ApiError::not_found(what),
        CallError::Conflict(message) => ApiError::conflict(message),
        CallError::Bridge(BridgeError::PoolExhausted { .. }) => {
            let mut api_error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "phone_pool_exhausted",
                error.to_string(),
            );
            api_error.set_retry_after(30);
            api_error
        }
        CallError::Bridge(BridgeError::SameParty) => ApiError::invalid_field(field, same_party),
        CallError::Bridge(other) => ApiError::internal(other),
        CallError::Store(cause) => cause.into(),
        CallError::StoredNumber(message) => ApiError::internal(anyhow::anyhow!(message)),
    }
}

/// Binds a virtual number from the pool (`RESCUE_PHONE_POOL`) to the case and its two
/// parties, the expert's line and the customer. The same number is kept for the case until
/// it closes. 409 unless the expert holds the claim; 503 `phone_pool_exhausted` when every
/// number is bound to another case (or no pool is configured).
#[utoipa::path(post, path = "/v1/diagnosis/{ticket_id}/call", tag = "diagnosis",
    security(("bearer" = [])),
    params(("ticket_id" = String, Path, description = "ticket id")),
    request_body = CallRequest,
    responses((status = 200, body = CallBinding), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "not held by this expert, or closed", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 503, description = "no virtual number free", body = ErrorBody)))]
pub async fn call(
    State(state): State<AppState>,
    ExpertAuth(expert): ExpertAuth,
    Path(raw_id): Path<String>,
    body: ApiJson<CallRequest>,
) -> Result<Json<CallBinding>, ApiError> {
    let id = ticket_id(&raw_id)?;
    let expert_phone = PhoneNumber::parse(&body.value.expert_phone)
        .map_err(|error| ApiError::invalid_field("expert_phone", error.message))?;
    let (case, binding) = state
        .calls
        .expert_call(id, &expert, &expert_phone)
        .await
        .map_err(|error| call_error(error, "expert_phone", "is the customer's own number"))?;
    Ok(Json(CallBinding {
        case_id: case.id,
        virtual_number: binding.virtual_number.as_str().to_owned(),
        expires_at: binding.expires_at,
    }))
}

/// The report period.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Cases created at or after (RFC 3339); default 30 days before `to`.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Cases created before (RFC 3339); default now.
    pub to: Option<chrono::DateTime<chrono::Utc>>,
}

/// The report with its period.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DiagnosisReportView {
    /// Period start (inclusive).
    pub from: chrono::DateTime<chrono::Utc>,
    /// Period end (exclusive).
    pub to: chrono::DateTime<chrono::Utc>,
    /// The figures, overall and by fault category.
    #[serde(flatten)]
    pub report: DiagnosisReport,
}

/// The phone-resolution report over the cases created in `[from, to)` that are past
/// diagnosis: share solved by phone, time to pickup, handling time, waiting saved
/// (the truck ETA estimated at triage), escalation and fallback rates — overall and by
/// fault category.
#[utoipa::path(get, path = "/v1/reports/diagnosis", tag = "diagnosis",
    security(("bearer" = [])),
    params(ReportQuery),
    responses((status = 200, body = DiagnosisReportView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn report_view(
    State(state): State<AppState>,
    principal: Principal,
    query: Result<Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DiagnosisReportView>, ApiError> {
    match &principal {
        Principal::BootstrapAdmin => {}
        Principal::User(user) if matches!(user.role, Role::Agent | Role::Admin) => {}
        other => return Err(other.refusal("agents or admins")),
    }
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let to = query.to.unwrap_or_else(|| state.clock.now());
    let from = query.from.unwrap_or(to - chrono::Duration::days(30));
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    let report = state.diagnosis.report_between(from, to).await?;
    Ok(Json(DiagnosisReportView { from, to, report }))
}
