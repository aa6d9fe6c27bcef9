//! GPS devices talking straight to the server: the [`DeviceGateway`] the protocol
//! adapters (JT/T 808, GT06, OsmAnd) report to, and the OsmAnd HTTP route.
//!
//! A device is known when a provider listed it in a vehicle's `devices`. Its positions go
//! through the same checks as the provider API's: the live position only moves forward in
//! time. Batch and blind-area uploads (`live = false`) are taken too, but an old one never
//! moves the live position back; a fix the device itself marks as invalid (no GPS lock) is
//! refused and counted.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::{Clock, DeviceProtocol, Fix, FixSource, LatLon, VehicleId};
use provider_adapters::{
    DeviceGateway, DevicePosition, DeviceRef, GatewayError, Protocol, SubmitOutcome,
};

use crate::api::error::ApiError;
use crate::registry::{FixRefusal, FleetRegistry, count_rejection};
use crate::state::AppState;
use crate::tracking::Tracking;

/// The gateway of this server.
pub struct DeviceIntake {
    registry: Arc<FleetRegistry>,
    tracking: Arc<Tracking>,
    clock: Arc<dyn Clock>,
}

impl DeviceIntake {
    /// A gateway over the fleet registry and the tracker.
    pub fn new(
        registry: Arc<FleetRegistry>,
        tracking: Arc<Tracking>,
        clock: Arc<dyn Clock>,
    ) -> DeviceIntake {
        DeviceIntake {
            registry,
            tracking,
            clock,
        }
    }
}

fn device_protocol(protocol: Protocol) -> DeviceProtocol {
    match protocol {
        Protocol::Jt808 => DeviceProtocol::Jt808,
        Protocol::Gt06 => DeviceProtocol::Gt06,
        Protocol::Osmand => DeviceProtocol::Osmand,
    }
}

fn fix_source(protocol: Protocol) -> FixSource {
    match protocol {
        Protocol::Jt808 => FixSource::Jt808,
        Protocol::Gt06 => FixSource::Gt06,
        Protocol::Osmand => FixSource::Osmand,
    }
}

#[async_trait::async_trait]
impl DeviceGateway for DeviceIntake {
    async fn resolve_device(
        &self,
        protocol: Protocol,
        device_id: &str,
    ) -> Result<Option<DeviceRef>, GatewayError> {
        let found = self
            .registry
            .resolve_device(device_protocol(protocol), device_id)
            .await
            .map_err(|_| GatewayError::Unavailable)?;
        Ok(found.map(|vehicle_id| DeviceRef {
            vehicle_key: vehicle_id.to_string(),
            protocol,
            device_id: device_id.to_owned(),
        }))
    }

    async fn submit_positions(
        &self,
        device: &DeviceRef,
        positions: Vec<DevicePosition>,
        live: bool,
    ) -> Result<SubmitOutcome, GatewayError> {
        let vehicle_id: VehicleId = device
            .vehicle_key
            .parse()
            .map_err(|_| GatewayError::Rejected("unknown vehicle key".into()))?;
        let source = fix_source(device.protocol);
        let now = self.clock.now();
        let mut outcome = SubmitOutcome::default();
        let mut fresh = Vec::with_capacity(positions.len());
        let mut history = Vec::new();
        let mut newest = None;
        for position in positions {
            let Ok(point) = LatLon::new(position.lat, position.lon) else {
                count_rejection(source, FixRefusal::OutOfRange);
                outcome.rejected += 1;
                continue;
            };
            if !position.valid {
                count_rejection(source, FixRefusal::NoGpsFix);
                outcome.rejected += 1;
                continue;
            }
            let fix = Fix {
                position: point,
                ts: position.time,
                speed_kmh: position.speed_kmh,
                heading: position.heading_deg,
                accuracy_m: position.accuracy_m,
                source,
            };
            let checked = match newest {
                Some(latest) if fix.ts <= latest => Err(FixRefusal::NotNewer),
                _ => self.registry.check(vehicle_id, &fix, now),
            };
            match checked {
                Ok(()) => {
                    newest = Some(fix.ts);
                    fresh.push((vehicle_id, fix));
                    outcome.accepted += 1;
                }
                // A batch or blind-area upload is history: taken, but it does not move
                // the live position back.
                Err(FixRefusal::NotNewer) if !live => {
                    history.push(fix);
                    outcome.accepted += 1;
                }
                Err(refusal) => {
                    count_rejection(source, refusal);
                    outcome.rejected += 1;
                }
            }
        }
        self.registry.accept(fresh);
        if !history.is_empty() {
            self.tracking.record_history(vehicle_id, &history);
        }
        Ok(outcome)
    }
}

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
            .resolve_device(Protocol::Osmand, &device_id)
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
