//! Cases: create (app or hotline), read, list, cancel, timeline.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use domain::ports::CaseFilter;
use domain::{Actor, Case, CaseId, CaseInput, CaseStatus, Channel, Event, NewCase, Role, Service};
use serde::{Deserialize, Serialize};

use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{AgentAuth, ApiJson, ClientIp, Principal};
use crate::api::state::{AppState, check_limit};
use crate::services::intake::{CaseRequest, IdempotencyKey, IntakeError, Opened};
use crate::telemetry::RATE_LIMITED;

/// Header that makes case creation safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A created case.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedCase {
    /// The case.
    pub case: Case,
    /// Bearer token that reads this case (and only this case) and its tracking view.
    pub customer_token: String,
    /// Link for the customer's tracking page.
    pub tracking_url: String,
}

/// Parses a path segment as a case id; a malformed one is "not found".
fn case_id(raw: &str) -> Result<CaseId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found("case"))
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|key| {
            !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters")
        })?;
    Ok(Some(key.to_owned()))
}

/// Creates a case. From the app without credentials (rate-limited per client address;
/// channel `app` only), or by an agent for a hotline caller. With an `Idempotency-Key`
/// header, a retry with the same key and body returns the first response and creates
/// nothing; the same key with another body is refused (422).
#[utoipa::path(post, path = "/v1/cases", tag = "cases",
    security((), ("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "client-chosen key (e.g. a UUID) that makes retries safe")),
    request_body = CaseInput,
    responses(
        (status = 201, description = "created (or the replay of the first response)", body = CreatedCase),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn create_case(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    body: ApiJson<CaseInput>,
) -> Result<(StatusCode, Json<CreatedCase>), ApiError> {
    let scope = match &principal {
        Principal::Anonymous => {
            if let Err(wait_s) = check_limit(&state.limits.app_cases, client) {
                metrics::counter!(RATE_LIMITED, "limit" => "app_cases").increment(1);
                return Err(ApiError::rate_limited(wait_s));
            }
            if body.value.channel != Channel::App {
                return Err(ApiError::forbidden(
                    "without credentials only channel `app` may be used",
                ));
            }
            "app".to_owned()
        }
        Principal::User(user) if user.role == Role::Agent => format!("agent:{}", user.id),
        other => return Err(other.refusal("agents or the app")),
    };
    let key = idempotency_key(&headers)?;
    let request = CaseRequest {
        safety: body.value.safety.unwrap_or_default(),
        actor: principal.actor(),
        idempotency: key.map(|key| IdempotencyKey {
            scope,
            key,
            request_hash: body.canonical_sha256,
        }),
        case: NewCase::parse(body.value)?,
    };
    let opened = state
        .intake
        .open_case(request)
        .await
        .map_err(|error| match error {
            IntakeError::KeyReused => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                error.to_string(),
            ),
            IntakeError::CorruptReplay(cause) => ApiError::internal(cause),
            IntakeError::Store(cause) => cause.into(),
        })?;
    let case = match opened {
        Opened::Created(case) | Opened::Replayed(case) => *case,
    };
    let customer_token = state.keys.customer_token(case.id);
    Ok((
        StatusCode::CREATED,
        Json(CreatedCase {
            tracking_url: format!("{}/track/{}", state.public_url, customer_token),
            customer_token,
            case,
        }),
    ))
}

/// Reads a case: an agent any case, a customer only their own, a phone expert only a
/// case whose diagnosis ticket they hold (any other is 404).
#[utoipa::path(get, path = "/v1/cases/{case_id}", tag = "cases",
    security(("bearer" = [])),
    params(("case_id" = String, Path, description = "case id")),
    responses((status = 200, body = Case), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_case(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
) -> Result<Json<Case>, ApiError> {
    let id = case_id(&raw_id)?;
    match &principal {
        Principal::User(user) if user.role == Role::Expert => {
            if !state.cases.expert_holds(id, user.id).await? {
                return Err(ApiError::not_found("case"));
            }
        }
        other => authorize_case_reader(other, id)?,
    }
    let case = state
        .cases
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found("case"))?;
    Ok(Json(case))
}

/// Agents see every case; a customer sees their own; nobody else any.
fn authorize_case_reader(principal: &Principal, id: CaseId) -> Result<(), ApiError> {
    match principal {
        Principal::User(user) if user.role == Role::Agent => Ok(()),
        Principal::Customer(own) if *own == id => Ok(()),
        Principal::Customer(_) => Err(ApiError::not_found("case")),
        other => Err(other.refusal("agents or the case's customer")),
    }
}

/// Why a case is cancelled.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Free text or a code, up to 500 characters.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Cancels a case that is not closed yet (409 otherwise).
#[utoipa::path(post, path = "/v1/cases/{case_id}/cancel", tag = "cases",
    security(("bearer" = [])),
    params(("case_id" = String, Path, description = "case id")),
    request_body(content = Option<CancelRequest>, description = "optional reason"),
    responses((status = 200, body = Case), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "already closed", body = ErrorBody)))]
pub async fn cancel_case(
    State(state): State<AppState>,
    principal: Principal,
    Path(raw_id): Path<String>,
    body: Option<ApiJson<CancelRequest>>,
) -> Result<Json<Case>, ApiError> {
    let id = case_id(&raw_id)?;
    authorize_case_reader(&principal, id)?;
    let reason = body
        .and_then(|body| body.value.reason)
        .map(|reason| reason.trim().to_owned());
    if reason
        .as_ref()
        .is_some_and(|reason| reason.chars().count() > 500)
    {
        return Err(ApiError::invalid_field(
            "reason",
            "must be at most 500 characters",
        ));
    }
    let actor = principal.actor();
    let reason = reason
        .filter(|reason| !reason.is_empty())
        .unwrap_or_else(|| match actor {
            Actor::Customer => "customer_request".to_owned(),
            _ => "agent_request".to_owned(),
        });
    let case = state
        .cascade
        .cancel_case(id, &actor, &reason)
        .await
        .map_err(|error| match error {
            domain::ports::StoreError::NotFound => ApiError::not_found("case"),
            other => other.into(),
        })?;
    Ok(Json(case))
}

/// Filters for listing cases.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Comma-separated statuses, e.g. `dispatching,escalated`.
    pub status: Option<String>,
    /// `app`, `hotline` or `provider`.
    pub channel: Option<Channel>,
    /// The service.
    pub service: Option<Service>,
    /// Created at or after (RFC 3339).
    pub created_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Created before (RFC 3339).
    pub created_to: Option<chrono::DateTime<chrono::Utc>>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of cases, newest first.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CaseList {
    /// The cases.
    pub cases: Vec<Case>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Lists cases, newest first, with filters and keyset paging.
#[utoipa::path(get, path = "/v1/cases", tag = "cases",
    security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = CaseList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn list_cases(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CaseList>, ApiError> {
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 200"));
    }
    let statuses = match &query.status {
        None => Vec::new(),
        Some(text) => text
            .split(',')
            .map(|status| status.trim().parse::<CaseStatus>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| ApiError::bad_request(error.to_string()))?,
    };
    let before = match &query.cursor {
        None => None,
        Some(cursor) => Some(
            cursor
                .parse::<CaseId>()
                .map_err(|_| ApiError::bad_request("invalid cursor"))?,
        ),
    };
    let filter = CaseFilter {
        statuses,
        channel: query.channel,
        service: query.service,
        created_from: query.created_from,
        created_to: query.created_to,
        before,
        // One more than asked tells whether another page exists.
        limit: limit + 1,
    };
    let mut cases = state.cases.list(&filter).await?;
    let next_cursor = if cases.len() > limit as usize {
        cases.truncate(limit as usize);
        cases.last().map(|case| case.id.to_string())
    } else {
        None
    };
    Ok(Json(CaseList { cases, next_cursor }))
}

/// A case's timeline.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Timeline {
    /// Every event, in order.
    pub events: Vec<Event>,
}

/// Every event of a case, in order: the record used in disputes.
#[utoipa::path(get, path = "/v1/cases/{case_id}/timeline", tag = "cases",
    security(("bearer" = [])),
    params(("case_id" = String, Path, description = "case id")),
    responses((status = 200, body = Timeline), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn timeline(
    State(state): State<AppState>,
    AgentAuth(_agent): AgentAuth,
    Path(raw_id): Path<String>,
) -> Result<Json<Timeline>, ApiError> {
    let id = case_id(&raw_id)?;
    let events = state.cases.timeline(id).await?;
    if events.is_empty() {
        return Err(ApiError::not_found("case"));
    }
    Ok(Json(Timeline { events }))
}
