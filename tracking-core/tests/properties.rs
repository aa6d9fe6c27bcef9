//! Properties of the rule engine over arbitrary fix streams: it never panics, every alert
//! kind alternates raise → (escalate)* → clear (one raise per episode), nothing is raised
//! after arrival, and every fix is counted exactly once.

use std::collections::BTreeMap;

use domain::{AlertKind, LatLon, RoadKind, Timestamp};
use proptest::prelude::*;
use tracking_core::{AlertChange, Fix, ProgressStatus, RuleEngine, TrackerConfig, TrackingTarget};

#[derive(Debug, Clone)]
enum Event {
    Tick {
        after_s: u32,
    },
    Fix {
        after_s: u32,
        delay_s: i32,
        north_m: f64,
        east_m: f64,
        far_jump: bool,
        speed_kmh: Option<f64>,
    },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0..400_u32).prop_map(|after_s| Event::Tick { after_s }),
        (
            0..60_u32,
            -300..900_i32,
            -800.0..800.0_f64,
            -800.0..800.0_f64,
            proptest::bool::weighted(0.05),
            proptest::option::of(-10.0..300.0_f64),
        )
            .prop_map(|(after_s, delay_s, north_m, east_m, far_jump, speed_kmh)| {
                Event::Fix {
                    after_s,
                    delay_s,
                    north_m,
                    east_m,
                    far_jump,
                    speed_kmh,
                }
            }),
    ]
}

fn at(seconds: i64) -> Timestamp {
    let t0: Timestamp = "2026-11-22T03:00:00Z".parse().unwrap();
    t0 + chrono::Duration::seconds(seconds)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_streams_never_raise_twice_per_episode(
        events in proptest::collection::vec(event(), 1..300),
        promised_s in proptest::option::of(0..5_000_i64),
    ) {
        let customer = LatLon::new(39.75, -104.99).unwrap();
        let target = TrackingTarget { customer, road_kind: RoadKind::Urban, accepted_at: at(0) };
        let mut engine = RuleEngine::new(target, promised_s.map(at), TrackerConfig::default());
        // Walk around a point 3 km south of the customer.
        let (mut lat, mut lon) = (39.723, -104.99);
        let mut now_s: i64 = 0;
        let mut open: BTreeMap<AlertKind, bool> = BTreeMap::new();
        let mut fixes = 0_u64;
        let mut arrived = false;
        for event in events {
            let changes = match event {
                Event::Tick { after_s } => {
                    now_s += i64::from(after_s);
                    engine.on_tick(at(now_s))
                }
                Event::Fix { after_s, delay_s, north_m, east_m, far_jump, speed_kmh } => {
                    now_s += i64::from(after_s);
                    lat = (lat + north_m / 111_195.0).clamp(-89.0, 89.0);
                    lon = (lon + east_m / 85_000.0).clamp(-179.0, 179.0);
                    let reported_lat = if far_jump { (lat + 2.7).min(89.0) } else { lat };
                    fixes += 1;
                    let fix = Fix {
                        at: at(now_s - i64::from(delay_s)),
                        position: LatLon::new(reported_lat, lon).unwrap(),
                        speed_kmh,
                    };
                    engine.on_fix(fix, at(now_s))
                }
            };
            for change in &changes {
                let kind = change.kind();
                let is_open = open.get(&kind).copied().unwrap_or(false);
                match change {
                    AlertChange::Raise { .. } => {
                        prop_assert!(!is_open, "{kind} raised twice in one episode");
                        prop_assert!(!arrived, "{kind} raised after arrival");
                        open.insert(kind, true);
                    }
                    AlertChange::Escalate { .. } => prop_assert!(is_open, "{kind} escalated while closed"),
                    AlertChange::Clear { .. } => {
                        prop_assert!(is_open, "{kind} cleared while closed");
                        open.insert(kind, false);
                    }
                }
            }
            arrived = engine.snapshot(at(now_s)).status == ProgressStatus::Arrived;
            let open_now: Vec<AlertKind> = open.iter().filter(|(_, is_open)| **is_open).map(|(kind, _)| *kind).collect();
            let engine_open: Vec<AlertKind> = engine.open_alerts().keys().copied().collect();
            prop_assert_eq!(open_now, engine_open);
        }
        let counters = engine.fix_counters();
        prop_assert_eq!(counters.accepted + counters.ignored(), fixes);
    }
}
