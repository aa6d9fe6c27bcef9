//! The replay measurement of issue 5: simulated rescue trucks drive along real GPS traces
//! at realistic speeds, with and without injected trouble, through a [`RuleEngine`], and
//! the report says how many late arrivals were warned in advance, how early, and how many
//! on-time rescues got a false `arrival_at_risk`.
//!
//! Everything is deterministic for a seed: the traces are data, the randomness comes from
//! a SplitMix64 generator, and time is simulated (no clock, no sleep).
//!
//! # The simulation
//!
//! * **Route**: a sub-route of a trace, from a random start to a later point where the
//!   customer waits, `min_trip_m`–`max_trip_m` apart as the crow flies, and driven no more
//!   than `max_route_ratio` times that distance (a truck heading for a customer takes a
//!   direct route; longer stretches of the traces wander and are not routes to their
//!   end). The customer stands on an urban road.
//! * **Promise**: acceptance plus the quote of the default [`EtaModel`](crate::EtaModel) from the truck's
//!   position (departure allowance + great-circle × detour ÷ nominal speed) plus
//!   `promise_buffer_s`.
//! * **Driving**: a cruise speed of 30–60 km/h per trip, varying ±15 % every ~250 m, red
//!   lights every 300–900 m (60 % of them stop the truck for 5–60 s), departure 30–150 s
//!   after acceptance.
//! * **Fixes**: every 5, 10, 15 or 30 s (per trip, ±20 %), 5 m of Gaussian noise, 1 %
//!   multipath outliers of 150–1,500 m, 0.3 % jumps of ~300 km, 2 % duplicates, 2 %
//!   delivered out of order, device speed on half of the trips; ticks every 30 s.
//! * **Trouble** ([`Scenario`]): long stops, wrong-way detours, GPS silence, slow traffic,
//!   late departure — severe (meant to make the truck late) and mild (meant to be absorbed
//!   by the buffer). The outcome is judged by the simulated arrival, not by the label.

use std::collections::BTreeMap;
use std::fmt;

use domain::case::RoadKind;
use domain::fleet::AlertKind;
use domain::geo::{EARTH_RADIUS_M, LatLon};
use domain::time::Timestamp;

use crate::fix::{Fix, FixCounters};
use crate::progress::TrackingTarget;
use crate::rules::{AlertChange, RuleEngine, TRACKED_KINDS, TrackerConfig};
use crate::units::{median, plus_seconds};

/// A GPS trace: positions in driving order, without times.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    name: String,
    points: Vec<LatLon>,
    /// Path length from the first point to each point, in metres.
    cumulative_m: Vec<f64>,
}

/// A trace file that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TraceError {
    /// A line is not `latitude,longitude` with valid numbers.
    #[error("line {line}: {message}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Fewer than two distinct positions.
    #[error("a trace needs at least two distinct positions")]
    TooShort,
}

impl Trace {
    /// Parses a `latitude,longitude` CSV with a header line. Consecutive repeated positions
    /// (a parked car) are collapsed.
    ///
    /// ```
    /// use tracking_core::replay::Trace;
    /// let trace = Trace::from_csv("t", "latitude,longitude\n39.70,-104.99\n39.70,-104.99\n39.71,-104.99\n").unwrap();
    /// assert_eq!(trace.len(), 2);
    /// assert!((trace.length_m() - 1_112.0).abs() < 1.0);
    /// ```
    pub fn from_csv(name: &str, text: &str) -> Result<Self, TraceError> {
        let mut points: Vec<LatLon> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_number = index + 1;
            let trimmed = line.trim();
            if trimmed.is_empty() || (index == 0 && trimmed.starts_with("latitude")) {
                continue;
            }
            let bad = |message: String| TraceError::BadLine {
                line: line_number,
                message,
            };
            let (lat_text, lon_text) = trimmed
                .split_once(',')
                .ok_or_else(|| bad("expected `latitude,longitude`".to_owned()))?;
            let lat: f64 = lat_text
                .trim()
                .parse()
                .map_err(|error| bad(format!("latitude: {error}")))?;
            let lon: f64 = lon_text
                .trim()
                .parse()
                .map_err(|error| bad(format!("longitude: {error}")))?;
            let point = LatLon::new(lat, lon).map_err(|error| bad(error.message))?;
            if points.last() != Some(&point) {
                points.push(point);
            }
        }
        if points.len() < 2 {
            return Err(TraceError::TooShort);
        }
        let mut cumulative_m = Vec::with_capacity(points.len());
        let mut total_m = 0.0;
        cumulative_m.push(0.0);
        for pair in points.windows(2) {
            total_m += pair[0].distance_m(&pair[1]);
            cumulative_m.push(total_m);
        }
        Ok(Self {
            name: name.to_owned(),
            points,
            cumulative_m,
        })
    }

    /// The name given at parsing.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of distinct positions.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the trace is empty (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Path length in metres.
    pub fn length_m(&self) -> f64 {
        self.cumulative_m.last().copied().unwrap_or(0.0)
    }
}

/// What happens on a simulated trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    /// Nothing unusual.
    Clean,
    /// Stops 8–20 minutes somewhere on the way.
    LongStop,
    /// Drives 1.5–4 km the wrong way and back.
    WrongWay,
    /// GPS silent for 5–12 minutes while driving on normally.
    GpsSilence,
    /// 2–5 km of traffic at a quarter of the normal speed.
    SlowTraffic,
    /// Leaves 8–20 minutes after accepting.
    LateDeparture,
    /// Stops 1.5–3.5 minutes.
    ShortStop,
    /// 200–500 m the wrong way and back.
    ShortWrongWay,
    /// GPS silent for 1–3 minutes.
    BriefSilence,
    /// 1–2 km at 70 % of the normal speed.
    LightTraffic,
    /// Leaves 3–5 minutes after accepting.
    SlightlyLateDeparture,
}

impl Scenario {
    /// Every scenario, with its share of the simulated trips.
    pub const MIX: [(Scenario, f64); 11] = [
        (Scenario::Clean, 0.25),
        (Scenario::LongStop, 0.08),
        (Scenario::WrongWay, 0.08),
        (Scenario::GpsSilence, 0.08),
        (Scenario::SlowTraffic, 0.08),
        (Scenario::LateDeparture, 0.08),
        (Scenario::ShortStop, 0.07),
        (Scenario::ShortWrongWay, 0.07),
        (Scenario::BriefSilence, 0.07),
        (Scenario::LightTraffic, 0.07),
        (Scenario::SlightlyLateDeparture, 0.07),
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Clean => "clean",
            Scenario::LongStop => "long_stop",
            Scenario::WrongWay => "wrong_way",
            Scenario::GpsSilence => "gps_silence",
            Scenario::SlowTraffic => "slow_traffic",
            Scenario::LateDeparture => "late_departure",
            Scenario::ShortStop => "short_stop",
            Scenario::ShortWrongWay => "short_wrong_way",
            Scenario::BriefSilence => "brief_silence",
            Scenario::LightTraffic => "light_traffic",
            Scenario::SlightlyLateDeparture => "slightly_late_departure",
        }
    }
}

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayConfig {
    /// Seed of the random generator; same seed, same report.
    pub seed: u64,
    /// Trips per trace.
    pub trips_per_trace: usize,
    /// The tracker under test.
    pub tracker: TrackerConfig,
    /// Promise = acceptance + quote + this. Default 300 s.
    pub promise_buffer_s: f64,
    /// Server tick period. Default 30 s.
    pub tick_s: f64,
    /// Shortest trip, great-circle. Default 2 km.
    pub min_trip_m: f64,
    /// Longest trip, great-circle. Default 12 km.
    pub max_trip_m: f64,
    /// Longest route relative to the great-circle distance. Default 1.6.
    pub max_route_ratio: f64,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        Self {
            seed: 0x5EED_0005,
            trips_per_trace: 150,
            tracker: TrackerConfig::default(),
            promise_buffer_s: 300.0,
            tick_s: 30.0,
            min_trip_m: 2_000.0,
            max_trip_m: 12_000.0,
            max_route_ratio: 1.6,
        }
    }
}

/// What happened on one simulated trip. Times are seconds after acceptance.
#[derive(Debug, Clone, PartialEq)]
pub struct TripOutcome {
    /// Which trace.
    pub trace: String,
    /// Which trouble.
    pub scenario: Scenario,
    /// Great-circle distance from the truck to the customer at acceptance.
    pub trip_m: f64,
    /// Length of the driven route (detours included).
    pub route_m: f64,
    /// Promised arrival.
    pub promised_s: f64,
    /// Actual arrival.
    pub arrival_s: f64,
    /// First alert of any kind, with its kind.
    pub first_warning: Option<(f64, AlertKind)>,
    /// First `arrival_at_risk`.
    pub first_arrival_at_risk_s: Option<f64>,
    /// Episodes raised, by kind.
    pub raised: BTreeMap<AlertKind, u32>,
    /// How the fix filter judged the stream.
    pub fix_counters: FixCounters,
}

impl TripOutcome {
    /// Arrived after the promised time.
    pub fn is_late(&self) -> bool {
        self.arrival_s > self.promised_s
    }

    /// Seconds from the first warning to the promised time, if warned before it.
    pub fn lead_s(&self) -> Option<f64> {
        let (first_s, _) = self.first_warning?;
        (first_s < self.promised_s).then_some(self.promised_s - first_s)
    }

    /// Seconds from the first `arrival_at_risk` to the promised time, if before it.
    pub fn arrival_at_risk_lead_s(&self) -> Option<f64> {
        let first_s = self.first_arrival_at_risk_s?;
        (first_s < self.promised_s).then_some(self.promised_s - first_s)
    }
}

/// The outcome of a replay run.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayReport {
    /// Every trip.
    pub trips: Vec<TripOutcome>,
}

impl ReplayReport {
    /// Trips that arrived after the promised time.
    pub fn late(&self) -> impl Iterator<Item = &TripOutcome> {
        self.trips.iter().filter(|trip| trip.is_late())
    }

    /// Trips that arrived on time.
    pub fn on_time(&self) -> impl Iterator<Item = &TripOutcome> {
        self.trips.iter().filter(|trip| !trip.is_late())
    }

    /// Share of late trips with a warning of any kind before the promised time.
    pub fn late_warned_share(&self) -> f64 {
        share(self.late(), |trip| trip.lead_s().is_some())
    }

    /// Share of late trips with an `arrival_at_risk` before the promised time.
    pub fn late_warned_by_arrival_at_risk_share(&self) -> f64 {
        share(self.late(), |trip| trip.arrival_at_risk_lead_s().is_some())
    }

    /// Median seconds from the first warning to the promised time, over warned late trips.
    pub fn median_lead_s(&self) -> Option<f64> {
        median(self.late().filter_map(TripOutcome::lead_s).collect())
    }

    /// Median lead of `arrival_at_risk` alone, over late trips it warned.
    pub fn median_arrival_at_risk_lead_s(&self) -> Option<f64> {
        median(
            self.late()
                .filter_map(TripOutcome::arrival_at_risk_lead_s)
                .collect(),
        )
    }

    /// Share of on-time trips that got an `arrival_at_risk` anyway.
    pub fn false_arrival_at_risk_share(&self) -> f64 {
        share(self.on_time(), |trip| {
            trip.first_arrival_at_risk_s.is_some()
        })
    }

    /// Fix counters summed over every trip.
    pub fn fix_counters(&self) -> FixCounters {
        self.trips
            .iter()
            .fold(FixCounters::default(), |mut total, trip| {
                let counters = &trip.fix_counters;
                total.accepted += counters.accepted;
                total.relocations += counters.relocations;
                total.duplicates += counters.duplicates;
                total.out_of_order += counters.out_of_order;
                total.implausible_jumps += counters.implausible_jumps;
                total.future_dated += counters.future_dated;
                total
            })
    }
}

fn share<'a>(
    trips: impl Iterator<Item = &'a TripOutcome>,
    predicate: impl Fn(&TripOutcome) -> bool,
) -> f64 {
    let (mut total, mut matching) = (0_usize, 0_usize);
    for trip in trips {
        total += 1;
        if predicate(trip) {
            matching += 1;
        }
    }
    if total == 0 {
        return 0.0;
    }
    matching as f64 / total as f64
}

fn minutes(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "-".to_owned(), |s| format!("{:.1}", s / 60.0))
}

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let late_count = self.late().count();
        let on_time_count = self.on_time().count();
        writeln!(
            f,
            "replay: {} trips, {late_count} late, {on_time_count} on time",
            self.trips.len()
        )?;
        writeln!(
            f,
            "late arrivals warned in advance (any alert):  {:5.1} %   target >= 90 %",
            100.0 * self.late_warned_share()
        )?;
        writeln!(
            f,
            "median lead time, first warning -> promise:   {:>5} min target >= 5 min",
            minutes(self.median_lead_s())
        )?;
        writeln!(
            f,
            "on-time rescues with a false arrival_at_risk: {:5.1} %   target <= 10 %",
            100.0 * self.false_arrival_at_risk_share()
        )?;
        writeln!(
            f,
            "late arrivals warned by arrival_at_risk:      {:5.1} %   (median lead {} min)",
            100.0 * self.late_warned_by_arrival_at_risk_share(),
            minutes(self.median_arrival_at_risk_lead_s())
        )?;
        writeln!(f)?;
        write!(
            f,
            "{:<24} {:>5} {:>5} {:>7} {:>9} {:>8} {:>10}",
            "scenario", "trips", "late", "warned", "lead_min", "on_time", "false_risk"
        )?;
        for kind in TRACKED_KINDS {
            write!(f, " {:>15}", kind.as_str())?;
        }
        writeln!(f)?;
        let mut scenarios: Vec<Scenario> = self.trips.iter().map(|trip| trip.scenario).collect();
        scenarios.sort();
        scenarios.dedup();
        for scenario in scenarios {
            let trips: Vec<&TripOutcome> = self
                .trips
                .iter()
                .filter(|trip| trip.scenario == scenario)
                .collect();
            let late: Vec<&&TripOutcome> = trips.iter().filter(|trip| trip.is_late()).collect();
            let warned = late.iter().filter(|trip| trip.lead_s().is_some()).count();
            let lead_s = median(late.iter().filter_map(|trip| trip.lead_s()).collect());
            let on_time: Vec<&&TripOutcome> = trips.iter().filter(|trip| !trip.is_late()).collect();
            let false_risk = on_time
                .iter()
                .filter(|trip| trip.first_arrival_at_risk_s.is_some())
                .count();
            write!(
                f,
                "{:<24} {:>5} {:>5} {:>7} {:>9} {:>8} {:>10}",
                scenario.as_str(),
                trips.len(),
                late.len(),
                warned,
                minutes(lead_s),
                on_time.len(),
                false_risk
            )?;
            for kind in TRACKED_KINDS {
                let raised: u32 = trips
                    .iter()
                    .map(|trip| trip.raised.get(&kind).copied().unwrap_or(0))
                    .sum();
                write!(f, " {raised:>15}")?;
            }
            writeln!(f)?;
        }
        let counters = self.fix_counters();
        writeln!(f)?;
        writeln!(
            f,
            "fixes: {} accepted, {} duplicates, {} out of order, {} implausible jumps, {} relocations",
            counters.accepted,
            counters.duplicates,
            counters.out_of_order,
            counters.implausible_jumps,
            counters.relocations
        )
    }
}

/// Runs `config.trips_per_trace` seeded trips on each trace.
pub fn run(traces: &[Trace], config: &ReplayConfig) -> ReplayReport {
    let mut rng = Rng::new(config.seed);
    let mut trips = Vec::new();
    for trace in traces {
        for _ in 0..config.trips_per_trace {
            let scenario = rng.weighted(&Scenario::MIX);
            if let Some(trip) = simulate_trip(trace, scenario, config, &mut rng) {
                trips.push(trip);
            }
        }
    }
    ReplayReport { trips }
}

/// The acceptance instant of every simulated trip; only differences matter.
fn epoch() -> Timestamp {
    chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default()
}

fn simulate_trip(
    trace: &Trace,
    scenario: Scenario,
    config: &ReplayConfig,
    rng: &mut Rng,
) -> Option<TripOutcome> {
    let mut route = pick_route(trace, config, rng)?;
    let customer = *route.last()?;
    let start = route[0];
    let trip_m = start.distance_m(&customer);
    let progress_config = &config.tracker.progress;
    let road_kind = RoadKind::Urban;
    let quote_s = progress_config.eta.quote_s(&start, &customer, road_kind);
    let promised_s = quote_s + config.promise_buffer_s;

    let route_length = |route: &[LatLon]| -> f64 {
        route
            .windows(2)
            .map(|pair| pair[0].distance_m(&pair[1]))
            .sum()
    };
    let base_route_m = route_length(&route);
    let trouble_at_m = base_route_m * rng.uniform(0.15, 0.75);

    match scenario {
        Scenario::WrongWay => {
            insert_wrong_way(&mut route, trouble_at_m, rng.uniform(1_500.0, 4_000.0), rng)
        }
        Scenario::ShortWrongWay => {
            insert_wrong_way(&mut route, trouble_at_m, rng.uniform(200.0, 500.0), rng)
        }
        _ => {}
    }
    let route_m = route_length(&route);

    let departure_s = match scenario {
        Scenario::LateDeparture => rng.uniform(480.0, 1_200.0),
        Scenario::SlightlyLateDeparture => rng.uniform(180.0, 300.0),
        _ => rng.uniform(30.0, 150.0),
    };
    let (stop_at_m, stop_s) = match scenario {
        Scenario::LongStop => (trouble_at_m, rng.uniform(480.0, 1_200.0)),
        Scenario::ShortStop => (trouble_at_m, rng.uniform(90.0, 210.0)),
        _ => (f64::INFINITY, 0.0),
    };
    let (slow_from_m, slow_to_m, slow_factor) = match scenario {
        Scenario::SlowTraffic => {
            let length_m = rng.uniform(2_000.0, 5_000.0);
            (trouble_at_m, trouble_at_m + length_m, rng.uniform(0.2, 0.3))
        }
        Scenario::LightTraffic => {
            let length_m = rng.uniform(1_000.0, 2_000.0);
            (trouble_at_m, trouble_at_m + length_m, 0.7)
        }
        _ => (f64::INFINITY, f64::INFINITY, 1.0),
    };

    // Drive: knots of (seconds after acceptance, position, speed km/h).
    let cruise_kmh = rng.uniform(30.0, 60.0);
    let mut knots: Vec<Knot> = vec![
        Knot {
            at_s: 0.0,
            position: start,
            speed_kmh: 0.0,
        },
        Knot {
            at_s: departure_s,
            position: start,
            speed_kmh: 0.0,
        },
    ];
    let mut t_s = departure_s;
    let mut driven_m = 0.0;
    let mut factor = 1.0;
    let mut next_variation_m = 250.0;
    let mut next_light_m = rng.uniform(300.0, 900.0);
    let mut stopped_once = false;
    for pair in route.windows(2) {
        let step_m = pair[0].distance_m(&pair[1]);
        let in_slow = driven_m >= slow_from_m && driven_m < slow_to_m;
        let speed_kmh = cruise_kmh * factor * if in_slow { slow_factor } else { 1.0 };
        t_s += step_m / (speed_kmh / 3.6);
        driven_m += step_m;
        knots.push(Knot {
            at_s: t_s,
            position: pair[1],
            speed_kmh,
        });
        let mut pause_s = 0.0;
        if driven_m >= next_light_m {
            next_light_m = driven_m + rng.uniform(300.0, 900.0);
            if rng.chance(0.6) {
                pause_s += rng.uniform(5.0, 60.0);
            }
        }
        if !stopped_once && driven_m >= stop_at_m {
            stopped_once = true;
            pause_s += stop_s;
        }
        if pause_s > 0.0 {
            t_s += pause_s;
            knots.push(Knot {
                at_s: t_s,
                position: pair[1],
                speed_kmh: 0.0,
            });
        }
        if driven_m >= next_variation_m {
            next_variation_m = driven_m + 250.0;
            factor = (factor + rng.normal() * 0.15).clamp(0.75, 1.2);
        }
    }
    let arrival_s = t_s;

    let (silence_from_s, silence_to_s) = match scenario {
        Scenario::GpsSilence => {
            let from_s = departure_s + (arrival_s - departure_s) * rng.uniform(0.1, 0.6);
            (from_s, from_s + rng.uniform(300.0, 720.0))
        }
        Scenario::BriefSilence => {
            let from_s = departure_s + (arrival_s - departure_s) * rng.uniform(0.1, 0.7);
            (from_s, from_s + rng.uniform(60.0, 180.0))
        }
        _ => (f64::INFINITY, f64::INFINITY),
    };

    // Fixes, with the faults real streams have, as deliveries in time order.
    let interval_s = *rng.pick(&[5.0, 10.0, 15.0, 30.0]);
    let reports_speed = rng.chance(0.5);
    let mut deliveries: Vec<(f64, Fix)> = Vec::new();
    let mut fix_s = 0.0;
    while fix_s < arrival_s {
        if !(silence_from_s..silence_to_s).contains(&fix_s) {
            let (true_position, true_speed_kmh) = position_at(&knots, fix_s);
            let mut position = jitter(true_position, 5.0, rng);
            if rng.chance(0.01) {
                position = offset(
                    position,
                    rng.uniform(150.0, 1_500.0),
                    rng.uniform(0.0, 360.0),
                );
            }
            if rng.chance(0.003) {
                position = offset(position, 300_000.0, rng.uniform(0.0, 360.0));
            }
            let fix = Fix {
                at: plus_seconds(epoch(), fix_s),
                position,
                speed_kmh: reports_speed
                    .then(|| (true_speed_kmh * (1.0 + 0.05 * rng.normal())).max(0.0)),
            };
            let delivered_s = fix_s + rng.uniform(0.5, 3.0);
            deliveries.push((delivered_s, fix));
            if rng.chance(0.02) {
                deliveries.push((delivered_s + rng.uniform(0.5, 10.0), fix));
            }
            if rng.chance(0.02) {
                // Held back and delivered after the next fix.
                if let Some(last) = deliveries.last_mut() {
                    last.0 += interval_s * 1.5;
                }
            }
        }
        fix_s += interval_s * rng.uniform(0.8, 1.2);
    }
    deliveries.sort_by(|a, b| a.0.total_cmp(&b.0));

    let target = TrackingTarget {
        customer,
        road_kind,
        accepted_at: epoch(),
    };
    let promised_at = plus_seconds(epoch(), promised_s);
    let mut engine = RuleEngine::new(target, Some(promised_at), config.tracker.clone());
    let mut outcome = TripOutcome {
        trace: trace.name.clone(),
        scenario,
        trip_m,
        route_m,
        promised_s,
        arrival_s,
        first_warning: None,
        first_arrival_at_risk_s: None,
        raised: BTreeMap::new(),
        fix_counters: FixCounters::default(),
    };
    let record = |changes: Vec<AlertChange>, now_s: f64, outcome: &mut TripOutcome| {
        for change in changes {
            if let AlertChange::Raise { kind, .. } = change {
                *outcome.raised.entry(kind).or_insert(0) += 1;
                if outcome.first_warning.is_none() {
                    outcome.first_warning = Some((now_s, kind));
                }
                if kind == AlertKind::ArrivalAtRisk && outcome.first_arrival_at_risk_s.is_none() {
                    outcome.first_arrival_at_risk_s = Some(now_s);
                }
            }
        }
    };
    let mut next_tick_s = config.tick_s;
    for (delivered_s, fix) in deliveries {
        if delivered_s >= arrival_s {
            break;
        }
        while next_tick_s < delivered_s {
            let changes = engine.on_tick(plus_seconds(epoch(), next_tick_s));
            record(changes, next_tick_s, &mut outcome);
            next_tick_s += config.tick_s;
        }
        let changes = engine.on_fix(fix, plus_seconds(epoch(), delivered_s));
        record(changes, delivered_s, &mut outcome);
    }
    while next_tick_s < arrival_s {
        let changes = engine.on_tick(plus_seconds(epoch(), next_tick_s));
        record(changes, next_tick_s, &mut outcome);
        next_tick_s += config.tick_s;
    }
    outcome.fix_counters = *engine.fix_counters();
    Some(outcome)
}

#[derive(Debug, Clone, Copy)]
struct Knot {
    at_s: f64,
    position: LatLon,
    speed_kmh: f64,
}

/// True position and speed at `at_s`, interpolating between knots.
fn position_at(knots: &[Knot], at_s: f64) -> (LatLon, f64) {
    let index = knots.partition_point(|knot| knot.at_s <= at_s);
    if index == 0 {
        return (knots[0].position, 0.0);
    }
    if index >= knots.len() {
        let last = knots[knots.len() - 1];
        return (last.position, 0.0);
    }
    let (before, after) = (knots[index - 1], knots[index]);
    let span_s = after.at_s - before.at_s;
    let fraction = if span_s > 0.0 {
        (at_s - before.at_s) / span_s
    } else {
        0.0
    };
    let lat = before.position.lat() + (after.position.lat() - before.position.lat()) * fraction;
    let lon = before.position.lon() + (after.position.lon() - before.position.lon()) * fraction;
    (
        LatLon::new(lat, lon).unwrap_or(before.position),
        after.speed_kmh,
    )
}

/// A sub-route of `trace` meeting the trip constraints, or `None` after many attempts.
fn pick_route(trace: &Trace, config: &ReplayConfig, rng: &mut Rng) -> Option<Vec<LatLon>> {
    let count = trace.points.len();
    for _ in 0..2_000 {
        let start = rng.below(count - 1);
        let wanted_m = rng.uniform(
            config.min_trip_m,
            config.max_trip_m * config.max_route_ratio,
        );
        let start_m = trace.cumulative_m[start];
        let end = trace
            .cumulative_m
            .partition_point(|cumulative_m| *cumulative_m < start_m + wanted_m)
            .min(count - 1);
        if end <= start {
            continue;
        }
        let trip_m = trace.points[start].distance_m(&trace.points[end]);
        let route_m = trace.cumulative_m[end] - start_m;
        if trip_m < config.min_trip_m || trip_m > config.max_trip_m {
            continue;
        }
        if route_m > trip_m * config.max_route_ratio {
            continue;
        }
        return Some(trace.points[start..=end].to_vec());
    }
    None
}

/// Inserts, `at_m` along the route, an out-and-back leg of `length_m` heading away from
/// the customer (within ±40°).
fn insert_wrong_way(route: &mut Vec<LatLon>, at_m: f64, length_m: f64, rng: &mut Rng) {
    let Some(customer) = route.last().copied() else {
        return;
    };
    let mut driven_m = 0.0;
    let mut index = 0;
    while index + 1 < route.len() && driven_m < at_m {
        driven_m += route[index].distance_m(&route[index + 1]);
        index += 1;
    }
    let turn = route[index];
    let away_deg = bearing_deg(&customer, &turn) + rng.uniform(-40.0, 40.0);
    let steps = (length_m / 50.0).ceil().max(1.0) as usize;
    let out: Vec<LatLon> = (1..=steps)
        .map(|step| offset(turn, length_m * step as f64 / steps as f64, away_deg))
        .collect();
    let back: Vec<LatLon> = out.iter().rev().skip(1).copied().chain([turn]).collect();
    let tail = route.split_off(index + 1);
    route.extend(out);
    route.extend(back);
    route.extend(tail);
}

/// Initial bearing from `from` to `to`, degrees clockwise from north.
fn bearing_deg(from: &LatLon, to: &LatLon) -> f64 {
    let (lat1, lat2) = (from.lat().to_radians(), to.lat().to_radians());
    let dlon = (to.lon() - from.lon()).to_radians();
    let y = dlon.sin() * lat2.cos();
    let x = lat1.cos() * lat2.sin() - lat1.sin() * lat2.cos() * dlon.cos();
    y.atan2(x).to_degrees()
}

/// The point `distance_m` from `from` on bearing `bearing_deg`.
fn offset(from: LatLon, distance_m: f64, bearing_deg: f64) -> LatLon {
    let angular = distance_m / EARTH_RADIUS_M;
    let bearing = bearing_deg.to_radians();
    let (lat1, lon1) = (from.lat().to_radians(), from.lon().to_radians());
    let lat2 = (lat1.sin() * angular.cos() + lat1.cos() * angular.sin() * bearing.cos()).asin();
    let lon2 = lon1
        + (bearing.sin() * angular.sin() * lat1.cos())
            .atan2(angular.cos() - lat1.sin() * lat2.sin());
    let lon2_deg = (lon2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
    LatLon::new(lat2.to_degrees().clamp(-90.0, 90.0), lon2_deg).unwrap_or(from)
}

/// `position` moved by Gaussian noise of `sigma_m` metres north and east.
fn jitter(position: LatLon, sigma_m: f64, rng: &mut Rng) -> LatLon {
    let north_m = rng.normal() * sigma_m;
    let east_m = rng.normal() * sigma_m;
    let lat = position.lat() + (north_m / EARTH_RADIUS_M).to_degrees();
    let lon = position.lon()
        + (east_m / (EARTH_RADIUS_M * position.lat().to_radians().cos().max(0.01))).to_degrees();
    LatLon::new(lat, lon).unwrap_or(position)
}

/// SplitMix64: tiny, fast, and the same numbers on every platform and version.
#[derive(Debug, Clone)]
struct Rng {
    state: u64,
}

impl Rng {
    fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1_u64 << 53) as f64
    }

    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    fn below(&mut self, bound: usize) -> usize {
        ((self.unit() * bound as f64) as usize).min(bound.saturating_sub(1))
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    fn weighted<T: Copy>(&mut self, items: &[(T, f64)]) -> T {
        let total: f64 = items.iter().map(|(_, weight)| weight).sum();
        let mut target = self.unit() * total;
        for (item, weight) in items {
            if target < *weight {
                return *item;
            }
            target -= weight;
        }
        items[items.len() - 1].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_with_a_bad_number_names_its_line() {
        let error =
            Trace::from_csv("t", "latitude,longitude\n39.7,-104.9\n39.7,abc\n").unwrap_err();
        assert!(matches!(error, TraceError::BadLine { line: 3, .. }));
    }

    #[test]
    fn a_trace_of_one_repeated_point_is_too_short() {
        let error =
            Trace::from_csv("t", "latitude,longitude\n39.7,-104.9\n39.7,-104.9\n").unwrap_err();
        assert_eq!(error, TraceError::TooShort);
    }

    #[test]
    fn the_generator_is_deterministic_for_a_seed() {
        let (mut first, mut second) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(first.next_u64(), second.next_u64());
        }
    }

    #[test]
    fn offset_and_bearing_agree() {
        let origin = LatLon::new(39.7, -104.9).unwrap();
        let moved = offset(origin, 1_000.0, 90.0);
        assert!((origin.distance_m(&moved) - 1_000.0).abs() < 0.5);
        assert!((bearing_deg(&origin, &moved) - 90.0).abs() < 0.1);
    }
}
