//! The safety override: conditions under which a vehicle is dispatched at once, whatever
//! the triage rules say, and the case never waits in the phone-expert queue.
//!
//! | condition | reason code | from |
//! |---|---|---|
//! | the car stands on a highway or motorway | `highway` | `road_kind = highway` |
//! | an accident | `accident` | [`SafetyFlags::accident`], fault category `accident`, or a symptom in [`ACCIDENT_SYMPTOMS`] |
//! | someone is injured | `injury` | [`SafetyFlags::injury`] or a symptom in [`INJURY_SYMPTOMS`] |
//! | smoke or fire | `smoke_or_fire` | [`SafetyFlags::smoke_or_fire`] or a symptom in [`SMOKE_OR_FIRE_SYMPTOMS`] |
//! | a vulnerable customer (elderly, children alone, disability, pregnancy, medical need) | `vulnerable_customer` | [`SafetyFlags::vulnerable_customer`], set by the app or the seat agent |
//! | night on a rural road | `night_on_rural_road` | `road_kind = rural` and the sun below [`DARKNESS_SUN_ELEVATION_DEG`] at the car's position |
//! | the customer asks for a truck | `customer_requested_vehicle` | [`SafetyFlags::requests_vehicle`] |
//!
//! Every condition that holds is reported, not only the first, so the timeline shows all
//! of them.
//!
//! # Why "night" means the sun below −6°
//!
//! Clock hours are wrong for this: 20:00 is broad daylight in Helsinki in June and deep
//! night in December, and a single time zone spans all of China. What puts a stranded
//! driver at risk on an unlit country road is real darkness, so we compute the sun's
//! elevation at the car's position and time ([`crate::solar`]). We call it night once the
//! sun is more than 6° below the horizon — the end of *civil twilight*, the conventional
//! point at which outdoor activity needs artificial light and the one many road-safety and
//! vehicle-lighting rules refer to. Sunset itself (−0.833°) would be too early, since it is
//! still light for half an hour after, and nautical twilight (−12°) too late. At
//! high latitudes in summer the sun may never sink that far: then it is never "night",
//! which matches what a driver sees.

use chrono::{DateTime, Utc};
use domain::{FaultCategory, LatLon, RoadKind};
use serde::{Deserialize, Serialize};

use crate::solar::sun_elevation_deg;
use crate::triage::{Reason, ReasonCode, TriageInput};

/// Below this geometric sun elevation, in degrees, it is night (the end of civil twilight).
pub const DARKNESS_SUN_ELEVATION_DEG: f64 = crate::solar::CIVIL_TWILIGHT_ELEVATION_DEG;

/// Symptom codes that count as smoke or fire.
pub const SMOKE_OR_FIRE_SYMPTOMS: &[&str] = &["smoke", "fire", "flames", "burning_smell"];

/// Symptom codes that count as an injury.
pub const INJURY_SYMPTOMS: &[&str] = &["injury", "injured"];

/// Symptom codes that count as an accident.
pub const ACCIDENT_SYMPTOMS: &[&str] = &["collision", "crash"];

/// What the customer or the seat agent reported about safety. Every flag defaults to
/// `false`, so an API body may send only the ones that are set:
/// `{"injury": true}`.
///
/// ```
/// use diagnosis_core::SafetyFlags;
/// let flags: SafetyFlags = serde_json::from_str(r#"{"injury": true}"#).unwrap();
/// assert!(flags.injury && !flags.accident);
/// assert!(serde_json::from_str::<SafetyFlags>(r#"{"injured": true}"#).is_err());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct SafetyFlags {
    /// There was a collision.
    pub accident: bool,
    /// Someone is hurt.
    pub injury: bool,
    /// Smoke or fire from the car.
    pub smoke_or_fire: bool,
    /// The customer is vulnerable: elderly, children alone, a disability, pregnancy or a
    /// medical need.
    pub vulnerable_customer: bool,
    /// The customer asked for a vehicle rather than a phone call.
    pub requests_vehicle: bool,
}

/// Whether it is dark (the sun below [`DARKNESS_SUN_ELEVATION_DEG`]) at `position` at `at`.
///
/// ```
/// use domain::LatLon;
/// use diagnosis_core::safety::is_dark;
/// let helsinki = LatLon::new(60.1699, 24.9384).unwrap();
/// // 20:00 local time: light in June, dark in December.
/// assert!(!is_dark(helsinki, "2026-06-15T17:00:00Z".parse().unwrap()));
/// assert!(is_dark(helsinki, "2026-12-15T18:00:00Z".parse().unwrap()));
/// ```
pub fn is_dark(position: LatLon, at: DateTime<Utc>) -> bool {
    sun_elevation_deg(position, at) < DARKNESS_SUN_ELEVATION_DEG
}

/// Every safety condition that holds for this input, as reasons; empty when the case may
/// wait for a phone expert.
///
/// ```
/// use domain::{FaultCategory, LatLon, RoadKind, Service};
/// use diagnosis_core::safety::safety_reasons;
/// use diagnosis_core::{ReasonCode, SafetyFlags, TriageInput};
/// let input = TriageInput {
///     category: FaultCategory::KeyFob,
///     symptoms: vec![],
///     powertrain: None,
///     service: Service::Tow,
///     road_kind: RoadKind::Highway,
///     position: LatLon::new(31.2304, 121.4737).unwrap(),
///     at: "2026-05-04T02:00:00Z".parse().unwrap(),
///     safety: SafetyFlags { requests_vehicle: true, ..SafetyFlags::default() },
/// };
/// let codes: Vec<ReasonCode> = safety_reasons(&input).iter().map(|reason| reason.code).collect();
/// assert_eq!(codes, [ReasonCode::Highway, ReasonCode::CustomerRequestedVehicle]);
/// ```
pub fn safety_reasons(input: &TriageInput) -> Vec<Reason> {
    let has_symptom = |codes: &[&str]| {
        input
            .symptoms
            .iter()
            .any(|symptom| codes.contains(&symptom.as_str()))
    };
    let mut reasons = Vec::new();
    if input.road_kind == RoadKind::Highway {
        reasons.push(Reason::new(
            ReasonCode::Highway,
            "the car stands on a highway or motorway, where waiting is dangerous: a vehicle is sent at once",
        ));
    }
    if input.safety.accident
        || input.category == FaultCategory::Accident
        || has_symptom(ACCIDENT_SYMPTOMS)
    {
        reasons.push(Reason::new(
            ReasonCode::Accident,
            "an accident was reported: a vehicle is sent at once",
        ));
    }
    if input.safety.injury || has_symptom(INJURY_SYMPTOMS) {
        reasons.push(Reason::new(
            ReasonCode::Injury,
            "someone is injured: a vehicle is sent at once",
        ));
    }
    if input.safety.smoke_or_fire || has_symptom(SMOKE_OR_FIRE_SYMPTOMS) {
        reasons.push(Reason::new(
            ReasonCode::SmokeOrFire,
            "smoke or fire was reported: a vehicle is sent at once",
        ));
    }
    if input.safety.vulnerable_customer {
        reasons.push(Reason::new(
            ReasonCode::VulnerableCustomer,
            "the customer is vulnerable: a vehicle is sent at once",
        ));
    }
    if input.road_kind == RoadKind::Rural {
        let elevation_deg = sun_elevation_deg(input.position, input.at);
        if elevation_deg < DARKNESS_SUN_ELEVATION_DEG {
            reasons.push(Reason::new(
                ReasonCode::NightOnRuralRoad,
                format!(
                    "it is night on a rural road (the sun is {:.1}° below the horizon at the car): a vehicle is sent at once",
                    -elevation_deg
                ),
            ));
        }
    }
    if input.safety.requests_vehicle {
        reasons.push(Reason::new(
            ReasonCode::CustomerRequestedVehicle,
            "the customer asked for a vehicle: one is sent at once",
        ));
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::TriageRules;
    use crate::triage::{Outcome, TriageDecision, triage};
    use domain::Service;

    const SHANGHAI: (f64, f64) = (31.2304, 121.4737);

    /// A gear lever stuck in park in central Shanghai at 10:00 local time: phone-solvable
    /// and safe, so every test changes exactly one thing.
    fn safe_phone_case() -> TriageInput {
        TriageInput {
            category: FaultCategory::GearLock,
            symptoms: vec![],
            powertrain: None,
            service: Service::Tow,
            road_kind: RoadKind::Urban,
            position: LatLon::new(SHANGHAI.0, SHANGHAI.1).expect("valid position"),
            at: "2026-05-04T02:00:00Z".parse().expect("valid time"),
            safety: SafetyFlags::default(),
        }
    }

    fn decide(input: &TriageInput) -> TriageDecision {
        triage(&TriageRules::defaults(), input)
    }

    fn assert_dispatched_at_once_because(input: &TriageInput, code: ReasonCode) {
        let decision = decide(input);
        assert!(
            decision.is_safety_override(),
            "expected a safety dispatch, got {decision:#?}"
        );
        assert_eq!(decision.reasons[0].code, code, "{decision:#?}");
        assert!(decision.reasons[0].message.contains("at once"));
    }

    #[test]
    fn the_baseline_case_is_queued_for_a_phone_expert() {
        let decision = decide(&safe_phone_case());
        assert!(decision.is_phone_solvable(), "{decision:#?}");
        assert!(safety_reasons(&safe_phone_case()).is_empty());
    }

    #[test]
    fn a_car_on_a_highway_is_dispatched_at_once() {
        let input = TriageInput {
            road_kind: RoadKind::Highway,
            ..safe_phone_case()
        };
        assert_dispatched_at_once_because(&input, ReasonCode::Highway);
    }

    #[test]
    fn an_accident_is_dispatched_at_once() {
        let mut input = safe_phone_case();
        input.safety.accident = true;
        assert_dispatched_at_once_because(&input, ReasonCode::Accident);
    }

    #[test]
    fn an_accident_reported_as_fault_category_or_symptom_is_dispatched_at_once() {
        let category = TriageInput {
            category: FaultCategory::Accident,
            ..safe_phone_case()
        };
        assert_dispatched_at_once_because(&category, ReasonCode::Accident);
        let symptom = TriageInput {
            symptoms: vec!["collision".to_owned()],
            ..safe_phone_case()
        };
        assert_dispatched_at_once_because(&symptom, ReasonCode::Accident);
    }

    #[test]
    fn an_injured_person_is_dispatched_at_once() {
        let mut input = safe_phone_case();
        input.safety.injury = true;
        assert_dispatched_at_once_because(&input, ReasonCode::Injury);
    }

    #[test]
    fn smoke_or_fire_is_dispatched_at_once() {
        let mut input = safe_phone_case();
        input.safety.smoke_or_fire = true;
        assert_dispatched_at_once_because(&input, ReasonCode::SmokeOrFire);
    }

    #[test]
    fn smoke_reported_only_as_a_symptom_is_dispatched_at_once() {
        for symptom in SMOKE_OR_FIRE_SYMPTOMS {
            let input = TriageInput {
                symptoms: vec![(*symptom).to_owned()],
                ..safe_phone_case()
            };
            assert_dispatched_at_once_because(&input, ReasonCode::SmokeOrFire);
        }
    }

    #[test]
    fn a_vulnerable_customer_is_dispatched_at_once() {
        let mut input = safe_phone_case();
        input.safety.vulnerable_customer = true;
        assert_dispatched_at_once_because(&input, ReasonCode::VulnerableCustomer);
    }

    #[test]
    fn night_on_a_rural_road_is_dispatched_at_once() {
        // 22:00 in Shanghai: the sun is far below the horizon.
        let input = TriageInput {
            road_kind: RoadKind::Rural,
            at: "2026-05-04T14:00:00Z".parse().expect("valid time"),
            ..safe_phone_case()
        };
        assert_dispatched_at_once_because(&input, ReasonCode::NightOnRuralRoad);
        assert!(
            decide(&input).reasons[0]
                .message
                .contains("below the horizon")
        );
    }

    #[test]
    fn a_customer_asking_for_a_truck_is_dispatched_at_once() {
        let mut input = safe_phone_case();
        input.safety.requests_vehicle = true;
        assert_dispatched_at_once_because(&input, ReasonCode::CustomerRequestedVehicle);
    }

    #[test]
    fn a_rural_road_in_daylight_is_no_reason_to_dispatch() {
        let input = TriageInput {
            road_kind: RoadKind::Rural,
            ..safe_phone_case()
        };
        assert!(decide(&input).is_phone_solvable());
    }

    #[test]
    fn night_in_town_is_no_reason_to_dispatch() {
        let input = TriageInput {
            at: "2026-05-04T14:00:00Z".parse().expect("valid time"),
            ..safe_phone_case()
        };
        assert!(decide(&input).is_phone_solvable());
    }

    #[test]
    fn civil_twilight_still_counts_as_day_and_the_end_of_it_as_night() {
        // Shanghai, 4 May 2026: sunset about 18:37 local (10:37Z), the sun reaches −6°
        // about 25 minutes later.
        let at = |time: &str| TriageInput {
            road_kind: RoadKind::Rural,
            at: time.parse().expect("valid time"),
            ..safe_phone_case()
        };
        assert!(
            decide(&at("2026-05-04T10:45:00Z")).is_phone_solvable(),
            "just after sunset"
        );
        assert!(
            decide(&at("2026-05-04T11:20:00Z")).is_safety_override(),
            "after civil dusk"
        );
    }

    #[test]
    fn the_same_clock_time_is_night_in_a_helsinki_winter_but_not_in_its_summer() {
        // 21:00 local time on a rural road near Helsinki.
        let helsinki = LatLon::new(60.1699, 24.9384).expect("valid position");
        let summer = TriageInput {
            road_kind: RoadKind::Rural,
            position: helsinki,
            at: "2026-06-21T18:00:00Z".parse().expect("valid time"),
            ..safe_phone_case()
        };
        let winter = TriageInput {
            at: "2026-12-21T19:00:00Z".parse().expect("valid time"),
            ..summer.clone()
        };
        assert!(decide(&summer).is_phone_solvable());
        assert_dispatched_at_once_because(&winter, ReasonCode::NightOnRuralRoad);
    }

    #[test]
    fn every_condition_that_holds_is_reported_in_a_fixed_order() {
        let input = TriageInput {
            road_kind: RoadKind::Highway,
            symptoms: vec!["smoke".to_owned()],
            safety: SafetyFlags {
                accident: true,
                injury: true,
                smoke_or_fire: true,
                vulnerable_customer: true,
                requests_vehicle: true,
            },
            ..safe_phone_case()
        };
        let codes: Vec<ReasonCode> = safety_reasons(&input)
            .into_iter()
            .map(|reason| reason.code)
            .collect();
        assert_eq!(
            codes,
            [
                ReasonCode::Highway,
                ReasonCode::Accident,
                ReasonCode::Injury,
                ReasonCode::SmokeOrFire,
                ReasonCode::VulnerableCustomer,
                ReasonCode::CustomerRequestedVehicle,
            ]
        );
    }

    #[test]
    fn the_override_on_a_phone_solvable_fault_says_what_the_rules_would_have_done() {
        let input = TriageInput {
            road_kind: RoadKind::Highway,
            ..safe_phone_case()
        };
        let decision = decide(&input);
        assert_eq!(
            decision.outcome,
            Outcome::Dispatch {
                rule_id: None,
                dispatch_service: None,
                safety_override: true
            }
        );
        assert_eq!(
            decision.reason_codes(),
            [ReasonCode::Highway, ReasonCode::RulePhoneSolvable]
        );
        assert!(decision.reasons[1].message.contains("safety comes first"));
    }

    #[test]
    fn the_override_on_a_truck_fault_keeps_the_rule_and_its_service() {
        let input = TriageInput {
            road_kind: RoadKind::Highway,
            category: FaultCategory::Tyre,
            symptoms: vec!["flat".to_owned()],
            ..safe_phone_case()
        };
        let decision = decide(&input);
        match decision.outcome {
            Outcome::Dispatch {
                rule_id,
                dispatch_service,
                safety_override,
            } => {
                assert_eq!(
                    rule_id.as_ref().map(|id| id.as_str()),
                    Some("tyre_flat_or_damaged")
                );
                assert_eq!(dispatch_service, Some(Service::TyreChange));
                assert!(safety_override);
            }
            other => panic!("expected a dispatch, got {other:?}"),
        }
    }
}
