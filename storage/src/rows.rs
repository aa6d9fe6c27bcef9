//! Rows as both databases return them, and their conversion into domain values. The same
//! Rust types decode from either backend: `Uuid` (uuid / 16-byte blob), `DateTime<Utc>`
//! (timestamptz / RFC 3339 text), `Json<T>` (jsonb / text).

use chrono::{DateTime, Utc};
use domain::event::{Actor, Event, EventKind};
use domain::ports::StoreError;
use domain::{
    Case, CaseId, CaseStatus, Customer, Fault, LatLon, Location, PhoneNumber, Provider, User,
};
use sqlx::types::Json;
use uuid::Uuid;

use crate::error::corrupt;

/// Columns of `cases`, in the order every query selects them.
pub(crate) const CASE_COLUMNS: &str = "id, channel, status, service, tier, customer_name, customer_phone, \
     member_id, plate, vehicle_model, powertrain, lat, lon, accuracy_m, address, road_kind, \
     fault_category, symptoms, fault_description, promised_arrival, predicted_arrival, created_at, updated_at";

/// The `status_changed` event of a new case that triage sends to a vehicle (`new →
/// dispatching`), and the status it moves to.
pub(crate) fn dispatching_event(
    at: domain::Timestamp,
    reason: &str,
) -> Result<(CaseStatus, domain::NewEvent), StoreError> {
    let to = CaseStatus::New.transition(CaseStatus::Dispatching)?;
    let changed = domain::NewEvent::new(
        EventKind::StatusChanged,
        Actor::System,
        at,
        serde_json::json!({"from": CaseStatus::New, "to": to, "reason": reason}),
    );
    Ok((to, changed))
}

/// The `offer_sent` event of an offer stored with these times.
pub(crate) fn offer_sent_event(
    offer: &domain::ports::NewOffer,
    sent_at: domain::Timestamp,
    expires_at: domain::Timestamp,
) -> domain::NewEvent {
    domain::NewEvent::new(
        EventKind::OfferSent,
        Actor::System,
        sent_at,
        serde_json::json!({
            "offer_id": offer.id, "vehicle_id": offer.vehicle_id, "provider_id": offer.provider_id,
            "attempt": offer.attempt, "eta_s": offer.eta_s, "distance_m": offer.distance_m.round(),
            "expires_at": expires_at,
        }),
    )
}

/// What a new case's row starts with besides the case itself: a case created with its
/// triage is inserted `dispatching` in its first round, its events numbered beforehand.
pub(crate) struct NewCaseRow {
    pub status: domain::CaseStatus,
    pub dispatch_round: i32,
    pub last_event_seq: i64,
    pub updated_at: domain::Timestamp,
}

#[derive(sqlx::FromRow)]
pub(crate) struct CaseRow {
    id: Uuid,
    channel: String,
    status: String,
    service: String,
    tier: String,
    customer_name: Option<String>,
    customer_phone: String,
    member_id: Option<String>,
    plate: Option<String>,
    vehicle_model: Option<String>,
    powertrain: Option<String>,
    lat: f64,
    lon: f64,
    accuracy_m: Option<f64>,
    address: Option<String>,
    road_kind: String,
    fault_category: String,
    symptoms: Json<Vec<String>>,
    fault_description: Option<String>,
    promised_arrival: Option<DateTime<Utc>>,
    predicted_arrival: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn vocabulary<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, StoreError> {
    text.parse().map_err(|_| corrupt(what, text))
}

impl TryFrom<CaseRow> for Case {
    type Error = StoreError;

    fn try_from(row: CaseRow) -> Result<Self, Self::Error> {
        Ok(Case {
            id: CaseId(row.id),
            channel: vocabulary("channel", &row.channel)?,
            status: vocabulary::<CaseStatus>("status", &row.status)?,
            service: vocabulary("service", &row.service)?,
            tier: vocabulary("tier", &row.tier)?,
            customer: Customer {
                name: row.customer_name,
                phone: PhoneNumber::parse(&row.customer_phone)
                    .map_err(|error| corrupt("phone", error.message))?,
                member_id: row.member_id,
                plate: row.plate,
                vehicle_model: row.vehicle_model,
                powertrain: row
                    .powertrain
                    .as_deref()
                    .map(|text| vocabulary("powertrain", text))
                    .transpose()?,
            },
            location: Location {
                position: LatLon::new(row.lat, row.lon)
                    .map_err(|error| corrupt("position", error))?,
                accuracy_m: row.accuracy_m,
                address: row.address,
                road_kind: vocabulary("road kind", &row.road_kind)?,
            },
            fault: Fault {
                category: vocabulary("fault category", &row.fault_category)?,
                symptoms: row.symptoms.0,
                description: row.fault_description,
            },
            promised_arrival: row.promised_arrival,
            predicted_arrival: row.predicted_arrival,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// Columns of `case_events`, in the order every query selects them.
pub(crate) const EVENT_COLUMNS: &str = "id, case_id, seq, at, kind, actor, data";

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    id: i64,
    case_id: Uuid,
    seq: i64,
    at: DateTime<Utc>,
    kind: String,
    actor: String,
    data: Json<serde_json::Value>,
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Self, Self::Error> {
        Ok(Event {
            id: row.id,
            case_id: CaseId(row.case_id),
            seq: row.seq,
            at: row.at,
            kind: vocabulary::<EventKind>("event kind", &row.kind)?,
            actor: row
                .actor
                .parse::<Actor>()
                .map_err(|error| corrupt("actor", error.message))?,
            data: row.data.0,
        })
    }
}

/// Columns of `users` (without the password hash).
pub(crate) const USER_COLUMNS: &str = "id, username, display_name, role, skills, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: Uuid,
    username: String,
    display_name: Option<String>,
    role: String,
    skills: Json<Vec<String>>,
    created_at: DateTime<Utc>,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, Self::Error> {
        Ok(User {
            id: row.id.into(),
            username: row.username,
            display_name: row.display_name,
            role: vocabulary("role", &row.role)?,
            skills: row.skills.0,
            created_at: row.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CredentialsRow {
    #[sqlx(flatten)]
    pub(crate) user: UserRow,
    pub(crate) password_hash: String,
}

/// Columns of `providers` (without the key hash).
pub(crate) const PROVIDER_COLUMNS: &str = "id, name, webhook_url, service_area, priority, created_at, webhook_secret_generation, webhook_secret_rotated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ProviderRow {
    id: Uuid,
    name: String,
    webhook_url: Option<String>,
    service_area: Option<Json<serde_json::Value>>,
    priority: i32,
    created_at: DateTime<Utc>,
    webhook_secret_generation: i32,
    webhook_secret_rotated_at: Option<DateTime<Utc>>,
}

impl From<ProviderRow> for Provider {
    fn from(row: ProviderRow) -> Self {
        Provider {
            id: row.id.into(),
            name: row.name,
            webhook_url: row.webhook_url,
            service_area: row.service_area.map(|json| json.0),
            priority: row.priority,
            created_at: row.created_at,
            webhook_secret_generation: u32::try_from(row.webhook_secret_generation).unwrap_or(1),
            webhook_secret_rotated_at: row.webhook_secret_rotated_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct IdempotencyRow {
    pub(crate) case_id: Uuid,
    pub(crate) request_hash: Vec<u8>,
    pub(crate) response: Json<serde_json::Value>,
}

/// Columns of a vehicle with its latest position, in the order every query selects them,
/// from [`VEHICLES_WITH_POSITIONS`].
pub(crate) const VEHICLE_COLUMNS: &str = "vehicles.id, vehicles.provider_id, vehicles.external_id, vehicles.plate, \
     vehicles.driver_phone, vehicles.capabilities, vehicles.state, p.lat AS last_lat, p.lon AS last_lon, \
     p.fix_at AS last_fix_at, p.speed_kmh AS last_speed_kmh, p.heading_deg AS last_heading_deg, \
     p.accuracy_m AS last_accuracy_m, p.source AS last_fix_source, vehicles.created_at, vehicles.updated_at";

/// Vehicles and their latest positions (a table of their own, see migration 0008); a
/// vehicle that never reported has none.
pub(crate) const VEHICLES_WITH_POSITIONS: &str =
    "vehicles LEFT JOIN vehicle_positions p ON p.vehicle_id = vehicles.id";

#[derive(sqlx::FromRow)]
pub(crate) struct VehicleRow {
    pub(crate) id: Uuid,
    provider_id: Uuid,
    external_id: String,
    plate: Option<String>,
    driver_phone: Option<String>,
    capabilities: Json<Vec<String>>,
    state: String,
    last_lat: Option<f64>,
    last_lon: Option<f64>,
    last_fix_at: Option<DateTime<Utc>>,
    last_speed_kmh: Option<f64>,
    last_heading_deg: Option<f64>,
    last_accuracy_m: Option<f64>,
    last_fix_source: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeviceRow {
    pub(crate) vehicle_id: Uuid,
    protocol: String,
    device_id: String,
}

impl DeviceRow {
    pub(crate) fn into_binding(self) -> Result<domain::DeviceBinding, StoreError> {
        Ok(domain::DeviceBinding {
            protocol: vocabulary("device protocol", &self.protocol)?,
            id: self.device_id,
        })
    }
}

impl VehicleRow {
    pub(crate) fn into_vehicle(
        self,
        devices: Vec<domain::DeviceBinding>,
    ) -> Result<domain::Vehicle, StoreError> {
        let last_fix = match (self.last_lat, self.last_lon, self.last_fix_at) {
            (Some(lat), Some(lon), Some(ts)) => Some(domain::Fix {
                position: LatLon::new(lat, lon)
                    .map_err(|error| corrupt("vehicle position", error))?,
                ts,
                speed_kmh: self.last_speed_kmh,
                heading: self.last_heading_deg,
                accuracy_m: self.last_accuracy_m,
                source: vocabulary(
                    "fix source",
                    self.last_fix_source.as_deref().unwrap_or("api"),
                )?,
            }),
            _ => None,
        };
        Ok(domain::Vehicle {
            id: self.id.into(),
            vehicle_id: self.external_id,
            provider_id: self.provider_id.into(),
            plate: self.plate,
            driver_phone: self.driver_phone,
            capabilities: self
                .capabilities
                .0
                .iter()
                .map(|name| vocabulary("capability", name))
                .collect::<Result<_, _>>()?,
            state: vocabulary("vehicle state", &self.state)?,
            devices,
            last_fix,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Columns of `offers`, in the order every query selects them.
pub(crate) const OFFER_COLUMNS: &str = "id, case_id, vehicle_id, provider_id, state, attempt, eta_s, distance_m, \
     sent_at, expires_at, answered_at, decline_reason, provider_eta_s, assigned_by, released_at";

#[derive(sqlx::FromRow)]
pub(crate) struct OfferRow {
    id: Uuid,
    case_id: Uuid,
    vehicle_id: Uuid,
    provider_id: Uuid,
    state: String,
    attempt: i32,
    eta_s: i32,
    distance_m: f64,
    sent_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    answered_at: Option<DateTime<Utc>>,
    decline_reason: Option<String>,
    provider_eta_s: Option<i32>,
    assigned_by: Option<String>,
    released_at: Option<DateTime<Utc>>,
}

impl TryFrom<OfferRow> for domain::Offer {
    type Error = StoreError;

    fn try_from(row: OfferRow) -> Result<Self, Self::Error> {
        Ok(domain::Offer {
            id: row.id.into(),
            case_id: row.case_id.into(),
            vehicle_id: row.vehicle_id.into(),
            provider_id: row.provider_id.into(),
            state: vocabulary("offer state", &row.state)?,
            attempt: u32::try_from(row.attempt).map_err(|_| corrupt("attempt", row.attempt))?,
            eta_s: u32::try_from(row.eta_s).map_err(|_| corrupt("eta", row.eta_s))?,
            distance_m: row.distance_m,
            sent_at: row.sent_at,
            expires_at: row.expires_at,
            answered_at: row.answered_at,
            decline_reason: row
                .decline_reason
                .as_deref()
                .map(|reason| vocabulary("decline reason", reason))
                .transpose()?,
            provider_eta_s: row.provider_eta_s.and_then(|eta| u32::try_from(eta).ok()),
            assigned_by: row.assigned_by,
            released_at: row.released_at,
        })
    }
}

/// Columns of `alerts`, in the order every query selects them.
pub(crate) const ALERT_COLUMNS: &str = "id, case_id, kind, severity, state, raised_at, predicted_breach, message, \
     acknowledged_by, acknowledged_at, resolved_by, resolved_at";

#[derive(sqlx::FromRow)]
pub(crate) struct AlertRow {
    id: Uuid,
    case_id: Uuid,
    kind: String,
    severity: String,
    state: String,
    raised_at: DateTime<Utc>,
    predicted_breach: Option<DateTime<Utc>>,
    message: String,
    acknowledged_by: Option<String>,
    acknowledged_at: Option<DateTime<Utc>>,
    resolved_by: Option<String>,
    resolved_at: Option<DateTime<Utc>>,
}

impl TryFrom<AlertRow> for domain::Alert {
    type Error = StoreError;

    fn try_from(row: AlertRow) -> Result<Self, Self::Error> {
        Ok(domain::Alert {
            id: row.id.into(),
            case_id: row.case_id.into(),
            kind: vocabulary("alert kind", &row.kind)?,
            severity: vocabulary("severity", &row.severity)?,
            state: vocabulary("alert state", &row.state)?,
            raised_at: row.raised_at,
            predicted_breach: row.predicted_breach,
            message: row.message,
            acknowledged_by: row.acknowledged_by,
            acknowledged_at: row.acknowledged_at,
            resolved_by: row.resolved_by,
            resolved_at: row.resolved_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CaseFixRow {
    case_id: Uuid,
    vehicle_id: Uuid,
    ts: DateTime<Utc>,
    lat: f64,
    lon: f64,
    speed_kmh: Option<f64>,
    heading_deg: Option<f64>,
    accuracy_m: Option<f64>,
    source: String,
    live: bool,
    received_at: DateTime<Utc>,
}

impl TryFrom<CaseFixRow> for domain::ports::CaseFix {
    type Error = StoreError;

    fn try_from(row: CaseFixRow) -> Result<Self, Self::Error> {
        Ok(domain::ports::CaseFix {
            case_id: row.case_id.into(),
            vehicle_id: row.vehicle_id.into(),
            fix: domain::Fix {
                position: LatLon::new(row.lat, row.lon)
                    .map_err(|error| corrupt("trajectory fix", error))?,
                ts: row.ts,
                speed_kmh: row.speed_kmh,
                heading: row.heading_deg,
                accuracy_m: row.accuracy_m,
                source: vocabulary("fix source", &row.source)?,
            },
            live: row.live,
            received_at: row.received_at,
        })
    }
}

/// Columns of `webhook_deliveries`, in the order every query selects them.
pub(crate) const WEBHOOK_COLUMNS: &str = "id, provider_id, event, case_id, url, body, status, attempts, next_attempt_at, \
     deadline, created_at, delivered_at, dead_lettered_at, dead_letter_reason";

#[derive(sqlx::FromRow)]
pub(crate) struct WebhookRow {
    id: Uuid,
    provider_id: Uuid,
    event: String,
    case_id: Option<Uuid>,
    url: String,
    body: String,
    status: String,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    deadline: DateTime<Utc>,
    created_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
    dead_lettered_at: Option<DateTime<Utc>>,
    dead_letter_reason: Option<String>,
}

impl TryFrom<WebhookRow> for domain::ports::WebhookDelivery {
    type Error = StoreError;

    fn try_from(row: WebhookRow) -> Result<Self, Self::Error> {
        Ok(domain::ports::WebhookDelivery {
            id: row.id,
            provider_id: row.provider_id.into(),
            event: row.event,
            case_id: row.case_id.map(Into::into),
            url: row.url,
            body: row.body,
            status: row.status,
            attempts: u32::try_from(row.attempts)
                .map_err(|_| corrupt("webhook attempts", row.attempts))?,
            next_attempt_at: row.next_attempt_at,
            deadline: row.deadline,
            created_at: row.created_at,
            delivered_at: row.delivered_at,
            dead_lettered_at: row.dead_lettered_at,
            dead_letter_reason: row.dead_letter_reason,
        })
    }
}

/// Columns of `diagnosis_tickets`, in the order every query selects them.
pub(crate) const TICKET_COLUMNS: &str = "id, case_id, category, skill, rule_id, expected_fix_s, expected_truck_eta_s, \
     priority, queued_at, claimed_by, claimed_at, claim_expires_at, first_claimed_at, lapsed_claims, outcome, notes, closed_at";

#[derive(sqlx::FromRow)]
pub(crate) struct TicketRow {
    id: Uuid,
    case_id: Uuid,
    category: String,
    skill: String,
    rule_id: String,
    expected_fix_s: i32,
    expected_truck_eta_s: Option<i32>,
    priority: i32,
    queued_at: DateTime<Utc>,
    claimed_by: Option<Uuid>,
    claimed_at: Option<DateTime<Utc>>,
    claim_expires_at: Option<DateTime<Utc>>,
    first_claimed_at: Option<DateTime<Utc>>,
    lapsed_claims: i32,
    outcome: Option<String>,
    notes: Option<String>,
    closed_at: Option<DateTime<Utc>>,
}

impl TryFrom<TicketRow> for domain::DiagnosisTicket {
    type Error = StoreError;

    fn try_from(row: TicketRow) -> Result<Self, Self::Error> {
        Ok(domain::DiagnosisTicket {
            id: row.id.into(),
            case_id: row.case_id.into(),
            category: vocabulary("fault category", &row.category)?,
            skill: row.skill,
            rule_id: row.rule_id,
            expected_fix_s: u32::try_from(row.expected_fix_s)
                .map_err(|_| corrupt("expected fix", row.expected_fix_s))?,
            expected_truck_eta_s: row
                .expected_truck_eta_s
                .and_then(|eta| u32::try_from(eta).ok()),
            priority: row.priority,
            queued_at: row.queued_at,
            claimed_by: row.claimed_by.map(Into::into),
            claimed_at: row.claimed_at,
            claim_expires_at: row.claim_expires_at,
            first_claimed_at: row.first_claimed_at,
            lapsed_claims: u32::try_from(row.lapsed_claims)
                .map_err(|_| corrupt("lapsed claims", row.lapsed_claims))?,
            outcome: row
                .outcome
                .as_deref()
                .map(|outcome| vocabulary("ticket outcome", outcome))
                .transpose()?,
            notes: row.notes,
            closed_at: row.closed_at,
        })
    }
}

/// Columns of `phone_bindings`, in the order every query selects them.
pub(crate) const PHONE_BINDING_COLUMNS: &str =
    "virtual_number, case_id, party_a, party_b, bound_at, released_at";

#[derive(sqlx::FromRow)]
pub(crate) struct PhoneBindingRow {
    virtual_number: String,
    case_id: Uuid,
    party_a: String,
    party_b: String,
    bound_at: DateTime<Utc>,
    released_at: Option<DateTime<Utc>>,
}

impl From<PhoneBindingRow> for domain::diagnosis::PhoneBindingRecord {
    fn from(row: PhoneBindingRow) -> Self {
        domain::diagnosis::PhoneBindingRecord {
            virtual_number: row.virtual_number,
            case_id: row.case_id.into(),
            party_a: row.party_a,
            party_b: row.party_b,
            bound_at: row.bound_at,
            released_at: row.released_at,
        }
    }
}

/// The newest fix of each vehicle in a batch, in vehicle-id order. An `UPDATE … FROM`
/// with two source rows for one target applies either of them, so each vehicle gets one
/// row; and every writer of positions locks vehicle rows in the same order.
pub(crate) fn newest_fix_per_vehicle(
    fixes: &[(domain::VehicleId, domain::Fix)],
) -> Vec<(Uuid, &domain::Fix)> {
    let mut newest: std::collections::HashMap<Uuid, &domain::Fix> =
        std::collections::HashMap::with_capacity(fixes.len());
    for (vehicle_id, fix) in fixes {
        let entry = newest.entry(vehicle_id.as_uuid()).or_insert(fix);
        if fix.ts > entry.ts {
            *entry = fix;
        }
    }
    let mut rows: Vec<(Uuid, &domain::Fix)> = newest.into_iter().collect();
    rows.sort_unstable_by_key(|(id, _)| *id);
    rows
}
