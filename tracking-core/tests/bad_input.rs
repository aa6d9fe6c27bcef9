//! Issue 5, "bad input": fixes out of order, duplicated, or jumping 300 km in a second are
//! ignored for progress and counted, and never raise an alert on an otherwise clean,
//! on-time rescue.

use domain::{LatLon, RoadKind, Timestamp};
use tracking_core::{
    AlertChange, EtaModel, Fix, FixCounters, ProgressStatus, RuleEngine, TrackerConfig,
    TrackingTarget,
};

const START_LAT: f64 = 39.70;
const LON: f64 = -104.99;
const METRES_PER_DEGREE: f64 = 111_195.0;

fn at(seconds: f64) -> Timestamp {
    let t0: Timestamp = "2026-11-22T03:00:00Z".parse().unwrap();
    t0 + chrono::Duration::milliseconds((seconds * 1000.0) as i64)
}

fn north(north_m: f64) -> LatLon {
    LatLon::new(START_LAT + north_m / METRES_PER_DEGREE, LON).unwrap()
}

/// The clean stream: leaves after 60 s, drives 8 km north at 40 km/h, a fix every 5 s.
fn clean_fixes() -> Vec<Fix> {
    let mut fixes = Vec::new();
    let mut seconds: f64 = 0.0;
    while seconds <= 60.0 + 8_000.0 / (40.0 / 3.6) {
        let driven_m = ((seconds - 60.0).max(0.0) * 40.0 / 3.6).min(8_000.0);
        fixes.push(Fix {
            at: at(seconds),
            position: north(driven_m),
            speed_kmh: Some(if seconds < 60.0 { 0.0 } else { 40.0 }),
        });
        seconds += 5.0;
    }
    fixes
}

/// Delivers `deliveries` (fix, received at) with a tick every 30 s in between; returns
/// every alert change and the final engine.
fn replay(deliveries: &[(Fix, Timestamp)]) -> (Vec<AlertChange>, RuleEngine) {
    let customer = north(8_000.0);
    let quote_s = EtaModel::default().quote_s(&north(0.0), &customer, RoadKind::Urban);
    let target = TrackingTarget {
        customer,
        road_kind: RoadKind::Urban,
        accepted_at: at(0.0),
    };
    let promised = at(quote_s + 300.0);
    let mut engine = RuleEngine::new(target, Some(promised), TrackerConfig::default());
    let mut changes = Vec::new();
    let mut next_tick = at(30.0);
    for (fix, received_at) in deliveries {
        while next_tick < *received_at {
            changes.extend(engine.on_tick(next_tick));
            next_tick += chrono::Duration::seconds(30);
        }
        changes.extend(engine.on_fix(*fix, *received_at));
    }
    (changes, engine)
}

fn on_time(fixes: Vec<Fix>) -> Vec<(Fix, Timestamp)> {
    fixes
        .into_iter()
        .map(|fix| (fix, fix.at + chrono::Duration::seconds(1)))
        .collect()
}

fn assert_clean_arrival(changes: &[AlertChange], engine: &RuleEngine) {
    assert!(changes.is_empty(), "false alerts: {changes:#?}");
    let last_fix_at = engine.progress().last_fix_at().unwrap();
    assert_eq!(engine.snapshot(last_fix_at).status, ProgressStatus::Arrived);
}

#[test]
fn the_clean_stream_raises_nothing_and_arrives() {
    let fixes = clean_fixes();
    let count = fixes.len() as u64;
    let (changes, engine) = replay(&on_time(fixes));
    assert_clean_arrival(&changes, &engine);
    assert_eq!(
        *engine.fix_counters(),
        FixCounters {
            accepted: count,
            ..FixCounters::default()
        }
    );
}

#[test]
fn every_fix_sent_twice_is_counted_as_a_duplicate_and_raises_nothing() {
    let fixes = clean_fixes();
    let count = fixes.len() as u64;
    let doubled: Vec<Fix> = fixes.iter().flat_map(|fix| [*fix, *fix]).collect();
    let (changes, engine) = replay(&on_time(doubled));
    assert_clean_arrival(&changes, &engine);
    assert_eq!(engine.fix_counters().duplicates, count);
    assert_eq!(engine.fix_counters().accepted, count);
}

#[test]
fn fixes_delivered_out_of_order_are_counted_and_raise_nothing() {
    let mut deliveries = on_time(clean_fixes());
    for pair in deliveries.chunks_mut(2) {
        if let [first, second] = pair {
            // The older fix arrives second.
            std::mem::swap(&mut first.0, &mut second.0);
        }
    }
    let swapped = (deliveries.len() / 2) as u64;
    let (changes, engine) = replay(&deliveries);
    assert!(changes.is_empty(), "false alerts: {changes:#?}");
    assert_eq!(engine.fix_counters().out_of_order, swapped);
}

#[test]
fn jumps_of_300_km_in_a_second_are_counted_and_raise_nothing() {
    let mut fixes = Vec::new();
    let mut jumps = 0;
    for (index, fix) in clean_fixes().into_iter().enumerate() {
        fixes.push(fix);
        if index % 20 == 7 {
            jumps += 1;
            fixes.push(Fix {
                at: fix.at + chrono::Duration::seconds(1),
                position: LatLon::new(fix.position.lat() + 2.7, LON).unwrap(), // ~300 km north
                speed_kmh: Some(40.0),
            });
        }
    }
    let (changes, engine) = replay(&on_time(fixes));
    assert_clean_arrival(&changes, &engine);
    assert_eq!(engine.fix_counters().implausible_jumps, jumps);
    assert_eq!(engine.fix_counters().relocations, 0);
}

#[test]
fn a_first_fix_300_km_off_is_abandoned_without_an_alert() {
    let mut fixes = clean_fixes();
    fixes[0].position = LatLon::new(START_LAT + 2.7, LON).unwrap();
    let (changes, engine) = replay(&on_time(fixes));
    assert_clean_arrival(&changes, &engine);
    assert_eq!(engine.fix_counters().relocations, 1);
}

#[test]
fn fixes_dated_in_the_future_are_counted_and_raise_nothing() {
    let mut deliveries = on_time(clean_fixes());
    let future = deliveries[40].0;
    deliveries.insert(
        41,
        (
            Fix {
                at: future.at + chrono::Duration::hours(5),
                ..future
            },
            deliveries[40].1,
        ),
    );
    let (changes, engine) = replay(&deliveries);
    assert_clean_arrival(&changes, &engine);
    assert_eq!(engine.fix_counters().future_dated, 1);
}

#[test]
fn all_of_it_at_once_still_raises_nothing() {
    let mut deliveries = Vec::new();
    for (index, fix) in clean_fixes().into_iter().enumerate() {
        let received = fix.at + chrono::Duration::seconds(1);
        deliveries.push((fix, received));
        if index % 7 == 0 {
            deliveries.push((fix, received + chrono::Duration::seconds(2)));
        }
        if index % 11 == 0 {
            let jump = Fix {
                at: fix.at + chrono::Duration::seconds(1),
                position: LatLon::new(fix.position.lat() - 2.7, LON).unwrap(),
                speed_kmh: None,
            };
            deliveries.push((jump, received + chrono::Duration::seconds(1)));
        }
    }
    for pair in deliveries.chunks_mut(2).skip(3).step_by(9) {
        if let [first, second] = pair {
            std::mem::swap(&mut first.0, &mut second.0);
        }
    }
    let (changes, engine) = replay(&deliveries);
    assert_clean_arrival(&changes, &engine);
    let counters = engine.fix_counters();
    assert!(counters.duplicates > 0 && counters.implausible_jumps > 0 && counters.out_of_order > 0);
    assert_eq!(
        counters.accepted + counters.ignored(),
        deliveries.len() as u64
    );
}
