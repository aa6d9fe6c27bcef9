//! The triage decision: the safety override first, then the rules.
//!
//! [`triage()`] is a pure function of the active [`TriageRules`] and a [`TriageInput`]. Its
//! [`TriageDecision`] says what to do (queue for an expert with a skill, or dispatch) and
//! why, as reason codes with a human sentence each, ready to be written to the case
//! timeline as the `triaged` event's data.

use chrono::{DateTime, Utc};
use domain::{Case, FaultCategory, LatLon, Powertrain, RoadKind, Service};
use serde::{Deserialize, Serialize};

use crate::rules::{RuleId, RuleOutcome, Skill, TriageRules};
use crate::safety::{SafetyFlags, safety_reasons};

/// What triage looks at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TriageInput {
    /// The fault category.
    pub category: FaultCategory,
    /// Symptom codes (snake_case), as validated by the case API.
    pub symptoms: Vec<String>,
    /// What drives the car, when known.
    pub powertrain: Option<Powertrain>,
    /// The service requested.
    pub service: Service,
    /// The kind of road the car stands on.
    pub road_kind: RoadKind,
    /// Where the car is, WGS-84.
    pub position: LatLon,
    /// When the triage happens (for darkness), UTC.
    pub at: DateTime<Utc>,
    /// What the customer or agent reported about safety.
    pub safety: SafetyFlags,
}

impl TriageInput {
    /// The input for a stored case, triaged at `at`. Safety flags are not part of
    /// [`Case`]; the server takes them from the case request.
    pub fn for_case(case: &Case, safety: SafetyFlags, at: DateTime<Utc>) -> Self {
        Self {
            category: case.fault.category,
            symptoms: case.fault.symptoms.clone(),
            powertrain: case.customer.powertrain,
            service: case.service,
            road_kind: case.location.road_kind,
            position: case.location.position,
            at,
            safety,
        }
    }
}

domain::vocabulary! {
    /// Why triage decided what it did: a closed, machine-readable vocabulary.
    pub enum ReasonCode: "reason code" {
        /// Safety: the car is on a highway or motorway.
        Highway = "highway",
        /// Safety: an accident.
        Accident = "accident",
        /// Safety: someone is injured.
        Injury = "injury",
        /// Safety: smoke or fire.
        SmokeOrFire = "smoke_or_fire",
        /// Safety: a vulnerable customer.
        VulnerableCustomer = "vulnerable_customer",
        /// Safety: darkness on a rural road.
        NightOnRuralRoad = "night_on_rural_road",
        /// Safety: the customer asked for a vehicle.
        CustomerRequestedVehicle = "customer_requested_vehicle",
        /// A rule found the fault phone-solvable.
        RulePhoneSolvable = "rule_phone_solvable",
        /// A rule found that the fault needs a vehicle.
        RuleNeedsVehicle = "rule_needs_vehicle",
        /// No rule matched; the fallback decided.
        NoRuleMatched = "no_rule_matched",
    }
}

impl ReasonCode {
    /// Whether this reason is part of the safety override.
    pub fn is_safety(self) -> bool {
        !matches!(
            self,
            ReasonCode::RulePhoneSolvable
                | ReasonCode::RuleNeedsVehicle
                | ReasonCode::NoRuleMatched
        )
    }
}

/// One reason: a code for machines and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reason {
    /// The machine-readable code.
    pub code: ReasonCode,
    /// A human sentence for the timeline and the console.
    pub message: String,
}

impl Reason {
    /// A reason.
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// What to do with the case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// Queue for a phone expert with `skill`; the case goes to `diagnosing`.
    PhoneSolvable {
        /// The skill the expert needs (the ticket's skill).
        skill: Skill,
        /// Typical call length, seconds.
        expected_fix_s: u32,
        /// The rule that decided (or `fallback`).
        rule_id: RuleId,
        /// A reminder for the expert.
        instructions_hint: Option<String>,
    },
    /// Dispatch a vehicle now; the case goes to `dispatching`.
    Dispatch {
        /// The needs-vehicle rule that decided (or `fallback`); `None` when the safety
        /// override decided against a phone-solvable rule.
        rule_id: Option<RuleId>,
        /// The service the rule advises the vehicle be equipped for, if any.
        dispatch_service: Option<Service>,
        /// The safety override applied: dispatch with urgency.
        safety_override: bool,
    },
}

/// A triage decision with every reason for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TriageDecision {
    /// What to do.
    pub outcome: Outcome,
    /// Why: the safety reasons first (all that hold), then what the rules said.
    pub reasons: Vec<Reason>,
}

impl TriageDecision {
    /// Whether the case should wait for a phone expert.
    pub fn is_phone_solvable(&self) -> bool {
        matches!(self.outcome, Outcome::PhoneSolvable { .. })
    }

    /// Whether the safety override sent a vehicle.
    pub fn is_safety_override(&self) -> bool {
        matches!(
            self.outcome,
            Outcome::Dispatch {
                safety_override: true,
                ..
            }
        )
    }

    /// The reason codes, in order.
    pub fn reason_codes(&self) -> Vec<ReasonCode> {
        self.reasons.iter().map(|reason| reason.code).collect()
    }

    /// Every reason's sentence, joined: one line for a log or the console.
    pub fn summary(&self) -> String {
        self.reasons
            .iter()
            .map(|reason| reason.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Decides a case: the safety override first (any condition sends a vehicle at once),
/// then the first matching rule, then the fallback. Never panics and never fails: every
/// input gets a decision.
///
/// ```
/// use domain::{FaultCategory, LatLon, RoadKind, Service};
/// use diagnosis_core::{triage, Outcome, ReasonCode, SafetyFlags, TriageInput, TriageRules};
///
/// let mut input = TriageInput {
///     category: FaultCategory::GearLock,
///     symptoms: vec![],
///     powertrain: None,
///     service: Service::Tow,
///     road_kind: RoadKind::Urban,
///     position: LatLon::new(31.2304, 121.4737).unwrap(),
///     at: "2026-05-04T02:00:00Z".parse().unwrap(),
///     safety: SafetyFlags::default(),
/// };
/// let rules = TriageRules::defaults();
/// assert!(triage(&rules, &input).is_phone_solvable());
///
/// input.road_kind = RoadKind::Highway;
/// let decision = triage(&rules, &input);
/// assert!(decision.is_safety_override());
/// assert_eq!(decision.reason_codes(), [ReasonCode::Highway, ReasonCode::RulePhoneSolvable]);
/// ```
pub fn triage(rules: &TriageRules, input: &TriageInput) -> TriageDecision {
    let mut reasons = safety_reasons(input);
    let safety_override = !reasons.is_empty();
    let verdict = rules.evaluate(input);
    let rule_id = verdict.rule_id();
    let outcome = match verdict.outcome {
        RuleOutcome::PhoneSolvable(fix) => {
            let (code, matched) = match verdict.rule {
                Some(_) => (ReasonCode::RulePhoneSolvable, format!("rule `{rule_id}`")),
                None => (
                    ReasonCode::NoRuleMatched,
                    "no rule matched and the fallback".to_owned(),
                ),
            };
            let minutes = fix.expected_fix_s.div_ceil(60);
            if safety_override {
                reasons.push(Reason::new(
                    code,
                    format!(
                        "{matched} found it phone-solvable (skill {}, about {minutes} min), but safety comes first",
                        fix.skill
                    ),
                ));
                Outcome::Dispatch {
                    rule_id: None,
                    dispatch_service: None,
                    safety_override: true,
                }
            } else {
                reasons.push(Reason::new(
                    code,
                    format!(
                        "{matched} found it phone-solvable: queued for an expert with skill {} (about {minutes} min)",
                        fix.skill
                    ),
                ));
                Outcome::PhoneSolvable {
                    skill: fix.skill.clone(),
                    expected_fix_s: fix.expected_fix_s,
                    rule_id,
                    instructions_hint: fix.instructions_hint.clone(),
                }
            }
        }
        RuleOutcome::NeedsVehicle { dispatch_service } => {
            let (code, matched) = match verdict.rule {
                Some(_) => (ReasonCode::RuleNeedsVehicle, format!("rule `{rule_id}`")),
                None => (
                    ReasonCode::NoRuleMatched,
                    "no rule matched and the fallback".to_owned(),
                ),
            };
            let equipped = match dispatch_service {
                Some(service) => format!(" (equipped for {service})"),
                None => String::new(),
            };
            reasons.push(Reason::new(
                code,
                format!("{matched} says it needs a vehicle{equipped}"),
            ));
            Outcome::Dispatch {
                rule_id: Some(rule_id),
                dispatch_service: *dispatch_service,
                safety_override,
            }
        }
    };
    TriageDecision { outcome, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn urban_daytime(category: FaultCategory, symptoms: &[&str]) -> TriageInput {
        TriageInput {
            category,
            symptoms: symptoms
                .iter()
                .map(|symptom| (*symptom).to_owned())
                .collect(),
            powertrain: None,
            service: Service::Tow,
            road_kind: RoadKind::Urban,
            position: LatLon::new(31.2304, 121.4737).expect("valid position"),
            at: "2026-05-04T02:00:00Z".parse().expect("valid time"),
            safety: SafetyFlags::default(),
        }
    }

    /// What the defaults should decide for a common fault.
    #[derive(Debug)]
    enum Expect {
        Phone(&'static str),
        Truck(Option<Service>),
    }

    /// Category, symptoms, powertrain, the rule expected to decide, and its outcome.
    type FaultRow = (
        FaultCategory,
        &'static [&'static str],
        Option<Powertrain>,
        &'static str,
        Expect,
    );

    #[test]
    fn the_default_rules_decide_common_faults_as_a_dispatcher_would() {
        use Expect::{Phone, Truck};
        use FaultCategory as F;
        // A table reads better one row per line.
        #[rustfmt::skip]
        let table: &[FaultRow] = &[
            // Phone-solvable.
            (F::KeyFob, &["key_not_detected"], None, "key_fob_battery_or_immobiliser", Phone("key_fob")),
            (F::KeyFob, &["immobiliser_light"], None, "key_fob_battery_or_immobiliser", Phone("key_fob")),
            (F::GearLock, &[], None, "gear_lever_locked_in_park", Phone("gear_lock")),
            (F::WarningLight, &["engine_check"], None, "warning_light_advisory", Phone("warning_light")),
            (F::WarningLight, &["tpms"], None, "warning_light_tyre_pressure", Phone("tyre_pressure")),
            (F::EvChargePort, &["cable_stuck"], Some(Powertrain::Ev), "ev_charge_cable_locked", Phone("ev_charge_port")),
            (F::ParkingBrake, &["will_not_release"], None, "parking_brake_stuck", Phone("parking_brake")),
            (F::Tyre, &["pressure_warning"], None, "tyre_pressure_warning", Phone("tyre_pressure")),
            (F::Fuel, &["filler_flap_stuck"], None, "fuel_cap_or_filler", Phone("fuel_system")),
            (F::Fuel, &["cap_warning"], None, "fuel_cap_or_filler", Phone("fuel_system")),
            (F::Other, &["infotainment_frozen"], None, "infotainment_or_dashboard_reset", Phone("infotainment")),
            (F::Other, &["dashboard_reset"], None, "infotainment_or_dashboard_reset", Phone("infotainment")),
            // A truck.
            (F::Battery, &["no_crank"], None, "battery_flat_no_crank", Truck(Some(Service::JumpStart))),
            (F::Battery, &["out_of_charge"], Some(Powertrain::Ev), "ev_traction_battery_empty", Truck(Some(Service::Tow))),
            (F::Battery, &["out_of_charge"], Some(Powertrain::Petrol), "battery_other", Truck(Some(Service::JumpStart))),
            (F::Tyre, &["flat"], None, "tyre_flat_or_damaged", Truck(Some(Service::TyreChange))),
            (F::Tyre, &["flat", "tpms"], None, "tyre_flat_or_damaged", Truck(Some(Service::TyreChange))),
            (F::Fuel, &["out_of_fuel"], None, "fuel_empty", Truck(Some(Service::FuelDelivery))),
            (F::Fuel, &["wrong_fuel"], None, "fuel_wrong_fuel", Truck(Some(Service::Tow))),
            (F::KeyFob, &["key_lost"], None, "key_lost_or_broken", Truck(Some(Service::Lockout))),
            (F::WarningLight, &["oil_pressure"], None, "warning_light_critical", Truck(Some(Service::Tow))),
            (F::ParkingBrake, &["no_power"], None, "parking_brake_no_power", Truck(Some(Service::JumpStart))),
            (F::Lockout, &["keys_in_car"], None, "lockout", Truck(Some(Service::Lockout))),
            (F::Engine, &["stalled"], None, "engine", Truck(Some(Service::Tow))),
            (F::Overheating, &[], None, "overheating", Truck(Some(Service::Tow))),
            (F::Stuck, &["ditch"], None, "stuck", Truck(Some(Service::Winch))),
            (F::Other, &["strange_noise"], None, "fallback", Truck(None)),
        ];
        let rules = TriageRules::defaults();
        for (category, symptoms, powertrain, rule, expected) in table {
            let mut input = urban_daytime(*category, symptoms);
            input.powertrain = *powertrain;
            let decision = triage(&rules, &input);
            let case = format!("{category} {symptoms:?} {powertrain:?}");
            match (&decision.outcome, expected) {
                (
                    Outcome::PhoneSolvable {
                        skill,
                        rule_id,
                        expected_fix_s,
                        ..
                    },
                    Phone(expected_skill),
                ) => {
                    assert_eq!(skill.as_str(), *expected_skill, "{case}");
                    assert_eq!(rule_id.as_str(), *rule, "{case}");
                    assert!(*expected_fix_s > 0, "{case}");
                }
                (
                    Outcome::Dispatch {
                        rule_id,
                        dispatch_service,
                        safety_override,
                    },
                    Truck(service),
                ) => {
                    assert_eq!(rule_id.as_ref().map(RuleId::as_str), Some(*rule), "{case}");
                    assert_eq!(dispatch_service, service, "{case}");
                    assert!(!safety_override, "{case}");
                }
                (outcome, expected) => panic!("{case}: expected {expected:?}, got {outcome:?}"),
            }
            assert!(!decision.reasons.is_empty(), "{case}");
        }
    }

    #[test]
    fn the_accident_category_is_always_a_safety_dispatch() {
        let decision = triage(
            &TriageRules::defaults(),
            &urban_daytime(FaultCategory::Accident, &[]),
        );
        assert!(decision.is_safety_override());
        assert_eq!(
            decision.reason_codes(),
            [ReasonCode::Accident, ReasonCode::RuleNeedsVehicle]
        );
    }

    #[test]
    fn a_decision_serializes_for_the_timeline_with_codes_and_sentences() {
        let decision = triage(
            &TriageRules::defaults(),
            &urban_daytime(FaultCategory::GearLock, &[]),
        );
        let json = serde_json::to_value(&decision).expect("serializes");
        assert_eq!(json["outcome"]["kind"], "phone_solvable");
        assert_eq!(json["outcome"]["skill"], "gear_lock");
        assert_eq!(json["outcome"]["rule_id"], "gear_lever_locked_in_park");
        assert_eq!(json["reasons"][0]["code"], "rule_phone_solvable");
        assert!(
            json["reasons"][0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("gear_lock"))
        );
        let back: TriageDecision = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, decision);
    }

    #[test]
    fn a_phone_solvable_fallback_is_reported_as_no_rule_matched() {
        let text = "version = 1\nskills = [\"generalist\"]\n\n[[rule]]\nid = \"engine\"\ncategory = \"engine\"\noutcome = \"needs_vehicle\"\n\n[fallback]\noutcome = \"phone_solvable\"\nskill = \"generalist\"\nexpected_fix_s = 300\n";
        let rules = TriageRules::parse(text).expect("valid");
        let decision = triage(&rules, &urban_daytime(FaultCategory::Other, &[]));
        assert_eq!(decision.reason_codes(), [ReasonCode::NoRuleMatched]);
        match decision.outcome {
            Outcome::PhoneSolvable { rule_id, .. } => assert_eq!(rule_id.as_str(), "fallback"),
            other => panic!("expected phone-solvable, got {other:?}"),
        }
    }

    #[test]
    fn the_input_of_a_stored_case_carries_its_fault_location_and_powertrain() {
        let case_json = serde_json::json!({
            "channel": "app",
            "customer": {"phone": "+8613800138000", "powertrain": "ev"},
            "location": {"lat": 31.2304, "lon": 121.4737, "road_kind": "rural"},
            "fault": {"category": "ev_charge_port", "symptoms": ["cable_stuck"]},
            "service": "tow"
        });
        let input: domain::case::CaseInput =
            serde_json::from_value(case_json).expect("valid input");
        let now: DateTime<Utc> = "2026-05-04T02:00:00Z".parse().expect("valid time");
        let case = domain::NewCase::parse(input)
            .expect("valid case")
            .open(domain::CaseId::new_v7(), now);
        let triage_input = TriageInput::for_case(&case, SafetyFlags::default(), now);
        assert_eq!(triage_input.category, FaultCategory::EvChargePort);
        assert_eq!(triage_input.powertrain, Some(Powertrain::Ev));
        assert_eq!(triage_input.road_kind, RoadKind::Rural);
        assert_eq!(triage_input.symptoms, ["cable_stuck"]);
    }

    fn any_category() -> impl Strategy<Value = FaultCategory> {
        proptest::sample::select(FaultCategory::ALL.to_vec())
    }

    fn any_input() -> impl Strategy<Value = TriageInput> {
        let symptoms = proptest::collection::vec(
            prop_oneof![
                "[a-z_]{1,12}",
                "\\PC{0,20}",
                Just("smoke".to_owned()),
                Just("no_crank".to_owned())
            ],
            0..6,
        );
        let flags =
            proptest::array::uniform5(any::<bool>()).prop_map(|[a, b, c, d, e]| SafetyFlags {
                accident: a,
                injury: b,
                smoke_or_fire: c,
                vulnerable_customer: d,
                requests_vehicle: e,
            });
        (
            any_category(),
            symptoms,
            proptest::option::of(proptest::sample::select(Powertrain::ALL.to_vec())),
            proptest::sample::select(Service::ALL.to_vec()),
            proptest::sample::select(RoadKind::ALL.to_vec()),
            (-90.0..=90.0f64, -180.0..=180.0f64),
            // 1900 to 2200, well beyond the algorithm's intended range.
            -2_208_988_800i64..7_258_118_400i64,
            flags,
        )
            .prop_map(
                |(
                    category,
                    symptoms,
                    powertrain,
                    service,
                    road_kind,
                    (lat, lon),
                    unix_s,
                    safety,
                )| TriageInput {
                    category,
                    symptoms,
                    powertrain,
                    service,
                    road_kind,
                    position: LatLon::new(lat, lon).expect("in range by construction"),
                    at: DateTime::from_timestamp(unix_s, 0).expect("in range by construction"),
                    safety,
                },
            )
    }

    proptest! {
        #[test]
        fn triage_never_panics_and_always_explains_itself(input in any_input()) {
            let decision = triage(&TriageRules::defaults(), &input);
            prop_assert!(!decision.reasons.is_empty());
            prop_assert!(decision.reasons.iter().all(|reason| !reason.message.is_empty()));
        }

        #[test]
        fn a_safety_condition_never_lets_a_case_wait_for_the_phone(input in any_input()) {
            let decision = triage(&TriageRules::defaults(), &input);
            let any_flag = input.safety.accident
                || input.safety.injury
                || input.safety.smoke_or_fire
                || input.safety.vulnerable_customer
                || input.safety.requests_vehicle
                || input.road_kind == RoadKind::Highway;
            if any_flag {
                prop_assert!(decision.is_safety_override());
            }
            prop_assert_eq!(
                decision.is_safety_override(),
                decision.reasons.iter().any(|reason| reason.code.is_safety())
            );
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let _ = TriageRules::parse(&text);
            let _ = TriageRules::from_json(&text);
        }

        #[test]
        fn parsing_mangled_default_rules_never_panics(cut in 0usize..4_000, insert in "\\PC{0,8}") {
            let mut text = crate::rules::DEFAULT_RULES_TOML.to_owned();
            let cut = text.floor_char_boundary(cut.min(text.len()));
            text.insert_str(cut, &insert);
            if let Err(error) = TriageRules::parse(&text) {
                prop_assert!(!error.problems().is_empty());
            }
        }
    }
}
