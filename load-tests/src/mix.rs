//! What stranded drivers ask for: a realistic mix of faults, services, places and people,
//! drawn from a seeded generator. Pure.
//!
//! The fault table follows the triage rules' own examples (`diagnosis-core`): about one
//! request in six names a fault that may be fixed over the phone (a dead key fob, a
//! warning light, a gear lever stuck in park …), the rest need a truck.

use rand::RngExt;
use serde_json::{Value, json};

use crate::rng::{SimRng, weighted_index};
use crate::sim::City;

/// One kind of request: what the driver reports and which service the app asks for.
#[derive(Debug, Clone, Copy)]
pub struct FaultKind {
    /// Relative frequency.
    pub weight: f64,
    /// Fault category.
    pub category: &'static str,
    /// Symptom codes.
    pub symptoms: &'static [&'static str],
    /// The service requested.
    pub service: &'static str,
    /// What the driver types.
    pub description: &'static str,
    /// Whether the triage rules consider it solvable by phone.
    pub phone_solvable: bool,
}

const fn fault(
    weight: f64,
    category: &'static str,
    symptoms: &'static [&'static str],
    service: &'static str,
    description: &'static str,
    phone_solvable: bool,
) -> FaultKind {
    FaultKind {
        weight,
        category,
        symptoms,
        service,
        description,
        phone_solvable,
    }
}

/// The mix. Weights are percentages.
#[rustfmt::skip]
pub const FAULTS: &[FaultKind] = &[
    fault(24.0, "battery", &["no_crank"], "jump_start", "clicks, does not start", false),
    fault(13.0, "tyre", &["flat"], "tyre_change", "flat tyre, no spare wheel tools", false),
    fault(5.0, "fuel", &["out_of_fuel"], "fuel_delivery", "ran out of fuel", false),
    fault(6.0, "lockout", &["keys_in_car"], "lockout", "keys locked inside", false),
    fault(12.0, "engine", &["stalled"], "tow", "engine died while driving", false),
    fault(6.0, "accident", &["collision"], "tow", "minor collision, car not drivable", false),
    fault(4.0, "overheating", &[], "tow", "temperature warning, steam", false),
    fault(3.0, "stuck", &["ditch"], "winch", "slid into a ditch", false),
    fault(3.0, "warning_light", &["oil_pressure"], "tow", "red oil light", false),
    fault(2.0, "fuel", &["wrong_fuel"], "tow", "filled diesel into a petrol car", false),
    fault(2.0, "key_fob", &["key_lost"], "lockout", "lost the key", false),
    fault(3.0, "key_fob", &["key_not_detected"], "lockout", "car says key not detected", true),
    fault(4.0, "warning_light", &["engine_check"], "tow", "engine warning light came on", true),
    fault(3.0, "gear_lock", &[], "tow", "gear lever stuck in park", true),
    fault(2.0, "warning_light", &["tpms"], "tyre_change", "tyre pressure warning", true),
    fault(2.0, "ev_charge_port", &["cable_stuck"], "tow", "charging cable will not unlock", true),
    fault(2.0, "parking_brake", &["will_not_release"], "tow", "electronic parking brake stuck", true),
    fault(1.0, "fuel", &["filler_flap_stuck"], "fuel_delivery", "fuel flap will not open", true),
    fault(1.0, "other", &["infotainment_frozen"], "tow", "screen frozen, car will not shift", true),
    fault(4.0, "other", &["strange_noise"], "tow", "loud noise from the front", false),
];

const SURNAMES: &[&str] = &["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周"];
const GIVEN_NAMES: &[&str] = &["伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰"];
const MODELS: &[(&str, &str)] = &[
    ("Volkswagen Lavida", "petrol"),
    ("Toyota Corolla", "hybrid"),
    ("BYD Qin Plus", "ev"),
    ("Tesla Model 3", "ev"),
    ("Buick Excelle", "petrol"),
    ("Honda Accord", "petrol"),
    ("Nissan Sylphy", "petrol"),
    ("Geely Emgrand", "petrol"),
    ("Wuling Hongguang", "petrol"),
    ("Ford Transit", "diesel"),
];
const LANDMARKS: &[&str] = &[
    "人民广场附近",
    "延安高架下匝道",
    "内环高架",
    "世纪大道",
    "虹桥枢纽停车场",
    "南京西路",
    "中环路",
    "浦东机场高速",
    "小区地下车库",
    "加油站旁",
];

/// One generated request.
#[derive(Debug, Clone)]
pub struct GeneratedCase {
    /// The JSON body for `POST /v1/cases`.
    pub body: Value,
    /// The marker stored as the member number, unique per request, to find the case again.
    pub marker: String,
    /// Index into [`FAULTS`].
    pub fault: usize,
}

/// Generates requests for one run.
#[derive(Debug, Clone)]
pub struct RequestMix {
    city: City,
    run_tag: String,
}

impl RequestMix {
    /// Requests inside `city`, their markers prefixed by `run_tag`.
    pub fn new(city: City, run_tag: &str) -> RequestMix {
        RequestMix {
            city,
            run_tag: run_tag.to_owned(),
        }
    }

    /// The `sequence`-th request of the run.
    pub fn generate(&self, sequence: u64, rng: &mut SimRng) -> GeneratedCase {
        let weights: Vec<f64> = FAULTS.iter().map(|kind| kind.weight).collect();
        let fault_index = weighted_index(rng, &weights);
        let kind = &FAULTS[fault_index];
        // Most breakdowns happen in town, a fifth on the expressways, the rest out of town.
        let (location, road_kind) = match weighted_index(rng, &[70.0, 20.0, 10.0]) {
            0 => (
                self.city
                    .point_near(rng, self.city.centre(), self.city.radius_m() * 0.3),
                "urban",
            ),
            1 => (self.city.uniform_point(rng), "highway"),
            _ => {
                // The outer ring of the disc.
                let mut point = self.city.uniform_point(rng);
                for _ in 0..8 {
                    if self.city.centre().distance_m(point) > self.city.radius_m() * 0.6 {
                        break;
                    }
                    point = self.city.uniform_point(rng);
                }
                (point, "rural")
            }
        };
        let (model, mut powertrain) = MODELS[rng.random_range(0..MODELS.len())];
        if kind.category == "ev_charge_port" {
            powertrain = "ev";
        }
        let marker = format!("{}-{sequence:07}", self.run_tag);
        let name = format!(
            "{}{}",
            SURNAMES[rng.random_range(0..SURNAMES.len())],
            GIVEN_NAMES[rng.random_range(0..GIVEN_NAMES.len())]
        );
        let phone = format!("+86139{:08}", rng.random_range(0..100_000_000u32));
        let plate = format!(
            "沪{}{:05}",
            ["A", "B", "C", "D"][rng.random_range(0..4)],
            rng.random_range(0..100_000u32)
        );
        let tier = ["standard", "standard", "standard", "premium", "vip"][rng.random_range(0..5)];
        let body = json!({
            "channel": "app",
            "customer": {
                "name": name,
                "phone": phone,
                "member_id": marker,
                "plate": plate,
                "vehicle_model": model,
                "powertrain": powertrain,
            },
            "location": {
                "lat": round6(location.lat),
                "lon": round6(location.lon),
                "crs": "wgs84",
                "accuracy_m": rng.random_range(5..50),
                "address": LANDMARKS[rng.random_range(0..LANDMARKS.len())],
                "road_kind": road_kind,
            },
            "fault": {
                "category": kind.category,
                "symptoms": kind.symptoms,
                "description": kind.description,
            },
            "service": kind.service,
            "tier": tier,
        });
        GeneratedCase {
            body,
            marker,
            fault: fault_index,
        }
    }
}

fn round6(value: f64) -> f64 {
    (value * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::stream;

    #[test]
    fn about_one_request_in_six_names_a_phone_solvable_fault() {
        let mix = RequestMix::new(City::default(), "t");
        let mut rng = stream(1, "mix");
        let samples = 20_000;
        let solvable = (0..samples)
            .filter(|sequence| FAULTS[mix.generate(*sequence, &mut rng).fault].phone_solvable)
            .count();
        let share = solvable as f64 / samples as f64;
        let expected = FAULTS
            .iter()
            .filter(|k| k.phone_solvable)
            .map(|k| k.weight)
            .sum::<f64>()
            / FAULTS.iter().map(|k| k.weight).sum::<f64>();
        assert!((share - expected).abs() < 0.01, "{share} vs {expected}");
        assert!((0.12..0.25).contains(&share), "{share}");
    }

    #[test]
    fn every_request_is_inside_the_city_and_carries_the_fields_the_api_requires() {
        let city = City::default();
        let mix = RequestMix::new(city, "run1");
        let mut rng = stream(2, "mix");
        for sequence in 0..2_000 {
            let generated = mix.generate(sequence, &mut rng);
            let body = &generated.body;
            let location = crate::sim::Point {
                lat: body["location"]["lat"].as_f64().unwrap(),
                lon: body["location"]["lon"].as_f64().unwrap(),
            };
            assert!(city.centre().distance_m(location) <= city.radius_m() + 1.0);
            assert_eq!(body["channel"], "app");
            assert!(
                body["customer"]["phone"]
                    .as_str()
                    .unwrap()
                    .starts_with("+86")
            );
            assert_eq!(body["customer"]["member_id"], generated.marker.as_str());
            assert!(body["location"]["lat"].is_f64());
            assert!(
                ["urban", "highway", "rural"]
                    .contains(&body["location"]["road_kind"].as_str().unwrap())
            );
            for symptom in body["fault"]["symptoms"].as_array().unwrap() {
                let symptom = symptom.as_str().unwrap();
                assert!(symptom.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            }
        }
    }

    #[test]
    fn markers_are_unique_within_a_run() {
        let mix = RequestMix::new(City::default(), "run2");
        let mut rng = stream(3, "mix");
        let markers: std::collections::HashSet<String> = (0..1_000)
            .map(|sequence| mix.generate(sequence, &mut rng).marker)
            .collect();
        assert_eq!(markers.len(), 1_000);
    }

    #[test]
    fn the_same_seed_generates_the_same_requests() {
        let mix = RequestMix::new(City::default(), "run3");
        let bodies = |seed| {
            let mut rng = stream(seed, "mix");
            (0..50)
                .map(|sequence| mix.generate(sequence, &mut rng).body)
                .collect::<Vec<_>>()
        };
        assert_eq!(bodies(9), bodies(9));
        assert_ne!(bodies(9), bodies(10));
    }
}
