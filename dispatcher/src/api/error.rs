//! The one API error type. Every error leaves the server as
//! `{"error": {"code": "…", "message": "…"}}` with the right status: 4xx carry their message
//! and are not logged as errors; 5xx are opaque to the client and logged with their cause.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::ports::StoreError;
use domain::{FieldError, ValidationErrors};
use serde::Serialize;

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `validation_failed`, `illegal_transition`.
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
    /// The offending field's dotted path, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every invalid field, when there are several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldError>,
}

/// An error an API handler returns.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    details: Vec<FieldError>,
    retry_after_s: Option<u64>,
    cause: Option<anyhow::Error>,
}

impl ApiError {
    /// An error with a status, a code and a message for the client.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            details: Vec::new(),
            retry_after_s: None,
            cause: None,
        }
    }

    /// 400: the request cannot be read.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401: no or wrong credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: the caller is known but may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 422 for one field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            format!("{field}: {message}"),
        );
        error.details = vec![FieldError::new(field.clone(), message)];
        error.field = Some(field);
        error
    }

    /// 429 with a Retry-After.
    pub fn rate_limited(retry_after_s: u64) -> Self {
        let mut error = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests, retry in {retry_after_s} s"),
        );
        error.retry_after_s = Some(retry_after_s);
        error
    }

    /// 503: a dependency (the database) is down.
    pub fn unavailable(cause: impl Into<anyhow::Error>) -> Self {
        let mut error = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "the service is temporarily unavailable, retry shortly",
        );
        error.retry_after_s = Some(2);
        error.cause = Some(cause.into());
        error
    }

    /// 500, with the cause logged and hidden from the client.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let mut error = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error",
        );
        error.cause = Some(cause.into());
        error
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl ApiError {
    /// Adds a `Retry-After` header (seconds).
    pub fn set_retry_after(&mut self, seconds: u64) {
        self.retry_after_s = Some(seconds);
    }

    /// 422 for a refused triage rules document: the message names the line, column and
    /// field of every problem.
    pub fn invalid_rules(error: diagnosis_core::RulesError) -> Self {
        let message = error.to_string();
        let errors = ValidationErrors::from(error);
        let mut api_error = Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_rules", message);
        api_error.field = errors.first().map(|first| first.field.clone());
        api_error.details = errors.0;
        api_error
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        let first = errors.first().cloned();
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            errors.to_string(),
        );
        error.field = first.map(|first| first.field);
        error.details = errors.0;
        error
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ApiError::not_found("record"),
            StoreError::Conflict(message) => ApiError::conflict(message),
            StoreError::IllegalTransition(illegal) => ApiError::new(
                StatusCode::CONFLICT,
                "illegal_transition",
                illegal.to_string(),
            ),
            StoreError::Unavailable(_) => ApiError::unavailable(error),
            StoreError::Internal(_) => ApiError::internal(error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            match &self.cause {
                Some(cause) => tracing::error!(
                    status = self.status.as_u16(),
                    error = format!("{cause:#}"),
                    "request failed"
                ),
                None => {
                    tracing::error!(status = self.status.as_u16(), message = %self.message, "request failed")
                }
            }
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
                details: self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after_s
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The error code for a status produced outside the handlers (router, layers).
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "validation_failed",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "service_unavailable",
        status if status.is_server_error() => "internal",
        _ => "error",
    }
}
