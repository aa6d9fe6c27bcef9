//! Rescue vehicles, offers and alerts: the vocabularies the dispatcher, the tracker and the
//! provider adapters share.

vocabulary! {
    /// Where a vehicle stands for dispatch. Providers set `offline` and `available`; the
    /// server moves a vehicle to `offered` (an offer is pending) and `busy` (on a job).
    pub enum VehicleState: "vehicle state" {
        /// Not taking jobs.
        Offline = "offline",
        /// Free for an offer.
        Available = "available",
        /// Holds a pending offer; claimed so no other case can offer it.
        Offered = "offered",
        /// On a job.
        Busy = "busy",
    }
}

vocabulary! {
    /// What became of an offer.
    pub enum OfferState: "offer state" {
        /// Sent, waiting for an answer.
        Pending = "pending",
        /// The provider took the job.
        Accepted = "accepted",
        /// The provider refused.
        Declined = "declined",
        /// Nobody answered in time.
        Expired = "expired",
        /// Called back by the server (case cancelled or assigned elsewhere).
        Withdrawn = "withdrawn",
    }
}

vocabulary! {
    /// Why a provider declined an offer.
    pub enum DeclineReason: "decline reason" {
        /// The vehicle is busy with something else.
        Busy = "busy",
        /// Too far to go.
        TooFar = "too_far",
        /// The vehicle lacks the equipment.
        NoEquipment = "no_equipment",
        /// Anything else.
        Other = "other",
    }
}

vocabulary! {
    /// What an alert warns of.
    pub enum AlertKind: "alert kind" {
        /// Accepted, but the vehicle did not start towards the customer in time.
        LateDeparture = "late_departure",
        /// En route, no progress for too long.
        Stalled = "stalled",
        /// The distance to the customer keeps growing.
        MovingAway = "moving_away",
        /// No position from the vehicle for too long.
        GpsLost = "gps_lost",
        /// The predicted arrival is later than promised.
        ArrivalAtRisk = "arrival_at_risk",
        /// No vehicle accepted; an agent must act.
        NoVehicle = "no_vehicle",
        /// A phone-solvable case waited too long for an expert.
        DiagnosisWait = "diagnosis_wait",
    }
}

vocabulary! {
    /// How urgent an alert is.
    pub enum Severity: "severity" {
        /// Worth a look.
        Info = "info",
        /// Act soon.
        Warning = "warning",
        /// Act now.
        Critical = "critical",
    }
}

vocabulary! {
    /// Where an alert stands.
    pub enum AlertState: "alert state" {
        /// Raised, nobody has looked yet.
        Open = "open",
        /// An agent is on it.
        Acknowledged = "acknowledged",
        /// Handled, or its condition cleared.
        Resolved = "resolved",
    }
}

use serde::{Deserialize, Serialize};

use crate::case::Service;
use crate::error::{ErrorCollector, FieldError, ValidationErrors};
use crate::geo::LatLon;
use crate::ids::{AlertId, CaseId, OfferId, ProviderId, VehicleId};

vocabulary! {
    /// The protocol a GPS device speaks; its device ids are unique per protocol.
    pub enum DeviceProtocol: "device protocol" {
        /// JT/T 808 terminal, by its phone number (12 or 20 BCD digits).
        Jt808 = "jt808",
        /// GT06 / Concox tracker, by IMEI.
        Gt06 = "gt06",
        /// OsmAnd protocol (Traccar Client app), by its `id`.
        Osmand = "osmand",
    }
}

vocabulary! {
    /// Where a position came from.
    pub enum FixSource: "fix source" {
        /// The provider REST API.
        Api = "api",
        /// A JT/T 808 terminal.
        Jt808 = "jt808",
        /// A GT06 tracker.
        Gt06 = "gt06",
        /// The OsmAnd protocol.
        Osmand = "osmand",
        /// The demo simulator.
        Demo = "demo",
    }
}

/// A GPS device bound to a vehicle.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeviceBinding {
    /// `jt808`, `gt06` or `osmand`.
    pub protocol: DeviceProtocol,
    /// The device's own id: JT/T 808 phone number, IMEI, OsmAnd id.
    pub id: String,
}

impl DeviceBinding {
    /// Checks the id's shape for its protocol.
    pub fn validate(&self) -> Result<(), FieldError> {
        let id = self.id.as_str();
        let ok = match self.protocol {
            DeviceProtocol::Jt808 => {
                matches!(id.len(), 12 | 20) && id.bytes().all(|b| b.is_ascii_digit())
            }
            DeviceProtocol::Gt06 => {
                (15..=16).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
            }
            DeviceProtocol::Osmand => {
                !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_graphic())
            }
        };
        if ok {
            Ok(())
        } else {
            Err(FieldError::new(
                "id",
                match self.protocol {
                    DeviceProtocol::Jt808 => "a JT/T 808 terminal id is 12 or 20 digits",
                    DeviceProtocol::Gt06 => "a GT06 IMEI is 15 or 16 digits",
                    DeviceProtocol::Osmand => "an OsmAnd id is 1 to 64 visible ASCII characters",
                },
            ))
        }
    }
}

/// One position report of a vehicle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Fix {
    /// Where, WGS-84.
    #[serde(flatten)]
    pub position: LatLon,
    /// When the device measured it.
    pub ts: chrono::DateTime<chrono::Utc>,
    /// Ground speed in km/h.
    pub speed_kmh: Option<f64>,
    /// Course over ground, degrees clockwise from north.
    pub heading: Option<f64>,
    /// Horizontal accuracy in metres.
    pub accuracy_m: Option<f64>,
    /// Where it came from.
    pub source: FixSource,
}

/// A rescue truck or van of a provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Vehicle {
    /// The server's id for the vehicle.
    pub id: VehicleId,
    /// The provider's own id for the vehicle, unique within the provider.
    pub vehicle_id: String,
    /// The provider.
    pub provider_id: ProviderId,
    /// Licence plate.
    pub plate: Option<String>,
    /// The driver's phone, for masked calls from seat agents (never shown to them).
    pub driver_phone: Option<String>,
    /// What the vehicle can do.
    pub capabilities: Vec<Service>,
    /// Dispatch state.
    pub state: VehicleState,
    /// GPS devices reporting for this vehicle.
    pub devices: Vec<DeviceBinding>,
    /// The latest position, if any.
    pub last_fix: Option<Fix>,
    /// Registered.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Last changed (registration or state; not position).
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// A provider's registration of a vehicle (`PUT /v1/provider/vehicles/{vehicle_id}`).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct VehicleRegistration {
    /// What the vehicle can do; at least one.
    pub capabilities: Vec<Service>,
    /// `offline` or `available` (`offered` and `busy` are the server's to set). Absent:
    /// unchanged, or `offline` for a new vehicle.
    #[serde(default)]
    pub state: Option<VehicleState>,
    /// Licence plate.
    #[serde(default)]
    pub plate: Option<String>,
    /// The driver's phone: seat agents reach the driver through a masked number and never
    /// see it. Normalized to `+` and digits.
    #[serde(default)]
    pub driver_phone: Option<String>,
    /// GPS devices reporting for this vehicle (replaces the previous list).
    #[serde(default)]
    pub devices: Vec<DeviceBinding>,
}

impl VehicleRegistration {
    /// Checks the registration; capabilities come back sorted without duplicates.
    pub fn validate(mut self) -> Result<VehicleRegistration, ValidationErrors> {
        let mut errors = ErrorCollector::default();
        if self.capabilities.is_empty() {
            errors.push(FieldError::new("capabilities", "at least one capability"));
        }
        self.capabilities.sort();
        self.capabilities.dedup();
        if let Some(state) = self.state
            && !matches!(state, VehicleState::Offline | VehicleState::Available)
        {
            errors.push(FieldError::new(
                "state",
                format!("a provider may set `offline` or `available`, not `{state}`"),
            ));
        }
        if let Some(plate) = &self.plate
            && plate.chars().count() > 20
        {
            errors.push(FieldError::new("plate", "at most 20 characters"));
        }
        if let Some(phone) = &self.driver_phone {
            match crate::PhoneNumber::parse(phone) {
                Ok(phone) => self.driver_phone = Some(phone.as_str().to_owned()),
                Err(error) => errors.push(error.under("driver_phone")),
            }
        }
        if self.devices.len() > 8 {
            errors.push(FieldError::new("devices", "at most 8 devices"));
        }
        for (index, device) in self.devices.iter().enumerate() {
            if let Err(error) = device.validate() {
                errors.push(error.under(&format!("devices[{index}]")));
            }
        }
        errors.finish()?;
        Ok(self)
    }
}

/// Checks a provider's own vehicle id (path segment).
pub fn validate_external_vehicle_id(id: &str) -> Result<(), FieldError> {
    if !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        Ok(())
    } else {
        Err(FieldError::new(
            "vehicle_id",
            "must be 1 to 64 letters, digits, `-`, `_`, `.` or `:`",
        ))
    }
}

/// An offer of a case to a vehicle; an accepted offer is the job until released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Offer {
    /// Offer id.
    pub id: OfferId,
    /// The case.
    pub case_id: CaseId,
    /// The vehicle (server id).
    pub vehicle_id: VehicleId,
    /// The vehicle's provider.
    pub provider_id: ProviderId,
    /// Where the offer stands.
    pub state: OfferState,
    /// 1 for the first offer of the case, 2 for the next …
    pub attempt: u32,
    /// Quoted time to reach the customer, seconds.
    pub eta_s: u32,
    /// Great-circle distance to the customer when offered, metres.
    pub distance_m: f64,
    /// Sent.
    pub sent_at: chrono::DateTime<chrono::Utc>,
    /// Unanswered after this, the offer expires.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// Accepted, declined, expired or withdrawn at.
    pub answered_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why it was declined.
    pub decline_reason: Option<DeclineReason>,
    /// The provider's own ETA given on acceptance, seconds.
    pub provider_eta_s: Option<u32>,
    /// Who assigned it, for a manual assignment (`agent:<id>`).
    pub assigned_by: Option<String>,
    /// When the job ended (completed, cancelled, reassigned).
    pub released_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// An alert on a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alert {
    /// Alert id.
    pub id: AlertId,
    /// The case.
    pub case_id: CaseId,
    /// What it warns of.
    pub kind: AlertKind,
    /// How urgent.
    pub severity: Severity,
    /// Where it stands.
    pub state: AlertState,
    /// Raised.
    pub raised_at: chrono::DateTime<chrono::Utc>,
    /// When the promise will be (or was) broken, if known.
    pub predicted_breach: Option<chrono::DateTime<chrono::Utc>>,
    /// What an agent reads.
    pub message: String,
    /// Who acknowledged it.
    pub acknowledged_by: Option<String>,
    /// When.
    pub acknowledged_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Who resolved it (`system` when its condition cleared).
    pub resolved_by: Option<String>,
    /// When.
    pub resolved_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_cannot_set_server_managed_states() {
        let registration = VehicleRegistration {
            capabilities: vec![Service::Tow],
            state: Some(VehicleState::Busy),
            plate: None,
            driver_phone: None,
            devices: vec![],
        };
        assert_eq!(registration.validate().unwrap_err().0[0].field, "state");
    }

    #[test]
    fn device_ids_are_checked_per_protocol() {
        let device = |protocol, id: &str| DeviceBinding {
            protocol,
            id: id.into(),
        };
        assert!(
            device(DeviceProtocol::Jt808, "013912345678")
                .validate()
                .is_ok()
        );
        assert!(
            device(DeviceProtocol::Jt808, "01391234567X")
                .validate()
                .is_err()
        );
        assert!(
            device(DeviceProtocol::Gt06, "123456789012345")
                .validate()
                .is_ok()
        );
        assert!(device(DeviceProtocol::Osmand, "truck-7").validate().is_ok());
        assert!(
            device(DeviceProtocol::Osmand, "truck 7")
                .validate()
                .is_err()
        );
    }

    #[test]
    fn capabilities_are_sorted_and_deduplicated() {
        let registration = VehicleRegistration {
            capabilities: vec![Service::Winch, Service::Tow, Service::Tow],
            state: None,
            plate: None,
            driver_phone: None,
            devices: vec![],
        }
        .validate()
        .unwrap();
        assert_eq!(
            registration.capabilities,
            vec![Service::Tow, Service::Winch]
        );
    }

    #[test]
    fn the_driver_phone_is_normalized_or_refused() {
        let with_phone = |phone: &str| VehicleRegistration {
            capabilities: vec![Service::Tow],
            state: None,
            plate: None,
            driver_phone: Some(phone.into()),
            devices: vec![],
        };
        let valid = with_phone("+86 139-0000-1234").validate().unwrap();
        assert_eq!(valid.driver_phone.as_deref(), Some("+8613900001234"));
        let refused = with_phone("call me").validate().unwrap_err();
        assert_eq!(refused.0[0].field, "driver_phone");
    }

    #[test]
    fn external_vehicle_ids_are_restricted() {
        assert!(validate_external_vehicle_id("T-7").is_ok());
        assert!(validate_external_vehicle_id("T 7").is_err());
        assert!(validate_external_vehicle_id("").is_err());
    }
}
