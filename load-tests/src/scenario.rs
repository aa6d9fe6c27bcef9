//! Scenario files: a fleet and a request stream run together, with the server settings
//! they need, described in a small TOML file so that a run can be repeated exactly.
//!
//! ```toml
//! name = "rush hour"
//! seed = 42
//! duration_s = 60        # requests are sent for this long
//! drain_s = 60           # then the fleet keeps answering until the cases settle, at most this long
//!
//! [server]               # used when the run starts the server (--spawn-server or `binary`)
//! env = { RESCUE_OFFER_TIMEOUT_S = "20" }
//!
//! [fleet]
//! vehicles = 10000
//! providers = 20
//! interval_s = 5.0
//! [fleet.behaviour]      # optional; these are the defaults
//! accept = 0.75
//! decline = 0.15
//! answer_delay_s = [1.0, 4.0, 20.0]
//! job_step_s = [2.0, 10.0]
//! poll_interval_ms = 1000
//!
//! [fleet.misbehaviour]   # optional: shares of accepted jobs driven badly, to raise alerts
//! runaway = 0.1          # drives away from the customer (moving_away)
//! stall = 0.05           # drives towards the customer, then stands still (stalled)
//! silent = 0.05          # stops reporting positions (gps_lost, late_departure)
//! hold_s = 40.0          # for this long after accepting, then carries on normally
//! stall_after_s = 20.0   # a stalling truck stops after driving this long
//!
//! [requests]
//! rate = 50.0
//! count = 3000           # optional cap
//! # or, for a holiday storm, a stepped stream instead of `rate` (and of `duration_s`):
//! # steps = [50, 100, 200, 400]   # requests/s, one step after the other
//! # step_s = 30                   # seconds per step
//!
//! [agents]               # optional: agents watching the live feed (GET /v1/stream)
//! count = 100
//! fail_on_missed = true  # a missed event or a stream that never connects fails the run
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::fleet::{Behaviour, Misbehaviour};
use crate::sim::City;

/// A scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A name for the report.
    #[serde(default)]
    pub name: Option<String>,
    /// Seed (the command line's --seed wins).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Seconds of requests (with `requests.steps`, may be left out: the steps say).
    #[serde(default)]
    pub duration_s: u64,
    /// Most seconds to wait afterwards for the cases to settle.
    #[serde(default = "default_drain_s")]
    pub drain_s: u64,
    /// The area.
    #[serde(default)]
    pub city: City,
    /// How to run the server, when the run starts it.
    #[serde(default)]
    pub server: ServerSection,
    /// The fleet.
    pub fleet: FleetSection,
    /// The request stream.
    pub requests: RequestsSection,
    /// Agents watching the live feed.
    #[serde(default)]
    pub agents: Option<AgentsSection>,
}

fn default_drain_s() -> u64 {
    30
}

/// `[server]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// The `dispatcher` binary to start (relative to the current directory); the command
    /// line's --spawn-server wins.
    #[serde(default)]
    pub binary: Option<PathBuf>,
    /// Its environment (the command line's --server-env adds to and overrides it).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// `[fleet]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSection {
    /// Trucks.
    pub vehicles: usize,
    /// Tow companies.
    pub providers: usize,
    /// Seconds between two reports of a truck.
    #[serde(default = "default_interval_s")]
    pub interval_s: f64,
    /// Share of the trucks (0–1) reporting as JT/T 808 terminals over TCP.
    #[serde(default)]
    pub jt808_share: f64,
    /// How dispatchers answer.
    #[serde(default)]
    pub behaviour: Behaviour,
    /// How trucks misbehave on jobs.
    #[serde(default)]
    pub misbehaviour: Misbehaviour,
}

fn default_interval_s() -> f64 {
    5.0
}

/// `[requests]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsSection {
    /// Mean requests per second (not with `steps`).
    #[serde(default)]
    pub rate: f64,
    /// A stepped stream: these rates, `step_s` seconds each, one after the other.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<f64>,
    /// Seconds per step.
    #[serde(default)]
    pub step_s: Option<u64>,
    /// At most this many.
    #[serde(default)]
    pub count: Option<u64>,
    /// Attempts after the first.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
}

fn default_retries() -> u32 {
    3
}

/// `[agents]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsSection {
    /// Agents subscribed to the stream.
    #[serde(default = "default_agents")]
    pub count: usize,
    /// Whether a missed event (or a stream that never connects) fails the run.
    #[serde(default = "default_true")]
    pub fail_on_missed: bool,
}

fn default_agents() -> usize {
    100
}

fn default_true() -> bool {
    true
}

impl Scenario {
    /// Parses and checks a scenario.
    pub fn parse(text: &str) -> anyhow::Result<Scenario> {
        let scenario: Scenario = toml::from_str(text)?;
        scenario.fleet.behaviour.validate()?;
        scenario.fleet.misbehaviour.validate()?;
        if let Some(agents) = &scenario.agents {
            anyhow::ensure!(agents.count > 0, "agents.count must be positive");
        }
        let requests = &scenario.requests;
        if requests.steps.is_empty() {
            anyhow::ensure!(requests.rate > 0.0, "requests.rate must be positive");
            anyhow::ensure!(
                requests.step_s.is_none(),
                "requests.step_s needs requests.steps"
            );
            anyhow::ensure!(scenario.duration_s > 0, "duration_s must be positive");
        } else {
            anyhow::ensure!(
                requests.rate == 0.0,
                "give either requests.rate or requests.steps, not both"
            );
            anyhow::ensure!(
                requests.steps.iter().all(|rate| *rate > 0.0),
                "every rate in requests.steps must be positive"
            );
            let step_s = requests.step_s.unwrap_or(0);
            anyhow::ensure!(
                step_s > 0,
                "requests.steps needs a positive requests.step_s"
            );
            let total = step_s * requests.steps.len() as u64;
            anyhow::ensure!(
                scenario.duration_s == 0 || scenario.duration_s == total,
                "duration_s ({}) disagrees with the steps ({} × {step_s} s = {total} s); leave it out",
                scenario.duration_s,
                requests.steps.len()
            );
        }
        anyhow::ensure!(
            scenario.fleet.providers > 0 && scenario.fleet.vehicles >= scenario.fleet.providers,
            "the fleet needs at least one vehicle per provider"
        );
        anyhow::ensure!(
            scenario.city.radius_km > 0.0,
            "city.radius_km must be positive"
        );
        Ok(scenario)
    }

    /// Seconds of requests: the steps', or `duration_s`.
    pub fn request_seconds(&self) -> u64 {
        match self.requests.step_s {
            Some(step_s) if !self.requests.steps.is_empty() => {
                step_s * self.requests.steps.len() as u64
            }
            _ => self.duration_s,
        }
    }

    /// The steps of a stepped stream (empty for a steady one).
    pub fn rate_steps(&self) -> Vec<crate::requests::RateStep> {
        let step_s = self.requests.step_s.unwrap_or(0) as f64;
        self.requests
            .steps
            .iter()
            .map(|rate| crate::requests::RateStep {
                rate: *rate,
                seconds: step_s,
            })
            .collect()
    }

    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Scenario::parse(&text).with_context(|| format!("scenario {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_scenario_gets_the_defaults() {
        let scenario = Scenario::parse(
            r#"
            duration_s = 5
            [fleet]
            vehicles = 100
            providers = 4
            [requests]
            rate = 10
            "#,
        )
        .unwrap();
        assert_eq!(scenario.drain_s, 30);
        assert_eq!(scenario.fleet.interval_s, 5.0);
        assert_eq!(scenario.fleet.behaviour, Behaviour::default());
        assert_eq!(scenario.city, City::default());
        assert_eq!(scenario.requests.max_retries, 3);
        assert_eq!(scenario.agents, None);
        assert!(!scenario.fleet.misbehaviour.any());
    }

    #[test]
    fn an_agents_section_and_misbehaving_trucks_are_read() {
        let scenario = Scenario::parse(
            r#"
            duration_s = 5
            [fleet]
            vehicles = 100
            providers = 4
            [fleet.misbehaviour]
            runaway = 0.2
            hold_s = 30
            [requests]
            rate = 10
            [agents]
            "#,
        )
        .unwrap();
        let agents = scenario.agents.unwrap();
        assert_eq!((agents.count, agents.fail_on_missed), (100, true));
        assert_eq!(scenario.fleet.misbehaviour.runaway, 0.2);
        assert_eq!(scenario.fleet.misbehaviour.stall_after_s, 20.0);
        let base = "duration_s = 5\n[fleet]\nvehicles = 10\nproviders = 2\n[requests]\nrate = 1\n";
        assert!(Scenario::parse(&format!("{base}[agents]\ncount = 0\n")).is_err());
        assert!(Scenario::parse(&format!("{base}[agents]\nagents = 3\n")).is_err());
    }

    #[test]
    fn the_shipped_scenarios_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                checked += 1;
            }
        }
        assert!(checked >= 2);
    }

    #[test]
    fn unknown_keys_and_impossible_shares_are_refused() {
        let base = "duration_s = 5\n[fleet]\nvehicles = 10\nproviders = 2\n[requests]\nrate = 1\n";
        assert!(Scenario::parse(&format!("{base}typo = 1\n")).is_err());
        let shares = "duration_s = 5\n[fleet]\nvehicles = 10\nproviders = 2\n[fleet.behaviour]\naccept = 0.9\ndecline = 0.2\n[requests]\nrate = 1\n";
        assert!(Scenario::parse(shares).is_err());
    }

    #[test]
    fn a_stepped_stream_replaces_the_rate_and_the_duration() {
        let base = "[fleet]\nvehicles = 10\nproviders = 2\n[requests]\n";
        let scenario =
            Scenario::parse(&format!("{base}steps = [10, 20, 40]\nstep_s = 30\n")).unwrap();
        assert_eq!(scenario.request_seconds(), 90);
        let steps = scenario.rate_steps();
        assert_eq!(steps.len(), 3);
        assert_eq!((steps[2].rate, steps[2].seconds), (40.0, 30.0));
        // A matching duration is allowed, a different one, a missing step length, a rate
        // beside the steps and a zero rate are refused.
        assert!(
            Scenario::parse(&format!(
                "duration_s = 90\n{base}steps = [10, 20, 40]\nstep_s = 30\n"
            ))
            .is_ok()
        );
        for bad in [
            format!("duration_s = 60\n{base}steps = [10, 20, 40]\nstep_s = 30\n"),
            format!("{base}steps = [10, 20]\n"),
            format!("{base}rate = 5\nsteps = [10, 20]\nstep_s = 30\n"),
            format!("{base}steps = [10, 0]\nstep_s = 30\n"),
            format!("duration_s = 5\n{base}rate = 5\nstep_s = 30\n"),
            format!("{base}rate = 5\n"),
        ] {
            assert!(Scenario::parse(&bad).is_err(), "{bad}");
        }
        let steady = Scenario::parse(&format!("duration_s = 5\n{base}rate = 5\n")).unwrap();
        assert_eq!(
            (steady.request_seconds(), steady.rate_steps()),
            (5, Vec::new())
        );
    }
}
