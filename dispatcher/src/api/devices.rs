//! The OsmAnd HTTP protocol of the Traccar Client apps: the route a phone in a truck
//! reports to. Parsing is `provider_adapters::osmand`'s; positions go to the same device
//! gateway the TCP protocols use.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::DeviceProtocol;
use provider_adapters::{DeviceGateway, DevicePosition, GatewayError};

use crate::api::error::ApiError;
use crate::api::state::AppState;

/// OsmAnd protocol (Traccar Client apps): `GET` or `POST /osmand?id=…&lat=…&lon=…&timestamp=…`
/// (query string or form body; `speed` in knots) or `POST` with the JSON body of newer
/// apps (`speed` in m/s). 200 with an empty body when taken, 400 for a malformed report,
/// 404 for a device no vehicle lists.
#[utoipa::path(get, path = "/osmand", tag = "devices",
    params(
        ("id" = String, Query, description = "device id (also `deviceid`)"),
        ("lat" = f64, Query, description = "latitude"),
        ("lon" = f64, Query, description = "longitude"),
        ("timestamp" = Option<String>, Query, description = "unix seconds or ISO 8601"),
        ("speed" = Option<f64>, Query, description = "knots"),
        ("bearing" = Option<f64>, Query, description = "degrees"),
        ("accuracy" = Option<f64>, Query, description = "metres"),
    ),
    responses((status = 200, description = "taken"), (status = 400, description = "malformed"),
        (status = 404, description = "unknown device")))]
pub async fn osmand_get(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let now = state.clock.now();
    match provider_adapters::osmand::parse_query(query.as_deref().unwrap_or_default(), now) {
        Ok(position) => take_osmand(&state, vec![position]).await,
        Err(error) => osmand_refusal(error),
    }
}

/// OsmAnd protocol, `POST`: the query-string form, a form-encoded body, or the JSON body.
#[utoipa::path(post, path = "/osmand", tag = "devices",
    request_body(content = String, description = "form-encoded fields as for GET, or the Traccar Client JSON body"),
    responses((status = 200, description = "taken"), (status = 400, description = "malformed"),
        (status = 404, description = "unknown device")))]
pub async fn osmand_post(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now = state.clock.now();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let parsed = if content_type.starts_with("application/json") {
        provider_adapters::osmand::parse_json(&body, now)
    } else if !body.is_empty() {
        match std::str::from_utf8(&body) {
            Ok(form) => {
                provider_adapters::osmand::parse_query(form, now).map(|position| vec![position])
            }
            Err(_) => return ApiError::bad_request("the form body is not UTF-8").into_response(),
        }
    } else {
        provider_adapters::osmand::parse_query(query.as_deref().unwrap_or_default(), now)
            .map(|position| vec![position])
    };
    match parsed {
        Ok(positions) => take_osmand(&state, positions).await,
        Err(error) => osmand_refusal(error),
    }
}

fn osmand_refusal(error: provider_adapters::osmand::OsmandError) -> Response {
    tracing::info!(protocol = "osmand", reason = %error, "osmand report refused");
    ApiError::bad_request(error.to_string()).into_response()
}

async fn take_osmand(state: &AppState, positions: Vec<DevicePosition>) -> Response {
    let mut by_device: Vec<(String, Vec<DevicePosition>)> = Vec::new();
    for position in positions {
        match by_device
            .iter_mut()
            .find(|(id, _)| *id == position.device_id)
        {
            Some((_, list)) => list.push(position),
            None => by_device.push((position.device_id.clone(), vec![position])),
        }
    }
    for (device_id, positions) in by_device {
        let device = match state
            .devices
            .resolve_device(DeviceProtocol::Osmand, &device_id)
            .await
        {
            Ok(Some(device)) => device,
            Ok(None) => {
                tracing::info!(protocol = "osmand", "report from an unknown device refused");
                return ApiError::not_found("device").into_response();
            }
            Err(_) => {
                return ApiError::unavailable(anyhow::anyhow!("device lookup failed"))
                    .into_response();
            }
        };
        if let Err(error) = state
            .devices
            .submit_positions(&device, positions, true)
            .await
        {
            return match error {
                GatewayError::Unavailable => {
                    ApiError::unavailable(anyhow::anyhow!("gateway unavailable")).into_response()
                }
                GatewayError::Rejected(reason) => ApiError::bad_request(reason).into_response(),
            };
        }
    }
    StatusCode::OK.into_response()
}
