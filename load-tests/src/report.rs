//! The report of a run: `report.json` (everything), `report.md` (a summary table for
//! people) and SVG charts, written into the report directory. Building the figures from
//! the recordings and histories is pure; only [`Report::write`] touches the disk.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::agents::{AgentsReport, TARGET_P99_MS};
use crate::history::CaseHistory;
use crate::invariants::Verdict;
use crate::machine::MachineUsage;
use crate::positions::PositionsOutcome;
use crate::server::ProcessUsage;
use crate::stats::{LatencyPoint, LatencySummary, LatencyTrack, RatePoint, Recordings};
use crate::svg::{self, Frame, Line};

/// Most points of a chart line.
const MAX_POINTS: usize = 300;

/// Where the load went.
#[derive(Debug, Clone, Serialize)]
pub struct TargetInfo {
    /// Base URL.
    pub url: String,
    /// Whether this run started the server.
    pub spawned: bool,
    /// The server binary, when spawned.
    pub server_binary: Option<String>,
    /// The server's environment as set by the run (secrets left out).
    pub server_env: BTreeMap<String, String>,
    /// `sqlite`, `postgres` or `unknown`.
    pub database: String,
}

/// The machine.
#[derive(Debug, Clone, Serialize)]
pub struct MachineInfo {
    /// Logical CPUs.
    pub cpus: usize,
    /// A reminder of what the figures mean.
    pub note: String,
    /// CPU busy, stolen by the hypervisor and waited for over the run.
    pub usage: Option<MachineUsage>,
}

/// The machine's figures in words, for the report.
fn machine_line(usage: &MachineUsage, cpus: usize) -> String {
    let pressure = usage.cpu_pressure_share.map_or(String::new(), |share| {
        format!(
            "; some task waited for a CPU {:.0} % of the time (PSI)",
            share * 100.0
        )
    });
    format!(
        "Machine over {:.0} s: {:.2} of {cpus} CPUs busy on average (all processes); the \
         hypervisor took {:.1} % of the CPU time, at least {:.0} % in {} of {} one-second \
         intervals, at most {:.0} % in one{pressure}.",
        usage.seconds,
        usage.busy_share * cpus as f64,
        usage.steal_share * 100.0,
        crate::machine::DISTURBED_STEAL_SHARE * 100.0,
        usage.disturbed_intervals,
        usage.intervals,
        usage.steal_max_share * 100.0,
    )
}

/// Dispatch as the server recorded it in the case timelines.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DispatchReport {
    /// Cases created during the run.
    pub cases: usize,
    /// Of those, cases that got at least one offer.
    pub offered: usize,
    /// Cases that got a vehicle assigned.
    pub assigned: usize,
    /// `created` event → first `offer_sent` event, both stamped by the server before
    /// their commits: the per-case view (series, histogram chart).
    pub latency: LatencySummary,
    /// Request accepted → first offer persisted, from the server's own histogram: the
    /// dispatch latency of the targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_latency: Option<ServerLatency>,
    /// `created` → `vehicle_assigned`.
    pub to_assignment: LatencySummary,
    /// Cases by status at the end.
    pub statuses: BTreeMap<String, usize>,
    /// Offers by state at the end.
    pub offers_by_state: BTreeMap<String, usize>,
    /// Dispatch latency by the second the case was created in.
    pub latency_series: Vec<LatencyPoint>,
    /// Dispatch latency histogram: `(upper bound ms, cases)`.
    pub latency_distribution: Vec<(f64, u64)>,
    /// A stepped stream's figures, step by step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storm: Option<StormReport>,
}

/// The dispatch p99 a storm step must keep to count as sustained.
pub const STORM_P99_MS: f64 = 50.0;

/// Dispatch latency as the server measured it (request accepted → first offer
/// persisted), from the difference of two readings of its histogram.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ServerLatency {
    /// First offers persisted between the readings.
    pub count: u64,
    /// Median, interpolated within its bucket.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// Share within 10 ms (a bucket bound: exact).
    pub within_10_ms: Option<f64>,
    /// Share within 50 ms (a bucket bound: exact).
    pub within_50_ms: Option<f64>,
}

impl ServerLatency {
    /// The figures of `histogram`; `None` when it holds nothing.
    pub fn of(histogram: &crate::server_metrics::Histogram) -> Option<ServerLatency> {
        let ms = |q: f64| histogram.quantile(q).map(|s| s * 1000.0);
        (histogram.count() > 0).then(|| ServerLatency {
            count: histogram.count(),
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            within_10_ms: histogram.share_within(0.01),
            within_50_ms: histogram.share_within(0.05),
        })
    }

    /// Whether the p99 is within `limit_ms`: exact from the bucket share when `limit_ms`
    /// is a bucket bound, else from the interpolated p99.
    pub fn p99_within(&self, limit_ms: f64) -> bool {
        let share = if (limit_ms - 10.0).abs() < f64::EPSILON {
            self.within_10_ms
        } else if (limit_ms - 50.0).abs() < f64::EPSILON {
            self.within_50_ms
        } else {
            None
        };
        match share {
            Some(share) => share >= 0.99,
            None => self.p99_ms.is_some_and(|p99| p99 <= limit_ms),
        }
    }
}

/// Share of a step's asked rate that must become cases for the step to count as
/// sustained (Poisson arrivals over a step of tens of seconds stay well within it).
pub const STORM_MIN_TAKEN: f64 = 0.9;

/// A stepped stream (a holiday storm): each step's dispatch figures, and the highest rate
/// the server sustained.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StormReport {
    /// The steps in the order they ran.
    pub steps: Vec<StepReport>,
    /// The highest rate of a sustained step, in cases/s (the table shows whether lower
    /// steps held too: the first one may suffer from the run's warm-up).
    pub highest_sustained_rate: Option<f64>,
}

/// One step of a storm, from the timelines of the cases created during it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepReport {
    /// Requests/s asked for.
    pub rate: f64,
    /// Start, seconds after the first request was due.
    pub from_s: f64,
    /// End.
    pub to_s: f64,
    /// Cases the server created during the step.
    pub cases: usize,
    /// Created cases per second: the rate the server took in.
    pub created_per_s: f64,
    /// Of the step's cases, those that got an offer.
    pub offered: usize,
    /// Of the step's cases, those escalated at the end (no truck, no answer).
    pub escalated: usize,
    /// Dispatch latency (created → first offer) of the step's cases.
    pub latency: LatencySummary,
    /// Dispatch latency as the server measured it, of the first offers persisted during
    /// the step: what `sustained` is judged by when the server's histogram was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_latency: Option<ServerLatency>,
    /// Whether the step took in its rate with dispatch p99 within [`STORM_P99_MS`].
    pub sustained: bool,
}

/// Each step's figures: the cases are attributed to the step they were created in.
pub fn storm_report(
    histories: &[CaseHistory],
    steps: &[crate::requests::RateStep],
    requests_started: DateTime<Utc>,
    readings: Option<&crate::server_metrics::Readings>,
) -> StormReport {
    let mut bounds = Vec::with_capacity(steps.len());
    let mut from_s = 0.0;
    for step in steps {
        bounds.push((from_s, from_s + step.seconds));
        from_s += step.seconds;
    }
    let mut tracks = vec![LatencyTrack::default(); steps.len()];
    let mut reports: Vec<StepReport> = steps
        .iter()
        .zip(&bounds)
        .map(|(step, (from_s, to_s))| StepReport {
            rate: step.rate,
            from_s: *from_s,
            to_s: *to_s,
            ..StepReport::default()
        })
        .collect();
    for history in histories {
        let Some(timings) = history.timings() else {
            continue;
        };
        let at_s = (timings.created_at - requests_started).num_milliseconds() as f64 / 1000.0;
        // A case acknowledged after the last step still belongs to it.
        let Some(index) = bounds
            .iter()
            .position(|(_, to_s)| at_s < *to_s)
            .or(steps.len().checked_sub(1))
        else {
            continue;
        };
        let report = &mut reports[index];
        report.cases += 1;
        if history.case.status == "escalated" {
            report.escalated += 1;
        }
        if let Some(first_offer) = timings.to_first_offer {
            report.offered += 1;
            tracks[index].record(at_s - report.from_s, std_duration(first_offer));
        }
    }
    let mut highest_sustained_rate = None;
    for (report, track) in reports.iter_mut().zip(&tracks) {
        report.latency = track.summary();
        report.server_latency = readings
            .and_then(|readings| readings.between(report.from_s, report.to_s))
            .and_then(|histogram| ServerLatency::of(&histogram));
        let seconds = report.to_s - report.from_s;
        report.created_per_s = report.cases as f64 / seconds.max(f64::EPSILON);
        let latency_kept = match (&report.server_latency, readings) {
            (Some(server), _) => server.p99_within(STORM_P99_MS),
            // The histogram was read but no offer was persisted during the step.
            (None, Some(_)) => false,
            (None, None) => report.latency.p99_ms.is_some_and(|p99| p99 <= STORM_P99_MS),
        };
        report.sustained = report.created_per_s >= STORM_MIN_TAKEN * report.rate && latency_kept;
        if report.sustained {
            highest_sustained_rate =
                Some(highest_sustained_rate.map_or(report.rate, |best: f64| best.max(report.rate)));
        }
    }
    StormReport {
        steps: reports,
        highest_sustained_rate,
    }
}

fn std_duration(duration: chrono::Duration) -> std::time::Duration {
    duration.to_std().unwrap_or_default()
}

/// Dispatch figures from the cases' own timelines. `run_started` anchors the series.
pub fn dispatch_report(histories: &[CaseHistory], run_started: DateTime<Utc>) -> DispatchReport {
    let mut latency = LatencyTrack::default();
    let mut to_assignment = LatencyTrack::default();
    let mut report = DispatchReport {
        cases: histories.len(),
        ..DispatchReport::default()
    };
    for history in histories {
        *report
            .statuses
            .entry(history.case.status.clone())
            .or_default() += 1;
        for offer in &history.offers {
            *report
                .offers_by_state
                .entry(offer.state.clone())
                .or_default() += 1;
        }
        let Some(timings) = history.timings() else {
            continue;
        };
        let at_s = (timings.created_at - run_started).num_milliseconds() as f64 / 1000.0;
        if let Some(first_offer) = timings.to_first_offer {
            report.offered += 1;
            latency.record(at_s, std_duration(first_offer));
        }
        if let Some(assigned) = timings.to_assignment {
            report.assigned += 1;
            to_assignment.record(at_s, std_duration(assigned));
        }
    }
    report.latency = latency.summary();
    report.to_assignment = to_assignment.summary();
    report.latency_series = latency.series(MAX_POINTS);
    report.latency_distribution = latency.distribution();
    report
}

/// A target of the issue, against what was measured.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    /// What.
    pub name: String,
    /// The target, in words.
    pub target: String,
    /// Under which conditions the target is stated.
    pub conditions: String,
    /// What this run measured.
    pub measured: String,
    /// Under which conditions this run measured it.
    pub measured_under: String,
    /// Whether it met the target.
    pub met: bool,
}

/// Time series for the charts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    /// Latency over time per metric.
    pub latencies: BTreeMap<String, Vec<LatencyPoint>>,
    /// Rates over time per count.
    pub rates: BTreeMap<String, Vec<RatePoint>>,
}

/// Everything about a run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `load-tests <version>`.
    pub tool: String,
    /// The command line's subcommand and arguments, as run.
    pub command: String,
    /// The run's tag (in provider names and request markers).
    pub run_tag: String,
    /// The seed.
    pub seed: u64,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: DateTime<Utc>,
    /// Seconds.
    pub duration_s: f64,
    /// The server.
    pub target: TargetInfo,
    /// The machine.
    pub machine: MachineInfo,
    /// Fleet settings and figures.
    pub fleet: Option<serde_json::Value>,
    /// Maximum-rate ingest figures.
    pub positions: Option<PositionsOutcome>,
    /// Request stream settings.
    pub requests: Option<serde_json::Value>,
    /// Dispatch figures from the timelines.
    pub dispatch: Option<DispatchReport>,
    /// Agents on the live feed: SSE event latency, fix → alert, completeness.
    pub agents: Option<AgentsReport>,
    /// Client-side latencies by metric.
    pub latencies: BTreeMap<String, LatencySummary>,
    /// Counts by name.
    pub counts: BTreeMap<String, u64>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// The server's resource use, when its process was known.
    pub server: Option<ProcessUsage>,
    /// The load generator's own resource use (it shares the machine).
    pub load_generator: Option<ProcessUsage>,
    /// The invariants.
    pub invariants: Vec<Verdict>,
    /// The targets that this run measured.
    pub targets: Vec<TargetCheck>,
    /// Series behind the charts.
    pub series: Series,
    /// Whether every invariant held.
    pub passed: bool,
}

impl Report {
    /// Fills in the latencies, counts, errors and series from the recordings.
    pub fn take_recordings(&mut self, recordings: &Recordings) {
        for (name, track) in &recordings.latencies {
            self.latencies.insert((*name).to_owned(), track.summary());
            self.series
                .latencies
                .insert((*name).to_owned(), track.series(MAX_POINTS));
        }
        for (name, track) in &recordings.counts {
            self.counts.insert((*name).to_owned(), track.total());
            self.series
                .rates
                .insert((*name).to_owned(), track.series(MAX_POINTS));
        }
        self.errors = recordings.errors.clone();
    }

    /// Compares what was measured with the targets.
    pub fn check_targets(&mut self) {
        if let Some(positions) = &self.positions {
            self.targets.push(TargetCheck {
                name: "fixes/s accepted".to_owned(),
                target: "≥ 200,000".to_owned(),
                conditions: format!(
                    "POST /v1/provider/positions, {} fixes per body, 2 cores shared by server and load generator",
                    positions.batch_size
                ),
                measured: format!("{:.0}", positions.accepted_fixes_per_s),
                measured_under: format!(
                    "{} vehicles, {} connections, {} fixes per body, {} CPUs",
                    positions.vehicles, positions.connections, positions.batch_size, self.machine.cpus
                ),
                met: positions.accepted_fixes_per_s >= 200_000.0,
            });
        }
        if let Some(storm) = self.dispatch.as_ref().and_then(|d| d.storm.as_ref()) {
            let trucks = self
                .fleet
                .as_ref()
                .and_then(|fleet| fleet["vehicles"].as_u64())
                .unwrap_or(0);
            let rates: Vec<String> = storm
                .steps
                .iter()
                .map(|step| format!("{}", step.rate))
                .collect();
            self.targets.push(TargetCheck {
                name: format!("highest sustained rate with dispatch p99 ≤ {STORM_P99_MS} ms"),
                target: "≥ 1,000 cases/s".to_owned(),
                conditions: "one node, PostgreSQL (a holiday storm)".to_owned(),
                measured: storm.highest_sustained_rate.map_or_else(
                    || "none of the steps".to_owned(),
                    |rate| format!("{rate} cases/s"),
                ),
                measured_under: format!(
                    "steps of {} requests/s, {trucks} trucks, {} on {} CPUs",
                    rates.join(", "),
                    self.target.database,
                    self.machine.cpus
                ),
                met: storm
                    .highest_sustained_rate
                    .is_some_and(|rate| rate >= 1_000.0),
            });
        } else if let Some(dispatch) = &self.dispatch
            && let Some((p99, met, source)) = dispatch
                .server_latency
                .as_ref()
                .and_then(|server| {
                    server
                        .p99_ms
                        .map(|p99| (p99, server.p99_within(10.0), "server histogram"))
                })
                .or_else(|| {
                    dispatch
                        .latency
                        .p99_ms
                        .map(|p99| (p99, p99 <= 10.0, "server timeline"))
                })
        {
            let rate = self
                .requests
                .as_ref()
                .and_then(|requests| requests["rate"].as_f64())
                .map_or_else(
                    || "unknown request rate".to_owned(),
                    |rate| format!("{rate} requests/s"),
                );
            let trucks = self
                .fleet
                .as_ref()
                .and_then(|fleet| fleet["vehicles"].as_u64())
                .map_or_else(
                    || "no simulated fleet".to_owned(),
                    |vehicles| format!("{vehicles} trucks"),
                );
            self.targets.push(TargetCheck {
                name: "dispatch latency p99".to_owned(),
                target: "≤ 10 ms".to_owned(),
                conditions: "50 requests/s with 10,000 moving trucks".to_owned(),
                measured: format!("{p99:.2} ms ({source})"),
                measured_under: format!(
                    "{rate} with {trucks}, {} on {} CPUs{}",
                    self.target.database,
                    self.machine.cpus,
                    self.disturbance()
                ),
                met,
            });
        }
        self.check_stream_target();
        self.check_soak_target();
    }

    /// A run of 20 minutes or more is a soak: the server's memory may grow by less than
    /// 10 % after the warm-up (the first sixth of the run).
    fn check_soak_target(&mut self) {
        let Some(server) = &self.server else {
            return;
        };
        let (Some(growth), Some(&(last_t, _))) =
            (server.rss_growth_after_warmup, server.rss_series.last())
        else {
            return;
        };
        if last_t < 20.0 * 60.0 {
            return;
        }
        let errors: u64 = self.errors.values().sum();
        self.targets.push(TargetCheck {
            name: "soak: server RSS growth after warm-up, errors".to_owned(),
            target: "< 10 %, no error".to_owned(),
            conditions: "30-minute soak".to_owned(),
            measured: format!("{:.1} %, {errors} errors", growth * 100.0),
            measured_under: format!(
                "{:.0} min, warm-up {:.0} min, {} on {} CPUs",
                last_t / 60.0,
                last_t * crate::server::WARMUP_SHARE / 60.0,
                self.target.database,
                self.machine.cpus
            ),
            met: growth < 0.10 && errors == 0,
        });
    }

    /// ", disturbed: …" when the hypervisor took a tenth of the CPU or more in some second
    /// of the run (see [`crate::machine`]), else nothing.
    fn disturbance(&self) -> String {
        match &self.machine.usage {
            Some(usage) if usage.disturbed() => format!(
                ", disturbed: the hypervisor took ≥ {:.0} % of the CPU in {} s",
                crate::machine::DISTURBED_STEAL_SHARE * 100.0,
                usage.disturbed_intervals
            ),
            _ => String::new(),
        }
    }

    /// The SSE target of the issues, when agents listened.
    fn check_stream_target(&mut self) {
        let Some(agents) = &self.agents else {
            return;
        };
        let Some(p99) = agents.latency.p99_ms else {
            return;
        };
        let load = match (&self.fleet, &self.requests) {
            (Some(fleet), Some(requests)) => format!(
                "{} trucks, {} requests/s",
                fleet["vehicles"], requests["rate"]
            ),
            (None, Some(requests)) => format!("no fleet, {} requests/s", requests["rate"]),
            _ => "no load of its own".to_owned(),
        };
        self.targets.push(TargetCheck {
            name: "SSE event latency p99".to_owned(),
            target: "≤ 1 s".to_owned(),
            conditions: "100 agents connected".to_owned(),
            measured: format!("{p99:.1} ms"),
            measured_under: format!(
                "{} agents connected of {}, {load}, {} on {} CPUs",
                agents.connected, agents.agents, self.target.database, self.machine.cpus
            ),
            met: p99 <= TARGET_P99_MS && agents.connected == agents.agents,
        });
        if let Some(p99) = agents.fix_to_alert.latency.p99_ms {
            self.targets.push(TargetCheck {
                name: "fix → alert on the SSE stream p99".to_owned(),
                target: "≤ 1 s".to_owned(),
                conditions: "under load".to_owned(),
                measured: format!("{p99:.1} ms"),
                measured_under: format!(
                    "{} fix-triggered alerts × {} agents, {load}",
                    agents.fix_to_alert.linked_alerts, agents.connected
                ),
                met: p99 <= TARGET_P99_MS,
            });
        }
    }

    /// Writes `report.json`, `report.md` and the charts into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<Vec<String>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut files = vec!["report.json".to_owned(), "report.md".to_owned()];
        let charts = self.charts();
        for (name, svg) in &charts {
            std::fs::write(dir.join(name), svg).with_context(|| format!("writing {name}"))?;
            files.push(name.clone());
        }
        let json = serde_json::to_string_pretty(self).context("serialising the report")?;
        std::fs::write(dir.join("report.json"), json).context("writing report.json")?;
        let chart_names: Vec<&str> = charts.iter().map(|(name, _)| name.as_str()).collect();
        std::fs::write(dir.join("report.md"), markdown(self, &chart_names))
            .context("writing report.md")?;
        Ok(files)
    }

    /// The charts: `(file name, SVG)`.
    pub fn charts(&self) -> Vec<(String, String)> {
        let mut charts = Vec::new();
        let mut latency_lines = Vec::new();
        if let Some(dispatch) = &self.dispatch {
            latency_lines.extend(latency_lines_of("dispatch", &dispatch.latency_series));
        }
        for (name, label) in [
            ("positions_request", "POST positions"),
            ("case_request", "POST cases"),
        ] {
            if let Some(series) = self.series.latencies.get(name) {
                latency_lines.extend(latency_lines_of(label, series));
            }
        }
        if !latency_lines.is_empty() {
            charts.push((
                "latency-over-time.svg".to_owned(),
                svg::line_chart(
                    &Frame {
                        title: "Latency over time".to_owned(),
                        x_label: "seconds since start (dispatch: by case creation time)".to_owned(),
                        y_label: "ms".to_owned(),
                    },
                    &latency_lines,
                ),
            ));
        }
        let rate_line = |name: &str, label: &str| {
            self.series.rates.get(name).map(|points| Line {
                name: label.to_owned(),
                points: points.iter().map(|p| (p.t_s, p.per_s)).collect(),
            })
        };
        if let Some(line) = rate_line("fixes_accepted", "fixes accepted/s") {
            charts.push((
                "throughput-fixes.svg".to_owned(),
                svg::line_chart(
                    &Frame {
                        title: "Positions accepted per second".to_owned(),
                        x_label: "seconds since start".to_owned(),
                        y_label: "fixes/s".to_owned(),
                    },
                    &[line],
                ),
            ));
        }
        let case_lines: Vec<Line> = [
            ("cases_acknowledged", "cases created/s"),
            ("offers_seen", "offers seen by providers/s"),
            ("jobs_completed", "jobs completed/s"),
        ]
        .iter()
        .filter_map(|(name, label)| rate_line(name, label))
        .collect();
        if !case_lines.is_empty() {
            charts.push((
                "throughput-cases.svg".to_owned(),
                svg::line_chart(
                    &Frame {
                        title: "Cases and offers per second".to_owned(),
                        x_label: "seconds since start".to_owned(),
                        y_label: "per second".to_owned(),
                    },
                    &case_lines,
                ),
            ));
        }
        let (histogram_of, distribution) = match &self.dispatch {
            Some(dispatch) if !dispatch.latency_distribution.is_empty() => {
                ("dispatch latency", dispatch.latency_distribution.clone())
            }
            _ => ("", Vec::new()),
        };
        if !distribution.is_empty() {
            charts.push((
                "latency-histogram.svg".to_owned(),
                histogram_svg(histogram_of, &distribution),
            ));
        }
        if let Some(agents) = &self.agents {
            let mut lines = latency_lines_of("every event", &agents.latency_series);
            lines.extend(latency_lines_of(
                "alert_raised",
                &agents.alert_latency_series,
            ));
            lines.extend(latency_lines_of("fix → alert", &agents.fix_to_alert.series));
            charts.push((
                "sse-latency-over-time.svg".to_owned(),
                svg::line_chart(
                    &Frame {
                        title: format!(
                            "SSE event latency, {} agents (receive − event at; fix → alert: receive − fix sent)",
                            agents.connected
                        ),
                        x_label: "seconds since start (by receive time)".to_owned(),
                        y_label: "ms".to_owned(),
                    },
                    &lines,
                ),
            ));
            if !agents.latency_distribution.is_empty() {
                charts.push((
                    "sse-latency-histogram.svg".to_owned(),
                    histogram_svg("SSE event latency", &agents.latency_distribution),
                ));
            }
        }
        if let Some(server) = &self.server
            && server.samples > 1
        {
            charts.push((
                "server-resources.svg".to_owned(),
                svg::line_chart(
                    &Frame {
                        title: "Server resources".to_owned(),
                        x_label: "seconds since start".to_owned(),
                        y_label: "MiB / % of one core".to_owned(),
                    },
                    &[
                        Line {
                            name: "RSS, MiB".to_owned(),
                            points: server.rss_series.clone(),
                        },
                        Line {
                            name: "CPU, % of one core".to_owned(),
                            points: server
                                .cpu_series
                                .iter()
                                .map(|(t, cores)| (*t, cores * 100.0))
                                .collect(),
                        },
                    ],
                ),
            ));
        }
        charts
    }
}

/// A latency histogram chart from `(upper bound ms, count)` pairs.
pub fn histogram_svg(what: &str, distribution: &[(f64, u64)]) -> String {
    let bars: Vec<(String, f64)> = distribution
        .iter()
        .map(|(bound, count)| (format!("≤{}", svg::tick_label(*bound)), *count as f64))
        .collect();
    svg::bar_chart(
        &Frame {
            title: format!("Histogram of {what}"),
            x_label: "ms (upper bound of each bucket; buckets double)".to_owned(),
            y_label: "count".to_owned(),
        },
        &bars,
    )
}

fn latency_lines_of(label: &str, series: &[LatencyPoint]) -> Vec<Line> {
    vec![
        Line {
            name: format!("{label} p50"),
            points: series.iter().map(|p| (p.t_s, p.p50_ms)).collect(),
        },
        Line {
            name: format!("{label} p99"),
            points: series.iter().map(|p| (p.t_s, p.p99_ms)).collect(),
        },
    ]
}

fn optional_ms(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |ms| format!("{ms:.2}"))
}

fn optional_share(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |share| format!("{:.1} %", share * 100.0))
}

fn latency_row(markdown: &mut String, name: &str, summary: &LatencySummary) {
    let _ = writeln!(
        markdown,
        "| {name} | {} | {} | {} | {} | {} |",
        summary.count,
        optional_ms(summary.p50_ms),
        optional_ms(summary.p90_ms),
        optional_ms(summary.p99_ms),
        optional_ms(summary.max_ms)
    );
}

/// The "SSE event latency" section.
fn agents_markdown(md: &mut String, agents: &AgentsReport, interval_s: Option<f64>) {
    let _ = writeln!(
        md,
        "\n## SSE event latency ({} agents)\n\n{}\n",
        agents.agents, agents.measured
    );
    md.push_str("| what | count | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|\n");
    latency_row(md, "every event (receive − at)", &agents.latency);
    latency_row(md, "alert_raised (receive − at)", &agents.latency_alerts);
    latency_row(md, "other kinds (receive − at)", &agents.latency_other);
    for (kind, figures) in &agents.alerts_by_kind {
        latency_row(
            md,
            &format!("alert {kind} (receive − at)"),
            &figures.latency,
        );
    }
    let fix = &agents.fix_to_alert;
    latency_row(
        md,
        "fix → alert on the stream (receive − fix sent)",
        &fix.latency,
    );
    latency_row(
        md,
        "… fix sent → alert recorded (at − fix sent), per alert",
        &fix.to_recorded,
    );
    latency_row(
        md,
        "… alert recorded → received (receive − at)",
        &fix.recorded_to_received,
    );
    md.push_str("\n| figure | value |\n|---|---|\n");
    let [least, mean, most] = agents.events_per_subscriber;
    let _ = writeln!(
        md,
        "| agents connected · of | {} · {} |",
        agents.connected, agents.agents
    );
    let _ = writeln!(
        md,
        "| distinct events · receipts | {} · {} |",
        agents.events, agents.receipts
    );
    let _ = writeln!(
        md,
        "| events per subscriber: least · mean · most | {least:.0} · {mean:.1} · {most:.0} |"
    );
    let _ = writeln!(
        md,
        "| events each subscriber had to see: least · most | {} · {} |",
        agents.expected_per_subscriber[0], agents.expected_per_subscriber[1]
    );
    let _ = writeln!(
        md,
        "| every subscriber saw every event | {} |",
        if agents.complete {
            "yes".to_owned()
        } else {
            format!(
                "**no**: {} missed over {} subscribers",
                agents.missed_events, agents.subscribers_missing
            )
        }
    );
    let _ = writeln!(
        md,
        "| reconnects · failed connection attempts | {} · {} |",
        agents.reconnects, agents.connect_failures
    );
    let _ = writeln!(
        md,
        "| gaps in ids (ids skipped) · repeats · unreadable | {} ({}) · {} · {} |",
        agents.gaps, agents.gap_ids, agents.repeats, agents.malformed
    );
    let alerts: Vec<String> = agents
        .alerts_by_kind
        .iter()
        .map(|(kind, figures)| {
            format!(
                "{kind} {}{}",
                figures.alerts,
                if figures.fix_triggered { " (fix)" } else { "" }
            )
        })
        .collect();
    let _ = writeln!(
        md,
        "| alerts by kind (distinct) | {} |",
        if alerts.is_empty() {
            "none".to_owned()
        } else {
            alerts.join(", ")
        }
    );
    let _ = writeln!(
        md,
        "| fix-triggered alerts · linked to their fix · unlinked | {} · {} · {} |",
        fix.alerts, fix.linked_alerts, fix.unlinked_alerts
    );
    if let (Some(p99_ms), Some(interval_s)) = (fix.to_recorded.p99_ms, interval_s) {
        let interval_ms = interval_s * 1000.0;
        let _ = writeln!(
            md,
            "| fix → alert link (needs fix sent → recorded below the report interval) | {} |",
            if p99_ms < interval_ms {
                format!("holds: p99 {p99_ms:.1} ms < {interval_ms:.0} ms")
            } else {
                format!(
                    "**does not hold**: p99 {p99_ms:.1} ms ≥ {interval_ms:.0} ms, so some alerts may be linked to a later fix than the one that raised them and the fix → alert figures are then a lower bound"
                )
            }
        );
    }
    if !agents.jobs_by_behaviour.is_empty() {
        let jobs: Vec<String> = agents
            .jobs_by_behaviour
            .iter()
            .map(|(behaviour, count)| format!("{behaviour} {count}"))
            .collect();
        let _ = writeln!(
            md,
            "| accepted jobs by truck behaviour | {} |",
            jobs.join(", ")
        );
    }
}

/// The storm's table: one row per step.
fn storm_markdown(md: &mut String, storm: &StormReport) {
    let _ = writeln!(
        md,
        "\n## Holiday storm, step by step\n\nA step is sustained when at least {:.0} % of its rate became cases and their dispatch p99 stayed within {STORM_P99_MS} ms. Highest sustained rate: **{}**.\n",
        STORM_MIN_TAKEN * 100.0,
        storm
            .highest_sustained_rate
            .map_or_else(|| "none".to_owned(), |rate| format!("{rate} cases/s"))
    );
    md.push_str(
        "| rate asked | seconds | cases | created/s | offered | escalated | p50 | p90 | p99 | max | persisted p99 (server) | sustained |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for step in &storm.steps {
        let _ = writeln!(
            md,
            "| {}/s | {:.0}–{:.0} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |",
            step.rate,
            step.from_s,
            step.to_s,
            step.cases,
            step.created_per_s,
            step.offered,
            step.escalated,
            optional_ms(step.latency.p50_ms),
            optional_ms(step.latency.p90_ms),
            optional_ms(step.latency.p99_ms),
            optional_ms(step.latency.max_ms),
            optional_ms(
                step.server_latency
                    .as_ref()
                    .and_then(|server| server.p99_ms)
            ),
            if step.sustained { "yes" } else { "**no**" }
        );
    }
}

/// The Markdown summary.
pub fn markdown(report: &Report, charts: &[&str]) -> String {
    let mut md = String::new();
    let verdict = if report.passed { "passed" } else { "FAILED" };
    let _ = writeln!(md, "# Load run: {} — {verdict}\n", report.command);
    let _ = writeln!(
        md,
        "{} · seed {} · tag `{}` · {} → {} ({:.1} s) · {} CPUs ({})\n",
        report.tool,
        report.seed,
        report.run_tag,
        report.started_at.format("%Y-%m-%d %H:%M:%S"),
        report.finished_at.format("%H:%M:%S"),
        report.duration_s,
        report.machine.cpus,
        report.machine.note
    );
    let _ = writeln!(
        md,
        "Server: {} ({}{})\n",
        report.target.url,
        report.target.database,
        if report.target.spawned {
            ", started by this run"
        } else {
            ""
        }
    );
    if !report.targets.is_empty() {
        md.push_str(
            "## Targets\n\n| what | target | stated for | measured | this run | met |\n|---|---|---|---|---|---|\n",
        );
        for target in &report.targets {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                target.name,
                target.target,
                target.conditions,
                target.measured,
                target.measured_under,
                if target.met { "yes" } else { "**no**" }
            );
        }
        md.push('\n');
    }
    md.push_str("## Summary\n\n| figure | value |\n|---|---|\n");
    if let Some(positions) = &report.positions {
        let _ = writeln!(
            md,
            "| fixes/s accepted (after {:.0} s warm-up) | {:.0} |",
            positions.warmup_s, positions.accepted_fixes_per_s
        );
        let _ = writeln!(
            md,
            "| position requests/s | {:.0} |",
            positions.requests_per_s
        );
        let _ = writeln!(
            md,
            "| vehicles · connections · fixes per body | {} · {} · {} |",
            positions.vehicles, positions.connections, positions.batch_size
        );
    }
    for name in [
        "fixes_accepted",
        "fixes_rejected",
        "cases_sent",
        "cases_acknowledged",
        "cases_failed",
        "case_retries",
        "cases_phone_solvable",
        "offers_seen",
        "offers_accepted",
        "offers_declined",
        "offers_ignored",
        "answers_too_late",
        "jobs_completed",
        "jobs_aborted",
        "jobs_runaway",
        "jobs_stalled",
        "jobs_silent",
    ] {
        if let Some(count) = report.counts.get(name) {
            let _ = writeln!(md, "| {} | {count} |", name.replace('_', " "));
        }
    }
    if let Some(dispatch) = &report.dispatch {
        let _ = writeln!(
            md,
            "| cases in the run · offered · assigned | {} · {} · {} |",
            dispatch.cases, dispatch.offered, dispatch.assigned
        );
        let statuses: Vec<String> = dispatch
            .statuses
            .iter()
            .map(|(status, count)| format!("{status} {count}"))
            .collect();
        let _ = writeln!(
            md,
            "| cases by status at the end | {} |",
            statuses.join(", ")
        );
        let offers: Vec<String> = dispatch
            .offers_by_state
            .iter()
            .map(|(state, count)| format!("{state} {count}"))
            .collect();
        let _ = writeln!(md, "| offers by state at the end | {} |", offers.join(", "));
    }
    if let Some(storm) = report.dispatch.as_ref().and_then(|d| d.storm.as_ref()) {
        storm_markdown(&mut md, storm);
    }
    md.push_str("\n## Latency (ms)\n\n| what | count | p50 | p90 | p99 | max |\n|---|---|---|---|---|---|\n");
    if let Some(dispatch) = &report.dispatch {
        if let Some(server) = &dispatch.server_latency {
            let _ = writeln!(
                md,
                "| dispatch: request accepted → first offer persisted (server histogram; {} within 10 ms) | {} | {} | {} | {} | – |",
                optional_share(server.within_10_ms),
                server.count,
                optional_ms(server.p50_ms),
                optional_ms(server.p90_ms),
                optional_ms(server.p99_ms),
            );
        }
        latency_row(
            &mut md,
            "dispatch: created → first offer stamped (server timeline, before its commit)",
            &dispatch.latency,
        );
        latency_row(
            &mut md,
            "time to assignment: created → vehicle assigned",
            &dispatch.to_assignment,
        );
    }
    for (name, summary) in &report.latencies {
        latency_row(
            &mut md,
            &format!("client: {}", name.replace('_', " ")),
            summary,
        );
    }
    if let Some(agents) = &report.agents {
        let interval_s = report
            .fleet
            .as_ref()
            .and_then(|fleet| fleet["interval_s"].as_f64());
        agents_markdown(&mut md, agents, interval_s);
    }
    md.push_str("\n## Invariants\n\n| invariant | checked | violations | |\n|---|---|---|---|\n");
    for verdict in &report.invariants {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            verdict.name,
            verdict.checked,
            verdict.violation_count,
            if verdict.holds() {
                "holds"
            } else {
                "**VIOLATED**"
            }
        );
    }
    for verdict in report.invariants.iter().filter(|v| !v.holds()) {
        let _ = writeln!(md, "\n**{}** ({}):\n", verdict.name, verdict.description);
        for violation in &verdict.violations {
            let _ = writeln!(md, "- {violation}");
        }
    }
    md.push_str("\n## Errors by kind\n\n");
    if report.errors.is_empty() {
        md.push_str("none\n");
    } else {
        md.push_str("| kind | count |\n|---|---|\n");
        for (kind, count) in &report.errors {
            let _ = writeln!(md, "| {kind} | {count} |");
        }
    }
    md.push_str("\n## Processes\n\n| process | CPU s | cores busy (avg) | RSS start · peak · end (MiB) | RSS growth after warm-up |\n|---|---|---|---|---|\n");
    for (name, usage) in [
        ("server", &report.server),
        ("load generator", &report.load_generator),
    ] {
        match usage {
            Some(usage) if usage.samples > 0 => {
                let _ = writeln!(
                    md,
                    "| {name} (pid {}) | {:.1} | {:.2} | {:.0} · {:.0} · {:.0} | {} |",
                    usage.pid,
                    usage.cpu_s,
                    usage.cpu_cores_avg,
                    usage.rss_start_mib,
                    usage.rss_peak_mib,
                    usage.rss_end_mib,
                    usage
                        .rss_growth_after_warmup
                        .map_or("–".to_owned(), |growth| format!(
                            "{:+.1} %",
                            growth * 100.0
                        ))
                );
            }
            _ => {
                let _ = writeln!(
                    md,
                    "| {name} | – | – | unknown (pass --spawn-server or --server-pid) | – |"
                );
            }
        }
    }
    if let Some(usage) = &report.machine.usage {
        let _ = writeln!(md, "\n{}", machine_line(usage, report.machine.cpus));
        if usage.disturbed() {
            md.push_str(
                "\n**Disturbed run**: while the hypervisor holds a virtual CPU, every request in \
                 flight waits, whatever the server does; latency percentiles of this run say as \
                 much about the host as about the server.\n",
            );
        }
    }
    if !charts.is_empty() {
        md.push_str("\n## Charts\n\n");
        for chart in charts {
            let _ = writeln!(md, "![{chart}]({chart})\n");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::fixtures::*;

    fn report() -> Report {
        Report {
            tool: "load-tests 0.1.0".to_owned(),
            command: "scenario smoke.toml".to_owned(),
            run_tag: "lt1".to_owned(),
            seed: 7,
            started_at: at(0),
            finished_at: at(10_000),
            duration_s: 10.0,
            target: TargetInfo {
                url: "http://127.0.0.1:1".to_owned(),
                spawned: true,
                server_binary: None,
                server_env: BTreeMap::new(),
                database: "sqlite".to_owned(),
            },
            machine: MachineInfo {
                cpus: 2,
                note: "shared".to_owned(),
                usage: None,
            },
            fleet: None,
            positions: None,
            requests: None,
            dispatch: None,
            agents: None,
            latencies: BTreeMap::new(),
            counts: BTreeMap::new(),
            errors: BTreeMap::new(),
            server: None,
            load_generator: None,
            invariants: Vec::new(),
            targets: Vec::new(),
            series: Series::default(),
            passed: true,
        }
    }

    #[test]
    fn dispatch_figures_come_from_the_timelines() {
        let mut slow = assigned_case("c2", "m2");
        // Offered 30 ms after creation, at second 2 of the run.
        for event in &mut slow.timeline {
            event.at += chrono::Duration::seconds(2);
        }
        slow.timeline[3].at += chrono::Duration::milliseconds(26);
        slow.case.created_at += chrono::Duration::seconds(2);
        let mut never = assigned_case("c3", "m3");
        never.timeline.truncate(2);
        never.case.status = "dispatching".to_owned();
        never.offers.clear();
        let dispatch = dispatch_report(&[assigned_case("c1", "m1"), slow, never], at(0));
        assert_eq!(
            (dispatch.cases, dispatch.offered, dispatch.assigned),
            (3, 2, 2)
        );
        assert_eq!(dispatch.latency.count, 2);
        assert!(
            (dispatch.latency.max_ms.unwrap() - 30.0).abs() < 0.1,
            "{:?}",
            dispatch.latency
        );
        assert!(
            (dispatch.latency.p50_ms.unwrap() - 4.0).abs() < 0.1,
            "{:?}",
            dispatch.latency
        );
        assert_eq!(dispatch.statuses["dispatching"], 1);
        assert_eq!(dispatch.offers_by_state["accepted"], 2);
        let seconds: Vec<f64> = dispatch.latency_series.iter().map(|p| p.t_s).collect();
        assert_eq!(seconds, vec![0.0, 2.0]);
    }

    /// A case created `at_ms` into the run and offered `offer_ms` later.
    fn case_at(id: &str, at_ms: i64, offer_ms: Option<i64>) -> CaseHistory {
        let mut history = assigned_case(id, id);
        history.case.created_at = at(at_ms);
        history.timeline[0].at = at(at_ms);
        match offer_ms {
            Some(offer_ms) => history.timeline[3].at = at(at_ms + offer_ms),
            None => {
                history.timeline.truncate(2);
                history.case.status = "escalated".to_owned();
            }
        }
        history
    }

    #[test]
    fn a_storm_is_reported_step_by_step_with_its_highest_sustained_rate() {
        use crate::requests::RateStep;
        let steps = [
            RateStep {
                rate: 2.0,
                seconds: 2.0,
            },
            RateStep {
                rate: 4.0,
                seconds: 1.0,
            },
            RateStep {
                rate: 3.0,
                seconds: 1.0,
            },
            RateStep {
                rate: 1.0,
                seconds: 1.0,
            },
        ];
        let mut histories = Vec::new();
        // Step 1 (0–2 s): 4 cases, all fast.
        for i in 0..4 {
            histories.push(case_at(&format!("a{i}"), i * 400, Some(5)));
        }
        // Step 2 (2–3 s): 4 cases, one slow: its p99 is 80 ms.
        for i in 0..4 {
            let offer = if i == 3 { 80 } else { 6 };
            histories.push(case_at(&format!("b{i}"), 2_000 + i * 200, Some(offer)));
        }
        // Step 3 (3–4 s): only 2 of 3 cases taken in; one escalated without an offer.
        histories.push(case_at("c0", 3_100, Some(4)));
        histories.push(case_at("c1", 3_500, None));
        // Step 4: fast again, and a case created after the end still counts in it.
        histories.push(case_at("d0", 4_200, Some(3)));
        histories.push(case_at("d1", 5_300, Some(3)));
        let storm = storm_report(&histories, &steps, at(0), None);
        let cases: Vec<usize> = storm.steps.iter().map(|step| step.cases).collect();
        assert_eq!(cases, vec![4, 4, 2, 2]);
        let sustained: Vec<bool> = storm.steps.iter().map(|step| step.sustained).collect();
        assert_eq!(sustained, vec![true, false, false, true]);
        assert!((storm.steps[1].latency.p99_ms.unwrap() - 80.0).abs() < 0.5);
        assert_eq!((storm.steps[2].offered, storm.steps[2].escalated), (1, 1));
        // The highest sustained rate is the highest rate of a sustained step, wherever it ran.
        assert_eq!(storm.highest_sustained_rate, Some(2.0));
        let mut later = steps;
        later[3].rate = 2.2;
        let storm_later = storm_report(&histories, &later, at(0), None);
        assert_eq!(storm_later.highest_sustained_rate, Some(2.2));

        let mut report = report();
        let mut dispatch = dispatch_report(&histories, at(0));
        dispatch.storm = Some(storm);
        report.dispatch = Some(dispatch);
        report.check_targets();
        assert_eq!(
            report.targets.len(),
            1,
            "a storm is not judged by the 50/s target"
        );
        assert_eq!(report.targets[0].measured, "2 cases/s");
        assert!(!report.targets[0].met);
        let md = markdown(&report, &[]);
        assert!(md.contains("Highest sustained rate: **2 cases/s**"), "{md}");
        assert!(md.contains("| 4/s | 2–3 | 4 | 4.0 | 4 | 0 |"), "{md}");
    }

    #[test]
    fn a_missed_target_is_marked_and_a_violation_fails_the_summary() {
        let mut report = report();
        report.dispatch = Some(dispatch_report(&[assigned_case("c1", "m1")], at(0)));
        report.dispatch.as_mut().unwrap().latency.p99_ms = Some(12.5);
        report.check_targets();
        assert_eq!(report.targets.len(), 1);
        assert!(!report.targets[0].met);
        report.passed = false;
        report.invariants.push(Verdict {
            name: "no_double_booking",
            description: "no vehicle held two offers at once",
            checked: 3,
            violation_count: 1,
            violations: vec!["vehicle v1 was offered case c2 while holding c1".to_owned()],
        });
        let md = markdown(&report, &["latency-over-time.svg"]);
        assert!(
            md.starts_with("# Load run: scenario smoke.toml — FAILED"),
            "{md}"
        );
        assert!(
            md.contains(
                "| dispatch latency p99 | ≤ 10 ms | 50 requests/s with 10,000 moving trucks | 12.50 ms (server timeline) \
                 | unknown request rate with no simulated fleet, sqlite on 2 CPUs | **no** |"
            ),
            "{md}"
        );
        // The server's histogram, when it was read, is what the target is judged by.
        report.dispatch.as_mut().unwrap().server_latency = Some(ServerLatency {
            count: 100,
            p99_ms: Some(9.5),
            within_10_ms: Some(0.995),
            ..ServerLatency::default()
        });
        report.targets.clear();
        report.check_targets();
        assert!(report.targets[0].met, "{:?}", report.targets);
        assert_eq!(report.targets[0].measured, "9.50 ms (server histogram)");
        assert!(
            md.contains("| no_double_booking | 3 | 1 | **VIOLATED** |"),
            "{md}"
        );
        assert!(md.contains("- vehicle v1 was offered case c2"), "{md}");
        assert!(
            md.contains("![latency-over-time.svg](latency-over-time.svg)"),
            "{md}"
        );
    }

    #[test]
    fn a_run_the_hypervisor_disturbed_says_so_beside_its_target() {
        let mut report = report();
        report.dispatch = Some(dispatch_report(&[assigned_case("c1", "m1")], at(0)));
        report.dispatch.as_mut().unwrap().latency.p99_ms = Some(12.5);
        let quiet = crate::machine::MachineUsage {
            seconds: 120.0,
            busy_share: 0.4,
            steal_share: 0.01,
            steal_max_share: 0.04,
            disturbed_intervals: 0,
            intervals: 120,
            cpu_pressure_share: Some(0.2),
        };
        report.machine.usage = Some(quiet.clone());
        report.check_targets();
        assert!(
            !report.targets[0].measured_under.contains("disturbed"),
            "{:?}",
            report.targets
        );
        let md = markdown(&report, &[]);
        assert!(
            md.contains(
                "Machine over 120 s: 0.80 of 2 CPUs busy on average (all processes); the hypervisor \
                 took 1.0 % of the CPU time, at least 10 % in 0 of 120 one-second intervals, at most \
                 4 % in one; some task waited for a CPU 20 % of the time (PSI)."
            ),
            "{md}"
        );
        assert!(!md.contains("Disturbed run"), "{md}");

        report.machine.usage = Some(crate::machine::MachineUsage {
            steal_max_share: 0.35,
            disturbed_intervals: 7,
            ..quiet
        });
        report.targets.clear();
        report.check_targets();
        assert!(
            report.targets[0]
                .measured_under
                .ends_with(", disturbed: the hypervisor took ≥ 10 % of the CPU in 7 s"),
            "{:?}",
            report.targets
        );
        let md = markdown(&report, &[]);
        assert!(md.contains("**Disturbed run**"), "{md}");
    }

    #[test]
    fn the_report_is_written_as_json_markdown_and_charts() {
        let mut report = report();
        report.dispatch = Some(dispatch_report(&[assigned_case("c1", "m1")], at(0)));
        let dir = tempfile::tempdir().unwrap();
        let files = report.write(dir.path()).unwrap();
        assert!(
            files.contains(&"latency-histogram.svg".to_owned()),
            "{files:?}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
                .unwrap();
        assert_eq!(json["dispatch"]["offered"], 1);
        assert!(
            std::fs::read_to_string(dir.path().join("latency-over-time.svg"))
                .unwrap()
                .starts_with("<svg")
        );
    }

    #[test]
    fn the_stream_figures_get_a_section_a_target_and_charts() {
        use crate::agents::{AgentsReport, FixToAlert};
        let mut report = report();
        let summary = |p99_ms: f64| LatencySummary {
            count: 10,
            mean_ms: Some(p99_ms / 2.0),
            p50_ms: Some(p99_ms / 2.0),
            p90_ms: Some(p99_ms),
            p99_ms: Some(p99_ms),
            max_ms: Some(p99_ms),
        };
        report.agents = Some(AgentsReport {
            agents: 100,
            connected: 100,
            complete: true,
            latency: summary(240.0),
            fix_to_alert: FixToAlert {
                linked_alerts: 3,
                latency: summary(1_250.0),
                ..FixToAlert::default()
            },
            latency_series: vec![LatencyPoint {
                t_s: 0.0,
                count: 10,
                p50_ms: 120.0,
                p99_ms: 240.0,
                max_ms: 240.0,
            }],
            latency_distribution: vec![(256.0, 10)],
            ..AgentsReport::default()
        });
        report.check_targets();
        let names: Vec<(&str, bool)> = report
            .targets
            .iter()
            .map(|target| (target.name.as_str(), target.met))
            .collect();
        assert_eq!(
            names,
            vec![
                ("SSE event latency p99", true),
                ("fix → alert on the SSE stream p99", false)
            ]
        );
        let charts: Vec<String> = report.charts().into_iter().map(|(name, _)| name).collect();
        assert!(
            charts.contains(&"sse-latency-over-time.svg".to_owned()),
            "{charts:?}"
        );
        assert!(
            charts.contains(&"sse-latency-histogram.svg".to_owned()),
            "{charts:?}"
        );
        report.fleet = Some(serde_json::json!({"vehicles": 2000, "interval_s": 1.0}));
        report.agents.as_mut().unwrap().fix_to_alert.to_recorded = summary(1_500.0);
        let md = markdown(&report, &[]);
        assert!(md.contains("## SSE event latency (100 agents)"), "{md}");
        assert!(
            md.contains("**does not hold**: p99 1500.0 ms ≥ 1000 ms"),
            "{md}"
        );
        assert!(
            md.contains("| SSE event latency p99 | ≤ 1 s | 100 agents connected | 240.0 ms |"),
            "{md}"
        );
        assert!(
            md.contains("| every subscriber saw every event | yes |"),
            "{md}"
        );
    }
}
