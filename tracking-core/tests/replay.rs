//! The replay measurement of issue 5 on the real traces in `tests/fixtures/`.
//!
//! Print the report with `cargo test -p tracking-core --test replay -- --nocapture`.

use std::path::PathBuf;

use tracking_core::replay::{self, ReplayConfig, ReplayReport, Trace};

fn load_traces() -> Vec<Trace> {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    (1..=3)
        .map(|number| {
            let name = format!("sample_trace_{number}.csv");
            let text = std::fs::read_to_string(fixtures.join(&name))
                .unwrap_or_else(|error| panic!("reading {name}: {error}"));
            Trace::from_csv(&name, &text).unwrap_or_else(|error| panic!("parsing {name}: {error}"))
        })
        .collect()
}

fn measure() -> ReplayReport {
    let report = replay::run(&load_traces(), &ReplayConfig::default());
    println!("{report}");
    report
}

#[test]
fn late_arrivals_are_warned_early_and_on_time_rescues_are_left_alone() {
    let report = measure();
    let late = report.late().count();
    let on_time = report.on_time().count();
    assert!(
        report.trips.len() >= 400,
        "only {} trips",
        report.trips.len()
    );
    assert!(
        late >= 60 && on_time >= 200,
        "{late} late, {on_time} on time: not a meaningful mix"
    );

    let warned = report.late_warned_share();
    assert!(
        warned >= 0.90,
        "late arrivals warned in advance: {:.1} %",
        100.0 * warned
    );
    let lead_s = report.median_lead_s().unwrap_or(0.0);
    assert!(lead_s >= 300.0, "median lead time {:.0} s", lead_s);
    let false_risk = report.false_arrival_at_risk_share();
    assert!(
        false_risk <= 0.10,
        "on-time rescues with a false arrival_at_risk: {:.1} %",
        100.0 * false_risk
    );
}

/// The same measurement on ten other seeds, to see that the default seed is not a lucky
/// one: `cargo test -p tracking-core --test replay -- --nocapture`.
#[test]
fn the_targets_hold_on_other_seeds_too() {
    let traces = load_traces();
    for seed in 1..=10 {
        let config = ReplayConfig {
            seed,
            ..ReplayConfig::default()
        };
        let report = replay::run(&traces, &config);
        println!(
            "seed {seed:>2}: {} late, warned {:5.1} %, median lead {:4.1} min, false arrival_at_risk {:4.1} %",
            report.late().count(),
            100.0 * report.late_warned_share(),
            report.median_lead_s().unwrap_or(0.0) / 60.0,
            100.0 * report.false_arrival_at_risk_share()
        );
        assert!(report.late_warned_share() >= 0.90, "seed {seed}");
        assert!(
            report.median_lead_s().unwrap_or(0.0) >= 300.0,
            "seed {seed}"
        );
        assert!(report.false_arrival_at_risk_share() <= 0.10, "seed {seed}");
    }
}
