//! A rescue case: who is stranded where, with what fault, needing which service.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCollector, FieldError, ValidationErrors};
use crate::geo::{Crs, LatLon};
use crate::ids::CaseId;
use crate::status::CaseStatus;
use crate::time::Timestamp;

vocabulary! {
    /// How the request reached us.
    pub enum Channel: "channel" {
        /// The insurer's app, used by the driver.
        App = "app",
        /// A seat agent typing in what a caller says.
        Hotline = "hotline",
        /// A contracted provider reporting a case on our behalf.
        Provider = "provider",
    }
}

vocabulary! {
    /// The job a vehicle must be able to do. A vehicle's capabilities use the same names.
    pub enum Service: "service" {
        /// Tow the car away (needs a flatbed or wrecker).
        Tow = "tow",
        /// Start a car with a flat battery.
        JumpStart = "jump_start",
        /// Fit the spare wheel.
        TyreChange = "tyre_change",
        /// Bring fuel.
        FuelDelivery = "fuel_delivery",
        /// Open a locked car.
        Lockout = "lockout",
        /// Pull a car out of a ditch, mud or snow.
        Winch = "winch",
    }
}

/// What a vehicle can do: the same vocabulary as [`Service`].
pub type Capability = Service;

vocabulary! {
    /// The customer's service level.
    pub enum Tier: "tier" {
        /// The default.
        Standard = "standard",
        /// A premium policy.
        Premium = "premium",
        /// Very important customer.
        Vip = "vip",
    }
}

#[expect(
    clippy::derivable_impls,
    reason = "the enum is declared by `vocabulary!`, which has no #[default]"
)]
impl Default for Tier {
    fn default() -> Self {
        Tier::Standard
    }
}

vocabulary! {
    /// What drives the customer's car; EV faults triage differently.
    pub enum Powertrain: "powertrain" {
        /// Petrol engine.
        Petrol = "petrol",
        /// Diesel engine.
        Diesel = "diesel",
        /// Hybrid.
        Hybrid = "hybrid",
        /// Battery electric.
        Ev = "ev",
        /// Anything else or not known.
        Other = "other",
    }
}

vocabulary! {
    /// The kind of road the car stands on: it sets the ETA speed and the safety rules.
    pub enum RoadKind: "road kind" {
        /// City streets.
        Urban = "urban",
        /// Motorway or expressway: dangerous to stand on, never held for a phone call.
        Highway = "highway",
        /// Country roads.
        Rural = "rural",
    }
}

vocabulary! {
    /// The fault as the driver or agent classifies it.
    pub enum FaultCategory: "fault category" {
        /// Flat or failing battery.
        Battery = "battery",
        /// Flat or damaged tyre.
        Tyre = "tyre",
        /// Out of fuel or wrong fuel.
        Fuel = "fuel",
        /// Locked out of the car.
        Lockout = "lockout",
        /// Key fob not recognised, immobiliser.
        KeyFob = "key_fob",
        /// Gear lever stuck in park.
        GearLock = "gear_lock",
        /// A warning light on the dashboard.
        WarningLight = "warning_light",
        /// Charging cable locked in the port.
        EvChargePort = "ev_charge_port",
        /// Electronic parking brake stuck.
        ParkingBrake = "parking_brake",
        /// Engine does not run properly.
        Engine = "engine",
        /// Engine overheating.
        Overheating = "overheating",
        /// A collision.
        Accident = "accident",
        /// Stuck in a ditch, mud or snow.
        Stuck = "stuck",
        /// Anything else.
        Other = "other",
    }
}

/// A phone number, normalized to `+` and digits. Its `Debug` and `Display` forms are
/// masked so it never lands in a log by accident; [`PhoneNumber::as_str`] gives it whole.
///
/// ```
/// use domain::PhoneNumber;
/// let phone = PhoneNumber::parse(" +86 138-0013-8000 ").unwrap();
/// assert_eq!(phone.as_str(), "+8613800138000");
/// assert_eq!(format!("{phone}"), "+86*******8000");
/// assert!(PhoneNumber::parse("  ").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, example = "+8613800138000"))]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Validates and normalizes: an optional leading `+`, then 5 to 20 digits, with spaces,
    /// dashes, dots and parentheses allowed between them.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(FieldError::new("", "must not be empty"));
        }
        let (plus, rest) = match trimmed.strip_prefix('+') {
            Some(rest) => ("+", rest),
            None => ("", trimmed),
        };
        let mut digits = String::with_capacity(rest.len());
        for character in rest.chars() {
            match character {
                '0'..='9' => digits.push(character),
                ' ' | '-' | '.' | '(' | ')' => {}
                other => {
                    return Err(FieldError::new(
                        "",
                        format!("must be a phone number of digits, found `{other}`"),
                    ));
                }
            }
        }
        if !(5..=20).contains(&digits.len()) {
            return Err(FieldError::new(
                "",
                format!("must have 5 to 20 digits, found {}", digits.len()),
            ));
        }
        Ok(Self(format!("{plus}{digits}")))
    }

    /// The whole number. Do not log it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with all but the leading three and trailing four characters hidden.
    pub fn masked(&self) -> String {
        let characters: Vec<char> = self.0.chars().collect();
        let keep_tail = 4.min(characters.len());
        let keep_head = 3.min(characters.len() - keep_tail);
        let hidden = characters.len() - keep_head - keep_tail;
        let mut masked: String = characters[..keep_head].iter().collect();
        masked.extend(std::iter::repeat_n('*', hidden));
        masked.extend(&characters[characters.len() - keep_tail..]);
        masked
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        PhoneNumber::parse(&raw).map_err(|error| serde::de::Error::custom(error.message))
    }
}

/// The stranded driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Customer {
    /// Name as given; may be absent for a hotline caller who did not say.
    pub name: Option<String>,
    /// Call-back number.
    pub phone: PhoneNumber,
    /// Member or policy number.
    pub member_id: Option<String>,
    /// Licence plate of the broken-down car.
    pub plate: Option<String>,
    /// Make and model of the car.
    pub vehicle_model: Option<String>,
    /// What drives the car.
    pub powertrain: Option<Powertrain>,
}

/// Where the car stands, in WGS-84.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Location {
    /// Latitude and longitude, degrees, WGS-84.
    #[serde(flatten)]
    pub position: LatLon,
    /// Horizontal accuracy in metres, when the device reported one.
    pub accuracy_m: Option<f64>,
    /// Address or landmark text.
    pub address: Option<String>,
    /// The kind of road.
    pub road_kind: RoadKind,
}

/// What is wrong with the car.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Fault {
    /// The category.
    pub category: FaultCategory,
    /// Symptom codes in snake_case, e.g. `no_crank`, `smoke`.
    pub symptoms: Vec<String>,
    /// Free text.
    pub description: Option<String>,
}

/// A rescue case as stored and served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Case {
    /// Case id (UUID v7).
    pub id: CaseId,
    /// How the request came in.
    pub channel: Channel,
    /// Where the case stands.
    pub status: CaseStatus,
    /// The service needed.
    pub service: Service,
    /// Service level.
    pub tier: Tier,
    /// The driver.
    pub customer: Customer,
    /// Where the car is.
    pub location: Location,
    /// The fault.
    pub fault: Fault,
    /// When a vehicle was promised to arrive, once one accepted.
    pub promised_arrival: Option<chrono::DateTime<chrono::Utc>>,
    /// When the assigned vehicle is predicted to arrive, from its live progress.
    pub predicted_arrival: Option<chrono::DateTime<chrono::Utc>>,
    /// When the case was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When the case last changed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// A case request as it arrives over the API, before validation. Unknown fields are
/// refused; [`NewCase::parse`] turns it into a [`NewCase`] or names every bad field.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CaseInput {
    /// `app`, `hotline` or `provider`.
    pub channel: Channel,
    /// The driver.
    pub customer: CustomerInput,
    /// Where the car is.
    pub location: LocationInput,
    /// The fault.
    pub fault: FaultInput,
    /// The service needed.
    pub service: Service,
    /// Service level; `standard` when absent.
    #[serde(default)]
    pub tier: Option<Tier>,
    /// Safety facts for triage (accident, injury, smoke or fire, a vulnerable customer,
    /// a customer asking for a truck); all `false` when absent. Any one sends a vehicle at
    /// once instead of queueing the case for a phone expert.
    #[serde(default)]
    pub safety: Option<crate::diagnosis::SafetyReport>,
}

/// The driver, as sent.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    /// Name (optional for hotline callers).
    #[serde(default)]
    pub name: Option<String>,
    /// Call-back number, required.
    pub phone: String,
    /// Member or policy number.
    #[serde(default)]
    pub member_id: Option<String>,
    /// Licence plate.
    #[serde(default)]
    pub plate: Option<String>,
    /// Make and model.
    #[serde(default)]
    pub vehicle_model: Option<String>,
    /// What drives the car.
    #[serde(default)]
    pub powertrain: Option<Powertrain>,
}

/// Where the car is, as sent.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LocationInput {
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
    /// `wgs84` (default) or `gcj02`; GCJ-02 is converted to WGS-84 on the way in.
    #[serde(default)]
    pub crs: Crs,
    /// Horizontal accuracy in metres.
    #[serde(default)]
    pub accuracy_m: Option<f64>,
    /// Address or landmark text.
    #[serde(default)]
    pub address: Option<String>,
    /// `urban`, `highway` or `rural`.
    pub road_kind: RoadKind,
}

/// The fault, as sent.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FaultInput {
    /// The category.
    pub category: FaultCategory,
    /// Symptom codes in snake_case.
    #[serde(default)]
    pub symptoms: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
}

/// A validated case request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCase {
    /// How it came in.
    pub channel: Channel,
    /// The service needed.
    pub service: Service,
    /// Service level.
    pub tier: Tier,
    /// The driver.
    pub customer: Customer,
    /// Where the car is, WGS-84.
    pub location: Location,
    /// The fault.
    pub fault: Fault,
}

const MAX_SYMPTOMS: usize = 20;
const MAX_SYMPTOM_LEN: usize = 48;

impl NewCase {
    /// Validates a raw request. Every bad field is reported, with its dotted path.
    pub fn parse(input: CaseInput) -> Result<NewCase, ValidationErrors> {
        let mut errors = ErrorCollector::default();
        let customer = errors.take_nested("customer", parse_customer(input.customer));
        let location = errors.take_nested("location", parse_location(input.location));
        let fault = errors.take_nested("fault", parse_fault(input.fault));
        errors.finish()?;
        match (customer, location, fault) {
            (Some(customer), Some(location), Some(fault)) => Ok(NewCase {
                channel: input.channel,
                service: input.service,
                tier: input.tier.unwrap_or_default(),
                customer,
                location,
                fault,
            }),
            // `finish` returned early if any part failed.
            _ => Err(ValidationErrors::single("", "invalid case")),
        }
    }

    /// The case this request opens, in status `new`.
    pub fn open(self, id: CaseId, now: Timestamp) -> Case {
        Case {
            id,
            channel: self.channel,
            status: CaseStatus::New,
            service: self.service,
            tier: self.tier,
            customer: self.customer,
            location: self.location,
            fault: self.fault,
            promised_arrival: None,
            predicted_arrival: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Trims an optional text field; empty becomes `None`; longer than `max_chars` is refused.
fn optional_text(
    field: &str,
    value: Option<String>,
    max_chars: usize,
) -> Result<Option<String>, FieldError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    if trimmed.chars().count() > max_chars {
        return Err(FieldError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(Some(trimmed.to_owned()))
}

fn parse_customer(input: CustomerInput) -> Result<Customer, ValidationErrors> {
    let mut errors = ErrorCollector::default();
    let phone = errors.take(PhoneNumber::parse(&input.phone).map_err(|e| e.under("phone")));
    let name = errors.take(optional_text("name", input.name, 100));
    let member_id = errors.take(optional_text("member_id", input.member_id, 64));
    let plate = errors.take(optional_text("plate", input.plate, 20));
    let vehicle_model = errors.take(optional_text("vehicle_model", input.vehicle_model, 100));
    errors.finish()?;
    Ok(Customer {
        name: name.flatten(),
        phone: phone.ok_or_else(|| ValidationErrors::single("phone", "invalid"))?,
        member_id: member_id.flatten(),
        plate: plate.flatten(),
        vehicle_model: vehicle_model.flatten(),
        powertrain: input.powertrain,
    })
}

fn parse_location(input: LocationInput) -> Result<Location, ValidationErrors> {
    let mut errors = ErrorCollector::default();
    let position = errors.take(input.crs.to_wgs84(input.lat, input.lon));
    if let Some(accuracy) = input.accuracy_m
        && (!accuracy.is_finite() || accuracy < 0.0)
    {
        errors.push(FieldError::new(
            "accuracy_m",
            "must be a non-negative number of metres",
        ));
    }
    let address = errors.take(optional_text("address", input.address, 500));
    errors.finish()?;
    let position = position.ok_or_else(|| ValidationErrors::single("lat", "invalid"))?;
    Ok(Location {
        position,
        accuracy_m: input.accuracy_m,
        address: address.flatten(),
        road_kind: input.road_kind,
    })
}

fn parse_fault(input: FaultInput) -> Result<Fault, ValidationErrors> {
    let mut errors = ErrorCollector::default();
    if input.symptoms.len() > MAX_SYMPTOMS {
        errors.push(FieldError::new(
            "symptoms",
            format!("at most {MAX_SYMPTOMS} symptoms"),
        ));
    }
    let mut symptoms = Vec::with_capacity(input.symptoms.len());
    for (index, symptom) in input.symptoms.into_iter().enumerate() {
        let valid = !symptom.is_empty()
            && symptom.len() <= MAX_SYMPTOM_LEN
            && symptom
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if valid {
            if !symptoms.contains(&symptom) {
                symptoms.push(symptom);
            }
        } else {
            errors.push(FieldError::new(
                format!("symptoms[{index}]"),
                format!("must be a snake_case code of at most {MAX_SYMPTOM_LEN} characters"),
            ));
        }
    }
    let description = errors.take(optional_text("description", input.description, 2000));
    errors.finish()?;
    Ok(Fault {
        category: input.category,
        symptoms,
        description: description.flatten(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: serde_json::Value) -> CaseInput {
        serde_json::from_value(json).expect("well-formed input")
    }

    fn valid_json() -> serde_json::Value {
        serde_json::json!({
            "channel": "app",
            "customer": {"name": "李雷", "phone": "+8613800138000", "member_id": "P-001", "plate": "沪B67890"},
            "location": {"lat": 31.2304, "lon": 121.4737, "crs": "wgs84", "address": "人民广场", "road_kind": "urban"},
            "fault": {"category": "battery", "symptoms": ["no_crank"], "description": "clicks"},
            "service": "jump_start"
        })
    }

    #[test]
    fn a_complete_request_parses_into_a_new_case() {
        let case = NewCase::parse(input(valid_json())).unwrap();
        assert_eq!(case.service, Service::JumpStart);
        assert_eq!(case.tier, Tier::Standard);
        assert_eq!(case.customer.phone.as_str(), "+8613800138000");
        assert_eq!(case.fault.symptoms, vec!["no_crank"]);
    }

    #[test]
    fn every_bad_field_is_named_with_its_path() {
        let mut json = valid_json();
        json["location"]["lat"] = serde_json::json!(91.0);
        json["customer"]["phone"] = serde_json::json!("   ");
        json["fault"]["symptoms"] = serde_json::json!(["No Crank"]);
        let errors = NewCase::parse(input(json)).unwrap_err();
        let fields: Vec<_> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["customer.phone", "location.lat", "fault.symptoms[0]"]
        );
    }

    #[test]
    fn unknown_fields_and_vocabulary_are_refused_by_the_parser() {
        let mut json = valid_json();
        json["customer"]["shoe_size"] = serde_json::json!(44);
        assert!(
            serde_json::from_value::<CaseInput>(json)
                .unwrap_err()
                .to_string()
                .contains("shoe_size")
        );
        let mut json = valid_json();
        json["service"] = serde_json::json!("teleport");
        assert!(serde_json::from_value::<CaseInput>(json).is_err());
    }

    #[test]
    fn gcj02_locations_are_stored_in_wgs84() {
        let mut json = valid_json();
        json["location"]["crs"] = serde_json::json!("gcj02");
        let case = NewCase::parse(input(json)).unwrap();
        // The GCJ-02 offset in Shanghai is several hundred metres.
        let given = LatLon::new(31.2304, 121.4737).unwrap();
        let offset_m = case.location.position.distance_m(&given);
        assert!((100.0..800.0).contains(&offset_m), "offset {offset_m} m");
    }

    #[test]
    fn phone_numbers_are_masked_in_debug_output() {
        let phone = PhoneNumber::parse("+8613800138000").unwrap();
        assert!(!format!("{phone:?}").contains("13800138000"));
        assert!(!format!("{phone}").contains("0013"));
    }

    #[test]
    fn phone_numbers_with_letters_or_too_few_digits_are_refused() {
        assert!(PhoneNumber::parse("call me").is_err());
        assert!(PhoneNumber::parse("123").is_err());
        assert!(PhoneNumber::parse("+1 (555) 010-9999").is_ok());
    }

    #[test]
    fn over_long_text_is_refused_and_blank_text_is_dropped() {
        let mut json = valid_json();
        json["location"]["address"] = serde_json::json!("x".repeat(501));
        json["customer"]["name"] = serde_json::json!("  ");
        let errors = NewCase::parse(input(json)).unwrap_err();
        assert_eq!(errors.0[0].field, "location.address");
        let mut json = valid_json();
        json["customer"]["name"] = serde_json::json!("  ");
        assert_eq!(NewCase::parse(input(json)).unwrap().customer.name, None);
    }

    #[test]
    fn vocabulary_names_round_trip() {
        for service in Service::ALL {
            assert_eq!(service.as_str().parse::<Service>().unwrap(), *service);
        }
        let error = "hovercraft".parse::<Service>().unwrap_err();
        assert!(error.message.contains("jump_start"));
    }
}
